/**
 * The memory routes over HTTP on a real node (its embedded conductor, mesh and shard host), with
 * the real `fetch`: collections, points, search, get, delete; text embedded with the node's own
 * model; every bad input of the issue answers its status and typed `name`, touches nothing, and
 * the node keeps serving.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestAgent, type TestAgent } from '../../../../fixtures/index.ts'
import { ensureModel } from '../../../../fixtures/gguf/index.ts'

type Json = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

describe('memory HTTP routes', () => {
  let a: TestAgent
  let base: string
  let modelsDir: string
  let model: string

  const call = async (method: 'GET' | 'POST' | 'DELETE', route: string, body?: unknown): Promise<{ status: number, json: Json }> => {
    const res = await fetch(`${base}${route}`, body === undefined
      ? { method }
      : { method, headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) })
    return { status: res.status, json: await res.json() as Json }
  }
  const post = async (route: string, body: unknown): Promise<{ status: number, json: Json }> => await call('POST', route, body)
  const failure = async (pending: Promise<{ status: number, json: Json }>): Promise<[number, string, unknown]> => {
    const { status, json } = await pending
    expect(json.error, JSON.stringify(json)).toMatchObject({ message: expect.any(String) as unknown })
    return [status, json.error.name as string, json.error.param]
  }

  beforeAll(async () => {
    modelsDir = await mkdtemp(path.join(os.tmpdir(), 'flexnode-memory-routes-'))
    await ensureModel(modelsDir, 'tiny', 1)
    a = await createTestAgent({ modelsDirs: [modelsDir], preloadModels: true, memory: { shardCapacity: 4, threads: 1 } })
    base = `http://127.0.0.1:${a.node.info.http_port}`
    model = a.node.inference.listModels()[0]!.id
  }, 60_000)

  afterAll(async () => {
    await a?.[Symbol.asyncDispose]()
    await rm(modelsDir, { recursive: true, force: true })
  })

  it('creates a collection, writes, searches with a filter, gets, deletes points and the collection', async () => {
    const created = await post('/v1/memory/collections', { name: 'docs', dimensions: 3, distance: 'cosine', shard_count: 4 })
    expect(created.status, JSON.stringify(created.json)).toBe(201)
    expect(created.json).toMatchObject({ name: 'docs', dimensions: 3, distance: 'cosine', shard_count: 4, replication_factor: 2 })
    const points = [
      { id: 'a', vector: [1, 0, 0], metadata: { lang: 'en' } },
      { id: 'b', vector: [0.9, 0.1, 0], metadata: { lang: 'fr' } },
      { id: 'c', vector: [0, 1, 0], metadata: { lang: 'en' } }
    ]
    expect(await post('/v1/memory/collections/docs/points', { points })).toMatchObject({ status: 200, json: { written: 3 } })
    const found = await post('/v1/memory/collections/docs/search', { vector: [1, 0, 0], k: 2 })
    expect(found.status).toBe(200)
    expect(found.json).toMatchObject({ partial: false, shards_answered: 4, shards_total: 4 })
    expect(found.json.results.map((r: Json) => r.id)).toEqual(['a', 'b'])
    expect(found.json.results[0].score).toBeCloseTo(1, 5)
    const en = await post('/v1/memory/collections/docs/search', { vector: [1, 0, 0], k: 3, filter: { lang: { in: ['en'] } } })
    expect(en.json.results.map((r: Json) => r.id)).toEqual(['a', 'c'])
    const got = await post('/v1/memory/collections/docs/get', { ids: ['c', 'zz', 'a'] })
    expect(got.json.points.map((p: Json) => p.id)).toEqual(['c', 'a'])
    expect(await post('/v1/memory/collections/docs/delete', { ids: ['a'] })).toMatchObject({ status: 200, json: { written: 1 } })
    expect((await post('/v1/memory/collections/docs/search', { vector: [1, 0, 0], k: 1 })).json.results[0].id).toBe('b')

    const info = await call('GET', '/v1/memory/collections/docs')
    expect(info.status).toBe(200)
    expect(info.json).toMatchObject({ name: 'docs', count: 2, under_replicated: true, epoch: expect.any(Number) as unknown })
    expect(info.json.shards).toHaveLength(4)
    expect(info.json.shards[0].replicas[0]).toMatchObject({ node_id: a.node.info.agent_pub_key, state: 'serving', live: true })
    expect((await call('GET', '/v1/memory/collections')).json.collections.map((c: Json) => c.name)).toEqual(['docs'])
    expect(await call('DELETE', '/v1/memory/collections/docs')).toMatchObject({ status: 200, json: { name: 'docs', deleted: true } })
    expect(await failure(call('GET', '/v1/memory/collections/docs'))).toEqual([404, 'UnknownCollectionError', 'collection'])
  })

  it('embeds text with the collection\'s model: a text\'s own point is its nearest', async () => {
    const dims = (await a.node.inference.embed(model, ['x'])).embeddings[0]!.length
    expect((await post('/v1/memory/collections', { name: 'texts', dimensions: dims, distance: 'cosine', shard_count: 2, embedding_model: model })).status).toBe(201)
    const texts = ['the cat sat on the mat', 'stock markets fell sharply today', 'a recipe for bread with yeast']
    expect((await post('/v1/memory/collections/texts/points', { points: texts.map((text, i) => ({ id: `t${i}`, text })) })).status).toBe(200)
    for (let i = 0; i < texts.length; i++) {
      const r = await post('/v1/memory/collections/texts/search', { text: texts[i], k: 1 })
      expect(r.json.results[0].id).toBe(`t${i}`)
    }
  })

  it('answers every bad input with its status and typed error, writing nothing', async () => {
    expect((await post('/v1/memory/collections', { name: 'bad', dimensions: 2, distance: 'l2', shard_count: 2 })).status).toBe(201)
    const pts = (route: string, body: unknown): Promise<[number, string, unknown]> => failure(post(`/v1/memory/collections/bad${route}`, body))
    expect(await failure(post('/v1/memory/collections', { name: 'bad', dimensions: 2, distance: 'l2' }))).toEqual([409, 'CollectionExistsError', 'name'])
    expect((await failure(post('/v1/memory/collections', { name: 'x y', dimensions: 2, distance: 'l2' })))[0]).toBe(400)
    expect((await failure(post('/v1/memory/collections', { name: 'x', dimensions: 2, distance: 'hamming' })))[0]).toBe(400)
    expect((await failure(post('/v1/memory/collections', { name: 'x', dimensions: 2, distance: 'l2', colour: 'red' })))[0]).toBe(400)
    // wrong dimensions, a non-finite number (JSON has no NaN: a string, or a number out of float range), duplicates, one bad point among good ones
    expect(await pts('/points', { points: [{ id: 'p', vector: [1, 2, 3] }] })).toEqual([400, 'InvalidVectorError', 'points[0].vector'])
    expect(await pts('/points', { points: [{ id: 'p', vector: [1, 'NaN'] }] })).toEqual([400, 'InvalidVectorError', 'points[0].vector[1]'])
    expect(await pts('/points', { points: [{ id: 'p', vector: [1, 1e300] }] })).toEqual([400, 'InvalidVectorError', 'points[0].vector[1]'])
    expect(await pts('/points', { points: [{ id: 'p', vector: [1, 2] }, { id: 'p', vector: [2, 1] }] })).toEqual([400, 'InvalidVectorError', 'points[1].id'])
    expect(await pts('/points', { points: [{ id: 'ok', vector: [1, 2] }, { id: 'bad', vector: [1] }] })).toEqual([400, 'InvalidVectorError', 'points[1].vector'])
    expect(await pts('/points', { points: [{ id: 'ok', text: 'hello' }] })).toEqual([400, 'NoEmbeddingModelError', 'text'])
    expect(await pts('/points', { points: [{ id: 'ok', vector: [1, 2] }], write_consistency: 'most' })).toEqual([400, 'InvalidInputError', 'write_consistency'])
    const big = await pts('/points', { points: Array.from({ length: 1001 }, (_, i) => ({ id: `p${i}`, vector: [1, 2] })) })
    expect(big).toEqual([413, 'BatchTooLargeError', 'points'])
    // k and ef out of range, a malformed filter, text without a model
    expect(await pts('/search', { vector: [1, 2], k: 0 })).toEqual([400, 'InvalidVectorError', 'k'])
    expect(await pts('/search', { vector: [1, 2], k: 1001 })).toEqual([400, 'InvalidVectorError', 'k'])
    expect(await pts('/search', { vector: [1, 2], k: 10, ef: 5 })).toEqual([400, 'InvalidVectorError', 'ef'])
    expect(await pts('/search', { vector: [1, 2], k: 1, filter: { lang: { like: 'e%' } } })).toEqual([400, 'InvalidVectorError', 'filter.lang'])
    expect(await pts('/search', { vector: [1, 2], k: 1, filter: ['lang'] })).toEqual([400, 'InvalidVectorError', 'filter'])
    expect(await pts('/search', { text: 'hello', k: 1 })).toEqual([400, 'NoEmbeddingModelError', 'text'])
    expect(await failure(post('/v1/memory/collections/nope/search', { vector: [1, 2], k: 1 }))).toEqual([404, 'UnknownCollectionError', 'collection'])
    expect(await failure(post('/v1/memory/collections/nope/points', { points: [] }))).toEqual([404, 'UnknownCollectionError', 'collection'])
    // nothing of it was written, and the node still serves
    expect((await call('GET', '/v1/memory/collections/bad')).json.count).toBe(0)
    expect(await post('/v1/memory/collections/bad/points', { points: [{ id: 'ok', vector: [1, 2] }] })).toMatchObject({ status: 200, json: { written: 1 } })
    expect((await post('/v1/memory/collections/bad/search', { vector: [1, 2], k: 5 })).json.results.map((r: Json) => r.id)).toEqual(['ok'])
  })
})
