/**
 * WASM compute tasks (`agent/src/resources/wasm.ts`):
 *
 * - a heavy pure task (`fixtures/wasm.ts` `heavy`, sized to ~1 s here) run through the `wasm`
 *   pool on a warm thread, as a ratio to the same module run with `WebAssembly.instantiate` and
 *   `run()` in this process (goal ≥ 0.9); the two are run in turns, so a drifting machine weighs
 *   on both alike;
 * - the fixed cost per task: a trivial module (`echo`, empty input) through the pool, p50/p95,
 *   beside the same instantiate-and-run in this process.
 */
import '../agent/src/polyfill.ts'
import { silentLogger } from '../agent/src/logger.ts'
import { wasmRunner } from '../agent/src/resources/wasm.ts'
import { buildWasmFixtures, heavyInput } from '../fixtures/wasm.ts'
import { BENCH_SCALE, fmtMs, measureAsync, type Report } from './util.ts'

/** The heavy task's target length, ms. */
const HEAVY_MS = 1000

/** Instantiate and run a task module in this process, with the ABI's imports; its output. */
export async function direct (bytes: Uint8Array, input: Uint8Array): Promise<Uint8Array> {
  const at: { memory?: WebAssembly.Memory } = {}
  const chunks: Uint8Array[] = []
  const mem = (ptr: number, len: number): Uint8Array => new Uint8Array(at.memory!.buffer, ptr >>> 0, len >>> 0)
  const { instance } = await WebAssembly.instantiate(bytes, {
    flexnode: {
      input_len: () => input.byteLength,
      input_read: (ptr: number, len: number) => { const n = Math.min(len >>> 0, input.byteLength); mem(ptr, n).set(input.subarray(0, n)) },
      output_write: (ptr: number, len: number) => { chunks.push(mem(ptr, len).slice()) },
      log: () => {}
    }
  })
  at.memory = instance.exports.memory as WebAssembly.Memory
  ;(instance.exports.run as () => number)()
  return Uint8Array.from(chunks.flatMap(c => [...c]))
}

export async function timed (fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now()
  await fn()
  return performance.now() - t0
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

/** Rounds of the `heavy` fixture that take about `ms` here, measured once V8 has tiered the module up; and a short probe input. */
export async function sizeHeavy (heavy: Uint8Array, ms = HEAVY_MS * BENCH_SCALE): Promise<{ rounds: number, input: Uint8Array, probe: Uint8Array }> {
  const probe = 100
  for (let i = 0; i < 3; i++) await direct(heavy, heavyInput(probe))
  let best = Number.POSITIVE_INFINITY
  for (let i = 0; i < 2; i++) best = Math.min(best, await timed(async () => await direct(heavy, heavyInput(probe))))
  const rounds = Math.max(1, Math.round(ms / (best / probe)))
  return { rounds, input: heavyInput(rounds), probe: heavyInput(probe) }
}

export async function run (report: Report): Promise<void> {
  const wasm = await buildWasmFixtures()
  const { rounds, input, probe } = await sizeHeavy(wasm.heavy)

  await using runner = wasmRunner({ maxThreads: 1 })({ logger: silentLogger() })
  // a warm thread, and the module compiled and cached
  await runner.run({ wasm: wasm.heavy, input: probe })
  const expected = await direct(wasm.heavy, input)
  const turns = Math.max(2, Math.round(5 * BENCH_SCALE))
  const directMs: number[] = []
  const poolMs: number[] = []
  for (let i = 0; i < turns; i++) {
    directMs.push(await timed(async () => await direct(wasm.heavy, input)))
    poolMs.push(await timed(async () => {
      const r = await runner.run({ wasm: wasm.heavy, input, limits: { cpu_ms: 60_000, wall_ms: 120_000 } })
      if (Buffer.compare(r.output, expected) !== 0) throw new Error('the pool computed another result than the direct run')
    }))
  }
  const d = median(directMs)
  const p = median(poolMs)
  report.log(`  wasm heavy task (${rounds} rounds): direct ${fmtMs(d)} ms, through the pool ${fmtMs(p)} ms (medians of ${turns})`)

  const empty = new Uint8Array(0)
  const trivialPool = await measureAsync({
    id: 'wasm.trivial.pool',
    name: 'wasm trivial task through the pool',
    group: 'wasm',
    budgetMs: 1500,
    fn: async () => await runner.run({ wasm: wasm.echo, input: empty })
  })
  report.add(trivialPool)
  const trivialDirect = await measureAsync({
    id: 'wasm.trivial.direct',
    name: 'wasm trivial task instantiated in process',
    group: 'wasm',
    budgetMs: 1000,
    fn: async () => await direct(wasm.echo, empty)
  })
  report.add(trivialDirect)
  report.note(`wasm: a heavy pure task of ${fmtMs(d)} ms through the pool ÷ WebAssembly.instantiate + run() in process = ${(d / p).toFixed(3)}x (goal ≥ 0.9); ` +
    `fixed overhead per task through the pool p50 ${fmtMs(trivialPool.p50Ms)} ms, p95 ${fmtMs(trivialPool.p95Ms)} ms (in process: p50 ${fmtMs(trivialDirect.p50Ms)} ms)`)
}
