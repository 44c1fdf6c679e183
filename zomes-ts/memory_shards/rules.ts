/**
 * The rules memory_shards' integrity zome checks and its coordinators read by: one copy, so a
 * reader's choice (which collection is live, which epoch is current) rests on the same key order
 * and tag encoding that validation enforces. Pure; bundled into the zomes.
 */
import type { ActionHash } from '../hdk/index.ts'
import type { CollectionDeleted, ShardDescriptor } from './types.ts'

const AGENT_PREFIX = [0x84, 0x20, 0x24]

/** An AgentPubKey: 39 bytes with the agent prefix. */
export function isAgentKey (v: unknown): v is Uint8Array {
  return v instanceof Uint8Array && v.length === 39 && v[0] === AGENT_PREFIX[0] && v[1] === AGENT_PREFIX[1] && v[2] === AGENT_PREFIX[2]
}

/** Byte order of two hashes: a RingEpoch's members are sorted by it, ties between records break on it. */
export function compareKeys (a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return a.length - b.length
}

/** The tag of a `RingEpochs` link: the epoch as 4 big-endian bytes. */
export function epochTag (epoch: number): Uint8Array {
  const tag = new Uint8Array(4)
  new DataView(tag.buffer).setUint32(0, epoch)
  return tag
}

/** The epoch a `RingEpochs` tag carries, or null for a tag of another length. */
export function epochOfTag (tag: Uint8Array): number | null {
  return tag.length === 4 ? new DataView(tag.buffer, tag.byteOffset, 4).getUint32(0) : null
}

/** A collection record or its deletion, as read from a link. */
export interface CollectionRecord {
  hash: ActionHash
  value: ShardDescriptor | CollectionDeleted
}

export function isDescriptor (v: ShardDescriptor | CollectionDeleted): v is ShardDescriptor {
  return 'shard_count' in v
}

/**
 * The live collections among `records`, all of them per name (several when nodes created one
 * name concurrently), each with its action hash: a descriptor is live until a CollectionDeleted
 * names its `{name, created_at}`.
 */
export function liveDescriptors (records: CollectionRecord[]): Array<{ hash: ActionHash, value: ShardDescriptor }> {
  const deleted = new Set<string>()
  for (const r of records) if (!isDescriptor(r.value)) deleted.add(`${r.value.name}\u0000${r.value.created_at}`)
  const live: Array<{ hash: ActionHash, value: ShardDescriptor }> = []
  for (const r of records) {
    if (isDescriptor(r.value) && !deleted.has(`${r.value.name}\u0000${r.value.created_at}`)) live.push({ hash: r.hash, value: r.value })
  }
  return live
}

/**
 * The one live collection per name, by name: of concurrent ones, the earliest `created_at`, then
 * the lowest action hash, so every node reads the same winner.
 */
export function liveCollections (records: CollectionRecord[]): ShardDescriptor[] {
  const winners = new Map<string, { hash: ActionHash, value: ShardDescriptor }>()
  for (const r of liveDescriptors(records)) {
    const best = winners.get(r.value.name)
    if (best === undefined || r.value.created_at < best.value.created_at || (r.value.created_at === best.value.created_at && compareKeys(r.hash, best.hash) < 0)) winners.set(r.value.name, r)
  }
  return [...winners.values()].map(w => w.value).sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
}
