/**
 * The local inference engine: GGUF models from the models directories, served by node-llama-cpp
 * (prebuilt binaries; llama.cpp is never compiled at run time; GPU auto-detected, CPU fallback).
 *
 * Every file is checked structurally before any native code touches it (`gguf/inspect.ts`: a
 * bounded reader in a worker thread with a deadline): a file that fails is listed with its
 * `error`, logged with a `warn`, and never loaded. Each loaded model lives in its own child
 * process (`llama-pool.ts`), so even a native abort inside llama.cpp only unloads that model.
 * A model has one context with N sequences, so N requests generate concurrently; more wait in a
 * bounded queue, and beyond it a request fails at once with BusyError (503); embeddings take the
 * same kind of bounded queue. Every generation has a deadline and an AbortSignal (a client
 * disconnect aborts it). Memory is estimated before a load with the GPU-layer count the load then
 * uses, so a model that does not fit is a clear error, not an OOM crash.
 *
 * ```ts
 * const engine = await createInferenceEngine({ modelsDirs: ['~/.flexnode/models'] }, { logger })
 * await engine.loadModel('tiny-llama-s1')
 * const { text } = await engine.chat('tiny-llama-s1', [{ role: 'user', content: 'hi' }], { max_tokens: 16 })
 * ```
 */
import { readdir, stat } from 'node:fs/promises'
import { freemem } from 'node:os'
import { basename, join } from 'node:path'
import { getLlama, GgufInsights, LlamaLogLevel, readGgufFileInfo, type ChatHistoryItem, type Llama } from 'node-llama-cpp'
import { LlamaPool } from './llama-pool.ts'
import { errorMessage } from '../errors.ts'
import type { ComponentLogger } from '../logger.ts'
import {
  DEFAULT_CONTEXT_SIZE, DEFAULT_DEADLINE_MS, DEFAULT_MAX_QUEUE, DEFAULT_MAX_TOKENS, DEFAULT_SEQUENCES, DEFAULT_TEMPERATURE,
  DEFAULT_THREADS, EMBEDDING_SLOTS, PRELOAD_MEMORY_SHARE, TPS_EMA_ALPHA
} from './constants.ts'
import { DEMO_METADATA_KEY } from './gguf/constants.ts'
import { InvalidGgufError } from './gguf/errors.ts'
import { GgufInspector } from './gguf/inspect.ts'
import type { GgufStructure } from './gguf/reader.ts'
import {
  BusyError, DeadlineExceededError, InferenceError, InsufficientMemoryError, InvalidRequestError, ModelLoadError, ModelNotFoundError,
  ModelNotLoadedError, PromptTooLongError, RequestAbortedError,
  type ChatMessage, type GenerateOptions, type GenerateResult, type InferenceEngine, type LoadOptions, type ModelFileError, type ModelInfo, type Usage
} from './types.ts'

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
}

/** What a load would use: the GPU layers it offloads (the load uses exactly this) and the memory it needs. */
export interface LoadPlan {
  contextSize: number
  gpuLayers: number
  /** bytes of RAM the model and its context need */
  ram: number
  /** bytes of VRAM the model and its context need */
  vram: number
}

interface Entry {
  /** the listing without the live figures */
  info: ModelInfo
  /** absolute path: internal only, never in a listing or an error */
  path: string
  mtimeMs: number
  size: number
}

interface Waiter { resolve: () => void, reject: (e: Error) => void }

/** Slots for one kind of request, and the bounded queue of those waiting for one. */
interface Gate {
  free: number
  queue: Waiter[]
  inFlight: number
}

interface Loaded {
  /** the child process holding the model and its context */
  pool: LlamaPool
  contextSize: number
  gpuLayers: number
  /** generation slots: the context's sequences */
  gen: Gate
  /** embedding slots */
  emb: Gate
  tps: number | null
}

const MODEL_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

