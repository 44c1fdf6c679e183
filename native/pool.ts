/**
 * `ComputePool<Task, Result, Event>`: the one facade every kind of heavy work runs behind
 * (llama models, and later hnsw shards, WASM tasks, hashing). Two implementations:
 *
 * - `PiscinaPool`: worker threads (piscina). The caller's `signal` is forwarded to `pool.run`
 *   (an aborted running task's thread is terminated and replaced), buffers listed in `transfer`
 *   are moved, not copied (results a handler returns as buffers come back with `Piscina.move`),
 *   `resourceLimits` bound each thread's heap.
 * - `ProcessPool`: one child process serving concurrent tasks, for native code that may abort the
 *   whole process it runs in (llama.cpp's GGML_ASSERT, an exception escaping a native callback):
 *   a worker thread cannot contain that, a process can. The caller's `signal` is forwarded as an
 *   abort of that task (the handler sees its own `AbortSignal`); `resourceLimits` become the
 *   process's V8 heap limit; a crashed process fails its pending tasks with `WorkerCrashedError`
 *   and the next task starts a new one.
 *
 * Both run the same kind of worker module (`native/workers/task.ts`): it exports
 * `handler(task, { signal, progress, log })` and optionally `dispose()`. Progress comes back as
 * namespaced events (`{ type: 'flexnode:model:load', progress }`), worker log lines go into the
 * node's pino logger under the pool's component name, a handler's thrown error comes back as
 * `WorkerTaskError` (its `remoteName` kept), an abort as `AbortError`, and using a disposed pool
 * throws `DisposedError`. `dispose()` is idempotent.
 *
 * ```ts
 * const pool = createPiscinaPool<HashTask, Uint8Array>({ module: HASH_WORKER, name: 'hash' })({ logger })
 * const digest = await pool.run({ bytes }, { signal, transfer: [bytes.buffer] })
 * await pool.dispose()
 * ```
 */
import { fork, type ChildProcess } from 'node:child_process'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { MessageChannel, type MessagePort, type ResourceLimits } from 'node:worker_threads'
import { Piscina } from 'piscina'
import { AbortError, DisposedError, errorMessage, FlexnodeError } from '../agent/src/errors.ts'
import type { ComponentLogger } from '../agent/src/logger.ts'
import type { HostReply, HostRequest, PortMessage, TaskOutcome, WorkerLogLevel } from './workers/task.ts'

const WORKERS = join(dirname(fileURLToPath(import.meta.url)), 'workers')
/** piscina's entry: registers tsx in the thread, then serves the module named in workerData */
const PISCINA_ENTRY = join(WORKERS, 'piscina-host.mjs')
/** the child process entry: registers tsx, then serves the module named on its command line */
const PROCESS_ENTRY = join(WORKERS, 'process-host.mjs')

/** Grace a process gets after `dispose()` to free its resources and exit before it is killed. */
export const DEFAULT_EXIT_GRACE_MS = 5_000
/** An idle worker thread ends after this many ms. */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000

/** A progress event: `type` is namespaced (`flexnode:model:load`), the rest is the event's own. */
export interface PoolEvent { type: string }

export interface RunOptions<E extends PoolEvent = PoolEvent> {
  /** aborting rejects the run with `AbortError`; the pool keeps serving */
  signal?: AbortSignal
  /** the task's progress events, as the worker reports them */
  onProgress?: (event: E) => void
  /** buffers moved to a worker thread (detached here afterwards), not copied; a process gets a copy */
  transfer?: ArrayBuffer[]
}

export interface ComputePool<Task, Result, E extends PoolEvent = PoolEvent> {
  run: (task: Task, options?: RunOptions<E>) => Promise<Result>
  /** free the workers; idempotent; `run` afterwards throws `DisposedError` */
  dispose: () => Promise<void>
  [Symbol.asyncDispose]: () => Promise<void>
  readonly disposed: boolean
}

export interface ComputePoolInit {
  /** the worker module (a file path): exports `handler` and optionally `dispose` */
  module: string
  /** names the pool in logs (`flexnode:pool:<name>`) and errors */
  name: string
  /** fields added to every log line of the workers (`{ model: id }`). @default none */
  logFields?: Record<string, unknown>
  /** heap limits of each worker (a process maps `maxOldGenerationSizeMb` to its heap limit). @default none */
  resourceLimits?: ResourceLimits
}

