/**
 * The code every zome context runs before the zome's own module: it makes the sandbox
 * deterministic and gives the host its marshalling helpers.
 *
 * - `Math.random`, `Date.now`, `Date()` and `new Date()` without a time throw: zomes get time and
 *   randomness only through the HDK (`sys_time`, `random_bytes`), as Holochain's WASM zomes do.
 *   `WeakRef` and `FinalizationRegistry` (garbage-collector timing), `Atomics` and
 *   `SharedArrayBuffer` (blocking) and `Proxy` are not there.
 * - QuickJS checks the CPU budget between bytecode instructions, not inside its C built-ins, so the
 *   array built-ins that loop over a length (`indexOf` over `{length: 1e15}`, `fill` on a huge
 *   sparse array…) take at most `MAX_LENGTH` elements, and generic ones copy an array-like first
 *   (a loop in JavaScript, which the budget does stop).
 * - `TextEncoder`/`TextDecoder` (UTF-8) and a `console` that logs through the host.
 * - The helpers (`pack`, `makeApi`, `watch`, `validateOps`) are returned to the host as one
 *   object, which holds their handles; nothing of them is reachable from the global scope.
 *
 * Values enter a zome through QuickJS's own binary object reader (see `wire.ts`) and leave it
 * through its binary writer; `pack` is the way out for values that writer does not take: JSON whose
 * `Uint8Array`s are markers `{<nonce>: index}` into a side buffer, with a nonce the host picks per
 * context, so no value a zome builds can pass for a marker.
 */
