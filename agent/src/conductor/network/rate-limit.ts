/**
 * Token buckets per sender: each key may spend `burst` at once and earns `perSecond` more each
 * second, so one flooding peer cannot monopolize the work its messages cost (validation,
 * signature checks). At most 10,000 keys are held; past that the buckets start afresh.
 *
 * ```ts
 * const limit = new PerPeerRateLimit({ perSecond: 50, burst: 200 })
 * if (!limit.admit(peerId)) return   // dropped
 * ```
 */
export interface PerPeerRateLimitInit {
  perSecond: number
  burst: number
  /** ms clock. @default Date.now */
  now?: () => number
}

const MAX_KEYS = 10_000

export class PerPeerRateLimit {
  private readonly init: PerPeerRateLimitInit
  private readonly buckets = new Map<string, { tokens: number, at: number }>()

  constructor (init: PerPeerRateLimitInit) {
    this.init = init
  }

  /** Spend one token of `key`'s bucket; false when it has none left. */
  admit (key: string): boolean {
    const { perSecond, burst } = this.init
    const now = (this.init.now ?? Date.now)()
    const b = this.buckets.get(key) ?? { tokens: burst, at: now }
    b.tokens = Math.min(burst, b.tokens + (now - b.at) * perSecond / 1000)
    b.at = now
    if (this.buckets.size > MAX_KEYS) this.buckets.clear()
    this.buckets.set(key, b)
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }
}
