/**
 * Presence records: their timing, their checks and their store as functions, then a real node
 * under bad input from a real libp2p peer on 127.0.0.1: forged, replayed, expired, far-future,
 * oversized and malformed records, junk trades and a flood, each dropped and counted by reason,
 * while the node keeps serving (its zome calls, and an honest peer's presence).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestAgent, LOOPBACK, tempDir, TEST_GOSSIP_WHITELIST, TEST_SCRYPT_N, waitUntil, type TempDir, type TestAgent } from '../../../../../fixtures/index.ts'
import { Keystore } from '../../../identity/keystore.ts'
import { peerIdFromAgentPubKey } from '../../../identity/peer-id.ts'
import { silentLogger } from '../../../logger.ts'
import { createMeshNode, type Libp2pMeshNode } from '../../../mesh/libp2p-node.ts'
import { encode, encodeCanonical } from '../../codec.ts'
import { FULL_ARC, openPresence, PRESENCE, presenceTiming, PresenceStore, signPresence, type DropReason, type PresenceInfo } from '../presence.ts'

const MIN = 60_000_000 // µs

async function keystore (dir: TempDir, name: string): Promise<Keystore> {
  return await Keystore.open({ dataDir: `${dir.path}/${name}`, scryptN: TEST_SCRYPT_N })
}

function record (agent: Uint8Array, createdAt: number, over: Partial<PresenceInfo> = {}): PresenceInfo {
  return { agent, created_at: createdAt, expires_at: createdAt + 5_000_000, is_tombstone: false, arc: [...FULL_ARC], availability: 'online', ...over }
}

/** A record signed by `keys`' own key, whoever it names (a forgery when it names someone else). */
function signAs (info: PresenceInfo, keys: Keystore): Uint8Array {
  const bytes = encodeCanonical(info)
  return encode({ info: bytes, signature: keys.sign(keys.primary.agentPubKey, bytes) })
}

function rejection (fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return (err as { name: string, reason?: string }).name === 'PresenceRejectedError' ? (err as { reason: string }).reason : `not a rejection: ${String(err)}`
  }
  return undefined
}

