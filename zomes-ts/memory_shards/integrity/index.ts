/**
 * memory_shards integrity zome: vector-memory partition coordination (zomes shards, routing,
 * sync). Entry types (`../types.ts`):
 *
 * - `ShardDescriptor`: a collection (name, dimensions, distance, shard count, replication factor,
 *   embedding model, creation epoch and time), written by any node;
 * - `CollectionDeleted`: the end of one collection, named by `{name, created_at}`, by any node;
 * - `RingEpoch`: the ring's members (agent key, weight) from an epoch on; members sorted by key,
 *   unique, weights finite and > 0;
 * - `ShardAssignment`: a host serves (or retired) a shard replica; only the host writes it;
 * - `SyncCheckpoint`: how far a host's replica has synced; only the host writes it.
 *
 * None is ever updated or deleted: readers take the newest (the highest epoch, the live
 * collection), so an edit in place would only hide history. An entry's own time is within
 * `SHARD_LIMITS.maxClockSkewMs` of its action, so a node cannot date a collection before a rival
 * one (the earliest `created_at` wins a concurrent create).
 *
 * Links: `AllCollections` (the collections anchor) and `NameToCollection` (a name's anchor) lead
 * to ShardDescriptors and CollectionDeleteds; `RingEpochs` (the ring anchor) to RingEpochs, its
 * tag the epoch as 4 big-endian bytes, so the newest is found without reading them all;
 * `CollectionToAssignment` and `CollectionToCheckpoint` (a collection uid's anchor) to a host's
 * assignments and checkpoints, linked by that host. Only the creator of a link deletes it.
 */
import type { EntryTypeDef, HolochainRecord, Op, ValidateContext, ValidateResult } from '../../hdk/index.ts'
import { Invalid, bytesEqual } from '../../hdk/index.ts'
import { validateOwnership } from '../../hdk/ownership.ts'
import { checkSchema, type Schema } from '../../hdk/schema.ts'
import { isMap } from '../../hdk/values.ts'
import { compareKeys, epochTag, isAgentKey } from '../rules.ts'
import { COLLECTION_NAME, COLLECTION_UID, SHARD_DISTANCES, SHARD_LIMITS, SHARD_STATES, type RingEpoch } from '../types.ts'

export const entry_types: readonly EntryTypeDef[] = [
  { name: 'ShardDescriptor', visibility: 'public' },
  { name: 'CollectionDeleted', visibility: 'public' },
  { name: 'RingEpoch', visibility: 'public' },
  { name: 'ShardAssignment', visibility: 'public' },
  { name: 'SyncCheckpoint', visibility: 'public' }
]
export const link_types: readonly string[] = ['AllCollections', 'NameToCollection', 'RingEpochs', 'CollectionToAssignment', 'CollectionToCheckpoint']

type Problem = string | null

const time: Schema = { type: 'number', integer: true, minimum: 1, maximum: Number.MAX_SAFE_INTEGER }
const epoch: Schema = { type: 'number', integer: true, minimum: 1, maximum: SHARD_LIMITS.maxEpoch }
const shard: Schema = { type: 'number', integer: true, minimum: 0, maximum: SHARD_LIMITS.maxShardCount - 1 }
const count: Schema = { type: 'number', integer: true, minimum: 0, maximum: Number.MAX_SAFE_INTEGER }
const uid: Schema = { type: 'string', pattern: COLLECTION_UID }