function validateOptions (o: GenerateOptions, contextSize: number): Required<Pick<GenerateOptions, 'max_tokens' | 'temperature'>> {
  const maxTokens = o.max_tokens ?? DEFAULT_MAX_TOKENS
  if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > contextSize) throw new InvalidRequestError(`max_tokens must be an integer between 1 and ${contextSize}`, { param: 'max_tokens' })
  const temperature = o.temperature ?? DEFAULT_TEMPERATURE
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0 || temperature > 2) throw new InvalidRequestError('temperature must be a number between 0 and 2', { param: 'temperature' })
  if (o.seed !== undefined && (!Number.isSafeInteger(o.seed) || o.seed < 0)) throw new InvalidRequestError('seed must be a non-negative integer', { param: 'seed' })
  if (o.stop !== undefined && (!Array.isArray(o.stop) || o.stop.length > 4 || !o.stop.every(s => typeof s === 'string' && s.length > 0 && s.length <= 256))) throw new InvalidRequestError('stop must be at most 4 non-empty strings', { param: 'stop' })
  return { max_tokens: maxTokens, temperature }
}

/** The listing fields a checked file's metadata gives. */
function describe (s: GgufStructure): Pick<ModelInfo, 'architecture' | 'context_length' | 'embedding_length' | 'demo'> {
  const arch = s.metadata['general.architecture']
  const architecture = typeof arch === 'string' && arch.length > 0 ? arch : 'unknown'
  const num = (v: unknown): number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0
  return {
    architecture,
    context_length: num(s.metadata[`${architecture}.context_length`]),
    embedding_length: num(s.metadata[`${architecture}.embedding_length`]),
    demo: s.metadata[DEMO_METADATA_KEY] === true
  }
}

/** `continue_from`, checked: a string, or undefined. */
function continuation (o: GenerateOptions): string | undefined {
  if (o.continue_from === undefined || o.continue_from === '') return undefined
  if (typeof o.continue_from !== 'string') throw new InvalidRequestError('continue_from must be a string', { param: 'continue_from' })
  return o.continue_from
}

/** `clamp_max_tokens`: lower max_tokens to what fits after the prompt (at least 1; the context check still applies). */
function clampMaxTokens (o: GenerateOptions, contextSize: number, promptTokens: number): GenerateOptions {
  if (o.clamp_max_tokens !== true || typeof o.max_tokens !== 'number' || !Number.isInteger(o.max_tokens) || o.max_tokens < 1) return o
  return { ...o, max_tokens: Math.max(1, Math.min(o.max_tokens, contextSize - promptTokens)) }
}