export interface ComputePoolComponents {
  logger: ComponentLogger
}

/** A worker (thread or process) died while it ran the task: the task is lost, the pool keeps serving. */
export class WorkerCrashedError extends FlexnodeError {
  static override readonly name = 'WorkerCrashedError'
  readonly pool: string
  /** `exit code 1`, `signal SIGKILL`, or the thread's error */
  readonly reason: string

  constructor (pool: string, reason: string, options?: ErrorOptions) {
    super(`a worker of the ${pool} pool stopped: ${reason}`, options)
    this.pool = pool
    this.reason = reason
  }
}

/** The task's handler threw: `remoteName` and the message are the worker's error's. */
export class WorkerTaskError extends FlexnodeError {
  static override readonly name = 'WorkerTaskError'
  readonly pool: string
  /** the `name` of the error the handler threw (`Error`, `InvalidGgufError`…) */
  readonly remoteName: string

  constructor (pool: string, remote: { name: string, message: string }) {
    super(remote.message)
    this.pool = pool
    this.remoteName = remote.name
  }
}

/** A log line of a worker into the pool's component logger. */
function logInto (log: ComponentLogger, level: WorkerLogLevel, msg: string, fields?: Record<string, unknown>, bound?: Record<string, unknown>): void {
  if (fields === undefined && bound === undefined) log[level](msg)
  else log[level]({ ...bound, ...fields }, msg)
}

/** The typed error of a finished run: the handler's error, or an abort when the task saw one. */
function outcome<R> (pool: string, o: TaskOutcome): R {
  if ('ok' in o) return o.ok as R
  if (o.err.name === 'AbortError') throw new AbortError(o.err.message)
  throw new WorkerTaskError(pool, o.err)
}

// -----------------------------------------------------------------------------------------------
// worker threads

export interface PiscinaPoolInit extends ComputePoolInit {
  /** @default piscina's (from the number of cores) */
  maxThreads?: number
  /** @default 30000 */
  idleTimeoutMs?: number
}

/** A task and its port; or a no-op that only makes piscina start a thread (`PiscinaPool.refill`). */
type PiscinaEnvelope = { task: unknown, port: MessagePort } | { refill: true }

export class PiscinaPool<Task, Result, E extends PoolEvent = PoolEvent> implements ComputePool<Task, Result, E> {
  private readonly piscina: Piscina<PiscinaEnvelope, TaskOutcome | ArrayBuffer | ArrayBufferView>
  private readonly name: string
  private readonly log: ComponentLogger
  private readonly logFields: Record<string, unknown> | undefined
  private closing: Promise<void> | undefined

  constructor (init: PiscinaPoolInit, components: ComputePoolComponents) {
    this.name = init.name
    this.logFields = init.logFields
    this.log = components.logger.forComponent(`flexnode:pool:${init.name}`)
    this.piscina = new Piscina({
      filename: pathToFileURL(PISCINA_ENTRY).href,
      workerData: { module: pathToFileURL(init.module).href },
      resourceLimits: init.resourceLimits,
      maxThreads: init.maxThreads,
      minThreads: 0,
      // a thread's start (tsx, the module) costs far more than a task: idle threads stay a while
      idleTimeout: init.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS
    })
    // a thread that fails outside a task (start-up) is logged; its tasks fail on their own
    this.piscina.on('error', (err: unknown) => { this.log.warn({ err: errorMessage(err) }, 'worker thread error') })
  }

  get disposed (): boolean { return this.closing !== undefined }

