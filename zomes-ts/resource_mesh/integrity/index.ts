/**
 * resource_mesh integrity zome: leases of compute, inference, storage and memory (zomes
 * resources, scheduling, accounting). Entry types (`../types.ts`):
 *
 * - `ResourceOffer`: a provider's capacity for leases; only its author updates it.
 * - `Allocation`: a lease, authored by the provider, carrying the requester's signed request; a
 *   renewal is an Allocation carrying the holder's signed renewal. Never updated or deleted.
 * - `Release`: a lease ended early, authored by the provider, on the holder's signed request or
 *   its own. Never updated or deleted.
 * - `UsageRecord`: what a lease used, authored by its provider.
 *
 * Allocations and releases are the steps of the provider's ledger; every authority checks each
 * step from the records it names: both signatures (the record's, by the provider; the request's,
 * by the requester), the request's freshness, the expiry (after the step, within the offer's and
 * the DNA's maximum), that no live lease is dropped unless it expired, was released or renewed,
 * and that the live leases plus this one fit the offer's capacity.
 */
import type { ActionHash, EntryTypeDef, HolochainRecord, Op, ValidateContext, ValidateResult } from '../../hdk/index.ts'
import { Invalid, bytesEqual } from '../../hdk/index.ts'
import { validateOwnership } from '../../hdk/ownership.ts'
import { committedWith, maxLeaseSeconds, overCommitted, staleness } from '../rules.ts'
import { HASH_BYTES, isBytes, isMap } from '../../hdk/values.ts'
import { LEASE_DIMENSIONS, LEASE_LIMITS, LEASE_RESOURCE_TYPES, maxAmountOf, type Allocation, type LeaseChange, type LedgerLink, type Release, type ResourceOffer, type UsageRecord } from '../types.ts'

export const entry_types: readonly EntryTypeDef[] = [{ name: 'ResourceOffer', visibility: 'public' }, { name: 'Allocation', visibility: 'public' }, { name: 'Release', visibility: 'public' }, { name: 'UsageRecord', visibility: 'public' }]
export const link_types: readonly string[] = ['AgentToOffer', 'AgentToAllocation', 'AllocationToUsage']

const SIGNATURE_BYTES = 64
const NONCE_BYTES = 16
const US = 1_000_000

type Problem = string | null

const isAmount = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= max
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0

function onlyFields (v: Record<string, unknown>, fields: readonly string[], path: string): Problem {
  for (const k of Object.keys(v)) if (!fields.includes(k)) return `${path}.${k} is not a known field`
  return null
}

function checkResources (v: unknown, path: string): Problem {
  if (!isMap(v)) return `${path} must be a map`
  const extra = onlyFields(v, LEASE_DIMENSIONS, path)
  if (extra !== null) return extra
  for (const d of LEASE_DIMENSIONS) if (!isAmount(v[d], maxAmountOf(d))) return `${path}.${d} must be a number from 0 to ${maxAmountOf(d)}`
  return null
}

function checkDuration (v: unknown, path: string): Problem {
  return Number.isInteger(v) && (v as number) >= LEASE_LIMITS.minLeaseSeconds && (v as number) <= LEASE_LIMITS.maxLeaseSeconds
    ? null
    : `${path} must be a whole number of seconds from ${LEASE_LIMITS.minLeaseSeconds} to ${LEASE_LIMITS.maxLeaseSeconds}`
}

