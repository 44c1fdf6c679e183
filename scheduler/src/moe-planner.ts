/**
 * The MOE fan-out planner: which (model, node) pairs answer one `inference.moe_query`.
 *
 * Each pair gets a score:
 *
 *   weight × specialization bonus (task) × load factor × locality factor
 *
 * - weight / specialization: the policy's `local_tier` entry for the model; a model the policy
 *   does not name uses the instance's own `weight`/`specialization` when given, else 1.0 / general;
 * - specialization bonus: ×SPECIALIZATION_BONUS for the task's preferred specialization,
 *   ×SECONDARY_SPECIALIZATION_BONUS for an accepted second choice (`code` for `review`);
 * - load factor: (1 − LOAD_PENALTY × max(cpu, gpu)%) / (1 + QUEUE_PENALTY × queue_depth),
 *   ×UNLOADED_FACTOR when the model is only on disk, ×BUSY_FACTOR on a `busy` node;
 * - locality factor: the requester itself > its region > other regions.
 *
 * Picks are made greedily, each time the best remaining pair by
 * `[brings a new model, uses of its node (fewer first), score, tokens/s, seeded tie-break]`:
 * distinct models first, spread over distinct nodes, then further instances of already-picked
 * models (on unused nodes first) until `min_parallel` is reached. Beyond `min_parallel`, up to
 * `max_parallel`, only models not yet picked are added: a second instance of a model adds load
 * and a correlated vote, not an independent opinion. `offline` and `draining` nodes are never
 * picked, and neither is a demo model (the random-weight model a node generates for a first run)
 * unless the policy names it: random weights are no opinion. The seeded `rng` only breaks exact ties (so equal nodes share the load across
 * requesters); the plan is a pure function of its input and the seed.
 */
import type { Availability } from '../../zomes-ts/agent_registry/types.ts'
import {
  BUSY_FACTOR,
  DEFAULT_MODEL_WEIGHT,
  LOAD_PENALTY,
  OTHER_REGION_LOCALITY_FACTOR,
  QUEUE_PENALTY,
  SAME_REGION_LOCALITY_FACTOR,
  SECONDARY_SPECIALIZATION_BONUS,
  SELF_LOCALITY_FACTOR,
  SPECIALIZATION_BONUS,
  UNLOADED_FACTOR
} from './constants.ts'
import { preferredSpecializations } from './policy.ts'
import type { MoePolicy, Specialization, TaskType } from './policy.ts'
import type { Rng } from './rng.ts'
import type { ProviderCandidate } from './routing.ts'

/** One model one node can serve. */
export interface MoeInstance {
  model: string
  node_id: string
  /** used when the policy does not name the model */
  weight?: number
  /** used when the policy does not name the model */
  specialization?: Specialization
  /** loaded in memory (else on disk only) */
  loaded: boolean
  availability: Availability
  load: { cpu_percent: number, gpu_percent: number }
  /** @default 0 */
  queue_depth?: number
  tokens_per_second: number | null
  latency_region: string
  /** the requesting node itself */
  self: boolean
  /** a demo model (random weights): never a vote unless the policy names it. @default false */
  demo?: boolean
}

export interface MoePlanInput {
  policy: MoePolicy
  task_type: TaskType
  available: readonly MoeInstance[]
  /** the requester's `latency_region` */
  region?: string
  rng: Rng
}

export interface MoePick {
  model: string
  node_id: string
  /** the vote weight the reducer gives this pair's answer */
  weight: number
  specialization: Specialization
  /** the planning score (explains the choice; not a vote weight) */
  score: number
  loaded: boolean
}

export interface MoePlan {
  picks: MoePick[]
  /** a sentence for logs and errors: what was picked, and any shortage */
  reason: string
  /** how many pairs short of `min_parallel` the plan is (0 when it is met) */
  shortfall: number
}

interface Scored {
  instance: MoeInstance
  weight: number
  specialization: Specialization
  score: number
  tps: number
  tiebreak: number
  id: string
}

function finiteOr (value: number | null | undefined, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback
}

function specializationBonus (specialization: Specialization, task: TaskType): number {
  const preferred = preferredSpecializations(task)
  if (preferred[0] === specialization) return SPECIALIZATION_BONUS
  if (preferred.includes(specialization)) return SECONDARY_SPECIALIZATION_BONUS
  return 1
}

/** The load factor of the MOE score, in (0, 1]. */
export function moeLoadFactor (instance: Pick<MoeInstance, 'load' | 'queue_depth' | 'loaded' | 'availability'>): number {
  const percent = (v: number): number => Math.min(100, Math.max(0, finiteOr(v, 100)))
  const load = Math.max(percent(instance.load.cpu_percent), percent(instance.load.gpu_percent)) / 100
  const queue = Math.max(0, finiteOr(instance.queue_depth, 0))
  let factor = (1 - LOAD_PENALTY * load) / (1 + QUEUE_PENALTY * queue)
  if (!instance.loaded) factor *= UNLOADED_FACTOR
  if (instance.availability === 'busy') factor *= BUSY_FACTOR
  return factor
}

