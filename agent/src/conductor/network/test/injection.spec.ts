/**
 * The conductor's network is a component: built at construction from the `network` factory with
 * the conductor as its `DhtHost` (no setters), asked on a local miss (the cascade), answering
 * `agent_info` and `agent_presence`, and stopped with the conductor. Without one the conductor runs alone.
 */
import { describe, expect, it } from 'vitest'
import { createTestConductor, NOTES_HAPP, waitUntil } from '../../../../../fixtures/index.ts'
import { hashEquals, type HoloHash } from '../../../holo/hash.ts'
import { InProcessAppClient } from '../../in-process-client.ts'
import type { CascadeQuery } from '../../cell.ts'
import type { DhtHost, DhtNetwork, SyncStats } from '../types.ts'
import type { ArcStatus } from '../authorities.ts'
import { FULL_ARC } from '../arc.ts'
import type { Presence, PresenceInfo } from '../presence.ts'

/** A network with no peers that records what the conductor asks of it. */
class RecordingNetwork implements DhtNetwork {
  readonly host: DhtHost
  readonly cascades: Array<{ dna: HoloHash, query: CascadeQuery }> = []
  stops = 0
  /** while set, every cascade waits for it: a lookup stuck on the network */
  hold: Promise<void> | undefined
  readonly totals: SyncStats = { requests: 0, bytesSent: 0, bytesReceived: 0, records: 0 }
  readonly droppedGossip = 0
  readonly ops = { published: 0, rejected: 0 }
  readonly lookups: Uint8Array[][] = []
  /** answers every lookup with one made-up live record per agent, so the answer's path shows */
  readonly presence: Presence = {
    start: async () => {},
    stop: async () => {},
    get: () => null,
    lookup: (agents) => {
      this.lookups.push([...agents])
      return agents.map((agent): PresenceInfo => ({ agent, created_at: 1, expires_at: 2, is_tombstone: false, arc: null, availability: 'busy' }))
    },
    live: () => [],
    update: () => {},
    refresh: async () => {},
    own: null,
    refreshMs: 1000,
    lifetimeMs: 2500,
    stats: { received: 0, accepted: 0, published: 0, drops: { forged: 0, replayed: 0, expired: 0, future: 0, oversized: 0, malformed: 0, rate_limited: 0, capacity: 0 } }
  }

  constructor (host: DhtHost) { this.host = host }
  async start (): Promise<void> {}
  async stop (): Promise<void> { this.stops++ }
  async [Symbol.asyncDispose] (): Promise<void> { await this.stop() }
  async cascade (dna: HoloHash, query: CascadeQuery): Promise<number> {
    this.cascades.push({ dna, query })
    await this.hold
    return 0
  }

  onCascade (): () => void { return () => {} }
  arcStatus (): ArcStatus { return { arc: FULL_ARC, sectors: 512, authoritiesSeen: 1, coverage: 0, targetRedundancy: 5, peers: [] } }

  peerInfo (): string[] { return ['{"peer_id":"12D3KooWtest"}'] }
  async syncWithPeer (): Promise<SyncStats> { return { ...this.totals } }
  async syncDna (): Promise<SyncStats> { return { ...this.totals } }
}

