import { describe, it, expect } from 'vitest'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js'
import {
  InvalidSchedulerInputError,
  NoAnswersError,
  answerSimilarity,
  createSeededRng,
  normalizeAnswer,
  reduceWeightedConsensus,
  responseHash
} from '../index.ts'
import type { Vote } from '../index.ts'
import { tokenDistance } from '../src/reducer.ts'

function vote (model: string, text: string, weight = 1, latency_ms = 100, patch: Partial<Vote> = {}): Vote {
  return { model, node: `node-${model}`, text, weight, latency_ms, ...patch }
}

const OPTS = { min_agreement: 0.6 }

describe('normalizeAnswer', () => {
  it('lowercases, collapses whitespace, drops trailing periods', () => {
    expect(normalizeAnswer('  The answer   is\n\t42.  ')).toBe('the answer is 42')
    expect(normalizeAnswer('Done...')).toBe('done')
  })

  it('applies Unicode NFKC', () => {
    expect(normalizeAnswer('ｆｕｌｌ　ｗｉｄｔｈ')).toBe('full width') // full-width letters and space
    expect(normalizeAnswer('ﬁne')).toBe('fine') // the fi ligature
    expect(normalizeAnswer('Cafe\u0301')).toBe(normalizeAnswer('Café'))
  })

  it('strips surrounding code fences, emphasis, quotes and markers', () => {
    expect(normalizeAnswer('```ts\nreturn a + b\n```')).toBe('return a + b')
    expect(normalizeAnswer('~~~\nx\n~~~')).toBe('x')
    expect(normalizeAnswer('**Yes.**')).toBe('yes')
    expect(normalizeAnswer('"Paris"')).toBe('paris')
    expect(normalizeAnswer('“Paris.”')).toBe('paris')
    expect(normalizeAnswer('`npm test`')).toBe('npm test')
    expect(normalizeAnswer('## Result\u00a0')).toBe('result')
    expect(normalizeAnswer('> quoted')).toBe('quoted')
  })

  it('keeps markup that is not around the whole answer', () => {
    expect(normalizeAnswer('**a** or **b**')).toBe('**a** or **b**')
    expect(normalizeAnswer('use `x` here')).toBe('use `x` here')
    expect(normalizeAnswer('f(x)')).toBe('f(x)')
    expect(normalizeAnswer('__init__')).toBe('__init__')
  })
})

describe('answerSimilarity', () => {
  it('is 1 for answers equal after normalization', () => {
    expect(answerSimilarity('Hello,  World.', 'hello, world')).toBe(1)
    expect(answerSimilarity('x=1', 'x = 1')).toBe(1) // same tokens
    expect(answerSimilarity('', '')).toBe(1)
  })

  it('is token-level: one word changed out of ten is 0.9', () => {
    const a = 'one two three four five six seven eight nine ten'
    expect(answerSimilarity(a, a.replace('five', 'FIVE'))).toBe(1)
    expect(answerSimilarity(a, a.replace('five', 'five!'))).toBeCloseTo(10 / 11) // inner punctuation is a token
    expect(answerSimilarity(a, a.replace('five', 'cinq'))).toBeCloseTo(0.9)
    expect(answerSimilarity('return a + b', 'return a - b')).toBeCloseTo(0.75)
    expect(answerSimilarity('yes', 'no')).toBe(0)
  })

  it('is symmetric and in [0, 1]', () => {
    const pairs: Array<[string, string]> = [['a b c', 'a c'], ['', 'x y'], ['the cat sat', 'sat the cat']]
    for (const [a, b] of pairs) {
      const s = answerSimilarity(a, b)
      expect(s).toBe(answerSimilarity(b, a))
      expect(s).toBeGreaterThanOrEqual(0)
      expect(s).toBeLessThanOrEqual(1)
    }
  })
})

describe('tokenDistance (banded Levenshtein)', () => {
  function naive (a: string[], b: string[]): number {
    const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)))
    for (let i = 1; i <= a.length; i++) {
      for (let j = 1; j <= b.length; j++) {
        const row = d[i] as number[]
        const up = d[i - 1] as number[]
        row[j] = Math.min((up[j] as number) + 1, (row[j - 1] as number) + 1, (up[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1))
      }
    }
    return (d[a.length] as number[])[b.length] as number
  }

  it('agrees with the textbook algorithm within the band, and says "over" beyond it', () => {
    const rng = createSeededRng(2024)
    const words = ['a', 'b', 'c', 'd']
    const sentence = (): string[] => Array.from({ length: Math.floor(rng() * 12) }, () => words[Math.floor(rng() * words.length)] as string)
    for (let round = 0; round < 500; round++) {
      const a = sentence()
      const b = sentence()
      const limit = Math.floor(rng() * 8)
      const exact = naive(a, b)
      expect(tokenDistance(a, b, limit), `${a.join('')} / ${b.join('')} ≤ ${limit}`).toBe(exact <= limit ? exact : limit + 1)
    }
  })
})

