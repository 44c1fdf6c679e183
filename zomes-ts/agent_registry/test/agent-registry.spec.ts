/**
 * agent_registry through real zome calls on an embedded conductor, and its integrity zome's
 * cross-author rules as a pure function.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { createTestAgent, createTestConductor, FLEXSTACK_HAPP, waitUntil, type TestConductor } from '../../../fixtures/index.ts'
import { InProcessAppClient } from '../../../agent/src/conductor/in-process-client.ts'
import { decode } from '../../../agent/src/conductor/codec.ts'
import { decodeHash, encodeHash, hashFrom32, hashFromContent } from '../../../agent/src/holo/hash.ts'
import type { Action, Op, SignedActionHashed, ValidateContext } from '../../hdk/index.ts'
import type { NodeCapability } from '../types.ts'
import { validate } from '../integrity/index.ts'

function capability (nodeId: string, over: Partial<NodeCapability> = {}): NodeCapability {
  return {
    node_id: nodeId,
    agent_name: 'test-node',
    capabilities: {
      compute: { cpu_cores: 8, cpu_arch: 'x86_64', ram_gb: 32, gpu: { vendor: 'nvidia', model: 'RTX 4090', vram_gb: 24 } },
      storage: { local_ssd_gb: 500, ipfs_pinned_gb: 10, s3_available_gb: 0 },
      inference: { models_loaded: ['qwen3-4b'], max_batch_size: 8, tokens_per_second: 150 },
      memory: { vector_shards: 2, redis_memory_gb: 0 }
    },
    network: { bandwidth_mbps: 1000, latency_region: 'us-west' },
    availability: 'online',
    load: { cpu_percent: 10, gpu_percent: 5, memory_percent: 40 },
    last_heartbeat: new Date().toISOString(),
    ...over
  }
}

describe('agent_registry zomes', () => {
  let t: TestConductor
  let client: InProcessAppClient
  let me: string
  const call = async (zome: string, fn: string, payload: unknown): Promise<any> => // eslint-disable-line @typescript-eslint/no-explicit-any
    await client.callZome({ role_name: 'agent_registry', zome_name: zome, fn_name: fn, payload })

  beforeAll(async () => {
    t = await createTestConductor()
    await t.conductor.installApp({ source: { type: 'path', value: FLEXSTACK_HAPP }, agent_key: t.agent, installed_app_id: 'flexstack', network_seed: 'ripple-local' })
    await t.conductor.enableApp({ installed_app_id: 'flexstack' })
    client = await InProcessAppClient.connect(t.conductor, 'flexstack')
    me = encodeHash(t.agent)
  })
  afterAll(async () => { await t[Symbol.asyncDispose]() })

  it('refuses a heartbeat before the first advertise', async () => {
    await expect(call('heartbeat', 'beat', { cpu_percent: 1, gpu_percent: 0, memory_percent: 1 })).rejects.toMatchObject({ name: 'ribosome_error' })
    expect(await call('capabilities', 'get_capability', t.agent)).toBeNull()
  })

  it('advertises once and updates the same entry afterwards', async () => {
    const first = await call('capabilities', 'advertise', capability(me))
    const original = await call('capabilities', 'my_capability_hash', null)
    expect(encodeHash(original)).toBe(encodeHash(first))
    await call('capabilities', 'advertise', capability(me, { agent_name: 'renamed' }))
    expect(encodeHash(await call('capabilities', 'my_capability_hash', null))).toBe(encodeHash(first))
    expect((await call('capabilities', 'get_capability', t.agent)).agent_name).toBe('renamed')
    expect((await call('discovery', 'query_peers', null)).length).toBe(1)
  })

  const bad: Array<[string, (c: NodeCapability) => unknown]> = [
    ['node_id of another agent', c => ({ ...c, node_id: encodeHash(hashFrom32(new Uint8Array(randomBytes(32)), 'Agent')) })],
    ['node_id that is not a hash', c => ({ ...c, node_id: 'uhCAk' + 'x'.repeat(48) })],
    ['zero cores', c => ({ ...c, capabilities: { ...c.capabilities, compute: { ...c.capabilities.compute, cpu_cores: 0 } } })],
    ['negative RAM', c => ({ ...c, capabilities: { ...c.capabilities, compute: { ...c.capabilities.compute, ram_gb: -1 } } })],
    ['absurd cores', c => ({ ...c, capabilities: { ...c.capabilities, compute: { ...c.capabilities.compute, cpu_cores: 1e9 } } })],
    ['fractional cores', c => ({ ...c, capabilities: { ...c.capabilities, compute: { ...c.capabilities.compute, cpu_cores: 2.5 } } })],
    ['absurd VRAM', c => ({ ...c, capabilities: { ...c.capabilities, compute: { ...c.capabilities.compute, gpu: { vendor: 'x', model: 'y', vram_gb: 1e6 } } } })],
    ['load over 100%', c => ({ ...c, load: { ...c.load, cpu_percent: 150 } })],
    ['negative tokens/s', c => ({ ...c, capabilities: { ...c.capabilities, inference: { ...c.capabilities.inference, tokens_per_second: -5 } } })],
    ['string where a number belongs', c => ({ ...c, network: { ...c.network, bandwidth_mbps: '1000' } })],
    ['unknown availability', c => ({ ...c, availability: 'sleeping' })],
    ['unknown extra field', c => ({ ...c, extra: true })],
    ['missing field', c => { const { load: _drop, ...rest } = c; return rest }],
    ['empty agent name', c => ({ ...c, agent_name: '' })],
    ['heartbeat an hour off', c => ({ ...c, last_heartbeat: new Date(Date.now() - 3600_000).toISOString() })],
    ['heartbeat not a time', c => ({ ...c, last_heartbeat: 'yesterday' })],
    ['not a map', () => [1, 2, 3]],
    // names of Object.prototype members are unknown fields like any other, at any depth and size
    ['an extra field named constructor', c => ({ ...c, constructor: 'x'.repeat(100_000) })],
    ['an extra field named hasOwnProperty', c => ({ ...c, hasOwnProperty: { padding: 'x'.repeat(1000) } })],
    ['a nested extra field named toString', c => ({ ...c, capabilities: { ...c.capabilities, inference: { ...c.capabilities.inference, toString: 'x'.repeat(1000) } } })],
    ['a nested extra field named valueOf', c => ({ ...c, load: { ...c.load, valueOf: 1 } })],
    ['a demo model it has not loaded', c => ({ ...c, capabilities: { ...c.capabilities, inference: { ...c.capabilities.inference, demo_models: ['other'] } } })],
    ['a negative queue depth', c => ({ ...c, capabilities: { ...c.capabilities, inference: { ...c.capabilities.inference, queue_depth: -1 } } })],
    ['a fractional queue depth', c => ({ ...c, capabilities: { ...c.capabilities, inference: { ...c.capabilities.inference, queue_depth: 1.5 } } })]
  ]
  for (const [what, mutate] of bad) {
    it(`rejects a NodeCapability with ${what}, writing nothing`, async () => {
      const before = t.conductor.cell(client.cellId('agent_registry'))!.chain().length
      await expect(call('capabilities', 'advertise', mutate(capability(me)))).rejects.toMatchObject({ name: 'ribosome_error' })
      expect(t.conductor.cell(client.cellId('agent_registry'))!.chain().length).toBe(before)
    })
  }

  it('refuses a payload with an own __proto__ key before any zome code runs, writing nothing', async () => {
    const before = t.conductor.cell(client.cellId('agent_registry'))!.chain().length
    const hostile = { ...capability(me), ['__proto__']: { padding: 'x'.repeat(1000) } }
    await expect(call('capabilities', 'advertise', hostile)).rejects.toMatchObject({ name: 'deserialization' })
    expect(t.conductor.cell(client.cellId('agent_registry'))!.chain().length).toBe(before)
  })

  it('advertises demo models and a live queue depth, and a beat updates the queue depth', async () => {
    const inference = { models_loaded: ['qwen3-4b', 'flexnode-tiny-seed1'], max_batch_size: 2, tokens_per_second: 10, demo_models: ['flexnode-tiny-seed1'], queue_depth: 3 }
    await call('capabilities', 'advertise', { ...capability(me), capabilities: { ...capability(me).capabilities, inference } })
    expect((await call('capabilities', 'get_capability', t.agent)).capabilities.inference).toEqual(inference)
    await call('heartbeat', 'beat', { cpu_percent: 5, gpu_percent: 0, memory_percent: 5, queue_depth: 7 })
    const after = await call('capabilities', 'get_capability', t.agent)
    expect(after.capabilities.inference).toEqual({ ...inference, queue_depth: 7 })
    expect(after.load).toEqual({ cpu_percent: 5, gpu_percent: 0, memory_percent: 5 })
    for (const q of [-1, 0.5, 'many']) {
      await expect(call('heartbeat', 'beat', { cpu_percent: 5, gpu_percent: 0, memory_percent: 5, queue_depth: q })).rejects.toMatchObject({ name: 'ribosome_error' })
    }
    await call('capabilities', 'advertise', capability(me))
  })

  it('beats with the live load and validates it', async () => {
    await call('heartbeat', 'beat', { cpu_percent: 77, gpu_percent: 3, memory_percent: 55 })
    expect((await call('capabilities', 'get_capability', t.agent)).load).toEqual({ cpu_percent: 77, gpu_percent: 3, memory_percent: 55 })
    await expect(call('heartbeat', 'beat', { cpu_percent: 101, gpu_percent: 0, memory_percent: 0 })).rejects.toMatchObject({ name: 'ribosome_error' })
    await expect(call('heartbeat', 'beat', { cpu_percent: 1 })).rejects.toMatchObject({ name: 'ribosome_error' })
    await expect(call('heartbeat', 'beat', 'busy')).rejects.toMatchObject({ name: 'ribosome_error' })
    // the entry records what beat says; liveness is presence's: a conductor without a network has none
    await call('heartbeat', 'beat', { cpu_percent: 1, gpu_percent: 0, memory_percent: 1, availability: 'draining' })
    const chain = t.conductor.cell(client.cellId('agent_registry'))!.chain()
    const stored = decode((chain[chain.length - 1]!.entry as { Present: { entry: Uint8Array } }).Present.entry) as NodeCapability
    expect(stored.availability).toBe('draining')
    expect((await call('capabilities', 'get_capability', t.agent)).availability).toBe('offline')
  })

  it('filters peers by requirements and availability; without presence every node is offline, whatever its entry says', async () => {
    await call('heartbeat', 'beat', { cpu_percent: 1, gpu_percent: 0, memory_percent: 1, availability: 'online' })
    expect((await call('discovery', 'query_peers', null)).map((p: NodeCapability) => p.availability)).toEqual(['offline'])
    expect(await call('discovery', 'query_peers', { availability: ['online', 'busy'] })).toEqual([])
    expect((await call('discovery', 'query_peers', { availability: 'offline', ttl_seconds: 600 })).length).toBe(1)
    const fits = { cpu_cores: 8, memory_gb: 32, gpu: true, gpu_vram_gb: 24, storage_gb: 100, model_name: 'qwen3-4b', cpu_arch: 'x86_64', latency_region: 'us-west' }
    expect((await call('discovery', 'query_peers', { requirements: fits })).length).toBe(1)
    for (const [k, v] of [['cpu_cores', 9], ['memory_gb', 64], ['gpu_vram_gb', 48], ['model_name', 'phi-4-mini'], ['cpu_arch', 'aarch64'], ['gpu', false]] as const) {
      expect(await call('discovery', 'query_peers', { requirements: { [k]: v } })).toEqual([])
    }
    for (const badInput of [{ requirements: { cpu_cores: -1 } }, { requirements: { wings: 2 } }, { availability: 'asleep' }, { ttl_seconds: 0 }, 'everything']) {
      await expect(call('discovery', 'query_peers', badInput)).rejects.toMatchObject({ name: 'ribosome_error' })
    }
  })
})

describe('agent_registry joins each NodeCapability with the node\'s presence', () => {
  it('takes liveness, availability, load, queue and time from the freshest live presence', async () => {
    await using agent = await createTestAgent({ heartbeatIntervalSeconds: 3600 })
    const node = agent.node
    const me = node.keystore.primary.agentPubKey
    const call = async (zome: string, fn: string, payload: unknown): Promise<any> => // eslint-disable-line @typescript-eslint/no-explicit-any
      await node.client.callZome({ role_name: 'agent_registry', zome_name: zome, fn_name: fn, payload })
    // its own presence: online from the start
    expect((await call('capabilities', 'get_capability', me)).availability).toBe('online')
    const load = { cpu_percent: 12, gpu_percent: 0, memory_percent: 34 }
    node.dht.presence.update({ availability: 'draining', load, queue: { m1: 2, m2: 3 } })
    const cap = await waitUntil(async () => { const c = await call('capabilities', 'get_capability', me); return c.availability === 'draining' && c }, { what: 'the draining presence' })
    expect(cap.load).toEqual(load)
    expect(cap.capabilities.inference.queue_depth).toBe(5)
    expect(Date.parse(cap.last_heartbeat)).toBe(Math.floor(node.dht.presence.own!.created_at / 1000))
    expect(await call('discovery', 'query_peers', { availability: 'online' })).toEqual([])
    expect((await call('discovery', 'query_peers', { availability: 'draining' })).map((c: NodeCapability) => c.node_id)).toEqual([encodeHash(me)])
    // a caller's tighter bound: a presence signed longer ago than ttl_seconds reads offline
    expect((await call('discovery', 'query_peers', { ttl_seconds: 1e-6 }))[0].availability).toBe('offline')
    // leaving signs a tombstone: offline at once, not after the lifetime
    await node.dht.presence.stop()
    expect((await call('capabilities', 'get_capability', me)).availability).toBe('offline')
  })
})

describe('agent_registry validate() cross-author rules', () => {
  const alice = hashFrom32(new Uint8Array(32).fill(1), 'Agent')
  const bob = hashFrom32(new Uint8Array(32).fill(2), 'Agent')
  const now = Date.now() * 1000
  const header = (author: Uint8Array): Action['header'] => ({ author, timestamp: now, action_seq: 5, prev_action: hashFrom32(new Uint8Array(32).fill(9), 'Action') })
  const aliceCreate: SignedActionHashed = {
    hashed: { hash: hashFrom32(new Uint8Array(32).fill(3), 'Action'), content: { header: header(alice), data: { type: 'Create', entry_type: { App: { entry_index: 0, zome_index: 0, visibility: 'Public' } }, entry_hash: hashFrom32(new Uint8Array(32).fill(4), 'Entry') } } },
    signature: new Uint8Array(64)
  }
  const ctx: ValidateContext = {
    must_get_action: (h) => { if (h[3] === 3) return aliceCreate; throw new Error('unexpected lookup') },
    must_get_entry: () => { throw new Error('unexpected lookup') },
    must_get_valid_record: () => { throw new Error('unexpected lookup') },
    decode: (e) => e.entry as never,
    dna_info: () => ({ hash: hashFrom32(new Uint8Array(32), 'Dna'), name: 'agent_registry', modifiers: { network_seed: 'x', properties: {} }, zome_names: [] }),
    encode_hash: encodeHash,
    decode_hash: (s) => decodeHash(s),
    verify_signature: () => { throw new Error('unexpected signature check') }
  }
  const op = (author: Uint8Array, data: Action['data'], extra: Partial<Op> = {}): Op => ({ type: 'CreateRecord', action: { header: header(author), data }, action_hash: hashFromContent(data, 'Action'), signature: new Uint8Array(64), entry: null, ...extra })

  it('lets only the author update or delete a NodeCapability', () => {
    const update = (author: Uint8Array): Op => op(author, { type: 'Update', original_action_address: aliceCreate.hashed.hash, original_entry_address: hashFrom32(new Uint8Array(32).fill(4), 'Entry'), entry_type: { App: { entry_index: 0, zome_index: 0, visibility: 'Public' } }, entry_hash: hashFrom32(new Uint8Array(32).fill(5), 'Entry') },
      { app_entry: { entry_type: 'NodeCapability', value: capability(encodeHash(author)) } })
    expect(validate(update(alice), ctx)).toEqual({ type: 'Valid' })
    expect(validate(update(bob), ctx).type).toBe('Invalid')
    const del = (author: Uint8Array): Op => op(author, { type: 'Delete', deletes_address: aliceCreate.hashed.hash, deletes_entry_address: hashFrom32(new Uint8Array(32).fill(4), 'Entry') })
    expect(validate(del(alice), ctx)).toEqual({ type: 'Valid' })
    expect(validate(del(bob), ctx).type).toBe('Invalid')
  })

  it('accepts capability links only from the author to their own entry', () => {
    const link = (author: Uint8Array, base: Uint8Array, type: string): Op => op(author, { type: 'CreateLink', base_address: base, target_address: aliceCreate.hashed.hash, zome_index: 0, link_type: type === 'AgentToCapability' ? 0 : 1, tag: new Uint8Array(), weight: { bucket_id: 0, units: 0 } }, { link_type: type })
    expect(validate(link(alice, alice, 'AgentToCapability'), ctx)).toEqual({ type: 'Valid' })
    expect(validate(link(bob, alice, 'AgentToCapability'), ctx).type).toBe('Invalid')
    expect(validate(link(bob, bob, 'AgentToCapability'), ctx).type).toBe('Invalid')
    expect(validate(link(alice, hashFrom32(new Uint8Array(32).fill(7), 'Entry'), 'AllNodes'), ctx)).toEqual({ type: 'Valid' })
    expect(validate(link(bob, hashFrom32(new Uint8Array(32).fill(7), 'Entry'), 'AllNodes'), ctx).type).toBe('Invalid')
  })
})
