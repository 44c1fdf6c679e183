/**
 * The DHT location space as anti-entropy sees it: kitsune2's grid of 512 sectors of 2^23
 * locations, each split into 64 leaves of 2^17, and a per-sector summary of the ops a node holds
 * (count and XOR of the op hashes' first 8 core bytes, kept incrementally) so two nodes find the
 * sectors they disagree on without listing anything.
 *
 * A set of sectors (an arc, the overlap of two arcs) is `arc.ts`'s 512-bit set in memory and a
 * list of runs `[first, count, first, count, ...]` on the wire: a full arc is `[0, 512]`.
 *
 * ```ts
 * const summary = new SectorSummary()
 * summary.add(op.location, op.hash)
 * const common = intersect(mine, theirs)
 * if (!equalBytes(summary.digest(common), theirDigest)) ...
 * ```
 */
import { blake2b256 } from '../holo/hash.ts'
import { and, FULL_ARC, hasSector, SECTOR_BITS, SECTOR_COUNT, sectorOf, sectorRanges, sectorSet, type SectorSet } from './network/arc.ts'

export { hasSector, sectorOf, type SectorSet }
export const SECTORS = SECTOR_COUNT
export const LEAVES = 64
export const LEAF_SHIFT = SECTOR_BITS - 6

/** The leaf of a location within its sector. */
export function leafOf (location: number): number {
  return (location >>> LEAF_SHIFT) & (LEAVES - 1)
}

/** Inclusive location bounds of a sector, or of one leaf of it. */
export function locationRange (sector: number, leaf?: number): [number, number] {
  if (leaf === undefined) {
    const lo = sector * 2 ** SECTOR_BITS
    return [lo, lo + 2 ** SECTOR_BITS - 1]
  }
  const lo = sector * 2 ** SECTOR_BITS + leaf * 2 ** LEAF_SHIFT
  return [lo, lo + 2 ** LEAF_SHIFT - 1]
}

export function fullSectorSet (): SectorSet {
  return sectorSet(FULL_ARC)
}

export function emptySectorSet (): SectorSet {
  return sectorSet(null)
}

export function addSector (set: SectorSet, sector: number): void {
  set[sector >>> 5] = set[sector >>> 5]! | (1 << (sector & 31))
}

export const intersect = and

export function sectorsOf (set: SectorSet): number[] {
  const out: number[] = []
  for (let s = 0; s < SECTORS; s++) if (hasSector(set, s)) out.push(s)
  return out
}

/** The wire form of a sector set: its runs of consecutive sectors, `[first, count, ...]`. */
export function toRuns (set: SectorSet): number[] {
  return sectorRanges(set).flat()
}

/** A sector set from its wire form; null unless it is at most 256 in-range runs. */
export function fromRuns (v: unknown): SectorSet | null {
  if (!Array.isArray(v) || v.length % 2 !== 0 || v.length > SECTORS) return null
  const set = emptySectorSet()
  for (let i = 0; i < v.length; i += 2) {
    const first: unknown = v[i]
    const count: unknown = v[i + 1]
    if (!Number.isInteger(first) || !Number.isInteger(count) || (first as number) < 0 || (count as number) < 1 || (first as number) + (count as number) > SECTORS) return null
    for (let s = first as number; s < (first as number) + (count as number); s++) addSector(set, s)
  }
  return set
}

function fold (opHash: Uint8Array): bigint {
  return new DataView(opHash.buffer, opHash.byteOffset + 3, 8).getBigUint64(0)
}

/** One bucket's summary: how many ops, and the XOR of their folds. */
export interface BucketSum { count: number, xor: bigint }

/**
 * Sparse bucket sums on the wire: 13 bytes per non-empty bucket (index u16, count u24 capped,
 * xor u64), so a node that holds little sends little.
 */
