import { describe, it, expect } from 'vitest'
import { DEFAULT_MOE_POLICY, createSeededRng, parseMoePolicy, planMoe, toMoeInstances } from '../index.ts'
import type { MoeInstance, MoePlanInput, MoePolicy, TaskType } from '../index.ts'

function instance (model: string, node_id: string, patch: Partial<MoeInstance> = {}): MoeInstance {
  return {
    model,
    node_id,
    loaded: true,
    availability: 'online',
    load: { cpu_percent: 20, gpu_percent: 20 },
    queue_depth: 0,
    tokens_per_second: 50,
    latency_region: 'us-west',
    self: false,
    ...patch
  }
}

function policy (min: number, max: number): MoePolicy {
  return parseMoePolicy({ local_tier: { min_parallel: min, max_parallel: max } })
}

function plan (available: MoeInstance[], opts: Partial<MoePlanInput> = {}): ReturnType<typeof planMoe> {
  return planMoe({ policy: DEFAULT_MOE_POLICY, task_type: 'general', available, rng: createSeededRng(1), ...opts })
}

const pairs = (p: ReturnType<typeof planMoe>): string[] => p.picks.map(x => `${x.model}@${x.node_id}`)

/** The five policy models, each on its own node. */
const FLEET = DEFAULT_MOE_POLICY.local_tier.models.map((m, i) => instance(m.name, `node-${i}`))

describe('planMoe', () => {
  it('uses the policy\'s weight and specialization, 1.0 / general for unknown models', () => {
    const p = plan([instance('Phi-4-mini-reasoning', 'a'), instance('mystery-7b', 'b'), instance('hinted', 'c', { weight: 2, specialization: 'code' })], { policy: policy(1, 8) })
    expect(p.picks.find(x => x.model === 'Phi-4-mini-reasoning')).toMatchObject({ weight: 1.2, specialization: 'reasoning' })
    expect(p.picks.find(x => x.model === 'mystery-7b')).toMatchObject({ weight: 1.0, specialization: 'general' })
    // an unknown model may bring its own hint
    expect(p.picks.find(x => x.model === 'hinted')).toMatchObject({ weight: 2, specialization: 'code' })
  })

  it('the policy wins over an instance\'s own hint for a model it names', () => {
    const p = plan([instance('Qwen3-4B', 'a', { weight: 9, specialization: 'general' })], { policy: policy(1, 1) })
    expect(p.picks).toMatchObject([{ model: 'Qwen3-4B', weight: 1.0, specialization: 'code' }])
  })

  it('picks at most max_parallel pairs', () => {
    const many = Array.from({ length: 12 }, (_, i) => instance(`model-${i}`, `node-${i}`))
    const p = plan(many, { policy: policy(2, 4) })
    expect(p.picks).toHaveLength(4)
    expect(p.shortfall).toBe(0)
  })

  it('reaches min_parallel with further instances, but adds only new models beyond it', () => {
    // two models, each on three nodes: min 4 is reached with duplicates, then it stops (max 6)
    const available = ['x', 'y'].flatMap(model => ['n1', 'n2', 'n3'].map(node => instance(model, `${model}-${node}`)))
    const p = plan(available, { policy: policy(4, 6) })
    expect(p.picks).toHaveLength(4)
    expect(new Set(p.picks.map(x => x.model))).toEqual(new Set(['x', 'y']))
  })

  it('prefers models specialized for the task', () => {
    const pick2 = (task: TaskType): string[] => planMoe({ policy: policy(2, 2), task_type: task, available: FLEET, rng: createSeededRng(3) }).picks.map(x => x.model).sort()
    expect(pick2('code_generation')).toEqual(['DeepSeek-R1-Distill-Qwen-1.5B', 'Qwen3-4B'])
    expect(pick2('reasoning')).toEqual(['DeepSeek-R1-Distill-Qwen-1.5B', 'Phi-4-mini-reasoning'])
    expect(pick2('general')).toEqual(['gemma-3-4b-it-qat', 'gemma-3n-E2B-it'])
    // review: a review model first, then code models
    const withReviewer = [...FLEET, instance('reviewer-3b', 'node-r', { specialization: 'review' })]
    const review = planMoe({ policy: policy(2, 2), task_type: 'review', available: withReviewer, rng: createSeededRng(3) })
    expect(review.picks[0]?.model).toBe('reviewer-3b')
    expect(review.picks[1]?.model).toBe('DeepSeek-R1-Distill-Qwen-1.5B')
  })

  it('picks distinct models before a second instance of one, and distinct nodes before a shared one', () => {
    // Qwen3-4B on two idle boxes, gemma on one of them and on a loaded one
    const available = [
      instance('Qwen3-4B', 'idle-1', { load: { cpu_percent: 0, gpu_percent: 0 } }),
      instance('Qwen3-4B', 'idle-2', { load: { cpu_percent: 10, gpu_percent: 0 } }),
      instance('gemma-3n-E2B-it', 'idle-1', { load: { cpu_percent: 0, gpu_percent: 0 } }),
      instance('gemma-3n-E2B-it', 'loaded', { load: { cpu_percent: 90, gpu_percent: 90 } })
    ]
    const p = plan(available, { policy: policy(3, 3), task_type: 'code_generation' })
    expect(pairs(p)).toEqual([
      'Qwen3-4B@idle-1', // best score
      'gemma-3n-E2B-it@loaded', // a new model, on a node not used yet, beats the same model on idle-1
      'Qwen3-4B@idle-2' // then a second instance on an unused node before reusing idle-1
    ])
  })

  it('never picks offline or draining nodes', () => {
    const available = [
      instance('Qwen3-4B', 'down', { availability: 'offline', load: { cpu_percent: 0, gpu_percent: 0 } }),
      instance('Phi-4-mini-reasoning', 'leaving', { availability: 'draining' }),
      instance('gemma-3n-E2B-it', 'up'),
      instance('Qwen3-4B', 'busy', { availability: 'busy' })
    ]
    const p = plan(available, { policy: policy(1, 8) })
    expect(pairs(p).sort()).toEqual(['Qwen3-4B@busy', 'gemma-3n-E2B-it@up'])
    expect(p.reason).toContain('2 offline/draining pair(s) excluded')
  })

  it('ranks busy, loaded-on-disk-only, queued and remote pairs lower', () => {
    const base = instance('m', 'base')
    const score = (i: MoeInstance, region?: string): number =>
      plan([i], { policy: policy(1, 1), ...(region === undefined ? {} : { region }) }).picks[0]?.score ?? 0
    const s0 = score(base)
    expect(score({ ...base, availability: 'busy' })).toBeLessThan(s0)
    expect(score({ ...base, loaded: false })).toBeLessThan(s0)
    expect(score({ ...base, queue_depth: 2 })).toBeLessThan(s0)
    expect(score({ ...base, load: { cpu_percent: 90, gpu_percent: 0 } })).toBeLessThan(s0)
    expect(score(base, 'eu-west')).toBeLessThan(score(base, 'us-west'))
    expect(score({ ...base, self: true }, 'us-west')).toBeGreaterThan(score(base, 'us-west'))
  })

  it('reports a shortage below min_parallel and returns what exists', () => {
    const p = plan([instance('Qwen3-4B', 'a'), instance('gemma-3n-E2B-it', 'b', { availability: 'offline' })])
    expect(pairs(p)).toEqual(['Qwen3-4B@a'])
    expect(p.shortfall).toBe(4)
    expect(p.reason).toContain('fewer than min_parallel 5')
    const none = plan([])
    expect(none.picks).toEqual([])
    expect(none.shortfall).toBe(5)
  })

  it('is deterministic for a seed and independent of the input order', () => {
    // eight identical nodes with the same model: only the seeded tie-break decides
    const same = Array.from({ length: 8 }, (_, i) => instance('Qwen3-4B', `node-${i}`))
    const run = (seed: number, input = same): string[] => pairs(plan(input, { policy: policy(3, 3), rng: createSeededRng(seed) }))
    expect(run(11)).toEqual(run(11))
    expect(run(11, [...same].reverse())).toEqual(run(11))
    // different seeds spread requesters over the equal nodes
    const outcomes = new Set(Array.from({ length: 10 }, (_, seed) => run(seed).join()))
    expect(outcomes.size).toBeGreaterThan(1)
  })

  it('keeps the better entry when a (model, node) pair is listed twice', () => {
    const p = plan([instance('m', 'a', { loaded: false }), instance('m', 'a')], { policy: policy(1, 8) })
    expect(p.picks).toHaveLength(1)
    expect(p.picks[0]?.loaded).toBe(true)
  })

  it('plans the default policy over a real-looking fleet', () => {
    const p = plan([...FLEET, ...FLEET.map(i => ({ ...i, node_id: `${i.node_id}-b` }))], { task_type: 'code_generation' })
    expect(p.picks).toHaveLength(5) // five distinct models; duplicates are not worth a vote beyond min
    expect(new Set(p.picks.map(x => x.model)).size).toBe(5)
    expect(p.picks.slice(0, 2).map(x => x.specialization)).toEqual(['code', 'code'])
    expect(p.reason).toMatch(/^picked 5 \(model, node\) pair\(s\) for code_generation: 5 distinct model\(s\) on 5 node\(s\)/)
  })
})