const DESCRIPTOR_SCHEMA: Schema = {
  type: 'object',
  required: ['name', 'dimensions', 'distance', 'shard_count', 'replication_factor', 'created_epoch', 'created_at'],
  properties: {
    name: { type: 'string', pattern: COLLECTION_NAME },
    dimensions: { type: 'number', integer: true, minimum: 1, maximum: SHARD_LIMITS.maxDimensions },
    distance: { type: 'string', enum: SHARD_DISTANCES },
    shard_count: { type: 'number', integer: true, minimum: 1, maximum: SHARD_LIMITS.maxShardCount },
    replication_factor: { type: 'number', integer: true, minimum: 1, maximum: SHARD_LIMITS.maxReplicationFactor },
    embedding_model: { type: 'string', minLength: 1, maxLength: SHARD_LIMITS.maxModelName, nullable: true },
    created_epoch: { type: 'number', integer: true, minimum: 0, maximum: SHARD_LIMITS.maxEpoch },
    created_at: time
  }
}
const DELETED_SCHEMA: Schema = { type: 'object', required: ['name', 'created_at', 'at'], properties: { name: { type: 'string', pattern: COLLECTION_NAME }, created_at: time, at: time } }
/** the fields besides `members`, whose agent keys the schema cannot express */
const EPOCH_SCHEMA: Schema = { type: 'object', required: ['epoch', 'at'], properties: { epoch, at: time } }
/** the fields besides `host` */
const ASSIGNMENT_SCHEMA: Schema = { type: 'object', required: ['collection', 'shard', 'epoch', 'state', 'at'], properties: { collection: uid, shard, epoch, state: { type: 'string', enum: SHARD_STATES }, at: time } }
const CHECKPOINT_SCHEMA: Schema = { type: 'object', required: ['collection', 'shard', 'epoch', 'seq', 'count', 'at'], properties: { collection: uid, shard, epoch, seq: count, count, at: time } }

function checkDescriptor (v: unknown): Problem {
  return checkSchema(v, DESCRIPTOR_SCHEMA, 'ShardDescriptor')
}

function checkDeleted (v: unknown): Problem {
  const p = checkSchema(v, DELETED_SCHEMA, 'CollectionDeleted')
  if (p !== null) return p
  const d = v as { created_at: number, at: number }
  return d.at >= d.created_at ? null : 'CollectionDeleted.at must not be before the collection\'s created_at'
}

function checkEpoch (v: unknown): Problem {
  if (!isMap(v)) return 'RingEpoch must be a map'
  const { members, ...rest } = v
  const p = checkSchema(rest, EPOCH_SCHEMA, 'RingEpoch')
  if (p !== null) return p
  if (!Array.isArray(members) || members.length === 0 || members.length > SHARD_LIMITS.maxMembers) return `RingEpoch.members must list 1 to ${SHARD_LIMITS.maxMembers} members`
  for (let i = 0; i < members.length; i++) {
    const m: unknown = members[i]
    const path = `RingEpoch.members[${i}]`
    if (!isMap(m)) return `${path} must be a map`
    for (const k of Object.keys(m)) if (k !== 'node' && k !== 'weight') return `${path}.${k} is not a known field`
    if (!isAgentKey(m.node)) return `${path}.node must be an agent key`
    if (typeof m.weight !== 'number' || !Number.isFinite(m.weight) || m.weight <= 0) return `${path}.weight must be a finite number > 0`
    if (i > 0 && compareKeys((members[i - 1] as { node: Uint8Array }).node, m.node) >= 0) return 'RingEpoch.members must be sorted by key, each key once'
  }
  return null
}

function checkHosted (v: unknown, schema: Schema, type: string): Problem {
  if (!isMap(v)) return `${type} must be a map`
  const { host, ...rest } = v
  return isAgentKey(host) ? checkSchema(rest, schema, type) : `${type}.host must be an agent key`
}

const checkAssignment = (v: unknown): Problem => checkHosted(v, ASSIGNMENT_SCHEMA, 'ShardAssignment')
const checkCheckpoint = (v: unknown): Problem => checkHosted(v, CHECKPOINT_SCHEMA, 'SyncCheckpoint')

const CHECKS: Record<string, (v: unknown) => Problem> = {
  ShardDescriptor: checkDescriptor,
  CollectionDeleted: checkDeleted,
  RingEpoch: checkEpoch,
  ShardAssignment: checkAssignment,
  SyncCheckpoint: checkCheckpoint
}