  async run (task: Task, options: RunOptions<E> = {}): Promise<Result> {
    if (this.closing !== undefined) throw new DisposedError(`the ${this.name} pool`)
    options.signal?.throwIfAborted()
    const { port1, port2 } = new MessageChannel()
    // the host's last message on the port: every event and log line has arrived by then
    const drained = Promise.withResolvers<void>()
    port1.on('message', (m: PortMessage) => {
      if ('event' in m) options.onProgress?.(m.event as E)
      else if ('log' in m) logInto(this.log, m.log.level, m.log.msg, m.log.fields, this.logFields)
      else drained.resolve()
    })
    try {
      const o = await this.piscina.run({ task, port: port2 }, { signal: options.signal, transferList: [port2, ...(options.transfer ?? [])] })
      await drained.promise
      // a buffer result comes back moved, as itself (the host's `Piscina.move`)
      if (o instanceof ArrayBuffer || ArrayBuffer.isView(o)) return o as Result
      return outcome<Result>(this.name, o)
    } catch (err: unknown) {
      if (err instanceof FlexnodeError) throw err
      // the task's thread may be gone (terminated by the abort, or crashed)
      this.refill()
      if (options.signal?.aborted === true) throw new AbortError(`the ${this.name} task was aborted`)
      if (this.closing !== undefined) throw new DisposedError(`the ${this.name} pool`)
      throw new WorkerCrashedError(this.name, errorMessage(err), { cause: err })
    } finally {
      port1.close()
    }
  }

  /**
   * piscina (5.3) replaces a terminated or crashed thread only up to `minThreads` (0 here), and
   * starts threads only when a task is submitted: the tasks waiting in its queue would wait for
   * the next `run`. A no-op task submitted while tasks wait makes it start a thread for them.
   */
  private refill (): void {
    if (this.closing !== undefined || this.piscina.queueSize === 0) return
    this.piscina.run({ refill: true }).catch(() => {})
  }

  async dispose (): Promise<void> {
    this.closing ??= this.piscina.destroy()
    await this.closing
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.dispose() }
}

export function createPiscinaPool<Task, Result, E extends PoolEvent = PoolEvent> (init: PiscinaPoolInit): (components: ComputePoolComponents) => PiscinaPool<Task, Result, E> {
  return (components) => new PiscinaPool<Task, Result, E>(init, components)
}

// -----------------------------------------------------------------------------------------------
// a child process

export interface ProcessPoolInit extends ComputePoolInit {
  /** after `dispose()`, ms the process gets to run the module's `dispose` and exit before it is killed. @default 5000 */
  exitGraceMs?: number
  /** the process stopped without `dispose()` (crashed, killed); its pending tasks failed with WorkerCrashedError */
  onExit?: (reason: string) => void
}

interface Pending {
  resolve: (o: TaskOutcome) => void
  reject: (err: Error) => void
  onProgress?: (event: never) => void
}

/** One running child process and its pending tasks. */
class Child {
  readonly proc: ChildProcess
  readonly exited: Promise<string>
  readonly pending = new Map<number, Pending>()
  exitReason: string | undefined

  constructor (init: ProcessPoolInit, log: ComponentLogger, onExit: (child: Child, reason: string) => void) {
    const heap = init.resourceLimits?.maxOldGenerationSizeMb
    this.proc = fork(PROCESS_ENTRY, [pathToFileURL(init.module).href], {
      serialization: 'advanced',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // no flags of the node's own process (inspector, loaders): the entry registers tsx itself
      execArgv: heap !== undefined ? [`--max-old-space-size=${heap}`] : []
    })
    const done = Promise.withResolvers<string>()
    this.exited = done.promise
    this.proc.on('message', (m: HostReply) => {
      if ('log' in m) { logInto(log, m.log.level, m.log.msg, m.log.fields, init.logFields); return }
      const p = this.pending.get(m.id)
      if (p === undefined) return
      if ('event' in m) p.onProgress?.(m.event as never)
      else { this.pending.delete(m.id); p.resolve(m.outcome) }
    })
    this.proc.on('error', (err) => { log.warn({ err: errorMessage(err) }, 'worker process error') })
    this.proc.on('exit', (code, signal) => {
      this.exitReason = signal !== null ? `signal ${signal}` : `exit code ${String(code)}`
      const err = new WorkerCrashedError(init.name, this.exitReason)
      for (const p of this.pending.values()) p.reject(err)
      this.pending.clear()
      done.resolve(this.exitReason)
      onExit(this, this.exitReason)
    })
    for (const [stream, level] of [[this.proc.stderr, 'warn'], [this.proc.stdout, 'debug']] as const) {
      if (stream === null) continue
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        const text = line.trim()
        if (text.length > 0) logInto(log, level, text, undefined, init.logFields)
      })
    }
  }

  send (m: HostRequest): boolean {
    if (this.exitReason !== undefined || !this.proc.connected) return false
    try {
      this.proc.send(m)
      return true
    } catch {
      return false
    }
  }
}

