/**
 * The structural check of `.gguf` files, off the main thread: `readGgufStructure` runs in a
 * worker thread with a small heap and a deadline per file, so a file that would make a parser
 * loop, allocate without bound or hang on a slow disk costs the node one terminated worker, never
 * its event loop. Only files that pass reach node-llama-cpp. Files are checked one at a time by
 * one worker, which is replaced after a deadline or an out-of-memory stop.
 *
 * ```ts
 * const inspector = new GgufInspector()
 * const info = await inspector.inspect('/models/qwen3-4b.gguf')
 * // or InvalidGgufError { file: 'qwen3-4b.gguf', defect: 'bounds' | 'count' | 'deadline' | … }
 * await inspector.dispose()
 * ```
 */
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { DisposedError } from '../../errors.ts'
import { GGUF_INSPECT_DEADLINE_MS, GGUF_INSPECT_HEAP_MB } from './constants.ts'
import { InvalidGgufError, type GgufDefect } from './errors.ts'
import type { GgufReadOptions, GgufStructure } from './reader.ts'

const WORKER = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'native', 'workers', 'gguf-inspect-worker.mjs')

export interface GgufInspectorInit {
  /** a file's check fails with defect `deadline` after this many ms. @default 30000 */
  deadlineMs?: number
  /** heap of the checking worker. @default 64 MiB */
  heapMb?: number
}

export interface InspectGgufOptions extends GgufReadOptions {
  signal?: AbortSignal
}

interface Reply { id: number, ok?: GgufStructure, err?: { defect: GgufDefect, detail: string } }

export class GgufInspector {
  private readonly deadlineMs: number
  private readonly heapMb: number
  private worker: Worker | undefined
  /** checks run one after another */
  private queue: Promise<unknown> = Promise.resolve()
  private nextId = 0
  private disposed = false

  constructor (init: GgufInspectorInit = {}) {
    this.deadlineMs = init.deadlineMs ?? GGUF_INSPECT_DEADLINE_MS
    this.heapMb = init.heapMb ?? GGUF_INSPECT_HEAP_MB
  }

  /** Check the file at `path`; resolves with its structure or rejects with `InvalidGgufError`. */
  async inspect (path: string, options: InspectGgufOptions = {}): Promise<GgufStructure> {
    const run = this.queue.then(async () => await this.run(path, options))
    this.queue = run.catch(() => undefined)
    return await run
  }

  private spawn (): Worker {
    const worker = new Worker(WORKER, {
      resourceLimits: { maxOldGenerationSizeMb: this.heapMb, maxYoungGenerationSizeMb: 16 },
      stdout: true,
      stderr: true
    })
    // an idle checker never keeps the process alive
    worker.unref()
    return worker
  }

  private async run (path: string, options: InspectGgufOptions): Promise<GgufStructure> {
    if (this.disposed) throw new DisposedError('GgufInspector')
    options.signal?.throwIfAborted()
    const file = basename(path)
    const worker = this.worker ??= this.spawn()
    const id = this.nextId++
    const done = Promise.withResolvers<GgufStructure>()
    let broken = false
    const fail = (defect: GgufDefect, detail: string): void => { done.reject(new InvalidGgufError(file, defect, detail)) }
    const onMessage = (m: Reply): void => {
      if (m.id !== id) return
      if (m.ok !== undefined) done.resolve(m.ok)
      else fail(m.err?.defect ?? 'io', m.err?.detail ?? 'cannot be read')
    }
    const onError = (err: Error & { code?: string }): void => {
      broken = true
      if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') fail('resources', `checking it needed more than ${this.heapMb} MiB`)
      else fail('io', `the check failed: ${err.message}`)
    }
    const onExit = (): void => { broken = true; fail('io', 'the check stopped before it finished') }
    const timer = setTimeout(() => { broken = true; fail('deadline', `its metadata was not checked within ${this.deadlineMs} ms`) }, this.deadlineMs)
    const onAbort = (): void => { broken = true; done.reject(options.signal!.reason) }
    options.signal?.addEventListener('abort', onAbort, { once: true })
    worker.on('message', onMessage)
    worker.on('error', onError)
    worker.on('exit', onExit)
    const readOptions: GgufReadOptions = {}
    if (options.limits !== undefined) readOptions.limits = options.limits
    if (options.maxKeptStringBytes !== undefined) readOptions.maxKeptStringBytes = options.maxKeptStringBytes
    worker.postMessage({ id, path, options: readOptions })
    try {
      return await done.promise
    } finally {
      clearTimeout(timer)
      options.signal?.removeEventListener('abort', onAbort)
      worker.off('message', onMessage)
      worker.off('error', onError)
      worker.off('exit', onExit)
      if (broken) {
        // past its deadline, out of memory or gone: replace it (no native code runs in it, so
        // terminating it is safe at any point)
        if (this.worker === worker) this.worker = undefined
        await worker.terminate()
      }
    }
  }

  /** Stop the checking worker; later checks throw `DisposedError`. Idempotent. */
  async dispose (): Promise<void> {
    this.disposed = true
    const worker = this.worker
    this.worker = undefined
    await worker?.terminate()
  }
}
