/**
 * The mesh as one vector memory (issue 11): real nodes on 127.0.0.1, shards on a consistent-hash
 * ring with two copies each, replica sync, rebalancing when nodes leave and join.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { runScenario, waitUntil, type Player, type Scenario } from '../src/index.ts'
import { encodeHash } from '../../agent/src/holo/hash.ts'
import type { FlexNodeInit } from '../../agent/src/node.ts'
import { bruteForceTopK, clusteredVectors, recallAtK } from '../../fixtures/vectors.ts'
import { vectorMemoryCompliance } from '../../agent/src/memory/test/compliance.ts'
import type { PointInput } from '../../agent/src/memory/types.ts'

/** Fast rings for tests: a node joins after 1 s of liveness, epochs at most once a second. */
const MEMORY: NonNullable<FlexNodeInit['memory']> = { shardCapacity: 8, ringCheckIntervalMs: 300, gossipIntervalMs: 300, joinStableMs: 1000, epochIntervalMs: 1000, retireGraceMs: 1000 }
const nodeId = (p: Player): string => encodeHash(p.agentPubKey)

/** Every player sees `n` live nodes offering shard capacity. */
async function meshOf (players: Player[], n = players.length): Promise<void> {
  for (const p of players) {
    await waitUntil(async () => (await p.cells.agent_registry!.callZome<Array<{ availability: string, capabilities: { memory: { vector_shards: number } } }>>('discovery', 'query_peers', null))
      .filter(c => c.availability !== 'offline' && c.capabilities.memory.vector_shards > 0).length === n, { what: `${n} shard hosts seen`, timeoutMs: 30_000 })
  }
}

/** Every player's ring holds exactly these nodes, and no shard of `collection` is still copying. */
async function settled (players: Player[], collection: string, members: Player[] = players): Promise<void> {
  const want = members.map(nodeId).sort()
  for (const p of players) {
    await waitUntil(async () => {
      const ring = await p.node.memory.ring()
      if (JSON.stringify(ring.members.map(m => m.node).sort()) !== JSON.stringify(want)) return false
      const routes = await p.node.memory.routes(collection)
      return routes.every(r => r.copying.length === 0 && r.retiring.length === 0 && r.hosts.length === Math.min(2, want.length))
    }, { what: `the ring settled on ${want.length} nodes`, timeoutMs: 60_000, intervalMs: 200 })
  }
}

/** Every player's DHT view holds the collection: its creation reached them (publish is eventual). */
async function seen (players: Player[], name: string): Promise<void> {
  for (const p of players) await waitUntil(async () => (await p.node.memory.listCollections()).some(c => c.name === name), { what: `${name} seen` })
}

const points = (set: ReturnType<typeof clusteredVectors>, from: number, to: number): PointInput[] =>
  Array.from({ length: to - from }, (_, j) => ({ id: `p${from + j}`, vector: set.vector(from + j), metadata: { group: (from + j) % 5 } }))

/** Reads ids in batches of the API's limit (1,000). */
async function getAll (p: Player, name: string, ids: string[]): Promise<unknown[]> {
  const out: unknown[] = []
  for (let i = 0; i < ids.length; i += 1000) out.push(...await p.node.memory.get(name, ids.slice(i, i + 1000)))
  return out
}

async function insertAll (p: Player, name: string, set: ReturnType<typeof clusteredVectors>, batch = 500): Promise<void> {
  for (let i = 0; i < set.count; i += batch) await p.node.memory.upsert(name, points(set, i, Math.min(set.count, i + batch)))
}

