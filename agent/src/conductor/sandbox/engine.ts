/**
 * The QuickJS engine that runs zome code (see `host.ts` for the conductor's side): one QuickJS
 * runtime per DNA (the memory limit covers that DNA's zomes together), one context per zome
 * (zomes share no globals). What a zome reaches is exactly what the host hands it through a
 * `HostApi`: the HDK or the validation context, as JSON-shaped data and bytes (`wire.ts`).
 *
 * A run of zome code that exceeds its CPU time (the interrupt handler) or the memory limit fails
 * with `ZomeSandboxError` and the runtime is rebuilt; calls of that DNA still running then fail too.
 *
 * ```ts
 * const engine = await QuickJsEngine.create(limits, { logger })
 * const runtime = engine.newRuntime('notes')
 * const zome = runtime.load('notes', moduleBytes)           // an ES module, as bundled by the conductor
 * const hash = decodeFromGuest(await zome.call('create_note', hdk, encodeForGuest({ text: 'hi' })))
 * ```
 */
import { randomBytes } from 'node:crypto'
import { newQuickJSWASMModuleFromVariant, type QuickJSContext, type QuickJSDeferredPromise, type QuickJSHandle, type QuickJSRuntime, type QuickJSWASMModule } from 'quickjs-emscripten-core'
import { FlexnodeError, errorMessage } from '../../errors.ts'
import type { ComponentLogger } from '../../logger.ts'
import { ZomeSandboxError, ZomeThrewError, type SandboxLimit } from './errors.ts'
import { PRELUDE } from './prelude.ts'
import { checkBinarySupport, decodeBinary, encodeBinary } from './quickjs-bjson.ts'
import { BjsonFallback, decodeFromGuest, encodeForGuest, readFromGuest, type FromGuest, type ToGuest } from './wire.ts'

/** Limits of the zome engine (see ZomeSandboxInit for their meaning and defaults). */
export interface EngineLimits {
  memoryLimitBytes: number
  cpuTimeMs: number
  startTimeMs: number
  maxStackBytes: number
}

export interface EngineComponents {
  logger: ComponentLogger
}

/** Largest JSON text a zome may hand the host in one value. */
const MAX_VALUE_JSON_CHARS = 64 * 1024 * 1024
/** Largest binary form of one value a zome may hand the host. */
const MAX_VALUE_BYTES = 64 * 1024 * 1024
/** Longest log line a zome may write through `console`. */
const MAX_LOG_CHARS = 2000

/** Host functions a zome may call during one call: each returns a value or a promise of one. */
/**
 * Host functions a zome may call during one call, in wire form: each takes the zome's arguments
 * (an array, as the guest packed it) and returns the value for the guest, or a promise of it; a
 * throw or a rejection is an error in the zome.
 */
export type HostApi = Record<string, (args: FromGuest) => ToGuest | Promise<ToGuest>>

/** Handles of the prelude's helpers and the host functions of one context. */
interface Helpers {
  pack: QuickJSHandle
  takeBytes: QuickJSHandle
  makeApi: QuickJSHandle
  watch: QuickJSHandle
  validateOps: QuickJSHandle
  host: QuickJSHandle
  log: QuickJSHandle
  onSettle: QuickJSHandle
}

const HOST_ERROR_KEY = '__flexnode_host_error'

/** Owns the QuickJS WebAssembly module; makes one runtime per DNA. */
export class QuickJsEngine {
  readonly limits: EngineLimits
  private readonly module: QuickJSWASMModule
  private readonly log: ComponentLogger
  private readonly runtimes = new Set<SandboxRuntime>()

  private constructor (module: QuickJSWASMModule, limits: EngineLimits, log: ComponentLogger) {
    this.module = module
    this.limits = limits
    this.log = log
  }

  static async create (limits: EngineLimits, components: EngineComponents): Promise<QuickJsEngine> {
    for (const [k, v] of Object.entries(limits)) {
      if (!Number.isSafeInteger(v) || v <= 0) throw new FlexnodeError(`zome sandbox: ${k} must be a positive integer, got ${String(v)}`)
    }
    const module = await newQuickJSWASMModuleFromVariant(import('@jitl/quickjs-wasmfile-release-sync'))
    return new QuickJsEngine(module, limits, components.logger.forComponent('flexnode:sandbox'))
  }

  /** A runtime for one DNA's zomes. */
  newRuntime (label: string): SandboxRuntime {
    const rt = new SandboxRuntime(this.module, this.limits, this.log, label, () => { this.runtimes.delete(rt) })
    this.runtimes.add(rt)
    return rt
  }

