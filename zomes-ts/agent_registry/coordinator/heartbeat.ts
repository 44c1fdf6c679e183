/**
 * heartbeat: refresh this node's live load, queue depth and heartbeat time.
 */
import type { ActionHash, Hdk } from '../../hdk/index.ts'
import { checkSchema } from '../../hdk/schema.ts'
import { AVAILABILITY, LIMITS, LOAD_SCHEMA, type Availability, type NodeLoad } from '../types.ts'
import { capabilityOriginal, isMap, latestCapability, nowIso } from './shared.ts'
import { ZomeInputError, ZomeStateError } from '../../hdk/errors.ts'

export interface BeatInput extends NodeLoad {
  /** optionally change availability with the same beat */
  availability?: Availability
  /** requests the node is generating or has waiting now (`capabilities.inference.queue_depth`) */
  queue_depth?: number
}

export async function beat (hdk: Hdk, input: BeatInput): Promise<ActionHash> {
  if (!isMap(input)) throw new ZomeInputError('beat takes {cpu_percent, gpu_percent, memory_percent, availability?, queue_depth?}')
  const { availability, queue_depth: queueDepth, ...load } = input
  if (queueDepth !== undefined && (typeof queueDepth !== 'number' || !Number.isInteger(queueDepth) || queueDepth < 0 || queueDepth > LIMITS.queue_depth)) {
    throw new ZomeInputError(`queue_depth must be an integer from 0 to ${LIMITS.queue_depth}`)
  }
  const problem = checkSchema(load, LOAD_SCHEMA, 'load')
  if (problem !== null) throw new ZomeInputError(problem)
  if (availability !== undefined && !AVAILABILITY.includes(availability)) throw new ZomeInputError(`availability must be one of ${AVAILABILITY.join(', ')}`)
  const me = (await hdk.agent_info()).agent_initial_pubkey
  const original = await capabilityOriginal(hdk, me)
  if (original === null) throw new ZomeStateError('no NodeCapability to beat: call capabilities.advertise first')
  const current = await latestCapability(hdk, original)
  if (current === null) throw new ZomeStateError('this node\'s NodeCapability was deleted: advertise again')
  const inference = queueDepth === undefined ? current.capabilities.inference : { ...current.capabilities.inference, queue_depth: queueDepth }
  const next = { ...current, capabilities: { ...current.capabilities, inference }, load: load as NodeLoad, availability: availability ?? (current.availability === 'offline' ? 'online' : current.availability), last_heartbeat: nowIso(hdk) }
  const hash = await hdk.update_entry({ original_action_hash: original, entry: next })
  hdk.emit_signal({ type: 'heartbeat', node_id: current.node_id, action_hash: hash, load: next.load })
  return hash
}
