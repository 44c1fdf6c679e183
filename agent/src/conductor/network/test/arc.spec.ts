/**
 * Storage arcs: the ring arithmetic on kitsune2's 512-sector grid, sector sets for overlap, and
 * arc sizing. The sizing tests run every node's `nextArc` in synchronous rounds over real agent
 * locations (HoloHash location bytes) and check the ring's coverage, not timings.
 */
import { describe, expect, it } from 'vitest'
import { dhtLocation, hashFromContent } from '../../../holo/hash.ts'
import { silentLogger } from '../../../logger.ts'
import { ArcKeeper } from '../authorities.ts'
import {
  and, arcAt, arcContains, arcFromSectors, arcLength, arcOverlap, arcSectors, authoritiesFor, countSectors, coverage, coverageBand,
  distance, FULL_ARC, hasSector, InvalidArcError, isEmpty, nextArc, or, parseArc, SECTOR_COUNT, SECTOR_SIZE,
  sectorHolders, sectorRanges, sectorSet, type Arc, type ArcPeer
} from '../arc.ts'

const U32_MAX = 0xffffffff

interface Node extends ArcPeer { id: string }

const agents = (n: number, from = 0): Node[] => Array.from({ length: n }, (_, i) => {
  const id = `agent-${from + i}`
  return { id, location: dhtLocation(hashFromContent(id, 'Agent')), arc: FULL_ARC }
})

/** Every node resizes from the same view of the others (the previous round), like nodes acting at once. */
function round (nodes: Node[], target: number): { changed: number, next: Node[] } {
  let changed = 0
  const next = nodes.map(n => {
    const arc = nextArc(n, nodes.filter(o => o !== n), { targetRedundancy: target })
    if (arcSectors(arc) !== arcSectors(n.arc)) changed++
    // bounded steps: ×0.5..×2
    if (n.arc !== null && arc !== null) {
      expect(arcSectors(arc)).toBeLessThanOrEqual(Math.max(2 * arcSectors(n.arc), 1))
      expect(arcSectors(arc)).toBeGreaterThanOrEqual(Math.ceil(arcSectors(n.arc) / 2))
    }
    return { ...n, arc }
  })
  return { changed, next }
}

function converge (nodes: Node[], target: number, maxRounds = 50): { nodes: Node[], rounds: number } {
  let cur = nodes
  for (let r = 1; r <= maxRounds; r++) {
    const { changed, next } = round(cur, target)
    cur = next
    if (changed === 0) return { nodes: cur, rounds: r }
  }
  throw new Error(`no fixed point after ${maxRounds} rounds`)
}

const minHolders = (nodes: Node[]): number => Math.min(...sectorHolders(nodes.map(n => n.arc)))
const meanSectors = (nodes: Node[]): number => nodes.reduce((s, n) => s + arcSectors(n.arc), 0) / nodes.length

