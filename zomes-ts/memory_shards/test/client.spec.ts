/**
 * MemoryShardsClient round trip on an embedded conductor: two agents (two cells of the DNA on one
 * conductor, one DHT space) create, read, list and delete collections, propose ring epochs, state
 * assignments and record checkpoints; keys and hashes come back as the bytes the entries hold.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTwoAgentConductor, type TwoAgentConductor } from '../../../fixtures/index.ts'
import { placeShards } from '../../../scheduler/index.ts'
import { encodeHash } from '../../../agent/src/holo/hash.ts'
import { MEMORY_SHARDS_ROLE, MemoryShardsClient } from '../client.ts'
import { compareKeys } from '../rules.ts'
import { collectionUid, type CollectionEntry } from '../types.ts'

const collection = (name: string, over: Partial<CollectionEntry> = {}): CollectionEntry => ({
  name,
  dimensions: 384,
  distance: 'cosine',
  shard_count: 16,
  replication_factor: 2,
  embedding_model: null,
  created_epoch: 1,
  created_at: Date.now(),
  ...over
})

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

describe('MemoryShardsClient on an embedded conductor', () => {
  let t: TwoAgentConductor
  let a: MemoryShardsClient
  let b: MemoryShardsClient
  let keyA: Uint8Array
  let keyB: Uint8Array

  beforeAll(async () => {
    t = await createTwoAgentConductor()
    keyA = t.keyA
    keyB = t.keyB
    a = new MemoryShardsClient(t.clientA)
    b = new MemoryShardsClient(t.clientB, { role_name: MEMORY_SHARDS_ROLE })
  }, 60_000)
  afterAll(async () => { await t?.[Symbol.asyncDispose]() })

  it('creates, reads, lists and deletes collections; a name has one live collection', async () => {
    expect(await a.getCollection('docs')).toBeNull()
    expect(await a.listCollections()).toEqual([])
    const docs = collection('docs', { embedding_model: 'nomic-embed-text' })
    const hash = await a.createCollection(docs)
    expect(hash).toBeInstanceOf(Uint8Array)
    expect(hash).toHaveLength(39)
    await a.createCollection(collection('alpha', { distance: 'l2', shard_count: 4, replication_factor: 1 }))
    // the other agent reads what the first wrote
    expect(await b.getCollection('docs')).toEqual(docs)
    expect((await b.listCollections()).map(c => c.name)).toEqual(['alpha', 'docs'])
    // a live name cannot be created again, by anyone
    await expect(b.createCollection(collection('docs'))).rejects.toMatchObject({ name: 'ribosome_error', message: expect.stringMatching(/ZomeInputError: a collection named "docs" exists already/) })
    await expect(a.getCollection('../etc')).rejects.toMatchObject({ message: expect.stringContaining('ZomeInputError') })

    // any node deletes it; then the name is free, and the new collection has a new uid
    expect(await b.deleteCollection('docs')).toBe(true)
    expect(await a.deleteCollection('docs')).toBe(false)
    expect(await a.getCollection('docs')).toBeNull()
    expect((await a.listCollections()).map(c => c.name)).toEqual(['alpha'])
    const again = collection('docs', { created_at: docs.created_at + 1, dimensions: 768 })
    await a.createCollection(again)
    expect(await b.getCollection('docs')).toEqual(again)
    expect(collectionUid(again)).not.toBe(collectionUid(docs))
  })

  it('proposes ring epochs: the highest epoch is current, with its action hash', async () => {
    expect(await a.currentEpoch()).toBeNull()
    const members = [{ node: keyA, weight: 1e6 }, { node: keyB, weight: 2e6 }].sort((x, y) => compareKeys(x.node, y.node))
    const first = await a.proposeEpoch({ epoch: 1, members: members.slice(0, 1), at: Date.now() })
    expect(await b.currentEpoch()).toEqual({ epoch: 1, members: members.slice(0, 1), at: expect.any(Number), hash: first })
    const second = await b.proposeEpoch({ epoch: 2, members, at: Date.now() })
    const current = await a.currentEpoch()
    expect(current).toMatchObject({ epoch: 2, members, hash: second })
    // the members are the bytes proposed, ready for the ring
    const hosts = placeShards({ collection: 'docs.x', shard_count: 4, replication_factor: 2, members: current!.members.map(m => ({ node: encodeHash(m.node), weight: m.weight })) })
    expect(hosts.every(h => h.length === 2)).toBe(true)
    // two proposals of one epoch: every reader takes the lowest action hash
    const rival = await a.proposeEpoch({ epoch: 2, members: members.slice(1), at: Date.now() })
    const lowest = compareKeys(rival, second) < 0 ? rival : second
    expect(hex((await b.currentEpoch())!.hash)).toBe(hex(lowest))
    expect(hex((await a.currentEpoch())!.hash)).toBe(hex(lowest))
    // the history: one record per epoch, oldest first, the same winner of epoch 2
    const history = await b.epochs()
    expect(history.map(e => e.epoch)).toEqual([1, 2])
    expect(hex(history[1]!.hash)).toBe(hex(lowest))
  })

  it('records each host\'s assignments and checkpoints of a collection', async () => {
    const uid = collectionUid((await a.getCollection('alpha'))!)
    expect(await a.assignments(uid)).toEqual([])
    const now = Date.now()
    await b.commitAssignment({ collection: uid, shard: 1, epoch: 2, state: 'serving', at: now })
    await a.commitAssignment({ collection: uid, shard: 0, epoch: 2, state: 'serving', at: now })
    await a.commitAssignment({ collection: uid, shard: 0, epoch: 3, state: 'retired', at: now + 1 })
    const got = await b.assignments(uid)
    expect(got).toEqual([
      { collection: uid, shard: 0, epoch: 2, host: keyA, state: 'serving', at: now },
      { collection: uid, shard: 0, epoch: 3, host: keyA, state: 'retired', at: now + 1 },
      { collection: uid, shard: 1, epoch: 2, host: keyB, state: 'serving', at: now }
    ])
    expect(got[0]!.host).toBeInstanceOf(Uint8Array)
    // another collection's assignments are its own
    expect(await a.assignments(`${uid}0`)).toEqual([])

    await a.recordCheckpoint({ collection: uid, shard: 0, epoch: 2, seq: 120, count: 100, at: now })
    await b.recordCheckpoint({ collection: uid, shard: 1, epoch: 2, seq: 7, count: 7, at: now })
    expect(await a.checkpoints(uid)).toEqual([
      { collection: uid, shard: 0, epoch: 2, host: keyA, seq: 120, count: 100, at: now },
      { collection: uid, shard: 1, epoch: 2, host: keyB, seq: 7, count: 7, at: now }
    ])
    await expect(a.assignments('not a uid')).rejects.toMatchObject({ message: expect.stringContaining('ZomeInputError') })
  })
})