/** An entry's own time, within the skew of its action's (µs). */
function onTime (ms: number, field: string, op: Op): Problem {
  return Math.abs(ms - op.action.header.timestamp / 1000) <= SHARD_LIMITS.maxClockSkewMs
    ? null
    : `${field} is more than ${SHARD_LIMITS.maxClockSkewMs / 60_000} minutes from the action's time`
}

function validateEntry (type: string, value: unknown, op: Op): Problem {
  const check = CHECKS[type]
  if (check === undefined) return `unknown entry type ${type}`
  const p = check(value)
  if (p !== null) return p
  const author = op.action.header.author
  switch (type) {
    case 'ShardDescriptor': return onTime((value as { created_at: number }).created_at, 'ShardDescriptor.created_at', op)
    case 'ShardAssignment':
    case 'SyncCheckpoint': {
      const v = value as { host: Uint8Array, at: number }
      if (!bytesEqual(v.host.subarray(0, 35), author.subarray(0, 35))) return `a ${type} must be committed by its host`
      return onTime(v.at, `${type}.at`, op)
    }
    default: return onTime((value as { at: number }).at, `${type}.at`, op)
  }
}

function recordValue (record: HolochainRecord, ctx: ValidateContext): unknown {
  const e = record.entry
  return 'Present' in e && e.Present.entry_type === 'App' ? ctx.decode(e.Present) : undefined
}

/** The target of a link: the Create of an entry of one of `types`, and its author; or why not. */
function linkTarget (target: Uint8Array, types: string[], ctx: ValidateContext): { value: unknown, author: Uint8Array } | string {
  const record = ctx.must_get_valid_record(target)
  const content = record.signed_action.hashed.content
  const value = recordValue(record, ctx)
  if (content.data.type !== 'Create' || !types.some(t => CHECKS[t]!(value) === null)) return `the link must target a ${types.join(' or ')}`
  return { value, author: content.header.author }
}

function validateLink (type: string | undefined, target: Uint8Array, tag: Uint8Array, op: Op, ctx: ValidateContext): Problem {
  switch (type) {
    case 'AllCollections':
    case 'NameToCollection': {
      const t = linkTarget(target, ['ShardDescriptor', 'CollectionDeleted'], ctx)
      return typeof t === 'string' ? `${type}: ${t}` : null
    }
    case 'RingEpochs': {
      const t = linkTarget(target, ['RingEpoch'], ctx)
      if (typeof t === 'string') return `RingEpochs: ${t}`
      return bytesEqual(tag, epochTag((t.value as RingEpoch).epoch)) ? null : 'RingEpochs: the tag must be the epoch as 4 big-endian bytes'
    }
    case 'CollectionToAssignment':
    case 'CollectionToCheckpoint': {
      const entry = type === 'CollectionToAssignment' ? 'ShardAssignment' : 'SyncCheckpoint'
      const t = linkTarget(target, [entry], ctx)
      if (typeof t === 'string') return `${type}: ${t}`
      return bytesEqual(t.author.subarray(0, 35), op.action.header.author.subarray(0, 35)) ? null : `${type}: only the host links its ${entry}`
    }
    default:
      return `unknown link type ${String(type)}`
  }
}

export function validate (op: Op, ctx: ValidateContext): ValidateResult {
  const d = op.action.data
  if (d.type === 'Update' && op.app_entry !== undefined) return Invalid(`${op.app_entry.entry_type} entries are never updated: a newer entry supersedes them`)
  if (op.app_entry !== undefined) {
    const problem = validateEntry(op.app_entry.entry_type, op.app_entry.value, op)
    if (problem !== null) return Invalid(problem)
  }
  if (d.type === 'Delete') {
    const original = ctx.must_get_action(d.deletes_address).hashed.content.data
    if ((original.type === 'Create' || original.type === 'Update') && typeof original.entry_type === 'object') return Invalid('memory_shards entries are never deleted (a collection ends with a CollectionDeleted)')
  }
  if (d.type === 'CreateLink') {
    const problem = validateLink(op.link_type, d.target_address, d.tag, op, ctx)
    if (problem !== null) return Invalid(problem)
  }
  return validateOwnership(op, ctx)
}
