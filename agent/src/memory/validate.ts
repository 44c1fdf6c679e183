/**
 * The boundary checks of the memory capability, shared by every implementation of `VectorMemory`
 * and the shard host: a collection's config, a batch of points, ids, a query, a filter. Each
 * throws the typed errors of `types.ts` with the field named (`points[3].vector[7]`): a malformed
 * input is `InvalidVectorError`, a batch over the limit `BatchTooLargeError`. And the one
 * conversion of hnswlib's distances into the documented `score`, with the order hits merge in.
 *
 * ```ts
 * const config = validateCollectionConfig(body)          // defaults applied
 * const points = validatePoints(body.points, config.dimensions)
 * const query = validateQuery(body, config.dimensions)   // { k, ef, vector | text, filter? }
 * const hit = { id, score: scoreOf('cosine', distance), metadata }
 * hits.sort(compareHits('cosine'))
 * ```
 */
import { DEFAULT_REPLICATION_FACTOR, DEFAULT_SHARD_COUNT } from './constants.ts'
import { BatchTooLargeError, DISTANCES, InvalidVectorError, type CollectionConfig, type Distance, type Filter, type Metadata, type SearchHit } from './types.ts'

/** Points (or ids) in one request. */
export const MAX_BATCH = 1000
/** A point id's length, characters. */
export const MAX_ID_LENGTH = 256
/** A point's metadata, as JSON, bytes. */
export const MAX_METADATA_BYTES = 8 * 1024
/** A vector's dimensions. */
export const MAX_DIMENSIONS = 4096
/** Shards of a collection. */
export const MAX_SHARD_COUNT = 256
/** Copies of each shard. */
export const MAX_REPLICATION_FACTOR = 5
/** Nearest neighbours a query may ask for. */
export const MAX_K = 1000
/** The HNSW search breadth a query may ask for. */
export const MAX_EF = 10_000
/** A query's `ef` is at least this when it names none (and at least k). */
export const MIN_DEFAULT_EF = 64
/** Keys of a filter; values of one `in`. */
export const MAX_FILTER_KEYS = 64
export const MAX_FILTER_VALUES = 1000
/** A collection's name. */
export const COLLECTION_NAME = /^[A-Za-z0-9_-]{1,64}$/

/** A collection's config with its defaults. */
export type ValidCollectionConfig = Required<Omit<CollectionConfig, 'embedding_model'>> & { embedding_model?: string }

/** A point that passed the checks: a vector of the right length, or text to embed. */
export interface ValidPoint { id: string, vector?: Float32Array, text?: string, metadata: Metadata }

/** A query that passed the checks: `ef` defaulted. */
export interface ValidQuery { vector?: Float32Array, text?: string, k: number, ef: number, filter?: Filter }

const bad = (field: string, message: string): InvalidVectorError => new InvalidVectorError(field, message)
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v)
const isScalar = (v: unknown): v is string | number | boolean | null =>
  v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))
const intIn = (v: unknown, min: number, max: number): v is number => Number.isInteger(v) && (v as number) >= min && (v as number) <= max

/** A collection's name: 1..64 of letters, digits, `_` and `-`. */
export function validateCollectionName (name: unknown, field = 'name'): string {
  if (typeof name !== 'string' || !COLLECTION_NAME.test(name)) throw bad(field, 'must be 1..64 letters, digits, _ or -')
  return name
}

/** A collection's config, with `shard_count` and `replication_factor` defaulted. */
export function validateCollectionConfig (config: unknown): ValidCollectionConfig {
  if (!isObject(config)) throw bad('config', 'must be an object')
  const name = validateCollectionName(config.name)
  if (!intIn(config.dimensions, 1, MAX_DIMENSIONS)) throw bad('dimensions', `must be an integer 1..${MAX_DIMENSIONS}`)
  if (!DISTANCES.includes(config.distance as Distance)) throw bad('distance', `must be one of ${DISTANCES.join(', ')}`)
  const shardCount = config.shard_count ?? DEFAULT_SHARD_COUNT
  if (!intIn(shardCount, 1, MAX_SHARD_COUNT)) throw bad('shard_count', `must be an integer 1..${MAX_SHARD_COUNT}`)
  const rf = config.replication_factor ?? DEFAULT_REPLICATION_FACTOR
  if (!intIn(rf, 1, MAX_REPLICATION_FACTOR)) throw bad('replication_factor', `must be an integer 1..${MAX_REPLICATION_FACTOR}`)
  const model = config.embedding_model
  if (model !== undefined && (typeof model !== 'string' || model.length === 0 || model.length > 256)) throw bad('embedding_model', 'must be a model name of 1..256 characters')
  return { name, dimensions: config.dimensions, distance: config.distance as Distance, shard_count: shardCount, replication_factor: rf, ...(model !== undefined ? { embedding_model: model } : {}) }
}

