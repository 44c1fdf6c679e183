/**
 * Inference on the generated ~58M-parameter model (`fixtures/gguf` preset `bench`, F32, one CPU
 * thread per model), by layer, each against node-llama-cpp called directly:
 *
 * 1. direct: node-llama-cpp itself (`LlamaCompletion` on one sequence of a context shaped like the
 *    engine's: same context size, same number of sequences, 1 thread), greedy, fixed seed;
 * 2. local HTTP: `POST /v1/completions` on a node that holds the model (non-streaming: tokens/s
 *    from `usage.completion_tokens` over the request's wall time; streaming SSE: TTFT = ms to the
 *    first data event carrying text, tokens/s from the `include_usage` chunk);
 * 3. remote peer: the same requests on a node that does not hold the model, routed over loopback
 *    libp2p to one of the two nodes that hold it (`/flexstack/local/inference/1`);
 * 4. concurrency: 8 clients at once through the remote peer (spread over both holders, 2
 *    sequences each) against 8 concurrent direct generations (one context of 8 sequences), as
 *    aggregate tokens/s;
 * 5. MOE: `POST /v1/moe/query` over 5 distinct models (the same preset, seeds 1-5) on the 3 nodes
 *    (a: seeds 1, 2; b: seeds 1, 3; c, the asking node: seeds 4, 5), the `ripple-moe` policy's
 *    min_parallel, against the sum of the same single calls made one after another
 *    (`POST /v1/inference/single` for each vote's model).
 *
 * The direct calls run once more while the three players are up ("direct, 3 players running"),
 * so the players' background work in this process is told apart from what the API adds.
 * Every figure is wall time of the whole call, prompt evaluation included, and each path gets
 * one untimed warm-up call. Models are generated once into `<tmpdir>/flexnode-bench-models/` and
 * reused. `FLEXNODE_BENCH_SCALE` < 0.1 uses the tiny model, 16 tokens and one sample per path.
 */
import { mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { getLlama, LlamaCompletion, LlamaLogLevel } from 'node-llama-cpp'
import { encodeHash } from '../agent/src/holo/hash.ts'
import { DEFAULT_CONTEXT_SIZE, DEFAULT_SEQUENCES } from '../agent/src/inference/constants.ts'
import { ensureModel, PRESETS, type PresetName } from '../fixtures/gguf/index.ts'
import { Scenario, waitUntil, type Player } from '../tryorama/src/index.ts'
import type { NodeCapability } from '../zomes-ts/agent_registry/types.ts'
import { BENCH_SCALE, fmtMs, fmtNum, fmtRatio, percentile, table, type BenchResult, type Report } from './util.ts'

const SMALL = BENCH_SCALE < 0.1
const PRESET: PresetName = SMALL ? 'tiny' : 'bench'
const MODELS_CACHE = join(tmpdir(), 'flexnode-bench-models', PRESET)
const MODEL_SEED = 1
/** the MOE's other experts: the same preset with other seeds, one directory each */
const EXPERT_SEEDS = [2, 3, 4, 5] as const
const expertDir = (seed: number): string => join(MODELS_CACHE, `expert-seed${seed}`)
/** concurrent clients of the concurrency case */
const CONCURRENT = 8
const PROMPT = 'The quick brown fox jumps over the lazy dog. Once upon a time'
const SEED = 42
const MAX_TOKENS = SMALL ? 16 : 64
const SAMPLES = SMALL ? 1 : 5
/** requests of each path when the paths are measured in turns */
const INTERLEAVED_SAMPLES = SMALL ? 1 : 10
const MOE_PROMPT = 'Write one short line.'
const MOE_TOKENS = SMALL ? 8 : 16
const MOE_SAMPLES = SMALL ? 1 : 3
const GROUP = 'inference'
/**
 * The agent's production intervals (heartbeat 10 s, anti-entropy 5 s, republish 15 s), not
 * tryorama's test ones: a heartbeat every 3600 s lets the registry report the holders offline
 * 30 s after they start (heartbeat TTL), and sync every 500 ms is background load no deployed
 * node carries. All three players share this process (one event loop, two cores).
 */
const PLAYER = { heartbeatIntervalSeconds: 10, syncIntervalMs: 5000, republishIntervalMs: 15_000 } as const

interface Sample { ms: number, tokens: number, ttftMs: number }

interface PathFigures {
  id: string
  name: string
  samples: Sample[]
  /** TTFT was measured (direct and streaming calls) */
  streamed: boolean
  /** p99 event-loop delay of this process while the path was measured, ms */
  loopP99Ms: number
}

const pct = (xs: number[], p: number): number => percentile(Float64Array.from(xs).sort(), p)
const sumOf = (xs: number[]): number => xs.reduce((a, b) => a + b, 0)
const tps = (f: PathFigures): number => sumOf(f.samples.map(s => s.tokens)) / (sumOf(f.samples.map(s => s.ms)) / 1000)
const ttft = (f: PathFigures): number => f.streamed ? pct(f.samples.map(s => s.ttftMs), 50) : Number.NaN

/** One row of the main table: ops = generated tokens, p50/p95 = wall ms per token of one request. */
function tokenResult (f: PathFigures): BenchResult {
  const tokens = sumOf(f.samples.map(s => s.tokens))
  const seconds = sumOf(f.samples.map(s => s.ms)) / 1000
  const perToken = f.samples.map(s => s.ms / Math.max(1, s.tokens))
  return {
    id: f.id,
    name: f.name,
    group: GROUP,
    concurrency: 1,
    ops: tokens,
    unitsPerOp: 1,
    seconds,
    opsPerSec: tokens / seconds,
    p50Ms: pct(perToken, 50),
    p95Ms: pct(perToken, 95),
    note: `ops = generated tokens (${f.samples.length} requests of max ${MAX_TOKENS}), p50/p95 = wall ms per token of a request` +
      (f.streamed ? `; TTFT p50 ${fmtMs(ttft(f))} ms` : '') + `; event-loop delay p99 ${fmtMs(f.loopP99Ms)} ms`
  }
}

/** `samples` timed calls after one untimed warm-up, and the event-loop delay p99 during them. */
async function sample (n: number, fn: () => Promise<Sample>): Promise<{ samples: Sample[], loopP99Ms: number }> {
  await fn()
  const loop = monitorEventLoopDelay({ resolution: 5 })
  loop.enable()
  try {
    const samples: Sample[] = []
    for (let i = 0; i < n; i++) samples.push(await fn())
    return { samples, loopP99Ms: loop.percentile(99) / 1e6 }
  } finally {
    loop.disable()
  }
}

// -- 1. node-llama-cpp directly --------------------------------------------------------------

/** A node-llama-cpp context of its own on the bench model: `once` is one timed greedy completion. */
async function openDirect (modelPath: string): Promise<{ once: () => Promise<Sample>, dispose: () => Promise<void> }> {
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error })
  try {
    const model = await llama.loadModel({ modelPath, gpuLayers: 0 })
    const trained = model.trainContextSize
    const context = await model.createContext({ contextSize: Math.min(DEFAULT_CONTEXT_SIZE, trained > 0 ? trained : Infinity), sequences: DEFAULT_SEQUENCES, threads: 1 })
    const sequence = context.getSequence()
    const once = async (): Promise<Sample> => {
      await sequence.clearHistory()
      const completion = new LlamaCompletion({ contextSequence: sequence })
      try {
        let tokens = 0
        let first = -1
        const t0 = performance.now()
        await completion.generateCompletionWithMeta(PROMPT, {
          maxTokens: MAX_TOKENS,
          temperature: 0,
          seed: SEED,
          onTextChunk: () => { if (first < 0) first = performance.now() },
          onToken: (t) => { tokens += t.length }
        })
        const end = performance.now()
        return { ms: end - t0, tokens, ttftMs: (first < 0 ? end : first) - t0 }
      } finally {
        completion.dispose({ disposeSequence: false })
      }
    }
    return { once, dispose: async () => { await llama.dispose() } }
  } catch (err) {
    await llama.dispose()
    throw err
  }
}

async function direct (modelPath: string, id: string, name: string): Promise<PathFigures> {
  const d = await openDirect(modelPath)
  try {
    return { id, name, ...await sample(SAMPLES, d.once), streamed: true }
  } finally {
    await d.dispose()
  }
}

/**
 * The paths measured in turns (one request of each, again and again), so a drift of the
 * machine's speed (a noisy neighbour, the clock) weighs on every path alike.
 */
