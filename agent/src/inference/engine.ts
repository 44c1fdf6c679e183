/**
 * The local inference engine: GGUF models from the models directories, served by node-llama-cpp
 * (prebuilt binaries; llama.cpp is never compiled at run time; GPU auto-detected, CPU fallback).
 * It composes the parts that do the work:
 *
 * - `catalog.ts`: the files, each checked structurally before any native code touches it;
 * - `plan.ts`: the GPU layers and memory a load would use, so a model that does not fit is a
 *   clear error, not an OOM crash;
 * - `llama-pool.ts`: each loaded model in its own child process (a `ProcessPool`), so even a
 *   native abort inside llama.cpp only unloads that model;
 * - `gate.ts` and `generation.ts`: a model has one context with N sequences, so N requests
 *   generate concurrently; more wait in a bounded queue, and beyond it a request fails at once
 *   with BusyError (503); embeddings take the same kind of bounded queue. Every generation has a
 *   deadline and an AbortSignal (a client disconnect aborts it).
 *
 * ```ts
 * const engine = await createInferenceEngine({ modelsDirs: ['~/.flexnode/models'] }, { logger })
 * await engine.loadModel('tiny-llama-s1', { onProgress: (e) => { console.log(e.type, e.progress) } })
 * const { text } = await engine.chat('tiny-llama-s1', [{ role: 'user', content: 'hi' }], { max_tokens: 16 })
 * ```
 */
import { freemem } from 'node:os'
import { getLlama, LlamaLogLevel, type Llama } from 'node-llama-cpp'
import { DisposedError, errorMessage, FlexnodeError } from '../errors.ts'
import type { ComponentLogger } from '../logger.ts'
import { checkModelId, modelCatalog, type CatalogEntry } from './catalog.ts'
import { DEFAULT_CONTEXT_SIZE, DEFAULT_MAX_QUEUE, DEFAULT_SEQUENCES, DEFAULT_THREADS, EMBEDDING_SLOTS, PRELOAD_MEMORY_SHARE } from './constants.ts'
import { SlotGate } from './gate.ts'
import { chatHistory, checkMessages, continuation, embedOn, generateOn, type LoadedModel } from './generation.ts'
import { LlamaPool } from './llama-pool.ts'
import { planLoad, type LoadPlan } from './plan.ts'
import {
  InferenceError, InsufficientMemoryError, InvalidRequestError, ModelLoadError, ModelNotFoundError, ModelNotLoadedError, RequestAbortedError,
  type ChatMessage, type GenerateOptions, type GenerateResult, type GenerationObserver, type InferenceEngine, type LoadOptions, type ModelInfo
} from './types.ts'

export type { LoadPlan } from './plan.ts'

export interface InferenceEngineInit {
  /** directories holding `.gguf` files; the first is where generated models go */
  modelsDirs: string[]
  /** false forces CPU; 'auto' uses a GPU when one is found. @default 'auto' */
  gpu?: boolean | 'auto'
  /** threads per model. @default half the cores (at least 1) */
  threads?: number
  /** @default 2048 (capped by each model's training context) */
  contextSize?: number
  /** concurrent requests per model. @default 2 */
  sequences?: number
  /** waiting requests per model (generations; embeddings have their own queue of this size). @default 16 */
  maxQueue?: number
  /** a file's structural check fails after this many ms. @default 30000 */
  inspectDeadlineMs?: number
}

export interface InferenceEngineComponents {
  logger: ComponentLogger
  /** told of every generation when it ends (the node's metrics). @default none */
  onGeneration?: GenerationObserver
}

export interface LocalInferenceEngine extends InferenceEngine {
  /** load the models that fit in a share of free memory, smallest first; stops early when `signal` aborts */
  preload: (opts?: { memoryShare?: number, signal?: AbortSignal }) => Promise<string[]>
  plan: (id: string, options?: { signal?: AbortSignal }) => Promise<LoadPlan>
  /** the absolute path of a servable model's file (for publishing it; never shown to clients) */
  modelFile: (id: string) => string
}

