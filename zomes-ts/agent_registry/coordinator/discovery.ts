/**
 * discovery: find peers by their advertised capabilities.
 */
import type { Hdk } from '../../hdk/index.ts'
import { AVAILABILITY, type Availability, type NodeCapability, type PeerRequirements, type QueryPeersInput } from '../types.ts'
import { allNodesAnchor, isMap, latestCapability, presenceOf, withPresence } from './shared.ts'
import { ZomeInputError } from '../../hdk/errors.ts'

const NUMBER_FIELDS = ['cpu_cores', 'memory_gb', 'gpu_vram_gb', 'storage_gb'] as const
const STRING_FIELDS = ['model_name', 'cpu_arch', 'latency_region'] as const

function checkInput (input: unknown): QueryPeersInput {
  if (input === null || input === undefined) return {}
  if (!isMap(input)) throw new ZomeInputError('query_peers takes {requirements?, availability?, ttl_seconds?}')
  const req = input.requirements
  if (req !== undefined && req !== null) {
    if (!isMap(req)) throw new ZomeInputError('requirements must be a map')
    for (const key of Object.keys(req)) {
      if (!(NUMBER_FIELDS as readonly string[]).includes(key) && !(STRING_FIELDS as readonly string[]).includes(key) && key !== 'gpu') throw new ZomeInputError(`requirements.${key} is not a known requirement`)
    }
    for (const f of NUMBER_FIELDS) {
      const v = req[f]
      if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < 0)) throw new ZomeInputError(`requirements.${f} must be a non-negative number`)
    }
    for (const f of STRING_FIELDS) {
      const v = req[f]
      if (v !== undefined && (typeof v !== 'string' || v.length > 256)) throw new ZomeInputError(`requirements.${f} must be a string`)
    }
    if (req.gpu !== undefined && typeof req.gpu !== 'boolean') throw new ZomeInputError('requirements.gpu must be a boolean')
  }
  const av = input.availability
  if (av !== undefined && av !== null) {
    const list = Array.isArray(av) ? av : [av]
    for (const a of list) if (!AVAILABILITY.includes(a as Availability)) throw new ZomeInputError(`availability must be one of ${AVAILABILITY.join(', ')}`)
  }
  const ttl = input.ttl_seconds
  if (ttl !== undefined && ttl !== null && (typeof ttl !== 'number' || !(ttl > 0))) throw new ZomeInputError('ttl_seconds must be a positive number')
  return input as QueryPeersInput
}

export function meets (cap: NodeCapability, r: PeerRequirements): boolean {
  const c = cap.capabilities
  if (r.cpu_cores !== undefined && c.compute.cpu_cores < r.cpu_cores) return false
  if (r.memory_gb !== undefined && c.compute.ram_gb < r.memory_gb) return false
  if (r.gpu === true && c.compute.gpu === null) return false
  if (r.gpu === false && c.compute.gpu !== null) return false
  if (r.gpu_vram_gb !== undefined && (c.compute.gpu?.vram_gb ?? 0) < r.gpu_vram_gb) return false
  if (r.storage_gb !== undefined && c.storage.local_ssd_gb < r.storage_gb) return false
  if (r.model_name !== undefined && !c.inference.models_loaded.includes(r.model_name)) return false
  if (r.cpu_arch !== undefined && c.compute.cpu_arch !== r.cpu_arch) return false
  if (r.latency_region !== undefined && cap.network.latency_region !== r.latency_region) return false
  return true
}

export async function query_peers (hdk: Hdk, rawInput: QueryPeersInput | null): Promise<NodeCapability[]> {
  const input = checkInput(rawInput)
  const now = hdk.sys_time()
  const wanted = input.availability == null ? null : Array.isArray(input.availability) ? input.availability : [input.availability]
  const links = await hdk.get_links({ base: allNodesAnchor(hdk), link_type: 'AllNodes' })
  // every node's latest version at once: the look-ups overlap instead of waiting on each other
  const caps = await Promise.all(links.map(async link => await latestCapability(hdk, link.target)))
  // the newest capability per node (an agent may have linked more than one original)
  const newest = new Map<string, NodeCapability>()
  for (const cap of caps) {
    if (cap === null) continue
    const seen = newest.get(cap.node_id)
    if (seen === undefined || Date.parse(seen.last_heartbeat) < Date.parse(cap.last_heartbeat)) newest.set(cap.node_id, cap)
  }
  // joined with each node's freshest presence: liveness, availability, load and queue
  const nodes = [...newest.values()]
  const presence = await presenceOf(hdk, nodes.map(c => hdk.decode_hash(c.node_id)))
  const byNode = new Map(nodes.map((c, i) => [c.node_id, withPresence(c, presence[i] ?? null, now, input.ttl_seconds)]))
  return [...byNode.values()]
    .filter(c => wanted === null || wanted.includes(c.availability))
    .filter(c => input.requirements == null || meets(c, input.requirements))
    .sort((a, b) => a.agent_name.localeCompare(b.agent_name) || a.node_id.localeCompare(b.node_id))
}
