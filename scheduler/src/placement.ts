/**
 * Placement: which node takes one resource request (design §10.5, tool `resources.allocate`).
 * Filters first, then a score, as cluster schedulers do, and every decision can be explained:
 *
 * - filters: the node offers the resource type; it is `online` or `busy`; it is in the workload
 *   class's `prefer` or `fallback` pool (when the request names a class); its *free* capacity
 *   (advertised minus live leases) covers every requirement; it has the model (`model_name`,
 *   loaded or on disk) and serves the vector dimension (`vector_dimensions`);
 * - the score, compared position by position (higher is better), then `node_id` ascending:
 *   1. affinity: the model already loaded (2) or on disk (1); the data already held (+1);
 *   2. the class's pool: `prefer` (2) over `fallback` (1);
 *   3. availability: `online` over `busy`;
 *   then, by the algorithm,
 *   - `binpack`: fit (the share of the node in use once the request lands, in
 *     FIT_BUCKET_PERCENT buckets, fuller first), locality, lighter load;
 *   - `spread`: emptier first, lighter load, locality;
 *   - `locality_aware_binpack` (the design's default): locality, fit, lighter load;
 *   where locality follows `locality_preference`: `nearest` (the requester itself, then its
 *   region, then lower round-trip time in RTT_BUCKET_MS buckets), `cheapest` (lower cost per hour),
 *   `fastest` (higher measured speed), `any` (no preference).
 *
 * A workload class fills in the requirements the request leaves out (`resource_request`), and
 * `nearest-available` makes locality `nearest`.
 *
 * ```ts
 * const placement = placeRequest(nodes, { resource_type: 'compute', requirements: { cpu_cores: 2, memory_gb: 4 } })
 * placement.picked            // 'node-b'
 * placement.candidates[0].explain  // 'fit 62%, same region, rtt 0-5 ms, load 40%'
 * ```
 */
import type { Availability } from '../../zomes-ts/agent_registry/types.ts'
import { ANY_POOLS, DEFAULT_COMPUTE_POLICY, type ComputePolicy, type SchedulingAlgorithm, type WorkloadClass } from './compute-policy.ts'
import { FIT_BUCKET_PERCENT, LOAD_BUCKET_PERCENT, MAX_REQUIREMENT, RTT_BUCKET_MS } from './constants.ts'
import { InvalidSchedulerInputError } from './errors.ts'

export const RESOURCE_TYPES = ['compute', 'inference', 'storage', 'memory'] as const
export type ResourceType = typeof RESOURCE_TYPES[number]

export const LOCALITY_PREFERENCES = ['nearest', 'cheapest', 'fastest', 'any'] as const
export type LocalityPreference = typeof LOCALITY_PREFERENCES[number]

/** Capacity, leases and demand in the same units. */
export interface Resources {
  cpu_cores: number
  memory_gb: number
  gpu_count: number
  storage_gb: number
}

/** The dimensions placement adds up (a GPU's VRAM is per GPU: a filter, not a sum). */
export const RESOURCE_DIMENSIONS = ['cpu_cores', 'memory_gb', 'gpu_count', 'storage_gb'] as const

export const NO_RESOURCES: Readonly<Resources> = Object.freeze({ cpu_cores: 0, memory_gb: 0, gpu_count: 0, storage_gb: 0 })

/** One node as placement sees it: its newest capability joined with its freshest presence and its leases. */
export interface PlacementNode {
  node_id: string
  /** the requesting node itself */
  self?: boolean
  availability: Availability
  latency_region: string
  /** resource types the node offers */
  offers: readonly ResourceType[]
  /** advertised capacity */
  capacity: Resources
  /** committed to live leases */
  leased: Resources
  /** VRAM of each of its GPUs */
  gpu_vram_gb?: number
  bandwidth_mbps?: number
  load: { cpu_percent: number, gpu_percent: number }
  models_loaded?: readonly string[]
  /** models on the node's disk, loaded or not */
  models_available?: readonly string[]
  /** vector dimensions its memory shards serve; absent: any */
  vector_dimensions?: readonly number[]
  /** placement pools it belongs to (`gpu-node-pool`, `cloud-ephemeral`…) */
  pools?: readonly string[]
  /** measured round trip from the requester; null or absent: unmeasured */
  rtt_ms?: number | null
  cost_per_hour?: number | null
  /** measured speed (tokens/s for inference, a compute score otherwise); null or absent: unmeasured */
  speed?: number | null
  /** the node already holds the data the request is about */
  holds_data?: boolean
}

