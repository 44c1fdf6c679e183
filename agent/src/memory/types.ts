/**
 * The `memory` capability's interfaces and typed errors: collections of vectors, sharded over the
 * mesh's shard hosts on a consistent-hash ring (`scheduler/src/ring.ts`), two copies of each
 * shard, searched by any node (`zomes-ts/memory_shards/types.ts` has the entries).
 */
import { FlexnodeError } from '../errors.ts'

export type Distance = 'cosine' | 'l2' | 'ip'
export const DISTANCES: readonly Distance[] = ['cosine', 'l2', 'ip']

/** A write waits for this many replicas of its shard: one, a majority, or all of them. */
export type WriteConsistency = 'one' | 'quorum' | 'all'

/** Metadata of a point: flat JSON values (filters match on its keys). */
export type Metadata = Record<string, string | number | boolean | null>

/**
 * A metadata filter: every key must match (AND). A value matches by equality; `{ in: [...] }`
 * matches any of the listed values. Applied inside the shard's HNSW search, not after it.
 *
 * ```json
 * { "lang": "en", "topic": { "in": ["a", "b"] } }
 * ```
 */
export type Filter = Record<string, string | number | boolean | null | { in: Array<string | number | boolean | null> }>

export interface CollectionConfig {
  name: string
  dimensions: number
  distance: Distance
  /** @default 16 */
  shard_count?: number
  /** @default 2 */
  replication_factor?: number
  /** the model that embeds `text` for this collection (through `/v1/embeddings`). @default none: vectors only */
  embedding_model?: string
}

export interface Collection extends Required<Omit<CollectionConfig, 'embedding_model'>> {
  embedding_model?: string
  /** the ring epoch the collection was created in: its first hosts serve it empty */
  created_epoch: number
  /** ms since the Unix epoch */
  created_at: number
}

export interface PointInput {
  id: string
  vector?: number[] | Float32Array
  /** embedded with the collection's `embedding_model` when no vector is given */
  text?: string
  metadata?: Metadata
}

export interface Point {
  id: string
  vector: number[]
  metadata: Metadata
}

export interface SearchQuery {
  vector?: number[] | Float32Array
  text?: string
  /** 1..1000 */
  k: number
  /** the HNSW search breadth, k..10000. @default max(k, 64) */
  ef?: number
  filter?: Filter
}

export interface SearchHit {
  id: string
  /** cosine: similarity (1 best); ip: inner product (higher best); l2: Euclidean distance (0 best) */
  score: number
  metadata: Metadata
}

export interface SearchResult {
  results: SearchHit[]
  /** some shard had no replica that answered: `results` lacks its points */
  partial: boolean
  shards_answered: number
  shards_total: number
}

export interface WriteResult {
  /** points written (inserted or updated) */
  written: number
  /** per shard: replicas that acknowledged / were asked */
  acknowledged: number
}

export interface ReplicaInfo {
  node_id: string
  /** serving: searched; copying: receives writes, catching up before it serves; retiring: leaving after a move */
  state: 'serving' | 'copying' | 'retiring'
  /** the node's presence is live */
  live: boolean
  /** points held, when the host answered */
  count?: number
}

export interface ShardInfo {
  shard: number
  replicas: ReplicaInfo[]
  /** fewer replicas than the replication factor could be placed (too few nodes) */
  under_replicated: boolean
}

export interface CollectionInfo extends Collection {
  epoch: number
  shards: ShardInfo[]
  /** live points (sum over shards, counted once per shard) */
  count: number
  under_replicated: boolean
}

/**
 * The vector memory: one interface, two implementations (one node's, and the mesh's), one
 * compliance suite (`agent/src/memory/test/compliance.ts`).
 */
export interface VectorMemory {
  createCollection: (config: CollectionConfig) => Promise<Collection>
  listCollections: () => Promise<Collection[]>
  describeCollection: (name: string) => Promise<CollectionInfo>
  deleteCollection: (name: string) => Promise<void>
  /** insert or replace (by id); the batch is validated whole first: one bad point rejects it, nothing written */
  upsert: (collection: string, points: PointInput[], options?: { write_consistency?: WriteConsistency, signal?: AbortSignal }) => Promise<WriteResult>
  delete: (collection: string, ids: string[], options?: { write_consistency?: WriteConsistency, signal?: AbortSignal }) => Promise<WriteResult>
  /** the points found, in the order asked (missing ids are left out) */
  get: (collection: string, ids: string[], options?: { signal?: AbortSignal }) => Promise<Point[]>
  search: (collection: string, query: SearchQuery, options?: { signal?: AbortSignal }) => Promise<SearchResult>
}

/** What the vector memory reports as it happens (the node's metrics): a search this node ran across the mesh, and how long it took. */
export interface MemoryEvent { kind: 'search', seconds: number }

// -----------------------------------------------------------------------------------------------
// typed errors (the HTTP API maps each to its status: see routes.ts)

/** No collection of that name. (404) */
export class UnknownCollectionError extends FlexnodeError {
  static override readonly name = 'UnknownCollectionError'
  readonly collection: string
  constructor (collection: string) {
    super(`no collection named ${JSON.stringify(collection)}`)
    this.collection = collection
  }
}

/** A collection of that name exists already. (409) */
export class CollectionExistsError extends FlexnodeError {
  static override readonly name = 'CollectionExistsError'
  readonly collection: string
  constructor (collection: string) {
    super(`a collection named ${JSON.stringify(collection)} exists already`)
    this.collection = collection
  }
}

/** A vector, point, query or filter is malformed; `field` names it (`points[3].vector`). (400) */
export class InvalidVectorError extends FlexnodeError {
  static override readonly name = 'InvalidVectorError'
  readonly field: string
  constructor (field: string, message: string) {
    super(`${field}: ${message}`)
    this.field = field
  }
}

/** A batch over the limit of points per request. (413) */
export class BatchTooLargeError extends FlexnodeError {
  static override readonly name = 'BatchTooLargeError'
  readonly limit: number
  readonly size: number
  constructor (size: number, limit: number) {
    super(`a batch holds at most ${limit} points; this one has ${size}`)
    this.limit = limit
    this.size = size
  }
}

/** `text` was given for a collection without an `embedding_model`. (400) */
export class NoEmbeddingModelError extends FlexnodeError {
  static override readonly name = 'NoEmbeddingModelError'
  readonly collection: string
  constructor (collection: string) {
    super(`collection ${JSON.stringify(collection)} has no embedding_model: give vectors, not text`)
    this.collection = collection
  }
}

/** Fewer replicas than the write consistency asks acknowledged the write. (503) */
export class WriteConsistencyError extends FlexnodeError {
  static override readonly name = 'WriteConsistencyError'
  readonly shard: number
  readonly needed: number
  readonly acknowledged: number
  constructor (shard: number, needed: number, acknowledged: number, reason: string) {
    super(`shard ${shard}: ${acknowledged} of the ${needed} replicas the write needs acknowledged it (${reason})`)
    this.shard = shard
    this.needed = needed
    this.acknowledged = acknowledged
  }
}

/** This node holds no replica of the shard (the caller's routing is stale: it should refresh and retry). */
export class NotHostedError extends FlexnodeError {
  static override readonly name = 'NotHostedError'
  readonly collection: string
  readonly shard: number
  constructor (collection: string, shard: number) {
    super(`this node holds no replica of ${collection}/${shard}`)
    this.collection = collection
    this.shard = shard
  }
}
