/**
 * memory_shards' entries and zome-function types, shared by its zomes, its typed client and the
 * agent's `memory` capability.
 *
 * The DNA holds what every node must agree on to find a vector: the collections
 * (`ShardDescriptor`), the ring's members at each epoch (`RingEpoch`: the scheduler's
 * `placeShards` turns them into each shard's hosts), which node serves which shard replica
 * (`ShardAssignment`), and how far each replica has synced (`SyncCheckpoint`). The vectors
 * themselves live in the shard hosts, never in the DHT.
 *
 * Entries are never updated or deleted: a newer one supersedes (a higher epoch, a later
 * assignment), and a collection ends with a `CollectionDeleted`, which any node may write, as any
 * node may serve the API call that deletes it. Times are ms since the Unix epoch.
 */
import type { ActionHash, AgentPubKey } from '../hdk/index.ts'

/** A collection name: 1-64 letters, digits, `_` and `-`. */
export const COLLECTION_NAME = /^[A-Za-z0-9_-]{1,64}$/
/** A collection uid: its name, `.`, its `created_at` in base 36. */
export const COLLECTION_UID = /^[A-Za-z0-9_-]{1,64}\.[0-9a-z]{1,11}$/

export const SHARD_DISTANCES = ['cosine', 'l2', 'ip'] as const
export type ShardDistance = typeof SHARD_DISTANCES[number]

export const SHARD_STATES = ['serving', 'retired'] as const
export type ShardState = typeof SHARD_STATES[number]

/** The bounds validation enforces. */
export const SHARD_LIMITS = {
  maxDimensions: 65_536,
  maxShardCount: 1024,
  maxReplicationFactor: 16,
  /** members of one ring epoch */
  maxMembers: 4096,
  /** epochs are numbered from 1 (link tags carry them as 4 bytes) */
  maxEpoch: 0xffff_ffff,
  maxModelName: 256,
  /** an entry's own time (`at`, `created_at`) is at most this far from its action's timestamp */
  maxClockSkewMs: 5 * 60 * 1000
} as const

/** A collection (`CollectionEntry`): where its points go is `shardOfId(id, shard_count)`. */
export interface ShardDescriptor {
  name: string
  dimensions: number
  distance: ShardDistance
  shard_count: number
  replication_factor: number
  embedding_model: string | null
  /** the ring epoch it was created in (0: before the first epoch): its first hosts serve it empty */
  created_epoch: number
  created_at: number
}
export type CollectionEntry = ShardDescriptor

/** The end of the collection `{name, created_at}` (its uid), written by whoever deleted it. */
export interface CollectionDeleted {
  name: string
  created_at: number
  at: number
}

/** A member of the ring: an agent and its weight (vector capacity). */
export interface RingEpochMember { node: AgentPubKey, weight: number }

/** The ring's members from this epoch on; members sorted by key (bytes), unique, weights finite > 0. */
export interface RingEpoch {
  epoch: number
  members: RingEpochMember[]
  at: number
}
/** A ring epoch and the action that committed it (ties between proposals of one epoch break on it). */
export type RingEpochRecord = RingEpoch & { hash: ActionHash }

/** A host's statement that it serves (or retired) a replica of a shard from an epoch on; authored by the host. */
export interface ShardAssignment {
  /** the collection's uid */
  collection: string
  shard: number
  epoch: number
  host: AgentPubKey
  state: ShardState
  at: number
}

/** How far a host's replica of a shard has synced: its change sequence and point count; authored by the host. */
export interface SyncCheckpoint {
  /** the collection's uid */
  collection: string
  shard: number
  epoch: number
  host: AgentPubKey
  seq: number
  count: number
  at: number
}

/** The uid of a collection: `${name}.${created_at.toString(36)}`, so a re-created name never reuses old replicas. */
export function collectionUid (c: { name: string, created_at: number }): string {
  return `${c.name}.${c.created_at.toString(36)}`
}
