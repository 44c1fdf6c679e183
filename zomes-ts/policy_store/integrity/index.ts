/**
 * policy_store integrity zome: the distributed policy cache (zomes policies, decisions, audit).
 *
 * - `Policy {name, kind, document, version}`: a named policy document (e.g. the `ripple-moe`
 *   inference policy). Publishing a new one under a name supersedes the older ones: readers
 *   take the newest. When the DNA property `policy_admins` lists agent keys, only they may
 *   publish policies or link them from a policy name.
 * - PolicyDecision and PolicyAudit are declared for the decisions and audit zomes to come.
 * - Entries belong to their authors: only the author updates or deletes them.
 */
import type { EntryTypeDef, Op, ValidateContext, ValidateResult } from '../../hdk/index.ts'
import { Invalid } from '../../hdk/index.ts'
import { checkSchema, type Schema } from '../../hdk/schema.ts'
import { validateOwnership } from '../../hdk/ownership.ts'

export const entry_types: readonly EntryTypeDef[] = [{ name: 'Policy', visibility: 'public' }, { name: 'PolicyDecision', visibility: 'public' }, { name: 'PolicyAudit', visibility: 'public' }]
export const link_types: readonly string[] = ['NameToPolicy', 'PolicyToDecision']

export const POLICY_KINDS = ['moe', 'compute', 'storage', 'memory', 'access'] as const

/** Policy fields besides `document`, whose shape the component applying it checks (e.g. parseMoePolicy). */
export const POLICY_HEADER_SCHEMA: Schema = {
  type: 'object',
  required: ['name', 'kind', 'version'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 64, pattern: /^[a-z0-9][a-z0-9._-]*$/ },
    kind: { type: 'string', enum: POLICY_KINDS },
    version: { type: 'number', integer: true, minimum: 1, maximum: 1_000_000 }
  }
}

function checkPolicy (value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'Policy must be a map'
  const { document, ...header } = value as Record<string, unknown>
  if (typeof document !== 'object' || document === null || Array.isArray(document) || document instanceof Uint8Array) return 'Policy.document must be a map'
  return checkSchema(header, POLICY_HEADER_SCHEMA, 'Policy')
}

/** Whether the DNA names policy admins and the author is not one of them. */
function notAnAdmin (op: Op, ctx: ValidateContext): boolean {
  const admins = ctx.dna_info().modifiers.properties.policy_admins
  return Array.isArray(admins) && admins.length > 0 && !admins.includes(ctx.encode_hash(op.action.header.author))
}

export function validate (op: Op, ctx: ValidateContext): ValidateResult {
  if (op.app_entry?.entry_type === 'Policy') {
    const problem = checkPolicy(op.app_entry.value)
    if (problem !== null) return Invalid(problem)
    if (notAnAdmin(op, ctx)) return Invalid('only the agents in the DNA property policy_admins may publish policies')
  }
  // nor may anyone else hang links on a policy name (readers would have to wade through them)
  if (op.action.data.type === 'CreateLink' && op.link_type === 'NameToPolicy' && notAnAdmin(op, ctx)) {
    return Invalid('only the agents in the DNA property policy_admins may link policies')
  }
  return validateOwnership(op, ctx)
}
