/**
 * The provider's ledger: the one authority over this node's capacity. Every change (a grant, a
 * renewal, a release) is decided and committed one at a time under a lock, against the leases
 * live at that moment, so concurrent requests from any number of requesters never over-commit;
 * a step that fails (validation, a stopped conductor) leaves the ledger as it was. The ledger's
 * state lives on the provider's own chain (`resources.ledger_head` rebuilds it at start); this
 * class holds the head and the live leases in memory between steps.
 */
import type { ActionHash, AgentPubKey, Signature } from '../../../zomes-ts/hdk/index.ts'
import type { ResourceMeshClient } from '../../../zomes-ts/resource_mesh/client.ts'
import { NO_LEASE_RESOURCES, committedWith, maxLeaseSeconds, overCommitted, staleness } from '../../../zomes-ts/resource_mesh/rules.ts'
import { LEASE_LIMITS, type LeaseChange, type LeaseRequest, type LeaseResources, type LedgerLink, type LiveLease, type ResourceOffer } from '../../../zomes-ts/resource_mesh/types.ts'
import { encode } from '../conductor/codec.ts'
import { InvalidInputError } from '../errors.ts'
import { encodeHash, hashEquals } from '../holo/hash.ts'
import { verifySignature } from '../identity/keystore.ts'
import { LeaseNotLiveError, LeaseRefusedError, NotTheHolderError } from './types.ts'

const US = 1000

export interface ProviderLedgerComponents {
  client: Pick<ResourceMeshClient, 'ledgerHead' | 'publishOffer' | 'commitAllocation' | 'commitRelease' | 'getAllocation'>
  /** this provider's agent key */
  agent: AgentPubKey
  /** ms since the epoch. @default Date.now */
  clock?: () => number
}

/** A committed step's outcome. */
export interface Granted { allocation: ActionHash, expires_at: number, lease: LiveLease }

function signedBy (key: AgentPubKey, signature: Signature, data: unknown): boolean {
  return verifySignature(key.subarray(3, 35), encode(data), signature)
}

export class ProviderLedger {
  readonly #c: ProviderLedgerComponents
  readonly #clock: () => number
  #offer: { hash: ActionHash, offer: ResourceOffer } | null = null
  #head: { hash: ActionHash, seq: number } | null = null
  readonly #live = new Map<string, LiveLease>()
  #lock: Promise<unknown> = Promise.resolve()

  constructor (components: ProviderLedgerComponents) {
    this.#c = components
    this.#clock = components.clock ?? Date.now
  }

