/**
 * The typed client of the policy_store DNA, for agent code (see `zomes-ts/client.ts`).
 */
import type { ActionHash } from '../hdk/index.ts'
import { DnaClient, type CellTarget, type ZomeCallOptions, type ZomeCaller } from '../client.ts'
import type { PolicyInput, PublishedPolicy } from './types.ts'

export const POLICY_STORE_ROLE = 'policy_store'

export class PolicyStoreClient extends DnaClient {
  constructor (caller: ZomeCaller, target: CellTarget = { role_name: POLICY_STORE_ROLE }) {
    super(caller, target)
  }

  /** Publishes a new version of a named policy; returns the action hash of the publication. */
  async setPolicy (input: PolicyInput, options?: ZomeCallOptions): Promise<ActionHash> {
    return await this.call('policies', 'set_policy', input, options)
  }

  /** The newest publication under a name (an admin's, when the DNA names admins), or null. */
  async getPolicy (name: string, options?: ZomeCallOptions): Promise<PublishedPolicy | null> {
    return await this.call('policies', 'get_policy', name, options)
  }
}
