/**
 * How values cross into and out of a zome: JSON text plus one buffer of bytes, made and read on
 * the host side (the conductor) so that only strings and a transferable buffer travel between the
 * conductor and its zome worker, and QuickJS parses and prints JSON natively.
 *
 * - `ToGuest` = `[value, fixes]` JSON (fixes put `Uint8Array`s, `undefined` and non-finite numbers
 *   back at their paths) and the bytes, for the prelude's `revive`.
 * - `FromGuest` = what the prelude's `pack` made: JSON whose `Uint8Array`s are markers
 *   `{<nonce>: [offset, length]}` into the bytes, with the context's secret nonce, so no value a
 *   zome builds can pass for a marker.
 */
import { FlexnodeError } from '../../errors.ts'

/** A value handed over by a zome does not decode (a marker that points outside its bytes…). */
export class MarshalError extends FlexnodeError {
  static override readonly name = 'MarshalError'
}

export interface ToGuest { json: string, bytes: Uint8Array }

/**
 * Most values (objects, arrays, scalars) one value entering a zome may hold: a zome's heap must
 * hold what it is given with room to work, and near its memory limit QuickJS slows to a crawl.
 */
export const MAX_GUEST_NODES = 250_000
/**
 * Deepest nesting of one value entering a zome. QuickJS parses JSON recursively in C, where its
 * own stack limit does not see the native stack run out; this bound keeps far away from that.
 */
export const MAX_GUEST_DEPTH = 1000
export interface FromGuest { json: string, bytes: Uint8Array | null, nonce: string }

type Fix = [Array<string | number>, 'b', number, number] | [Array<string | number>, 'u' | 'n' | 'i' | 'j' | 'z']

/** Host value → `[value, fixes]` JSON and the bytes it holds, for the guest's `revive`. */
export function encodeForGuest (value: unknown): ToGuest {
  const parts: Uint8Array[] = []
  let size = 0
  const fixes: Fix[] = []
  const path: Array<string | number> = [0]
  let nodes = 0
  const walk = (v: unknown): unknown => {
    if (++nodes > MAX_GUEST_NODES) throw new RangeError(`the value holds more than ${MAX_GUEST_NODES} items`)
    switch (typeof v) {
      case 'undefined':
        fixes.push([path.slice(), 'u'])
        return null
      case 'number':
        if (Number.isFinite(v)) {
          if (v === 0 && 1 / v < 0) { fixes.push([path.slice(), 'z']); return 0 }
          return v
        }
        fixes.push([path.slice(), Number.isNaN(v) ? 'n' : v > 0 ? 'i' : 'j'])
        return null
      case 'string':
      case 'boolean':
        return v
      case 'bigint':
        return Number(v)
      case 'object': {
        if (v === null) return null
        if (v instanceof Uint8Array) {
          fixes.push([path.slice(), 'b', size, v.length])
          parts.push(v)
          size += v.length
          return null
        }
        if (path.length > MAX_GUEST_DEPTH) throw new RangeError(`the value is nested deeper than ${MAX_GUEST_DEPTH} levels`)
        if (Array.isArray(v)) {
          const out = new Array<unknown>(v.length)
          for (let i = 0; i < v.length; i++) {
            path.push(i)
            out[i] = walk(v[i])
            path.pop()
          }
          return out
        }
        const out: Record<string, unknown> = {}
        for (const k of Object.keys(v)) {
          path.push(k)
          const x = walk((v as Record<string, unknown>)[k])
          path.pop()
          Object.defineProperty(out, k, { value: x, enumerable: true, writable: true, configurable: true })
        }
        return out
      }
      default:
        // functions and symbols have no place in zome data
        fixes.push([path.slice(), 'u'])
        return null
    }
  }
  const json = JSON.stringify([walk(value), fixes])
  const bytes = new Uint8Array(size)
  let at = 0
  for (const p of parts) {
    bytes.set(p, at)
    at += p.length
  }
  return { json, bytes }
}

/** The guest's packed JSON and its bytes → a host value. Throws on a malformed marker. */
export function decodeFromGuest ({ json, bytes, nonce }: FromGuest): unknown {
  if (bytes === null && !json.includes(nonce)) return JSON.parse(json)
  return JSON.parse(json, (_key, v: unknown) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, nonce)) return v
    const m = (v as Record<string, unknown>)[nonce]
    if (bytes === null || !Array.isArray(m) || m.length !== 2 || !m.every(n => Number.isSafeInteger(n) && n >= 0) || m[0] + m[1] > bytes.length) throw new MarshalError('malformed byte marker')
    return bytes.slice(m[0], m[0] + m[1])
  })
}

