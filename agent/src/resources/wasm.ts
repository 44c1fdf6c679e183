/**
 * The WASM compute task runner: a `compute` lease's WebAssembly module, given by its bytes or by
 * its content hash (`wasmCid`: CIDv1, raw codec, sha2-256, base32, so artifacts can come from
 * IPFS), runs in a worker thread of the `wasm` pool (a `PiscinaPool`, `native/pool.ts`, running
 * `native/workers/wasm-worker.ts`) with nothing but the task ABI's imports (README, "WASM task
 * ABI"): no filesystem, no network.
 *
 * At the boundary the runner validates the task, checks the module (it is WebAssembly; it exports
 * `run() -> i32` and `memory`; it imports nothing but `flexnode.input_len`, `input_read`,
 * `output_write`, `log`, and `clock_ms` when the task allows a clock), sets the maximum of its
 * memory to the task's limit (WebAssembly memory lives outside V8's heap, so `resourceLimits`
 * cannot bound it: a `memory.grow` past the limit fails inside the module instead), compiles it
 * once (a small LRU of compiled modules by CID and limit) and hands the compiled module to a
 * thread. The CPU budget is counted from the moment the thread starts the module, the wall-clock
 * budget from submission; a run past either is aborted, which terminates its thread (piscina
 * starts another). Every way a task can go wrong ends in a typed error whose `name` says why.
 *
 * ```ts
 * await using runner = wasmRunner({ resolve: async (cid) => await store.get(cid) })({ logger })
 * const { output, exit_code, usage } = await runner.run({ wasm: bytes, input, limits: { memory_mb: 16, cpu_ms: 2000 } })
 * const again = await runner.run({ wasm_cid: wasmCid(bytes), input })
 * ```
 */
import { createHash } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'
import { PiscinaPool, type ComputePool } from '../../../native/pool.ts'
import type { WasmWorkerEvent, WasmWorkerOutcome, WasmWorkerTask } from '../../../native/workers/wasm-worker.ts'
import { AbortError, DisposedError, FlexnodeError, InvalidInputError } from '../errors.ts'
import type { ComponentLogger } from '../logger.ts'

/** The worker module of the `wasm` pool. */
export const WASM_WORKER = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'native', 'workers', 'wasm-worker.ts')

/** A task's linear memory when its limits name none, MiB. */
export const WASM_DEFAULT_MEMORY_MB = 64
/** The largest `limits.memory_mb` a task may ask for, MiB. */
export const WASM_MAX_MEMORY_MB = 1024
/** A task's CPU budget when its limits name none, ms. */
export const WASM_DEFAULT_CPU_MS = 10_000
/** The largest `limits.cpu_ms` a task may ask for, ms. */
export const WASM_MAX_CPU_MS = 300_000
/** A task's wall-clock budget (from submission) when its limits name none, ms. */
export const WASM_DEFAULT_WALL_MS = 30_000
/** The largest `limits.wall_ms` a task may ask for, ms. */
export const WASM_MAX_WALL_MS = 600_000
/** The most output a task may write, bytes. */
export const WASM_MAX_OUTPUT_BYTES = 16 * 1_048_576
/** The largest input a task may carry, bytes. */
export const WASM_MAX_INPUT_BYTES = 16 * 1_048_576
/** The largest module a task may carry, bytes. */
export const WASM_MAX_MODULE_BYTES = 32 * 1_048_576
/** Compiled modules kept, by CID and memory limit. */
export const WASM_MODULE_CACHE_SIZE = 32
/** A module's `log` lines logged per task (the rest are counted, not logged). */
export const WASM_LOG_MAX_LINES = 100
/** A module's `log` line is cut to this many bytes. */
export const WASM_LOG_MAX_LINE_BYTES = 1024
/** V8 heap of each thread of the pool (the host's JS: imports, output), MiB. */
export const WASM_THREAD_HEAP_MB = 64

