/**
 * The compute policy (design §10.5, `compute_policy.yaml`): workload classes, the scheduling
 * settings and autoscaling, mirroring the YAML field for field, the `flexstack-compute` default,
 * and the boundary validation (an `InvalidPolicyError` naming the dotted path of the bad field).
 *
 * A workload class says where its tasks go first (`prefer`) and next (`fallback`), both placement
 * pools a node may advertise (`gpu-node-pool`, `cloud-ephemeral`…; `any-available` and
 * `nearest-available` match every node), and what a request of that class asks for unless it says
 * otherwise (`resource_request`).
 */
import { MAX_QUEUE_DEPTH_LIMIT } from './constants.ts'
import { bool, fail, isInt, isObject, join, positive, section, str, type Obj } from './fields.ts'
import { InvalidPolicyError } from './errors.ts'

export const SCHEDULING_ALGORITHMS = ['locality_aware_binpack', 'binpack', 'spread'] as const
export type SchedulingAlgorithm = typeof SCHEDULING_ALGORITHMS[number]

/** Pools that every node belongs to. */
export const ANY_POOLS = ['any-available', 'nearest-available'] as const

export interface ResourceRequest {
  readonly cpu?: number
  readonly memory_gb?: number
  /** GPUs wanted (0 or absent: none needed) */
  readonly gpu?: number
  readonly storage_gb?: number
  readonly bandwidth_mbps?: number
  /** how long a task of the class may run (from `timeout_minutes` or `timeout_seconds`) */
  readonly timeout_seconds?: number
}

export interface WorkloadClass {
  readonly prefer: string
  readonly fallback: string
  readonly isolation?: string
  /** place next to the data the task reads when a node holds it */
  readonly data_locality: boolean
  readonly resource_request: ResourceRequest
}

export interface SchedulingPolicy {
  readonly algorithm: SchedulingAlgorithm
  readonly preemption_enabled: boolean
  /** requests held while nothing can take them; more are refused */
  readonly max_queue_depth: number
  readonly rebalance_interval_seconds: number
}

export interface AutoscalingPolicy {
  readonly enabled: boolean
  readonly min_nodes: number
  readonly max_nodes: number
  readonly scale_up_threshold: number
  readonly scale_down_threshold: number
  readonly cooldown_seconds: number
}

export interface ComputePolicy {
  readonly name: string
  readonly workload_classes: Readonly<Record<string, WorkloadClass>>
  readonly scheduling: SchedulingPolicy
  readonly autoscaling: AutoscalingPolicy
}

/** `flexstack-compute`, as the design gives it. */
export const DEFAULT_COMPUTE_POLICY: ComputePolicy = Object.freeze({
  name: 'flexstack-compute',
  workload_classes: Object.freeze({
    build: { prefer: 'cloud-ephemeral', fallback: 'local-containerized', isolation: 'firecracker', data_locality: false, resource_request: { cpu: 4, memory_gb: 16, timeout_seconds: 3600 } },
    inference: { prefer: 'gpu-node-pool', fallback: 'cpu-moe-distributed', isolation: 'kata', data_locality: false, resource_request: { gpu: 1, memory_gb: 24, timeout_seconds: 120 } },
    storage_heavy: { prefer: 'storage-tier-nodes', fallback: 'any-available', data_locality: true, resource_request: { storage_gb: 100, bandwidth_mbps: 500 } },
    agent_task: { prefer: 'nearest-available', fallback: 'any-available', isolation: 'sandbox-runtime', data_locality: false, resource_request: { cpu: 1, memory_gb: 4, timeout_seconds: 1800 } }
  }),
  scheduling: Object.freeze({ algorithm: 'locality_aware_binpack', preemption_enabled: false, max_queue_depth: 1000, rebalance_interval_seconds: 300 }),
  autoscaling: Object.freeze({ enabled: true, min_nodes: 1, max_nodes: 100, scale_up_threshold: 0.8, scale_down_threshold: 0.3, cooldown_seconds: 300 })
})

function nonNegative (value: unknown, field: string): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) fail(field, 'must be a finite number ≥ 0')
  return value
}

function share (value: unknown, field: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) fail(field, 'must be a number in [0, 1]')
  return value
}

function parseResourceRequest (value: unknown, path: string): ResourceRequest {
  const r = section(value, path, ['cpu', 'memory_gb', 'gpu', 'storage_gb', 'bandwidth_mbps', 'timeout_minutes', 'timeout_seconds'])
  if (r.timeout_minutes !== undefined && r.timeout_seconds !== undefined) fail(join(path, 'timeout_seconds'), 'and timeout_minutes cannot both be given')
  const minutes = r.timeout_minutes === undefined ? undefined : positive(r.timeout_minutes, join(path, 'timeout_minutes'), 1)
  const seconds = r.timeout_seconds === undefined ? undefined : positive(r.timeout_seconds, join(path, 'timeout_seconds'), 1)
  const gpu = r.gpu
  if (gpu !== undefined && !isInt(gpu, 0, 64)) fail(join(path, 'gpu'), 'must be an integer in [0, 64]')
  const out: Record<string, number> = {}
  for (const key of ['cpu', 'memory_gb', 'storage_gb', 'bandwidth_mbps'] as const) {
    const v = nonNegative(r[key], join(path, key))
    if (v !== undefined) out[key] = v
  }
  if (gpu !== undefined) out.gpu = gpu
  const timeout = seconds ?? (minutes === undefined ? undefined : minutes * 60)
  if (timeout !== undefined) out.timeout_seconds = timeout
  return out
}

