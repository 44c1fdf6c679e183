import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { ensureModel } from '../../../../fixtures/gguf/index.ts'
import { waitUntil } from '../../../../fixtures/wait.ts'
import { createInferenceEngine } from '../../inference/engine.ts'
import type { ChatMessage, GenerateOptions, GenerateResult, InferenceEngine } from '../../inference/types.ts'
import { silentLogger } from '../../logger.ts'
import { createHttpServer, type HttpServer, type HttpServerComponents } from '../server.ts'
import type { MoeQueryRequest, SingleQueryRequest } from '../openai.ts'

type Engine = Awaited<ReturnType<typeof createInferenceEngine>>
type Json = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

const USER: ChatMessage[] = [{ role: 'user', content: 'hello there' }]

/** `data:` payloads of an SSE body. */
function sseData (text: string): string[] {
  return text.split('\n\n').map(e => e.trim()).filter(e => e.length > 0).map(e => {
    expect(e.startsWith('data: ')).toBe(true)
    return e.slice('data: '.length)
  })
}

/** Reads an SSE response incrementally. */
function sseReader (res: Response): { next: () => Promise<string | undefined> } {
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  return {
    next: async () => {
      for (;;) {
        const at = buffer.indexOf('\n\n')
        if (at >= 0) {
          const event = buffer.slice(0, at)
          buffer = buffer.slice(at + 2)
          return event.slice('data: '.length)
        }
        const { value, done } = await reader.read()
        if (done) return undefined
        buffer += decoder.decode(value, { stream: true })
      }
    }
  }
}

/** The engine, with each generation's outcome recorded (composition, not a mock). */
function observe (engine: Engine): { engine: HttpServerComponents['engine'], outcomes: Array<Promise<string>> } {
  const outcomes: Array<Promise<string>> = []
  const track = (p: Promise<GenerateResult>): Promise<GenerateResult> => {
    outcomes.push(p.then(() => 'ok', (err: Error) => err.name))
    return p
  }
  return {
    outcomes,
    engine: {
      listModels: () => engine.listModels(),
      chat: async (model, messages, options) => await track(engine.chat(model, messages, options)),
      complete: async (model, prompt, options) => await track(engine.complete(model, prompt, options)),
      embed: async (model, input, options) => await engine.embed(model, input, options)
    }
  }
}

