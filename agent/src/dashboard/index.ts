/**
 * The dashboard: a page at `/` on the node's HTTP port that draws the mesh as this node sees it
 * (nodes with their capabilities, load, models, shards and arcs; the links it holds; live
 * allocations; recent MOE votes) and updates without reload from an event stream. This file
 * builds the snapshot from the node's components; `routes.ts` serves it and the page's static
 * files (`static/`, hand-written, no build step, no CDN).
 *
 * One snapshot serves every reader for `snapshotMaxAgeMs` and concurrent readers share one build,
 * so ten open pages cost what one does. A part that cannot be read (a zome call failing) leaves
 * its section empty and is named in `problems`; the snapshot itself never fails.
 *
 * ```ts
 * const moe = moeLog()   // handed to the router as `onMoeResult: moe.record`
 * const dash = dashboard()({ network: 'local', selfNodeId, registry: new AgentRegistryClient(client), mesh, dht, engine, resources, memory, moe, logger })
 * const routes = dashboardRoutes()({ dashboard: dash })   // mounted by the HTTP server
 * await dash.snapshot()   // { generated_at, network, self, nodes, links, allocations, moe, problems }
 * ```
 */
import type { NetworkName } from '../constants.ts'
import type { DhtNetwork } from '../conductor/network/types.ts'
import { errorMessage } from '../errors.ts'
import { encodeHash } from '../holo/hash.ts'
import type { InferenceEngine } from '../inference/types.ts'
import type { ComponentLogger } from '../logger.ts'
import type { ShardHost } from '../memory/shard-host.ts'
import type { MeshNode } from '../mesh/types.ts'
import type { NodeAllocations, ResourcesService } from '../resources/index.ts'
import type { AgentRegistryClient } from '../../../zomes-ts/agent_registry/client.ts'
import { AVAILABILITY, type NodeCapability } from '../../../zomes-ts/agent_registry/types.ts'
import { DEFAULT_SNAPSHOT_MAX_AGE_MS } from './constants.ts'
import type { MoeLog } from './moe-log.ts'
import { buildSnapshot } from './snapshot.ts'
import type { Dashboard, DashboardSnapshot } from './types.ts'

export * from './types.ts'
export { moeLog, type MoeLog, type MoeLogInit } from './moe-log.ts'
export { buildSnapshot, arcCoverage, hardwareClass, type SnapshotParts } from './snapshot.ts'
export { dashboardRoutes, type DashboardRoutesInit } from './routes.ts'

export interface DashboardInit {
  /** how long one snapshot serves every reader, ms. @default 1000 */
  snapshotMaxAgeMs?: number
}

export interface DashboardComponents {
  network: NetworkName
  /** this node's agent key (uhCAk…) */
  selfNodeId: string
  /** `agent_registry`: every node's NodeCapability, draining ones too (routing's cached reader leaves those out) */
  registry: Pick<AgentRegistryClient, 'queryPeers'>
  mesh: Pick<MeshNode, 'peers'>
  dht: Pick<DhtNetwork, 'arcStatus' | 'presence'>
  engine: Pick<InferenceEngine, 'listModels'>
  resources: Pick<ResourcesService, 'allocations'>
  memory: { readonly host: Pick<ShardHost, 'hosted'> }
  moe: Pick<MoeLog, 'recent'>
  logger: ComponentLogger
}

/** A hosted shard's display name: the collection's name (its uid without the creation suffix) and the shard. */
const shardName = (s: { collection: string, shard: number }): string => `${s.collection.replace(/\.[0-9a-z]+$/, '')}/${s.shard}`

export function dashboard (init: DashboardInit = {}): (components: DashboardComponents) => Dashboard {
  const maxAgeMs = init.snapshotMaxAgeMs ?? DEFAULT_SNAPSHOT_MAX_AGE_MS
  return (c) => {
    const log = c.logger.forComponent('flexnode:dashboard')
    let last: { at: number, snapshot: Promise<DashboardSnapshot> } | undefined
    /** each node's freshest presence `created_at` (µs) this dashboard saw, so an offline node shows when it was last alive */
    const lastSeen = new Map<string, number>()

    /** a part's value, or `fallback` with its failure noted */
    const part = async <T>(name: string, problems: string[], read: () => T | Promise<T>, fallback: T): Promise<T> => {
      try {
        return await read()
      } catch (err) {
        problems.push(`${name}: ${errorMessage(err)}`)
        log.debug({ part: name, err: errorMessage(err) }, 'a dashboard part could not be read')
        return fallback
      }
    }

    const build = async (): Promise<DashboardSnapshot> => {
      const problems: string[] = []
      const [capabilities, allocations] = await Promise.all([
        part<NodeCapability[]>('capabilities', problems, async () => await c.registry.queryPeers({ availability: [...AVAILABILITY] }), []),
        part<NodeAllocations | null>('allocations', problems, c.resources.allocations, null)
      ])
      const presence = await part('presence', problems, () => c.dht.presence.live(), [])
      for (const r of presence) {
        const id = encodeHash(r.agent)
        if (!r.is_tombstone && r.created_at > (lastSeen.get(id) ?? 0)) lastSeen.set(id, r.created_at)
      }
      const selfArc = await part('arc', problems, () => c.dht.arcStatus().arc, null)
      const connected = await part('connections', problems, () => c.mesh.peers(), [])
      const models = await part('models', problems, () => c.engine.listModels(), [])
      const shards = await part('shards', problems, () => c.memory.host.hosted().map(shardName).sort(), [])
      return buildSnapshot({ network: c.network, self: c.selfNodeId, now: Date.now(), capabilities, presence, lastSeen, connected, selfArc, models, shards, allocations, moe: c.moe.recent(), problems })
    }

    return {
      snapshot: async () => {
        const now = performance.now()
        if (last === undefined || now - last.at >= maxAgeMs) {
          const entry = { at: now, snapshot: build() }
          last = entry
          entry.snapshot.catch(() => { if (last === entry) last = undefined })
        }
        return await last.snapshot
      }
    }
  }
}