/** Refuse a batch over `MAX_BATCH` points or ids. */
export function checkBatchSize (size: number): void {
  if (size > MAX_BATCH) throw new BatchTooLargeError(size, MAX_BATCH)
}

/** A point id: a string of 1..256 characters. */
export function validateId (id: unknown, field: string): string {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID_LENGTH) throw bad(field, `must be a string of 1..${MAX_ID_LENGTH} characters`)
  return id
}

/** A list of ids (at most `MAX_BATCH`). */
export function validateIds (ids: unknown, field = 'ids'): string[] {
  if (!Array.isArray(ids)) throw bad(field, 'must be an array of ids')
  checkBatchSize(ids.length)
  return ids.map((id, i) => validateId(id, `${field}[${i}]`))
}

/**
 * A vector of `dimensions` finite numbers (finite as 32-bit floats too), as a `Float32Array`
 * (the one given, when it is one).
 */
export function validateVector (vector: unknown, dimensions: number, field: string): Float32Array {
  if (!Array.isArray(vector) && !(vector instanceof Float32Array)) throw bad(field, 'must be an array of numbers')
  if (vector.length !== dimensions) throw bad(field, `has ${vector.length} dimensions; the collection's vectors have ${dimensions}`)
  const out = vector instanceof Float32Array ? vector : new Float32Array(dimensions)
  for (let i = 0; i < dimensions; i++) {
    const x: unknown = vector[i]
    if (typeof x !== 'number' || !Number.isFinite(x)) throw bad(`${field}[${i}]`, `must be a finite number, not ${String(x)}`)
    if (out !== vector) out[i] = x
    if (!Number.isFinite(out[i])) throw bad(`${field}[${i}]`, `${x} is out of the range of a 32-bit float`)
  }
  return out
}

/** Metadata: a flat object of strings, finite numbers, booleans and nulls, at most 8 KiB as JSON. */
export function validateMetadata (metadata: unknown, field: string): Metadata {
  if (metadata === undefined) return {}
  if (!isObject(metadata)) throw bad(field, 'must be an object of flat values')
  for (const [key, value] of Object.entries(metadata)) {
    if (!isScalar(value)) throw bad(`${field}.${key}`, 'must be a string, a finite number, a boolean or null')
  }
  const bytes = Buffer.byteLength(JSON.stringify(metadata))
  if (bytes > MAX_METADATA_BYTES) throw bad(field, `is ${bytes} bytes as JSON; at most ${MAX_METADATA_BYTES}`)
  return metadata as Metadata
}

/** A last-writer-wins version: a finite `ts` ≥ 0 and a non-empty `writer`. */
export function validateVersion (version: unknown, field: string): { ts: number, writer: string } {
  if (!isObject(version)) throw bad(field, 'must be { ts, writer }')
  if (typeof version.ts !== 'number' || !Number.isFinite(version.ts) || version.ts < 0) throw bad(`${field}.ts`, 'must be a finite number ≥ 0')
  if (typeof version.writer !== 'string' || version.writer.length === 0 || version.writer.length > 256) throw bad(`${field}.writer`, 'must be a string of 1..256 characters')
  return { ts: version.ts, writer: version.writer }
}

/**
 * A batch of points for a collection of `dimensions`: at most `MAX_BATCH` (`BatchTooLargeError`),
 * unique ids, each with a vector or text (not both). The whole batch is checked before anything
 * is written.
 */