describe('presence records', () => {
  let dir: TempDir
  let alice: Keystore
  let mallory: Keystore
  beforeAll(async () => {
    dir = await tempDir('flexnode-presence-unit-')
    alice = await keystore(dir, 'alice')
    mallory = await keystore(dir, 'mallory')
  })
  afterAll(async () => {
    alice?.dispose()
    mallory?.dispose()
    await dir?.[Symbol.asyncDispose]()
  })

  it('live 2.5 intervals of their sender (capped at 30 min, the interval shrunk to fit) and go out at most once a second', () => {
    expect(presenceTiming(45_000)).toEqual({ refreshMs: 45_000, lifetimeMs: 112_500 })
    expect(presenceTiming(2_000)).toEqual({ refreshMs: 2_000, lifetimeMs: 5_000 })
    expect(presenceTiming(3_600_000)).toEqual({ refreshMs: 720_000, lifetimeMs: 1_800_000 })
    expect(presenceTiming(50)).toEqual({ refreshMs: 1_000, lifetimeMs: 2_500 })
    expect(rejection(() => presenceTiming(0))).toBe('not a rejection: FlexnodeError: presence: the refresh interval must be a positive number of ms, got 0')
  })

  it('are opened only when well-formed, by their author, in time, newer than the one held and signed', () => {
    const now = Date.now() * 1000
    const a = alice.primary.agentPubKey
    const verify = alice.verify.bind(alice)
    const from = peerIdFromAgentPubKey(a)
    const good = signPresence(record(a, now), alice)
    const held = openPresence(good, { now, author: from, verify })
    expect(held.info.agent).toEqual(a)
    expect(held.deadline).toBe(now + 5_000_000)
    // a sender whose clock runs ahead is kept no longer than its lifetime after we heard it
    expect(openPresence(signPresence(record(a, now + MIN), alice), { now, author: from, verify }).deadline).toBe(now + 5_000_000)
    const cases: Array<[DropReason, () => unknown]> = [
      ['forged', () => openPresence(good, { now, author: peerIdFromAgentPubKey(mallory.primary.agentPubKey), verify })],
      ['forged', () => openPresence(signAs(record(a, now), mallory), { now, author: from, verify })],
      ['forged', () => openPresence(encode({ info: encode(record(a, now)), signature: new Uint8Array(64) }), { now, verify })],
      ['replayed', () => openPresence(good, { now, author: from, held: () => held, verify })],
      ['replayed', () => openPresence(signPresence(record(a, now - 10 * MIN, { expires_at: now + MIN }), alice), { now, author: from, verify })],
      ['expired', () => openPresence(signPresence(record(a, now - 10 * MIN, { expires_at: now - 5 * MIN }), alice), { now, author: from, verify })],
      ['future', () => openPresence(signPresence(record(a, now + 60 * MIN, { expires_at: now + 61 * MIN }), alice), { now, author: from, verify })],
      ['malformed', () => openPresence(signPresence(record(a, now, { expires_at: now + 31 * MIN }), alice), { now, author: from, verify })],
      ['malformed', () => openPresence(signPresence(record(a, now, { expires_at: now }), alice), { now, author: from, verify })],
      ['malformed', () => openPresence(signPresence({ ...record(a, now), availability: 'asleep' as never }, alice), { now, author: from, verify })],
      ['malformed', () => openPresence(signPresence({ ...record(a, now), arc: [0, 2 ** 32] }, alice), { now, author: from, verify })],
      ['malformed', () => openPresence(signPresence({ ...record(a, now), load: { cpu_percent: 101, gpu_percent: 0, memory_percent: 0 } }, alice), { now, author: from, verify })],
      ['malformed', () => openPresence(encode({ info: new Uint8Array([0xc1]), signature: new Uint8Array(64) }), { now, verify })],
      ['malformed', () => openPresence(new Uint8Array([1, 2, 3]), { now, verify })],
      ['oversized', () => openPresence(signPresence({ ...record(a, now), queue: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`model-${'x'.repeat(40)}-${i}`, i])) }, alice), { now, author: from, verify })]
    ]
    expect(cases.map(([, fn]) => rejection(fn))).toEqual(cases.map(([reason]) => reason))
    // the sender's bucket is asked only once the cheap checks pass: a replay of its old messages costs it nothing
    let asked = 0
    const empty = (): boolean => { asked++; return false }
    expect(rejection(() => openPresence(good, { now, author: from, held: () => held, admit: empty, verify }))).toBe('replayed')
    expect(asked).toBe(0)
    expect(rejection(() => openPresence(signPresence(record(a, now + 1), alice), { now, author: from, held: () => held, admit: empty, verify }))).toBe('rate_limited')
    expect(asked).toBe(1)
    // relayed in a trade (no author): any holder may pass a signed record on
    expect(openPresence(good, { now, verify }).info.created_at).toBe(now)
    // unknown fields are ignored
    const extended = encode({ info: encode({ ...record(a, now), url: 'wss://example.invalid', future_field: [1, 2] }), signature: alice.sign(a, encode({ ...record(a, now), url: 'wss://example.invalid', future_field: [1, 2] })) })
    expect(Object.keys(openPresence(extended, { now, author: from, verify }).info).sort()).toEqual(['agent', 'arc', 'availability', 'created_at', 'expires_at', 'is_tombstone'])
  })

  it('are held newest first per agent, until their deadline; a tombstone means offline; the store is bounded', () => {
    let now = 1_000_000_000_000
    const store = new PresenceStore({ now: () => now, maxAgents: 2 })
    const a = alice.primary.agentPubKey
    const m = mallory.primary.agentPubKey
    const put = (info: PresenceInfo): boolean => store.put({ info, wire: new Uint8Array(0), deadline: Math.min(info.expires_at, now + info.expires_at - info.created_at) })
    expect(put(record(a, now))).toBe(true)
    expect(put(record(a, now - 1))).toBe(false)
    expect(put(record(a, now))).toBe(false)
    expect(store.get(a)?.created_at).toBe(now)
    expect(put(record(a, now + 1, { availability: 'busy' }))).toBe(true)
    expect(store.get(a)?.availability).toBe('busy')
    expect(store.live().length).toBe(1)
    now += 5_000_000
    expect(store.get(a)).toBeNull()
    expect(store.live()).toEqual([])
    expect(put(record(m, now))).toBe(true)
    expect(put(record(m, now + 1, { is_tombstone: true }))).toBe(true)
    expect(store.get(m)).toBeNull()
    // full (a's expired record still held until pruned): a third agent forces a prune and fits
    const third = Uint8Array.from(a)
    third[10] = third[10]! ^ 0xff
    expect(put(record(third, now))).toBe(true)
    const fourth = Uint8Array.from(a)
    fourth[11] = fourth[11]! ^ 0xff
    expect(rejection(() => put(record(fourth, now)))).toBe('capacity')
  })
})

