/**
 * The registry service: measures this machine and keeps two things true.
 *
 * - Liveness and live load travel in this node's presence (signed, expiring, gossiped; never on
 *   a chain): every heartbeat interval it hands the DHT network's presence the load, the queue per
 *   model and the availability, and the record goes out.
 * - The `NodeCapability` entry says what the node offers (machine, models, configuration): it is
 *   advertised at start and updated only when the offer changes (a model loaded or unloaded, a
 *   clear change of speed), and an unchanged offer at most once per `advertiseIntervalMs`. A
 *   restart with the same offer writes nothing until that interval has passed.
 *
 * ```ts
 * const registry = registryService({ agentName: 'gpu-box-01', heartbeatIntervalMs: 10_000 })({ client, logger, probe, presence: dht.presence })
 * await registry.start()
 * ```
 */
import { hostname } from 'node:os'
import type { AppClient } from '@holochain/client'
import { AgentRegistryClient } from '../../../zomes-ts/agent_registry/client.ts'
import type { NodeCapability } from '../../../zomes-ts/agent_registry/types.ts'
import { encodeHash } from '../holo/hash.ts'
import type { ComponentLogger } from '../logger.ts'
import type { LoadSample, MachineProfile } from '../probe/probe.ts'
import { periodic, type Periodic } from '../background.ts'
import { DEFAULT_ADVERTISE_INTERVAL_SECONDS, DEFAULT_HEARTBEAT_INTERVAL_SECONDS } from '../constants.ts'
import { AbortError, DisposedError } from '../errors.ts'
import type { Service } from '../service.ts'
import type { Presence } from '../conductor/network/presence.ts'
import type { ZomeCallOptions } from '../../../zomes-ts/client.ts'

export interface RegistryServiceInit {
  /** @default the hostname, sanitized */
  agentName?: string
  /** ms between heartbeats (presence refreshes, no chain write). @default 10000 */
  heartbeatIntervalMs?: number
  /**
   * ms after which an unchanged offer is advertised again (otherwise the NodeCapability is updated
   * only when the offer changes). @default 86400000 (24 h)
   */
  advertiseIntervalMs?: number
  /** @default 'local' */
  region?: string
  /** @default 1000 */
  bandwidthMbps?: number
  /** shard replicas of the vector memory this node offers to host (`memory.vector_shards`: its weight on the shard ring). @default 0 */
  vectorShards?: number
}

/**
 * What the node serves right now: the model set (and its demo models) is part of its offer, the
 * queue rides on every heartbeat. Waiting requests make the node `busy`.
 */
export interface InferenceSnapshot {
  models_loaded: string[]
  max_batch_size: number
  tokens_per_second: number
  /** requests waiting for a generation slot */
  queue_depth?: number
  /** requests generating now */
  in_flight?: number
  /** of models_loaded, the demo (random-weight) ones */
  demo_models?: string[]
  /** requests generating or waiting, per loaded model */
  queue?: Record<string, number>
}

/** The advertised queue depth: requests the node is generating or has waiting. */
function requestsOn (s: InferenceSnapshot | undefined): number {
  return Math.max(0, Math.trunc((s?.queue_depth ?? 0) + (s?.in_flight ?? 0)))
}

/** A measured speed counts as a change of offer only beyond this share of the advertised one. */
const TPS_TOLERANCE = 0.25

export interface RegistryServiceComponents {
  client: Pick<AppClient, 'callZome' | 'myPubKey'>
  logger: ComponentLogger
  probe: { machine: () => Promise<MachineProfile>, load: () => Promise<LoadSample> }
  /** this node's presence, which each heartbeat refreshes */
  presence: Pick<Presence, 'update' | 'refresh'>
  /** live inference figures; a change of the model set is advertised with the next heartbeat */
  inference?: () => InferenceSnapshot
}

/**
 * What an operator sets over the probed NodeCapability (`holochain.register_node`,
 * `holochain.join_mesh`): a new name, and fields merged over the probed ones, kept for every
 * later advertisement. The agent_registry DNA validates the result.
 */
export interface CapabilityOverrides {
  agent_name?: string
  capabilities?: { [K in keyof NodeCapability['capabilities']]?: Partial<NodeCapability['capabilities'][K]> }
  network?: Partial<NodeCapability['network']>
}

export interface AdvertiseOptions extends ZomeCallOptions {
  /** merged over the earlier overrides, kept for later advertisements */
  overrides?: CapabilityOverrides
}