async function interleaved (paths: Array<{ id: string, name: string, streamed: boolean, once: () => Promise<Sample> }>, n: number): Promise<PathFigures[]> {
  for (const p of paths) await p.once()
  const loop = monitorEventLoopDelay({ resolution: 5 })
  loop.enable()
  try {
    const samples = paths.map(() => [] as Sample[])
    for (let i = 0; i < n; i++) for (const [j, p] of paths.entries()) samples[j]!.push(await p.once())
    const loopP99Ms = loop.percentile(99) / 1e6
    return paths.map((p, j) => ({ id: p.id, name: p.name, streamed: p.streamed, samples: samples[j]!, loopP99Ms }))
  } finally {
    loop.disable()
  }
}

// -- 2./3. HTTP ------------------------------------------------------------------------------

const url = (p: Player, path: string): string => `http://127.0.0.1:${p.node.info.http_port}${path}`

async function post (p: Player, path: string, body: unknown): Promise<Response> {
  const res = await fetch(url(p, path), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (res.status !== 200) throw new Error(`${p.name} POST ${path}: HTTP ${res.status} ${await res.text()}`)
  return res
}

interface Usage { completion_tokens: number }

/** A greedy completion request; `cache: 'off'`: the same request repeated must run the model every time (this measures generation, not the prompt cache). */
function completionBody (model: string, stream: boolean): object {
  return { model, prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0, seed: SEED, stream, cache: 'off', ...(stream ? { stream_options: { include_usage: true } } : {}) }
}

async function completeOnce (p: Player, model: string): Promise<Sample> {
  const t0 = performance.now()
  const res = await post(p, '/v1/completions', completionBody(model, false))
  const body = await res.json() as { usage?: Usage }
  const ms = performance.now() - t0
  if (body.usage === undefined) throw new Error('a completion without usage')
  return { ms, tokens: body.usage.completion_tokens, ttftMs: Number.NaN }
}

async function streamOnce (p: Player, model: string): Promise<Sample> {
  const t0 = performance.now()
  const res = await post(p, '/v1/completions', completionBody(model, true))
  if (res.body === null) throw new Error('a streaming response without a body')
  const decoder = new TextDecoder()
  let buffered = ''
  let first = -1
  let tokens = -1
  let done = false
  const onEvent = (data: string): void => {
    if (data === '[DONE]') { done = true; return }
    const ev = JSON.parse(data) as { choices?: Array<{ text?: string }>, usage?: Usage, error?: { message?: string } }
    if (ev.error !== undefined) throw new Error(`stream failed: ${ev.error.message ?? JSON.stringify(ev.error)}`)
    if (first < 0 && (ev.choices?.[0]?.text ?? '').length > 0) first = performance.now()
    if (ev.usage !== undefined) tokens = ev.usage.completion_tokens
  }
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true })
    let nl: number
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trimEnd()
      buffered = buffered.slice(nl + 1)
      if (line.startsWith('data: ')) onEvent(line.slice(6))
    }
  }
  const end = performance.now()
  if (!done) throw new Error('the stream ended without [DONE]')
  if (tokens < 0) throw new Error('the stream carried no usage chunk')
  return { ms: end - t0, tokens, ttftMs: (first < 0 ? end : first) - t0 }
}

/** Wait until `viewer` sees every listed player advertising its loaded models and is connected to it. */
async function seesModels (viewer: Player, players: Player[]): Promise<void> {
  await waitUntil(async () => {
    const caps = await viewer.cells.agent_registry!.callZome<NodeCapability[]>('discovery', 'query_peers', { availability: ['online', 'busy'] })
    return players.every(p => {
      const cap = caps.find(c => c.node_id === encodeHash(p.agentPubKey))
      const want = p.node.inference.listModels().filter(m => m.loaded).map(m => m.id)
      return cap !== undefined && want.length > 0 && want.every(m => cap.capabilities.inference.models_loaded.includes(m)) && viewer.node.mesh.peers().includes(p.peerId)
    })
  }, { what: 'the model holders\' advertised models', timeoutMs: 60_000, intervalMs: 250 })
}

// -- 4. MOE ----------------------------------------------------------------------------------

interface MoeVote { model: string, node: string, latency_ms: number, error?: string }

interface MoeFigures {
  wallMs: number[]
  singlesMs: number[]
  votes: number
  models: number
  nodes: number
  failed: number
  singleTokens: number[]
  /** the slowest vote of each query, as the router timed it */
  slowestVoteMs: number[]
}

