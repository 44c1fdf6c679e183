/**
 * Admission of peer inference requests: merging the local and the mesh-wide policy, and the
 * per-peer rate windows under a flood of distinct peer ids.
 */
import { describe, expect, it } from 'vitest'
import { createAdmission, mergePolicies, type ProviderPolicy } from '../admission.ts'

/** Admits `n` requests of `peer`; returns how many were admitted before the first refusal. */
function admitted (admit: (peer: string, policy: ProviderPolicy) => void, peer: string, policy: ProviderPolicy, n: number): number {
  for (let i = 0; i < n; i++) {
    try {
      admit(peer, policy)
    } catch (err) {
      expect(err).toMatchObject({ name: 'BusyError' })
      return i
    }
  }
  return n
}

describe('provider policy merge', () => {
  it('keeps a higher local rate when the shared policy sets none (defaults do not win)', () => {
    expect(mergePolicies({ perPeerPerMinute: 1000 }, { deny: ['x'] }).perPeerPerMinute).toBe(1000)
    const { admit } = createAdmission()
    expect(admitted(admit, 'p', mergePolicies({ perPeerPerMinute: 1000 }, { deny: ['x'] }), 500)).toBe(500)
  })

  it('takes the most restrictive explicit rate, and the default only when neither sets one', () => {
    expect(mergePolicies({ perPeerPerMinute: 1000 }, { perPeerPerMinute: 10 }).perPeerPerMinute).toBe(10)
    expect(mergePolicies({ perPeerPerMinute: 5 }, { perPeerPerMinute: 10 }).perPeerPerMinute).toBe(5)
    expect(mergePolicies({}, { perPeerPerMinute: 300 }).perPeerPerMinute).toBe(300)
    expect(mergePolicies({}, {}).perPeerPerMinute).toBeUndefined()
    const { admit } = createAdmission()
    expect(admitted(admit, 'p', mergePolicies({}, {}), 200)).toBe(120)
  })

  it('applies both deny lists and narrows allow lists', () => {
    const merged = mergePolicies({ deny: ['a'], allow: ['b', 'c', 'd'] }, { deny: ['b'], allow: ['c', 'd', 'e'] })
    const { admit } = createAdmission()
    for (const [peer, name] of [['a', 'PolicyDeniedError'], ['b', 'PolicyDeniedError'], ['e', 'PolicyDeniedError']] as const) {
      expect(() => { admit(peer, merged) }).toThrow(expect.objectContaining({ name }) as Error)
    }
    admit('c', merged)
    admit('d', merged)
  })
})

describe('per-peer rate windows', () => {
  it('cannot be reset by flooding the limiter with many distinct peer ids', () => {
    const { admit } = createAdmission()
    const policy: ProviderPolicy = { perPeerPerMinute: 3 }
    expect(admitted(admit, 'heavy', policy, 10)).toBe(3)
    // a flood of one request each from 20,000 distinct ids
    for (let i = 0; i < 20_000; i++) admit(`flood-${i}`, policy)
    // the heavy peer is still at its limit
    expect(admitted(admit, 'heavy', policy, 1)).toBe(0)
  })

  it('holds a bounded number of windows under the flood and keeps serving other peers', () => {
    const a = createAdmission()
    const policy: ProviderPolicy = { perPeerPerMinute: 2 }
    for (let i = 0; i < 50_000; i++) a.admit(`flood-${i}`, policy)
    expect(a.tracked).toBeLessThanOrEqual(10_000)
    expect(admitted(a.admit, 'newcomer', policy, 5)).toBe(2)
  })
  it('slides: requests older than a minute stop counting', () => {
    let t = 1_000_000
    const { admit } = createAdmission({ now: () => t })
    const policy: ProviderPolicy = { perPeerPerMinute: 4 }
    expect(admitted(admit, 'p', policy, 2)).toBe(2)
    t += 30_000
    expect(admitted(admit, 'p', policy, 5)).toBe(2)
    t += 31_000
    // the first two slid out; the last two still count
    expect(admitted(admit, 'p', policy, 5)).toBe(2)
    t += 60_000
    expect(admitted(admit, 'p', policy, 5)).toBe(4)
  })
})
