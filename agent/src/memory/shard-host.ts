/**
 * The shard host: the replicas of memory shards this node holds, each an HNSW index (hnswlib-node)
 * with its points in SQLite, served by the `hnsw` worker (`native/workers/hnsw-worker.ts`). The
 * worker threads keep the open indexes, so the host runs `threads` single-thread pools and sends
 * every task of a shard to the same one (`hash(collection/shard) % threads`); a thread that
 * restarts opens its replicas again from disk on their next task.
 *
 * The index files are written every `flushIntervalMs` and on `stop()` (a restart reads them and
 * replays only the rows changed since, instead of inserting every point again). Writes are
 * last-writer-wins per id (`Version`: ts, then writer); each change gets the replica's next `seq`,
 * which `changes` pages by (tombstones included) so a new replica can copy an old one, and `digest`
 * / `bucket` compare two replicas by 64 hash buckets of their ids.
 *
 * Inputs are checked here (`validate.ts`): a malformed vector, id, version, metadata or filter
 * throws `InvalidVectorError`, a key this host does not hold `NotHostedError`.
 *
 * ```ts
 * const host = shardHost({ dir: '/var/lib/flexnode/shards' })({ logger })
 * await host.start()
 * const key = { collection: 'docs.lx2k3', shard: 0 }
 * await host.open({ ...key, dimensions: 3, distance: 'cosine' })
 * await host.upsert(key, [{ id: 'a', vector: new Float32Array([1, 0, 0]), metadata: {}, version: { ts: Date.now(), writer: 'uhCAk…' } }])
 * const hits = await host.search(key, new Float32Array([1, 0, 0]), { k: 5 })
 * await host.stop()
 * ```
 */
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PiscinaPool } from '../../../native/pool.ts'
import type { HnswConfig, HnswResult, HnswTask, HnswWrites } from '../../../native/workers/hnsw-worker.ts'
import { DIGEST_BUCKETS } from '../../../native/workers/hnsw-worker.ts'
import { DisposedError, errorMessage, InvalidInputError } from '../errors.ts'
import type { ComponentLogger } from '../logger.ts'
import type { Service, StartOptions } from '../service.ts'
import { InvalidVectorError, NotHostedError, type Distance, type Filter, type Metadata } from './types.ts'
import { MAX_DIMENSIONS, validateFilter, validateId, validateMetadata, validateSearchBounds, validateVector, validateVersion, checkBatchSize } from './validate.ts'

/** The worker module of the `hnsw` pools. */
export const HNSW_WORKER = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'native', 'workers', 'hnsw-worker.ts')

/** Single-thread pools of a host. */
export const SHARD_HOST_DEFAULT_THREADS = 1
/** Index files are written this often (ms). */
export const SHARD_HOST_DEFAULT_FLUSH_INTERVAL_MS = 30_000
/** HNSW `M` of new indexes. */
export const SHARD_HOST_DEFAULT_M = 16
/** HNSW `efConstruction` of new indexes. */
export const SHARD_HOST_DEFAULT_EF_CONSTRUCTION = 200
/** The longest a `setTimeout` can wait (ms): the idle timeout of the threads, which keep state. */
const NEVER_IDLE_MS = 2 ** 31 - 1
/** A collection uid as a folder name: no separators, not `.`/`..`. */
const COLLECTION_UID = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/

export interface ShardKey { collection: string, shard: number }
export interface ShardSpec extends ShardKey { dimensions: number, distance: Distance }
export interface Version { ts: number, writer: string }
export interface StoredPoint { id: string, vector: Float32Array | null, metadata: Metadata, version: Version, seq: number }
export interface ShardStats { count: number, deleted: number, seq: number, instance: string }

export interface ShardHostInit {
  /** where the replicas' files live */
  dir: string
  /** single-thread pools the shards are spread over. @default 1 */
  threads?: number
  /** how often index files are written, ms. @default 30000 */
  flushIntervalMs?: number
  /** HNSW `M` of new indexes. @default 16 */
  m?: number
  /** HNSW `efConstruction` of new indexes. @default 200 */
  efConstruction?: number
}

