/**
 * The mesh-wide inference routes: `inference.single_query` and `inference.moe_query`.
 *
 * single: the best node for the model (this node when it has it loaded, else the mesh's best);
 * without a model, a real one (this node's, else the mesh's) before any demo model.
 * moe: the planner picks min..max (model, node) pairs from this node's loaded models and every
 * node's advertised ones, scored with live figures: this node's sampled load and queue, each
 * other node's advertised load and queue plus this node's own requests in flight there; demo
 * models never vote unless the policy names them. The prompt fans out to all pairs at once;
 * answers that arrive within the policy's `timeout_ms` vote with their weights; the reducer
 * clusters equivalent answers and the heaviest cluster wins (`consensus` is false below
 * `min_agreement`, the answer is still returned: highest_weight_wins). `max_tokens` is an upper
 * bound per vote (clamped to each model's context); when every vote fails the answer is the
 * caller's own error (400) if each vote refused the input, else MoeNoAnswersError (502).
 */
import type { NodeCapability } from '../../../zomes-ts/agent_registry/types.ts'
import { createSeededRng, DEFAULT_MOE_POLICY, NoAnswersError, planMoe, reduceWeightedConsensus, type MoeInstance, type MoePolicy, type Vote } from '../../../scheduler/index.ts'
import { errorMessage } from '../errors.ts'
import { decodeHash } from '../holo/hash.ts'
import { peerIdFromAgentPubKey } from '../identity/peer-id.ts'
import type { ComponentLogger } from '../logger.ts'
import { nextHop } from '../trace.ts'
import type { PeerInference } from './peer.ts'
import {
  DeadlineExceededError, InferenceError, InvalidRequestError, ModelNotFoundError, MoeNoAnswersError, PromptTooLongError,
  type InferenceAudit, type InferenceEngine, type MoeQueryRequest, type SingleQueryRequest
} from './types.ts'

/** The names policy_store accepts. */
const POLICY_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/

export interface InferenceRouterComponents {
  engine: Pick<InferenceEngine, 'listModels' | 'chat'>
  peers: Pick<PeerInference, 'chat' | 'inFlight'>
  capabilities: () => Promise<NodeCapability[]>
  /** this node's live load (the load sampler's latest figures). @default idle */
  selfLoad?: () => Promise<{ cpu_percent: number, gpu_percent: number }>
  /** this node's agent key string (its NodeCapability.node_id) */
  selfNodeId: string
  /** a named policy from policy_store (the mesh-wide one), or null */
  sharedPolicy?: (name: string) => Promise<MoePolicy | null>
  /** records each query in the audit trail. @default none */
  audit?: InferenceAudit
  /** told of each MOE query that reached a verdict (the dashboard's recent votes); a throw is ignored. @default none */
  onMoeResult?: (event: MoeResultEvent) => void
  logger: ComponentLogger
}

/** A finished MOE query: its outcome, and the answer cluster of each vote (0 = the winner's, null = failed). */
export interface MoeResultEvent {
  task_type: string
  policy: string
  outcome: MoeQueryOutcome
  vote_clusters: Array<number | null>
}

export interface InferenceRouterInit {
  /** local overrides of named policies; they win over policy_store's. @default none */
  policies?: Record<string, MoePolicy>
  region?: string
}

export interface MeshQueryOptions {
  signal: AbortSignal
  /** the caller's W3C traceparent: its trace id is the query's `trace_id`, each hop a child span. @default a new trace */
  traceparent?: string
}

export interface MoeQueryOutcome {
  response: string
  consensus: boolean
  consensus_score: number
  model_votes: Array<{ model: string, node: string, response_hash: string, weight: number, latency_ms: number }>
  trace_id: string
}