  dispose (): void {
    for (const rt of [...this.runtimes]) rt.dispose()
  }
}

/** One call into a zome: its CPU budget, its host APIs, the host errors and host promises it holds. */
interface Call {
  readonly id: number
  remainingMs: number
  readonly apis: Map<number, HostApi>
  readonly hostErrors: Map<number, unknown>
  /** host promises the guest awaits: disposed when the call ends */
  readonly deferreds: Set<QuickJSDeferredPromise>
  /** the guest settled the call's promise */
  readonly settle: (ok: boolean, value: unknown) => void
  readonly fail: (err: Error) => void
  done: boolean
}

/** One QuickJS runtime: the zomes of one DNA, each in its own context. */
export class SandboxRuntime {
  readonly label: string
  readonly log: ComponentLogger
  private readonly module: QuickJSWASMModule
  private readonly init: EngineLimits
  private readonly onDispose: () => void
  private rt: QuickJSRuntime | undefined
  /** bumped on every reset: contexts of an older generation are dead */
  generation = 0
  private readonly zomes = new Set<SandboxedZome>()
  private readonly calls = new Map<number, Call>()
  /** host API id → the call it belongs to */
  private readonly apiCalls = new Map<number, Call>()
  private nextId = 1
  private deadline = Number.POSITIVE_INFINITY
  private depth = 0
  private disposed = false
  /** the live runtime's state is broken (a native stack overflow unwound through it): abandon, never free */
  private corrupt = false

  constructor (module: QuickJSWASMModule, init: EngineLimits, log: ComponentLogger, label: string, onDispose: () => void) {
    this.module = module
    this.init = init
    this.log = log
    this.label = label
    this.onDispose = onDispose
  }

  /** The live QuickJS runtime, built on first use and after a reset. */
  runtime (): QuickJSRuntime {
    if (this.disposed) throw new ZomeSandboxError('closed', this.label, `the zome runtime of ${this.label} is disposed`)
    if (this.rt === undefined) {
      const rt = this.module.newRuntime()
      rt.setMemoryLimit(this.init.memoryLimitBytes)
      rt.setMaxStackSize(this.init.maxStackBytes)
      rt.setInterruptHandler(() => performance.now() > this.deadline)
      this.rt = rt
    }
    return this.rt
  }

  /** Evaluate a zome module (an ES module with no imports) in a fresh context. */
  load (zome: string, code: Uint8Array): SandboxedZome {
    const z = new SandboxedZome(this, zome, new TextDecoder('utf-8').decode(code))
    this.zomes.add(z)
    try {
      z.ensure()
    } catch (err) {
      this.zomes.delete(z)
      throw err
    }
    return z
  }

  beginCall (settle: Call['settle']): Call {
    const call: Call = {
      id: this.nextId++,
      remainingMs: this.init.cpuTimeMs,
      apis: new Map(),
      hostErrors: new Map(),
      deferreds: new Set(),
      settle,
      fail: (err) => { settle(false, err) },
      done: false
    }
    this.calls.set(call.id, call)
    return call
  }

  /** The call is over: its APIs stop answering and the host promises it held are released. */
  endCall (call: Call): void {
    if (call.done) return
    call.done = true
    for (const id of call.apis.keys()) this.apiCalls.delete(id)
    call.apis.clear()
    call.hostErrors.clear()
    for (const d of call.deferreds) if (d.alive) d.dispose()
    call.deferreds.clear()
    this.calls.delete(call.id)
  }

  callById (id: number): Call | undefined {
    return this.calls.get(id)
  }

  /** The live call a host API id belongs to. */
  callOfApi (apiId: number): Call | undefined {
    return this.apiCalls.get(apiId)
  }

  registerApi (call: Call, api: HostApi): number {
    const id = this.nextId++
    call.apis.set(id, api)
    this.apiCalls.set(id, call)
    return id
  }

  /**
   * Run `fn` in the VM on behalf of `call` (zome `zome`), within its CPU budget. Nested entries
   * share the outer deadline. If the thread's native stack runs out inside QuickJS (recursion in
   * its C built-ins, which its own stack limit does not see), the unwinding skipped QuickJS's
   * cleanup: the runtime is abandoned, not freed (freeing it would fail QuickJS's assertions and
   * abort the WebAssembly module every DNA shares), and the call fails with a `stack` limit.
   */
  enter<T> (call: Call | 'start' | undefined, zome: string, fn: () => T): T {
    if (this.depth > 0) {
      this.depth++
      try { return fn() } finally { this.depth-- }
    }
    const started = performance.now()
    this.deadline = started + (call === 'start' ? this.init.startTimeMs : call?.remainingMs ?? this.init.cpuTimeMs)
    this.depth = 1
    try {
      return fn()
    } catch (err) {
      if (isNativeStackOverflow(err)) throw this.corrupted(zome, call === 'start' ? undefined : call)
      throw err
    } finally {
      this.depth = 0
      this.deadline = Number.POSITIVE_INFINITY
      if (call !== undefined && call !== 'start') call.remainingMs = Math.max(0, call.remainingMs - (performance.now() - started))
    }
  }

