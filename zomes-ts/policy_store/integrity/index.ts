/**
 * policy_store integrity zome. The distributed policy cache (zomes policies, decisions, audit).
 * Entry types are declared here; their schemas and coordinator zomes arrive with the issues that
 * build this DNA. Until then entries must be maps and belong to their authors.
 */
import type { EntryTypeDef, Op, ValidateContext, ValidateResult } from '../../hdk/index.ts'
import { validateOwnership } from '../../hdk/ownership.ts'

export const entry_types: readonly EntryTypeDef[] = [{ name: 'Policy', visibility: 'public' }, { name: 'PolicyDecision', visibility: 'public' }, { name: 'PolicyAudit', visibility: 'public' }]
export const link_types: readonly string[] = ['NameToPolicy', 'PolicyToDecision']

export function validate (op: Op, ctx: ValidateContext): ValidateResult {
  return validateOwnership(op, ctx)
}
