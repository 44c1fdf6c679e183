/**
 * The dashboard's snapshot from what one node knows, as a pure function of its parts (so it is
 * tested without a mesh): every node of `agent_registry` and of presence (liveness: a live
 * presence record, else `offline`), this node's own figures where it has fresher ones (its
 * engine's models and queues, its hosted shards, its current arc), its mesh connections as
 * links, its live leases, and the recent MOE results.
 *
 * ```ts
 * const snap = buildSnapshot({ network: 'local', self: 'uhCAk…', now: Date.now(), capabilities, presence: presence.live(),
 *   connected: mesh.peers(), selfArc: dht.arcStatus().arc, models: engine.listModels(), shards: ['notes/0'],
 *   allocations: await resources.allocations(), moe: moe.recent(), problems: [] })
 * snap.nodes.find(n => n.self)?.status   // 'online'
 * ```
 */
import type { NetworkName } from '../constants.ts'
import { encodeHash } from '../holo/hash.ts'
import { agentPubKeyFromPeerId, peerIdFromAgentPubKey } from '../identity/peer-id.ts'
import { decodeHash } from '../holo/hash.ts'
import type { PresenceInfo } from '../conductor/network/presence.ts'
import type { ModelInfo } from '../inference/types.ts'
import type { NodeAllocations } from '../resources/index.ts'
import type { NodeCapability } from '../../../zomes-ts/agent_registry/types.ts'
import { MAX_ALLOCATIONS, MAX_SHARDS } from './constants.ts'
import type { DashboardAllocation, DashboardLink, DashboardMoeResult, DashboardNode, DashboardSnapshot, DashboardStatus, HardwareClass } from './types.ts'

export interface SnapshotParts {
  network: NetworkName
  /** this node's agent key (uhCAk…) */
  self: string
  /** ms since the epoch */
  now: number
  /** the mesh's NodeCapabilities (empty when they could not be read) */
  capabilities: NodeCapability[]
  /** every live presence record, this node's included */
  presence: PresenceInfo[]
  /** the freshest presence `created_at` (µs) seen of each node, live or not: an offline node's last sign of life */
  lastSeen?: ReadonlyMap<string, number>
  /** PeerIds this node is connected to */
  connected: string[]
  /** this node's storage arc now */
  selfArc: readonly [number, number] | null
  /** this node's models (its engine's list) */
  models: ModelInfo[]
  /** the shard replicas this node hosts, `collection/shard` */
  shards: string[]
  /** this node's leases, null when they could not be read */
  allocations: NodeAllocations | null
  moe: DashboardMoeResult[]
  problems: string[]
}

const RING = 2 ** 32

/** The share of the u32 ring an inclusive, possibly wrapping arc covers. */
export function arcCoverage (arc: readonly [number, number] | null): number {
  if (arc === null) return 0
  const [start, end] = arc
  const len = end >= start ? end - start + 1 : RING - start + end + 1
  return Math.min(1, len / RING)
}

/** A rough class of machine from what a node advertises. */
export function hardwareClass (compute: NodeCapability['capabilities']['compute']): HardwareClass {
  if (compute.gpu !== null) return 'gpu-server'
  if (/^(arm|aarch)/i.test(compute.cpu_arch)) return 'arm-board'
  if (compute.cpu_cores >= 16 && compute.ram_gb >= 32) return 'server'
  return 'desktop'
}

/** What a node offers, as short names. */
export function offers (cap: NodeCapability): string[] {
  const c = cap.capabilities
  return [
    'compute',
    ...(c.compute.gpu !== null ? ['gpu'] : []),
    ...(c.inference.models_loaded.length > 0 ? ['inference'] : []),
    ...(c.memory.vector_shards > 0 ? ['memory'] : []),
    ...(c.storage.local_ssd_gb > 0 ? ['storage'] : [])
  ]
}

/** The agent key of a PeerId, or undefined for one that is not an ed25519 agent's. */
function nodeIdOfPeer (peerId: string): string | undefined {
  try {
    return encodeHash(agentPubKeyFromPeerId(peerId))
  } catch {
    return undefined
  }
}

function peerIdOfNode (nodeId: string): string {
  try {
    return peerIdFromAgentPubKey(decodeHash(nodeId, 'Agent'))
  } catch {
    return ''
  }
}

const round1 = (x: number): number => Math.round(x * 10) / 10

