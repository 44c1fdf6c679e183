/**
 * The vector memory (`agent/src/memory/`), on one clustered dataset of 100,000 vectors of 128
 * dimensions drawn from 16 latent ones (scaled by `FLEXNODE_BENCH_SCALE`; the queries are held-out
 * points of the same set):
 *
 * - the baseline: one hnswlib-node index in this process (M 16, efConstruction 200, the shard
 *   host's settings): insert throughput, and recall@10 against brute force with queries/s at
 *   each `ef` of a sweep;
 * - the mesh: 16 shards, 2 replicas each, on 3 nodes on loopback, written and searched through
 *   one node's `memory` API: insert throughput, recall@10 and queries/s at the same `ef`s, and
 *   queries/s as a ratio to the single index at the same recall (the smallest `ef` of each that
 *   reaches recall 0.95; goal ≥ 0.5);
 * - rebalancing: a fourth node joins; the time until every shard it takes serves from it, and
 *   the bytes it received, per 100,000 vectors.
 */
import '../agent/src/polyfill.ts'
import hnswlib from 'hnswlib-node'
import { bruteForceTopK, clusteredVectors, recallAtK, type VectorSet } from '../fixtures/vectors.ts'
import { Scenario, waitUntil, type Player } from '../tryorama/src/index.ts'
import { encodeHash } from '../agent/src/holo/hash.ts'
import { BENCH_SCALE, type Report } from './util.ts'

const DIMS = 128
/** the data's degrees of freedom: 128 coordinates drawn from 16, as embeddings are */
const LATENT_DIMS = 16
const EFS = [16, 32, 64, 128, 256]
const TARGET_RECALL = 0.95
/** queries in flight for the mesh's throughput figure */
const CONCURRENT_QUERIES = 8
const MEMORY = { shardCapacity: 8, ringCheckIntervalMs: 300, gossipIntervalMs: 300, joinStableMs: 1000, epochIntervalMs: 1000, retireGraceMs: 1000, threads: 1 }

interface Sweep { ef: number, recall: number, qps: number }

/** Vectors `from`..`to` of a set, as a set. */
const slice = (v: VectorSet, from: number, to: number): VectorSet => {
  const data = v.data.subarray(from * v.dims, to * v.dims)
  return { dims: v.dims, data, count: to - from, vector: (i) => data.subarray(i * v.dims, (i + 1) * v.dims) }
}

/** The smallest ef of a sweep reaching the target recall (else the best recall). */
const atTarget = (sweep: Sweep[]): Sweep => sweep.find(s => s.recall >= TARGET_RECALL) ?? [...sweep].sort((a, b) => b.recall - a.recall)[0]!

/** Queries/s with `concurrency` queries in flight (each of `queries` once), at one ef. */
async function throughput (queries: VectorSet, ef: number, concurrency: number, search: (q: Float32Array, ef: number) => Promise<number[]>): Promise<number> {
  let next = 0
  const t0 = performance.now()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < queries.count) await search(queries.vector(next++), ef)
  }))
  return queries.count / ((performance.now() - t0) / 1000)
}

async function sweepOf (queries: VectorSet, exact: number[][], search: (q: Float32Array, ef: number) => Promise<number[]>): Promise<Sweep[]> {
  const out: Sweep[] = []
  for (const ef of EFS) {
    // a warm-up pass, then the timed one
    for (let q = 0; q < Math.min(20, queries.count); q++) await search(queries.vector(q), ef)
    const found: number[][] = []
    const t0 = performance.now()
    for (let q = 0; q < queries.count; q++) found.push(await search(queries.vector(q), ef))
    const s = (performance.now() - t0) / 1000
    out.push({ ef, recall: recallAtK(exact, found), qps: queries.count / s })
  }
  return out
}

const fmt = (s: Sweep): string => `ef ${s.ef}: recall ${s.recall.toFixed(3)}, ${Math.round(s.qps)} q/s`

