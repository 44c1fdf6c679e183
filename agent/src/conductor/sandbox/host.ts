/**
 * The zome sandbox as the conductor sees it ("the ribosome"): zome code runs in QuickJS compiled to
 * WebAssembly (`engine.ts`), never in the node's own JavaScript realm. A zome reaches exactly what
 * the conductor hands it: the HDK (or, in validation, the read-only validation context),
 * JSON-shaped data and bytes. No Node built-ins, no `require`, no `import()`, no `process`, no
 * `fetch`, no file system or network, no clock or randomness except through the HDK; memory and
 * CPU time are bounded.
 *
 * One QuickJS runtime per DNA (its memory limit covers that DNA's zomes together), one context
 * per zome. A call or validation that exceeds its CPU time or the memory limit fails with
 * `ZomeSandboxError` and that DNA's runtime is rebuilt on next use; everything else goes on.
 *
 * ```ts
 * const sandbox = await ZomeSandbox.create({ cpuTimeMs: 1000 }, { logger })
 * const exports = await sandbox.loadDna(key, 'notes', info, [{ name: 'notes', code }])
 * const hash = await sandbox.call(key, 'notes', 'create_note', hdk, { text: 'hi' })
 * const verdict = sandbox.validate(key, 'notes_integrity', op, ['CreateRecord'], ctx)   // synchronous
 * ```
 *
 * Why QuickJS, on the node's thread: QuickJS is a real isolation boundary (a separate heap in
 * WebAssembly memory, nothing of the host reachable by reflection, unlike `node:vm`), enforces
 * memory and interrupt limits, needs no native build and runs the same on Node 20 and 24.
 * `isolated-vm` needs Node ≥ 24 (or `--no-node-snapshot`); SES compartments share the host's heap
 * and have no memory or time limit. Running QuickJS in a worker thread (measured first) made every
 * HDK call a thread round trip and cost 3 to 4 times more than running it here; the price of the
 * node's thread is that QuickJS checks its CPU budget only between bytecode instructions, so the
 * prelude bounds the built-ins that loop in C (generic array methods over huge array-likes), and
 * values entering a zome are bounded in size.
 */
import { FlexnodeError, errorMessage } from '../../errors.ts'
import type { ComponentLogger } from '../../logger.ts'
import { QuickJsEngine, type EngineLimits, type HostApi as WireApi, type SandboxedZome, type SandboxRuntime } from './engine.ts'
import { ZomeSandboxError } from './errors.ts'
import { decodeFromGuest, encodeForGuest, type FromGuest, type ToGuest } from './wire.ts'

export { ZomeSandboxError, ZomeThrewError } from './errors.ts'

/**
 * Functions a zome may call (the HDK, or the validation context): each takes the zome's arguments
 * and answers with a value, or a promise of one. The HDK functions in `PROMISED_HDK_FUNCTIONS`
 * reach the zome as async functions either way, so the host answers them synchronously whenever it
 * can (no host promise, no extra pass through QuickJS's job queue).
 */
export type HostApi = Record<string, (...args: never[]) => unknown>

/**
 * The validation context's functions whose answer depends only on their arguments during one
 * validation (validation is deterministic): asked again, they are answered from memory.
 */
const PURE_VALIDATION_FUNCTIONS: ReadonlySet<string> = new Set(['must_get_action', 'must_get_entry', 'must_get_valid_record', 'dna_info', 'encode_hash', 'decode_hash', 'verify_signature'])

/** The HDK functions that are async for zome code (`Promise` in `zomes-ts/hdk`'s `Hdk`). */
export const PROMISED_HDK_FUNCTIONS: ReadonlySet<string> = new Set([
  'create_entry', 'update_entry', 'delete_entry', 'create_link', 'delete_link', 'get', 'get_details', 'get_latest',
  'get_links', 'query', 'agent_info', 'sign', 'verify_signature', 'create_cap_grant'
])

export interface ZomeSandboxInit {
  /** Heap one DNA's zomes may use together, in bytes. @default 64 MiB */
  memoryLimitBytes?: number
  /**
   * CPU time one zome call or one validation may spend in zome code. Zome code runs on the node's
   * event loop, so this is also the longest a zome can hold it. @default 1000
   */
  cpuTimeMs?: number
  /** CPU time a zome module's top-level code may take when it is loaded. @default 10000 */
  startTimeMs?: number
  /**
   * Stack of the zome interpreter, in bytes. QuickJS runs on the node's own thread, whose native
   * stack (V8's, about 984 KiB) its frames also use: measured here, plain recursion runs out of the
   * native stack before QuickJS's own check once this is above about 320–384 KiB, and a runtime
   * that runs out of the native stack cannot be freed, only abandoned. @default 192 KiB
   */
  maxStackBytes?: number
}

export interface ZomeSandboxComponents {
  logger: ComponentLogger
}

export const DEFAULT_SANDBOX_MEMORY_BYTES = 64 * 1024 * 1024
export const DEFAULT_SANDBOX_CPU_TIME_MS = 1000
export const DEFAULT_SANDBOX_START_TIME_MS = 10_000
export const DEFAULT_SANDBOX_STACK_BYTES = 192 * 1024

/** A zome module's source. */
export interface ZomeSource { name: string, code: Uint8Array }

/** What a zome may read about its DNA without asking the conductor. */
export interface DnaStatic {
  hash: Uint8Array
  name: string
  modifiers: { network_seed: string, properties: Record<string, unknown> }
  zome_names: string[]
}

/** A zome module's exports: its function names and its other values (entry_types, link_types…). */
export interface ExportsInfo { functions: string[], values: Record<string, unknown> }

interface LoadedDna { runtime: SandboxRuntime, zomes: Map<string, SandboxedZome> }