export interface ShardHostComponents {
  logger: ComponentLogger
}

export interface ShardHost extends Service {
  /** create the replica, or load it (idempotent); a replica holding other dimensions or distance throws `InvalidInputError` */
  open: (spec: ShardSpec) => Promise<ShardStats>
  /** the replicas found on disk at start, and those opened since */
  hosted: () => ShardSpec[]
  has: (key: ShardKey) => boolean
  /** last-writer-wins per id, in one transaction; `stale`: points whose version was not newer than the replica's */
  upsert: (key: ShardKey, points: Array<{ id: string, vector: Float32Array, metadata: Metadata, version: Version }>) => Promise<{ applied: number, stale: number }>
  /** tombstones, last-writer-wins (written for ids the replica has not seen too); `applied`: tombstones written */
  remove: (key: ShardKey, ids: string[], version: Version) => Promise<{ applied: number }>
  /** replica sync: another replica's changes, last-writer-wins, tombstones (`vector: null`) included */
  apply: (key: ShardKey, changes: StoredPoint[]) => Promise<{ applied: number }>
  /** the live points among `ids`, in the order asked */
  get: (key: ShardKey, ids: string[]) => Promise<StoredPoint[]>
  /** nearest live points (matching `filter`), by hnswlib distance, ascending. `ef` @default max(k, 64) */
  search: (key: ShardKey, query: Float32Array, options: { k: number, ef?: number, filter?: Filter }) => Promise<Array<{ id: string, distance: number, metadata: Metadata }>>
  /** one query over several replicas (of one collection), one task per worker thread; the hits of each, in the order of `keys` */
  searchMany: (keys: ShardKey[], query: Float32Array, options: { k: number, ef?: number, filter?: Filter }) => Promise<Array<Array<{ id: string, distance: number, metadata: Metadata }>>>
  /** the rows changed after `since`, by seq (tombstones too), at most `limit`; `next` is the `since` of the next page */
  changes: (key: ShardKey, since: number, limit: number) => Promise<{ instance: string, points: StoredPoint[], next: number, done: boolean }>
  /** 64 buckets by hash(id) (`bucketOfId`), each a hash of its sorted (id, ts, writer), tombstones included */
  /** rows with seq > since as ids and versions only, by seq (tombstones too): what a co-replica compares before fetching */
  versions: (key: ShardKey, since: number, limit: number) => Promise<{ instance: string, entries: Array<{ id: string, version: Version, seq: number }>, next: number, done: boolean }>
  /** of these, the ids whose version is newer than this replica's, or unknown here */
  newer: (key: ShardKey, entries: Array<{ id: string, version: Version }>) => Promise<string[]>
  /** points by id, tombstones included (missing ids left out) */
  fetch: (key: ShardKey, ids: string[]) => Promise<StoredPoint[]>
  digest: (key: ShardKey) => Promise<{ instance: string, seq: number, count: number, buckets: string[] }>
  /** the ids of one digest bucket with their versions, sorted by id */
  bucket: (key: ShardKey, b: number) => Promise<Array<{ id: string, version: Version }>>
  stats: (key: ShardKey) => Promise<ShardStats>
  /** close the replica and delete its files; nothing when it is not hosted */
  drop: (key: ShardKey) => Promise<void>
  /** write the index files that lag their rows */
  flush: () => Promise<void>
}

const keyString = (key: ShardKey): string => `${key.collection}/${key.shard}`

