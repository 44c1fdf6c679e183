/**
 * `continue_from`: a node continues another node's partial answer (failover mid-stream). Only new
 * text is streamed and returned, max_tokens counts new tokens, and the first new word keeps its
 * leading space as it has mid-answer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdir } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { ensureModel } from '../../../../fixtures/gguf/index.ts'
import { tempDir, type TempDir } from '../../../../fixtures/index.ts'
import { silentLogger } from '../../logger.ts'
import { createInferenceEngine } from '../engine.ts'
import type { GenerateOptions, GenerateResult } from '../types.ts'

type Engine = Awaited<ReturnType<typeof createInferenceEngine>>

describe('continue_from', () => {
  let dir: TempDir
  let engine: Engine
  let model: string

  beforeAll(async () => {
    dir = await tempDir('flexnode-continue-')
    const models = join(dir.path, 'models')
    await mkdir(models)
    model = basename(await ensureModel(models, 'tiny', 7), '.gguf')
    engine = await createInferenceEngine({ modelsDirs: [models], gpu: false, threads: 1, contextSize: 1024, sequences: 1 }, { logger: silentLogger() })
    await engine.loadModel(model)
  }, 60_000)
  afterAll(async () => {
    await engine?.dispose()
    await dir?.[Symbol.asyncDispose]()
  })

  const ops: Array<[string, (o: GenerateOptions) => Promise<GenerateResult>]> = [
    ['chat', async (o) => await engine.chat(model, [{ role: 'user', content: 'Tell me a story about a fox.' }], o)],
    ['complete', async (o) => await engine.complete(model, 'Once upon a time there was', o)]
  ]
  for (const [op, run] of ops) {
    it(`${op}: continues after the prefix without repeating it`, async () => {
      const chunks: string[] = []
      const full = await run({ max_tokens: 40, temperature: 0, seed: 1, onToken: (t) => { chunks.push(t) } })
      expect(full.usage.completion_tokens).toBe(40)
      for (const cut of [1, 7, 20]) {
        const prefix = chunks.slice(0, cut).join('')
        const got: string[] = []
        const rest = await run({ max_tokens: 40 - cut, temperature: 0, seed: 1, continue_from: prefix, onToken: (t) => { got.push(t) } })
        expect(got.join('')).toBe(rest.text)
        // no echo of the prefix, and the first new word is separated from it as mid-answer
        expect(got[0]).not.toBe(prefix)
        expect(rest.text.startsWith(prefix)).toBe(false)
        expect(rest.text).toMatch(/^\s\S/)
        expect(rest.usage.completion_tokens).toBeGreaterThan(0)
        expect(rest.usage.completion_tokens).toBeLessThanOrEqual(40 - cut)
      }
    })
  }

  it('refuses a continue_from that is not a string', async () => {
    await expect(engine.chat(model, [{ role: 'user', content: 'Hi' }], { max_tokens: 2, continue_from: 42 as unknown as string })).rejects.toMatchObject({ name: 'InvalidRequestError' })
  })
})
