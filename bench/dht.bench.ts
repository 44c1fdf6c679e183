/**
 * The DHT's latencies as a zome call sees them, in a 5-node loopback mesh, with and without one
 * frozen peer, beside the same calls on a node without peers:
 *
 * - write: `heartbeat.beat` (one Update of the node's NodeCapability), sequential calls, twice:
 *   paced (one call per `PACE_MS`, the latency a write sees in a mesh that keeps up) and back to
 *   back (a saturated mesh). Every write is validated by each of the five other nodes, and here
 *   all six share this machine's cores: back to back, a write waits for the others' validation of
 *   the writes before it, which on a real mesh runs on their own machines. The goal is read on
 *   the paced figure; the back-to-back one says what saturating the shared cores costs;
 * - local miss: the lookup a `get` makes for a record the node does not hold (`dht.cascade` of an
 *   action hash another node authored before this one joined; every lookup a different record).
 *   On a node without peers a miss has no one to ask and returns at once: that row is the floor.
 *   Also a lookup of a record nobody holds (a random hash), which every live authority answers
 *   with "nothing".
 *
 * The five are real `flexnode start` processes (so their validation of each write runs in their
 * own processes, as on a real mesh); the measuring node and the node without peers run in this
 * process. "Frozen" is one of the five stopped with SIGSTOP: its connections stay open and it
 * answers nothing. The goal: writes in a mesh within 2x of a node without peers, and a frozen peer
 * costing a lookup a hedge delay, not a timeout.
 */
import { randomBytes } from 'node:crypto'
import { hashFrom32, type HoloHash } from '../agent/src/holo/hash.ts'
import { dhtSync, Scenario, waitUntil, type AnyPlayer, type Player } from '../tryorama/src/index.ts'
import { BENCH_SCALE, fmtMs, fmtRatio, percentile, type Report } from './util.ts'

const QUIET = { syncIntervalMs: 3_600_000, republishIntervalMs: 3_600_000, syncOnConnect: false }
const registry = (p: Player): Uint8Array => p.cells.agent_registry!.cell_id[0]

/** ms from the start of one paced write to the start of the next */
const PACE_MS = 100
/** lookups of records nobody holds, per phase */
const ABSENT_LOOKUPS = 20

interface Latency { p50: number, p95: number, n: number }

/** `n` sequential calls, each started at least `paceMs` after the one before (0: back to back). */
async function timed (n: number, fn: (i: number) => Promise<unknown>, paceMs = 0): Promise<Latency> {
  const ms = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await fn(i)
    ms[i] = performance.now() - t0
    if (paceMs > ms[i]!) await new Promise(resolve => setTimeout(resolve, paceMs - ms[i]!))
  }
  ms.sort()
  return { p50: percentile(ms, 50), p95: percentile(ms, 95), n }
}

const beat = (p: AnyPlayer) => async (i: number): Promise<unknown> =>
  await p.cells.agent_registry!.callZome('heartbeat', 'beat', { cpu_percent: i % 100, gpu_percent: 0, memory_percent: (i * 7) % 100 })

interface DumpedRecord { action_address: Uint8Array, action: { data: { type: string, entry_type?: unknown } } }

/** The records of a player's chain an authority serves: valid ones whose entry, if any, is public. */
async function servable (p: AnyPlayer, dna: Uint8Array): Promise<HoloHash[]> {
  const cell = Object.values(p.cells).find(c => Buffer.from(c.cell_id[0]).equals(dna))!
  const dump = await p.admin.dumpFullState({ cell_id: cell.cell_id }) as unknown as { source_chain_dump: { records: DumpedRecord[] } }
  return dump.source_chain_dump.records.filter(r => {
    const et = r.action.data.entry_type as { App?: { visibility: string } } | string | undefined
    return et === undefined || et === 'Agent' || (typeof et === 'object' && et.App?.visibility === 'Public')
  }).map(r => r.action_address as HoloHash)
}

const fmt = (l: Latency): string => `p50 ${fmtMs(l.p50)} p95 ${fmtMs(l.p95)} (${l.n} calls)`

