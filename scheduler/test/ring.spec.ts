import { describe, it, expect } from 'vitest'
import { DEFAULT_VNODES, HashRing, InvalidSchedulerInputError, createSeededRng, diffPlacement, placeShards, ringHash, shardOfId } from '../index.ts'
import type { RingMember } from '../index.ts'

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/** Agent-key-like node names ('uhCAk' + 48 base64url characters), the same for the same seed. */
function nodes (count: number, seed: number): string[] {
  const rng = createSeededRng(seed)
  return Array.from({ length: count }, () => 'uhCAk' + Array.from({ length: 48 }, () => BASE64URL[Math.floor(rng() * 64)]).join(''))
}

const equal = (names: string[], weight = 1e6): RingMember[] => names.map(node => ({ node, weight }))

/** Replicas per node over `collections` collections of 16 shards (as `placeShards` places them, on one ring). */
function tally (members: RingMember[], collections: number, replication_factor: number): Map<string, number> {
  const count = new Map<string, number>(members.map(m => [m.node, 0]))
  const ring = new HashRing(members)
  for (let c = 0; c < collections; c++) {
    for (let shard = 0; shard < 16; shard++) {
      for (const h of ring.lookup(`col${c}.lz3k9x0/${shard}`, replication_factor)) count.set(h, count.get(h)! + 1)
    }
  }
  return count
}

function reject (fn: () => unknown, field: string): void {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidSchedulerInputError)
    expect(err).toMatchObject({ name: 'InvalidSchedulerInputError', field })
    return
  }
  expect.fail(`expected InvalidSchedulerInputError on ${field}`)
}

describe('ringHash and shardOfId', () => {
  it('are fixed: the same id gives the same shard on every node, forever', () => {
    // FNV-1a of the UTF-8 bytes, then fmix32; a change here moves every shard of every collection
    expect(ringHash('')).toBe(ringHash(''))
    expect([ringHash('a'), ringHash('doc-42'), ringHash('é')]).toEqual([ringHash('a'), ringHash('doc-42'), ringHash('é')])
    expect(shardOfId('doc-42', 16)).toBe(ringHash('doc-42') % 16)
    expect(shardOfId('anything', 1)).toBe(0)
  })

  it('spreads ids evenly over the shards', () => {
    const counts = new Array<number>(16).fill(0)
    for (let i = 0; i < 32_000; i++) counts[shardOfId(`point-${i}`, 16)]!++
    // 2000 per shard expected; ±10 % is more than 4 standard deviations
    for (const c of counts) expect(c).toBeGreaterThan(1800)
    for (const c of counts) expect(c).toBeLessThan(2200)
    // ids that differ only in their last character do not bunch in a few shards
    const tail = new Set(Array.from({ length: 64 }, (_, i) => shardOfId(`user:${String.fromCharCode(48 + i)}`, 16)))
    expect(tail.size).toBeGreaterThanOrEqual(14)
  })

  it('refuses a shard count that is not a whole number ≥ 1', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, Infinity]) reject(() => shardOfId('x', bad), 'shard_count')
    reject(() => shardOfId(42 as unknown as string, 16), 'id')
  })
})

describe('HashRing', () => {
  it('looks up distinct members, primary first, and all of them when fewer than asked', () => {
    const names = nodes(5, 1)
    const ring = new HashRing(equal(names))
    const three = ring.lookup('col.x/3', 3)
    expect(new Set(three).size).toBe(3)
    expect(ring.lookup('col.x/3', 1)).toEqual(three.slice(0, 1))
    expect(ring.lookup('col.x/3', 5).slice(0, 3)).toEqual(three)
    expect(ring.lookup('col.x/3', 9).sort()).toEqual([...names].sort())
    expect(ring.lookup('col.x/3', 0)).toEqual([])
    expect(ring.members.map(m => m.node)).toEqual([...names].sort())
    // placeShards is this lookup at `${collection}/${shard}`
    expect(placeShards({ collection: 'col.x', shard_count: 4, replication_factor: 3, members: equal(names) })[3]).toEqual(three)
  })

  it('gives a member its vnodes in proportion to its weight, at least one each', () => {
    // a member of tiny weight still appears on the ring, so it still gets a few keys
    const [big, tiny] = nodes(2, 2)
    const ring = new HashRing([{ node: big!, weight: 1e9 }, { node: tiny!, weight: 1 }])
    const hosts = Array.from({ length: 200 }, (_, i) => ring.lookup(`k${i}`, 2))
    expect(hosts.every(h => h.length === 2)).toBe(true)
    expect(hosts.filter(h => h[0] === big).length).toBeGreaterThan(180)
    expect(DEFAULT_VNODES).toBe(64)
  })

  it('refuses invalid members and options', () => {
    const [a, b] = nodes(2, 3)
    reject(() => new HashRing([]), 'members')
    reject(() => new HashRing(undefined as unknown as RingMember[]), 'members')
    reject(() => new HashRing([{ node: a!, weight: 0 }]), 'members[0].weight')
    reject(() => new HashRing([{ node: a!, weight: 1 }, { node: b!, weight: -2 }]), 'members[1].weight')
    reject(() => new HashRing([{ node: a!, weight: Number.NaN }]), 'members[0].weight')
    reject(() => new HashRing([{ node: a!, weight: Infinity }]), 'members[0].weight')
    reject(() => new HashRing([{ node: '', weight: 1 }]), 'members[0].node')
    reject(() => new HashRing([{ node: a!, weight: 1 }, { node: a!, weight: 2 }]), 'members')
    reject(() => new HashRing(equal([a!]), { vnodes: 0 }), 'vnodes')
    reject(() => new HashRing(equal([a!]), { vnodes: 1e6 }), 'vnodes')
    reject(() => new HashRing(equal([a!])).lookup('k', -1), 'count')
    reject(() => new HashRing(equal([a!])).lookup('k', 1.5), 'count')
  })
})

