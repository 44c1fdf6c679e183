/**
 * The MOE inference policy (design §10.4, `inference_policy.yaml`): its types, mirroring the
 * YAML field for field, the `ripple-moe` default, and the boundary validation.
 */
import { DEFAULT_MODEL_WEIGHT, MAX_PARALLEL_LIMIT } from './constants.ts'
import { InvalidPolicyError } from './errors.ts'
import { bool, fail, isInt, isObject, positive, section, str, type Obj } from './fields.ts'

export const SPECIALIZATIONS = ['general', 'reasoning', 'code', 'review'] as const
export type Specialization = typeof SPECIALIZATIONS[number]

/** `inference.moe_query`'s `task_type` enum. */
export const TASK_TYPES = ['code_generation', 'reasoning', 'general', 'review'] as const
export type TaskType = typeof TASK_TYPES[number]

export interface LocalModelSpec {
  readonly name: string
  /** vote weight, > 0 */
  readonly weight: number
  readonly specialization: Specialization
}

export interface LocalTier {
  /** integer ≥ 1 and ≤ max_parallel */
  readonly min_parallel: number
  readonly max_parallel: number
  readonly models: readonly LocalModelSpec[]
  readonly timeout_ms: number
}

export interface CloudProviderSpec {
  readonly name: string
  readonly weight: number
  /** 1 = asked first */
  readonly priority: number
}

/** Optional OpenAI-compatible providers an operator may configure; nothing here calls them. */
export interface CloudTier {
  /** integer ≥ 0 and ≤ max_parallel */
  readonly min_parallel: number
  readonly max_parallel: number
  readonly providers: readonly CloudProviderSpec[]
  readonly timeout_ms: number
  readonly fallback_on_timeout: boolean
}

export interface ReducerPolicy {
  readonly strategy: 'weighted_consensus'
  /** share of the answered weight the winning cluster needs for consensus: 0 < x ≤ 1 */
  readonly min_agreement: number
  readonly policy_gate: string
  /** below min_agreement the heaviest answer is still returned, without consensus */
  readonly conflict_resolution: 'highest_weight_wins'
}

export interface AuditPolicy {
  readonly log_all_responses: boolean
  readonly store_disagreements: boolean
  readonly trace_id_propagation: boolean
}

export interface MoePolicy {
  readonly name: string
  readonly trigger: string
  readonly local_tier: LocalTier
  /** `null`: no cloud tier configured (write `cloud_tier: null` in the YAML) */
  readonly cloud_tier: CloudTier | null
  readonly reducer: ReducerPolicy
  readonly audit: AuditPolicy
}

function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}

/** The `ripple-moe` policy of `manifests/distributed/inference_policy.yaml`, as the design gives it. */
export const DEFAULT_MOE_POLICY: MoePolicy = deepFreeze({
  name: 'ripple-moe',
  trigger: 'change_making_task',
  local_tier: {
    min_parallel: 5,
    max_parallel: 8,
    models: [
      { name: 'gemma-3n-E2B-it', weight: 1.0, specialization: 'general' },
      { name: 'Phi-4-mini-reasoning', weight: 1.2, specialization: 'reasoning' },
      { name: 'DeepSeek-R1-Distill-Qwen-1.5B', weight: 1.1, specialization: 'code' },
      { name: 'gemma-3-4b-it-qat', weight: 0.9, specialization: 'general' },
      { name: 'Qwen3-4B', weight: 1.0, specialization: 'code' }
    ],
    timeout_ms: 30000
  },
  cloud_tier: {
    min_parallel: 2,
    max_parallel: 4,
    providers: [
      { name: 'claude-code', weight: 1.5, priority: 1 },
      { name: 'codex', weight: 1.3, priority: 2 },
      { name: 'github-copilot', weight: 1.0, priority: 3 }
    ],
    timeout_ms: 60000,
    fallback_on_timeout: true
  },
  reducer: {
    strategy: 'weighted_consensus',
    min_agreement: 0.6,
    policy_gate: 'opa://inference/merge',
    conflict_resolution: 'highest_weight_wins'
  },
  audit: {
    log_all_responses: true,
    store_disagreements: true,
    trace_id_propagation: true
  }
})