function checkRequest (v: unknown): Problem {
  if (!isMap(v)) return 'Allocation.request must be a map'
  const extra = onlyFields(v, ['requester', 'provider', 'resource_type', 'resources', 'duration_seconds', 'workload_class', 'nonce', 'requested_at'], 'Allocation.request')
  if (extra !== null) return extra
  if (!isBytes(v.requester, HASH_BYTES) || !isBytes(v.provider, HASH_BYTES)) return 'Allocation.request.requester and provider must be agent keys'
  if (!(LEASE_RESOURCE_TYPES as readonly unknown[]).includes(v.resource_type)) return `Allocation.request.resource_type must be one of ${LEASE_RESOURCE_TYPES.join(', ')}`
  if (v.workload_class !== null && (typeof v.workload_class !== 'string' || v.workload_class.length === 0 || v.workload_class.length > 64)) return 'Allocation.request.workload_class must be null or 1-64 characters'
  if (!isBytes(v.nonce, NONCE_BYTES)) return `Allocation.request.nonce must be ${NONCE_BYTES} bytes`
  if (!isTime(v.requested_at)) return 'Allocation.request.requested_at must be a timestamp'
  return checkResources(v.resources, 'Allocation.request.resources') ?? checkDuration(v.duration_seconds, 'Allocation.request.duration_seconds')
}

function checkChange (v: unknown, kind: LeaseChange['kind'], path: string): Problem {
  if (!isMap(v) || !isMap(v.change) || !isBytes(v.signature, SIGNATURE_BYTES)) return `${path} must be {change, signature}`
  const c = v.change
  const extra = onlyFields(c, ['kind', 'allocation', 'duration_seconds', 'nonce', 'requested_at'], `${path}.change`)
  if (extra !== null) return extra
  if (c.kind !== kind) return `${path}.change.kind must be ${kind}`
  if (!isBytes(c.allocation, HASH_BYTES)) return `${path}.change.allocation must be an action hash`
  if (!isBytes(c.nonce, NONCE_BYTES)) return `${path}.change.nonce must be ${NONCE_BYTES} bytes`
  if (!isTime(c.requested_at)) return `${path}.change.requested_at must be a timestamp`
  if (kind === 'renew') return checkDuration(c.duration_seconds, `${path}.change.duration_seconds`)
  return c.duration_seconds === null ? null : `${path}.change.duration_seconds must be null`
}

function checkLedger (v: unknown, path: string): Problem {
  if (!isMap(v)) return `${path} must be a map`
  const extra = onlyFields(v, ['seq', 'prev', 'live'], path)
  if (extra !== null) return extra
  if (!Number.isSafeInteger(v.seq) || (v.seq as number) < 0) return `${path}.seq must be a whole number`
  if (v.prev !== null && !isBytes(v.prev, HASH_BYTES)) return `${path}.prev must be null or an action hash`
  if ((v.prev === null) !== (v.seq === 0)) return `${path}.prev is null exactly for the first step (seq 0)`
  if (!Array.isArray(v.live) || v.live.length > LEASE_LIMITS.maxLive) return `${path}.live must be a list of at most ${LEASE_LIMITS.maxLive} action hashes`
  for (const h of v.live) if (!isBytes(h, HASH_BYTES)) return `${path}.live must hold action hashes`
  return null
}

function checkAllocationShape (v: unknown): Problem {
  if (!isMap(v)) return 'Allocation must be a map'
  const extra = onlyFields(v, ['request', 'request_signature', 'offer', 'expires_at', 'renewal', 'ledger'], 'Allocation')
  if (extra !== null) return extra
  if (!isBytes(v.request_signature, SIGNATURE_BYTES)) return 'Allocation.request_signature must be a signature'
  if (!isBytes(v.offer, HASH_BYTES)) return 'Allocation.offer must be an action hash'
  if (!isTime(v.expires_at)) return 'Allocation.expires_at must be a timestamp'
  if (v.renewal !== null) {
    const p = checkChange(v.renewal, 'renew', 'Allocation.renewal')
    if (p !== null) return p
  }
  return checkRequest(v.request) ?? checkLedger(v.ledger, 'Allocation.ledger')
}

function checkReleaseShape (v: unknown): Problem {
  if (!isMap(v)) return 'Release must be a map'
  const extra = onlyFields(v, ['allocation', 'change', 'ledger'], 'Release')
  if (extra !== null) return extra
  if (!isBytes(v.allocation, HASH_BYTES)) return 'Release.allocation must be an action hash'
  if (v.change !== null) {
    const p = checkChange(v.change, 'release', 'Release.change')
    if (p !== null) return p
  }
  return checkLedger(v.ledger, 'Release.ledger')
}

