/**
 * The llama pool (a ProcessPool running the llama worker module) on a generated tiny model:
 * progress events, llama.cpp's log into the node's logger, the caller's signal, idempotent
 * dispose, and a typed error for use afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureModel } from '../../../../fixtures/gguf/index.ts'
import { tempDir, waitUntil, type TempDir } from '../../../../fixtures/index.ts'
import { createLogger } from '../../logger.ts'
import { LlamaPool } from '../llama-pool.ts'

describe('llama pool', () => {
  let dir: TempDir
  let modelPath: string
  const records: Array<Record<string, unknown>> = []
  const logger = createLogger({ level: 'debug', json: true, destination: { write: (line: string) => { records.push(JSON.parse(line) as Record<string, unknown>) } } })

  beforeAll(async () => {
    dir = await tempDir('flexnode-llama-pool-')
    modelPath = await ensureModel(dir.path, 'tiny', 1)
  })

  afterAll(async () => {
    await dir?.[Symbol.asyncDispose]()
  })

  it('loads with flexnode:model:load events, logs llama.cpp into the node\'s logger, and disposes idempotently', async () => {
    const events: Array<{ type: string, progress: number }> = []
    const pool = await LlamaPool.open({ modelPath, contextSize: 256, threads: 1, sequences: 1, gpu: false, gpuLayers: 0, logLevel: 'info', logFields: { model: 'tiny-1' }, onProgress: (e) => { events.push(e) } }, { logger })
    expect(events.length).toBeGreaterThan(0)
    expect(events.every(e => e.type === 'flexnode:model:load')).toBe(true)
    // llama.cpp's own lines, from the model's process, under the pool's component and the model's id
    const line = await waitUntil(() => records.find(r => r.source === 'llama.cpp'))
    expect(line).toMatchObject({ component: 'flexnode:pool:llama', model: 'tiny-1' })

    const text: string[] = []
    const r = await pool.generate({ op: 'complete', prompt: 'Once', maxTokens: 4, temperature: 0 }, { signal: new AbortController().signal, onText: (t) => { text.push(t) } })
    expect(r.tokens).toBe(4)
    expect(text.join('')).toBe(r.text)

    await Promise.all([pool.dispose(), pool.dispose()])
    await pool.dispose()
    await expect(pool.tokenCounts(['x'])).rejects.toMatchObject({ name: 'DisposedError' })
  })

  it('stops a generation through the caller\'s signal, and serves the next one', async () => {
    await using pool = await LlamaPool.open({ modelPath, contextSize: 256, threads: 1, sequences: 1, gpu: false, gpuLayers: 0 }, { logger })
    const ac = new AbortController()
    let seen = 0
    const run = pool.generate({ op: 'complete', prompt: 'Tell a long story', maxTokens: 200, temperature: 0.8 }, { signal: ac.signal, onText: () => { if (++seen === 2) ac.abort() } })
    await expect(run).rejects.toMatchObject({ name: 'AbortError' })
    expect(seen).toBeLessThan(200)
    const again = await pool.generate({ op: 'complete', prompt: 'Again', maxTokens: 3, temperature: 0 }, { signal: new AbortController().signal, onText: () => {} })
    expect(again.tokens).toBe(3)
  })

  it('an aborted load is a typed error and leaves no process behind', async () => {
    const ac = new AbortController()
    ac.abort()
    await expect(LlamaPool.open({ modelPath, contextSize: 256, threads: 1, sequences: 1, gpu: false, gpuLayers: 0, signal: ac.signal }, { logger })).rejects.toMatchObject({ name: 'AbortError' })
    const loading = new AbortController()
    const open = LlamaPool.open({ modelPath, contextSize: 256, threads: 1, sequences: 1, gpu: false, gpuLayers: 0, signal: loading.signal, onProgress: () => { loading.abort() } }, { logger })
    await expect(open).rejects.toMatchObject({ name: 'RequestAbortedError' })
  })
})
