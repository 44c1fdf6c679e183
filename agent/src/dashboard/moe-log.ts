/**
 * The recent MOE results the dashboard shows: a small ring buffer the inference router tells of
 * each finished MOE query (`InferenceRouterComponents.onMoeResult`), newest first.
 *
 * ```ts
 * const moe = moeLog({ size: 20 })
 * const router = createInferenceRouter(init, { ...components, onMoeResult: moe.record })
 * moe.recent()   // [{ at, trace_id, task_type, policy, consensus, consensus_score, votes }, …]
 * ```
 */
import type { MoeResultEvent } from '../inference/router.ts'
import { DEFAULT_MOE_HISTORY } from './constants.ts'
import type { DashboardMoeResult } from './types.ts'

export interface MoeLogInit {
  /** results kept. @default 20 */
  size?: number
  /** ms since the epoch. @default Date.now */
  clock?: () => number
}

export interface MoeLog {
  /** keep one finished query (the oldest kept falls out when full) */
  record: (event: MoeResultEvent) => void
  /** newest first */
  recent: () => DashboardMoeResult[]
}

/** What the page shows of one query: no prompt and no answer text, only the votes. */
export function moeResult (event: MoeResultEvent, at: number): DashboardMoeResult {
  const { outcome } = event
  return {
    at: new Date(at).toISOString(),
    trace_id: outcome.trace_id,
    task_type: event.task_type,
    policy: event.policy,
    consensus: outcome.consensus,
    consensus_score: outcome.consensus_score,
    votes: outcome.model_votes.map((v, i) => ({
      model: v.model,
      node: v.node,
      weight: v.weight,
      latency_ms: v.latency_ms,
      agreed: event.vote_clusters[i] === 0,
      ...('error' in v && typeof v.error === 'string' ? { error: v.error } : {})
    }))
  }
}

export function moeLog (init: MoeLogInit = {}): MoeLog {
  const size = Math.max(1, Math.trunc(init.size ?? DEFAULT_MOE_HISTORY))
  const clock = init.clock ?? Date.now
  const kept: DashboardMoeResult[] = []
  return {
    record: (event) => {
      kept.unshift(moeResult(event, clock()))
      if (kept.length > size) kept.length = size
    },
    recent: () => [...kept]
  }
}
