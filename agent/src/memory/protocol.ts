/**
 * `/flexstack/<network>/memory/1`: a node's shard replicas, served to the mesh (and to the node
 * itself, without the wire). One msgpack request, one answer:
 *
 * | op | request | answer |
 * |---|---|---|
 * | `write` | per shard, its points (ids, float32 vectors packed in one byte string, metadata); their version | per shard, null (written) or why not |
 * | `remove` | per shard, its ids; the version of their deletion | per shard, null (removed) or why not |
 * | `get` | a shard's ids | the live points, packed |
 * | `search` | the shards to search, the query vector, k, ef, filter | per shard, `[id, distance, metadata][]` or null (not held here) |
 * | `sync` | per shard, a cursor (the seq seen, the replica's instance) and `light` | per shard, a page of changes since it (tombstones too), or null; `light`: their ids and versions only |
 * | `fetch` | a shard's ids | those points, tombstones too |
 * | `digest` | a shard | its 64 bucket hashes, or null |
 * | `stats` | shards | each one's live count, or null |
 *
 * Every field of a request is checked here (sizes, finite numbers, known ops) before it reaches
 * a shard: a bad message gets a typed error and touches nothing. A write or remove for a shard
 * this node's ring view does not place here is refused (`NotHostedError`): the sender's routing is
 * stale. A replica placed here that no write has reached yet is opened empty when first asked.
 */
import { DISTANCES, NotHostedError, type Distance, type Filter, type Metadata } from './types.ts'
import type { ShardHost, ShardKey, StoredPoint } from './shard-host.ts'
import { decode, encode, isPlainObject } from '../conductor/codec.ts'
import { errorMessage, InvalidInputError } from '../errors.ts'
import { MAX_DIMENSIONS, MAX_REPLICATION_FACTOR, MAX_SHARD_COUNT, validateFilter } from './validate.ts'
import { SYNC_PAGE_POINTS } from './constants.ts'

export const MEMORY_PROTOCOL = 'memory'

/** What a host needs to know of a collection to hold one of its shards. */
export interface WireCollection {
  uid: string
  dimensions: number
  distance: Distance
  shard_count: number
  replication_factor: number
  created_epoch: number
}

/** Points on the wire: ids, their vectors as one float32 byte string (live points only), metadata, versions. */
export interface WirePoints {
  ids: string[]
  /** float32 little-endian, `dimensions` per live point, in order */
  vectors: Uint8Array
  metadata: Metadata[]
}

export interface WireSyncItem extends WirePoints {
  instance: string
  /** the cursor after this page */
  next: number
  done: boolean
  /** false: the id's tombstone (no vector) */
  live: boolean[]
  ts: number[]
  writers: string[]
  seqs: number[]
}

/** A `light` page: what changed since the cursor, as ids and versions (the asker fetches only what it lacks). */
export interface WireVersionsItem {
  instance: string
  next: number
  done: boolean
  ids: string[]
  ts: number[]
  writers: string[]
  seqs: number[]
}

export type WireRequest =
  | { op: 'write', c: WireCollection, parts: Array<{ shard: number } & WirePoints>, ts: number, writer: string }
  | { op: 'remove', c: WireCollection, parts: Array<{ shard: number, ids: string[] }>, ts: number, writer: string }
  | { op: 'get', c: WireCollection, shard: number, ids: string[] }
  | { op: 'search', c: WireCollection, shards: number[], vector: Uint8Array, k: number, ef: number, filter: Filter | null }
  | { op: 'sync', items: Array<{ c: WireCollection, shard: number, since: number, instance: string | null, light: boolean }>, limit: number }
  | { op: 'fetch', c: WireCollection, shard: number, ids: string[] }
  | { op: 'digest', c: WireCollection, shard: number }
  | { op: 'stats', c: WireCollection, shards: number[] }

export type WireSearchAnswer = Array<Array<[string, number, Metadata]> | null>
export type WireSyncAnswer = Array<WireSyncItem | WireVersionsItem | null>