describe('the VectorMemory compliance suite on a 3-node mesh', () => {
  let scenario: Scenario | undefined
  let players: Player[] = []
  let turn = 0
  vectorMemoryCompliance('mesh (3 nodes)', async () => {
    if (scenario === undefined) {
      const { Scenario: S } = await import('../src/index.ts')
      scenario = new S()
      players = await scenario.addPlayers(3, { memory: MEMORY, heartbeatIntervalSeconds: 1 })
      await meshOf(players)
    }
    // each test is a client of another node: every node is a full client of the mesh's memory
    const node = players[turn++ % players.length]!.node
    return {
      memory: node.memory,
      // the next test starts on an empty memory
      cleanup: async () => {
        for (const coll of await node.memory.listCollections()) await node.memory.deleteCollection(coll.name)
        for (const p of players) await waitUntil(async () => (await p.node.memory.listCollections()).length === 0, { what: 'every node saw the collections deleted' })
      }
    }
  })
  afterAll(async () => { await scenario?.cleanUp() })
})

describe('memory_shards on a mesh', () => {
  it('search recall@10 against brute force is at least 0.95 on clustered vectors (16 shards, RF 2, 3 nodes)', async () => {
    await runScenario(async (scenario) => {
      const players = await scenario.addPlayers(3, { memory: MEMORY, heartbeatIntervalSeconds: 1 })
      await meshOf(players)
      const [a, b, c] = players as [Player, Player, Player]
      await a.node.memory.createCollection({ name: 'recall', dimensions: 32, distance: 'cosine' })
      await seen([b, c], 'recall')
      const set = clusteredVectors({ seed: 11, count: 4000, dims: 32, normalize: true })
      await insertAll(b, 'recall', set)
      const queries = clusteredVectors({ seed: 12, count: 100, dims: 32, normalize: true })
      const exact: number[][] = []
      const found: number[][] = []
      for (let q = 0; q < queries.count; q++) {
        exact.push(bruteForceTopK(set, queries.vector(q), 10))
        const r = await c.node.memory.search('recall', { vector: queries.vector(q), k: 10 })
        expect(r.partial).toBe(false)
        expect(r.shards_answered).toBe(16)
        found.push(r.results.map(h => Number(h.id.slice(1))))
      }
      const recall = recallAtK(exact, found)
      expect(recall).toBeGreaterThanOrEqual(0.95)
      // every shard has its two copies, on two different nodes
      const info = await a.node.memory.describeCollection('recall')
      expect(info.shards).toHaveLength(16)
      for (const s of info.shards) {
        expect(new Set(s.replicas.map(r => r.node_id)).size).toBe(2)
        expect(s.under_replicated).toBe(false)
      }
      expect(info.count).toBe(4000)
    })
  })

  it('a node is killed and every vector is still found; the ring then re-replicates on the two left', async () => {
    await runScenario(async (scenario) => {
      const players = await scenario.addPlayers(3, { memory: MEMORY, heartbeatIntervalSeconds: 1 })
      await meshOf(players)
      const [a, b, c] = players as [Player, Player, Player]
      await a.node.memory.createCollection({ name: 'kill', dimensions: 16, distance: 'l2' })
      const set = clusteredVectors({ seed: 21, count: 1500, dims: 16 })
      await insertAll(a, 'kill', set)
      // the ring holds all three (else the killed node may hold none of what follows)
      await settled(players, 'kill')
      // one copy of each shard: the killed node's shards cannot answer, and searches say so
      await a.node.memory.createCollection({ name: 'solo', dimensions: 16, distance: 'l2', replication_factor: 1 })
      await insertAll(a, 'solo', { ...set, count: 300 })
      await seen([b], 'solo')
      const onC = (await a.node.memory.routes('solo')).filter(r => r.hosts.includes(nodeId(c))).length
      expect(onC).toBeGreaterThan(0)
      await scenario.kill(c)
      const solo = await b.node.memory.search('solo', { vector: set.vector(0), k: 5 })
      expect(solo).toMatchObject({ partial: true, shards_answered: 16 - onC, shards_total: 16 })
      const ids = Array.from({ length: set.count }, (_, i) => `p${i}`)
      // at once (before any rebalancing): every point is on its other replica
      const got = await getAll(b, 'kill', ids)
      expect(got.length).toBe(set.count)
      for (let i = 0; i < 50; i++) {
        const r = await b.node.memory.search('kill', { vector: set.vector(i * 30), k: 1 })
        expect(r.partial).toBe(false)
        expect(r.results[0]!.id).toBe(`p${i * 30}`)
      }
      // the dead node's presence expires, the ring moves to the two left, each holds every shard
      await settled([a, b], 'kill', [a, b])
      const info = await a.node.memory.describeCollection('kill')
      for (const s of info.shards) expect(s.replicas.map(r => r.node_id).sort()).toEqual([nodeId(a), nodeId(b)].sort())
      expect((await getAll(a, 'kill', ids)).length).toBe(set.count)
    })
  })

  it('a fourth node joins and receives shards while writes and searches go on; no write acknowledged at quorum is lost', async () => {
    await runScenario(async (scenario) => {
      const players = await scenario.addPlayers(3, { memory: MEMORY, heartbeatIntervalSeconds: 1 })
      await meshOf(players)
      const [a, b, c] = players as [Player, Player, Player]
      await a.node.memory.createCollection({ name: 'join', dimensions: 16, distance: 'cosine' })
      const set = clusteredVectors({ seed: 31, count: 6000, dims: 16, normalize: true })
      await insertAll(a, 'join', { ...set, count: 2000 })
      await seen([b, c], 'join')

      let stop = false
      const acked: string[] = []
      let failedWrites = 0
      let searches = 0
      let partialSearches = 0
      const writer = (async () => {
        for (let i = 2000; i < set.count && !stop; i += 20) {
          try {
            await b.node.memory.upsert('join', points(set, i, i + 20), { write_consistency: 'quorum' })
            for (let j = i; j < i + 20; j++) acked.push(`p${j}`)
          } catch { failedWrites++ }
        }
      })()
      const searcher = (async () => {
        while (!stop) {
          const r = await c.node.memory.search('join', { vector: set.vector(searches % 2000), k: 5 })
          searches++
          if (r.partial) partialSearches++
        }
      })()

      const d = await scenario.addPlayer({ memory: MEMORY, heartbeatIntervalSeconds: 1 })
      await meshOf([a, b, c, d])
      await settled([a, b, c, d], 'join')
      stop = true
      await Promise.all([writer, searcher])

      const info = await d.node.memory.describeCollection('join')
      const onD = info.shards.filter(s => s.replicas.some(r => r.node_id === nodeId(d)))
      expect(onD.length).toBeGreaterThan(0)
      expect(onD.every(s => (s.replicas.find(r => r.node_id === nodeId(d))!.count ?? 0) > 0)).toBe(true)
      expect(searches).toBeGreaterThan(0)
      expect(acked.length).toBeGreaterThan(0)
      // every acknowledged write is found after the move, read through the newcomer
      const everything = [...Array.from({ length: 2000 }, (_, i) => `p${i}`), ...acked]
      const found = await getAll(d, 'join', everything)
      const lost = everything.length - found.length
      // nothing lost, and the writes and searches during the move all succeeded
      expect({ lost, failedWrites, partialSearches }).toEqual({ lost: 0, failedWrites: 0, partialSearches: 0 })
      expect(d.node.memory.stats().moves_completed).toBe(onD.length)
      // each copy is on record: its assignment, and a checkpoint of what it held when it switched over
      const { MemoryShardsClient } = await import('../../zomes-ts/memory_shards/client.ts')
      const uid = `${info.name}.${info.created_at.toString(36)}`
      const checkpoints = (await new MemoryShardsClient(d.node.client).checkpoints(uid)).filter(cp => encodeHash(cp.host) === nodeId(d))
      expect(checkpoints.map(cp => cp.shard).sort((x, y) => x - y)).toEqual(onD.map(s => s.shard).sort((x, y) => x - y))
      expect(checkpoints.every(cp => cp.count > 0 && cp.epoch === info.epoch)).toBe(true)
    })
  })

  it('a search hedges a slow host\'s shards to their other replica and still answers every shard', async () => {
    await runScenario(async (scenario) => {
      const [a, b] = await scenario.addPlayers(2, { memory: MEMORY, heartbeatIntervalSeconds: 1 }) as [Player, Player]
      // a client that hosts nothing: every shard it searches is on a and b
      const client = await scenario.addPlayer({ memory: { ...MEMORY, shardCapacity: 0 }, heartbeatIntervalSeconds: 1 })
      await meshOf([a, b])
      await a.node.memory.createCollection({ name: 'fast', dimensions: 16, distance: 'l2' })
      const set = clusteredVectors({ seed: 71, count: 800, dims: 16 })
      await insertAll(a, 'fast', set)
      await seen([client], 'fast')
      // one node's worker thread kept busy: a large insert into a one-shard, one-copy collection it holds
      await a.node.memory.createCollection({ name: 'heavy', dimensions: 256, distance: 'l2', shard_count: 1, replication_factor: 1 })
      const slow = (await a.node.memory.routes('heavy'))[0]!.hosts[0] === nodeId(a) ? a : b
      await seen([slow], 'heavy')
      const big = clusteredVectors({ seed: 72, count: 8000, dims: 256 })
      let busy = true
      const load = (async () => { try { await insertAll(slow, 'heavy', big, 1000) } finally { busy = false } })()
      let searches = 0
      while (busy || searches === 0) {
        const r = await client.node.memory.search('fast', { vector: set.vector(searches % 800), k: 3 })
        expect(r).toMatchObject({ partial: false, shards_answered: 16 })
        expect(r.results[0]!.id).toBe(`p${searches % 800}`)
        searches++
        if (client.node.memory.stats().hedged_searches > 0 && searches > 5) break
      }
      await load
      expect(client.node.memory.stats().hedged_searches).toBeGreaterThan(0)
    })
  })

  it('a collection made on one node is under-replicated, and fully replicated once a second node joins', async () => {
    await runScenario(async (scenario) => {
      const a = await scenario.addPlayer({ memory: MEMORY, heartbeatIntervalSeconds: 1 })
      await meshOf([a])
      await a.node.memory.createCollection({ name: 'grow', dimensions: 8, distance: 'cosine', shard_count: 4 })
      const set = clusteredVectors({ seed: 61, count: 400, dims: 8, normalize: true })
      await insertAll(a, 'grow', set)
      const before = await a.node.memory.describeCollection('grow')
      expect(before.under_replicated).toBe(true)
      expect(before.shards.every(s => s.replicas.length === 1 && s.under_replicated)).toBe(true)
      const b = await scenario.addPlayer({ memory: MEMORY, heartbeatIntervalSeconds: 1 })
      await meshOf([a, b])
      await settled([a, b], 'grow')
      const after = await b.node.memory.describeCollection('grow')
      expect(after.under_replicated).toBe(false)
      for (const s of after.shards) expect(s.replicas.map(r => [r.node_id, r.state, r.count! > 0]).sort()).toEqual([[nodeId(a), 'serving', true], [nodeId(b), 'serving', true]].sort())
      expect(after.count).toBe(400)
    })
  })

  it('a node flapping in and out never enters the ring: no epoch, nothing moves', async () => {
    await runScenario(async (scenario) => {
      // a flap is seen live from its first heartbeat until its presence expires (2.5 heartbeats and a sync later): well under 12 s
      const steady = { ...MEMORY, joinStableMs: 12_000 }
      const [a, b] = await scenario.addPlayers(2, { memory: steady, heartbeatIntervalSeconds: 1 }) as [Player, Player]
      await meshOf([a, b])
      await a.node.memory.createCollection({ name: 'calm', dimensions: 4, distance: 'l2', shard_count: 4 })
      await settled([a, b], 'calm')
      const epoch = (await a.node.memory.ring()).epoch
      const live = async (p: Player, who: Player): Promise<boolean> => (await p.cells.agent_registry!.callZome<Array<{ node_id: string, availability: string }>>('discovery', 'query_peers', null)).some(c => c.node_id === nodeId(who) && c.availability !== 'offline')
      // the flapper's key sorts first, so it is the one that would propose the ring's epochs were it a member
      let flapper = await scenario.prepareAgent()
      while (flapper.agentPubKey > nodeId(a) || flapper.agentPubKey > nodeId(b)) flapper = await scenario.prepareAgent()
      for (let i = 0; i < 2; i++) {
        const c = await scenario.addPlayer({ memory: steady, heartbeatIntervalSeconds: 1, dataDir: flapper.dataDir })
        await waitUntil(async () => await live(a, c), { what: 'the flapping node seen live' })
        await scenario.kill(c)
        await waitUntil(async () => !(await live(a, c)), { what: 'the flapping node seen gone', timeoutMs: 20_000 })
        // the ring checks (every 300 ms) see it gone too before it comes back
        await new Promise(resolve => setTimeout(resolve, 1000))
      }
      for (const p of [a, b]) {
        expect((await p.node.memory.ring()).epoch).toBe(epoch)
        expect(p.node.memory.stats().moves_completed).toBe(0)
      }
    })
  })

  it('replica sync: co-replicas exchange versions, not vectors they both hold; a write one replica missed reaches the other', async () => {
    await runScenario(async (scenario) => {
      const [a, b] = await scenario.addPlayers(2, { memory: MEMORY, heartbeatIntervalSeconds: 1 }) as [Player, Player]
      await meshOf([a, b])
      const coll = await a.node.memory.createCollection({ name: 'sync', dimensions: 4, distance: 'l2', shard_count: 2 })
      await seen([b], 'sync')
      const set = clusteredVectors({ seed: 51, count: 300, dims: 4 })
      for (let i = 0; i < set.count; i += 100) await a.node.memory.upsert('sync', points(set, i, i + 100), { write_consistency: 'all' })
      // several gossip rounds: each replica compares versions with the other and fetches nothing
      await new Promise(resolve => setTimeout(resolve, 5 * MEMORY.gossipIntervalMs!))
      expect([a.node.memory.stats().points_synced, b.node.memory.stats().points_synced]).toEqual([0, 0])
      // a write that reached only a's replica (straight into its shard host) reaches b's by sync
      const uid = `${coll.name}.${coll.created_at.toString(36)}`
      const id = 'only-on-a'
      const { shardOfId } = await import('../../scheduler/index.ts')
      await a.node.memory.host.upsert({ collection: uid, shard: shardOfId(id, 2) }, [{ id, vector: new Float32Array([9, 9, 9, 9]), metadata: { late: true }, version: { ts: Date.now(), writer: nodeId(a) } }])
      await waitUntil(async () => (await b.node.memory.host.get({ collection: uid, shard: shardOfId(id, 2) }, [id])).length === 1, { what: 'the missed write synced to b' })
      expect(b.node.memory.stats().points_synced).toBe(1)
      expect((await b.node.memory.search('sync', { vector: [9, 9, 9, 9], k: 1 })).results[0]).toMatchObject({ id, metadata: { late: true } })
    })
  })

  it('a restarted node reloads its shards from disk', async () => {
    await runScenario(async (scenario) => {
      const a = await scenario.addPlayer({ memory: MEMORY })
      await meshOf([a])
      await a.node.memory.createCollection({ name: 'disk', dimensions: 8, distance: 'ip', shard_count: 4, replication_factor: 2 })
      const set = clusteredVectors({ seed: 41, count: 800, dims: 8 })
      await insertAll(a, 'disk', set)
      await a.node.memory.delete('disk', ['p1', 'p2'])
      const before = await a.node.memory.search('disk', { vector: set.vector(7), k: 10 })
      const info = await a.node.memory.describeCollection('disk')
      expect(info.under_replicated).toBe(true)
      await scenario.restart(a)
      const after = await a.node.memory.search('disk', { vector: set.vector(7), k: 10 })
      expect(after.results).toEqual(before.results)
      expect((await a.node.memory.describeCollection('disk')).count).toBe(798)
      expect(await a.node.memory.get('disk', ['p1', 'p2', 'p3'])).toHaveLength(1)
    })
  })
})