describe('planMoe and demo models', () => {
  it('never counts a demo model as a vote unless the policy names it', () => {
    const p = plan([instance('real-a', 'a'), instance('demo-x', 'b', { demo: true }), instance('real-c', 'c')], { policy: policy(3, 8) })
    expect(p.picks.map(x => x.model).sort()).toEqual(['real-a', 'real-c'])
    expect(p.reason).toContain('1 demo pair(s) excluded')
    // only demo models: no vote at all
    expect(plan([instance('demo-x', 'a', { demo: true })], { policy: policy(1, 8) }).picks).toEqual([])
    // a policy that names the demo model lets it vote
    const named = parseMoePolicy({ local_tier: { min_parallel: 1, max_parallel: 8, models: [{ name: 'demo-x', weight: 0.5 }] } })
    expect(plan([instance('demo-x', 'a', { demo: true })], { policy: named }).picks).toMatchObject([{ model: 'demo-x', weight: 0.5 }])
  })

  it('prefers idle nodes: live load and queue depth (requests in flight included) lower a pair\'s score', () => {
    const p = plan([instance('m', 'busy', { queue_depth: 3 }), instance('m', 'idle'), instance('m', 'loaded', { load: { cpu_percent: 95, gpu_percent: 0 } })], { policy: policy(1, 1) })
    expect(pairs(p)).toEqual(['m@idle'])
  })
})

describe('toMoeInstances', () => {
  it('turns one routing candidate per node into one instance per model', () => {
    const out = toMoeInstances([{
      node_id: 'n',
      self: true,
      models_loaded: ['a'],
      models_available: ['a', 'b'],
      availability: 'online',
      load: { cpu_percent: 1, gpu_percent: 2 },
      queue_depth: 0,
      tokens_per_second: 10,
      latency_region: 'r',
      demo_models: ['b']
    }])
    expect(out.map(i => [i.model, i.loaded, i.demo])).toEqual([['a', true, false], ['b', false, true]])
  })
})