  /** The native stack ran out inside QuickJS: the runtime is reset and abandoned (never freed). */
  corrupted (zome: string, culprit: Call | undefined): ZomeSandboxError {
    if (this.rt !== undefined) this.corrupt = true
    return this.poison('stack', zome, culprit)
  }

  /** A limit was hit: every running call of this runtime fails and the runtime is rebuilt on next use. */
  poison (reason: SandboxLimit, zome: string, culprit: Call | undefined): ZomeSandboxError {
    const err = new ZomeSandboxError(reason, zome, reason === 'cpu_time'
      ? `zome ${zome} exceeded its CPU time (${culprit === undefined ? this.init.startTimeMs : this.init.cpuTimeMs} ms)`
      : reason === 'memory'
        ? `zome ${zome} exceeded the memory limit of ${this.init.memoryLimitBytes} bytes`
        : `zome ${zome} overflowed its stack`)
    if (this.rt === undefined) return err
    this.log.warn({ dna: this.label, zome, reason }, 'a zome hit a sandbox limit; resetting its runtime')
    const others = new ZomeSandboxError('reset', zome, `the zome runtime of ${this.label} was reset because zome ${zome} hit a limit`)
    for (const c of [...this.calls.values()]) c.fail(c === culprit ? err : others)
    this.reset()
    return err
  }

  /** Drop the runtime: contexts and the runtime are freed once no host frame is inside them. */
  private reset (): void {
    const rt = this.rt
    if (rt === undefined) return
    this.rt = undefined
    this.generation++
    for (const c of [...this.calls.values()]) {
      c.fail(new ZomeSandboxError('reset', this.label, `the zome runtime of ${this.label} was reset`))
      this.endCall(c)
    }
    const contexts = [...this.zomes].map(z => z.forget())
    if (this.corrupt) {
      this.corrupt = false
      this.log.warn({ dna: this.label }, 'a zome ran out of the native stack inside QuickJS; its runtime is abandoned without being freed')
      return
    }
    const free = (): void => {
      for (const release of contexts) release()
      try {
        rt.dispose()
      } catch (err) {
        this.log.warn({ dna: this.label, err: errorMessage(err) }, 'freeing a QuickJS runtime failed')
      }
    }
    if (this.depth > 0) setImmediate(free)
    else free()
  }

  /** Run the VM's queued promise jobs (the continuations of async zome code). */
  drain (call: Call | undefined, zome: string): void {
    const rt = this.rt
    if (rt === undefined) return
    this.enter(call, zome, () => {
      for (let rounds = 0; this.rt === rt && rounds < 1000; rounds++) {
        const r = rt.executePendingJobs()
        if (r.error !== undefined) {
          const text = r.error.alive ? errorText(r.error.context, r.error) : 'unknown error'
          if (r.error.alive) r.error.dispose()
          const limit = limitOf(text)
          if (limit !== undefined) {
            this.poison(limit, zome, call)
            return
          }
        } else {
          // executePendingJobs() runs the queue until it is empty; after an error it stops early
          r.dispose()
          return
        }
      }
    })
  }

  dispose (): void {
    if (this.disposed) return
    for (const c of [...this.calls.values()]) c.fail(new ZomeSandboxError('closed', this.label, `the zome runtime of ${this.label} was disposed`))
    this.reset()
    this.disposed = true
    this.zomes.clear()
    this.onDispose()
  }
}

function errorText (vm: QuickJSContext, h: QuickJSHandle): string {
  try {
    const d = vm.dump(h) as unknown
    if (typeof d === 'object' && d !== null) {
      const e = d as { name?: unknown, message?: unknown }
      return `${String(e.name ?? 'Error')}: ${String(e.message ?? '')}`
    }
    return String(d)
  } catch {
    return 'unprintable error'
  }
}

/** The host's (V8's) stack overflow, thrown through WebAssembly frames. */
function isNativeStackOverflow (err: unknown): boolean {
  return err instanceof RangeError && /Maximum call stack size exceeded/.test(err.message)
}

