/**
 * The prompt cache through the OpenAI-compatible API, on a real engine serving a generated GGUF
 * model. The engine's generations are counted by a wrapper that forwards every call to the real
 * engine (composition, not a mock), so a hit is seen not to reach the model.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { ensureModel } from '../../../../fixtures/gguf/index.ts'
import { waitUntil } from '../../../../fixtures/wait.ts'
import { createInferenceEngine } from '../../inference/engine.ts'
import { silentLogger } from '../../logger.ts'
import { createHttpServer, type HttpServer, type HttpServerComponents } from '../../http/server.ts'
import { LOCAL_REGISTRY_FILE, localVectorMemory, type LocalVectorMemory } from '../local.ts'
import {
  isDeterministic, nodePromptCache, promptCache, promptCacheCollection, promptKey, promptText, samplingKey,
  type PromptCacheComponents, type PromptCacheInit, type PromptCacheRequest, type PromptCacheService
} from '../prompt-cache.ts'

type Engine = Awaited<ReturnType<typeof createInferenceEngine>>
type Json = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

/** `data:` payloads of an SSE body. */
function sseData (text: string): string[] {
  return text.split('\n\n').map(e => e.trim()).filter(e => e.length > 0).map(e => {
    expect(e.startsWith('data: ')).toBe(true)
    return e.slice('data: '.length)
  })
}

function cosine (a: number[], b: number[]): number {
  let dot = 0
  let na = 0
  let nb = 0
  a.forEach((x, i) => { const y = b[i]!; dot += x * y; na += x * x; nb += y * y })
  return dot / Math.sqrt(na * nb)
}

/** The engine with its generations counted (each call forwarded to the real engine). */
function counted (engine: Engine): { engine: HttpServerComponents['engine'], generations: () => number } {
  let n = 0
  return {
    generations: () => n,
    engine: {
      listModels: () => engine.listModels(),
      chat: async (model, messages, options) => { n++; return await engine.chat(model, messages, options) },
      complete: async (model, prompt, options) => { n++; return await engine.complete(model, prompt, options) },
      embed: async (model, input, options) => await engine.embed(model, input, options)
    }
  }
}

interface Served {
  base: string
  cache: PromptCacheService
  generations: () => number
  post: (route: string, body: unknown) => Promise<Response>
  stop: () => Promise<void>
}

