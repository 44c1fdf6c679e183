/**
 * QuickJS's own binary object format (`JS_WriteObject` / `JS_ReadObject`, "BJSON", format version
 * 5 of the QuickJS the sandbox runs), written and read on the host side, so a value crosses into a
 * zome with one C call (`decodeBinaryJSON`) instead of a JSON parse plus a pass in interpreted
 * JavaScript, and out of it with one C call (`encodeBinaryJSON`) instead of `JSON.stringify` with a
 * `toJSON` per byte array.
 *
 * - `writeBjson(value)`: host data → bytes QuickJS reads. Same meaning as before: `undefined`,
 *   `NaN`, `±Infinity` and `-0` survive, `Uint8Array`s arrive as `Uint8Array`s (each with its own
 *   buffer), bigints become numbers, functions and symbols `undefined`, any other object its own
 *   enumerable keys.
 * - `readBjson(bytes)`: what QuickJS wrote for a zome's value → host data with exactly the meaning
 *   `JSON.stringify` gives it (a zome's result has always crossed as JSON): `undefined` members are
 *   left out and `undefined` items become `null`, non-finite numbers `null`, `-0` is `0`, and
 *   `Uint8Array`s stay bytes. What JSON treats in its own way (dates, boxed primitives, bigints,
 *   other typed arrays, bare buffers, cycles) throws `BjsonFallback`, and the caller takes the JSON
 *   path, so the meaning never depends on which path a value took.
 *
 * Layout (from quickjs.c): a version byte, the atom table (property names, as strings), then the
 * value: a tag byte and its payload. Numbers are LEB128 (signed: zigzag) or little-endian float64;
 * strings are LEB128(length << 1 | wide) then Latin-1 bytes or UTF-16LE code units.
 */
import { MarshalError } from './errors.ts'

export const BC_VERSION = 5

const TAG_NULL = 1
const TAG_UNDEFINED = 2
const TAG_FALSE = 3
const TAG_TRUE = 4
const TAG_INT32 = 5
const TAG_FLOAT64 = 6
const TAG_STRING = 7
const TAG_OBJECT = 8
const TAG_ARRAY = 9
const TAG_TYPED_ARRAY = 14
const TAG_ARRAY_BUFFER = 15
const TAG_OBJECT_REFERENCE = 19
/** `JS_CLASS_UINT8_ARRAY - JS_CLASS_UINT8C_ARRAY` */
const TYPED_UINT8 = 2
/** an ArrayBuffer that is not resizable */
const NOT_RESIZABLE = 0xffffffff

/** A value QuickJS wrote that JSON would treat in its own way: take the JSON path instead. */
export class BjsonFallback extends Error {
  constructor (readonly why: string) {
    super(why)
    this.name = 'BjsonFallback'
  }
}

export interface WriteLimits {
  /** most values (objects, arrays, scalars) in one value */
  maxNodes: number
  /** deepest nesting */
  maxDepth: number
}

const LATIN1 = /^[\u0000-\u00ff]*$/

class Writer {
  buf: Uint8Array
  view: DataView
  pos = 0

  constructor (size: number) {
    this.buf = new Uint8Array(size)
    this.view = new DataView(this.buf.buffer)
  }

  need (n: number): void {
    if (this.pos + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.pos + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
    this.view = new DataView(next.buffer)
  }

  u8 (v: number): void {
    this.need(1)
    this.buf[this.pos++] = v
  }

  leb (v: number): void {
    this.need(5)
    v >>>= 0
    while (v >= 0x80) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80
      v >>>= 7
    }
    this.buf[this.pos++] = v
  }

  sleb (v: number): void {
    this.leb(((v << 1) ^ (v >> 31)) >>> 0)
  }

  f64 (v: number): void {
    this.need(8)
    this.view.setFloat64(this.pos, v, true)
    this.pos += 8
  }

  bytes (b: Uint8Array): void {
    this.need(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
  }

  str (s: string): void {
    const n = s.length
    if (n < 64 ? isLatin1(s) : LATIN1.test(s)) {
      this.leb(n << 1)
      this.need(n)
      const buf = this.buf
      let p = this.pos
      for (let i = 0; i < n; i++) buf[p++] = s.charCodeAt(i)
      this.pos = p
    } else {
      this.leb((n << 1) | 1)
      this.need(n * 2)
      const buf = this.buf
      let p = this.pos
      for (let i = 0; i < n; i++) {
        const c = s.charCodeAt(i)
        buf[p++] = c & 0xff
        buf[p++] = c >>> 8
      }
      this.pos = p
    }
  }
}

function isLatin1 (s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false
  return true
}

/** Writes one value: the body first, collecting property names for the atom table in front. */
class ValueWriter {
  readonly body = new Writer(1024)
  readonly head = new Writer(256)
  /** property names in order of use: QuickJS folds repeated names into one atom as it reads */
  readonly atoms: string[] = []
  nodes = 0
  busy = false
  limits: WriteLimits = { maxNodes: 0, maxDepth: 0 }

