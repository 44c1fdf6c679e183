// The example of scheduler/index.ts's doc block, run as written: the docs cannot drift.
import { describe, it, expect } from 'vitest'
import { createSeededRng, parseMoePolicy, planMoe, reduceWeightedConsensus } from '../index.ts'

describe('scheduler/index.ts example', () => {
  it('plans a fan-out and reduces its answers', () => {
    const policy = parseMoePolicy({ local_tier: { min_parallel: 2, max_parallel: 3 } })
    const node = { availability: 'online', load: { cpu_percent: 20, gpu_percent: 0 }, tokens_per_second: 40, latency_region: 'eu-west', loaded: true } as const
    const plan = planMoe({
      policy,
      task_type: 'code_generation',
      available: [
        { ...node, model: 'Qwen3-4B', node_id: 'node-a', self: true },
        { ...node, model: 'DeepSeek-R1-Distill-Qwen-1.5B', node_id: 'node-b', self: false },
        { ...node, model: 'gemma-3n-E2B-it', node_id: 'node-c', self: false }
      ],
      region: 'eu-west',
      rng: createSeededRng(42)
    })
    expect(plan.picks).toHaveLength(3)
    expect(plan.picks.slice(0, 2).map(p => p.specialization)).toEqual(['code', 'code'])
    expect(plan.shortfall).toBe(0)

    const result = reduceWeightedConsensus([
      { model: 'Qwen3-4B', node: 'node-a', text: 'return a + b', weight: 1.0, latency_ms: 900 },
      { model: 'DeepSeek-R1-Distill-Qwen-1.5B', node: 'node-b', text: '```ts\nreturn a + b;\n```', weight: 1.1, latency_ms: 1200 },
      { model: 'gemma-3n-E2B-it', node: 'node-c', text: 'return a - b', weight: 1.0, latency_ms: 700 }
    ], { min_agreement: policy.reducer.min_agreement })
    expect(result.response).toBe('```ts\nreturn a + b;\n```')
    expect(result.consensus).toBe(true)
    expect(result.consensus_score).toBeCloseTo(2.1 / 3.1)
  })
})
