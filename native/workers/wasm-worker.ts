/**
 * The worker module of the `wasm` pool (`agent/src/resources/wasm.ts`), run by a `PiscinaPool`
 * (`native/pool.ts`): one task instantiates one WebAssembly module, already compiled, checked and
 * memory-capped by the runner on the main thread (a `WebAssembly.Module` crosses to the thread
 * without being compiled again), with only the task ABI's `flexnode` imports, and calls its
 * `run()`. No filesystem, no network: the module sees nothing but these imports.
 *
 * The handler reports `{ type: 'flexnode:wasm:run' }` just before instantiation, so the runner
 * counts the CPU budget from there; the runner ends a task past its CPU or wall budget by aborting
 * it (piscina terminates this thread and starts another). Everything a module does wrong here
 * (a trap, an out-of-bounds pointer, too much output) comes back as an outcome value, never as a
 * thrown error, so the runner turns it into its typed error with the task's context.
 *
 * ```ts
 * const pool = createPiscinaPool<WasmWorkerTask, WasmWorkerOutcome, WasmWorkerEvent>({ module: WASM_WORKER, name: 'wasm' })({ logger })
 * const outcome = await pool.run({ module, input, maxOutputBytes: 1 << 20, allowClock: false, limitPages: 1024, log: { maxLines: 100, maxLineBytes: 1024 } })
 * ```
 */
import type { TaskContext, TaskHandler } from './task.ts'

const PAGE = 65_536
const MIB = 1_048_576

/** One run, as the runner hands it to a thread. */
export interface WasmWorkerTask {
  /** compiled, checked (imports, exports) and with its memory maximum set by the runner */
  module: WebAssembly.Module
  /** what `input_len` / `input_read` give the module */
  input: Uint8Array
  /** `output_write` past this many bytes in all ends the run (`output_limit`) */
  maxOutputBytes: number
  /** offer `flexnode.clock_ms` */
  allowClock: boolean
  /**
   * the memory maximum (pages) when the runner's limit set it, not the module's own declared
   * maximum: a run that fails with its memory this close to the limit failed for memory
   */
  limitPages?: number
  /** bounds on the module's `log` lines */
  log: { maxLines: number, maxLineBytes: number }
  /** fields added to each of the module's log lines (`{ cid }`) */
  logFields?: Record<string, unknown>
}

/** Sent just before the module is instantiated: the CPU budget counts from here. */
export type WasmWorkerEvent = { type: 'flexnode:wasm:run' }

/** What a run used, measured in the thread. */
export interface WasmWorkerUsage {
  /** CPU time of this thread over instantiation and `run()` (`process.threadCpuUsage` where Node has it, else the busy time) */
  cpu_ms: number
  /** wall time of instantiation and `run()` */
  wall_ms: number
  /** the module's linear memory at its largest (memory only grows: its size at the end), MiB */
  peak_memory_mb: number
}

/**
 * How a run ended: `run()` returned (`exit_code`), or it failed: a trap (the WebAssembly trap's
 * message, or an import called with a pointer outside the memory), or more output than allowed.
 * `near_memory_limit`: the memory was within 1 MiB (an eighth of a limit under 8 MiB) of the
 * runner's limit when the run ended.
 */
export type WasmWorkerOutcome =
  | { exit_code: number, output: Uint8Array, usage: WasmWorkerUsage, near_memory_limit: boolean }
  | { failure: 'trap' | 'output_limit', message: string, usage: WasmWorkerUsage, near_memory_limit: boolean }

/** A host import refused its arguments: it ends the run as a trap with this message. */
class HostTrap extends Error {}
/** `output_write` past the maximum output. */
class OutputLimit extends Error {}

/** The output the module appends to, in one buffer that doubles as it fills. */
class Output {
  private buf = new Uint8Array(0)
  private len = 0
  private readonly max: number

  constructor (max: number) { this.max = max }

  append (bytes: Uint8Array): void {
    const need = this.len + bytes.byteLength
    if (need > this.max) throw new OutputLimit(`output_write past the maximum output of ${this.max} bytes`)
    if (need > this.buf.byteLength) {
      const next = new Uint8Array(Math.min(this.max, Math.max(need, 2 * this.buf.byteLength, 4096)))
      next.set(this.buf.subarray(0, this.len))
      this.buf = next
    }
    this.buf.set(bytes, this.len)
    this.len = need
  }