describe('arc arithmetic', () => {
  it('builds quantised arcs from sectors, wrapping past the top of the ring', () => {
    expect(arcFromSectors(0, 0)).toBeNull()
    expect(arcFromSectors(3, 512)).toBe(FULL_ARC)
    expect(arcFromSectors(0, 1)).toEqual([0, SECTOR_SIZE - 1])
    expect(arcFromSectors(511, 2)).toEqual([511 * SECTOR_SIZE, SECTOR_SIZE - 1])
    expect(arcFromSectors(513, 1)).toEqual(arcFromSectors(1, 1))
    expect(arcSectors(arcFromSectors(511, 2))).toBe(2)
    expect(arcSectors(FULL_ARC)).toBe(SECTOR_COUNT)
    expect(arcLength(FULL_ARC)).toBe(2 ** 32)
    expect(arcLength(null)).toBe(0)
    expect(arcAt(5 * SECTOR_SIZE + 77, 3)).toEqual(arcFromSectors(5, 3))
    expect(() => arcFromSectors(0.5, 1)).toThrow(InvalidArcError)
  })

  it('contains and measures distance like kitsune2 DhtArc (inclusive bounds, wrapping)', () => {
    const wrap: Arc = arcFromSectors(511, 2)
    for (const loc of [511 * SECTOR_SIZE, U32_MAX, 0, SECTOR_SIZE - 1]) expect(arcContains(wrap, loc)).toBe(true)
    for (const loc of [SECTOR_SIZE, 511 * SECTOR_SIZE - 1, 2 ** 31]) expect(arcContains(wrap, loc)).toBe(false)
    expect(arcContains(null, 0)).toBe(false)
    expect(arcContains(FULL_ARC, U32_MAX)).toBe(true)
    expect(distance(wrap, 0)).toBe(0)
    expect(distance(wrap, SECTOR_SIZE)).toBe(1)
    expect(distance(wrap, 511 * SECTOR_SIZE - 10)).toBe(10)
    expect(distance(null, 5)).toBe(U32_MAX)
    const plain: Arc = arcFromSectors(10, 1)
    expect(distance(plain, 0)).toBe(10 * SECTOR_SIZE)
    expect(distance(plain, U32_MAX)).toBe(10 * SECTOR_SIZE + 1)
  })

  it('reads a hash location from its last 4 bytes, little-endian', () => {
    const h = hashFromContent('x', 'Entry')
    expect(dhtLocation(h)).toBe((h[35]! | h[36]! << 8 | h[37]! << 16 | h[38]! << 24) >>> 0)
  })

  it('parses arcs from untrusted input and rejects anything off the grid with a typed error', () => {
    expect(parseArc(null)).toBeNull()
    expect(parseArc([0, U32_MAX])).toBe(FULL_ARC)
    expect(parseArc([SECTOR_SIZE, 2 * SECTOR_SIZE - 1])).toEqual(arcFromSectors(1, 1))
    for (const bad of [[0, 5], [1, SECTOR_SIZE - 1], [0], [-1, 3], [0, 2 ** 32], ['0', '1'], { start: 0 }, 7, [0.5, 1]]) {
      let err: unknown
      try { parseArc(bad, 'storage_arc') } catch (e) { err = e }
      expect(err, JSON.stringify(bad)).toBeInstanceOf(InvalidArcError)
      expect((err as InvalidArcError).name).toBe('InvalidArcError')
      expect((err as InvalidArcError).field).toBe('storage_arc')
    }
  })
})

describe('sector sets', () => {
  it('turns arcs into 512-bit sets whose AND is the overlap', () => {
    const a = arcFromSectors(500, 20) // 500..511, 0..7
    const b = arcFromSectors(5, 10) // 5..14
    const ab = arcOverlap(a, b)
    expect(sectorRanges(ab)).toEqual([[5, 3]])
    expect(countSectors(sectorSet(a))).toBe(20)
    expect(sectorRanges(sectorSet(a))).toEqual([[0, 8], [500, 12]])
    expect(hasSector(ab, 6)).toBe(true)
    expect(hasSector(ab, 8)).toBe(false)
    expect(isEmpty(arcOverlap(a, arcFromSectors(100, 5)))).toBe(true)
    expect(isEmpty(sectorSet(null))).toBe(true)
    expect(countSectors(sectorSet(FULL_ARC))).toBe(512)
    expect(countSectors(or(sectorSet(a), sectorSet(b)))).toBe(27)
    expect(and(sectorSet(FULL_ARC), sectorSet(b))).toEqual(sectorSet(b))
  })

  it('counts holders per sector exactly as a brute-force count does', () => {
    const arcs: Arc[] = [FULL_ARC, null, arcFromSectors(510, 5), arcFromSectors(0, 1), arcFromSectors(200, 100), arcFromSectors(511, 1)]
    const holders = sectorHolders(arcs)
    for (let s = 0; s < SECTOR_COUNT; s++) {
      expect(holders[s], `sector ${s}`).toBe(arcs.filter(a => arcContains(a, s * SECTOR_SIZE + 1)).length)
    }
  })
})