async function moe (c: Player): Promise<MoeFigures> {
  const out: MoeFigures = { wallMs: [], singlesMs: [], votes: 0, models: 0, nodes: 0, failed: 0, singleTokens: [], slowestVoteMs: [] }
  for (let i = 0; i <= MOE_SAMPLES; i++) {
    const warm = i === 0
    const t0 = performance.now()
    const res = await post(c, '/v1/moe/query', { prompt: MOE_PROMPT, task_type: 'general', max_tokens: MOE_TOKENS })
    const body = await res.json() as { model_votes: MoeVote[] }
    const wall = performance.now() - t0
    // the same (model) calls, one after another
    let singles = 0
    for (const v of body.model_votes) {
      const s0 = performance.now()
      const r = await post(c, '/v1/inference/single', { prompt: MOE_PROMPT, model: v.model, max_tokens: MOE_TOKENS })
      const single = await r.json() as { usage?: Usage }
      singles += performance.now() - s0
      if (!warm) out.singleTokens.push(single.usage?.completion_tokens ?? Number.NaN)
    }
    if (warm) continue
    out.wallMs.push(wall)
    out.slowestVoteMs.push(Math.max(...body.model_votes.map(v => v.latency_ms)))
    out.singlesMs.push(singles)
    out.votes = body.model_votes.length
    out.models = new Set(body.model_votes.map(v => v.model)).size
    out.nodes = new Set(body.model_votes.map(v => v.node)).size
    out.failed += body.model_votes.filter(v => v.error !== undefined).length
  }
  return out
}

function moeResult (id: string, name: string, ms: number[], note: string): BenchResult {
  const seconds = sumOf(ms) / 1000
  return { id, name, group: GROUP, concurrency: 1, ops: ms.length, unitsPerOp: 1, seconds, opsPerSec: ms.length / seconds, p50Ms: pct(ms, 50), p95Ms: pct(ms, 95), note }
}

// -- 4. concurrency -----------------------------------------------------------------------------

interface Round { ms: number, tokens: number }

/** `CONCURRENT` greedy completions at once on one context of that many sequences; one warm-up round first. */
async function directConcurrent (modelPath: string, rounds: number): Promise<Round[]> {
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error })
  try {
    const model = await llama.loadModel({ modelPath, gpuLayers: 0 })
    const trained = model.trainContextSize
    const context = await model.createContext({ contextSize: Math.min(DEFAULT_CONTEXT_SIZE, trained > 0 ? trained : Infinity), sequences: CONCURRENT, threads: 1 })
    const sequences = Array.from({ length: CONCURRENT }, () => context.getSequence())
    const round = async (): Promise<Round> => {
      const t0 = performance.now()
      const counts = await Promise.all(sequences.map(async (sequence) => {
        await sequence.clearHistory()
        const completion = new LlamaCompletion({ contextSequence: sequence })
        try {
          let tokens = 0
          await completion.generateCompletionWithMeta(PROMPT, { maxTokens: MAX_TOKENS, temperature: 0, seed: SEED, onToken: (t) => { tokens += t.length } })
          return tokens
        } finally {
          completion.dispose({ disposeSequence: false })
        }
      }))
      return { ms: performance.now() - t0, tokens: sumOf(counts) }
    }
    await round()
    const out: Round[] = []
    for (let i = 0; i < rounds; i++) out.push(await round())
    return out
  } finally {
    await llama.dispose()
  }
}

/** `CONCURRENT` clients at once on `p`'s `/v1/completions`; one warm-up round first. */
async function remoteConcurrent (p: Player, model: string, rounds: number): Promise<Round[]> {
  const round = async (): Promise<Round> => {
    const t0 = performance.now()
    const samples = await Promise.all(Array.from({ length: CONCURRENT }, async () => await completeOnce(p, model)))
    return { ms: performance.now() - t0, tokens: sumOf(samples.map(x => x.tokens)) }
  }
  await round()
  const out: Round[] = []
  for (let i = 0; i < rounds; i++) out.push(await round())
  return out
}

function concurrentResult (id: string, name: string, rounds: Round[]): BenchResult {
  const tokens = sumOf(rounds.map(r => r.tokens))
  const seconds = sumOf(rounds.map(r => r.ms)) / 1000
  return {
    id,
    name,
    group: GROUP,
    concurrency: CONCURRENT,
    ops: tokens,
    unitsPerOp: 1,
    seconds,
    opsPerSec: tokens / seconds,
    p50Ms: pct(rounds.map(r => r.ms), 50),
    p95Ms: pct(rounds.map(r => r.ms), 95),
    note: `ops = generated tokens of ${rounds.length} round(s) of ${CONCURRENT} concurrent requests × max ${MAX_TOKENS} tokens; p50/p95 = wall ms of one round`
  }
}

