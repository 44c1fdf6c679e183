/**
 * The node's Prometheus metrics (`prom-client`), in a Registry of its own (never the global one:
 * several nodes share a process in tests), every name prefixed `flexnode_`, plus the default
 * process metrics. Gauges read the capabilities' existing stats getters when scraped (`observe`
 * hands them over once they exist); counters and histograms of events are fed where the event
 * happens, through a hook each capability declares and this service implements (`inference` from
 * the inference plane's audit hook, `generation` from the engine's `onGeneration`, `resources`
 * and `memory` from those capabilities' `onEvent`, `httpRequest` from the HTTP core, `zomeCall`
 * from the in-process client). Cumulative stats that a capability already counts (the DHT's
 * `totals` and `ops`, retention's `pruned`, presence, memory…) become counters that advance by
 * their delta.
 *
 * ```ts
 * const m = metrics()({})
 * m.observe({ models: () => engine.listModels(), presence: () => dht.presence.stats })
 * m.httpRequest('GET', 200, 0.004)
 * const text = await m.registry.metrics()   // Prometheus text format
 * ```
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { ArcStatus } from '../conductor/network/authorities.ts'
import type { PresenceStats } from '../conductor/network/presence.ts'
import type { OpStats, SyncStats } from '../conductor/network/types.ts'
import type { ArtifactsStats } from '../artifacts/index.ts'
import type { AuditStats } from '../audit/index.ts'
import type { GenerationObserver, InferenceAudit, ModelInfo } from '../inference/types.ts'
import type { MemoryStats } from '../memory/index.ts'
import type { MemoryEvent } from '../memory/types.ts'
import type { PromptCacheStats } from '../memory/prompt-cache.ts'
import type { ResourcesEvent } from '../resources/types.ts'
import { service, type Service } from '../service.ts'

/** Every metric's name starts with this. */
export const METRIC_PREFIX = 'flexnode_'
/** Request latency buckets, seconds. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
/** MOE consensus score buckets (a score is in [0, 1]). */
const SCORE_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]

/** What the gauges read when scraped; each is optional (a source not handed over is not reported). */
export interface MetricsSources {
  /** mesh peers with a connection now */
  connectedPeers?: () => number
  /** live presence records, ours included */
  livePeers?: () => number
  presence?: () => Readonly<PresenceStats>
  /** anti-entropy totals since start (records are DHT ops received) */
  dht?: () => SyncStats
  /** DHT records (ops) this node published, and received ones validation rejected */
  ops?: () => OpStats
  /** DHT records (ops) deleted by retention's pruning passes */
  pruned?: () => number
  arc?: () => ArcStatus
  droppedGossip?: () => number
  models?: () => ModelInfo[]
  allocations?: () => Promise<{ held: Array<{ live: boolean }>, provided: unknown[] }>
  memory?: () => MemoryStats & { capacity: number }
  /** points held in this node's shard replicas */
  vectors?: () => Promise<number>
  promptCache?: () => PromptCacheStats | undefined
  artifacts?: () => ArtifactsStats
  pins?: () => Promise<unknown[]>
  audit?: () => AuditStats
}

export interface MetricsInit {
  /** collect the default process metrics (CPU, memory, event loop, GC). @default true */
  defaultMetrics?: boolean
}

export type MetricsComponents = Record<string, never>

export interface MetricsService extends Service {
  readonly registry: Registry
  /** hand over the gauges' sources (called again, it adds to them) */
  observe: (sources: MetricsSources) => void
  /** the inference plane's audit events: requests, tokens and latency per model, MOE consensus */
  inference: InferenceAudit
  /** one HTTP request answered */
  httpRequest: (method: string, status: number, seconds: number) => void
  /** one zome call of this node's agent code answered (`ok`) or failed */
  zomeCall: (seconds: number, ok: boolean) => void
  /** one generation of this node's engine (whoever asked: the HTTP API, a peer, an MOE vote, a lease) */
  generation: GenerationObserver
  /** the resources capability's events: leases refused, WASM tasks run */
  resources: (event: ResourcesEvent) => void
  /** the vector memory's events: searches */
  memory: (event: MemoryEvent) => void
  /** the Prometheus text of every metric */
  text: () => Promise<string>
}

const num = (v: unknown): number => typeof v === 'number' && Number.isFinite(v) ? v : 0

