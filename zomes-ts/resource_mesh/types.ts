/**
 * resource_mesh's entries and zome-function types, shared by its zomes, its typed client and the
 * agent's `resources` capability.
 *
 * A lease is a two-party record. The requester signs a `LeaseRequest` naming the provider; the
 * provider, the only authority over its own capacity, commits an `Allocation` that carries the
 * signed request (the provider's signature is the record's action signature). Every change to a
 * provider's commitments (an allocation, a renewal, a release) is one step of its **ledger**: a
 * hash-linked sequence of its own records, each naming the previous step and the allocations live
 * after it, so any node can check from the records alone that a step neither drops a live lease
 * nor takes the provider's committed total over the capacity of its `ResourceOffer`.
 */
import type { ActionHash, AgentPubKey, Signature, Timestamp } from '../hdk/index.ts'

export const LEASE_RESOURCE_TYPES = ['compute', 'inference', 'storage', 'memory'] as const
export type LeaseResourceType = typeof LEASE_RESOURCE_TYPES[number]

/** An amount of each resource dimension (a lease's share, an offer's capacity). */
export interface LeaseResources {
  cpu_cores: number
  memory_gb: number
  gpu_count: number
  storage_gb: number
  /** concurrent generations: an inference lease holds one of the provider's model slots */
  model_slots: number
  /** vectors of vector memory (any dimension): a memory lease holds what it will store */
  vectors: number
}
export const LEASE_DIMENSIONS = ['cpu_cores', 'memory_gb', 'gpu_count', 'storage_gb', 'model_slots', 'vectors'] as const

/** A provider's advertised capacity for leases, and the longest lease it grants. */
export interface ResourceOffer {
  capacity: LeaseResources
  max_lease_seconds: number
}

/** What a requester asks one provider for, signed by the requester (msgpack of this map). */
export interface LeaseRequest {
  requester: AgentPubKey
  provider: AgentPubKey
  resource_type: LeaseResourceType
  resources: LeaseResources
  duration_seconds: number
  workload_class: string | null
  /** 16 random bytes: a signed request commits at most one allocation */
  nonce: Uint8Array
  /** by the requester's clock, microseconds */
  requested_at: Timestamp
}

/** The holder asks the provider to extend (renew) or end (release) a lease: signed by the holder. */
export interface LeaseChange {
  kind: 'renew' | 'release'
  allocation: ActionHash
  /** renew only: the new lease runs this long from the renewal */
  duration_seconds: number | null
  nonce: Uint8Array
  requested_at: Timestamp
}

/** The provider's ledger position a step records. */
export interface LedgerLink {
  /** 0 for the provider's first step */
  seq: number
  /** the provider's previous ledger step (Allocation or Release), null for the first */
  prev: ActionHash | null
  /**
   * The allocations live after this step, this one excluded: the previous step's live set and the
   * previous step itself when it was an allocation, less what expired or was released or renewed.
   */
  live: ActionHash[]
}

/** A lease granted by its provider (the author). A renewal is an Allocation with `renewal` set. */
export interface Allocation {
  request: LeaseRequest
  request_signature: Signature
  /** the provider's ResourceOffer in force */
  offer: ActionHash
  expires_at: Timestamp
  /** a renewal: the holder's signed change and the allocation it replaces */
  renewal: { change: LeaseChange, signature: Signature } | null
  ledger: LedgerLink
}

/** A lease ended early, by its provider (the author): on the holder's signed request, or its own. */
export interface Release {
  allocation: ActionHash
  /** the holder's signed release, or null when the provider releases on its own */
  change: { change: LeaseChange, signature: Signature } | null
  ledger: LedgerLink
}

/** What a lease used, recorded by its provider. */
export interface UsageRecord {
  allocation: ActionHash
  cpu_seconds: number
  memory_gb_seconds: number
  tokens: number
  tasks: number
  /** when the recorded usage ended, microseconds */
  at: Timestamp
}

/** The hard bounds validation enforces, whatever the offer says. */
export const LEASE_LIMITS = {
  /** no lease is longer than 30 days */
  maxLeaseSeconds: 30 * 24 * 3600,
  minLeaseSeconds: 1,
  /** a request or change is accepted this long after it was signed… */
  maxRequestAgeUs: 5 * 60 * 1_000_000,
  /** …and this far ahead of the provider's clock */
  maxClockSkewUs: 60 * 1_000_000,
  /** per resource dimension, an amount no real machine has (vectors: `maxVectors`) */
  maxAmount: 1_000_000,
  maxVectors: 1_000_000_000_000,
  /** a provider's ledger holds at most this many live leases */
  maxLive: 4096
} as const

/** The largest amount of a dimension validation accepts. */
export function maxAmountOf (dimension: typeof LEASE_DIMENSIONS[number]): number {
  return dimension === 'vectors' ? LEASE_LIMITS.maxVectors : LEASE_LIMITS.maxAmount
}

// ---------------------------------------------------------------------------------------------
// zome-function inputs and outputs

/** A live lease as the provider's ledger holds it. */
export interface LiveLease {
  allocation: ActionHash
  requester: AgentPubKey
  resource_type: LeaseResourceType
  resources: LeaseResources
  expires_at: Timestamp
  /** the nonces of the request and of the changes that led here */
  nonce: Uint8Array
}

/** `resources.ledger_head`: where the provider's ledger stands. */
export interface LedgerHead {
  /** null when the provider never published an offer */
  offer: { action_hash: ActionHash, offer: ResourceOffer } | null
  /** null before the first step */
  head: { action_hash: ActionHash, seq: number, timestamp: Timestamp } | null
  live: LiveLease[]
}

export interface CommitAllocationInput {
  request: LeaseRequest
  request_signature: Signature
  offer: ActionHash
  expires_at: Timestamp
  renewal: Allocation['renewal']
  ledger: LedgerLink
}

export interface CommitReleaseInput {
  allocation: ActionHash
  change: Release['change']
  ledger: LedgerLink
}

/** An allocation as `resources.get_allocation` returns it. */
export interface AllocationRecord {
  action_hash: ActionHash
  provider: AgentPubKey
  created_at: Timestamp
  allocation: Allocation
}
