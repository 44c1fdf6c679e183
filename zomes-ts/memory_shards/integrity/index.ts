/**
 * memory_shards integrity zome. Vector-memory partition coordination (zomes shards, routing, sync).
 * Entry types are declared here; their schemas and coordinator zomes arrive with the issues that
 * build this DNA. Until then entries must be maps and belong to their authors.
 */
import type { EntryTypeDef, Op, ValidateContext, ValidateResult } from '../../hdk/index.ts'
import { validateOwnership } from '../../hdk/ownership.ts'

export const entry_types: readonly EntryTypeDef[] = [{ name: 'ShardDescriptor', visibility: 'public' }, { name: 'ShardAssignment', visibility: 'public' }, { name: 'SyncCheckpoint', visibility: 'public' }]
export const link_types: readonly string[] = ['AllShards', 'ShardToAssignment', 'AgentToShard']

export function validate (op: Op, ctx: ValidateContext): ValidateResult {
  return validateOwnership(op, ctx)
}