/** The node's metrics as a service: nothing to start; `stop` stops nothing (the registry lives as long as the node). */
export function metrics (init: MetricsInit = {}): (components: MetricsComponents) => MetricsService {
  return () => {
    const registry = new Registry()
    const src: MetricsSources = {}
    const p = METRIC_PREFIX
    if (init.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: p })

    /** A gauge whose values are read when scraped. */
    const gauge = <L extends string>(name: string, help: string, labelNames: L[], read: (set: (labels: Partial<Record<L, string>>, v: number) => void) => void | Promise<void>): void => {
      const g: Gauge<L> = new Gauge({
        name: p + name,
        help,
        labelNames,
        registers: [registry],
        async collect () {
          g.reset()
          await read((labels, v) => { g.set(labels, v) })
        }
      })
    }
    /** A counter that follows a total some capability keeps (advancing by its delta when scraped). */
    const follow = <L extends string>(name: string, help: string, labelNames: L[], read: () => Array<[Partial<Record<L, string>>, number]> | undefined): void => {
      const last = new Map<string, number>()
      const c: Counter<L> = new Counter({
        name: p + name,
        help,
        labelNames,
        registers: [registry],
        collect () {
          for (const [labels, v] of read() ?? []) {
            const key = JSON.stringify(labels)
            const delta = v - (last.get(key) ?? 0)
            last.set(key, v)
            if (delta > 0) c.inc(labels, delta)
            else c.inc(labels, 0)
          }
        }
      })
    }

    // the mesh and the DHT
    gauge('peers', 'mesh peers by state: connected (a live connection), online (a live presence record, ours excluded)', ['state'], (set) => {
      if (src.connectedPeers !== undefined) set({ state: 'connected' }, src.connectedPeers())
      if (src.livePeers !== undefined) set({ state: 'online' }, Math.max(0, src.livePeers() - 1))
    })
    follow('presence_received_total', 'presence records received', [], () => src.presence === undefined ? undefined : [[{}, src.presence().received]])
    follow('presence_accepted_total', 'presence records received and accepted', [], () => src.presence === undefined ? undefined : [[{}, src.presence().accepted]])
    follow('presence_published_total', 'presence records this node signed and sent', [], () => src.presence === undefined ? undefined : [[{}, src.presence().published]])
    follow('presence_dropped_total', 'presence records dropped, by reason', ['reason'], () => src.presence === undefined ? undefined : Object.entries(src.presence().drops).map(([reason, n]) => [{ reason }, n]))
    follow('dht_ops_received_total', 'DHT records (ops) received by anti-entropy sync', [], () => src.dht === undefined ? undefined : [[{}, src.dht().records]])
    follow('dht_ops_published_total', 'DHT records (ops) of local commits this node published, on gossip or to authorities (republishes included)', [], () => src.ops === undefined ? undefined : [[{}, src.ops().published]])
    follow('dht_ops_rejected_total', 'DHT records (ops) received that failed validation (their authors warranted)', [], () => src.ops === undefined ? undefined : [[{}, src.ops().rejected]])
    follow('dht_ops_pruned_total', 'DHT records (ops) deleted by retention\'s pruning passes (networks that prune)', [], () => src.pruned === undefined ? undefined : [[{}, src.pruned()]])
    follow('dht_sync_requests_total', 'anti-entropy sync requests made', [], () => src.dht === undefined ? undefined : [[{}, src.dht().requests]])
    follow('dht_sync_bytes_total', 'anti-entropy bytes, by direction', ['direction'], () => src.dht === undefined ? undefined : [[{ direction: 'sent' }, src.dht().bytesSent], [{ direction: 'received' }, src.dht().bytesReceived]])
    follow('gossip_dropped_total', 'gossip messages dropped by the per-peer rate limit', [], () => src.droppedGossip === undefined ? undefined : [[{}, src.droppedGossip()]])
    gauge('dht_arc_sectors', 'sectors (of 512) of this node\'s storage arc', [], (set) => { if (src.arc !== undefined) set({}, src.arc().sectors) })
    gauge('dht_arc_authorities', 'the fewest authorities seen for any sector of this node\'s arc', [], (set) => { if (src.arc !== undefined) set({}, src.arc().authoritiesSeen) })

    // inference
    gauge('inference_tokens_per_second', 'measured generation speed of a loaded model\'s last requests', ['model'], (set) => {
      for (const m of src.models?.() ?? []) if (m.loaded && m.tokens_per_second !== null) set({ model: m.id }, m.tokens_per_second)
    })
    gauge('inference_queue_depth', 'requests waiting for a free slot, per model', ['model'], (set) => { for (const m of src.models?.() ?? []) if (m.loaded) set({ model: m.id }, m.queue_depth) })
    gauge('inference_in_flight', 'requests being served now, per model', ['model'], (set) => { for (const m of src.models?.() ?? []) if (m.loaded) set({ model: m.id }, m.in_flight) })
    gauge('models_loaded', 'models loaded in this node\'s engine', [], (set) => { if (src.models !== undefined) set({}, src.models().filter(m => m.loaded).length) })
    const inferenceRequests = new Counter({ name: `${p}inference_requests_total`, help: 'mesh inference requests: served for a peer, or asked by this node (single query), by model and outcome', labelNames: ['model', 'role', 'outcome'], registers: [registry] })
    const inferenceTokens = new Counter({ name: `${p}inference_tokens_total`, help: 'tokens of mesh inference requests, by model, role and kind (prompt, completion)', labelNames: ['model', 'role', 'kind'], registers: [registry] })
    const inferenceSeconds = new Histogram({ name: `${p}inference_request_seconds`, help: 'latency of mesh inference requests, per model and role', labelNames: ['model', 'role'], buckets: LATENCY_BUCKETS, registers: [registry] })
    const generations = new Counter({ name: `${p}inference_generations_total`, help: 'generations this node\'s engine ran (for the HTTP API, peers, MOE votes, leases), by model, op (chat, complete) and outcome', labelNames: ['model', 'op', 'outcome'], registers: [registry] })
    const generationSeconds = new Histogram({ name: `${p}inference_generation_seconds`, help: 'latency of the generations this node\'s engine completed, per model (queueing included)', labelNames: ['model'], buckets: LATENCY_BUCKETS, registers: [registry] })
    const moeQueries = new Counter({ name: `${p}moe_queries_total`, help: 'MOE queries this node ran, by whether the votes reached consensus', labelNames: ['consensus'], registers: [registry] })
    const moeScore = new Histogram({ name: `${p}moe_consensus_score`, help: 'consensus score of MOE queries', buckets: SCORE_BUCKETS, registers: [registry] })

    // resources
    gauge('allocations', 'leases: held by this node (live) and provided by it', ['side'], async (set) => {
      if (src.allocations === undefined) return
      const a = await src.allocations()
      set({ side: 'held' }, a.held.filter(l => l.live).length)
      set({ side: 'provided' }, a.provided.length)
    })

    const refused = new Counter({ name: `${p}allocations_refused_total`, help: 'leases refused: by this node as provider (reason: the ledger\'s), or asked by it and granted by no node (reason: the error\'s name)', labelNames: ['side', 'reason'], registers: [registry] })
    const wasmTasks = new Counter({ name: `${p}wasm_tasks_total`, help: 'WASM compute tasks this node ran under its leases, by outcome (ok, exit_nonzero, trap, memory_limit, cpu_limit, timeout, output_limit, invalid_module, module_not_found, invalid_input, aborted, error)', labelNames: ['outcome'], registers: [registry] })

    // vector memory and the prompt cache
    gauge('memory_vectors', 'points (vectors) held in this node\'s shard replicas, every replica counted', [], async (set) => { if (src.vectors !== undefined) set({}, await src.vectors()) })
    const searchSeconds = new Histogram({ name: `${p}memory_search_seconds`, help: 'latency of the vector searches this node ran across the mesh (embedding a text query included)', buckets: LATENCY_BUCKETS, registers: [registry] })
    gauge('memory_shard_capacity', 'shard replicas this node offers to host', [], (set) => { if (src.memory !== undefined) set({}, src.memory().capacity) })
    gauge('memory_shards_hosted', 'shard replicas this node hosts', [], (set) => { if (src.memory !== undefined) set({}, src.memory().replicas) })
    follow('memory_points_moved_total', 'points received while copying shards moved here', [], () => src.memory === undefined ? undefined : [[{}, src.memory().points_moved]])
    follow('memory_points_synced_total', 'points replica sync fetched from co-replicas', [], () => src.memory === undefined ? undefined : [[{}, src.memory().points_synced]])
    follow('memory_hedged_searches_total', 'searches that also asked a shard\'s other replica', [], () => src.memory === undefined ? undefined : [[{}, src.memory().hedged_searches]])
    follow('prompt_cache_lookups_total', 'prompt cache lookups, by result (hit_exact, hit_semantic, miss)', ['result'], () => {
      const s = src.promptCache?.()
      return s === undefined ? undefined : [[{ result: 'hit_exact' }, s.hits_exact], [{ result: 'hit_semantic' }, s.hits_semantic], [{ result: 'miss' }, s.misses]]
    })
    gauge('prompt_cache_entries', 'answers the prompt cache holds', [], (set) => { const s = src.promptCache?.(); if (s !== undefined) set({}, s.entries) })

    // artifacts
    gauge('artifact_pins', 'artifacts this node pins', [], async (set) => { if (src.pins !== undefined) set({}, (await src.pins()).length) })
    follow('artifact_replication_total', 'replication actions, by action (pin_started, pin_completed, pin_failed, unpin)', ['action'], () => {
      const s = src.artifacts?.()
      return s === undefined ? undefined : [[{ action: 'pin_started' }, s.pins_started], [{ action: 'pin_completed' }, s.pins_completed], [{ action: 'pin_failed' }, s.pins_failed], [{ action: 'unpin' }, s.unpins]]
    })

    // the audit outbox
    gauge('audit_outbox_records', 'the audit outbox\'s last record number', [], (set) => { if (src.audit !== undefined) set({}, src.audit().head?.seq ?? 0) })
    gauge('audit_outbox_depth', 'audit records not yet shipped to Postgres (0 without a shipper)', [], (set) => { const s = src.audit?.(); if (s !== undefined) set({}, s.shipper?.depth ?? 0) })
    gauge('audit_shipping_lag_seconds', 'age of the oldest unshipped audit record', [], (set) => { const s = src.audit?.(); if (s !== undefined) set({}, (s.shipper?.lag_ms ?? 0) / 1000) })

    // the HTTP API
    const httpRequests = new Counter({ name: `${p}http_requests_total`, help: 'HTTP API requests answered, by method and status', labelNames: ['method', 'status'], registers: [registry] })
    const httpSeconds = new Histogram({ name: `${p}http_request_seconds`, help: 'HTTP API request latency (until the answer ends), by method', labelNames: ['method'], buckets: LATENCY_BUCKETS, registers: [registry] })

    // the conductor
    const zomeCalls = new Counter({ name: `${p}zome_calls_total`, help: 'zome calls this node\'s agent code made (in-process client), by outcome', labelNames: ['outcome'], registers: [registry] })
    const zomeSeconds = new Histogram({ name: `${p}zome_call_seconds`, help: 'latency of the zome calls this node\'s agent code makes (in-process client)', buckets: LATENCY_BUCKETS, registers: [registry] })

    const inference: InferenceAudit = (event) => {
      const d = event.detail
      if (event.kind === 'moe') {
        moeQueries.inc({ consensus: d.consensus === true ? 'yes' : 'no' })
        if (typeof d.consensus_score === 'number') moeScore.observe(d.consensus_score)
        return
      }
      // served: a peer's request this node answered; otherwise this node's own single query
      const role = d.served === undefined ? 'asked' : 'served'
      const model = event.subject ?? 'unknown'
      const failed = d.served === false || d.error !== undefined
      inferenceRequests.inc({ model, role, outcome: failed ? 'error' : 'ok' })
      if (failed) return
      inferenceTokens.inc({ model, role, kind: 'prompt' }, num(d.prompt_tokens))
      inferenceTokens.inc({ model, role, kind: 'completion' }, num(d.completion_tokens))
      if (typeof d.latency_ms === 'number') inferenceSeconds.observe({ model, role }, d.latency_ms / 1000)
    }

    return {
      ...service({ start: async () => {}, stop: () => {} }),
      registry,
      observe: (sources) => { Object.assign(src, sources) },
      inference,
      httpRequest: (method, status, seconds) => {
        const m = ['GET', 'HEAD', 'POST', 'DELETE'].includes(method) ? method : 'other'
        httpRequests.inc({ method: m, status: String(status) })
        httpSeconds.observe({ method: m }, seconds)
      },
      zomeCall: (seconds, ok) => {
        zomeCalls.inc({ outcome: ok ? 'ok' : 'error' })
        zomeSeconds.observe(seconds)
      },
      generation: (e) => {
        generations.inc({ model: e.model, op: e.op, outcome: e.ok ? 'ok' : 'error' })
        if (e.ok) generationSeconds.observe({ model: e.model }, e.seconds)
      },
      resources: (e) => {
        if (e.kind === 'allocation_refused') refused.inc({ side: e.side, reason: e.reason })
        else wasmTasks.inc({ outcome: e.outcome })
      },
      memory: (e) => { searchSeconds.observe(e.seconds) },
      text: async () => await registry.metrics()
    }
  }
}