const PAGE = 65_536
const PAGES_PER_MB = 16
/** the imports a module may take, with their signatures (params → results) */
const ABI_IMPORTS: Record<string, string> = {
  input_len: '() -> (i32)',
  input_read: '(i32, i32) -> ()',
  output_write: '(i32, i32) -> ()',
  log: '(i32, i32) -> ()',
  clock_ms: '() -> (f64)'
}

// -----------------------------------------------------------------------------------------------
// errors

/** The module is not one this runner can run: not WebAssembly, no `run() -> i32` or `memory` export, an unsupported memory. */
export class InvalidWasmModuleError extends FlexnodeError {
  static override readonly name = 'InvalidWasmModuleError'
  readonly cid?: string

  constructor (reason: string, options?: ErrorOptions & { cid?: string }) {
    super(`invalid WebAssembly task module: ${reason}`, options)
    this.cid = options?.cid
  }
}

/** The module imports something the task ABI does not offer (or an ABI import with the wrong signature); it is refused before it runs. */
export class WasmImportError extends FlexnodeError {
  static override readonly name = 'WasmImportError'
  /** `module.name` of the import, e.g. `env.fetch` */
  readonly import: string
  readonly cid?: string

  constructor (name: string, reason: string, options?: { cid?: string }) {
    super(`the module imports ${name}: ${reason}`)
    this.import = name
    this.cid = options?.cid
  }
}

/** The module trapped (`unreachable`, an out-of-bounds access, a division by zero…) or called an import with a pointer outside its memory. */
export class WasmTrapError extends FlexnodeError {
  static override readonly name = 'WasmTrapError'
  /** the trap's message */
  readonly trap: string
  readonly cid?: string

  constructor (trap: string, options?: { cid?: string }) {
    super(`the module trapped: ${trap}`)
    this.trap = trap
    this.cid = options?.cid
  }
}

/** The module needs more linear memory than the task's `memory_mb`: its initial memory is larger, or it failed with its memory at the limit. */
export class WasmMemoryLimitError extends FlexnodeError {
  static override readonly name = 'WasmMemoryLimitError'
  readonly limit_mb: number
  readonly cid?: string

  constructor (limitMb: number, reason: string, options?: { cid?: string }) {
    super(`the module exceeded its memory limit of ${limitMb} MiB: ${reason}`)
    this.limit_mb = limitMb
    this.cid = options?.cid
  }
}

/** The module ran past the task's CPU budget and was stopped (its thread terminated). */
export class WasmCpuLimitError extends FlexnodeError {
  static override readonly name = 'WasmCpuLimitError'
  readonly limit_ms: number
  readonly cid?: string

  constructor (limitMs: number, options?: { cid?: string }) {
    super(`the module ran past its CPU budget of ${limitMs} ms and was stopped`)
    this.limit_ms = limitMs
    this.cid = options?.cid
  }
}

/** The task was not done within its wall-clock budget (counted from submission, waiting included) and was stopped. */
export class WasmWallTimeoutError extends FlexnodeError {
  static override readonly name = 'WasmWallTimeoutError'
  readonly limit_ms: number
  readonly cid?: string

  constructor (limitMs: number, options?: { cid?: string }) {
    super(`the task was not done within its wall-clock budget of ${limitMs} ms and was stopped`)
    this.limit_ms = limitMs
    this.cid = options?.cid
  }
}

/** The module wrote more output than the runner's maximum. */
export class WasmOutputLimitError extends FlexnodeError {
  static override readonly name = 'WasmOutputLimitError'
  readonly limit_bytes: number
  readonly cid?: string

  constructor (limitBytes: number, options?: { cid?: string }) {
    super(`the module wrote more than the maximum output of ${limitBytes} bytes`)
    this.limit_bytes = limitBytes
    this.cid = options?.cid
  }
}

/** A task named its module by a CID that nothing here has the bytes of. */
export class WasmModuleNotFoundError extends FlexnodeError {
  static override readonly name = 'WasmModuleNotFoundError'
  readonly cid: string

  constructor (cid: string) {
    super(`no WebAssembly module with CID ${cid} is known here`)
    this.cid = cid
  }
}