/** QuickJS's own errors for its limits. */
function limitOf (text: string): SandboxLimit | undefined {
  if (/^InternalError: interrupted$/.test(text)) return 'cpu_time'
  if (/out of memory/i.test(text)) return 'memory'
  if (/^(InternalError|RangeError): (stack overflow|Maximum call stack size exceeded)/.test(text)) return 'stack'
  return undefined
}

/** A zome context being built: the handles the host holds in it so far. */
interface Building {
  vm: QuickJSContext
  /** every handle the host keeps in this context (helpers, exports) */
  handles: QuickJSHandle[]
}

/** Free a context and the handles the host holds in it. */
function release ({ vm, handles }: Building): void {
  for (const h of handles) {
    try { if (h.alive) h.dispose() } catch { /* freed with the runtime */ }
  }
  try { if (vm.alive) vm.dispose() } catch { /* freed with the runtime */ }
}

interface Live extends Building {
  exports: QuickJSHandle
  helpers: Helpers
  /**
   * The key of this context's byte markers. Zome code never sees it (it lives in the prelude's
   * closure and the host), so no value a zome builds can pass for a marker.
   */
  nonce: string
  /** API shapes already sent to this context */
  shapes: Map<string, number>
}

/** One zome module in its own context. */
export class SandboxedZome {
  readonly name: string
  private readonly owner: SandboxRuntime
  private readonly source: string
  private live: Live | undefined
  /** the context being built by ensure(), until it is live */
  private building: Building | undefined
  private generation = -1
  /** exported function names, in module order */
  functions: string[] = []
  /** exported non-function values (entry_types, link_types…), as host data */
  values: Record<string, unknown> = {}

  constructor (owner: SandboxRuntime, name: string, source: string) {
    this.owner = owner
    this.name = name
    this.source = source
  }

  /**
   * The runtime is going: returns what frees this zome's context and every handle the host holds
   * in it, including a context still being built (a module stopped by a limit while it loads).
   * QuickJS refuses to free a runtime in which any value is still held.
   */
  forget (): () => void {
    const held = [this.live, this.building]
    this.live = undefined
    this.building = undefined
    return () => { for (const h of held) if (h !== undefined) release(h) }
  }

  /** The live context, (re)built and evaluated if the runtime is new. */
  ensure (): Live {
    if (this.live !== undefined && this.generation === this.owner.generation) return this.live
    const generation = this.owner.generation
    const building: Building = { vm: this.owner.runtime().newContext(), handles: [] }
    this.building = building
    try {
      const { vm } = building
      const helpers = this.owner.enter('start', this.name, () => this.install(vm, building.handles))
      const exports = this.owner.enter('start', this.name, () => this.evaluate(vm))
      building.handles.push(exports)
      const live: Live = { vm, exports, helpers, handles: building.handles, nonce: `~flexnode-bytes-${randomBytes(12).toString('base64url')}`, shapes: new Map() }
      this.building = undefined
      this.live = live
      this.generation = generation
      this.owner.enter('start', this.name, () => { this.readExports(live) })
      return live
    } catch (err) {
      // a reset under us (a limit) took the context with it (forget); otherwise it is ours to free
      if (this.building === building) {
        this.building = undefined
        release(building)
      } else if (this.live?.vm === building.vm && this.owner.generation === generation) {
        const live = this.live
        this.live = undefined
        release(live)
      }
      if (err instanceof ZomeSandboxError) throw err
      const limit = err instanceof Error ? limitOf(`${err.name}: ${err.message}`) : undefined
      if (limit !== undefined) throw new ZomeSandboxError(limit, this.name, `zome ${this.name} hit its ${limit} limit while starting`, { cause: err })
      throw new ZomeSandboxError('load', this.name, `zome ${this.name} failed to start: ${errorMessage(err)}`, { cause: err })
    }
  }