/** Largest page of changes in bytes of vectors, whatever the number of shards asked at once. */
const SYNC_PAGE_BYTES = 8 * 1_048_576
const MAX_IDS = 10_000

const bad = (field: string, why: string): InvalidInputError => new InvalidInputError(`memory protocol: ${field} ${why}`, { field })

const int = (v: unknown, field: string, min: number, max: number): number => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw bad(field, `must be an integer in ${min}..${max}`)
  return v
}

const str = (v: unknown, field: string, max: number): string => {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw bad(field, `must be a string of 1..${max} characters`)
  return v
}

const bytes = (v: unknown, field: string): Uint8Array => {
  if (!(v instanceof Uint8Array)) throw bad(field, 'must be a byte string')
  return v
}

const collection = (v: unknown): WireCollection => {
  if (!isPlainObject(v)) throw bad('c', 'must be a collection')
  const distance = v.distance as Distance
  if (!DISTANCES.includes(distance)) throw bad('c.distance', `must be one of ${DISTANCES.join(', ')}`)
  return {
    uid: str(v.uid, 'c.uid', 128),
    dimensions: int(v.dimensions, 'c.dimensions', 1, MAX_DIMENSIONS),
    distance,
    shard_count: int(v.shard_count, 'c.shard_count', 1, MAX_SHARD_COUNT),
    replication_factor: int(v.replication_factor, 'c.replication_factor', 1, MAX_REPLICATION_FACTOR),
    created_epoch: int(v.created_epoch, 'c.created_epoch', 0, Number.MAX_SAFE_INTEGER)
  }
}

const ids = (v: unknown, field = 'ids'): string[] => {
  if (!Array.isArray(v) || v.length > MAX_IDS) throw bad(field, `must be a list of at most ${MAX_IDS} ids`)
  return v.map((id, i) => str(id, `${field}[${i}]`, 256))
}

/** Float32 vectors from bytes: `count` of `dims`, every number finite. */
export function vectorsOf (b: Uint8Array, count: number, dims: number, field = 'vectors'): Float32Array[] {
  if (b.byteLength !== count * dims * 4) throw bad(field, `must hold ${count} vectors of ${dims} float32 (${count * dims * 4} bytes), not ${b.byteLength} bytes`)
  // a copy aligned for Float32Array (msgpack byte strings may start anywhere)
  const all = new Float32Array(new Uint8Array(b).buffer)
  for (let i = 0; i < all.length; i++) if (!Number.isFinite(all[i])) throw bad(field, 'must hold finite numbers only')
  return Array.from({ length: count }, (_, i) => all.subarray(i * dims, (i + 1) * dims))
}

const metadataList = (v: unknown, count: number): Metadata[] => {
  if (!Array.isArray(v) || v.length !== count) throw bad('metadata', `must be a list of ${count} objects`)
  return v.map((m, i) => {
    if (!isPlainObject(m)) throw bad(`metadata[${i}]`, 'must be an object')
    for (const [k, x] of Object.entries(m)) if (x !== null && typeof x !== 'string' && typeof x !== 'number' && typeof x !== 'boolean') throw bad(`metadata[${i}].${k}`, 'must be a string, number, boolean or null')
    return m as Metadata
  })
}

const writer = (v: unknown, field = 'writer'): string => {
  if (typeof v !== 'string' || !/^uhCAk[A-Za-z0-9_-]{48}$/.test(v)) throw bad(field, 'must be an agent key (uhCAk…)')
  return v
}

const shardIn = (v: unknown, c: WireCollection, field = 'shard'): number => int(v, field, 0, c.shard_count - 1)

