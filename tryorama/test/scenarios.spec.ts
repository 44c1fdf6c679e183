/**
 * Multi-node scenarios: several flexnode agents on 127.0.0.1 forming one DHT over libp2p.
 */
import { describe, expect, it } from 'vitest'
import { encode } from '@msgpack/msgpack'
import { dhtSync, integratedOps, runScenario, waitUntil, type Player } from '../src/index.ts'
import { encodeHash, hashFromContent } from '../../agent/src/holo/hash.ts'
import type { NodeCapability } from '../../zomes-ts/agent_registry/types.ts'
import type { NetRecord } from '../../agent/src/conductor/space.ts'
import type { Action } from '../../zomes-ts/hdk/index.ts'

const registry = (p: Player): Uint8Array => p.cells.agent_registry!.cell_id[0]
const queryPeers = async (p: Player, payload: unknown = null): Promise<NodeCapability[]> => await p.cells.agent_registry!.callZome<NodeCapability[]>('discovery', 'query_peers', payload)
const names = async (p: Player, payload?: unknown): Promise<string[]> => (await queryPeers(p, payload)).map(c => c.agent_name).sort()
const rename = async (p: Player, name: string): Promise<void> => {
  const cap = await p.cells.agent_registry!.callZome<NodeCapability>('capabilities', 'get_capability', p.agentPubKey)
  await p.cells.agent_registry!.callZome('capabilities', 'advertise', { ...cap, agent_name: name, last_heartbeat: new Date().toISOString() })
}

