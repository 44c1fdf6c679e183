/**
 * artifact_index integrity zome. IPFS CID registry and provenance (zomes artifacts, provenance, replication).
 * Entry types are declared here; their schemas and coordinator zomes arrive with the issues that
 * build this DNA. Until then entries must be maps and belong to their authors.
 */
import type { EntryTypeDef, Op, ValidateContext, ValidateResult } from '../../hdk/index.ts'
import { validateOwnership } from '../../hdk/ownership.ts'

export const entry_types: readonly EntryTypeDef[] = [{ name: 'Artifact', visibility: 'public' }, { name: 'ProvenanceRecord', visibility: 'public' }, { name: 'ReplicaRecord', visibility: 'public' }]
export const link_types: readonly string[] = ['CidToArtifact', 'ArtifactToReplica', 'AgentToArtifact']

export function validate (op: Op, ctx: ValidateContext): ValidateResult {
  return validateOwnership(op, ctx)
}