/** A write's parts: one per shard, each shard once. */
const partsOf = (v: unknown, c: WireCollection): Array<Record<string, unknown> & { shard: number }> => {
  if (!Array.isArray(v) || v.length === 0 || v.length > c.shard_count) throw bad('parts', `must list 1..${c.shard_count} shards`)
  const seen = new Set<number>()
  return v.map((part: unknown, i) => {
    if (!isPlainObject(part)) throw bad(`parts[${i}]`, 'must be an object')
    const shard = shardIn(part.shard, c, `parts[${i}].shard`)
    if (seen.has(shard)) throw bad(`parts[${i}].shard`, 'is listed twice')
    seen.add(shard)
    return { ...part, shard }
  })
}

/** Parses and checks one request (throws `InvalidInputError` naming the field). */
export function parseRequest (raw: unknown): WireRequest {
  if (!isPlainObject(raw)) throw bad('request', 'must be an object')
  switch (raw.op) {
    case 'write': {
      const c = collection(raw.c)
      const parts = partsOf(raw.parts, c).map((part, i) => {
        const list = ids(part.ids, `parts[${i}].ids`)
        vectorsOf(bytes(part.vectors, `parts[${i}].vectors`), list.length, c.dimensions, `parts[${i}].vectors`)
        return { shard: part.shard, ids: list, vectors: part.vectors as Uint8Array, metadata: metadataList(part.metadata, list.length) }
      })
      return { op: 'write', c, parts, ts: int(raw.ts, 'ts', 0, Number.MAX_SAFE_INTEGER), writer: writer(raw.writer) }
    }
    case 'remove': {
      const c = collection(raw.c)
      const parts = partsOf(raw.parts, c).map((part, i) => ({ shard: part.shard, ids: ids(part.ids, `parts[${i}].ids`) }))
      return { op: 'remove', c, parts, ts: int(raw.ts, 'ts', 0, Number.MAX_SAFE_INTEGER), writer: writer(raw.writer) }
    }
    case 'get': {
      const c = collection(raw.c)
      return { op: 'get', c, shard: shardIn(raw.shard, c), ids: ids(raw.ids) }
    }
    case 'search': {
      const c = collection(raw.c)
      if (!Array.isArray(raw.shards) || raw.shards.length === 0 || raw.shards.length > c.shard_count) throw bad('shards', 'must list the shards to search')
      const k = int(raw.k, 'k', 1, 1000)
      vectorsOf(bytes(raw.vector, 'vector'), 1, c.dimensions, 'vector')
      return { op: 'search', c, shards: raw.shards.map((s, i) => shardIn(s, c, `shards[${i}]`)), vector: raw.vector as Uint8Array, k, ef: int(raw.ef, 'ef', k, 10_000), filter: raw.filter === null || raw.filter === undefined ? null : validateFilter(raw.filter, 'filter') }
    }
    case 'sync': {
      if (!Array.isArray(raw.items) || raw.items.length === 0 || raw.items.length > 4096) throw bad('items', 'must list 1..4096 shards')
      const items = raw.items.map((it: unknown, i) => {
        if (!isPlainObject(it)) throw bad(`items[${i}]`, 'must be an object')
        const c = collection(it.c)
        return { c, shard: shardIn(it.shard, c, `items[${i}].shard`), since: int(it.since, `items[${i}].since`, 0, Number.MAX_SAFE_INTEGER), instance: it.instance === null || it.instance === undefined ? null : str(it.instance, `items[${i}].instance`, 64), light: it.light === true }
      })
      return { op: 'sync', items, limit: int(raw.limit, 'limit', 1, SYNC_PAGE_POINTS) }
    }
    case 'fetch': {
      const c = collection(raw.c)
      return { op: 'fetch', c, shard: shardIn(raw.shard, c), ids: ids(raw.ids) }
    }
    case 'digest': {
      const c = collection(raw.c)
      return { op: 'digest', c, shard: shardIn(raw.shard, c) }
    }
    case 'stats': {
      const c = collection(raw.c)
      if (!Array.isArray(raw.shards) || raw.shards.length > MAX_SHARD_COUNT) throw bad('shards', 'must list shards')
      return { op: 'stats', c, shards: raw.shards.map((s, i) => shardIn(s, c, `shards[${i}]`)) }
    }
    default:
      throw bad('op', 'must be write, remove, get, search, sync, fetch, digest or stats')
  }
}