describe('arc sizing', () => {
  it('has a coverage band of [target, ceil(target · 1.143)]', () => {
    expect(coverageBand()).toEqual({ min: 5, max: 6 })
    expect(coverageBand({ targetRedundancy: 3 })).toEqual({ min: 3, max: 4 })
    expect(coverageBand({ targetRedundancy: 12 })).toEqual({ min: 12, max: 14 })
    expect(() => coverageBand({ targetRedundancy: 0 })).toThrow(InvalidArcError)
  })

  it('keeps full arcs in a mesh too small to shard', () => {
    const nodes = agents(4)
    for (const n of nodes) expect(nextArc(n, nodes.filter(o => o !== n), { targetRedundancy: 3 })).toBe(FULL_ARC)
    // an empty-arc node is not counted: five nodes, one of them zero-arc, are still too few for target 5
    const five = agents(7).map((n, i) => i < 2 ? { ...n, arc: null } : n)
    for (const n of five.slice(2)) expect(nextArc(n, five.filter(o => o !== n))).toBe(FULL_ARC)
  })

  it('counts only live non-empty arcs located ahead of the node inside its arc', () => {
    const self = { location: 10 * SECTOR_SIZE + 100, arc: arcFromSectors(10, 3) }
    const peers: ArcPeer[] = [
      { location: 10 * SECTOR_SIZE + 50, arc: FULL_ARC }, // same sector, behind: not counted
      { location: 10 * SECTOR_SIZE + 200, arc: arcFromSectors(10, 1) },
      { location: 12 * SECTOR_SIZE + 5, arc: arcFromSectors(12, 1) },
      { location: 12 * SECTOR_SIZE + 6, arc: null }, // zero arc: not counted
      { location: 13 * SECTOR_SIZE, arc: FULL_ARC } // outside
    ]
    expect(coverage(self, peers)).toBe(2)
    expect(coverage({ ...self, arc: FULL_ARC }, peers)).toBe(4)
    expect(coverage({ ...self, arc: null }, peers)).toBe(0)
  })

  it('converges at 12 nodes with target 3 to arcs covering the whole ring at least 3 times, then stays put', () => {
    const { nodes, rounds } = converge(agents(12), 3)
    expect(rounds).toBeGreaterThan(1) // it did shrink from full
    expect(meanSectors(nodes)).toBeLessThan(SECTOR_COUNT)
    expect(minHolders(nodes)).toBeGreaterThanOrEqual(3)
    for (const n of nodes) {
      const c = coverage(n, nodes.filter(o => o !== n))
      expect(c).toBeGreaterThanOrEqual(3)
      expect(c).toBeLessThanOrEqual(4)
    }
    // any location (here: 500 op bases) has ≥ 3 authorities
    for (let i = 0; i < 500; i++) expect(authoritiesFor(dhtLocation(hashFromContent(i, 'Action')), nodes).length).toBeGreaterThanOrEqual(3)
    // stable: an unchanged mesh changes no arc, round after round
    let cur = nodes
    for (let r = 0; r < 20; r++) {
      const { changed, next } = round(cur, 3)
      expect(changed).toBe(0)
      cur = next
    }
    expect(cur.map(n => n.arc)).toEqual(nodes.map(n => n.arc))
  })

  it('is deterministic and independent of the order peers are listed in', () => {
    const nodes = converge(agents(30), 5).nodes.map((n, i) => i % 3 === 0 ? { ...n, arc: FULL_ARC } : n)
    for (const n of nodes) {
      const others = nodes.filter(o => o !== n)
      const a = nextArc(n, others)
      expect(nextArc(n, [...others].reverse())).toEqual(a)
      expect(nextArc(n, others)).toEqual(a)
    }
  })

  it('grows back when the authorities of a region disappear', () => {
    const { nodes } = converge(agents(12), 3)
    // kill the 4 nodes nearest after one node: the region they held loses authorities
    const sorted = [...nodes].sort((a, b) => a.location - b.location)
    const dead = new Set(sorted.slice(1, 5).map(n => n.id))
    const alive = nodes.filter(n => !dead.has(n.id))
    expect(minHolders(alive)).toBeLessThan(3)
    const healed = converge(alive, 3).nodes
    expect(minHolders(healed)).toBeGreaterThanOrEqual(3)
    expect(meanSectors(healed)).toBeGreaterThan(meanSectors(alive))
  })

  it('shrinks when the mesh grows, never taking any location below the target on the way', () => {
    const small = converge(agents(12), 3).nodes
    // 36 joiners start empty (not yet counted) and size themselves from what they see
    let cur: Node[] = [...small, ...agents(36, 100).map(n => ({ ...n, arc: null }))]
    for (let r = 0; r < 50; r++) {
      const { changed, next } = round(cur, 3)
      cur = next
      expect(minHolders(cur)).toBeGreaterThanOrEqual(3)
      if (changed === 0) break
    }
    expect(round(cur, 3).changed).toBe(0)
    const before = new Map(small.map(n => [n.id, arcSectors(n.arc)]))
    const grown = cur.filter(n => before.has(n.id))
    expect(meanSectors(grown)).toBeLessThan(meanSectors(small))
    for (const n of grown) expect(arcSectors(n.arc)).toBeLessThanOrEqual(before.get(n.id)!)
  })

  it('covers the gap after a crowded sector: nodes behind in the same sector do not count', () => {
    // five nodes share sector 16, the next node is in sector 20; sectors 17..19 must still have 3 holders
    const crowd: Node[] = Array.from({ length: 5 }, (_, i) => ({ id: `b${i}`, location: 16 * SECTOR_SIZE + i * 1000, arc: FULL_ARC }))
    const rest: Node[] = [20, 100, 200, 300, 400, 450, 500].map(s => ({ id: `s${s}`, location: s * SECTOR_SIZE + 5, arc: FULL_ARC }))
    const { nodes } = converge([...crowd, ...rest], 3)
    const holders = sectorHolders(nodes.map(n => n.arc))
    for (const s of [17, 18, 19]) expect(holders[s], `sector ${s}`).toBeGreaterThanOrEqual(3)
    expect(minHolders(nodes)).toBeGreaterThanOrEqual(3)
  })

  it('bottoms out at one sector when a sector holds more nodes than the band', () => {
    // 40 nodes in one sector: each is covered by the others in the sector ahead of it
    const nodes: Node[] = Array.from({ length: 40 }, (_, i) => ({ id: `n${i}`, location: 7 * SECTOR_SIZE + i * 1000, arc: FULL_ARC }))
    const { nodes: done } = converge(nodes, 5)
    for (const n of done.slice(0, 30)) expect(arcSectors(n.arc)).toBe(1)
    expect(minHolders(done)).toBeGreaterThanOrEqual(5)
  })
})

