/**
 * Who pins an artifact (the storage policy's warm tier, design §10.6: `min_providers`), decided
 * by every node for itself from the same view, with no coordinator and no storm.
 *
 * Each node sees the artifact's provider records (from `artifact_index`) and the mesh's liveness
 * (presence). A provider counts while it is live and for a grace period after its last heartbeat,
 * so one that drops out briefly moves nothing. When fewer than `min` count, the missing number of
 * pinners is chosen by rendezvous hashing (highest random weight of `cid` and node key) among the
 * eligible nodes that do not provide it: every node computes the same ranking, so exactly the
 * nodes needed pin (IPFS Cluster's issue #369 — every peer re-pinning at once — cannot happen),
 * and when more than `max` count, the lowest-ranked providers (never the producer) let go.
 *
 * Pure: no I/O, no clock (the caller passes `now`), no randomness.
 *
 * ```ts
 * replicationDecision({ cid, replication: { min: 2, max: 3 }, producer: A, self: C, now,
 *   providers: [{ node: A, since }], nodes: [{ node: A, live: true, last_seen: now }, { node: C, live: true, last_seen: now, free_bytes: 1e12 }], size: 1e6 })
 * // { action: 'pin', counted: 1, wanted: 2, pinners: [C] }
 * ```
 */
import { ringHash } from './ring.ts'

export interface ReplicationNode {
  node: string
  /** its presence is live (not offline, not draining) */
  live: boolean
  /** ms since the epoch of its last heartbeat */
  last_seen: number
  /** bytes it can still pin; undefined: unknown (not a candidate) */
  free_bytes?: number
}

export interface ReplicationInput {
  cid: string
  /** bytes of the artifact */
  size: number
  replication: { min: number, max: number }
  /** the node that recorded it: it keeps its copy whatever the count */
  producer: string
  /** the nodes with a provider record for it */
  providers: Array<{ node: string }>
  /** what this node knows of the mesh's nodes (absent: unknown, counted as gone) */
  nodes: ReplicationNode[]
  /** this node */
  self: string
  /** ms since the epoch */
  now: number
  /** a provider that went offline still counts this long after its last heartbeat. @default 60_000 */
  graceMs?: number
}

export interface ReplicationDecision {
  action: 'pin' | 'unpin' | 'none'
  /** providers counted (live, or within the grace period) */
  counted: number
  /** the count the decision aims at: min when under it, max when over it, else counted */
  wanted: number
  /** the nodes chosen to pin (when under `min`) or to unpin (when over `max`), best first */
  chosen: string[]
}

export const DEFAULT_REPLICATION_GRACE_MS = 60_000

/** The rendezvous weight of a node for a CID: the same on every node. */
export function rendezvousWeight (cid: string, node: string): number {
  return ringHash(`${cid}\u0000${node}`)
}

const byWeight = (cid: string) => (a: string, b: string): number => {
  const d = rendezvousWeight(cid, b) - rendezvousWeight(cid, a)
  return d !== 0 ? d : (a < b ? -1 : a > b ? 1 : 0)
}

export function replicationDecision (input: ReplicationInput): ReplicationDecision {
  const grace = input.graceMs ?? DEFAULT_REPLICATION_GRACE_MS
  const { min, max } = input.replication
  const known = new Map(input.nodes.map(n => [n.node, n]))
  const counts = (node: string): boolean => {
    const n = known.get(node)
    if (n === undefined) return node === input.self
    return n.live || input.now - n.last_seen < grace
  }
  const providers = [...new Set(input.providers.map(p => p.node))]
  const counted = providers.filter(counts)
  const isProvider = providers.includes(input.self)
  if (counted.length < min) {
    const wanted = min
    const providing = new Set(providers)
    // ranked among the nodes live or within the grace period, so that one node's brief absence
    // from another's view does not change who is chosen (two nodes would both pin); a chosen node
    // that is really gone is passed over once its grace period ends
    const candidates = input.nodes
      .filter(n => (n.live || input.now - n.last_seen < grace) && !providing.has(n.node) && n.free_bytes !== undefined && n.free_bytes >= input.size)
      .map(n => n.node)
      .sort(byWeight(input.cid))
    const chosen = candidates.slice(0, wanted - counted.length)
    const selfLive = known.get(input.self)?.live !== false
    return { action: !isProvider && selfLive && chosen.includes(input.self) ? 'pin' : 'none', counted: counted.length, wanted, chosen }
  }
  if (counted.length > max) {
    // the lowest-ranked of the counted providers let go; the producer keeps its copy
    const releasable = counted.filter(n => n !== input.producer).sort(byWeight(input.cid)).reverse()
    const chosen = releasable.slice(0, counted.length - max)
    return { action: isProvider && chosen.includes(input.self) ? 'unpin' : 'none', counted: counted.length, wanted: max, chosen }
  }
  return { action: 'none', counted: counted.length, wanted: counted.length, chosen: [] }
}
