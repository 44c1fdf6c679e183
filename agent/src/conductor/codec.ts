/**
 * msgpack helpers. Hashing always uses the canonical encoding (map keys sorted), so a value
 * hashes the same whichever order its fields were built or received in.
 */
import { Encoder, decode as mpDecode, encode as mpEncode } from '@msgpack/msgpack'

const canonical = new Encoder({ sortKeys: true, ignoreUndefined: true })

export function encodeCanonical (value: unknown): Uint8Array {
  return canonical.encode(value)
}

export function encode (value: unknown): Uint8Array {
  return mpEncode(value, { ignoreUndefined: true })
}

export function decode (bytes: Uint8Array): unknown {
  return mpDecode(bytes)
}

export function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
}
