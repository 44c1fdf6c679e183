/**
 * The lease rules the provider's ledger applies before it commits a step and the integrity zome
 * applies to every step it validates: one copy, so the two cannot drift apart (a ledger that
 * allowed what validation refuses would fail its own commits). Pure; bundled into the zome.
 */
import { LEASE_DIMENSIONS, LEASE_LIMITS, type LeaseResources, type ResourceOffer } from './types.ts'

/** Nothing of any dimension. */
export const NO_LEASE_RESOURCES: Readonly<LeaseResources> = Object.freeze({ cpu_cores: 0, memory_gb: 0, gpu_count: 0, storage_gb: 0, model_slots: 0, vectors: 0 })

/** The longest lease an offer grants: its own maximum, within the DNA's. */
export function maxLeaseSeconds (offer: ResourceOffer): number {
  return Math.min(offer.max_lease_seconds, LEASE_LIMITS.maxLeaseSeconds)
}

/** How a request signed at `requestedAt` stands for a step at `at` (µs): null when fresh. */
export function staleness (requestedAt: number, at: number): 'too_old' | 'ahead' | null {
  if (requestedAt < at - LEASE_LIMITS.maxRequestAgeUs) return 'too_old'
  if (requestedAt > at + LEASE_LIMITS.maxClockSkewUs) return 'ahead'
  return null
}

/** `want` plus every one of `leases`, per dimension. */
export function committedWith (want: LeaseResources, leases: Iterable<LeaseResources>): LeaseResources {
  const total = { ...want }
  for (const r of leases) for (const d of LEASE_DIMENSIONS) total[d] += r[d]
  return total
}

/** The first dimension in which `total` exceeds `capacity`, or null when it fits. */
export function overCommitted (total: LeaseResources, capacity: LeaseResources): typeof LEASE_DIMENSIONS[number] | null {
  for (const d of LEASE_DIMENSIONS) if (total[d] > capacity[d] + 1e-9) return d
  return null
}