describe('responseHash', () => {
  it('is the sha256 hex of the normalized answer', () => {
    expect(responseHash('  **Yes.** ')).toBe(bytesToHex(sha256(utf8ToBytes('yes'))))
    expect(responseHash('YES')).toBe(responseHash('yes.'))
    expect(responseHash('yes')).toMatch(/^[0-9a-f]{64}$/)
  })
})

describe('reduceWeightedConsensus', () => {
  it('identical answers agree unanimously', () => {
    const r = reduceWeightedConsensus([vote('a', '42'), vote('b', '42'), vote('c', '42')], OPTS)
    expect(r).toMatchObject({ response: '42', consensus: true, consensus_score: 1 })
    expect(r.clusters).toHaveLength(1)
    expect(r.clusters[0]?.members).toHaveLength(3)
    expect(new Set(r.model_votes.map(v => v.response_hash)).size).toBe(1)
  })

  it('a different answer is outvoted', () => {
    const r = reduceWeightedConsensus([vote('a', '42'), vote('b', '41'), vote('c', '42')], OPTS)
    expect(r.response).toBe('42')
    expect(r.consensus_score).toBeCloseTo(2 / 3)
    expect(r.consensus).toBe(true)
    expect(r.clusters.map(c => [c.representative, c.weight])).toEqual([['42', 2], ['41', 1]])
    expect(r.model_votes.map(v => v.cluster)).toEqual([0, 1, 0])
  })

  it('clusters answers that differ only in whitespace, case, punctuation and markdown', () => {
    const r = reduceWeightedConsensus([
      vote('a', 'The capital of France is Paris.'),
      vote('b', '  the capital of france is   PARIS'),
      vote('c', '**The capital of France is Paris!**'),
      vote('d', 'The capital of France is Lyon.')
    ], OPTS)
    expect(r.clusters).toHaveLength(2)
    expect(r.clusters[0]?.members.map(m => m.model)).toEqual(['a', 'b', 'c'])
    expect(r.consensus_score).toBeCloseTo(0.75)
    expect(r.consensus).toBe(true)
  })

  it('clusters near-identical answers by similarity, not only exact hashes', () => {
    const base = 'Use a binary search over the sorted array, halving the range until the key is found or the range is empty.'
    const r = reduceWeightedConsensus([
      vote('a', base),
      vote('b', base.replace('sorted array', 'sorted list')),
      vote('c', 'Scan every element.')
    ], OPTS)
    expect(r.model_votes[0]?.response_hash).not.toBe(r.model_votes[1]?.response_hash)
    expect(r.clusters[0]?.members.map(m => m.model)).toEqual(['a', 'b'])
    expect(r.consensus_score).toBeCloseTo(2 / 3)
    // with a strict threshold they stay apart
    const strict = reduceWeightedConsensus([vote('a', base), vote('b', base.replace('sorted array', 'sorted list'))], { ...OPTS, similarity_threshold: 1 })
    expect(strict.clusters).toHaveLength(2)
  })

  it('weights decide: one heavy vote outweighs two light ones', () => {
    const r = reduceWeightedConsensus([vote('light-1', 'A', 0.5), vote('light-2', 'A', 0.5), vote('heavy', 'B', 1.5)], OPTS)
    expect(r.response).toBe('B')
    expect(r.consensus_score).toBeCloseTo(0.6)
    expect(r.consensus).toBe(true) // exactly min_agreement
  })

  it('below min_agreement: consensus false, the heaviest answer still returned', () => {
    const r = reduceWeightedConsensus([vote('a', 'A', 1.2), vote('b', 'B', 1.0), vote('c', 'C', 0.9), vote('d', 'A', 0.3)], OPTS)
    expect(r.response).toBe('A')
    expect(r.consensus_score).toBeCloseTo(1.5 / 3.4)
    expect(r.consensus).toBe(false)
    expect(r.clusters.map(c => c.representative)).toEqual(['A', 'B', 'C'])
  })

  it('failed votes are listed without a hash and count in no denominator', () => {
    const r = reduceWeightedConsensus([
      vote('a', '42', 1),
      vote('b', '', 5, 30000, { error: 'DeadlineExceededError' }),
      vote('c', '41', 1),
      vote('d', '42', 1),
      vote('e', '   ', 2)
    ], OPTS)
    expect(r.consensus_score).toBeCloseTo(2 / 3)
    expect(r.model_votes[1]).toEqual({ model: 'b', node: 'node-b', response_hash: null, weight: 0, latency_ms: 30000, cluster: null, error: 'DeadlineExceededError' })
    expect(r.model_votes[4]).toMatchObject({ response_hash: null, weight: 0, cluster: null, error: 'empty answer' })
    expect(r.model_votes.map(v => v.model)).toEqual(['a', 'b', 'c', 'd', 'e'])
  })

  it('all votes failed: NoAnswersError keeps the audit trail', () => {
    const votes = [vote('a', '', 1, 10, { error: 'BusyError' }), vote('b', '', 1, 20, { error: 'ModelNotLoadedError' })]
    try {
      reduceWeightedConsensus(votes, OPTS)
      expect.unreachable()
    } catch (err) {
      expect((err as Error).name).toBe('NoAnswersError')
      expect(err).toBeInstanceOf(NoAnswersError)
      expect((err as NoAnswersError).model_votes.map(v => v.error)).toEqual(['BusyError', 'ModelNotLoadedError'])
    }
    expect(() => reduceWeightedConsensus([], OPTS)).toThrow(NoAnswersError)
  })

  describe('ties', () => {
    it('equal cluster weights: the cluster with the heaviest single vote wins', () => {
      const r = reduceWeightedConsensus([vote('a', 'A', 0.5), vote('b', 'A', 0.5), vote('c', 'B', 1.0)], OPTS)
      expect(r.response).toBe('B')
      expect(r.consensus_score).toBeCloseTo(0.5)
      expect(r.consensus).toBe(false)
    })

    it('then the earliest answer wins', () => {
      const r = reduceWeightedConsensus([vote('slow', 'A', 1, 900), vote('fast', 'B', 1, 300)], OPTS)
      expect(r.response).toBe('B')
    })

    it('a full tie does not depend on the input order', () => {
      const votes = [vote('a', 'A', 1, 100), vote('b', 'B', 1, 100)]
      expect(reduceWeightedConsensus(votes, OPTS).response).toBe(reduceWeightedConsensus([...votes].reverse(), OPTS).response)
    })

    it('the representative is the heaviest member\'s answer, as given', () => {
      const r = reduceWeightedConsensus([vote('a', 'paris', 0.9), vote('b', '**Paris.**', 1.2)], OPTS)
      expect(r.response).toBe('**Paris.**')
      expect(r.clusters[0]?.members.map(m => m.model)).toEqual(['a', 'b'])
    })
  })

  it('reports per-vote hashes, weights and latencies in input order', () => {
    const r = reduceWeightedConsensus([vote('a', 'X', 1.1, 500), vote('b', 'x.', 0.9, 700)], OPTS)
    expect(r.model_votes).toEqual([
      { model: 'a', node: 'node-a', response_hash: responseHash('x'), weight: 1.1, latency_ms: 500, cluster: 0 },
      { model: 'b', node: 'node-b', response_hash: responseHash('x'), weight: 0.9, latency_ms: 700, cluster: 0 }
    ])
  })

  it('refuses votes and options out of their domain', () => {
    const fieldOf = (fn: () => unknown): string => {
      try {
        fn()
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidSchedulerInputError)
        expect((err as Error).name).toBe('InvalidSchedulerInputError')
        return (err as InvalidSchedulerInputError).field
      }
      throw new Error('expected InvalidSchedulerInputError')
    }
    expect(fieldOf(() => reduceWeightedConsensus([vote('a', 'x', 0)], OPTS))).toBe('votes[0].weight')
    expect(fieldOf(() => reduceWeightedConsensus([vote('a', 'x'), vote('b', 'x', Number.NaN)], OPTS))).toBe('votes[1].weight')
    expect(fieldOf(() => reduceWeightedConsensus([vote('a', 'x', 1, -1)], OPTS))).toBe('votes[0].latency_ms')
    expect(fieldOf(() => reduceWeightedConsensus([vote('a', 'x')], { min_agreement: 0 }))).toBe('min_agreement')
    expect(fieldOf(() => reduceWeightedConsensus([vote('a', 'x')], { min_agreement: 0.6, similarity_threshold: 1.5 }))).toBe('similarity_threshold')
    // a failed vote's weight does not matter
    expect(reduceWeightedConsensus([vote('a', 'x'), vote('b', '', 0, 0, { error: 'e' })], OPTS).consensus_score).toBe(1)
  })

  it('reduces long answers (banded distance)', () => {
    const rng = createSeededRng(5)
    const long = (): string => Array.from({ length: 3000 }, () => `w${Math.floor(rng() * 500)}`).join(' ')
    const a = long()
    const votes = [vote('a', a), vote('b', a.replace(/w1 /g, 'w2 ')), ...Array.from({ length: 6 }, (_, i) => vote(`x${i}`, long()))]
    const r = reduceWeightedConsensus(votes, OPTS)
    expect(r.clusters[0]?.members.map(m => m.model)).toEqual(['a', 'b'])
  })
})
