/**
 * One model served from its own child process (`native/workers/llama-worker.ts`): the model and
 * its context live there, so tokenization, sampling and chat formatting never run on the node's
 * event loop, and a native abort in llama.cpp (a GGML_ASSERT, an exception escaping a native
 * callback while a thread is torn down) ends that process, never the node. A worker thread cannot
 * contain such an abort: it takes the whole process down.
 *
 * Requests and replies travel over the child's IPC channel; generated text streams back as
 * `{id, t}` messages, an abort sends `{id, abort: true}`. When the process exits, every pending
 * request fails with `ModelCrashedError` and `onExit` tells the engine. Callers must keep at most
 * `sequences` generations in flight (the engine's queue does), so the process always has a free
 * context sequence.
 *
 * ```ts
 * const pool = await LlamaPool.open({ modelPath, contextSize: 2048, threads: 1, sequences: 2, gpu: false, gpuLayers: 0 })
 * const { text } = await pool.generate({ op: 'complete', prompt: 'Hi', maxTokens: 8, temperature: 0 }, { signal, onText })
 * await pool.dispose()
 * ```
 */
import { fork, type ChildProcess } from 'node:child_process'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { GenerateOutcome, GenerateTask, LlamaReply, LlamaRequest, LlamaTask, LoadOutcome } from '../../../native/workers/llama-worker.ts'
import { MODEL_PROCESS_EXIT_GRACE_MS } from './constants.ts'
import { ModelCrashedError, RequestAbortedError } from './types.ts'

/** The process entry: a plain ES module that registers tsx, then runs the TypeScript program. */
const WORKER = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'native', 'workers', 'llama-worker.mjs')

export type LlamaLogLevel = 'error' | 'warn' | 'info' | 'debug'

export interface LlamaPoolInit {
  modelPath: string
  contextSize: number
  threads: number
  sequences: number
  gpu: boolean
  /** layers to offload to the GPU (0 on CPU): the number the memory estimate used */
  gpuLayers: number
  onProgress?: (progress: number) => void
  /** aborting kills the process that is loading the model */
  signal?: AbortSignal
  /** llama.cpp's log lines and anything else the process writes to stderr */
  log?: (level: LlamaLogLevel, text: string) => void
  /** the process ended without `dispose()`: it crashed or was killed */
  onExit?: (reason: string) => void
}

/** A generation as the process takes it. */
export type PoolGenerateRequest = GenerateTask

interface Pending {
  resolve: (value: unknown) => void
  reject: (err: Error) => void
  onText?: (text: string) => void
  onProgress?: (progress: number) => void
}

export class LlamaPool {
  readonly contextSize: number
  /** layers the model was loaded with on the GPU */
  readonly gpuLayers: number
  readonly pid: number
  private readonly conn: Connection

  private constructor (conn: Connection, loaded: LoadOutcome) {
    this.conn = conn
    this.contextSize = loaded.contextSize
    this.gpuLayers = loaded.gpuLayers
    this.pid = conn.child.pid ?? -1
  }

  static async open (init: LlamaPoolInit): Promise<LlamaPool> {
    init.signal?.throwIfAborted()
    const conn = new Connection(init)
    const onAbort = (): void => { conn.kill() }
    init.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      const loaded = await conn.call({ op: 'load', modelPath: init.modelPath, contextSize: init.contextSize, threads: init.threads, sequences: init.sequences, gpu: init.gpu, gpuLayers: init.gpuLayers }, { onProgress: init.onProgress }) as LoadOutcome
      init.signal?.throwIfAborted()
      conn.onExit = init.onExit
      return new LlamaPool(conn, loaded)
    } catch (err) {
      await conn.close()
      if (init.signal?.aborted === true) throw new RequestAbortedError('the model load was aborted', { cause: err })
      throw err
    } finally {
      init.signal?.removeEventListener('abort', onAbort)
    }
  }

  async tokenCounts (texts: string[]): Promise<number[]> {
    return await this.conn.call({ op: 'tokenize', texts }) as number[]
  }

  async generate (req: PoolGenerateRequest, o: { signal: AbortSignal, onText: (t: string) => void }): Promise<GenerateOutcome> {
    const { id, promise } = this.conn.start(req, { onText: o.onText })
    const onAbort = (): void => { this.conn.send({ id, abort: true }) }
    o.signal.addEventListener('abort', onAbort, { once: true })
    try {
      return await promise as GenerateOutcome
    } finally {
      o.signal.removeEventListener('abort', onAbort)
    }
  }

  async embed (input: string[]): Promise<number[][]> {
    return await this.conn.call({ op: 'embed', input }) as number[][]
  }

  /** Free the model and end its process. Idempotent. */
  async dispose (): Promise<void> {
    await this.conn.close()
  }
}

