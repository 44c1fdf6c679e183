/**
 * routing: where shards live. The ring's membership is proposed as numbered epochs (the newest
 * epoch wins; two proposals of one epoch: the lowest action hash), and each host states which
 * shard replicas it serves or has retired from which epoch on. The placement itself
 * (`placeShards` in `scheduler/src/ring.ts`) is computed by each node from the epoch's members;
 * the zome stores what nodes must agree on, not the arithmetic.
 */
import type { ActionHash, Hdk } from '../../hdk/index.ts'
import { ZomeInputError } from '../../hdk/errors.ts'
import { isMap } from '../../hdk/values.ts'
import { compareKeys, epochOfTag, epochTag } from '../rules.ts'
import type { RingEpoch, RingEpochRecord, ShardAssignment } from '../types.ts'
import { commitHosted, listHosted, ringAnchor } from './shared.ts'

/** Proposes the ring's members for an epoch; validation checks members sorted, unique, weights > 0. */
export async function propose_epoch (hdk: Hdk, e: RingEpoch): Promise<ActionHash> {
  if (!isMap(e) || !Number.isSafeInteger(e.epoch) || e.epoch < 1) throw new ZomeInputError('propose_epoch takes {epoch (a whole number ≥ 1), members, at}', 'epoch')
  const entry: RingEpoch = { epoch: e.epoch, members: e.members, at: e.at }
  const hash = await hdk.create_entry({ entry_type: 'RingEpoch', entry })
  await hdk.create_link({ base: ringAnchor(hdk), target: hash, link_type: 'RingEpochs', tag: epochTag(e.epoch) })
  return hash
}

/**
 * The current ring epoch: the highest epoch, of its proposals the one with the lowest action
 * hash; null before the first. Reads only the newest epoch's records (the link tags say which).
 */
export async function current_epoch (hdk: Hdk): Promise<RingEpochRecord | null> {
  const links = (await hdk.get_links({ base: ringAnchor(hdk), link_type: 'RingEpochs' }))
    .map(l => ({ epoch: epochOfTag(l.tag), target: l.target }))
    .filter((l): l is { epoch: number, target: ActionHash } => l.epoch !== null)
    .sort((a, b) => b.epoch - a.epoch || compareKeys(a.target, b.target))
  for (const l of links) {
    const record = await hdk.get(l.target)
    const e = record === null ? undefined : hdk.entry_of<RingEpoch>(record)
    if (e !== undefined && e.epoch === l.epoch) return { epoch: e.epoch, members: e.members, at: e.at, hash: l.target }
  }
  return null
}

/**
 * Every ring epoch, oldest first, one per number (of several proposals of a number, the one with
 * the lowest action hash): the history routing needs to know which hosts of earlier epochs still
 * serve a shard while its new hosts copy it.
 */
export async function epochs (hdk: Hdk): Promise<RingEpochRecord[]> {
  const links = (await hdk.get_links({ base: ringAnchor(hdk), link_type: 'RingEpochs' }))
    .map(l => ({ epoch: epochOfTag(l.tag), target: l.target }))
    .filter((l): l is { epoch: number, target: ActionHash } => l.epoch !== null)
    .sort((a, b) => a.epoch - b.epoch || compareKeys(a.target, b.target))
  const out: RingEpochRecord[] = []
  for (const l of links) {
    if (out.at(-1)?.epoch === l.epoch) continue
    const record = await hdk.get(l.target)
    const e = record === null ? undefined : hdk.entry_of<RingEpoch>(record)
    if (e !== undefined && e.epoch === l.epoch) out.push({ epoch: e.epoch, members: e.members, at: e.at, hash: l.target })
  }
  return out
}

/** States that the caller serves (or retired) a shard replica from an epoch on. */
export async function commit_assignment (hdk: Hdk, a: Omit<ShardAssignment, 'host'>): Promise<ActionHash> {
  return await commitHosted(hdk, 'commit_assignment', 'ShardAssignment', 'CollectionToAssignment', a, ['collection', 'shard', 'epoch', 'state', 'at'])
}

/** Every assignment of a collection uid, by shard, epoch, time and host. */
export async function assignments (hdk: Hdk, collection: string): Promise<ShardAssignment[]> {
  return await listHosted<ShardAssignment>(hdk, 'assignments', 'CollectionToAssignment', collection)
}
