/** Helpers the artifact_index coordinators share: anchors, the caller, input checks and reading linked records. */
import type { ActionHash, AgentPubKey, Hdk, HolochainRecord, Link } from '../../hdk/index.ts'
import { ZomeInputError } from '../../hdk/errors.ts'
import { isMap } from '../../hdk/values.ts'
import { canonicalCid, earliestFirst, sameAgent } from '../rules.ts'
import type { ArtifactInfo, ArtifactRecord, ProviderRecord } from '../types.ts'

/** Every ArtifactRecord hangs here. */
export const artifactsAnchor = (hdk: Hdk): Uint8Array => hdk.path_entry_hash('artifact_index.artifacts')
/** One CID's records, provenance and providers. */
export const cidAnchor = (hdk: Hdk, cid: string): Uint8Array => hdk.path_entry_hash(`artifact_index.cid.${cid}`)

export async function me (hdk: Hdk): Promise<AgentPubKey> {
  return (await hdk.agent_info()).agent_initial_pubkey
}

/** The canonical text of a CID a function was given; ZomeInputError (field `cid`) when it is none. */
export function checkCid (cid: unknown, fn: string): string {
  const canonical = canonicalCid(cid)
  if (canonical === null) throw new ZomeInputError(`${fn} takes a CID (CIDv0 or CIDv1)`, 'cid')
  return canonical
}

/** A record a link leads to, with the link, the record's author and its app entry. */
export interface Linked<T> {
  link: Link
  record: HolochainRecord
  author: AgentPubKey
  action_hash: ActionHash
  value: T
}

/** The records `links` lead to (those found, whose entry is a map). */
export async function linked<T> (hdk: Hdk, links: Link[]): Promise<Array<Linked<T>>> {
  const out: Array<Linked<T>> = []
  for (const link of links) {
    const record = await hdk.get(link.target)
    if (record === null) continue
    const value = hdk.entry_of<T>(record)
    const { hash, content } = record.signed_action.hashed
    if (isMap(value)) out.push({ link, record, author: content.header.author, action_hash: hash, value })
  }
  return out
}

/** The ArtifactRecords the links of a type lead to from `base`, authored by their producers, earliest first. */
export async function artifactsAt (hdk: Hdk, base: Uint8Array, link_type: string, filter: (l: Link) => boolean = () => true): Promise<ArtifactInfo[]> {
  return await artifactsOf(hdk, (await hdk.get_links({ base, link_type })).filter(filter))
}

/** The ArtifactRecords `links` lead to, authored by their producers, earliest first. */
export async function artifactsOf (hdk: Hdk, links: Link[]): Promise<ArtifactInfo[]> {
  const out: ArtifactInfo[] = []
  // validation refuses a forged producer; a reader checks again rather than trust a peer's store
  for (const { author, action_hash, value } of await linked<ArtifactRecord>(hdk, links)) {
    if (value.producer instanceof Uint8Array && sameAgent(value.producer, author)) out.push({ ...value, author, action_hash })
  }
  return out.sort(earliestFirst(a => a.created_at))
}

/** A live (not withdrawn) ProviderRecord a link leads to, authored by its provider. */
export interface LiveProvider {
  link: Link
  action_hash: ActionHash
  value: ProviderRecord
}

/** The live ProviderRecords the links of a type lead to from `base`, earliest first. */
export async function providersAt (hdk: Hdk, base: Uint8Array, link_type: string, filter: (l: Link) => boolean = () => true): Promise<LiveProvider[]> {
  const out: LiveProvider[] = []
  for (const link of (await hdk.get_links({ base, link_type })).filter(filter)) {
    const details = await hdk.get_details(link.target)
    if (details === null || details.deletes.length > 0) continue
    const value = hdk.entry_of<ProviderRecord>(details.record)
    const { hash, content } = details.record.signed_action.hashed
    if (isMap(value) && value.provider instanceof Uint8Array && sameAgent(value.provider, content.header.author)) out.push({ link, action_hash: hash, value })
  }
  return out.sort(earliestFirst(p => p.value.since))
}
