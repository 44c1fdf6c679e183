import { describe, expect, it } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { Keystore } from '../../identity/keystore.ts'
import { silentLogger } from '../../logger.ts'
import { agentPubKeyFromPeerId, peerIdFromAgentPubKey, peerIdFromSeed } from '../../identity/peer-id.ts'
import { createMeshNode, type Libp2pMeshNode } from '../libp2p-node.ts'
import { waitUntil } from '../../../../fixtures/wait.ts'
import { addr, flood, makeNode, pair } from './mesh-nodes.ts'
import { MESH_MAX_INFLIGHT_PER_PEER, MESH_MAX_QUEUED_PER_PEER } from '../constants.ts'
import { MeshResetError } from '../types.ts'

const enc = new TextEncoder()
const dec = new TextDecoder()






/** Streams of this mesh's request protocols still held by the nodes (leak check). */
function requestStreams (...ns: Libp2pMeshNode[]): string[] {
  return ns.flatMap(n => n.libp2p.getConnections().flatMap(c => c.streams))
    .filter(s => s.protocol.startsWith('/flexstack/'))
    .map(s => `${s.protocol} ${s.direction} ${s.status}`)
}

async function rejection (p: Promise<unknown>): Promise<Error> {
  try {
    await p
  } catch (err) {
    return err as Error
  }
  throw new Error('expected a rejection')
}