/** llama.cpp's own log lines into the component logger. */
function llamaLogger (log: ComponentLogger): (level: LlamaLogLevel, message: string) => void {
  return (level, message) => {
    const text = message.trim()
    if (text.length === 0) return
    if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) log.error(text)
    else if (level === LlamaLogLevel.warn) log.warn(text)
    else log.debug(text)
  }
}

export async function createInferenceEngine (init: InferenceEngineInit, components: InferenceEngineComponents): Promise<LocalInferenceEngine> {
  const log = components.logger.forComponent('flexnode:inference')
  const llamaLog = log.forComponent('flexnode:llama.cpp')
  const threads = init.threads ?? DEFAULT_THREADS
  const sequences = init.sequences ?? DEFAULT_SEQUENCES
  const maxQueue = init.maxQueue ?? DEFAULT_MAX_QUEUE
  const catalog = modelCatalog({ modelsDirs: init.modelsDirs, inspectDeadlineMs: init.inspectDeadlineMs })(components)
  const loaded = new Map<string, LoadedModel>()
  const loading = new Map<string, Promise<ModelInfo>>()
  let disposed = false
  /** every public call after `dispose()` is DisposedError */
  const usable = (): void => { if (disposed) throw new DisposedError('the inference engine') }

  const listModels = (): ModelInfo[] => catalog.entries().map(({ info }) => {
    const l = loaded.get(info.id)
    return {
      ...info,
      loaded: l !== undefined,
      tokens_per_second: l?.tps ?? null,
      queue_depth: l === undefined ? 0 : l.gen.waiting + l.emb.waiting,
      in_flight: l === undefined ? 0 : l.gen.inFlight + l.emb.inFlight
    }
  })
  const infoOf = (id: string): ModelInfo => listModels().find(m => m.id === id)!

  const refresh = async (options: { signal?: AbortSignal } = {}): Promise<ModelInfo[]> => {
    usable()
    await catalog.refresh({ keep: (id) => loaded.has(id), signal: options.signal })
    return listModels()
  }

  // llama.cpp's binding (getLlama tests the binary in a child process first: over a second) is
  // loaded when a model first needs it, so a node without models never pays for it
  let llamaP: Promise<Llama> | undefined
  const llamaReady = async (): Promise<Llama> => await (llamaP ??= (async () => {
    const l = await getLlama({ gpu: init.gpu === false ? false : 'auto', build: 'never', logLevel: LlamaLogLevel.warn, logger: llamaLogger(llamaLog) })
    log.info({ gpu: l.gpu === false ? 'none (CPU)' : l.gpu }, 'llama.cpp ready')
    return l
  })().catch((err: unknown) => { llamaP = undefined; throw err }))

  // with models in the dirs, the binding loads alongside the first scan (which needs no native
  // code), so a broken binding shows at start, not at the first request
  await Promise.all([refresh(), catalog.hasModelFiles().then(async (any) => { if (any) await llamaReady() })])

  const contextSizeFor = (e: CatalogEntry): number => Math.min(init.contextSize ?? DEFAULT_CONTEXT_SIZE, e.info.context_length > 0 ? e.info.context_length : Infinity)

  const plan = async (id: string, options: { signal?: AbortSignal } = {}): Promise<LoadPlan> => {
    usable()
    const e = catalog.entry(id)
    options.signal?.throwIfAborted()
    let llama: Llama
    try {
      llama = await llamaReady()
    } catch (err) {
      throw new ModelLoadError(`${id}: llama.cpp cannot run on this machine: ${errorMessage(err)}`, { model: id, cause: err })
    }
    try {
      return await planLoad(llama, e, { contextSize: contextSizeFor(e), sequences, redact: (m) => catalog.redact(e, m) })
    } catch (err) {
      if (err instanceof InferenceError) throw err
      throw new ModelLoadError(`${id}: cannot read the model: ${catalog.redact(e, errorMessage(err))}`, { model: id, cause: err })
    }
  }

  /** The model is gone (unloaded, or its process stopped): everyone waiting for it fails with `err`. */
  const forget = (l: LoadedModel, err: Error): void => {
    loaded.delete(l.id)
    l.gen.rejectAll(err)
    l.emb.rejectAll(err)
  }

  const load = async (id: string, e: CatalogEntry, options: LoadOptions): Promise<ModelInfo> => {
    const { contextSize, gpuLayers, ram } = await plan(id)
    const free = freemem()
    if (ram > free) throw new InsufficientMemoryError(`${id} needs about ${(ram / 2 ** 30).toFixed(2)} GiB; ${(free / 2 ** 30).toFixed(2)} GiB are free`, { model: id })
    const progress = (p: number): void => { options.onProgress?.({ type: 'flexnode:model:load', model: id, progress: p }) }
    progress(0)
    let pool: LlamaPool
    try {
      pool = await LlamaPool.open({
        modelPath: e.path,
        contextSize,
        threads,
        sequences,
        gpu: (await llamaReady()).gpu !== false,
        gpuLayers,
        signal: options.signal,
        onProgress: (ev) => { progress(ev.progress) },
        logFields: { model: id },
        onExit: (reason) => {
          const l = loaded.get(id)
          if (l === undefined || l.pool !== pool) return
          forget(l, new ModelNotLoadedError(`${id} was unloaded: its process stopped (${reason})`, { model: id }))
          log.error({ model: id, reason }, 'the model process stopped; the model is unloaded')
        }
      }, { logger: llamaLog })
    } catch (err) {
      if (options.signal?.aborted === true) throw new RequestAbortedError(`loading ${id} was aborted`, { model: id })
      throw new ModelLoadError(`${id} failed to load: ${catalog.redact(e, errorMessage(err))}`, { model: id, cause: err })
    }
    if (disposed) {
      await pool.dispose()
      throw new DisposedError('the inference engine')
    }
    loaded.set(id, {
      id,
      pool,
      contextSize: pool.contextSize,
      gpuLayers: pool.gpuLayers,
      gen: new SlotGate({ model: id, slots: sequences, maxQueue }),
      emb: new SlotGate({ model: id, slots: EMBEDDING_SLOTS, maxQueue }),
      tps: null
    })
    progress(1)
    log.info({ model: id, contextSize, sequences, threads, gpuLayers: pool.gpuLayers, estimatedRam: ram }, 'model loaded')
    return infoOf(id)
  }

  const loadModel = async (id: string, options: LoadOptions = {}): Promise<ModelInfo> => {
    usable()
    const e = catalog.entry(id)
    if (loaded.has(id)) return infoOf(id)
    let p = loading.get(id)
    if (p === undefined) {
      p = load(id, e, options).finally(() => loading.delete(id))
      loading.set(id, p)
    }
    return await p
  }

  const unloadModel = async (id: string, options: { signal?: AbortSignal } = {}): Promise<void> => {
    usable()
    checkModelId(id)
    options.signal?.throwIfAborted()
    if (!catalog.has(id)) throw new ModelNotFoundError(`model ${JSON.stringify(id)} is not on this node`, { model: id })
    const l = loaded.get(id)
    if (l === undefined) return
    forget(l, new ModelNotLoadedError(`${id} was unloaded`, { model: id }))
    await l.pool.dispose()
    log.info({ model: id }, 'model unloaded')
  }

  const live = (id: string): LoadedModel => {
    usable()
    catalog.entry(id)
    const l = loaded.get(id)
    if (l === undefined) throw new ModelNotLoadedError(`model ${id} is not loaded on this node`, { model: id })
    return l
  }

  /** A generation on a loaded model, told to `onGeneration` when it ends (a model not loaded here throws before: it is not one) */
  const observed = async (l: LoadedModel, op: 'chat' | 'complete', run: () => Promise<GenerateResult>): Promise<GenerateResult> => {
    const started = performance.now()
    let ok = false
    try {
      const r = await run()
      ok = true
      return r
    } finally {
      components.onGeneration?.({ model: l.id, op, ok, seconds: (performance.now() - started) / 1000 })
    }
  }

  const chat = async (id: string, rawMessages: ChatMessage[], o: GenerateOptions = {}): Promise<GenerateResult> => {
    const l = live(id)
    return await observed(l, 'chat', async () => {
      const messages = checkMessages(rawMessages)
      const continueFrom = continuation(o)
      const promptTokens = (await l.pool.tokenCounts([...messages.map(m => m.content), ...(continueFrom !== undefined ? [continueFrom] : [])])).reduce((n, c) => n + c + 6, 0)
      return await generateOn(l, { op: 'chat', history: chatHistory(messages), prompt: messages[messages.length - 1]!.content, continueFrom }, o, promptTokens)
    })
  }

  const complete = async (id: string, prompt: string, o: GenerateOptions = {}): Promise<GenerateResult> => {
    const l = live(id)
    return await observed(l, 'complete', async () => {
      if (typeof prompt !== 'string' || prompt.length === 0) throw new InvalidRequestError('prompt must be a non-empty string', { param: 'prompt' })
      const continueFrom = continuation(o)
      const [promptTokens = 0] = await l.pool.tokenCounts([prompt + (continueFrom ?? '')])
      return await generateOn(l, { op: 'complete', prompt, continueFrom }, o, promptTokens)
    })
  }

  const embed = async (id: string, input: string[], o: { signal?: AbortSignal } = {}): Promise<{ model: string, embeddings: number[][], usage: GenerateResult['usage'] }> =>
    await embedOn(live(id), input, o)

  const preload = async (opts: { memoryShare?: number, signal?: AbortSignal } = {}): Promise<string[]> => {
    let budget = freemem() * (opts.memoryShare ?? PRELOAD_MEMORY_SHARE)
    const out: string[] = []
    usable()
    const aborted = (): boolean => opts.signal?.aborted === true
    for (const m of listModels().sort((a, b) => a.size_bytes - b.size_bytes)) {
      if (aborted()) break
      if (m.loaded || m.error !== undefined) continue
      const need = await plan(m.id).then(p => p.ram, () => Infinity)
      if (need > budget) continue
      try {
        await loadModel(m.id, { signal: opts.signal })
        budget -= need
        out.push(m.id)
      } catch (err) {
        if (aborted()) break
        log.warn({ model: m.id, err: errorMessage(err) }, 'preload failed')
      }
    }
    return out
  }

  return {
    listModels,
    refresh,
    loadModel,
    unloadModel,
    chat,
    complete,
    embed,
    preload,
    plan,
    modelFile: (id: string) => { usable(); return catalog.entry(id).path },
    dispose: async () => {
      if (disposed) return
      disposed = true
      for (const l of [...loaded.values()]) {
        forget(l, new DisposedError('the inference engine'))
        await l.pool.dispose().catch(() => {})
      }
      await catalog.dispose()
      await (await llamaP?.catch(() => undefined))?.dispose()
    }
  }
}

