/**
 * The in-memory transport's geometry: one-way latency between two nodes, and the gossip overlay
 * (gossipsub's mesh) over which presence floods. A node's access delay is drawn once; a message
 * between two nodes takes a fixed base plus both access delays plus per-message jitter.
 */
import { EventQueue } from './event-queue.ts'
import type { Rng } from './rng.ts'

export interface LatencyModel {
  /** ms one way from a to b, for one message */
  oneWay: (a: number, b: number) => number
}

export const LATENCY = {
  /** ms every message takes on top of the access delays */
  baseMs: 5,
  /** mean access delay of a node, ms (exponential, capped) */
  accessMeanMs: 12,
  accessMaxMs: 150,
  /** per-message jitter, uniform in [0, this), ms */
  jitterMs: 4,
  /** ms a node spends checking and forwarding a presence message (signature verify, gossipsub) */
  hopProcessingMs: 1
} as const

export class Latency implements LatencyModel {
  private readonly access: number[] = []

  constructor (private readonly rng: Rng) {}

  private accessOf (n: number): number {
    while (this.access.length <= n) this.access.push(Math.min(LATENCY.accessMaxMs, this.rng.exp(LATENCY.accessMeanMs)))
    return this.access[n]!
  }

  oneWay (a: number, b: number): number {
    return LATENCY.baseMs + this.accessOf(a) + this.accessOf(b) + this.rng.next() * LATENCY.jitterMs
  }
}

/** An undirected overlay: each node links to `degree / 2` random others, so degrees average `degree`. */
export function buildOverlay (rng: Rng, nodes: readonly number[], degree: number): Map<number, number[]> {
  const adj = new Map<number, Set<number>>(nodes.map(n => [n, new Set<number>()]))
  const half = Math.max(1, Math.round(degree / 2))
  for (const n of nodes) {
    const mine = adj.get(n)!
    for (let tries = 0; mine.size < half && tries < 4 * half && nodes.length > 1; tries++) {
      const m = nodes[rng.int(nodes.length)]!
      if (m === n || mine.has(m)) continue
      mine.add(m)
      adj.get(m)!.add(n)
    }
  }
  return new Map([...adj].map(([n, s]) => [n, [...s]]))
}

export interface FloodResult {
  /** arrival time (ms after publication) per node; absent = never reached */
  arrival: Map<number, number>
  /** messages each node sent and received for this one record (duplicates included) */
  sent: Map<number, number>
  received: Map<number, number>
}

/**
 * One message flooding the overlay from `source`, as gossipsub forwards it: the source sends to
 * every neighbour (flood publish); a node forwards on first receipt to its neighbours except the
 * one it came from and those it already got it from; a dead node (`alive` false) drops it.
 */
export function flood (source: number, adj: Map<number, number[]>, alive: (n: number) => boolean, latency: LatencyModel): FloodResult {
  const arrival = new Map<number, number>([[source, 0]])
  const sent = new Map<number, number>()
  const received = new Map<number, number>()
  const heardFrom = new Map<number, Set<number>>()
  const q = new EventQueue<{ to: number, from: number }>()
  const bump = (m: Map<number, number>, n: number): void => { m.set(n, (m.get(n) ?? 0) + 1) }
  const forward = (n: number, except: number, at: number): void => {
    const heard = heardFrom.get(n)
    for (const m of adj.get(n) ?? []) {
      if (m === except || heard?.has(m) === true) continue
      bump(sent, n)
      q.at(at + latency.oneWay(n, m), { to: m, from: n })
    }
  }
  forward(source, -1, 0)
  for (let e = q.pop(); e !== undefined; e = q.pop()) {
    if (!alive(e.to)) continue
    bump(received, e.to)
    let heard = heardFrom.get(e.to)
    if (heard === undefined) heardFrom.set(e.to, heard = new Set())
    heard.add(e.from)
    if (arrival.has(e.to)) continue
    arrival.set(e.to, q.now)
    forward(e.to, e.from, q.now + LATENCY.hopProcessingMs)
  }
  return { arrival, sent, received }
}
