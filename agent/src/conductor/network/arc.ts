/**
 * Storage arcs: which DHT locations a node is an authority for, and how an arc is resized so every
 * location keeps a target number of authorities. Pure functions, no I/O.
 *
 * An arc is a range of the u32 location ring, both bounds inclusive, that may wrap past
 * `0xffffffff`; `null` is the empty arc. Arcs are quantised to kitsune2's grid of 512 sectors of
 * 2^23 locations, and an arc's left edge is its node's own location rounded down to a sector (the
 * legacy "unidirectional" arc), so an arc is fully described by its length in sectors. A set of
 * sectors travels and compares as a 512-bit bitset (`Uint32Array(16)`): the overlap of two arcs,
 * over which two nodes run anti-entropy, is a bitwise AND.
 *
 * Resizing (`nextArc`) follows the legacy kitsune `ArqStrat` (a coverage band [min, max] with
 * min = the target redundancy and max = ceil(min · 1.143), nothing changes inside the band, a step
 * toward its middle outside it, bounded to ×0.5..×2), with one change: a node's coverage is the
 * number of *other* live nodes with a non-empty arc whose location lies inside its arc, ahead of
 * its own. If every node keeps that count ≥ min, every location has ≥ min authorities (the min
 * nodes nearest before a location all reach past it), and because the count depends
 * on where peers are, not on how long their arcs are, nodes resizing at the same time do not chase
 * each other.
 *
 * ```ts
 * const me = { location: dhtLocation(agentKey), arc: FULL_ARC }
 * const arc = nextArc(me, peers.map(p => ({ location: p.location, arc: p.arc })), { targetRedundancy: 5 })
 * arcContains(arc, dhtLocation(basis)) // am I an authority for this basis?
 * const common = arcOverlap(arc, peerArc) // sectors to sync with that peer
 * ```
 */
import { FlexnodeError } from '../../errors.ts'

/** `[start, end]` on the u32 ring, inclusive, may wrap; `null` is the empty arc. */
export type Arc = null | readonly [start: number, end: number]

/** A 512-bit set of sectors: bit `s & 31` of word `s >>> 5` is sector `s`. */
export type SectorSet = Uint32Array

export const SECTOR_BITS = 23
export const SECTOR_SIZE = 2 ** SECTOR_BITS
export const SECTOR_COUNT = 512
const RING = 2 ** 32
const U32_MAX = 0xffffffff
const WORDS = SECTOR_COUNT / 32

export const FULL_ARC: Arc = Object.freeze([0, U32_MAX] as const)

/** @default 5 authorities per location */
export const DEFAULT_TARGET_REDUNDANCY = 5
/** max coverage = ceil(min · (1 + buffer)) @default 0.143 (legacy kitsune `ArqStrat::standard`) */
export const DEFAULT_COVERAGE_BUFFER = 0.143
/** a shrink moves this share of the way to the band's middle @default 0.5 */
export const DEFAULT_SHRINK_DAMPING = 0.5

/** An arc from the network or a file that is not a u32 pair on sector boundaries. */
export class InvalidArcError extends FlexnodeError {
  static override readonly name = 'InvalidArcError'
  readonly field?: string

  constructor (message: string, field?: string) {
    super(message)
    this.field = field
  }
}

export function sectorOf (loc: number): number {
  return loc >>> SECTOR_BITS
}

const mod = (n: number, m: number): number => ((n % m) + m) % m

/** The arc of `count` whole sectors starting at sector `startSector` (taken modulo 512). */
export function arcFromSectors (startSector: number, count: number): Arc {
  if (!Number.isInteger(startSector) || !Number.isInteger(count)) throw new InvalidArcError(`sector start and count must be integers, got ${startSector}, ${count}`)
  if (count <= 0) return null
  if (count >= SECTOR_COUNT) return FULL_ARC
  const s = mod(startSector, SECTOR_COUNT)
  return [s * SECTOR_SIZE, mod((s + count) * SECTOR_SIZE - 1, RING)]
}

/** The unidirectional arc of a node: `count` sectors from the sector of its own location. */
export function arcAt (location: number, count: number): Arc {
  return arcFromSectors(sectorOf(location), count)
}

/** Number of locations in the arc (0 for empty, 2^32 for full). */
export function arcLength (arc: Arc): number {
  if (arc === null) return 0
  return mod(arc[1] - arc[0], RING) + 1
}

/** Length of a quantised arc in sectors (0..512). */
export function arcSectors (arc: Arc): number {
  return Math.floor(arcLength(arc) / SECTOR_SIZE)
}

export function arcContains (arc: Arc, loc: number): boolean {
  if (arc === null) return false
  const [start, end] = arc
  return start <= end ? loc >= start && loc <= end : loc >= start || loc <= end
}

