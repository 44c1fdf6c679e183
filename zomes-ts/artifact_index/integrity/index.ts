/**
 * artifact_index integrity zome: the IPFS CID registry and provenance (zomes artifacts,
 * provenance, replication). Entry types (`../types.ts`):
 *
 * - `ArtifactRecord`: a CID and what its bytes are (name, size, sha256, media type), what
 *   produced it and how many providers it wants; its `producer` is its author;
 * - `ProvenanceLink`: the CID was derived from another CID, built by a builder, or produced under
 *   an allocation; any agent may state one;
 * - `ProviderRecord`: a node holds the CID; its `provider` is its author, and only it deletes
 *   the record (withdraws).
 *
 * Shapes: CIDs parse as CIDv0 or CIDv1 and are in canonical text; `sha256` is 64 lowercase hex
 * digits; `size` a non-negative safe integer; `name` 1-255 characters without control
 * characters; `media_type` `type/subtype`; `1 ≤ replication.min ≤ replication.max ≤ 64`; an
 * entry's own time within `ARTIFACT_LIMITS.maxClockSkewUs` of its action. The bytes themselves
 * are checked against the CID when fetched, not here.
 *
 * No entry is ever updated; ArtifactRecords and ProvenanceLinks are never deleted.
 *
 * Links: `CidToArtifact` (a CID's anchor), `AllArtifacts` (the artifacts anchor) and
 * `AgentToArtifact` (the producer's key) lead to ArtifactRecords; `CidToProvenance` to
 * ProvenanceLinks; `CidToProvider` and `AgentToProvider` (the provider's key) to ProviderRecords.
 * Each is made by the author of its target, an `AgentTo…` link from the author's own key; only
 * the creator of a link deletes it.
 */
import type { EntryTypeDef, HolochainRecord, Op, ValidateContext, ValidateResult } from '../../hdk/index.ts'
import { Invalid } from '../../hdk/index.ts'
import { validateOwnership } from '../../hdk/ownership.ts'
import { checkSchema, type Schema } from '../../hdk/schema.ts'
import { isMap } from '../../hdk/values.ts'
import { CONTROL_CHARS, MEDIA_TYPE, SHA256_HEX, cidProblem, isAgentKey, sameAgent } from '../rules.ts'
import { ARTIFACT_LIMITS, PROVENANCE_KINDS } from '../types.ts'

export const entry_types: readonly EntryTypeDef[] = [
  { name: 'ArtifactRecord', visibility: 'public' },
  { name: 'ProvenanceLink', visibility: 'public' },
  { name: 'ProviderRecord', visibility: 'public' }
]
export const link_types: readonly string[] = ['CidToArtifact', 'AllArtifacts', 'AgentToArtifact', 'CidToProvenance', 'CidToProvider', 'AgentToProvider']

type Problem = string | null

const time: Schema = { type: 'number', integer: true, minimum: 1, maximum: Number.MAX_SAFE_INTEGER }
const cidText: Schema = { type: 'string', minLength: 1, maxLength: ARTIFACT_LIMITS.maxCid }
const replicas: Schema = { type: 'number', integer: true, minimum: 1, maximum: ARTIFACT_LIMITS.maxReplicas }

