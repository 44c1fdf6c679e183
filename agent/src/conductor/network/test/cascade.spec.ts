/**
 * A local miss with a frozen authority: the lookup hedges to another authority and returns on
 * its answer, abandoning the frozen request instead of waiting it out; a record two live
 * authorities do not hold is taken as absent without waiting out the frozen one; and a write of
 * the same cell issued while a lookup waits on the network is not queued behind it.
 *
 * "Frozen" here is a real node whose sync protocol stops answering (its handler never returns):
 * connections stay up and requests are accepted, as with a process stopped mid-flight.
 */
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { dhtSync, runScenario, waitUntil, type Player } from '../../../../../tryorama/src/index.ts'
import type { NodeCapability } from '../../../../../zomes-ts/agent_registry/types.ts'
import { encodeHash, hashFrom32, type HoloHash } from '../../../holo/hash.ts'
import type { CascadeEvent } from '../types.ts'

const registry = (p: Player): Uint8Array => p.cells.agent_registry!.cell_id[0]

/** The player keeps its connections but its sync protocol never answers again; counts what it is asked. */
async function freeze (p: Player): Promise<{ asked: number }> {
  const seen = { asked: 0 }
  await p.node.mesh.unhandle('sync')
  await p.node.mesh.handle('sync', async () => {
    seen.asked++
    return await new Promise<Uint8Array>(() => {})
  }, { maxRequestBytes: 1024 * 1024, timeoutMs: 60_000 })
  return seen
}

describe('the cascade with a frozen authority', () => {
  it('is answered by another authority, abandons the frozen request, and holds no write of the cell', async () => {
    await runScenario(async (scenario) => {
      const [alice, carol, dave] = await scenario.addPlayers(3)
      const dna = registry(alice!)
      // more authors, whose records only the three authorities keep once they are gone
      const authors = await scenario.addPlayers(2)
      await dhtSync([alice!, carol!, dave!, ...authors], dna)
      for (const a of authors) await scenario.kill(a)
      await freeze(dave!)

      // bob pulls nothing by himself: only the cascade can bring him the others' records
      const bob = await scenario.addPlayer({ syncIntervalMs: 3_600_000, republishIntervalMs: 3_600_000, syncOnConnect: false, bootstrapFrom: [alice!, carol!, dave!] })
      await waitUntil(() => [alice!, carol!, dave!].every(p => bob.node.mesh.peers().includes(p.peerId)), { what: 'bob connected to the three authorities' })
      const events: CascadeEvent[] = []
      bob.node.conductor.network!.onCascade((e) => { events.push(e) })

      // a record nobody holds: alice and carol say so, and dave's request is abandoned, not waited out
      expect(await bob.cells.agent_registry!.callZome('capabilities', 'get_capability', hashFrom32(randomBytes(32), 'Agent'))).toBeNull()
      const absent = events.at(-1)!
      expect(absent.answeredBy).toBeNull()
      expect(new Set(absent.asked)).toEqual(new Set([alice!.peerId, carol!.peerId, dave!.peerId]))
      expect(absent.abandoned).toEqual([dave!.peerId])

      await freeze(carol!)
      const frozen = new Set([carol!.peerId, dave!.peerId])

      for (const author of [alice!, carol!, dave!, ...authors]) {
        const cap = await bob.cells.agent_registry!.callZome<NodeCapability | null>('capabilities', 'get_capability', author.agentPubKey)
        expect(cap?.node_id).toBe(encodeHash(author.agentPubKey))
      }
      const answered = events.filter(e => e.answeredBy !== null)
      expect(answered.length).toBeGreaterThanOrEqual(5)
      // only alice answers; a frozen authority asked before her was abandoned, not waited out
      for (const e of answered) expect(e.answeredBy).toBe(alice!.peerId)
      const hedged = answered.filter(e => frozen.has(e.asked[0]!))
      expect(hedged.length).toBeGreaterThan(0)
      for (const e of hedged) {
        expect(e.asked).toContain(alice!.peerId)
        expect(e.abandoned.filter(p => frozen.has(p))).toEqual(e.asked.filter(p => frozen.has(p)))
      }

      // every authority frozen: a lookup waits on the network, and a write issued meanwhile lands first
      const aliceFrozen = await freeze(alice!)
      const order: string[] = []
      const missing = hashFrom32(randomBytes(32), 'Agent')
      const lookup = bob.cells.agent_registry!.callZome<NodeCapability | null>('capabilities', 'get_capability', missing).then((v) => { order.push('lookup'); return v })
      await waitUntil(() => aliceFrozen.asked > 0, { what: 'the lookup to wait on the network' })
      await bob.cells.agent_registry!.callZome('heartbeat', 'beat', { cpu_percent: 1, gpu_percent: 0, memory_percent: 1 })
      order.push('write')
      expect(await lookup).toBeNull()
      expect(order).toEqual(['write', 'lookup'])
      const unanswered = events.filter(e => e.answeredBy === null)
      expect(unanswered.length).toBeGreaterThan(0)
      expect(new Set(unanswered.at(-1)!.asked)).toEqual(new Set([alice!.peerId, carol!.peerId, dave!.peerId]))
    })
  }, 180_000)

  it('a record waiting in limbo gets what it waits for from the authorities, with no sync to bring it', async () => {
    await runScenario(async (scenario) => {
      // no republishing: nothing reaches bob unasked
      const [alice, carol] = await scenario.addPlayers(2, { republishIntervalMs: 3_600_000 })
      const dna = registry(alice!)
      // alice's newest record: an Update of her NodeCapability, built on her earlier actions
      const beat = await alice!.cells.agent_registry!.callZome<HoloHash>('heartbeat', 'beat', { cpu_percent: 3, gpu_percent: 0, memory_percent: 3 })
      await dhtSync([alice!, carol!], dna)
      // bob never syncs (as a node whose arc does not hold those earlier actions is never offered them by sync)
      const bob = await scenario.addPlayer({ syncIntervalMs: 3_600_000, republishIntervalMs: 3_600_000, syncOnConnect: false, limboLookupIntervalMs: 200, bootstrapFrom: [alice!, carol!] })
      await waitUntil(() => [alice!, carol!].every(p => bob.node.mesh.peers().includes(p.peerId)), { what: 'bob connected to alice and carol' })
      const space = bob.node.conductor.space(dna)!
      expect(space.knows(beat)).toBe(false)
      // the record reaches bob alone (as a publish does): it waits for alice's earlier actions
      const record = alice!.node.conductor.space(dna)!.records([beat], 1 << 20)
      expect(record).toHaveLength(1)
      expect(space.receive(record).pending).toBeGreaterThan(0)
      expect(space.missingPrevs(10).length).toBeGreaterThan(0)
      // bob looks them up, and the record is integrated, valid
      await waitUntil(() => space.pendingCount() === 0 && space.records([beat], 1 << 20).length === 1, { what: 'the record out of limbo, valid', timeoutMs: 30_000 })
    })
  }, 120_000)
})