/**
 * The specializations that suit a task, best first: `review` is served by review models, then
 * by code models.
 */
export function preferredSpecializations (task: TaskType): readonly Specialization[] {
  switch (task) {
    case 'code_generation': return ['code']
    case 'reasoning': return ['reasoning']
    case 'review': return ['review', 'code']
    case 'general': return ['general']
  }
}

export function isTaskType (value: unknown): value is TaskType {
  return typeof value === 'string' && (TASK_TYPES as readonly string[]).includes(value)
}

// ---------------------------------------------------------------------------------------------
// validation

function literal<T extends string> (value: unknown, field: string, expected: T): T {
  if (value === undefined) return expected
  if (value !== expected) fail(field, `must be '${expected}'`)
  return expected
}

/** min/max_parallel of a tier: max within [floor, MAX_PARALLEL_LIMIT], min within [floor, max]. */
function parallelism (tier: Obj, path: string, floor: number, fallback: { min_parallel: number, max_parallel: number }): { min_parallel: number, max_parallel: number } {
  const max = tier.max_parallel ?? fallback.max_parallel
  if (!isInt(max, Math.max(floor, 1), MAX_PARALLEL_LIMIT)) {
    fail(`${path}.max_parallel`, `must be an integer ≥ ${Math.max(floor, 1)} and ≤ ${MAX_PARALLEL_LIMIT}`)
  }
  const min = tier.min_parallel ?? fallback.min_parallel
  if (!isInt(min, floor, max)) fail(`${path}.min_parallel`, `must be an integer ≥ ${floor} and ≤ max_parallel`)
  return { min_parallel: min, max_parallel: max }
}

function list (value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) fail(field, 'must be a list')
  return value
}

function uniqueNames<T extends { name: string }> (items: T[], path: string): T[] {
  const seen = new Map<string, number>()
  items.forEach((item, i) => {
    const first = seen.get(item.name)
    if (first !== undefined) fail(`${path}[${i}].name`, `duplicates ${path}[${first}].name '${item.name}'`)
    seen.set(item.name, i)
  })
  return items
}

function parseLocalTier (value: unknown): LocalTier {
  const path = 'local_tier'
  const d = DEFAULT_MOE_POLICY.local_tier
  const tier = section(value, path, ['min_parallel', 'max_parallel', 'models', 'timeout_ms'])
  const models = tier.models === undefined
    ? d.models.map(m => ({ ...m }))
    : uniqueNames(list(tier.models, `${path}.models`).map((m, i) => {
      const at = `${path}.models[${i}]`
      const model = section(m ?? null, at, ['name', 'weight', 'specialization'])
      if (model.name === undefined) fail(`${at}.name`, 'is required')
      const specialization = model.specialization ?? 'general'
      if (!(SPECIALIZATIONS as readonly unknown[]).includes(specialization)) {
        fail(`${at}.specialization`, `must be one of ${SPECIALIZATIONS.join(', ')}`)
      }
      return {
        name: str(model.name, `${at}.name`, ''),
        weight: positive(model.weight, `${at}.weight`, DEFAULT_MODEL_WEIGHT),
        specialization: specialization as Specialization
      }
    }), `${path}.models`)
  return {
    ...parallelism(tier, path, 1, d),
    models,
    timeout_ms: positive(tier.timeout_ms, `${path}.timeout_ms`, d.timeout_ms)
  }
}

