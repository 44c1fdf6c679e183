/**
 * The compliance suite of `VectorMemory`: what every implementation (a node's own, the mesh's)
 * must do, run by each implementation's spec on a fresh memory per test.
 *
 * ```ts
 * vectorMemoryCompliance('LocalVectorMemory', async () => {
 *   const { dir, cleanup } = await tempDir()
 *   const memory = localVectorMemory({ dir })({ logger, embed: bagOfWords(16) })
 *   await memory.start()
 *   return { memory, cleanup: async () => { await memory.stop(); await cleanup() } }
 * }, { embeddingModel: 'bow', embeddingDimensions: 16 })
 * ```
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Distance, PointInput, VectorMemory } from '../types.ts'
import { bruteForce, vectors } from './fixtures.ts'

export interface VectorMemorySetup { memory: VectorMemory, cleanup: () => Promise<void> }

export interface VectorMemoryComplianceOptions {
  /**
   * a model the memory's embedder knows, and its dimensions: `text` is tested with it (any
   * deterministic embedder: a text's own vector is its nearest). @default none: text with a model is not tested
   */
  embeddingModel?: string
  embeddingDimensions?: number
}

/** The error's `name` and `field` (`InvalidVectorError:points[0].vector`), or `resolved`. */
async function failure (p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'resolved'
  } catch (err: unknown) {
    const e = err as { name?: string, field?: string }
    return e.field !== undefined ? `${String(e.name)}:${e.field}` : String(e.name)
  }
}

const asPoints = (vs: Float32Array[], prefix = 'p', metadata?: (i: number) => Record<string, string | number | boolean | null>): Array<PointInput & { id: string, vector: number[] }> =>
  vs.map((v, i) => ({ id: `${prefix}${i}`, vector: Array.from(v), metadata: metadata?.(i) ?? { i } }))