describe('identity', () => {
  it('uses the keystore key as the PeerId', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flexnode-mesh-'))
    try {
      const ks = await Keystore.open({ dataDir: dir, scryptN: 2 ** 4 })
      const { agentPubKey, publicKey } = ks.primary
      const seed = ks.exportSeed(agentPubKey)
      const peerId = await peerIdFromSeed(seed)
      expect(peerIdFromString(peerId).publicKey?.raw).toEqual(publicKey)
      expect(peerIdFromAgentPubKey(agentPubKey)).toBe(peerId)
      expect(agentPubKeyFromPeerId(peerId)).toEqual(agentPubKey)
      const node = await makeNode({ seed }, false)
      expect(node.peerId).toBe(peerId)
      ks.dispose()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('rejects a seed of the wrong length and a non-PeerId', async () => {
    await expect(createMeshNode({ network: 'testnet', seed: new Uint8Array(31) }, { logger: silentLogger() })).rejects.toMatchObject({ name: 'InvalidInputError' })
    expect(() => agentPubKeyFromPeerId('not-a-peer-id')).toThrow(expect.objectContaining({ name: 'InvalidInputError' }))
  })
})

describe('request/response', () => {
  it('round-trips, reports handler errors and enforces client limits', async () => {
    const [a, b] = await pair()
    await b.handle('echo', async (req, from) => enc.encode(`${from}:${dec.decode(req)}`))
    await b.handle('fail', async () => { throw new Error('boom: no such thing') })
    await b.handle('big', async () => new Uint8Array(1000))
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    await b.handle('hang', async () => { await held; return new Uint8Array(0) })

    expect(dec.decode(await a.request(b.peerId, 'echo', enc.encode('hi')))).toBe(`${a.peerId}:hi`)
    expect(await a.request(b.peerId, 'echo', new Uint8Array(0))).toEqual(enc.encode(`${a.peerId}:`))

    const failed = await rejection(a.request(b.peerId, 'fail', new Uint8Array(1)))
    expect(failed.name).toBe('MeshProtocolError')
    expect(failed.message).toBe('boom: no such thing')
    expect(failed).toMatchObject({ peerId: b.peerId, protocol: '/flexstack/testnet/fail/1' })

    expect((await rejection(a.request(b.peerId, 'nope', new Uint8Array(1)))).name).toBe('MeshProtocolError')
    expect((await rejection(a.request(b.peerId, 'big', new Uint8Array(1), { maxResponseBytes: 999 }))).name).toBe('MessageTooLargeError')
    expect((await a.request(b.peerId, 'big', new Uint8Array(1), { maxResponseBytes: 1000 })).length).toBe(1000)

    // the handler is still held: only the 200 ms deadline can have ended this request
    const hung = await rejection(a.request(b.peerId, 'hang', new Uint8Array(1), { timeoutMs: 200 }))
    expect(hung.name).toBe('MeshTimeoutError')
    expect(hung.message).toMatch(/within 200 ms/)
    const ac = new AbortController()
    const aborted = a.request(b.peerId, 'hang', new Uint8Array(1), { signal: ac.signal })
    ac.abort()
    expect((await rejection(aborted)).name).toBe('AbortError')
    release()

    // still serving after all of that
    expect(dec.decode(await a.request(b.peerId, 'echo', enc.encode('again')))).toBe(`${a.peerId}:again`)
    await waitUntil(() => requestStreams(a, b).length === 0, { what: 'every request stream to close' })
  })

  it('resets an oversized request and keeps serving', async () => {
    const [a, b] = await pair()
    let calls = 0
    await b.handle('small', async req => { calls++; return req }, { maxRequestBytes: 1024 })
    const err = await rejection(a.request(b.peerId, 'small', new Uint8Array(64 * 1024)))
    expect(err.name).toBe('MeshResetError')
    expect(calls).toBe(0)
    expect(await a.request(b.peerId, 'small', new Uint8Array(1024).fill(7))).toEqual(new Uint8Array(1024).fill(7))
    expect(calls).toBe(1)
    await waitUntil(() => requestStreams(a, b).length === 0, { what: 'every request stream to close' })
  })

  it('resets a peer that sends half a request, after the timeout', async () => {
    const [a, b] = await pair()
    await b.handle('slow', async req => req, { timeoutMs: 300 })
    const started = Date.now()
    const raw = await a.libp2p.dialProtocol(peerIdFromString(b.peerId), b.protocolId('slow'))
    // announce 100 bytes, send 3
    raw.send(Uint8Array.of(100, 1, 2, 3))
    await waitUntil(() => raw.status !== 'open', { what: 'the server to reset the stream' })
    expect(raw.status).toBe('reset')
    expect(Date.now() - started).toBeGreaterThanOrEqual(250)
    expect(await a.request(b.peerId, 'slow', enc.encode('ok'))).toEqual(enc.encode('ok'))
    await waitUntil(() => requestStreams(a, b).length === 0, { what: 'every request stream to close' })
  })

  it('a request the peer refuses (too many of ours in flight and queued there) fails with MeshResetError', async () => {
    const [a, b] = await pair()
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    let active = 0
    await b.handle('hold', async (req) => { active++; await held; return req }, { maxInboundStreams: 64 })
    const accepted = MESH_MAX_INFLIGHT_PER_PEER + MESH_MAX_QUEUED_PER_PEER
    const taken = Array.from({ length: accepted }, async (_, i) => await a.request(b.peerId, 'hold', Uint8Array.of(i)))
    await waitUntil(() => active === MESH_MAX_INFLIGHT_PER_PEER && requestStreams(b).length === accepted, { what: 'the peer to serve 4 and queue 8 of a\'s requests' })
    const refused = await rejection(a.request(b.peerId, 'hold', Uint8Array.of(99)))
    expect(refused).toBeInstanceOf(MeshResetError)
    expect(refused).toMatchObject({ name: 'MeshResetError', peerId: b.peerId, protocol: b.protocolId('hold') })
    expect(refused.message).toMatch(/reset the stream before answering/)
    release()
    expect((await Promise.all(taken)).map(r => r[0])).toEqual(Array.from({ length: accepted }, (_, i) => i))
    await waitUntil(() => requestStreams(a, b).length === 0, { what: 'every request stream to close' })
  })

  it('answers a second peer while one peer floods', async () => {
    const [a, b] = await pair()
    const c = await makeNode()
    await c.dial(addr(b))
    const active = new Map<string, number>()
    const maxActive = new Map<string, number>()
    // the flooder's requests are held until the second peer was answered
    let releaseFlood!: () => void
    const floodHeld = new Promise<void>(resolve => { releaseFlood = resolve })
    await b.handle('work', async (req, from) => {
      const n = (active.get(from) ?? 0) + 1
      active.set(from, n)
      maxActive.set(from, Math.max(maxActive.get(from) ?? 0, n))
      if (from === a.peerId) await floodHeld
      active.set(from, (active.get(from) ?? 1) - 1)
      return req
    }, { maxInboundStreams: 256 })

    // the flooder opens raw streams, one request each (see floodRequest)
    const flooding = flood(a, b, 'work', 40)
    const served = MESH_MAX_INFLIGHT_PER_PEER + MESH_MAX_QUEUED_PER_PEER
    await waitUntil(() => (active.get(a.peerId) ?? 0) > 0 && flooding.resets() === 40 - served, { what: 'the flood to fill the flooder\'s slots and queue' })
    expect(await c.request(b.peerId, 'work', enc.encode('mine'), { timeoutMs: 5_000 })).toEqual(enc.encode('mine'))
    // answered while every one of the flooder's slots was still taken
    expect(active.get(a.peerId)).toBe(MESH_MAX_INFLIGHT_PER_PEER)
    releaseFlood()
    const results = await flooding.outcomes
    expect(maxActive.get(a.peerId)).toBe(MESH_MAX_INFLIGHT_PER_PEER)
    // the ones in its slots and its queue are answered, the rest were refused at once
    expect(results.filter(r => r === 1).length).toBe(served)
    // and the flooder is served again once the flood is over
    expect(await a.request(b.peerId, 'work', Uint8Array.of(1))).toEqual(Uint8Array.of(1))
    await waitUntil(() => requestStreams(a, b, c).length === 0, { what: 'every request stream to close' })
  })
})

describe('gossip', () => {
  it('delivers a published message to a subscriber, with the sender', async () => {
    const [a, b] = await pair()
    const got: Array<{ text: string, from: string }> = []
    const unsubscribe = b.subscribe('news', (data, from) => { got.push({ text: dec.decode(data), from }) })
    expect(b.libp2p.services.pubsub.getTopics()).toContain('/flexstack/testnet/news')
    await waitUntil(async () => {
      await a.publish('news', enc.encode('hello'))
      return got.length > 0
    }, { intervalMs: 100, what: 'gossip to arrive' })
    expect(got[0]).toEqual({ text: 'hello', from: a.peerId })
    unsubscribe()
    expect(b.libp2p.services.pubsub.getTopics()).not.toContain('/flexstack/testnet/news')
  })
})

describe('block', () => {
  it('drops the connection, refuses redials, and unblock lifts it', async () => {
    const [a, b] = await pair()
    const gone: string[] = []
    a.onPeer('disconnect', id => { gone.push(id) })
    a.block([b.peerId])
    expect(a.peers()).toEqual([])
    await waitUntil(() => a.libp2p.getConnections().length === 0 && b.peers().length === 0, { what: 'the connection to drop' })
    expect(gone).toEqual([b.peerId])
    expect((await rejection(a.dial(addr(b)))).name).toBe('MeshProtocolError')
    await expect(b.dial(addr(a))).rejects.toThrow()
    await expect(a.request(b.peerId, 'x', new Uint8Array(1))).rejects.toMatchObject({ name: 'MeshProtocolError' })
    expect(a.peers()).toEqual([])

    a.unblock([b.peerId])
    expect(await a.dial(addr(b))).toBe(b.peerId)
    await waitUntil(() => a.peers().includes(b.peerId) && b.peers().includes(a.peerId), { what: 'the reconnection' })
  })

  it('drops gossip authored by a blocked peer, even when relayed by another', async () => {
    // c — a — b: c's messages reach b only through a
    const [a, b] = await pair()
    const c = await makeNode()
    await c.dial(addr(a))
    const atA: string[] = []
    const atB: string[] = []
    a.subscribe('t', (data, from) => { atA.push(`${from}:${dec.decode(data)}`) })
    b.subscribe('t', (data, from) => { atB.push(`${from}:${dec.decode(data)}`) })
    await waitUntil(async () => {
      await c.publish('t', enc.encode('before'))
      return atB.includes(`${c.peerId}:before`)
    }, { intervalMs: 100, what: 'c\'s gossip relayed to b' })

    b.block([c.peerId])
    let n = 0
    await waitUntil(async () => {
      await c.publish('t', enc.encode(`after-${n++}`))
      return atA.filter(m => m.includes(':after-')).length >= 3
    }, { intervalMs: 100, what: 'a to receive c\'s later gossip' })
    await a.publish('t', enc.encode('from-a'))
    await waitUntil(() => atB.includes(`${a.peerId}:from-a`), { what: 'a\'s own gossip at b' })
    expect(atB.filter(m => m.includes(':after-'))).toEqual([])
  })
})

describe('bootstrap', () => {
  it('connects to its bootstrap peers by itself and redials them', async () => {
    const a = await makeNode()
    const b = await makeNode({ bootstrap: [addr(a)] })
    const seen: string[] = []
    a.onPeer('connect', id => { seen.push(id) })
    await waitUntil(() => b.peers().includes(a.peerId) && a.peers().includes(b.peerId), { what: 'the bootstrap connection' })
    await b.libp2p.hangUp(peerIdFromString(a.peerId))
    await waitUntil(() => seen.length >= 1 && b.peers().includes(a.peerId), { what: 'the redial' })
  })
})

describe('network isolation', () => {
  it('never pairs a testnet node with local nodes, and gossip does not cross', async () => {
    const t = await makeNode({ network: 'testnet' })
    const l1 = await makeNode({ network: 'local', mdns: false })
    const l2 = await makeNode({ network: 'local', mdns: false })
    const events: string[] = []
    for (const [name, n] of [['t', t], ['l1', l1], ['l2', l2]] as const) n.onPeer('connect', id => { events.push(`${name}<-${id}`) })
    expect(await l2.dial(addr(l1))).toBe(l1.peerId)

    expect((await rejection(t.dial(addr(l1)))).name).toBe('MeshProtocolError')
    expect((await rejection(l1.dial(addr(t)))).name).toBe('MeshProtocolError')
    await waitUntil(() => t.libp2p.getConnections().length === 0, { what: 'the cross-network connections to drop' })

    const atL1: string[] = []
    const atT: string[] = []
    l1.subscribe('x', (_, from) => { atL1.push(from) })
    t.subscribe('x', (_, from) => { atT.push(from) })
    await waitUntil(async () => {
      await Promise.all([t.publish('x', enc.encode('from t')), l2.publish('x', enc.encode('from l2'))])
      return atL1.length >= 3
    }, { intervalMs: 100, what: 'local gossip' })

    expect(atL1.every(id => id === l2.peerId)).toBe(true)
    expect(atT).toEqual([])
    expect(t.peers()).toEqual([])
    expect(l1.peers()).toEqual([l2.peerId])
    expect(l2.peers()).toEqual([l1.peerId])
    expect(events.sort()).toEqual([`l1<-${l2.peerId}`, `l2<-${l1.peerId}`].sort())
    expect(t.protocolId('x')).toBe('/flexstack/testnet/x/1')
    expect(l1.protocolId('x')).toBe('/flexstack/local/x/1')
  })
})

describe('lifecycle', () => {
  it('stop is idempotent and the node refuses work afterwards', async () => {
    const a = await makeNode()
    await a.stop()
    await a.stop()
    await expect(a.request(a.peerId, 'x', new Uint8Array(1))).rejects.toMatchObject({ name: 'DisposedError' })
    await expect(a.start()).rejects.toMatchObject({ name: 'DisposedError' })
    expect(a.multiaddrs()).toEqual([])
  })
})