  private install (vm: QuickJSContext, handles: QuickJSHandle[]): Helpers {
    checkBinarySupport(vm)
    const own = (h: QuickJSHandle): QuickJSHandle => { handles.push(h); return h }
    const log = own(vm.newFunction('log', (levelH, textH) => {
      const level = vm.getString(levelH)
      const text = vm.getString(textH).slice(0, MAX_LOG_CHARS)
      const l = this.owner.log
      const fn = level === 'error' ? l.error : level === 'warn' ? l.warn : level === 'info' ? l.info : l.debug
      fn.call(l, { dna: this.owner.label, zome: this.name }, text)
    }))
    const host = own(vm.newFunction('host', (idH, nameH, argsH) => this.hostCall(vm, idH, nameH, argsH)))
    const onSettle = own(vm.newFunction('onSettle', (idH, okH, valueH) => { this.onSettle(vm, idH, okH, valueH) }))
    const factory = vm.evalCode(PRELUDE, 'flexnode:prelude.js').unwrap()
    const made = vm.callFunction(factory, vm.undefined, log)
    factory.dispose()
    const obj = made.unwrap()
    try {
      const get = (k: string): QuickJSHandle => own(vm.getProp(obj, k))
      return { pack: get('pack'), takeBytes: get('takeBytes'), makeApi: get('makeApi'), watch: get('watch'), validateOps: get('validateOps'), host, log, onSettle }
    } finally {
      obj.dispose()
    }
  }

  private evaluate (vm: QuickJSContext): QuickJSHandle {
    const r = vm.evalCode(this.source, `zome:${this.name}.mjs`, { type: 'module', strict: true })
    if (r.error !== undefined) {
      const text = errorText(vm, r.error)
      r.error.dispose()
      const limit = limitOf(text)
      if (limit !== undefined) throw this.owner.poison(limit, this.name, undefined)
      throw new ZomeSandboxError('load', this.name, `zome ${this.name} failed to load: ${text}`)
    }
    const state = vm.getPromiseState(r.value)
    if (state.type === 'pending') {
      r.value.dispose()
      throw new ZomeSandboxError('load', this.name, `zome ${this.name} failed to load: its module awaits at the top level`)
    }
    if (state.type === 'rejected') {
      const text = errorText(vm, state.error)
      state.error.dispose()
      r.value.dispose()
      throw new ZomeSandboxError('load', this.name, `zome ${this.name} failed to load: ${text}`)
    }
    if (state.notAPromise === true) return r.value
    r.value.dispose()
    return state.value
  }

  private readExports (live: Live): void {
    const { vm, exports } = live
    const names = vm.getOwnPropertyNames(exports, { strings: true, onlyEnumerable: true }).unwrap()
    const functions: string[] = []
    const values: Record<string, unknown> = {}
    try {
      for (const nh of names) {
        const key = vm.getString(nh)
        const v = vm.getProp(exports, nh)
        try {
          if (vm.typeof(v) === 'function') functions.push(key)
          else Object.defineProperty(values, key, { value: this.decode(this.toHost(live, v)), enumerable: true, writable: true, configurable: true })
        } finally {
          v.dispose()
        }
      }
    } finally {
      names.dispose()
    }
    this.functions = functions
    this.values = values
  }

  // -- marshalling ---------------------------------------------------------------------------

  /** A value made by `encodeForGuest` → a new guest value (QuickJS reads its binary form). */
  private toGuest (live: Live, { bjson }: ToGuest, call?: Call): QuickJSHandle {
    const { vm } = live
    const whole = bjson.byteOffset === 0 && bjson.byteLength === bjson.buffer.byteLength ? bjson : bjson.slice()
    const bh = vm.newArrayBuffer(whole.buffer)
    try {
      const r = this.native(call, () => decodeBinary(vm, bh))
      if (r.error !== undefined) {
        const text = errorText(vm, r.error)
        r.error.dispose()
        throw this.limitOr(text, 'marshal', call)
      }
      return r.value
    } finally {
      bh.dispose()
    }
  }

  /**
   * A guest value → host data, through QuickJS's binary writer; a value it cannot write (a getter,
   * a function inside) or that JSON gives a meaning of its own (a date…) is packed as JSON instead.
   */
  private toHost (live: Live, h: QuickJSHandle, call?: Call): FromGuest {
    const { vm } = live
    const r = this.native(call, () => encodeBinary(vm, h))
    if (r.error !== undefined) {
      const text = errorText(vm, r.error)
      r.error.dispose()
      const limit = limitOf(text)
      if (limit !== undefined) throw this.owner.poison(limit, this.name, call)
      return this.packJson(live, h, call)
    }
    let bytes: Uint8Array
    try {
      const buf = vm.getArrayBuffer(r.value)
      try {
        if (buf.value.length > MAX_VALUE_BYTES) throw new ZomeSandboxError('marshal', this.name, `zome ${this.name} handed over a value larger than ${MAX_VALUE_BYTES} bytes`)
        bytes = buf.value.slice()
      } finally {
        buf.dispose()
      }
    } finally {
      r.value.dispose()
    }
    try {
      return { value: readFromGuest(bytes) }
    } catch (err) {
      if (err instanceof BjsonFallback) return this.packJson(live, h, call)
      throw new ZomeSandboxError('marshal', this.name, `zome ${this.name} handed over a malformed value: ${errorMessage(err)}`)
    }
  }

