/**
 * Node-local model administration (501 when the engine cannot load models):
 * `POST /v1/models/{id}/load` (SSE `{"progress": 0..1}` events, then `{"model": ModelInfo}` and
 * `[DONE]`; `{"stream": false}` for one JSON `ModelInfo`), `POST /v1/models/{id}/unload`
 * (`{id, loaded: false}`), `GET /v1/node/models` (every `ModelInfo`, with sizes and files).
 * Listings name model files relative to their models dir.
 */
import type { InferenceEngine, ModelInfo } from '../../inference/types.ts'
import { sendJson } from '../body.ts'
import { parseInput } from '../../api/validate.ts'
import { modelLoadBody } from '../../inference/schemas.ts'
import { NotImplementedError, type ModelInfoList, type ModelLoadEvent, type ModelUnloaded } from '../openai.ts'
import type { Handler, HttpRoutes } from '../types.ts'
import { streamFailure } from './openai.ts'

/** A load stream sends a progress event only when it grew by this much (llama.cpp reports far more often). */
const LOAD_PROGRESS_STEP = 0.01
/** Progress reported while loading stays below this; 1 is sent once the model is ready to serve. */
const LOAD_PROGRESS_BEFORE_READY = 0.99

export interface ModelAdminRoutesComponents {
  /** without `loadModel`/`unloadModel` these routes answer 501; `refresh` lets a load find new files */
  engine: Pick<InferenceEngine, 'listModels'> & Partial<Pick<InferenceEngine, 'loadModel' | 'unloadModel' | 'refresh'>>
}

export function modelAdminRoutes (components: ModelAdminRoutesComponents): HttpRoutes {
  const { engine } = components

  /** the engine, when it can load and unload models; else 501 */
  const admin = (): Pick<InferenceEngine, 'loadModel' | 'unloadModel'> => {
    if (engine.loadModel === undefined || engine.unloadModel === undefined) throw new NotImplementedError('loading and unloading models is not available on this node')
    return engine as Pick<InferenceEngine, 'loadModel' | 'unloadModel'>
  }

  const nodeModels: Handler = async ({ res }) => {
    await engine.refresh?.()
    const body: ModelInfoList = { object: 'list', data: engine.listModels() }
    sendJson(res, 200, body)
  }

  const loadModel: Handler = async (ctx) => {
    const { res, signal, params: [id = ''] } = ctx
    const models = admin()
    const request = parseInput(modelLoadBody, await ctx.readOptionalJson())
    // a file dropped into a models dir since the last scan
    if (!engine.listModels().some(m => m.id === id)) await engine.refresh?.({ signal })
    if (request.stream === false) {
      sendJson(res, 200, await models.loadModel(id, { signal }))
      return
    }
    // opened by the first progress above 0, so a model that fails at once (unknown, corrupt, too
    // large) still gets its own status
    const events = ctx.eventStream()
    const send = (event: ModelLoadEvent): void => { events.open(); events.send(event) }
    let last = 0
    let info: ModelInfo
    try {
      info = await models.loadModel(id, {
        signal,
        onProgress: (e) => {
          const progress = Math.round(Math.min(e.progress, LOAD_PROGRESS_BEFORE_READY) * 1000) / 1000
          if (!(progress - last >= LOAD_PROGRESS_STEP || (progress === LOAD_PROGRESS_BEFORE_READY && progress > last))) return
          last = progress
          send({ progress })
        }
      })
    } catch (err: unknown) {
      if (!events.isOpen) throw err
      await streamFailure(ctx, events, err)
      return
    }
    send({ progress: 1 })
    send({ model: info })
    events.send('[DONE]')
    await events.end()
  }

  const unloadModel: Handler = async ({ res, params: [id = ''], readOptionalJson }) => {
    const models = admin()
    await readOptionalJson()
    await models.unloadModel(id)
    const body: ModelUnloaded = { id, loaded: false }
    sendJson(res, 200, body)
  }

  return {
    paths: { '/v1/node/models': { GET: nodeModels } },
    patterns: [
      { pattern: /^\/v1\/models\/([^/]+)\/load$/, methods: { POST: loadModel } },
      { pattern: /^\/v1\/models\/([^/]+)\/unload$/, methods: { POST: unloadModel } }
    ]
  }
}