function parseWorkloadClass (value: unknown, path: string): WorkloadClass {
  if (!isObject(value)) fail(path, 'must be an object')
  const c = section(value, path, ['prefer', 'fallback', 'isolation', 'data_locality', 'resource_request'])
  const prefer = str(c.prefer, join(path, 'prefer'), 'any-available')
  const out: WorkloadClass = {
    prefer,
    fallback: str(c.fallback, join(path, 'fallback'), 'any-available'),
    data_locality: bool(c.data_locality, join(path, 'data_locality'), false),
    resource_request: parseResourceRequest(c.resource_request, join(path, 'resource_request'))
  }
  return c.isolation === undefined ? out : { ...out, isolation: str(c.isolation, join(path, 'isolation'), '') }
}

/**
 * Validate a compute policy (the YAML's `compute_policy` object). Absent sections and fields
 * take the default's; unknown fields are refused, so a typo never silently changes placement.
 *
 * @throws {InvalidPolicyError} with `field` = the dotted path of the first bad field
 */
export function parseComputePolicy (value: unknown): ComputePolicy {
  if (!isObject(value)) throw new InvalidPolicyError('compute_policy must be an object', { field: 'compute_policy' })
  const root = section(value, '', ['name', 'workload_classes', 'scheduling', 'autoscaling'])
  const d = DEFAULT_COMPUTE_POLICY
  let classes: Record<string, WorkloadClass> = { ...d.workload_classes }
  if (root.workload_classes !== undefined) {
    if (!isObject(root.workload_classes)) fail('workload_classes', 'must be an object')
    classes = {}
    for (const [name, c] of Object.entries(root.workload_classes as Obj)) {
      if (!/^[a-z][a-z0-9_-]{0,63}$/.test(name)) fail(join('workload_classes', name), 'is not a valid class name (lowercase letters, digits, _ and -)')
      classes[name] = parseWorkloadClass(c, join('workload_classes', name))
    }
  }
  const s = section(root.scheduling, 'scheduling', ['algorithm', 'preemption_enabled', 'max_queue_depth', 'rebalance_interval_seconds'])
  const algorithm = s.algorithm ?? d.scheduling.algorithm
  if (!(SCHEDULING_ALGORITHMS as readonly unknown[]).includes(algorithm)) fail('scheduling.algorithm', `must be one of ${SCHEDULING_ALGORITHMS.join(', ')}`)
  const depth = s.max_queue_depth ?? d.scheduling.max_queue_depth
  if (!isInt(depth, 0, MAX_QUEUE_DEPTH_LIMIT)) fail('scheduling.max_queue_depth', `must be an integer in [0, ${MAX_QUEUE_DEPTH_LIMIT}]`)
  const a = section(root.autoscaling, 'autoscaling', ['enabled', 'min_nodes', 'max_nodes', 'scale_up_threshold', 'scale_down_threshold', 'cooldown_seconds'])
  const minNodes = a.min_nodes ?? d.autoscaling.min_nodes
  const maxNodes = a.max_nodes ?? d.autoscaling.max_nodes
  if (!isInt(maxNodes, 1, 1_000_000)) fail('autoscaling.max_nodes', 'must be an integer in [1, 1000000]')
  if (!isInt(minNodes, 0, maxNodes)) fail('autoscaling.min_nodes', 'must be an integer in [0, max_nodes]')
  const up = share(a.scale_up_threshold, 'autoscaling.scale_up_threshold', d.autoscaling.scale_up_threshold)
  const down = share(a.scale_down_threshold, 'autoscaling.scale_down_threshold', d.autoscaling.scale_down_threshold)
  if (down >= up) fail('autoscaling.scale_down_threshold', 'must be below scale_up_threshold')
  return {
    name: str(root.name, 'name', d.name),
    workload_classes: classes,
    scheduling: {
      algorithm: algorithm as SchedulingAlgorithm,
      preemption_enabled: bool(s.preemption_enabled, 'scheduling.preemption_enabled', d.scheduling.preemption_enabled),
      max_queue_depth: depth,
      rebalance_interval_seconds: positive(s.rebalance_interval_seconds, 'scheduling.rebalance_interval_seconds', d.scheduling.rebalance_interval_seconds)
    },
    autoscaling: {
      enabled: bool(a.enabled, 'autoscaling.enabled', d.autoscaling.enabled),
      min_nodes: minNodes,
      max_nodes: maxNodes,
      scale_up_threshold: up,
      scale_down_threshold: down,
      cooldown_seconds: positive(a.cooldown_seconds, 'autoscaling.cooldown_seconds', d.autoscaling.cooldown_seconds)
    }
  }
}
