/**
 * HoloHash: 39 bytes = 3-byte type prefix + 32-byte core + 4-byte DHT location.
 * The location is blake2b-128 of the core with its four u32 words XORed. The string
 * form is `u` + base64url without padding; parsing a string verifies the location.
 *
 * ```ts
 * const h = hashFromContent({ hello: 'world' }, 'Entry')
 * encodeHash(h) // 'uhCEk…'
 * decodeHash(encodeHash(h), 'Entry') // equal bytes
 * ```
 */
import { blake2b } from '@noble/hashes/blake2.js'
import { encode } from '@msgpack/msgpack'
import { FlexnodeError } from '../errors.ts'

export type HoloHashType = 'Agent' | 'Entry' | 'DhtOp' | 'Action' | 'Warrant' | 'Dna' | 'Wasm' | 'External'
export type HoloHash = Uint8Array

export const HASH_PREFIX: Readonly<Record<HoloHashType, readonly [number, number, number]>> = {
  Agent: [0x84, 0x20, 0x24],
  Entry: [0x84, 0x21, 0x24],
  DhtOp: [0x84, 0x24, 0x24],
  Action: [0x84, 0x29, 0x24],
  Wasm: [0x84, 0x2a, 0x24],
  Warrant: [0x84, 0x2c, 0x24],
  Dna: [0x84, 0x2d, 0x24],
  External: [0x84, 0x2f, 0x24]
}

export const HOLO_HASH_LENGTH = 39
export const CORE_LENGTH = 32

export class InvalidHashError extends FlexnodeError {
  static override readonly name = 'InvalidHashError'
  readonly expected?: HoloHashType

  constructor (message: string, expected?: HoloHashType) {
    super(message)
    this.expected = expected
  }
}

/** DHT location of a 32-byte core, as 4 bytes. */
export function dhtLocationBytes (core: Uint8Array): Uint8Array {
  const h = blake2b(core, { dkLen: 16 })
  const out = h.slice(0, 4)
  for (let i = 4; i < 16; i += 4) {
    out[0]! ^= h[i]!
    out[1]! ^= h[i + 1]!
    out[2]! ^= h[i + 2]!
    out[3]! ^= h[i + 3]!
  }
  return out
}

/** DHT location of a hash as an unsigned 32-bit integer (little-endian, as Holochain reads it). */
export function dhtLocation (hash: HoloHash): number {
  const loc = hash.subarray(35, 39)
  return (loc[0]! | (loc[1]! << 8) | (loc[2]! << 16) | (loc[3]! << 24)) >>> 0
}

export function hashFrom32 (core: Uint8Array, type: HoloHashType): HoloHash {
  if (core.length !== CORE_LENGTH) throw new InvalidHashError(`a hash core must be 32 bytes, got ${core.length}`, type)
  const out = new Uint8Array(HOLO_HASH_LENGTH)
  out.set(HASH_PREFIX[type], 0)
  out.set(core, 3)
  out.set(dhtLocationBytes(core), 35)
  return out
}

/** blake2b-256 of raw bytes. */
export function blake2b256 (bytes: Uint8Array): Uint8Array {
  return blake2b(bytes, { dkLen: 32 })
}

/** The hash of a value: blake2b-256 of its msgpack (named) encoding. */
export function hashFromContent (content: unknown, type: HoloHashType): HoloHash {
  return hashFrom32(blake2b256(encode(content)), type)
}

export function hashFromBytes (bytes: Uint8Array, type: HoloHashType): HoloHash {
  return hashFrom32(blake2b256(bytes), type)
}

/** Every prefix is [0x84, x, 0x24]: the type by its middle byte x. */
const TYPE_BY_MIDDLE_BYTE: ReadonlyMap<number, HoloHashType> = new Map((Object.entries(HASH_PREFIX) as Array<[HoloHashType, readonly number[]]>).map(([type, p]) => [p[1]!, type]))

