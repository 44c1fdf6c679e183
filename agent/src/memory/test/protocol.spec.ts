/**
 * The memory protocol's boundary: every field of a peer's message is checked before it reaches a
 * shard; junk gets a typed error naming the field and touches nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decode, encode } from '../../conductor/codec.ts'
import { silentLogger } from '../../logger.ts'
import { memoryProtocol, packPoints, parseRequest, type WireCollection } from '../protocol.ts'
import { shardHost, type ShardHost } from '../shard-host.ts'

const C: WireCollection = { uid: 'docs.abc', dimensions: 2, distance: 'l2', shard_count: 2, replication_factor: 2, created_epoch: 1 }
const W = 'uhCAk' + 'A'.repeat(48)

describe('memory protocol', () => {
  let dir: string
  let host: ShardHost

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'flexnode-memory-protocol-'))
    host = shardHost({ dir })({ logger: silentLogger() })
    await host.start()
  })

  afterAll(async () => {
    await host.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('refuses junk with the field named, and writes nothing', async () => {
    const good = { op: 'write', c: C, parts: [{ shard: 0, ...packPoints([{ id: 'a', vector: [1, 2] }], 2) }], ts: 1, writer: W }
    expect(() => parseRequest(good)).not.toThrow()
    const nan = packPoints([{ id: 'a', vector: [1, Number.NaN] }], 2)
    const cases: Array<[unknown, string]> = [
      [null, 'request'],
      [{ op: 'drop' }, 'op'],
      [{ ...good, c: { ...C, dimensions: 0 } }, 'c.dimensions'],
      [{ ...good, c: { ...C, distance: 'manhattan' } }, 'c.distance'],
      [{ ...good, parts: [{ ...good.parts[0], shard: 2 }] }, 'parts[0].shard'],
      [{ ...good, parts: [good.parts[0], good.parts[0]] }, 'parts[1].shard'],
      [{ ...good, parts: [{ ...good.parts[0], vectors: new Uint8Array(4) }] }, 'parts[0].vectors'],
      [{ ...good, parts: [{ shard: 0, ...nan }] }, 'parts[0].vectors'],
      [{ ...good, parts: [{ ...good.parts[0], metadata: [{ nested: { x: 1 } }] }] }, 'metadata[0].nested'],
      [{ ...good, writer: 'someone' }, 'writer'],
      [{ op: 'search', c: C, shards: [0], vector: new Uint8Array(8), k: 0, ef: 10, filter: null }, 'k'],
      [{ op: 'search', c: C, shards: [0], vector: new Uint8Array(8), k: 5, ef: 2, filter: null }, 'ef'],
      [{ op: 'search', c: C, shards: [0], vector: new Uint8Array(8), k: 5, ef: 10, filter: { a: { like: 'x' } } }, 'filter.a'],
      [{ op: 'sync', items: [], limit: 10 }, 'items'],
      [{ op: 'sync', items: [{ c: C, shard: 0, since: -1 }], limit: 10 }, 'items[0].since']
    ]
    for (const [raw, field] of cases) {
      let caught: unknown
      try { parseRequest(raw) } catch (err) { caught = err }
      expect(caught, JSON.stringify(field)).toMatchObject({ field })
    }
    // through the handler a peer reaches: the error comes back typed, no replica was created
    const serve = memoryProtocol({ host, accepts: async () => true })
    await expect(serve.remote(encode({ ...good, parts: [{ shard: 0, ...nan }] }), 'peer')).rejects.toMatchObject({ name: 'InvalidInputError', field: 'parts[0].vectors' })
    expect(host.hosted()).toEqual([])
    // and a good write still works
    expect(decode(await serve.remote(encode(good), 'peer'))).toEqual([null])
    expect(host.hosted().map(s => s.collection)).toEqual(['docs.abc'])
  })
})
