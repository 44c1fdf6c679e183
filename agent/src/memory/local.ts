/**
 * A node's own vector memory: `VectorMemory` with every shard of every collection on one
 * `ShardHost`, one replica each, no ring and no mesh. The single-node implementation the
 * compliance suite (`test/compliance.ts`) runs against, and the one the prompt cache keeps its
 * entries in.
 *
 * Collections live in a small registry, `<dir>/collections.json` (written tmp + rename), with the
 * memory's writer id; points go to shard `shardOfId(id, shard_count)` (the ring's) of the collection's uid
 * (`name.created_at` in base 36, so a re-created name starts with new replicas). Each write gets
 * one version `{ ts, writer }`, ts from `Date.now()` but always above the last one given, so two
 * writes in the same millisecond still order. `text` is embedded by the `embed` component with
 * the collection's `embedding_model`.
 *
 * ```ts
 * const memory = localVectorMemory({ dir: '/var/lib/flexnode/memory' })({ logger, embed })
 * await memory.start()
 * await memory.createCollection({ name: 'docs', dimensions: 384, distance: 'cosine', embedding_model: 'bge-small' })
 * await memory.upsert('docs', [{ id: 'a', text: 'the cat sat on the mat', metadata: { lang: 'en' } }])
 * const { results } = await memory.search('docs', { text: 'a cat', k: 5, filter: { lang: 'en' } })
 * await memory.stop()
 * ```
 */
import { shardOfId } from '../../../scheduler/index.ts'
import { collectionUid } from '../../../zomes-ts/memory_shards/types.ts'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { AbortError, DisposedError, FlexnodeError } from '../errors.ts'
import type { ComponentLogger } from '../logger.ts'
import { NotStartedError, type Service, type StartOptions } from '../service.ts'
import { shardHost, type ShardHost, type ShardHostInit, type ShardKey, type Version } from './shard-host.ts'
import {
  CollectionExistsError, InvalidVectorError, NoEmbeddingModelError, UnknownCollectionError,
  type Collection, type CollectionConfig, type CollectionInfo, type Point, type PointInput, type SearchHit,
  type SearchQuery, type SearchResult, type VectorMemory, type WriteConsistency, type WriteResult
} from './types.ts'
import { compareHits, scoreOf, validateCollectionConfig, validateIds, validatePoints, validateQuery, validateVector } from './validate.ts'

/** The registry file of a local memory, in its dir. */
export const LOCAL_REGISTRY_FILE = 'collections.json'
const WRITE_CONSISTENCIES: readonly WriteConsistency[] = ['one', 'quorum', 'all']

/** Embeds texts with a model: one vector per text, in order (the node's `/v1/embeddings`). */
export type Embed = (model: string, texts: string[]) => Promise<number[][]>

export interface LocalVectorMemoryInit {
  /** the registry's folder (and the shards', in `<dir>/shards`, when the memory runs its own host) */
  dir: string
  /** the writer of this memory's versions, and the `node_id` `describeCollection` names. @default a random id, kept in the registry */
  writer?: string
  /** options of the memory's own shard host. @default the shard host's */
  shards?: Omit<ShardHostInit, 'dir'>
}

export interface LocalVectorMemoryComponents {
  logger: ComponentLogger
  /** a started shard host to keep the collections on. @default the memory's own, started and stopped with it */
  shards?: ShardHost
  /** embeds `text` of points and queries. @default none: `text` is refused with `NoEmbedderError` */
  embed?: Embed
}

/** `text` was given for a collection with an `embedding_model`, but this memory was given no `embed` function. (503) */
export class NoEmbedderError extends FlexnodeError {
  static override readonly name = 'NoEmbedderError'
  readonly model: string
  constructor (model: string) {
    super(`this memory has no embedder for ${JSON.stringify(model)}: give vectors, not text`)
    this.model = model
  }
}

interface Registry { writer: string, collections: Collection[] }

export { collectionUid }

function checkSignal (signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new AbortError()
}

function checkConsistency (options: { write_consistency?: WriteConsistency } | undefined): void {
  const wc = options?.write_consistency
  if (wc !== undefined && !WRITE_CONSISTENCIES.includes(wc)) throw new InvalidVectorError('write_consistency', `must be one of ${WRITE_CONSISTENCIES.join(', ')}`)
}

/** Items grouped by the shard of their id, each with its index in the input. */
function byShard<T> (items: T[], idOf: (item: T) => string, shardCount: number): Map<number, Array<{ item: T, at: number }>> {
  const out = new Map<number, Array<{ item: T, at: number }>>()
  items.forEach((item, at) => {
    const s = shardOfId(idOf(item), shardCount)
    let list = out.get(s)
    if (list === undefined) out.set(s, list = [])
    list.push({ item, at })
  })
  return out
}

