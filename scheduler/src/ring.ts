/**
 * The consistent-hash ring that places vector-memory shards on nodes (design: issue 11 §1).
 *
 * - `shardOfId`: which shard of a collection a point id belongs to;
 * - `HashRing`: the members (node key, weight = vector capacity) as virtual nodes on a 32-bit
 *   circle, each member getting vnodes in proportion to its weight, so a node twice as large
 *   serves about twice the shards;
 * - `placeShards`: each shard's ordered host list (its first `replication_factor` distinct
 *   members clockwise from the shard key), the same on every node that holds the same members;
 * - `diffPlacement`: which hosts each shard gains and loses between two placements, i.e. what a
 *   rebalance has to copy and retire.
 *
 * Consistent hashing is what keeps a join or a leave cheap: a new member takes over only the arcs
 * in front of its own vnodes, so adding a fourth member to three moves about a quarter of the
 * replicas instead of reshuffling them all.
 *
 * Pure: no I/O, no clock, no randomness. The hash is fixed (below), so every node computes the
 * same placement from the same members, whatever their order.
 *
 * ```ts
 * const members = [{ node: 'uhCAkA…', weight: 1e6 }, { node: 'uhCAkB…', weight: 2e6 }]
 * const hosts = placeShards({ collection: 'docs.lz3k9x0', shard_count: 16, replication_factor: 2, members })
 * hosts[shardOfId('doc-42', 16)]  // ['uhCAkB…', 'uhCAkA…']: the shard's primary first
 * ```
 */
import { DEFAULT_VNODES, MAX_VNODES } from './constants.ts'
import { InvalidSchedulerInputError } from './errors.ts'

export { DEFAULT_VNODES }

/** A node on the ring: its agent key string and its weight (vector capacity, > 0). */
export interface RingMember { node: string, weight: number }

export interface HashRingOptions {
  /** virtual nodes of a member of average weight. @default DEFAULT_VNODES (64) */
  vnodes?: number
}

export interface PlaceShardsInput {
  /** the collection's uid (`${name}.${created_at.toString(36)}`): a shard's key is `${collection}/${shard}` */
  collection: string
  shard_count: number
  replication_factor: number
  members: RingMember[]
  /** @default DEFAULT_VNODES (64) */
  vnodes?: number
}

/** One shard whose host set changed between two placements. */
export interface PlacementChange {
  shard: number
  /** hosts in the new placement and not in the old, in the new placement's order */
  added: string[]
  /** hosts in the old placement and not in the new, in the old placement's order */
  removed: string[]
}

const encoder = new TextEncoder()

/**
 * The ring's 32-bit hash: FNV-1a over the UTF-8 bytes of `key`, then murmur3's 32-bit finalizer
 * (fmix32). FNV-1a alone barely separates keys that differ in their last characters
 * (`node#1`, `node#2`), which would bunch a member's vnodes together; the finalizer spreads them.
 * Fixed forever: changing it moves every shard of every collection.
 */