describe('OpenAI-compatible HTTP API', () => {
  let dir: string
  let engine: Engine
  let outcomes: Array<Promise<string>>
  let server: HttpServer
  let base: string
  let model: string
  let model2: string

  const post = async (route: string, body: unknown, init: RequestInit = {}): Promise<Response> =>
    await fetch(`${base}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body), ...init })

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'flexnode-http-'))
    await ensureModel(dir, 'tiny', 1)
    await ensureModel(dir, 'tiny', 2)
    engine = await createInferenceEngine({ modelsDirs: [dir], gpu: false, sequences: 2 }, { logger: silentLogger() })
    const ids = engine.listModels().map(m => m.id).sort()
    expect(ids).toHaveLength(2)
    model = ids[0]!
    model2 = ids[1]!
    await engine.loadModel(model)
    await engine.loadModel(model2)
    const observed = observe(engine)
    outcomes = observed.outcomes
    server = createHttpServer({ port: 0 }, { engine: observed.engine, logger: silentLogger() })
    const { port } = await server.start()
    expect(port).toBeGreaterThan(0)
    expect(server.port).toBe(port)
    base = `http://127.0.0.1:${port}`
  })

  afterAll(async () => {
    await server?.stop()
    await engine?.dispose()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it('lists the models this node holds', async () => {
    const res = await fetch(`${base}/v1/models`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^application\/json/)
    const body = await res.json() as Json
    expect(body.object).toBe('list')
    expect(body.data.map((m: Json) => m.id).sort()).toEqual([model, model2])
    for (const m of body.data as Json[]) {
      expect(m).toMatchObject({ object: 'model', owned_by: 'flexnode', loaded: true, context_length: 2048, demo: false })
      expect(Number.isInteger(m.created)).toBe(true)
      expect(m.tokens_per_second === null || typeof m.tokens_per_second === 'number').toBe(true)
    }
    const one = await fetch(`${base}/v1/models/${model}`)
    expect(one.status).toBe(200)
    expect((await one.json() as Json).id).toBe(model)
    const none = await fetch(`${base}/v1/models/nope`)
    expect(none.status).toBe(404)
    expect((await none.json() as Json).error).toMatchObject({ code: 'model_not_found', param: 'model' })
  })

  it('answers a chat completion, deterministically at temperature 0, and streams the same text', async () => {
    const request = { model, messages: USER, max_tokens: 8, temperature: 0 }
    const res = await post('/v1/chat/completions', request)
    expect(res.status).toBe(200)
    const body = await res.json() as Json
    expect(body.id).toMatch(/^chatcmpl-/)
    expect(body).toMatchObject({ object: 'chat.completion', model })
    expect(Number.isInteger(body.created)).toBe(true)
    expect(body.choices).toHaveLength(1)
    expect(body.choices[0]).toMatchObject({ index: 0, message: { role: 'assistant' } })
    expect(['stop', 'length']).toContain(body.choices[0].finish_reason)
    const content = body.choices[0].message.content as string
    expect(content.length).toBeGreaterThan(0)
    expect(body.usage.completion_tokens).toBeGreaterThan(0)
    expect(body.usage.completion_tokens).toBeLessThanOrEqual(8)
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens)

    const again = await (await post('/v1/chat/completions', request)).json() as Json
    expect(again.choices[0].message.content).toBe(content)

    const stream = await post('/v1/chat/completions', { ...request, stream: true, stream_options: { include_usage: true } })
    expect(stream.status).toBe(200)
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const events = sseData(await stream.text())
    expect(events.at(-1)).toBe('[DONE]')
    const chunks = events.slice(0, -1).map(e => JSON.parse(e) as Json)
    for (const c of chunks) {
      expect(c.object).toBe('chat.completion.chunk')
      expect(c.id).toBe(chunks[0]!.id)
      expect(c.model).toBe(model)
    }
    expect(chunks[0]!.choices[0].delta.role).toBe('assistant')
    const usage = chunks.at(-1)!
    expect(usage.choices).toEqual([])
    expect(usage.usage.completion_tokens).toBe(body.usage.completion_tokens)
    const final = chunks.at(-2)!
    expect(final.choices[0].finish_reason).toBe(body.choices[0].finish_reason)
    const pieces = chunks.slice(0, -2)
    for (const c of pieces) expect(c.choices[0].finish_reason).toBeNull()
    expect(pieces.map(c => c.choices[0].delta.content ?? '').join('')).toBe(content)
  })

  it('answers a text completion, streamed and not', async () => {
    const request = { model: model2, prompt: 'the time', max_tokens: 6, temperature: 0 }
    const res = await post('/v1/completions', request)
    expect(res.status).toBe(200)
    const body = await res.json() as Json
    expect(body.id).toMatch(/^cmpl-/)
    expect(body).toMatchObject({ object: 'text_completion', model: model2 })
    expect(body.choices[0]).toMatchObject({ index: 0 })
    expect(typeof body.choices[0].text).toBe('string')
    expect(body.usage.completion_tokens).toBeLessThanOrEqual(6)

    const stream = await post('/v1/completions', { ...request, stream: true })
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const events = sseData(await stream.text())
    expect(events.at(-1)).toBe('[DONE]')
    const chunks = events.slice(0, -1).map(e => JSON.parse(e) as Json)
    for (const c of chunks) expect(c.object).toBe('text_completion')
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe(body.choices[0].finish_reason)
    expect(chunks.map(c => c.choices[0].text).join('')).toBe(body.choices[0].text)
  })

  it('returns embeddings for a string and for a list', async () => {
    const one = await post('/v1/embeddings', { model, input: 'hello' })
    expect(one.status).toBe(200)
    const body = await one.json() as Json
    expect(body).toMatchObject({ object: 'list', model })
    expect(body.data).toHaveLength(1)
    expect(body.data[0]).toMatchObject({ object: 'embedding', index: 0 })
    expect(body.data[0].embedding).toHaveLength(64)
    expect(body.usage.prompt_tokens).toBeGreaterThan(0)

    const many = await (await post('/v1/embeddings', { model, input: ['a', 'hello', 'the time'] })).json() as Json
    expect(many.data.map((d: Json) => d.index)).toEqual([0, 1, 2])
    expect(many.data[1].embedding).toEqual(body.data[0].embedding)

    const b64 = await (await post('/v1/embeddings', { model, input: 'hello', encoding_format: 'base64' })).json() as Json
    const bytes = Buffer.from(b64.data[0].embedding as string, 'base64')
    expect([...new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4)]).toEqual(body.data[0].embedding.map((x: number) => Math.fround(x)))
  })

  it('rejects each invalid field with 400 and its param', async () => {
    const chat = (extra: Json): Json => ({ model, messages: USER, max_tokens: 4, ...extra })
    const cases: Array<[string, Json, string]> = [
      ['/v1/chat/completions', { messages: USER }, 'model'],
      ['/v1/chat/completions', { model: 42, messages: USER }, 'model'],
      ['/v1/chat/completions', { model }, 'messages'],
      ['/v1/chat/completions', { model, messages: [] }, 'messages'],
      ['/v1/chat/completions', { model, messages: 'hi' }, 'messages'],
      ['/v1/chat/completions', { model, messages: [null] }, 'messages[0]'],
      ['/v1/chat/completions', { model, messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].role'],
      ['/v1/chat/completions', { model, messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'],
      ['/v1/chat/completions', chat({ max_tokens: 0 }), 'max_tokens'],
      ['/v1/chat/completions', chat({ max_tokens: 2049 }), 'max_tokens'],
      ['/v1/chat/completions', chat({ max_tokens: 1.5 }), 'max_tokens'],
      ['/v1/chat/completions', chat({ max_tokens: '4' }), 'max_tokens'],
      ['/v1/chat/completions', chat({ temperature: 2.5 }), 'temperature'],
      ['/v1/chat/completions', chat({ temperature: -1 }), 'temperature'],
      ['/v1/chat/completions', chat({ seed: 1.5 }), 'seed'],
      ['/v1/chat/completions', chat({ stop: ['a', 'b', 'c', 'd', 'e'] }), 'stop'],
      ['/v1/chat/completions', chat({ stop: 7 }), 'stop'],
      ['/v1/chat/completions', chat({ stop: [''] }), 'stop'],
      ['/v1/chat/completions', chat({ stream: 'yes' }), 'stream'],
      ['/v1/chat/completions', chat({ n: 2 }), 'n'],
      ['/v1/chat/completions', chat({ stream_options: { include_usage: 'yes' } }), 'stream_options.include_usage'],
      // checked since the bodies are zod schemas: max_completion_tokens beside max_tokens (it was ignored unchecked)
      ['/v1/chat/completions', chat({ max_completion_tokens: 'x' }), 'max_completion_tokens'],
      ['/v1/completions', { model, max_tokens: 4 }, 'prompt'],
      ['/v1/completions', { model, prompt: ['a'] }, 'prompt'],
      ['/v1/embeddings', { model }, 'input'],
      ['/v1/embeddings', { model, input: [] }, 'input'],
      ['/v1/embeddings', { model, input: [1, 2] }, 'input'],
      ['/v1/embeddings', { model, input: Array.from({ length: 257 }, () => 'x') }, 'input'],
      ['/v1/embeddings', { model, input: 'x', encoding_format: 'int8' }, 'encoding_format'],
      ['/v1/chat/completions', [], 'body']
    ]
    for (const [route, body, param] of cases) {
      const res = await post(route, body)
      const { error } = await res.json() as Json
      expect({ route, param, status: res.status, got: error.param }).toEqual({ route, param, status: 400, got: param })
      expect(error.type).toBe('invalid_request_error')
      expect(error.message).toContain(param === 'body' ? 'body' : param.split('.').at(-1)!.replace(/\[\d+\]$/, ''))
    }
    const tooMany = await (await post('/v1/chat/completions', chat({ max_tokens: 5000 }))).json() as Json
    expect(tooMany.error.message).toBe('max_tokens: must be an integer between 1 and 2048')
    // within the limit alone, but not with the prompt: the engine's own check
    const tooLong = await post('/v1/chat/completions', chat({ max_tokens: 2048 }))
    expect(tooLong.status).toBe(400)
    expect((await tooLong.json() as Json).error.code).toBe('context_length_exceeded')
  })

  it('maps protocol errors: malformed JSON, 413, 415, 404, 405, 501', async () => {
    const malformed = await post('/v1/chat/completions', '{"model": ')
    expect(malformed.status).toBe(400)
    expect((await malformed.json() as Json).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_json' })

    const empty = await post('/v1/chat/completions', '')
    expect(empty.status).toBe(400)

    const big = JSON.stringify({ model, prompt: 'x'.repeat(1024 * 1024) })
    const tooLarge = await post('/v1/completions', big)
    expect(tooLarge.status).toBe(413)
    expect((await tooLarge.json() as Json).error.code).toBe('payload_too_large')
    // chunked, without a content-length
    const chunked = await post('/v1/completions', undefined, {
      body: new ReadableStream({
        start (c) {
          for (let i = 0; i < 20; i++) c.enqueue(new TextEncoder().encode('x'.repeat(100_000)))
          c.close()
        }
      }),
      duplex: 'half'
    } as RequestInit)
    expect(chunked.status).toBe(413)

    for (const type of ['text/plain', undefined]) {
      const res = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: type === undefined ? {} : { 'content-type': type }, body: type === undefined ? new Uint8Array([123, 125]) : '{}' })
      expect(res.status).toBe(415)
      expect((await res.json() as Json).error.code).toBe('unsupported_media_type')
    }

    const route = await fetch(`${base}/v1/nothing`)
    expect(route.status).toBe(404)
    expect((await route.json() as Json).error.type).toBe('invalid_request_error')

    const unknownModel = await post('/v1/chat/completions', { model: 'not-here', messages: USER })
    expect(unknownModel.status).toBe(404)
    expect((await unknownModel.json() as Json).error).toMatchObject({ code: 'model_not_found', param: 'model', type: 'invalid_request_error' })
    expect((await post('/v1/embeddings', { model: 'not-here', input: 'x' })).status).toBe(404)

    const wrongMethod = await fetch(`${base}/v1/chat/completions`)
    expect(wrongMethod.status).toBe(405)
    expect(wrongMethod.headers.get('allow')).toBe('POST')
    const wrongMethod2 = await post('/v1/models', {})
    expect(wrongMethod2.status).toBe(405)
    expect(wrongMethod2.headers.get('allow')).toBe('GET, HEAD')

    for (const r of ['/v1/inference/single', '/v1/moe/query']) {
      const res = await post(r, { prompt: 'x', task_type: 'general' })
      expect(res.status).toBe(501)
      expect((await res.json() as Json).error.code).toBe('not_implemented')
    }
  })

  it('aborts the generation when the client disconnects mid-stream', async () => {
    const before = outcomes.length
    const controller = new AbortController()
    const res = await post('/v1/chat/completions', { model, messages: USER, max_tokens: 1500, temperature: 0, stream: true }, { signal: controller.signal })
    expect(res.status).toBe(200)
    const reader = sseReader(res)
    const first = JSON.parse((await reader.next())!) as Json
    expect(first.choices[0].delta.role).toBe('assistant')
    await reader.next()
    const inFlight = (): number => engine.listModels().find(m => m.id === model)!.in_flight
    expect(inFlight()).toBe(1)
    controller.abort()
    await waitUntil(() => inFlight() === 0)
    expect(outcomes.length).toBe(before + 1)
    expect(await outcomes[before]).toBe('RequestAbortedError')
  })
})

describe('HTTP API with a busy engine and a mesh router', () => {
  let dir: string
  let engine: Engine
  let server: HttpServer
  let base: string
  let model: string
  const seen: { moe?: MoeQueryRequest, single?: SingleQueryRequest, remote?: string } = {}

  const post = async (route: string, body: unknown): Promise<Response> =>
    await fetch(`${base}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'flexnode-http-busy-'))
    await ensureModel(dir, 'tiny', 1)
    engine = await createInferenceEngine({ modelsDirs: [dir], gpu: false, sequences: 1, maxQueue: 0 }, { logger: silentLogger() })
    model = engine.listModels()[0]!.id
    await engine.loadModel(model)
    // a "remote" node: the same engine under another model name
    const remote: Pick<InferenceEngine, 'chat' | 'complete' | 'embed'> = {
      chat: async (m: string, messages: ChatMessage[], options?: GenerateOptions) => {
        seen.remote = m
        return { ...await engine.chat(model, messages, options), model: m }
      },
      complete: async (m, prompt, options) => ({ ...await engine.complete(model, prompt, options), model: m }),
      embed: async (m, input, options) => ({ ...await engine.embed(model, input, options), model: m })
    }
    server = createHttpServer({ port: 0 }, {
      engine,
      logger: silentLogger(),
      router: {
        remote,
        single: async (request) => {
          if (request.prompt === 'boom') throw new Error('secret internal detail')
          seen.single = request
          const r = await engine.complete(model, request.prompt, { max_tokens: request.max_tokens ?? 4, temperature: 0 })
          return { response: r.text, model: r.model }
        },
        moe: async (request) => {
          seen.moe = request
          return { response: 'ok', consensus_score: 1, model_votes: [{ model, response_hash: 'h', weight: 1, latency_ms: 1 }], trace_id: 't' }
        }
      }
    })
    base = `http://127.0.0.1:${(await server.start()).port}`
  })

  afterAll(async () => {
    await server?.stop()
    await engine?.dispose()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it('answers 503 queue_full while the only sequence is generating (streaming or not)', async () => {
    const holder = await post('/v1/chat/completions', { model, messages: USER, max_tokens: 500, temperature: 0, stream: true })
    expect(holder.status).toBe(200)
    const reader = sseReader(holder)
    await reader.next()
    await reader.next()
    for (const stream of [false, true]) {
      const busy = await post('/v1/chat/completions', { model, messages: USER, max_tokens: 4, stream })
      expect(busy.status).toBe(503)
      expect(busy.headers.get('content-type')).toMatch(/^application\/json/)
      expect((await busy.json() as Json).error).toMatchObject({ type: 'server_error', code: 'queue_full' })
    }
    let last: string | undefined
    for (let e = await reader.next(); e !== undefined; e = await reader.next()) last = e
    expect(last).toBe('[DONE]')
    await waitUntil(() => engine.listModels()[0]!.in_flight === 0)
    expect((await post('/v1/chat/completions', { model, messages: USER, max_tokens: 4 })).status).toBe(200)
  })

  it('delegates models it does not hold to the remote router', async () => {
    const res = await post('/v1/chat/completions', { model: 'org/elsewhere', messages: USER, max_tokens: 4, temperature: 0 })
    expect(res.status).toBe(200)
    expect((await res.json() as Json).model).toBe('org/elsewhere')
    expect(seen.remote).toBe('org/elsewhere')
    expect((await post('/v1/embeddings', { model: 'org/elsewhere', input: 'x' })).status).toBe(200)
  })

  it('validates and forwards MOE and single queries', async () => {
    const ok = await post('/v1/moe/query', { prompt: 'why', task_type: 'reasoning' })
    expect(ok.status).toBe(200)
    expect((await ok.json() as Json).consensus_score).toBe(1)
    expect(seen.moe).toEqual({ prompt: 'why', task_type: 'reasoning', require_consensus: true, max_tokens: 4096 })
    await post('/v1/moe/query', { prompt: 'why', task_type: 'review', policy_override: 'strict', require_consensus: false, max_tokens: 10 })
    expect(seen.moe).toEqual({ prompt: 'why', task_type: 'review', policy_override: 'strict', require_consensus: false, max_tokens: 10 })

    const bad: Array<[Json, string]> = [
      [{ task_type: 'general' }, 'prompt'],
      [{ prompt: 3, task_type: 'general' }, 'prompt'],
      [{ prompt: 'x' }, 'task_type'],
      [{ prompt: 'x', task_type: 'poetry' }, 'task_type'],
      [{ prompt: 'x', task_type: 'general', policy_override: 5 }, 'policy_override'],
      [{ prompt: 'x', task_type: 'general', require_consensus: 'yes' }, 'require_consensus'],
      [{ prompt: 'x', task_type: 'general', max_tokens: -1 }, 'max_tokens']
    ]
    for (const [body, param] of bad) {
      const res = await post('/v1/moe/query', body)
      expect({ param, status: res.status, got: ((await res.json()) as Json).error.param }).toEqual({ param, status: 400, got: param })
    }

    const single = await post('/v1/inference/single', { prompt: 'the', max_tokens: 3 })
    expect(single.status).toBe(200)
    expect((await single.json() as Json).model).toBe(model)
    expect(seen.single).toEqual({ prompt: 'the', max_tokens: 3 })
    expect((await post('/v1/inference/single', { prompt: 'x', task_type: 'nope' })).status).toBe(400)

    const boom = await post('/v1/inference/single', { prompt: 'boom' })
    expect(boom.status).toBe(500)
    const text = await boom.text()
    expect(text).not.toContain('secret')
    expect((JSON.parse(text) as Json).error).toEqual({ message: 'internal server error', type: 'server_error', param: null, code: null })
  })

  it('ends a running stream with an error event when the server stops', async () => {
    const res = await post('/v1/chat/completions', { model, messages: USER, max_tokens: 1500, stream: true })
    const reader = sseReader(res)
    await reader.next()
    const stopping = server.stop()
    let last: string | undefined
    for (let e = await reader.next(); e !== undefined; e = await reader.next()) last = e
    await stopping
    expect(last).toBeDefined()
    expect((JSON.parse(last!) as Json).error).toMatchObject({ type: 'server_error', code: 'shutting_down' })
    await waitUntil(() => engine.listModels()[0]!.in_flight === 0)
  })
})