export class LocalVectorMemory implements VectorMemory, Service {
  private readonly init: LocalVectorMemoryInit
  private readonly log: ComponentLogger
  private readonly embedder: Embed | undefined
  private readonly ownsHost: boolean
  private readonly host: ShardHost
  private readonly collections = new Map<string, Collection>()
  private writer = ''
  private lastTs = 0
  /** registry changes, one at a time */
  private queue: Promise<unknown> = Promise.resolve()
  private starting: Promise<void> | undefined
  private stopping: Promise<void> | undefined
  private started = false

  constructor (init: LocalVectorMemoryInit, components: LocalVectorMemoryComponents) {
    this.init = init
    this.log = components.logger.forComponent('flexnode:memory:local')
    this.embedder = components.embed
    this.ownsHost = components.shards === undefined
    this.host = components.shards ?? shardHost({ ...init.shards, dir: join(init.dir, 'shards') })({ logger: components.logger })
  }

  async start (options?: StartOptions): Promise<void> {
    if (this.stopping !== undefined) throw new DisposedError('the local vector memory')
    this.starting ??= (async () => {
      await mkdir(this.init.dir, { recursive: true })
      let registry: Registry | undefined
      try {
        registry = JSON.parse(await readFile(this.registryPath(), 'utf8')) as Registry
      } catch (err: unknown) {
        if ((err as { code?: string }).code !== 'ENOENT') throw err
      }
      this.writer = this.init.writer ?? registry?.writer ?? `local:${randomBytes(8).toString('hex')}`
      for (const c of registry?.collections ?? []) {
        this.collections.set(c.name, c)
        this.lastTs = Math.max(this.lastTs, c.created_at)
      }
      if (registry === undefined) await this.save()
      if (this.ownsHost) {
        await this.host.start(options)
        // replicas of collections deleted while a drop was under way
        const uids = new Set([...this.collections.values()].map(collectionUid))
        for (const spec of this.host.hosted()) if (!uids.has(spec.collection)) await this.host.drop(spec)
      }
      this.started = true
    })()
    await this.starting
  }

  async stop (): Promise<void> {
    this.stopping ??= (async () => {
      await this.starting?.catch(() => undefined)
      await this.queue.catch(() => undefined)
      if (this.ownsHost) await this.host.stop()
    })()
    await this.stopping
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.stop() }

  private registryPath (): string { return join(this.init.dir, LOCAL_REGISTRY_FILE) }

  private async save (): Promise<void> {
    const registry: Registry = { writer: this.writer, collections: [...this.collections.values()] }
    const tmp = `${this.registryPath()}.tmp`
    await writeFile(tmp, JSON.stringify(registry, null, 2))
    await rename(tmp, this.registryPath())
  }

