/**
 * Values crossing the sandbox keep their meaning: into a zome, `undefined`, non-finite numbers, `-0`
 * and byte arrays arrive as they are; out of a zome, a value means what `JSON.stringify` says it
 * means (with `Uint8Array`s kept as bytes), whichever path the engine takes for it (QuickJS's binary
 * writer, or JSON for what that writer does not take or treats differently).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { silentLogger } from '../../logger.ts'
import { ZomeSandbox, type DnaStatic } from '../sandbox/host.ts'

const info: DnaStatic = { hash: new Uint8Array(39), name: 'wire', modifiers: { network_seed: '', properties: {} }, zome_names: ['z'] }

const ZOME = `
const describe = (v) => {
  if (v instanceof Uint8Array) return { bytes: Array.from(v), own: v.byteOffset === 0 && v.buffer.byteLength === v.length }
  if (Array.isArray(v)) return v.map(describe)
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : Number.isNaN(v) ? 'NaN' : v === Infinity ? 'Infinity' : v === -Infinity ? '-Infinity' : v
  if (v === undefined) return 'undefined'
  if (typeof v === 'object' && v !== null) {
    const out = {}
    for (const k of Object.keys(v)) Object.defineProperty(out, k, { value: describe(v[k]), enumerable: true })
    out['proto is Object.prototype'] = Object.getPrototypeOf(v) === Object.prototype
    return out
  }
  return v
}
export async function inspect (api, p) { return describe(p) }
export async function inspect_host (api) { return describe(await api.give()) }
export async function give (api, which) {
  const bytes = new Uint8Array([1, 2, 3, 4, 5])
  class Point { constructor () { this.x = 1; this.y = 2 } }
  const shared = { n: 1 }
  const values = {
    plain: { a: 1, s: 'é😀', nested: { t: true, f: false, n: null }, list: [1, 'two', [3]] },
    holes: { u: undefined, nan: NaN, inf: Infinity, ninf: -Infinity, negzero: -0, arr: [undefined, NaN, -0, function () {}] },
    bytes: { whole: bytes, view: bytes.subarray(1, 3), again: bytes.subarray(3), empty: new Uint8Array(0) },
    json_own_way: { date: new Date(0), bad_date: new Date(NaN), boxed: [new Number(3), new String('s'), new Boolean(false)], map: new Map([[1, 2]]), u16: new Uint16Array([1, 2]) },
    getter: { get g () { return 'got' }, plain: 1 },
    functions: { f () {}, kept: 1, sym: Symbol('s') },
    shapes: { point: new Point(), dag: [shared, shared], proto_key: JSON.parse('{"__proto__": {"polluted": true}}') },
    top_undefined: undefined,
    big_text: 'x'.repeat(100000) + '\\u2603'
  }
  return values[which]
}
export async function cyclic () { const a = { b: {} }; a.b.a = a; return a }
export function validate () { return { type: 'Valid' } }
`

describe('zome sandbox: values keep their meaning across the boundary', () => {
  let sb: ZomeSandbox
  beforeAll(async () => {
    sb = await ZomeSandbox.create({}, { logger: silentLogger() })
    await sb.loadDna('w', 'wire', info, [{ name: 'z', code: new TextEncoder().encode(ZOME) }])
  })
  afterAll(() => { sb.dispose() })

  const give = async (which: string): Promise<unknown> => await sb.call('w', 'z', 'give', {}, which)

  it('into a zome: undefined, NaN, ±Infinity, -0, bigints, bytes and odd keys arrive as they are', async () => {
    const buf = Buffer.from([9, 8, 7, 6])
    const value = {
      u: undefined,
      nums: [NaN, Infinity, -Infinity, -0, 0, 1.5, 2 ** 40, -7],
      big: 10n,
      bytes: new Uint8Array([1, 2]),
      buffer: buf,
      view: buf.subarray(1, 3),
      fn: () => 1,
      text: 'ü😀',
      '7': 'integer key'
    }
    Object.defineProperty(value, '__proto__', { value: { own: true }, enumerable: true })
    const seen = await sb.call('w', 'z', 'inspect', {}, value) as Record<string, unknown>
    expect(seen).toEqual({
      7: 'integer key',
      u: 'undefined',
      nums: ['NaN', 'Infinity', '-Infinity', '-0', 0, 1.5, 2 ** 40, -7],
      big: 10,
      bytes: { bytes: [1, 2], own: true },
      buffer: { bytes: [9, 8, 7, 6], own: true },
      view: { bytes: [8, 7], own: true },
      fn: 'undefined',
      text: 'ü😀',
      ['__proto__']: { own: true, 'proto is Object.prototype': true },
      'proto is Object.prototype': true
    })
    // the same from a host function's result
    const fromHost = await sb.call('w', 'z', 'inspect_host', { give: async () => ({ nan: NaN, negzero: -0, b: new Uint8Array([5]) }) }, null)
    expect(fromHost).toEqual({ nan: 'NaN', negzero: '-0', b: { bytes: [5], own: true }, 'proto is Object.prototype': true })
  })

  it('out of a zome: what JSON.stringify makes of it, bytes kept', async () => {
    expect(await give('plain')).toEqual({ a: 1, s: 'é😀', nested: { t: true, f: false, n: null }, list: [1, 'two', [3]] })
    const holes = await give('holes') as Record<string, unknown>
    expect(holes).toEqual({ nan: null, inf: null, ninf: null, negzero: 0, arr: [null, null, 0, null] })
    expect(Object.hasOwn(holes, 'u')).toBe(false)
    expect(Object.is(holes.negzero, -0)).toBe(false)
    expect(await give('bytes')).toEqual({ whole: new Uint8Array([1, 2, 3, 4, 5]), view: new Uint8Array([2, 3]), again: new Uint8Array([4, 5]), empty: new Uint8Array(0) })
    expect(await give('json_own_way')).toEqual({ date: '1970-01-01T00:00:00.000Z', bad_date: null, boxed: [3, 's', false], map: {}, u16: { 0: 1, 1: 2 } })
    expect(await give('getter')).toEqual({ g: 'got', plain: 1 })
    expect(await give('functions')).toEqual({ kept: 1 })
    const shapes = await give('shapes') as Record<string, unknown>
    expect(shapes).toEqual({ point: { x: 1, y: 2 }, dag: [{ n: 1 }, { n: 1 }], proto_key: JSON.parse('{"__proto__": {"polluted": true}}') })
    expect(Object.getPrototypeOf(shapes.proto_key)).toBe(Object.prototype)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(await give('top_undefined')).toBeNull()
    expect(await give('big_text')).toBe('x'.repeat(100000) + '\u2603')
  })

  it('a cycle is a marshalling error, and the zome keeps working', async () => {
    await expect(sb.call('w', 'z', 'cyclic', {}, null)).rejects.toMatchObject({ name: 'ZomeSandboxError', reason: 'marshal' })
    expect(await give('plain')).toMatchObject({ a: 1 })
  })
})
