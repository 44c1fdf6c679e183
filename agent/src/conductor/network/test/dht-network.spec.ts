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
import { checkSummary, type NetRecord, type Summary } from '../../space.ts'
import { encodeHash, hashFrom32, hashFromContent } from '../../../holo/hash.ts'
import { SYNC } from '../dht-network.ts'
import type { Libp2pMeshNode } from '../../../mesh/libp2p-node.ts'
import { MeshProtocolError } from '../../../mesh/types.ts'

const registry = (p: Player): Uint8Array => p.cells.agent_registry!.cell_id[0]
const space = (p: Player, dna: Uint8Array) => p.node.conductor.space(dna)!
const names = async (p: Player): Promise<string[]> =>
  (await p.cells.agent_registry!.callZome<NodeCapability[]>('discovery', 'query_peers', null)).map(c => c.agent_name).sort()

/** A summary of nothing: every bucket where the victim holds data differs from it. */
const EMPTY_SUMMARY: Summary = { counts: new Array<number>(256).fill(0), xors: new Uint8Array(2048) }

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
 * for bytes that are no request at all, the mesh's own; both are MeshProtocolErrors here.
 */
const REFUSALS = ['DhtWireError', 'MeshProtocolError']

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
  const diff = await sync(from, to, { op: 'diff', dna, summary: EMPTY_SUMMARY, from_top: 0 })
  const tops = diff.tops as number[]
  const leaves = diff.leaves as unknown[]
  expect(tops.length).toBeGreaterThan(0)
  expect(tops.length).toBeLessThanOrEqual(SYNC.maxTops)
  expect(leaves).toHaveLength(tops.length)
  const pairs: Array<[number, number]> = []
  tops.forEach((top, i) => {
    const s = checkSummary(leaves[i])
    s.counts.forEach((c, leaf) => { if (c > 0) pairs.push([top, leaf]) })
  })
  const hashes = (await sync(from, to, { op: 'hashes', dna, leaves: pairs })).hashes as Uint8Array[]
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
      const foreign = outsiderSpace.records(outsiderSpace.hashesInTops(), 8 << 20)
      expect(foreign.length).toBeGreaterThanOrEqual(4)
      await scenario.kill(outsider)

      const victim = await scenario.addPlayer({ bootstrapFrom: [] })
      const attacker = await scenario.addPlayer({ bootstrapFrom: [victim] })
      expect(encodeHash(registry(victim))).toBe(encodeHash(dna))
      await waitUntil(() => victim.node.mesh.peers().includes(attacker.peerId), { what: 'the attacker to connect' })
      await dhtSync([victim, attacker], dna)
      const before = (await integratedOps([victim], dna))[0]!
      const victimSpace = space(victim, dna)
      const known = victimSpace.hashesInTops()
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
      const validDiff = { op: 'diff', dna, summary: EMPTY_SUMMARY, from_top: 0 }
      for (const body of [null, 42, 'diff', [], [validDiff], {}, { op: 'diff' }, { dna }, { op: 7, dna }, { op: 'diff', dna: encodeHash(dna) },
        { op: 'diff', dna: retypeAsAgent(dna) }, { op: 'diff', dna: dna.subarray(0, 38) }, { op: 'frobnicate', dna }, { op: 'x'.repeat(100_000), dna }]) {
        await refused(attacker, victim, body, /expected \{op, dna|unknown sync op/)
      }
      for (const [body, why] of [
        [{ ...validDiff, from_top: 256 }, /from_top/],
        [{ ...validDiff, from_top: -1 }, /from_top/],
        [{ ...validDiff, from_top: 1.5 }, /from_top/],
        [{ ...validDiff, from_top: 'x' }, /from_top/],
        [{ op: 'hashes', dna }, /leaves/],
        [{ op: 'hashes', dna, leaves: 'all' }, /leaves/],
        [{ op: 'hashes', dna, leaves: [[1]] }, /leaves/],
        [{ op: 'hashes', dna, leaves: [[0, 256]] }, /leaves/],
        [{ op: 'hashes', dna, leaves: [[0, -1]] }, /leaves/],
        [{ op: 'hashes', dna, leaves: [{ top: 0, leaf: 0 }] }, /leaves/],
        [{ op: 'hashes', dna, leaves: Array.from({ length: SYNC.maxLeaves + 1 }, (_, i) => [i % 256, 0]) }, /leaves/],
        [{ op: 'fetch', dna }, /hashes/],
        [{ op: 'fetch', dna, hashes: 'everything' }, /hashes/],
        [{ op: 'fetch', dna, hashes: [1, 2, 3] }, /hashes/],
        [{ op: 'fetch', dna, hashes: [{}] }, /hashes/]
      ] as Array<[unknown, RegExp]>) {
        await refused(attacker, victim, body, why)
      }
      // (c) a fetch of more hashes than allowed; the limit itself is served
      const many = Array.from({ length: SYNC.maxFetch + 1 }, (_, i) => known[i % known.length]!)
      await refused(attacker, victim, { op: 'fetch', dna, hashes: many }, new RegExp(`at most ${SYNC.maxFetch}`))
      await refused(attacker, victim, { op: 'fetch', dna, hashes: Array.from({ length: 100_000 }, () => new Uint8Array(0)) }, /at most/)
      const atLimit = await sync(attacker, victim, { op: 'fetch', dna, hashes: many.slice(0, SYNC.maxFetch) })
      expect((atLimit.records as unknown[]).length).toBeGreaterThan(0)
      // (d) a diff with a malformed summary
      const counts = new Array<number>(256).fill(0)
      for (const summary of [undefined, null, 'summary', [], {}, { counts }, { xors: new Uint8Array(2048) },
        { counts: counts.slice(1), xors: new Uint8Array(2048) },
        { counts: [...counts, 0], xors: new Uint8Array(2048) },
        { counts: counts.map((c, i) => i === 7 ? -1 : c), xors: new Uint8Array(2048) },
        { counts: counts.map((c, i) => i === 7 ? 0.5 : c), xors: new Uint8Array(2048) },
        { counts: counts.map((c, i) => i === 7 ? '1' : c), xors: new Uint8Array(2048) },
        { counts, xors: new Uint8Array(2047) },
        { counts, xors: new Uint8Array(4096) },
        { counts, xors: Array.from({ length: 2048 }, () => 0) }]) {
        await refused(attacker, victim, { op: 'diff', dna, summary, from_top: 0 }, /summary/)
      }
      // (e) a DNA this node does not run (a random one, and a real hash of another type)
      for (const op of ['diff', 'hashes', 'fetch']) {
        await refused(attacker, victim, { op, dna: hashFrom32(randomBytes(32), 'Dna'), summary: EMPTY_SUMMARY, leaves: [], hashes: [] }, /DnaMissing/)
      }
      // a request over the protocol's size limit is cut off before it is read
      const tooBig = await rejection(sync(attacker, victim, new Uint8Array((1 << 20) + 1)))
      expect(tooBig.name, tooBig.message).toBe('MeshProtocolError')

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
      const known = space(victim, dna).hashesInTops()
      const junkBodies: Uint8Array[] = Array.from({ length: 50 }, (_, i) => [
        randomBytes(512),
        encode({ op: 'fetch', dna, hashes: Array.from({ length: SYNC.maxFetch + 1 }, (_, j) => known[j % known.length]!) }),
        encode({ op: 'diff', dna, summary: { counts: [1], xors: new Uint8Array(1) } }),
        encode({ op: 'diff', dna: hashFrom32(randomBytes(32), 'Dna'), summary: EMPTY_SUMMARY })
      ][i % 4]!)

      // and a few slow-loris streams: a length prefix, then nothing, holding the attacker's slots
      const lp = (attacker.node.mesh as Libp2pMeshNode).libp2p
      const stalled = await Promise.all(Array.from({ length: 4 }, async () => {
        const stream = await lp.dialProtocol(peerIdFromString(victim.peerId), attacker.node.mesh.protocolId('sync'))
        stream.send(Uint8Array.of(0x80, 0x01)) // declares 128 bytes, sends none
        return stream
      }))

      const junk = junkBodies.map(async body => await rejection(attacker.node.mesh.request(victim.peerId, 'sync', body, { timeoutMs: 30_000 })))
      const answer = await sync(bystander, victim, { op: 'diff', dna, summary: EMPTY_SUMMARY, from_top: 0 }, 10_000)
      expect((answer.tops as number[]).length).toBeGreaterThan(0)
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
