/**
 * The sharded DHT at 1,000 and 10,000 nodes, simulated (`bench/sim/`): a deterministic, seeded
 * run of the real arc code, the real summary diff of anti-entropy and records measured in their
 * wire encoding, over an in-memory transport with simulated latency and churn (no sockets, no
 * SQLite). Figures are per node over simulated time, so they do not depend on this machine; the
 * wall time each size took is printed beside them.
 *
 * Per node (mean, p50 / p99 over the nodes alive at the end): ops stored (and their share of all
 * ops), ops validated per second, bytes per second of gossip (publish + anti-entropy, sent and
 * received) and of presence (gossip flood + trades on connect, sent and received). For the mesh:
 * time until a capability change reaches 99% of the nodes, and the share of records still held by
 * a surviving authority after 10% and 30% of the nodes leave at once, and how far arcs and
 * anti-entropy restore the target redundancy within four presence lifetimes after the 30% left.
 *
 * `FLEXNODE_BENCH_SCALE` < 1 shrinks both sizes (at least 100 nodes) and the simulated time.
 */
import { fmtNum, BENCH_SCALE, type Report } from './util.ts'
import { simulate, type Dist, type SimResult } from './sim/simulation.ts'

const SIZES: readonly number[] = [1_000, 10_000].map(n => Math.max(100, Math.round(n * BENCH_SCALE)))
const DURATION_MS = Math.max(180_000, Math.round(300_000 * BENCH_SCALE))
const SEED = 20_251

const d = (x: Dist, digits = 0): string => `${fmtNum(x.mean, digits)} (p50 ${fmtNum(x.p50, digits)}, p99 ${fmtNum(x.p99, digits)})`
const kb = (x: Dist): string => `${fmtNum(x.mean / 1024, 1)} KiB/s (p50 ${fmtNum(x.p50 / 1024, 1)}, p99 ${fmtNum(x.p99 / 1024, 1)})`
const pct = (x: number): string => `${(100 * x).toFixed(2)}%`

function lines (r: SimResult, wallSeconds: number): string[] {
  const c = r.config
  const n = fmtNum(c.nodes)
  const leave = r.afterLeave.map(l => `${pct(l.share).replace('.00', '')} leave → ${pct(l.retrievable)}`).join(', ')
  return [
    `dht sim ${n} nodes: ${fmtNum(c.durationMs / 60_000, 0)} simulated min in ${fmtNum(wallSeconds, 1)} s wall (seed ${c.seed}, ${fmtNum(r.events)} events); ` +
      `target redundancy ${c.targetRedundancy}, an op per node every ${fmtNum(c.opIntervalMs / 1000)} s, sync every ${fmtNum(c.syncIntervalMs / 1000)} s, ` +
      `presence every ${fmtNum(c.presenceRefreshMs / 1000)} s, churn ${pct(c.churnPerHour)}/h (${r.crashed} crashed, ${r.joined} joined)`,
    `dht sim ${n} nodes: arc ${d(r.perNode.arcSectors, 1)} of 512 sectors; ops stored per node ${d(r.perNode.opsStored)} of ${fmtNum(r.ops)} = ${(r.perNode.opsStored.mean / Math.max(1, r.ops)).toFixed(4)}x all ops; ` +
      `fewest holders of a sector ${r.minSectorHolders}; ops held ≥ ${c.targetRedundancy} times ${pct(r.atTarget)}`,
    `dht sim ${n} nodes: ops validated per node ${d(r.perNode.opsValidatedPerSec, 3)}/s; gossip ${kb(r.perNode.gossipBytesPerSec)}; ` +
      (Number.isFinite(r.joinerSyncOverhead) ? `late joiners moved ${r.joinerSyncOverhead.toFixed(2)}x the bytes of the records they fetched` : 'no late joiner fetched anything'),
    `dht sim ${n} nodes: presence ${kb(r.perNode.presenceBytesPerSec)} = ${(r.perNode.presenceBytesPerSec.mean / Math.max(1, r.perNode.gossipBytesPerSec.mean)).toFixed(1)}x gossip ` +
      `(${fmtNum(r.presenceMessageBytes)} B a record, ${fmtNum(r.presencePerSec)} records/s mesh-wide for every node to verify, flooded over degree ${c.gossipDegree})`,
    `dht sim ${n} nodes: a capability change reaches 99% of nodes in ${fmtNum(r.capabilityVisible99Ms.median)} ms (worst of ${c.floodSamples}: ${fmtNum(r.capabilityVisible99Ms.max)} ms); ` +
      `records retrievable: ${leave}`,
    ...(r.repair === null
      ? []
      : [`dht sim ${n} nodes: after ${pct(r.repair.share).replace('.00', '')} left, ops held ≥ ${c.targetRedundancy} times went from ${pct(r.repair.atTargetBefore)} to ${pct(r.repair.atTarget)} ` +
        `in ${fmtNum(r.repair.afterMs / 1000)} s (arcs grew to ${d(r.repair.arcSectors, 1)} sectors; fewest holders of a sector ${r.repair.minSectorHolders})`])
  ]
}

export async function run (report: Report): Promise<void> {
  for (const nodes of SIZES) {
    const t0 = performance.now()
    const r = simulate({ seed: SEED, nodes, durationMs: DURATION_MS })
    const wall = (performance.now() - t0) / 1000
    for (const line of lines(r, wall)) {
      report.log(`  ${line}`)
      report.note(line)
    }
    await new Promise(resolve => setImmediate(resolve))
  }
}
