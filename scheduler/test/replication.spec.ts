import { describe, expect, it } from 'vitest'
import { replicationDecision, type ReplicationInput, type ReplicationNode } from '../index.ts'

const NOW = 1_000_000_000
const nodes = Array.from({ length: 10 }, (_, i) => `node-${i}`)
const view = (overrides: Partial<Record<string, Partial<ReplicationNode>>> = {}): ReplicationNode[] =>
  nodes.map(node => ({ node, live: true, last_seen: NOW, free_bytes: 1e12, ...overrides[node] }))
const base = (self: string, over: Partial<ReplicationInput> = {}): ReplicationInput => ({
  cid: 'bafkreiexample', size: 1000, replication: { min: 3, max: 4 }, producer: 'node-0', providers: [{ node: 'node-0' }], nodes: view(), self, now: NOW, ...over
})
const pinners = (over: Partial<ReplicationInput> = {}): string[] => nodes.filter(self => replicationDecision(base(self, over)).action === 'pin')

describe('replicationDecision', () => {
  it('under min: exactly the missing number of nodes pin, the same ones whoever decides', () => {
    const chosen = pinners()
    expect(chosen).toHaveLength(2)
    for (const self of nodes) expect(replicationDecision(base(self)).chosen).toEqual(replicationDecision(base('node-0')).chosen)
    expect(replicationDecision(base('node-0')).action).toBe('none') // the producer already provides it
  })

  it('a provider offline within the grace period still counts: no repin storm for a short drop-out', () => {
    const providers = [{ node: 'node-0' }, { node: 'node-1' }, { node: 'node-2' }]
    const down = view({ 'node-1': { live: false, last_seen: NOW - 10_000 } })
    expect(pinners({ providers, nodes: down, graceMs: 60_000 })).toEqual([])
    // past the grace period exactly one node replaces it, never node-1 itself
    const gone = view({ 'node-1': { live: false, last_seen: NOW - 120_000 } })
    const chosen = pinners({ providers, nodes: gone, graceMs: 60_000 })
    expect(chosen).toHaveLength(1)
    expect(['node-0', 'node-1', 'node-2']).not.toContain(chosen[0])
  })

  it('a node briefly missing from one view is still ranked there: both views choose the same pinner', () => {
    for (let i = 0; i < 50; i++) {
      const cid = `cid-${i}`
      const chosen = replicationDecision(base('node-0', { cid })).chosen
      const blip = view({ [chosen[0]!]: { live: false, last_seen: NOW - 2000 } })
      expect(replicationDecision(base('node-0', { cid, nodes: blip })).chosen).toEqual(chosen)
    }
  })

  it('a node without room, gone past its grace period or of unknown free space is never chosen', () => {
    const full = view({ 'node-5': { free_bytes: 10 }, 'node-6': { live: false, last_seen: NOW - 120_000 }, 'node-7': { free_bytes: undefined } })
    for (let i = 0; i < 50; i++) {
      const chosen = replicationDecision(base('node-0', { cid: `cid-${i}`, nodes: full })).chosen
      expect(chosen).not.toContain('node-5')
      expect(chosen).not.toContain('node-6')
      expect(chosen).not.toContain('node-7')
    }
  })

  it('over max: the lowest-ranked providers unpin, never the producer', () => {
    const providers = nodes.slice(0, 7).map(node => ({ node }))
    const unpin = nodes.filter(self => replicationDecision(base(self, { providers })).action === 'unpin')
    expect(unpin).toHaveLength(3)
    expect(unpin).not.toContain('node-0')
  })

  it('within [min, max] nothing moves; different CIDs spread over different nodes', () => {
    expect(pinners({ providers: nodes.slice(0, 3).map(node => ({ node })) })).toEqual([])
    const load = new Map<string, number>()
    for (let i = 0; i < 200; i++) for (const n of pinners({ cid: `bafy-${i}` })) load.set(n, (load.get(n) ?? 0) + 1)
    expect(load.size).toBeGreaterThanOrEqual(8)
  })
})