/** The engine as a service of the node's composition root: built by `start()`, disposed by `stop()`. */
export interface InferenceService {
  /** find the models and get llama.cpp ready; idempotent */
  start: (options?: { signal?: AbortSignal }) => Promise<void>
  /** unload every model; idempotent; `engine` afterwards throws DisposedError */
  stop: () => Promise<void>
  [Symbol.asyncDispose]: () => Promise<void>
  readonly engine: LocalInferenceEngine
}

/**
 * ```ts
 * const inference = inferenceEngine({ modelsDirs })({ logger })
 * await inference.start({ signal })
 * await inference.engine.loadModel(id)
 * await inference.stop()
 * ```
 */
export function inferenceEngine (init: InferenceEngineInit): (components: InferenceEngineComponents) => InferenceService {
  return (components) => {
    let started: Promise<LocalInferenceEngine> | undefined
    let engine: LocalInferenceEngine | undefined
    let stopped = false
    const stop = async (): Promise<void> => {
      stopped = true
      await (await started?.catch(() => undefined))?.dispose()
    }
    return {
      start: async (options = {}) => {
        if (stopped) throw new DisposedError('the inference engine')
        options.signal?.throwIfAborted()
        started ??= createInferenceEngine(init, components)
        engine = await started
        if (stopped) await engine.dispose()
      },
      stop,
      [Symbol.asyncDispose]: stop,
      get engine (): LocalInferenceEngine {
        if (stopped) throw new DisposedError('the inference engine')
        if (engine === undefined) throw new FlexnodeError('the inference engine is not started')
        return engine
      }
    }
  }
}
