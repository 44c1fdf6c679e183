import { describe, it, expect } from 'vitest'
import { parse as parseYaml } from 'yaml'
import {
  DEFAULT_MOE_POLICY,
  InvalidPolicyError,
  isTaskType,
  parseMoePolicy,
  preferredSpecializations
} from '../index.ts'

/** The policy exactly as CONTRACTS.md (design §10.4) gives it. */
const RIPPLE_MOE_YAML = `
inference_policy:
  name: ripple-moe
  trigger: change_making_task  # code changes, config changes, deployments

  local_tier:
    min_parallel: 5
    max_parallel: 8
    models:
      - name: gemma-3n-E2B-it
        weight: 1.0
        specialization: general
      - name: Phi-4-mini-reasoning
        weight: 1.2
        specialization: reasoning
      - name: DeepSeek-R1-Distill-Qwen-1.5B
        weight: 1.1
        specialization: code
      - name: gemma-3-4b-it-qat
        weight: 0.9
        specialization: general
      - name: Qwen3-4B
        weight: 1.0
        specialization: code
    timeout_ms: 30000

  cloud_tier:
    min_parallel: 2
    max_parallel: 4
    providers:
      - name: claude-code
        weight: 1.5
        priority: 1
      - name: codex
        weight: 1.3
        priority: 2
      - name: github-copilot
        weight: 1.0
        priority: 3
    timeout_ms: 60000
    fallback_on_timeout: true

  reducer:
    strategy: weighted_consensus
    min_agreement: 0.6  # 60% of weighted votes must agree
    policy_gate: opa://inference/merge
    conflict_resolution: highest_weight_wins

  audit:
    log_all_responses: true
    store_disagreements: true
    trace_id_propagation: true
`

function fieldOf (value: unknown): string {
  try {
    parseMoePolicy(value)
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidPolicyError)
    expect((err as InvalidPolicyError).name).toBe('InvalidPolicyError')
    return (err as InvalidPolicyError).field
  }
  throw new Error('expected an InvalidPolicyError')
}

function withModel (patch: Record<string, unknown>): unknown {
  return { local_tier: { models: [{ name: 'm', weight: 1, specialization: 'code', ...patch }] } }
}

describe('DEFAULT_MOE_POLICY', () => {
  it('is the ripple-moe policy of the contract, field for field', () => {
    expect(parseMoePolicy(parseYaml(RIPPLE_MOE_YAML))).toEqual(DEFAULT_MOE_POLICY)
    expect(DEFAULT_MOE_POLICY.local_tier).toMatchObject({ min_parallel: 5, max_parallel: 8, timeout_ms: 30000 })
    expect(DEFAULT_MOE_POLICY.local_tier.models.map(m => [m.name, m.weight, m.specialization])).toEqual([
      ['gemma-3n-E2B-it', 1.0, 'general'],
      ['Phi-4-mini-reasoning', 1.2, 'reasoning'],
      ['DeepSeek-R1-Distill-Qwen-1.5B', 1.1, 'code'],
      ['gemma-3-4b-it-qat', 0.9, 'general'],
      ['Qwen3-4B', 1.0, 'code']
    ])
    expect(DEFAULT_MOE_POLICY.reducer).toEqual({
      strategy: 'weighted_consensus',
      min_agreement: 0.6,
      policy_gate: 'opa://inference/merge',
      conflict_resolution: 'highest_weight_wins'
    })
  })

  it('is frozen, so no caller can change the default for everyone', () => {
    expect(Object.isFrozen(DEFAULT_MOE_POLICY)).toBe(true)
    expect(Object.isFrozen(DEFAULT_MOE_POLICY.local_tier.models[0])).toBe(true)
    expect(() => { (DEFAULT_MOE_POLICY.reducer as { min_agreement: number }).min_agreement = 0.1 }).toThrow(TypeError)
  })
})

