/**
 * Leases and compute tasks across the mesh (`agent/src/resources/`), two in-process nodes on
 * 127.0.0.1 (a provider and a requester):
 *
 * - allocate → commit: `resources.allocate` from the requester to the remote provider, until
 *   the provider has committed the Allocation and answered, p50/p95 (each lease is released
 *   between two samples, untimed, so every sample sees the same ledger);
 * - the heavy pure WASM task of `wasm.bench.ts` (~1 s) through `resources.schedule_task` on the
 *   provider itself (local) and from the requester (remote: lease, task over the mesh, release),
 *   each as a ratio to `WebAssembly.instantiate` + `run()` in this process (goal ≥ 0.9), run in
 *   turns so a drifting machine weighs on all alike;
 * - the fixed overhead per task: a trivial task through `schedule_task`, local and remote, p50/p95.
 */
import '../agent/src/polyfill.ts'
import { encodeHash } from '../agent/src/holo/hash.ts'
import { buildWasmFixtures } from '../fixtures/wasm.ts'
import { Scenario, waitUntil } from '../tryorama/src/index.ts'
import { BENCH_SCALE, fmtMs, measureAsync, percentile, type Report } from './util.ts'
import { direct, median, sizeHeavy, timed } from './wasm.bench.ts'

const CAPACITY = { cpu_cores: 64, memory_gb: 64, gpu_count: 0, storage_gb: 100 }
const NOTHING = { cpu_cores: 0, memory_gb: 0, gpu_count: 0, storage_gb: 0 }

export async function run (report: Report): Promise<void> {
  const wasm = await buildWasmFixtures()
  const scenario = new Scenario()
  try {
    const provider = await scenario.addPlayer({ resourceCapacity: CAPACITY })
    const requester = await scenario.addPlayer({ resourceCapacity: NOTHING })
    const providerId = encodeHash(provider.agentPubKey)
    await waitUntil(async () => (await requester.cells.agent_registry!.callZome<unknown[]>('discovery', 'query_peers', null)).length === 2, { what: 'both nodes advertised', timeoutMs: 60_000 })
    const lease = { resource_type: 'compute' as const, requirements: { cpu_cores: 1 }, node_id: providerId, duration_seconds: 600 }

    // allocate → commit
    for (let i = 0; i < 3; i++) await requester.node.resources.release(await requester.node.resources.allocate(lease))
    const samples: number[] = []
    const n = Math.max(10, Math.round(60 * BENCH_SCALE))
    for (let i = 0; i < n; i++) {
      const t0 = performance.now()
      const granted = await requester.node.resources.allocate(lease)
      samples.push(performance.now() - t0)
      await requester.node.resources.release(granted)
    }
    const sorted = Float64Array.from(samples).sort()
    const p50 = percentile(sorted, 50)
    const p95 = percentile(sorted, 95)

    // the heavy task: direct, through schedule_task on the provider itself, and from the requester
    const { rounds, input, probe } = await sizeHeavy(wasm.heavy)
    const limits = { cpu_ms: 120_000, wall_ms: 240_000 }
    const local = async (task: { wasm: Uint8Array, input: Uint8Array }): Promise<unknown> => await provider.node.resources.scheduleTask({ ...task, limits, node_id: providerId })
    const remote = async (task: { wasm: Uint8Array, input: Uint8Array }): Promise<unknown> => await requester.node.resources.scheduleTask({ ...task, limits, node_id: providerId })
    await local({ wasm: wasm.heavy, input: probe })
    await remote({ wasm: wasm.heavy, input: probe })
    const turns = Math.max(2, Math.round(4 * BENCH_SCALE))
    const d: number[] = []
    const l: number[] = []
    const r: number[] = []
    for (let i = 0; i < turns; i++) {
      d.push(await timed(async () => await direct(wasm.heavy, input)))
      l.push(await timed(async () => await local({ wasm: wasm.heavy, input })))
      r.push(await timed(async () => await remote({ wasm: wasm.heavy, input })))
    }
    const [dm, lm, rm] = [median(d), median(l), median(r)]
    report.log(`  schedule_task heavy task (${rounds} rounds): direct ${fmtMs(dm)} ms, local ${fmtMs(lm)} ms, remote ${fmtMs(rm)} ms (medians of ${turns})`)

    const empty = new Uint8Array(0)
    const trivialLocal = await measureAsync({ id: 'resources.task.local', name: 'schedule_task trivial task, local', group: 'resources', budgetMs: 1500, fn: async () => await local({ wasm: wasm.echo, input: empty }) })
    report.add(trivialLocal)
    const trivialRemote = await measureAsync({ id: 'resources.task.remote', name: 'schedule_task trivial task, remote peer', group: 'resources', budgetMs: 2000, fn: async () => await remote({ wasm: wasm.echo, input: empty }) })
    report.add(trivialRemote)

    report.note(`resources: allocate→commit to a remote provider p50 ${fmtMs(p50)} ms, p95 ${fmtMs(p95)} ms (${n} leases)`)
    report.note(`resources: a heavy pure WASM task of ${fmtMs(dm)} ms through schedule_task ÷ WebAssembly.instantiate + run() in process: local ${(dm / lm).toFixed(3)}x, remote peer ${(dm / rm).toFixed(3)}x (goal ≥ 0.9); ` +
      `fixed overhead per task (lease, run, release) local p50 ${fmtMs(trivialLocal.p50Ms)} ms p95 ${fmtMs(trivialLocal.p95Ms)} ms, remote p50 ${fmtMs(trivialRemote.p50Ms)} ms p95 ${fmtMs(trivialRemote.p95Ms)} ms`)
  } finally {
    await scenario.cleanUp()
  }
}