function checkOffer (v: unknown): Problem {
  if (!isMap(v)) return 'ResourceOffer must be a map'
  const extra = onlyFields(v, ['capacity', 'max_lease_seconds'], 'ResourceOffer')
  if (extra !== null) return extra
  return checkResources(v.capacity, 'ResourceOffer.capacity') ?? checkDuration(v.max_lease_seconds, 'ResourceOffer.max_lease_seconds')
}

function checkUsage (v: unknown): Problem {
  if (!isMap(v)) return 'UsageRecord must be a map'
  const extra = onlyFields(v, ['allocation', 'cpu_seconds', 'memory_gb_seconds', 'tokens', 'tasks', 'at'], 'UsageRecord')
  if (extra !== null) return extra
  if (!isBytes(v.allocation, HASH_BYTES)) return 'UsageRecord.allocation must be an action hash'
  for (const k of ['cpu_seconds', 'memory_gb_seconds', 'tokens', 'tasks']) if (!isAmount(v[k], Number.MAX_SAFE_INTEGER)) return `UsageRecord.${k} must be a number of at least 0`
  return isTime(v.at) ? null : 'UsageRecord.at must be a timestamp'
}

// ---------------------------------------------------------------------------------------------
// the records a step names

interface Named<T> { hash: ActionHash, author: Uint8Array, timestamp: number, value: T }

function recordValue (record: HolochainRecord, ctx: ValidateContext): unknown {
  const e = record.entry
  return 'Present' in e && e.Present.entry_type === 'App' ? ctx.decode(e.Present) : undefined
}

function named<T> (hash: ActionHash, ctx: ValidateContext, check: (v: unknown) => Problem, what: string): Named<T> | string {
  const record = ctx.must_get_valid_record(hash)
  const value = recordValue(record, ctx)
  if (check(value) !== null) return `${ctx.encode_hash(hash)} is not ${what}`
  const header = record.signed_action.hashed.content.header
  return { hash, author: header.author, timestamp: header.timestamp, value: value as T }
}

const key = (h: Uint8Array): string => Array.from(h, b => b.toString(16).padStart(2, '0')).join('')

/** Within the bounds of a request signed `requested_at`, for a step made at `created`. */
function fresh (requestedAt: number, created: number, what: string): Problem {
  switch (staleness(requestedAt, created)) {
    case 'too_old': return `${what} was signed more than ${LEASE_LIMITS.maxRequestAgeUs / US} s before the step`
    case 'ahead': return `${what} is dated more than ${LEASE_LIMITS.maxClockSkewUs / US} s after the step`
    default: return null
  }
}

interface LedgerView {
  /** the allocations live before this step (the previous step's live set and the previous step if an allocation) */
  before: Map<string, Named<Allocation>>
}

/** The leases live before a step, from its previous step; or why the link is wrong. */
function ledgerBefore (link: LedgerLink, op: Op, ctx: ValidateContext): LedgerView | string {
  const before = new Map<string, Named<Allocation>>()
  if (link.prev === null) return { before }
  const author = op.action.header.author
  const prevRecord = ctx.must_get_valid_record(link.prev)
  const prevHeader = prevRecord.signed_action.hashed.content.header
  const prev = recordValue(prevRecord, ctx)
  if (!bytesEqual(prevHeader.author, author)) return 'ledger.prev is not a step of this provider'
  if (prevHeader.timestamp > op.action.header.timestamp) return 'ledger.prev is later than this step'
  const prevIsAllocation = checkAllocationShape(prev) === null
  if (!prevIsAllocation && checkReleaseShape(prev) !== null) return 'ledger.prev is not an Allocation or a Release'
  const prevLedger = (prev as Allocation | Release).ledger
  if (prevLedger.seq !== link.seq - 1) return `ledger.seq must follow ledger.prev's (${prevLedger.seq})`
  const hashes = prevIsAllocation ? [...prevLedger.live, link.prev] : prevLedger.live
  for (const h of hashes) {
    const a = named<Allocation>(h, ctx, checkAllocationShape, 'an Allocation')
    if (typeof a === 'string') return a
    if (!bytesEqual(a.author, author)) return 'a live lease of the ledger is not this provider\'s'
    before.set(key(h), a)
  }
  return { before }
}

