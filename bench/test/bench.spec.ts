/**
 * Keeps the README's `npm run bench` working: a scaled-down run must finish and print every
 * figure with its ratios. Times are not asserted (benchmarks never pass or fail on speed).
 */
import { describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { REPO_ROOT } from '../../fixtures/index.ts'

describe('npm run bench', () => {
  it('refuses a benchmark name that names no module, listing those there are', async () => {
    const proc = spawn('npm', ['run', '--silent', 'bench', '--', 'metrics', 'no-such-bench'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    proc.stderr.setEncoding('utf8').on('data', (d: string) => { err += d })
    const code = await new Promise<number | null>(resolve => proc.on('exit', resolve))
    expect(code).toBe(2)
    expect(err).toMatch(/no benchmark named no-such-bench; there are [^\n]*\bmetrics\b/)
  })

  it('runs end to end and prints ratios against the same-run baselines', async () => {
    const proc = spawn('npm', ['run', 'bench'], { cwd: REPO_ROOT, env: { ...process.env, FLEXNODE_BENCH_SCALE: '0.02' }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    proc.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
    proc.stderr.setEncoding('utf8').on('data', (d: string) => { out += d })
    const code = await new Promise<number | null>(resolve => proc.on('exit', resolve))
    expect(code, out).toBe(0)
    for (const row of ['sqlite INSERT, 1 per tx', 'ed25519', 'in-process write', 'in-process read', 'websocket write', 'websocket read']) {
      expect(out).toMatch(new RegExp(`${row}[^\\n]*\\d+\\.\\d+x`))
    }
    expect(out).toContain('vs sqlite 1/tx')
    // the inference section: 8 concurrent clients as a ratio to 8 direct generations, MOE over 5 distinct models
    expect(out).toMatch(/8 concurrent clients through a remote peer[^\n]*= \d+\.\d+x/)
    expect(out).toMatch(/MOE: 5 votes of 5 distinct models [^\n]* on 3 nodes \(0 failed\)/)
    // the presence section: an idle node's chain actions and database bytes per hour beside the heartbeat Updates of before
    expect(out).toMatch(/presence: idle hour per node[^\n]*\d+ chain actions[^\n]*baseline[^\n]*presence ÷ baseline: chain actions \d+\.\d+x, database bytes \d+\.\d+x/)
    // the memory section: one idle node's peak RSS with the demo model and with none
    expect(out).toMatch(/peak RSS of one idle node without a model \(--no-demo-model\): \d+ MiB[^\n]*\d+\.\d+x a bare node process/)
    // the DHT simulation: two mesh sizes, each with its per-node and mesh figures (each line is
    // printed as it comes and again among the notes, hence distinct lines)
    const distinct = (re: RegExp): number => new Set(out.match(re) ?? []).size
    expect(distinct(/dht sim [\d,]+ nodes: ops validated per node [^\n]*gossip [\d.,]+ KiB\/s[^\n]*/g)).toBe(2)
    expect(distinct(/dht sim [\d,]+ nodes: presence [\d.,]+ KiB\/s[^\n]*/g)).toBe(2)
    expect(distinct(/dht sim [\d,]+ nodes: a capability change reaches 99% of nodes in [\d,]+ ms[^\n]*10% leave → \d+\.\d+%, 30% leave → \d+\.\d+%/g)).toBe(2)
    // placement: decisions per second at two mesh sizes, and packing against FFD and the lower bound
    expect(distinct(/scheduler: [\d,]+ decisions\/s over [\d,]+ synthetic nodes[^\n]*\d+\.\d+x\)/g)).toBe(2)
    expect(out).toMatch(/scheduler packing: [\d,]+ compute requests [^\n]*binpack ÷ lower bound \d+\.\d+x[^\n]*FFD ÷ lower bound \d+\.\d+x/)
    // WASM tasks: a heavy pure task through the wasm pool as a ratio to the same module run in process, and the fixed cost per task
    expect(out).toMatch(/wasm: a heavy pure task of [\d.]+ ms through the pool ÷ WebAssembly\.instantiate \+ run\(\) in process = \d+\.\d+x \(goal ≥ 0\.9\); fixed overhead per task through the pool p50 [\d.]+ ms, p95 [\d.]+ ms/)
    // leases: allocate→commit to a remote provider, and the heavy task through schedule_task locally and on a remote peer
    expect(out).toMatch(/resources: allocate→commit to a remote provider p50 [\d.]+ ms, p95 [\d.]+ ms/)
    // vector memory: one index against the 3-node mesh (16 shards, RF 2): insert and queries/s at the same recall, and a fourth node's rebalance
    expect(out).toMatch(/vector memory: one hnswlib index in process, [\d,]+ × 128: insert \d+ vectors\/s; ef 16: recall \d\.\d+, \d+ q\/s/)
    expect(out).toMatch(/vector memory: mesh of 3 nodes \(16 shards, RF 2\) through one node: insert \d+ vectors\/s = \d+\.\d+x one index/)
    expect(out).toMatch(/vector memory: queries\/s at recall ≥ 0\.95 [^\n]*mesh ÷ one index = \d+\.\d+x \(goal ≥ 0\.5\); with 8 mesh queries in flight \d+ q\/s = \d+\.\d+x/)
    expect(out).toMatch(/vector memory: a fourth node joins: rebalanced in [\d.]+ s [^\n]*\d+ shard copies, [\d.]+ MiB received; per 100,000 vectors [\d.]+ s and [\d.]+ MiB/)
    expect(out).toMatch(/resources: a heavy pure WASM task of [\d.]+ ms through schedule_task ÷ WebAssembly\.instantiate \+ run\(\) in process: local \d+\.\d+x, remote peer \d+\.\d+x \(goal ≥ 0\.9\); fixed overhead per task \(lease, run, release\) local p50 [\d.]+ ms p95 [\d.]+ ms, remote p50 [\d.]+ ms p95 [\d.]+ ms/)
    // artifacts: add and get of the embedded store against raw sha256, and a peer's fetch against the local get
    expect(out).toMatch(/artifacts: a [\d,.]+ MB file in the embedded Helia store: add [\d,.]+ MB\/s = \d+\.\d+x raw sha256 [^\n]*get [\d,.]+ MB\/s = \d+\.\d+x \(goal ≥ 0\.5\); fetched by a peer over loopback [\d,.]+ MB\/s = \d+\.\d+x the local get/)
    // audit: records shipped into Postgres per second against the goal, and the added cost per audited zome call
    expect(out).toMatch(/audit: [\d,]+ records\/s shipped into Postgres, goal ≥ 10,000 \(\d+\.\d+x of it\)/)
    expect(out).toMatch(/audit: an audited write zome call runs at \d+\.\d+x of the rate without/)
    // metrics: tokens/s of a generation loop with and without a /metrics scrape every second, as a ratio
    expect(out).toMatch(/metrics: tokens\/s of a generation loop through the HTTP API [^\n]*without \/metrics scraping [\d,.]+, with a scrape every 1 s [\d,.]+ = \d+\.\d+x; \d+ scrapes of [\d.,]+ KiB, p50 [\d.]+ ms, p95 [\d.]+ ms/)
    expect(out).toMatch(/peak RSS of one idle node with the demo model loaded: \d+ MiB[^\n]*\d+\.\d+x the node without a model/)
  }, 420_000)
})