describe('parseMoePolicy', () => {
  it('fills every absent field with the ripple-moe default', () => {
    expect(parseMoePolicy({})).toEqual(DEFAULT_MOE_POLICY)
    expect(parseMoePolicy({ inference_policy: {} })).toEqual(DEFAULT_MOE_POLICY)
    const p = parseMoePolicy({ name: 'fast', local_tier: { min_parallel: 2, max_parallel: 3 }, reducer: { min_agreement: 0.5 } })
    expect(p.name).toBe('fast')
    expect(p.local_tier.min_parallel).toBe(2)
    expect(p.local_tier.models).toEqual(DEFAULT_MOE_POLICY.local_tier.models)
    expect(p.local_tier.timeout_ms).toBe(30000)
    expect(p.reducer.min_agreement).toBe(0.5)
    expect(p.reducer.conflict_resolution).toBe('highest_weight_wins')
    expect(p.audit).toEqual(DEFAULT_MOE_POLICY.audit)
  })

  it('returns a fresh, mutable copy, not the frozen default', () => {
    const p = parseMoePolicy({})
    expect(Object.isFrozen(p)).toBe(false)
    expect(p.local_tier.models).not.toBe(DEFAULT_MOE_POLICY.local_tier.models)
  })

  it('defaults a listed model\'s weight to 1.0 and its specialization to general', () => {
    const p = parseMoePolicy({ local_tier: { models: [{ name: 'x' }] } })
    expect(p.local_tier.models).toEqual([{ name: 'x', weight: 1.0, specialization: 'general' }])
  })

  it('accepts cloud_tier: null as "no cloud tier"', () => {
    expect(parseMoePolicy({ cloud_tier: null }).cloud_tier).toBeNull()
    expect(parseMoePolicy({ cloud_tier: { min_parallel: 0, providers: [] } }).cloud_tier).toMatchObject({ min_parallel: 0, providers: [] })
  })

  it('accepts min_parallel = max_parallel and min_agreement = 1', () => {
    expect(parseMoePolicy({ local_tier: { min_parallel: 3, max_parallel: 3 }, reducer: { min_agreement: 1 } }).local_tier.max_parallel).toBe(3)
  })

  it('names the field of every invalid value', () => {
    const cases: Array<[unknown, string]> = [
      ['ripple-moe', 'inference_policy'],
      [[], 'inference_policy'],
      [{ name: '' }, 'name'],
      [{ trigger: 3 }, 'trigger'],
      [{ flavour: 'x' }, 'flavour'],
      [{ local_tier: 5 }, 'local_tier'],
      [{ local_tier: { min_parallel: 0 } }, 'local_tier.min_parallel'],
      [{ local_tier: { min_parallel: 2.5 } }, 'local_tier.min_parallel'],
      [{ local_tier: { min_parallel: '5' } }, 'local_tier.min_parallel'],
      [{ local_tier: { min_parallel: 9 } }, 'local_tier.min_parallel'],
      [{ local_tier: { min_parallel: 4, max_parallel: 3 } }, 'local_tier.min_parallel'],
      [{ local_tier: { max_parallel: 0 } }, 'local_tier.max_parallel'],
      [{ local_tier: { max_parallel: 1000 } }, 'local_tier.max_parallel'],
      [{ local_tier: { timeout_ms: 0 } }, 'local_tier.timeout_ms'],
      [{ local_tier: { timeout_ms: -5 } }, 'local_tier.timeout_ms'],
      [{ local_tier: { timeout_ms: Number.POSITIVE_INFINITY } }, 'local_tier.timeout_ms'],
      [{ local_tier: { models: 'gemma' } }, 'local_tier.models'],
      [{ local_tier: { models: [null] } }, 'local_tier.models[0]'],
      [{ local_tier: { models: [{ weight: 1 }] } }, 'local_tier.models[0].name'],
      [withModel({ name: '' }), 'local_tier.models[0].name'],
      [withModel({ weight: 0 }), 'local_tier.models[0].weight'],
      [withModel({ weight: -1 }), 'local_tier.models[0].weight'],
      [withModel({ weight: Number.NaN }), 'local_tier.models[0].weight'],
      [withModel({ weight: '1.0' }), 'local_tier.models[0].weight'],
      [withModel({ specialization: 'poetry' }), 'local_tier.models[0].specialization'],
      [withModel({ temperature: 0.2 }), 'local_tier.models[0].temperature'],
      [{ local_tier: { models: [{ name: 'a' }, { name: 'b' }, { name: 'a' }] } }, 'local_tier.models[2].name'],
      [{ cloud_tier: 'none' }, 'cloud_tier'],
      [{ cloud_tier: { min_parallel: -1 } }, 'cloud_tier.min_parallel'],
      [{ cloud_tier: { min_parallel: 5, max_parallel: 4 } }, 'cloud_tier.min_parallel'],
      [{ cloud_tier: { timeout_ms: 0 } }, 'cloud_tier.timeout_ms'],
      [{ cloud_tier: { fallback_on_timeout: 'yes' } }, 'cloud_tier.fallback_on_timeout'],
      [{ cloud_tier: { providers: [{ name: 'x', weight: 0 }] } }, 'cloud_tier.providers[0].weight'],
      [{ cloud_tier: { providers: [{ name: 'x', priority: 0 }] } }, 'cloud_tier.providers[0].priority'],
      [{ reducer: { strategy: 'majority' } }, 'reducer.strategy'],
      [{ reducer: { min_agreement: 0 } }, 'reducer.min_agreement'],
      [{ reducer: { min_agreement: 1.01 } }, 'reducer.min_agreement'],
      [{ reducer: { min_agreement: '60%' } }, 'reducer.min_agreement'],
      [{ reducer: { conflict_resolution: 'first_wins' } }, 'reducer.conflict_resolution'],
      [{ reducer: { policy_gate: '' } }, 'reducer.policy_gate'],
      [{ audit: { log_all_responses: 1 } }, 'audit.log_all_responses'],
      [{ audit: { store_disagreements: null } }, 'audit.store_disagreements'],
      [{ audit: { trace_id_propagation: 'true' } }, 'audit.trace_id_propagation']
    ]
    for (const [value, field] of cases) {
      expect(fieldOf(value), JSON.stringify(value)).toBe(field)
    }
  })

  it('says precisely what is wrong', () => {
    expect(() => parseMoePolicy({ local_tier: { min_parallel: 9 } }))
      .toThrow('local_tier.min_parallel must be an integer ≥ 1 and ≤ max_parallel')
    expect(() => parseMoePolicy(withModel({ specialization: 'poetry' })))
      .toThrow('local_tier.models[0].specialization must be one of general, reasoning, code, review')
    expect(() => parseMoePolicy({ reducer: { min_agreement: 0 } })).toThrow('reducer.min_agreement must be a number > 0 and ≤ 1')
  })
})

describe('task types', () => {
  it('maps each task type to its preferred specializations', () => {
    expect(preferredSpecializations('code_generation')).toEqual(['code'])
    expect(preferredSpecializations('reasoning')).toEqual(['reasoning'])
    expect(preferredSpecializations('review')).toEqual(['review', 'code'])
    expect(preferredSpecializations('general')).toEqual(['general'])
  })

  it('recognises the moe_query task_type enum', () => {
    expect(isTaskType('review')).toBe(true)
    expect(isTaskType('poetry')).toBe(false)
    expect(isTaskType(undefined)).toBe(false)
  })
})
