/**
 * Admission of peer inference requests: a provider's local policy merged with the mesh-wide one
 * (deny lists, allow lists, a per-peer rate limit), and the per-peer request windows.
 */
import { DEFAULT_PER_PEER_PER_MINUTE, MAX_TRACKED_PEERS } from './constants.ts'
import { BusyError, PolicyDeniedError } from './types.ts'

/** Who may use this node's models over the mesh. */
export interface ProviderPolicy {
  /** PeerIds refused outright */
  deny?: string[]
  /** when set, only these PeerIds are served */
  allow?: string[]
  /** requests per minute one peer may start. @default 120 */
  perPeerPerMinute?: number
}

/**
 * The local policy tightened by the shared one: both deny lists apply, an allow list narrows,
 * and the most restrictive *explicit* rate wins (an absent rate is no opinion, so the default
 * never overrides a higher rate the operator set).
 */
export function mergePolicies (local: ProviderPolicy, shared: ProviderPolicy | null): ProviderPolicy {
  if (shared === null) return local
  const allow = local.allow !== undefined && shared.allow !== undefined ? local.allow.filter(p => shared.allow!.includes(p)) : local.allow ?? shared.allow
  const rates = [local.perPeerPerMinute, shared.perPeerPerMinute].filter((r): r is number => r !== undefined)
  const merged: ProviderPolicy = { deny: [...(local.deny ?? []), ...(shared.deny ?? [])], allow }
  if (rates.length > 0) merged.perPeerPerMinute = Math.min(...rates)
  return merged
}

export interface Admission {
  /** admit one request from `peer`, or throw PolicyDeniedError (403) / BusyError (503) */
  admit: (peer: string, policy: ProviderPolicy) => void
  /** peers whose request window is held */
  readonly tracked: number
}

export interface AdmissionInit {
  /** @default 10000 */
  maxTrackedPeers?: number
  /** @default Date.now */
  now?: () => number
}

/** The one-minute window is counted in buckets of this many ms (12 buckets: constant memory per peer). */
const BUCKET_MS = 5000
const BUCKETS = 60_000 / BUCKET_MS

/** One peer's requests of the last minute, in BUCKETS counters; `newest` is the bucket number of the last count. */
interface Window { counts: number[], newest: number, total: number }

/** Drops the buckets that slid out of the minute before `bucket`; returns the requests still in it. */
function slide (w: Window, bucket: number): number {
  if (bucket - w.newest >= BUCKETS) {
    w.counts.fill(0)
    w.total = 0
  } else {
    for (let b = w.newest + 1; b <= bucket; b++) {
      const i = b % BUCKETS
      w.total -= w.counts[i]!
      w.counts[i] = 0
    }
  }
  w.newest = Math.max(w.newest, bucket)
  return w.total
}

/**
 * Per-peer sliding one-minute windows with bounded memory. When more than `maxTrackedPeers`
 * windows are held, the idle ones go first, then the lightest (fewest requests this minute)
 * below their limit: a peer that is being limited keeps its window, so a flood of fresh peer ids
 * cannot reset anyone's history. If every held peer is at its limit, a new peer is refused
 * (BusyError) rather than let in unaccounted.
 */
export function createAdmission (init: AdmissionInit = {}): Admission {
  const maxPeers = init.maxTrackedPeers ?? MAX_TRACKED_PEERS
  const now = init.now ?? Date.now
  const windows = new Map<string, Window>()

  /** Frees room for one more window; false when every held peer is at its limit. */
  const makeRoom = (bucket: number, rate: number): boolean => {
    for (const [peer, w] of windows) if (slide(w, bucket) === 0) windows.delete(peer)
    if (windows.size < maxPeers) return true
    // evict down to 90 %, lightest first, never a peer at its limit (amortizes the sort)
    const evictable = [...windows].filter(([, w]) => w.total < rate).sort((x, y) => x[1].total - y[1].total || x[1].newest - y[1].newest)
    const excess = windows.size - Math.floor(maxPeers * 0.9)
    for (const [peer] of evictable.slice(0, Math.max(1, excess))) windows.delete(peer)
    return windows.size < maxPeers
  }

  return {
    get tracked () { return windows.size },
    admit: (peer, policy) => {
      if (policy.deny?.includes(peer) === true) throw new PolicyDeniedError(`peer ${peer} is denied by this node's policy`)
      if (policy.allow !== undefined && !policy.allow.includes(peer)) throw new PolicyDeniedError(`peer ${peer} is not on this node's allow list`)
      const rate = policy.perPeerPerMinute ?? DEFAULT_PER_PEER_PER_MINUTE
      const bucket = Math.floor(now() / BUCKET_MS)
      let w = windows.get(peer)
      if (w === undefined) {
        if (windows.size >= maxPeers && !makeRoom(bucket, rate)) throw new BusyError(`this node is limiting ${windows.size} peers; try again in a minute`)
        w = { counts: new Array<number>(BUCKETS).fill(0), newest: bucket, total: 0 }
        windows.set(peer, w)
      }
      if (slide(w, bucket) >= rate) throw new BusyError(`peer ${peer} exceeded ${rate} requests per minute`)
      w.counts[bucket % BUCKETS]!++
      w.total++
    }
  }
}
