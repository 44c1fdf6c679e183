/**
 * provenance: where an artifact came from. Any node states that a CID was derived from another
 * CID, built by a builder, or produced under an allocation; readers see each statement with its
 * author and time and judge for themselves (the producer's own statements are the ones whose
 * author is the record's producer).
 */
import type { Hdk } from '../../hdk/index.ts'
import { ZomeInputError } from '../../hdk/errors.ts'
import { isMap } from '../../hdk/values.ts'
import { canonicalCid, earliestFirst, sameAgent } from '../rules.ts'
import type { ProvenanceInfo, ProvenanceLink } from '../types.ts'
import { checkCid, cidAnchor, linked, me } from './shared.ts'

async function statements (hdk: Hdk, cid: string): Promise<ProvenanceInfo[]> {
  const found = await linked<ProvenanceLink>(hdk, await hdk.get_links({ base: cidAnchor(hdk, cid), link_type: 'CidToProvenance' }))
  return found
    .filter(f => f.value.cid === cid && sameAgent(f.link.author, f.author))
    .map(f => ({ cid: f.value.cid, kind: f.value.kind, target: f.value.target, author: f.author, at: f.record.signed_action.hashed.content.header.timestamp, action_hash: f.action_hash }))
    .sort(earliestFirst(p => p.at))
}

/**
 * States a provenance link of a CID; validation checks the kind and the target (a CID for
 * `derived_from`). Idempotent: the caller's earlier identical statement is returned instead.
 */
export async function link (hdk: Hdk, input: ProvenanceLink): Promise<ProvenanceInfo> {
  if (!isMap(input)) throw new ZomeInputError('link takes {cid, kind, target}')
  const cid = checkCid(input.cid, 'link')
  // a derived_from target is canonicalised like the CID; one that does not parse is refused by validation
  const target = input.kind === 'derived_from' ? canonicalCid(input.target) ?? input.target : input.target
  const entry: ProvenanceLink = { cid, kind: input.kind, target }
  const author = await me(hdk)
  const same = (await statements(hdk, cid)).find(s => sameAgent(s.author, author) && s.kind === entry.kind && s.target === entry.target)
  if (same !== undefined) return same
  const action_hash = await hdk.create_entry({ entry_type: 'ProvenanceLink', entry })
  await hdk.create_link({ base: cidAnchor(hdk, cid), target: action_hash, link_type: 'CidToProvenance' })
  const committed = await hdk.get(action_hash)
  return { ...entry, author, at: committed?.signed_action.hashed.content.header.timestamp ?? hdk.sys_time(), action_hash }
}

/** The provenance statements of a CID, earliest first. */
export async function provenance (hdk: Hdk, cid: string): Promise<ProvenanceInfo[]> {
  return await statements(hdk, checkCid(cid, 'provenance'))
}