  /** the output, in a buffer of its own size */
  bytes (): Uint8Array {
    return this.len === this.buf.byteLength ? this.buf : this.buf.slice(0, this.len)
  }
}

type ThreadCpu = (previous?: NodeJS.CpuUsage) => NodeJS.CpuUsage
/** `process.threadCpuUsage` (Node ≥ 23.9): the CPU time of this thread alone */
const threadCpu = (process as { threadCpuUsage?: ThreadCpu }).threadCpuUsage

/** The module's `log` lines into the pool's logger: each cut to `maxLineBytes`, at most `maxLines` of them. */
function moduleLog (task: WasmWorkerTask, ctx: TaskContext<WasmWorkerEvent>): { line: (bytes: Uint8Array) => void, end: () => void } {
  const decoder = new TextDecoder()
  let lines = 0
  return {
    line: (bytes) => {
      if (++lines > task.log.maxLines) return
      const cut = bytes.byteLength > task.log.maxLineBytes
      const text = decoder.decode(cut ? bytes.subarray(0, task.log.maxLineBytes) : bytes) + (cut ? '…' : '')
      ctx.log('info', text, { source: 'wasm', ...task.logFields })
    },
    end: () => {
      if (lines > task.log.maxLines) ctx.log('info', `${lines - task.log.maxLines} further log lines of the module were dropped`, { source: 'wasm', ...task.logFields })
    }
  }
}

/** Instantiate the task's module with the ABI's imports and call its `run()`; every failure of the module is an outcome. */
export const handler: TaskHandler<WasmWorkerTask, WasmWorkerOutcome, WasmWorkerEvent> = (task, ctx) => {
  ctx.progress({ type: 'flexnode:wasm:run' })
  const cpu0 = threadCpu?.()
  const t0 = performance.now()
  const output = new Output(task.maxOutputBytes)
  const log = moduleLog(task, ctx)
  const { input } = task
  let memory: WebAssembly.Memory | undefined

  /** the module's bytes [ptr, ptr + len), both read as unsigned, or a trap */
  const view = (what: string, ptr: number, len: number): Uint8Array => {
    if (memory === undefined) throw new HostTrap(`${what} called before the module was instantiated`)
    const size = memory.buffer.byteLength
    const start = ptr >>> 0
    const end = start + (len >>> 0)
    if (end > size) throw new HostTrap(`${what}: bytes [${start}, ${end}) are outside the module's memory of ${size} bytes`)
    return new Uint8Array(memory.buffer, start, end - start)
  }
  const imports: Record<string, (...args: number[]) => number | undefined> = {
    input_len: () => input.byteLength,
    input_read: (ptr, len) => {
      const n = Math.min(len >>> 0, input.byteLength)
      view('input_read', ptr!, n).set(input.subarray(0, n))
      return undefined
    },
    output_write: (ptr, len) => { output.append(view('output_write', ptr!, len!)); return undefined },
    log: (ptr, len) => { log.line(view('log', ptr!, len!)); return undefined }
  }
  if (task.allowClock) imports.clock_ms = () => performance.now() - t0

  const usage = (): WasmWorkerUsage => {
    const wall = performance.now() - t0
    const cpu = cpu0 !== undefined && threadCpu !== undefined ? threadCpu(cpu0) : undefined
    return {
      cpu_ms: cpu !== undefined ? (cpu.user + cpu.system) / 1000 : wall,
      wall_ms: wall,
      peak_memory_mb: (memory?.buffer.byteLength ?? 0) / MIB
    }
  }
  // within 1 MiB (an eighth of a small limit) of the limit: a grow of that much would have failed
  const nearLimit = (): boolean => task.limitPages !== undefined && memory !== undefined &&
    memory.buffer.byteLength + Math.min(MIB, task.limitPages * PAGE / 8) > task.limitPages * PAGE
  try {
    const instance = new WebAssembly.Instance(task.module, { flexnode: imports })
    memory = instance.exports.memory as WebAssembly.Memory
    const exitCode = (instance.exports.run as () => number)()
    return { exit_code: exitCode, output: output.bytes(), usage: usage(), near_memory_limit: nearLimit() }
  } catch (err: unknown) {
    const message = err instanceof Error ? err.message : String(err)
    return { failure: err instanceof OutputLimit ? 'output_limit' : 'trap', message, usage: usage(), near_memory_limit: nearLimit() }
  } finally {
    log.end()
  }
}
