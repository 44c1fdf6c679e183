/**
 * The `resources` capability: leases of compute, inference, storage and memory across the mesh
 * (design §11.4: `resources.allocate`, `release`, `renew`, `query_available`, and
 * `schedule_task` once a task runner is given).
 *
 * - As a **provider**, the node publishes a `ResourceOffer` (its probed machine, or
 *   `init.capacity`) and serves `/flexstack/<network>/resources/1`: each request is decided by
 *   its `ProviderLedger`, one at a time, and committed as a two-party signed `Allocation`.
 * - As a **requester**, it ranks the mesh's nodes with the scheduler (`placeRequest`: type,
 *   requirements, workload class, availability, advertised capacity; binpack/spread/locality),
 *   signs one request per candidate and asks them in order until one grants it; each refusal is
 *   kept as the reason in `NoCapacityError`.
 *
 * ```ts
 * const lease = await node.resources.allocate({ resource_type: 'compute', requirements: { cpu_cores: 2 } })
 * await node.resources.renew({ allocation_id: lease.allocation_id, duration_seconds: 600 })
 * await node.resources.release({ allocation_id: lease.allocation_id })
 * ```
 */
import { randomBytes } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import { DEFAULT_COMPUTE_POLICY, QueueFullError, placeRequest, resolveRequest, type ComputePolicy, type LocalityPreference, type Placement, type PlacementNode, type Requirements } from '../../../scheduler/index.ts'
import type { NodeCapability } from '../../../zomes-ts/agent_registry/types.ts'
import type { ActionHash, AgentPubKey, Signature } from '../../../zomes-ts/hdk/index.ts'
import { ResourceMeshClient } from '../../../zomes-ts/resource_mesh/client.ts'
import { LEASE_DIMENSIONS, LEASE_LIMITS, LEASE_RESOURCE_TYPES, maxAmountOf, type AllocationRecord, type LeaseChange, type LeaseRequest, type LeaseResources, type LiveLease, type ResourceOffer } from '../../../zomes-ts/resource_mesh/types.ts'
import type { ZomeCaller } from '../../../zomes-ts/client.ts'
import { decode, encode, isPlainObject } from '../conductor/codec.ts'
import { isBytes } from '../../../zomes-ts/hdk/values.ts'
import { NO_LEASE_RESOURCES } from '../../../zomes-ts/resource_mesh/rules.ts'
import { FlexnodeError, InvalidInputError, errorMessage } from '../errors.ts'
import { decodeHash, encodeHash, hashEquals } from '../holo/hash.ts'
import { agentPubKeyFromPeerId, peerIdFromAgentPubKey } from '../identity/peer-id.ts'
import type { ComponentLogger } from '../logger.ts'
import { MeshResetError, type MeshNode } from '../mesh/types.ts'
import type { InferenceLeases, PeerInference } from '../inference/peer.ts'
import type { InferenceEngine } from '../inference/types.ts'
import { backoffDelay } from '../background.ts'
import { service } from '../service.ts'
import type { Service } from '../service.ts'
import { ProviderLedger } from './ledger.ts'
import { WASM_DEFAULT_WALL_MS, WASM_MAX_WALL_MS, wasmOutcome, wasmRunner, type WasmResult, type WasmTask } from './wasm.ts'
import { LeaseNotLiveError, LeaseRefusedError, NoCapacityError, NotTheHolderError, type Lease, type LeaseResourceType, type ResourcesEvent } from './types.ts'

export * from './types.ts'
export { ProviderLedger } from './ledger.ts'
export * from './wasm.ts'

/** The mesh protocol's name: `/flexstack/<network>/resources/1`. */
export const RESOURCES_PROTOCOL = 'resources'
/** Default lease length (design §11.4). */
export const DEFAULT_LEASE_SECONDS = 3600
/** Longest lease this node grants unless `init.maxLeaseSeconds` says otherwise: one day. */
export const DEFAULT_MAX_LEASE_SECONDS = 86_400
/** How long a requester waits for one provider's answer. */
export const PROVIDER_TIMEOUT_MS = 10_000
/** How long a provider's answer to `available` stands in for its committed total in placement. */
export const LEASED_FRESH_MS = 2000
/** A lease this node held is forgotten this long after it expired (until then, using it gets its provider's own refusal). */
export const HELD_AFTER_EXPIRY_MS = 3_600_000
/** How often the compute policy is read again from policy_store. */
export const POLICY_REFRESH_MS = 5000
/** A node's answer younger than this is not asked again when placement finds no room (concurrent refusals share it). */
export const OFFER_RECHECK_MS = 250
/** How long a requester waits for a node's `available` answer before placing without it. */
export const AVAILABLE_TIMEOUT_MS = 2000
/** Lease requests one peer may have in flight at this provider (they queue on its ledger). */
export const MAX_INBOUND_REQUESTS = 256
/**
 * A request a provider reset unanswered (its queue for this node was full) is sent again (not a
 * task) after `RESET_RETRY_MS`, doubling up to `RESET_RETRY_MAX_MS`, jittered, for as long as the
 * request's own timeout allows.
 */
export const RESET_RETRY_MS = 50
export const RESET_RETRY_MAX_MS = 1000
/** Requests this node has in flight to one provider; more wait their turn (a provider serves 4 requests per peer at once, and queues 8: `MESH_MAX_INFLIGHT_PER_PEER`). */
export const MAX_OUTBOUND_REQUESTS = 4
/** Largest lease message on the wire: a task's module and input travel in it (larger modules go by CID). */
export const MAX_TASK_WIRE_BYTES = 24 * 1_048_576
/** Longest an allocation may wait for capacity (`wait_seconds`). */
export const MAX_WAIT_SECONDS = 3600
/** A waiting allocation tries again at least this often (capacity elsewhere may free without a word). */
export const WAIT_RETRY_MS = 1000
/** Most candidates one allocation asks before giving up. */
export const MAX_CANDIDATES_ASKED = 8

