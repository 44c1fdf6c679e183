/**
 * The location grid anti-entropy compares by: sector sets and their wire runs, sparse sums, and
 * the sector summary kept as ops arrive.
 */
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  addSector, differing, emptySectorSet, fromRuns, fullSectorSet, intersect, leafOf, leafSums, locationRange, packSums, SECTORS, sectorOf,
  sectorsOf, SectorSummary, toRuns, unpackSums
} from '../sectors.ts'

const op = (location: number): { location: number, hash: Uint8Array } => ({ location, hash: Uint8Array.of(0x84, 0x24, 0x24, ...randomBytes(36)) })

describe('sectors', () => {
  it('maps locations to sectors and leaves, and back to ranges', () => {
    expect(sectorOf(0)).toBe(0)
    expect(sectorOf(0xffffffff)).toBe(SECTORS - 1)
    expect(leafOf(0xffffffff)).toBe(63)
    const [lo, hi] = locationRange(5)
    expect([sectorOf(lo), sectorOf(hi), sectorOf(hi + 1)]).toEqual([5, 5, 6])
    const [llo, lhi] = locationRange(5, 7)
    expect([sectorOf(llo), leafOf(llo), leafOf(lhi), leafOf(lhi + 1)]).toEqual([5, 7, 7, 8])
  })

  it('sends a sector set as runs, and refuses malformed runs', () => {
    expect(toRuns(fullSectorSet())).toEqual([0, SECTORS])
    expect(toRuns(emptySectorSet())).toEqual([])
    const set = emptySectorSet()
    for (const s of [0, 1, 2, 10, 511]) addSector(set, s)
    expect(toRuns(set)).toEqual([0, 3, 10, 1, 511, 1])
    expect(fromRuns(toRuns(set))).toEqual(set)
    expect(sectorsOf(intersect(set, fromRuns([1, 10])!))).toEqual([1, 2, 10])
    for (const bad of [null, 'all', [0], [0, 0], [511, 2], [-1, 1], [1.5, 1], ['0', 1], Array.from({ length: SECTORS + 2 }, () => 1)]) expect(fromRuns(bad)).toBeNull()
  })

  it('packs sparse sums and refuses malformed ones', () => {
    const sums = new Map([[3, { count: 2, xor: 5n }], [400, { count: 0xffffff, xor: 2n ** 64n - 1n }]])
    const packed = packSums(sums)
    expect(packed.length).toBe(26)
    expect(unpackSums(packed, SECTORS)).toEqual(sums)
    expect(packSums([[1, { count: 0, xor: 0n }]]).length).toBe(0)
    expect(unpackSums(packed, 300)).toBeNull()
    expect(unpackSums(packed.subarray(0, 25), SECTORS)).toBeNull()
    expect(unpackSums(Uint8Array.of(...packed.subarray(0, 13), ...packed.subarray(0, 13)), SECTORS)).toBeNull()
    expect(unpackSums('x', SECTORS)).toBeNull()
  })

  it('keeps per-sector sums whose digest depends only on the ops held in the sectors asked', () => {
    const ops = Array.from({ length: 200 }, () => op(randomBytes(4).readUInt32LE(0)))
    const a = new SectorSummary()
    const b = new SectorSummary()
    for (const o of ops) a.add(o.location, o.hash)
    for (const o of [...ops].reverse()) b.add(o.location, o.hash)
    const all = fullSectorSet()
    expect(a.digest(all)).toEqual(b.digest(all))
    expect(a.total()).toBe(200)
    const extra = op(ops[0]!.location)
    b.add(extra.location, extra.hash)
    expect(a.digest(all)).not.toEqual(b.digest(all))
    expect(differing(a.sums(all), b.sums(all), sectorsOf(all))).toEqual([sectorOf(extra.location)])
    const elsewhere = emptySectorSet()
    addSector(elsewhere, (sectorOf(extra.location) + 1) % SECTORS)
    expect(a.digest(elsewhere)).toEqual(b.digest(elsewhere))
    b.remove(extra.location, extra.hash)
    expect(a.digest(all)).toEqual(b.digest(all))
    const leaves = leafSums(ops.filter(o => sectorOf(o.location) === sectorOf(extra.location)))
    expect([...leaves.values()].reduce((n, s) => n + s.count, 0)).toBe(a.count(sectorOf(extra.location)))
  })
})
