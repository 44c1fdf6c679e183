/**
 * The DHT's latencies as a zome call sees them, in a 5-node loopback mesh, with and without one
 * frozen peer, beside the same calls on a node without peers:
 *
 * - write: `heartbeat.beat` (one Update of the node's NodeCapability), sequential calls;
 * - local miss: the lookup a `get` makes for a record the node does not hold (`dht.cascade` of an
 *   action hash another node authored before this one joined; every lookup a different record).
 *   On a node without peers a miss has no one to ask and returns at once: that row is the floor.
 *
 * "Frozen" is a real node whose sync protocol stops answering while its connections stay up, as
 * with a process stopped mid-flight (the tests use the same freeze). The goal: writes in a mesh
 * within 2x of a node without peers, and a frozen peer costing a lookup a hedge delay, not a
 * timeout.
 */
import type { HoloHash } from '../agent/src/holo/hash.ts'
import { hashFrom32 } from '../agent/src/holo/hash.ts'
import { randomBytes } from 'node:crypto'
import { Scenario, waitUntil, type Player } from '../tryorama/src/index.ts'
import { BENCH_SCALE, fmtMs, fmtRatio, percentile, type Report } from './util.ts'

const QUIET = { syncIntervalMs: 3_600_000, republishIntervalMs: 3_600_000, syncOnConnect: false }
const registry = (p: Player): Uint8Array => p.cells.agent_registry!.cell_id[0]

interface Latency { p50: number, p95: number, n: number }

async function timed (n: number, fn: (i: number) => Promise<unknown>): Promise<Latency> {
  const ms = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await fn(i)
    ms[i] = performance.now() - t0
  }
  ms.sort()
  return { p50: percentile(ms, 50), p95: percentile(ms, 95), n }
}

const beat = (p: Player) => async (i: number): Promise<unknown> =>
  await p.cells.agent_registry!.callZome('heartbeat', 'beat', { cpu_percent: i % 100, gpu_percent: 0, memory_percent: (i * 7) % 100 })

async function freeze (p: Player): Promise<void> {
  await p.node.mesh.unhandle('sync')
  await p.node.mesh.handle('sync', async () => await new Promise<Uint8Array>(() => {}), { maxRequestBytes: 1024 * 1024, timeoutMs: 60_000 })
}

const fmt = (l: Latency): string => `p50 ${fmtMs(l.p50)} p95 ${fmtMs(l.p95)} (${l.n} calls)`

export async function run (report: Report): Promise<void> {
  const writes = Math.max(10, Math.round(60 * Math.min(1, BENCH_SCALE * 4)))
  const scenario = new Scenario()
  try {
    // a node without peers
    const alone = await scenario.addPlayer({ ...QUIET, bootstrapFrom: [] })
    const aloneWrite = await timed(writes, beat(alone))
    const aloneMiss = await timed(writes, async () => await alone.node.dht.cascade(registry(alone), { hashes: [hashFrom32(randomBytes(32), 'Action')] }))
    await scenario.kill(alone)

    // five nodes that write, then a sixth that joins quietly and misses what they wrote
    const mesh = await scenario.addPlayers(5, { republishIntervalMs: 3_600_000 })
    const dna = registry(mesh[0]!)
    for (const p of mesh) for (let i = 0; i < Math.ceil(writes / 2); i++) await beat(p)(i)
    const asker = await scenario.addPlayer({ ...QUIET, bootstrapFrom: mesh })
    await waitUntil(() => mesh.every(p => asker.node.mesh.peers().includes(p.peerId)), { what: 'the asker to connect to all five' })
    const space = asker.node.conductor.space(dna)!
    const missing: HoloHash[] = []
    for (const p of mesh) {
      for (const r of p.node.conductor.cell(p.cells.agent_registry!.cell_id)!.chain()) {
        const h = r.signed_action.hashed.hash
        // what an authority serves: valid records with public entries (private ones are withheld)
        if (!space.knows(h) && p.node.conductor.space(dna)!.records([h], 1 << 20).length > 0) missing.push(h)
      }
    }
    const half = Math.floor(missing.length / 2)
    const lookups = Math.min(half, writes)
    const meshWrite = await timed(writes, beat(asker))
    const meshMiss = await timed(lookups, async (i) => await asker.node.dht.cascade(dna, { hashes: [missing[i]!] }))

    await freeze(mesh[1]!)
    const frozenWrite = await timed(writes, beat(asker))
    const frozenMiss = await timed(lookups, async (i) => await asker.node.dht.cascade(dna, { hashes: [missing[half + i]!] }))
    const stillMissing = missing.filter(h => !space.knows(h)).length

    const lines = [
      `dht: write (heartbeat.beat): node without peers ${fmt(aloneWrite)}; 5-node mesh ${fmt(meshWrite)} = ${fmtRatio(meshWrite.p50 / aloneWrite.p50)} of alone at p50; ` +
        `with one frozen peer ${fmt(frozenWrite)} = ${fmtRatio(frozenWrite.p50 / aloneWrite.p50)} (goal ≤ 2x)`,
      `dht: local-miss lookup: node without peers ${fmt(aloneMiss)} (no one to ask); 5-node mesh ${fmt(meshMiss)}; ` +
        `with one frozen peer ${fmt(frozenMiss)} = ${fmtRatio(frozenMiss.p50 / meshMiss.p50)} of the healthy mesh at p50, p95 ${fmtRatio(frozenMiss.p95 / meshMiss.p95)} ` +
        `(the lookup timeout is 2 s; ${stillMissing} of ${lookups * 2} looked-up records not found)`
    ]
    for (const l of lines) {
      report.log(`  ${l}`)
      report.note(l)
    }
  } finally {
    await scenario.cleanUp()
  }
}
