/**
 * Single-model routing: which node should serve `model`? Candidates are ranked by a
 * lexicographic key, so every decision can be explained field by field:
 *
 * 1. residency: the model already loaded > on disk only > neither (excluded);
 * 2. a real model > a demo one (the random-weight model a node generates for itself): a demo copy
 *    serves only when no node has a real one;
 * 3. availability: `online` > `busy` (`draining` and `offline` are excluded);
 * 4. pressure: fewer queued requests, then lower load (in buckets of LOAD_BUCKET_PERCENT %); the
 *    caller counts its own requests in flight to a node as queued there, so concurrent requests
 *    spread over equal nodes;
 * 5. speed: higher measured tokens/s (unmeasured ranks below any measurement);
 * 6. locality: the requester's region, then the requester itself;
 * 7. `node_id`, ascending, so the order never depends on the input order.
 */
import type { Availability } from '../../zomes-ts/agent_registry/types.ts'
import { LOAD_BUCKET_PERCENT, QUEUE_WEIGHT_IN_BUCKETS } from './constants.ts'

export interface ProviderCandidate {
  node_id: string
  /** the requesting node itself */
  self: boolean
  models_loaded: readonly string[]
  /** models on the node's disk, loaded or not */
  models_available: readonly string[]
  availability: Availability
  load: { cpu_percent: number, gpu_percent: number }
  /** requests waiting on the node (for this model when known, else in total), plus the caller's own in flight there */
  queue_depth: number
  /** the node's demo models (random weights, generated for a first run). @default none */
  demo_models?: readonly string[]
  /** measured generation speed; null before any measurement */
  tokens_per_second: number | null
  latency_region: string
}

export interface RouteRequest {
  model: string
  /** the requester's `latency_region` */
  region?: string
}

export type Residency = 'loaded' | 'on_disk' | 'missing'

/**
 * The sort key, higher is better at every position, compared left to right:
 * `[residency, real (not demo), availability, −pressure, tokens/s, same region, self]`.
 */
export type ProviderScoreKey = readonly [residency: number, real: number, availability: number, pressure: number, tokens_per_second: number, same_region: number, self: number]

export interface ProviderScore {
  node_id: string
  eligible: boolean
  /** why an ineligible candidate is excluded */
  excluded_because?: 'model_missing' | 'offline' | 'draining'
  residency: Residency
  /** queue_depth × QUEUE_WEIGHT_IN_BUCKETS + ⌊max(cpu%, gpu%) / LOAD_BUCKET_PERCENT⌋; lower is better */
  pressure: number
  key: ProviderScoreKey
  /** one line a person can read: "qwen3-4b loaded, online, queue 0, load 45%, 150 tok/s, same region" */
  explanation: string
}

const RESIDENCY_RANK: Record<Residency, number> = { loaded: 2, on_disk: 1, missing: 0 }
const AVAILABILITY_RANK: Record<Availability, number> = { online: 1, busy: 0, draining: -1, offline: -1 }

function finiteOr (value: number | null | undefined, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback
}

function clampPercent (value: number): number {
  return Math.min(100, Math.max(0, finiteOr(value, 100)))
}

/** Scores one candidate for `request`; ineligible candidates get a score too, saying why. */
export function scoreProvider (candidate: ProviderCandidate, request: RouteRequest): ProviderScore {
  const residency: Residency = candidate.models_loaded.includes(request.model)
    ? 'loaded'
    : candidate.models_available.includes(request.model) ? 'on_disk' : 'missing'
  const load = Math.max(clampPercent(candidate.load.cpu_percent), clampPercent(candidate.load.gpu_percent))
  const queue = Math.max(0, finiteOr(candidate.queue_depth, 0))
  const pressure = queue * QUEUE_WEIGHT_IN_BUCKETS + Math.floor(load / LOAD_BUCKET_PERCENT)
  const tps = candidate.tokens_per_second === null ? -1 : Math.max(0, finiteOr(candidate.tokens_per_second, 0))
  const sameRegion = request.region !== undefined && request.region === candidate.latency_region
  const demo = candidate.demo_models?.includes(request.model) === true

  let excluded: ProviderScore['excluded_because']
  if (residency === 'missing') excluded = 'model_missing'
  else if (candidate.availability === 'offline' || candidate.availability === 'draining') excluded = candidate.availability

  const parts = [
    `${request.model} ${residency === 'on_disk' ? 'on disk (not loaded)' : residency}${demo ? ' (demo)' : ''}`,
    candidate.availability,
    `queue ${queue}`,
    `load ${load}%`,
    tps < 0 ? 'speed unmeasured' : `${tps} tok/s`
  ]
  if (sameRegion) parts.push('same region')
  if (candidate.self) parts.push('self')
  if (excluded !== undefined) parts.push(`excluded: ${excluded.replace('_', ' ')}`)

  const score: ProviderScore = {
    node_id: candidate.node_id,
    eligible: excluded === undefined,
    residency,
    pressure,
    key: [RESIDENCY_RANK[residency], demo ? 0 : 1, AVAILABILITY_RANK[candidate.availability] ?? -1, -pressure, tps, sameRegion ? 1 : 0, candidate.self ? 1 : 0],
    explanation: parts.join(', ')
  }
  if (excluded !== undefined) score.excluded_because = excluded
  return score
}

/** Orders two scores best first (negative when `a` ranks before `b`). */
export function compareProviderScores (a: ProviderScore, b: ProviderScore): number {
  for (let i = 0; i < a.key.length; i++) {
    const d = (b.key[i] ?? 0) - (a.key[i] ?? 0)
    if (d !== 0) return d
  }
  return a.node_id < b.node_id ? -1 : a.node_id > b.node_id ? 1 : 0
}

/** The eligible candidates with their scores, best first. */
export function rankProvidersWithScores (candidates: readonly ProviderCandidate[], request: RouteRequest): Array<{ candidate: ProviderCandidate, score: ProviderScore }> {
  return candidates
    .map(candidate => ({ candidate, score: scoreProvider(candidate, request) }))
    .filter(({ score }) => score.eligible)
    .sort((a, b) => compareProviderScores(a.score, b.score))
}

/**
 * The candidates that can serve `request.model`, best first (see the module doc for the order).
 * Candidates without the model, offline or draining are left out; an empty result means no node
 * can serve it.
 */
export function rankProviders (candidates: readonly ProviderCandidate[], request: RouteRequest): ProviderCandidate[] {
  return rankProvidersWithScores(candidates, request).map(({ candidate }) => candidate)
}
