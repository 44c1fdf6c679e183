/**
 * Shape checks for values that cross into a zome (a payload, a decoded entry), shared by zomes;
 * pure, so they may be bundled into integrity zomes too.
 */

/** A map (msgpack map / plain object): not null, an array or bytes. */
export function isMap (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)
}

/** Bytes of exactly `length` (a 39-byte HoloHash, a 64-byte signature…). */
export function isBytes (v: unknown, length: number): v is Uint8Array {
  return v instanceof Uint8Array && v.length === length
}

/** A HoloHash: 39 bytes. */
export const HASH_BYTES = 39

export function isHash (v: unknown): v is Uint8Array {
  return isBytes(v, HASH_BYTES)
}