function parseCloudTier (value: unknown): CloudTier | null {
  if (value === null) return null
  const path = 'cloud_tier'
  const d = DEFAULT_MOE_POLICY.cloud_tier as CloudTier
  const tier = section(value, path, ['min_parallel', 'max_parallel', 'providers', 'timeout_ms', 'fallback_on_timeout'])
  const providers = tier.providers === undefined
    ? d.providers.map(p => ({ ...p }))
    : uniqueNames(list(tier.providers, `${path}.providers`).map((p, i) => {
      const at = `${path}.providers[${i}]`
      const provider = section(p ?? null, at, ['name', 'weight', 'priority'])
      if (provider.name === undefined) fail(`${at}.name`, 'is required')
      const priority = provider.priority ?? i + 1
      if (!isInt(priority, 1, Number.MAX_SAFE_INTEGER)) fail(`${at}.priority`, 'must be an integer ≥ 1')
      return {
        name: str(provider.name, `${at}.name`, ''),
        weight: positive(provider.weight, `${at}.weight`, DEFAULT_MODEL_WEIGHT),
        priority
      }
    }), `${path}.providers`)
  return {
    ...parallelism(tier, path, 0, d),
    providers,
    timeout_ms: positive(tier.timeout_ms, `${path}.timeout_ms`, d.timeout_ms),
    fallback_on_timeout: bool(tier.fallback_on_timeout, `${path}.fallback_on_timeout`, d.fallback_on_timeout)
  }
}

function parseReducer (value: unknown): ReducerPolicy {
  const path = 'reducer'
  const d = DEFAULT_MOE_POLICY.reducer
  const reducer = section(value, path, ['strategy', 'min_agreement', 'policy_gate', 'conflict_resolution'])
  const minAgreement = reducer.min_agreement ?? d.min_agreement
  if (typeof minAgreement !== 'number' || !(minAgreement > 0 && minAgreement <= 1)) {
    fail(`${path}.min_agreement`, 'must be a number > 0 and ≤ 1')
  }
  return {
    strategy: literal(reducer.strategy, `${path}.strategy`, 'weighted_consensus'),
    min_agreement: minAgreement,
    policy_gate: str(reducer.policy_gate, `${path}.policy_gate`, d.policy_gate),
    conflict_resolution: literal(reducer.conflict_resolution, `${path}.conflict_resolution`, 'highest_weight_wins')
  }
}

function parseAudit (value: unknown): AuditPolicy {
  const path = 'audit'
  const d = DEFAULT_MOE_POLICY.audit
  const audit = section(value, path, ['log_all_responses', 'store_disagreements', 'trace_id_propagation'])
  return {
    log_all_responses: bool(audit.log_all_responses, `${path}.log_all_responses`, d.log_all_responses),
    store_disagreements: bool(audit.store_disagreements, `${path}.store_disagreements`, d.store_disagreements),
    trace_id_propagation: bool(audit.trace_id_propagation, `${path}.trace_id_propagation`, d.trace_id_propagation)
  }
}

/**
 * Validates an MOE policy (the parsed YAML: either the `inference_policy` mapping itself or the
 * document `{ inference_policy: … }`) and returns it complete: absent fields take the
 * `ripple-moe` defaults, `cloud_tier: null` disables the cloud tier, unknown fields are refused
 * (a misspelt key would otherwise silently fall back to its default).
 *
 * @throws {InvalidPolicyError} with `field` = the dotted path of the first bad field
 */
export function parseMoePolicy (value: unknown): MoePolicy {
  if (isObject(value) && Object.keys(value).length === 1 && Object.hasOwn(value, 'inference_policy')) {
    value = value.inference_policy
  }
  if (!isObject(value)) throw new InvalidPolicyError('inference_policy must be an object', { field: 'inference_policy' })
  const policy = section(value, '', ['name', 'trigger', 'local_tier', 'cloud_tier', 'reducer', 'audit'])
  return {
    name: str(policy.name, 'name', DEFAULT_MOE_POLICY.name),
    trigger: str(policy.trigger, 'trigger', DEFAULT_MOE_POLICY.trigger),
    local_tier: parseLocalTier(policy.local_tier),
    cloud_tier: parseCloudTier(policy.cloud_tier),
    reducer: parseReducer(policy.reducer),
    audit: parseAudit(policy.audit)
  }
}
