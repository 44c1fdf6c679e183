/**
 * The dashboard's snapshot: what the page at `/` draws, as `GET /v1/dashboard/snapshot` and each
 * `GET /v1/dashboard/events` event carry it. It is this node's view of the mesh: every node it
 * knows (from `agent_registry` and presence), the links it holds itself (its mesh connections),
 * the leases it holds or granted, and the MOE queries it answered lately.
 */
import type { NetworkName } from '../constants.ts'
import type { LeaseResources, LeaseResourceType } from '../resources/types.ts'

/** A node's liveness as the page shows it (`offline`: no live presence record). */
export type DashboardStatus = 'online' | 'busy' | 'draining' | 'offline'

/** A rough class of machine (CONTRACTS "hardware classes"), from what the node advertises. */
export type HardwareClass = 'gpu-server' | 'arm-board' | 'server' | 'desktop'

export interface DashboardNode {
  /** the agent key (uhCAk…) */
  node_id: string
  /** its advertised name; for a connected node that advertised nothing yet, a short key */
  name: string
  /** this node (the one serving the page) */
  self: boolean
  status: DashboardStatus
  /** the libp2p PeerId */
  peer_id: string
  /** the advertised region (`network.latency_region`), null when unknown */
  region: string | null
  hardware: {
    class: HardwareClass
    cpu_cores: number
    cpu_arch: string
    ram_gb: number
    /** `vendor model (N GB)`, null without a GPU */
    gpu: string | null
  } | null
  /** what it offers: `compute`, `gpu`, `inference`, `memory`, `storage` */
  capabilities: string[]
  /** live load from its presence (else its last advertised), null when unknown */
  load: { cpu_percent: number, gpu_percent: number, memory_percent: number } | null
  /** loaded models, with requests generating or waiting on each (from presence) */
  models: Array<{ id: string, demo: boolean, queue: number }>
  tokens_per_second: number
  /** vector shard replicas it offers to host (its ring weight) */
  shard_capacity: number
  /** the shard replicas it hosts, `collection/shard`: known for this node only (null for others) */
  shards: string[] | null
  /** its declared storage arc on the u32 ring (inclusive, may wrap), null = empty or unknown */
  arc: [number, number] | null
  /** share of the ring its arc covers, 0..1 (null when unknown) */
  arc_coverage: number | null
  /** RFC 3339 time of its freshest presence record (live or, for an offline node, the last this node saw), null when none was seen */
  last_seen: string | null
}

export interface DashboardLink {
  /** node_id of one end (this node) */
  from: string
  to: string
  /** `connected`: a live mesh connection */
  kind: 'connected'
}

export interface DashboardAllocation {
  allocation_id: string
  resource_type: LeaseResourceType
  /** node_id of the provider */
  provider: string
  /** node_id of the holder */
  holder: string
  resources: LeaseResources
  /** RFC 3339 */
  expires_at: string
}

export interface DashboardMoeVote {
  model: string
  node: string
  weight: number
  latency_ms: number
  /** in the winning cluster */
  agreed: boolean
  error?: string
}

/** One finished MOE query, as the router reported it. */
export interface DashboardMoeResult {
  /** RFC 3339 */
  at: string
  trace_id: string
  task_type: string
  policy: string
  consensus: boolean
  consensus_score: number
  votes: DashboardMoeVote[]
}

export interface DashboardSnapshot {
  /** RFC 3339 time it was built */
  generated_at: string
  network: NetworkName
  /** node_id of the node serving it */
  self: string
  nodes: DashboardNode[]
  links: DashboardLink[]
  allocations: DashboardAllocation[]
  moe: DashboardMoeResult[]
  /** parts that could not be read this time (`allocations: …`), each with its reason */
  problems: string[]
}

/** The dashboard's source of snapshots (`dashboard(init)(components)`). */
export interface Dashboard {
  /** the mesh as this node sees it now (at most `snapshotMaxAgeMs` old) */
  snapshot: () => Promise<DashboardSnapshot>
}
