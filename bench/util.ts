/**
 * Benchmark helpers: timed loops with warm-up, latency percentiles and the `Report` every
 * `bench/*.bench.ts` module fills. Benchmarks print figures; they never assert on times.
 *
 * ```ts
 * export async function run (report: Report): Promise<void> {
 *   report.add(await measureAsync({ id: 'x.call', name: 'x call', group: 'x', fn: async () => { await call() } }))
 * }
 * ```
 */

export interface BenchResult {
  /** stable key (baselines are referred to by id) */
  id: string
  name: string
  group: string
  concurrency: number
  /** timed operations (after warm-up) */
  ops: number
  /** units of work per operation (e.g. rows per transaction); ops/s below counts units */
  unitsPerOp: number
  seconds: number
  /** units per second */
  opsPerSec: number
  /** latency of one operation, in ms */
  p50Ms: number
  p95Ms: number
  /**
   * CPU time of this process (user + system, all threads) per unit over the timed stretch, in ms:
   * unlike ops/s it does not drift with what else runs on the machine
   */
  cpuMsPerOp?: number
  note?: string
}

export interface Report {
  add: (result: BenchResult) => void
  note: (text: string) => void
  /** progress line, printed as it happens */
  log: (text: string) => void
  /** a case that threw: printed and recorded, and the run exits non-zero */
  fail: (name: string, err: unknown) => void
}

export interface MeasureOptions {
  id: string
  name: string
  group: string
  /** untimed operations first @default 50 */
  warmup?: number
  /** stop after this much time @default 2000 */
  budgetMs?: number
  /** or after this many operations @default 1_000_000 */
  maxOps?: number
  unitsPerOp?: number
  note?: string
}

const NS_PER_MS = 1e6

/**
 * `FLEXNODE_BENCH_SCALE` (0 < s <= 1, default 1) shrinks every time budget and warm-up, so a
 * smoke test can run the whole bench in seconds. Figures from a scaled run are noisier.
 */
export const BENCH_SCALE = ((): number => {
  const raw = process.env.FLEXNODE_BENCH_SCALE
  const s = raw === undefined ? 1 : Number(raw)
  if (!Number.isFinite(s) || s <= 0 || s > 1) throw new Error(`FLEXNODE_BENCH_SCALE must be a number in (0, 1], got ${JSON.stringify(raw)}`)
  return s
})()

const budget = (opts: MeasureOptions): bigint => BigInt(Math.round((opts.budgetMs ?? 2000) * BENCH_SCALE * NS_PER_MS))
const warmupOf = (opts: MeasureOptions): number => Math.max(1, Math.round((opts.warmup ?? 50) * BENCH_SCALE))

export function percentile (sortedMs: Float64Array, p: number): number {
  if (sortedMs.length === 0) return Number.NaN
  const rank = Math.min(sortedMs.length - 1, Math.max(0, Math.ceil(p / 100 * sortedMs.length) - 1))
  return sortedMs[rank] ?? Number.NaN
}

/** CPU time of this process since `from` (a `process.cpuUsage()` reading), in ms. */
function cpuMsSince (from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from)
  return (d.user + d.system) / 1000
}

function result (opts: MeasureOptions, concurrency: number, latNs: number[], elapsedNs: bigint, cpuMs: number): BenchResult {
  const lat = Float64Array.from(latNs, ns => ns / NS_PER_MS).sort()
  const seconds = Number(elapsedNs) / 1e9
  const units = opts.unitsPerOp ?? 1
  return {
    cpuMsPerOp: cpuMs / (lat.length * units),
    id: opts.id,
    name: opts.name,
    group: opts.group,
    concurrency,
    ops: lat.length,
    unitsPerOp: units,
    seconds,
    opsPerSec: lat.length * units / seconds,
    p50Ms: percentile(lat, 50),
    p95Ms: percentile(lat, 95),
    ...(opts.note !== undefined ? { note: opts.note } : {})
  }
}

/** Time a synchronous operation, one at a time (no promise overhead in the loop). */
export function measureSync (opts: MeasureOptions & { fn: (i: number) => void }): BenchResult {
  const { fn } = opts
  for (let i = 0; i < warmupOf(opts); i++) fn(i)
  const budgetNs = budget(opts)
  const maxOps = opts.maxOps ?? 1_000_000
  const lat: number[] = []
  const cpu = process.cpuUsage()
  const start = process.hrtime.bigint()
  let now = start
  for (let i = 0; i < maxOps && now - start < budgetNs; i++) {
    const t0 = now
    fn(i)
    now = process.hrtime.bigint()
    lat.push(Number(now - t0))
  }
  return result(opts, 1, lat, now - start, cpuMsSince(cpu))
}

/** Time an asynchronous operation with `concurrency` callers, each awaiting one call at a time. */
export async function measureAsync (opts: MeasureOptions & { fn: (i: number) => Promise<unknown>, concurrency?: number }): Promise<BenchResult> {
  const { fn } = opts
  const concurrency = opts.concurrency ?? 1
  const warmup = warmupOf(opts)
  let next = 0
  const workers = async (until: () => boolean, onDone: (ns: number) => void): Promise<void> => {
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (!until()) {
        const i = next++
        const t0 = process.hrtime.bigint()
        await fn(i)
        onDone(Number(process.hrtime.bigint() - t0))
      }
    }))
  }
  await workers(() => next >= warmup, () => {})
  const budgetNs = budget(opts)
  const maxOps = opts.maxOps ?? 1_000_000
  const lat: number[] = []
  let started = 0
  const cpu = process.cpuUsage()
  const start = process.hrtime.bigint()
  await workers(() => {
    if (started >= maxOps || process.hrtime.bigint() - start >= budgetNs) return true
    started++
    return false
  }, (ns) => { lat.push(ns) })
  return result(opts, concurrency, lat, process.hrtime.bigint() - start, cpuMsSince(cpu))
}

// -- formatting ------------------------------------------------------------------------------

export function fmtNum (n: number, digits = 0): string {
  if (!Number.isFinite(n)) return '-'
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

export function fmtMs (ms: number): string {
  if (!Number.isFinite(ms)) return '-'
  return ms < 0.1 ? ms.toFixed(4) : ms < 10 ? ms.toFixed(3) : ms.toFixed(1)
}

export function fmtRatio (r: number): string {
  if (!Number.isFinite(r)) return '-'
  return r >= 10 ? `${r.toFixed(1)}x` : r >= 0.1 ? `${r.toFixed(3)}x` : `${r.toFixed(4)}x`
}

/** A plain-text table; columns right-aligned except the first. */
export function table (header: string[], rows: string[][]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map(r => (r[c] ?? '').length)))
  const line = (cells: string[]): string => cells.map((cell, c) => c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0)).join('  ')
  return [line(header), widths.map(w => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}
