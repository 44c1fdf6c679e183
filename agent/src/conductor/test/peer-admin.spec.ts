/**
 * The Admin API's peer requests (`list_peers`, `block_peers`, `unblock_peers`, `connect_peer`):
 * the operator's connection gate, driven through the real `@holochain/client` against two whole
 * nodes on 127.0.0.1, and against a conductor without a network.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AdminWebsocket } from '@holochain/client'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createTestAgent, createTestConductor, TEST_ORIGIN, waitUntil, type TestAgent } from '../../../../fixtures/index.ts'
import { encodeHash } from '../../holo/hash.ts'
import { agentPubKeyFromPeerId } from '../../identity/peer-id.ts'
import { addr, pair } from '../../mesh/test/mesh-nodes.ts'
import { PeerAdmin } from '../api/peer-admin.ts'
import { PeerAdminClient } from '../api/peer-admin-types.ts'

/** The `.name` (Holochain error kind) of the error `p` rejects with. */
async function failure (p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    return (err as Error).name
  }
  throw new Error('expected a rejection')
}

const adminOf = async (port: number): Promise<AdminWebsocket> =>
  await AdminWebsocket.connect({ url: new URL(`ws://127.0.0.1:${port}`), wsClientOptions: { origin: TEST_ORIGIN } })

let a: TestAgent
let b: TestAgent
const sockets: AdminWebsocket[] = []
let peersA: PeerAdminClient
let peersB: PeerAdminClient
let idA: string
let idB: string

beforeAll(async () => {
  a = await createTestAgent({ heartbeatIntervalSeconds: 3600 })
  b = await createTestAgent({ heartbeatIntervalSeconds: 3600, bootstrap: [a.node.info.multiaddrs[0]!] })
  idA = a.node.info.peer_id
  idB = b.node.info.peer_id
  for (const t of [a, b]) sockets.push(await adminOf(t.node.info.admin_port))
  peersA = new PeerAdminClient(sockets[0]!)
  peersB = new PeerAdminClient(sockets[1]!)
  await waitUntil(async () => (await peersA.listPeers()).connected.includes(idB) && (await peersB.listPeers()).connected.includes(idA), { what: 'a and b connected', timeoutMs: 30_000 })
}, 120_000)

afterAll(async () => {
  for (const s of sockets) await s.client.close().catch(() => {})
  await b?.[Symbol.asyncDispose]()
  await a?.[Symbol.asyncDispose]()
})

describe('Admin API peer requests', () => {
  it('list_peers names this node, its addresses and its connected peers', async () => {
    const listed = await peersA.listPeers()
    expect(listed.peer_id).toBe(idA)
    expect(listed.multiaddrs).toEqual(a.node.info.multiaddrs)
    expect(listed.connected).toEqual([idB])
    expect(listed.blocked).toEqual([])
  })

  it('block_peers drops the connection and refuses it while blocked; unblock_peers and connect_peer restore it', async () => {
    expect(await peersA.blockPeers([idB])).toEqual({ blocked: [idB] })
    await waitUntil(async () => !(await peersA.listPeers()).connected.includes(idB) && !(await peersB.listPeers()).connected.includes(idA), { what: 'the connection to drop on both sides' })
    expect((await peersA.listPeers()).blocked).toEqual([idB])
    // b dials a: a refuses it, so b does not get a connection that passes the network check
    expect(await failure(peersB.connectPeer(a.node.info.multiaddrs[0]!))).toBe('internal_error')
    expect((await peersA.listPeers()).connected).not.toContain(idB)
    // blocking again is idempotent
    expect(await peersA.blockPeers([idB])).toEqual({ blocked: [idB] })

    expect(await peersA.unblockPeers([idB])).toEqual({ unblocked: [idB], still_blocked: [] })
    expect((await peersA.listPeers()).blocked).toEqual([])
    expect(await peersA.connectPeer(b.node.info.multiaddrs[0]!)).toEqual({ peer_id: idB })
    await waitUntil(async () => (await peersA.listPeers()).connected.includes(idB) && (await peersB.listPeers()).connected.includes(idA), { what: 'a and b connected again' })
  }, 60_000)

  it('bad input is a deserialization error, nothing is blocked, and the node keeps serving', async () => {
    const secp = peerIdFromPrivateKey(await generateKeyPair('secp256k1')).toString()
    const block = sockets[0]!._requester('block_peers')
    const unblock = sockets[0]!._requester('unblock_peers')
    const connect = sockets[0]!._requester('connect_peer')
    const bad: Array<[string, Promise<unknown>]> = [
      ['no value', block(null)],
      ['peer_ids not a list', block({ peer_ids: idB })],
      ['an empty list', block({ peer_ids: [] })],
      ['not a PeerId', block({ peer_ids: ['12D3KooWnot-a-peer'] })],
      ['a number', block({ peer_ids: [42] })],
      ['a key that is not ed25519', block({ peer_ids: [secp] })],
      ['this node itself', block({ peer_ids: [idA] })],
      ['too many', block({ peer_ids: Array.from({ length: 1025 }, () => idB) })],
      ['unblock garbage', unblock({ peer_ids: ['nope'] })],
      ['connect without an address', connect({})],
      ['connect to a number', connect({ multiaddr: 42 })],
      ['connect to garbage', connect({ multiaddr: 'not a multiaddr' })]
    ]
    for (const [what, p] of bad) expect([what, await failure(p)]).toEqual([what, 'deserialization'])
    const listed = await peersA.listPeers()
    expect(listed.blocked).toEqual([])
    expect(listed.connected).toContain(idB)
  })
})

describe('Admin API peer requests without a network', () => {
  it('are an internal_error on a conductor that runs alone, which keeps serving', async () => {
    await using t = await createTestConductor()
    const { port } = await t.conductor.startAdminInterface({ port: 0 })
    const admin = await adminOf(port)
    try {
      const peers = new PeerAdminClient(admin)
      expect(await failure(peers.listPeers())).toBe('internal_error')
      expect(await failure(peers.blockPeers([idB]))).toBe('internal_error')
      expect(await failure(peers.connectPeer(b.node.info.multiaddrs[0]!))).toBe('internal_error')
      expect(await admin.listApps({})).toEqual([])
    } finally {
      await admin.client.close()
    }
  })
})

describe('PeerAdmin and warrants', () => {
  it('unblock_peers never lifts the block of a warranted agent', async () => {
    const [x, y] = await pair()
    const warrantee = encodeHash(agentPubKeyFromPeerId(y.peerId))
    const peers = new PeerAdmin({ transport: x, warranted: (agent) => encodeHash(agent) === warrantee })
    // what the DHT does with an accepted warrant: the warrantee's connections are gated
    x.block([y.peerId])
    await waitUntil(() => !x.peers().includes(y.peerId) && !y.peers().includes(x.peerId), { what: 'the warrantee cut off on both sides' })
    expect(peers.list().blocked).toEqual([])
    expect(peers.unblock({ peer_ids: [y.peerId] })).toEqual({ unblocked: [], still_blocked: [{ peer_id: y.peerId, reason: 'warranted' }] })
    // also when the operator had blocked it too
    expect(peers.block({ peer_ids: [y.peerId] })).toEqual({ blocked: [y.peerId] })
    expect(peers.unblock({ peer_ids: [y.peerId] }).still_blocked).toEqual([{ peer_id: y.peerId, reason: 'warranted' }])
    expect(peers.list().blocked).toEqual([])
    await expect(y.dial(addr(x))).rejects.toMatchObject({ name: 'MeshProtocolError' })
    expect(x.peers()).not.toContain(y.peerId)
  })
})