export function vectorMemoryCompliance (name: string, make: () => Promise<VectorMemorySetup>, options: VectorMemoryComplianceOptions = {}): void {
  describe(`VectorMemory compliance: ${name}`, () => {
    let setup: VectorMemorySetup
    let memory: VectorMemory

    beforeEach(async () => {
      setup = await make()
      memory = setup.memory
    })

    afterEach(async () => {
      await setup.cleanup()
    })

    describe('collections', () => {
      it('creates, lists, describes and deletes a collection', async () => {
        const c = await memory.createCollection({ name: 'docs', dimensions: 4, distance: 'cosine' })
        expect(c).toMatchObject({ name: 'docs', dimensions: 4, distance: 'cosine', shard_count: 16, replication_factor: 2 })
        expect(c.embedding_model).toBeUndefined()
        expect(typeof c.created_at).toBe('number')
        expect(typeof c.created_epoch).toBe('number')
        await memory.createCollection({ name: 'a-first_1', dimensions: 2, distance: 'l2', shard_count: 2, replication_factor: 1, embedding_model: 'm' })
        expect((await memory.listCollections()).map(x => x.name)).toEqual(['a-first_1', 'docs'])
        const info = await memory.describeCollection('docs')
        expect(info).toMatchObject({ name: 'docs', dimensions: 4, count: 0 })
        expect(info.shards.map(s => s.shard)).toEqual(Array.from({ length: 16 }, (_, i) => i))
        expect(info.shards.every(s => s.replicas.length >= 1)).toBe(true)
        expect(await failure(memory.createCollection({ name: 'docs', dimensions: 4, distance: 'cosine' }))).toBe('CollectionExistsError')
        await memory.deleteCollection('docs')
        expect((await memory.listCollections()).map(x => x.name)).toEqual(['a-first_1'])
        expect(await failure(memory.describeCollection('docs'))).toBe('UnknownCollectionError')
        expect(await failure(memory.deleteCollection('docs'))).toBe('UnknownCollectionError')
      })

      it('a re-created collection starts empty', async () => {
        await memory.createCollection({ name: 'again', dimensions: 2, distance: 'l2', shard_count: 2 })
        await memory.upsert('again', [{ id: 'a', vector: [1, 2] }])
        await memory.deleteCollection('again')
        await memory.createCollection({ name: 'again', dimensions: 3, distance: 'l2', shard_count: 2 })
        expect(await memory.get('again', ['a'])).toEqual([])
        expect((await memory.describeCollection('again')).count).toBe(0)
        expect((await memory.search('again', { vector: [1, 2, 3], k: 5 })).results).toEqual([])
      })

      it('refuses a malformed collection config, naming the field', async () => {
        const base = { name: 'ok', dimensions: 4, distance: 'cosine' as Distance }
        const cases: Array<[Record<string, unknown>, string]> = [
          [{ ...base, name: '' }, 'name'], [{ ...base, name: 'has space' }, 'name'], [{ ...base, name: 'x'.repeat(65) }, 'name'], [{ ...base, name: 'a.b' }, 'name'],
          [{ ...base, dimensions: 0 }, 'dimensions'], [{ ...base, dimensions: 4097 }, 'dimensions'], [{ ...base, dimensions: 1.5 }, 'dimensions'],
          [{ ...base, distance: 'dot' }, 'distance'],
          [{ ...base, shard_count: 0 }, 'shard_count'], [{ ...base, shard_count: 257 }, 'shard_count'],
          [{ ...base, replication_factor: 0 }, 'replication_factor'], [{ ...base, replication_factor: 6 }, 'replication_factor'],
          [{ ...base, embedding_model: '' }, 'embedding_model']
        ]
        for (const [config, field] of cases) {
          expect(await failure(memory.createCollection(config as never)), JSON.stringify(config)).toBe(`InvalidVectorError:${field}`)
        }
        expect(await memory.listCollections()).toEqual([])
        await memory.createCollection({ ...base, dimensions: 4096, shard_count: 1, replication_factor: 5 })
      })
    })

    describe('points', () => {
      beforeEach(async () => {
        await memory.createCollection({ name: 'pts', dimensions: 3, distance: 'l2', shard_count: 4 })
      })

      it('upserts, gets in the order asked, replaces by id and deletes', async () => {
        const w = await memory.upsert('pts', [
          { id: 'a', vector: [1, 0, 0], metadata: { tag: 'x' } },
          { id: 'b', vector: new Float32Array([0, 1, 0]) },
          { id: 'c', vector: [0.5, 0.25, -2], metadata: { n: 1, t: true, z: null } }
        ])
        expect(w.written).toBe(3)
        expect(await memory.get('pts', ['c', 'missing', 'a'])).toEqual([
          { id: 'c', vector: [0.5, 0.25, -2], metadata: { n: 1, t: true, z: null } },
          { id: 'a', vector: [1, 0, 0], metadata: { tag: 'x' } }
        ])
        expect((await memory.get('pts', ['b']))[0]?.metadata).toEqual({})
        await memory.upsert('pts', [{ id: 'a', vector: [0, 0, 1], metadata: { tag: 'y' } }])
        expect(await memory.get('pts', ['a'])).toEqual([{ id: 'a', vector: [0, 0, 1], metadata: { tag: 'y' } }])
        expect((await memory.describeCollection('pts')).count).toBe(3)
        await memory.delete('pts', ['a', 'never'])
        expect(await memory.get('pts', ['a', 'b'])).toEqual([{ id: 'b', vector: [0, 1, 0], metadata: {} }])
        expect((await memory.search('pts', { vector: [0, 0, 1], k: 10 })).results.map(h => h.id).sort()).toEqual(['b', 'c'])
        expect((await memory.describeCollection('pts')).count).toBe(2)
        // an upsert right after a delete of the same id is newer
        await memory.upsert('pts', [{ id: 'a', vector: [1, 1, 1] }])
        expect((await memory.get('pts', ['a']))[0]?.vector).toEqual([1, 1, 1])
      })

      it('one bad point in a batch leaves everything untouched', async () => {
        await memory.upsert('pts', [{ id: 'keep', vector: [1, 2, 3], metadata: { v: 1 } }])
        const bad: Array<[PointInput[], string]> = [
          [[{ id: 'keep', vector: [9, 9, 9], metadata: { v: 2 } }, { id: 'new', vector: [1, 1, 1] }, { id: 'bad', vector: [1, 2] }], 'InvalidVectorError:points[2].vector'],
          [[{ id: 'keep', vector: [9, 9, 9] }, { id: 'nan', vector: [1, NaN, 1] }], 'InvalidVectorError:points[1].vector[1]'],
          [[{ id: 'new', vector: [1, 1, 1] }, { id: 'new', vector: [2, 2, 2] }], 'InvalidVectorError:points[1].id']
        ]
        for (const [points, expected] of bad) expect(await failure(memory.upsert('pts', points))).toBe(expected)
        expect(await memory.get('pts', ['keep', 'new', 'bad', 'nan'])).toEqual([{ id: 'keep', vector: [1, 2, 3], metadata: { v: 1 } }])
        expect((await memory.search('pts', { vector: [9, 9, 9], k: 10 })).results.map(h => h.id)).toEqual(['keep'])
        expect((await memory.describeCollection('pts')).count).toBe(1)
      })

      it('refuses every bad input with its typed error', async () => {
        const ok = { id: 'a', vector: [1, 2, 3] }
        const cases: Array<[() => Promise<unknown>, string]> = [
          [async () => await memory.upsert('pts', [{ ...ok, vector: [1, 2] }]), 'InvalidVectorError:points[0].vector'],
          [async () => await memory.upsert('pts', [{ ...ok, vector: [1, 2, 3, 4] }]), 'InvalidVectorError:points[0].vector'],
          [async () => await memory.upsert('pts', [{ ...ok, vector: [1, NaN, 3] }]), 'InvalidVectorError:points[0].vector[1]'],
          [async () => await memory.upsert('pts', [{ ...ok, vector: [1, 2, Infinity] }]), 'InvalidVectorError:points[0].vector[2]'],
          [async () => await memory.upsert('pts', [{ ...ok, vector: [1, 2, -Infinity] }]), 'InvalidVectorError:points[0].vector[2]'],
          [async () => await memory.upsert('pts', [{ ...ok, vector: [1, 2, '3' as never] }]), 'InvalidVectorError:points[0].vector[2]'],
          [async () => await memory.upsert('pts', [ok, { ...ok }]), 'InvalidVectorError:points[1].id'],
          [async () => await memory.upsert('pts', [{ ...ok, id: '' }]), 'InvalidVectorError:points[0].id'],
          [async () => await memory.upsert('pts', [{ ...ok, id: 'x'.repeat(257) }]), 'InvalidVectorError:points[0].id'],
          [async () => await memory.upsert('pts', [{ id: 'a' }]), 'InvalidVectorError:points[0]'],
          [async () => await memory.upsert('pts', [{ ...ok, metadata: { deep: { a: 1 } } as never }]), 'InvalidVectorError:points[0].metadata.deep'],
          [async () => await memory.upsert('pts', [{ ...ok, metadata: { big: 'x'.repeat(8200) } }]), 'InvalidVectorError:points[0].metadata'],
          [async () => await memory.upsert('pts', Array.from({ length: 1001 }, (_, i) => ({ id: `p${i}`, vector: [1, 2, 3] }))), 'BatchTooLargeError'],
          [async () => await memory.upsert('pts', [{ id: 't', text: 'some words' }]), 'NoEmbeddingModelError'],
          [async () => await memory.upsert('nope', [ok]), 'UnknownCollectionError'],
          [async () => await memory.get('nope', ['a']), 'UnknownCollectionError'],
          [async () => await memory.delete('nope', ['a']), 'UnknownCollectionError'],
          [async () => await memory.search('nope', { vector: [1, 2, 3], k: 1 }), 'UnknownCollectionError'],
          [async () => await memory.delete('pts', Array.from({ length: 1001 }, (_, i) => `p${i}`)), 'BatchTooLargeError'],
          [async () => await memory.search('pts', { vector: [1, 2], k: 1 }), 'InvalidVectorError:vector'],
          [async () => await memory.search('pts', { vector: [1, NaN, 3], k: 1 }), 'InvalidVectorError:vector[1]'],
          [async () => await memory.search('pts', { vector: [1, 2, 3], k: 0 }), 'InvalidVectorError:k'],
          [async () => await memory.search('pts', { vector: [1, 2, 3], k: 1001 }), 'InvalidVectorError:k'],
          [async () => await memory.search('pts', { vector: [1, 2, 3], k: 10, ef: 5 }), 'InvalidVectorError:ef'],
          [async () => await memory.search('pts', { vector: [1, 2, 3], k: 10, ef: 10_001 }), 'InvalidVectorError:ef'],
          [async () => await memory.search('pts', { vector: [1, 2, 3], k: 1, filter: { a: { gt: 3 } } as never }), 'InvalidVectorError:filter.a'],
          [async () => await memory.search('pts', { vector: [1, 2, 3], k: 1, filter: { a: { in: 'x' } } as never }), 'InvalidVectorError:filter.a'],
          [async () => await memory.search('pts', { vector: [1, 2, 3], k: 1, filter: { a: [1] } as never }), 'InvalidVectorError:filter.a'],
          [async () => await memory.search('pts', { vector: [1, 2, 3], k: 1, filter: 'lang=en' as never }), 'InvalidVectorError:filter'],
          [async () => await memory.search('pts', { text: 'some words', k: 1 }), 'NoEmbeddingModelError']
        ]
        for (const [run, expected] of cases) expect(await failure(run()), expected).toBe(expected)
        expect((await memory.describeCollection('pts')).count).toBe(0)
        // the limits themselves are accepted
        await memory.upsert('pts', Array.from({ length: 1000 }, (_, i) => ({ id: `p${i}`, vector: [i, 2, 3] })))
        expect((await memory.search('pts', { vector: [1, 2, 3], k: 1000, ef: 10_000 })).results).toHaveLength(1000)
      })
    })

    describe('search', () => {
      for (const distance of ['cosine', 'l2', 'ip'] as const) {
        it(`is exact on a small set (${distance}), with the documented score`, async () => {
          await memory.createCollection({ name: 'exact', dimensions: 16, distance, shard_count: 4 })
          const points = asPoints(vectors(300, 16, 11))
          await memory.upsert('exact', points)
          for (const q of vectors(8, 16, 12)) {
            const { results, partial, shards_answered: answered, shards_total: total } = await memory.search('exact', { vector: q, k: 10, ef: 300 })
            expect([partial, answered, total]).toEqual([false, 4, 4])
            expect(results.map(h => h.id)).toEqual(bruteForce(points, q, 10, distance))
            const top = points.find(p => p.id === results[0]!.id)!.vector
            const dot = top.reduce((s, x, i) => s + x * q[i]!, 0)
            const norm = (v: ArrayLike<number>): number => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0))
            const expected = distance === 'ip' ? dot : distance === 'cosine' ? dot / (norm(top) * norm(q)) : Math.sqrt(top.reduce((s, x, i) => s + (x - q[i]!) ** 2, 0))
            expect(results[0]!.score).toBeCloseTo(expected, 4)
            expect(results[0]!.metadata).toEqual({ i: Number(results[0]!.id.slice(1)) })
          }
        })
      }

      it('filters by equality and in, and returns only the matches when k is larger', async () => {
        await memory.createCollection({ name: 'f', dimensions: 8, distance: 'cosine', shard_count: 4 })
        const langs = ['en', 'fr', 'de']
        const points = asPoints(vectors(300, 8, 21), 'p', i => ({ lang: langs[i % 3]!, n: i, top: i < 4 }))
        await memory.upsert('f', points)
        const q = vectors(1, 8, 22)[0]!
        const en = (await memory.search('f', { vector: q, k: 15, filter: { lang: 'en' } })).results
        expect(en.map(h => h.id)).toEqual(bruteForce(points.filter(p => p.metadata!.lang === 'en'), q, 15, 'cosine'))
        const frde = (await memory.search('f', { vector: q, k: 40, filter: { lang: { in: ['fr', 'de'] } } })).results
        expect(frde).toHaveLength(40)
        expect(frde.every(h => h.metadata.lang === 'fr' || h.metadata.lang === 'de')).toBe(true)
        const top = (await memory.search('f', { vector: q, k: 100, filter: { top: true } })).results
        expect(top.map(h => h.id).sort()).toEqual(['p0', 'p1', 'p2', 'p3'])
        const both = (await memory.search('f', { vector: q, k: 100, filter: { top: true, lang: { in: ['en'] } } })).results
        expect(both.map(h => h.id).sort()).toEqual(['p0', 'p3'])
        expect((await memory.search('f', { vector: q, k: 5, filter: { lang: 'xx' } })).results).toEqual([])
      })

      if (options.embeddingModel !== undefined) {
        const model = options.embeddingModel
        const dims = options.embeddingDimensions ?? 16
        it('embeds text with the collection\'s model, for points and queries', async () => {
          await memory.createCollection({ name: 'texts', dimensions: dims, distance: 'cosine', shard_count: 2, embedding_model: model })
          const texts = ['the cat sat on the mat', 'stock markets fell sharply today', 'a recipe for bread and butter', 'rust borrow checker errors']
          await memory.upsert('texts', texts.map((text, i) => ({ id: `t${i}`, text, metadata: { i } })))
          expect((await memory.get('texts', ['t0']))[0]?.vector).toHaveLength(dims)
          for (const [i, text] of texts.entries()) {
            const [hit] = (await memory.search('texts', { text, k: 1 })).results
            expect(hit?.id).toBe(`t${i}`)
            expect(hit?.score).toBeCloseTo(1, 4)
          }
          expect(await failure(memory.upsert('texts', [{ id: 'x', text: 'a', vector: new Array<number>(dims).fill(1) }]))).toBe('InvalidVectorError:points[0]')
        })
      }
    })
  })
}