/** the fields besides `producer` and `produced_by`, which the schema cannot express */
const RECORD_SCHEMA: Schema = {
  type: 'object',
  required: ['cid', 'name', 'size', 'sha256', 'media_type', 'replication', 'created_at'],
  properties: {
    cid: cidText,
    name: { type: 'string', minLength: 1, maxLength: ARTIFACT_LIMITS.maxName },
    size: { type: 'number', integer: true, minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    sha256: { type: 'string' },
    media_type: { type: 'string', minLength: 1, maxLength: ARTIFACT_LIMITS.maxMediaType },
    replication: { type: 'object', required: ['min', 'max'], properties: { min: replicas, max: replicas } },
    created_at: time
  }
}
const PROVENANCE_SCHEMA: Schema = {
  type: 'object',
  required: ['cid', 'kind', 'target'],
  properties: { cid: cidText, kind: { type: 'string', enum: PROVENANCE_KINDS }, target: { type: 'string', minLength: 1, maxLength: ARTIFACT_LIMITS.maxTarget } }
}
/** the fields besides `provider` */
const PROVIDER_SCHEMA: Schema = { type: 'object', required: ['cid', 'since'], properties: { cid: cidText, since: time } }

const noControl = (s: string, path: string): Problem => CONTROL_CHARS.test(s) ? `${path} must not contain control characters` : null

function checkProducedBy (v: unknown): Problem {
  if (v === null) return null
  const path = 'ArtifactRecord.produced_by'
  const keys = isMap(v) ? Object.keys(v) : []
  if (!isMap(v) || keys.length !== 1 || (keys[0] !== 'allocation' && keys[0] !== 'task')) return `${path} must be null, {allocation} or {task}`
  const id = v[keys[0]]
  if (typeof id !== 'string' || id.length === 0 || id.length > ARTIFACT_LIMITS.maxProducedBy) return `${path}.${keys[0]} must be 1 to ${ARTIFACT_LIMITS.maxProducedBy} characters`
  return noControl(id, `${path}.${keys[0]}`)
}

function checkRecord (v: unknown): Problem {
  if (!isMap(v)) return 'ArtifactRecord must be a map'
  const { producer, produced_by: producedBy, ...rest } = v
  const p = checkSchema(rest, RECORD_SCHEMA, 'ArtifactRecord')
  if (p !== null) return p
  if (!isAgentKey(producer)) return 'ArtifactRecord.producer must be an agent key'
  if (producedBy === undefined) return 'ArtifactRecord.produced_by is required (null when unknown)'
  const r = rest as { cid: string, name: string, sha256: string, media_type: string, replication: { min: number, max: number } }
  return cidProblem(r.cid, 'ArtifactRecord.cid') ??
    noControl(r.name, 'ArtifactRecord.name') ??
    (SHA256_HEX.test(r.sha256) ? null : 'ArtifactRecord.sha256 must be 64 lowercase hex digits') ??
    (MEDIA_TYPE.test(r.media_type) ? null : 'ArtifactRecord.media_type must be type/subtype') ??
    (r.replication.min <= r.replication.max ? null : 'ArtifactRecord.replication.min must not exceed replication.max') ??
    checkProducedBy(producedBy)
}

function checkProvenance (v: unknown): Problem {
  const p = checkSchema(v, PROVENANCE_SCHEMA, 'ProvenanceLink')
  if (p !== null) return p
  const l = v as { cid: string, kind: string, target: string }
  const cid = cidProblem(l.cid, 'ProvenanceLink.cid') ?? noControl(l.target, 'ProvenanceLink.target')
  if (cid !== null || l.kind !== 'derived_from') return cid
  return cidProblem(l.target, 'ProvenanceLink.target') ?? (l.target === l.cid ? 'ProvenanceLink: an artifact is not derived from itself' : null)
}

function checkProvider (v: unknown): Problem {
  if (!isMap(v)) return 'ProviderRecord must be a map'
  const { provider, ...rest } = v
  const p = checkSchema(rest, PROVIDER_SCHEMA, 'ProviderRecord')
  if (p !== null) return p
  return isAgentKey(provider) ? cidProblem(rest.cid, 'ProviderRecord.cid') : 'ProviderRecord.provider must be an agent key'
}

const CHECKS: Record<string, (v: unknown) => Problem> = {
  ArtifactRecord: checkRecord,
  ProvenanceLink: checkProvenance,
  ProviderRecord: checkProvider
}

/** The entries that belong to an agent named in them, and their own time (µs). */
const OWNED: Record<string, { article: string, who: string, when: string }> = {
  ArtifactRecord: { article: 'an', who: 'producer', when: 'created_at' },
  ProviderRecord: { article: 'a', who: 'provider', when: 'since' }
}

/** Why an app entry created by `op` is invalid: its shape, then who names itself in it, and its time. */
function entryProblem (entry: { entry_type: string, value: unknown }, op: Op): Problem {
  const check = CHECKS[entry.entry_type]
  const shape = check === undefined ? `unknown entry type ${entry.entry_type}` : check(entry.value)
  const own = OWNED[entry.entry_type]
  if (shape !== null || own === undefined) return shape
  const fields = entry.value as Record<string, unknown>
  const { author, timestamp } = op.action.header
  if (!sameAgent(fields[own.who] as Uint8Array, author)) return `${own.article} ${entry.entry_type}'s ${own.who} must be its author`
  return Math.abs((fields[own.when] as number) - timestamp) <= ARTIFACT_LIMITS.maxClockSkewUs
    ? null
    : `${entry.entry_type}.${own.when} is more than ${ARTIFACT_LIMITS.maxClockSkewUs / 60_000_000} minutes from the action's time`
}

function recordValue (record: HolochainRecord, ctx: ValidateContext): unknown {
  const e = record.entry
  return 'Present' in e && e.Present.entry_type === 'App' ? ctx.decode(e.Present) : undefined
}

/** What each link type leads to, and whether its base is its creator's own key. */
const LINKS: Record<string, { target: string, fromAuthor: boolean }> = {
  CidToArtifact: { target: 'ArtifactRecord', fromAuthor: false },
  AllArtifacts: { target: 'ArtifactRecord', fromAuthor: false },
  AgentToArtifact: { target: 'ArtifactRecord', fromAuthor: true },
  CidToProvenance: { target: 'ProvenanceLink', fromAuthor: false },
  CidToProvider: { target: 'ProviderRecord', fromAuthor: false },
  AgentToProvider: { target: 'ProviderRecord', fromAuthor: true }
}

function validateLink (type: string | undefined, base: Uint8Array, target: Uint8Array, op: Op, ctx: ValidateContext): Problem {
  const rule = type === undefined ? undefined : LINKS[type]
  if (rule === undefined) return `unknown link type ${String(type)}`
  const author = op.action.header.author
  if (rule.fromAuthor && !sameAgent(base, author)) return `${type}: the base must be the link creator's own agent key`
  const record = ctx.must_get_valid_record(target)
  const content = record.signed_action.hashed.content
  const a = rule.target === 'ArtifactRecord' ? 'an' : 'a'
  if (content.data.type !== 'Create' || CHECKS[rule.target]!(recordValue(record, ctx)) !== null) return `${type}: the link must target ${a} ${rule.target}`
  return sameAgent(content.header.author, author) ? null : `${type}: only the author of ${a} ${rule.target} links it`
}

/** The entry type of the action a Delete deletes (this DNA has one integrity zome) and its author. */
function deleted (deletes: Uint8Array, ctx: ValidateContext): { type: string | undefined, author: Uint8Array } {
  const original = ctx.must_get_action(deletes).hashed.content
  const d = original.data
  const type = (d.type === 'Create' || d.type === 'Update') && typeof d.entry_type === 'object' ? entry_types[d.entry_type.App.entry_index]?.name : undefined
  return { type, author: original.header.author }
}

/** Why a Delete is invalid: records and provenance stay; a ProviderRecord goes by its provider only. */
function deleteProblem (deletes: Uint8Array, op: Op, ctx: ValidateContext): Problem {
  const { type, author } = deleted(deletes, ctx)
  if (type === 'ArtifactRecord' || type === 'ProvenanceLink') return `${type} entries are never deleted`
  return type === 'ProviderRecord' && !sameAgent(author, op.action.header.author) ? 'only its provider may delete a ProviderRecord' : null
}

function actionProblem (op: Op, ctx: ValidateContext): Problem {
  const d = op.action.data
  switch (d.type) {
    case 'Create': return op.app_entry === undefined ? null : entryProblem(op.app_entry, op)
    case 'Update': return op.app_entry === undefined ? null : `${op.app_entry.entry_type} entries are never updated`
    case 'Delete': return deleteProblem(d.deletes_address, op, ctx)
    case 'CreateLink': return validateLink(op.link_type, d.base_address, d.target_address, op, ctx)
    default: return null
  }
}

export function validate (op: Op, ctx: ValidateContext): ValidateResult {
  const problem = actionProblem(op, ctx)
  return problem === null ? validateOwnership(op, ctx) : Invalid(problem)
}
