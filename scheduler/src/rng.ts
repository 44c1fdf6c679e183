/** Seeded randomness: the only source of chance the scheduler's algorithms take. */

/** Returns a number in [0, 1); the same seed gives the same sequence. */
export type Rng = () => number

/**
 * mulberry32: a small, fast 32-bit generator, good enough to break ties and spread load;
 * not for anything secret.
 */
export function createSeededRng (seed: number): Rng {
  let state = (Math.trunc(seed) >>> 0)
  return () => {
    state = (state + 0x6D2B79F5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