  /** A guest value as JSON (the prelude's `pack`), for the values QuickJS's binary writer does not take. */
  private packJson (live: Live, h: QuickJSHandle, call?: Call): FromGuest {
    const { vm, helpers, nonce } = live
    const nh = vm.newString(nonce)
    let packed: string
    try {
      const r = this.native(call, () => vm.callFunction(helpers.pack, vm.undefined, h, nh))
      if (r.error !== undefined) {
        const text = errorText(vm, r.error)
        r.error.dispose()
        throw this.limitOr(text, 'marshal', call)
      }
      packed = vm.typeof(r.value) === 'string' ? vm.getString(r.value) : ''
      r.value.dispose()
    } finally {
      nh.dispose()
    }
    if (packed.length < 2 || (packed[0] !== '0' && packed[0] !== '1')) throw new ZomeSandboxError('marshal', this.name, `zome ${this.name} handed over a value that cannot cross the sandbox`)
    if (packed.length > MAX_VALUE_JSON_CHARS) throw new ZomeSandboxError('marshal', this.name, `zome ${this.name} handed over a value larger than ${MAX_VALUE_JSON_CHARS} characters`)
    let bytes: Uint8Array | null = null
    if (packed[0] === '1') {
      const r = vm.callFunction(helpers.takeBytes, vm.undefined)
      if (r.error !== undefined) {
        r.error.dispose()
        throw new ZomeSandboxError('marshal', this.name, `zome ${this.name} handed over a value that cannot cross the sandbox`)
      }
      try {
        const buf = vm.getArrayBuffer(r.value)
        bytes = buf.value.slice()
        buf.dispose()
      } catch {
        throw new ZomeSandboxError('marshal', this.name, `zome ${this.name} handed over a value that cannot cross the sandbox`)
      } finally {
        r.value.dispose()
      }
    }
    return { json: packed.slice(1), bytes, nonce }
  }

  /** Packed guest data → host data; a malformed value is the zome's marshalling error. */
  decode (v: FromGuest): unknown {
    try {
      return decodeFromGuest(v)
    } catch (err) {
      throw new ZomeSandboxError('marshal', this.name, `zome ${this.name} handed over a malformed value: ${errorMessage(err)}`)
    }
  }

  /**
   * A call into QuickJS from a host frame that may itself be inside zome code (a host function, a
   * settled host promise): a native stack overflow there is the end of the runtime (see `enter`).
   */
  private native<T> (call: Call | undefined, fn: () => T): T {
    try {
      return fn()
    } catch (err) {
      if (isNativeStackOverflow(err)) throw this.owner.corrupted(this.name, call)
      throw err
    }
  }

  /** A guest error text → the limit it reports (the runtime is reset), or a marshalling error. */
  private limitOr (text: string, otherwise: 'marshal' | 'load', call?: Call): ZomeSandboxError {
    const limit = limitOf(text)
    if (limit !== undefined) return this.owner.poison(limit, this.name, call)
    return new ZomeSandboxError(otherwise, this.name, `zome ${this.name}: ${text}`)
  }

  /** A host error → a guest Error that remembers which host error it was. */
  private hostErrorToGuest (vm: QuickJSContext, call: Call, err: unknown): QuickJSHandle {
    const e = err instanceof Error ? err : new Error(String(err))
    const h = vm.newError({ name: e.name, message: e.message })
    const id = call.hostErrors.size + 1
    call.hostErrors.set(id, err)
    const idH = vm.newNumber(id)
    vm.defineProp(h, HOST_ERROR_KEY, { value: idH, enumerable: false, configurable: false })
    idH.dispose()
    return h
  }

  /** A guest error → the host error it carries, a limit error, or a ZomeThrewError. */
  private guestErrorToHost (vm: QuickJSContext, call: Call | undefined, h: QuickJSHandle): Error {
    let hostId: number | undefined
    try {
      if (vm.typeof(h) === 'object') {
        const idH = vm.getProp(h, HOST_ERROR_KEY)
        if (vm.typeof(idH) === 'number') hostId = vm.getNumber(idH)
        idH.dispose()
      }
    } catch { /* not an object we can read */ }
    if (call !== undefined && hostId !== undefined && call.hostErrors.has(hostId)) {
      const original = call.hostErrors.get(hostId)
      return original instanceof Error ? original : new Error(String(original))
    }
    const text = errorText(vm, h)
    const limit = limitOf(text)
    if (limit !== undefined) return this.owner.poison(limit, this.name, call)
    const colon = text.indexOf(': ')
    return colon > 0 && colon < 64 ? new ZomeThrewError(text.slice(0, colon), text.slice(colon + 2)) : new ZomeThrewError('Error', text)
  }