/** How a task ended, as the node's metrics count it: a few values, whatever the error's message. */
export type WasmTaskOutcome = 'ok' | 'exit_nonzero' | 'trap' | 'memory_limit' | 'cpu_limit' | 'timeout' | 'output_limit' | 'invalid_module' | 'module_not_found' | 'invalid_input' | 'aborted' | 'error'

const OUTCOME_OF_ERROR: Record<string, WasmTaskOutcome> = {
  WasmTrapError: 'trap',
  WasmMemoryLimitError: 'memory_limit',
  WasmCpuLimitError: 'cpu_limit',
  WasmWallTimeoutError: 'timeout',
  WasmOutputLimitError: 'output_limit',
  InvalidWasmModuleError: 'invalid_module',
  WasmImportError: 'invalid_module',
  WasmModuleNotFoundError: 'module_not_found',
  InvalidInputError: 'invalid_input',
  AbortError: 'aborted'
}

/** The outcome of a run: its result (exit code 0 or not), else the error it failed with. */
export function wasmOutcome (ended: { result: WasmResult } | { error: unknown }): WasmTaskOutcome {
  if ('result' in ended) return ended.result.exit_code === 0 ? 'ok' : 'exit_nonzero'
  return (ended.error instanceof Error ? OUTCOME_OF_ERROR[ended.error.name] : undefined) ?? 'error'
}

// -----------------------------------------------------------------------------------------------
// the content hash

/** The CID of a module's bytes: CIDv1, raw codec, sha2-256, in base32 (`bafkrei…`). */
export function wasmCid (bytes: Uint8Array): string {
  const hash = createHash('sha256').update(bytes).digest()
  return CID.createV1(raw.code, createDigest(sha256.code, new Uint8Array(hash.buffer, hash.byteOffset, hash.byteLength))).toString()
}

/**
 * A task's `wasm_cid`, checked to be a CID, in its canonical text. A CIDv1 of the raw codec with a
 * sha2-256 hash is the hash of the module's bytes themselves (`wasmCid`); any other CID (a UnixFS
 * DAG, as `ipfs add` or `flexnode pin` makes of a module larger than one block) names a module
 * published to the mesh's artifact store, which verifies every block it returns against it.
 */
function parseWasmCid (cid: unknown): string {
  const bad = (why: string): InvalidInputError => new InvalidInputError(`wasm_cid ${why}`, { field: 'wasm_cid' })
  if (typeof cid !== 'string') throw bad('must be a string')
  try {
    return CID.parse(cid).toString()
  } catch {
    throw bad(`is not a CID: ${JSON.stringify(cid.slice(0, 100))}`)
  }
}

/** The module's bytes are what a raw sha2-256 CID names (other CIDs were verified by the store that resolved them). */
const isRawSha256 = (cid: string): boolean => {
  const parsed = CID.parse(cid)
  return parsed.version === 1 && parsed.code === raw.code && parsed.multihash.code === sha256.code
}

// -----------------------------------------------------------------------------------------------
// the module's binary: signatures of its imports and exports, its memory

const VALTYPES: Record<number, string> = { 0x7f: 'i32', 0x7e: 'i64', 0x7d: 'f32', 0x7c: 'f64', 0x7b: 'v128', 0x70: 'funcref', 0x6f: 'externref' }

/** A reader of a (validated) WebAssembly binary. */
class Reader {
  pos: number
  private readonly bytes: Uint8Array
  private readonly text = new TextDecoder()

  constructor (bytes: Uint8Array, pos: number) {
    this.bytes = bytes
    this.pos = pos
  }

  u8 (): number {
    if (this.pos >= this.bytes.byteLength) throw new InvalidWasmModuleError('the binary ends early')
    return this.bytes[this.pos++]!
  }