/**
 * The live set after a step: a subset of the leases live before it, and every lease it drops
 * expired by the step's time or is `ending` (released or renewed by this step).
 */
function checkLive (link: LedgerLink, view: LedgerView, created: number, ending: ActionHash | null): Problem {
  const live = new Set<string>()
  for (const h of link.live) {
    const k = key(h)
    if (live.has(k)) return 'ledger.live lists a lease twice'
    if (!view.before.has(k)) return 'ledger.live lists a lease that was not live before this step'
    live.add(k)
  }
  if (ending !== null) {
    if (!view.before.has(key(ending))) return 'the lease it ends is not live in the provider\'s ledger'
    if (live.has(key(ending))) return 'the lease it ends is still listed as live'
  }
  for (const [k, a] of view.before) {
    if (live.has(k) || (ending !== null && k === key(ending))) continue
    if (a.value.expires_at > created) return 'ledger.live drops a lease that has not expired'
  }
  return null
}

function validateAllocation (a: Allocation, op: Op, ctx: ValidateContext): Problem {
  const header = op.action.header
  const created = header.timestamp
  const req = a.request
  if (!bytesEqual(header.author, req.provider)) return 'an Allocation must be committed by the provider its request names'
  if (!ctx.verify_signature(req.requester, a.request_signature, req)) return 'the request is not signed by its requester'
  const offer = named<ResourceOffer>(a.offer, ctx, checkOffer, 'a ResourceOffer')
  if (typeof offer === 'string') return offer
  if (!bytesEqual(offer.author, header.author)) return 'Allocation.offer is not the provider\'s'
  if (offer.timestamp > created) return 'Allocation.offer is later than the allocation'

  let duration = req.duration_seconds
  let ending: ActionHash | null = null
  if (a.renewal !== null) {
    const { change, signature } = a.renewal
    if (!ctx.verify_signature(req.requester, signature, change)) return 'the renewal is not signed by the holder'
    const p = fresh(change.requested_at, created, 'the renewal')
    if (p !== null) return p
    duration = change.duration_seconds ?? 0
    ending = change.allocation
  } else {
    const p = fresh(req.requested_at, created, 'the request')
    if (p !== null) return p
  }
  const max = maxLeaseSeconds(offer.value)
  if (duration > max) return `the lease is longer than the provider's maximum of ${max} s`
  if (a.expires_at <= created) return 'Allocation.expires_at is not after the allocation'
  if (a.expires_at > created + duration * US) return 'Allocation.expires_at is later than the lease\'s duration allows'

  const view = ledgerBefore(a.ledger, op, ctx)
  if (typeof view === 'string') return view
  const live = checkLive(a.ledger, view, created, ending)
  if (live !== null) return live
  if (ending !== null) {
    const renewed = view.before.get(key(ending))!.value
    if (!bytesEqual(renewed.request.nonce, req.nonce) || !bytesEqual(renewed.request.requester, req.requester)) return 'a renewal must carry the request of the lease it renews'
  } else {
    for (const other of view.before.values()) if (bytesEqual(other.value.request.nonce, req.nonce)) return 'the request was already granted (its nonce is live)'
  }
  // the committed total after this step fits the offer
  const total = committedWith(req.resources, a.ledger.live.map(h => view.before.get(key(h))!.value.request.resources))
  const over = overCommitted(total, offer.value.capacity)
  return over === null ? null : `the provider would commit ${total[over]} ${over}, over its capacity of ${offer.value.capacity[over]}`
}

