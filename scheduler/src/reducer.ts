/**
 * The MOE reducer: weighted consensus over the answers of a fan-out (`reducer.strategy:
 * weighted_consensus`, `conflict_resolution: highest_weight_wins`).
 *
 * Answers are normalized, then clustered: a vote joins the most similar existing cluster whose
 * representative it matches exactly (normalized) or with `answerSimilarity ≥ similarity_threshold`,
 * else it founds a new one. Votes are visited heaviest first, so each cluster's representative is
 * its heaviest member. The heaviest cluster wins (ties: the heavier single vote, then the earliest
 * answer, then the smaller hash); `consensus_score` is its share of the answered weight and
 * `consensus` says whether that share reaches `min_agreement`. Below it the winner is still
 * returned, with `consensus: false`. Failed votes are listed in `model_votes` (weight 0, no hash)
 * and count in no denominator.
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js'
import { DEFAULT_SIMILARITY_THRESHOLD } from './constants.ts'
import { InvalidSchedulerInputError, NoAnswersError } from './errors.ts'
import type { ModelVote } from './types.ts'

export type { ModelVote }

export interface Vote {
  model: string
  /** the node that served it (or a cloud provider's name) */
  node: string
  /** the answer; ignored when `error` is set */
  text: string
  /** the vote weight (> 0 for an answered vote) */
  weight: number
  latency_ms: number
  /** set when the request failed: the vote counts for nothing */
  error?: string
}

export interface ReduceOptions {
  /** share of the answered weight the winner needs: 0 < x ≤ 1 */
  min_agreement: number
  /** @default DEFAULT_SIMILARITY_THRESHOLD (0.85) */
  similarity_threshold?: number
}


export interface AnswerCluster {
  /** the heaviest member's answer, as it was given */
  representative: string
  /** sha256 hex of the representative's normalized text */
  response_hash: string
  /** the members' summed weight */
  weight: number
  members: Array<{ model: string, node: string }>
}

export interface ReduceResult {
  /** the winning cluster's representative answer */
  response: string
  /** consensus_score ≥ min_agreement */
  consensus: boolean
  /** winner weight / weight of all answered votes, in (0, 1] */
  consensus_score: number
  /** heaviest first: clusters[0] is the winner */
  clusters: AnswerCluster[]
  /** one per vote, in the input order */
  model_votes: ModelVote[]
}

