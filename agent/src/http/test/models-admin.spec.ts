/**
 * Node-local model admin over HTTP, with the real engine on generated tiny models:
 * `POST /v1/models/{id}/load` (SSE progress, or one JSON answer), `POST /v1/models/{id}/unload`,
 * `GET /v1/node/models`, and their errors (404 unknown, 422 corrupt, 501 without an admin engine).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { ensureModel } from '../../../../fixtures/gguf/index.ts'
import { createInferenceEngine } from '../../inference/engine.ts'
import type { ModelInfo } from '../../inference/types.ts'
import { silentLogger } from '../../logger.ts'
import { createHttpServer, type HttpServer } from '../server.ts'

type Engine = Awaited<ReturnType<typeof createInferenceEngine>>
type Json = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

/** `data:` payloads of an SSE body, each `[DONE]` or parsed JSON. */
function sseEvents (text: string): unknown[] {
  return text.split('\n\n').map(e => e.trim()).filter(e => e.length > 0).map(e => {
    expect(e.startsWith('data: ')).toBe(true)
    const data = e.slice('data: '.length)
    return data === '[DONE]' ? data : JSON.parse(data) as unknown
  })
}

describe('model admin HTTP routes', () => {
  let dir: string
  let engine: Engine
  let server: HttpServer
  let base: string
  let model: string

  const post = async (route: string, body?: unknown): Promise<Response> =>
    await fetch(`${base}${route}`, body === undefined
      ? { method: 'POST' }
      : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

  const loaded = (id: string): boolean | undefined => engine.listModels().find(m => m.id === id)?.loaded

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'flexnode-models-admin-'))
    model = path.basename(await ensureModel(dir, 'tiny', 1), '.gguf')
    engine = await createInferenceEngine({ modelsDirs: [dir], gpu: false, sequences: 1, threads: 1 }, { logger: silentLogger() })
    server = createHttpServer({ port: 0 }, { engine, logger: silentLogger() })
    base = `http://127.0.0.1:${(await server.start()).port}`
  })

  afterAll(async () => {
    await server?.stop()
    await engine?.dispose()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it('streams increasing load progress ending at 1, then the model', async () => {
    expect(loaded(model)).toBe(false)
    const res = await post(`/v1/models/${model}/load`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const events = sseEvents(await res.text())
    expect(events.at(-1)).toBe('[DONE]')
    const progress = events.filter((e): e is { progress: number } => typeof e === 'object' && e !== null && 'progress' in e).map(e => e.progress)
    expect(progress.length).toBeGreaterThanOrEqual(2)
    for (let i = 1; i < progress.length; i++) expect(progress[i]!).toBeGreaterThan(progress[i - 1]!)
    expect(progress[0]!).toBeGreaterThan(0)
    expect(progress.at(-1)).toBe(1)
    // progress events first, then the model, then [DONE]
    expect(events.slice(0, progress.length).every(e => typeof e === 'object' && e !== null && 'progress' in e)).toBe(true)
    expect(events).toHaveLength(progress.length + 2)
    const info = (events.at(-2) as { model: ModelInfo }).model
    expect(info).toMatchObject({ id: model, loaded: true, context_length: 2048, architecture: 'llama' })
    expect(info.size_bytes).toBeGreaterThan(0)
    expect(loaded(model)).toBe(true)

    // loading a loaded model: straight to 1 and the model
    const again = sseEvents(await (await post(`/v1/models/${model}/load`, {})).text())
    expect(again).toEqual([{ progress: 1 }, { model: expect.objectContaining({ id: model, loaded: true }) as unknown }, '[DONE]'])

    // the node-local listing has the sizes and files the OpenAI listing leaves out
    const list = await (await fetch(`${base}/v1/node/models`)).json() as Json
    expect(list.object).toBe('list')
    expect(list.data).toEqual([expect.objectContaining({ id: model, loaded: true, size_bytes: info.size_bytes, file: info.file })])
  })

  it('unloads, and loads again as one JSON answer with {"stream": false}', async () => {
    await engine.loadModel(model)
    const res = await post(`/v1/models/${model}/unload`)
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ id: model, loaded: false })
    expect(loaded(model)).toBe(false)
    // unloading an unloaded model is fine
    expect((await post(`/v1/models/${model}/unload`, {})).status).toBe(200)
    const chat = await post('/v1/chat/completions', { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 })
    expect(chat.status).toBe(409)
    expect((await chat.json() as Json).error.code).toBe('model_not_loaded')

    const one = await post(`/v1/models/${model}/load`, { stream: false })
    expect(one.status).toBe(200)
    expect(one.headers.get('content-type')).toMatch(/^application\/json/)
    expect(await one.json()).toMatchObject({ id: model, loaded: true })
    expect(loaded(model)).toBe(true)
  })

  it('answers 404 for an unknown model, 400 for bad options, 405 for GET', async () => {
    for (const action of ['load', 'unload']) {
      const res = await post(`/v1/models/no-such-model/${action}`)
      expect(res.status).toBe(404)
      expect((await res.json() as Json).error).toMatchObject({ code: 'model_not_found', param: 'model', type: 'invalid_request_error' })
    }
    const bad = await post(`/v1/models/${model}/load`, { stream: 'yes' })
    expect(bad.status).toBe(400)
    expect((await bad.json() as Json).error).toMatchObject({ param: 'stream', code: 'invalid_value' })
    const notObject = await post(`/v1/models/${model}/load`, [1])
    expect(notObject.status).toBe(400)
    const get = await fetch(`${base}/v1/models/${model}/load`)
    expect(get.status).toBe(405)
    expect(get.headers.get('allow')).toBe('POST')
    // the model routes themselves are unchanged
    expect((await fetch(`${base}/v1/models/${model}`)).status).toBe(200)
  })

  it('answers 422 for a corrupt model file (half of a real one), streaming or not', async () => {
    const good = await readFile(path.join(dir, `${model}.gguf`))
    await writeFile(path.join(dir, 'broken.gguf'), good.subarray(0, good.length >> 1))
    try {
      // found by the load itself (a fresh scan), though the engine started before the file existed
      for (const body of [undefined, { stream: false }]) {
        const res = await post('/v1/models/broken/load', body)
        expect(res.status).toBe(422)
        expect(res.headers.get('content-type')).toMatch(/^application\/json/)
        expect((await res.json() as Json).error).toMatchObject({ code: 'model_load_failed', param: 'model', type: 'invalid_request_error' })
      }
      expect(loaded('broken')).toBe(false)
      // the good model is untouched
      expect(loaded(model)).toBe(true)
    } finally {
      await rm(path.join(dir, 'broken.gguf'), { force: true })
    }
  })

  it('answers 501 when the engine cannot load models', async () => {
    const limited = createHttpServer({ port: 0 }, {
      engine: { listModels: () => engine.listModels(), chat: engine.chat, complete: engine.complete, embed: engine.embed },
      logger: silentLogger()
    })
    const { port } = await limited.start()
    try {
      for (const action of ['load', 'unload']) {
        const res = await fetch(`http://127.0.0.1:${port}/v1/models/${model}/${action}`, { method: 'POST' })
        expect(res.status).toBe(501)
        expect((await res.json() as Json).error.code).toBe('not_implemented')
      }
    } finally {
      await limited.stop()
    }
  })
})