export function ringHash (key: string): number {
  let h = 0x811c9dc5
  for (const byte of encoder.encode(key)) {
    h ^= byte
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

function invalid (field: string, message: string): never {
  throw new InvalidSchedulerInputError(`${field} ${message}`, { field })
}

function wholeNumber (value: unknown, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) invalid(field, `must be a whole number from ${min} to ${max}`)
  return value
}

/**
 * The shard of a collection that a point id belongs to: `ringHash(id) mod shardCount`.
 *
 * @throws {InvalidSchedulerInputError} when `id` is not a string or `shardCount` not a whole number ≥ 1
 */
export function shardOfId (id: string, shardCount: number): number {
  if (typeof id !== 'string') invalid('id', 'must be a string')
  wholeNumber(shardCount, 'shard_count', 1)
  return ringHash(id) % shardCount
}

/**
 * The members' vnodes on the 32-bit circle. A member of weight w gets
 * max(1, round(vnodes × w / mean weight)) vnodes at `ringHash(`${node}#${i}`)`, so its share of
 * the circle, and of the shards, follows its weight; each member keeps at least one.
 */
export class HashRing {
  /** the members, sorted by node */
  readonly members: readonly RingMember[]
  /** vnode positions, ascending */
  readonly #points: Uint32Array
  /** the member (index into `members`) of each vnode */
  readonly #owners: Uint32Array

  /**
   * @throws {InvalidSchedulerInputError} when there are no members, a node is empty or listed
   * twice, a weight is not a finite number > 0, or `vnodes` is not a whole number from 1 to 4096
   */
  constructor (members: RingMember[], options: HashRingOptions = {}) {
    const vnodes = options.vnodes === undefined ? DEFAULT_VNODES : wholeNumber(options.vnodes, 'vnodes', 1, MAX_VNODES)
    if (!Array.isArray(members) || members.length === 0) invalid('members', 'must list at least one member')
    const sorted = members.map((m, i) => {
      if (typeof m?.node !== 'string' || m.node === '') invalid(`members[${i}].node`, 'must be a non-empty string')
      if (typeof m.weight !== 'number' || !Number.isFinite(m.weight) || m.weight <= 0) invalid(`members[${i}].weight`, 'must be a finite number > 0')
      return { node: m.node, weight: m.weight }
    }).sort((a, b) => compare(a.node, b.node))
    for (let i = 1; i < sorted.length; i++) if (sorted[i]!.node === sorted[i - 1]!.node) invalid('members', `list ${sorted[i]!.node} twice`)
    this.members = sorted

    const mean = sorted.reduce((sum, m) => sum + m.weight / sorted.length, 0)
    const points: Array<{ at: number, owner: number }> = []
    sorted.forEach((m, owner) => {
      const count = Math.max(1, Math.round(vnodes * m.weight / mean))
      for (let i = 0; i < count; i++) points.push({ at: ringHash(`${m.node}#${i}`), owner })
    })
    // two vnodes on one position: the lower member first, so the order does not depend on input order
    points.sort((a, b) => a.at - b.at || a.owner - b.owner)
    this.#points = Uint32Array.from(points, p => p.at)
    this.#owners = Uint32Array.from(points, p => p.owner)
  }

  /**
   * The first `count` distinct members clockwise from `ringHash(key)` (all of them when there
   * are fewer), primary first.
   *
   * @throws {InvalidSchedulerInputError} when `count` is not a whole number ≥ 0
   */
  lookup (key: string, count: number): string[] {
    if (typeof key !== 'string') invalid('key', 'must be a string')
    const want = Math.min(wholeNumber(count, 'count', 0), this.members.length)
    const out: string[] = []
    if (want === 0) return out
    const taken = new Uint8Array(this.members.length)
    const n = this.#points.length
    for (let i = this.#firstAtOrAfter(ringHash(key)), seen = 0; seen < n && out.length < want; i = (i + 1) % n, seen++) {
      const owner = this.#owners[i]!
      if (taken[owner] === 1) continue
      taken[owner] = 1
      out.push(this.members[owner]!.node)
    }
    return out
  }

  /** Index of the first vnode at or after `h`, wrapping to 0 past the last. */
  #firstAtOrAfter (h: number): number {
    let lo = 0
    let hi = this.#points.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#points[mid]! < h) lo = mid + 1
      else hi = mid
    }
    return lo === this.#points.length ? 0 : lo
  }
}

/**
 * Each shard's hosts, in order (index = shard number): `min(replication_factor, members)`
 * distinct members, looked up on the ring at `${collection}/${shard}`.
 *
 * @throws {InvalidSchedulerInputError} for an empty collection, a shard_count or
 * replication_factor that is not a whole number ≥ 1, or members the ring refuses
 */
export function placeShards (input: PlaceShardsInput): string[][] {
  if (typeof input?.collection !== 'string' || input.collection === '') invalid('collection', 'must be a non-empty string')
  const shards = wholeNumber(input.shard_count, 'shard_count', 1)
  const rf = wholeNumber(input.replication_factor, 'replication_factor', 1)
  const ring = new HashRing(input.members, { vnodes: input.vnodes })
  const out: string[][] = []
  for (let s = 0; s < shards; s++) out.push(ring.lookup(`${input.collection}/${s}`, rf))
  return out
}

/**
 * For each shard whose host set differs between `before` and `after` (a shard missing on one
 * side has no hosts there), the hosts it gains and loses. A shard whose hosts only changed order
 * is not listed: the same nodes hold it.
 */
export function diffPlacement (before: string[][], after: string[][]): PlacementChange[] {
  const changes: PlacementChange[] = []
  const shards = Math.max(before.length, after.length)
  for (let shard = 0; shard < shards; shard++) {
    const old = before[shard] ?? []
    const now = after[shard] ?? []
    const added = now.filter(h => !old.includes(h))
    const removed = old.filter(h => !now.includes(h))
    if (added.length > 0 || removed.length > 0) changes.push({ shard, added, removed })
  }
  return changes
}

/** Code-unit order, as the members are kept (not locale order, which may differ between nodes). */
function compare (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