export function packSums (sums: Iterable<[number, BucketSum]>): Uint8Array {
  const list = [...sums].filter(([, s]) => s.count > 0)
  const out = new Uint8Array(list.length * 13)
  const view = new DataView(out.buffer)
  list.forEach(([i, s], k) => {
    view.setUint16(k * 13, i)
    const c = Math.min(s.count, 0xffffff)
    view.setUint8(k * 13 + 2, c >>> 16)
    view.setUint16(k * 13 + 3, c & 0xffff)
    view.setBigUint64(k * 13 + 5, s.xor)
  })
  return out
}

/** Unpack sparse sums; null when the bytes are not a whole number of well-formed entries. */
export function unpackSums (bytes: unknown, buckets: number): Map<number, BucketSum> | null {
  if (!(bytes instanceof Uint8Array) || bytes.length % 13 !== 0 || bytes.length / 13 > buckets) return null
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out = new Map<number, BucketSum>()
  for (let k = 0; k < bytes.length / 13; k++) {
    const i = view.getUint16(k * 13)
    if (i >= buckets || out.has(i)) return null
    const count = (view.getUint8(k * 13 + 2) << 16) | view.getUint16(k * 13 + 3)
    out.set(i, { count, xor: view.getBigUint64(k * 13 + 5) })
  }
  return out
}

/** Sums of `{location, hash}` ops by leaf, for one sector. */
export function leafSums (ops: Iterable<{ location: number, hash: Uint8Array }>): Map<number, BucketSum> {
  const out = new Map<number, BucketSum>()
  for (const op of ops) {
    const leaf = leafOf(op.location)
    const s = out.get(leaf) ?? { count: 0, xor: 0n }
    s.count++
    s.xor ^= fold(op.hash)
    out.set(leaf, s)
  }
  return out
}

/** The buckets in `scope` whose sums differ between `mine` and `theirs`. */
export function differing (mine: Map<number, BucketSum>, theirs: Map<number, BucketSum>, scope: Iterable<number>): number[] {
  const out: number[] = []
  for (const i of scope) {
    const a = mine.get(i)
    const b = theirs.get(i)
    if ((a?.count ?? 0) !== (b?.count ?? 0) || (a?.xor ?? 0n) !== (b?.xor ?? 0n)) out.push(i)
  }
  return out
}

/** Per-sector sums of the ops a node holds, kept as ops arrive. */
export class SectorSummary {
  private readonly counts = new Uint32Array(SECTORS)
  private readonly xors = new BigUint64Array(SECTORS)

  clear (): void {
    this.counts.fill(0)
    this.xors.fill(0n)
  }

  add (location: number, opHash: Uint8Array): void {
    const s = sectorOf(location)
    this.counts[s]!++
    this.xors[s] = this.xors[s]! ^ fold(opHash)
  }

  remove (location: number, opHash: Uint8Array): void {
    const s = sectorOf(location)
    if (this.counts[s] === 0) return
    this.counts[s]!--
    this.xors[s] = this.xors[s]! ^ fold(opHash)
  }

  count (sector: number): number {
    return this.counts[sector]!
  }

  /** Ops held in the sectors of `set`. */
  total (set: SectorSet = fullSectorSet()): number {
    let n = 0
    for (const s of sectorsOf(set)) n += this.counts[s]!
    return n
  }

  /** Sums of the non-empty sectors of `set`. */
  sums (set: SectorSet): Map<number, BucketSum> {
    const out = new Map<number, BucketSum>()
    for (const s of sectorsOf(set)) if (this.counts[s]! > 0) out.set(s, { count: this.counts[s]!, xor: this.xors[s]! })
    return out
  }

  /** 32 bytes that are equal on two nodes holding the same ops in the sectors of `set`. */
  digest (set: SectorSet): Uint8Array {
    const sums = packSums(this.sums(set))
    const bytes = new Uint8Array(set.byteLength + sums.length)
    bytes.set(new Uint8Array(set.buffer, set.byteOffset, set.byteLength), 0)
    bytes.set(sums, set.byteLength)
    return blake2b256(bytes)
  }
}