/** Points as the wire carries them. */
export function packPoints (points: Array<{ id: string, vector: Float32Array | number[], metadata?: Metadata }>, dims: number): WirePoints {
  const all = new Float32Array(points.length * dims)
  points.forEach((p, i) => { all.set(p.vector, i * dims) })
  return { ids: points.map(p => p.id), vectors: new Uint8Array(all.buffer), metadata: points.map(p => p.metadata ?? {}) }
}

const packStored = (instance: string, points: StoredPoint[], dims: number, next: number, done: boolean): WireSyncItem => {
  const live = points.filter(p => p.vector !== null)
  const all = new Float32Array(live.length * dims)
  live.forEach((p, i) => { all.set(p.vector!, i * dims) })
  return {
    instance,
    next,
    done,
    ids: points.map(p => p.id),
    live: points.map(p => p.vector !== null),
    vectors: new Uint8Array(all.buffer),
    metadata: points.map(p => p.metadata),
    ts: points.map(p => p.version.ts),
    writers: points.map(p => p.version.writer),
    seqs: points.map(p => p.seq)
  }
}

/** The ids and versions of a `light` page, checked. */
export function unpackVersions (page: WireVersionsItem): Array<{ id: string, version: { ts: number, writer: string }, seq: number }> {
  const list = ids(page.ids)
  const n = list.length
  if (!Array.isArray(page.ts) || page.ts.length !== n || !Array.isArray(page.writers) || page.writers.length !== n || !Array.isArray(page.seqs) || page.seqs.length !== n) throw bad('page', 'has lists of different lengths')
  return list.map((id, i) => ({ id, version: { ts: int(page.ts[i], `ts[${i}]`, 0, Number.MAX_SAFE_INTEGER), writer: writer(page.writers[i], `writers[${i}]`) }, seq: int(page.seqs[i], `seqs[${i}]`, 0, Number.MAX_SAFE_INTEGER) }))
}

/** Stored points (tombstones included) from a page or a `get` answer, checked. */
export function unpackPoints (page: WireSyncItem, dims: number): StoredPoint[] {
  const list = ids(page.ids)
  const n = list.length
  if (!Array.isArray(page.live) || page.live.length !== n || !Array.isArray(page.ts) || page.ts.length !== n || !Array.isArray(page.writers) || page.writers.length !== n || !Array.isArray(page.seqs) || page.seqs.length !== n) throw bad('page', 'has lists of different lengths')
  const liveCount = page.live.filter(x => x === true).length
  const vectors = vectorsOf(bytes(page.vectors, 'vectors'), liveCount, dims)
  const metadata = metadataList(page.metadata, n)
  let v = 0
  return list.map((id, i) => ({
    id,
    vector: page.live[i] === true ? vectors[v++]! : null,
    metadata: metadata[i]!,
    version: { ts: int(page.ts[i], `ts[${i}]`, 0, Number.MAX_SAFE_INTEGER), writer: writer(page.writers[i], `writers[${i}]`) },
    seq: int(page.seqs[i], `seqs[${i}]`, 0, Number.MAX_SAFE_INTEGER)
  }))
}

export interface MemoryProtocolComponents {
  host: ShardHost
  /** may this node hold the shard (its ring view places it here)? */
  accepts: (c: WireCollection, shard: number) => Promise<boolean>
}

