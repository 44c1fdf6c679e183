/**
 * memory_shards validation. Malformed entries committed straight through the zomes are refused by
 * the integrity zome with their reason, leaving nothing behind; the rules a coordinator cannot
 * break (it sets the host to the caller) are checked on hand-built ops by `validate` itself, and
 * the reading rules (which collection is live, which epoch current) on their own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestConductor, FLEXSTACK_HAPP, type TestConductor } from '../../../fixtures/index.ts'
import { InProcessAppClient } from '../../../agent/src/conductor/in-process-client.ts'
import { decode, encode } from '../../../agent/src/conductor/codec.ts'
import { decodeHash, encodeHash, hashFrom32, hashFromContent } from '../../../agent/src/holo/hash.ts'
import type { Action, ActionData, ActionHash, HolochainRecord, Op, ValidateContext } from '../../hdk/index.ts'
import { validate } from '../integrity/index.ts'
import { MemoryShardsClient } from '../client.ts'
import { compareKeys, epochOfTag, epochTag, liveCollections } from '../rules.ts'
import type { CollectionEntry, ShardDescriptor } from '../types.ts'

const collection = (over: Record<string, unknown> = {}): CollectionEntry => ({
  name: 'docs', dimensions: 384, distance: 'cosine', shard_count: 16, replication_factor: 2, embedding_model: null, created_epoch: 1, created_at: Date.now(), ...over
}) as CollectionEntry

describe('memory_shards validation of committed entries', () => {
  let t: TestConductor
  let client: MemoryShardsClient
  let me: Uint8Array
  const other = hashFrom32(new Uint8Array(32).fill(250), 'Agent')

  beforeAll(async () => {
    t = await createTestConductor()
    await t.conductor.installApp({ source: { type: 'path', value: FLEXSTACK_HAPP }, agent_key: t.agent, installed_app_id: 'flexstack', network_seed: 'ripple-local' })
    await t.conductor.enableApp({ installed_app_id: 'flexstack' })
    client = new MemoryShardsClient(await InProcessAppClient.connect(t.conductor, 'flexstack'))
    me = t.agent
  }, 60_000)
  afterAll(async () => { await t?.[Symbol.asyncDispose]() })

  it('refuses malformed collections with their reason, and keeps none of them', async () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ dimensions: 0 }, /ShardDescriptor.dimensions must be at least 1/],
      [{ dimensions: 65_537 }, /ShardDescriptor.dimensions must be at most 65536/],
      [{ dimensions: 3.5 }, /ShardDescriptor.dimensions must be an integer/],
      [{ distance: 'manhattan' }, /ShardDescriptor.distance must be one of cosine, l2, ip/],
      [{ shard_count: 0 }, /ShardDescriptor.shard_count must be at least 1/],
      [{ shard_count: 2048 }, /ShardDescriptor.shard_count must be at most 1024/],
      [{ replication_factor: 0 }, /ShardDescriptor.replication_factor must be at least 1/],
      [{ embedding_model: '' }, /ShardDescriptor.embedding_model must be at least 1 characters/],
      [{ created_epoch: -1 }, /ShardDescriptor.created_epoch must be at least 0/],
      [{ created_at: Date.now() - 3_600_000 }, /ShardDescriptor.created_at is more than 5 minutes from the action's time/],
      [{ created_at: 'soon' }, /ShardDescriptor.created_at must be a finite number/],
      [{ shard_count: undefined }, /ShardDescriptor.shard_count is required/]
    ]
    for (const [over, reason] of bad) await expect(client.createCollection(collection(over)), JSON.stringify(over)).rejects.toThrow(reason)
    await expect(client.createCollection(collection({ name: 'has space' }))).rejects.toThrow(/ZomeInputError/)
    expect(await client.listCollections()).toEqual([])
    // extra fields never reach the chain: the zome writes the descriptor's own fields
    await client.createCollection(collection({ secret: 1 }))
    expect(Object.keys((await client.getCollection('docs'))!).sort()).toEqual(['created_at', 'created_epoch', 'dimensions', 'distance', 'embedding_model', 'name', 'replication_factor', 'shard_count'])
  })

  it('refuses ring epochs whose members are unsorted, repeated, not agents or weightless', async () => {
    const keys = [me, other].sort(compareKeys)
    const e = (over: Record<string, unknown>): { epoch: number, members: Array<{ node: Uint8Array, weight: number }>, at: number } => ({ epoch: 1, members: keys.map(node => ({ node, weight: 10 })), at: Date.now(), ...over })
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ members: [] }, /RingEpoch.members must list 1 to 4096 members/],
      [{ members: [...keys].reverse().map(node => ({ node, weight: 1 })) }, /RingEpoch.members must be sorted by key, each key once/],
      [{ members: [{ node: me, weight: 1 }, { node: me, weight: 2 }] }, /sorted by key, each key once/],
      [{ members: [{ node: me, weight: 0 }] }, /RingEpoch.members\[0\].weight must be a finite number > 0/],
      [{ members: [{ node: me, weight: -5 }] }, /weight must be a finite number > 0/],
      [{ members: [{ node: me, weight: Infinity }] }, /weight must be a finite number > 0/],
      [{ members: [{ node: hashFrom32(new Uint8Array(32), 'Entry'), weight: 1 }] }, /RingEpoch.members\[0\].node must be an agent key/],
      [{ members: [{ node: me, weight: 1, extra: true }] }, /RingEpoch.members\[0\].extra is not a known field/],
      [{ epoch: 1.5 }, /ZomeInputError/],
      [{ at: Date.now() + 3_600_000 }, /RingEpoch.at is more than 5 minutes/]
    ]
    for (const [over, reason] of bad) await expect(client.proposeEpoch(e(over)), JSON.stringify(Object.keys(over))).rejects.toThrow(reason)
    expect(await client.currentEpoch()).toBeNull()
    await client.proposeEpoch(e({}))
    expect((await client.currentEpoch())?.members).toEqual(keys.map(node => ({ node, weight: 10 })))
  })

  it('refuses malformed assignments and checkpoints', async () => {
    const uid = 'docs.lz3k9x0'
    const now = Date.now()
    const badAssignments: Array<[Record<string, unknown>, RegExp]> = [
      [{ state: 'copying' }, /ShardAssignment.state must be one of serving, retired/],
      [{ shard: -1 }, /ShardAssignment.shard must be at least 0/],
      [{ shard: 1024 }, /ShardAssignment.shard must be at most 1023/],
      [{ epoch: 0 }, /ShardAssignment.epoch must be at least 1/],
      [{ at: now - 3_600_000 }, /ShardAssignment.at is more than 5 minutes/],
      [{ collection: 'docs' }, /ZomeInputError/]
    ]
    for (const [over, reason] of badAssignments) await expect(client.commitAssignment({ collection: uid, shard: 0, epoch: 1, state: 'serving', at: now, ...over } as never), JSON.stringify(over)).rejects.toThrow(reason)
    const badCheckpoints: Array<[Record<string, unknown>, RegExp]> = [
      [{ seq: -1 }, /SyncCheckpoint.seq must be at least 0/],
      [{ count: 1.5 }, /SyncCheckpoint.count must be an integer/],
      [{ epoch: 'one' }, /SyncCheckpoint.epoch must be a finite number/]
    ]
    for (const [over, reason] of badCheckpoints) await expect(client.recordCheckpoint({ collection: uid, shard: 0, epoch: 1, seq: 0, count: 0, at: now, ...over } as never), JSON.stringify(over)).rejects.toThrow(reason)
    expect(await client.assignments(uid)).toEqual([])
    expect(await client.checkpoints(uid)).toEqual([])
  })
})

describe('memory_shards validate() on hand-built ops', () => {
  const host = hashFrom32(new Uint8Array(32).fill(1), 'Agent')
  const stranger = hashFrom32(new Uint8Array(32).fill(2), 'Agent')
  const now = Date.now()
  /** records the ops refer to, by encoded action hash */
  const records = new Map<string, HolochainRecord>()
  const ctx: ValidateContext = {
    must_get_action: (h) => records.get(encodeHash(h))!.signed_action,
    must_get_entry: () => { throw new Error('unexpected lookup') },
    must_get_valid_record: (h) => {
      const r = records.get(encodeHash(h))
      if (r === undefined) throw new Error('unresolved')
      return r
    },
    decode: (e) => decode(e.entry as Uint8Array) as never,
    dna_info: () => ({ hash: hashFrom32(new Uint8Array(32), 'Dna'), name: 'memory_shards', modifiers: { network_seed: 'x', properties: {} }, zome_names: [] }),
    encode_hash: encodeHash,
    decode_hash: (s) => decodeHash(s),
    verify_signature: () => { throw new Error('unexpected signature check') }
  }
  const header = (author: Uint8Array): Action['header'] => ({ author, timestamp: now * 1000, action_seq: 5, prev_action: hashFrom32(new Uint8Array(32).fill(9), 'Action') })
  const op = (author: Uint8Array, data: ActionData, app_entry?: Op['app_entry'], link_type?: string): Op => ({
    type: 'CreateRecord', action: { header: header(author), data }, action_hash: hashFromContent(data, 'Action'), signature: new Uint8Array(64), entry: null, app_entry, link_type
  })
  const entryType = { App: { entry_index: 0, zome_index: 0, visibility: 'Public' as const } }
  /** an entry committed by `author`, stored for look-ups; returns its action hash */
  const stored = (author: Uint8Array, value: unknown): ActionHash => {
    const data: ActionData = { type: 'Create', entry_type: entryType, entry_hash: hashFromContent(value, 'Entry') }
    const hash = hashFromContent(data, 'Action')
    records.set(encodeHash(hash), { signed_action: { hashed: { hash, content: { header: header(author), data } }, signature: new Uint8Array(64) }, entry: { Present: { entry_type: 'App', entry: encode(value) } } })
    return hash
  }
  const create = (author: Uint8Array, entry_type: string, value: unknown): Op => op(author, { type: 'Create', entry_type: entryType, entry_hash: hashFromContent(value, 'Entry') }, { entry_type, value })
  const link = (author: Uint8Array, link_type: string, target: ActionHash, tag: Uint8Array = new Uint8Array()): Op =>
    op(author, { type: 'CreateLink', base_address: hashFrom32(new Uint8Array(32).fill(7), 'Entry'), target_address: target, zome_index: 0, link_type: 0, tag, weight: { bucket_id: 0, units: 0 } }, undefined, link_type)
  const reason = (o: Op): string => { const r = validate(o, ctx); return r.type === 'Invalid' ? r.reason : r.type }

  const assignment = { collection: 'docs.lz3k9x0', shard: 3, epoch: 2, host, state: 'serving', at: now }
  const checkpoint = { collection: 'docs.lz3k9x0', shard: 3, epoch: 2, host, seq: 10, count: 9, at: now }

  it('lets only the host commit its assignments and checkpoints', () => {
    expect(reason(create(host, 'ShardAssignment', assignment))).toBe('Valid')
    expect(reason(create(stranger, 'ShardAssignment', assignment))).toBe('a ShardAssignment must be committed by its host')
    expect(reason(create(host, 'SyncCheckpoint', checkpoint))).toBe('Valid')
    expect(reason(create(stranger, 'SyncCheckpoint', checkpoint))).toBe('a SyncCheckpoint must be committed by its host')
    expect(reason(create(host, 'ShardAssignment', { ...assignment, host: new Uint8Array(39) }))).toBe('ShardAssignment.host must be an agent key')
  })

  it('refuses a deletion dated before the collection, and any update or delete of an entry', () => {
    expect(reason(create(stranger, 'CollectionDeleted', { name: 'docs', created_at: now - 1000, at: now }))).toBe('Valid')
    expect(reason(create(stranger, 'CollectionDeleted', { name: 'docs', created_at: now + 1000, at: now }))).toBe('CollectionDeleted.at must not be before the collection\'s created_at')
    const original = stored(host, assignment)
    const update = op(host, { type: 'Update', original_action_address: original, original_entry_address: hashFromContent(assignment, 'Entry'), entry_type: entryType, entry_hash: hashFromContent(checkpoint, 'Entry') }, { entry_type: 'ShardAssignment', value: { ...assignment, state: 'retired' } })
    expect(reason(update)).toBe('ShardAssignment entries are never updated: a newer entry supersedes them')
    expect(reason(op(host, { type: 'Delete', deletes_address: original, deletes_entry_address: hashFromContent(assignment, 'Entry') }))).toMatch(/never deleted/)
  })

  it('checks what each link leads to, who made it, and the epoch tag', () => {
    const a = stored(host, assignment)
    const c = stored(host, checkpoint)
    const epoch = stored(stranger, { epoch: 7, members: [{ node: host, weight: 1 }], at: now })
    const descriptor = stored(stranger, collection({ created_at: now }))
    expect(reason(link(host, 'CollectionToAssignment', a))).toBe('Valid')
    expect(reason(link(stranger, 'CollectionToAssignment', a))).toBe('CollectionToAssignment: only the host links its ShardAssignment')
    expect(reason(link(host, 'CollectionToAssignment', c))).toBe('CollectionToAssignment: the link must target a ShardAssignment')
    expect(reason(link(host, 'CollectionToCheckpoint', c))).toBe('Valid')
    expect(reason(link(host, 'RingEpochs', epoch, epochTag(7)))).toBe('Valid')
    expect(reason(link(host, 'RingEpochs', epoch, epochTag(8)))).toBe('RingEpochs: the tag must be the epoch as 4 big-endian bytes')
    expect(reason(link(host, 'RingEpochs', descriptor, epochTag(7)))).toBe('RingEpochs: the link must target a RingEpoch')
    expect(reason(link(host, 'AllCollections', descriptor))).toBe('Valid')
    expect(reason(link(host, 'NameToCollection', epoch))).toBe('NameToCollection: the link must target a ShardDescriptor or CollectionDeleted')
    expect(epochOfTag(epochTag(0xfffffffe))).toBe(0xfffffffe)
    expect(epochOfTag(new Uint8Array(3))).toBeNull()
  })
})

describe('memory_shards reading rules', () => {
  const h = (n: number): Uint8Array => hashFrom32(new Uint8Array(32).fill(n), 'Action')
  const d = (name: string, created_at: number): ShardDescriptor => collection({ name, created_at })

  it('takes, of concurrent creates of a name, the earliest created_at, then the lowest action hash; a deletion ends only its own', () => {
    expect(liveCollections([{ hash: h(1), value: d('x', 20) }, { hash: h(2), value: d('x', 10) }])).toEqual([d('x', 10)])
    expect(liveCollections([{ hash: h(5), value: d('x', 10) }, { hash: h(3), value: { ...d('x', 10), dimensions: 8 } }])).toEqual([{ ...d('x', 10), dimensions: 8 }])
    // the winner deleted: the other concurrent one surfaces (delete_collection ends them all at once)
    expect(liveCollections([{ hash: h(1), value: d('x', 20) }, { hash: h(2), value: d('x', 10) }, { hash: h(3), value: { name: 'x', created_at: 10, at: 30 } }])).toEqual([d('x', 20)])
    expect(liveCollections([{ hash: h(1), value: d('b', 1) }, { hash: h(2), value: d('a', 1) }]).map(c => c.name)).toEqual(['a', 'b'])
  })
})