/** The child process and its request/reply bookkeeping. */
class Connection {
  readonly child: ChildProcess
  onExit: ((reason: string) => void) | undefined
  private readonly pending = new Map<number, Pending>()
  private readonly exited: Promise<void>
  private readonly log: LlamaPoolInit['log']
  private nextId = 0
  private closing: Promise<void> | undefined
  private exitReason: string | undefined

  constructor (init: LlamaPoolInit) {
    this.log = init.log
    this.child = fork(WORKER, [], {
      serialization: 'advanced',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // the entry registers tsx itself; no flags of the node's own process (inspector, loaders)
      execArgv: []
    })
    const done = Promise.withResolvers<void>()
    this.exited = done.promise
    this.child.on('message', (m: LlamaReply) => { this.onMessage(m) })
    this.child.on('error', (err) => { this.log?.('warn', `model process error: ${err.message}`) })
    this.child.on('exit', (code, signal) => {
      this.exitReason = signal !== null ? `signal ${signal}` : `exit code ${String(code)}`
      const err = new ModelCrashedError(`the model process stopped (${this.exitReason})`)
      for (const p of this.pending.values()) p.reject(err)
      this.pending.clear()
      done.resolve()
      if (this.closing === undefined) this.onExit?.(this.exitReason)
    })
    for (const [stream, level] of [[this.child.stderr, 'warn'], [this.child.stdout, 'debug']] as const) {
      if (stream === null) continue
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        const text = line.trim()
        if (text.length > 0) this.log?.(level, text)
      })
    }
  }

  private onMessage (m: LlamaReply): void {
    if ('log' in m) {
      this.log?.(m.log, m.text)
      return
    }
    const p = this.pending.get(m.id)
    if (p === undefined) return
    if ('t' in m) p.onText?.(m.t)
    else if ('progress' in m) p.onProgress?.(m.progress)
    else if ('ok' in m) { this.pending.delete(m.id); p.resolve(m.ok) }
    else if ('err' in m) {
      this.pending.delete(m.id)
      const err = new Error(m.err.message)
      err.name = m.err.name
      p.reject(err)
    }
  }

  send (m: LlamaRequest): boolean {
    if (!this.child.connected) return false
    try {
      this.child.send(m)
      return true
    } catch {
      return false
    }
  }

  start (task: LlamaTask, hooks: Pick<Pending, 'onText' | 'onProgress'> = {}): { id: number, promise: Promise<unknown> } {
    const id = this.nextId++
    const d = Promise.withResolvers<unknown>()
    if (this.exitReason !== undefined || this.closing !== undefined) {
      d.reject(new ModelCrashedError(`the model process is not running (${this.exitReason ?? 'disposed'})`))
      return { id, promise: d.promise }
    }
    this.pending.set(id, { resolve: d.resolve, reject: d.reject, ...hooks })
    if (!this.send({ ...task, id })) {
      this.pending.delete(id)
      d.reject(new ModelCrashedError('the model process is not reachable'))
    }
    return { id, promise: d.promise }
  }

  async call (task: LlamaTask, hooks: Pick<Pending, 'onText' | 'onProgress'> = {}): Promise<unknown> {
    return await this.start(task, hooks).promise
  }

  kill (): void {
    if (this.exitReason === undefined) this.child.kill('SIGKILL')
  }

  /** Ask the process to free the model and exit; kill it if it does not within the grace period. */
  async close (): Promise<void> {
    this.closing ??= (async () => {
      if (this.exitReason === undefined) {
        const id = this.nextId++
        const freed = new Promise<void>((resolve) => {
          this.pending.set(id, { resolve: () => { resolve() }, reject: () => { resolve() } })
        })
        if (this.send({ op: 'dispose', id })) await Promise.race([freed, this.exited, sleep(MODEL_PROCESS_EXIT_GRACE_MS)])
        // the process exits when its IPC channel closes
        if (this.child.connected) this.child.disconnect()
        const timer = setTimeout(() => { this.child.kill('SIGKILL') }, MODEL_PROCESS_EXIT_GRACE_MS)
        await this.exited
        clearTimeout(timer)
      }
    })()
    await this.closing
  }
}

async function sleep (ms: number): Promise<void> {
  await new Promise<void>((resolve) => { setTimeout(resolve, ms).unref() })
}