export interface RegistryService extends Service {
  /** Advertise the NodeCapability now, changed or not: one chain action. */
  advertise: (options?: AdvertiseOptions) => Promise<Uint8Array>
  /** the NodeCapability last advertised (undefined before the first) */
  readonly advertised: NodeCapability | undefined
  /** One heartbeat now: the live load, queue and availability go out in this node's presence (no chain write). */
  beat: (options?: ZomeCallOptions) => Promise<void>
  /** heartbeats so far */
  readonly beats: number
  /** NodeCapability writes so far */
  readonly advertisements: number
}

export function sanitizeAgentName (name: string): string {
  const cleaned = name.normalize('NFC').replace(/[^\p{L}\p{N} ._-]/gu, '-').replace(/^[^\p{L}\p{N}]+/u, '').slice(0, 64)
  return cleaned.length > 0 ? cleaned : 'flexnode'
}

export function buildCapability (agent: Uint8Array, name: string, machine: MachineProfile, load: LoadSample, init: RegistryServiceInit, inference?: InferenceSnapshot): NodeCapability {
  return {
    node_id: encodeHash(agent),
    agent_name: name,
    capabilities: {
      compute: { cpu_cores: machine.cpu_cores, cpu_arch: machine.cpu_arch, ram_gb: machine.ram_gb, gpu: machine.gpu },
      storage: { local_ssd_gb: machine.local_ssd_gb, ipfs_pinned_gb: 0, s3_available_gb: 0 },
      inference: inference === undefined
        ? { models_loaded: [], max_batch_size: 0, tokens_per_second: 0 }
        : {
            models_loaded: inference.models_loaded,
            max_batch_size: inference.max_batch_size,
            tokens_per_second: inference.tokens_per_second,
            ...(inference.demo_models !== undefined && inference.demo_models.length > 0 ? { demo_models: inference.demo_models.filter(m => inference.models_loaded.includes(m)) } : {}),
            queue_depth: requestsOn(inference)
          },
      memory: { vector_shards: init.vectorShards ?? 0, redis_memory_gb: 0 }
    },
    network: { bandwidth_mbps: init.bandwidthMbps ?? 1000, latency_region: init.region ?? 'local' },
    availability: (inference?.queue_depth ?? 0) > 0 ? 'busy' : 'online',
    load,
    last_heartbeat: new Date().toISOString()
  }
}

const isPlain = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** `over` merged into `base`, objects key by key, anything else replaced. */
function merge<T> (base: T, over: unknown): T {
  if (!isPlain(base) || !isPlain(over)) return (over === undefined ? base : over) as T
  const out: Record<string, unknown> = { ...base }
  for (const [k, v] of Object.entries(over)) if (v !== undefined) out[k] = merge(out[k], v)
  return out as T
}

/** What the NodeCapability offers, without its live figures (load, queue, free disk, time). */
function offerOf (cap: NodeCapability): unknown {
  const { compute, inference, memory } = cap.capabilities
  return [cap.node_id, cap.agent_name, compute, inference.models_loaded, inference.demo_models ?? [], inference.max_batch_size, memory, cap.network]
}

/** JSON with sorted keys: two decodings of one entry compare equal whatever their key order. */
function stable (v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => typeof x === 'object' && x !== null && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)) : x)
}

/** The same offer: equal apart from live figures, with the speed within the tolerance. */
export function sameOffer (a: NodeCapability, b: NodeCapability): boolean {
  if (stable(offerOf(a)) !== stable(offerOf(b))) return false
  const x = a.capabilities.inference.tokens_per_second
  const y = b.capabilities.inference.tokens_per_second
  return x === y || (x > 0 && y > 0 && Math.abs(x - y) <= TPS_TOLERANCE * Math.max(x, y))
}

