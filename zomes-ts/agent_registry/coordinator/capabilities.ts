/**
 * capabilities: advertise this node's NodeCapability and read anyone's.
 *
 * `advertise` creates the entry on first use (linked from the agent and from the all-nodes
 * anchor) and updates that same original afterwards, so every version hangs off one Create.
 */
import type { ActionHash, AgentPubKey, Hdk } from '../../hdk/index.ts'
import type { NodeCapability } from '../types.ts'
import { allNodesAnchor, capabilityOriginal, isMap, latestCapability, withPresence } from './shared.ts'
import { ZomeInputError } from '../../hdk/errors.ts'

export async function advertise (hdk: Hdk, capability: NodeCapability): Promise<ActionHash> {
  if (!isMap(capability)) throw new ZomeInputError('advertise takes a NodeCapability')
  const me = (await hdk.agent_info()).agent_initial_pubkey
  const original = await capabilityOriginal(hdk, me)
  let hash: ActionHash
  if (original === null) {
    hash = await hdk.create_entry({ entry_type: 'NodeCapability', entry: capability })
    await hdk.create_link({ base: me, target: hash, link_type: 'AgentToCapability' })
    await hdk.create_link({ base: allNodesAnchor(hdk), target: hash, link_type: 'AllNodes' })
  } else {
    hash = await hdk.update_entry({ original_action_hash: original, entry: capability })
  }
  hdk.emit_signal({ type: 'capability_advertised', node_id: capability.node_id, action_hash: hash })
  return hash
}

export async function get_capability (hdk: Hdk, agent: AgentPubKey): Promise<NodeCapability | null> {
  if (!(agent instanceof Uint8Array) || agent.length !== 39 || agent[0] !== 0x84 || agent[1] !== 0x20) throw new ZomeInputError('get_capability takes an AgentPubKey')
  const original = await capabilityOriginal(hdk, agent)
  if (original === null) return null
  const cap = await latestCapability(hdk, original)
  if (cap === null) return null
  const [presence] = await hdk.agent_presence([agent])
  return withPresence(cap, presence ?? null, hdk.sys_time())
}

/** The action hash of this agent's NodeCapability Create, or null before the first advertise. */
export async function my_capability_hash (hdk: Hdk): Promise<ActionHash | null> {
  return capabilityOriginal(hdk, (await hdk.agent_info()).agent_initial_pubkey)
}
