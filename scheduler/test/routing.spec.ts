import { describe, it, expect } from 'vitest'
import { createSeededRng, rankProviders, rankProvidersWithScores, scoreProvider } from '../index.ts'
import type { ProviderCandidate } from '../index.ts'

const MODEL = 'qwen3-4b'

function candidate (node_id: string, patch: Partial<ProviderCandidate> = {}): ProviderCandidate {
  return {
    node_id,
    self: false,
    models_loaded: [MODEL],
    models_available: [MODEL],
    availability: 'online',
    load: { cpu_percent: 20, gpu_percent: 20 },
    queue_depth: 0,
    tokens_per_second: 50,
    latency_region: 'us-west',
    ...patch
  }
}

function order (candidates: ProviderCandidate[], region?: string): string[] {
  return rankProviders(candidates, region === undefined ? { model: MODEL } : { model: MODEL, region }).map(c => c.node_id)
}

describe('rankProviders', () => {
  it('puts a node with the model loaded before a faster, idle one that has it only on disk', () => {
    const loaded = candidate('a-loaded', { load: { cpu_percent: 70, gpu_percent: 60 }, tokens_per_second: 20 })
    const onDisk = candidate('b-disk', { models_loaded: [], tokens_per_second: 500, load: { cpu_percent: 0, gpu_percent: 0 } })
    expect(order([onDisk, loaded])).toEqual(['a-loaded', 'b-disk'])
  })

  it('leaves out nodes that have neither the model loaded nor on disk', () => {
    const other = candidate('other', { models_loaded: ['phi-4-mini'], models_available: ['phi-4-mini'] })
    expect(order([other, candidate('a')])).toEqual(['a'])
    expect(rankProviders([other], { model: MODEL })).toEqual([])
  })

  it('puts online before busy, and leaves out offline and draining nodes', () => {
    const busy = candidate('a-busy', { availability: 'busy', load: { cpu_percent: 0, gpu_percent: 0 }, tokens_per_second: 300 })
    const online = candidate('b-online', { load: { cpu_percent: 90, gpu_percent: 90 } })
    const offline = candidate('c-offline', { availability: 'offline' })
    const draining = candidate('d-draining', { availability: 'draining' })
    expect(order([offline, busy, draining, online])).toEqual(['b-online', 'a-busy'])
  })

  it('prefers a shorter queue, then a lower load', () => {
    const queued = candidate('a-queued', { queue_depth: 2, load: { cpu_percent: 5, gpu_percent: 5 } })
    const loaded = candidate('b-loaded', { queue_depth: 0, load: { cpu_percent: 95, gpu_percent: 10 } })
    const idle = candidate('c-idle', { queue_depth: 0, load: { cpu_percent: 10, gpu_percent: 5 } })
    expect(order([queued, loaded, idle])).toEqual(['c-idle', 'b-loaded', 'a-queued'])
  })

  it('counts the busier of CPU and GPU as the load', () => {
    const gpuBound = candidate('a-gpu', { load: { cpu_percent: 5, gpu_percent: 90 } })
    const calm = candidate('b-calm', { load: { cpu_percent: 40, gpu_percent: 40 } })
    expect(order([gpuBound, calm])).toEqual(['b-calm', 'a-gpu'])
  })

  it('prefers higher measured tokens/s when load is comparable (same load bucket)', () => {
    const slow = candidate('a-slow', { tokens_per_second: 20, load: { cpu_percent: 41, gpu_percent: 0 } })
    const fast = candidate('b-fast', { tokens_per_second: 150, load: { cpu_percent: 48, gpu_percent: 0 } })
    const unmeasured = candidate('c-new', { tokens_per_second: null, load: { cpu_percent: 40, gpu_percent: 0 } })
    expect(order([slow, unmeasured, fast])).toEqual(['b-fast', 'a-slow', 'c-new'])
  })

  it('prefers the requester\'s region, then the requester itself', () => {
    const far = candidate('a-far', { latency_region: 'eu-west' })
    const near = candidate('b-near', { latency_region: 'us-east' })
    const self = candidate('c-self', { latency_region: 'us-east', self: true })
    expect(order([far, near, self], 'us-east')).toEqual(['c-self', 'b-near', 'a-far'])
    // without a region, self still wins the last tie
    expect(order([far, self, near])).toEqual(['c-self', 'a-far', 'b-near'])
  })

  it('breaks full ties by node_id, whatever the input order', () => {
    const nodes = ['n3', 'n1', 'n4', 'n2', 'n0'].map(id => candidate(id))
    const rng = createSeededRng(7)
    for (let round = 0; round < 10; round++) {
      const shuffled = [...nodes].sort(() => rng() - 0.5)
      expect(order(shuffled)).toEqual(['n0', 'n1', 'n2', 'n3', 'n4'])
    }
  })

  it('puts a node where the model is a real one before a node where it is a demo (random-weight) model', () => {
    const demo = candidate('a-demo', { demo_models: [MODEL], load: { cpu_percent: 0, gpu_percent: 0 }, tokens_per_second: 900 })
    const real = candidate('b-real', { load: { cpu_percent: 90, gpu_percent: 0 }, queue_depth: 2 })
    expect(order([demo, real])).toEqual(['b-real', 'a-demo'])
    // the demo copy still serves when it is the only one
    expect(order([demo])).toEqual(['a-demo'])
    expect(scoreProvider(demo, { model: MODEL }).explanation).toContain('demo')
  })

  it('spreads concurrent requests: each request in flight counts as queued work', () => {
    // what PeerInference does: queue_depth = advertised queue + its own requests in flight there
    const inflight = new Map<string, number>()
    const picks: string[] = []
    for (let i = 0; i < 4; i++) {
      const ranked = rankProviders(['a', 'b'].map(n => candidate(n, { queue_depth: inflight.get(n) ?? 0 })), { model: MODEL })
      const pick = ranked[0]!.node_id
      inflight.set(pick, (inflight.get(pick) ?? 0) + 1)
      picks.push(pick)
    }
    expect(picks.filter(p => p === 'a')).toHaveLength(2)
    expect(picks.filter(p => p === 'b')).toHaveLength(2)
  })

  it('does not modify its input', () => {
    const input = [candidate('b'), candidate('a')]
    const copy = structuredClone(input)
    rankProviders(input, { model: MODEL })
    expect(input).toEqual(copy)
  })
})