/** `resources.allocate`'s `requirements`. */
export interface Requirements {
  cpu_cores?: number
  memory_gb?: number
  gpu?: boolean
  gpu_vram_gb?: number
  storage_gb?: number
  model_name?: string
  vector_dimensions?: number
  bandwidth_mbps?: number
  /** flexnode extension: vectors a memory lease will store (its provider's vector capacity) */
  vectors?: number
}

export interface PlacementRequest {
  resource_type: ResourceType
  requirements?: Requirements
  /** @default 'nearest' */
  locality_preference?: LocalityPreference
  /** a class of the compute policy: its pools and `resource_request` defaults apply */
  workload_class?: string
  /** the requester's `latency_region` */
  region?: string
}

export type FilterReason = 'resource_type' | 'availability' | 'workload_class' | keyof Resources | 'gpu_vram_gb' | 'bandwidth_mbps' | 'model_name' | 'vector_dimensions'

export interface PlacementCandidate {
  node_id: string
  eligible: boolean
  /** the first filter an excluded node failed */
  excluded_because?: FilterReason
  /** what it lacked, for a person: "needs 8 cpu_cores, 2 free of 16" */
  detail?: string
  /** share of the node in use once the request lands (0–1); NaN when excluded */
  fit: number
  /** the score, one number per position of the order above; empty when excluded */
  key: readonly number[]
  /** one line a person can read: "fit 62%, same region, rtt 0-5 ms, load 40%" */
  explain: string
}

export interface Placement {
  algorithm: SchedulingAlgorithm
  locality_preference: LocalityPreference
  workload_class: string | null
  /** what was placed: the requirements with the class's defaults filled in */
  demand: Resources
  requirements: Requirements
  /** the class's task timeout, when it has one */
  timeout_seconds: number | null
  /** the eligible nodes, best first, then the excluded ones by node_id */
  candidates: PlacementCandidate[]
  /** the best eligible node; null when none is */
  picked: string | null
}

/** A request validated, its class's defaults filled in (`resolveRequest`). */
export interface Resolved {
  algorithm: SchedulingAlgorithm
  locality: LocalityPreference
  className: string | null
  cls: WorkloadClass | null
  requirements: Requirements
  demand: Resources
}

function bad (field: string, message: string): never {
  throw new InvalidSchedulerInputError(`${field} ${message}`, { field })
}

function amount (value: unknown, field: string, max: number): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) bad(field, 'must be a finite number ≥ 0')
  if (value > max) bad(field, `is absurd (more than ${max})`)
  return value
}

