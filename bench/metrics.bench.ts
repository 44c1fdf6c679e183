/**
 * What `/metrics` scraping costs under inference load: tokens/s of a generation loop through one
 * node's HTTP API (`POST /v1/completions`, one request after another, greedy, fixed seed, the
 * prompt cache off so every request runs the model) without any scrape, and with a
 * Prometheus-style scrape of `GET /metrics` every second, measured in alternating rounds so drift
 * hits both alike; printed as a ratio (1.000x: scraping costs nothing).
 *
 * The model is the `bench` preset (`tiny` when `FLEXNODE_BENCH_SCALE` < 0.1), generated once into
 * `<tmpdir>/flexnode-bench-models/`. Figures only: nothing is asserted.
 */
import { mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { ensureModel, type PresetName } from '../fixtures/gguf/index.ts'
import { createTestAgent } from '../fixtures/index.ts'
import { BENCH_SCALE, fmtMs, fmtNum, fmtRatio, percentile, type Report } from './util.ts'

const SMALL = BENCH_SCALE < 0.1
const PRESET: PresetName = SMALL ? 'tiny' : 'bench'
const MODELS_CACHE = join(tmpdir(), 'flexnode-bench-models', PRESET, 'metrics')
const PROMPT = 'The quick brown fox jumps over the lazy dog. Once upon a time'
const MAX_TOKENS = SMALL ? 16 : 64
/** alternating rounds of each kind, and how long each round generates */
const ROUNDS = SMALL ? 1 : 3
const ROUND_MS = SMALL ? 2500 : 10_000
const SCRAPE_INTERVAL_MS = 1000

interface Round { tokens: number, ms: number }

export async function run (report: Report): Promise<void> {
  await mkdir(MODELS_CACHE, { recursive: true })
  const model = basename(await ensureModel(MODELS_CACHE, PRESET, 1), '.gguf')
  await using agent = await createTestAgent({ modelsDirs: [MODELS_CACHE], preloadModels: true, sequences: 1, threads: 1, heartbeatIntervalSeconds: 10 })
  const base = `http://127.0.0.1:${agent.node.info.http_port}`
  const generate = async (): Promise<number> => {
    const res = await fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0, seed: 42, cache: 'off' }) })
    if (!res.ok) throw new Error(`completion failed: HTTP ${res.status} ${await res.text()}`)
    return (await res.json() as { usage: { completion_tokens: number } }).usage.completion_tokens
  }
  const scrapeMs: number[] = []
  let scrapeBytes = 0
  const scrape = async (): Promise<void> => {
    const t = performance.now()
    const res = await fetch(`${base}/metrics`)
    scrapeBytes = (await res.text()).length
    if (!res.ok) throw new Error(`/metrics answered HTTP ${res.status}`)
    scrapeMs.push(performance.now() - t)
  }

  /** Generate for ROUND_MS, one request after another; with `scraping`, a scrape every second meanwhile. */
  const round = async (scraping: boolean): Promise<Round> => {
    let failed: unknown
    const timer = scraping ? setInterval(() => { scrape().catch((err: unknown) => { failed = err }) }, SCRAPE_INTERVAL_MS) : undefined
    const started = performance.now()
    let tokens = 0
    try {
      while (performance.now() - started < ROUND_MS) tokens += await generate()
    } finally {
      clearInterval(timer)
    }
    if (failed !== undefined) throw failed
    return { tokens, ms: performance.now() - started }
  }

  await generate() // warm-up, untimed
  await scrape()
  scrapeMs.length = 0
  const without: Round[] = []
  const withScrape: Round[] = []
  for (let i = 0; i < ROUNDS; i++) {
    // alternate which kind goes first, so a drift of the machine's speed is shared
    if (i % 2 === 0) {
      without.push(await round(false))
      withScrape.push(await round(true))
    } else {
      withScrape.push(await round(true))
      without.push(await round(false))
    }
  }
  const rate = (rs: Round[]): number => rs.reduce((t, r) => t + r.tokens, 0) / (rs.reduce((t, r) => t + r.ms, 0) / 1000)
  const plain = rate(without)
  const scraped = rate(withScrape)
  const sorted = Float64Array.from(scrapeMs).sort()
  const line = `metrics: tokens/s of a generation loop through the HTTP API (${model}, ${MAX_TOKENS} tokens a request): without /metrics scraping ${fmtNum(plain, 1)}, ` +
    `with a scrape every 1 s ${fmtNum(scraped, 1)} = ${fmtRatio(scraped / plain)}; ${scrapeMs.length} scrapes of ${fmtNum(scrapeBytes / 1024, 1)} KiB, p50 ${fmtMs(percentile(sorted, 50))} ms, p95 ${fmtMs(percentile(sorted, 95))} ms`
  report.log(`  ${line}`)
  report.note(line)
}