describe('scoreProvider', () => {
  it('explains the choice: key, residency, pressure and a readable line', () => {
    const s = scoreProvider(candidate('a', { queue_depth: 1, load: { cpu_percent: 45, gpu_percent: 30 }, tokens_per_second: 150, self: true }), { model: MODEL, region: 'us-west' })
    expect(s.eligible).toBe(true)
    expect(s.residency).toBe('loaded')
    expect(s.pressure).toBe(10 + 4)
    expect(s.key).toEqual([2, 1, 1, -14, 150, 1, 1])
    expect(s.explanation).toBe('qwen3-4b loaded, online, queue 1, load 45%, 150 tok/s, same region, self')
  })

  it('says why a candidate is excluded', () => {
    expect(scoreProvider(candidate('a', { models_loaded: [], models_available: [] }), { model: MODEL })).toMatchObject({ eligible: false, excluded_because: 'model_missing', residency: 'missing' })
    expect(scoreProvider(candidate('a', { availability: 'offline' }), { model: MODEL })).toMatchObject({ eligible: false, excluded_because: 'offline' })
    expect(scoreProvider(candidate('a', { availability: 'draining', models_loaded: [] }), { model: MODEL })).toMatchObject({ eligible: false, excluded_because: 'draining', residency: 'on_disk' })
  })

  it('is what rankProvidersWithScores sorts by', () => {
    const ranked = rankProvidersWithScores([candidate('a', { queue_depth: 3 }), candidate('b')], { model: MODEL })
    expect(ranked.map(r => r.score.node_id)).toEqual(['b', 'a'])
    expect(ranked[0]?.score.explanation).toContain('queue 0')
  })

  it('treats non-finite load figures as fully loaded, not as idle', () => {
    const broken = candidate('a-broken', { load: { cpu_percent: Number.NaN, gpu_percent: 0 } })
    expect(scoreProvider(broken, { model: MODEL }).pressure).toBe(10)
    expect(order([broken, candidate('b', { load: { cpu_percent: 80, gpu_percent: 0 } })])).toEqual(['b', 'a-broken'])
  })
})