  reset (limits: WriteLimits): void {
    this.body.pos = 0
    this.atoms.length = 0
    this.nodes = 0
    this.limits = limits
  }

  atom (key: string): void {
    // atom indices start after JS_ATOM_NULL (first_atom = 1); even = an index, odd = an integer key
    this.body.leb(this.atoms.push(key) * 2)
  }

  number (n: number): void {
    const body = this.body
    if ((n | 0) === n && !Object.is(n, -0)) {
      body.u8(TAG_INT32)
      body.sleb(n)
    } else {
      body.u8(TAG_FLOAT64)
      body.f64(n)
    }
  }

  write (v: unknown, depth: number): void {
    if (++this.nodes > this.limits.maxNodes) throw new RangeError(`the value holds more than ${this.limits.maxNodes} items`)
    const body = this.body
    switch (typeof v) {
      case 'undefined':
        body.u8(TAG_UNDEFINED)
        return
      case 'boolean':
        body.u8(v ? TAG_TRUE : TAG_FALSE)
        return
      case 'number':
        this.number(v)
        return
      case 'bigint':
        this.number(Number(v))
        return
      case 'string':
        body.u8(TAG_STRING)
        body.str(v)
        return
      case 'object': {
        if (v === null) {
          body.u8(TAG_NULL)
          return
        }
        if (depth >= this.limits.maxDepth) throw new RangeError(`the value is nested deeper than ${this.limits.maxDepth} levels`)
        if (v instanceof Uint8Array) {
          body.u8(TAG_TYPED_ARRAY)
          body.u8(TYPED_UINT8)
          body.leb(v.length)
          body.leb(0)
          body.u8(TAG_ARRAY_BUFFER)
          body.leb(v.length)
          body.leb(NOT_RESIZABLE)
          body.bytes(v)
          return
        }
        if (Array.isArray(v)) {
          body.u8(TAG_ARRAY)
          body.leb(v.length)
          for (let i = 0; i < v.length; i++) this.write(v[i], depth + 1)
          return
        }
        const keys = Object.keys(v)
        body.u8(TAG_OBJECT)
        body.leb(keys.length)
        for (let i = 0; i < keys.length; i++) {
          const k = keys[i]!
          this.atom(k)
          this.write((v as Record<string, unknown>)[k], depth + 1)
        }
        return
      }
      default:
        // functions and symbols have no place in zome data
        body.u8(TAG_UNDEFINED)
    }
  }

  /** version, atom table, body: one exact-size copy. */
  finish (): Uint8Array {
    const head = this.head
    head.pos = 0
    head.u8(BC_VERSION)
    head.leb(this.atoms.length)
    for (let i = 0; i < this.atoms.length; i++) head.str(this.atoms[i]!)
    const out = new Uint8Array(head.pos + this.body.pos)
    out.set(head.buf.subarray(0, head.pos), 0)
    out.set(this.body.buf.subarray(0, this.body.pos), head.pos)
    return out
  }
}

/** one writer reused across values (a value is written in one synchronous pass) */
const shared = new ValueWriter()

/** Host data → QuickJS's binary object format, for `decodeBinaryJSON`. */
export function writeBjson (value: unknown, limits: WriteLimits): Uint8Array {
  const w = shared.busy ? new ValueWriter() : shared
  w.busy = true
  try {
    w.reset(limits)
    w.write(value, 0)
    return w.finish()
  } finally {
    w.busy = false
  }
}

/** an object being read (a reference to it is a cycle) */
const PENDING: unique symbol = Symbol('pending')
/** an ArrayBuffer read as the storage of a typed array */
class ByteStore {
  constructor (readonly bytes: Uint8Array) {}
}

class Reader {
  readonly buf: Uint8Array
  readonly view: DataView
  pos = 0
  atoms: string[] = []
  /** every object in the order QuickJS numbered them (references point into this) */
  readonly objects: unknown[] = []
  readonly maxDepth: number

  constructor (buf: Uint8Array, maxDepth: number) {
    this.buf = buf
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    this.maxDepth = maxDepth
  }

  fail (what: string): never {
    throw new MarshalError(`malformed value from a zome: ${what} at byte ${this.pos}`)
  }

  u8 (): number {
    if (this.pos >= this.buf.length) this.fail('unexpected end')
    return this.buf[this.pos++]!
  }

  leb (): number {
    let v = 0
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.u8()
      v += (b & 0x7f) * 2 ** shift
      if (b < 0x80) return v
    }
    return this.fail('bad LEB128')
  }

  sleb (): number {
    const v = this.leb()
    return (v % 2 === 0 ? v / 2 : -(v + 1) / 2)
  }