/** FNV-1a (32 bits) of a string's UTF-16 code units: which pool a shard's tasks go to. */
function fnv1a (s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

function checkKey (key: ShardKey): void {
  if (typeof key?.collection !== 'string' || !COLLECTION_UID.test(key.collection)) throw new InvalidInputError('key.collection must be a collection uid (letters, digits, _ - .)', { field: 'key.collection' })
  if (!Number.isInteger(key.shard) || key.shard < 0 || key.shard > 255) throw new InvalidInputError('key.shard must be an integer 0..255', { field: 'key.shard' })
}

type Pool = PiscinaPool<HnswTask, HnswResult>

class HnswShardHost implements ShardHost {
  private readonly init: ShardHostInit
  private readonly log: ComponentLogger
  private readonly logger: ComponentLogger
  private readonly config: HnswConfig
  private readonly specs = new Map<string, ShardSpec>()
  private pools: Pool[] = []
  private timer: NodeJS.Timeout | undefined
  private flushing: Promise<void> | undefined
  private starting: Promise<void> | undefined
  private stopping: Promise<void> | undefined

  constructor (init: ShardHostInit, components: ShardHostComponents) {
    this.init = init
    this.logger = components.logger
    this.log = components.logger.forComponent('flexnode:memory:shards')
    this.config = { dir: init.dir, m: init.m ?? SHARD_HOST_DEFAULT_M, efConstruction: init.efConstruction ?? SHARD_HOST_DEFAULT_EF_CONSTRUCTION }
  }

  async start (_options?: StartOptions): Promise<void> {
    if (this.stopping !== undefined) throw new DisposedError('the shard host')
    this.starting ??= (async () => {
      const threads = this.init.threads ?? SHARD_HOST_DEFAULT_THREADS
      if (!Number.isInteger(threads) || threads < 1) throw new InvalidInputError('threads must be a positive integer', { field: 'threads' })
      for (let i = 0; i < threads; i++) {
        this.pools.push(new PiscinaPool<HnswTask, HnswResult>({ module: HNSW_WORKER, name: 'hnsw', logFields: { thread: i }, maxThreads: 1, idleTimeoutMs: NEVER_IDLE_MS }, { logger: this.logger }))
      }
      const found = await this.pools[0]!.run({ op: 'scan', config: this.config }) as ShardSpec[]
      for (const spec of found) this.specs.set(keyString(spec), spec)
      this.log.info({ dir: this.config.dir, threads, replicas: found.length }, 'shard host started')
      const every = this.init.flushIntervalMs ?? SHARD_HOST_DEFAULT_FLUSH_INTERVAL_MS
      this.timer = setInterval(() => {
        this.flush().catch((err: unknown) => { this.log.warn({ err: errorMessage(err) }, 'periodic flush failed') })
      }, every)
      this.timer.unref()
    })()
    await this.starting
  }

  async stop (): Promise<void> {
    this.stopping ??= (async () => {
      await this.starting?.catch(() => undefined)
      clearInterval(this.timer)
      await this.flushing?.catch(() => undefined)
      await Promise.all(this.pools.map(async (pool, i) => {
        try {
          await pool.run({ op: 'close', config: this.config })
        } catch (err: unknown) {
          this.log.warn({ thread: i, err: errorMessage(err) }, 'closing the shards of a thread failed')
        }
        await pool.dispose()
      }))
    })()
    await this.stopping
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.stop() }

  private pool (key: ShardKey): Pool {
    if (this.stopping !== undefined) throw new DisposedError('the shard host')
    const pool = this.pools[fnv1a(keyString(key)) % this.pools.length]
    if (pool === undefined) throw new DisposedError('the shard host (not started)')
    return pool
  }

  /** The pool of a hosted key; `NotHostedError` for one this host does not hold. */
  private hostedPool (key: ShardKey): Pool {
    checkKey(key)
    if (!this.specs.has(keyString(key))) throw new NotHostedError(key.collection, key.shard)
    return this.pool(key)
  }

  private spec (key: ShardKey): ShardSpec {
    const spec = this.specs.get(keyString(key))
    if (spec === undefined) throw new NotHostedError(key.collection, key.shard)
    return spec
  }

  async open (spec: ShardSpec): Promise<ShardStats> {
    checkKey(spec)
    if (!Number.isInteger(spec.dimensions) || spec.dimensions < 1 || spec.dimensions > MAX_DIMENSIONS) throw new InvalidInputError(`dimensions must be an integer 1..${MAX_DIMENSIONS}`, { field: 'dimensions' })
    if (!['cosine', 'l2', 'ip'].includes(spec.distance)) throw new InvalidInputError('distance must be cosine, l2 or ip', { field: 'distance' })
    const held = this.specs.get(keyString(spec))
    if (held !== undefined && (held.dimensions !== spec.dimensions || held.distance !== spec.distance)) {
      throw new InvalidInputError(`replica ${keyString(spec)} holds ${held.dimensions}-dimensional ${held.distance} vectors, not ${spec.dimensions}-dimensional ${spec.distance}`, { field: 'spec' })
    }
    const own: ShardSpec = { collection: spec.collection, shard: spec.shard, dimensions: spec.dimensions, distance: spec.distance }
    const stats = await this.pool(spec).run({ op: 'open', config: this.config, spec: own }) as ShardStats
    this.specs.set(keyString(spec), own)
    return stats
  }

  hosted (): ShardSpec[] {
    return [...this.specs.values()].map(s => ({ ...s }))
  }

  has (key: ShardKey): boolean {
    return this.specs.has(keyString(key))
  }

  /** Pack the batch's vectors into one buffer, moved to the worker. */
  private async write (key: ShardKey, w: HnswWrites): Promise<{ applied: number, stale: number }> {
    const pool = this.hostedPool(key)
    return await pool.run({ op: 'write', config: this.config, key: { collection: key.collection, shard: key.shard }, ...w }, { transfer: [w.vectors.buffer as ArrayBuffer] }) as { applied: number, stale: number }
  }

  async upsert (key: ShardKey, points: Array<{ id: string, vector: Float32Array, metadata: Metadata, version: Version }>): Promise<{ applied: number, stale: number }> {
    checkKey(key)
    const { dimensions } = this.spec(key)
    if (!Array.isArray(points)) throw new InvalidVectorError('points', 'must be an array')
    checkBatchSize(points.length)
    const vectors = new Float32Array(points.length * dimensions)
    const ids: string[] = []
    const metadata: Metadata[] = []
    const versions: Version[] = []
    const seen = new Map<string, number>()
    points.forEach((p, i) => {
      const at = `points[${i}]`
      const id = validateId(p?.id, `${at}.id`)
      const first = seen.get(id)
      if (first !== undefined) throw new InvalidVectorError(`${at}.id`, `duplicate id ${JSON.stringify(id)} (also points[${first}])`)
      seen.set(id, i)
      vectors.set(validateVector(p.vector, dimensions, `${at}.vector`), i * dimensions)
      ids.push(id)
      metadata.push(validateMetadata(p.metadata, `${at}.metadata`))
      versions.push(validateVersion(p.version, `${at}.version`))
    })
    if (ids.length === 0) return { applied: 0, stale: 0 }
    return await this.write(key, { ids, metadata, versions, vectors })
  }

  async remove (key: ShardKey, ids: string[], version: Version): Promise<{ applied: number }> {
    checkKey(key)
    this.spec(key)
    if (!Array.isArray(ids)) throw new InvalidVectorError('ids', 'must be an array')
    checkBatchSize(ids.length)
    const v = validateVersion(version, 'version')
    const checked = [...new Set(ids.map((id, i) => validateId(id, `ids[${i}]`)))]
    if (checked.length === 0) return { applied: 0 }
    const { applied } = await this.write(key, { ids: checked, metadata: checked.map(() => ({})), versions: checked.map(() => v), vectors: new Float32Array(0), dead: checked.map(() => true) })
    return { applied }
  }

  async apply (key: ShardKey, changes: StoredPoint[]): Promise<{ applied: number }> {
    checkKey(key)
    const { dimensions } = this.spec(key)
    if (!Array.isArray(changes)) throw new InvalidVectorError('changes', 'must be an array')
    const vectors = new Float32Array(changes.length * dimensions)
    const ids: string[] = []
    const metadata: Metadata[] = []
    const versions: Version[] = []
    const dead: boolean[] = []
    changes.forEach((c, i) => {
      const at = `changes[${i}]`
      ids.push(validateId(c?.id, `${at}.id`))
      versions.push(validateVersion(c.version, `${at}.version`))
      if (c.vector === null) {
        dead.push(true)
        metadata.push({})
      } else {
        dead.push(false)
        vectors.set(validateVector(c.vector, dimensions, `${at}.vector`), i * dimensions)
        metadata.push(validateMetadata(c.metadata, `${at}.metadata`))
      }
    })
    if (ids.length === 0) return { applied: 0 }
    const { applied } = await this.write(key, { ids, metadata, versions, vectors, dead })
    return { applied }
  }

  async get (key: ShardKey, ids: string[]): Promise<StoredPoint[]> {
    const pool = this.hostedPool(key)
    if (!Array.isArray(ids)) throw new InvalidVectorError('ids', 'must be an array')
    const checked = ids.map((id, i) => validateId(id, `ids[${i}]`))
    if (checked.length === 0) return []
    return await pool.run({ op: 'get', config: this.config, key: { collection: key.collection, shard: key.shard }, ids: checked }) as StoredPoint[]
  }

  async search (key: ShardKey, query: Float32Array, options: { k: number, ef?: number, filter?: Filter }): Promise<Array<{ id: string, distance: number, metadata: Metadata }>> {
    const pool = this.hostedPool(key)
    const { dimensions } = this.spec(key)
    const q = Float32Array.from(validateVector(query, dimensions, 'query'))
    const { k, ef } = validateSearchBounds(options?.k, options?.ef)
    const filter = options.filter === undefined ? undefined : validateFilter(options.filter, 'filter')
    return await pool.run({ op: 'search', config: this.config, key: { collection: key.collection, shard: key.shard }, query: q, k, ef, filter }, { transfer: [q.buffer] }) as Array<{ id: string, distance: number, metadata: Metadata }>
  }

  async searchMany (keys: ShardKey[], query: Float32Array, options: { k: number, ef?: number, filter?: Filter }): Promise<Array<Array<{ id: string, distance: number, metadata: Metadata }>>> {
    if (keys.length === 0) return []
    const { dimensions } = this.spec(keys[0]!)
    const q = validateVector(query, dimensions, 'query')
    const { k, ef } = validateSearchBounds(options?.k, options?.ef)
    const filter = options.filter === undefined ? undefined : validateFilter(options.filter, 'filter')
    // the keys each thread holds, asked in one task
    const byPool = new Map<Pool, number[]>()
    keys.forEach((key, i) => {
      if (this.spec(key).dimensions !== dimensions) throw new InvalidInputError('searchMany takes replicas of one collection', { field: 'keys' })
      const pool = this.hostedPool(key)
      byPool.set(pool, [...(byPool.get(pool) ?? []), i])
    })
    const out: Array<Array<{ id: string, distance: number, metadata: Metadata }>> = new Array(keys.length)
    await Promise.all([...byPool].map(async ([pool, which]) => {
      const mine = Float32Array.from(q)
      const hits = await pool.run({ op: 'searchMany', config: this.config, keys: which.map(i => ({ collection: keys[i]!.collection, shard: keys[i]!.shard })), query: mine, k, ef, filter }, { transfer: [mine.buffer] }) as Array<Array<{ id: string, distance: number, metadata: Metadata }>>
      which.forEach((i, j) => { out[i] = hits[j]! })
    }))
    return out
  }

  async changes (key: ShardKey, since: number, limit: number): Promise<{ instance: string, points: StoredPoint[], next: number, done: boolean }> {
    const pool = this.hostedPool(key)
    if (!Number.isInteger(since) || since < 0) throw new InvalidInputError('since must be an integer ≥ 0', { field: 'since' })
    if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new InvalidInputError('limit must be an integer 1..100000', { field: 'limit' })
    return await pool.run({ op: 'changes', config: this.config, key: { collection: key.collection, shard: key.shard }, since, limit }) as { instance: string, points: StoredPoint[], next: number, done: boolean }
  }

  async versions (key: ShardKey, since: number, limit: number): Promise<{ instance: string, entries: Array<{ id: string, version: Version, seq: number }>, next: number, done: boolean }> {
    const pool = this.hostedPool(key)
    if (!Number.isInteger(since) || since < 0) throw new InvalidInputError('since must be an integer ≥ 0', { field: 'since' })
    if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new InvalidInputError('limit must be an integer 1..100000', { field: 'limit' })
    return await pool.run({ op: 'versions', config: this.config, key: { collection: key.collection, shard: key.shard }, since, limit }) as { instance: string, entries: Array<{ id: string, version: Version, seq: number }>, next: number, done: boolean }
  }

  async newer (key: ShardKey, entries: Array<{ id: string, version: Version }>): Promise<string[]> {
    const pool = this.hostedPool(key)
    if (entries.length === 0) return []
    return await pool.run({ op: 'newer', config: this.config, key: { collection: key.collection, shard: key.shard }, entries: entries.map((e, i) => ({ id: validateId(e.id, `entries[${i}].id`), version: validateVersion(e.version, `entries[${i}].version`) })) }) as string[]
  }

  async fetch (key: ShardKey, ids: string[]): Promise<StoredPoint[]> {
    const pool = this.hostedPool(key)
    const checked = ids.map((id, i) => validateId(id, `ids[${i}]`))
    if (checked.length === 0) return []
    return await pool.run({ op: 'fetch', config: this.config, key: { collection: key.collection, shard: key.shard }, ids: checked }) as StoredPoint[]
  }

  async digest (key: ShardKey): Promise<{ instance: string, seq: number, count: number, buckets: string[] }> {
    const pool = this.hostedPool(key)
    return await pool.run({ op: 'digest', config: this.config, key: { collection: key.collection, shard: key.shard } }) as { instance: string, seq: number, count: number, buckets: string[] }
  }

  async bucket (key: ShardKey, b: number): Promise<Array<{ id: string, version: Version }>> {
    const pool = this.hostedPool(key)
    if (!Number.isInteger(b) || b < 0 || b >= DIGEST_BUCKETS) throw new InvalidInputError(`bucket must be an integer 0..${DIGEST_BUCKETS - 1}`, { field: 'bucket' })
    return await pool.run({ op: 'bucket', config: this.config, key: { collection: key.collection, shard: key.shard }, bucket: b }) as Array<{ id: string, version: Version }>
  }

  async stats (key: ShardKey): Promise<ShardStats> {
    const pool = this.hostedPool(key)
    return await pool.run({ op: 'stats', config: this.config, key: { collection: key.collection, shard: key.shard } }) as ShardStats
  }

  async drop (key: ShardKey): Promise<void> {
    checkKey(key)
    const pool = this.pool(key)
    if (!this.specs.has(keyString(key))) return
    await pool.run({ op: 'drop', config: this.config, key: { collection: key.collection, shard: key.shard } })
    this.specs.delete(keyString(key))
  }

  async flush (): Promise<void> {
    if (this.stopping !== undefined) throw new DisposedError('the shard host')
    this.flushing ??= (async () => {
      try {
        const done = await Promise.all(this.pools.map(async (pool) => await pool.run({ op: 'flush', config: this.config }) as { flushed: number }))
        const flushed = done.reduce((n, d) => n + d.flushed, 0)
        if (flushed > 0) this.log.debug({ flushed }, 'shard indexes written')
      } finally {
        this.flushing = undefined
      }
    })()
    await this.flushing
  }
}

/** The node's shard host (a Service: `start` finds the replicas on disk, `stop` writes the indexes and ends the threads). */
export function shardHost (init: ShardHostInit): (components: ShardHostComponents) => ShardHost {
  return (components) => new HnswShardHost(init, components)
}