/** Validate a request and fill in its class's defaults. */
export function resolveRequest (request: PlacementRequest, policy: ComputePolicy = DEFAULT_COMPUTE_POLICY): Resolved {
  if (typeof request !== 'object' || request === null) bad('request', 'must be an object')
  if (!(RESOURCE_TYPES as readonly unknown[]).includes(request.resource_type)) bad('resource_type', `must be one of ${RESOURCE_TYPES.join(', ')}`)
  let locality = request.locality_preference ?? 'nearest'
  if (!(LOCALITY_PREFERENCES as readonly unknown[]).includes(locality)) bad('locality_preference', `must be one of ${LOCALITY_PREFERENCES.join(', ')}`)
  let cls: WorkloadClass | null = null
  const className = request.workload_class ?? null
  if (className !== null) {
    cls = Object.hasOwn(policy.workload_classes, className) ? policy.workload_classes[className]! : null
    if (cls === null) bad('workload_class', `must be one of ${Object.keys(policy.workload_classes).join(', ')}`)
    if (cls.prefer === 'nearest-available' && request.locality_preference === undefined) locality = 'nearest'
  }
  const r = request.requirements ?? {}
  if (typeof r !== 'object' || r === null || Array.isArray(r)) bad('requirements', 'must be an object')
  const known = ['cpu_cores', 'memory_gb', 'gpu', 'gpu_vram_gb', 'storage_gb', 'model_name', 'vector_dimensions', 'bandwidth_mbps', 'vectors']
  for (const key of Object.keys(r)) if (!known.includes(key)) bad(`requirements.${key}`, 'is not a known requirement')
  if (r.gpu !== undefined && typeof r.gpu !== 'boolean') bad('requirements.gpu', 'must be a boolean')
  if (r.model_name !== undefined && (typeof r.model_name !== 'string' || r.model_name.trim() === '' || r.model_name.length > 256)) bad('requirements.model_name', 'must be a non-empty string of at most 256 characters')
  if (r.vector_dimensions !== undefined && (!Number.isInteger(r.vector_dimensions) || r.vector_dimensions < 1 || r.vector_dimensions > MAX_REQUIREMENT.vector_dimensions)) {
    bad('requirements.vector_dimensions', `must be an integer in [1, ${MAX_REQUIREMENT.vector_dimensions}]`)
  }
  const d = cls?.resource_request ?? {}
  const requirements: Requirements = { ...r }
  const fill = <K extends keyof Requirements>(key: K, value: Requirements[K] | undefined): void => { if (requirements[key] === undefined && value !== undefined) requirements[key] = value }
  fill('cpu_cores', d.cpu)
  fill('memory_gb', d.memory_gb)
  fill('gpu', d.gpu === undefined ? undefined : d.gpu > 0)
  fill('storage_gb', d.storage_gb)
  fill('bandwidth_mbps', d.bandwidth_mbps)
  const gpus = requirements.gpu === true ? Math.max(1, d.gpu ?? 1) : 0
  const demand: Resources = {
    cpu_cores: amount(requirements.cpu_cores, 'requirements.cpu_cores', MAX_REQUIREMENT.cpu_cores) ?? 0,
    memory_gb: amount(requirements.memory_gb, 'requirements.memory_gb', MAX_REQUIREMENT.memory_gb) ?? 0,
    gpu_count: gpus,
    storage_gb: amount(requirements.storage_gb, 'requirements.storage_gb', MAX_REQUIREMENT.storage_gb) ?? 0
  }
  amount(requirements.gpu_vram_gb, 'requirements.gpu_vram_gb', MAX_REQUIREMENT.gpu_vram_gb)
  amount(requirements.bandwidth_mbps, 'requirements.bandwidth_mbps', MAX_REQUIREMENT.bandwidth_mbps)
  if (requirements.vectors !== undefined && (!Number.isSafeInteger(requirements.vectors) || requirements.vectors < 0 || requirements.vectors > MAX_REQUIREMENT.vectors)) bad('requirements.vectors', `must be an integer in [0, ${MAX_REQUIREMENT.vectors}]`)
  return { algorithm: policy.scheduling.algorithm, locality, className, cls, requirements, demand }
}

/**
 * The first filter `node` fails for the request; null when it passes them all. Allocation-free
 * (no message is built), for the loops that only pick: `pickNode` and `PlacementIndex`.
 */
export function firstFailure (node: PlacementNode, request: PlacementRequest, q: Resolved): FilterReason | null {
  if (!node.offers.includes(request.resource_type)) return 'resource_type'
  if (node.availability !== 'online' && node.availability !== 'busy') return 'availability'
  if (q.cls !== null && poolRank(node, q.cls) === 0) return 'workload_class'
  for (const dim of RESOURCE_DIMENSIONS) {
    const want = q.demand[dim]
    if (want !== 0 && want > node.capacity[dim] - node.leased[dim]) return dim
  }
  const r = q.requirements
  if (r.gpu_vram_gb !== undefined && r.gpu_vram_gb > 0 && (node.gpu_vram_gb ?? 0) < r.gpu_vram_gb) return 'gpu_vram_gb'
  if (r.bandwidth_mbps !== undefined && r.bandwidth_mbps > 0 && (node.bandwidth_mbps ?? 0) < r.bandwidth_mbps) return 'bandwidth_mbps'
  if (r.model_name !== undefined && residency(node, r.model_name) === 0) return 'model_name'
  if (r.vector_dimensions !== undefined && node.vector_dimensions !== undefined && !node.vector_dimensions.includes(r.vector_dimensions)) return 'vector_dimensions'
  return null
}

/** What `node` lacked for the filter it failed, for a person: "needs 8 cpu_cores, 2 free of 16". */
function failureDetail (node: PlacementNode, request: PlacementRequest, q: Resolved, reason: FilterReason): string {
  const r = q.requirements
  switch (reason) {
    case 'resource_type': return `does not offer ${request.resource_type}`
    case 'availability': return node.availability
    case 'workload_class': return `in neither ${q.cls?.prefer} nor ${q.cls?.fallback}`
    case 'gpu_vram_gb': return `needs ${r.gpu_vram_gb} GB of VRAM per GPU, has ${node.gpu_vram_gb ?? 0}`
    case 'bandwidth_mbps': return `needs ${r.bandwidth_mbps} Mbit/s, has ${node.bandwidth_mbps ?? 'none advertised'}`
    case 'model_name': return `has no ${r.model_name}`
    case 'vector_dimensions': return `serves ${node.vector_dimensions?.join(', ')}-dimensional vectors, not ${r.vector_dimensions}`
    default: {
      const free = node.capacity[reason] - node.leased[reason]
      return `needs ${q.demand[reason]} ${reason}, ${Math.max(0, free)} free of ${node.capacity[reason]}`
    }
  }
}

