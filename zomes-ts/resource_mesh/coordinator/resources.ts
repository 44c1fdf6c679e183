/**
 * resources: the provider's side of leases. It publishes its offer and commits the steps of its
 * ledger (allocations, renewals, releases) that the agent's `resources` capability decided under
 * its ledger lock; validation (the integrity zome) checks each step before it reaches the chain.
 * Anyone reads an allocation, and a holder lists the allocations granted to it.
 */
import type { ActionHash, AgentPubKey, Hdk, HolochainRecord } from '../../hdk/index.ts'
import { bytesEqual } from '../../hdk/index.ts'
import { ZomeInputError } from '../../hdk/errors.ts'
import { isHash, isMap } from '../../hdk/values.ts'
import type { Allocation, AllocationRecord, CommitAllocationInput, CommitReleaseInput, LedgerHead, LiveLease, Release, ResourceOffer } from '../types.ts'


/** At most this many allocations are listed for one holder. */
const MAX_LISTED = 1000

async function me (hdk: Hdk): Promise<AgentPubKey> {
  return (await hdk.agent_info()).agent_initial_pubkey
}

/** Publishes this node's capacity for leases (an update of its offer once it has one). */
export async function publish_offer (hdk: Hdk, offer: ResourceOffer): Promise<ActionHash> {
  if (!isMap(offer)) throw new ZomeInputError('publish_offer takes {capacity, max_lease_seconds}')
  const own = await hdk.query({ entry_type: 'ResourceOffer' })
  const first = own[0]
  if (first === undefined) {
    const hash = await hdk.create_entry({ entry_type: 'ResourceOffer', entry: offer })
    await hdk.create_link({ base: await me(hdk), target: hash, link_type: 'AgentToOffer' })
    return hash
  }
  return await hdk.update_entry({ original_action_hash: first.signed_action.hashed.hash, entry: offer })
}

/** Where this provider's ledger stands: its newest offer, its newest step and the leases live after it. */
export async function ledger_head (hdk: Hdk): Promise<LedgerHead> {
  const offers = await hdk.query({ entry_type: 'ResourceOffer', include_entries: true })
  const lastOffer = offers.at(-1)
  const steps = [...await hdk.query({ entry_type: 'Allocation', include_entries: true }), ...await hdk.query({ entry_type: 'Release', include_entries: true })]
  const byHash = new Map<string, { record: HolochainRecord, value: Allocation | Release }>()
  let head: { record: HolochainRecord, value: Allocation | Release } | undefined
  for (const record of steps) {
    const value = hdk.entry_of<Allocation | Release>(record)
    if (value === undefined) continue
    byHash.set(hdk.encode_hash(record.signed_action.hashed.hash), { record, value })
    if (head === undefined || value.ledger.seq > head.value.ledger.seq) head = { record, value }
  }
  const live: LiveLease[] = []
  if (head !== undefined) {
    const hashes = 'request' in head.value ? [...head.value.ledger.live, head.record.signed_action.hashed.hash] : head.value.ledger.live
    for (const h of hashes) {
      const step = byHash.get(hdk.encode_hash(h))
      if (step === undefined || !('request' in step.value)) continue
      const a = step.value
      live.push({ allocation: h, requester: a.request.requester, resource_type: a.request.resource_type, resources: a.request.resources, expires_at: a.expires_at, nonce: a.request.nonce })
    }
  }
  return {
    offer: lastOffer === undefined ? null : { action_hash: lastOffer.signed_action.hashed.hash, offer: hdk.entry_of<ResourceOffer>(lastOffer)! },
    head: head === undefined ? null : { action_hash: head.record.signed_action.hashed.hash, seq: head.value.ledger.seq, timestamp: head.record.signed_action.hashed.content.header.timestamp },
    live
  }
}

/** Commits an allocation (or a renewal) and links it from its holder. */
export async function commit_allocation (hdk: Hdk, input: CommitAllocationInput): Promise<ActionHash> {
  if (!isMap(input) || !isMap(input.request)) throw new ZomeInputError('commit_allocation takes {request, request_signature, offer, expires_at, renewal, ledger}')
  const entry: Allocation = { request: input.request, request_signature: input.request_signature, offer: input.offer, expires_at: input.expires_at, renewal: input.renewal, ledger: input.ledger }
  const hash = await hdk.create_entry({ entry_type: 'Allocation', entry })
  await hdk.create_link({ base: input.request.requester, target: hash, link_type: 'AgentToAllocation' })
  return hash
}

/** Commits the early end of a lease. */
export async function commit_release (hdk: Hdk, input: CommitReleaseInput): Promise<ActionHash> {
  if (!isMap(input)) throw new ZomeInputError('commit_release takes {allocation, change, ledger}')
  const entry: Release = { allocation: input.allocation, change: input.change, ledger: input.ledger }
  return await hdk.create_entry({ entry_type: 'Release', entry })
}

function allocationRecord (hdk: Hdk, record: HolochainRecord): AllocationRecord | null {
  const allocation = hdk.entry_of<Allocation>(record)
  if (allocation === undefined || !isMap(allocation.request)) return null
  const header = record.signed_action.hashed.content.header
  return { action_hash: record.signed_action.hashed.hash, provider: header.author, created_at: header.timestamp, allocation }
}

/** An allocation by its action hash, or null (unknown, or not an allocation). */
export async function get_allocation (hdk: Hdk, hash: ActionHash): Promise<AllocationRecord | null> {
  if (!isHash(hash)) throw new ZomeInputError('get_allocation takes an action hash')
  const record = await hdk.get(hash)
  return record === null ? null : allocationRecord(hdk, record)
}

/** The allocations granted to a holder (newest first, at most 1000), renewals included. */
export async function holder_allocations (hdk: Hdk, holder: AgentPubKey): Promise<AllocationRecord[]> {
  if (!isHash(holder)) throw new ZomeInputError('holder_allocations takes an agent key')
  const links = await hdk.get_links({ base: holder, link_type: 'AgentToAllocation' })
  links.sort((a, b) => b.timestamp - a.timestamp)
  const out: AllocationRecord[] = []
  for (const link of links.slice(0, MAX_LISTED)) {
    const record = await hdk.get(link.target)
    const a = record === null ? null : allocationRecord(hdk, record)
    if (a !== null && bytesEqual(a.allocation.request.requester, holder)) out.push(a)
  }
  return out
}
