/**
 * The audit service on a real embedded conductor (the notes test DNA, real SQLite): one record
 * per zome call that writes, in the same transaction — a call that fails validation, throws, or
 * whose record cannot be written leaves neither chain entries nor a record. The kinds derived
 * from the entries written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestConductor, FLEXSTACK_HAPP, NOTES_HAPP, type TestConductor } from '../../../../fixtures/index.ts'
import type { Action } from '../../../../zomes-ts/hdk/index.ts'
import type { CommitEvent } from '../../conductor/conductor.ts'
import { InProcessAppClient } from '../../conductor/in-process-client.ts'
import type { NetRecord } from '../../conductor/space.ts'
import { encodeHash, hashFrom32, hashFromContent } from '../../holo/hash.ts'
import { buildCapability } from '../../registry/registry-service.ts'
import { silentLogger } from '../../logger.ts'
import { audit, type AuditService } from '../index.ts'
import { commitEvent } from '../kinds.ts'

let t: TestConductor
let client: InProcessAppClient
let a: AuditService

const call = async (fn: string, payload: unknown = null): Promise<any> => // eslint-disable-line @typescript-eslint/no-explicit-any
  await client.callZome({ role_name: 'notes', zome_name: 'notes', fn_name: fn, payload })
const chainLength = async (): Promise<number> => await call('chain_length')

beforeAll(async () => {
  t = await createTestConductor()
  a = audit()({ conductor: t.conductor, keystore: t.keystore, logger: silentLogger() })
  await a.start()
  await t.conductor.installApp({ source: { type: 'path', value: NOTES_HAPP }, agent_key: t.agent, installed_app_id: 'notes' })
  await t.conductor.enableApp({ installed_app_id: 'notes' })
  client = await InProcessAppClient.connect(t.conductor, 'notes')
})
afterAll(async () => {
  await a?.stop()
  await t?.[Symbol.asyncDispose]()
})

describe('audit records of zome calls', () => {
  it('one record per zome call that writes, none for a read or for genesis', async () => {
    const before = a.log.head()?.seq ?? 0
    const hash = await call('create_note', { text: 'hello', tag: 't' })
    await call('get_note', hash)
    const records = a.log.list({ afterSeq: before })
    expect(records).toHaveLength(1)
    const r = records[0]!
    expect(r).toMatchObject({ kind: 'zome_call', actor: encodeHash(t.agent), node: encodeHash(t.agent), subject: null })
    expect(r.detail).toMatchObject({ dna: 'notes', zome: 'notes', fn: 'create_note', action_count: 2 })
    expect((r.detail.actions as Array<{ type: string, entry_type?: string, hash: string }>).map(x => [x.type, x.entry_type])).toEqual([['Create', 'notes_integrity/Note'], ['CreateLink', undefined]])
    expect((r.detail.actions as Array<{ hash: string }>)[0]!.hash).toBe(encodeHash(hash))
    expect(a.log.verify().ok).toBe(true)
  })

  it('a call that fails validation, or throws after writing, writes no record (same transaction)', async () => {
    const before = a.log.head()
    const length = await chainLength()
    await expect(call('create_note', { text: 'this is forbidden' })).rejects.toThrow(/forbidden/)
    await expect(call('valid_then_invalid')).rejects.toThrow()
    await expect(call('create_then_throw', 'x')).rejects.toThrow(/deliberate/)
    expect(a.log.head()).toEqual(before)
    expect(await chainLength()).toBe(length)
  })

  it('a record that cannot be written fails the call: no action without its record', async () => {
    const length = await chainLength()
    const before = a.log.head()
    const off = t.conductor.onCommitting(() => { throw new Error('the outbox is full') })
    try {
      await expect(call('create_note', { text: 'not recorded' })).rejects.toThrow(/the outbox is full/)
    } finally {
      off()
    }
    expect(await chainLength()).toBe(length)
    expect(a.log.head()).toEqual(before)
    await call('create_note', { text: 'recorded' })
    expect(a.log.head()!.seq).toBe(before!.seq + 1)
  })

  it('concurrent calls each get their record, the chain stays gap-free and verifies', async () => {
    const before = a.log.head()!.seq
    await Promise.all(Array.from({ length: 20 }, async (_, i) => await call('create_note', { text: `n${i}` })))
    expect(a.log.head()!.seq).toBe(before + 20)
    expect(a.log.verify()).toMatchObject({ ok: true, last_seq: before + 20 })
  })

  it('a stopped service records nothing more', async () => {
    const other = audit()({ conductor: t.conductor, keystore: t.keystore, logger: silentLogger() })
    await other.start()
    const before = a.log.head()!.seq
    await call('create_note', { text: 'twice' })
    // two services on one conductor: each appends its record (the node has one)
    expect(a.log.head()!.seq).toBe(before + 2)
    await other.stop()
    await call('create_note', { text: 'once' })
    expect(a.log.head()!.seq).toBe(before + 3)
    expect(() => other.append({ kind: 'x', detail: {} })).toThrow(expect.objectContaining({ name: 'DisposedError' }))
  })
})

describe('kinds derived from the entries written', () => {
  const agent = hashFrom32(new Uint8Array(32).fill(7), 'Agent')
  const h = (n: number): Uint8Array => hashFrom32(new Uint8Array(32).fill(n), 'Action')
  const header = { author: agent, timestamp: 1, action_seq: 9, prev_action: h(1) }
  const app = { App: { zome_index: 0, entry_index: 0, visibility: 'Public' as const } }
  const event = (dnaName: string, actions: CommitEvent['actions']): CommitEvent =>
    ({ dna: hashFrom32(new Uint8Array(32).fill(3), 'Dna'), dnaName, agent, origin: { type: 'call', zome: 'z', fn: 'f', provenance: agent }, actions })
  const create = (zome: string, name: string, n = 5): CommitEvent['actions'][number] =>
    ({ hash: h(n), action: { header, data: { type: 'Create', entry_type: app, entry_hash: hashFrom32(new Uint8Array(32), 'Entry') } }, entryType: { zome, name }, entry: null, deletes: null })
  const del = (zome: string, name: string): CommitEvent['actions'][number] =>
    ({ hash: h(6), action: { header, data: { type: 'Delete', deletes_address: h(4), deletes_entry_address: hashFrom32(new Uint8Array(32), 'Entry') } }, entryType: null, entry: null, deletes: { zome, name } })

  it('maps allocation, release, artifact, pin, unpin, policy, else zome_call', () => {
    expect(commitEvent(event('resource_mesh', [create('resource_mesh_integrity', 'Allocation')]))).toMatchObject({ kind: 'allocation', subject: encodeHash(h(5)) })
    expect(commitEvent(event('resource_mesh', [create('resource_mesh_integrity', 'UsageRecord', 2), create('resource_mesh_integrity', 'Release')]))?.kind).toBe('release')
    expect(commitEvent(event('resource_mesh', [create('resource_mesh_integrity', 'ResourceOffer')]))?.kind).toBe('zome_call')
    expect(commitEvent(event('artifact_index', [create('artifact_index_integrity', 'ArtifactRecord')]))?.kind).toBe('artifact')
    expect(commitEvent(event('artifact_index', [create('artifact_index_integrity', 'ProviderRecord')]))?.kind).toBe('pin')
    expect(commitEvent(event('artifact_index', [del('artifact_index_integrity', 'ProviderRecord')]))).toMatchObject({ kind: 'unpin', subject: encodeHash(h(4)) })
    expect(commitEvent(event('policy_store', [create('policy_store_integrity', 'PolicyDecision')]))?.kind).toBe('policy')
    expect(commitEvent({ ...event('notes', [create('n', 'Note')]), origin: { type: 'genesis' } })).toBeUndefined()
  })
})

describe('warrants this node issues', () => {
  it('a forked chain seen here is warranted, and the warrant is an audit record', async () => {
    const flexstack = async (): Promise<{ t: TestConductor, client: InProcessAppClient, dna: Uint8Array }> => {
      const t = await createTestConductor()
      await t.conductor.installApp({ source: { type: 'path', value: FLEXSTACK_HAPP }, agent_key: t.agent, installed_app_id: 'flexstack', network_seed: 'audit-warrant' })
      await t.conductor.enableApp({ installed_app_id: 'flexstack' })
      const client = await InProcessAppClient.connect(t.conductor, 'flexstack')
      return { t, client, dna: client.cellId('agent_registry')[0] }
    }
    const [b, d] = await Promise.all([flexstack(), flexstack()])
    const bAudit = audit()({ conductor: b.t.conductor, keystore: b.t.keystore, logger: silentLogger() })
    await bAudit.start()
    try {
      const machine = { cpu_cores: 4, cpu_arch: 'x86_64', ram_gb: 16, gpu: null, local_ssd_gb: 100, hostname: 'h', platform: 'linux' as const }
      await d.client.callZome({ role_name: 'agent_registry', zome_name: 'capabilities', fn_name: 'advertise', payload: buildCapability(d.t.agent, 'dave', machine, { cpu_percent: 1, gpu_percent: 0, memory_percent: 2 }, {}) })
      const space = d.t.conductor.space(d.dna)!
      const records = space.records(space.validActions(), 1e9)
      b.t.conductor.receiveRecords(b.dna, records)
      const head = records.reduce((x, y) => (y.action.header.action_seq > x.action.header.action_seq ? y : x))
      const action: Action = { header: { ...head.action.header, timestamp: head.action.header.timestamp + 5 }, data: { type: 'InitZomesComplete' } }
      const fork: NetRecord = { action, signature: d.t.keystore.sign(d.t.agent, hashFromContent(action, 'Action')), entry: null }
      expect(b.t.conductor.receiveRecords(b.dna, [fork]).warrants.map(w => w.kind)).toEqual(['ChainFork'])
      const [w] = bAudit.log.list({ kind: 'warrant' })
      expect(w).toMatchObject({ kind: 'warrant', actor: encodeHash(b.t.agent), subject: encodeHash(d.t.agent) })
      expect(w!.detail).toMatchObject({ dna: 'agent_registry', warrant_kind: 'ChainFork' })
      expect(bAudit.log.verify().ok).toBe(true)
    } finally {
      await bAudit.stop()
      await b.t[Symbol.asyncDispose]()
      await d.t[Symbol.asyncDispose]()
    }
  })
})
