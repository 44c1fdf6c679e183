/**
 * One model served from its own child process: a `ProcessPool` (`native/pool.ts`) running the
 * llama worker module (`native/workers/llama-worker.ts`). The model and its context live there,
 * so tokenization, sampling and chat formatting never run on the node's event loop, and a native
 * abort in llama.cpp (a GGML_ASSERT, an exception escaping a native callback while a thread is
 * torn down) ends that process, never the node. A worker thread (`PiscinaPool`) cannot contain
 * such an abort: it takes the whole process down, which is why llama keeps a process of its own
 * behind the same `ComputePool` interface.
 *
 * Generated text streams back as `flexnode:model:text` events, load progress as
 * `flexnode:model:load` events; a caller's signal aborts its own task. When the process exits,
 * every pending request fails with `ModelCrashedError` and `onExit` tells the engine. Callers must
 * keep at most `sequences` generations in flight (the engine's queue does), so the process always
 * has a free context sequence.
 *
 * ```ts
 * const pool = await LlamaPool.open({ modelPath, contextSize: 2048, threads: 1, sequences: 2, gpu: false, gpuLayers: 0 }, { logger })
 * const { text } = await pool.generate({ op: 'complete', prompt: 'Hi', maxTokens: 8, temperature: 0 }, { signal, onText })
 * await pool.dispose()
 * ```
 */
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ProcessPool, WorkerCrashedError } from '../../../native/pool.ts'
import type { GenerateOutcome, GenerateTask, LlamaEvent, LlamaTask, LoadOutcome, LoadTask } from '../../../native/workers/llama-worker.ts'
import type { ComponentLogger } from '../logger.ts'
import { MODEL_PROCESS_EXIT_GRACE_MS } from './constants.ts'
import { ModelCrashedError, RequestAbortedError } from './types.ts'

const WORKER = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'native', 'workers', 'llama-worker.ts')

export interface LlamaPoolInit {
  modelPath: string
  contextSize: number
  threads: number
  sequences: number
  gpu: boolean
  /** layers to offload to the GPU (0 on CPU): the number the memory estimate used */
  gpuLayers: number
  /** `flexnode:model:load` events while the model loads */
  onProgress?: (event: Extract<LlamaEvent, { type: 'flexnode:model:load' }>) => void
  /** aborting kills the process that is loading the model */
  signal?: AbortSignal
  /** the process ended without `dispose()`: it crashed or was killed */
  onExit?: (reason: string) => void
  /** llama.cpp's lines at this level and above reach the logger. @default 'warn' */
  logLevel?: LoadTask['logLevel']
  /** fields on every log line of the process (`{ model: id }`) */
  logFields?: Record<string, unknown>
}

export interface LlamaPoolComponents {
  /** llama.cpp's log lines and anything else the process writes go here */
  logger: ComponentLogger
}

/** A generation as the process takes it. */
export type PoolGenerateRequest = GenerateTask

export class LlamaPool {
  readonly contextSize: number
  /** layers the model was loaded with on the GPU */
  readonly gpuLayers: number
  readonly pid: number
  private readonly pool: ProcessPool<LlamaTask, unknown, LlamaEvent>

  private constructor (pool: ProcessPool<LlamaTask, unknown, LlamaEvent>, loaded: LoadOutcome) {
    this.pool = pool
    this.contextSize = loaded.contextSize
    this.gpuLayers = loaded.gpuLayers
    this.pid = pool.pid ?? -1
  }

  static async open (init: LlamaPoolInit, components: LlamaPoolComponents): Promise<LlamaPool> {
    init.signal?.throwIfAborted()
    let exited: ((reason: string) => void) | undefined
    const pool = new ProcessPool<LlamaTask, unknown, LlamaEvent>({
      module: WORKER,
      name: 'llama',
      exitGraceMs: MODEL_PROCESS_EXIT_GRACE_MS,
      logFields: init.logFields,
      onExit: (reason) => { exited?.(reason) }
    }, components)
    // a load does not wait for llama.cpp to notice: its process goes at once
    const onAbort = (): void => { pool.kill() }
    init.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      const loaded = await pool.run({ op: 'load', modelPath: init.modelPath, contextSize: init.contextSize, threads: init.threads, sequences: init.sequences, gpu: init.gpu, gpuLayers: init.gpuLayers, logLevel: init.logLevel }, {
        onProgress: (e) => { if (e.type === 'flexnode:model:load') init.onProgress?.(e) }
      }) as LoadOutcome
      init.signal?.throwIfAborted()
      exited = init.onExit
      return new LlamaPool(pool, loaded)
    } catch (err) {
      await pool.dispose()
      if (init.signal?.aborted === true) throw new RequestAbortedError('the model load was aborted', { cause: err })
      throw typed(err)
    } finally {
      init.signal?.removeEventListener('abort', onAbort)
    }
  }

  async tokenCounts (texts: string[], options: { signal?: AbortSignal } = {}): Promise<number[]> {
    return await this.call({ op: 'tokenize', texts }, options) as number[]
  }

  async generate (req: PoolGenerateRequest, o: { signal: AbortSignal, onText: (t: string) => void }): Promise<GenerateOutcome> {
    return await this.call(req, { signal: o.signal, onProgress: (e) => { if (e.type === 'flexnode:model:text') o.onText(e.text) } }) as GenerateOutcome
  }

  async embed (input: string[], options: { signal?: AbortSignal } = {}): Promise<number[][]> {
    return await this.call({ op: 'embed', input }, options) as number[][]
  }

  /** Free the model and end its process. Idempotent; using the pool afterwards throws DisposedError (so do requests it cut short). */
  async dispose (): Promise<void> {
    await this.pool.dispose()
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.dispose() }

  private async call (task: LlamaTask, options: { signal?: AbortSignal, onProgress?: (e: LlamaEvent) => void }): Promise<unknown> {
    try {
      return await this.pool.run(task, options)
    } catch (err: unknown) {
      throw typed(err)
    }
  }
}

/** The pool's errors in the inference layer's terms: a crash is ModelCrashedError. */
function typed (err: unknown): unknown {
  if (err instanceof WorkerCrashedError) return new ModelCrashedError(`the model process stopped (${err.reason})`, { cause: err })
  return err
}
