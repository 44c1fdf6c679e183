/**
 * A seeded PRNG for the simulation (sfc32: small, fast, passes PractRand to 2^40 bytes), so a
 * run is the same for the same seed on every machine. Nothing in the simulation reads
 * `Math.random` or the wall clock.
 *
 * ```ts
 * const rng = new Rng(42)
 * rng.int(10) // 0..9
 * ```
 */
export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor (seed: number) {
    this.a = 0x9e3779b9
    this.b = 0x243f6a88
    this.c = 0xb7e15162
    this.d = seed >>> 0
    for (let i = 0; i < 15; i++) this.u32()
  }

  u32 (): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0
    this.d = (this.d + 1) >>> 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) >>> 0
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0
    this.c = (this.c + t) >>> 0
    return t
  }

  /** uniform in [0, 1) */
  next (): number {
    return this.u32() / 4294967296
  }

  /** uniform integer in [0, n) */
  int (n: number): number {
    return Math.floor(this.next() * n)
  }

  /** exponential with the given mean */
  exp (mean: number): number {
    return -Math.log(1 - this.next()) * mean
  }

  bytes (n: number): Uint8Array {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i += 4) {
      const v = this.u32()
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (v >>> (8 * j)) & 0xff
    }
    return out
  }

  /** `k` distinct indices of [0, n), in random order (partial Fisher-Yates) */
  sample (n: number, k: number): number[] {
    const idx = Array.from({ length: n }, (_, i) => i)
    const m = Math.min(k, n)
    for (let i = 0; i < m; i++) {
      const j = i + this.int(n - i)
      const t = idx[i]!
      idx[i] = idx[j]!
      idx[j] = t
    }
    return idx.slice(0, m)
  }

  /** a new generator seeded from this one (for an independent stream) */
  fork (): Rng {
    return new Rng(this.u32())
  }
}