export async function createInferenceEngine (init: InferenceEngineInit, components: InferenceEngineComponents): Promise<InferenceEngine & { readonly llama: Llama, preload: (opts?: { memoryShare?: number, signal?: AbortSignal }) => Promise<string[]>, plan: (id: string) => Promise<LoadPlan> }> {
  const log = components.logger.forComponent('flexnode:inference')
  const llamaLog = log.forComponent('flexnode:llama.cpp')
  const threads = init.threads ?? DEFAULT_THREADS
  const sequences = init.sequences ?? DEFAULT_SEQUENCES
  const maxQueue = init.maxQueue ?? DEFAULT_MAX_QUEUE
  const inspector = new GgufInspector({ deadlineMs: init.inspectDeadlineMs })
  const catalog = new Map<string, Entry>()
  const loaded = new Map<string, Loaded>()
  const loading = new Map<string, Promise<ModelInfo>>()
  let disposed = false

  /** A message with the entry's absolute path (and its directory) replaced by the file name. */
  const redact = (e: Entry, message: string): string => message.split(e.path).join(e.info.file)

  /** Check one file (off the main thread) and describe it; a file that fails is listed with its error. */
  const examine = async (id: string, path: string, size: number): Promise<ModelInfo> => {
    const base: ModelInfo = { id, file: basename(path), size_bytes: size, architecture: 'unknown', context_length: 0, embedding_length: 0, loaded: false, tokens_per_second: null, queue_depth: 0, in_flight: 0, demo: false }
    try {
      return { ...base, ...describe(await inspector.inspect(path)) }
    } catch (err: unknown) {
      const error: ModelFileError = err instanceof InvalidGgufError
        ? { name: err.name, code: err.defect, message: err.message }
        : { name: err instanceof Error ? err.name : 'Error', code: 'io', message: `${base.file}: ${errorMessage(err).split(path).join(base.file)}` }
      log.warn({ file: path, error: error.code, err: error.message }, 'skipping a model file that fails the structural check')
      return { ...base, error }
    }
  }

  const scan = async (): Promise<ModelInfo[]> => {
    const seen = new Set<string>()
    for (const dir of init.modelsDirs) {
      let files: string[]
      try {
        files = (await readdir(dir)).filter(f => f.endsWith('.gguf')).sort()
      } catch {
        continue
      }
      for (const file of files) {
        const id = basename(file, '.gguf')
        if (!MODEL_ID_RE.test(id) || seen.has(id)) continue
        const path = join(dir, file)
        let st
        try {
          st = await stat(path)
        } catch {
          continue
        }
        seen.add(id)
        const known = catalog.get(id)
        if (known !== undefined && known.mtimeMs === st.mtimeMs && known.size === st.size && known.path === path) continue
        catalog.set(id, { info: await examine(id, path, st.size), path, mtimeMs: st.mtimeMs, size: st.size })
      }
    }
    for (const id of [...catalog.keys()]) if (!seen.has(id) && !loaded.has(id)) catalog.delete(id)
    return listModels()
  }
  let scanning: Promise<ModelInfo[]> | undefined
  /** re-scan the directories; concurrent callers share one scan */
  const refresh = async (): Promise<ModelInfo[]> => {
    scanning ??= scan().finally(() => { scanning = undefined })
    return await scanning
  }

  const listModels = (): ModelInfo[] => [...catalog.values()].map(({ info }) => {
    const l = loaded.get(info.id)
    return {
      ...info,
      loaded: l !== undefined,
      tokens_per_second: l?.tps ?? null,
      queue_depth: l === undefined ? 0 : l.gen.queue.length + l.emb.queue.length,
      in_flight: l === undefined ? 0 : l.gen.inFlight + l.emb.inFlight
    }
  })

  const entry = (id: string): Entry => {
    if (typeof id !== 'string' || !MODEL_ID_RE.test(id)) throw new InvalidRequestError('model must be a model id', { param: 'model' })
    const e = catalog.get(id)
    if (e === undefined) throw new ModelNotFoundError(`model ${JSON.stringify(id)} is not on this node`, { model: id })
    if (e.info.error !== undefined) throw new ModelLoadError(`${id} cannot be served: ${e.info.error.message}`, { model: id })
    return e
  }

  // started alongside the first scan, which needs no native code
  const [llama] = await Promise.all([getLlama({
    gpu: init.gpu === false ? false : 'auto',
    build: 'never',
    logLevel: LlamaLogLevel.warn,
    logger: (level, message) => {
      const text = message.trim()
      if (text.length === 0) return
      if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) llamaLog.error(text)
      else if (level === LlamaLogLevel.warn) llamaLog.warn(text)
      else llamaLog.debug(text)
    }
  }), refresh()])
  log.info({ gpu: llama.gpu === false ? 'none (CPU)' : llama.gpu }, 'llama.cpp ready')

  /**
   * GPU layers and memory a load of `e` would use. The layer count is resolved here once and the
   * load is given exactly this number, so the estimate and the load never disagree.
   */
  const planFor = async (e: Entry, contextSize: number): Promise<LoadPlan> => {
    // safe: the file passed the structural check (bounded counts, tensors inside the file)
    const insights = await GgufInsights.from(await readGgufFileInfo(e.path), llama)
    let gpuLayers = 0
    if (llama.gpu !== false) {
      try {
        gpuLayers = (await insights.configurationResolver.resolveModelGpuLayersV2('auto')).gpuLayers
      } catch (err: unknown) {
        throw new InsufficientMemoryError(`${e.info.id} does not fit: ${redact(e, errorMessage(err))}`, { model: e.info.id })
      }
    }
    const model = await insights.estimateModelResourceRequirementsV2({ gpuLayers })
    const ctx = await insights.estimateContextResourceRequirementsV2({ contextSize, modelGpuLayers: gpuLayers, sequences })
    return { contextSize, gpuLayers, ram: model.cpuRam + ctx.cpuRam, vram: model.gpuVram + ctx.gpuVram }
  }

  const contextSizeFor = (e: Entry): number => Math.min(init.contextSize ?? DEFAULT_CONTEXT_SIZE, e.info.context_length > 0 ? e.info.context_length : Infinity)

  const plan = async (id: string): Promise<LoadPlan> => {
    const e = entry(id)
    try {
      return await planFor(e, contextSizeFor(e))
    } catch (err) {
      if (err instanceof InferenceError) throw err
      throw new ModelLoadError(`${id}: cannot read the model: ${redact(e, errorMessage(err))}`, { model: id, cause: err })
    }
  }

  /** Reject everyone waiting for a slot of `l`. */
  const drain = (l: Loaded, err: Error): void => {
    for (const w of l.gen.queue.splice(0)) w.reject(err)
    for (const w of l.emb.queue.splice(0)) w.reject(err)
  }

  const loadModel = async (id: string, options: LoadOptions = {}): Promise<ModelInfo> => {
    if (disposed) throw new InferenceError('the inference engine is disposed')
    const e = entry(id)
    if (loaded.has(id)) return listModels().find(m => m.id === id)!
    let p = loading.get(id)
    if (p === undefined) {
      p = (async () => {
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
            gpu: llama.gpu !== false,
            gpuLayers,
            signal: options.signal,
            onProgress: (e) => { progress(e.progress) },
            logFields: { model: id },
            onExit: (reason) => {
              const l = loaded.get(id)
              if (l === undefined || l.pool !== pool) return
              loaded.delete(id)
              drain(l, new ModelNotLoadedError(`${id} was unloaded: its process stopped (${reason})`, { model: id }))
              log.error({ model: id, reason }, 'the model process stopped; the model is unloaded')
            }
          }, { logger: llamaLog })
        } catch (err) {
          if (options.signal?.aborted === true) throw new RequestAbortedError(`loading ${id} was aborted`, { model: id })
          throw new ModelLoadError(`${id} failed to load: ${redact(e, errorMessage(err))}`, { model: id, cause: err })
        }
        if (disposed) {
          await pool.dispose()
          throw new InferenceError('the inference engine is disposed')
        }
        loaded.set(id, { pool, contextSize: pool.contextSize, gpuLayers: pool.gpuLayers, gen: { free: sequences, queue: [], inFlight: 0 }, emb: { free: EMBEDDING_SLOTS, queue: [], inFlight: 0 }, tps: null })
        progress(1)
        log.info({ model: id, contextSize, sequences, threads, gpuLayers: pool.gpuLayers, estimatedRam: ram }, 'model loaded')
        return listModels().find(m => m.id === id)!
      })().finally(() => loading.delete(id))
      loading.set(id, p)
    }
    return await p
  }

  const unloadModel = async (id: string): Promise<void> => {
    if (typeof id !== 'string' || !MODEL_ID_RE.test(id)) throw new InvalidRequestError('model must be a model id', { param: 'model' })
    if (!catalog.has(id)) throw new ModelNotFoundError(`model ${JSON.stringify(id)} is not on this node`, { model: id })
    const l = loaded.get(id)
    if (l === undefined) return
    loaded.delete(id)
    drain(l, new ModelNotLoadedError(`${id} was unloaded`, { model: id }))
    await l.pool.dispose()
    log.info({ model: id }, 'model unloaded')
  }

  const live = (id: string): Loaded => {
    entry(id)
    const l = loaded.get(id)
    if (l === undefined) throw new ModelNotLoadedError(`model ${id} is not loaded on this node`, { model: id })
    return l
  }

  /**
   * Take a free slot of `g`, or wait in its bounded queue; a full queue is BusyError. The slot is
   * taken (or the request queued or refused) synchronously, before the caller awaits anything.
   */
  const acquire = async (id: string, g: Gate, signal: AbortSignal | undefined): Promise<void> => {
    if (g.free > 0) { g.free--; return }
    if (g.queue.length >= maxQueue) throw new BusyError(`model ${id} is busy: ${g.inFlight} running, ${g.queue.length} waiting`, { model: id })
    signal?.throwIfAborted()
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = g.queue.indexOf(w)
        if (i >= 0) g.queue.splice(i, 1)
        reject(signal?.reason instanceof Error ? signal.reason : new RequestAbortedError('aborted while queued', { model: id }))
      }
      const w: Waiter = {
        resolve: () => { signal?.removeEventListener('abort', onAbort); resolve() },
        reject: (e) => { signal?.removeEventListener('abort', onAbort); reject(e) }
      }
      g.queue.push(w)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Hand the slot to the next waiter, or free it. */
  const release = (g: Gate): void => {
    const w = g.queue.shift()
    if (w !== undefined) w.resolve()
    else g.free++
  }

  /** Deadline, caller's abort and typed errors around one generation. */
  const run = async (id: string, o: GenerateOptions, promptTokens: number, work: (pool: LlamaPool, signal: AbortSignal, onChunk: (t: string) => void, countTokens: (n: number) => void) => Promise<{ text: string, stop: string }>): Promise<GenerateResult> => {
    const l = live(id)
    const { max_tokens: maxTokens } = validateOptions(o, l.contextSize)
    if (promptTokens + maxTokens > l.contextSize) throw new PromptTooLongError(`the prompt (${promptTokens} tokens) plus max_tokens (${maxTokens}) exceeds the context of ${l.contextSize} tokens`, { model: id })
    const ac = new AbortController()
    const deadline = o.deadline_ms ?? DEFAULT_DEADLINE_MS
    const timer = setTimeout(() => { ac.abort(new DeadlineExceededError(`no answer within ${deadline} ms`, { model: id })) }, deadline)
    const onAbort = (): void => { ac.abort(new RequestAbortedError('the request was aborted', { model: id })) }
    if (o.signal?.aborted === true) onAbort()
    o.signal?.addEventListener('abort', onAbort, { once: true })
    const started = performance.now()
    let first = -1
    let tokens = 0
    let holding = false
    try {
      await acquire(id, l.gen, ac.signal)
      holding = true
      l.gen.inFlight++
      const genStart = performance.now()
      const { text, stop } = await work(l.pool, ac.signal, (t) => {
        if (first < 0) first = performance.now()
        o.onToken?.(t)
      }, (n) => { tokens += n })
      const seconds = (performance.now() - genStart) / 1000
      if (tokens > 0 && seconds > 0) {
        const tps = tokens / seconds
        l.tps = l.tps === null ? tps : l.tps * (1 - TPS_EMA_ALPHA) + tps * TPS_EMA_ALPHA
      }
      const usage: Usage = { prompt_tokens: promptTokens, completion_tokens: tokens, total_tokens: promptTokens + tokens }
      const now = performance.now()
      return { model: id, text, finish_reason: stop === 'maxTokens' ? 'length' : 'stop', usage, ttft_ms: (first < 0 ? now : first) - started, duration_ms: now - started }
    } catch (err) {
      if (ac.signal.aborted && ac.signal.reason instanceof InferenceError) throw ac.signal.reason
      if (err instanceof InferenceError) throw err
      throw new InferenceError(`${id}: generation failed: ${errorMessage(err)}`, { model: id, cause: err })
    } finally {
      clearTimeout(timer)
      o.signal?.removeEventListener('abort', onAbort)
      if (holding) {
        l.gen.inFlight--
        release(l.gen)
      }
    }
  }

  const checkMessages = (messages: unknown): ChatMessage[] => {
    if (!Array.isArray(messages) || messages.length === 0) throw new InvalidRequestError('messages must be a non-empty array', { param: 'messages' })
    return messages.map((m: unknown, i) => {
      const msg = m as Partial<ChatMessage> | null
      if (msg === null || typeof msg !== 'object' || !['system', 'user', 'assistant'].includes(String(msg.role)) || typeof msg.content !== 'string') {
        throw new InvalidRequestError(`messages[${i}] must be {role: system|user|assistant, content: string}`, { param: `messages[${i}]` })
      }
      return { role: msg.role as ChatMessage['role'], content: msg.content }
    })
  }

  const chat = async (id: string, rawMessages: ChatMessage[], o: GenerateOptions = {}): Promise<GenerateResult> => {
    const l = live(id)
    const messages = checkMessages(rawMessages)
    const last = messages[messages.length - 1]!
    if (last.role !== 'user') throw new InvalidRequestError('the last message must come from the user', { param: 'messages' })
    const continueFrom = continuation(o)
    const promptTokens = (await l.pool.tokenCounts([...messages.map(m => m.content), ...(continueFrom !== undefined ? [continueFrom] : [])])).reduce((n, c) => n + c + 6, 0)
    o = clampMaxTokens(o, l.contextSize, promptTokens)
    const history: ChatHistoryItem[] = []
    for (const m of messages.slice(0, -1)) {
      if (m.role === 'system') history.push({ type: 'system', text: m.content })
      else if (m.role === 'user') history.push({ type: 'user', text: m.content })
      else history.push({ type: 'model', response: [m.content] })
    }
    const { temperature } = validateOptions(o, l.contextSize)
    return await run(id, o, promptTokens, async (pool, signal, onChunk, count) => {
      const r = await pool.generate({ op: 'chat', history, prompt: last.content, maxTokens: o.max_tokens ?? DEFAULT_MAX_TOKENS, temperature, seed: o.seed, stop: o.stop, continueFrom }, { signal, onText: onChunk })
      count(r.tokens)
      if (signal.aborted) throw signal.reason
      return { text: r.text, stop: r.stop }
    })
  }

  const complete = async (id: string, prompt: string, o: GenerateOptions = {}): Promise<GenerateResult> => {
    const l = live(id)
    if (typeof prompt !== 'string' || prompt.length === 0) throw new InvalidRequestError('prompt must be a non-empty string', { param: 'prompt' })
    const continueFrom = continuation(o)
    const [promptTokens = 0] = await l.pool.tokenCounts([prompt + (continueFrom ?? '')])
    o = clampMaxTokens(o, l.contextSize, promptTokens)
    const { temperature } = validateOptions(o, l.contextSize)
    return await run(id, o, promptTokens, async (pool, signal, onChunk, count) => {
      const r = await pool.generate({ op: 'complete', prompt, maxTokens: o.max_tokens ?? DEFAULT_MAX_TOKENS, temperature, seed: o.seed, stop: o.stop, continueFrom }, { signal, onText: onChunk })
      count(r.tokens)
      if (signal.aborted) throw signal.reason
      return { text: r.text, stop: r.stop }
    })
  }

  /** Embeddings: one at a time per model, at most `maxQueue` waiting, then BusyError (503), as generation. */
  const embed = async (id: string, input: string[], o: { signal?: AbortSignal } = {}): Promise<{ model: string, embeddings: number[][], usage: Usage }> => {
    const l = live(id)
    if (!Array.isArray(input) || input.length === 0 || input.length > 256 || !input.every(s => typeof s === 'string' && s.length > 0)) throw new InvalidRequestError('input must be 1 to 256 non-empty strings', { param: 'input' })
    await acquire(id, l.emb, o.signal)
    l.emb.inFlight++
    try {
      if (o.signal?.aborted === true) throw new RequestAbortedError('the request was aborted', { model: id })
      let tokens = 0
      for (const n of await l.pool.tokenCounts(input)) {
        if (n > l.contextSize) throw new PromptTooLongError(`an input of ${n} tokens exceeds the context of ${l.contextSize}`, { model: id })
        tokens += n
      }
      const embeddings = await l.pool.embed(input)
      return { model: id, embeddings, usage: { prompt_tokens: tokens, completion_tokens: 0, total_tokens: tokens } }
    } catch (err) {
      if (err instanceof InferenceError) throw err
      throw new InferenceError(`${id}: embedding failed: ${errorMessage(err)}`, { model: id, cause: err })
    } finally {
      l.emb.inFlight--
      release(l.emb)
    }
  }

  /** Load the models that fit in a share of free memory, smallest first; stops early when `signal` aborts. */
  const preload = async (opts: { memoryShare?: number, signal?: AbortSignal } = {}): Promise<string[]> => {
    let budget = freemem() * (opts.memoryShare ?? PRELOAD_MEMORY_SHARE)
    const out: string[] = []
    const aborted = (): boolean => opts.signal?.aborted === true
    for (const m of listModels().sort((a, b) => a.size_bytes - b.size_bytes)) {
      if (aborted()) break
      if (m.loaded || m.error !== undefined) continue
      let need: number
      try {
        need = (await plan(m.id)).ram
      } catch {
        continue
      }
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
    llama,
    listModels,
    refresh,
    loadModel,
    unloadModel,
    chat,
    complete,
    embed,
    preload,
    plan,
    dispose: async () => {
      if (disposed) return
      disposed = true
      for (const id of [...loaded.keys()]) await unloadModel(id).catch(() => {})
      await inspector.dispose()
      await llama.dispose()
    }
  }
}
