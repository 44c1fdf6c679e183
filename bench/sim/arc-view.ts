/**
 * The mesh as presence shows it to every node: the nodes with a live (unexpired) record and a
 * non-empty arc, sorted by location, and for each sector the nodes whose arc holds it. Arc sizing,
 * authority lookup and sync partner choice all run the real `arc.ts` functions over this view.
 *
 * `nextArc` depends only on the peers ahead of a node up to the end of its arc plus the next
 * `max + 1` (its coverage and the lengths that reach the band), so `window` hands it those instead
 * of all N peers; `test/dht-sim.spec.ts` checks the two give the same arc.
 */
import {
  arcContains, arcSectors, authoritiesFor, coverageBand, nextArc, SECTOR_COUNT, sectorOf, type Arc, type ArcPeer, type ArcStrategy
} from '../../agent/src/conductor/network/arc.ts'

export interface ViewNode extends ArcPeer { i: number, id: string }

const RING = 2 ** 32
const ahead = (a: number, b: number): number => ((b - a) % RING + RING) % RING

export class ArcView<N extends ViewNode> {
  private readonly members = new Set<N>()
  private sorted: N[] = []
  private dirty = false
  private readonly bySector: Array<Set<N>> = Array.from({ length: SECTOR_COUNT }, () => new Set<N>())
  readonly band: { min: number, max: number }
  /** bumped whenever a member or an arc changes (for callers caching `overlapping`) */
  version = 0

  constructor (readonly strategy: ArcStrategy) {
    this.band = coverageBand(strategy)
  }

  get size (): number { return this.members.size }

  has (n: N): boolean { return this.members.has(n) }

  private sectorsOf (arc: Arc): number[] {
    const count = arcSectors(arc)
    if (arc === null || count === 0) return []
    const first = sectorOf(arc[0])
    return Array.from({ length: Math.min(count, SECTOR_COUNT) }, (_, k) => (first + k) % SECTOR_COUNT)
  }

  /** a node's record became visible, or its arc changed (`arc` is already set on the node) */
  add (n: N, oldArc: Arc = null): void {
    this.version++
    for (const s of this.sectorsOf(oldArc)) this.bySector[s]!.delete(n)
    if (n.arc === null) { this.remove(n); return }
    for (const s of this.sectorsOf(n.arc)) this.bySector[s]!.add(n)
    if (!this.members.has(n)) { this.members.add(n); this.dirty = true }
  }

  /** a node's record expired */
  remove (n: N): void {
    this.version++
    for (const s of this.sectorsOf(n.arc)) this.bySector[s]!.delete(n)
    if (this.members.delete(n)) this.dirty = true
  }

  private order (): N[] {
    if (this.dirty) {
      this.sorted = [...this.members].sort((a, b) => a.location - b.location || a.i - b.i)
      this.dirty = false
    }
    return this.sorted
  }

  /** the peers `nextArc` needs for `self`: those ahead of it within its arc, then `max + 1` more */
  window (self: ArcPeer & { i: number }): N[] {
    const order = this.order()
    if (order.length === 0) return []
    let lo = 0
    let hi = order.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (order[mid]!.location < self.location) lo = mid + 1
      else hi = mid
    }
    const full = arcSectors(self.arc) >= SECTOR_COUNT
    const reach = self.arc === null ? -1 : ahead(self.location, self.arc[1])
    const out: N[] = []
    let beyond = 0
    for (let k = 0; k < order.length && beyond <= this.band.max + 1; k++) {
      const p = order[(lo + k) % order.length]!
      if (p.i === self.i) continue
      out.push(p)
      if (!(full || (arcContains(self.arc, p.location) && ahead(self.location, p.location) <= reach))) beyond++
    }
    return out
  }

  nextArc (self: ArcPeer & { i: number }): Arc {
    return nextArc(self, this.window(self), this.strategy)
  }

  /** the authorities of a location, nearest first, at most `max` */
  authorities (loc: number, max: number): N[] {
    return authoritiesFor(loc, [...this.bySector[sectorOf(loc)]!], max)
  }

  /** the nodes whose arc shares a sector with `arc`, in a stable order */
  overlapping (arc: Arc): N[] {
    const out = new Set<N>()
    for (const s of this.sectorsOf(arc)) for (const n of this.bySector[s]!) out.add(n)
    return [...out]
  }

  /** every member, sorted by location */
  all (): N[] {
    return this.order()
  }
}
