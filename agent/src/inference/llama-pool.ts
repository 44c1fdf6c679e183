/**
 * A worker-thread pool (piscina) serving one model: the model and its context live in the
 * worker (`native/workers/llama-worker.ts`), so tokenization, sampling callbacks and chat
 * formatting never run on the node's main event loop, next to the conductor and libp2p.
 *
 * Generated text streams back over a MessagePort per request; aborting a request posts
 * `{abort: true}` on that port. Callers must keep at most `sequences` generations in flight
 * (the engine's queue does), so the worker always has a free context sequence.
 */
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { MessageChannel } from 'node:worker_threads'
import { Piscina } from 'piscina'
import type { GenerateOutcome, GenerateTask } from '../../../native/workers/llama-worker.ts'

/** The worker entry: a plain ES module that registers tsx in the worker thread, then loads the TS worker. */
const WORKER = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'native', 'workers', 'llama-worker.mjs')

export interface LlamaPoolInit {
  modelPath: string
  contextSize: number
  threads: number
  sequences: number
  gpu: boolean
  onProgress?: (progress: number) => void
  signal?: AbortSignal
}

/** A generation as the worker takes it, without the port the pool adds. */
export type PoolGenerateRequest = Omit<GenerateTask, 'port'>

export class LlamaPool {
  readonly contextSize: number
  private readonly pool: Piscina

  private constructor (pool: Piscina, contextSize: number) {
    this.pool = pool
    this.contextSize = contextSize
  }

  static async open (init: LlamaPoolInit): Promise<LlamaPool> {
    const pool = new Piscina({
      filename: WORKER,
      minThreads: 1,
      maxThreads: 1,
      // generations plus an embedding or tokenize call alongside them
      concurrentTasksPerWorker: init.sequences + 2,
      idleTimeout: Number.POSITIVE_INFINITY
    })
    const { port1, port2 } = new MessageChannel()
    port1.on('message', (m: { progress?: number }) => { if (typeof m.progress === 'number') init.onProgress?.(m.progress) })
    try {
      const { contextSize } = await pool.run({ op: 'load', modelPath: init.modelPath, contextSize: init.contextSize, threads: init.threads, sequences: init.sequences, gpu: init.gpu, port: port2 }, { transferList: [port2], signal: init.signal }) as { contextSize: number }
      return new LlamaPool(pool, contextSize)
    } catch (err) {
      await pool.destroy()
      throw err
    } finally {
      port1.close()
    }
  }

  async tokenCounts (texts: string[]): Promise<number[]> {
    return await this.pool.run({ op: 'tokenize', texts }) as number[]
  }

  async generate (req: PoolGenerateRequest, o: { signal: AbortSignal, onText: (t: string) => void }): Promise<GenerateOutcome> {
    const { port1, port2 } = new MessageChannel()
    // chunks come on this port and the result on piscina's: wait for the end marker too, so no
    // trailing chunk is lost when the result arrives first
    const ended = Promise.withResolvers<void>()
    port1.on('message', (m: { t?: string, end?: boolean }) => {
      if (typeof m.t === 'string') o.onText(m.t)
      if (m.end === true) ended.resolve()
    })
    const onAbort = (): void => { port1.postMessage({ abort: true }) }
    o.signal.addEventListener('abort', onAbort, { once: true })
    try {
      const result = await this.pool.run({ ...req, port: port2 }, { transferList: [port2] }) as GenerateOutcome
      await ended.promise
      return result
    } finally {
      o.signal.removeEventListener('abort', onAbort)
      port1.close()
    }
  }

  async embed (input: string[]): Promise<number[][]> {
    return await this.pool.run({ op: 'embed', input }) as number[][]
  }

  async dispose (): Promise<void> {
    try {
      await this.pool.run({ op: 'dispose' })
    } finally {
      await this.pool.destroy()
    }
  }
}