  // -- host functions ------------------------------------------------------------------------

  /** `host(apiId, name, args)`: one HDK (or validation context) function, called from the guest. */
  private hostCall (vm: QuickJSContext, idH: QuickJSHandle, nameH: QuickJSHandle, argsH: QuickJSHandle): QuickJSHandle | { error: QuickJSHandle } {
    const live = this.live
    const name = vm.getString(nameH)
    const call = this.owner.callOfApi(vm.getNumber(idH))
    const api = call?.apis.get(vm.getNumber(idH))
    if (live === undefined || live.vm !== vm || call === undefined || api === undefined || call.done) {
      return { error: vm.newError({ name: 'Error', message: `hdk.${name}: the call this HDK belongs to has ended` }) }
    }
    const fn = Object.hasOwn(api, name) ? api[name] : undefined
    if (typeof fn !== 'function') return { error: vm.newError({ name: 'TypeError', message: `${name} is not a host function` }) }
    let args: FromGuest
    try {
      args = this.toHost(live, argsH, call)
    } catch (err) {
      return { error: vm.newError({ name: err instanceof ZomeSandboxError && err.reason !== 'marshal' ? 'InternalError' : 'TypeError', message: `hdk.${name}: ${errorMessage(err)}` }) }
    }
    let result: ToGuest | Promise<ToGuest>
    try {
      result = fn(args)
    } catch (err) {
      return { error: this.hostErrorToGuest(vm, call, err) }
    }
    if (!isThenable(result)) {
      try {
        return this.toGuest(live, result, call)
      } catch (err) {
        return { error: this.hostErrorToGuest(vm, call, err) }
      }
    }
    const deferred = vm.newPromise()
    call.deferreds.add(deferred)
    const settle = (ok: boolean, value: unknown): void => {
      if (call.done || !call.deferreds.has(deferred) || this.live !== live) return
      call.deferreds.delete(deferred)
      this.owner.enter(call, this.name, () => {
        let h: QuickJSHandle
        let fulfilled = ok
        try {
          h = ok ? this.toGuest(live, value as ToGuest, call) : this.hostErrorToGuest(vm, call, value)
        } catch (err) {
          fulfilled = false
          h = this.hostErrorToGuest(vm, call, err)
        }
        if (fulfilled) deferred.resolve(h)
        else deferred.reject(h)
        if (h.alive) h.dispose()
        deferred.dispose()
      })
      this.owner.drain(call, this.name)
    }
    ;(result as PromiseLike<unknown>).then(v => { settle(true, v) }, (e: unknown) => { settle(false, e) })
    // the library frees the returned handle; our deferred keeps its own
    return deferred.handle.dup()
  }

  /** `onSettle(callId, ok, value)`: the guest settled a call's returned promise. */
  private onSettle (vm: QuickJSContext, idH: QuickJSHandle, okH: QuickJSHandle, valueH: QuickJSHandle): void {
    const call = this.owner.callById(vm.getNumber(idH))
    const live = this.live
    if (call === undefined || call.done || live === undefined || live.vm !== vm) return
    if (vm.dump(okH) === true) {
      let value: FromGuest
      try {
        value = this.toHost(live, valueH, call)
      } catch (err) {
        call.settle(false, err)
        return
      }
      call.settle(true, value)
    } else {
      call.settle(false, this.guestErrorToHost(vm, call, valueH))
    }
  }

  /**
   * The guest object of a host API for one call. Names in `promised` always give the zome a
   * promise (the HDK declares them async), even when the host answers at once, so the host can
   * answer synchronously without a host promise per call.
   */
  private makeApi (live: Live, call: Call, api: HostApi, promised?: ReadonlySet<string>): QuickJSHandle {
    const { vm, helpers } = live
    const id = this.owner.registerApi(call, api)
    const names = Object.keys(api)
    const flags = names.map(n => promised?.has(n) === true)
    const key = `${names.join(',')}|${flags.map(f => f ? 1 : 0).join('')}`
    let shape = live.shapes.get(key)
    const fresh = shape === undefined
    if (shape === undefined) {
      shape = live.shapes.size
      live.shapes.set(key, shape)
    }
    const idH = vm.newNumber(id)
    const shapeH = vm.newNumber(shape)
    const namesH = fresh ? this.toGuest(live, encodeForGuest(names), call) : vm.undefined
    const flagsH = fresh ? this.toGuest(live, encodeForGuest(flags), call) : vm.undefined
    try {
      return vm.callFunction(helpers.makeApi, vm.undefined, helpers.host, idH, shapeH, namesH, flagsH).unwrap()
    } finally {
      idH.dispose()
      shapeH.dispose()
      namesH.dispose()
      flagsH.dispose()
    }
  }


