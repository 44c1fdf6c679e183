/**
 * agent_registry integrity zome: the `NodeCapability` entry type and its links.
 *
 * - A NodeCapability is valid when it matches the schema, its `node_id` is its author, its
 *   figures are within `LIMITS`, its demo models are among its loaded ones and its heartbeat
 *   time is within 5 minutes of the action.
 * - Only the author of a NodeCapability may update or delete it.
 * - `AgentToCapability` links go from the author's own key to their own NodeCapability;
 *   `AllNodes` links go from the all-nodes anchor to the author's own NodeCapability.
 * - Only the creator of a link may delete it.
 */
import type { EntryTypeDef, Op, ValidateContext, ValidateResult } from '../../hdk/index.ts'
import { Invalid, Valid, bytesEqual } from '../../hdk/index.ts'
import { checkSchema } from '../../hdk/schema.ts'
import { MAX_HEARTBEAT_SKEW_MS, NODE_CAPABILITY_SCHEMA, type NodeCapability } from '../types.ts'

export const entry_types: readonly EntryTypeDef[] = [{ name: 'NodeCapability', visibility: 'public' }]
export const link_types: readonly string[] = ['AgentToCapability', 'AllNodes']

const AGENT_PREFIX = [0x84, 0x20, 0x24]

function sameAgent (a: Uint8Array, b: Uint8Array): boolean {
  // compare prefix and core; the 4 location bytes are derived
  return bytesEqual(a.subarray(0, 35), b.subarray(0, 35))
}

function validateCapability (cap: unknown, op: Op, ctx: ValidateContext): ValidateResult {
  const problem = checkSchema(cap, NODE_CAPABILITY_SCHEMA, 'NodeCapability')
  if (problem !== null) return Invalid(problem)
  const c = cap as NodeCapability
  const loaded = c.capabilities.inference.models_loaded
  if (c.capabilities.inference.demo_models?.some(m => !loaded.includes(m)) === true) return Invalid('NodeCapability.capabilities.inference.demo_models must be models it has loaded')
  let nodeId: Uint8Array
  try {
    nodeId = ctx.decode_hash(c.node_id)
  } catch {
    return Invalid('NodeCapability.node_id is not a valid AgentPubKey')
  }
  if (!sameAgent(nodeId, op.action.header.author)) return Invalid('NodeCapability.node_id must be the author of the entry')
  const beat = Date.parse(c.last_heartbeat)
  if (!Number.isFinite(beat)) return Invalid('NodeCapability.last_heartbeat is not a valid time')
  const actionMs = op.action.header.timestamp / 1000
  if (Math.abs(beat - actionMs) > MAX_HEARTBEAT_SKEW_MS) return Invalid('NodeCapability.last_heartbeat is more than 5 minutes from the action time')
  return Valid
}

function ownCapabilityTarget (target: Uint8Array, author: Uint8Array, ctx: ValidateContext): ValidateResult {
  if (target[0] !== 0x84 || target[1] !== 0x29) return Invalid('capability links must target an ActionHash')
  const t = ctx.must_get_action(target)
  const d = t.hashed.content.data
  if (d.type !== 'Create') return Invalid('capability links must target the Create of a NodeCapability')
  if (!sameAgent(t.hashed.content.header.author, author)) return Invalid('capability links must target the author\'s own NodeCapability')
  return Valid
}

/**
 * Every Create or Update produces a `CreateEntry` op (the one that stores the entry) and the
 * conductor validates all ops of an action together, so the entry's content is checked once, on
 * that op; the cheap authorship rules hold on every op.
 */
export function validate (op: Op, ctx: ValidateContext): ValidateResult {
  const d = op.action.data
  const author = op.action.header.author
  switch (d.type) {
    case 'Create':
      if (op.app_entry?.entry_type === 'NodeCapability' && op.type === 'CreateEntry') return validateCapability(op.app_entry.value, op, ctx)
      return Valid
    case 'Update': {
      if (op.app_entry?.entry_type !== 'NodeCapability') return Valid
      const original = ctx.must_get_action(d.original_action_address)
      if (!sameAgent(original.hashed.content.header.author, author)) return Invalid('only the author of a NodeCapability may update it')
      return op.type === 'CreateEntry' ? validateCapability(op.app_entry.value, op, ctx) : Valid
    }
    case 'Delete': {
      const original = ctx.must_get_action(d.deletes_address)
      if (!sameAgent(original.hashed.content.header.author, author)) return Invalid('only the author of a NodeCapability may delete it')
      return Valid
    }
    case 'CreateLink': {
      if (op.link_type === 'AgentToCapability') {
        const base = d.base_address
        if (!(base[0] === AGENT_PREFIX[0] && base[1] === AGENT_PREFIX[1] && base[2] === AGENT_PREFIX[2]) || !sameAgent(base, author)) {
          return Invalid('AgentToCapability links must start at the author\'s own AgentPubKey')
        }
        return ownCapabilityTarget(d.target_address, author, ctx)
      }
      if (op.link_type === 'AllNodes') return ownCapabilityTarget(d.target_address, author, ctx)
      return Invalid(`unknown link type ${String(op.link_type)}`)
    }
    case 'DeleteLink': {
      const created = ctx.must_get_action(d.link_add_address)
      if (!sameAgent(created.hashed.content.header.author, author)) return Invalid('only the creator of a link may delete it')
      return Valid
    }
    default:
      return Valid
  }
}
