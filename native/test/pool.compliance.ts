/**
 * The compliance suite every `ComputePool` implementation passes (`PiscinaPool`, `ProcessPool`;
 * later the hnsw and wasm pools): run against a real worker module (`workers/compliance-worker.ts`).
 *
 * ```ts
 * computePoolCompliance('PiscinaPool', { setup: async ({ logger }) => new PiscinaPool({ module, name: 'c' }, { logger }), teardown: async (p) => { await p.dispose() } })
 * ```
 */
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger, type ComponentLogger } from '../../agent/src/logger.ts'
import { waitUntil } from '../../fixtures/wait.ts'
import type { ComputePool } from '../pool.ts'
import type { ComplianceEvent, ComplianceTask } from './workers/compliance-worker.ts'

export const COMPLIANCE_WORKER = join(dirname(fileURLToPath(import.meta.url)), 'workers', 'compliance-worker.ts')

export interface TestSetup<T> {
  setup: (components: { logger: ComponentLogger }) => Promise<T>
  teardown: (t: T) => Promise<void>
}

export type CompliancePool = ComputePool<ComplianceTask, unknown, ComplianceEvent>

export interface ComplianceOptions {
  /** buffers listed in `transfer` are moved (detached in the caller), not copied */
  movesBuffers: boolean
}

export function computePoolCompliance (name: string, test: TestSetup<CompliancePool>, options: ComplianceOptions): void {
  describe(`ComputePool compliance: ${name}`, () => {
    let pool: CompliancePool
    const records: Array<Record<string, unknown>> = []
    beforeAll(async () => {
      const logger = createLogger({ level: 'debug', json: true, destination: { write: (line: string) => { records.push(JSON.parse(line) as Record<string, unknown>) } } })
      pool = await test.setup({ logger })
    })
    afterAll(async () => { await test.teardown(pool) })

    it('runs a task and returns its result', async () => {
      expect(await pool.run({ op: 'echo', value: { a: [1, 'two'] } })).toEqual({ a: [1, 'two'] })
      const results = await Promise.all([1, 2, 3].map(async (n) => await pool.run({ op: 'echo', value: n })))
      expect(results).toEqual([1, 2, 3])
    })

    it('reports progress as namespaced events', async () => {
      const events: ComplianceEvent[] = []
      expect(await pool.run({ op: 'progress', n: 3 }, { onProgress: (e) => { events.push(e) } })).toBe(3)
      expect(events).toEqual([0, 1, 2].map(i => ({ type: 'flexnode:test:step', i })))
    })

    it('aborts a running task through the caller\'s signal with AbortError, and keeps serving', async () => {
      const ac = new AbortController()
      const run = pool.run({ op: 'hang' }, { signal: ac.signal, onProgress: (e) => { if (e.type === 'flexnode:test:started') ac.abort() } })
      await expect(run).rejects.toMatchObject({ name: 'AbortError' })
      // an already aborted signal: refused before anything runs
      await expect(pool.run({ op: 'echo', value: 1 }, { signal: ac.signal })).rejects.toMatchObject({ name: 'AbortError' })
      expect(await pool.run({ op: 'echo', value: 'after' })).toBe('after')
    })

    it('serves the tasks waiting behind a running task that is aborted', async () => {
      const ac = new AbortController()
      const run = pool.run({ op: 'hang' }, { signal: ac.signal, onProgress: (e) => { if (e.type === 'flexnode:test:started') ac.abort() } })
      // queued while the hang runs (a pool of one thread has no other to give them)
      const waiting = [pool.run({ op: 'echo', value: 'a' }), pool.run({ op: 'echo', value: 'b' })]
      await expect(run).rejects.toMatchObject({ name: 'AbortError' })
      expect(await Promise.all(waiting)).toEqual(['a', 'b'])
    })

    it('turns a handler\'s error into WorkerTaskError with its name, and keeps serving', async () => {
      await expect(pool.run({ op: 'fail' })).rejects.toMatchObject({ name: 'WorkerTaskError', remoteName: 'RangeError' })
      expect(await pool.run({ op: 'echo', value: 2 })).toBe(2)
    })

    it('fails a task whose worker crashes with WorkerCrashedError, and keeps serving', async () => {
      await expect(pool.run({ op: 'crash' })).rejects.toMatchObject({ name: 'WorkerCrashedError' })
      expect(await pool.run({ op: 'echo', value: 'alive' })).toBe('alive')
    })

    it('forwards worker log lines into the node\'s logger', async () => {
      const msg = `hello from ${name}`
      await pool.run({ op: 'log', msg })
      const rec = await waitUntil(() => records.find(r => r.msg === msg))
      expect(rec).toMatchObject({ level: 40, from: 'compliance-worker' })
      expect(String(rec.component)).toMatch(/^flexnode:pool:/)
    })

    it(options.movesBuffers ? 'moves buffers listed in transfer, both ways' : 'carries buffers to the worker and back', async () => {
      const bytes = new Uint8Array([1, 2, 3, 250])
      expect(await pool.run({ op: 'sum', bytes }, { transfer: [bytes.buffer] })).toBe(256)
      expect(bytes.byteLength).toBe(options.movesBuffers ? 0 : 4)
      const back = await pool.run({ op: 'bytes', n: 1024 }) as Uint8Array
      expect(back.byteLength).toBe(1024)
      expect(back[1023]).toBe(7)
    })

    it('is disposed idempotently, and refuses work afterwards with DisposedError', async () => {
      await Promise.all([pool.dispose(), pool.dispose()])
      await pool.dispose()
      expect(pool.disposed).toBe(true)
      await expect(pool.run({ op: 'echo', value: 1 })).rejects.toMatchObject({ name: 'DisposedError' })
    })
  })
}
