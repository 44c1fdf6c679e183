/**
 * Models by CID: a GGUF published by one node (`publish`: added to the artifact store, recorded
 * with media type `application/x-gguf`) is pulled by any other (`pull`: fetched from its
 * providers, size and sha256 checked against its record, the GGUF structure checked by the
 * model catalog before anything loads it, then placed in the models dir and pinned, so the
 * puller becomes a provider too). A fleet needs the file on one node only.
 *
 * ```ts
 * const { cid } = await models.publish('qwen2.5-0.5b')                // on A
 * const { model } = await models.pull(cid, { load: true })            // on C: answers at once
 * ```
 */
import { createReadStream } from 'node:fs'
import { rm, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { createHash } from 'node:crypto'
import { FlexnodeError, InvalidInputError } from '../errors.ts'
import { MODEL_ID_RE } from '../inference/catalog.ts'
import type { LocalInferenceEngine } from '../inference/engine.ts'
import type { ModelInfo } from '../inference/types.ts'
import type { AddArtifactResult, ArtifactService } from './index.ts'
import { ArtifactNotRecordedError, type ArtifactProgress } from './types.ts'

/** The media type a published model is recorded with. */
export const GGUF_MEDIA_TYPE = 'application/x-gguf'

/** The pulled file is not a model this node can serve (not a GGUF, truncated, damaged): nothing is kept. */
export class InvalidModelArtifactError extends FlexnodeError {
  static override readonly name = 'InvalidModelArtifactError'
  readonly cid: string

  constructor (message: string, cid: string) {
    super(message)
    this.cid = cid
  }
}

/** A different file of that name is already in the models dir. */
export class ModelExistsError extends FlexnodeError {
  static override readonly name = 'ModelExistsError'
  readonly model: string

  constructor (model: string) {
    super(`a different model file named ${model}.gguf is already in the models dir: remove it, or publish this one under another name`)
    this.model = model
  }
}

export interface ModelPullOptions {
  /** load it once placed. @default false */
  load?: boolean
  signal?: AbortSignal
  onProgress?: (p: ArtifactProgress) => void
}

export interface ModelPullResult {
  cid: string
  /** the model as the engine lists it */
  model: ModelInfo
  /** the file was already here with the same sha256: nothing was fetched */
  already_present: boolean
}

export interface ModelArtifacts {
  publish: (id: string, options?: { signal?: AbortSignal, onProgress?: (p: ArtifactProgress) => void }) => Promise<AddArtifactResult & { model: string }>
  pull: (cid: string, options?: ModelPullOptions) => Promise<ModelPullResult>
}

async function sha256File (path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

export function modelArtifacts (init: { modelsDir: string }) {
  return (c: { artifacts: ArtifactService, engine: Pick<LocalInferenceEngine, 'modelFile' | 'refresh' | 'loadModel' | 'listModels'> }): ModelArtifacts => ({
    publish: async (id, options = {}) => {
      // a file just dropped into the models dir is published as a load would find it
      if (!c.engine.listModels().some(m => m.id === id)) await c.engine.refresh({ signal: options.signal })
      const path = c.engine.modelFile(id)
      const added = await c.artifacts.add(createReadStream(path), {
        name: basename(path), media_type: GGUF_MEDIA_TYPE, cidVersion: 1, rawLeaves: true, signal: options.signal, onProgress: options.onProgress
      })
      return { ...added, model: id }
    },

    pull: async (cid, options = {}) => {
      const record = await c.artifacts.record(cid)
      if (record === undefined) throw new ArtifactNotRecordedError(cid)
      const id = record.name.endsWith('.gguf') ? record.name.slice(0, -'.gguf'.length) : ''
      if (!MODEL_ID_RE.test(id)) throw new InvalidInputError(`${cid} is ${JSON.stringify(record.name)} (${record.media_type}), not a .gguf model`, { field: 'cid' })
      const path = join(init.modelsDir, `${id}.gguf`)
      const existing = await stat(path).catch(() => undefined)
      let fetched = false
      if (existing !== undefined) {
        if (existing.size !== record.size || await sha256File(path) !== record.sha256) throw new ModelExistsError(id)
      } else {
        await c.artifacts.fetchToFile(cid, path, { signal: options.signal, onProgress: options.onProgress })
        fetched = true
      }
      await c.engine.refresh({ signal: options.signal })
      const model = c.engine.listModels().find(m => m.id === id)
      if (model === undefined || model.error !== undefined) {
        if (fetched) await rm(path, { force: true })
        await c.engine.refresh()
        throw new InvalidModelArtifactError(`${cid} (${record.name}) is not a servable GGUF model: ${model?.error?.message ?? 'the catalog did not list it'}`, cid)
      }
      // its blocks are here now: this node becomes one of its providers
      await c.artifacts.pin(cid, { signal: options.signal })
      return { cid, model: options.load === true ? await c.engine.loadModel(id, { signal: options.signal }) : model, already_present: !fetched }
    }
  })
}