export class ProcessPool<Task, Result, E extends PoolEvent = PoolEvent> implements ComputePool<Task, Result, E> {
  private readonly init: ProcessPoolInit
  private readonly log: ComponentLogger
  private child: Child | undefined
  private nextId = 0
  private closing: Promise<void> | undefined

  constructor (init: ProcessPoolInit, components: ComputePoolComponents) {
    this.init = init
    this.log = components.logger.forComponent(`flexnode:pool:${init.name}`)
  }

  get disposed (): boolean { return this.closing !== undefined }

  /** the process serving tasks now, if one runs */
  get pid (): number | undefined { return this.child?.exitReason === undefined ? this.child?.proc.pid : undefined }

  private current (): Child {
    if (this.child === undefined || this.child.exitReason !== undefined) {
      this.child = new Child(this.init, this.log, (child, reason) => {
        if (this.closing !== undefined || child !== this.child) return
        this.log.warn({ reason }, 'worker process stopped')
        this.init.onExit?.(reason)
      })
    }
    return this.child
  }

  /**
   * An aborted task is told to stop (its handler's signal fires) and the run rejects with
   * AbortError once the handler returns, so whatever the task held is free again by then.
   */
  async run (task: Task, options: RunOptions<E> = {}): Promise<Result> {
    if (this.closing !== undefined) throw new DisposedError(`the ${this.init.name} pool`)
    const { signal } = options
    signal?.throwIfAborted()
    const child = this.current()
    const id = this.nextId++
    const d = Promise.withResolvers<TaskOutcome>()
    child.pending.set(id, { resolve: d.resolve, reject: d.reject, onProgress: options.onProgress as ((e: never) => void) | undefined })
    if (!child.send({ id, task })) {
      child.pending.delete(id)
      throw new WorkerCrashedError(this.init.name, child.exitReason ?? 'the process is not reachable')
    }
    const onAbort = (): void => { child.send({ id, abort: true }) }
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      const o = await d.promise
      if (signal?.aborted === true && 'err' in o) throw new AbortError(`the ${this.init.name} task was aborted`)
      return outcome<Result>(this.init.name, o)
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
  }

  /** Run the module's `dispose` in the process, let it exit; kill it after the grace period. */
  async dispose (): Promise<void> {
    this.closing ??= (async () => {
      const child = this.child
      if (child === undefined || child.exitReason !== undefined) return
      const grace = this.init.exitGraceMs ?? DEFAULT_EXIT_GRACE_MS
      const id = this.nextId++
      const freed = new Promise<void>((resolve) => { child.pending.set(id, { resolve: () => { resolve() }, reject: () => { resolve() } }) })
      const timer = (): { promise: Promise<void>, cancel: () => void } => {
        let t: NodeJS.Timeout | undefined
        return { promise: new Promise<void>((resolve) => { t = setTimeout(resolve, grace) }), cancel: () => { clearTimeout(t) } }
      }
      if (child.send({ id, dispose: true })) {
        const wait = timer()
        await Promise.race([freed, child.exited, wait.promise])
        wait.cancel()
      }
      for (const [pid, p] of child.pending) if (pid !== id) p.reject(new DisposedError(`the ${this.init.name} pool`))
      child.pending.clear()
      // the process exits when its IPC channel closes
      if (child.proc.connected) child.proc.disconnect()
      const kill = setTimeout(() => { child.proc.kill('SIGKILL') }, grace)
      await child.exited
      clearTimeout(kill)
    })()
    await this.closing
  }

  /** end the process at once (a load that must not go on); pending tasks fail with WorkerCrashedError */
  kill (): void {
    if (this.child !== undefined && this.child.exitReason === undefined) this.child.proc.kill('SIGKILL')
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.dispose() }
}

export function createProcessPool<Task, Result, E extends PoolEvent = PoolEvent> (init: ProcessPoolInit): (components: ComputePoolComponents) => ProcessPool<Task, Result, E> {
  return (components) => new ProcessPool<Task, Result, E>(init, components)
}
