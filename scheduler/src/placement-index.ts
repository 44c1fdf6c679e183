/**
 * PlacementIndex: the pick `pickNode` makes, without filtering and scoring every node of the mesh.
 * Built once from the nodes, kept current with `update(node)` / `remove(nodeId)` as leases,
 * load and availability change, and asked `pick(request, policy)` for each decision.
 *
 * How it avoids the scan. Only nodes that are `online` or `busy` are indexed, in groups: by
 * resource type offered and region, and by model held (loaded, or on disk only) and region. A
 * request walks only the groups that can hold its candidates: its model's when it names one,
 * else its resource type's. Each group is kept sorted (lazily, after its membership changed) by
 * the positions of the key that do not depend on the request, in key order: data held, online,
 * then the locality of the request's preference (the requester itself, then the rtt bucket; or
 * the cost; or the speed). The positions before fit (affinity, pool, availability and, for
 * `locality_aware_binpack`, locality) then have an upper bound that never rises along the walk —
 * exact except the pool (2 for any class) and the region (1 in the requester's region group) — so
 * the walk of a group stops at the first node whose bound is below the best key found so far: no
 * node after it can beat that key or tie it. The requester's region group is walked first, the
 * model's loaded nodes before those that only have it on disk, so the best key comes early.
 *
 * The filters and the key are placement.ts's own (`firstFailure`, `keyInto`, `compareKeys`) and
 * a tie goes to the lower `node_id` as in `pickNode`, so the pick is the same node for the same
 * nodes, request and policy (a seeded randomized test checks it over every algorithm and locality).
 *
 * Cost: a decision visits the nodes that tie the best on the key's prefix, plus one per group
 * walked; a request that fits nowhere visits every node of its groups. `binpack` and `spread`
 * put fit right after availability, so they prune only across data held and availability.
 * Re-sorting happens after a node joins, leaves or changes a sorted field (availability,
 * `holds_data`, `self`, region, rtt, cost, speed, offers, models); a change of leases or load
 * alone costs nothing but the call.
 *
 * ```ts
 * const index = new PlacementIndex(nodes)
 * const id = index.pick({ resource_type: 'compute', requirements: { cpu_cores: 2, memory_gb: 4 }, region: 'eu-west' })
 * // === pickNode(nodes, same request)
 * index.update({ ...node, leased: { ...node.leased, cpu_cores: node.leased.cpu_cores + 2, memory_gb: node.leased.memory_gb + 4 } })
 * ```
 */
import { DEFAULT_COMPUTE_POLICY, type ComputePolicy, type SchedulingAlgorithm } from './compute-policy.ts'
import { InvalidSchedulerInputError } from './errors.ts'
import {
  LOCALITY_PREFERENCES,
  RESOURCE_DIMENSIONS,
  compareKeys,
  firstFailure,
  keyInto,
  localityInto,
  resolveRequest,
  type LocalityPreference,
  type PlacementNode,
  type PlacementRequest,
  type Resolved,
  type Resources
} from './placement.ts'

/** Sort orders of a group: one per locality preference, in `LOCALITY_PREFERENCES` order. */
const MODES = LOCALITY_PREFERENCES.length

/** One indexed node and the request-independent parts of its key. */
class Entry {
  node: PlacementNode
  /** `holds_data` (0/1), key position 0 beside the model's residency */
  holds = 0
  /** `online` (1) or `busy` (0), key position 2 */
  online = 0
  /** the requester itself (1/0) */
  self = 0
  /** the rtt bucket as `nearest` scores it (0 for the requester itself) */
  near = 0
  /** the cost as `cheapest` scores it */
  cheap = 0
  /** the speed as `fastest` scores it */
  fast = 0
  // what decides the node's groups, as last read (arrays copied: a caller may change them in place)
  availability = ''
  region = ''
  offers: string[] = []
  loaded: string[] = []
  available: string[] = []
  /** the groups the node is in */
  groups: Group[] = []

  constructor (node: PlacementNode) {
    this.node = node
    this.read(node)
  }

  /** Recompute the static parts from `node`. */
  read (node: PlacementNode): void {
    this.node = node
    this.availability = node.availability
    this.region = node.latency_region
    this.offers = [...node.offers]
    this.loaded = [...(node.models_loaded ?? [])]
    this.available = [...(node.models_available ?? [])]
    this.holds = node.holds_data === true ? 1 : 0
    this.online = node.availability === 'online' ? 1 : 0
    this.self = node.self === true ? 1 : 0
    this.near = nearKey(node)
    this.cheap = cheapKey(node)
    this.fast = fastKey(node)
  }