describe('a node\'s presence under bad input from a peer', () => {
  let dir: TempDir
  let agent: TestAgent
  let rogueKeys: Keystore
  let otherKeys: Keystore
  let honestKeys: Keystore
  const meshes: Libp2pMeshNode[] = []
  const meshFor = async (keys: Keystore): Promise<Libp2pMeshNode> => {
    const mesh = await createMeshNode({ network: 'local', seed: keys.exportSeed(keys.primary.agentPubKey), listen: [LOOPBACK], mdns: false, gossipColocationWhitelist: [...TEST_GOSSIP_WHITELIST] }, { logger: silentLogger() })
    meshes.push(mesh)
    await mesh.start()
    return mesh
  }

  beforeAll(async () => {
    dir = await tempDir('flexnode-presence-bad-')
    agent = await createTestAgent({ heartbeatIntervalSeconds: 3600 })
    rogueKeys = await keystore(dir, 'rogue')
    otherKeys = await keystore(dir, 'other')
    honestKeys = await keystore(dir, 'honest')
  })
  afterAll(async () => {
    await Promise.allSettled(meshes.map(async m => { await m.stop() }))
    await agent?.[Symbol.asyncDispose]()
    for (const k of [rogueKeys, otherKeys, honestKeys]) k?.dispose()
    await dir?.[Symbol.asyncDispose]()
  })

  it('drops forged, replayed, expired, far-future, oversized and malformed records and a flood, counting each, and keeps serving', async () => {
    const node = agent.node
    const presence = node.dht.presence
    const drops = (): Record<DropReason, number> => ({ ...presence.stats.drops })
    const rogue = await meshFor(rogueKeys)
    await rogue.dial(node.info.multiaddrs[0]!)
    rogue.subscribe(PRESENCE.topic, () => {})
    // an honest peer connected to the node only: what the rogue sends reaches it through the node
    const honest = await meshFor(honestKeys)
    await honest.dial(node.info.multiaddrs[0]!)
    const relayed: Uint8Array[] = []
    honest.subscribe(PRESENCE.topic, (data, from) => { if (from === rogue.peerId) relayed.push(data) })
    const r = rogueKeys.primary.agentPubKey
    const now = (): number => Date.now() * 1000
    // the rogue's own valid record gets through once gossip flows, and the node relays it
    let first = signPresence(record(r, now()), rogueKeys)
    await waitUntil(async () => {
      if (presence.get(r) !== null && relayed.length > 0) return true
      first = signPresence(record(r, now()), rogueKeys)
      await rogue.publish(PRESENCE.topic, first)
      return false
    }, { what: 'the rogue\'s valid presence to arrive, and to be relayed', intervalMs: 300 })
    const newer = signPresence(record(r, now(), { availability: 'busy' }), rogueKeys)
    await rogue.publish(PRESENCE.topic, newer)
    await waitUntil(() => presence.get(r)?.availability === 'busy', { what: 'the newer record to win' })
    await waitUntil(() => relayed.some(d => Buffer.from(d).equals(newer)), { what: 'the newer record to be relayed' })
    const relayedBefore = relayed.length

    const o = otherKeys.primary.agentPubKey
    const bad: Array<[DropReason, () => Uint8Array]> = [
      // another agent's genuine record, sent by the rogue
      ['forged', () => signPresence(record(o, now()), otherKeys)],
      // the rogue's record signed by another key
      ['forged', () => signAs(record(r, now()), otherKeys)],
      // its earlier record, sent again
      ['replayed', () => first],
      ['expired', () => signPresence(record(r, now() - 10 * MIN, { expires_at: now() - 5 * MIN }), rogueKeys)],
      ['future', () => signPresence(record(r, now() + 60 * MIN, { expires_at: now() + 61 * MIN }), rogueKeys)],
      ['oversized', () => new Uint8Array(PRESENCE.maxRecordBytes + 1).fill(7)],
      ['malformed', () => new Uint8Array([0x92, 0x01])]
    ]
    for (const [reason, make] of bad) {
      const before = drops()[reason]
      await rogue.publish(PRESENCE.topic, make())
      await waitUntil(() => drops()[reason] > before, { what: `a ${reason} record to be dropped` })
    }
    expect(presence.get(r)?.availability).toBe('busy')
    expect(presence.get(o)).toBeNull()
    // what the node dropped went no further: a valid record sent after them is the next one relayed
    const marker = signPresence(record(r, now(), { availability: 'online' }), rogueKeys)
    await rogue.publish(PRESENCE.topic, marker)
    await waitUntil(() => relayed.some(d => Buffer.from(d).equals(marker)), { what: 'the valid record after the bad ones to be relayed' })
    expect(relayed.slice(relayedBefore).map(d => Buffer.from(d).equals(marker))).toEqual([true])

    // a junk trade and a trade carrying a forged record: dropped, and still answered with the node's records
    const beforeTrade = drops()
    const answer = await rogue.request(node.mesh.peerId, PRESENCE.protocol, new Uint8Array([0xc1, 0xc1]))
    expect(answer.length).toBeGreaterThan(0)
    await rogue.request(node.mesh.peerId, PRESENCE.protocol, encode({ record: signPresence(record(o, now()), otherKeys) }))
    expect(drops().malformed).toBe(beforeTrade.malformed + 1)
    expect(drops().forged).toBe(beforeTrade.forged + 1)

    // a flood: far more than the per-peer bucket admits
    const h = honestKeys.primary.agentPubKey
    const relayedBeforeFlood = relayed.length
    const flooding = (async () => {
      for (let i = 0; i < 400; i++) await rogue.publish(PRESENCE.topic, signPresence(record(r, now()), rogueKeys))
    })()
    // meanwhile an honest peer's presence still gets in, and the node answers zome calls
    await waitUntil(async () => {
      if (presence.get(h) !== null) return true
      await honest.publish(PRESENCE.topic, signPresence(record(h, now()), honestKeys))
      return false
    }, { what: 'the honest peer\'s presence during the flood', intervalMs: 300 })
    await flooding
    await waitUntil(() => drops().rate_limited > 0, { what: 'the flood to hit the rate limit' })
    // only what the bucket admitted was relayed: the node does not amplify a flood
    expect(relayed.length - relayedBeforeFlood).toBeLessThan(400)
    const caps = await node.client.callZome({ role_name: 'agent_registry', zome_name: 'discovery', fn_name: 'query_peers', payload: null }) as unknown[]
    expect(caps.length).toBe(1)
    expect(presence.stats.accepted).toBeLessThan(presence.stats.received)
    // once its bucket refills, the rogue's next valid record is taken again
    const later = signPresence(record(r, now(), { availability: 'draining' }), rogueKeys)
    await waitUntil(async () => {
      if (presence.get(r)?.availability === 'draining') return true
      await rogue.publish(PRESENCE.topic, later)
      return false
    }, { what: 'the rogue\'s bucket to refill', intervalMs: 500 })
  })
})