export interface ResourcesInit {
  /**
   * capacity this node offers for leases; a dimension left out is its probed machine's (cores,
   * RAM, GPUs, free disk) and, for `model_slots`, its loaded models × concurrent requests per model
   */
  capacity?: Partial<LeaseResources>
  /** @default 86400 */
  maxLeaseSeconds?: number
  /** offer nothing: this node only requests. @default false */
  requestOnly?: boolean
  /** the compute policy placement follows unless policy_store holds an admin's. @default design §10.5 (locality_aware_binpack) */
  policy?: ComputePolicy
  /** this node's latency region, for `nearest`. @default none */
  region?: string
  /** threads of the `wasm` pool that runs compute tasks. @default the number of cores */
  wasmThreads?: number
  /**
   * this node's policy for the WASM clock: a task that asks for `allow_clock` (the
   * `flexnode.clock_ms` import: timing, which a sandbox otherwise denies) runs here only if this is
   * true. @default false
   */
  wasmClock?: boolean
}

export interface ResourcesComponents {
  client: ZomeCaller
  mesh: Pick<MeshNode, 'handle' | 'unhandle' | 'request' | 'peers' | 'peerId' | 'protocolId'>
  /** this node's agent key */
  agent: AgentPubKey
  /** the mesh's NodeCapabilities (with liveness), for placement */
  capabilities: () => Promise<NodeCapability[]>
  /** the mesh's compute policy from policy_store (an admin's), overriding `init.policy`; null: none */
  sharedPolicy?: () => Promise<ComputePolicy | null>
  /** this machine's capacity, for the dimensions `init.capacity` leaves out */
  machine?: () => Promise<Omit<LeaseResources, 'model_slots' | 'vectors'>>
  /** the generations this node can run at once (loaded models × sequences): its model slots */
  inferenceSlots?: () => number
  /** a WASM module's bytes by its CID (the mesh's artifact store), for tasks that give only `wasm_cid`; undefined: not found */
  modules?: (cid: string) => Promise<Uint8Array | undefined>
  /** told of leases refused and tasks run (the node's metrics). @default none */
  onEvent?: (event: ResourcesEvent) => void
  logger: ComponentLogger
}

export interface AllocateInput {
  resource_type: LeaseResourceType
  requirements?: Requirements
  /** @default 'nearest' */
  locality_preference?: LocalityPreference
  /** @default 3600 */
  duration_seconds?: number
  workload_class?: string
  /** only this node (uhCAk…) may grant it. @default any node placement ranks */
  node_id?: string
  /**
   * when no node can take it now, wait this long for capacity (held in a queue bounded by the
   * compute policy's `max_queue_depth`: `QueueFullError` past it), retrying as leases end. @default 0
   */
  wait_seconds?: number
}

export interface AllocateResult extends Lease {
  /** how every node was ranked or why it was left out */
  placement: Placement
}

/** Per node and in total: advertised, leased, free. */
export interface Availability {
  nodes: Array<{ node_id: string, self: boolean, advertised: LeaseResources, leased: LeaseResources, free: LeaseResources, max_lease_seconds: number }>
  total: { advertised: LeaseResources, leased: LeaseResources, free: LeaseResources }
  /** nodes that did not answer */
  unreachable: string[]
}

/** This node's leases: those it holds (requester) and those it granted (provider). */
export interface NodeAllocations {
  held: Array<Lease & { live: boolean }>
  provided: Array<Lease & { holder: string }>
}

/** `resources.schedule_task`: a WASM task placed like a compute lease, run there, and the lease released. */
export interface ScheduleTaskInput extends WasmTask {
  requirements?: Requirements
  locality_preference?: LocalityPreference
  workload_class?: string
  /** run it on this node (uhCAk…) only */
  node_id?: string
  /** ask the scheduler but run nothing: the placement alone */
  explain_only?: boolean
}

export interface TaskResult extends WasmResult {
  node_id: string
  allocation_id: string
  placement: Placement
}

export interface ResourcesService extends Service {
  allocate: (input: AllocateInput, options?: { signal?: AbortSignal }) => Promise<AllocateResult>
  renew: (input: { allocation_id: string, duration_seconds: number }) => Promise<Lease>
  release: (input: { allocation_id: string }) => Promise<{ allocation_id: string, released: true }>
  queryAvailable: (input?: { resource_type?: LeaseResourceType, requirements?: Requirements }) => Promise<Availability>
  allocations: () => Promise<NodeAllocations>
  /** allocate a compute lease, run the task under it (here or on the provider), release it */
  scheduleTask: (input: ScheduleTaskInput, options?: { signal?: AbortSignal }) => Promise<TaskResult>
  /** the provider's side of inference leases: the inference protocol checks a request's lease and counts what it served */
  readonly inferenceLeases: InferenceLeases
  /**
   * Generation under an inference lease this node holds: on the lease's provider (`remote`, the
   * request carrying the lease), or here (`local`) when this node provides it, checked and counted
   * against the lease either way. `LeaseNotLiveError` for a lease this node does not hold.
   */
  leasedInference: (allocationId: string, backends: { local: Pick<InferenceEngine, 'chat' | 'complete'>, remote: Pick<PeerInference, 'chat' | 'complete'> }) => Pick<InferenceEngine, 'chat' | 'complete'>
  /** the usage recorded against a lease */
  usage: (input: { allocation_id: string }) => Promise<{ allocation_id: string, cpu_seconds: number, memory_gb_seconds: number, tokens: number, tasks: number, records: number }>
  /** the provider's ledger (null on a request-only node) */
  readonly ledger: ProviderLedger | null
}

// ---------------------------------------------------------------------------------------------
// the wire

type WireRequest =
  | { op: 'allocate', request: LeaseRequest, signature: Signature }
  | { op: 'renew' | 'release', change: LeaseChange, signature: Signature }
  | { op: 'available' }
  | { op: 'task', allocation: ActionHash, task: WasmTask }