  /** an unsigned LEB128 of at most 32 bits */
  u32 (): number {
    let result = 0
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.u8()
      result += (b & 0x7f) * 2 ** shift
      if ((b & 0x80) === 0) return result
    }
    throw new InvalidWasmModuleError('a LEB128 number is too long')
  }

  name (): string {
    const len = this.u32()
    const s = this.text.decode(this.bytes.subarray(this.pos, this.pos + len))
    this.pos += len
    return s
  }

  valtype (): string {
    const t = this.u8()
    const name = VALTYPES[t]
    if (name === undefined) throw new InvalidWasmModuleError(`it uses the value type 0x${t.toString(16)}, which the task ABI does not support`)
    return name
  }

  /** a function type: `(i32, i32) -> (i32)` */
  functype (): string {
    const form = this.u8()
    if (form !== 0x60) throw new InvalidWasmModuleError(`it uses a type of form 0x${form.toString(16)} (GC types), which the task ABI does not support`)
    const params = Array.from({ length: this.u32() }, () => this.valtype())
    const results = Array.from({ length: this.u32() }, () => this.valtype())
    return `(${params.join(', ')}) -> (${results.join(', ')})`
  }
}

/** A module's memory section (id 5): where it is in the binary and its limits. */
interface MemorySection {
  /** offset of the section's id byte */
  start: number
  /** offset just past the section */
  end: number
  min: number
  max?: number
}

interface ModuleShape {
  /** the signature of each `flexnode` import, by name */
  imports: Map<string, string>
  /** the signature of each exported function, by name */
  functions: Map<string, string>
  /** names of the exported memories */
  memories: Set<string>
  memory?: MemorySection
}

/**
 * The parts of a valid binary the ABI cares about. Refuses (`WasmImportError`) an import that is
 * not a `flexnode` function of the ABI, and (`InvalidWasmModuleError`) more than one memory, a
 * shared or 64-bit memory, and types this reader does not know (GC).
 */
function readShape (bytes: Uint8Array, options: { cid: string }): ModuleShape {
  const r = new Reader(bytes, 8)
  const types: string[] = []
  const funcTypes: string[] = []
  const shape: ModuleShape = { imports: new Map(), functions: new Map(), memories: new Set() }
  while (r.pos < bytes.byteLength) {
    const start = r.pos
    const id = r.u8()
    const size = r.u32()
    const end = r.pos + size
    if (id === 1) {
      for (let n = r.u32(); n > 0; n--) types.push(r.functype())
    } else if (id === 2) {
      for (let n = r.u32(); n > 0; n--) {
        const mod = r.name()
        const field = r.name()
        const kind = r.u8()
        const name = `${mod}.${field}`
        const abi = mod === 'flexnode' ? ABI_IMPORTS[field] : undefined
        if (abi === undefined || kind !== 0) {
          throw new WasmImportError(name, `a task may import only the functions flexnode.${Object.keys(ABI_IMPORTS).join(', flexnode.')}`, options)
        }
        const type = types[r.u32()] ?? '?'
        if (type !== abi) throw new WasmImportError(name, `its signature is ${type}, the ABI's is ${abi}`, options)
        shape.imports.set(field, type)
        funcTypes.push(type)
      }
    } else if (id === 3) {
      for (let n = r.u32(); n > 0; n--) funcTypes.push(types[r.u32()] ?? '?')
    } else if (id === 5) {
      const count = r.u32()
      if (count > 1) throw new InvalidWasmModuleError('it declares more than one memory', options)
      if (count === 1) {
        const flags = r.u8()
        if ((flags & 0x02) !== 0) throw new InvalidWasmModuleError('its memory is shared (threads), which the task ABI does not support', options)
        if (flags > 0x01) throw new InvalidWasmModuleError('its memory is 64-bit, which the task ABI does not support', options)
        const min = r.u32()
        shape.memory = { start, end, min, ...(flags === 0x01 ? { max: r.u32() } : {}) }
      }
    } else if (id === 7) {
      for (let n = r.u32(); n > 0; n--) {
        const name = r.name()
        const kind = r.u8()
        const index = r.u32()
        if (kind === 0) shape.functions.set(name, funcTypes[index] ?? '?')
        else if (kind === 2) shape.memories.add(name)
      }
    }
    r.pos = end
  }
  return shape
}