export async function run (report: Report): Promise<void> {
  const count = Math.max(2000, Math.round(100_000 * BENCH_SCALE))
  const nq = Math.max(50, Math.round(200 * Math.sqrt(BENCH_SCALE)))
  // the queries are held-out points of the same distribution
  const all = clusteredVectors({ seed: 7, count: count + nq, dims: DIMS, clusters: 64, latentDims: LATENT_DIMS, normalize: true })
  const set = slice(all, 0, count)
  const queries = slice(all, count, count + nq)
  report.log(`  vector memory: ${count} vectors of ${DIMS} dims, ${nq} queries; brute force…`)
  const exact = Array.from({ length: nq }, (_, q) => bruteForceTopK(set, queries.vector(q), 10))

  // the baseline: one index in this process
  const index = new hnswlib.HierarchicalNSW('cosine', DIMS)
  index.initIndex({ maxElements: count, m: 16, efConstruction: 200 })
  let t0 = performance.now()
  for (let i = 0; i < count; i++) index.addPoint(Array.from(set.vector(i)), i)
  const singleInsert = count / ((performance.now() - t0) / 1000)
  const single = await sweepOf(queries, exact, async (q, ef) => { index.setEf(ef); return index.searchKnn(Array.from(q), 10).neighbors })

  const scenario = new Scenario()
  try {
    const players = await scenario.addPlayers(3, { memory: MEMORY, heartbeatIntervalSeconds: 1 })
    await hostsSeen(players, 3)
    const a = players[0]!
    await a.node.memory.createCollection({ name: 'bench', dimensions: DIMS, distance: 'cosine', shard_count: 16, replication_factor: 2 })
    t0 = performance.now()
    for (let i = 0; i < count; i += 1000) {
      const n = Math.min(1000, count - i)
      await a.node.memory.upsert('bench', Array.from({ length: n }, (_, j) => ({ id: String(i + j), vector: set.vector(i + j) })))
    }
    const meshInsert = count / ((performance.now() - t0) / 1000)
    const meshSearch = async (q: Float32Array, ef: number): Promise<number[]> => (await a.node.memory.search('bench', { vector: q, k: 10, ef })).results.map(r => Number(r.id))
    const mesh = await sweepOf(queries, exact, meshSearch)
    // the mesh's shards are searched by three worker threads: with queries in flight it uses both cores
    const meshConcurrent = await throughput(queries, atTarget(mesh).ef, CONCURRENT_QUERIES, meshSearch)

    // rebalancing: a fourth node joins
    t0 = performance.now()
    const d = await scenario.addPlayer({ memory: MEMORY, heartbeatIntervalSeconds: 1 })
    await hostsSeen([...players, d], 4)
    const all = [...players, d]
    const want = all.map(p => encodeHash(p.agentPubKey)).sort()
    for (const p of all) {
      await waitUntil(async () => {
        const ring = await p.node.memory.ring()
        if (JSON.stringify(ring.members.map(m => m.node).sort()) !== JSON.stringify(want)) return false
        return (await p.node.memory.routes('bench')).every(r => r.copying.length === 0 && r.retiring.length === 0)
      }, { what: 'the ring settled on 4 nodes', timeoutMs: 600_000, intervalMs: 100 })
    }
    const rebalanceS = (performance.now() - t0) / 1000
    const moved = d.node.memory.stats()
    const per100k = 100_000 / count

    const s = atTarget(single)
    const m = atTarget(mesh)
    report.note(`vector memory: one hnswlib index in process, ${count} × ${DIMS}: insert ${Math.round(singleInsert)} vectors/s; ${single.map(fmt).join('; ')}`)
    report.note(`vector memory: mesh of 3 nodes (16 shards, RF 2) through one node: insert ${Math.round(meshInsert)} vectors/s = ${(meshInsert / singleInsert).toFixed(3)}x one index (every vector written twice); ${mesh.map(fmt).join('; ')}`)
    report.note(`vector memory: queries/s at recall ≥ ${TARGET_RECALL} (one index ${fmt(s)}; mesh ${fmt(m)}): mesh ÷ one index = ${(m.qps / s.qps).toFixed(3)}x (goal ≥ 0.5); with ${CONCURRENT_QUERIES} mesh queries in flight ${Math.round(meshConcurrent)} q/s = ${(meshConcurrent / s.qps).toFixed(3)}x`)
    report.note(`vector memory: a fourth node joins: rebalanced in ${rebalanceS.toFixed(1)} s (join, ring epoch, copies, switch-over), ${moved.moves_completed} shard copies, ${(moved.bytes_moved / 1_048_576).toFixed(1)} MiB received; per 100,000 vectors ${(rebalanceS * per100k).toFixed(1)} s and ${(moved.bytes_moved * per100k / 1_048_576).toFixed(1)} MiB`)
  } finally {
    await scenario.cleanUp()
  }
}

async function hostsSeen (players: Player[], n: number): Promise<void> {
  for (const p of players) {
    await waitUntil(async () => (await p.cells.agent_registry!.callZome<Array<{ availability: string, capabilities: { memory: { vector_shards: number } } }>>('discovery', 'query_peers', null))
      .filter(c => c.availability !== 'offline' && c.capabilities.memory.vector_shards > 0).length === n, { what: `${n} shard hosts seen`, timeoutMs: 60_000 })
  }
}