interface WireGranted { allocation: ActionHash, expires_at: number }
interface WireAvailable { capacity: LeaseResources, committed: LeaseResources, max_lease_seconds: number }

const ZERO = NO_LEASE_RESOURCES
const DIMS = LEASE_DIMENSIONS

const bytes = (v: unknown, n: number, field: string): Uint8Array => {
  if (!isBytes(v, n)) throw new InvalidInputError(`${field} must be ${n} bytes`, { field })
  return v
}

/** A lease length in whole seconds within the DNA's bounds; `InvalidInputError` naming `field` otherwise. */
function leaseSeconds (v: unknown, field = 'duration_seconds'): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < LEASE_LIMITS.minLeaseSeconds || v > LEASE_LIMITS.maxLeaseSeconds) {
    throw new InvalidInputError(`${field} must be a whole number of seconds from ${LEASE_LIMITS.minLeaseSeconds} to ${LEASE_LIMITS.maxLeaseSeconds}`, { field })
  }
  return v
}

function asResources (v: unknown, field: string): LeaseResources {
  if (!isPlainObject(v)) throw new InvalidInputError(`${field} must be a map`, { field })
  const out = { ...ZERO }
  for (const d of DIMS) {
    const n = v[d]
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || n > maxAmountOf(d)) throw new InvalidInputError(`${field}.${d} must be a number from 0 to ${maxAmountOf(d)}`, { field: `${field}.${d}` })
    out[d] = n
  }
  return out
}

function asWireRequest (raw: Uint8Array): WireRequest {
  let m: unknown
  try { m = decode(raw) } catch { throw new InvalidInputError('the request is not msgpack') }
  if (!isPlainObject(m)) throw new InvalidInputError('the request must be a map')
  if (m.op === 'available') return { op: 'available' }
  if (m.op === 'allocate') {
    const r = m.request
    if (!isPlainObject(r)) throw new InvalidInputError('request must be a LeaseRequest', { field: 'request' })
    if (!(LEASE_RESOURCE_TYPES as readonly unknown[]).includes(r.resource_type)) throw new InvalidInputError(`resource_type must be one of ${LEASE_RESOURCE_TYPES.join(', ')}`, { field: 'resource_type' })
    if (r.workload_class !== null && typeof r.workload_class !== 'string') throw new InvalidInputError('workload_class must be a string or null', { field: 'workload_class' })
    if (!Number.isSafeInteger(r.requested_at)) throw new InvalidInputError('requested_at must be a timestamp', { field: 'requested_at' })
    const request: LeaseRequest = {
      requester: bytes(r.requester, 39, 'requester'),
      provider: bytes(r.provider, 39, 'provider'),
      resource_type: r.resource_type as LeaseResourceType,
      resources: asResources(r.resources, 'resources'),
      duration_seconds: leaseSeconds(r.duration_seconds),
      workload_class: r.workload_class as string | null,
      nonce: bytes(r.nonce, 16, 'nonce'),
      requested_at: r.requested_at as number
    }
    return { op: 'allocate', request, signature: bytes(m.signature, 64, 'signature') }
  }
  if (m.op === 'task') {
    // the runner checks the task itself; only its envelope is checked here
    if (!isPlainObject(m.task)) throw new InvalidInputError('task must be a map', { field: 'task' })
    return { op: 'task', allocation: bytes(m.allocation, 39, 'allocation'), task: m.task as WasmTask }
  }
  if (m.op === 'renew' || m.op === 'release') {
    const c = m.change
    if (!isPlainObject(c) || c.kind !== m.op) throw new InvalidInputError(`change must be a LeaseChange of kind ${m.op}`, { field: 'change' })
    if (!Number.isSafeInteger(c.requested_at)) throw new InvalidInputError('requested_at must be a timestamp', { field: 'requested_at' })
    const duration = m.op === 'renew' ? leaseSeconds(c.duration_seconds) : null
    const change: LeaseChange = { kind: m.op, allocation: bytes(c.allocation, 39, 'allocation'), duration_seconds: duration, nonce: bytes(c.nonce, 16, 'nonce'), requested_at: c.requested_at as number }
    return { op: m.op, change, signature: bytes(m.signature, 64, 'signature') }
  }
  throw new InvalidInputError('op must be allocate, renew, release, available or task', { field: 'op' })
}

// ---------------------------------------------------------------------------------------------
// input validation (library, HTTP, CLI, MCP share it)

function parseDuration (v: unknown): number {
  return v === undefined ? DEFAULT_LEASE_SECONDS : leaseSeconds(v)
}

function parseAllocationId (v: unknown): ActionHash {
  if (typeof v !== 'string') throw new InvalidInputError('allocation_id must be an action hash (uhCkk…)', { field: 'allocation_id' })
  try { return decodeHash(v, 'Action') } catch { throw new InvalidInputError('allocation_id must be an action hash (uhCkk…)', { field: 'allocation_id' }) }
}

/** A NodeCapability as placement sees it, with the capacity it offers and has leased when it told us. */
function placementNode (cap: NodeCapability, self: string, offer: WireAvailable | undefined): PlacementNode {
  const c = cap.capabilities
  return {
    node_id: cap.node_id,
    self: cap.node_id === self,
    availability: cap.availability,
    latency_region: cap.network.latency_region,
    offers: LEASE_RESOURCE_TYPES,
    capacity: offer?.capacity ?? { cpu_cores: c.compute.cpu_cores, memory_gb: c.compute.ram_gb, gpu_count: c.compute.gpu === null ? 0 : 1, storage_gb: c.storage.local_ssd_gb },
    leased: offer?.committed ?? { ...ZERO },
    gpu_vram_gb: c.compute.gpu?.vram_gb,
    bandwidth_mbps: cap.network.bandwidth_mbps,
    load: { cpu_percent: cap.load.cpu_percent, gpu_percent: cap.load.gpu_percent },
    models_loaded: c.inference.models_loaded
  }
}

const iso = (us: number): string => new Date(Math.floor(us / 1000)).toISOString()

