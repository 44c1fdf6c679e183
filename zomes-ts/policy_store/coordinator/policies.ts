/**
 * policies: publish and read named policy documents. The newest publication under a name wins,
 * so every node reads the same policy once the DHT has converged. When the DNA property
 * `policy_admins` names agents, only their publications are read (validation already refuses
 * anyone else's; reading skips them too, as a second line of defence).
 */
import type { ActionHash, Hdk } from '../../hdk/index.ts'
import { POLICY_NAME, type PolicyInput, type PublishedPolicy } from '../types.ts'
import { ZomeInputError } from '../../hdk/errors.ts'

export type { PolicyInput, PublishedPolicy }

const anchor = (hdk: Hdk, name: string): Uint8Array => hdk.path_entry_hash(`policy_store.policies.${name}`)

function checkName (name: unknown): string {
  if (typeof name !== 'string' || !POLICY_NAME.test(name)) throw new ZomeInputError('a policy name is 1-64 lowercase letters, digits, . _ -')
  return name
}

/** The DNA's policy admins (agent key strings), or null when the property names none. */
function admins (hdk: Hdk): string[] | null {
  const list = hdk.dna_info().modifiers.properties.policy_admins
  return Array.isArray(list) && list.length > 0 ? list.filter((a): a is string => typeof a === 'string') : null
}

async function latest (hdk: Hdk, name: string): Promise<PublishedPolicy | null> {
  const allowed = admins(hdk)
  const links = await hdk.get_links({ base: anchor(hdk, name), link_type: 'NameToPolicy' })
  links.sort((a, b) => b.timestamp - a.timestamp || (a.create_link_hash < b.create_link_hash ? 1 : -1))
  for (const link of links) {
    const record = await hdk.get(link.target)
    if (record === null) continue
    const p = hdk.entry_of<{ name: string, kind: string, document: Record<string, unknown>, version: number }>(record)
    if (p === undefined || p.name !== name) continue
    const header = record.signed_action.hashed.content.header
    const author = hdk.encode_hash(header.author)
    if (allowed !== null && !allowed.includes(author)) continue
    return { ...p, author, published_at: header.timestamp, action_hash: record.signed_action.hashed.hash }
  }
  return null
}

export async function set_policy (hdk: Hdk, input: PolicyInput): Promise<ActionHash> {
  if (typeof input !== 'object' || input === null) throw new ZomeInputError('set_policy takes {name, kind, document}')
  const name = checkName(input.name)
  const previous = await latest(hdk, name)
  const hash = await hdk.create_entry({ entry_type: 'Policy', entry: { name, kind: input.kind, document: input.document, version: (previous?.version ?? 0) + 1 } })
  await hdk.create_link({ base: anchor(hdk, name), target: hash, link_type: 'NameToPolicy' })
  hdk.emit_signal({ type: 'policy_published', name, action_hash: hash })
  return hash
}

export async function get_policy (hdk: Hdk, name: string): Promise<PublishedPolicy | null> {
  return await latest(hdk, checkName(name))
}