describe('placeShards', () => {
  it('is deterministic: the same members in any order give the same placement', () => {
    const members = nodes(6, 4).map((node, i) => ({ node, weight: (i + 1) * 1e5 }))
    const input = { collection: 'docs.lz3k9x0', shard_count: 16, replication_factor: 2 }
    const placed = placeShards({ ...input, members })
    expect(placed).toHaveLength(16)
    const shuffled = [...members].reverse()
    shuffled.push(shuffled.splice(2, 1)[0]!)
    expect(placeShards({ ...input, members: shuffled })).toEqual(placed)
    // another collection (or a re-created one, whose uid differs) is placed independently
    expect(placeShards({ ...input, collection: 'docs.lz3k9x1', members })).not.toEqual(placed)
  })

  it('puts each shard\'s replicas on distinct nodes', () => {
    const members = equal(nodes(4, 5))
    for (const rf of [1, 2, 3, 4]) {
      for (const hosts of placeShards({ collection: 'c.1', shard_count: 64, replication_factor: rf, members })) {
        expect(hosts).toHaveLength(rf)
        expect(new Set(hosts).size).toBe(rf)
      }
    }
  })

  it('places on every member when there are fewer members than the replication factor', () => {
    const one = equal(nodes(1, 6))
    expect(placeShards({ collection: 'c.1', shard_count: 4, replication_factor: 2, members: one })).toEqual(Array.from({ length: 4 }, () => [one[0]!.node]))
    const two = equal(nodes(2, 7))
    for (const hosts of placeShards({ collection: 'c.1', shard_count: 8, replication_factor: 3, members: two })) expect([...hosts].sort()).toEqual(two.map(m => m.node).sort())
  })

  it('gives a member of twice the weight about twice the shards', () => {
    // over 20 rings of random keys (each ring's own vnode luck averages out) and 200 collections each
    const ratios: number[] = []
    for (let seed = 100; seed < 120; seed++) {
      const [heavy, ...light] = nodes(4, seed)
      const members = [{ node: heavy!, weight: 2e6 }, ...equal(light)]
      const count = tally(members, 200, 1)
      const lightMean = light.reduce((sum, n) => sum + count.get(n)!, 0) / light.length
      ratios.push(count.get(heavy!)! / lightMean)
    }
    const mean = ratios.reduce((a, b) => a + b) / ratios.length
    expect(mean).toBeGreaterThan(1.8)
    expect(mean).toBeLessThan(2.3)
    // and on every single ring the heavy member clearly gets more
    for (const r of ratios) expect(r).toBeGreaterThan(1.4)
  })

  it('balances equal members', () => {
    // 5 equal members, rf 2: 6400 replicas over 200 collections, 1280 each when perfect
    for (let seed = 200; seed < 210; seed++) {
      const members = equal(nodes(5, seed))
      for (const c of tally(members, 200, 2).values()) {
        expect(c / 1280).toBeGreaterThan(0.6)
        expect(c / 1280).toBeLessThan(1.4)
      }
    }
  })

  it('moves about a quarter of the replicas when a fourth member joins, and only onto it', () => {
    let moved = 0
    let total = 0
    for (let seed = 300; seed < 310; seed++) {
      const [a, b, c, d] = nodes(4, seed)
      for (let col = 0; col < 20; col++) {
        const input = { collection: `col${col}.lz3k9x0`, shard_count: 16, replication_factor: 2 }
        const before = placeShards({ ...input, members: equal([a!, b!, c!]) })
        const after = placeShards({ ...input, members: equal([a!, b!, c!, d!]) })
        for (const change of diffPlacement(before, after)) {
          // a join only ever adds the newcomer, each time in place of one old host
          expect(change.added).toEqual([d])
          expect(change.removed).toHaveLength(1)
          moved++
        }
        total += 32
      }
    }
    // a reshuffle would move far more than half; consistent hashing moves ≈ 1/4
    expect(moved / total).toBeGreaterThan(0.15)
    expect(moved / total).toBeLessThan(0.35)
  })

  it('refuses invalid input', () => {
    const members = equal(nodes(2, 8))
    reject(() => placeShards({ collection: '', shard_count: 4, replication_factor: 2, members }), 'collection')
    reject(() => placeShards({ collection: 'c.1', shard_count: 0, replication_factor: 2, members }), 'shard_count')
    reject(() => placeShards({ collection: 'c.1', shard_count: 4, replication_factor: 0, members }), 'replication_factor')
    reject(() => placeShards({ collection: 'c.1', shard_count: 4, replication_factor: 1.5, members }), 'replication_factor')
    reject(() => placeShards({ collection: 'c.1', shard_count: 4, replication_factor: 2, members: [] }), 'members')
    reject(() => placeShards({ collection: 'c.1', shard_count: 4, replication_factor: 2, members: [{ node: 'x', weight: -1 }] }), 'members[0].weight')
  })
})

describe('diffPlacement', () => {
  it('lists only the shards whose host set changed, with hosts added and removed', () => {
    const before = [['a', 'b'], ['b', 'c'], ['c', 'a'], ['a']]
    const after = [['a', 'b'], ['c', 'b'], ['d', 'a'], ['a'], ['e']]
    expect(diffPlacement(before, after)).toEqual([
      { shard: 2, added: ['d'], removed: ['c'] },
      { shard: 4, added: ['e'], removed: [] }
    ])
    expect(diffPlacement(after, before)).toEqual([
      { shard: 2, added: ['c'], removed: ['d'] },
      { shard: 4, added: [], removed: ['e'] }
    ])
    expect(diffPlacement(before, before)).toEqual([])
  })
})
