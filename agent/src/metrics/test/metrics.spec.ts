/**
 * `GET /metrics` on a real node (the generated demo model loaded): the answer parses as
 * Prometheus text (with a parser, not a regex), every family is `flexnode_`-prefixed and the
 * default process metrics are there; after real work (a chat completion, a mesh single query, an
 * allocation; an allocation no node can hold, a WASM task that runs and one that traps, vectors
 * inserted and searched) the counters have moved. Two nodes in one process keep separate registries.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format'
import { createTestAgent, type TestAgent } from '../../../../fixtures/index.ts'
import { buildWasmFixtures } from '../../../../fixtures/wasm.ts'
import { metrics } from '../index.ts'

const scrape = async (port: number): Promise<PrometheusFamily[]> => {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`)
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  return parsePrometheusTextFormat(await res.text())
}

const family = (families: PrometheusFamily[], name: string): PrometheusFamily => {
  const f = families.find(x => x.name === name)
  if (f === undefined) throw new Error(`no metric ${name}`)
  return f
}

/**
 * The sum of a family's samples whose labels include `labels` (0 when none); a histogram's
 * observations counted by its `+Inf` bucket (the parser keeps neither the labels nor the count of a
 * labelled histogram, and merges its series: only a histogram with one series is counted right).
 */