export function createInferenceRouter (init: InferenceRouterInit, c: InferenceRouterComponents): { single: (req: SingleQueryRequest, o: MeshQueryOptions) => Promise<object>, moe: (req: MoeQueryRequest, o: MeshQueryOptions) => Promise<MoeQueryOutcome> } {
  const log = c.logger.forComponent('flexnode:inference:router')
  // a Map: a caller's policy name is never looked up on an object (`constructor`, `__proto__`)
  const localPolicies = new Map<string, MoePolicy>(Object.entries(init.policies ?? {}))
  /** local override > the mesh's policy_store entry > the built-in ripple-moe */
  const resolvePolicy = async (name: string): Promise<MoePolicy | undefined> => {
    const local = localPolicies.get(name)
    if (local !== undefined) return local
    // not a policy_store name (its zome would refuse it): unknown, without asking
    if (!POLICY_NAME.test(name)) return undefined
    try {
      const shared = await c.sharedPolicy?.(name)
      if (shared != null) return shared
    } catch (err) {
      log.warn({ policy: name, err: errorMessage(err) }, 'policy_store entry unusable; falling back')
    }
    return name === DEFAULT_MOE_POLICY.name ? DEFAULT_MOE_POLICY : undefined
  }

  const single = async (req: SingleQueryRequest, o: MeshQueryOptions): Promise<object> => {
    // the caller's trace (the HTTP request's span), else a new one: its id is the audit records' trace_id
    const { traceId: trace, traceparent } = nextHop(o.traceparent)
    const local = c.engine.listModels().filter(m => m.loaded)
    let model = req.model
    if (model === undefined) {
      // never a demo (random-weight) model while a real one is available anywhere
      const remote = (await c.capabilities()).filter(cap => cap.node_id !== c.selfNodeId).map(cap => cap.capabilities.inference)
      const remoteReal = remote.flatMap(inf => inf.models_loaded.filter(m => inf.demo_models?.includes(m) !== true))
      model = local.find(m => m.demo !== true)?.id ?? remoteReal[0] ?? local[0]?.id ?? remote.flatMap(inf => inf.models_loaded)[0]
    }
    if (model === undefined) throw new ModelNotFoundError('no node of the mesh has a model loaded')
    const messages = [{ role: 'user' as const, content: req.prompt }]
    const options = { max_tokens: req.max_tokens, signal: o.signal }
    const started = performance.now()
    const answered = local.some(m => m.id === model)
      ? { ...await c.engine.chat(model, messages, options), node_id: c.selfNodeId }
      : await c.peers.chat(model, messages, { ...options, trace_id: trace, traceparent })
    const out = { response: answered.text, model, node: answered.node_id, latency_ms: Math.round(performance.now() - started), usage: answered.usage, trace_id: trace }
    c.audit?.({ kind: 'inference', actor: c.selfNodeId, subject: model, detail: { op: 'single_query', node: out.node, latency_ms: out.latency_ms, prompt_tokens: out.usage.prompt_tokens, completion_tokens: out.usage.completion_tokens }, trace_id: trace })
    return out
  }

  const moe = async (req: MoeQueryRequest, o: MeshQueryOptions): Promise<MoeQueryOutcome> => {
    const { traceId: trace, traceparent } = nextHop(o.traceparent)
    const policy = await resolvePolicy(req.policy_override ?? DEFAULT_MOE_POLICY.name)
    if (policy === undefined) throw new InvalidRequestError(`unknown policy ${JSON.stringify(req.policy_override)}`, { param: 'policy_override' })
    const tier = policy.local_tier
    const [caps, selfLoad] = await Promise.all([c.capabilities(), c.selfLoad?.() ?? Promise.resolve({ cpu_percent: 0, gpu_percent: 0 })])
    const available: MoeInstance[] = []
    for (const m of c.engine.listModels().filter(x => x.loaded)) {
      available.push({
        model: m.id,
        node_id: c.selfNodeId,
        loaded: true,
        availability: 'online',
        load: { cpu_percent: selfLoad.cpu_percent, gpu_percent: selfLoad.gpu_percent },
        tokens_per_second: m.tokens_per_second,
        latency_region: init.region ?? 'local',
        self: true,
        queue_depth: m.queue_depth + m.in_flight,
        demo: m.demo === true
      })
    }
    for (const cap of caps) {
      if (cap.node_id === c.selfNodeId) continue
      const inference = cap.capabilities.inference
      let inFlight = 0
      try { inFlight = c.peers.inFlight(peerIdFromAgentPubKey(decodeHash(cap.node_id, 'Agent'))) } catch { continue }
      for (const model of inference.models_loaded) {
        available.push({
          model,
          node_id: cap.node_id,
          loaded: true,
          availability: cap.availability,
          load: cap.load,
          tokens_per_second: inference.tokens_per_second || null,
          latency_region: cap.network.latency_region,
          self: false,
          // the node's advertised queue, plus this node's own requests in flight there
          queue_depth: (inference.queue_depth ?? 0) + inFlight,
          demo: inference.demo_models?.includes(model) === true
        })
      }
    }
    const plan = planMoe({ policy, task_type: req.task_type, available, region: init.region, rng: createSeededRng(Date.now() & 0xffff) })
    if (plan.picks.length === 0) throw new ModelNotFoundError(`no (model, node) pair is available for MOE: ${plan.reason}`)
    log.info({ trace_id: trace, picks: plan.picks.map(p => `${p.model}@${p.node_id.slice(0, 12)}`), reason: plan.reason }, 'moe fan-out')
    const timeout = new AbortController()
    const timer = setTimeout(() => { timeout.abort(new DeadlineExceededError(`no answer within the policy's timeout_ms ${tier.timeout_ms}`)) }, tier.timeout_ms)
    const deadline = AbortSignal.any([o.signal, timeout.signal])
    const messages = [{ role: 'user' as const, content: req.prompt }]
    /** each failed vote's typed error, by vote index */
    const failures = new Map<number, Error>()
    let votes: Vote[]
    try {
      votes = await Promise.all(plan.picks.map(async (p, i): Promise<Vote> => {
        const started = performance.now()
        try {
          // max_tokens is an upper bound per vote: each model answers within its own context
          const options = { max_tokens: req.max_tokens, clamp_max_tokens: true, temperature: 0, seed: 0, signal: deadline }
          const r = p.node_id === c.selfNodeId
            ? await c.engine.chat(p.model, messages, options)
            : await c.peers.chat(p.model, messages, { ...options, nodes: [p.node_id], trace_id: trace, traceparent })
          return { model: p.model, node: p.node_id, text: r.text, weight: p.weight, latency_ms: Math.round(performance.now() - started) }
        } catch (err) {
          const failure = timeout.signal.aborted && !o.signal.aborted ? timeout.signal.reason as Error : err instanceof Error ? err : new InferenceError(errorMessage(err))
          failures.set(i, failure)
          return { model: p.model, node: p.node_id, text: '', weight: p.weight, latency_ms: Math.round(performance.now() - started), error: errorMessage(failure) }
        }
      }))
    } finally {
      clearTimeout(timer)
    }
    let reduced: ReturnType<typeof reduceWeightedConsensus>
    try {
      reduced = reduceWeightedConsensus(votes, { min_agreement: policy.reducer.min_agreement })
    } catch (err) {
      if (!(err instanceof NoAnswersError)) throw err
      throw noAnswers(votes, failures, trace)
    }
    const outcome = {
      response: reduced.response,
      consensus: reduced.consensus,
      consensus_score: reduced.consensus_score,
      model_votes: reduced.model_votes.map(v => ({ model: v.model, node: v.node, response_hash: v.response_hash ?? '', weight: v.weight, latency_ms: v.latency_ms, ...(v.error !== undefined ? { error: v.error } : {}) })),
      trace_id: trace
    }
    // the policy's audit section says what the trail keeps of the answers: every one, or those of a disagreement
    const keepAnswers = policy.audit.log_all_responses || (policy.audit.store_disagreements && !reduced.consensus)
    c.audit?.({
      kind: 'moe',
      actor: c.selfNodeId,
      subject: req.task_type,
      detail: {
        policy: policy.name, consensus: outcome.consensus, consensus_score: outcome.consensus_score, votes: outcome.model_votes,
        ...(keepAnswers ? { responses: votes.map(v => ({ model: v.model, node: v.node, text: v.text })) } : {})
      },
      trace_id: trace
    })
    try {
      c.onMoeResult?.({ task_type: req.task_type, policy: policy.name, outcome, vote_clusters: reduced.model_votes.map(v => v.cluster) })
    } catch (err) {
      log.warn({ trace_id: trace, err: errorMessage(err) }, 'an MOE result listener failed')
    }
    return outcome
  }

  return { single, moe }
}

/**
 * Every vote failed. When each one refused the caller's own input (a prompt longer than every
 * context, a bad option) that refusal is the answer (400); otherwise the fan-out failed on the
 * serving side: 502 with every vote's error.
 */
function noAnswers (votes: Vote[], failures: Map<number, Error>, trace: string): InferenceError {
  const errors = votes.map((_, i) => failures.get(i))
  const callersFault = (e: Error | undefined): boolean => e instanceof InvalidRequestError || e instanceof PromptTooLongError
  const first = errors[0]
  if (errors.length > 0 && errors.every(callersFault) && first !== undefined) return first as InferenceError
  const modelVotes = votes.map((v, i) => ({ model: v.model, node: v.node, error: v.error ?? 'empty answer', error_name: errors[i]?.name ?? 'EmptyAnswer', latency_ms: v.latency_ms }))
  return new MoeNoAnswersError(`every vote of the MOE query failed (trace ${trace}): ${modelVotes.map(v => `${v.model}: ${v.error}`).join('; ').slice(0, 2000)}`, { model_votes: modelVotes })
}