function validateRelease (r: Release, op: Op, ctx: ValidateContext): Problem {
  const header = op.action.header
  const allocation = named<Allocation>(r.allocation, ctx, checkAllocationShape, 'an Allocation')
  if (typeof allocation === 'string') return allocation
  if (!bytesEqual(allocation.author, header.author)) return 'a Release must be committed by the lease\'s provider'
  if (r.change !== null) {
    const { change, signature } = r.change
    if (!bytesEqual(change.allocation, r.allocation)) return 'the release request names another allocation'
    if (!ctx.verify_signature(allocation.value.request.requester, signature, change)) return 'the release is not signed by the lease\'s holder'
    const p = fresh(change.requested_at, header.timestamp, 'the release')
    if (p !== null) return p
  }
  const view = ledgerBefore(r.ledger, op, ctx)
  if (typeof view === 'string') return view
  return checkLive(r.ledger, view, header.timestamp, r.allocation)
}

function validateUsage (u: UsageRecord, op: Op, ctx: ValidateContext): Problem {
  const allocation = named<Allocation>(u.allocation, ctx, checkAllocationShape, 'an Allocation')
  if (typeof allocation === 'string') return allocation
  return bytesEqual(allocation.author, op.action.header.author) ? null : 'only a lease\'s provider records its usage'
}

function validateEntry (type: string, value: unknown, op: Op, ctx: ValidateContext): Problem {
  switch (type) {
    case 'ResourceOffer': return checkOffer(value)
    case 'Allocation': return checkAllocationShape(value) ?? validateAllocation(value as Allocation, op, ctx)
    case 'Release': return checkReleaseShape(value) ?? validateRelease(value as Release, op, ctx)
    case 'UsageRecord': return checkUsage(value) ?? validateUsage(value as UsageRecord, op, ctx)
    default: return `unknown entry type ${type}`
  }
}

/** The entry types that are ledger steps: written once, never updated or deleted. */
const IMMUTABLE = ['Allocation', 'Release', 'UsageRecord']

export function validate (op: Op, ctx: ValidateContext): ValidateResult {
  const d = op.action.data
  if (op.app_entry !== undefined) {
    if (d.type === 'Update' && IMMUTABLE.includes(op.app_entry.entry_type)) return Invalid(`${op.app_entry.entry_type} entries cannot be updated`)
    const problem = validateEntry(op.app_entry.entry_type, op.app_entry.value, op, ctx)
    if (problem !== null) return Invalid(problem)
  }
  if (d.type === 'Delete') {
    const original = ctx.must_get_valid_record(d.deletes_address)
    const value = recordValue(original, ctx)
    if (checkAllocationShape(value) === null || checkReleaseShape(value) === null || checkUsage(value) === null) return Invalid('ledger records and usage records cannot be deleted')
  }
  if (d.type === 'CreateLink' && op.link_type === 'AgentToAllocation') {
    const a = named<Allocation>(d.target_address, ctx, checkAllocationShape, 'an Allocation')
    if (typeof a === 'string') return Invalid(a)
    if (!bytesEqual(a.author, op.action.header.author) || !bytesEqual(a.value.request.requester, d.base_address)) return Invalid('an AgentToAllocation link goes from the holder to an allocation, by its provider')
  }
  if (d.type === 'CreateLink' && op.link_type === 'AllocationToUsage') {
    const a = named<Allocation>(d.base_address, ctx, checkAllocationShape, 'an Allocation')
    if (typeof a === 'string') return Invalid(a)
    if (!bytesEqual(a.author, op.action.header.author)) return Invalid('only a lease\'s provider links usage to it')
  }
  if (d.type === 'CreateLink' && op.link_type === 'AgentToOffer' && !bytesEqual(d.base_address, op.action.header.author)) return Invalid('an agent links only its own offer')
  return validateOwnership(op, ctx)
}
