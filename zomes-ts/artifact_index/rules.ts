/**
 * The rules artifact_index's integrity zome checks and its coordinators read by: one copy, so what
 * a coordinator accepts (a CID's canonical text) is what validation enforces. Pure; bundled into
 * the zomes (`multiformats`' CID parser included: platform-neutral, no Node built-ins).
 */
import { CID } from 'multiformats/cid'
import type { ActionHash, AgentPubKey } from '../hdk/index.ts'
import { ARTIFACT_LIMITS } from './types.ts'

/** sha256 of the bytes, as 64 lowercase hex digits. */
export const SHA256_HEX = /^[0-9a-f]{64}$/
/** A media type `type/subtype` with RFC 6838 restricted names (no parameters). */
export const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/
/** C0 and C1 control characters and DEL. */
export const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/

/**
 * The canonical text of a CID (`CID.parse(text).toString()`: base58btc `Qm…` for CIDv0, base32
 * `b…` for CIDv1), or null when `text` is not a CIDv0 or CIDv1 that parses.
 */
export function canonicalCid (text: unknown): string | null {
  if (typeof text !== 'string' || text.length === 0 || text.length > ARTIFACT_LIMITS.maxCid) return null
  try {
    const cid = CID.parse(text)
    return cid.version === 0 || cid.version === 1 ? cid.toString() : null
  } catch {
    return null
  }
}

/** Why `text` is not a canonical CID (prefixed by `path`), or null when it is one. */
export function cidProblem (text: unknown, path: string): string | null {
  const canonical = canonicalCid(text)
  if (canonical === null) return `${path} is not a CID (CIDv0 or CIDv1)`
  return canonical === text ? null : `${path} must be the CID's canonical text (${canonical})`
}

/** An AgentPubKey: 39 bytes with the agent prefix 0x84 0x20 0x24. */
export function isAgentKey (v: unknown): v is AgentPubKey {
  return v instanceof Uint8Array && v.length === 39 && v[0] === 0x84 && v[1] === 0x20 && v[2] === 0x24
}

/** Two agent keys name one agent (their 3-byte prefix and 32-byte core; the location bytes follow from them). */
export function sameAgent (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length < 35 || b.length < 35) return false
  for (let i = 0; i < 35; i++) if (a[i] !== b[i]) return false
  return true
}

/** The byte order of two hashes: ties of time break on it, so every reader lists in one order. */
export function byteOrder (a: Uint8Array, b: Uint8Array): number {
  const common = Math.min(a.length, b.length)
  let i = 0
  while (i < common && a[i] === b[i]) i++
  return i < common ? a[i]! - b[i]! : a.length - b.length
}

/** Orders by a time, then by action hash: earliest first. */
export function earliestFirst<T extends { action_hash: ActionHash }> (time: (v: T) => number): (x: T, y: T) => number {
  return (x, y) => time(x) - time(y) || byteOrder(x.action_hash, y.action_hash)
}
