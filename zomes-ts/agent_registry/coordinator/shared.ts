/** Helpers the agent_registry coordinators share. */
import type { ActionHash, AgentPresence, AgentPubKey, Hdk } from '../../hdk/index.ts'
import { ALL_NODES_ANCHOR, type NodeCapability } from '../types.ts'

/** agents asked per `agent_presence` call (the host takes at most 4096) */
const PRESENCE_BATCH = 4096

/** The original Create of an agent's NodeCapability, found through its AgentToCapability link. */
export async function capabilityOriginal (hdk: Hdk, agent: AgentPubKey): Promise<ActionHash | null> {
  const links = await hdk.get_links({ base: agent, link_type: 'AgentToCapability' })
  const mine = links.filter(l => bytes35(l.author, agent))
  mine.sort((a, b) => a.timestamp - b.timestamp)
  return mine[0]?.target ?? null
}

export function bytes35 (a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 35; i++) if (a[i] !== b[i]) return false
  return true
}

export async function latestCapability (hdk: Hdk, original: ActionHash): Promise<NodeCapability | null> {
  const record = await hdk.get_latest(original)
  if (record === null) return null
  return hdk.entry_of<NodeCapability>(record) ?? null
}

export function allNodesAnchor (hdk: Hdk): Uint8Array {
  return hdk.path_entry_hash(ALL_NODES_ANCHOR)
}

/**
 * A node's capability as the mesh sees it now: its newest NodeCapability joined with its freshest
 * presence. No live presence (none, expired, or older than `ttlSeconds` when the caller asks for a
 * tighter bound) is `offline`; otherwise availability, load and queue come from the presence and
 * `last_heartbeat` is the presence's time.
 */
export function withPresence (cap: NodeCapability, presence: AgentPresence | null, nowMicros: number, ttlSeconds?: number | null): NodeCapability {
  if (presence === null || (typeof ttlSeconds === 'number' && nowMicros - presence.created_at > ttlSeconds * 1e6)) return { ...cap, availability: 'offline' }
  const out: NodeCapability = { ...cap, availability: presence.availability ?? 'online', last_heartbeat: new Date(Math.floor(presence.created_at / 1000)).toISOString() }
  if (presence.load !== undefined) out.load = presence.load
  if (presence.queue !== undefined) {
    const depth = Object.values(presence.queue).reduce((n, d) => n + d, 0)
    out.capabilities = { ...cap.capabilities, inference: { ...cap.capabilities.inference, queue_depth: depth } }
  }
  return out
}

/** The presence of each agent (in order), null where none is live. */
export async function presenceOf (hdk: Hdk, agents: AgentPubKey[]): Promise<Array<AgentPresence | null>> {
  const out: Array<AgentPresence | null> = []
  for (let i = 0; i < agents.length; i += PRESENCE_BATCH) out.push(...await hdk.agent_presence(agents.slice(i, i + PRESENCE_BATCH)))
  return out
}

export function nowIso (hdk: Hdk): string {
  return new Date(Math.floor(hdk.sys_time() / 1000)).toISOString()
}

export function isMap (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)
}