  /** Run a registry change after the ones before it. */
  private async serial<T> (work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work)
    this.queue = run.catch(() => undefined)
    return await run
  }

  private ready (): void {
    if (this.stopping !== undefined) throw new DisposedError('the local vector memory')
    if (!this.started) throw new NotStartedError('the local vector memory')
  }

  private collection (name: string): Collection {
    this.ready()
    const c = typeof name === 'string' ? this.collections.get(name) : undefined
    if (c === undefined) throw new UnknownCollectionError(String(name))
    return c
  }

  private key (c: Collection, shard: number): ShardKey {
    return { collection: collectionUid(c), shard }
  }

  /** Now, or just after the last time given out. */
  private now (): number {
    this.lastTs = Math.max(Date.now(), this.lastTs + 1)
    return this.lastTs
  }

  async createCollection (config: CollectionConfig): Promise<Collection> {
    this.ready()
    const valid = validateCollectionConfig(config)
    return await this.serial(async () => {
      if (this.collections.has(valid.name)) throw new CollectionExistsError(valid.name)
      const c: Collection = { ...valid, created_epoch: 0, created_at: this.now() }
      const shards = Array.from({ length: c.shard_count }, (_, s) => this.key(c, s))
      try {
        await Promise.all(shards.map(async (key) => await this.host.open({ ...key, dimensions: c.dimensions, distance: c.distance })))
        this.collections.set(c.name, c)
        await this.save()
      } catch (err) {
        this.collections.delete(c.name)
        await Promise.all(shards.map(async (key) => { await this.host.drop(key).catch(() => undefined) }))
        throw err
      }
      this.log.info({ collection: c.name, dimensions: c.dimensions, distance: c.distance, shards: c.shard_count }, 'collection created')
      return { ...c }
    })
  }

  async listCollections (): Promise<Collection[]> {
    this.ready()
    return [...this.collections.values()].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0).map(c => ({ ...c }))
  }

  async describeCollection (name: string): Promise<CollectionInfo> {
    const c = this.collection(name)
    const stats = await Promise.all(Array.from({ length: c.shard_count }, async (_, s) => await this.host.stats(this.key(c, s))))
    const underReplicated = c.replication_factor > 1
    return {
      ...c,
      epoch: 0,
      shards: stats.map((st, shard) => ({ shard, replicas: [{ node_id: this.writer, state: 'serving', live: true, count: st.count }], under_replicated: underReplicated })),
      count: stats.reduce((n, st) => n + st.count, 0),
      under_replicated: underReplicated
    }
  }

  async deleteCollection (name: string): Promise<void> {
    this.collection(name)
    await this.serial(async () => {
      const c = this.collection(name)
      this.collections.delete(name)
      await this.save()
      for (let s = 0; s < c.shard_count; s++) await this.host.drop(this.key(c, s))
      this.log.info({ collection: name }, 'collection deleted')
    })
  }

  /** One vector per text, by the collection's model, checked to fit the collection. */
  private async embed (c: Collection, texts: string[], field: (i: number) => string): Promise<Float32Array[]> {
    if (c.embedding_model === undefined) throw new NoEmbeddingModelError(c.name)
    if (this.embedder === undefined) throw new NoEmbedderError(c.embedding_model)
    const vectors = await this.embedder(c.embedding_model, texts)
    if (!Array.isArray(vectors) || vectors.length !== texts.length) throw new InvalidVectorError(field(0), `the embedding model gave ${Array.isArray(vectors) ? vectors.length : 'no'} vectors for ${texts.length} texts`)
    return vectors.map((v, i) => Float32Array.from(validateVector(v, c.dimensions, field(i))))
  }

  async upsert (collection: string, points: PointInput[], options?: { write_consistency?: WriteConsistency, signal?: AbortSignal }): Promise<WriteResult> {
    checkSignal(options?.signal)
    const c = this.collection(collection)
    checkConsistency(options)
    const valid = validatePoints(points, c.dimensions)
    const texts = valid.flatMap((p, i) => p.text !== undefined ? [i] : [])
    if (texts.length > 0) {
      const embedded = await this.embed(c, texts.map(i => valid[i]!.text!), (n) => `points[${texts[n]!}].text`)
      texts.forEach((i, n) => { valid[i] = { ...valid[i]!, vector: embedded[n]! } })
    }
    checkSignal(options?.signal)
    const version: Version = { ts: this.now(), writer: this.writer }
    let written = 0
    await Promise.all([...byShard(valid, p => p.id, c.shard_count)].map(async ([shard, list]) => {
      const r = await this.host.upsert(this.key(c, shard), list.map(({ item }) => ({ id: item.id, vector: item.vector!, metadata: item.metadata, version })))
      written += r.applied
    }))
    return { written, acknowledged: 1 }
  }

  async delete (collection: string, ids: string[], options?: { write_consistency?: WriteConsistency, signal?: AbortSignal }): Promise<WriteResult> {
    checkSignal(options?.signal)
    const c = this.collection(collection)
    checkConsistency(options)
    const valid = validateIds(ids)
    const version: Version = { ts: this.now(), writer: this.writer }
    let written = 0
    await Promise.all([...byShard(valid, id => id, c.shard_count)].map(async ([shard, list]) => {
      const r = await this.host.remove(this.key(c, shard), list.map(({ item }) => item), version)
      written += r.applied
    }))
    return { written, acknowledged: 1 }
  }

  async get (collection: string, ids: string[], options?: { signal?: AbortSignal }): Promise<Point[]> {
    checkSignal(options?.signal)
    const c = this.collection(collection)
    const valid = validateIds(ids)
    const found = new Map<string, Point>()
    await Promise.all([...byShard(valid, id => id, c.shard_count)].map(async ([shard, list]) => {
      for (const p of await this.host.get(this.key(c, shard), list.map(({ item }) => item))) {
        found.set(p.id, { id: p.id, vector: Array.from(p.vector ?? []), metadata: p.metadata })
      }
    }))
    return valid.flatMap(id => { const p = found.get(id); return p === undefined ? [] : [p] })
  }

  async search (collection: string, query: SearchQuery, options?: { signal?: AbortSignal }): Promise<SearchResult> {
    checkSignal(options?.signal)
    const c = this.collection(collection)
    const q = validateQuery(query, c.dimensions)
    const vector = q.vector ?? (await this.embed(c, [q.text!], () => 'text'))[0]!
    checkSignal(options?.signal)
    const filter = q.filter !== undefined ? { filter: q.filter } : {}
    const found = await Promise.all(Array.from({ length: c.shard_count }, async (_, s) => await this.host.search(this.key(c, s), vector, { k: q.k, ef: q.ef, ...filter })))
    const hits: SearchHit[] = found.flat().map(h => ({ id: h.id, score: scoreOf(c.distance, h.distance), metadata: h.metadata }))
    return { results: hits.sort(compareHits(c.distance)).slice(0, q.k), partial: false, shards_answered: c.shard_count, shards_total: c.shard_count }
  }
}

/** A node's own vector memory (a Service: `start` loads the registry and, when it runs its own, starts the shard host). */
export function localVectorMemory (init: LocalVectorMemoryInit): (components: LocalVectorMemoryComponents) => LocalVectorMemory {
  return (components) => new LocalVectorMemory(init, components)
}
