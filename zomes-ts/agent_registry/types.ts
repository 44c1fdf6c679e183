/**
 * The `NodeCapability` entry (design §10.3) and the limits its validation enforces.
 */
import type { Schema } from '../hdk/schema.ts'

export type Availability = 'online' | 'busy' | 'draining' | 'offline'
export const AVAILABILITY: readonly Availability[] = ['online', 'busy', 'draining', 'offline']

export interface GpuCapability { vendor: string, model: string, vram_gb: number }

export interface NodeLoad { cpu_percent: number, gpu_percent: number, memory_percent: number }

export interface NodeCapability {
  node_id: string
  agent_name: string
  capabilities: {
    compute: { cpu_cores: number, cpu_arch: string, ram_gb: number, gpu: GpuCapability | null }
    storage: { local_ssd_gb: number, ipfs_pinned_gb: number, s3_available_gb: number }
    inference: {
      models_loaded: string[]
      max_batch_size: number
      tokens_per_second: number
      /** of models_loaded, the demo ones (random weights, generated for a first run): routing and MOE pass them over */
      demo_models?: string[]
      /** requests this node is generating or has waiting, over all its models (live, with each heartbeat) */
      queue_depth?: number
    }
    memory: { vector_shards: number, redis_memory_gb: number }
  }
  network: { bandwidth_mbps: number, latency_region: string }
  availability: Availability
  load: NodeLoad
  /** RFC 3339 time of the last heartbeat */
  last_heartbeat: string
}

/** What `discovery.query_peers` can ask for; every field is a minimum or an exact match. */
export interface PeerRequirements {
  cpu_cores?: number
  memory_gb?: number
  gpu?: boolean
  gpu_vram_gb?: number
  storage_gb?: number
  model_name?: string
  cpu_arch?: string
  latency_region?: string
}

export interface QueryPeersInput {
  requirements?: PeerRequirements | null
  availability?: Availability | Availability[] | null
  /**
   * a tighter liveness bound for this query: a node whose freshest presence was signed longer ago
   * is `offline` (liveness otherwise follows each presence's own expiry)
   */
  ttl_seconds?: number | null
}

const name = (max: number): Schema => ({ type: 'string', minLength: 1, maxLength: max })
const gb = (max: number): Schema => ({ type: 'number', minimum: 0, maximum: max })
const percent: Schema = { type: 'number', minimum: 0, maximum: 100 }

/** Figures beyond these are absurd for one node and rejected. */
export const LIMITS = {
  cpu_cores: 4096,
  ram_gb: 65536,
  vram_gb: 4096,
  disk_gb: 10_000_000,
  s3_gb: 1_000_000_000,
  batch: 65536,
  tokens_per_second: 10_000_000,
  shards: 65536,
  bandwidth_mbps: 10_000_000,
  models: 256,
  queue_depth: 1_000_000
} as const

export const NODE_CAPABILITY_SCHEMA: Schema = {
  type: 'object',
  required: ['node_id', 'agent_name', 'capabilities', 'network', 'availability', 'load', 'last_heartbeat'],
  properties: {
    node_id: { type: 'string', minLength: 53, maxLength: 53, pattern: /^uhCAk[A-Za-z0-9_-]{48}$/ },
    agent_name: { type: 'string', minLength: 1, maxLength: 64, pattern: /^[\p{L}\p{N}][\p{L}\p{N} ._-]*$/u },
    capabilities: {
      type: 'object',
      required: ['compute', 'storage', 'inference', 'memory'],
      properties: {
        compute: {
          type: 'object',
          required: ['cpu_cores', 'cpu_arch', 'ram_gb', 'gpu'],
          properties: {
            cpu_cores: { type: 'number', integer: true, minimum: 1, maximum: LIMITS.cpu_cores },
            cpu_arch: { type: 'string', minLength: 1, maxLength: 32, pattern: /^[a-z0-9_]+$/ },
            ram_gb: gb(LIMITS.ram_gb),
            gpu: {
              type: 'object',
              nullable: true,
              required: ['vendor', 'model', 'vram_gb'],
              properties: { vendor: name(64), model: name(128), vram_gb: gb(LIMITS.vram_gb) }
            }
          }
        },
        storage: {
          type: 'object',
          required: ['local_ssd_gb', 'ipfs_pinned_gb', 's3_available_gb'],
          properties: { local_ssd_gb: gb(LIMITS.disk_gb), ipfs_pinned_gb: gb(LIMITS.disk_gb), s3_available_gb: gb(LIMITS.s3_gb) }
        },
        inference: {
          type: 'object',
          required: ['models_loaded', 'max_batch_size', 'tokens_per_second'],
          properties: {
            models_loaded: { type: 'array', items: name(256), maxItems: LIMITS.models },
            max_batch_size: { type: 'number', integer: true, minimum: 0, maximum: LIMITS.batch },
            tokens_per_second: gb(LIMITS.tokens_per_second),
            demo_models: { type: 'array', items: name(256), maxItems: LIMITS.models, nullable: true },
            queue_depth: { type: 'number', integer: true, minimum: 0, maximum: LIMITS.queue_depth, nullable: true }
          }
        },
        memory: {
          type: 'object',
          required: ['vector_shards', 'redis_memory_gb'],
          properties: {
            vector_shards: { type: 'number', integer: true, minimum: 0, maximum: LIMITS.shards },
            redis_memory_gb: gb(LIMITS.ram_gb)
          }
        }
      }
    },
    network: {
      type: 'object',
      required: ['bandwidth_mbps', 'latency_region'],
      properties: {
        bandwidth_mbps: gb(LIMITS.bandwidth_mbps),
        latency_region: { type: 'string', maxLength: 64, pattern: /^[a-z0-9-]*$/ }
      }
    },
    availability: { type: 'string', enum: AVAILABILITY },
    load: {
      type: 'object',
      required: ['cpu_percent', 'gpu_percent', 'memory_percent'],
      properties: { cpu_percent: percent, gpu_percent: percent, memory_percent: percent }
    },
    last_heartbeat: { type: 'string', maxLength: 40, pattern: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/ }
  }
}

export const LOAD_SCHEMA: Schema = NODE_CAPABILITY_SCHEMA.type === 'object' ? NODE_CAPABILITY_SCHEMA.properties.load! : { type: 'boolean' }

/** A heartbeat may be at most this far from the action's own timestamp. */
export const MAX_HEARTBEAT_SKEW_MS = 5 * 60 * 1000
/** The anchor all NodeCapability entries are linked from. */
export const ALL_NODES_ANCHOR = 'agent_registry.all_nodes'
