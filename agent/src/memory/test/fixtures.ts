/**
 * Test material of the memory specs: temp dirs, seeded vectors, and a deterministic embedder (a
 * hashed bag of words: the caller's embedding function, a real one, just not a learned one).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export async function tempDir (prefix = 'flexnode-memory-'): Promise<{ dir: string, cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  return { dir, cleanup: async () => { await rm(dir, { recursive: true, force: true }) } }
}

/** mulberry32: a seeded source of floats in [0, 1). */
export function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `n` vectors of `dims` components in [-1, 1), from a seed. */
export function vectors (n: number, dims: number, seed = 1): Float32Array[] {
  const r = rng(seed)
  return Array.from({ length: n }, () => Float32Array.from({ length: dims }, () => r() * 2 - 1))
}

/** A hashed bag of words of `dims` buckets: texts sharing words have close vectors. */
export function bagOfWords (dims: number): (model: string, texts: string[]) => Promise<number[][]> {
  return async (_model, texts) => texts.map((text) => {
    const v = new Array<number>(dims).fill(0)
    for (const word of text.toLowerCase().split(/\W+/).filter(w => w.length > 0)) {
      let h = 0x811c9dc5
      for (let i = 0; i < word.length; i++) h = Math.imul(h ^ word.charCodeAt(i), 0x01000193)
      v[(h >>> 0) % dims]! += 1
    }
    return v
  })
}

/** Exact nearest neighbours by brute force: ids in order of the distance function given. */
export function bruteForce (points: Array<{ id: string, vector: ArrayLike<number> }>, query: ArrayLike<number>, k: number, distance: 'cosine' | 'l2' | 'ip'): string[] {
  const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!; return s }
  const d = (v: ArrayLike<number>): number => {
    if (distance === 'ip') return 1 - dot(v, query)
    if (distance === 'cosine') return 1 - dot(v, query) / Math.sqrt(dot(v, v) * dot(query, query))
    let s = 0
    for (let i = 0; i < v.length; i++) s += (v[i]! - query[i]!) ** 2
    return s
  }
  return points.map(p => ({ id: p.id, d: d(p.vector) })).sort((a, b) => a.d - b.d).slice(0, k).map(p => p.id)
}