/** Wrapping distance from the arc to `loc`: 0 inside, `0xffffffff` for the empty arc (kitsune2 `DhtArc::dist`). */
export function distance (arc: Arc, loc: number): number {
  if (arc === null) return U32_MAX
  if (arcContains(arc, loc)) return 0
  return Math.min(mod(arc[0] - loc, RING), mod(loc - arc[1], RING))
}

/** Whether the arc lies on sector boundaries (what `parseArc` accepts). */
export function isQuantised (arc: Arc): boolean {
  if (arc === null) return true
  return arc[0] % SECTOR_SIZE === 0 && (arc[1] + 1) % SECTOR_SIZE === 0
}

/** An arc from untrusted input: `null` or `[start, end]` of u32s on sector boundaries. */
export function parseArc (value: unknown, field = 'arc'): Arc {
  if (value === null) return null
  if (!Array.isArray(value) || value.length !== 2) throw new InvalidArcError(`${field} must be null or a [start, end] pair`, field)
  const [start, end] = value as unknown[]
  for (const b of [start, end]) {
    if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b > U32_MAX) throw new InvalidArcError(`${field} bounds must be integers in 0..${U32_MAX}`, field)
  }
  const arc = [start as number, end as number] as const
  if (!isQuantised(arc)) throw new InvalidArcError(`${field} must start and end on ${SECTOR_SIZE}-location sector boundaries`, field)
  return arcSectors(arc) >= SECTOR_COUNT ? FULL_ARC : arc
}

// -- sector sets ------------------------------------------------------------------------------

/** The sectors of a quantised arc as a 512-bit set. */
export function sectorSet (arc: Arc): SectorSet {
  const set = new Uint32Array(WORDS)
  const count = arcSectors(arc)
  if (arc === null || count === 0) return set
  if (count >= SECTOR_COUNT) return set.fill(U32_MAX)
  const first = sectorOf(arc[0])
  for (let i = 0; i < count; i++) {
    const s = (first + i) % SECTOR_COUNT
    set[s >>> 5]! |= 1 << (s & 31)
  }
  return set
}

export function and (a: SectorSet, b: SectorSet): SectorSet {
  const out = new Uint32Array(WORDS)
  for (let i = 0; i < WORDS; i++) out[i] = a[i]! & b[i]!
  return out
}

export function or (a: SectorSet, b: SectorSet): SectorSet {
  const out = new Uint32Array(WORDS)
  for (let i = 0; i < WORDS; i++) out[i] = a[i]! | b[i]!
  return out
}

export function isEmpty (set: SectorSet): boolean {
  return set.every(w => w === 0)
}

export function hasSector (set: SectorSet, sector: number): boolean {
  return (set[sector >>> 5]! & (1 << (sector & 31))) !== 0
}

/** Number of sectors in the set. */
export function countSectors (set: SectorSet): number {
  let n = 0
  for (let w of set) {
    while (w !== 0) { w &= w - 1; n++ }
  }
  return n
}

/** The sectors both arcs hold: what two nodes compare and exchange in anti-entropy. */
export function arcOverlap (a: Arc, b: Arc): SectorSet {
  return and(sectorSet(a), sectorSet(b))
}

/** The set as maximal runs `[startSector, count]`, in sector order (a run over sector 0 is not joined). */
export function sectorRanges (set: SectorSet): Array<[start: number, count: number]> {
  const out: Array<[number, number]> = []
  let start = -1
  for (let s = 0; s <= SECTOR_COUNT; s++) {
    const inSet = s < SECTOR_COUNT && hasSector(set, s)
    if (inSet && start < 0) start = s
    if (!inSet && start >= 0) { out.push([start, s - start]); start = -1 }
  }
  return out
}

// -- coverage and resizing --------------------------------------------------------------------

/** A node as arc sizing sees it: its location and its declared arc. */
export interface ArcPeer { location: number, arc: Arc }

export interface ArcStrategy {
  /** authorities wanted per location (min coverage) @default 5 */
  targetRedundancy?: number
  /** max coverage = ceil(min · (1 + buffer)) @default 0.143 */
  buffer?: number
  /** share of the way to the band's middle a shrink moves @default 0.5 */
  shrinkDamping?: number
}

export interface CoverageBand { min: number, max: number }

export function coverageBand (strategy: ArcStrategy = {}): CoverageBand {
  const min = strategy.targetRedundancy ?? DEFAULT_TARGET_REDUNDANCY
  const buffer = strategy.buffer ?? DEFAULT_COVERAGE_BUFFER
  if (!Number.isInteger(min) || min < 1) throw new InvalidArcError(`targetRedundancy must be a positive integer, got ${min}`, 'targetRedundancy')
  if (!(buffer >= 0)) throw new InvalidArcError(`buffer must be ≥ 0, got ${buffer}`, 'buffer')
  return { min, max: Math.max(min, Math.ceil(min * (1 + buffer))) }
}