/** The handler of the memory protocol: `remote` for the mesh, `local` for this node's own requests. */
export function memoryProtocol (c: MemoryProtocolComponents): { remote: (request: Uint8Array, from: string) => Promise<Uint8Array>, local: (m: WireRequest) => Promise<unknown> } {
  const keyOf = (w: WireCollection, shard: number): ShardKey => ({ collection: w.uid, shard })

  /** The replica, opened (empty) when the ring places it here and no write has reached it yet. */
  const held = async (w: WireCollection, shard: number): Promise<ShardKey> => {
    const key = keyOf(w, shard)
    if (c.host.has(key)) return key
    if (!(await c.accepts(w, shard))) throw new NotHostedError(w.uid, shard)
    await c.host.open({ ...key, dimensions: w.dimensions, distance: w.distance })
    return key
  }

  /** null when `fn` succeeds, else its error as one line: each shard of a write succeeds or fails alone */
  const refusal = async (fn: () => Promise<void>): Promise<string | null> => {
    try {
      await fn()
      return null
    } catch (err) {
      return `${err instanceof Error ? err.name : 'Error'}: ${errorMessage(err)}`
    }
  }

  const handle = async (m: WireRequest): Promise<unknown> => {
    switch (m.op) {
      case 'write':
        return await Promise.all(m.parts.map(async part => await refusal(async () => {
          const key = await held(m.c, part.shard)
          const vectors = vectorsOf(part.vectors, part.ids.length, m.c.dimensions)
          await c.host.upsert(key, part.ids.map((id, i) => ({ id, vector: vectors[i]!, metadata: part.metadata[i]!, version: { ts: m.ts, writer: m.writer } })))
        })))
      case 'remove':
        return await Promise.all(m.parts.map(async part => await refusal(async () => {
          await c.host.remove(await held(m.c, part.shard), part.ids, { ts: m.ts, writer: m.writer })
        })))
      case 'get': {
        const key = await held(m.c, m.shard)
        const points = await c.host.get(key, m.ids)
        return packStored('', points, m.c.dimensions, 0, true)
      }
      case 'search': {
        const query = vectorsOf(m.vector, 1, m.c.dimensions, 'vector')[0]!
        // the shards held here (a placed one no write reached yet is opened), searched in one task per worker thread
        const keys = await Promise.all(m.shards.map(async shard => await held(m.c, shard).catch(() => null)))
        const asked = keys.filter((k): k is ShardKey => k !== null)
        const hits = await c.host.searchMany(asked, query, { k: m.k, ef: m.ef, filter: m.filter ?? undefined })
        let next = 0
        return keys.map(k => k === null ? null : hits[next++]!.map(h => [h.id, h.distance, h.metadata])) satisfies WireSearchAnswer
      }
      case 'sync': {
        const out: WireSyncAnswer = []
        for (const it of m.items) {
          const key = keyOf(it.c, it.shard)
          if (!c.host.has(key)) { out.push(null); continue }
          if (it.light) {
            const page = await c.host.versions(key, it.since, m.limit)
            out.push({ instance: page.instance, next: page.next, done: page.done, ids: page.entries.map(e => e.id), ts: page.entries.map(e => e.version.ts), writers: page.entries.map(e => e.version.writer), seqs: page.entries.map(e => e.seq) })
            continue
          }
          // the page shares a byte budget across the shards asked
          const limit = Math.max(1, Math.min(m.limit, Math.floor(SYNC_PAGE_BYTES / m.items.length / (it.c.dimensions * 4))))
          const page = await c.host.changes(key, it.since, limit)
          out.push(packStored(page.instance, page.points, it.c.dimensions, page.next, page.done))
        }
        return out
      }
      case 'fetch': {
        const key = keyOf(m.c, m.shard)
        if (!c.host.has(key)) throw new NotHostedError(m.c.uid, m.shard)
        const points = await c.host.fetch(key, m.ids)
        return packStored('', points, m.c.dimensions, 0, true)
      }
      case 'digest': {
        const key = keyOf(m.c, m.shard)
        return c.host.has(key) ? await c.host.digest(key) : null
      }
      case 'stats': {
        const out: Array<number | null> = []
        for (const shard of m.shards) {
          const key = keyOf(m.c, shard)
          out.push(c.host.has(key) ? (await c.host.stats(key)).count : null)
        }
        return out
      }
    }
  }

  return {
    remote: async (request) => encode(await handle(parseRequest(decode(request)))),
    local: handle
  }
}