export function validatePoints (points: unknown, dimensions: number): ValidPoint[] {
  if (!Array.isArray(points)) throw bad('points', 'must be an array of points')
  checkBatchSize(points.length)
  const seen = new Map<string, number>()
  return points.map((p: unknown, i): ValidPoint => {
    const at = `points[${i}]`
    if (!isObject(p)) throw bad(at, 'must be an object { id, vector | text, metadata? }')
    const id = validateId(p.id, `${at}.id`)
    const first = seen.get(id)
    if (first !== undefined) throw bad(`${at}.id`, `duplicate id ${JSON.stringify(id)} (also points[${first}])`)
    seen.set(id, i)
    const metadata = validateMetadata(p.metadata, `${at}.metadata`)
    if (p.vector !== undefined && p.text !== undefined) throw bad(at, 'give a vector or text, not both')
    if (p.vector !== undefined) return { id, vector: validateVector(p.vector, dimensions, `${at}.vector`), metadata }
    if (p.text !== undefined) {
      if (typeof p.text !== 'string' || p.text.length === 0) throw bad(`${at}.text`, 'must be a non-empty string')
      return { id, text: p.text, metadata }
    }
    throw bad(at, 'needs a vector or text')
  })
}

/** A filter: keys with a flat value to equal, or `{ in: [values] }`. */
export function validateFilter (filter: unknown, field = 'filter'): Filter {
  if (!isObject(filter)) throw bad(field, 'must be an object of key: value or key: { in: [values] }')
  const entries = Object.entries(filter)
  if (entries.length > MAX_FILTER_KEYS) throw bad(field, `has ${entries.length} keys; at most ${MAX_FILTER_KEYS}`)
  for (const [key, cond] of entries) {
    if (isScalar(cond)) continue
    if (!isObject(cond) || Object.keys(cond).length !== 1 || !Array.isArray(cond.in)) throw bad(`${field}.${key}`, 'must be a string, a finite number, a boolean, null or { in: [values] }')
    if (cond.in.length === 0 || cond.in.length > MAX_FILTER_VALUES) throw bad(`${field}.${key}.in`, `must list 1..${MAX_FILTER_VALUES} values`)
    cond.in.forEach((v: unknown, i) => {
      if (!isScalar(v)) throw bad(`${field}.${key}.in[${i}]`, 'must be a string, a finite number, a boolean or null')
    })
  }
  return filter as Filter
}

/** `k` 1..1000 and `ef` k..10000 (@default max(k, 64)). */
export function validateSearchBounds (k: unknown, ef?: unknown): { k: number, ef: number } {
  if (!intIn(k, 1, MAX_K)) throw bad('k', `must be an integer 1..${MAX_K}`)
  if (ef === undefined) return { k, ef: Math.max(k, MIN_DEFAULT_EF) }
  if (!intIn(ef, k, MAX_EF)) throw bad('ef', `must be an integer k..${MAX_EF} (k is ${k})`)
  return { k, ef }
}

/** A query for a collection of `dimensions`: a vector or text (not both), k, ef, an optional filter. */
export function validateQuery (query: unknown, dimensions: number): ValidQuery {
  if (!isObject(query)) throw bad('query', 'must be an object { vector | text, k, ef?, filter? }')
  const { k, ef } = validateSearchBounds(query.k, query.ef)
  const filter = query.filter === undefined ? undefined : validateFilter(query.filter)
  const rest = filter !== undefined ? { k, ef, filter } : { k, ef }
  if (query.vector !== undefined && query.text !== undefined) throw bad('query', 'give a vector or text, not both')
  if (query.vector !== undefined) return { vector: validateVector(query.vector, dimensions, 'vector'), ...rest }
  if (query.text !== undefined) {
    if (typeof query.text !== 'string' || query.text.length === 0) throw bad('text', 'must be a non-empty string')
    return { text: query.text, ...rest }
  }
  throw bad('query', 'needs a vector or text')
}

/**
 * The documented `score` of an hnswlib distance: cosine: similarity, 1 − d; ip: the inner
 * product, 1 − d (hnswlib's ip distance is 1 − dot); l2: the Euclidean distance, √d (hnswlib's is
 * squared).
 */
export function scoreOf (distance: Distance, d: number): number {
  if (distance === 'l2') return Math.sqrt(Math.max(0, d))
  return 1 - d
}

/** The order hits of one collection merge in: best first (l2: lowest score; cosine, ip: highest), then by id. */
export function compareHits (distance: Distance): (a: SearchHit, b: SearchHit) => number {
  const sign = distance === 'l2' ? 1 : -1
  return (a, b) => (a.score !== b.score ? sign * (a.score - b.score) : a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}
