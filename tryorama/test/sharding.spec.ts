/**
 * Sharded storage arcs in a real 12-node mesh with `target_redundancy` 3: arcs shrink from full
 * to a share of the ring, together they cover every location at least 3 times, every op written
 * after sharding is held by at least 3 authorities, and every record is still retrievable after
 * 4 of the 12 nodes are killed at once.
 */
import { describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { arcContains, arcSectors, sectorHolders, SECTOR_COUNT } from '../../agent/src/conductor/network/arc.ts'
import { decode, encode } from '../../agent/src/conductor/codec.ts'
import { dhtLocation, encodeHash, hashFrom32, type HoloHash } from '../../agent/src/holo/hash.ts'
import { integratedOps, runScenario, waitUntil, type Player } from '../src/index.ts'
import { errorMessage } from '../../agent/src/errors.ts'

const registry = (p: Player): Uint8Array => p.cells.agent_registry!.cell_id[0]
const arcOf = (p: Player) => p.node.dht.arcStatus()

describe('sharded storage arcs', () => {
  it('12 nodes, target 3: arcs cover the ring 3 times, ops have 3 authorities, and records survive 4 nodes killed', async () => {
    await runScenario(async (scenario) => {
      const sharded = { targetRedundancy: 3, arcResizeIntervalMs: 1000, syncIntervalMs: 300 }
      const players = await scenario.addPlayers(12, sharded)
      const dna = registry(players[0]!)

      // arcs shrink from full, and settle covering every sector at least 3 times; each node sees
      // that for its own arc once its syncs have confirmed enough of the others' claims
      await waitUntil(() => {
        const arcs = players.map(p => arcOf(p).arc)
        const holders = sectorHolders(arcs)
        return arcs.every(a => arcSectors(a) < SECTOR_COUNT) && Math.min(...holders) >= 3 && players.every(p => arcOf(p).authoritiesSeen >= 3)
      }, { timeoutMs: 120_000, intervalMs: 250, what: 'arcs to shard and cover the ring 3 times, as every node sees it' })
      const sizes = players.map(p => arcSectors(arcOf(p).arc))
      expect(Math.max(...sizes)).toBeLessThan(SECTOR_COUNT)
      for (const p of players) expect(arcOf(p).authoritiesSeen).toBeGreaterThanOrEqual(3)

      // bad input: a request for a location outside a node's arc is answered "not an authority",
      // with the authorities it knows, not an error
      const [x, y] = [players[5]!, players[6]!]
      const yArc = arcOf(y).arc
      let outside = hashFrom32(randomBytes(32), 'Agent')
      while (arcContains(yArc, dhtLocation(outside))) outside = hashFrom32(randomBytes(32), 'Agent')
      const answer = decode(await x.node.mesh.request(y.peerId, 'sync', encode({ op: 'basis', dna, hashes: [outside] }), { timeoutMs: 10_000 })) as { records: unknown[], not_authority?: boolean, authorities?: string[] }
      expect(answer.records).toEqual([])
      expect(answer.not_authority).toBe(true)
      expect(answer.authorities!.length).toBeGreaterThan(0)
      // named from y's view of the others' arcs (as of its last sync with each): players, and among them real holders
      const holders = new Set(players.filter(p => arcContains(arcOf(p).arc, dhtLocation(outside))).map(p => p.peerId))
      for (const a of answer.authorities!) expect(players.map(p => p.peerId)).toContain(a)
      expect(answer.authorities!.some(a => holders.has(a))).toBe(true)
      // bad input: a peer claiming an arc it does not hold (the full ring) is heard but not trusted
      await waitUntil(() => arcOf(y).peers.find(p => p.peer === x.peerId)?.confirmed === true, { timeoutMs: 120_000, what: 'y to have confirmed x\'s arc in a sync' })
      // (x's own sync rounds may replace the claim with its real arc before it is read: claim again)
      const claimed = await waitUntil(async () => {
        await x.node.mesh.request(y.peerId, 'sync', encode({ op: 'digest', dna, arc: [0, SECTOR_COUNT] }), { timeoutMs: 10_000 })
        const c = arcOf(y).peers.find(p => p.peer === x.peerId)!
        return arcSectors(c.arc) === SECTOR_COUNT ? c : undefined
      }, { timeoutMs: 60_000, what: 'y to hold x\'s false claim' })
      expect(claimed.confirmed).toBe(false)

      // records written now go to the authorities of their ops' bases only
      const written: HoloHash[] = []
      for (const p of players) {
        written.push(await p.cells.agent_registry!.callZome<HoloHash>('heartbeat', 'beat', { cpu_percent: 5, gpu_percent: 0, memory_percent: 5 }))
      }
      const holdersOf = async (): Promise<Map<string, number>> => {
        const counts = new Map<string, number>()
        for (const ops of await integratedOps(players.filter(p => p.alive), dna)) for (const k of ops) counts.set(k, (counts.get(k) ?? 0) + 1)
        return counts
      }
      /** the new records' ops held by fewer than 3 nodes, as `record op=holders` (a record no node knows yet: `record unknown`) */
      const shortOps = async (): Promise<string[]> => {
        const counts = await holdersOf()
        // the ops of each new record, keyed by op type and signature (the signature is the record's)
        const spaces = players.map(p => p.node.conductor.space(dna)!)
        const short: string[] = []
        for (const h of written) {
          // a node that knows it may still hold it in limbo, waiting for its predecessor: ask for it valid
          const record = spaces.map(s => s.records([h], 1 << 20)[0]).find(r => r !== undefined)
          if (record === undefined) { short.push(`${encodeHash(h)} unknown`); continue }
          const sig = Buffer.from(record.signature).toString('base64')
          const keys = [...counts.keys()].filter(k => k.endsWith(`:${sig}`))
          if (keys.length === 0) short.push(`${encodeHash(h)} integrated nowhere`)
          for (const k of keys.filter(k => counts.get(k)! < 3)) short.push(`${encodeHash(h)} ${k.split(':')[0]!}=${counts.get(k)!}`)
        }
        return short
      }
      // every op of the new records held by ≥ 3 nodes (sync fills in what a publish missed); a
      // timeout says which are short, and what each node still waits for
      await waitUntil(async () => (await shortOps()).length === 0, { timeoutMs: 120_000, intervalMs: 500, what: 'every op of the new records to be held by 3 authorities' }).catch(async (err: unknown) => {
        const waiting = players.map(p => `${p.node.conductor.space(dna)!.pendingCount()}/${p.node.conductor.space(dna)!.missingPrevs(100).length}`)
        throw new Error(`${errorMessage(err)}: ${(await shortOps()).join(', ')}; per node records pending/predecessors missing: ${waiting.join(' ')}; arcs: ${players.map(p => arcSectors(arcOf(p).arc)).join(' ')}`)
      })
      // and not by everyone: storage is sharded
      const counts = await holdersOf()
      expect(Math.min(...counts.values())).toBeGreaterThanOrEqual(1)
      expect([...counts.values()].some(n => n < players.length)).toBe(true)

      // every record any node authored, before the kill
      const records = new Set<string>()
      for (const p of players) for (const r of p.node.conductor.cell(p.cells.agent_registry!.cell_id)!.chain()) records.add(encodeHash(r.signed_action.hashed.hash))
      const victims = players.slice(0, 4)
      for (const v of victims) await scenario.kill(v)
      const survivors = players.filter(p => p.alive)
      expect(survivors).toHaveLength(8)

      // a node that does not hold a record gets it from the network
      for (const key of records) {
        const hash = Uint8Array.from(Buffer.from(key.slice(1), 'base64url')) as HoloHash
        const asker = survivors.find(p => !p.node.conductor.space(dna)!.knows(hash)) ?? survivors[0]!
        if (!asker.node.conductor.space(dna)!.knows(hash)) await asker.node.dht.cascade(dna, { hashes: [hash] })
        expect(asker.node.conductor.space(dna)!.knows(hash), `record ${key}`).toBe(true)
      }
    })
  }, 400_000)
})
