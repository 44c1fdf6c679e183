/**
 * DHT ops from actions, per Holochain 0.7's state model: which ops an action produces, the
 * authority basis of each, the op hash, and the wire form `dump_full_state` reports.
 */
import type { Action, Entry, OpType, Signature, ActionHash } from '../../../zomes-ts/hdk/index.ts'
import { dhtLocation, hashFromContent, retype, type HoloHash } from '../holo/hash.ts'

export interface SignedAction {
  action: Action
  hash: ActionHash
  signature: Signature
}

export interface ProducedOp {
  type: OpType
  basis: HoloHash
  hash: HoloHash
  location: number
}

export function opHash (type: OpType, actionHash: ActionHash): HoloHash {
  return hashFromContent({ op: type, action: actionHash }, 'DhtOp')
}

function op (type: OpType, basis: HoloHash, actionHash: ActionHash): ProducedOp {
  return { type, basis, hash: opHash(type, actionHash), location: dhtLocation(basis) }
}

/** The ops an action produces. `entryPublic` is false for private entries (no CreateEntry op). */
export function produceOps (sa: SignedAction, entryPublic: boolean): ProducedOp[] {
  const { action, hash } = sa
  const out: ProducedOp[] = [
    op('CreateRecord', hash, hash),
    op('AgentActivity', retype(action.header.author, 'Agent'), hash)
  ]
  const d = action.data
  switch (d.type) {
    case 'Create':
      if (entryPublic) out.push(op('CreateEntry', d.entry_hash, hash))
      break
    case 'Update':
      if (entryPublic) out.push(op('CreateEntry', d.entry_hash, hash))
      out.push(op('UpdateEntry', d.original_entry_address, hash))
      out.push(op('UpdateRecord', d.original_action_address, hash))
      break
    case 'Delete':
      out.push(op('DeleteEntry', d.deletes_entry_address, hash))
      out.push(op('DeleteRecord', d.deletes_address, hash))
      break
    case 'CreateLink':
      out.push(op('CreateLink', d.base_address, hash))
      break
    case 'DeleteLink':
      out.push(op('DeleteLink', d.base_address, hash))
      break
    default:
      break
  }
  return out
}

/** Ops whose wire form carries the entry. */
const CARRIES_ENTRY: ReadonlySet<OpType> = new Set(['CreateRecord', 'CreateEntry', 'UpdateEntry', 'UpdateRecord'])

/** `{ChainOp: {<type>: [signature, action, entry?]}}`, as `dump_full_state` lists ops. */
export function dhtOpWire (type: OpType, sa: SignedAction, entry: Entry | null): unknown {
  const body = CARRIES_ENTRY.has(type) ? [sa.signature, sa.action, entry] : [sa.signature, sa.action]
  return { ChainOp: { [type]: body } }
}
