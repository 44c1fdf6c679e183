/**
 * resource_mesh integrity zome. Compute, storage, inference and memory allocation with leases (zomes resources, scheduling, accounting).
 * Entry types are declared here; their schemas and coordinator zomes arrive with the issues that
 * build this DNA. Until then entries must be maps and belong to their authors.
 */
import type { EntryTypeDef, Op, ValidateContext, ValidateResult } from '../../hdk/index.ts'
import { validateOwnership } from '../../hdk/ownership.ts'

export const entry_types: readonly EntryTypeDef[] = [{ name: 'ResourceOffer', visibility: 'public' }, { name: 'Allocation', visibility: 'public' }, { name: 'Lease', visibility: 'public' }, { name: 'UsageRecord', visibility: 'public' }]
export const link_types: readonly string[] = ['AllOffers', 'OfferToAllocation', 'AgentToAllocation']

export function validate (op: Op, ctx: ValidateContext): ValidateResult {
  return validateOwnership(op, ctx)
}