describe('prompt cache', () => {
  let dir: string
  let engine: Engine
  let model: string
  const running: Served[] = []

  /** An HTTP API with its own prompt cache. */
  const serve = async (init: PromptCacheInit = {}, extra: Partial<PromptCacheComponents> = {}): Promise<Served> => {
    const { engine: e, generations } = counted(engine)
    const cache = promptCache(init)({ logger: silentLogger(), embed: async (m, input, o) => await engine.embed(m, input, o), ...extra })
    await cache.start()
    const server: HttpServer = createHttpServer({ port: 0 }, { engine: e, logger: silentLogger(), promptCache: cache })
    const { port } = await server.start()
    const base = `http://127.0.0.1:${port}`
    const served: Served = {
      base,
      cache,
      generations,
      post: async (route, body) => await fetch(`${base}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
      stop: async () => { await server.stop(); await cache.stop() }
    }
    running.push(served)
    return served
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'flexnode-prompt-cache-'))
    await ensureModel(dir, 'tiny', 1)
    engine = await createInferenceEngine({ modelsDirs: [dir], gpu: false, threads: 1, sequences: 2 }, { logger: silentLogger() })
    model = engine.listModels()[0]!.id
    await engine.loadModel(model)
  })

  /** A started node-local vector memory in its own folder. */
  const memories: LocalVectorMemory[] = []
  const localMemory = async (name: string): Promise<LocalVectorMemory> => {
    const memory = localVectorMemory({ dir: path.join(dir, name) })({ logger: silentLogger() })
    await memory.start()
    memories.push(memory)
    return memory
  }

  afterAll(async () => {
    for (const s of running) await s.stop()
    for (const m of memories) await m.stop()
    await engine?.dispose()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  const chat = (content: string, extra: Json = {}): Json => ({ model, messages: [{ role: 'user', content }], max_tokens: 6, temperature: 0, ...extra })

  it('answers a repeated deterministic chat request from the cache: same answer, header hit/exact, the model not run again', async () => {
    const s = await serve()
    const first = await s.post('/v1/chat/completions', chat('tell me about the sea'))
    expect(first.status).toBe(200)
    expect(first.headers.get('x-flexnode-cache')).toBe('miss')
    expect(first.headers.get('x-flexnode-cache-match')).toBeNull()
    const a = await first.json() as Json
    expect(s.generations()).toBe(1)

    const second = await s.post('/v1/chat/completions', chat('tell me about the sea'))
    expect(second.status).toBe(200)
    expect(second.headers.get('x-flexnode-cache')).toBe('hit')
    expect(second.headers.get('x-flexnode-cache-match')).toBe('exact')
    const b = await second.json() as Json
    expect(s.generations()).toBe(1)
    // a response of its own (id, created), carrying the cached answer
    expect(b.id).toMatch(/^chatcmpl-/)
    expect(b.id).not.toBe(a.id)
    const { id: _a, created: _ac, ...restA } = a
    const { id: _b, created: _bc, ...restB } = b
    expect(restB).toEqual(restA)
    expect((a.choices[0].message.content as string).length).toBeGreaterThan(0)
    expect(s.cache.stats()).toEqual({ hits_exact: 1, hits_semantic: 0, misses: 1, entries: 1 })
  })

  it('answers a repeated completion from the cache, and keys on every sampling parameter that changes the output', async () => {
    const s = await serve()
    const req = { model, prompt: 'Once upon a time', max_tokens: 5, temperature: 0 }
    const a = await s.post('/v1/completions', req)
    expect(a.headers.get('x-flexnode-cache')).toBe('miss')
    const aBody = await a.json() as Json
    const b = await s.post('/v1/completions', req)
    expect(b.headers.get('x-flexnode-cache')).toBe('hit')
    expect(b.headers.get('x-flexnode-cache-match')).toBe('exact')
    expect((await b.json() as Json).choices).toEqual(aBody.choices)
    expect(s.generations()).toBe(1)

    // another max_tokens, stop, prompt or model key: each a miss of its own
    for (const other of [{ ...req, max_tokens: 4 }, { ...req, stop: ['\n'] }, { ...req, prompt: 'Once upon a time there' }]) {
      const r = await s.post('/v1/completions', other)
      expect(r.status).toBe(200)
      expect(r.headers.get('x-flexnode-cache')).toBe('miss')
      await r.arrayBuffer()
    }
    expect(s.generations()).toBe(4)
    // a chat is not a completion of the same text
    const c = await s.post('/v1/chat/completions', { model, messages: [{ role: 'user', content: req.prompt }], max_tokens: 5, temperature: 0 })
    expect(c.headers.get('x-flexnode-cache')).toBe('miss')
    await c.arrayBuffer()
    expect(s.generations()).toBe(5)
  })

  it('caches a sampled request with a fixed seed, per seed', async () => {
    const s = await serve()
    const req = chat('a seeded story', { temperature: 0.9, seed: 42 })
    const a = await s.post('/v1/chat/completions', req)
    expect(a.headers.get('x-flexnode-cache')).toBe('miss')
    const aBody = await a.json() as Json
    const b = await s.post('/v1/chat/completions', req)
    expect(b.headers.get('x-flexnode-cache')).toBe('hit')
    expect((await b.json() as Json).choices).toEqual(aBody.choices)
    const c = await s.post('/v1/chat/completions', { ...req, seed: 43 })
    expect(c.headers.get('x-flexnode-cache')).toBe('miss')
    await c.arrayBuffer()
    expect(s.generations()).toBe(2)
  })

  it('never caches a non-deterministic request, nor one with cache: "off"', async () => {
    const s = await serve()
    const requests: Json[] = [
      { model, messages: [{ role: 'user', content: 'random' }], max_tokens: 4 }, // the engine's default temperature, no seed
      { model, messages: [{ role: 'user', content: 'random' }], max_tokens: 4, temperature: 0.7 },
      chat('not cached', { cache: 'off' })
    ]
    for (const req of requests) {
      for (let i = 0; i < 2; i++) {
        const r = await s.post('/v1/chat/completions', req)
        expect(r.status).toBe(200)
        expect(r.headers.get('x-flexnode-cache')).toBeNull()
        expect(r.headers.get('x-flexnode-cache-match')).toBeNull()
        await r.arrayBuffer()
      }
    }
    expect(s.generations()).toBe(6)
    expect(s.cache.stats()).toEqual({ hits_exact: 0, hits_semantic: 0, misses: 0, entries: 0 })
  })

  it('replays a cached answer as an SSE stream, and caches what a stream generated', async () => {
    const s = await serve()
    const req = chat('stream this', { stream: true, stream_options: { include_usage: true } })
    const first = await s.post('/v1/chat/completions', req)
    expect(first.headers.get('content-type')).toMatch(/^text\/event-stream/)
    expect(first.headers.get('x-flexnode-cache')).toBe('miss')
    const events1 = sseData(await first.text())
    expect(s.generations()).toBe(1)

    const second = await s.post('/v1/chat/completions', req)
    expect(second.headers.get('content-type')).toMatch(/^text\/event-stream/)
    expect(second.headers.get('x-flexnode-cache')).toBe('hit')
    expect(second.headers.get('x-flexnode-cache-match')).toBe('exact')
    const events2 = sseData(await second.text())
    expect(s.generations()).toBe(1)

    const text = (events: string[]): string => events.filter(e => e !== '[DONE]').map(e => JSON.parse(e) as Json)
      .flatMap(c => c.choices.map((ch: Json) => ch.delta.content ?? '')).join('')
    const tail = (events: string[]): Json[] => events.filter(e => e !== '[DONE]').slice(-2).map(e => JSON.parse(e) as Json)
    expect(events2[events2.length - 1]).toBe('[DONE]')
    expect(text(events2)).toBe(text(events1))
    expect(text(events2).length).toBeGreaterThan(0)
    const opening = JSON.parse(events2[0]!) as Json
    expect(opening.choices[0].delta).toEqual({ role: 'assistant', content: '' })
    // the finish chunk and the usage chunk, as the generation sent them
    const [finish2, usage2] = tail(events2)
    const [finish1, usage1] = tail(events1)
    expect(finish2!.choices[0].finish_reason).toBe(finish1!.choices[0].finish_reason)
    expect(usage2!.usage).toEqual(usage1!.usage)
    expect(usage2!.choices).toEqual([])

    // the answer a stream generated serves a non-streaming request too, and a completion stream replays
    const whole = await s.post('/v1/chat/completions', chat('stream this'))
    expect(whole.headers.get('x-flexnode-cache')).toBe('hit')
    expect((await whole.json() as Json).choices[0].message.content).toBe(text(events1))
    const creq = { model, prompt: 'streamed completion', max_tokens: 4, temperature: 0 }
    const c1 = await (await s.post('/v1/completions', creq)).json() as Json
    const c2 = await s.post('/v1/completions', { ...creq, stream: true })
    expect(c2.headers.get('x-flexnode-cache')).toBe('hit')
    const cEvents = sseData(await c2.text())
    expect(cEvents.filter(e => e !== '[DONE]').map(e => (JSON.parse(e) as Json).choices[0].text).join('')).toBe(c1.choices[0].text)
    expect(s.generations()).toBe(2)
  })

  it('never serves an expired answer (ttl)', async () => {
    const ttlSeconds = 0.2
    const s = await serve({ ttlSeconds })
    const req = chat('short lived')
    const a = await s.post('/v1/chat/completions', req)
    expect(a.headers.get('x-flexnode-cache')).toBe('miss')
    await a.arrayBuffer()
    const stored = performance.now()
    // still fresh right away: a hit (the cache's clock started before `stored`)
    const b = await s.post('/v1/chat/completions', req)
    await b.arrayBuffer()
    if (performance.now() - stored < ttlSeconds * 1000 / 2) expect(b.headers.get('x-flexnode-cache')).toBe('hit')
    // once the ttl has surely passed: a miss, the model runs again
    const before = s.generations()
    await waitUntil(() => performance.now() - stored > ttlSeconds * 1000, { what: 'the ttl to pass' })
    const c = await s.post('/v1/chat/completions', req)
    expect(c.headers.get('x-flexnode-cache')).toBe('miss')
    await c.arrayBuffer()
    expect(s.generations()).toBe(before + 1)
    expect(s.cache.stats().entries).toBe(1)
  })

  it('keeps at most maxEntries answers, evicting the oldest', async () => {
    const s = await serve({ maxEntries: 2 })
    for (const p of ['first prompt', 'second prompt', 'third prompt']) {
      const r = await s.post('/v1/chat/completions', chat(p))
      expect(r.headers.get('x-flexnode-cache')).toBe('miss')
      await r.arrayBuffer()
    }
    expect(s.cache.stats().entries).toBe(2)
    expect(s.generations()).toBe(3)
    for (const p of ['second prompt', 'third prompt']) {
      const r = await s.post('/v1/chat/completions', chat(p))
      expect(r.headers.get('x-flexnode-cache')).toBe('hit')
      await r.arrayBuffer()
    }
    expect(s.generations()).toBe(3)
    // the oldest was evicted: it runs the model again (and evicts the next oldest, 'second prompt')
    const r = await s.post('/v1/chat/completions', chat('first prompt'))
    expect(r.headers.get('x-flexnode-cache')).toBe('miss')
    await r.arrayBuffer()
    expect(s.generations()).toBe(4)
    const again = await s.post('/v1/chat/completions', chat('second prompt'))
    expect(again.headers.get('x-flexnode-cache')).toBe('miss')
    await again.arrayBuffer()
    expect(s.cache.stats()).toEqual({ hits_exact: 2, hits_semantic: 0, misses: 5, entries: 2 })
  })

  it('rejects a bad cache or cache_threshold with 400 and its param', async () => {
    const s = await serve()
    const cases: Array<[string, Json, string]> = [
      ['/v1/chat/completions', chat('x', { cache: 'fuzzy' }), 'cache'],
      ['/v1/chat/completions', chat('x', { cache: true }), 'cache'],
      ['/v1/chat/completions', chat('x', { cache: 'semantic', cache_threshold: 1.5 }), 'cache_threshold'],
      ['/v1/chat/completions', chat('x', { cache: 'semantic', cache_threshold: -0.1 }), 'cache_threshold'],
      ['/v1/chat/completions', chat('x', { cache: 'semantic', cache_threshold: '0.9' }), 'cache_threshold'],
      ['/v1/chat/completions', chat('x', { cache_threshold: 0.9 }), 'cache_threshold'],
      ['/v1/completions', { model, prompt: 'x', temperature: 0, cache: 'SEMANTIC' }, 'cache'],
      ['/v1/completions', { model, prompt: 'x', temperature: 0, cache: 'semantic', cache_threshold: 2 }, 'cache_threshold']
    ]
    for (const [route, body, param] of cases) {
      const res = await s.post(route, body)
      expect(res.status, JSON.stringify(body)).toBe(400)
      expect(res.headers.get('x-flexnode-cache')).toBeNull()
      const { error } = await res.json() as Json
      expect(error).toMatchObject({ name: 'InvalidRequestError', type: 'invalid_request_error', code: 'invalid_value', param })
    }
    expect(s.generations()).toBe(0)
    // the bounds themselves are valid
    for (const th of [0, 1]) {
      const r = await s.post('/v1/chat/completions', chat('bounds', { cache: 'semantic', cache_threshold: th }))
      expect(r.status).toBe(200)
      await r.arrayBuffer()
    }
  })

  describe('semantic', () => {
    const original = 'What is the capital city of France?'
    const paraphrase = 'What is the capital of France?'
    const unrelated = 'Write a haiku about garbage trucks at night.'
    const request = (content: string, extra: Json = {}): Json => chat(content, { cache: 'semantic', ...extra })
    /** the text the cache embeds for a chat of one user message */
    const embedded = (content: string): string => promptText({ model, messages: [{ role: 'user', content }], max_tokens: 6, temperature: 0 })

    it('answers a paraphrase above the threshold from the cache, and not a prompt below it', async () => {
      // the demo model's embeddings are random-weight: measure the similarities first, choose the threshold between them
      const [o, p, u] = (await engine.embed(model, [embedded(original), embedded(paraphrase), embedded(unrelated)])).embeddings
      const simParaphrase = cosine(o!, p!)
      const simUnrelated = cosine(o!, u!)
      expect(simParaphrase).toBeGreaterThan(simUnrelated + 0.01)
      expect(simParaphrase).toBeLessThan(1)
      const threshold = (simParaphrase + simUnrelated) / 2

      const s = await serve({}, { memory: async () => await localMemory('semantic') })
      const first = await s.post('/v1/chat/completions', request(original, { cache_threshold: threshold }))
      expect(first.headers.get('x-flexnode-cache')).toBe('miss')
      const answer = (await first.json() as Json).choices[0].message.content as string
      expect(s.generations()).toBe(1)

      const hit = await s.post('/v1/chat/completions', request(paraphrase, { cache_threshold: threshold }))
      expect(hit.status).toBe(200)
      expect(hit.headers.get('x-flexnode-cache')).toBe('hit')
      expect(hit.headers.get('x-flexnode-cache-match')).toBe('semantic')
      expect((await hit.json() as Json).choices[0].message.content).toBe(answer)
      expect(s.generations()).toBe(1)

      // streamed, the semantic hit is replayed
      const streamed = await s.post('/v1/chat/completions', request(paraphrase, { cache_threshold: threshold, stream: true }))
      expect(streamed.headers.get('x-flexnode-cache')).toBe('hit')
      expect(streamed.headers.get('x-flexnode-cache-match')).toBe('semantic')
      const deltas = sseData(await streamed.text()).filter(e => e !== '[DONE]').map(e => (JSON.parse(e) as Json).choices[0].delta.content ?? '').join('')
      expect(deltas).toBe(answer)
      expect(s.generations()).toBe(1)

      // below the threshold: a miss, the model runs
      const miss = await s.post('/v1/chat/completions', request(unrelated, { cache_threshold: threshold }))
      expect(miss.headers.get('x-flexnode-cache')).toBe('miss')
      await miss.arrayBuffer()
      expect(s.generations()).toBe(2)

      // the paraphrase misses with a threshold above the similarity it has, with other sampling
      // parameters, and without opting in (the semantic hits stored nothing under its own key)
      const others = [
        request(paraphrase, { cache_threshold: Math.min(1, simParaphrase + 0.001), max_tokens: 5 }),
        request(paraphrase, { cache_threshold: threshold, max_tokens: 4 }),
        chat(paraphrase)
      ]
      for (const other of others) {
        const r = await s.post('/v1/chat/completions', other)
        expect(r.headers.get('x-flexnode-cache'), JSON.stringify(other)).toBe('miss')
        await r.arrayBuffer()
      }
      expect(s.generations()).toBe(5)
      expect(s.cache.stats()).toEqual({ hits_exact: 0, hits_semantic: 2, misses: 5, entries: 5 })
    })

    it('evicts the oldest from the vector collection too, never serves an expired answer, and drops a past run\'s collections at its first use', async () => {
      const memory = await localMemory('semantic-evict')
      const collection = promptCacheCollection(model)
      const asCache = (content: string): PromptCacheRequest => ({ model, messages: [{ role: 'user', content }], max_tokens: 6, temperature: 0 })
      const s = await serve({ maxEntries: 1 }, { memory: async () => memory })
      const a = await s.post('/v1/chat/completions', request(original, { cache_threshold: 0 }))
      expect(a.headers.get('x-flexnode-cache')).toBe('miss')
      await a.arrayBuffer()
      await waitUntil(async () => (await memory.get(collection, [promptKey(asCache(original))])).length === 1, { what: 'the embedding stored' })
      const b = await s.post('/v1/chat/completions', request(unrelated, { cache_threshold: 0.999999 }))
      expect(b.headers.get('x-flexnode-cache')).toBe('miss')
      await b.arrayBuffer()
      await waitUntil(async () => (await memory.get(collection, [promptKey(asCache(original))])).length === 0, { what: 'the evicted embedding deleted' })
      expect((await memory.get(collection, [promptKey(asCache(unrelated))])).length).toBe(1)
      expect(s.cache.stats().entries).toBe(1)

      // a new cache on the same memory: at its first semantic request, the last run's collection is dropped
      const again = await serve({ ttlSeconds: 0.2 }, { memory: async () => memory })
      const c = await again.post('/v1/chat/completions', request(original, { cache_threshold: 0 }))
      expect(c.headers.get('x-flexnode-cache')).toBe('miss')
      await c.arrayBuffer()
      expect((await memory.get(collection, [promptKey(asCache(unrelated))])).length).toBe(0)
      await waitUntil(async () => (await memory.get(collection, [promptKey(asCache(original))])).length === 1, { what: 'the embedding stored' })
      // expired: not served by similarity either (threshold 0 would take any cached prompt)
      const stored = performance.now()
      await waitUntil(() => performance.now() - stored > 200, { what: 'the ttl to pass' })
      const d = await again.post('/v1/chat/completions', request(paraphrase, { cache_threshold: 0 }))
      expect(d.headers.get('x-flexnode-cache')).toBe('miss')
      await d.arrayBuffer()
      expect(again.cache.stats().hits_semantic).toBe(0)
    })
  })

  it('a node\'s cache opens its own vector memory at the first semantic request only, and stops it after itself', async () => {
    const cacheDir = path.join(dir, 'node-cache')
    const cache = nodePromptCache({ dir: cacheDir })({ logger: silentLogger(), embed: async (m, input, o) => await engine.embed(m, input, o) })
    await cache.start()
    const ask = { model, messages: [{ role: 'user' as const, content: 'where do rivers go' }], max_tokens: 6, temperature: 0 }
    const exact = await cache.lookup(ask)
    expect(exact?.status).toBe('miss')
    if (exact?.status === 'miss') exact.store({ model, text: 'to the sea', finish_reason: 'stop', usage: { prompt_tokens: 4, completion_tokens: 3, total_tokens: 7 } })
    expect((await cache.lookup(ask))?.status).toBe('hit')
    expect(existsSync(cacheDir)).toBe(false)
    const semantic = await cache.lookup({ ...ask, messages: [{ role: 'user', content: 'where do the rivers run' }], cache: 'semantic', cache_threshold: 0.99 })
    expect(semantic?.status).toBe('miss')
    if (semantic?.status === 'miss') semantic.store({ model, text: 'to the sea', finish_reason: 'stop', usage: { prompt_tokens: 4, completion_tokens: 3, total_tokens: 7 } })
    // the store into the semantic index happens behind the answer
    await waitUntil(() => existsSync(path.join(cacheDir, LOCAL_REGISTRY_FILE)), { what: 'the cache\'s vector memory opened' })
    await cache.stop()
    // stopped with its memory: a new one on the same dir opens it again (the lock-free registry is readable, its worker gone)
    const again = localVectorMemory({ dir: cacheDir })({ logger: silentLogger() })
    await again.start()
    await again.stop()
  })

  it('canonical keys: the default temperature filled in, the seed ignored when greedy, stop as a set', () => {
    expect(isDeterministic({ temperature: 0 })).toBe(true)
    expect(isDeterministic({ seed: 1 })).toBe(true)
    expect(isDeterministic({})).toBe(false)
    expect(isDeterministic({ temperature: 0.5 })).toBe(false)
    const base = { model: 'm', prompt: 'p', max_tokens: 8 }
    expect(promptKey({ ...base, seed: 3 })).toBe(promptKey({ ...base, seed: 3, temperature: 0.8 }))
    expect(promptKey({ ...base, temperature: 0, seed: 3 })).toBe(promptKey({ ...base, temperature: 0 }))
    expect(promptKey({ ...base, temperature: 0, stop: ['a', 'b'] })).toBe(promptKey({ ...base, temperature: 0, stop: ['b', 'a', 'b'] }))
    expect(samplingKey({ max_tokens: 8, temperature: 0 })).not.toBe(samplingKey({ max_tokens: 9, temperature: 0 }))
    expect(promptKey({ ...base, temperature: 0 })).not.toBe(promptKey({ ...base, model: 'n', temperature: 0 }))
    expect(promptKey({ model: 'm', messages: [{ role: 'user', content: 'p' }], max_tokens: 8, temperature: 0 })).not.toBe(promptKey({ ...base, temperature: 0 }))
    expect(() => promptCache({ ttlSeconds: 0 })).toThrow(expect.objectContaining({ name: 'InvalidInputError', field: 'ttlSeconds' }))
    expect(() => promptCache({ maxEntries: 1.5 })).toThrow(expect.objectContaining({ name: 'InvalidInputError', field: 'maxEntries' }))
    expect(() => promptCache({ defaultThreshold: 2 })).toThrow(expect.objectContaining({ name: 'InvalidInputError', field: 'defaultThreshold' }))
  })
})