  /** Whether `node` (this node, updated) belongs to other groups or elsewhere in their order. */
  moves (node: PlacementNode): boolean {
    return node.availability !== this.availability || node.latency_region !== this.region ||
      (node.holds_data === true ? 1 : 0) !== this.holds || (node.self === true ? 1 : 0) !== this.self ||
      nearKey(node) !== this.near || cheapKey(node) !== this.cheap || fastKey(node) !== this.fast ||
      !sameItems(node.offers, this.offers) || !sameItems(node.models_loaded ?? NONE, this.loaded) || !sameItems(node.models_available ?? NONE, this.available)
  }
}

const NONE: readonly string[] = []
const scratch: number[] = [0, 0]
/** The locality positions of the key as placement.ts writes them (its own `localityInto`). */
const nearKey = (node: PlacementNode): number => { localityInto(scratch, 0, node, 'nearest', undefined); return scratch[1]! }
const cheapKey = (node: PlacementNode): number => { localityInto(scratch, 0, node, 'cheapest', undefined); return scratch[0]! }
const fastKey = (node: PlacementNode): number => { localityInto(scratch, 0, node, 'fastest', undefined); return scratch[0]! }

function sameItems (a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Nodes sharing one region and one residency of the requested model (0 when the group is by resource type). */
class Group {
  readonly members = new Set<Entry>()
  /** members sorted for each locality preference; null until needed after a change */
  readonly sorted: Array<Entry[] | null> = new Array<Entry[] | null>(MODES).fill(null)

  /**
   * @param parent the map this group is in, keyed by `region`, which drops it once empty
   */
  constructor (readonly parent: Regions, readonly region: string, readonly residency: number) {}

  add (e: Entry): void {
    if (this.members.has(e)) return
    this.members.add(e)
    e.groups.push(this)
    this.sorted.fill(null)
  }

  delete (e: Entry): void {
    this.members.delete(e)
    this.sorted.fill(null)
    if (this.members.size === 0) this.parent.delete(this.region)
  }

  order (mode: number): Entry[] {
    let list = this.sorted[mode]
    if (list == null) {
      list = [...this.members].sort(ORDERS[mode]!)
      this.sorted[mode] = list
    }
    return list
  }
}

type Order = (a: Entry, b: Entry) => number
const byPrefix: Order = (a, b) => (b.holds - a.holds) || (b.online - a.online)
/** Best first, by the request-independent key positions of each locality preference (`LOCALITY_PREFERENCES` order). */
const ORDERS: readonly Order[] = [
  (a, b) => byPrefix(a, b) || (b.self - a.self) || (b.near - a.near),
  (a, b) => byPrefix(a, b) || (b.cheap - a.cheap),
  (a, b) => byPrefix(a, b) || (b.fast - a.fast),
  byPrefix
]

/** Groups by region. */
type Regions = Map<string, Group>

function groupIn (regions: Regions, region: string, residency: number): Group {
  let g = regions.get(region)
  if (g === undefined) {
    g = new Group(regions, region, residency)
    regions.set(region, g)
  }
  return g
}

function bad (node: PlacementNode, field: string, message: string): never {
  throw new InvalidSchedulerInputError(`node ${String(node?.node_id)}: ${field} ${message}`, { field })
}

/**
 * The index refuses what would make `pickNode`'s answer depend on the order of the nodes (a NaN
 * in the key) or is no node at all.
 */
function checkNode (node: PlacementNode): void {
  if (typeof node !== 'object' || node === null) bad(node, 'node', 'must be an object')
  if (typeof node.node_id !== 'string' || node.node_id === '') bad(node, 'node_id', 'must be a non-empty string')
  if (!Array.isArray(node.offers)) bad(node, 'offers', 'must be an array of resource types')
  for (const dim of RESOURCE_DIMENSIONS) {
    if (!Number.isFinite(node.capacity?.[dim])) bad(node, `capacity.${dim}`, 'must be a finite number')
    if (!Number.isFinite(node.leased?.[dim])) bad(node, `leased.${dim}`, 'must be a finite number')
  }
  if (!Number.isFinite(node.load?.cpu_percent) || !Number.isFinite(node.load?.gpu_percent)) bad(node, 'load', 'must hold finite cpu_percent and gpu_percent')
  for (const field of ['cost_per_hour', 'speed'] as const) {
    const v = node[field]
    if (v !== null && v !== undefined && !Number.isFinite(v)) bad(node, field, 'must be a finite number, null or absent')
  }
}

/** Counters for a bench or a status page. */
export interface PlacementIndexStats {
  /** nodes indexed */
  nodes: number
  /** `pick` calls */
  picks: number
  /** nodes filtered or scored by those picks, in all */
  visited: number
}

/**
 * The nodes of a mesh indexed for placement: `pick` answers what `pickNode` would over the same
 * nodes, visiting only the few that can still win. Node ids are unique: `update` replaces.
 */
export class PlacementIndex {
  readonly #entries = new Map<string, Entry>()
  readonly #byType = new Map<string, Regions>()
  /** per model: [loaded (residency 2), on disk only (residency 1)] */
  readonly #byModel = new Map<string, [Regions, Regions]>()
  #picks = 0
  #visited = 0
  // the walk's state, kept here so a pick allocates nothing per node
  #best: PlacementNode | null = null
  #bestKey: number[] = []
  #key: number[] = []

  /**
   * @throws {InvalidSchedulerInputError} for a node with a NaN or infinite capacity, lease, load,
   * cost or speed, or a node_id given twice
   */
  constructor (nodes: readonly PlacementNode[] = []) {
    for (const node of nodes) {
      if (this.#entries.has(node?.node_id)) bad(node, 'node_id', 'is given twice')
      this.update(node)
    }
  }

  /** Nodes indexed. */
  get size (): number {
    return this.#entries.size
  }

  /** The node as last given to `update` (or the constructor). */
  get (nodeId: string): PlacementNode | undefined {
    return this.#entries.get(nodeId)?.node
  }

  /** Every indexed node, in no particular order. */
  * nodes (): IterableIterator<PlacementNode> {
    for (const e of this.#entries.values()) yield e.node
  }

  /**
   * Add a node, or replace the one with its `node_id` (after its leases, load, availability or
   * anything else changed). The index keeps `node` and reads it at each pick: call `update` again
   * after changing it.
   *
   * @throws {InvalidSchedulerInputError} as the constructor
   */
  update (node: PlacementNode): void {
    checkNode(node)
    const e = this.#entries.get(node.node_id)
    if (e === undefined) {
      const added = new Entry(node)
      this.#entries.set(node.node_id, added)
      this.#join(added)
      return
    }
    if (e.moves(node)) {
      this.#leave(e)
      e.read(node)
      this.#join(e)
    } else {
      e.node = node
    }
  }

  /**
   * Apply a placement: node `nodeId`'s leases grow by `demand` (what `resolveRequest` or
   * `placeRequest` gives), as `update` with the sum. Returns the node as now indexed.
   *
   * @throws {InvalidSchedulerInputError} for a node not indexed (`field` 'node_id')
   */
  lease (nodeId: string, demand: Readonly<Resources>): PlacementNode {
    return this.#addLeased(nodeId, demand, 1)
  }

  /** End a lease: node `nodeId`'s leases shrink by `demand` (never below 0). Returns the node as now indexed. */
  release (nodeId: string, demand: Readonly<Resources>): PlacementNode {
    return this.#addLeased(nodeId, demand, -1)
  }

  #addLeased (nodeId: string, demand: Readonly<Resources>, sign: 1 | -1): PlacementNode {
    const node = this.#entries.get(nodeId)?.node
    if (node === undefined) throw new InvalidSchedulerInputError(`node ${nodeId} is not in the placement index`, { field: 'node_id' })
    const l = node.leased
    const add = (dim: keyof Resources): number => Math.max(0, l[dim] + sign * demand[dim])
    const next = { ...node, leased: { cpu_cores: add('cpu_cores'), memory_gb: add('memory_gb'), gpu_count: add('gpu_count'), storage_gb: add('storage_gb') } }
    this.update(next)
    return next
  }

  /** Forget a node; false when it was not indexed. */
  remove (nodeId: string): boolean {
    const e = this.#entries.get(nodeId)
    if (e === undefined) return false
    this.#leave(e)
    this.#entries.delete(nodeId)
    return true
  }

  /** Counters since the index was built. */
  stats (): PlacementIndexStats {
    return { nodes: this.#entries.size, picks: this.#picks, visited: this.#visited }
  }

  /**
   * The node `pickNode(nodes, request, policy, options)` would pick over the indexed nodes; null
   * when none passes the filters.
   *
   * @throws {InvalidSchedulerInputError} as `pickNode`, for a request out of its domain
   */
  pick (request: PlacementRequest, policy: ComputePolicy = DEFAULT_COMPUTE_POLICY, options: { algorithm?: SchedulingAlgorithm } = {}): string | null {
    const q = resolveRequest(request, policy)
    if (options.algorithm !== undefined) q.algorithm = options.algorithm
    this.#picks++
    this.#best = null
    // keys of another request may be longer (another locality): start both scratch keys empty
    this.#key.length = 0
    this.#bestKey.length = 0
    const model = q.requirements.model_name
    if (model === undefined) {
      const regions = this.#byType.get(request.resource_type)
      if (regions !== undefined) this.#walkRegions(regions, request, q)
    } else {
      const held = this.#byModel.get(model)
      if (held !== undefined) {
        this.#walkRegions(held[0], request, q)
        this.#walkRegions(held[1], request, q)
      }
    }
    const best = this.#best as PlacementNode | null
    this.#best = null
    return best?.node_id ?? null
  }

  #walkRegions (regions: Regions, request: PlacementRequest, q: Resolved): void {
    const region = request.region
    const home = region === undefined ? undefined : regions.get(region)
    if (home !== undefined) this.#walk(home, request, q)
    for (const g of regions.values()) if (g !== home) this.#walk(g, request, q)
  }

  /** Walk one group best-bound first; stop where no node can beat or tie the best key. */
  #walk (g: Group, request: PlacementRequest, q: Resolved): void {
    const mode = LOCALITY_PREFERENCES.indexOf(q.locality)
    const list = g.order(mode)
    const region = request.region
    const pool = q.cls === null ? 0 : 2
    const localityFirst = q.algorithm === 'locality_aware_binpack'
    const sameRegion = region !== undefined && g.region === region ? 1 : 0
    for (const e of list) {
      if (this.#best !== null && this.#boundBelow(e, g.residency, pool, localityFirst ? q.locality : 'any', sameRegion)) return
      this.#visited++
      const node = e.node
      if (firstFailure(node, request, q) !== null) continue
      keyInto(this.#key, node, q, region)
      const c = this.#best === null ? -1 : compareKeys(this.#key, this.#bestKey)
      if (c < 0 || (c === 0 && node.node_id < this.#best!.node_id)) {
        this.#best = node;
        [this.#bestKey, this.#key] = [this.#key, this.#bestKey]
      }
    }
  }

  /** True when an upper bound of `e`'s key, over the positions before fit, ranks below the best key. */
  #boundBelow (e: Entry, residency: number, pool: number, locality: LocalityPreference, sameRegion: number): boolean {
    const best = this.#bestKey
    let d = best[0]! - (residency + e.holds)
    if (d !== 0) return d > 0
    d = best[1]! - pool
    if (d !== 0) return d > 0
    d = best[2]! - e.online
    if (d !== 0) return d > 0
    switch (locality) {
      case 'nearest':
        d = best[3]! - (e.self === 1 ? 2 : sameRegion)
        if (d !== 0) return d > 0
        return best[4]! - e.near > 0
      case 'cheapest':
        return best[3]! - e.cheap > 0
      case 'fastest':
        return best[3]! - e.fast > 0
      case 'any':
        return false
    }
  }

  #join (e: Entry): void {
    if (e.availability !== 'online' && e.availability !== 'busy') return
    for (const type of e.offers) groupIn(this.#mapOf(this.#byType, type, () => new Map()), e.region, 0).add(e)
    for (const model of e.loaded) groupIn(this.#modelMaps(model)[0], e.region, 2).add(e)
    for (const model of e.available) {
      if (!e.loaded.includes(model)) groupIn(this.#modelMaps(model)[1], e.region, 1).add(e)
    }
  }

  #leave (e: Entry): void {
    for (const g of e.groups) g.delete(e)
    e.groups = []
  }

  #modelMaps (model: string): [Regions, Regions] {
    return this.#mapOf(this.#byModel, model, () => [new Map(), new Map()])
  }

  #mapOf<V> (map: Map<string, V>, key: string, make: () => V): V {
    let v = map.get(key)
    if (v === undefined) {
      v = make()
      map.set(key, v)
    }
    return v
  }
}
