/**
 * The typed client of the memory_shards DNA, for agent code (see `zomes-ts/client.ts`). Agent
 * keys and action hashes come back as the `Uint8Array`s the entries hold.
 */
import type { ActionHash, AgentPubKey } from '../hdk/index.ts'
import { DnaClient, type CellTarget, type ZomeCallOptions, type ZomeCaller } from '../client.ts'
import type { CollectionEntry, RingEpochRecord, ShardAssignment, SyncCheckpoint } from './types.ts'

export type { CollectionEntry, RingEpochRecord, ShardAssignment, SyncCheckpoint }

export const MEMORY_SHARDS_ROLE = 'memory_shards'

export class MemoryShardsClient extends DnaClient {
  constructor (caller: ZomeCaller, target: CellTarget = { role_name: MEMORY_SHARDS_ROLE }) {
    super(caller, target)
  }

  /** Creates a collection; rejects (`ZomeInputError`) while a live one has its name. */
  async createCollection (c: CollectionEntry, options?: ZomeCallOptions): Promise<ActionHash> {
    return await this.call('shards', 'create_collection', c, options)
  }

  /** The live collection of a name (of concurrent ones: earliest created_at, then lowest action hash), or null. */
  async getCollection (name: string, options?: ZomeCallOptions): Promise<CollectionEntry | null> {
    return await this.call('shards', 'get_collection', name, options)
  }

  /** The live collections, by name. */
  async listCollections (options?: ZomeCallOptions): Promise<CollectionEntry[]> {
    return await this.call('shards', 'list_collections', null, options)
  }

  /** Ends the live collection(s) of a name; false when there was none. */
  async deleteCollection (name: string, options?: ZomeCallOptions): Promise<boolean> {
    return await this.call('shards', 'delete_collection', name, options)
  }

  /** Proposes the ring's members for an epoch (members sorted by key, unique, weights > 0). */
  async proposeEpoch (e: { epoch: number, members: Array<{ node: AgentPubKey, weight: number }>, at: number }, options?: ZomeCallOptions): Promise<ActionHash> {
    return await this.call('routing', 'propose_epoch', e, options)
  }

  /** The highest epoch (tie: lowest action hash), with its action hash; null before the first. */
  async currentEpoch (options?: ZomeCallOptions): Promise<RingEpochRecord | null> {
    return await this.call('routing', 'current_epoch', null, options)
  }

  /** Every ring epoch, oldest first, one per number (the lowest action hash of a number's proposals). */
  async epochs (options?: ZomeCallOptions): Promise<RingEpochRecord[]> {
    return await this.call('routing', 'epochs', null, options)
  }

  /** States that this node serves (or retired) a shard replica; the host is this node. */
  async commitAssignment (a: Omit<ShardAssignment, 'host'>, options?: ZomeCallOptions): Promise<ActionHash> {
    return await this.call('routing', 'commit_assignment', a, options)
  }

  /** Every assignment of a collection uid, by shard, epoch, time and host. */
  async assignments (collection: string, options?: ZomeCallOptions): Promise<ShardAssignment[]> {
    return await this.call('routing', 'assignments', collection, options)
  }

  /** Records this node's sync checkpoint of a shard replica. */
  async recordCheckpoint (c: Omit<SyncCheckpoint, 'host'>, options?: ZomeCallOptions): Promise<ActionHash> {
    return await this.call('sync', 'record_checkpoint', c, options)
  }

  /** Every checkpoint of a collection uid, by shard, epoch, time and host. */
  async checkpoints (collection: string, options?: ZomeCallOptions): Promise<SyncCheckpoint[]> {
    return await this.call('sync', 'checkpoints', collection, options)
  }
}
