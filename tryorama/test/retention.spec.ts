/**
 * Retention of the `local` network as users run it (whole flexnode players): a restarted player
 * has forgotten what it held for other agents, re-syncs it from its peers, and continues its own
 * chain, which nobody takes for a fork.
 */
import { describe, expect, it } from 'vitest'
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { dhtSync, runScenario, waitUntil, type Player } from '../src/index.ts'
import type { NodeCapability } from '../../zomes-ts/agent_registry/types.ts'
import { encodeHash } from '../../agent/src/holo/hash.ts'
import { DB_FILE } from '../../agent/src/conductor/constants.ts'

const registry = (p: Player): Uint8Array => p.cells.agent_registry!.cell_id[0]
const names = async (p: Player): Promise<string[]> =>
  (await p.cells.agent_registry!.callZome<NodeCapability[]>('discovery', 'query_peers', null)).map(c => c.agent_name).sort()

/** Authors of the records a stopped player's database holds, and the length of its own chain of `dna`. */
function onDisk (p: Player, dna: Uint8Array): { authors: string[], ownChain: number } {
  const db = new Database(join(p.dataDir, DB_FILE), { readonly: true })
  try {
    const authors = (db.prepare('SELECT DISTINCT author FROM dht_action').all() as Array<{ author: Buffer }>).map(r => encodeHash(new Uint8Array(r.author)))
    const ownChain = (db.prepare('SELECT COUNT(*) AS n FROM chain_action WHERE author = ? AND dna = ?').get(Buffer.from(p.agentPubKey), Buffer.from(dna)) as { n: number }).n
    return { authors, ownChain }
  } finally {
    db.close()
  }
}

describe('local retention', () => {
  it('a restarted player has forgotten other agents\' data, re-syncs it, and its chain continues without a fork', async () => {
    await runScenario(async (scenario) => {
      const [a, b] = await scenario.addPlayers(2) as [Player, Player]
      const dna = registry(a)
      await dhtSync([a, b], dna)
      expect(await names(b)).toEqual(['player0', 'player1'])
      const chainOf = (): string[] => b.node.conductor.cell(b.cells.agent_registry!.cell_id)!.chain().map(r => encodeHash(r.signed_action.hashed.hash))
      const chainBefore = chainOf()

      await scenario.kill(b)
      const disk = onDisk(b, dna)
      expect(disk.authors).toEqual([encodeHash(b.agentPubKey)])
      expect(disk.ownChain).toBe(chainBefore.length)

      await scenario.restart(b)
      expect(b.node.conductor.retention.policy.mode).toBe('session')
      await dhtSync([a, b], dna)
      expect(await names(b)).toEqual(['player0', 'player1'])
      // b's next action follows its kept chain: nobody sees a fork
      await b.cells.agent_registry!.callZome('heartbeat', 'beat', { cpu_percent: 3, gpu_percent: 0, memory_percent: 4 })
      await dhtSync([a, b], dna)
      await waitUntil(() => a.node.conductor.space(dna)!.knows(b.node.conductor.cell(b.cells.agent_registry!.cell_id)!.chain().at(-1)!.signed_action.hashed.hash), { what: 'a to hold b\'s new action' })
      for (const p of [a, b]) {
        expect(p.node.conductor.space(dna)!.warrants()).toEqual([])
        expect(p.node.conductor.space(dna)!.blockedAgents()).toEqual([])
      }
      // the chain after the restart (re-advertised at start, then the beat) extends the one before
      const chainAfter = chainOf()
      expect(chainAfter.slice(0, chainBefore.length)).toEqual(chainBefore)
      expect(chainAfter.length).toBeGreaterThan(chainBefore.length)
    })
  }, 120_000)
})
