/**
 * `npm run bench`: runs every `bench/*.bench.ts` module (each exports `async function run(report)`)
 * in name order, then prints one table with ops/s, latency percentiles and ratios against the
 * baselines measured in this same run, and writes `bench/results/latest.json`.
 * `npm run bench -- metrics inference` runs only the modules whose names start with those words
 * (the baselines' module always runs: the ratios need it); such a partial run writes
 * `bench/results/partial.json` instead.
 *
 * Figures only: nothing here asserts on times. The exit code is non-zero only if a case threw.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { ED25519, SQLITE_TX1 } from './baseline.bench.ts'
import { fmtMs, fmtNum, fmtRatio, table, type BenchResult, type Report } from './util.ts'

const HERE = dirname(fileURLToPath(import.meta.url))
const RESULTS = join(HERE, 'results', 'latest.json')

interface BenchModule { run: (report: Report) => Promise<void> }

function errorText (err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err)
}

async function main (): Promise<void> {
  const all = (await readdir(HERE)).filter(f => f.endsWith('.bench.ts')).sort()
  const only = process.argv.slice(2)
  const unknown = only.filter(o => !all.some(f => f.startsWith(o)))
  if (unknown.length > 0) {
    console.error(`no benchmark named ${unknown.join(', ')}; there are ${all.map(f => f.slice(0, -'.bench.ts'.length)).join(', ')}`)
    process.exitCode = 2
    return
  }
  const files = only.length === 0 ? all : all.filter(f => f === 'baseline.bench.ts' || only.some(o => f.startsWith(o)))
  const cpus = os.cpus()
  const env = {
    node: process.version,
    platform: `${process.platform} ${os.release()} ${process.arch}`,
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism(),
    date: new Date().toISOString()
  }
  console.log(`flexnode bench — node ${env.node} on ${env.platform}`)
  console.log(`cpu: ${env.cpu} × ${env.cores} cores; ram ${fmtNum(os.totalmem() / 2 ** 30, 1)} GiB`)
  console.log('')

  const results: BenchResult[] = []
  const notes: string[] = []
  const failures: Array<{ name: string, error: string }> = []
  const report: Report = {
    add: (r) => {
      results.push(r)
      console.log(`  ${r.name.padEnd(44)} ${fmtNum(r.opsPerSec).padStart(12)} ops/s  p50 ${fmtMs(r.p50Ms)} ms  p95 ${fmtMs(r.p95Ms)} ms  (${fmtNum(r.ops)} ops in ${r.seconds.toFixed(2)} s)`)
    },
    note: (text) => { notes.push(text) },
    log: (text) => { console.log(text) },
    fail: (name, err) => {
      failures.push({ name, error: errorText(err) })
      console.log(`  ${name}: FAILED — ${err instanceof Error ? err.message : String(err)}`)
    }
  }

  const started = process.hrtime.bigint()
  for (const file of files) {
    console.log(`${file}`)
    try {
      const mod = await import(pathToFileURL(join(HERE, file)).href) as Partial<BenchModule>
      if (typeof mod.run !== 'function') throw new Error(`${file} does not export run(report)`)
      await mod.run(report)
    } catch (err) {
      report.fail(file, err)
    }
  }
  const totalSeconds = Number(process.hrtime.bigint() - started) / 1e9

  const sqlite = results.find(r => r.id === SQLITE_TX1)?.opsPerSec ?? Number.NaN
  const ed = results.find(r => r.id === ED25519)?.opsPerSec ?? Number.NaN
  const rows = results.map(r => ({ ...r, vsSqliteTx1: r.opsPerSec / sqlite, vsEd25519: r.opsPerSec / ed }))

  console.log('')
  console.log(table(
    ['name', 'ops/s', 'p50 ms', 'p95 ms', 'vs sqlite 1/tx', 'vs sign+verify'],
    rows.map(r => [r.name, fmtNum(r.opsPerSec), fmtMs(r.p50Ms), fmtMs(r.p95Ms), fmtRatio(r.vsSqliteTx1), fmtRatio(r.vsEd25519)])
  ))
  console.log('')
  console.log('ratios: ops/s of the row ÷ ops/s of the baseline, both measured in this run (higher is faster).')
  for (const r of rows) if (r.note !== undefined) console.log(`${r.name}: ${r.note}`)
  for (const n of notes) console.log(n)
  console.log(`total ${totalSeconds.toFixed(1)} s`)

  const out = only.length === 0 ? RESULTS : join(dirname(RESULTS), 'partial.json')
  await mkdir(dirname(out), { recursive: true })
  await writeFile(out, JSON.stringify({ env, only, totalSeconds, baselines: { [SQLITE_TX1]: sqlite, [ED25519]: ed }, results: rows, notes, failures }, null, 2) + '\n')
  console.log(`results written to ${out}`)

  if (failures.length > 0) {
    console.log('')
    for (const f of failures) console.log(`FAILED ${f.name}\n${f.error}`)
    process.exitCode = 1
  }
}

await main()