export class ZomeSandbox {
  readonly limits: EngineLimits
  private readonly engine: QuickJsEngine
  private readonly dnas = new Map<string, LoadedDna>()
  private disposed = false

  private constructor (engine: QuickJsEngine) {
    this.engine = engine
    this.limits = engine.limits
  }

  static async create (init: ZomeSandboxInit, components: ZomeSandboxComponents): Promise<ZomeSandbox> {
    const limits: EngineLimits = {
      memoryLimitBytes: init.memoryLimitBytes ?? DEFAULT_SANDBOX_MEMORY_BYTES,
      cpuTimeMs: init.cpuTimeMs ?? DEFAULT_SANDBOX_CPU_TIME_MS,
      startTimeMs: init.startTimeMs ?? DEFAULT_SANDBOX_START_TIME_MS,
      maxStackBytes: init.maxStackBytes ?? DEFAULT_SANDBOX_STACK_BYTES
    }
    for (const [k, v] of Object.entries(limits)) {
      if (!Number.isSafeInteger(v) || v <= 0) throw new FlexnodeError(`zome sandbox: ${k} must be a positive integer, got ${String(v)}`)
    }
    return new ZomeSandbox(await QuickJsEngine.create(limits, components))
  }

  private zome (key: string, zome: string): SandboxedZome {
    if (this.disposed) throw new ZomeSandboxError('closed', zome, 'the zome sandbox is disposed')
    const z = this.dnas.get(key)?.zomes.get(zome)
    if (z === undefined) throw new ZomeSandboxError('load', zome, `zome ${zome} of DNA ${key} is not loaded`)
    return z
  }

  /** Load a DNA's zome modules; resolves with each zome's exports. Loading again replaces them. */
  async loadDna (key: string, label: string, _info: DnaStatic, zomes: ZomeSource[]): Promise<Record<string, ExportsInfo>> {
    if (this.disposed) throw new ZomeSandboxError('closed', '', 'the zome sandbox is disposed')
    this.unloadDna(key)
    const runtime = this.engine.newRuntime(label)
    const loaded = new Map<string, SandboxedZome>()
    const exports: Record<string, ExportsInfo> = {}
    try {
      for (const z of zomes) {
        const zome = runtime.load(z.name, z.code)
        loaded.set(z.name, zome)
        Object.defineProperty(exports, z.name, { value: { functions: zome.functions, values: zome.values }, enumerable: true })
      }
    } catch (err) {
      runtime.dispose()
      throw err
    }
    this.dnas.set(key, { runtime, zomes: loaded })
    return exports
  }

  unloadDna (key: string): void {
    this.dnas.get(key)?.runtime.dispose()
    this.dnas.delete(key)
  }

  /** Call a coordinator function; the HDK calls it makes are answered by `hdk`. */
  async call (key: string, zome: string, fn: string, hdk: HostApi, payload: unknown, options: { signal?: AbortSignal } = {}): Promise<unknown> {
    const z = this.zome(key, zome)
    const result = await z.call(fn, wireApi(hdk), marshal(zome, payload), { ...options, promised: PROMISED_HDK_FUNCTIONS })
    return unmarshal(zome, result)
  }

  /** An integrity zome's `validate` over every op type of one action: the verdict. Synchronous. */
  validate (key: string, zome: string, base: unknown, types: readonly string[], ctx: HostApi): unknown {
    const z = this.zome(key, zome)
    return unmarshal(zome, z.validate(marshal(zome, base), marshal(zome, [...types]), wireApi(ctx, PURE_VALIDATION_FUNCTIONS)))
  }

  dispose (): void {
    if (this.disposed) return
    this.disposed = true
    for (const key of [...this.dnas.keys()]) this.unloadDna(key)
    this.engine.dispose()
  }
}

function marshal (zome: string, value: unknown): ToGuest {
  try {
    return encodeForGuest(value)
  } catch (err) {
    throw new ZomeSandboxError('marshal', zome, `a value for zome ${zome} cannot enter the sandbox: ${errorMessage(err)}`)
  }
}

function unmarshal (zome: string, value: FromGuest): unknown {
  try {
    return decodeFromGuest(value)
  } catch (err) {
    throw new ZomeSandboxError('marshal', zome, `zome ${zome} handed over a malformed value: ${errorMessage(err)}`)
  }
}

/** A key for a list of arguments (strings, numbers, bytes…), for `wireApi`'s memo. */
function argsKey (list: unknown): string {
  return JSON.stringify(list, (_k, v: unknown) => v instanceof Uint8Array ? `b:${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')}` : v)
}

/**
 * The conductor's functions in the engine's wire form: arguments decoded, results encoded. The
 * results of the functions in `memo` (pure ones: the validation context's) are kept by arguments
 * for the life of this object (one validation), so asking again costs no lookup and no encoding.
 */
function wireApi (api: HostApi, memo?: ReadonlySet<string>): WireApi {
  const out: WireApi = {}
  const kept = new Map<string, ToGuest>()
  for (const name of Object.keys(api)) {
    const fn = api[name] as (...args: unknown[]) => unknown
    out[name] = (args) => {
      const list = decodeFromGuest(args)
      if (memo?.has(name) === true) {
        const key = `${name}:${argsKey(list)}`
        let r = kept.get(key)
        if (r === undefined) {
          r = encodeForGuest(fn(...(Array.isArray(list) ? list : [])))
          kept.set(key, r)
        }
        return r
      }
      const result = fn(...(Array.isArray(list) ? list : []))
      if (typeof result === 'object' && result !== null && typeof (result as { then?: unknown }).then === 'function') {
        return (result as Promise<unknown>).then(encodeForGuest)
      }
      return encodeForGuest(result)
    }
  }
  return out
}
