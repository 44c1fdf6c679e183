/**
 * The DHT simulation, scaled down (200 nodes, 5 simulated minutes): its invariants, not its
 * timings. Same seed, same result; arcs shard and still cover every sector with the target
 * redundancy after churn; every record stays retrievable when 10% of the nodes leave at once, and
 * after 30% leave, arcs grow and anti-entropy brings every op back to the target redundancy.
 * Also the two pieces the simulation adds around the real code: the windowed arc view (same arc
 * as `nextArc` over all peers) and the sync adapter (moves exactly what is missing in the overlap).
 */
import { describe, expect, it } from 'vitest'
import {
  arcAt, arcFromSectors, arcOverlap, arcSectors, FULL_ARC, nextArc, SECTOR_SIZE, sectorOf, hasSector, type Arc
} from '../../agent/src/conductor/network/arc.ts'
import { dhtLocation, hashFrom32, type HoloHash } from '../../agent/src/holo/hash.ts'
import { ArcView, type ViewNode } from '../sim/arc-view.ts'
import { Rng } from '../sim/rng.ts'
import { simulate, type SimConfig } from '../sim/simulation.ts'
import { syncOverlap, type SyncSide } from '../sim/sync-model.ts'

const SMALL: SimConfig = { seed: 7, nodes: 200, durationMs: 300_000, churnPerHour: 1 }

describe('DHT simulation (200 nodes)', () => {
  const result = simulate(SMALL)

  it('is deterministic for a seed, and a different seed gives a different run', () => {
    expect(simulate(SMALL)).toEqual(result)
    const other = simulate({ ...SMALL, seed: 8 })
    expect(other.perNode).not.toEqual(result.perNode)
  })

  it('shards: each node holds a share of the ops, under churn', () => {
    expect(result.crashed).toBeGreaterThan(0)
    expect(result.joined).toBe(result.crashed)
    expect(result.nodesAtEnd).toBe(SMALL.nodes)
    expect(result.ops).toBeGreaterThan(100)
    expect(result.perNode.arcSectors.max).toBeLessThan(512)
    expect(result.perNode.opsStored.mean).toBeLessThan(result.ops / 2)
    expect(result.perNode.opsStored.mean).toBeGreaterThan(0)
  })

  it('converges to arcs covering every sector with the target redundancy, every op held that often', () => {
    expect(result.minSectorHolders).toBeGreaterThanOrEqual(5)
    expect(result.retrievable).toBe(1)
    expect(result.atTarget).toBeGreaterThanOrEqual(0.99)
  })

  it('keeps > 99% of the records retrievable when 10% of the nodes leave at once', () => {
    const ten = result.afterLeave.find(l => l.share === 0.1)!
    expect(ten.retrievable).toBeGreaterThan(0.99)
    const thirty = result.afterLeave.find(l => l.share === 0.3)!
    expect(thirty.retrievable).toBeGreaterThan(0.9)
  })

  it('grows arcs back and refills them after 30% of the nodes leave at once', () => {
    const r = result.repair!
    expect(r.share).toBe(0.3)
    expect(r.atTargetBefore).toBeLessThan(0.99)
    expect(r.atTarget).toBeGreaterThanOrEqual(0.99)
    expect(r.minSectorHolders).toBeGreaterThanOrEqual(5)
    expect(r.arcSectors.mean).toBeGreaterThan(result.perNode.arcSectors.mean)
  })

  it('measures gossip and presence traffic, and a capability change reaching 99% of the nodes', () => {
    expect(result.perNode.gossipBytesPerSec.mean).toBeGreaterThan(0)
    expect(result.perNode.presenceBytesPerSec.mean).toBeGreaterThan(0)
    expect(result.perNode.opsValidatedPerSec.mean).toBeGreaterThan(0)
    expect(result.presenceMessageBytes).toBeGreaterThan(200)
    expect(Number.isFinite(result.capabilityVisible99Ms.max)).toBe(true)
    expect(result.capabilityVisible99Ms.median).toBeGreaterThan(0)
  })

  it('keeps full arcs in a mesh smaller than the coverage band', () => {
    const tiny = simulate({ seed: 3, nodes: 5, durationMs: 120_000, churnPerHour: 0 })
    expect(tiny.perNode.arcSectors.p50).toBe(512)
    expect(tiny.perNode.opsStored.p50).toBe(tiny.ops)
  })
})

describe('the simulation around the real code', () => {
  it('sizes arcs from the window of peers ahead exactly as nextArc over every peer', () => {
    const rng = new Rng(11)
    const view = new ArcView<ViewNode>({ targetRedundancy: 5 })
    const peers: ViewNode[] = []
    for (let i = 0; i < 300; i++) {
      // a crowd in sector 9 and the rest spread, with arcs of every kind
      const location = i < 40 ? 9 * SECTOR_SIZE + i * 997 : rng.u32()
      const kind = i % 7
      const arc: Arc = kind === 0 ? FULL_ARC : kind === 1 ? null : arcAt(location, 1 + rng.int(40))
      peers.push({ i, id: `p${i}`, location, arc })
    }
    for (const p of peers) view.add(p)
    for (const self of peers) {
      for (const arc of [self.arc, null, FULL_ARC, arcAt(self.location, 3)]) {
        const me = { ...self, arc }
        expect(view.nextArc(me), `node ${self.i}`).toEqual(nextArc(me, peers.filter(p => p.i !== self.i)))
      }
    }
  })

  it('syncs exactly the records missing in the overlap, in one round trip when nothing differs', () => {
    const rng = new Rng(5)
    const ops = Array.from({ length: 400 }, () => ({ hash: hashFrom32(rng.bytes(32), 'Action'), loc: dhtLocation(hashFrom32(rng.bytes(32), 'Entry')) }))
    const locOf = new Map(ops.map(o => [o.hash, o.loc]))
    const sideOf = (held: Set<HoloHash>): SyncSide => ({
      hashesIn: (sectors) => [...held].filter(h => hasSector(sectors, sectorOf(locOf.get(h)!))),
      locationOf: (h) => locOf.get(h)!,
      knows: (h) => held.has(h)
    })
    const a = arcFromSectors(0, 300)
    const b = arcFromSectors(200, 200)
    const overlap = arcOverlap(a, b)
    const inA = new Set(ops.filter((o, k) => k % 3 !== 0 && hasSector(arcOverlap(a, a), sectorOf(o.loc))).map(o => o.hash))
    const inB = new Set(ops.filter((o, k) => k % 2 === 0 && hasSector(arcOverlap(b, b), sectorOf(o.loc))).map(o => o.hash))
    const expected = [...inB].filter(h => !inA.has(h) && hasSector(overlap, sectorOf(locOf.get(h)!)))
    expect(expected.length).toBeGreaterThan(10)
    const out = syncOverlap(sideOf(inA), sideOf(inB), overlap, () => 1000)
    expect(new Set(out.fetched)).toEqual(new Set(expected))
    expect(out.bytesReceived).toBeGreaterThan(1000 * expected.length)
    // once both sides pulled, nothing differs: the digest round trip alone
    for (const h of out.fetched) inA.add(h)
    for (const h of syncOverlap(sideOf(inB), sideOf(inA), overlap, () => 1000).fetched) inB.add(h)
    const again = syncOverlap(sideOf(inA), sideOf(inB), overlap, () => 1000)
    expect(again.fetched).toEqual([])
    expect(again.requests).toBe(1)
    expect(arcSectors(a)).toBe(300)
  })
})