const total = (families: PrometheusFamily[], name: string, labels: Record<string, string> = {}): number =>
  family(families, name).metrics
    .filter(m => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
    .reduce((t, m) => t + Number(m.value ?? m.count ?? m.buckets?.['+Inf'] ?? 0), 0)

describe('GET /metrics', () => {
  let agent: TestAgent
  let port: number

  beforeAll(async () => {
    agent = await createTestAgent({ generateDefaultModel: true, preloadModels: true, heartbeatIntervalSeconds: 1, memory: { shardCapacity: 4, threads: 1 } })
    port = agent.node.info.http_port
  }, 180_000)

  afterAll(async () => { await agent?.[Symbol.asyncDispose]() })

  it('parses as Prometheus text: flexnode_ names, the default process metrics, the issue\'s families', async () => {
    const families = await scrape(port)
    for (const f of families) expect(f.name, f.name).toMatch(/^flexnode_/)
    const names = new Set(families.map(f => f.name))
    for (const name of [
      'flexnode_process_cpu_user_seconds_total', 'flexnode_process_resident_memory_bytes', 'flexnode_nodejs_eventloop_lag_seconds',
      'flexnode_peers', 'flexnode_presence_received_total', 'flexnode_presence_dropped_total', 'flexnode_dht_ops_received_total', 'flexnode_dht_arc_sectors',
      'flexnode_inference_tokens_per_second', 'flexnode_inference_queue_depth', 'flexnode_inference_request_seconds', 'flexnode_inference_requests_total',
      'flexnode_moe_consensus_score', 'flexnode_allocations', 'flexnode_memory_shards_hosted', 'flexnode_prompt_cache_lookups_total',
      'flexnode_artifact_pins', 'flexnode_zome_call_seconds', 'flexnode_audit_outbox_depth', 'flexnode_audit_shipping_lag_seconds', 'flexnode_http_requests_total', 'flexnode_http_request_seconds',
      'flexnode_dht_ops_published_total', 'flexnode_dht_ops_rejected_total', 'flexnode_dht_ops_pruned_total',
      'flexnode_inference_generations_total', 'flexnode_inference_generation_seconds',
      'flexnode_allocations_refused_total', 'flexnode_wasm_tasks_total', 'flexnode_memory_vectors', 'flexnode_memory_search_seconds'
    ]) expect(names.has(name), name).toBe(true)
    for (const name of ['flexnode_inference_generation_seconds', 'flexnode_memory_search_seconds']) expect(family(families, name).type, name).toBe('HISTOGRAM')
    for (const name of ['flexnode_dht_ops_published_total', 'flexnode_allocations_refused_total', 'flexnode_wasm_tasks_total']) expect(family(families, name).type, name).toBe('COUNTER')
    expect(family(families, 'flexnode_memory_vectors').type).toBe('GAUGE')
    expect(family(families, 'flexnode_inference_request_seconds').type).toBe('HISTOGRAM')
    expect(family(families, 'flexnode_http_requests_total').type).toBe('COUNTER')
    expect(total(families, 'flexnode_dht_arc_sectors')).toBe(512)
    const model = agent.node.inference.listModels().find(m => m.loaded)!.id
    expect(family(families, 'flexnode_inference_queue_depth').metrics.map(m => m.labels?.model)).toContain(model)
  })

  it('its counters move when work is done', async () => {
    const model = agent.node.inference.listModels().find(m => m.loaded)!.id
    const before = await scrape(port)
    const post = async (path: string, body: unknown): Promise<Response> => await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

    const chat = await post('/v1/chat/completions', { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 })
    expect(chat.status).toBe(200)
    const single = await post('/v1/inference/single', { prompt: 'the', max_tokens: 3 })
    expect(single.status, await single.clone().text()).toBe(200)
    const alloc = await post('/v1/resources/allocate', { resource_type: 'compute', requirements: { cpu_cores: 1 }, duration_seconds: 60 })
    expect(alloc.status, await alloc.clone().text()).toBe(200)

    const after = await scrape(port)
    // the scrape before, the chat, the single query, the allocation: at least 4 more answered requests
    expect(total(after, 'flexnode_http_requests_total', { method: 'POST', status: '200' }) - total(before, 'flexnode_http_requests_total', { method: 'POST', status: '200' })).toBeGreaterThanOrEqual(3)
    expect(total(after, 'flexnode_inference_request_seconds')).toBe(total(before, 'flexnode_inference_request_seconds') + 1)
    expect(total(after, 'flexnode_inference_requests_total', { role: 'asked', outcome: 'ok' })).toBe(total(before, 'flexnode_inference_requests_total', { role: 'asked', outcome: 'ok' }) + 1)
    expect(total(after, 'flexnode_inference_tokens_total', { kind: 'completion' })).toBeGreaterThan(total(before, 'flexnode_inference_tokens_total', { kind: 'completion' }))
    expect(total(after, 'flexnode_inference_tokens_per_second', { model })).toBeGreaterThan(0)
    // the engine's own generations, whoever asked: the HTTP chat completion and the single query (served here)
    expect(total(after, 'flexnode_inference_generations_total', { model, op: 'chat', outcome: 'ok' })).toBe(total(before, 'flexnode_inference_generations_total', { model, op: 'chat', outcome: 'ok' }) + 2)
    expect(total(after, 'flexnode_inference_generation_seconds')).toBe(total(before, 'flexnode_inference_generation_seconds') + 2)
    expect(total(after, 'flexnode_allocations', { side: 'held' })).toBe(total(before, 'flexnode_allocations', { side: 'held' }) + 1)
    // the allocation's zome calls were counted and timed
    expect(total(after, 'flexnode_zome_calls_total', { outcome: 'ok' })).toBeGreaterThan(total(before, 'flexnode_zome_calls_total', { outcome: 'ok' }))
    expect(total(after, 'flexnode_zome_call_seconds')).toBeGreaterThan(total(before, 'flexnode_zome_call_seconds'))
    // the chain writes of the allocation went through the audit outbox
    expect(total(after, 'flexnode_audit_outbox_records')).toBeGreaterThan(total(before, 'flexnode_audit_outbox_records'))
    // presence: this node's own heartbeats (every second here) are published
    expect(total(after, 'flexnode_presence_published_total')).toBeGreaterThanOrEqual(total(before, 'flexnode_presence_published_total'))
  }, 120_000)

  it('counts leases refused, WASM tasks by outcome, vectors held and searched, DHT ops published', async () => {
    const { node } = agent
    const wasm = await buildWasmFixtures()
    const before = await scrape(port)

    // no node of this one-node mesh has 4096 cores: no node grants it
    await expect(node.resources.allocate({ resource_type: 'compute', requirements: { cpu_cores: 4096 }, duration_seconds: 60 })).rejects.toMatchObject({ name: 'NoCapacityError' })
    // a task that runs to its end, and one that traps (each under a compute lease of this node, released after)
    const ran = await node.resources.scheduleTask({ wasm: wasm.echo, input: new TextEncoder().encode('hi') })
    expect(ran.exit_code).toBe(0)
    await expect(node.resources.scheduleTask({ wasm: wasm.trap })).rejects.toMatchObject({ name: 'WasmTrapError' })
    // three points into a collection whose every shard this node hosts, then one search
    await node.memory.createCollection({ name: 'metrics', dimensions: 3, distance: 'cosine', shard_count: 2 })
    await node.memory.upsert('metrics', [{ id: 'a', vector: [1, 0, 0] }, { id: 'b', vector: [0, 1, 0] }, { id: 'c', vector: [0, 0, 1] }], { write_consistency: 'one' })
    const found = await node.memory.search('metrics', { vector: [1, 0, 0], k: 2 })
    expect(found.results[0]?.id).toBe('a')

    const after = await scrape(port)
    const moved = (name: string, labels: Record<string, string> = {}): number => total(after, name, labels) - total(before, name, labels)
    expect(moved('flexnode_allocations_refused_total', { side: 'requester', reason: 'NoCapacityError' })).toBe(1)
    expect(moved('flexnode_wasm_tasks_total', { outcome: 'ok' })).toBe(1)
    expect(moved('flexnode_wasm_tasks_total', { outcome: 'trap' })).toBe(1)
    expect(moved('flexnode_memory_vectors')).toBe(3)
    expect(moved('flexnode_memory_search_seconds')).toBe(1)
    // the task leases and the collection are chain writes, each published on the DHT's gossip
    expect(moved('flexnode_dht_ops_published_total')).toBeGreaterThan(0)
    expect(moved('flexnode_dht_ops_rejected_total')).toBe(0)
  }, 120_000)

  it('keeps one registry per node', async () => {
    const a = metrics({ defaultMetrics: true })({})
    const b = metrics({ defaultMetrics: true })({})
    a.httpRequest('GET', 200, 0.01)
    const parsedA = parsePrometheusTextFormat(await a.text())
    const parsedB = parsePrometheusTextFormat(await b.text())
    expect(total(parsedA, 'flexnode_http_requests_total')).toBe(1)
    expect(total(parsedB, 'flexnode_http_requests_total')).toBe(0)
  })
})
