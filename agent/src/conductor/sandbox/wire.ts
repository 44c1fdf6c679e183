/**
 * How values cross into and out of a zome, made and read on the host side (the conductor):
 *
 * - `ToGuest` = the value in QuickJS's binary object format (`bjson.ts`), which the engine hands to
 *   QuickJS's own reader in one call: `Uint8Array`s, `undefined` and non-finite numbers arrive as
 *   they are.
 * - `FromGuest` = a zome's value read from what QuickJS's binary writer made of it, or, for values
 *   JSON treats in its own way (dates, getters, functions in objects…), what the prelude's `pack`
 *   made: JSON whose `Uint8Array`s are markers `{<nonce>: [offset, length]}` into the bytes, with
 *   the context's secret nonce, so no value a zome builds can pass for a marker. Either way the host
 *   gets the value with `JSON.stringify`'s meaning.
 */
import { BjsonFallback, readBjson, writeBjson } from './bjson.ts'
import { MarshalError } from './errors.ts'

export { MarshalError } from './errors.ts'

export interface ToGuest { bjson: Uint8Array }

/**
 * Most values (objects, arrays, scalars) one value entering a zome may hold: a zome's heap must
 * hold what it is given with room to work, and near its memory limit QuickJS slows to a crawl.
 */
export const MAX_GUEST_NODES = 250_000
/**
 * Deepest nesting of one value entering a zome. QuickJS reads values recursively in C, where its
 * own stack limit does not see the native stack run out; this bound keeps far away from that.
 */
export const MAX_GUEST_DEPTH = 1000
/** Deepest nesting read from the binary form; deeper values take the JSON path. */
const MAX_READ_DEPTH = 1000

/** A zome's value, read from its binary form by the engine, or packed as JSON by the prelude. */
export type FromGuest = { value: unknown } | { json: string, bytes: Uint8Array | null, nonce: string }

/** Host value → a value for the guest (QuickJS's binary object format). */
export function encodeForGuest (value: unknown): ToGuest {
  return { bjson: writeBjson(value, { maxNodes: MAX_GUEST_NODES, maxDepth: MAX_GUEST_DEPTH }) }
}

/**
 * The binary form of a zome's value → host data; `BjsonFallback` when JSON would give the value a
 * meaning of its own (the engine then packs it as JSON).
 */
export function readFromGuest (bjson: Uint8Array): unknown {
  return readBjson(bjson, MAX_READ_DEPTH)
}

export { BjsonFallback }

/** A zome's value (either form) → a host value. Throws `MarshalError` on a malformed one. */
export function decodeFromGuest (v: FromGuest): unknown {
  if ('value' in v) return v.value
  const { json, bytes, nonce } = v
  if (bytes === null && !json.includes(nonce)) return JSON.parse(json)
  return JSON.parse(json, (_key, x: unknown) => {
    if (typeof x !== 'object' || x === null || Array.isArray(x) || !Object.hasOwn(x, nonce)) return x
    const m = (x as Record<string, unknown>)[nonce]
    if (bytes === null || !Array.isArray(m) || m.length !== 2 || !m.every(n => Number.isSafeInteger(n) && n >= 0) || m[0] + m[1] > bytes.length) throw new MarshalError('malformed byte marker')
    return bytes.slice(m[0], m[0] + m[1])
  })
}