function residency (node: PlacementNode, model: string): number {
  if (node.models_loaded?.includes(model) === true) return 2
  return node.models_available?.includes(model) === true ? 1 : 0
}

function inPool (node: PlacementNode, pool: string): boolean {
  return (ANY_POOLS as readonly string[]).includes(pool) || node.pools?.includes(pool) === true
}

/** The class's pool the node is in: `prefer` (2), `fallback` (1), neither (0). */
export function poolRank (node: PlacementNode, cls: WorkloadClass): number {
  return inPool(node, cls.prefer) ? 2 : inPool(node, cls.fallback) ? 1 : 0
}

/** The share of the node in use once `demand` lands, over the dimensions demanded (over cpu and memory when none is). */
export function fitAfter (node: PlacementNode, demand: Resources): number {
  let sum = 0
  let n = 0
  for (const dim of RESOURCE_DIMENSIONS) {
    if (demand[dim] === 0) continue
    const cap = node.capacity[dim]
    sum += cap > 0 ? Math.min(1, (node.leased[dim] + demand[dim]) / cap) : 1
    n++
  }
  if (n > 0) return sum / n
  for (const dim of ['cpu_cores', 'memory_gb'] as const) {
    const cap = node.capacity[dim]
    sum += cap > 0 ? Math.min(1, node.leased[dim] / cap) : 1
    n++
  }
  return sum / n
}

const UNMEASURED = -1e12

/** Write the locality positions of the key into `out` from `at`; returns the next position. */
export function localityInto (out: number[], at: number, node: PlacementNode, locality: LocalityPreference, region: string | undefined): number {
  switch (locality) {
    case 'nearest': {
      out[at] = node.self === true ? 2 : region !== undefined && node.latency_region === region ? 1 : 0
      const rtt = node.self === true ? 0 : node.rtt_ms
      out[at + 1] = rtt === null || rtt === undefined || !Number.isFinite(rtt) ? UNMEASURED : -Math.floor(rtt / RTT_BUCKET_MS)
      return at + 2
    }
    case 'cheapest':
      out[at] = node.cost_per_hour === null || node.cost_per_hour === undefined ? UNMEASURED : -node.cost_per_hour
      return at + 1
    case 'fastest':
      out[at] = node.speed === null || node.speed === undefined ? UNMEASURED : node.speed
      return at + 1
    case 'any':
      return at
  }
}

function describe (node: PlacementNode, q: Resolved, fit: number, region: string | undefined): string {
  const parts = [`fit ${Math.round(fit * 100)}%`]
  const r = q.requirements
  if (r.model_name !== undefined) parts.push(residency(node, r.model_name) === 2 ? `${r.model_name} loaded` : `${r.model_name} on disk`)
  if (node.holds_data === true) parts.push('holds the data')
  if (q.cls !== null) parts.push(poolRank(node, q.cls) === 2 ? `preferred pool ${q.cls.prefer}` : `fallback pool ${q.cls.fallback}`)
  if (node.availability === 'busy') parts.push('busy')
  if (q.locality === 'nearest') {
    if (node.self === true) parts.push('the requester itself')
    else {
      if (region !== undefined) parts.push(node.latency_region === region ? 'same region' : `region ${node.latency_region}`)
      parts.push(node.rtt_ms === null || node.rtt_ms === undefined ? 'rtt unmeasured' : `rtt ${Math.round(node.rtt_ms)} ms`)
    }
  } else if (q.locality === 'cheapest') {
    parts.push(node.cost_per_hour === null || node.cost_per_hour === undefined ? 'cost unknown' : `${node.cost_per_hour}/h`)
  } else if (q.locality === 'fastest') {
    parts.push(node.speed === null || node.speed === undefined ? 'speed unmeasured' : `speed ${node.speed}`)
  }
  parts.push(`load ${Math.round(Math.max(node.load.cpu_percent, node.load.gpu_percent))}%`)
  return parts.join(', ')
}

/**
 * The score of an eligible node, per the order in this module's comment, written into `out`
 * (every key of one request has the same length); returns the node's fit. Allocation-free, for `pickNode`'s loop.
 */