// -- run ---------------------------------------------------------------------------------------

export async function run (report: Report): Promise<void> {
  await mkdir(MODELS_CACHE, { recursive: true })
  const t0 = performance.now()
  const modelPath = await ensureModel(MODELS_CACHE, PRESET, MODEL_SEED)
  const modelId = basename(modelPath, '.gguf')
  for (const seed of EXPERT_SEEDS) await ensureModel(expertDir(seed), PRESET, seed)
  report.log(`  inference: model ${modelId} (${PRESET}, dim ${PRESETS[PRESET].dim} × ${PRESETS[PRESET].layers} layers, F32) ready in ${fmtNum(performance.now() - t0)} ms`)

  const paths: PathFigures[] = []
  let base: PathFigures | undefined
  try {
    base = await direct(modelPath, 'inference.direct', 'node-llama-cpp direct')
    paths.push(base)
    report.add(tokenResult(base))
  } catch (err) {
    report.fail('inference: node-llama-cpp direct', err)
  }

  let moeFigures: MoeFigures | undefined
  let concurrency: { direct?: Round[], remote?: Round[] } = {}
  const scenario = new Scenario()
  try {
    const s0 = performance.now()
    const a = await scenario.addPlayer({ ...PLAYER, modelsDirs: [MODELS_CACHE, expertDir(2)] })
    const b = await scenario.addPlayer({ ...PLAYER, modelsDirs: [MODELS_CACHE, expertDir(3)] })
    // the asking node holds two experts of the MOE, not the model of the single-model paths
    const c = await scenario.addPlayer({ ...PLAYER, modelsDirs: [expertDir(4), expertDir(5)] })
    for (const p of [a, b]) {
      if (!p.node.inference.listModels().some(m => m.id === modelId && m.loaded)) throw new Error(`${p.name} did not preload ${modelId}`)
    }
    const up = performance.now()
    await seesModels(c, [a, b])
    report.log(`  inference: 3 players up in ${fmtNum((up - s0) / 1000, 1)} s (2 holding the model, 5 distinct models in all), the third sees both ${fmtNum((performance.now() - up) / 1000, 1)} s later`)

    // the same direct calls while the three players run in this process, in turns with the
    // API and mesh paths: their background work (and the sharing of two cores) apart from what
    // the API and the mesh add
    try {
      const d = await openDirect(modelPath)
      try {
        const measured = await interleaved([
          { id: 'inference.direct.players-up', name: 'direct, 3 players running', streamed: true, once: d.once },
          { id: 'inference.http.local', name: 'local HTTP /v1/completions', streamed: false, once: async () => await completeOnce(a, modelId) },
          { id: 'inference.http.local.sse', name: 'local HTTP /v1/completions SSE', streamed: true, once: async () => await streamOnce(a, modelId) },
          { id: 'inference.mesh.remote', name: 'remote peer via libp2p', streamed: false, once: async () => await completeOnce(c, modelId) },
          { id: 'inference.mesh.remote.sse', name: 'remote peer via libp2p SSE', streamed: true, once: async () => await streamOnce(c, modelId) }
        ], INTERLEAVED_SAMPLES)
        for (const f of measured) {
          paths.push(f)
          report.add(tokenResult(f))
        }
      } finally {
        await d.dispose()
      }
    } catch (err) {
      report.fail('inference: direct, HTTP and remote paths with the players up', err)
    }

    try {
      const rounds = SMALL ? 1 : 3
      concurrency = { direct: await directConcurrent(modelPath, rounds) }
      report.add(concurrentResult('inference.direct.concurrent', `direct, ${CONCURRENT} concurrent generations`, concurrency.direct!))
      concurrency.remote = await remoteConcurrent(c, modelId, rounds)
      report.add(concurrentResult('inference.mesh.remote.concurrent', `remote peer, ${CONCURRENT} concurrent clients`, concurrency.remote))
    } catch (err) {
      report.fail('inference: concurrent clients', err)
    }

    try {
      moeFigures = await moe(c)
      const m = moeFigures
      report.add(moeResult('inference.moe.fanout', `MOE /v1/moe/query (${m.votes} votes)`, m.wallMs, `ops = MOE queries of ${m.votes} votes (${m.models} distinct models) × max ${MOE_TOKENS} tokens on ${m.nodes} nodes; p50/p95 = wall ms of one query`))
      report.add(moeResult('inference.moe.singles', `MOE: the same ${m.votes} singles in sequence`, m.singlesMs, `ops = rounds of ${m.votes} sequential /v1/inference/single calls × max ${MOE_TOKENS} tokens; p50/p95 = wall ms of one round`))
    } catch (err) {
      report.fail('inference: MOE fan-out', err)
    }
  } catch (err) {
    report.fail('inference: scenario', err)
  } finally {
    await scenario.cleanUp()
  }

  // -- the section --
  const baseTps = base === undefined ? Number.NaN : tps(base)
  const baseTtft = base === undefined ? Number.NaN : ttft(base)
  // the paths measured in turns with the direct calls, against those (same time, same load)
  const inTurns = paths.find(f => f.id === 'inference.direct.players-up')
  const nowTps = inTurns === undefined ? Number.NaN : tps(inTurns)
  const rows = paths.map(f => {
    const t = ttft(f)
    const turned = f !== base
    return [f.name, fmtNum(tps(f), 1), fmtRatio(tps(f) / baseTps), turned ? fmtRatio(tps(f) / nowTps) : '-', fmtMs(t), f === base || !f.streamed ? '-' : `${t - baseTtft >= 0 ? '+' : '-'}${fmtMs(Math.abs(t - baseTtft))}`, fmtMs(f.loopP99Ms)]
  })
  report.log('')
  report.log(`  inference, ${modelId}: max ${MAX_TOKENS} tokens per request, greedy, 1 thread per model, wall time incl. prompt; direct alone ${SAMPLES} requests, ` +
    `then ${INTERLEAVED_SAMPLES} requests of each other path measured in turns ("vs direct in turns": against the direct calls made in those same turns)`)
  report.log(table(['path', 'tokens/s', 'vs direct', 'vs direct in turns', 'TTFT ms', 'added TTFT', 'loop p99 ms'], rows).split('\n').map(l => `  ${l}`).join('\n'))
  const summary = paths.map(f => `${f.name} ${fmtNum(tps(f), 1)} tok/s (${fmtRatio(tps(f) / baseTps)}${f !== base ? `, ${fmtRatio(tps(f) / nowTps)} in turns` : ''})` + (f.streamed ? ` TTFT ${fmtMs(ttft(f))} ms` : '')).join('; ')
  report.note(`inference: ${modelId}, ${SAMPLES} × max ${MAX_TOKENS} tokens: ${summary}`)
  if (concurrency.direct !== undefined && concurrency.remote !== undefined) {
    const rate = (rs: Round[]): number => sumOf(rs.map(r => r.tokens)) / (sumOf(rs.map(r => r.ms)) / 1000)
    const direct = rate(concurrency.direct)
    const remote = rate(concurrency.remote)
    const line = `${CONCURRENT} concurrent clients through a remote peer (2 holders × ${DEFAULT_SEQUENCES} sequences): ${fmtNum(remote, 1)} tok/s aggregate vs ${CONCURRENT} concurrent direct generations ${fmtNum(direct, 1)} tok/s = ${fmtRatio(remote / direct)}`
    report.log(`  ${line}`)
    report.note(`inference: ${line}`)
  }
  if (moeFigures !== undefined) {
    const m = moeFigures
    const wall = pct(m.wallMs, 50)
    const singles = pct(m.singlesMs, 50)
    const line = `MOE: ${m.votes} votes of ${m.models} distinct models (${PRESET}, seeds 1-5) on ${m.nodes} nodes (${m.failed} failed), max ${MOE_TOKENS} tokens: wall p50 ${fmtMs(wall)} ms vs sum of the same ${m.votes} singles in sequence p50 ${fmtMs(singles)} ms = ${fmtRatio(wall / singles)} ` +
      `(${m.wallMs.length} samples; slowest vote p50 ${fmtMs(pct(m.slowestVoteMs, 50))} ms; singles generated ${fmtNum(pct(m.singleTokens, 50))} tokens p50)`
    report.log(`  ${line}`)
    report.note(`inference: ${line}`)
  }
  report.log(`  inference: ${fmtNum((performance.now() - t0) / 1000, 1)} s in all`)
  report.log('')
}