/** A wrapped failure of a provider: its typed error kept when it sent one. */
function refusal (nodeId: string, err: unknown): string {
  const name = err instanceof Error ? err.name : 'Error'
  return `${nodeId}: ${name}: ${errorMessage(err)}`
}

export function resources (init: ResourcesInit = {}) {
  return (c: ResourcesComponents): ResourcesService => {
    const log = c.logger.forComponent('flexnode:resources')
    const client = new ResourceMeshClient(c.client)
    const self = encodeHash(c.agent)
    const ledger = init.requestOnly === true ? null : new ProviderLedger({ client, agent: c.agent })
    /** the policy in force: policy_store's (an admin's), read at most every POLICY_REFRESH_MS, else init's, else the design's */
    let shared: { at: number, policy: Promise<ComputePolicy | null> } | undefined
    const policyNow = async (): Promise<ComputePolicy> => {
      if (c.sharedPolicy === undefined) return init.policy ?? DEFAULT_COMPUTE_POLICY
      if (shared === undefined || Date.now() - shared.at > POLICY_REFRESH_MS) {
        const entry = { at: Date.now(), policy: c.sharedPolicy().catch((err: unknown) => { log.warn({ err: errorMessage(err) }, 'cannot read the compute policy; using the local one'); return null }) }
        shared = entry
      }
      return (await shared.policy) ?? init.policy ?? DEFAULT_COMPUTE_POLICY
    }
    const endpoint = c.mesh.protocolId(RESOURCES_PROTOCOL)
    /** the leases this node holds, as granted: their provider, request and expiry */
    const held = new Map<string, { lease: Lease, provider: AgentPubKey }>()
    /** leases long expired are forgotten (their provider's chain keeps them) */
    const forgetExpired = (): void => {
      const before = Date.now() - HELD_AFTER_EXPIRY_MS
      for (const [id, h] of held) if (Date.parse(h.lease.expires_at) < before) held.delete(id)
    }
    /** what each provider last said it offers and has committed, and when (trusted for LEASED_FRESH_MS) */
    const offered = new Map<string, { at: number, a: Promise<WireAvailable | undefined> }>()

    /** What this node offers and has committed now (it offers something: `ledger.offer` is set). */
    const ownAvailability = (): WireAvailable => ({ capacity: ledger!.offer!.capacity, committed: ledger!.committed(), max_lease_seconds: ledger!.offer!.max_lease_seconds })

    const serve = async (raw: Uint8Array, from: string): Promise<Uint8Array> => {
      const m = asWireRequest(raw)
      if (m.op === 'available') {
        if (ledger?.offer == null) throw new LeaseRefusedError('this node offers no resources for lease', 'no_offer', self)
        return encode(ownAvailability())
      }
      if (ledger === null) throw new LeaseRefusedError('this node offers no resources for lease', 'no_offer', self)
      if (m.op === 'allocate') {
        // only the requester itself asks for its lease (a relayed request would let a peer spend another's consent)
        if (peerIdFromAgentPubKey(m.request.requester) !== from) throw new InvalidInputError('a lease is requested by its requester\'s own node', { field: 'requester' })
        const g = await grant(m.request, m.signature)
        return encode({ allocation: g.allocation, expires_at: g.expires_at } satisfies WireGranted)
      }
      const fromKey = agentPubKeyFromPeerId(from)
      if (m.op === 'task') return encode(await runUnder(m.allocation, fromKey, m.task))
      const lease = ledger.lease(m.change.allocation)
      if (!hashEquals(lease.requester, fromKey)) throw new NotTheHolderError(encodeHash(m.change.allocation))
      if (m.op === 'renew') {
        const g = await commitStep(async () => await ledger.renew(m.change, m.signature))
        return encode({ allocation: g.allocation, expires_at: g.expires_at } satisfies WireGranted)
      }
      await commitStep(async () => await ledger.release(m.change.allocation, { change: m.change, signature: m.signature }))
      return encode({ released: true })
    }

    /** A ledger step; a commit refused by validation is a refusal with its reason, not a crash. */
    const commitStep = async <T>(step: () => Promise<T>): Promise<T> => {
      try {
        return await step()
      } catch (err) {
        if (err instanceof FlexnodeError && !['ConductorApiError', 'InvalidCommitError'].includes(err.name)) throw err
        throw new LeaseRefusedError(`the ledger step was not committed: ${errorMessage(err)}`, 'invalid', self)
      }
    }

    /** This node's ledger grants a lease, or refuses it (counted with its reason). */
    const grant = async (request: LeaseRequest, signature: Signature): ReturnType<ProviderLedger['grant']> => {
      try {
        return await commitStep(async () => await ledger!.grant(request, signature))
      } catch (err) {
        c.onEvent?.({ kind: 'allocation_refused', side: 'provider', reason: err instanceof LeaseRefusedError ? err.reason : err instanceof Error ? err.name : 'Error' })
        throw err
      }
    }

    const runner = wasmRunner({ maxThreads: init.wasmThreads, resolve: c.modules })({ logger: c.logger })

    /** Runs a task under a live compute lease held by `holder`, and records its usage against it. */
    const runUnder = async (allocation: ActionHash, holder: AgentPubKey, task: WasmTask, signal?: AbortSignal): Promise<WasmResult> => {
      if (ledger === null) throw new LeaseRefusedError('this node offers no resources for lease', 'no_offer', self)
      const lease = ledger.lease(allocation)
      if (!hashEquals(lease.requester, holder)) throw new NotTheHolderError(encodeHash(allocation))
      if (lease.resource_type !== 'compute') throw new InvalidInputError(`allocation ${encodeHash(allocation)} is a ${lease.resource_type} lease: tasks run under compute leases`, { field: 'allocation_id' })
      if (task.allow_clock === true && init.wasmClock !== true) throw new InvalidInputError('this node gives tasks no clock (its wasmClock policy is off): run it without allow_clock, or on a node that allows it', { field: 'allow_clock' })
      const at = Date.now() * 1000
      let result: WasmResult | undefined
      try {
        result = await runner.run(task, { signal })
        c.onEvent?.({ kind: 'task', outcome: wasmOutcome({ result }) })
        return result
      } catch (err) {
        c.onEvent?.({ kind: 'task', outcome: wasmOutcome({ error: err }) })
        throw err
      } finally {
        // a task that hit a limit used its budget: it is counted as a task with what is known
        const cpu = result?.usage.cpu_ms ?? 0
        const memory = (result?.usage.peak_memory_mb ?? 0) / 1024 * ((result?.usage.wall_ms ?? 0) / 1000)
        client.recordUsage({ allocation, cpu_seconds: cpu / 1000, memory_gb_seconds: memory, tokens: 0, tasks: 1, at: Math.max(at, Date.now() * 1000) })
          .catch((err: unknown) => { log.warn({ allocation: encodeHash(allocation), err: errorMessage(err) }, 'usage not recorded') })
      }
    }

    /** What a node offers and has leased: this node's ledger, else the node's own answer (cached LEASED_FRESH_MS); undefined when it does not answer. */
    const offerOf = async (nodeId: string): Promise<WireAvailable | undefined> => {
      if (nodeId === self) return ledger?.offer == null ? undefined : ownAvailability()
      const known = offered.get(nodeId)
      if (known !== undefined && Date.now() - known.at < LEASED_FRESH_MS) return await known.a
      // concurrent placements share one question
      const entry = { at: Date.now(), a: Promise.resolve<WireAvailable | undefined>(undefined) }
      entry.a = (async (): Promise<WireAvailable | undefined> => {
        try {
          const raw = await ask(decodeHash(nodeId, 'Agent'), { op: 'available' }, undefined, AVAILABLE_TIMEOUT_MS) as Record<string, unknown>
          return { capacity: asResources(raw.capacity, 'capacity'), committed: asResources(raw.committed, 'committed'), max_lease_seconds: Number(raw.max_lease_seconds) }
        } catch {
          if (offered.get(nodeId) === entry) offered.delete(nodeId)
          return undefined
        }
      })()
      offered.set(nodeId, entry)
      return await entry.a
    }

    const inferenceLeases: InferenceLeases = {
      check: (allocationId, fromPeer) => {
        if (ledger === null) throw new LeaseRefusedError('this node offers no resources for lease', 'no_offer', self)
        const allocation = parseAllocationId(allocationId)
        const lease = ledger.lease(allocation)
        if (!hashEquals(lease.requester, agentPubKeyFromPeerId(fromPeer))) throw new NotTheHolderError(allocationId)
        if (lease.resource_type !== 'inference') throw new InvalidInputError(`allocation ${allocationId} is a ${lease.resource_type} lease, not an inference lease`, { field: 'allocation_id' })
      },
      record: (allocationId, usage) => {
        client.recordUsage({ allocation: parseAllocationId(allocationId), cpu_seconds: usage.wall_ms / 1000, memory_gb_seconds: 0, tokens: usage.tokens, tasks: 1, at: Date.now() * 1000 })
          .catch((err: unknown) => { log.warn({ allocation: allocationId, err: errorMessage(err) }, 'inference usage not recorded') })
      }
    }

    const sign = async (provider: AgentPubKey, resourceType: LeaseResourceType, demand: LeaseResources, duration: number, workloadClass: string | null): Promise<{ request: LeaseRequest, signature: Signature }> => {
      const request: LeaseRequest = { requester: c.agent, provider, resource_type: resourceType, resources: demand, duration_seconds: duration, workload_class: workloadClass, nonce: new Uint8Array(randomBytes(16)), requested_at: Date.now() * 1000 }
      return { request, signature: await client.signRequest(request) }
    }

    const signChange = async (kind: LeaseChange['kind'], allocation: ActionHash, duration: number | null): Promise<{ change: LeaseChange, signature: Signature }> => {
      const change: LeaseChange = { kind, allocation, duration_seconds: duration, nonce: new Uint8Array(randomBytes(16)), requested_at: Date.now() * 1000 }
      return { change, signature: await client.signChange(change) }
    }

    /** The provider of a lease this node holds (from memory, else the DHT). */
    const providerOf = async (allocation: ActionHash): Promise<{ provider: AgentPubKey, record: AllocationRecord | null }> => {
      const known = held.get(encodeHash(allocation))
      if (known !== undefined) return { provider: known.provider, record: null }
      const record = await client.getAllocation(allocation)
      if (record === null) throw new LeaseNotLiveError(encodeHash(allocation), 'unknown')
      if (!hashEquals(record.allocation.request.requester, c.agent) && !hashEquals(record.provider, c.agent)) throw new NotTheHolderError(encodeHash(allocation))
      return { provider: record.provider, record }
    }

    const leaseOf = (allocation: ActionHash, provider: AgentPubKey, expiresAt: number, request: Pick<LeaseRequest, 'resource_type' | 'resources'>): Lease => ({
      allocation_id: encodeHash(allocation),
      node_id: encodeHash(provider),
      endpoint,
      expires_at: iso(expiresAt),
      resource_type: request.resource_type,
      resources: request.resources
    })

    const svc = service({
      start: async () => {
        if (ledger !== null) {
          await ledger.load()
          const given = init.capacity ?? {}
          const probed = LEASE_DIMENSIONS.some(d => d !== 'model_slots' && d !== 'vectors' && given[d] === undefined) ? await c.machine?.() : undefined
          const capacity = { ...ZERO, ...probed, model_slots: c.inferenceSlots?.() ?? 0, ...given }
          const offer: ResourceOffer = { capacity: asResources(capacity, 'capacity'), max_lease_seconds: Math.min(init.maxLeaseSeconds ?? DEFAULT_MAX_LEASE_SECONDS, LEASE_LIMITS.maxLeaseSeconds) }
          const current = ledger.offer
          if (current === null || JSON.stringify(current) !== JSON.stringify(offer)) await ledger.setOffer(offer)
        }
        await c.mesh.handle(RESOURCES_PROTOCOL, serve, { maxRequestBytes: MAX_TASK_WIRE_BYTES, timeoutMs: WASM_MAX_WALL_MS + PROVIDER_TIMEOUT_MS, maxInboundStreams: MAX_INBOUND_REQUESTS })
      },
      stop: async () => {
        await c.mesh.unhandle(RESOURCES_PROTOCOL)
        await runner.dispose()
      }
    })

    /** requests in flight per provider, and those waiting for a turn (the mesh caps streams per connection) */
    const inFlight = new Map<string, { n: number, waiting: Array<() => void> }>()
    const ask = async (provider: AgentPubKey, m: WireRequest, signal?: AbortSignal, timeoutMs = PROVIDER_TIMEOUT_MS): Promise<unknown> => {
      const peer = peerIdFromAgentPubKey(provider)
      let slot = inFlight.get(peer)
      if (slot === undefined) inFlight.set(peer, slot = { n: 0, waiting: [] })
      if (slot.n >= MAX_OUTBOUND_REQUESTS) await new Promise<void>((resolve) => { slot!.waiting.push(resolve) })
      slot.n++
      try {
        const started = Date.now()
        const wire = encode(m)
        for (let attempt = 0; ; attempt++) {
          signal?.throwIfAborted()
          try {
            const left = timeoutMs - (Date.now() - started)
            return decode(await c.mesh.request(peer, RESOURCES_PROTOCOL, wire, { signal, timeoutMs: Math.max(1, left), maxResponseBytes: MAX_TASK_WIRE_BYTES }))
          } catch (err) {
            // reset unanswered: the provider's queue for this node was full (its DHT traffic with
            // us counts too). Every op but a task is safe to send again: a signed request or
            // change carries its nonce, and the provider takes it at most once.
            const pause = backoffDelay(RESET_RETRY_MS, attempt, RESET_RETRY_MAX_MS) * (0.5 + Math.random())
            if (!(err instanceof MeshResetError) || m.op === 'task' || Date.now() - started + pause >= timeoutMs) throw err
            log.debug({ peer, op: m.op, attempt, err: errorMessage(err) }, 'a provider reset a request unanswered; sending it again')
            await delay(pause, undefined, { signal })
          }
        }
      } finally {
        slot.n--
        const next = slot.waiting.shift()
        if (next !== undefined) next()
        else if (slot.n === 0) inFlight.delete(peer)
      }
    }

    /** One placement and one round of asking the ranked candidates; `NoCapacityError` when none grants it. */
    const allocateOnce = async (input: Omit<AllocateInput, 'wait_seconds'>, options: { signal?: AbortSignal }): Promise<AllocateResult> => {
      const policy = await policyNow()
      const q = resolveRequest(input, policy)
      // a workload class's timeout is its lease's default length
      const classTimeout = q.cls?.resource_request.timeout_seconds
      const duration = parseDuration(input.duration_seconds ?? (classTimeout === undefined ? undefined : Math.min(LEASE_LIMITS.maxLeaseSeconds, Math.max(1, Math.ceil(classTimeout)))))
      const demand: LeaseResources = { ...q.demand, model_slots: input.resource_type === 'inference' ? 1 : 0, vectors: input.resource_type === 'memory' ? q.requirements.vectors ?? 0 : 0 }
      // a compute lease without a size takes one core, so it counts against the provider; an inference lease holds a model slot
      if (input.resource_type === 'compute' && DIMS.every(d => demand[d] === 0)) demand.cpu_cores = 1
      if (input.node_id !== undefined && (typeof input.node_id !== 'string' || !/^uhCAk[A-Za-z0-9_-]{48}$/.test(input.node_id))) throw new InvalidInputError('node_id must be an agent key (uhCAk…)', { field: 'node_id' })
      const caps = (await c.capabilities()).filter(cap => input.node_id === undefined || cap.node_id === input.node_id)
      const connected = new Set(c.mesh.peers())
      const reachable = caps.filter(cap => cap.node_id === self ? ledger?.offer != null : connected.has(peerIdFromAgentPubKey(decodeHash(cap.node_id, 'Agent'))))
      const { node_id: _pinned, duration_seconds: _duration, ...placing } = input
      const place = async (): Promise<Placement> => {
        const offers = await Promise.all(reachable.map(async cap => await offerOf(cap.node_id)))
        const nodes = reachable.map((cap, i) => placementNode(cap, self, offers[i]))
        return placeRequest(nodes, { ...placing, requirements: { ...input.requirements, cpu_cores: demand.cpu_cores } }, policy, {})
      }
      let placement = await place()
      if (!placement.candidates.some(x => x.eligible)) {
        // what the nodes said a moment ago may be stale (a lease ended since): ask them again before giving up
        for (const cap of reachable) if (Date.now() - (offered.get(cap.node_id)?.at ?? 0) > OFFER_RECHECK_MS) offered.delete(cap.node_id)
        placement = await place()
      }
      const ranked = placement.candidates.filter(x => x.eligible).slice(0, MAX_CANDIDATES_ASKED)
      const refusals: string[] = []
      for (const cand of ranked) {
        options.signal?.throwIfAborted()
        const provider = decodeHash(cand.node_id, 'Agent')
        const { request, signature } = await sign(provider, input.resource_type, demand, duration, input.workload_class ?? null)
        try {
          const g = cand.node_id === self
            ? await grant(request, signature).then(x => ({ allocation: x.allocation, expires_at: x.expires_at }))
            : await ask(provider, { op: 'allocate', request, signature }, options.signal) as WireGranted
          const lease = leaseOf(g.allocation, provider, g.expires_at, request)
          forgetExpired()
          held.set(lease.allocation_id, { lease, provider })
          return { ...lease, placement }
        } catch (err) {
          if (options.signal?.aborted === true) throw err
          refusals.push(refusal(cand.node_id, err))
          log.debug({ node: cand.node_id, err: errorMessage(err) }, 'a provider refused a lease; trying the next')
        }
      }
      const why = ranked.length === 0
        ? `no node can hold it (${placement.candidates.length} considered: ${placement.candidates.slice(0, 5).map(x => `${x.node_id.slice(0, 12)}… ${x.excluded_because ?? ''} ${x.detail ?? ''}`.trim()).join('; ')})`
        : `every candidate refused: ${refusals.join('; ')}`
      throw new NoCapacityError(`no ${input.resource_type} lease could be placed: ${why}`, ranked.length)
    }

    /** allocations waiting for capacity (`wait_seconds`), each woken when a lease ends here */
    const waiting = new Set<{ wake: () => void }>()

    const leasedInference: ResourcesService['leasedInference'] = (allocationId, backends) => {
      const lease = held.get(allocationId)?.lease
      if (lease === undefined) throw new LeaseNotLiveError(allocationId, 'unknown')
      if (lease.resource_type !== 'inference') throw new InvalidInputError(`allocation ${allocationId} is a ${lease.resource_type} lease, not an inference lease`, { field: 'allocation_id' })
      if (lease.node_id !== self) {
        const under = { allocation_id: allocationId, nodes: [lease.node_id] }
        return {
          chat: async (model, messages, o) => await backends.remote.chat(model, messages, { ...o, ...under }),
          complete: async (model, prompt, o) => await backends.remote.complete(model, prompt, { ...o, ...under })
        }
      }
      const counted = async <R extends { usage: { prompt_tokens: number, completion_tokens: number } }>(run: () => Promise<R>): Promise<R> => {
        inferenceLeases.check(allocationId, c.mesh.peerId)
        const started = performance.now()
        const r = await run()
        inferenceLeases.record(allocationId, { tokens: r.usage.prompt_tokens + r.usage.completion_tokens, wall_ms: performance.now() - started })
        return r
      }
      return {
        chat: async (model, messages, o) => await counted(async () => await backends.local.chat(model, messages, o)),
        complete: async (model, prompt, o) => await counted(async () => await backends.local.complete(model, prompt, o))
      }
    }

    /** A lease placed and granted, waiting for capacity up to `wait_seconds`; the refusal when none grants it. */
    const allocateWaiting = async (input: AllocateInput, options: { signal?: AbortSignal } = {}): Promise<AllocateResult> => {
      if (!isPlainObject(input)) throw new InvalidInputError('allocate takes {resource_type, requirements, locality_preference?, duration_seconds?, workload_class?}')
      const wait = input.wait_seconds ?? 0
      if (typeof wait !== 'number' || !Number.isFinite(wait) || wait < 0 || wait > MAX_WAIT_SECONDS) throw new InvalidInputError(`wait_seconds must be a number of seconds from 0 to ${MAX_WAIT_SECONDS}`, { field: 'wait_seconds' })
      const { wait_seconds: _wait, ...once } = input
      try {
        return await allocateOnce(once, options)
      } catch (err) {
        if (!(err instanceof NoCapacityError) || wait === 0) throw err
      }
      // no node can take it now: wait in the queue for capacity
      const max = (await policyNow()).scheduling.max_queue_depth
      if (waiting.size >= max) throw new QueueFullError(waiting.size, max)
      const deadline = Date.now() + wait * 1000
      const waiter = { wake: () => {} }
      waiting.add(waiter)
      try {
        for (;;) {
          const left = deadline - Date.now()
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, Math.max(0, Math.min(left, WAIT_RETRY_MS)))
            waiter.wake = () => { clearTimeout(t); resolve() }
          })
          options.signal?.throwIfAborted()
          try {
            return await allocateOnce(once, options)
          } catch (err) {
            if (!(err instanceof NoCapacityError) || Date.now() >= deadline) throw err
          }
        }
      } finally {
        waiting.delete(waiter)
      }
    }

    const api: ResourcesService = Object.assign(svc, {
      ledger,
      inferenceLeases,

      leasedInference,

      async allocate (input: AllocateInput, options: { signal?: AbortSignal } = {}): Promise<AllocateResult> {
        try {
          return await allocateWaiting(input, options)
        } catch (err) {
          // a refusal: no node granted it (a malformed request or the caller's abort is none)
          const name = err instanceof Error ? err.name : 'Error'
          if (name !== 'InvalidInputError' && options.signal?.aborted !== true) c.onEvent?.({ kind: 'allocation_refused', side: 'requester', reason: name })
          throw err
        }
      },

      async renew (input: { allocation_id: string, duration_seconds: number }): Promise<Lease> {
        if (!isPlainObject(input)) throw new InvalidInputError('renew takes {allocation_id, duration_seconds}')
        const allocation = parseAllocationId(input.allocation_id)
        const duration = parseDuration(input.duration_seconds)
        const { provider, record } = await providerOf(allocation)
        const signed = await signChange('renew', allocation, duration)
        const g = hashEquals(provider, c.agent)
          ? await commitStep(async () => await ledger!.renew(signed.change, signed.signature))
          : await ask(provider, { op: 'renew', ...signed }) as WireGranted
        const old = held.get(input.allocation_id)
        // the lease's terms: as held here, else as its record says
        const request = old?.lease ?? record?.allocation.request ?? (await client.getAllocation(g.allocation))?.allocation.request
        if (request === undefined) throw new LeaseNotLiveError(encodeHash(g.allocation), 'unknown')
        const lease = leaseOf(g.allocation, provider, g.expires_at, request)
        held.delete(input.allocation_id)
        held.set(lease.allocation_id, { lease, provider })
        return lease
      },

      async release (input: { allocation_id: string }): Promise<{ allocation_id: string, released: true }> {
        if (!isPlainObject(input)) throw new InvalidInputError('release takes {allocation_id}')
        const allocation = parseAllocationId(input.allocation_id)
        const { provider, record } = await providerOf(allocation)
        if (hashEquals(provider, c.agent)) {
          // the provider releases its own lease (or one it granted itself)
          const change = record === null || hashEquals(record.allocation.request.requester, c.agent) ? await signChange('release', allocation, null) : null
          await commitStep(async () => await ledger!.release(allocation, change))
        } else {
          await ask(provider, { op: 'release', ...await signChange('release', allocation, null) })
        }
        held.delete(input.allocation_id)
        // its capacity is free again: placement asks the provider afresh, and waiting allocations try now
        offered.delete(encodeHash(provider))
        for (const w of waiting) w.wake()
        return { allocation_id: input.allocation_id, released: true }
      },

      async queryAvailable (input: { resource_type?: LeaseResourceType, requirements?: Requirements } = {}): Promise<Availability> {
        if (!isPlainObject(input)) throw new InvalidInputError('query_available takes {resource_type?, requirements?}')
        const policy = await policyNow()
        if (input.resource_type !== undefined || input.requirements !== undefined) resolveRequest({ resource_type: input.resource_type ?? 'compute', requirements: input.requirements }, policy)
        const caps = await c.capabilities()
        const connected = new Set(c.mesh.peers())
        const out: Availability = { nodes: [], total: { advertised: { ...ZERO }, leased: { ...ZERO }, free: { ...ZERO } }, unreachable: [] }
        const answers = await Promise.all(caps.map(async (cap): Promise<{ cap: NodeCapability, a: WireAvailable | null }> => {
          const reachable = cap.node_id === self || connected.has(peerIdFromAgentPubKey(decodeHash(cap.node_id, 'Agent')))
          if (reachable) offered.delete(cap.node_id)
          return { cap, a: reachable ? await offerOf(cap.node_id) ?? null : null }
        }))
        for (const { cap, a } of answers) {
          if (a === null) { if (cap.node_id !== self) out.unreachable.push(cap.node_id); continue }
          const advertised = a.capacity
          const leased = a.committed
          const free = { ...ZERO }
          for (const d of DIMS) free[d] = Math.max(0, advertised[d] - leased[d])
          if (input.requirements !== undefined) {
            const q = resolveRequest({ resource_type: input.resource_type ?? 'compute', requirements: input.requirements }, policy)
            const want: LeaseResources = { ...q.demand, model_slots: input.resource_type === 'inference' ? 1 : 0, vectors: input.resource_type === 'memory' ? q.requirements.vectors ?? 0 : 0 }
            if (DIMS.some(d => want[d] > free[d])) continue
          }
          out.nodes.push({ node_id: cap.node_id, self: cap.node_id === self, advertised, leased, free, max_lease_seconds: a.max_lease_seconds })
          for (const d of DIMS) { out.total.advertised[d] += advertised[d]; out.total.leased[d] += leased[d]; out.total.free[d] += free[d] }
        }
        return out
      },

      async scheduleTask (input: ScheduleTaskInput, options: { signal?: AbortSignal } = {}): Promise<TaskResult> {
        if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new InvalidInputError('schedule_task takes {wasm | wasm_cid, input?, limits?, requirements?, locality_preference?}')
        const { requirements, locality_preference: locality, workload_class: workloadClass, node_id: nodeId, explain_only: _explain, ...task } = input
        const wallMs = typeof task.limits?.wall_ms === 'number' ? task.limits.wall_ms : WASM_DEFAULT_WALL_MS
        const lease = await api.allocate({
          resource_type: 'compute',
          requirements,
          ...(locality !== undefined ? { locality_preference: locality } : {}),
          ...(workloadClass !== undefined ? { workload_class: workloadClass } : {}),
          ...(nodeId !== undefined ? { node_id: nodeId } : {}),
          duration_seconds: Math.min(LEASE_LIMITS.maxLeaseSeconds, Math.ceil(Math.min(Math.max(wallMs, 1), WASM_MAX_WALL_MS) / 1000) + 60)
        }, options)
        const allocation = decodeHash(lease.allocation_id, 'Action')
        const provider = decodeHash(lease.node_id, 'Agent')
        try {
          const result = hashEquals(provider, c.agent)
            ? await runUnder(allocation, c.agent, task, options.signal)
            : await ask(provider, { op: 'task', allocation, task }, options.signal, Math.min(Math.max(wallMs, 1), WASM_MAX_WALL_MS) + PROVIDER_TIMEOUT_MS) as WasmResult
          return { output: result.output, exit_code: result.exit_code, usage: result.usage, node_id: lease.node_id, allocation_id: lease.allocation_id, placement: lease.placement }
        } finally {
          await api.release({ allocation_id: lease.allocation_id }).catch((err: unknown) => { log.warn({ allocation: lease.allocation_id, err: errorMessage(err) }, 'a task\'s lease was not released; it ends at its expiry') })
        }
      },

      async usage (input: { allocation_id: string }) {
        if (!isPlainObject(input)) throw new InvalidInputError('usage takes {allocation_id}')
        const total = await client.usageOf(parseAllocationId(input.allocation_id))
        return { allocation_id: input.allocation_id, cpu_seconds: total.cpu_seconds, memory_gb_seconds: total.memory_gb_seconds, tokens: total.tokens, tasks: total.tasks, records: total.records }
      },

      async allocations (): Promise<NodeAllocations> {
        const now = Date.now() * 1000
        const records = await client.holderAllocations(c.agent)
        const heldOut = records.map(r => ({ ...leaseOf(r.action_hash, r.provider, r.allocation.expires_at, r.allocation.request), live: r.allocation.expires_at > now && (hashEquals(r.provider, c.agent) ? ledger?.live().some(l => hashEquals(l.allocation, r.action_hash)) === true : held.has(encodeHash(r.action_hash))) }))
        const provided = (ledger?.live() ?? []).map((l: LiveLease) => ({ ...leaseOf(l.allocation, c.agent, l.expires_at, l), holder: encodeHash(l.requester) }))
        return { held: heldOut, provided }
      }
    })
    return api
  }
}