export async function run (report: Report): Promise<void> {
  const writes = Math.max(10, Math.round(60 * Math.min(1, BENCH_SCALE * 4)))
  const scenario = new Scenario()
  try {
    // a node without peers
    const alone = await scenario.addPlayer({ ...QUIET, bootstrapFrom: [] })
    await timed(10, beat(alone)) // warm-up: the first calls compile the code paths
    const aloneWrite = await timed(writes, beat(alone), PACE_MS)
    const aloneBurst = await timed(writes, beat(alone))
    const aloneMiss = await timed(writes, async () => await alone.node.dht.cascade(registry(alone), { hashes: [hashFrom32(randomBytes(32), 'Action')] }))
    await scenario.kill(alone)

    // five nodes (processes) that write, then a sixth that joins quietly and misses what they wrote
    report.log('  dht: a node without peers measured; starting five flexnode processes')
    const mesh = await scenario.addPlayers(5, { kind: 'process' })
    report.log('  dht: five processes up')
    const dna = mesh[0]!.cells.agent_registry!.cell_id[0]
    for (const p of mesh) for (let i = 0; i < Math.ceil(writes / 2); i++) await beat(p)(i)
    const asker = await scenario.addPlayer({ ...QUIET, bootstrapFrom: mesh })
    await waitUntil(() => mesh.every(p => asker.node.mesh.peers().includes(p.peerId)), { what: 'the asker to connect to all five' })
    const space = asker.node.conductor.space(dna)!
    const authored = (await Promise.all(mesh.map(async p => await servable(p, dna)))).flat()
    // each phase looks up its own half of the records the asker lacks, in chain order (so one
    // lookup is one record); a record that reached the asker meanwhile (a republish) is skipped
    const lacking = authored.filter(h => !space.knows(h))
    const half = Math.min(Math.floor(lacking.length / 2), writes)
    let looked = 0
    let notFound = 0
    const missAll = async (hashes: HoloHash[]): Promise<Latency> => {
      const ms: number[] = []
      for (const h of hashes) {
        if (space.knows(h)) continue
        const t0 = performance.now()
        await asker.node.dht.cascade(dna, { hashes: [h] })
        ms.push(performance.now() - t0)
        looked++
        if (!space.knows(h)) notFound++
      }
      const sorted = Float64Array.from(ms).sort()
      return { p50: percentile(sorted, 50), p95: percentile(sorted, 95), n: ms.length }
    }
    // a record nobody holds: every authority answers "nothing"
    const absent = async (): Promise<unknown> => await asker.node.dht.cascade(dna, { hashes: [hashFrom32(randomBytes(32), 'Action')] })
    report.log(`  dht: the asker lacks ${authored.filter(h => !space.knows(h)).length} of ${authored.length} records`)
    // the five are done validating each other's writes (and the asker's genesis) before the clock
    // runs; lookups come first, before republish rounds bring the asker what it lacks
    await dhtSync(mesh, dna, { timeoutMs: 120_000 })
    const meshMiss = await missAll(lacking.slice(0, half))

    report.log('  dht: healthy-mesh lookups measured; freezing one process')
    await scenario.freeze(mesh[1]!)
    const frozenMiss = await missAll(lacking.slice(half, 2 * half))
    const frozenAbsent = await timed(ABSENT_LOOKUPS, absent)
    const frozenWrite = await timed(writes, beat(asker), PACE_MS)
    await scenario.thaw(mesh[1]!)
    await dhtSync(mesh, dna, { timeoutMs: 120_000 })

    report.log('  dht: thawed; healthy-mesh writes')
    const meshAbsent = await timed(ABSENT_LOOKUPS, absent)
    const meshWrite = await timed(writes, beat(asker), PACE_MS)
    const meshBurst = await timed(writes, beat(asker))

    const lines = [
      `dht: write (heartbeat.beat), one per ${PACE_MS} ms: node without peers ${fmt(aloneWrite)}; 5-node mesh ${fmt(meshWrite)} = ${fmtRatio(meshWrite.p50 / aloneWrite.p50)} of alone at p50, ` +
        `${fmtRatio(meshWrite.p95 / aloneWrite.p95)} at p95; with one frozen peer ${fmt(frozenWrite)} = ${fmtRatio(frozenWrite.p50 / aloneWrite.p50)} at p50 (goal ≤ 2x)`,
      `dht: write back to back (saturates the cores all six nodes share here: each write is validated by the other five): node without peers ${fmt(aloneBurst)}; ` +
        `5-node mesh ${fmt(meshBurst)} = ${fmtRatio(meshBurst.p50 / aloneBurst.p50)} of alone at p50`,
      `dht: local-miss lookup: node without peers ${fmt(aloneMiss)} (no one to ask); 5-node mesh ${fmt(meshMiss)}; ` +
        `with one frozen peer ${fmt(frozenMiss)} = ${fmtRatio(frozenMiss.p50 / meshMiss.p50)} of the healthy mesh at p50, p95 ${fmtRatio(frozenMiss.p95 / meshMiss.p95)} ` +
        `(the lookup timeout is 2 s; ${notFound} of the ${looked} records looked up not found)`,
      `dht: lookup of a record nobody holds: 5-node mesh ${fmt(meshAbsent)}; with one frozen peer ${fmt(frozenAbsent)} ` +
        `(two authorities answering "nothing" settle it one hedge delay later, not the frozen one's 2 s timeout)`
    ]
    for (const l of lines) {
      report.log(`  ${l}`)
      report.note(l)
    }
  } finally {
    await scenario.cleanUp()
  }
}