describe('authoritiesFor', () => {
  it('lists the peers holding a location, nearest start first, capped', () => {
    const peers = [
      { id: 'a', location: 10 * SECTOR_SIZE, arc: arcFromSectors(10, 5) },
      { id: 'b', location: 12 * SECTOR_SIZE + 9, arc: arcFromSectors(12, 2) },
      { id: 'c', location: 11 * SECTOR_SIZE, arc: arcFromSectors(11, 1) },
      { id: 'd', location: 0, arc: FULL_ARC },
      { id: 'e', location: 13 * SECTOR_SIZE + 1, arc: null }
    ]
    const loc = 13 * SECTOR_SIZE
    expect(authoritiesFor(loc, peers).map(p => p.id)).toEqual(['b', 'a', 'd'])
    expect(authoritiesFor(loc, peers, 2).map(p => p.id)).toEqual(['b', 'a'])
    expect(authoritiesFor(11 * SECTOR_SIZE + 3, peers).map(p => p.id)).toEqual(['c', 'a', 'd'])
  })
})

describe('ArcKeeper claims', () => {
  it('confirms a claim only for the arc the sync compared over: a newer claim stays unconfirmed', () => {
    const keeper = new ArcKeeper({ targetRedundancy: 3 }, { self: { peer: 'me', location: 0 }, connected: () => ['x'], locationOf: () => 7, logger: silentLogger() })
    const real = sectorSet(arcFromSectors(10, 100))
    const status = (): { arc: Arc, confirmed: boolean } => { const p = keeper.peers()[0]!; return { arc: p.arc, confirmed: p.confirmed } }
    keeper.claim('x', real)
    keeper.confirm('x', real)
    expect(status()).toEqual({ arc: arcFromSectors(10, 100), confirmed: true })
    // x now claims the whole ring; a sync that compared over its earlier arc confirms nothing
    keeper.claim('x', sectorSet(FULL_ARC))
    keeper.confirm('x', real)
    expect(status()).toEqual({ arc: FULL_ARC, confirmed: false })
    keeper.confirm('x', sectorSet(FULL_ARC))
    expect(status().confirmed).toBe(true)
  })
})
