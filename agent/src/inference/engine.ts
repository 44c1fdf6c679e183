/**
 * The local inference engine: GGUF models from the models directories, served by node-llama-cpp
 * (prebuilt binaries; llama.cpp is never compiled at run time; GPU auto-detected, CPU fallback).
 *
 * Each loaded model lives in its own worker-thread pool (piscina, `llama-pool.ts`), off the
 * node's main event loop. It has one context with N sequences, so N requests generate concurrently; more
 * wait in a bounded queue, and beyond it a request fails at once with BusyError (503). Every
 * request has a deadline and an AbortSignal (a client disconnect aborts generation). Memory is
 * estimated before a load, so a model that does not fit is a clear error, not an OOM crash.
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
  DEFAULT_THREADS, PRELOAD_MEMORY_SHARE, TPS_EMA_ALPHA
} from './constants.ts'
import {
  BusyError, DeadlineExceededError, InferenceError, InsufficientMemoryError, InvalidRequestError, ModelLoadError, ModelNotFoundError,
  ModelNotLoadedError, PromptTooLongError, RequestAbortedError,
  type ChatMessage, type GenerateOptions, type GenerateResult, type InferenceEngine, type LoadOptions, type ModelInfo, type Usage
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
  /** waiting requests per model. @default 16 */
  maxQueue?: number
}

export interface InferenceEngineComponents {
  logger: ComponentLogger
}

interface Entry {
  info: ModelInfo
  mtimeMs: number
}

interface Waiter { resolve: () => void, reject: (e: Error) => void }