  // -- calls ---------------------------------------------------------------------------------

  /** A coordinator function `(api, payload)`: resolves with its result, packed for the host. */
  async call (fn: string, api: HostApi, payload: ToGuest, options: { signal?: AbortSignal, promised?: ReadonlySet<string> } = {}): Promise<FromGuest> {
    if (!this.functions.includes(fn)) throw new ZomeSandboxError('load', this.name, `zome ${this.name} exports no function ${fn}`)
    const { promise, resolve, reject } = Promise.withResolvers<FromGuest>()
    const signal = options.signal
    const onAbort = (): void => { call.settle(false, signal?.reason instanceof Error ? signal.reason : new ZomeSandboxError('closed', this.name, `zome ${this.name}: the call was aborted`)) }
    const call = this.owner.beginCall((ok, value) => {
      if (call.done) return
      this.owner.endCall(call)
      signal?.removeEventListener('abort', onAbort)
      if (ok) resolve(value as FromGuest)
      else reject(value)
    })
    if (signal?.aborted === true) {
      onAbort()
      return await promise
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      const live = this.ensure()
      const { vm, exports, helpers } = live
      this.owner.enter(call, this.name, () => {
        const fnH = vm.getProp(exports, fn)
        const apiH = this.makeApi(live, call, api, options.promised)
        const payloadH = this.toGuest(live, payload, call)
        const idH = vm.newNumber(call.id)
        try {
          const r = vm.callFunction(fnH, vm.undefined, apiH, payloadH)
          if (r.error !== undefined) {
            const err = this.guestErrorToHost(vm, call, r.error)
            r.error.dispose()
            throw err
          }
          // the guest tells us when the returned value (a promise or not) settles
          const w = vm.callFunction(helpers.watch, vm.undefined, r.value, idH, helpers.onSettle)
          r.value.dispose()
          if (w.error !== undefined) {
            const err = this.guestErrorToHost(vm, call, w.error)
            w.error.dispose()
            throw err
          }
          w.value.dispose()
        } finally {
          fnH.dispose()
          apiH.dispose()
          payloadH.dispose()
          idH.dispose()
        }
      })
      this.owner.drain(call, this.name)
    } catch (err) {
      call.settle(false, err)
    }
    return await promise
  }

  /**
   * The integrity zome's `validate`, once per op type of one action: the op is marshalled once and
   * the first result that is not Valid is returned. Synchronous, as validation is.
   */
  validate (base: ToGuest, types: ToGuest, ctx: HostApi): FromGuest {
    if (!this.functions.includes('validate')) throw new ZomeSandboxError('load', this.name, `integrity zome ${this.name} exports no validate()`)
    let outcome: { ok: boolean, value: unknown } | undefined
    const call = this.owner.beginCall((ok, value) => {
      outcome ??= { ok, value }
      this.owner.endCall(call)
    })
    try {
      const live = this.ensure()
      const { vm, exports, helpers } = live
      const result = this.owner.enter(call, this.name, () => {
        const fnH = vm.getProp(exports, 'validate')
        const ctxH = this.makeApi(live, call, ctx)
        const baseH = this.toGuest(live, base, call)
        const typesH = this.toGuest(live, types, call)
        try {
          const r = vm.callFunction(helpers.validateOps, vm.undefined, fnH, baseH, typesH, ctxH)
          if (r.error !== undefined) {
            const err = this.guestErrorToHost(vm, call, r.error)
            r.error.dispose()
            throw err
          }
          try {
            return this.toHost(live, r.value, call)
          } finally {
            r.value.dispose()
          }
        } finally {
          fnH.dispose()
          ctxH.dispose()
          baseH.dispose()
          typesH.dispose()
        }
      })
      if (outcome !== undefined && !outcome.ok) throw outcome.value
      return result
    } catch (err) {
      throw outcome !== undefined && !outcome.ok ? outcome.value : err
    } finally {
      this.owner.endCall(call)
    }
  }
}

function isThenable (v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function'
}
