/**
 * Model files that must never take the node down: files cut short, headers with absurd counts or
 * lengths, tensors past the end of the file, a well-formed file llama.cpp refuses, and a model
 * process that dies while serving. Real node-llama-cpp on generated tiny models, CPU, one thread.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFile } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { promisify } from 'node:util'
import { ensureModel } from '../../../../fixtures/gguf/index.ts'
import { DAMAGED_MODELS, writeDamagedModels, writeMissingTensorModel } from '../../../../fixtures/gguf/damaged.ts'
import { tempDir, waitUntil, type TempDir } from '../../../../fixtures/index.ts'
import { silentLogger } from '../../logger.ts'
import { createInferenceEngine } from '../engine.ts'

type Engine = Awaited<ReturnType<typeof createInferenceEngine>>

/** pids of this process's model processes (each loaded model runs in one). */
async function modelPids (): Promise<number[]> {
  const { stdout } = await promisify(execFile)('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)])
  return stdout.split('\n').filter(l => l.includes('llama-worker')).map(l => Number.parseInt(l.trim(), 10)).filter(n => Number.isInteger(n) && n > 0)
}

describe('damaged model files', () => {
  let dir: TempDir
  let engine: Engine
  let good: string

  beforeAll(async () => {
    dir = await tempDir('flexnode-damaged-')
    const models = join(dir.path, 'models')
    await mkdir(models)
    good = basename(await ensureModel(models, 'tiny', 1), '.gguf')
    await writeDamagedModels(models, join(models, `${good}.gguf`))
    await writeMissingTensorModel(join(models, 'missing-tensor.gguf'), join(models, `${good}.gguf`))
    engine = await createInferenceEngine({ modelsDirs: [models], gpu: false, threads: 1, contextSize: 256, sequences: 1 }, { logger: silentLogger() })
  }, 120_000)

  afterAll(async () => {
    await engine?.dispose()
    await dir?.[Symbol.asyncDispose]()
  })

  it('lists every damaged file with its error and never loaded, and the good model without one', () => {
    const list = engine.listModels()
    for (const id of DAMAGED_MODELS) {
      expect(list.find(m => m.id === id), id).toMatchObject({ id, loaded: false, error: { name: 'InvalidGgufError' } })
    }
    const byId = new Map(list.map(m => [m.id, m]))
    expect(byId.get('cut-1-byte')!.error!.code).toBe('bounds')
    expect(byId.get('cut-4-kib')!.error!.code).toBe('bounds')
    expect(byId.get('tensor-past-eof')!.error!.code).toBe('bounds')
    expect(byId.get('kv-count-2p63')!.error!.code).toBe('count')
    expect(byId.get('huge-string')!.error!.code).toBe('string')
    expect(byId.get('not-gguf')!.error!.code).toBe('magic')
    expect(byId.get(good)!.error).toBeUndefined()
    expect(byId.get(good)!.architecture).toBe('llama')
    expect(byId.get(good)!.context_length).toBe(2048)
    expect(byId.get(good)!.embedding_length).toBe(64)
    // well-formed: only llama.cpp itself can tell that a tensor is missing
    expect(byId.get('missing-tensor')!.error).toBeUndefined()
    // no absolute path anywhere in the listing
    expect(JSON.stringify(list)).not.toContain(dir.path)
  })

  it('refuses to load a damaged file with a typed 422, every time, and keeps serving the good model', async () => {
    for (const id of DAMAGED_MODELS) {
      for (let i = 0; i < 3; i++) {
        await expect(engine.loadModel(id), id).rejects.toMatchObject({ name: 'ModelLoadError' })
      }
    }
    await engine.loadModel(good)
    const r = await engine.complete(good, 'Hello', { max_tokens: 4, temperature: 0 })
    expect(r.usage.completion_tokens).toBeGreaterThan(0)
    await expect(engine.chat('cut-1-byte', [{ role: 'user', content: 'hi' }])).rejects.toMatchObject({ name: 'ModelLoadError' })
  })

  it("contains llama.cpp's own refusal of a well-formed file as a 422, however often it is tried", async () => {
    for (let i = 0; i < 3; i++) {
      await expect(engine.loadModel('missing-tensor')).rejects.toMatchObject({ name: 'ModelLoadError' })
    }
    expect(engine.listModels().find(m => m.id === 'missing-tensor')!.loaded).toBe(false)
    await engine.loadModel(good)
    expect((await engine.complete(good, 'Again', { max_tokens: 2 })).usage.completion_tokens).toBeGreaterThan(0)
  })

  it('unloads a model whose process dies, fails its requests with a typed error, and loads it again', async () => {
    await engine.loadModel(good)
    const before = await modelPids()
    expect(before).toHaveLength(1)
    // a signal to the whole process group (Ctrl-C, a group SIGTERM) leaves the model to the node
    process.kill(before[0]!, 'SIGINT')
    process.kill(before[0]!, 'SIGTERM')
    expect((await engine.complete(good, 'Still', { max_tokens: 2 })).usage.completion_tokens).toBeGreaterThan(0)
    expect(() => process.kill(before[0]!, 0)).not.toThrow()
    expect(engine.listModels().find(m => m.id === good)!.loaded).toBe(true)
    // a native abort in the model's process (SIGABRT, as llama.cpp's GGML_ASSERT raises)
    for (const pid of before) process.kill(pid, 'SIGABRT')
    await waitUntil(() => engine.listModels().find(m => m.id === good)!.loaded === false)
    await expect(engine.complete(good, 'x', { max_tokens: 2 })).rejects.toMatchObject({ name: 'ModelNotLoadedError' })
    await engine.loadModel(good)
    expect((await engine.complete(good, 'Back', { max_tokens: 2 })).usage.completion_tokens).toBeGreaterThan(0)
  })
})