describe('tryorama scenarios', () => {
  it('1: bob reads alice\'s NodeCapability after dhtSync', async () => {
    await runScenario(async (scenario) => {
      const [alice, bob] = await scenario.addPlayers(2)
      await dhtSync([alice!, bob!], registry(alice!))
      const cap = await bob!.cells.agent_registry!.callZome<NodeCapability | null>('capabilities', 'get_capability', alice!.agentPubKey)
      expect(cap?.node_id).toBe(encodeHash(alice!.agentPubKey))
      expect(cap?.agent_name).toBe(alice!.name)
    })
  })

  it('2: ten players all see each other in query_peers', async () => {
    await runScenario(async (scenario) => {
      const players = await scenario.addPlayers(10)
      const all = players.map(p => p.name).sort()
      for (const p of players) await waitUntil(async () => JSON.stringify(await names(p)) === JSON.stringify(all), { what: `${p.name} to see all ten`, timeoutMs: 60_000 })
      await dhtSync(players, registry(players[0]!))
    })
  }, 180_000)

  it('3: a 5/5 partition with commits on both sides converges after heal, nothing lost', async () => {
    await runScenario(async (scenario) => {
      const players = await scenario.addPlayers(10)
      await dhtSync(players, registry(players[0]!))
      const left = players.slice(0, 5)
      const right = players.slice(5)
      await scenario.partition(left, right)
      await waitUntil(() => left.every(p => right.every(q => !p.node.mesh.peers().includes(q.peerId))), { what: 'the partition' })
      await rename(left[0]!, 'left-side')
      await rename(right[0]!, 'right-side')
      await dhtSync(left, registry(left[0]!))
      await dhtSync(right, registry(right[0]!))
      expect(await names(left[1]!)).toContain('left-side')
      expect(await names(left[1]!)).not.toContain('right-side')
      expect(await names(right[1]!)).not.toContain('left-side')
      await scenario.heal()
      await dhtSync(players, registry(players[0]!), { timeoutMs: 90_000 })
      for (const p of players) {
        const seen = await names(p)
        expect(seen).toContain('left-side')
        expect(seen).toContain('right-side')
        expect(seen.length).toBe(10)
      }
    })
  }, 240_000)

  it('4: a late joiner catches up through anti-entropy', async () => {
    await runScenario(async (scenario) => {
      const early = await scenario.addPlayers(3)
      await rename(early[0]!, 'early-bird')
      await dhtSync(early, registry(early[0]!))
      const late = await scenario.addPlayer()
      await dhtSync([...early, late], registry(late), { timeoutMs: 60_000 })
      expect(await names(late)).toEqual(['early-bird', 'player1', 'player2', 'player3'])
      const stats = late.node.dht.totals
      expect(stats.records).toBeGreaterThan(0)
    })
  }, 120_000)

  it('5: a killed player goes offline everywhere, and comes back online with the same key', async () => {
    await runScenario(async (scenario) => {
      const players = await scenario.addPlayers(3, { heartbeatIntervalSeconds: 1 })
      const [victim, ...others] = players as [Player, Player, Player]
      const statusOf = async (p: Player): Promise<string | undefined> => (await queryPeers(p, { ttl_seconds: 3 })).find(c => c.node_id === encodeHash(victim.agentPubKey))?.availability
      for (const p of others) await waitUntil(async () => (await statusOf(p)) === 'online', { what: 'victim online' })
      const key = encodeHash(victim.agentPubKey)
      await scenario.kill(victim)
      for (const p of others) await waitUntil(async () => (await statusOf(p)) === 'offline', { what: `${p.name} to see the victim offline`, timeoutMs: 30_000 })
      await scenario.restart(victim)
      expect(encodeHash(victim.node.keystore.primary.agentPubKey)).toBe(key)
      for (const p of others) await waitUntil(async () => (await statusOf(p)) === 'online', { what: `${p.name} to see the victim online again`, timeoutMs: 30_000 })
    })
  }, 120_000)

  it('6: forged ops are rejected by every honest node and a warrant spreads', async () => {
    await runScenario(async (scenario) => {
      const honest = await scenario.addPlayers(3)
      const mallory = await scenario.addPlayer()
      const everyone = [...honest, mallory]
      await dhtSync(everyone, registry(mallory))
      const dna = registry(mallory)
      const chain = mallory.node.conductor.cell(mallory.cells.agent_registry!.cell_id)!.chain()
      const head = chain[chain.length - 1]!.signed_action.hashed
      const sign = (action: Action, entry: NetRecord['entry'] = null): NetRecord => ({ action, signature: mallory.node.keystore.sign(mallory.agentPubKey, hashFromContent(action, 'Action')), entry })
      const next = (data: Action['data'], dt = 1000): Action => ({ header: { author: mallory.agentPubKey, timestamp: head.content.header.timestamp + dt, action_seq: head.content.header.action_seq + 1, prev_action: head.hash }, data })
      const publish = async (records: NetRecord[]): Promise<void> => { await mallory.node.mesh.publish(`ops/${encodeHash(dna)}`, encode({ records })) }
      const holds = async (p: Player, r: NetRecord): Promise<boolean> => p.node.conductor.space(dna)!.knows(hashFromContent(r.action, 'Action'))

      // 1. a bad signature: dropped by everyone, nobody blamed
      const badSig = { ...sign(next({ type: 'InitZomesComplete' })), signature: new Uint8Array(64).fill(1) }
      // 2. the wrong author: a NodeCapability claiming to be alice, signed by mallory
      const impostor = { ...(await honest[0]!.cells.agent_registry!.callZome<NodeCapability>('capabilities', 'get_capability', honest[0]!.agentPubKey)), last_heartbeat: new Date().toISOString() }
      const entry = { entry_type: 'App' as const, entry: encode(impostor) }
      const wrongAuthor = sign(next({ type: 'Create', entry_type: { App: { entry_index: 0, zome_index: 0, visibility: 'Public' } }, entry_hash: hashFromContent(entry, 'Entry') }), entry)
      await waitUntil(async () => { await publish([badSig, wrongAuthor]); return honest.every(p => p.node.conductor.space(dna)!.isBlocked(mallory.agentPubKey)) }, { what: 'the warrant to spread', timeoutMs: 30_000, intervalMs: 500 })
      for (const p of honest) {
        expect(await holds(p, badSig)).toBe(false)
        expect(p.node.conductor.space(dna)!.warrants().some(w => w.kind === 'ChainIntegrity' && encodeHash(w.warrantee) === encodeHash(mallory.agentPubKey))).toBe(true)
        // the rejection is counted where the node's metrics read it (flexnode_dht_ops_rejected_total); the bad signature is dropped, not rejected
        expect(p.node.dht.ops.rejected).toBeGreaterThanOrEqual(1)
        expect(await names(p)).not.toContain('impostor')
        expect(p.node.mesh.peers()).not.toContain(mallory.peerId)
      }
    })
  }, 120_000)

  it('6b: a forked chain is warranted everywhere', async () => {
    await runScenario(async (scenario) => {
      const honest = await scenario.addPlayers(3)
      const mallory = await scenario.addPlayer()
      const dna = registry(mallory)
      await dhtSync([...honest, mallory], dna)
      const chain = mallory.node.conductor.cell(mallory.cells.agent_registry!.cell_id)!.chain()
      const last = chain[chain.length - 1]!.signed_action.hashed
      // a second action at the sequence number of mallory's head: a fork
      const forked: Action = { header: { ...last.content.header, timestamp: last.content.header.timestamp + 7 }, data: { type: 'InitZomesComplete' } }
      const record: NetRecord = { action: forked, signature: mallory.node.keystore.sign(mallory.agentPubKey, hashFromContent(forked, 'Action')), entry: null }
      await waitUntil(async () => {
        await mallory.node.mesh.publish(`ops/${encodeHash(dna)}`, encode({ records: [record] }))
        return honest.every(p => p.node.conductor.space(dna)!.warrants().some(w => w.kind === 'ChainFork'))
      }, { what: 'the fork warrant', timeoutMs: 30_000, intervalMs: 500 })
      for (const p of honest) expect(p.node.conductor.space(dna)!.isBlocked(mallory.agentPubKey)).toBe(true)
    })
  }, 120_000)

  it('get and get_links go to the authorities on a local miss (the cascade)', async () => {
    await runScenario(async (scenario) => {
      // no anti-entropy and no republish: only the cascade can bring alice's data to bob
      const quiet = { syncIntervalMs: 3_600_000, republishIntervalMs: 3_600_000, syncOnConnect: false }
      const alice = await scenario.addPlayer(quiet)
      const bob = await scenario.addPlayer(quiet)
      await waitUntil(() => bob.node.mesh.peers().includes(alice.peerId), { what: 'bob connected to alice' })
      const dna = registry(alice)
      const original = await alice.cells.agent_registry!.callZome<Uint8Array>('capabilities', 'my_capability_hash')
      expect(bob.node.conductor.space(dna)!.knows(original)).toBe(false)
      const cap = await bob.cells.agent_registry!.callZome<NodeCapability | null>('capabilities', 'get_capability', alice.agentPubKey)
      expect(cap?.node_id).toBe(encodeHash(alice.agentPubKey))
      expect(bob.node.conductor.space(dna)!.knows(original)).toBe(true)
    })
  }, 60_000)

  it('7: a testnet player and a local player never see each other\'s data', async () => {
    await runScenario(async (scenario) => {
      const local = await scenario.addPlayer({ network: 'local' })
      const testnet = await scenario.addPlayer({ network: 'testnet', bootstrapFrom: [local] })
      const local2 = await scenario.addPlayer({ network: 'local' })
      await dhtSync([local, local2], registry(local))
      // the testnet node dialled the local one, but they never became peers
      await testnet.node.mesh.dial(local.node.info.multiaddrs[0]!).catch(() => {})
      expect(local.node.mesh.peers()).not.toContain(testnet.peerId)
      expect(testnet.node.mesh.peers()).not.toContain(local.peerId)
      expect(encodeHash(registry(testnet))).not.toBe(encodeHash(registry(local)))
      expect(await names(testnet)).toEqual([testnet.name])
      expect(await names(local)).toEqual([local.name, local2.name].sort())
      const [ops] = await integratedOps([local], registry(local))
      expect([...ops!].length).toBeGreaterThan(0)
    })
  }, 60_000)
})