/** The locality factor of the MOE score. */
export function moeLocalityFactor (instance: Pick<MoeInstance, 'self' | 'latency_region'>, region?: string): number {
  if (instance.self) return SELF_LOCALITY_FACTOR
  if (region === undefined) return SAME_REGION_LOCALITY_FACTOR
  return instance.latency_region === region ? SAME_REGION_LOCALITY_FACTOR : OTHER_REGION_LOCALITY_FACTOR
}

/** Turns routing candidates (one per node) into MOE instances (one per model a node has). */
export function toMoeInstances (candidates: readonly ProviderCandidate[]): MoeInstance[] {
  const out: MoeInstance[] = []
  for (const c of candidates) {
    const models = new Set([...c.models_loaded, ...c.models_available])
    for (const model of models) {
      out.push({
        model,
        node_id: c.node_id,
        loaded: c.models_loaded.includes(model),
        availability: c.availability,
        load: { cpu_percent: c.load.cpu_percent, gpu_percent: c.load.gpu_percent },
        queue_depth: c.queue_depth,
        tokens_per_second: c.tokens_per_second,
        latency_region: c.latency_region,
        self: c.self,
        demo: c.demo_models?.includes(model) === true
      })
    }
  }
  return out
}

function byId (a: { id: string }, b: { id: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

/** Plans the local-tier fan-out of one MOE query. See the module doc for the rules. */
export function planMoe (input: MoePlanInput): MoePlan {
  const { policy, task_type: task, region, rng } = input
  const { min_parallel: min, max_parallel: max } = policy.local_tier
  const specs = new Map(policy.local_tier.models.map(m => [m.name, m]))

  // score every servable pair; one entry per (model, node), the better if listed twice
  const unique = new Map<string, Scored>()
  let excluded = 0
  let demos = 0
  for (const instance of input.available) {
    if (instance.availability === 'offline' || instance.availability === 'draining') {
      excluded++
      continue
    }
    const spec = specs.get(instance.model)
    if (instance.demo === true && spec === undefined) {
      demos++
      continue
    }
    const weight = spec?.weight ?? (finiteOr(instance.weight, 0) > 0 ? instance.weight as number : DEFAULT_MODEL_WEIGHT)
    const specialization = spec?.specialization ?? instance.specialization ?? 'general'
    const score = weight * specializationBonus(specialization, task) * moeLoadFactor(instance) * moeLocalityFactor(instance, region)
    const id = JSON.stringify([instance.model, instance.node_id])
    const scored: Scored = { instance, weight, specialization, score, tps: finiteOr(instance.tokens_per_second, -1), tiebreak: 0, id }
    const previous = unique.get(id)
    if (previous === undefined || scored.score > previous.score) unique.set(id, scored)
  }
  // tie-break draws in a canonical order: the plan does not depend on the input order
  const pool = [...unique.values()].sort(byId)
  for (const s of pool) s.tiebreak = rng()

  const picked: Scored[] = []
  const modelUses = new Map<string, number>()
  const nodeUses = new Map<string, number>()
  while (picked.length < max && pool.length > 0) {
    let bestIndex = -1
    let bestKey: number[] = []
    pool.forEach((s, i) => {
      const newModel = (modelUses.get(s.instance.model) ?? 0) === 0 ? 1 : 0
      if (picked.length >= min && newModel === 0) return
      const key = [newModel, -(nodeUses.get(s.instance.node_id) ?? 0), s.score, s.tps, s.tiebreak]
      if (bestIndex === -1 || isGreater(key, bestKey)) {
        bestIndex = i
        bestKey = key
      }
    })
    if (bestIndex === -1) break
    const [best] = pool.splice(bestIndex, 1) as [Scored]
    picked.push(best)
    modelUses.set(best.instance.model, (modelUses.get(best.instance.model) ?? 0) + 1)
    nodeUses.set(best.instance.node_id, (nodeUses.get(best.instance.node_id) ?? 0) + 1)
  }

  const picks = picked.map((s): MoePick => ({
    model: s.instance.model,
    node_id: s.instance.node_id,
    weight: s.weight,
    specialization: s.specialization,
    score: s.score,
    loaded: s.instance.loaded
  }))
  const shortfall = Math.max(0, min - picks.length)
  const servable = unique.size
  let reason = `picked ${picks.length} (model, node) pair(s) for ${task}: ${modelUses.size} distinct model(s) on ${nodeUses.size} node(s), from ${servable} servable pair(s)`
  if (excluded > 0) reason += `; ${excluded} offline/draining pair(s) excluded`
  if (demos > 0) reason += `; ${demos} demo pair(s) excluded (random weights; name a demo model in the policy to let it vote)`
  if (shortfall > 0) reason += `; only ${picks.length} available, fewer than min_parallel ${min}`
  return { picks, reason, shortfall }
}

function isGreater (a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ?? 0
    const y = b[i] ?? 0
    if (x !== y) return x > y
  }
  return false
}