export function hashType (hash: Uint8Array): HoloHashType | undefined {
  if (hash.length !== HOLO_HASH_LENGTH || hash[0] !== 0x84 || hash[2] !== 0x24) return undefined
  return TYPE_BY_MIDDLE_BYTE.get(hash[1]!)
}

export function core32 (hash: HoloHash): Uint8Array {
  return hash.subarray(3, 35)
}

/** Re-type a hash (an AgentPubKey used as an EntryHash, as Holochain does for Agent entries). */
export function retype (hash: HoloHash, type: HoloHashType): HoloHash {
  const out = Uint8Array.from(hash)
  out.set(HASH_PREFIX[type], 0)
  return out
}

/**
 * Check a binary hash from the wire: length and prefix only, as the conductor does for binary
 * input (clients send signing keys with zeroed location bytes).
 */
export function assertHash (value: unknown, type: HoloHashType | readonly HoloHashType[], field = 'hash'): HoloHash {
  const types = typeof type === 'string' ? [type] : type
  if (!(value instanceof Uint8Array)) throw new InvalidHashError(`${field} must be a ${types.join(' or ')} hash (39 bytes), got ${describe(value)}`, types[0])
  const actual = hashType(value)
  if (value.length !== HOLO_HASH_LENGTH || actual === undefined || !types.includes(actual)) {
    throw new InvalidHashError(`${field} must be a ${types.join(' or ')} hash (39 bytes), got ${value.length} bytes${actual !== undefined ? ` of type ${actual}` : ''}`, types[0])
  }
  return value
}

export function isHash (value: unknown, type?: HoloHashType): value is HoloHash {
  if (!(value instanceof Uint8Array) || value.length !== HOLO_HASH_LENGTH) return false
  const actual = hashType(value)
  return actual !== undefined && (type === undefined || actual === type)
}

export function encodeHash (hash: HoloHash): string {
  return 'u' + Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString('base64url')
}

/** Parse `u`+base64url, verifying length, prefix and the DHT-location checksum. */
export function decodeHash (str: string, type?: HoloHashType | readonly HoloHashType[]): HoloHash {
  if (typeof str !== 'string' || !str.startsWith('u') || str.length !== 53 || !/^u[A-Za-z0-9_-]+$/.test(str)) {
    throw new InvalidHashError(`not a HoloHash string: ${JSON.stringify(typeof str === 'string' ? str.slice(0, 60) : str)}`)
  }
  const bytes = new Uint8Array(Buffer.from(str.slice(1), 'base64url'))
  const actual = hashType(bytes)
  if (actual === undefined) throw new InvalidHashError(`unknown HoloHash type prefix in ${str}`)
  const types = type === undefined ? undefined : typeof type === 'string' ? [type] : type
  if (types !== undefined && !types.includes(actual)) throw new InvalidHashError(`expected a ${types.join(' or ')} hash, got ${actual}`, types[0])
  const loc = dhtLocationBytes(bytes.subarray(3, 35))
  for (let i = 0; i < 4; i++) {
    if (loc[i] !== bytes[35 + i]) throw new InvalidHashError(`HoloHash checksum mismatch in ${str}`)
  }
  return bytes
}

export function hashEquals (a: Uint8Array | undefined | null, b: Uint8Array | undefined | null): boolean {
  if (a == null || b == null || a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Equality of the 35 identifying bytes, ignoring the location (signing keys may carry zeros). */
export function sameKey (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== HOLO_HASH_LENGTH || b.length !== HOLO_HASH_LENGTH) return false
  for (let i = 0; i < 35; i++) if (a[i] !== b[i]) return false
  return true
}

/** The 39-byte AgentPubKey of a raw 32-byte ed25519 public key. */
export function agentPubKeyFromEd25519 (publicKey: Uint8Array): HoloHash {
  return hashFrom32(publicKey, 'Agent')
}

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value
}
