/**
 * The generated models' shapes: `TINY` for tests, `BENCH` for benchmarks, `DEMO` for a node's
 * first start. Apart from `constants.ts`, which the writer and tokenizer import, so the spec's
 * type (from `llama.ts`) does not make an import cycle.
 */
import { CHATML_TEMPLATE } from './constants.ts'
import type { LlamaModelSpec } from './llama.ts'

/** < 1 MiB; thousands of tokens per second on one CPU thread. */
export const TINY: Readonly<LlamaModelSpec> = Object.freeze({
  name: 'flexnode-tiny',
  seed: 1,
  vocab: 'tiny',
  dim: 64,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  ffn: 128,
  contextLength: 2048,
  chatTemplate: CHATML_TEMPLATE
})

/** ~58M parameters (vocab 32000), ~220 MiB of F32: a realistic load for benchmarks. */
export const BENCH: Readonly<LlamaModelSpec> = Object.freeze({
  name: 'flexnode-bench',
  seed: 1,
  vocab: 'bench',
  dim: 512,
  layers: 8,
  heads: 8,
  kvHeads: 4,
  ffn: 1536,
  contextLength: 4096,
  chatTemplate: CHATML_TEMPLATE
})

/**
 * The demo model a node generates into an empty models dir on first start, so `npm start`
 * answers out of the box: TINY's shape, marked `flexnode.demo = true` in its metadata.
 */
export const DEMO: Readonly<LlamaModelSpec> = Object.freeze({ ...TINY, name: 'flexnode-demo', demo: true })

export const PRESETS = { tiny: TINY, bench: BENCH } as const
export type PresetName = keyof typeof PRESETS
