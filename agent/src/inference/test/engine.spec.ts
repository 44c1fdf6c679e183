/**
 * The inference engine on generated tiny GGUF models: real node-llama-cpp, CPU, one thread.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ensureDemoModel, ensureModel } from '../../../../fixtures/gguf/index.ts'
import { tempDir, waitUntil, type TempDir } from '../../../../fixtures/index.ts'
import { createLogger } from '../../logger.ts'
import { createInferenceEngine, inferenceEngine } from '../engine.ts'
import type { ModelLoadProgressEvent } from '../types.ts'

describe('inference engine', () => {
  let dir: TempDir
  let engine: Awaited<ReturnType<typeof createInferenceEngine>>
  /** the engine's log records */
  const records: Array<Record<string, unknown>> = []
  let a: string
  let b: string

  beforeAll(async () => {
    dir = await tempDir('flexnode-models-')
    const models = join(dir.path, 'models')
    await mkdir(models)
    const pa = await ensureModel(models, 'tiny', 1)
    const pb = await ensureModel(models, 'tiny', 2)
    a = pa.split('/').pop()!.replace(/\.gguf$/, '')
    b = pb.split('/').pop()!.replace(/\.gguf$/, '')
    // a corrupt model: the first half of a real one
    const bytes = await readFile(pa)
    await writeFile(join(models, 'broken.gguf'), bytes.subarray(0, bytes.length >> 1))
    await writeFile(join(models, 'garbage.gguf'), 'not a gguf file at all')
    await ensureDemoModel(models)
    engine = await createInferenceEngine({ modelsDirs: [models], gpu: false, threads: 1, contextSize: 512, sequences: 2, maxQueue: 1 }, { logger: createLogger({ level: 'info', json: true, destination: { write: (line: string) => { records.push(JSON.parse(line) as Record<string, unknown>) } } }) })
  }, 60_000)

  afterAll(async () => {
    await engine?.dispose()
    await dir?.[Symbol.asyncDispose]()
  })

  it('lists the models of its directories with their metadata, and unusable files with their error', () => {
    const ids = engine.listModels().map(m => m.id)
    expect(ids).toEqual(expect.arrayContaining([a, b, 'broken', 'garbage']))
    const m = engine.listModels().find(x => x.id === a)!
    expect(m.architecture).toBe('llama')
    expect(m.loaded).toBe(false)
    expect(m.embedding_length).toBeGreaterThan(0)
    expect(m.file).toBe(`${a}.gguf`)
    expect(m.demo).toBe(false)
    expect(m.error).toBeUndefined()
    expect(engine.listModels().find(x => x.id === 'broken')).toMatchObject({ loaded: false, error: { name: 'InvalidGgufError', code: 'bounds' } })
    expect(engine.listModels().find(x => x.id === 'garbage')).toMatchObject({ loaded: false, error: { name: 'InvalidGgufError', code: 'magic' } })
    // only the self-generated demo model is a demo; tiny models of other seeds (and seed 1) are not
    expect(engine.listModels().filter(x => x.demo).map(x => x.id)).toEqual([expect.stringMatching(/^flexnode-demo-seed1-/)])
  })

  it('loads and unloads with progress, and refuses a truncated file with a typed error', async () => {
    const events: ModelLoadProgressEvent[] = []
    const info = await engine.loadModel(a, { onProgress: (e) => { events.push(e) } })
    expect(info.loaded).toBe(true)
    expect(events.every(e => e.type === 'flexnode:model:load' && e.model === a)).toBe(true)
    const progress = events.map(e => e.progress)
    expect(progress[0]).toBe(0)
    expect(progress[progress.length - 1]).toBe(1)
    // llama.cpp's own progress comes through the model's process, in order
    expect(progress.length).toBeGreaterThan(2)
    expect(progress).toEqual([...progress].sort((x, y) => x - y))
    await expect(engine.loadModel('broken')).rejects.toMatchObject({ name: 'ModelLoadError' })
    await expect(engine.loadModel('nope')).rejects.toMatchObject({ name: 'ModelNotFoundError' })
    await engine.loadModel(b)
    await engine.unloadModel(b)
    expect(engine.listModels().find(m => m.id === b)!.loaded).toBe(false)
    await expect(engine.chat(b, [{ role: 'user', content: 'hi' }])).rejects.toMatchObject({ name: 'ModelNotLoadedError' })
  })

  it('estimates memory with the GPU-layer count the load then uses', async () => {
    const plan = await engine.plan(b)
    expect(plan.ram).toBeGreaterThan(0)
    expect(plan.contextSize).toBe(512)
    await engine.loadModel(b)
    const loaded = records.filter(r => r.msg === 'model loaded' && r.model === b).at(-1)
    expect(loaded).toMatchObject({ gpuLayers: plan.gpuLayers, estimatedRam: plan.ram })
    await engine.unloadModel(b)
    await expect(engine.plan('garbage')).rejects.toMatchObject({ name: 'ModelLoadError' })
  })

  it('chats and completes, reproducibly with a seed, and measures tokens/s', async () => {
    const r1 = await engine.chat(a, [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say something.' }], { max_tokens: 12, temperature: 0.7, seed: 42 })
    const r2 = await engine.chat(a, [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say something.' }], { max_tokens: 12, temperature: 0.7, seed: 42 })
    expect(r1.text.length).toBeGreaterThan(0)
    expect(r2.text).toBe(r1.text)
    expect(r1.usage.completion_tokens).toBeGreaterThan(0)
    expect(r1.usage.completion_tokens).toBeLessThanOrEqual(12)
    const c = await engine.complete(a, 'Once upon a time', { max_tokens: 8, temperature: 0 })
    expect(c.finish_reason).toBe('length')
    expect(c.usage.completion_tokens).toBe(8)
    const chunks: string[] = []
    const s = await engine.complete(a, 'The', { max_tokens: 6, temperature: 0, onToken: (t) => { chunks.push(t) } })
    expect(chunks.join('')).toBe(s.text)
    expect(engine.listModels().find(m => m.id === a)!.tokens_per_second).toBeGreaterThan(0)
  })

  it('embeds text into vectors of the model width', async () => {
    const out = await engine.embed(a, ['hello world', 'another line'])
    const width = engine.listModels().find(m => m.id === a)!.embedding_length
    expect(out.embeddings).toHaveLength(2)
    expect(out.embeddings[0]).toHaveLength(width)
    expect(out.usage.prompt_tokens).toBeGreaterThan(0)
  })

  it('validates requests with typed errors', async () => {
    await expect(engine.chat(a, [], {})).rejects.toMatchObject({ name: 'InvalidRequestError', param: 'messages' })
    await expect(engine.chat(a, [{ role: 'robot' as never, content: 'x' }])).rejects.toMatchObject({ name: 'InvalidRequestError' })
    await expect(engine.complete(a, 'x', { max_tokens: 0 })).rejects.toMatchObject({ name: 'InvalidRequestError', param: 'max_tokens' })
    await expect(engine.complete(a, 'x', { temperature: 5 })).rejects.toMatchObject({ param: 'temperature' })
    await expect(engine.complete(a, 'word '.repeat(600), { max_tokens: 8 })).rejects.toMatchObject({ name: 'PromptTooLongError' })
  })

  it('serves two requests at once, queues one, and answers more with BusyError', async () => {
    const ps = Array.from({ length: 5 }, async () => await engine.complete(a, 'Hello', { max_tokens: 48, temperature: 0.5 }))
    const results = await Promise.allSettled(ps)
    const ok = results.filter(r => r.status === 'fulfilled').length
    const busy = results.filter(r => r.status === 'rejected' && (r.reason as { name: string }).name === 'BusyError').length
    expect(ok).toBe(3)
    expect(busy).toBe(2)
  })

  it('bounds concurrent embeddings like generation: one runs, maxQueue wait, the rest get BusyError', async () => {
    const results = await Promise.allSettled(Array.from({ length: 6 }, async () => await engine.embed(a, ['hello world'])))
    const ok = results.filter(r => r.status === 'fulfilled').length
    const busy = results.filter(r => r.status === 'rejected' && (r.reason as { name: string }).name === 'BusyError').length
    // maxQueue is 1: one embedding runs, one waits, four are refused at once
    expect(ok).toBe(2)
    expect(busy).toBe(4)
    expect(engine.listModels().find(m => m.id === a)).toMatchObject({ queue_depth: 0, in_flight: 0 })
  })

  it('aborts a generation and frees its sequence', async () => {
    const ac = new AbortController()
    let seen = 0
    const p = engine.complete(a, 'Tell a long story', { max_tokens: 400, temperature: 0.8, signal: ac.signal, onToken: () => { if (++seen === 3) ac.abort() } })
    await expect(p).rejects.toMatchObject({ name: 'RequestAbortedError' })
    await waitUntil(() => engine.listModels().find(m => m.id === a)!.in_flight === 0)
    await expect(engine.complete(a, 'x', { max_tokens: 50, deadline_ms: 1 })).rejects.toMatchObject({ name: 'DeadlineExceededError' })
    expect((await engine.complete(a, 'Again', { max_tokens: 4 })).usage.completion_tokens).toBeGreaterThan(0)
  })

  it('picks up models dropped into the directory', async () => {
    const models = join(dir.path, 'models')
    await copyFile(join(models, `${a}.gguf`), join(models, 'copied-model.gguf'))
    expect((await engine.refresh()).map(m => m.id)).toContain('copied-model')
  })

  it('is disposed idempotently, and refuses every call afterwards with DisposedError', async () => {
    await engine.loadModel(a)
    await Promise.all([engine.dispose(), engine.dispose()])
    await expect(engine.complete(a, 'x', { max_tokens: 2 })).rejects.toMatchObject({ name: 'DisposedError' })
    await expect(engine.loadModel(a)).rejects.toMatchObject({ name: 'DisposedError' })
    await expect(engine.refresh()).rejects.toMatchObject({ name: 'DisposedError' })
    expect(engine.listModels().find(m => m.id === a)!.loaded).toBe(false)
  })

  it('is a service of the x(init)(components) shape: start, engine, idempotent stop, DisposedError after', async () => {
    const service = inferenceEngine({ modelsDirs: [join(dir.path, 'models')], gpu: false, threads: 1, contextSize: 256, sequences: 1 })({ logger: createLogger({ level: 'silent' }) })
    expect(() => service.engine).toThrow(expect.objectContaining({ name: 'FlexnodeError' }))
    await service.start()
    await service.start()
    expect(service.engine.listModels().map(m => m.id)).toContain(a)
    await Promise.all([service.stop(), service[Symbol.asyncDispose]()])
    expect(() => service.engine).toThrow(expect.objectContaining({ name: 'DisposedError' }))
    await expect(service.start()).rejects.toMatchObject({ name: 'DisposedError' })
  })
})
