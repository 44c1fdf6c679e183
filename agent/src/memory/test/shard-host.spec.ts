import { cpSync, existsSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { bucketOfId } from '../../../../native/workers/hnsw-worker.ts'
import { silentLogger } from '../../logger.ts'
import { shardHost, type ShardHost, type ShardKey, type ShardSpec, type StoredPoint } from '../shard-host.ts'
import { bruteForce, tempDir, vectors } from './fixtures.ts'

const logger = silentLogger()
const W = 'uhCAkwriter'

/** `n` points of `dims` dimensions named `p0…`, one version for all. */
function points (n: number, dims: number, options: { seed?: number, ts?: number, from?: number, metadata?: (i: number) => Record<string, string | number | boolean | null> } = {}): Array<{ id: string, vector: Float32Array, metadata: Record<string, string | number | boolean | null>, version: { ts: number, writer: string } }> {
  const from = options.from ?? 0
  return vectors(n, dims, options.seed ?? from + 1).map((vector, i) => ({ id: `p${from + i}`, vector, metadata: options.metadata?.(from + i) ?? { i: from + i }, version: { ts: options.ts ?? 1, writer: W } }))
}

async function upsertAll (host: ShardHost, key: ShardKey, all: ReturnType<typeof points>): Promise<void> {
  for (let i = 0; i < all.length; i += 1000) await host.upsert(key, all.slice(i, i + 1000))
}

async function allChanges (host: ShardHost, key: ShardKey, limit: number): Promise<StoredPoint[]> {
  const out: StoredPoint[] = []
  let since = 0
  for (;;) {
    const page = await host.changes(key, since, limit)
    out.push(...page.points)
    expect(page.next).toBe(page.points.at(-1)?.seq ?? since)
    since = page.next
    if (page.done) return out
  }
}

describe('shard host', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let host: ShardHost
  const spec: ShardSpec = { collection: 'docs.lx2k3', shard: 3, dimensions: 8, distance: 'l2' }
  const key: ShardKey = { collection: spec.collection, shard: spec.shard }

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir())
    host = shardHost({ dir, threads: 2 })({ logger })
    await host.start()
  })

  afterEach(async () => {
    await host.stop()
    await cleanup()
  })

  it('opens a replica (idempotently), upserts, gets in the order asked and searches exactly', async () => {
    const first = await host.open(spec)
    expect(first).toMatchObject({ count: 0, deleted: 0, seq: 0 })
    expect(await host.open(spec)).toEqual(first)
    expect(host.has(key)).toBe(true)
    expect(host.hosted()).toEqual([spec])
    const all = points(200, 8)
    expect(await host.upsert(key, all)).toEqual({ applied: 200, stale: 0 })
    const got = await host.get(key, ['p7', 'nope', 'p2'])
    expect(got.map(p => p.id)).toEqual(['p7', 'p2'])
    expect(Array.from(got[0]!.vector!)).toEqual(Array.from(all[7]!.vector))
    expect(got[0]!.metadata).toEqual({ i: 7 })
    expect(got[0]!.version).toEqual({ ts: 1, writer: W })
    const q = vectors(1, 8, 99)[0]!
    const hits = await host.search(key, q, { k: 10, ef: 200 })
    expect(hits.map(h => h.id)).toEqual(bruteForce(all, q, 10, 'l2'))
    expect(hits.map(h => h.distance)).toEqual([...hits.map(h => h.distance)].sort((a, b) => a - b))
    expect(await host.stats(key)).toMatchObject({ count: 200, deleted: 0, seq: 200 })
  })

  it('reloads from its index file after a restart, without inserting the points again', async () => {
    await host.open(spec)
    const all = points(1500, 8)
    await upsertAll(host, key, all)
    const queries = vectors(10, 8, 7)
    const before = await Promise.all(queries.map(async q => await host.search(key, q, { k: 5 })))
    const instance = (await host.stats(key)).instance
    await host.stop()

    const file = join(dir, spec.collection, `${spec.shard}.hnsw`)
    const written = statSync(file)
    const db = new Database(join(dir, spec.collection, `${spec.shard}.db`), { readonly: true })
    const meta = Object.fromEntries((db.prepare('SELECT key, value FROM meta').all() as Array<{ key: string, value: string }>).map(r => [r.key, r.value]))
    db.close()
    expect(meta.index_seq).toBe('1500')
    expect(meta.seq).toBe('1500')

    host = shardHost({ dir, threads: 2 })({ logger })
    await host.start()
    expect(host.hosted()).toEqual([spec])
    expect(await host.stats(key)).toEqual({ count: 1500, deleted: 0, seq: 1500, instance })
    const after = await Promise.all(queries.map(async q => await host.search(key, q, { k: 5 })))
    expect(after).toEqual(before)
    // an index rebuilt from the rows would be written again by the flush; one read from its file is not
    await host.flush()
    const now = statSync(file)
    expect([now.ino, now.mtimeMs]).toEqual([written.ino, written.mtimeMs])
  })

  it('replays the rows changed after the index file was written', async () => {
    await host.open(spec)
    const all = points(300, 8)
    await host.upsert(key, all.slice(0, 200))
    await host.flush()
    await host.upsert(key, all.slice(200))
    await host.remove(key, ['p0', 'p1'], { ts: 2, writer: W })
    // a copy of the files as a crash would leave them: the index holds the first 200 points only
    const copy = join(dir, 'copy')
    cpSync(join(dir, spec.collection), join(copy, spec.collection), { recursive: true })
    const other = shardHost({ dir: copy })({ logger })
    await other.start()
    try {
      expect(await other.stats(key)).toMatchObject({ count: 298, seq: 302 })
      for (const p of all.slice(2)) {
        const [hit] = await other.search(key, p.vector, { k: 1 })
        expect(hit?.id).toBe(p.id)
      }
      const near = await other.search(key, all[0]!.vector, { k: 50 })
      expect(near.map(h => h.id)).not.toContain('p0')
    } finally {
      await other.stop()
    }
  })

  it('rebuilds the index from its rows when the index file is damaged', async () => {
    await host.open(spec)
    const all = points(400, 8)
    await host.upsert(key, all)
    await host.stop()
    const file = join(dir, spec.collection, `${spec.shard}.hnsw`)
    writeFileSync(file, 'not an index')
    host = shardHost({ dir })({ logger })
    await host.start()
    expect(await host.stats(key)).toMatchObject({ count: 400, deleted: 0 })
    for (const p of all.slice(0, 20)) expect((await host.search(key, p.vector, { k: 1 }))[0]?.id).toBe(p.id)
    await host.flush()
    expect(statSync(file).size).toBeGreaterThan(400 * 8 * 4)
  })

  it('deletes for real: deleted ids are never returned, and the index is compacted', async () => {
    await host.open(spec)
    const all = points(3000, 8)
    await upsertAll(host, key, all)
    const gone = all.slice(0, 1500).map(p => p.id)
    await host.remove(key, gone.slice(0, 1000), { ts: 2, writer: W })
    expect(await host.stats(key)).toMatchObject({ count: 2000, deleted: 1000 })
    const goneSet = new Set(gone.slice(0, 1000))
    for (const p of all.slice(0, 20)) {
      const hits = await host.search(key, p.vector, { k: 100 })
      expect(hits.filter(h => goneSet.has(h.id))).toEqual([])
    }
    // past 30 % and 1000 deleted: rebuilt from the live rows
    await host.remove(key, gone.slice(1000), { ts: 2, writer: W })
    expect(await host.stats(key)).toMatchObject({ count: 1500, deleted: 0 })
    expect(await host.get(key, gone.slice(0, 10))).toEqual([])
    const live = all.slice(1500)
    for (const p of [...all.slice(0, 20), ...live.slice(0, 20)]) {
      const hits = await host.search(key, p.vector, { k: 10, ef: 400 })
      expect(hits.map(h => h.id)).toEqual(bruteForce(live, p.vector, 10, 'l2'))
    }
    // compacted, then restarted: the rebuilt index was written
    await host.stop()
    host = shardHost({ dir })({ logger })
    await host.start()
    expect(await host.stats(key)).toMatchObject({ count: 1500, deleted: 0 })
    const hits = await host.search(key, all[0]!.vector, { k: 1000 })
    expect(hits).toHaveLength(1000)
    expect(hits.filter(h => Number(h.id.slice(1)) < 1500)).toEqual([])
  })

  it('grows past its initial capacity', async () => {
    await host.open(spec)
    const all = points(2500, 8)
    await upsertAll(host, key, all)
    expect(await host.stats(key)).toMatchObject({ count: 2500 })
    for (const p of all.filter((_, i) => i % 50 === 0)) {
      const [hit] = await host.search(key, p.vector, { k: 1 })
      expect(hit).toMatchObject({ id: p.id, distance: 0 })
    }
    expect((await host.get(key, ['p2499']))[0]?.id).toBe('p2499')
  })

  it('is last-writer-wins per id: an older version is ignored, a delete is not undone by an older write', async () => {
    await host.open(spec)
    const [a, b] = vectors(2, 8, 5)
    expect(await host.upsert(key, [{ id: 'x', vector: a!, metadata: { v: 10 }, version: { ts: 10, writer: 'a' } }])).toEqual({ applied: 1, stale: 0 })
    expect(await host.upsert(key, [{ id: 'x', vector: b!, metadata: { v: 5 }, version: { ts: 5, writer: 'z' } }])).toEqual({ applied: 0, stale: 1 })
    expect(await host.upsert(key, [{ id: 'x', vector: b!, metadata: { v: 10 }, version: { ts: 10, writer: 'a' } }])).toEqual({ applied: 0, stale: 1 })
    expect((await host.get(key, ['x']))[0]).toMatchObject({ metadata: { v: 10 }, version: { ts: 10, writer: 'a' } })
    // the same ts: the writer string decides
    expect(await host.upsert(key, [{ id: 'x', vector: b!, metadata: { v: 11 }, version: { ts: 10, writer: 'b' } }])).toEqual({ applied: 1, stale: 0 })
    expect((await host.search(key, b!, { k: 1 }))[0]).toMatchObject({ id: 'x', distance: 0, metadata: { v: 11 } })
    expect(await host.remove(key, ['x'], { ts: 9, writer: 'z' })).toEqual({ applied: 0 })
    expect(await host.remove(key, ['x'], { ts: 20, writer: 'a' })).toEqual({ applied: 1 })
    expect(await host.upsert(key, [{ id: 'x', vector: a!, metadata: {}, version: { ts: 15, writer: 'a' } }])).toEqual({ applied: 0, stale: 1 })
    expect(await host.get(key, ['x'])).toEqual([])
    expect(await host.search(key, a!, { k: 5 })).toEqual([])
    // a tombstone for an id never seen keeps an older write of it out
    expect(await host.remove(key, ['y'], { ts: 30, writer: 'a' })).toEqual({ applied: 1 })
    expect(await host.upsert(key, [{ id: 'y', vector: a!, metadata: {}, version: { ts: 29, writer: 'a' } }])).toEqual({ applied: 0, stale: 1 })
    // a newer write brings an id back
    expect(await host.upsert(key, [{ id: 'x', vector: a!, metadata: { back: true }, version: { ts: 21, writer: 'a' } }])).toEqual({ applied: 1, stale: 0 })
    expect((await host.search(key, a!, { k: 5 })).map(h => h.id)).toEqual(['x'])
    expect(await host.stats(key)).toMatchObject({ count: 1 })
  })

  it('pages changes by seq, tombstones included', async () => {
    await host.open(spec)
    await host.upsert(key, points(25, 8))
    await host.remove(key, ['p3', 'p4', 'p5'], { ts: 2, writer: W })
    await host.upsert(key, points(1, 8, { from: 3, ts: 3 }))
    const changes = await allChanges(host, key, 7)
    expect(changes.map(c => c.seq)).toEqual([...changes.map(c => c.seq)].sort((a, b) => a - b))
    expect(changes).toHaveLength(25)
    expect(changes.slice(-3).map(c => [c.id, c.vector === null])).toEqual([['p4', true], ['p5', true], ['p3', false]])
    expect(changes.at(-1)!.seq).toBe(29)
    const page = await host.changes(key, 29, 10)
    expect(page).toMatchObject({ points: [], next: 29, done: true })
    expect(page.instance).toBe((await host.stats(key)).instance)
  })

  it('two replicas agree by digest and bucket after one applies the other\'s changes', async () => {
    const a = { collection: 'sync.a1', shard: 0 }
    const b = { collection: 'sync.a1', shard: 1 }
    await host.open({ ...a, dimensions: 8, distance: 'cosine' })
    await host.open({ ...b, dimensions: 8, distance: 'cosine' })
    await host.upsert(a, points(120, 8))
    await host.remove(a, ['p1', 'p2', 'never-seen'], { ts: 2, writer: W })
    expect((await host.digest(a)).buckets).not.toEqual((await host.digest(b)).buckets)
    expect(await host.apply(b, await allChanges(host, a, 50))).toEqual({ applied: 121 })
    const da = await host.digest(a)
    const db = await host.digest(b)
    expect(db.buckets).toEqual(da.buckets)
    expect(db.buckets).toHaveLength(64)
    expect([da.count, db.count]).toEqual([118, 118])
    expect(db.instance).not.toBe(da.instance)
    // one write on one side: one bucket differs, and the buckets' lists say which id
    await host.upsert(a, points(1, 8, { from: 7, ts: 5 }))
    const [da2, db2] = [await host.digest(a), await host.digest(b)]
    const differ = da2.buckets.flatMap((h, i) => h === db2.buckets[i] ? [] : [i])
    expect(differ).toEqual([bucketOfId('p7')])
    const [la, lb] = [await host.bucket(a, differ[0]!), await host.bucket(b, differ[0]!)]
    expect(la.find(e => e.id === 'p7')?.version).toEqual({ ts: 5, writer: W })
    expect(lb.find(e => e.id === 'p7')?.version).toEqual({ ts: 1, writer: W })
    expect(la.map(e => e.id)).toEqual(lb.map(e => e.id))
    // applying the same changes again changes nothing
    expect(await host.apply(b, await allChanges(host, a, 1000))).toEqual({ applied: 1 })
    expect((await host.digest(b)).buckets).toEqual((await host.digest(a)).buckets)
  })

  it('filters inside the search: equality, in, and k larger than the matches', async () => {
    await host.open(spec)
    const langs = ['en', 'fr', 'de', 'es', 'it']
    const all = points(500, 8, { metadata: i => ({ lang: langs[i % 5]!, rare: i % 100 === 0, n: i }) })
    await host.upsert(key, all)
    const q = vectors(1, 8, 42)[0]!
    const en = await host.search(key, q, { k: 20, filter: { lang: 'en' } })
    expect(en).toHaveLength(20)
    expect(en.every(h => h.metadata.lang === 'en')).toBe(true)
    expect(en.map(h => h.id)).toEqual(bruteForce(all.filter(p => p.metadata.lang === 'en'), q, 20, 'l2'))
    const some = await host.search(key, q, { k: 30, filter: { lang: { in: ['fr', 'de'] } } })
    expect(some).toHaveLength(30)
    expect(some.every(h => h.metadata.lang === 'fr' || h.metadata.lang === 'de')).toBe(true)
    const rare = await host.search(key, q, { k: 50, filter: { rare: true } })
    expect(rare.map(h => h.id).sort()).toEqual(['p0', 'p100', 'p200', 'p300', 'p400'])
    const both = await host.search(key, q, { k: 50, filter: { rare: true, lang: 'en', n: { in: [100, 200, 300] } } })
    expect(both.map(h => h.id).sort()).toEqual(['p100', 'p200', 'p300'])
    expect(await host.search(key, q, { k: 5, filter: { missing: null } })).toEqual([])
    expect(await host.search(key, q, { k: 5, filter: { lang: 'xx' } })).toEqual([])
  })

  it('searches several replicas at once (one task per thread), each as its own search would', async () => {
    const specs = [0, 1, 2, 3].map(shard => ({ ...spec, shard }))
    for (const [i, s] of specs.entries()) {
      await host.open(s)
      await host.upsert(s, points(100, 8, { seed: i + 1, from: i * 100, metadata: j => ({ odd: j % 2 === 1 }) }))
    }
    const q = vectors(1, 8, 7)[0]!
    const many = await host.searchMany(specs, q, { k: 5, filter: { odd: true } })
    expect(many).toHaveLength(4)
    for (const [i, s] of specs.entries()) expect(many[i]).toEqual(await host.search(s, q, { k: 5, filter: { odd: true } }))
    await expect(host.searchMany([{ collection: 'other.x', shard: 0 }], q, { k: 5 })).rejects.toMatchObject({ name: 'NotHostedError' })
  })

  it('refuses every bad input with a typed error naming the field', async () => {
    await host.open(spec)
    const [v] = vectors(1, 8)
    const ok = { id: 'a', vector: v!, metadata: {}, version: { ts: 1, writer: W } }
    const field = async (p: Promise<unknown>): Promise<string> => {
      const err = await p.then(() => { throw new Error('no error') }, (e: unknown) => e as { name: string, field?: string })
      return `${err.name}:${err.field ?? ''}`
    }
    expect(await field(host.upsert(key, [{ ...ok, vector: new Float32Array(7) }]))).toBe('InvalidVectorError:points[0].vector')
    expect(await field(host.upsert(key, [ok, { ...ok, id: 'b', vector: Float32Array.from([1, 2, NaN, 4, 5, 6, 7, 8]) }]))).toBe('InvalidVectorError:points[1].vector[2]')
    expect(await field(host.upsert(key, [{ ...ok, vector: Float32Array.from([Infinity, 2, 3, 4, 5, 6, 7, 8]) }]))).toBe('InvalidVectorError:points[0].vector[0]')
    expect(await field(host.upsert(key, [ok, ok]))).toBe('InvalidVectorError:points[1].id')
    expect(await field(host.upsert(key, [{ ...ok, id: '' }]))).toBe('InvalidVectorError:points[0].id')
    expect(await field(host.upsert(key, [{ ...ok, id: 'x'.repeat(257) }]))).toBe('InvalidVectorError:points[0].id')
    expect(await field(host.upsert(key, [{ ...ok, metadata: { nested: { a: 1 } as never } }]))).toBe('InvalidVectorError:points[0].metadata.nested')
    expect(await field(host.upsert(key, [{ ...ok, metadata: { big: 'x'.repeat(9000) } }]))).toBe('InvalidVectorError:points[0].metadata')
    expect(await field(host.upsert(key, [{ ...ok, version: { ts: NaN, writer: W } }]))).toBe('InvalidVectorError:points[0].version.ts')
    expect(await field(host.upsert(key, [{ ...ok, version: { ts: 1, writer: '' } }]))).toBe('InvalidVectorError:points[0].version.writer')
    expect(await field(host.upsert(key, points(1001, 8)))).toBe('BatchTooLargeError:')
    expect(await field(host.remove(key, ['a'], { ts: -1, writer: W }))).toBe('InvalidVectorError:version.ts')
    expect(await field(host.apply(key, [{ id: 'a', vector: new Float32Array(3), metadata: {}, version: { ts: 1, writer: W }, seq: 1 }]))).toBe('InvalidVectorError:changes[0].vector')
    expect(await field(host.search(key, new Float32Array(9), { k: 1 }))).toBe('InvalidVectorError:query')
    expect(await field(host.search(key, v!, { k: 0 }))).toBe('InvalidVectorError:k')
    expect(await field(host.search(key, v!, { k: 1001 }))).toBe('InvalidVectorError:k')
    expect(await field(host.search(key, v!, { k: 1.5 }))).toBe('InvalidVectorError:k')
    expect(await field(host.search(key, v!, { k: 10, ef: 9 }))).toBe('InvalidVectorError:ef')
    expect(await field(host.search(key, v!, { k: 10, ef: 10_001 }))).toBe('InvalidVectorError:ef')
    expect(await field(host.search(key, v!, { k: 1, filter: { a: { gt: 1 } as never } }))).toBe('InvalidVectorError:filter.a')
    expect(await field(host.search(key, v!, { k: 1, filter: { a: { in: [] } } }))).toBe('InvalidVectorError:filter.a.in')
    expect(await field(host.search(key, v!, { k: 1, filter: { a: { in: [[1]] as never } } }))).toBe('InvalidVectorError:filter.a.in[0]')
    expect(await field(host.search(key, v!, { k: 1, filter: [] as never }))).toBe('InvalidVectorError:filter')
    expect(await field(host.get({ collection: 'other.x', shard: 0 }, ['a']))).toBe('NotHostedError:')
    expect(await field(host.upsert({ collection: 'docs.lx2k3', shard: 4 }, [ok]))).toBe('NotHostedError:')
    expect(await field(host.open({ ...spec, dimensions: 16 }))).toBe('InvalidInputError:spec')
    expect(await field(host.open({ ...spec, collection: '../etc' }))).toBe('InvalidInputError:key.collection')
    expect(await field(host.open({ ...spec, shard: 256 }))).toBe('InvalidInputError:key.shard')
    expect(await field(host.changes(key, -1, 10))).toBe('InvalidInputError:since')
    expect(await field(host.bucket(key, 64))).toBe('InvalidInputError:bucket')
    // nothing of it was written
    expect(await host.stats(key)).toMatchObject({ count: 0, seq: 0 })
  })

  it('drops a replica with its files', async () => {
    await host.open(spec)
    await host.upsert(key, points(10, 8))
    await host.flush()
    expect(existsSync(join(dir, spec.collection, `${spec.shard}.hnsw`))).toBe(true)
    await host.drop(key)
    expect(host.has(key)).toBe(false)
    expect(existsSync(join(dir, spec.collection))).toBe(false)
    await host.drop(key)
    // opened again: a new, empty replica
    expect(await host.open(spec)).toMatchObject({ count: 0, seq: 0 })
    await host.stop()
    expect(await host.stats(key).then(() => 'resolved', (e: unknown) => (e as Error).name)).toBe('DisposedError')
  })
})
