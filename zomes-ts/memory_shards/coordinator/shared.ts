/** Helpers the memory_shards coordinators share: anchors, the caller, and a host's records of a collection. */
import type { ActionHash, AgentPubKey, Hdk, HolochainRecord } from '../../hdk/index.ts'
import { bytesEqual } from '../../hdk/index.ts'
import { ZomeInputError } from '../../hdk/errors.ts'
import { isMap } from '../../hdk/values.ts'
import { compareKeys } from '../rules.ts'
import { COLLECTION_NAME, COLLECTION_UID } from '../types.ts'

/** Every collection and deletion hangs here. */
export const collectionsAnchor = (hdk: Hdk): Uint8Array => hdk.path_entry_hash('memory_shards.collections')
/** One name's collections and deletions. */
export const nameAnchor = (hdk: Hdk, name: string): Uint8Array => hdk.path_entry_hash(`memory_shards.collection.${name}`)
/** Every ring epoch proposed. */
export const ringAnchor = (hdk: Hdk): Uint8Array => hdk.path_entry_hash('memory_shards.ring')
/** One collection uid's assignments and checkpoints. */
export const shardsAnchor = (hdk: Hdk, uid: string): Uint8Array => hdk.path_entry_hash(`memory_shards.shards.${uid}`)

export async function me (hdk: Hdk): Promise<AgentPubKey> {
  return (await hdk.agent_info()).agent_initial_pubkey
}

export function checkName (name: unknown, fn: string): string {
  if (typeof name !== 'string' || !COLLECTION_NAME.test(name)) throw new ZomeInputError(`${fn} takes a collection name: 1-64 letters, digits, _ and -`, 'name')
  return name
}

export function checkUid (uid: unknown, fn: string): string {
  if (typeof uid !== 'string' || !COLLECTION_UID.test(uid)) throw new ZomeInputError(`${fn} takes a collection uid: its name, a dot, its created_at in base 36`, 'collection')
  return uid
}

/** The records a link type leads to from `base` (those still found), with their entries. */
export async function linked<T> (hdk: Hdk, base: Uint8Array, link_type: string): Promise<Array<{ record: HolochainRecord, value: T }>> {
  const out: Array<{ record: HolochainRecord, value: T }> = []
  for (const link of await hdk.get_links({ base, link_type })) {
    const record = await hdk.get(link.target)
    const value = record === null ? undefined : hdk.entry_of<T>(record)
    if (record !== null && isMap(value)) out.push({ record, value })
  }
  return out
}

interface Hosted { collection: string, shard: number, epoch: number, host: AgentPubKey, at: number }

/**
 * Commits a host's entry about a shard of a collection (`host` = the caller) and links it from
 * the collection's anchor; validation checks the rest.
 */
export async function commitHosted (hdk: Hdk, fn: string, entry_type: string, link_type: string, input: unknown, fields: readonly string[]): Promise<ActionHash> {
  if (!isMap(input)) throw new ZomeInputError(`${fn} takes {${fields.join(', ')}}`)
  const uid = checkUid(input.collection, fn)
  const entry: Record<string, unknown> = { host: await me(hdk) }
  for (const f of fields) entry[f] = input[f]
  const hash = await hdk.create_entry({ entry_type, entry })
  await hdk.create_link({ base: shardsAnchor(hdk, uid), target: hash, link_type })
  return hash
}

/** A collection's entries of one kind, each authored by its host, by shard, epoch, time and host. */
export async function listHosted<T extends Hosted> (hdk: Hdk, fn: string, link_type: string, collection: unknown): Promise<T[]> {
  const uid = checkUid(collection, fn)
  const out: T[] = []
  for (const { record, value } of await linked<T>(hdk, shardsAnchor(hdk, uid), link_type)) {
    // validation refuses another author; a reader checks again rather than trust a peer's store
    const author = record.signed_action.hashed.content.header.author
    if (value.collection === uid && value.host instanceof Uint8Array && bytesEqual(value.host.subarray(0, 35), author.subarray(0, 35))) out.push(value)
  }
  return out.sort((a, b) => a.shard - b.shard || a.epoch - b.epoch || a.at - b.at || compareKeys(a.host, b.host))
}