/** An unsigned LEB128. */
function leb (n: number): number[] {
  const out: number[] = []
  do {
    let b = n % 128
    n = Math.floor(n / 128)
    if (n > 0) b |= 0x80
    out.push(b)
  } while (n > 0)
  return out
}

/** The binary with its memory section rewritten to declare `max` pages at most. */
function withMemoryMax (bytes: Uint8Array, memory: MemorySection, max: number): Uint8Array {
  const content = [...leb(1), 0x01, ...leb(memory.min), ...leb(max)]
  const section = [5, ...leb(content.length), ...content]
  const out = new Uint8Array(bytes.byteLength - (memory.end - memory.start) + section.length)
  out.set(bytes.subarray(0, memory.start))
  out.set(section, memory.start)
  out.set(bytes.subarray(memory.end), memory.start + section.length)
  return out
}

// -----------------------------------------------------------------------------------------------
// the runner

/** A task's budgets: positive integers, each at most its `WASM_MAX_*`. */
export interface WasmLimits {
  /** the module's linear memory at most, MiB. @default 64 */
  memory_mb?: number
  /** CPU time of the module's run (from instantiation), ms. @default 10000 */
  cpu_ms?: number
  /** wall-clock time from submission (waiting for a thread included), ms. @default 30000 */
  wall_ms?: number
}

/** A compute task: a module by its bytes (`wasm`) or by its CID (`wasm_cid`), or both (then they must agree). */
export interface WasmTask {
  wasm?: Uint8Array
  /** CIDv1 raw sha2-256 of the module's bytes (`wasmCid`) */
  wasm_cid?: string
  /** what the module reads with `input_len` / `input_read`. @default empty */
  input?: Uint8Array
  limits?: WasmLimits
  /** offer `flexnode.clock_ms() -> f64` (ms since the run started); without it, importing it is refused. @default false */
  allow_clock?: boolean
}

/** What a run used. */
export interface WasmUsage {
  /** CPU time of instantiation and `run()` (the thread's own where Node has `process.threadCpuUsage`, ≥ 23.9; else its busy time), ms */
  cpu_ms: number
  /** wall time of instantiation and `run()`, ms */
  wall_ms: number
  /** the module's linear memory at its largest, MiB */
  peak_memory_mb: number
}

/** A run that ended by `run()` returning: its exit code (0 = success, by convention) and what it wrote. */
export interface WasmResult {
  output: Uint8Array
  exit_code: number
  usage: WasmUsage
}

/** Options of one `run`. */
export interface WasmRunOptions {
  /** aborting rejects the run with `AbortError` (the thread running it is terminated) */
  signal?: AbortSignal
}

/** The runner's options, all optional. */
export interface WasmRunnerInit {
  /** the bytes of a module by its CID, for tasks that give only `wasm_cid`; undefined = unknown here. @default none: such tasks fail with WasmModuleNotFoundError unless the module is cached */
  resolve?: (cid: string) => Promise<Uint8Array | undefined>
  /** threads of the pool (each runs one task at a time). @default the number of cores */
  maxThreads?: number
  /** V8 heap of each thread, MiB. @default 64 */
  threadHeapMb?: number
  /** @default 16 MiB */
  maxOutputBytes?: number
  /** @default 16 MiB */
  maxInputBytes?: number
  /** @default 32 MiB */
  maxModuleBytes?: number
  /** compiled modules kept. @default 32 */
  cacheSize?: number
}

/** What the runner needs from the node. */
export interface WasmRunnerComponents {
  logger: ComponentLogger
  /** a pool running `WASM_WORKER` to run on (not disposed with the runner). @default the runner's own */
  pool?: ComputePool<WasmWorkerTask, WasmWorkerOutcome, WasmWorkerEvent>
}

/** A module ready to run: compiled with its memory capped, with what its checks found. */
interface Compiled {
  module: WebAssembly.Module
  /** the memory maximum in pages when the task's limit set it (not the module's own maximum) */
  limitPages?: number
  usesClock: boolean
}

