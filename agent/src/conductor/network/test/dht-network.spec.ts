/**
 * The DHT network layer under bad input from a connected peer: junk on the sync protocol and
 * junk gossip on the ops and warrants topics. Every bad sync request is answered with an error
 * (a `MeshProtocolError` at the caller), nothing from the junk is integrated or blocks anyone,
 * and the victim keeps serving sync, zome calls and new data afterwards.
 */
import { describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { dhtSync, integratedOps, runScenario, waitUntil, type Player } from '../../../../../tryorama/src/index.ts'
import type { NodeCapability } from '../../../../../zomes-ts/agent_registry/types.ts'
import { decode, encode } from '../../codec.ts'
import type { NetRecord } from '../../space.ts'
import { fullSectorSet, LEAVES, packSums, SECTORS, toRuns, unpackSums } from '../../sectors.ts'
import { encodeHash, hashFrom32, hashFromContent } from '../../../holo/hash.ts'
import { SYNC } from '../dht-network.ts'
import type { Libp2pMeshNode } from '../../../mesh/libp2p-node.ts'
import { MeshProtocolError } from '../../../mesh/types.ts'
import { DhtWireError } from '../../space.ts'

const registry = (p: Player): Uint8Array => p.cells.agent_registry!.cell_id[0]
const space = (p: Player, dna: Uint8Array) => p.node.conductor.space(dna)!
const names = async (p: Player): Promise<string[]> =>
  (await p.cells.agent_registry!.callZome<NodeCapability[]>('discovery', 'query_peers', null)).map(c => c.agent_name).sort()

/** Sums of nothing: every sector where the victim holds data differs from them. */
const NO_SUMS = new Uint8Array(0)
const FULL = toRuns(fullSectorSet())

async function rejection (p: Promise<unknown>): Promise<Error> {
  try {
    await p
  } catch (err) {
    return err as Error
  }
  throw new Error('expected a rejection')
}

async function sync (from: Player, to: Player, body: unknown, timeoutMs = 20_000): Promise<Record<string, unknown>> {
  const bytes = body instanceof Uint8Array ? body : encode(body)
  return decode(await from.node.mesh.request(to.peerId, 'sync', bytes, { timeoutMs, maxResponseBytes: 8 << 20 })) as Record<string, unknown>
}

/**
 * How a provider refuses a sync request: the DHT's typed refusal (its name crosses the mesh) or,
 * for bytes that are no request at all, the mesh's own; a flooding peer's excess requests are
 * reset unanswered (MeshResetError). All are MeshProtocolErrors here.
 */
const REFUSALS = ['DhtWireError', 'MeshProtocolError', 'MeshResetError']

function expectRefusal (err: Error): void {
  expect(err).toBeInstanceOf(MeshProtocolError)
  expect(REFUSALS, `${err.name}: ${err.message}`).toContain(err.name)
}

/** A sync request that must be refused, with a message that matches `why`. */
async function refused (from: Player, to: Player, body: unknown, why: RegExp): Promise<void> {
  const err = await rejection(sync(from, to, body))
  expectRefusal(err)
  expect(err.message).toMatch(why)
}

/** A full valid anti-entropy exchange against `to`: diff, then hashes, then fetch. */
async function validSyncRound (from: Player, to: Player, dna: Uint8Array): Promise<NetRecord[]> {
  const probe = await sync(from, to, { op: 'digest', dna, arc: FULL })
  expect(probe.digest).toBeInstanceOf(Uint8Array)
  const answer = await sync(from, to, { op: 'sectors', dna, arc: FULL, sums: NO_SUMS, from: 0 })
  const hashes = [...answer.hashes as Uint8Array[]]
  const split = answer.split as Array<[number, Uint8Array]>
  expect(hashes.length + split.length).toBeGreaterThan(0)
  const leaves: Array<[number, number]> = []
  for (const [sector, sums] of split) {
    for (const leaf of unpackSums(sums, LEAVES)!.keys()) leaves.push([sector, leaf])
  }
  if (leaves.length > 0) hashes.push(...(await sync(from, to, { op: 'leaves', dna, leaves: leaves.slice(0, SYNC.maxLeaves) })).hashes as Uint8Array[])
  expect(hashes.length).toBeGreaterThan(0)
  const records = (await sync(from, to, { op: 'fetch', dna, hashes: hashes.slice(0, SYNC.maxFetch) })).records as NetRecord[]
  expect(records.length).toBeGreaterThan(0)
  return records
}

/** Gossip `bytes` on `topic` until the victim's own subscriber has seen them. */
function gossipTap (victim: Player, sender: Player): { deliver: (topic: string, bytes: Uint8Array) => Promise<void>, seen: (topic: string) => number, close: () => void } {
  const seen = new Map<string, Uint8Array[]>()
  const offs: Array<() => void> = []
  const watch = (topic: string): Uint8Array[] => {
    let list = seen.get(topic)
    if (list === undefined) {
      const l: Uint8Array[] = []
      seen.set(topic, l)
      offs.push(victim.node.mesh.subscribe(topic, (data) => { l.push(data) }))
      list = l
    }
    return list
  }
  return {
    // the victim's DhtNetwork subscribed first, so by the time this tap sees a message the
    // network layer has already handled it (gossip handlers run synchronously, in order)
    deliver: async (topic, bytes) => {
      const list = watch(topic)
      await waitUntil(async () => {
        if (list.some(d => Buffer.from(d).equals(bytes))) return true
        await sender.node.mesh.publish(topic, bytes)
        return false
      }, { timeoutMs: 30_000, intervalMs: 300, what: `the victim to receive gossip on ${topic}` })
    },
    seen: (topic) => watch(topic).length,
    close: () => { for (const off of offs) off() }
  }
}

async function limboLength (p: Player, dna: Uint8Array): Promise<number> {
  const cell = Object.values(p.cells).find(c => encodeHash(c.cell_id[0]) === encodeHash(dna))!
  const dump = await p.admin.dumpFullState({ cell_id: cell.cell_id }) as unknown as { integration_dump: { validation_limbo: unknown[] } }
  return dump.integration_dump.validation_limbo.length
}

describe('DhtNetwork under bad input', () => {
  it('refuses junk sync requests and junk gossip, integrates nothing from them, and keeps working', async () => {
    await runScenario(async (scenario) => {
      // an isolated node, whose valid records serve as payload the victim has never seen
      const outsider = await scenario.addPlayer({ bootstrapFrom: [] })
      const dna = registry(outsider)
      const outsiderSpace = space(outsider, dna)
      const foreign = outsiderSpace.records(outsiderSpace.validActions(), 8 << 20)
      expect(foreign.length).toBeGreaterThanOrEqual(4)
      await scenario.kill(outsider)

      const victim = await scenario.addPlayer({ bootstrapFrom: [] })
      const attacker = await scenario.addPlayer({ bootstrapFrom: [victim] })
      expect(encodeHash(registry(victim))).toBe(encodeHash(dna))
      await waitUntil(() => victim.node.mesh.peers().includes(attacker.peerId), { what: 'the attacker to connect' })
      await dhtSync([victim, attacker], dna)
      const before = (await integratedOps([victim], dna))[0]!
      const victimSpace = space(victim, dna)
      const known = victimSpace.validActions()
      const foreignHashes = foreign.map(r => hashFromContent(r.action, 'Action'))
      expect(foreignHashes.some(h => victimSpace.knows(h))).toBe(false)

      // (a) garbage bytes
      for (const bytes of [new Uint8Array(0), randomBytes(1), randomBytes(64), randomBytes(4096), Uint8Array.of(0xc1), Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff)]) {
        expectRefusal(await rejection(sync(attacker, victim, bytes)))
      }
      // deeply nested arrays: decodes or not, it is not a sync request
      const nested = new Uint8Array(200_001).fill(0x91)
      nested[200_000] = 0xc0
      expectRefusal(await rejection(sync(attacker, victim, nested)))
      // (b) well-formed msgpack of the wrong shapes
      const validSectors = { op: 'sectors', dna, arc: FULL, sums: NO_SUMS, from: 0 }
      for (const body of [null, 42, 'sectors', [], [validSectors], {}, { op: 'sectors' }, { dna }, { op: 7, dna }, { op: 'sectors', dna: encodeHash(dna) },
        { op: 'sectors', dna: retypeAsAgent(dna) }, { op: 'sectors', dna: dna.subarray(0, 38) }, { op: 'frobnicate', dna }, { op: 'x'.repeat(100_000), dna }]) {
        await refused(attacker, victim, body, /expected \{op, dna|unknown sync op/)
      }
      const sum = (sector: number, count: number): Uint8Array => packSums([[sector, { count, xor: 1n }]])
      for (const [body, why] of [
        [{ op: 'digest', dna }, /arc/],
        [{ op: 'digest', dna, arc: 'all' }, /arc/],
        [{ op: 'digest', dna, arc: [0] }, /arc/],
        [{ op: 'digest', dna, arc: [0, 0] }, /arc/],
        [{ op: 'digest', dna, arc: [500, 13] }, /arc/],
        [{ op: 'digest', dna, arc: [-1, 2] }, /arc/],
        [{ op: 'digest', dna, arc: [0.5, 2] }, /arc/],
        [{ op: 'digest', dna, arc: Array.from({ length: SECTORS + 2 }, () => 0) }, /arc/],
        [{ ...validSectors, arc: new Uint8Array(64) }, /arc/],
        [{ ...validSectors, from: SECTORS }, /from/],
        [{ ...validSectors, from: -1 }, /from/],
        [{ ...validSectors, from: 1.5 }, /from/],
        [{ ...validSectors, from: 'x' }, /from/],
        [{ ...validSectors, sums: undefined }, /sums/],
        [{ ...validSectors, sums: 'all' }, /sums/],
        [{ ...validSectors, sums: new Uint8Array(12) }, /sums/],
        [{ ...validSectors, sums: new Uint8Array(14) }, /sums/],
        [{ ...validSectors, sums: sum(SECTORS, 1) }, /sums/],
        [{ ...validSectors, sums: Uint8Array.of(...sum(3, 1), ...sum(3, 2)) }, /sums/],
        [{ ...validSectors, sums: new Uint8Array(13 * (SECTORS + 1)) }, /sums/],
        [{ op: 'leaves', dna }, /leaves/],
        [{ op: 'leaves', dna, leaves: 'all' }, /leaves/],
        [{ op: 'leaves', dna, leaves: [[1]] }, /leaves/],
        [{ op: 'leaves', dna, leaves: [[0, LEAVES]] }, /leaves/],
        [{ op: 'leaves', dna, leaves: [[SECTORS, 0]] }, /leaves/],
        [{ op: 'leaves', dna, leaves: [[0, -1]] }, /leaves/],
        [{ op: 'leaves', dna, leaves: [{ sector: 0, leaf: 0 }] }, /leaves/],
        [{ op: 'leaves', dna, leaves: Array.from({ length: SYNC.maxLeaves + 1 }, (_, i) => [i % SECTORS, 0]) }, /leaves/],
        [{ op: 'fetch', dna }, /hashes/],
        [{ op: 'fetch', dna, hashes: 'everything' }, /hashes/],
        [{ op: 'fetch', dna, hashes: [1, 2, 3] }, /hashes/],
        [{ op: 'fetch', dna, hashes: [{}] }, /hashes/],
        [{ op: 'digests', arc: FULL }, /dnas/],
        [{ op: 'digests', dnas: [], arc: FULL }, /dnas/],
        [{ op: 'digests', dnas: dna, arc: FULL }, /dnas/],
        [{ op: 'digests', dnas: [retypeAsAgent(dna)], arc: FULL }, /dnas/],
        [{ op: 'digests', dnas: [dna, 'x'], arc: FULL }, /dnas/],
        [{ op: 'digests', dnas: Array.from({ length: SYNC.maxDigestDnas + 1 }, () => dna), arc: FULL }, /dnas/],
        [{ op: 'digests', dnas: [dna] }, /arc/],
        [{ op: 'digests', dnas: [dna], arc: [500, 13] }, /arc/]
      ] as Array<[unknown, RegExp]>) {
        await refused(attacker, victim, body, why)
      }
      // (c) a fetch of more hashes than allowed; the limit itself is served
      const many = Array.from({ length: SYNC.maxFetch + 1 }, (_, i) => known[i % known.length]!)
      await refused(attacker, victim, { op: 'fetch', dna, hashes: many }, new RegExp(`at most ${SYNC.maxFetch}`))
      await refused(attacker, victim, { op: 'fetch', dna, hashes: Array.from({ length: 100_000 }, () => new Uint8Array(0)) }, /at most/)
      const atLimit = await sync(attacker, victim, { op: 'fetch', dna, hashes: many.slice(0, SYNC.maxFetch) })
      expect((atLimit.records as unknown[]).length).toBeGreaterThan(0)
      // (d) lying sums (a huge count in every sector) are only a disagreement: answered, within the limits
      const liar = packSums(Array.from({ length: SECTORS }, (_, i) => [i, { count: 0xffffff, xor: 7n }] as [number, { count: number, xor: bigint }]))
      const lied = await sync(attacker, victim, { op: 'sectors', dna, arc: FULL, sums: liar, from: 0 })
      expect((lied.hashes as unknown[]).length).toBeLessThanOrEqual(SYNC.maxHashes)
      expect((lied.split as unknown[]).length).toBeLessThanOrEqual(SYNC.maxSectors)
      // every DNA's digest in one request: one the node does not run is null, not an error
      const both = await sync(attacker, victim, { op: 'digests', dnas: [dna, hashFrom32(randomBytes(32), 'Dna')], arc: FULL })
      expect((both.digests as unknown[]).map(d => d instanceof Uint8Array ? 'digest' : d)).toEqual(['digest', null])
      // (e) a DNA this node does not run (a random one, and a real hash of another type)
      for (const op of ['digest', 'sectors', 'leaves', 'fetch']) {
        await refused(attacker, victim, { op, dna: hashFrom32(randomBytes(32), 'Dna'), arc: FULL, sums: NO_SUMS, leaves: [], hashes: [] }, /DnaMissing/)
      }
      // a request over the protocol's size limit is cut off before it is read
      const tooBig = await rejection(sync(attacker, victim, new Uint8Array((1 << 20) + 1)))
      expect(tooBig.name, tooBig.message).toBe('MeshResetError')

      // (f) junk gossip on ops/<dna> and warrants/<dna>
      const tap = gossipTap(victim, attacker)
      try {
        const ops = `ops/${encodeHash(dna)}`
        const warrants = `warrants/${encodeHash(dna)}`
        const oversized = Array.from({ length: SYNC.maxGossipRecords + 1 }, (_, i) => foreign[i % foreign.length]!)
        const forged: NetRecord[] = [
          { ...foreign[0]!, signature: randomBytes(64) },
          { ...foreign[1]!, action: { ...foreign[1]!.action, header: { ...foreign[1]!.action.header, author: hashFrom32(randomBytes(32), 'Agent') } } }
        ]
        const junkOps: Uint8Array[] = [
          // no random single byte: it could equal one of the fixed ones (0xc0, 0x80, 0x90, 0xc1), and the tap counts distinct deliveries
          Uint8Array.of(0xd9), randomBytes(300), Uint8Array.of(0xc1),
          encode(null), encode([]), encode({}), encode({ records: 'all' }), encode({ records: [1, 'two', null] }),
          encode({ records: [{ ...foreign[0]!, signature: 'sig' }] }),
          encode({ records: [...foreign.slice(0, 3), { action: {}, signature: randomBytes(64), entry: null }] }),
          encode({ records: oversized }),
          encode({ records: forged })
        ]
        for (const bytes of junkOps) await tap.deliver(ops, bytes)
        const warrantOf = (evidence: unknown[]): unknown => ({ kind: 'ChainIntegrity', warrantee: attacker.agentPubKey, evidence, issuer: attacker.agentPubKey, timestamp: Date.now() * 1000, signature: randomBytes(64), reason: 'junk' })
        const junkWarrants: Uint8Array[] = [
          Uint8Array.of(0xd9), randomBytes(300), encode(null), encode([]), encode({ warrant: 'x' }), encode({ warrant: {} }),
          encode({ warrant: { kind: 'Mutiny' } }),
          encode({ records: oversized }),
          encode({ warrant: warrantOf(oversized) }),
          encode({ warrant: warrantOf([]) }),
          encode({ warrant: warrantOf([{ nonsense: true }]) }),
          // a well-formed warrant against the victim whose signature does not verify
          encode({ warrant: { kind: 'ChainFork', warrantee: victim.agentPubKey, evidence: foreign.slice(0, 2), issuer: attacker.agentPubKey, timestamp: Date.now() * 1000, signature: randomBytes(64), reason: 'fork' } })
        ]
        for (const bytes of junkWarrants) await tap.deliver(warrants, bytes)
        expect(tap.seen(ops)).toBeGreaterThanOrEqual(junkOps.length)
        expect(tap.seen(warrants)).toBeGreaterThanOrEqual(junkWarrants.length)

        // nothing from the junk was integrated, waits in limbo, or blocked anyone
        expect((await integratedOps([victim], dna))[0]).toEqual(before)
        expect(foreignHashes.some(h => victimSpace.knows(h))).toBe(false)
        expect(await limboLength(victim, dna)).toBe(0)
        expect(victimSpace.warrants()).toEqual([])
        expect(victimSpace.blockedAgents()).toEqual([])
        expect(space(attacker, dna).blockedAgents()).toEqual([])
        expect(victim.node.mesh.peers()).toContain(attacker.peerId)
        expect(attacker.node.mesh.peers()).toContain(victim.peerId)

        // the victim still serves a valid sync exchange, and zome calls
        const served = await validSyncRound(attacker, victim, dna)
        expect(served.every(r => victimSpace.knows(hashFromContent(r.action, 'Action')))).toBe(true)
        expect(await names(victim)).toEqual([attacker.name, victim.name].sort())

        // the same records the oversized message carried are accepted in a message of legal size
        const legal = encode({ records: foreign.slice(0, SYNC.maxGossipRecords) })
        await waitUntil(async () => {
          if (foreignHashes.every(h => victimSpace.knows(h))) return true
          await attacker.node.mesh.publish(ops, legal)
          return false
        }, { timeoutMs: 30_000, intervalMs: 300, what: 'the legal gossip to integrate' })
      } finally {
        tap.close()
      }

      // a newcomer's advertise still converges everywhere
      const third = await scenario.addPlayer()
      await dhtSync([victim, attacker, third], dna)
      await waitUntil(async () => (await names(victim)).includes(third.name), { what: 'the victim to see the newcomer' })
      expect(await names(victim)).toEqual([attacker.name, outsider.name, third.name, victim.name].sort())
    })
  }, 180_000)

  it('50 concurrent junk sync requests from one peer do not stop another peer\'s valid request', async () => {
    await runScenario(async (scenario) => {
      const [victim, attacker, bystander] = await scenario.addPlayers(3) as [Player, Player, Player]
      const dna = registry(victim)
      await dhtSync([victim, attacker, bystander], dna)
      await waitUntil(() => victim.node.mesh.peers().length === 2, { what: 'the victim to see both peers' })
      const known = space(victim, dna).validActions()
      const junkBodies: Uint8Array[] = Array.from({ length: 50 }, (_, i) => [
        randomBytes(512),
        encode({ op: 'fetch', dna, hashes: Array.from({ length: SYNC.maxFetch + 1 }, (_, j) => known[j % known.length]!) }),
        encode({ op: 'sectors', dna, arc: FULL, sums: new Uint8Array(1) }),
        encode({ op: 'sectors', dna: hashFrom32(randomBytes(32), 'Dna'), arc: FULL, sums: NO_SUMS })
      ][i % 4]!)

      // and a few slow-loris streams: a length prefix, then nothing, holding the attacker's slots
      const lp = (attacker.node.mesh as Libp2pMeshNode).libp2p
      const stalled = await Promise.all(Array.from({ length: 4 }, async () => {
        const stream = await lp.dialProtocol(peerIdFromString(victim.peerId), attacker.node.mesh.protocolId('sync'))
        stream.send(Uint8Array.of(0x80, 0x01)) // declares 128 bytes, sends none
        return stream
      }))

      const junk = junkBodies.map(async body => await rejection(attacker.node.mesh.request(victim.peerId, 'sync', body, { timeoutMs: 30_000 })))
      const answer = await sync(bystander, victim, { op: 'sectors', dna, arc: FULL, sums: NO_SUMS, from: 0 }, 10_000)
      expect((answer.hashes as unknown[]).length + (answer.split as unknown[]).length).toBeGreaterThan(0)
      const bystanderRecords = await validSyncRound(bystander, victim, dna)
      // served while the flood runs: each of those requests has its own deadline
      expect(bystanderRecords.length).toBeGreaterThan(0)

      const errors = await Promise.all(junk)
      for (const err of errors) expectRefusal(err)
      for (const s of stalled) s.abort(new Error('done'))

      // the attacker itself is served again once its junk is gone
      await waitUntil(async () => {
        try {
          return (await validSyncRound(attacker, victim, dna)).length > 0
        } catch {
          return false
        }
      }, { timeoutMs: 30_000, intervalMs: 200, what: 'the attacker to be served again' })
      expect(space(victim, dna).blockedAgents()).toEqual([])
      expect(victim.node.mesh.peers()).toEqual(expect.arrayContaining([attacker.peerId, bystander.peerId]))
    })
  }, 120_000)
})

function retypeAsAgent (hash: Uint8Array): Uint8Array {
  return hashFrom32(hash.subarray(3, 35), 'Agent')
}

describe('anti-entropy with an older node', () => {
  it('asks each DNA alone when the peer refuses the one-request digests, and still pulls everything', async () => {
    await runScenario(async (scenario) => {
      const quiet = { syncOnConnect: false, syncIntervalMs: 3_600_000, republishIntervalMs: 3_600_000 }
      const old = await scenario.addPlayer({ ...quiet, bootstrapFrom: [] })
      // the sync protocol as a node from before `digests` serves it: the op is refused, the rest served
      const dht = old.node.dht as unknown as { serveSync: (req: Uint8Array, from: string) => Promise<Uint8Array> }
      await old.node.mesh.unhandle('sync')
      await old.node.mesh.handle('sync', async (req, from) => {
        const msg = decode(req) as { op?: unknown }
        if (msg.op === 'digests') throw new DhtWireError('expected {op, dna, ...}')
        return await dht.serveSync.call(old.node.dht, req, from)
      }, { maxRequestBytes: 1024 * 1024 })
      const fresh = await scenario.addPlayer({ ...quiet, bootstrapFrom: [old] })
      await waitUntil(() => fresh.node.mesh.peers().includes(old.peerId), { what: 'the two to connect' })
      const dnas = Object.values(old.cells).map(c => c.cell_id[0])
      const stats = await fresh.node.dht.syncWithPeer(old.peerId)
      // after the refusal, a digest per DNA and what each needed
      expect(stats.requests).toBeGreaterThan(dnas.length)
      expect(stats.records).toBeGreaterThan(0)
      for (const dna of dnas) {
        const [a, b] = await integratedOps([old, fresh], dna)
        for (const op of a!) expect(b!.has(op), `op ${op}`).toBe(true)
      }
      // once in sync (the older node pulls too), a round with it is its refusal (no answer, not
      // counted) and one digest per DNA
      await old.node.dht.syncWithPeer(fresh.peerId)
      const again = await fresh.node.dht.syncWithPeer(old.peerId)
      expect(again).toMatchObject({ requests: dnas.length, records: 0 })
      // between two current nodes in sync, the round is one request for every DNA
      const peer = await scenario.addPlayer({ ...quiet, bootstrapFrom: [fresh] })
      await waitUntil(() => fresh.node.mesh.peers().includes(peer.peerId), { what: 'a current peer to connect' })
      await peer.node.dht.syncWithPeer(fresh.peerId)
      await fresh.node.dht.syncWithPeer(peer.peerId)
      expect(await fresh.node.dht.syncWithPeer(peer.peerId)).toMatchObject({ requests: 1, records: 0 })
    })
  }, 120_000)
})