export function registryService (init: RegistryServiceInit = {}) {
  return (components: RegistryServiceComponents): RegistryService => {
    const log = components.logger.forComponent('flexnode:registry')
    const interval = init.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_SECONDS * 1000
    const advertiseEvery = init.advertiseIntervalMs ?? DEFAULT_ADVERTISE_INTERVAL_SECONDS * 1000
    let name = sanitizeAgentName(init.agentName ?? hostname())
    let overrides: CapabilityOverrides = {}
    let task: Periodic | undefined
    let beats = 0
    let advertisements = 0
    /** the offer last written, and when (ms) */
    let advertised: { cap: NodeCapability, at: number } | undefined
    let machine: MachineProfile | undefined
    // advertise and beat one at a time: an explicit advertise() waits for a heartbeat in progress
    let queue: Promise<unknown> = Promise.resolve()
    const serial = async <T>(fn: () => Promise<T>): Promise<T> => {
      const next = queue.then(fn, fn)
      queue = next.catch(() => undefined)
      return await next
    }
    const snapshot = (): InferenceSnapshot | undefined => {
      const s = components.inference?.()
      if (s === undefined) return undefined
      const out: InferenceSnapshot = { ...s, models_loaded: [...s.models_loaded].sort(), tokens_per_second: Math.round(s.tokens_per_second * 10) / 10 }
      if (s.demo_models !== undefined) out.demo_models = [...s.demo_models].sort()
      return out
    }
    const registry = new AgentRegistryClient(components.client)
    /** the capability this node would advertise now (the machine is probed at start and with each advertise) */
    const current = async (reprobe: boolean): Promise<NodeCapability> => {
      const [m, load] = await Promise.all([reprobe || machine === undefined ? components.probe.machine() : machine, components.probe.load()])
      machine = m
      const { agent_name: _name, ...over } = overrides
      return merge(buildCapability(components.client.myPubKey, name, m, load, init, snapshot()), over)
    }

    const write = async (cap: NodeCapability, options?: ZomeCallOptions): Promise<Uint8Array> => {
      const hash = await registry.advertise(cap, options)
      advertised = { cap, at: Date.now() }
      advertisements++
      log.info({ agent_name: name, cpu_cores: cap.capabilities.compute.cpu_cores, ram_gb: cap.capabilities.compute.ram_gb, gpu: cap.capabilities.compute.gpu?.model ?? null, models: cap.capabilities.inference.models_loaded }, 'advertised NodeCapability')
      return hash
    }
    const advertise = async ({ overrides: given, ...options }: AdvertiseOptions = {}): Promise<Uint8Array> => {
      if (given === undefined) return await write(await current(true), options)
      // kept only once the DNA accepted them
      const [before, beforeName] = [overrides, name]
      overrides = merge(overrides, given)
      if (given.agent_name !== undefined) name = sanitizeAgentName(given.agent_name)
      try {
        return await write(await current(true), options)
      } catch (err) {
        overrides = before
        name = beforeName
        throw err
      }
    }
    /** At start: write only if the entry on the chain offers something else, or is older than the interval. */
    const advertiseIfChanged = async (options?: ZomeCallOptions): Promise<void> => {
      const cap = await current(true)
      const onChain = await registry.getCapability(components.client.myPubKey, options)
      const writtenAt = onChain === null ? Number.NaN : Date.parse(onChain.last_heartbeat)
      if (onChain !== null && sameOffer(onChain, cap) && Date.now() - writtenAt < advertiseEvery) {
        advertised = { cap: onChain, at: writtenAt }
        log.info({ agent_name: name }, 'NodeCapability unchanged since it was last advertised')
        return
      }
      await write(cap, options)
    }
    const beat = async (options?: ZomeCallOptions): Promise<void> => {
      if (options?.signal?.aborted === true) throw new AbortError('the heartbeat was aborted')
      const s = snapshot()
      const load = await components.probe.load()
      components.presence.update({ load, availability: (s?.queue_depth ?? 0) > 0 ? 'busy' : 'online', ...(s?.queue !== undefined ? { queue: s.queue } : {}) })
      await components.presence.refresh()
      beats++
    }
    const tick = async (): Promise<void> => {
      // presence first: liveness never waits on the chain
      await beat()
      const cap = await current(false)
      if (advertised === undefined || !sameOffer(advertised.cap, cap) || Date.now() - advertised.at >= advertiseEvery) await write(await current(true))
    }
    let stopped = false
    const stop = async (): Promise<void> => {
      stopped = true
      await task?.stop()
      task = undefined
      await queue
    }
    return {
      get beats () { return beats },
      get advertisements () { return advertisements },
      get advertised () { return advertised?.cap },
      advertise: async (options) => await serial(async () => await advertise(options)),
      beat: async (options) => { await serial(async () => { await beat(options) }) },
      start: async (options) => {
        if (stopped) throw new DisposedError('the registry service')
        await serial(async () => {
          await advertiseIfChanged(options)
          await beat(options)
        })
        // a failing heartbeat (a damaged database, a stopped engine) is logged and backed off by
        // the task, never thrown out of its timer
        task ??= periodic({ name: 'heartbeat', intervalMs: interval }, async () => { await serial(tick) }, log)
      },
      stop,
      [Symbol.asyncDispose]: stop
    }
  }
}
