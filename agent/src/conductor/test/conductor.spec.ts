/**
 * The embedded conductor with the notes test DNA: HDK semantics, atomic commits, timeouts,
 * restarts, DNA hashes per network, bundles and capability grants.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHash, generateKeyPairSync, randomBytes, sign as edSign } from 'node:crypto'
import { encodeHash, hashFrom32 } from '../../holo/hash.ts'
import { createTestConductor, FLEXSTACK_HAPP, NOTES_HAPP, waitUntil, type TestConductor } from '../../../../fixtures/index.ts'
import { InProcessAppClient } from '../in-process-client.ts'
import { packHapp, readHappBundle } from '../bundle.ts'
import { encode, decode } from '../codec.ts'
import type { CellId } from '../cell.ts'

async function notesApp (t: TestConductor, id = 'notes'): Promise<{ client: InProcessAppClient, cellId: CellId }> {
  await t.conductor.installApp({ source: { type: 'path', value: NOTES_HAPP }, agent_key: t.agent, installed_app_id: id })
  await t.conductor.enableApp({ installed_app_id: id })
  const client = await InProcessAppClient.connect(t.conductor, id)
  return { client, cellId: client.cellId('notes') }
}

const call = async (client: InProcessAppClient, fn: string, payload: unknown = null): Promise<any> => // eslint-disable-line @typescript-eslint/no-explicit-any
  await client.callZome({ role_name: 'notes', zome_name: 'notes', fn_name: fn, payload })

describe('HDK', () => {
  let t: TestConductor
  let client: InProcessAppClient

  beforeAll(async () => {
    t = await createTestConductor()
    client = (await notesApp(t)).client
  })
  afterAll(async () => { await t[Symbol.asyncDispose]() })

  it('creates, reads, updates and deletes entries', async () => {
    const h = await call(client, 'create_note', { text: 'first' })
    expect(await call(client, 'get_note', h)).toEqual({ text: 'first' })
    await call(client, 'update_note', { original: h, text: 'second' })
    const u2 = await call(client, 'update_note', { original: h, text: 'third' })
    expect(await call(client, 'latest_note', h)).toEqual({ text: 'third' })
    expect(await call(client, 'get_note', h)).toEqual({ text: 'first' })
    expect(await call(client, 'details', h)).toEqual({ updates: 2, deletes: 0 })
    await call(client, 'delete_note', u2)
    expect(await call(client, 'latest_note', h)).toEqual({ text: 'second' })
    await call(client, 'delete_note', h)
    expect(await call(client, 'latest_note', h)).toBeNull()
    expect(await call(client, 'details', h)).toEqual({ updates: 2, deletes: 1 })
  })

  it('creates, finds and deletes links', async () => {
    await call(client, 'create_note', { text: 'a', tag: 'red' })
    await call(client, 'create_note', { text: 'b', tag: 'red' })
    await call(client, 'create_note', { text: 'c', tag: 'blue' })
    expect(await call(client, 'notes_tagged', 'red')).toEqual(['a', 'b'])
    expect(await call(client, 'untag', 'red')).toBe(2)
    expect(await call(client, 'notes_tagged', 'red')).toEqual([])
    expect(await call(client, 'notes_tagged', 'blue')).toEqual(['c'])
  })

  it('queries the source chain by entry type', async () => {
    const notes = await call(client, 'my_notes') as string[]
    expect(notes).toEqual(expect.arrayContaining(['first', 'second', 'third', 'a', 'b', 'c']))
    await call(client, 'store_secret', 'psst')
    expect(await call(client, 'my_notes')).toEqual(notes)
  })

  it('signs and verifies with the agent key, and emits signals', async () => {
    expect(await call(client, 'sign_and_verify', { any: ['data', 1] })).toBe(true)
    const seen: unknown[] = []
    const off = client.on('signal', (s) => { if (s.type === 'app') seen.push(s.value.payload) })
    expect(await call(client, 'ping', { n: 7 })).toEqual({ n: 7 })
    await waitUntil(() => seen.length > 0)
    expect(seen).toEqual([{ pong: { n: 7 } }])
    off()
  })

  it('writes nothing when the function throws after writing', async () => {
    const before = await call(client, 'chain_length')
    await expect(call(client, 'create_then_throw', 'doomed')).rejects.toMatchObject({ name: 'ribosome_error' })
    expect(await call(client, 'chain_length')).toBe(before)
    expect(await call(client, 'notes_tagged', 'atomic')).toEqual([])
  })

  it('writes nothing when one of several writes is invalid', async () => {
    const before = await call(client, 'chain_length')
    await expect(call(client, 'valid_then_invalid')).rejects.toMatchObject({ name: 'ribosome_error' })
    await expect(call(client, 'create_note', { text: 'x'.repeat(1001) })).rejects.toMatchObject({ name: 'ribosome_error' })
    expect(await call(client, 'chain_length')).toBe(before)
  })

  it('serializes concurrent calls on one cell without forking the chain', async () => {
    const before = await call(client, 'chain_length') as number
    await Promise.all(Array.from({ length: 20 }, async (_, i) => await call(client, 'create_note', { text: `c${i}` })))
    expect(await call(client, 'chain_length')).toBe(before + 20)
  })
})

describe('conductor lifecycle', () => {
  it('times out a hung zome function and keeps serving the cell', async () => {
    await using t = await createTestConductor({ zomeCallTimeoutMs: 300 })
    const { client } = await notesApp(t)
    await expect(call(client, 'hang')).rejects.toMatchObject({ name: 'ribosome_error' })
    expect(await call(client, 'chain_length')).toBeGreaterThan(0)
  })

  it('keeps apps, agent and chain across a restart', async () => {
    const first = await createTestConductor()
    const { client } = await notesApp(first)
    const h = await call(client, 'create_note', { text: 'persist me' })
    const length = await call(client, 'chain_length')
    const agent = encodeHash(first.agent)
    await first.stop()

    await using again = await createTestConductor({ dataDir: first.dataDir })
    expect(encodeHash(again.agent)).toBe(agent)
    const apps = again.conductor.listApps() as Array<{ installed_app_id: string, status: { type: string } }>
    expect(apps.map(a => [a.installed_app_id, a.status.type])).toEqual([['notes', 'enabled']])
    const c2 = await InProcessAppClient.connect(again.conductor, 'notes')
    expect(await call(c2, 'chain_length')).toBe(length)
    expect(await call(c2, 'get_note', h)).toEqual({ text: 'persist me' })
    await call(c2, 'create_note', { text: 'after restart' })
    expect(await call(c2, 'chain_length')).toBe(length + 1)
  })

  it('gives each network its own DNA hashes, and the same code the same hash everywhere', async () => {
    await using a = await createTestConductor()
    await using b = await createTestConductor()
    const hashesOf = async (t: TestConductor, seed: string, id: string): Promise<string[]> => {
      const info = await t.conductor.installApp({ source: { type: 'path', value: FLEXSTACK_HAPP }, agent_key: t.agent, installed_app_id: id, network_seed: seed }) as { cell_info: Record<string, Array<{ value: { cell_id: CellId } }>> }
      return Object.keys(info.cell_info).sort().map(r => encodeHash(info.cell_info[r]![0]!.value.cell_id[0]))
    }
    const localA = await hashesOf(a, 'ripple-local', 'local')
    const testA = await hashesOf(a, 'ripple-testnet', 'testnet')
    const localB = await hashesOf(b, 'ripple-local', 'local')
    expect(localA).toEqual(localB)
    expect(new Set(localA).size).toBe(5)
    for (let i = 0; i < 5; i++) expect(testA[i]).not.toBe(localA[i])
  })

  it('installs from .happ bytes to the same DNA as from the YAML', async () => {
    await using t = await createTestConductor()
    const bytes = await packHapp(NOTES_HAPP)
    expect(readHappBundle(bytes).manifest.name).toBe('notes-app')
    const fromBytes = await t.conductor.installApp({ source: { type: 'bytes', value: bytes }, agent_key: t.agent, installed_app_id: 'b' }) as { cell_info: { notes: Array<{ value: { cell_id: CellId } }> } }
    const fromPath = await t.conductor.installApp({ source: { type: 'path', value: NOTES_HAPP }, agent_key: t.agent, installed_app_id: 'p' }) as { cell_info: { notes: Array<{ value: { cell_id: CellId } }> } }
    expect(encodeHash(fromBytes.cell_info.notes[0]!.value.cell_id[0])).toBe(encodeHash(fromPath.cell_info.notes[0]!.value.cell_id[0]))
  })

  it('refuses broken bundles and duplicate ids with typed errors, leaving no app behind', async () => {
    await using t = await createTestConductor()
    await expect(t.conductor.installApp({ source: { type: 'bytes', value: new Uint8Array([1, 2, 3]) }, agent_key: t.agent })).rejects.toMatchObject({ name: 'ConductorApiError', kind: 'dna_read_error' })
    await expect(t.conductor.installApp({ source: { type: 'path', value: '/nonexistent/app.happ' }, agent_key: t.agent })).rejects.toMatchObject({ kind: 'dna_read_error' })
    expect(t.conductor.listApps()).toEqual([])
    await notesApp(t, 'dup')
    await expect(notesApp(t, 'dup')).rejects.toMatchObject({ kind: 'internal_error' })
    await t.conductor.uninstallApp({ installed_app_id: 'dup' })
    expect(t.conductor.listApps()).toEqual([])
  })

  it('disables and re-enables an app', async () => {
    await using t = await createTestConductor()
    const { client } = await notesApp(t)
    await t.conductor.disableApp({ installed_app_id: 'notes' })
    await expect(call(client, 'chain_length')).rejects.toMatchObject({ name: 'internal_error' })
    await t.conductor.enableApp({ installed_app_id: 'notes' })
    expect(await call(client, 'chain_length')).toBeGreaterThan(0)
  })
})

describe('capability grants', () => {
  it('lets another key call what an unrestricted or transferable grant covers, and nothing else', async () => {
    await using t = await createTestConductor()
    const { cellId } = await notesApp(t)
    const { publicKey, privateKey } = generateKeyPairSync('ed25519')
    const raw = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(-32))
    const stranger = hashFrom32(raw, 'Agent')
    const signed = (fn: string, capSecret: Uint8Array | null): { bytes: Uint8Array, signature: Uint8Array } => {
      const bytes = encode({ cap_secret: capSecret, cell_id: cellId, zome_name: 'notes', fn_name: fn, provenance: stranger, payload: encode(null), nonce: randomBytes(32), expires_at: (Date.now() + 60_000) * 1000 })
      return { bytes, signature: new Uint8Array(edSign(null, createHash('sha512').update(bytes).digest(), privateKey)) }
    }
    await expect(t.conductor.callZomeSigned('notes', signed('chain_length', null))).rejects.toMatchObject({ kind: 'zome_call_unauthorized' })
    await t.conductor.grantZomeCallCapability({ cell_id: cellId, cap_grant: { tag: 'public-read', access: { type: 'unrestricted' }, functions: { type: 'listed', value: [['notes', 'chain_length']] } } })
    expect(decode(await t.conductor.callZomeSigned('notes', signed('chain_length', null)))).toBeGreaterThan(0)
    await expect(t.conductor.callZomeSigned('notes', signed('my_notes', null))).rejects.toMatchObject({ kind: 'zome_call_unauthorized' })
    const secret = new Uint8Array(randomBytes(64))
    const grant = await t.conductor.grantZomeCallCapability({ cell_id: cellId, cap_grant: { tag: 'transfer', access: { type: 'transferable', value: { secret } }, functions: { type: 'all' } } })
    expect(decode(await t.conductor.callZomeSigned('notes', signed('my_notes', secret)))).toEqual([])
    await expect(t.conductor.callZomeSigned('notes', signed('my_notes', new Uint8Array(randomBytes(64))))).rejects.toMatchObject({ kind: 'zome_call_unauthorized' })
    t.conductor.revokeZomeCallCapability({ cell_id: cellId, action_hash: grant })
    await expect(t.conductor.callZomeSigned('notes', signed('my_notes', secret))).rejects.toMatchObject({ kind: 'zome_call_unauthorized' })
  })
})
