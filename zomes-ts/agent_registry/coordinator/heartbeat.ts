/**
 * heartbeat: refresh this node's live load and heartbeat time.
 */
import type { ActionHash, Hdk } from '../../hdk/index.ts'
import { checkSchema } from '../../hdk/schema.ts'
import { AVAILABILITY, LOAD_SCHEMA, type Availability, type NodeLoad } from '../types.ts'
import { capabilityOriginal, isMap, latestCapability, nowIso } from './shared.ts'

export interface BeatInput extends NodeLoad {
  /** optionally change availability with the same beat */
  availability?: Availability
}

export async function beat (hdk: Hdk, input: BeatInput): Promise<ActionHash> {
  if (!isMap(input)) throw new Error('beat takes {cpu_percent, gpu_percent, memory_percent}')
  const { availability, ...load } = input
  const problem = checkSchema(load, LOAD_SCHEMA, 'load')
  if (problem !== null) throw new Error(problem)
  if (availability !== undefined && !AVAILABILITY.includes(availability)) throw new Error(`availability must be one of ${AVAILABILITY.join(', ')}`)
  const me = (await hdk.agent_info()).agent_initial_pubkey
  const original = await capabilityOriginal(hdk, me)
  if (original === null) throw new Error('no NodeCapability to beat: call capabilities.advertise first')
  const current = await latestCapability(hdk, original)
  if (current === null) throw new Error('this node\'s NodeCapability was deleted: advertise again')
  const next = { ...current, load: load as NodeLoad, availability: availability ?? (current.availability === 'offline' ? 'online' : current.availability), last_heartbeat: nowIso(hdk) }
  const hash = await hdk.update_entry({ original_action_hash: original, entry: next })
  hdk.emit_signal({ type: 'heartbeat', node_id: current.node_id, action_hash: hash, load: next.load })
  return hash
}