interface Loaded {
  /** the worker-thread pool holding the model and its context */
  pool: LlamaPool
  contextSize: number
  /** free context sequences (generation slots) */
  free: number
  queue: Waiter[]
  inFlight: number
  tps: number | null
  embedQueue: Promise<unknown>
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

/** `clamp_max_tokens`: lower max_tokens to what fits after the prompt (at least 1; the context check still applies). */
/** `continue_from`, checked: a string, or undefined. */
function continuation (o: GenerateOptions): string | undefined {
  if (o.continue_from === undefined || o.continue_from === '') return undefined
  if (typeof o.continue_from !== 'string') throw new InvalidRequestError('continue_from must be a string', { param: 'continue_from' })
  return o.continue_from
}

function clampMaxTokens (o: GenerateOptions, contextSize: number, promptTokens: number): GenerateOptions {
  if (o.clamp_max_tokens !== true || typeof o.max_tokens !== 'number' || !Number.isInteger(o.max_tokens) || o.max_tokens < 1) return o
  return { ...o, max_tokens: Math.max(1, Math.min(o.max_tokens, contextSize - promptTokens)) }
}

export async function createInferenceEngine (init: InferenceEngineInit, components: InferenceEngineComponents): Promise<InferenceEngine & { readonly llama: Llama, preload: (opts?: { memoryShare?: number }) => Promise<string[]> }> {
  const log = components.logger.forComponent('flexnode:inference')
  const llamaLog = log.forComponent('flexnode:llama.cpp')
  const llama = await getLlama({
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
  })
  log.info({ gpu: llama.gpu === false ? 'none (CPU)' : llama.gpu }, 'llama.cpp ready')
  const threads = init.threads ?? DEFAULT_THREADS
  const sequences = init.sequences ?? DEFAULT_SEQUENCES
  const maxQueue = init.maxQueue ?? DEFAULT_MAX_QUEUE
  const catalog = new Map<string, Entry>()
  const loaded = new Map<string, Loaded>()
  const loading = new Map<string, Promise<ModelInfo>>()
  let disposed = false

  const refresh = async (): Promise<ModelInfo[]> => {
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
        try {
          const st = await stat(path)
          seen.add(id)
          const known = catalog.get(id)
          if (known !== undefined && known.mtimeMs === st.mtimeMs && known.info.path === path) continue
          const meta = await readGgufFileInfo(path, { readTensorInfo: false }).catch((err: unknown) => { throw new ModelLoadError(`${file} is not a readable GGUF file: ${errorMessage(err)}`, { model: id }) })
          const arch = String((meta.metadata as { general?: { architecture?: unknown } }).general?.architecture ?? 'unknown')
          const archMeta = (meta.metadata as unknown as Record<string, { context_length?: unknown, embedding_length?: unknown } | undefined>)[arch]
          catalog.set(id, {
            mtimeMs: st.mtimeMs,
            info: { id, path, size_bytes: st.size, architecture: arch, context_length: Number(archMeta?.context_length ?? 0), embedding_length: Number(archMeta?.embedding_length ?? 0), loaded: loaded.has(id), tokens_per_second: null, queue_depth: 0, in_flight: 0 }
          })
        } catch (err) {
          seen.delete(id)
          log.warn({ file: path, err: errorMessage(err) }, 'skipping a model file that cannot be read')
        }
      }
    }
    for (const id of [...catalog.keys()]) if (!seen.has(id) && !loaded.has(id)) catalog.delete(id)
    return listModels()
  }

  const listModels = (): ModelInfo[] => [...catalog.values()].map(({ info }) => {
    const l = loaded.get(info.id)
    return { ...info, loaded: l !== undefined, tokens_per_second: l?.tps ?? null, queue_depth: l?.queue.length ?? 0, in_flight: l?.inFlight ?? 0 }
  })

  const entry = (id: string): Entry => {
    if (typeof id !== 'string' || !MODEL_ID_RE.test(id)) throw new InvalidRequestError('model must be a model id', { param: 'model' })
    const e = catalog.get(id)
    if (e === undefined) throw new ModelNotFoundError(`model ${JSON.stringify(id)} is not on this node`, { model: id })
    return e
  }

  /**
   * Memory a model and its context need on this machine, in bytes. Also refuses a file whose
   * tensor data is cut short: llama.cpp would fail on it inside the worker thread, where its
   * native error cannot be caught, so a truncated model is caught here instead.
   */
  const estimate = async (e: Entry, contextSize: number): Promise<number> => {
    const info = await readGgufFileInfo(e.info.path)
    const insights = await GgufInsights.from(info, llama)
    const size = (await stat(e.info.path)).size
    if (insights.modelSize > size) throw new ModelLoadError(`${e.info.id} is truncated or corrupt: its tensors need ${insights.modelSize} bytes but the file has ${size}`, { model: e.info.id })
    const model = await insights.estimateModelResourceRequirementsV2({ gpuLayers: 0 })
    const ctx = await insights.estimateContextResourceRequirementsV2({ contextSize, modelGpuLayers: 0, sequences })
    return model.cpuRam + ctx.cpuRam
  }

  const loadModel = async (id: string, options: LoadOptions = {}): Promise<ModelInfo> => {
    if (disposed) throw new InferenceError('the inference engine is disposed')
    const e = entry(id)
    if (loaded.has(id)) return listModels().find(m => m.id === id)!
    let p = loading.get(id)
    if (p === undefined) {
      p = (async () => {
        const contextSize = Math.min(init.contextSize ?? DEFAULT_CONTEXT_SIZE, e.info.context_length > 0 ? e.info.context_length : Infinity)
        let need: number
        try {
          need = await estimate(e, contextSize)
        } catch (err) {
          if (err instanceof ModelLoadError) throw err
          throw new ModelLoadError(`${id}: cannot read the model: ${errorMessage(err)}`, { model: id, cause: err })
        }
        const free = freemem()
        if (need > free) throw new InsufficientMemoryError(`${id} needs about ${(need / 2 ** 30).toFixed(2)} GiB; ${(free / 2 ** 30).toFixed(2)} GiB are free`, { model: id })
        options.onProgress?.(0)
        let pool: LlamaPool
        try {
          pool = await LlamaPool.open({ modelPath: e.info.path, contextSize, threads, sequences, gpu: llama.gpu !== false, signal: options.signal, onProgress: (p) => { options.onProgress?.(p) } })
        } catch (err) {
          if (options.signal?.aborted === true) throw new RequestAbortedError(`loading ${id} was aborted`, { model: id })
          throw new ModelLoadError(`${id} failed to load: ${errorMessage(err)}`, { model: id, cause: err })
        }
        loaded.set(id, { pool, contextSize: pool.contextSize, free: sequences, queue: [], inFlight: 0, tps: null, embedQueue: Promise.resolve() })
        options.onProgress?.(1)
        log.info({ model: id, contextSize, sequences, threads }, 'model loaded')
        return listModels().find(m => m.id === id)!
      })().finally(() => loading.delete(id))
      loading.set(id, p)
    }
    return await p
  }

  const unloadModel = async (id: string): Promise<void> => {
    entry(id)
    const l = loaded.get(id)
    if (l === undefined) return
    loaded.delete(id)
    for (const w of l.queue.splice(0)) w.reject(new ModelNotLoadedError(`${id} was unloaded`, { model: id }))
    await l.pool.dispose()
    log.info({ model: id }, 'model unloaded')
  }

  const live = (id: string): Loaded => {
    entry(id)
    const l = loaded.get(id)
    if (l === undefined) throw new ModelNotLoadedError(`model ${id} is not loaded on this node`, { model: id })
    return l
  }

  /** Take a free generation slot, or wait in the bounded queue. */
  const acquire = async (id: string, l: Loaded, signal: AbortSignal): Promise<void> => {
    if (l.free > 0) { l.free--; return }
    if (l.queue.length >= maxQueue) throw new BusyError(`model ${id} is busy: ${l.inFlight} generating, ${l.queue.length} waiting`, { model: id })
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = l.queue.indexOf(w)
        if (i >= 0) l.queue.splice(i, 1)
        reject(signal.reason instanceof Error ? signal.reason : new RequestAbortedError('aborted while queued'))
      }
      const w: Waiter = {
        resolve: () => { signal.removeEventListener('abort', onAbort); resolve() },
        reject: (e) => { signal.removeEventListener('abort', onAbort); reject(e) }
      }
      l.queue.push(w)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Hand the slot to the next waiter, or free it. */
  const release = (l: Loaded): void => {
    const w = l.queue.shift()
    if (w !== undefined) w.resolve()
    else l.free++
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
      await acquire(id, l, ac.signal)
      holding = true
      l.inFlight++
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
        l.inFlight--
        release(l)
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

  const embed = async (id: string, input: string[], o: { signal?: AbortSignal } = {}): Promise<{ model: string, embeddings: number[][], usage: Usage }> => {
    const l = live(id)
    if (!Array.isArray(input) || input.length === 0 || input.length > 256 || !input.every(s => typeof s === 'string' && s.length > 0)) throw new InvalidRequestError('input must be 1 to 256 non-empty strings', { param: 'input' })
    let tokens = 0
    for (const n of await l.pool.tokenCounts(input)) {
      if (n > l.contextSize) throw new PromptTooLongError(`an input of ${n} tokens exceeds the context of ${l.contextSize}`, { model: id })
      tokens += n
    }
    const job = l.embedQueue.then(async () => {
      if (o.signal?.aborted === true) throw new RequestAbortedError('the request was aborted', { model: id })
      return await l.pool.embed(input)
    })
    l.embedQueue = job.catch(() => undefined)
    return { model: id, embeddings: await job, usage: { prompt_tokens: tokens, completion_tokens: 0, total_tokens: tokens } }
  }

  /** Load the models that fit in a share of free memory, smallest first. */
  const preload = async (opts: { memoryShare?: number } = {}): Promise<string[]> => {
    let budget = freemem() * (opts.memoryShare ?? PRELOAD_MEMORY_SHARE)
    const out: string[] = []
    for (const m of listModels().sort((a, b) => a.size_bytes - b.size_bytes)) {
      if (m.loaded) continue
      const e = catalog.get(m.id)!
      let need: number
      try {
        need = await estimate(e, Math.min(init.contextSize ?? DEFAULT_CONTEXT_SIZE, m.context_length || DEFAULT_CONTEXT_SIZE))
      } catch {
        continue
      }
      if (need > budget) continue
      try {
        await loadModel(m.id)
        budget -= need
        out.push(m.id)
      } catch (err) {
        log.warn({ model: m.id, err: errorMessage(err) }, 'preload failed')
      }
    }
    return out
  }

  await refresh()
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
    dispose: async () => {
      if (disposed) return
      disposed = true
      for (const id of [...loaded.keys()]) await unloadModel(id).catch(() => {})
      await llama.dispose()
    }
  }
}
