/**
 * The HDK functions that need nothing of the conductor: time, randomness, anchor hashes, entry
 * decoding, hash strings and signature checks. The zome worker answers them itself, without a
 * round trip to the conductor; the cell's HDK uses the same functions.
 */
import { randomBytes } from 'node:crypto'
import type { AgentPubKey, HolochainRecord, Signature } from '../../../zomes-ts/hdk/index.ts'
import { decodeHash, encodeHash, hashFromContent, isHash, type HoloHash } from '../holo/hash.ts'
import { verifySignature } from '../identity/keystore.ts'
import { decode, encode } from './codec.ts'
import { HdkCallError } from './errors.ts'

/** microseconds since the UNIX epoch */
export function sysTime (): number {
  return Date.now() * 1000
}

export function hdkRandomBytes (n: unknown): Uint8Array {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65536) throw new HdkCallError('random_bytes takes 0..65536')
  return new Uint8Array(randomBytes(n))
}

/** The EntryHash an anchor path stands for (not committed), for use as a link base. */
export function pathEntryHash (path: unknown): Uint8Array {
  if (typeof path !== 'string' || path.length === 0 || path.length > 1024) throw new HdkCallError('a path is a non-empty string of at most 1024 characters')
  return hashFromContent({ path: path.split('.') }, 'Entry')
}

/** The app entry of a record, decoded; undefined when it has none. */
export function entryOf<T> (record: HolochainRecord): T | undefined {
  const e = typeof record === 'object' && record !== null && 'Present' in (record.entry ?? {}) ? (record.entry as { Present: { entry_type: string, entry: unknown } }).Present : undefined
  if (e === undefined) return undefined
  return (e.entry_type === 'App' && e.entry instanceof Uint8Array ? decode(e.entry) : e.entry) as T
}

export function hdkVerifySignature (key: AgentPubKey, signature: Signature, data: unknown, verify: (publicKey32: Uint8Array, data: Uint8Array, signature: Uint8Array) => boolean = verifySignature): boolean {
  if (!isHash(key, 'Agent') || !(signature instanceof Uint8Array)) return false
  return verify(key.subarray(3, 35), encode(data), signature)
}

export function hdkEncodeHash (hash: HoloHash): string {
  return encodeHash(hash)
}

export function hdkDecodeHash (str: string): HoloHash {
  return decodeHash(str)
}
