/** Helpers the agent_registry coordinators share. */
import type { ActionHash, AgentPubKey, Hdk } from '../../hdk/index.ts'
import { ALL_NODES_ANCHOR, DEFAULT_HEARTBEAT_TTL_SECONDS, type NodeCapability } from '../types.ts'

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

export function heartbeatTtlSeconds (hdk: Hdk, override?: number | null): number {
  if (typeof override === 'number' && Number.isFinite(override) && override > 0) return override
  const p = hdk.dna_info().modifiers.properties.heartbeat_ttl_seconds
  return typeof p === 'number' && p > 0 ? p : DEFAULT_HEARTBEAT_TTL_SECONDS
}

/** A node whose last heartbeat is older than the TTL is reported offline. */
export function withLiveness (cap: NodeCapability, nowMicros: number, ttlSeconds: number): NodeCapability {
  const beat = Date.parse(cap.last_heartbeat)
  if (!Number.isFinite(beat) || nowMicros / 1000 - beat > ttlSeconds * 1000) return { ...cap, availability: 'offline' }
  return cap
}

export function nowIso (hdk: Hdk): string {
  return new Date(Math.floor(hdk.sys_time() / 1000)).toISOString()
}

export function isMap (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)
}
