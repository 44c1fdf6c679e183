/**
 * The `resources` capability's interfaces and typed errors: leases of compute, inference,
 * storage and memory between a requester and the provider that grants them
 * (`zomes-ts/resource_mesh/types.ts` has the entries).
 */
import { FlexnodeError } from '../errors.ts'
import type { LeaseResourceType, LeaseResources } from '../../../zomes-ts/resource_mesh/types.ts'
import type { WasmTaskOutcome } from './wasm.ts'

export type { LeaseResourceType, LeaseResources }

/** A lease as the requester gets it back. */
export interface Lease {
  /** the Allocation's action hash (uhCkk…) */
  allocation_id: string
  /** the provider's agent key (uhCAk…) */
  node_id: string
  /** where the lease is used: the provider's mesh protocol */
  endpoint: string
  /** RFC 3339 */
  expires_at: string
  resource_type: LeaseResourceType
  resources: LeaseResources
}

/**
 * What the resources capability reports as it happens (the node's metrics): a lease refused, by
 * this node as its provider (`reason`: `LeaseRefusedError.reason`, else the error's name) or asked
 * by it and granted by no node (the error's name); a WASM task run here under a lease, by outcome.
 */
export type ResourcesEvent =
  | { kind: 'allocation_refused', side: 'provider' | 'requester', reason: string }
  | { kind: 'task', outcome: WasmTaskOutcome }

/** The provider refused a lease: it would take its committed total over its capacity, or it offers none. */
export class LeaseRefusedError extends FlexnodeError {
  static override readonly name = 'LeaseRefusedError'
  readonly reason: 'over_capacity' | 'no_offer' | 'duplicate' | 'too_long' | 'not_for_this_provider' | 'stale' | 'invalid'
  readonly node_id?: string

  constructor (message: string, reason: LeaseRefusedError['reason'], nodeId?: string) {
    super(message)
    this.reason = reason
    this.node_id = nodeId
  }
}

/** A renewal or release of an allocation by someone who neither holds nor provides it. */
export class NotTheHolderError extends FlexnodeError {
  static override readonly name = 'NotTheHolderError'
  readonly allocation_id: string

  constructor (allocationId: string) {
    super(`allocation ${allocationId} is not held by the caller: only its holder (or its provider) may renew or release it`)
    this.allocation_id = allocationId
  }
}

/** The allocation is not live on its provider: it expired, was released or renewed, or never existed. */
export class LeaseNotLiveError extends FlexnodeError {
  static override readonly name = 'LeaseNotLiveError'
  readonly allocation_id: string
  readonly state: 'expired' | 'unknown'

  constructor (allocationId: string, state: LeaseNotLiveError['state']) {
    super(state === 'expired' ? `allocation ${allocationId} has expired` : `allocation ${allocationId} is not a live lease of this provider`)
    this.allocation_id = allocationId
    this.state = state
  }
}

/** No node of the mesh could grant the lease; `tried` says why each candidate refused. */
export class NoCapacityError extends FlexnodeError {
  static override readonly name = 'NoCapacityError'
  readonly tried: number

  constructor (message: string, tried: number) {
    super(message)
    this.tried = tried
  }
}