describe('the conductor\'s network component', () => {
  it('is built with the conductor as host, cascades local misses to it, answers agent_info from it and stops with it', async () => {
    let built: RecordingNetwork | undefined
    await using t = await createTestConductor({ network: (host: DhtHost) => (built = new RecordingNetwork(host)) })
    expect(built).toBeDefined()
    const net = built!
    expect(net.host).toBe(t.conductor)
    expect(t.conductor.network).toBe(net)
    expect(t.conductor.agentInfo()).toEqual(['{"peer_id":"12D3KooWtest"}'])
    await t.conductor.installApp({ source: { type: 'path', value: NOTES_HAPP }, agent_key: t.agent, installed_app_id: 'notes' })
    await t.conductor.enableApp({ installed_app_id: 'notes' })
    const client = await InProcessAppClient.connect(t.conductor, 'notes')
    const dna = client.cellId('notes')[0]
    expect(net.host.runningDnas().map(d => hashEquals(d, dna))).toEqual([true])
    // a get of a hash nobody holds locally goes to the network
    const missing = new Uint8Array(39).fill(7)
    missing.set([0x84, 0x29, 0x24])
    expect(await client.callZome({ role_name: 'notes', zome_name: 'notes', fn_name: 'get_note', payload: missing })).toBeNull()
    expect(net.cascades.some(c => hashEquals(c.dna, dna) && 'hashes' in c.query && c.query.hashes.some(h => hashEquals(h, missing)))).toBe(true)
    // hdk.agent_presence is answered by the network's presence, after the host checked the input
    const presence = await client.callZome({ role_name: 'notes', zome_name: 'notes', fn_name: 'presence_of', payload: [t.agent] }) as PresenceInfo[]
    expect(presence.map(p => [hashEquals(p.agent, t.agent), p.availability])).toEqual([[true, 'busy']])
    expect(net.lookups.length).toBe(1)
    for (const junk of ['everyone', [missing], new Array(4097).fill(t.agent)]) {
      await expect(client.callZome({ role_name: 'notes', zome_name: 'notes', fn_name: 'presence_of', payload: junk })).rejects.toMatchObject({ name: 'ribosome_error' })
    }
    expect(net.lookups.length).toBe(1)
    await t.stop()
    expect(net.stops).toBe(1)
  })

  it('a call waiting on the network holds no other call of its cell: writes and reads issued meanwhile complete first', async () => {
    let built: RecordingNetwork | undefined
    await using t = await createTestConductor({ network: (host: DhtHost) => (built = new RecordingNetwork(host)) })
    const net = built!
    await t.conductor.installApp({ source: { type: 'path', value: NOTES_HAPP }, agent_key: t.agent, installed_app_id: 'notes' })
    await t.conductor.enableApp({ installed_app_id: 'notes' })
    const client = await InProcessAppClient.connect(t.conductor, 'notes')
    const call = async (fn: string, payload: unknown): Promise<unknown> => await client.callZome({ role_name: 'notes', zome_name: 'notes', fn_name: fn, payload })
    const first = await call('create_note', { text: 'before' }) as HoloHash
    let open!: () => void
    net.hold = new Promise<void>(resolve => { open = resolve })
    const missing = new Uint8Array(39).fill(9)
    missing.set([0x84, 0x29, 0x24])
    const order: string[] = []
    const lookup = call('get_note', missing).then((v) => { order.push('lookup'); return v })
    // the lookup is now waiting on the network
    await waitUntil(() => net.cascades.length === 1, { what: 'the lookup to reach the network' })
    const written = await call('create_note', { text: 'meanwhile' }) as HoloHash
    order.push('write')
    expect(await call('get_note', written)).toMatchObject({ text: 'meanwhile' })
    expect(await call('get_note', first)).toMatchObject({ text: 'before' })
    expect(order).toEqual(['write'])
    open()
    expect(await lookup).toBeNull()
    expect(order).toEqual(['write', 'lookup'])
    const notes = await call('my_notes', null) as string[]
    expect(notes).toEqual(expect.arrayContaining(['before', 'meanwhile']))
  })

  it('concurrent writers of one cell all land, each on the head the one before it left', async () => {
    await using t = await createTestConductor()
    await t.conductor.installApp({ source: { type: 'path', value: NOTES_HAPP }, agent_key: t.agent, installed_app_id: 'notes' })
    await t.conductor.enableApp({ installed_app_id: 'notes' })
    const client = await InProcessAppClient.connect(t.conductor, 'notes')
    const call = async (fn: string, payload: unknown): Promise<unknown> => await client.callZome({ role_name: 'notes', zome_name: 'notes', fn_name: fn, payload })
    const before = await call('chain_length', null) as number
    const texts = Array.from({ length: 24 }, (_, i) => `n${i}`)
    await Promise.all(texts.map(async text => await call('create_note', { text })))
    expect(await call('chain_length', null)).toBe(before + texts.length)
    expect((await call('my_notes', null) as string[]).sort()).toEqual(expect.arrayContaining(texts))
  })

  it('without one, the conductor runs alone: no peers, local misses stay misses', async () => {
    await using t = await createTestConductor()
    expect(t.conductor.network).toBeUndefined()
    expect(t.conductor.agentInfo()).toEqual([])
    // and knows nobody's presence: everyone is offline, itself included
    await t.conductor.installApp({ source: { type: 'path', value: NOTES_HAPP }, agent_key: t.agent, installed_app_id: 'notes' })
    await t.conductor.enableApp({ installed_app_id: 'notes' })
    const client = await InProcessAppClient.connect(t.conductor, 'notes')
    expect(await client.callZome({ role_name: 'notes', zome_name: 'notes', fn_name: 'presence_of', payload: [t.agent] })).toEqual([null])
  })
})
