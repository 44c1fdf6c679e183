/**
 * sync: how far each replica has synced. A host records a checkpoint (its change sequence and
 * point count for a shard replica at an epoch) so the rebalancer and its peers can tell a replica
 * that caught up from one still copying, without asking the host.
 */
import type { ActionHash, Hdk } from '../../hdk/index.ts'
import type { SyncCheckpoint } from '../types.ts'
import { commitHosted, listHosted } from './shared.ts'

/** Records the caller's checkpoint of a shard replica. */
export async function record_checkpoint (hdk: Hdk, c: Omit<SyncCheckpoint, 'host'>): Promise<ActionHash> {
  return await commitHosted(hdk, 'record_checkpoint', 'SyncCheckpoint', 'CollectionToCheckpoint', c, ['collection', 'shard', 'epoch', 'seq', 'count', 'at'])
}

/** Every checkpoint of a collection uid, by shard, epoch, time and host. */
export async function checkpoints (hdk: Hdk, collection: string): Promise<SyncCheckpoint[]> {
  return await listHosted<SyncCheckpoint>(hdk, 'checkpoints', 'CollectionToCheckpoint', collection)
}
