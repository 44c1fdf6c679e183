/**
 * Generated GGUF models: the demo model a node makes for itself on first start (`ensureDemoModel`),
 * and the models tests and benchmarks make (`ensureModel`, re-exported by `fixtures/gguf`): llama
 * architecture, F32 weights from a seeded PRNG (a different seed is a different "expert"; the same
 * seed gives a byte-identical file), a SentencePiece-style vocabulary with byte fallback, and a
 * ChatML chat template. Nothing is ever downloaded and llama.cpp is never compiled:
 * node-llama-cpp's prebuilt CPU binary loads these.
 *
 * ```ts
 * import { getLlama, LlamaChatSession } from 'node-llama-cpp'
 * import { ensureModel } from './agent/src/inference/gguf/generate.ts'
 *
 * const modelPath = await ensureModel(join(tmpdir(), 'flexnode-models'), 'tiny', 7)  // ~0.7 MiB
 * const llama = await getLlama({ gpu: false, build: 'never' })
 * const model = await llama.loadModel({ modelPath })
 * const context = await model.createContext({ contextSize: 512, threads: 1 })
 * const session = new LlamaChatSession({ contextSequence: context.getSequence() })
 * await session.prompt('Hello', { maxTokens: 8, temperature: 0 })  // deterministic word salad
 * ```
 *
 * CLI: `tsx fixtures/gguf/make-model.ts --preset tiny|bench --seed N --out file.gguf`
 */
import { randomBytes } from 'node:crypto'
import { mkdir, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { AbortOptions } from './constants.ts'
import { WRITER_VERSION } from './constants.ts'
import { DEMO, PRESETS, type PresetName } from './presets.ts'
import { InvalidModelSpecError } from './errors.ts'
import { llamaGgufSize, validateSpec, writeLlamaGguf, type LlamaModelSpec } from './llama.ts'
import { hash32 } from './prng.ts'

export { CHATML_TEMPLATE, DEMO_METADATA_KEY, type AbortOptions } from './constants.ts'
export { BENCH, DEMO, PRESETS, TINY, type PresetName } from './presets.ts'
export { InvalidModelSpecError } from './errors.ts'
export {
  llamaGgufSize, parameterCount, validateSpec, vocabSize, writeLlamaGguf, type LlamaGgufResult, type LlamaModelSpec
} from './llama.ts'
export { buildVocab, type Vocab, type VocabKind } from './tokenizer.ts'

/** The spec `ensureModel` generates for a preset (or a full spec) and a seed. */
export function resolveSpec (preset: PresetName | LlamaModelSpec, seed?: number): LlamaModelSpec {
  const base = typeof preset === 'string' ? PRESETS[preset] : preset
  if (base === undefined) throw new InvalidModelSpecError(`unknown preset "${String(preset)}"`, 'preset')
  const spec = { ...base, seed: seed ?? base.seed }
  validateSpec(spec)
  return spec
}

/** File name that changes whenever the spec or the writer's output changes. */
export function modelFileName (spec: LlamaModelSpec): string {
  const fingerprint = hash32(JSON.stringify([WRITER_VERSION, spec])).toString(16).padStart(8, '0')
  return `${spec.name}-seed${spec.seed}-${fingerprint}.gguf`
}

/**
 * Generate a model into `dir` once and return its path. An existing file of the expected name and
 * size is reused (files only ever appear there by an atomic rename, so it is complete); otherwise
 * the model is written to a temporary file beside it and renamed into place.
 */
export async function ensureModel (
  dir: string,
  preset: PresetName | LlamaModelSpec,
  seed?: number,
  options: AbortOptions = {}
): Promise<string> {
  const spec = resolveSpec(preset, seed)
  const path = join(dir, modelFileName(spec))
  const expected = llamaGgufSize(spec)
  const existing = await stat(path).catch(() => undefined)
  if (existing?.isFile() === true && existing.size === expected) return path
  await mkdir(dir, { recursive: true })
  const temp = `${path}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`
  try {
    await writeLlamaGguf(temp, spec, options)
    await rename(temp, path)
  } catch (err: unknown) {
    await rm(temp, { force: true })
    throw err
  }
  return path
}

/**
 * Generate the demo model (`DEMO`: tiny, random weights, `flexnode.demo = true`) into `dir` once
 * and return its path. Only this file is a demo model: `ensureModel` never marks what it writes.
 */
export async function ensureDemoModel (dir: string, options: AbortOptions = {}): Promise<string> {
  return await ensureModel(dir, DEMO, undefined, options)
}
