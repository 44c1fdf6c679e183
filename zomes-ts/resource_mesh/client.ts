/**
 * The typed client of the resource_mesh DNA, for agent code (see `zomes-ts/client.ts`).
 */
import type { ActionHash, AgentPubKey, Signature } from '../hdk/index.ts'
import { DnaClient, type CellTarget, type ZomeCallOptions, type ZomeCaller } from '../client.ts'
import type { UsageTotal } from './coordinator/accounting.ts'
import type { AllocationRecord, CommitAllocationInput, CommitReleaseInput, LeaseChange, LeaseRequest, LedgerHead, ResourceOffer, UsageRecord } from './types.ts'

export type { UsageTotal }

export const RESOURCE_MESH_ROLE = 'resource_mesh'

export class ResourceMeshClient extends DnaClient {
  constructor (caller: ZomeCaller, target: CellTarget = { role_name: RESOURCE_MESH_ROLE }) {
    super(caller, target)
  }

  /** Publishes (or updates) this node's capacity for leases; returns the offer's action hash. */
  async publishOffer (offer: ResourceOffer, options?: ZomeCallOptions): Promise<ActionHash> {
    return await this.call('resources', 'publish_offer', offer, options)
  }

  /** This node's offer, newest ledger step and live leases, from its own chain. */
  async ledgerHead (options?: ZomeCallOptions): Promise<LedgerHead> {
    return await this.call('resources', 'ledger_head', null, options)
  }

  /** Commits an allocation or renewal decided under the ledger lock; validation checks it first. */
  async commitAllocation (input: CommitAllocationInput, options?: ZomeCallOptions): Promise<ActionHash> {
    return await this.call('resources', 'commit_allocation', input, options)
  }

  /** Commits a release decided under the ledger lock. */
  async commitRelease (input: CommitReleaseInput, options?: ZomeCallOptions): Promise<ActionHash> {
    return await this.call('resources', 'commit_release', input, options)
  }

  async getAllocation (hash: ActionHash, options?: ZomeCallOptions): Promise<AllocationRecord | null> {
    return await this.call('resources', 'get_allocation', hash, options)
  }

  /** The allocations granted to `holder`, newest first. */
  async holderAllocations (holder: AgentPubKey, options?: ZomeCallOptions): Promise<AllocationRecord[]> {
    return await this.call('resources', 'holder_allocations', holder, options)
  }

  /** This agent's signature of a lease request it makes. */
  async signRequest (request: LeaseRequest, options?: ZomeCallOptions): Promise<Signature> {
    return await this.call('scheduling', 'sign_request', request, options)
  }

  /** This agent's signature of a renewal or release it asks for. */
  async signChange (change: LeaseChange, options?: ZomeCallOptions): Promise<Signature> {
    return await this.call('scheduling', 'sign_change', change, options)
  }

  async recordUsage (usage: UsageRecord, options?: ZomeCallOptions): Promise<ActionHash> {
    return await this.call('accounting', 'record_usage', usage, options)
  }

  async usageOf (allocation: ActionHash, options?: ZomeCallOptions): Promise<UsageTotal> {
    return await this.call('accounting', 'usage_of', allocation, options)
  }
}