const live = (peers: readonly ArcPeer[]): ArcPeer[] => peers.filter(p => p.arc !== null && arcSectors(p.arc) > 0)

/** Clockwise distance on the ring from `a` to `b`. */
const ahead = (a: number, b: number): number => mod(b - a, RING)

/**
 * Coverage of `self`'s arc: how many of `peers` (the *other* live nodes) have a non-empty declared
 * arc and a location in `self`'s arc at or after `self`'s own location (the part of its first
 * sector before it does not count). While every node keeps it ≥ min, every location has ≥ min
 * authorities: the min nodes nearest before a location each reach past it.
 */
export function coverage (self: ArcPeer, peers: readonly ArcPeer[]): number {
  if (self.arc === null) return 0
  const full = arcSectors(self.arc) >= SECTOR_COUNT
  const reach = ahead(self.location, self.arc[1])
  let n = 0
  for (const p of live(peers)) {
    if (full || (arcContains(self.arc, p.location) && ahead(self.location, p.location) <= reach)) n++
  }
  return n
}

/**
 * The arc `self` should declare next, given the other live nodes. A mesh of at most `max` live
 * non-empty nodes (self included) keeps full arcs. Otherwise nothing changes while coverage is in
 * [min, max]; below min the arc grows toward the length that puts coverage in the middle of the
 * band (at most ×2 per step); above max it shrinks part of the way there (at most ×0.5 per step,
 * never below the length that keeps coverage ≥ min, never below one sector). Deterministic: the
 * same inputs give the same arc; apply it at most once per presence expiry, so the moves of others
 * are visible first.
 */
export function nextArc (self: ArcPeer, peers: readonly ArcPeer[], strategy: ArcStrategy = {}): Arc {
  const { min, max } = coverageBand(strategy)
  const damping = strategy.shrinkDamping ?? DEFAULT_SHRINK_DAMPING
  const others = live(peers)
  if (others.length + 1 <= max) return FULL_ARC
  const c = coverage(self, others)
  if (c >= min && c <= max) return self.arc
  const start = sectorOf(self.location)
  // for each other node, the sectors an arc of ours needs to count it (> 512 for one just behind us)
  const offset = self.location % SECTOR_SIZE
  const need = Float64Array.from(others, p => Math.floor((offset + ahead(self.location, p.location)) / SECTOR_SIZE) + 1).sort()
  const lenFor = (k: number): number => k <= need.length ? need[k - 1]! : SECTOR_COUNT + 1
  const lo = lenFor(min) // shortest arc with coverage ≥ min
  const hi = lenFor(max + 1) - 1 // longest arc with coverage ≤ max
  const aim = Math.max(lo, Math.floor((lo + hi) / 2))
  const current = arcSectors(self.arc)
  let next: number
  if (c < min) {
    next = current === 0 ? aim : Math.min(aim, 2 * current)
  } else {
    const step = Math.max(1, Math.ceil((current - aim) * damping))
    next = Math.max(lo, Math.ceil(current / 2), current - step, 1)
  }
  return arcFromSectors(start, Math.min(next, SECTOR_COUNT))
}

/**
 * Holders per sector: `out[s]` = how many of the arcs hold sector `s` (one pass over the arcs and
 * one over the ring).
 */
export function sectorHolders (arcs: Iterable<Arc>): Uint32Array {
  const diff = new Int32Array(SECTOR_COUNT + 1)
  let full = 0
  for (const arc of arcs) {
    const count = arcSectors(arc)
    if (arc === null || count === 0) continue
    if (count >= SECTOR_COUNT) { full++; continue }
    const first = sectorOf(arc[0])
    const last = first + count
    diff[first]!++
    if (last <= SECTOR_COUNT) diff[last]!--
    else { diff[SECTOR_COUNT]!--; diff[0]!++; diff[last - SECTOR_COUNT]!-- }
  }
  const out = new Uint32Array(SECTOR_COUNT)
  let run = 0
  for (let s = 0; s < SECTOR_COUNT; s++) { run += diff[s]!; out[s] = run + full }
  return out
}

/**
 * The authorities for a location: peers whose arc contains it, nearest first (by the clockwise
 * distance from the peer's own location to `loc`, ties by id), at most `max`.
 */
export function authoritiesFor<P extends ArcPeer & { id: string }> (loc: number, peers: readonly P[], max: number = Number.POSITIVE_INFINITY): P[] {
  const holders = peers.filter(p => arcContains(p.arc, loc))
  const key = (p: P): number => mod(loc - p.location, RING)
  holders.sort((a, b) => key(a) - key(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  return holders.slice(0, max)
}
