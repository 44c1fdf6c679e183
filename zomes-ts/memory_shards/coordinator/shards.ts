/**
 * shards: the collections. Any node creates, reads, lists and deletes them; a name has at most
 * one live collection, and when nodes created one name at the same moment every reader takes the
 * same one (the earliest `created_at`, then the lowest action hash: `../rules.ts`).
 */
import type { ActionHash, Hdk } from '../../hdk/index.ts'
import { ZomeInputError } from '../../hdk/errors.ts'
import { isMap } from '../../hdk/values.ts'
import { liveCollections, liveDescriptors, type CollectionRecord } from '../rules.ts'
import type { CollectionDeleted, CollectionEntry, ShardDescriptor } from '../types.ts'
import { checkName, collectionsAnchor, linked, nameAnchor } from './shared.ts'

async function recordsOf (hdk: Hdk, base: Uint8Array, link_type: string, name?: string): Promise<CollectionRecord[]> {
  const found = await linked<ShardDescriptor | CollectionDeleted>(hdk, base, link_type)
  return found.filter(f => name === undefined || f.value.name === name).map(f => ({ hash: f.record.signed_action.hashed.hash, value: f.value }))
}

const ofName = async (hdk: Hdk, name: string): Promise<CollectionRecord[]> => await recordsOf(hdk, nameAnchor(hdk, name), 'NameToCollection', name)

async function link (hdk: Hdk, name: string, hash: ActionHash): Promise<void> {
  await hdk.create_link({ base: collectionsAnchor(hdk), target: hash, link_type: 'AllCollections' })
  await hdk.create_link({ base: nameAnchor(hdk, name), target: hash, link_type: 'NameToCollection' })
}

/** Creates a collection; refused (ZomeInputError, field `name`) while a live one has its name. */
export async function create_collection (hdk: Hdk, c: CollectionEntry): Promise<ActionHash> {
  if (!isMap(c)) throw new ZomeInputError('create_collection takes {name, dimensions, distance, shard_count, replication_factor, embedding_model, created_epoch, created_at}')
  const name = checkName(c.name, 'create_collection')
  if (liveCollections(await ofName(hdk, name)).length > 0) throw new ZomeInputError(`a collection named ${JSON.stringify(name)} exists already`, 'name')
  const entry: ShardDescriptor = {
    name,
    dimensions: c.dimensions,
    distance: c.distance,
    shard_count: c.shard_count,
    replication_factor: c.replication_factor,
    embedding_model: c.embedding_model ?? null,
    created_epoch: c.created_epoch,
    created_at: c.created_at
  }
  const hash = await hdk.create_entry({ entry_type: 'ShardDescriptor', entry })
  await link(hdk, name, hash)
  return hash
}

/** The live collection of a name, or null. */
export async function get_collection (hdk: Hdk, name: string): Promise<CollectionEntry | null> {
  return liveCollections(await ofName(hdk, checkName(name, 'get_collection')))[0] ?? null
}

/** The live collections, one per name, by name. */
export async function list_collections (hdk: Hdk): Promise<CollectionEntry[]> {
  return liveCollections(await recordsOf(hdk, collectionsAnchor(hdk), 'AllCollections'))
}

/**
 * Ends every live collection of a name (the concurrent ones too, so none surfaces after the
 * winner goes); false when there was none.
 */
export async function delete_collection (hdk: Hdk, name: string): Promise<boolean> {
  checkName(name, 'delete_collection')
  const live = liveDescriptors(await ofName(hdk, name))
  const at = Math.floor(hdk.sys_time() / 1000)
  for (const { value } of live) {
    const entry: CollectionDeleted = { name, created_at: value.created_at, at: Math.max(at, value.created_at) }
    await link(hdk, name, await hdk.create_entry({ entry_type: 'CollectionDeleted', entry }))
  }
  return live.length > 0
}