export function keyInto (out: number[], node: PlacementNode, q: Resolved, region: string | undefined): number {
  const model = q.requirements.model_name
  out[0] = (model === undefined ? 0 : residency(node, model)) + (node.holds_data === true ? 1 : 0)
  out[1] = q.cls === null ? 0 : poolRank(node, q.cls)
  out[2] = node.availability === 'online' ? 1 : 0
  const fit = fitAfter(node, q.demand)
  const fitBucket = Math.floor((fit * 100) / FIT_BUCKET_PERCENT)
  const load = -Math.floor(Math.max(node.load.cpu_percent, node.load.gpu_percent) / LOAD_BUCKET_PERCENT)
  let at = 3
  switch (q.algorithm) {
    case 'binpack':
      out[at++] = fitBucket
      at = localityInto(out, at, node, q.locality, region)
      out[at++] = load
      break
    case 'spread':
      out[at++] = -fitBucket
      out[at++] = load
      at = localityInto(out, at, node, q.locality, region)
      break
    case 'locality_aware_binpack':
      at = localityInto(out, at, node, q.locality, region)
      out[at++] = fitBucket
      out[at++] = load
      break
  }
  return fit
}

/** The score of an eligible node, per the order in this module's comment. */
export function placementKey (node: PlacementNode, q: Resolved, region: string | undefined): { key: number[], fit: number } {
  const key: number[] = []
  const fit = keyInto(key, node, q, region)
  return { key, fit }
}

/** Negative when key `a` ranks before `b` (higher, position by position), 0 when equal. */
export function compareKeys (a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) {
    const d = (b[i] ?? 0) - (a[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}

/**
 * Rank every node for one request and pick the best, explaining each decision. Pure: the same
 * nodes and request give the same placement whatever their order.
 *
 * @throws {InvalidSchedulerInputError} for an unknown resource type, class or locality preference,
 * or a negative, non-finite or absurd requirement (`field` names it)
 */
export function placeRequest (nodes: readonly PlacementNode[], request: PlacementRequest, policy: ComputePolicy = DEFAULT_COMPUTE_POLICY, options: { algorithm?: SchedulingAlgorithm } = {}): Placement {
  const q = resolveRequest(request, policy)
  if (options.algorithm !== undefined) q.algorithm = options.algorithm
  const eligible: PlacementCandidate[] = []
  const excluded: PlacementCandidate[] = []
  for (const node of nodes) {
    const reason = firstFailure(node, request, q)
    if (reason !== null) {
      const detail = failureDetail(node, request, q, reason)
      excluded.push({ node_id: node.node_id, eligible: false, excluded_because: reason, detail, fit: Number.NaN, key: [], explain: `excluded: ${reason} (${detail})` })
      continue
    }
    const { key, fit } = placementKey(node, q, request.region)
    eligible.push({ node_id: node.node_id, eligible: true, fit, key, explain: describe(node, q, fit, request.region) })
  }
  eligible.sort((a, b) => compareKeys(a.key, b.key) || (a.node_id < b.node_id ? -1 : a.node_id > b.node_id ? 1 : 0))
  excluded.sort((a, b) => (a.node_id < b.node_id ? -1 : a.node_id > b.node_id ? 1 : 0))
  return {
    algorithm: q.algorithm,
    locality_preference: q.locality,
    workload_class: q.className,
    demand: q.demand,
    requirements: q.requirements,
    timeout_seconds: q.cls?.resource_request.timeout_seconds ?? null,
    candidates: [...eligible, ...excluded],
    picked: eligible[0]?.node_id ?? null
  }
}

/**
 * Only the pick, without ranking or explaining the others: one pass over the nodes, for callers
 * that place many requests (the same choice `placeRequest` makes).
 */
export function pickNode (nodes: readonly PlacementNode[], request: PlacementRequest, policy: ComputePolicy = DEFAULT_COMPUTE_POLICY, options: { algorithm?: SchedulingAlgorithm } = {}): string | null {
  const q = resolveRequest(request, policy)
  if (options.algorithm !== undefined) q.algorithm = options.algorithm
  let best: PlacementNode | null = null
  let bestKey: number[] = []
  let key: number[] = []
  for (const node of nodes) {
    if (firstFailure(node, request, q) !== null) continue
    keyInto(key, node, q, request.region)
    const c = best === null ? -1 : compareKeys(key, bestKey)
    if (c < 0 || (c === 0 && node.node_id < best!.node_id)) {
      best = node;
      [bestKey, key] = [key, bestKey]
    }
  }
  return best?.node_id ?? null
}