  /** Reads the ledger's head, offer and live leases from the chain. */
  async load (): Promise<void> {
    await this.#serial(async () => {
      const h = await this.#c.client.ledgerHead()
      this.#offer = h.offer === null ? null : { hash: h.offer.action_hash, offer: h.offer.offer }
      this.#head = h.head === null ? null : { hash: h.head.action_hash, seq: h.head.seq }
      this.#live.clear()
      for (const l of h.live) this.#live.set(encodeHash(l.allocation), l)
    })
  }

  /** Publishes (or updates) this provider's capacity; leases already live stay. */
  async setOffer (offer: ResourceOffer): Promise<ActionHash> {
    return await this.#serial(async () => {
      const hash = await this.#c.client.publishOffer(offer)
      this.#offer = { hash, offer }
      return hash
    })
  }

  get offer (): ResourceOffer | null { return this.#offer?.offer ?? null }

  /** The leases live now (expired ones are dropped at the next step). */
  live (): LiveLease[] {
    const now = this.#clock() * US
    return [...this.#live.values()].filter(l => l.expires_at > now)
  }

  /** The sum of the live leases. */
  committed (): LeaseResources {
    return committedWith(NO_LEASE_RESOURCES, this.live().map(l => l.resources))
  }

  /** A live lease of this provider; `LeaseNotLiveError` otherwise. */
  lease (allocation: ActionHash): LiveLease {
    const id = encodeHash(allocation)
    const l = this.#live.get(id)
    if (l === undefined) throw new LeaseNotLiveError(id, 'unknown')
    if (l.expires_at <= this.#clock() * US) throw new LeaseNotLiveError(id, 'expired')
    return l
  }

  /** Grants a signed request, or refuses it with `LeaseRefusedError` (nothing is written then). */
  async grant (request: LeaseRequest, signature: Signature): Promise<Granted> {
    return await this.#serial(async () => {
      const offer = this.#offer
      if (offer === null) throw new LeaseRefusedError('this node offers no resources for lease', 'no_offer')
      if (!hashEquals(request.provider, this.#c.agent)) throw new LeaseRefusedError('the request names another provider', 'not_for_this_provider')
      if (!signedBy(request.requester, signature, request)) throw new InvalidInputError('the lease request is not signed by its requester', { field: 'signature' })
      const now = this.#clock() * US
      this.#fresh(request.requested_at, now)
      const max = maxLeaseSeconds(offer.offer)
      if (request.duration_seconds > max) throw new LeaseRefusedError(`the lease is longer than this provider's maximum of ${max} s`, 'too_long')
      const live = this.#prune(now)
      if (live.some(l => hashEquals(l.nonce, request.nonce))) throw new LeaseRefusedError('this request was already granted', 'duplicate')
      if (live.length >= LEASE_LIMITS.maxLive) throw new LeaseRefusedError(`this provider holds its maximum of ${LEASE_LIMITS.maxLive} live leases`, 'over_capacity', encodeHash(this.#c.agent))
      this.#fits(live, request.resources, offer.offer)
      const expiresAt = now + request.duration_seconds * 1_000_000
      const ledger = this.#next(live)
      const allocation = await this.#c.client.commitAllocation({ request, request_signature: signature, offer: offer.hash, expires_at: expiresAt, renewal: null, ledger })
      return this.#stepped(allocation, ledger, live, { requester: request.requester, resource_type: request.resource_type, resources: request.resources, expires_at: expiresAt, nonce: request.nonce })
    })
  }

  /** Extends a live lease on its holder's signed change (a new Allocation replacing it). */
  async renew (change: LeaseChange, signature: Signature): Promise<Granted> {
    return await this.#serial(async () => {
      const offer = this.#offer
      if (offer === null) throw new LeaseRefusedError('this node offers no resources for lease', 'no_offer')
      const now = this.#clock() * US
      if (change.kind !== 'renew' || change.duration_seconds === null) throw new InvalidInputError('a renewal is a change of kind renew with a duration', { field: 'change' })
      const current = this.#holderCheck(change, signature, now)
      const original = await this.#c.client.getAllocation(change.allocation)
      if (original === null) throw new LeaseNotLiveError(encodeHash(change.allocation), 'unknown')
      const { request, request_signature: requestSignature } = original.allocation
      const max = maxLeaseSeconds(offer.offer)
      if (change.duration_seconds > max) throw new LeaseRefusedError(`the lease is longer than this provider's maximum of ${max} s`, 'too_long')
      const live = this.#prune(now).filter(l => !hashEquals(l.allocation, change.allocation))
      this.#fits(live, request.resources, offer.offer)
      const expiresAt = now + change.duration_seconds * 1_000_000
      const ledger = this.#next(live)
      const allocation = await this.#c.client.commitAllocation({ request, request_signature: requestSignature, offer: offer.hash, expires_at: expiresAt, renewal: { change, signature }, ledger })
      return this.#stepped(allocation, ledger, live, { ...current, expires_at: expiresAt })
    })
  }

  /** Ends a live lease early: on its holder's signed change, or (`change` null) by this provider. */
  async release (allocation: ActionHash, change: { change: LeaseChange, signature: Signature } | null): Promise<ActionHash> {
    return await this.#serial(async () => {
      const now = this.#clock() * US
      if (change !== null) {
        if (change.change.kind !== 'release' || !hashEquals(change.change.allocation, allocation)) throw new InvalidInputError('a release is a change of kind release naming the allocation', { field: 'change' })
        this.#holderCheck(change.change, change.signature, now)
      } else {
        this.lease(allocation)
      }
      const live = this.#prune(now).filter(l => !hashEquals(l.allocation, allocation))
      const ledger = this.#next(live)
      const hash = await this.#c.client.commitRelease({ allocation, change, ledger })
      this.#advance(hash, ledger, live)
      return hash
    })
  }

  /** The lease a holder's signed change names, checked: live, and signed by its holder. */
  #holderCheck (change: LeaseChange, signature: Signature, now: number): LiveLease {
    const current = this.lease(change.allocation)
    if (!signedBy(current.requester, signature, change)) throw new NotTheHolderError(encodeHash(change.allocation))
    this.#fresh(change.requested_at, now)
    return current
  }

  #fresh (requestedAt: number, now: number): void {
    if (!Number.isSafeInteger(requestedAt) || staleness(requestedAt, now) !== null) {
      throw new LeaseRefusedError('the request is too old, or dated in the future (check the clocks)', 'stale')
    }
  }

  /** The live leases at `now`: the ones that expired leave the ledger with the next step. */
  #prune (now: number): LiveLease[] {
    return [...this.#live.values()].filter(l => l.expires_at > now)
  }

  #fits (live: LiveLease[], want: LeaseResources, offer: ResourceOffer): void {
    const total = committedWith(want, live.map(l => l.resources))
    const d = overCommitted(total, offer.capacity)
    if (d !== null) throw new LeaseRefusedError(`not enough ${d}: ${round(offer.capacity[d] - total[d] + want[d])} free of ${offer.capacity[d]}, ${want[d]} asked`, 'over_capacity', encodeHash(this.#c.agent))
  }

  #next (live: LiveLease[]): LedgerLink {
    return { seq: this.#head === null ? 0 : this.#head.seq + 1, prev: this.#head?.hash ?? null, live: live.map(l => l.allocation) }
  }

  /** The ledger after a committed step: its new head and the leases live after it. */
  #advance (hash: ActionHash, ledger: LedgerLink, live: LiveLease[]): void {
    this.#head = { hash, seq: ledger.seq }
    this.#live.clear()
    for (const l of live) this.#live.set(encodeHash(l.allocation), l)
  }

  #stepped (allocation: ActionHash, ledger: LedgerLink, live: LiveLease[], lease: Omit<LiveLease, 'allocation'>): Granted {
    this.#advance(allocation, ledger, live)
    const granted: LiveLease = { ...lease, allocation }
    this.#live.set(encodeHash(allocation), granted)
    return { allocation, expires_at: lease.expires_at, lease: granted }
  }

  /** Runs `step` after every step before it, whether they succeeded or failed. */
  async #serial<T> (step: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(step, step)
    this.#lock = run.catch(() => undefined)
    return await run
  }
}

const round = (n: number): number => Math.round(n * 1000) / 1000