/** A limit of the task, checked: a positive integer at most `max`, or `fallback`. */
function limit (limits: WasmLimits, key: keyof WasmLimits, fallback: number, max: number): number {
  const v = limits[key]
  if (v === undefined) return fallback
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0 || v > max) {
    throw new InvalidInputError(`limits.${key} must be a positive integer of at most ${max}`, { field: `limits.${key}` })
  }
  return v
}

/**
 * Runs WebAssembly compute tasks on a `wasm` pool of worker threads. `run` validates the task,
 * checks and compiles the module (cached), and runs it within its limits; `dispose()` ends the
 * runner's own pool, after which `run` throws `DisposedError`.
 */
export class WasmRunner {
  private readonly init: WasmRunnerInit
  private readonly pool: ComputePool<WasmWorkerTask, WasmWorkerOutcome, WasmWorkerEvent>
  private readonly ownsPool: boolean
  /** compiled modules by `cid:pages`, least recently used first */
  private readonly cache = new Map<string, Promise<Compiled>>()
  private readonly maxOutputBytes: number
  private disposing: Promise<void> | undefined

  constructor (init: WasmRunnerInit, components: WasmRunnerComponents) {
    this.init = init
    this.maxOutputBytes = init.maxOutputBytes ?? WASM_MAX_OUTPUT_BYTES
    this.ownsPool = components.pool === undefined
    this.pool = components.pool ?? new PiscinaPool<WasmWorkerTask, WasmWorkerOutcome, WasmWorkerEvent>({
      module: WASM_WORKER,
      name: 'wasm',
      maxThreads: init.maxThreads ?? availableParallelism(),
      resourceLimits: { maxOldGenerationSizeMb: init.threadHeapMb ?? WASM_THREAD_HEAP_MB }
    }, { logger: components.logger })
  }

  get disposed (): boolean { return this.disposing !== undefined }

  /**
   * Run a task. Rejects with `InvalidInputError` (a malformed task), `WasmModuleNotFoundError`,
   * `InvalidWasmModuleError`, `WasmImportError`, `WasmTrapError`, `WasmMemoryLimitError`,
   * `WasmCpuLimitError`, `WasmWallTimeoutError`, `WasmOutputLimitError` or `AbortError`; a module
   * that returns a non-zero exit code is a result, not an error.
   */
  async run (task: WasmTask, options: WasmRunOptions = {}): Promise<WasmResult> {
    if (this.disposing !== undefined) throw new DisposedError('the WASM runner')
    options.signal?.throwIfAborted()
    const submitted = performance.now()
    if (typeof task !== 'object' || task === null) throw new InvalidInputError('a WASM task must be an object')
    const limits = task.limits ?? {}
    if (typeof limits !== 'object' || limits === null) throw new InvalidInputError('limits must be an object', { field: 'limits' })
    const memoryMb = limit(limits, 'memory_mb', WASM_DEFAULT_MEMORY_MB, WASM_MAX_MEMORY_MB)
    const cpuMs = limit(limits, 'cpu_ms', WASM_DEFAULT_CPU_MS, WASM_MAX_CPU_MS)
    const wallMs = limit(limits, 'wall_ms', WASM_DEFAULT_WALL_MS, WASM_MAX_WALL_MS)
    const input = task.input ?? new Uint8Array(0)
    if (!(input instanceof Uint8Array)) throw new InvalidInputError('input must be bytes (a Uint8Array)', { field: 'input' })
    const maxInput = this.init.maxInputBytes ?? WASM_MAX_INPUT_BYTES
    if (input.byteLength > maxInput) throw new InvalidInputError(`input must be at most ${maxInput} bytes, it is ${input.byteLength}`, { field: 'input' })
    if (task.allow_clock !== undefined && typeof task.allow_clock !== 'boolean') throw new InvalidInputError('allow_clock must be a boolean', { field: 'allow_clock' })

    const { cid, compiled } = await this.compiled(task, memoryMb)
    const ctx = { cid }
    if (compiled.usesClock && task.allow_clock !== true) {
      throw new WasmImportError('flexnode.clock_ms', 'the task does not allow a clock (allow_clock)', ctx)
    }
    const outcome = await this.dispatch({
      module: compiled.module,
      input,
      maxOutputBytes: this.maxOutputBytes,
      allowClock: task.allow_clock === true,
      ...(compiled.limitPages !== undefined ? { limitPages: compiled.limitPages } : {}),
      log: { maxLines: WASM_LOG_MAX_LINES, maxLineBytes: WASM_LOG_MAX_LINE_BYTES },
      logFields: ctx
    }, { cpuMs, wallMs: wallMs - (performance.now() - submitted), wallLimit: wallMs, cid, signal: options.signal })

    if ('failure' in outcome) {
      if (outcome.failure === 'output_limit') throw new WasmOutputLimitError(this.maxOutputBytes, ctx)
      if (outcome.near_memory_limit) throw new WasmMemoryLimitError(memoryMb, `it trapped (${outcome.message}) with ${outcome.usage.peak_memory_mb.toFixed(1)} MiB of memory`, ctx)
      throw new WasmTrapError(outcome.message, ctx)
    }
    if (outcome.exit_code !== 0 && outcome.near_memory_limit) {
      throw new WasmMemoryLimitError(memoryMb, `it exited with ${outcome.exit_code} with ${outcome.usage.peak_memory_mb.toFixed(1)} MiB of memory`, ctx)
    }
    return { output: outcome.output, exit_code: outcome.exit_code, usage: outcome.usage }
  }