export const PRELUDE = String.raw`(function (hostLog) {
  'use strict'
  const lock = (o, k, v) => Object.defineProperty(o, k, { value: v, writable: false, enumerable: false, configurable: false })

  // -- determinism: time and randomness only through the HDK; the refusal is a named error,
  // so the caller sees "NonDeterminismError: …" in the ribosome error
  class NonDeterminismError extends Error {
    constructor (message) { super(message); this.name = 'NonDeterminismError' }
  }
  lock(Math, 'random', function random () { throw new NonDeterminismError('Math.random is not available to zomes: use hdk.random_bytes') })
  const RealDate = Date
  lock(RealDate, 'now', function now () { throw new NonDeterminismError('Date.now is not available to zomes: use hdk.sys_time') })
  const SafeDate = new Proxy(RealDate, {
    construct (target, args, newTarget) {
      if (args.length === 0) throw new NonDeterminismError('new Date() without a time is not available to zomes: use hdk.sys_time')
      return Reflect.construct(target, args, newTarget)
    },
    apply () { throw new NonDeterminismError('Date() is not available to zomes: use hdk.sys_time') }
  })
  lock(RealDate.prototype, 'constructor', SafeDate)
  lock(globalThis, 'Date', SafeDate)

  for (const name of ['WeakRef', 'FinalizationRegistry', 'Atomics', 'SharedArrayBuffer', 'Proxy']) delete globalThis[name]

  // -- built-ins that loop in C: bounded lengths
  const MAX_LENGTH = 1 << 22
  const isArray = Array.isArray
  const isView = ArrayBuffer.isView
  const apply = Reflect.apply
  const ArrayProto = Array.prototype
  const tooLong = (what) => new RangeError(what + ' on more than ' + MAX_LENGTH + ' elements is not available in zomes')
  /** this for a generic array method: an array within bounds, a typed array, or a copy of an array-like */
  const bounded = (o, name, mutating) => {
    if (isArray(o)) {
      if (o.length > MAX_LENGTH) throw tooLong('Array.prototype.' + name)
      return o
    }
    if (o === null || o === undefined || isView(o) || (typeof o !== 'object' && typeof o !== 'function')) return o
    if (mutating) throw new TypeError('Array.prototype.' + name + ' on an array-like is not available in zomes')
    const n = Number(o.length)
    const len = n > 0 ? Math.floor(n) : 0
    if (len > MAX_LENGTH) throw tooLong('Array.prototype.' + name)
    const copy = []
    for (let i = 0; i < len; i++) copy.push(o[i])
    return copy
  }
  const boundedArgs = (args, name) => {
    for (let i = 0; i < args.length; i++) if (isArray(args[i]) && args[i].length > MAX_LENGTH) throw tooLong('Array.prototype.' + name)
  }
  const MUTATING = ['copyWithin', 'fill', 'pop', 'push', 'reverse', 'shift', 'sort', 'splice', 'unshift']
  const READING = ['at', 'concat', 'entries', 'every', 'filter', 'find', 'findIndex', 'findLast', 'findLastIndex', 'flat', 'flatMap', 'forEach', 'includes', 'indexOf', 'join', 'keys', 'lastIndexOf', 'map', 'reduce', 'reduceRight', 'slice', 'some', 'toLocaleString', 'toReversed', 'toSorted', 'toSpliced', 'toString', 'values', 'with']
  for (const name of [...MUTATING, ...READING]) {
    const original = ArrayProto[name]
    if (typeof original !== 'function') continue
    const mutating = MUTATING.includes(name)
    const wrapped = { [name] (...args) {
      if (name === 'concat') boundedArgs(args, name)
      return apply(original, bounded(this, name, mutating), args)
    } }[name]
    Object.defineProperty(ArrayProto, name, { value: wrapped, writable: true, enumerable: false, configurable: true })
  }
  ArrayProto[Symbol.iterator] = ArrayProto.values
  // flat: nested arrays are walked in C too; count what it would visit first, in JavaScript
  const flat = ArrayProto.flat
  Object.defineProperty(ArrayProto, 'flat', { value: function flat_ (depth) {
    const limit = depth === undefined ? 1 : Number(depth)
    let total = 0
    const count = (a, d) => {
      total += a.length
      if (total > MAX_LENGTH) throw tooLong('Array.prototype.flat')
      if (d > 0) for (let i = 0; i < a.length; i++) if (isArray(a[i])) count(a[i], d - 1)
    }
    if (isArray(this)) count(this, limit)
    return apply(flat, this, [depth])
  }, writable: true, enumerable: false, configurable: true })
  const from = Array.from
  Object.defineProperty(Array, 'from', { value: function from_ (items, ...rest) {
    if (items !== null && items !== undefined && !isArray(items) && typeof items[Symbol.iterator] !== 'function') items = bounded(items, 'from', false)
    else if (isArray(items) && items.length > MAX_LENGTH) throw tooLong('Array.from')
    return apply(from, this, [items, ...rest])
  }, writable: true, enumerable: false, configurable: true })

  // -- UTF-8 text
  class TextEncoder {
    get encoding () { return 'utf-8' }
    encode (input = '') {
      const s = String(input)
      const out = []
      for (let i = 0; i < s.length; i++) {
        let c = s.charCodeAt(i)
        if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
          c = 0x10000 + ((c & 0x3ff) << 10) + (s.charCodeAt(++i) & 0x3ff)
          out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63))
          continue
        }
        if (c >= 0xd800 && c < 0xe000) c = 0xfffd
        if (c < 0x80) out.push(c)
        else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63))
        else out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63))
      }
      return new Uint8Array(out)
    }
  }
  class TextDecoder {
    get encoding () { return 'utf-8' }
    decode (input) {
      if (input === undefined) return ''
      const b = input instanceof Uint8Array ? input : new Uint8Array(input.buffer !== undefined ? input.buffer : input)
      let s = ''
      for (let i = 0; i < b.length;) {
        const c = b[i]
        let cp = 0xfffd
        let n = 1
        if (c < 0x80) cp = c
        else if (c >= 0xc2 && c < 0xe0 && i + 1 < b.length && (b[i + 1] & 0xc0) === 0x80) { cp = ((c & 31) << 6) | (b[i + 1] & 63); n = 2 } else if (c >= 0xe0 && c < 0xf0 && i + 2 < b.length && (b[i + 1] & 0xc0) === 0x80 && (b[i + 2] & 0xc0) === 0x80) {
          cp = ((c & 15) << 12) | ((b[i + 1] & 63) << 6) | (b[i + 2] & 63); n = 3
          if (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000)) cp = 0xfffd
        } else if (c >= 0xf0 && c < 0xf5 && i + 3 < b.length && (b[i + 1] & 0xc0) === 0x80 && (b[i + 2] & 0xc0) === 0x80 && (b[i + 3] & 0xc0) === 0x80) {
          cp = ((c & 7) << 18) | ((b[i + 1] & 63) << 12) | ((b[i + 2] & 63) << 6) | (b[i + 3] & 63); n = 4
          if (cp < 0x10000 || cp > 0x10ffff) cp = 0xfffd
        }
        s += String.fromCodePoint(cp)
        i += n
      }
      return s
    }
  }
  lock(globalThis, 'TextEncoder', TextEncoder)
  lock(globalThis, 'TextDecoder', TextDecoder)

  // -- console, through the host's logger
  const show = (v) => { try { return typeof v === 'string' ? v : JSON.stringify(v) } catch (e) { return String(v) } }
  const logAt = (level) => (...args) => { hostLog(level, args.map(show).join(' ')) }
  lock(globalThis, 'console', Object.freeze({ log: logAt('debug'), debug: logAt('debug'), info: logAt('info'), warn: logAt('warn'), error: logAt('error') }))

  // -- marshalling
  let packNonce = null
  let parts = null
  let partsSize = 0
  /** the bytes of the last packed value, until the host takes them */
  let lastBytes = null
  lock(Uint8Array.prototype, 'toJSON', function toJSON () {
    if (parts === null) return Array.from(this)
    parts.push(this)
    const at = partsSize
    partsSize += this.length
    return { [packNonce]: [at, this.length] }
  })
  /** API prototypes by shape id (a shape is a list of function names), so each call sends only the id */
  const protos = []
  /** each HDK object → the host API id of its call */
  const apiIds = new WeakMap()
  const idOf = WeakMap.prototype.get
  const setId = WeakMap.prototype.set
  const u8 = Uint8Array
  const defineProperty = Object.defineProperty
  const create = Object.create
  const freeze = Object.freeze
  const stringify = JSON.stringify
  const assign = Object.assign
  const promiseResolve = Promise.resolve.bind(Promise)
  const promiseReject = Promise.reject.bind(Promise)
  const then = Promise.prototype.then

  return {
    /** JSON of a value; its bytes (if any) wait in one buffer for takeBytes(). The first character says which: '0' none, '1' some. */
    pack (v, nonce) {
      packNonce = nonce
      parts = []
      partsSize = 0
      lastBytes = null
      try {
        const json = v === undefined ? 'null' : stringify(v)
        const out = parts
        if (out.length > 0) {
          const buf = new u8(partsSize)
          let at = 0
          for (let i = 0; i < out.length; i++) { buf.set(out[i], at); at += out[i].length }
          lastBytes = buf.buffer
        }
        return (out.length > 0 ? '1' : '0') + (typeof json === 'string' ? json : 'null')
      } finally {
        packNonce = null
        parts = null
      }
    },
    takeBytes () {
      const b = lastBytes
      lastBytes = null
      return b
    },
    /**
     * The HDK (or validation context) of one call: an object whose functions answer for that call
     * only. Its functions are getters on a frozen prototype per API shape, made into the call's own
     * function on first use, so a call pays only for the functions it uses. The call's API id sits
     * in a WeakMap no zome code reaches. promised[i]: that function is async in the HDK.
     */
    makeApi (host, id, shape, names, promised) {
      let proto = protos[shape]
      if (proto === undefined) {
        proto = {}
        for (let i = 0; i < names.length; i++) {
          const name = names[i]
          const async = promised[i] === true
          defineProperty(proto, name, {
            get () {
              const apiId = apply(idOf, apiIds, [this])
              if (apiId === undefined) throw new TypeError(name + ' is an HDK function of no call')
              // an async HDK function gives a promise whether the host answers now or later
              const f = async
                ? (...args) => { try { return promiseResolve(host(apiId, name, args)) } catch (e) { return promiseReject(e) } }
                : (...args) => host(apiId, name, args)
              defineProperty(this, name, { value: f, writable: true, enumerable: true, configurable: true })
              return f
            },
            enumerable: true,
            configurable: false
          })
        }
        freeze(proto)
        protos[shape] = proto
      }
      const api = create(proto)
      apply(setId, apiIds, [api, id])
      return api
    },
    watch (value, id, onSettle) {
      then.call(promiseResolve(value), (v) => { onSettle(id, true, v) }, (e) => { onSettle(id, false, e) })
    },
    validateOps (validate, base, types, ctx) {
      for (let i = 0; i < types.length; i++) {
        const r = validate(assign({ type: types[i] }, base), ctx)
        if (r === null || typeof r !== 'object' || !('type' in r)) return { type: 'NoResult' }
        if (r.type !== 'Valid') return r
      }
      return { type: 'Valid' }
    }
  }
})`