export function buildSnapshot (p: SnapshotParts): DashboardSnapshot {
  const caps = new Map(p.capabilities.map(c => [c.node_id, c]))
  const live = new Map<string, PresenceInfo>()
  for (const r of p.presence) if (!r.is_tombstone && r.expires_at > p.now * 1000) live.set(encodeHash(r.agent), r)
  const linked = [...new Set(p.connected.flatMap(id => nodeIdOfPeer(id) ?? []))].filter(id => id !== p.self)
  const ids = new Set<string>([p.self, ...caps.keys(), ...live.keys(), ...linked])

  const node = (id: string): DashboardNode => {
    const cap = caps.get(id)
    const pres = live.get(id)
    const self = id === p.self
    // a live presence record says how the node is; a draining node may say so in its NodeCapability only
    const said = pres?.availability ?? (cap?.availability === 'draining' ? 'draining' : 'online')
    const status: DashboardStatus = self || pres !== undefined ? said : 'offline'
    const inf = cap?.capabilities.inference
    const models = self
      ? p.models.filter(m => m.loaded).map(m => ({ id: m.id, demo: m.demo, queue: m.queue_depth + m.in_flight }))
      : (inf?.models_loaded ?? []).map(m => ({ id: m, demo: inf?.demo_models?.includes(m) === true, queue: status === 'offline' ? 0 : pres?.queue?.[m] ?? 0 }))
    const tps = self ? p.models.reduce((t, m) => Math.max(t, m.tokens_per_second ?? 0), inf?.tokens_per_second ?? 0) : inf?.tokens_per_second ?? 0
    const arc = self ? p.selfArc : pres?.arc ?? null
    const compute = cap?.capabilities.compute
    const load = pres?.load ?? cap?.load ?? null
    const seen = pres?.created_at ?? p.lastSeen?.get(id)
    return {
      node_id: id,
      name: cap?.agent_name ?? `${id.slice(5, 13)}…`,
      self,
      status,
      peer_id: peerIdOfNode(id),
      region: cap?.network.latency_region ?? null,
      hardware: compute === undefined
        ? null
        : {
            class: hardwareClass(compute),
            cpu_cores: compute.cpu_cores,
            cpu_arch: compute.cpu_arch,
            ram_gb: round1(compute.ram_gb),
            gpu: compute.gpu === null ? null : `${compute.gpu.vendor} ${compute.gpu.model} (${round1(compute.gpu.vram_gb)} GB)`
          },
      capabilities: cap === undefined ? [] : offers(cap),
      load: load === null ? null : { cpu_percent: round1(load.cpu_percent), gpu_percent: round1(load.gpu_percent), memory_percent: round1(load.memory_percent) },
      models,
      tokens_per_second: round1(tps),
      shard_capacity: cap?.capabilities.memory.vector_shards ?? 0,
      shards: self ? p.shards.slice(0, MAX_SHARDS) : null,
      arc: (self || pres !== undefined) && arc !== null ? [arc[0], arc[1]] : null,
      arc_coverage: self || pres !== undefined ? round1(arcCoverage(arc) * 1000) / 1000 : null,
      last_seen: seen === undefined ? null : new Date(Math.floor(seen / 1000)).toISOString()
    }
  }
  // this node first, then the advertised ones by name, then those known only by their key
  const rank = (n: DashboardNode): number => n.self ? 0 : caps.has(n.node_id) ? 1 : 2
  const nodes = [...ids].map(node).sort((a, b) => rank(a) - rank(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : a.node_id < b.node_id ? -1 : 1))
  const links: DashboardLink[] = linked.sort().map(to => ({ from: p.self, to, kind: 'connected' }))
  return {
    generated_at: new Date(p.now).toISOString(),
    network: p.network,
    self: p.self,
    nodes,
    links,
    allocations: p.allocations === null ? [] : liveAllocations(p.self, p.allocations, p.now),
    moe: p.moe,
    problems: p.problems
  }
}

/** The leases held (live) and granted, once each, soonest to expire first. */
function liveAllocations (self: string, a: NodeAllocations, now: number): DashboardAllocation[] {
  const out = new Map<string, DashboardAllocation>()
  for (const l of a.provided) out.set(l.allocation_id, { allocation_id: l.allocation_id, resource_type: l.resource_type, provider: l.node_id, holder: l.holder, resources: l.resources, expires_at: l.expires_at })
  for (const l of a.held) {
    if (!l.live || out.has(l.allocation_id)) continue
    out.set(l.allocation_id, { allocation_id: l.allocation_id, resource_type: l.resource_type, provider: l.node_id, holder: self, resources: l.resources, expires_at: l.expires_at })
  }
  return [...out.values()]
    .filter(l => Date.parse(l.expires_at) > now)
    .sort((x, y) => Date.parse(x.expires_at) - Date.parse(y.expires_at))
    .slice(0, MAX_ALLOCATIONS)
}