  /** Run on the pool, aborted past the CPU budget (from the thread's start of the module) or the wall-clock budget. */
  private async dispatch (task: WasmWorkerTask, o: { cpuMs: number, wallMs: number, wallLimit: number, cid: string, signal?: AbortSignal }): Promise<WasmWorkerOutcome> {
    const ac = new AbortController()
    let stopped: 'cpu' | 'wall' | undefined
    const stop = (why: 'cpu' | 'wall'): void => { stopped ??= why; ac.abort() }
    const wall = setTimeout(stop, Math.max(0, o.wallMs), 'wall')
    let cpu: NodeJS.Timeout | undefined
    const onAbort = (): void => { ac.abort() }
    o.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      return await this.pool.run(task, {
        signal: ac.signal,
        onProgress: (e) => { if (e.type === 'flexnode:wasm:run') cpu ??= setTimeout(stop, o.cpuMs, 'cpu') }
      })
    } catch (err: unknown) {
      if (stopped === 'cpu') throw new WasmCpuLimitError(o.cpuMs, { cid: o.cid })
      if (stopped === 'wall') throw new WasmWallTimeoutError(o.wallLimit, { cid: o.cid })
      if (o.signal?.aborted === true) throw new AbortError('the WASM task was aborted')
      throw err
    } finally {
      clearTimeout(wall)
      clearTimeout(cpu)
      o.signal?.removeEventListener('abort', onAbort)
    }
  }

  /** The task's module, compiled with its memory capped at `memoryMb` (from the cache when it is there). */
  private async compiled (task: WasmTask, memoryMb: number): Promise<{ cid: string, compiled: Compiled }> {
    let bytes: Uint8Array | undefined
    let cid: string
    if (task.wasm !== undefined) {
      if (!(task.wasm instanceof Uint8Array)) throw new InvalidInputError('wasm must be bytes (a Uint8Array)', { field: 'wasm' })
      const max = this.init.maxModuleBytes ?? WASM_MAX_MODULE_BYTES
      if (task.wasm.byteLength > max) throw new InvalidInputError(`wasm must be at most ${max} bytes, it is ${task.wasm.byteLength}`, { field: 'wasm' })
      bytes = task.wasm
      cid = wasmCid(bytes)
      if (task.wasm_cid !== undefined && parseWasmCid(task.wasm_cid) !== cid && isRawSha256(parseWasmCid(task.wasm_cid))) {
        throw new InvalidInputError(`wasm_cid ${task.wasm_cid} is not the CID of the module's bytes (${cid})`, { field: 'wasm_cid' })
      }
    } else if (task.wasm_cid !== undefined) {
      cid = parseWasmCid(task.wasm_cid)
    } else {
      throw new InvalidInputError('a WASM task needs its module: wasm (bytes) or wasm_cid', { field: 'wasm' })
    }
    const key = `${cid}:${memoryMb}`
    let entry = this.cache.get(key)
    if (entry !== undefined) {
      // most recently used last
      this.cache.delete(key)
      this.cache.set(key, entry)
    } else {
      entry = this.compile(cid, bytes, memoryMb)
      this.cache.set(key, entry)
      for (const old of this.cache.keys()) {
        if (this.cache.size <= (this.init.cacheSize ?? WASM_MODULE_CACHE_SIZE)) break
        this.cache.delete(old)
      }
      // a module that fails is checked again next time (its bytes may turn up, a new limit…)
      entry.catch(() => { if (this.cache.get(key) === entry) this.cache.delete(key) })
    }
    return { cid, compiled: await entry }
  }

  private async compile (cid: string, given: Uint8Array | undefined, memoryMb: number): Promise<Compiled> {
    let bytes = given
    if (bytes === undefined) {
      bytes = await this.init.resolve?.(cid)
      if (bytes === undefined) throw new WasmModuleNotFoundError(cid)
      if (isRawSha256(cid) && wasmCid(bytes) !== cid) throw new InvalidWasmModuleError(`the bytes found for ${cid} hash to ${wasmCid(bytes)}`, { cid })
    }
    const ctx = { cid }
    if (!WebAssembly.validate(bytes)) {
      const magic = bytes.byteLength >= 4 && bytes[0] === 0 && bytes[1] === 0x61 && bytes[2] === 0x73 && bytes[3] === 0x6d
      let reason = magic ? 'it does not validate' : 'it is not WebAssembly (no \\0asm magic number)'
      if (magic) {
        try { await WebAssembly.compile(bytes) } catch (err: unknown) { reason = err instanceof Error ? err.message : String(err) }
      }
      throw new InvalidWasmModuleError(reason, ctx)
    }
    const shape = readShape(bytes, ctx)
    const run = shape.functions.get('run')
    if (run === undefined) throw new InvalidWasmModuleError('it exports no function run', ctx)
    if (run !== '() -> (i32)') throw new InvalidWasmModuleError(`its run is ${run}, the ABI's is () -> (i32)`, ctx)
    if (!shape.memories.has('memory')) throw new InvalidWasmModuleError('it exports no memory named memory', ctx)
    const memory = shape.memory
    const cap = memoryMb * PAGES_PER_MB
    if (memory === undefined) throw new InvalidWasmModuleError('it defines no memory', ctx)
    if (memory.min > cap) throw new WasmMemoryLimitError(memoryMb, `its initial memory is ${memory.min * PAGE / 1_048_576} MiB`, ctx)
    const limitPages = memory.max === undefined || memory.max > cap ? cap : undefined
    try {
      const module = await WebAssembly.compile(limitPages !== undefined ? withMemoryMax(bytes, memory, limitPages) : bytes)
      return { module, usesClock: shape.imports.has('clock_ms'), ...(limitPages !== undefined ? { limitPages } : {}) }
    } catch (err: unknown) {
      throw new InvalidWasmModuleError(err instanceof Error ? err.message : String(err), { cid, cause: err })
    }
  }

  /** End the runner's own pool (running tasks fail); idempotent. */
  async dispose (): Promise<void> {
    this.disposing ??= (async () => {
      this.cache.clear()
      if (this.ownsPool) await this.pool.dispose()
    })()
    await this.disposing
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.dispose() }
}

/** The factory: `wasmRunner(init)({ logger })`. */
export function wasmRunner (init: WasmRunnerInit = {}): (components: WasmRunnerComponents) => WasmRunner {
  return (components) => new WasmRunner(init, components)
}
