/**
 * The registry service: measures this machine, advertises its `NodeCapability` to
 * `agent_registry` at start and heartbeats its live load every interval.
 *
 * ```ts
 * const registry = registryService({ agentName: 'gpu-box-01', heartbeatIntervalMs: 10_000 })({ client, logger, probe })
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
import { DisposedError } from '../errors.ts'
import type { Service } from '../service.ts'
import type { ZomeCallOptions } from '../../../zomes-ts/client.ts'

export interface RegistryServiceInit {
  /** @default the hostname, sanitized */
  agentName?: string
  /** @default 10000 */
  heartbeatIntervalMs?: number
  /** @default 'local' */
  region?: string
  /** @default 1000 */
  bandwidthMbps?: number
}

/**
 * What the node serves right now, advertised live: the model set (and its demo models) with a
 * full advertise when it changes, the queue with every heartbeat. Waiting requests make the node
 * `busy`.
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
}

/** The advertised queue depth: requests the node is generating or has waiting. */
function requestsOn (s: InferenceSnapshot | undefined): number {
  return Math.max(0, Math.trunc((s?.queue_depth ?? 0) + (s?.in_flight ?? 0)))
}

export interface RegistryServiceComponents {
  client: Pick<AppClient, 'callZome' | 'myPubKey'>
  logger: ComponentLogger
  probe: { machine: () => Promise<MachineProfile>, load: () => Promise<LoadSample> }
  /** live inference figures; a change is advertised with the next heartbeat */
  inference?: () => InferenceSnapshot
}

export interface RegistryService extends Service {
  /** Advertise again now (after a capability changed). */
  advertise: (options?: ZomeCallOptions) => Promise<Uint8Array>
  /** One heartbeat now. */
  beat: (options?: ZomeCallOptions) => Promise<Uint8Array>
  readonly beats: number
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
      memory: { vector_shards: 0, redis_memory_gb: 0 }
    },
    network: { bandwidth_mbps: init.bandwidthMbps ?? 1000, latency_region: init.region ?? 'local' },
    availability: (inference?.queue_depth ?? 0) > 0 ? 'busy' : 'online',
    load,
    last_heartbeat: new Date().toISOString()
  }
}

export function registryService (init: RegistryServiceInit = {}) {
  return (components: RegistryServiceComponents): RegistryService => {
    const log = components.logger.forComponent('flexnode:registry')
    const interval = init.heartbeatIntervalMs ?? 10_000
    const name = sanitizeAgentName(init.agentName ?? hostname())
    let task: Periodic | undefined
    let beats = 0
    let advertised = ''
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
    /** what a full advertise is for: the model set and speed (the queue rides on every heartbeat) */
    const advertisedKey = (s: InferenceSnapshot | undefined): string => JSON.stringify(s === undefined ? null : [s.models_loaded, s.demo_models ?? [], s.max_batch_size, s.tokens_per_second])
    const registry = new AgentRegistryClient(components.client)

    const advertise = async (options?: ZomeCallOptions): Promise<Uint8Array> => {
      const [machine, load] = await Promise.all([components.probe.machine(), components.probe.load()])
      const inference = snapshot()
      const cap = buildCapability(components.client.myPubKey, name, machine, load, init, inference)
      const hash = await registry.advertise(cap, options)
      advertised = advertisedKey(inference)
      log.info({ agent_name: name, cpu_cores: machine.cpu_cores, ram_gb: machine.ram_gb, gpu: machine.gpu?.model ?? null }, 'advertised NodeCapability')
      return hash
    }
    const beat = async (options?: ZomeCallOptions): Promise<Uint8Array> => {
      const s = snapshot()
      const busy = (s?.queue_depth ?? 0) > 0
      const hash = await registry.beat({ ...(await components.probe.load()), availability: busy ? 'busy' : 'online', ...(s !== undefined ? { queue_depth: requestsOn(s) } : {}) }, options)
      beats++
      return hash
    }
    const tick = async (): Promise<void> => {
      // a changed model set or speed goes out as a full advertise; otherwise a light heartbeat
      const changed = advertisedKey(snapshot()) !== advertised
      await (changed ? advertise() : beat())
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
      advertise: async (options) => await serial(async () => await advertise(options)),
      beat,
      start: async (options) => {
        if (stopped) throw new DisposedError('the registry service')
        await serial(async () => await advertise(options))
        // a failing heartbeat (a damaged database, a stopped engine) is logged and backed off by
        // the task, never thrown out of its timer
        task ??= periodic({ name: 'heartbeat', intervalMs: interval }, async () => { await serial(tick) }, log)
      },
      stop,
      [Symbol.asyncDispose]: stop
    }
  }
}