const FENCE = /^(`{3,}|~{3,})[^\n`]*\n([\s\S]*?)\n?\1[ \t]*$/
const WRAPPERS = /^([*`~"'“”‘’«»]+)([\s\S]*?)([*`~"'“”‘’«»]+)$/
const LEADING_MARKERS = /^(?:#{1,6}[ \t]+|>[ \t]*|[-*+][ \t]+)/
const TRAILING_PUNCTUATION = /[.!?,;:。]+$/

/**
 * The canonical form answers are compared and hashed in: Unicode NFKC, lowercase, surrounding
 * code fences / emphasis / quotes / heading and quote markers stripped, whitespace runs collapsed
 * to one space, trailing sentence punctuation (periods…) dropped.
 */
export function normalizeAnswer (text: string): string {
  let s = text.normalize('NFKC').trim()
  for (;;) {
    const before = s
    const fence = FENCE.exec(s)
    if (fence !== null) s = (fence[2] ?? '').trim()
    s = s.replace(LEADING_MARKERS, '').trim()
    const wrapped = WRAPPERS.exec(s)
    // strip a wrapper only when it is the whole answer's: `**yes**`, not `**a** or **b**`
    if (wrapped?.[1] !== undefined && wrapped[2] !== undefined && wrapped[1].length === wrapped[3]?.length &&
      !wrapped[2].includes(wrapped[1])) {
      s = (wrapped[2] ?? '').trim()
    }
    s = s.replace(TRAILING_PUNCTUATION, '').trim()
    if (s === before) break
  }
  return s.toLowerCase().normalize('NFKC').replace(/\s+/g, ' ')
}

/** The tokens answers are compared by: runs of letters/digits/underscore, and single symbols. */
function tokenize (normalized: string): string[] {
  return normalized.match(/[\p{L}\p{N}\p{M}_]+|[^\s\p{L}\p{N}\p{M}_]/gu) ?? []
}

/**
 * Levenshtein distance over tokens, computed only within a band of width `limit` around the
 * diagonal: the exact distance when it is ≤ limit, else `limit + 1`. O(limit · length) time.
 * Exported for tests; not part of the scheduler's entry point.
 */
export function tokenDistance (a: readonly string[], b: readonly string[], limit: number): number {
  const [s, t] = a.length <= b.length ? [a, b] : [b, a]
  const n = s.length
  const m = t.length
  if (m - n > limit) return limit + 1
  const over = limit + 1
  let prev = Array.from({ length: n + 2 }, (_, i) => (i <= limit ? i : over))
  let cur = new Array<number>(n + 2).fill(over)
  for (let j = 1; j <= m; j++) {
    const lo = Math.max(1, j - limit)
    const hi = Math.min(n, j + limit)
    cur[lo - 1] = lo === 1 ? Math.min(j, over) : over
    let rowMin = cur[lo - 1] ?? over
    for (let i = lo; i <= hi; i++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1
      const v = Math.min((prev[i] ?? over) + 1, (cur[i - 1] ?? over) + 1, (prev[i - 1] ?? over) + cost, over)
      cur[i] = v
      if (v < rowMin) rowMin = v
    }
    if (hi + 1 <= n) cur[hi + 1] = over
    if (rowMin > limit) return over
    const done = prev
    prev = cur
    cur = done
  }
  return Math.min(prev[n] ?? over, over)
}

/** Token-level similarity, or 0 when below `threshold` (the banded distance gives up early). */
function tokenSimilarity (a: readonly string[], b: readonly string[], threshold = 0): number {
  const longest = Math.max(a.length, b.length)
  if (longest === 0) return 1
  const limit = Math.floor((1 - threshold) * longest + 1e-9)
  const distance = tokenDistance(a, b, limit)
  return distance > limit ? 0 : 1 - distance / longest
}

/**
 * How alike two answers are, in [0, 1]: 1 − (token-level Levenshtein distance / longer token
 * count), over the normalized texts. Whitespace, case and surrounding punctuation do not count;
 * word order does. Two empty answers are identical.
 */
export function answerSimilarity (a: string, b: string): number {
  const na = normalizeAnswer(a)
  const nb = normalizeAnswer(b)
  if (na === nb) return 1
  return tokenSimilarity(tokenize(na), tokenize(nb))
}

/** sha256 hex of the normalized answer: equal for answers the reducer treats as the same text. */
export function responseHash (text: string): string {
  return bytesToHex(sha256(utf8ToBytes(normalizeAnswer(text))))
}

interface Answered {
  index: number
  vote: Vote
  normalized: string
  tokens: string[]
  hash: string
}

interface Cluster {
  leader: Answered
  members: Answered[]
  weight: number
  maxWeight: number
  minLatency: number
}

function validateVote (vote: Vote, i: number): void {
  const at = `votes[${i}]`
  if (typeof vote.model !== 'string') throw new InvalidSchedulerInputError(`${at}.model must be a string`, { field: `${at}.model` })
  if (typeof vote.node !== 'string') throw new InvalidSchedulerInputError(`${at}.node must be a string`, { field: `${at}.node` })
  if (typeof vote.latency_ms !== 'number' || !Number.isFinite(vote.latency_ms) || vote.latency_ms < 0) {
    throw new InvalidSchedulerInputError(`${at}.latency_ms must be a number ≥ 0`, { field: `${at}.latency_ms` })
  }
  if (vote.error !== undefined) return
  if (typeof vote.text !== 'string') throw new InvalidSchedulerInputError(`${at}.text must be a string`, { field: `${at}.text` })
  if (typeof vote.weight !== 'number' || !Number.isFinite(vote.weight) || vote.weight <= 0) {
    throw new InvalidSchedulerInputError(`${at}.weight must be a number > 0`, { field: `${at}.weight` })
  }
}

/** Orders clusters best first: weight, heaviest single vote, earliest answer, hash. */
function compareClusters (a: Cluster, b: Cluster): number {
  return (b.weight - a.weight) ||
    (b.maxWeight - a.maxWeight) ||
    (a.minLatency - b.minLatency) ||
    (a.leader.hash < b.leader.hash ? -1 : a.leader.hash > b.leader.hash ? 1 : 0)
}

/**
 * Reduces the votes of one fan-out by weighted consensus (see the module doc). A vote whose
 * answer normalizes to the empty string counts as failed (`error: 'empty answer'`).
 *
 * @throws {NoAnswersError} when no vote has an answer (its `model_votes` keep the audit trail)
 * @throws {InvalidSchedulerInputError} for a vote without a positive weight, a bad option…
 */
export function reduceWeightedConsensus (votes: readonly Vote[], options: ReduceOptions): ReduceResult {
  const { min_agreement: minAgreement } = options
  const threshold = options.similarity_threshold ?? DEFAULT_SIMILARITY_THRESHOLD
  if (typeof minAgreement !== 'number' || !(minAgreement > 0 && minAgreement <= 1)) {
    throw new InvalidSchedulerInputError('min_agreement must be a number > 0 and ≤ 1', { field: 'min_agreement' })
  }
  if (typeof threshold !== 'number' || !(threshold > 0 && threshold <= 1)) {
    throw new InvalidSchedulerInputError('similarity_threshold must be a number > 0 and ≤ 1', { field: 'similarity_threshold' })
  }
  votes.forEach(validateVote)

  const errors = new Map<number, string>()
  const answered: Answered[] = []
  votes.forEach((vote, index) => {
    if (vote.error !== undefined) {
      errors.set(index, vote.error)
      return
    }
    const normalized = normalizeAnswer(vote.text)
    if (normalized === '') {
      errors.set(index, 'empty answer')
      return
    }
    const hash = bytesToHex(sha256(utf8ToBytes(normalized)))
    answered.push({ index, vote, normalized, tokens: tokenize(normalized), hash })
  })

  const failedVote = (vote: Vote, index: number): ModelVote => ({
    model: vote.model, node: vote.node, response_hash: null, weight: 0, latency_ms: vote.latency_ms, cluster: null, error: errors.get(index) ?? 'failed'
  })
  if (answered.length === 0) throw new NoAnswersError(votes.map(failedVote))

  // heaviest (then fastest, then by hash) first: leaders are their cluster's heaviest vote
  answered.sort((a, b) => (b.vote.weight - a.vote.weight) || (a.vote.latency_ms - b.vote.latency_ms) ||
    (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : a.index - b.index))
  const clusters: Cluster[] = []
  const clusterOf = new Map<number, Cluster>()
  for (const a of answered) {
    let home: Cluster | undefined
    let best = -1
    for (const c of clusters) {
      const similarity = c.leader.hash === a.hash ? 1 : tokenSimilarity(c.leader.tokens, a.tokens, threshold)
      if (similarity >= threshold - 1e-12 && similarity > best) {
        home = c
        best = similarity
      }
    }
    if (home === undefined) {
      home = { leader: a, members: [], weight: 0, maxWeight: 0, minLatency: Infinity }
      clusters.push(home)
    }
    home.members.push(a)
    home.weight += a.vote.weight
    home.maxWeight = Math.max(home.maxWeight, a.vote.weight)
    home.minLatency = Math.min(home.minLatency, a.vote.latency_ms)
    clusterOf.set(a.index, home)
  }
  clusters.sort(compareClusters)

  const total = answered.reduce((sum, a) => sum + a.vote.weight, 0)
  const winner = clusters[0] as Cluster
  const score = Math.min(1, winner.weight / total)
  const clusterIndex = new Map(clusters.map((c, i) => [c, i]))

  return {
    response: winner.leader.vote.text,
    // tolerate float noise in summed weights (1.2 + 0.6 + … vs 0.6 × total)
    consensus: score >= minAgreement - 1e-12,
    consensus_score: score,
    clusters: clusters.map(c => ({
      representative: c.leader.vote.text,
      response_hash: c.leader.hash,
      weight: c.weight,
      members: c.members.sort((x, y) => x.index - y.index).map(m => ({ model: m.vote.model, node: m.vote.node }))
    })),
    model_votes: votes.map((vote, index): ModelVote => {
      const cluster = clusterOf.get(index)
      if (cluster === undefined) return failedVote(vote, index)
      const own = cluster.members.find(m => m.index === index) as Answered
      return { model: vote.model, node: vote.node, response_hash: own.hash, weight: vote.weight, latency_ms: vote.latency_ms, cluster: clusterIndex.get(cluster) ?? null }
    })
  }
}
