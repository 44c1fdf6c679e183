/**
 * The typed client of the agent_registry DNA, for agent code (see `zomes-ts/client.ts`).
 */
import type { ActionHash, AgentPubKey } from '../hdk/index.ts'
import { DnaClient, type CellTarget, type ZomeCallOptions, type ZomeCaller } from '../client.ts'
import type { BeatInput } from './coordinator/heartbeat.ts'
import type { NodeCapability, QueryPeersInput } from './types.ts'

export type { BeatInput }

export const AGENT_REGISTRY_ROLE = 'agent_registry'

export class AgentRegistryClient extends DnaClient {
  constructor (caller: ZomeCaller, target: CellTarget = { role_name: AGENT_REGISTRY_ROLE }) {
    super(caller, target)
  }

  /** Publishes (or updates) this node's NodeCapability; returns the action hash. */
  async advertise (capability: NodeCapability, options?: ZomeCallOptions): Promise<ActionHash> {
    return await this.call('capabilities', 'advertise', capability, options)
  }

  /** An agent's newest NodeCapability, or null when it never advertised. */
  async getCapability (agent: AgentPubKey, options?: ZomeCallOptions): Promise<NodeCapability | null> {
    return await this.call('capabilities', 'get_capability', agent, options)
  }

  /** The action hash of this node's original NodeCapability, or null. */
  async myCapabilityHash (options?: ZomeCallOptions): Promise<ActionHash | null> {
    return await this.call('capabilities', 'my_capability_hash', null, options)
  }

  /** Records this node's live load on its NodeCapability. */
  async beat (input: BeatInput, options?: ZomeCallOptions): Promise<ActionHash> {
    return await this.call('heartbeat', 'beat', input, options)
  }

  /** The NodeCapabilities of the mesh that meet the requirements, with their liveness. */
  async queryPeers (input: QueryPeersInput | null = null, options?: ZomeCallOptions): Promise<NodeCapability[]> {
    return await this.call('discovery', 'query_peers', input, options)
  }
}