  str (): string {
    const h = this.leb()
    const len = Math.floor(h / 2)
    const wide = h % 2 === 1
    const size = wide ? len * 2 : len
    if (this.pos + size > this.buf.length) this.fail('string past the end')
    const start = this.pos
    this.pos += size
    const b = this.buf
    if (!wide) {
      if (len < 32) {
        let s = ''
        for (let i = start; i < start + len; i++) s += String.fromCharCode(b[i]!)
        return s
      }
      return Buffer.from(b.buffer, b.byteOffset + start, len).toString('latin1')
    }
    return Buffer.from(b.buffer, b.byteOffset + start, size).toString('utf16le')
  }

  atom (): string {
    const v = this.leb()
    if (v % 2 === 1) return String((v - 1) / 2)
    const idx = v / 2 - 1
    const key = this.atoms[idx]
    if (key === undefined) this.fail('unknown atom')
    return key
  }

  /** A value in JSON's meaning; `undefined` only where JSON would leave it out. */
  value (depth: number): unknown {
    const tag = this.u8()
    switch (tag) {
      case TAG_NULL: return null
      case TAG_UNDEFINED: return undefined
      case TAG_FALSE: return false
      case TAG_TRUE: return true
      case TAG_INT32: return this.sleb()
      case TAG_FLOAT64: {
        if (this.pos + 8 > this.buf.length) this.fail('number past the end')
        const n = this.view.getFloat64(this.pos, true)
        this.pos += 8
        return Number.isFinite(n) ? (n === 0 ? 0 : n) : null
      }
      case TAG_STRING: return this.str()
      case TAG_OBJECT: {
        if (depth >= this.maxDepth) throw new BjsonFallback('deep')
        const idx = this.objects.push(PENDING) - 1
        const out: Record<string, unknown> = {}
        const n = this.leb()
        for (let i = 0; i < n; i++) {
          const key = this.atom()
          const v = this.value(depth + 1)
          if (v === undefined) continue
          if (key === '__proto__') Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true })
          else out[key] = v
        }
        this.objects[idx] = out
        return out
      }
      case TAG_ARRAY: {
        if (depth >= this.maxDepth) throw new BjsonFallback('deep')
        const idx = this.objects.push(PENDING) - 1
        const n = this.leb()
        if (n > this.buf.length - this.pos) this.fail('array longer than the value')
        const out = new Array<unknown>(n)
        for (let i = 0; i < n; i++) out[i] = this.value(depth + 1) ?? null
        this.objects[idx] = out
        return out
      }
      case TAG_TYPED_ARRAY: {
        const type = this.u8()
        const len = this.leb()
        const offset = this.leb()
        if (type !== TYPED_UINT8) throw new BjsonFallback('typed array')
        const idx = this.objects.push(PENDING) - 1
        const buffer = this.arrayBuffer()
        if (offset + len > buffer.bytes.length) this.fail('typed array past its buffer')
        const out = buffer.bytes.slice(offset, offset + len)
        this.objects[idx] = out
        return out
      }
      case TAG_OBJECT_REFERENCE: {
        const target = this.objects[this.leb()]
        if (target === undefined) this.fail('bad reference')
        // a cycle: JSON refuses it, with its own error
        if (target === PENDING || isBuffer(target)) throw new BjsonFallback('reference')
        return target
      }
      default:
        // dates, boxed primitives, bigints, bare ArrayBuffers: JSON has its own way with them
        if (tag === TAG_ARRAY_BUFFER || (tag > 0 && tag <= TAG_OBJECT_REFERENCE)) throw new BjsonFallback(`tag ${tag}`)
        return this.fail(`unknown tag ${tag}`)
    }
  }

  arrayBuffer (): ByteStore {
    const tag = this.u8()
    if (tag === TAG_OBJECT_REFERENCE) {
      const target = this.objects[this.leb()]
      if (!isBuffer(target)) this.fail('typed array over something that is not a buffer')
      return target
    }
    if (tag !== TAG_ARRAY_BUFFER) this.fail('typed array without a buffer')
    const len = this.leb()
    this.leb() // max_byte_length: a resizable buffer reads the same
    if (this.pos + len > this.buf.length) this.fail('buffer past the end')
    const buffer = new ByteStore(this.buf.subarray(this.pos, this.pos + len))
    this.pos += len
    this.objects.push(buffer)
    return buffer
  }
}

function isBuffer (v: unknown): v is ByteStore {
  return v instanceof ByteStore
}

/** What QuickJS wrote for a zome's value → host data (JSON's meaning), or `BjsonFallback`. */
export function readBjson (bytes: Uint8Array, maxDepth: number): unknown {
  const r = new Reader(bytes, maxDepth)
  const version = r.u8()
  if (version !== BC_VERSION) r.fail(`format version ${version}, expected ${BC_VERSION}`)
  const count = r.leb()
  if (count > bytes.length) r.fail('atom count')
  for (let i = 0; i < count; i++) r.atoms.push(r.str())
  const v = r.value(0)
  if (r.pos !== bytes.length) r.fail('trailing bytes')
  return v === undefined ? null : v
}
