/**
 * Generation on a loaded model: request checks (options, messages, continuation), then one
 * generation with its deadline, the caller's abort and typed errors, holding one of the model's
 * sequence slots, and the tokens/s figure it feeds. Chat and completion differ only in the task
 * they hand to the model's process.
 *
 * ```ts
 * const result = await generateOn(model, { op: 'complete', prompt: 'Hi' }, options, promptTokens)
 * ```
 */
import type { ChatHistoryItem } from 'node-llama-cpp'
import { errorMessage } from '../errors.ts'
import { DEFAULT_DEADLINE_MS, DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, TPS_EMA_ALPHA } from './constants.ts'
import type { SlotGate } from './gate.ts'
import type { LlamaPool, PoolGenerateRequest } from './llama-pool.ts'
import {
  DeadlineExceededError, InferenceError, InvalidRequestError, PromptTooLongError, RequestAbortedError,
  type ChatMessage, type GenerateOptions, type GenerateResult, type Usage
} from './types.ts'

/** A model in its process, with its slots and measured speed. */
export interface LoadedModel {
  id: string
  /** the child process holding the model and its context */
  pool: LlamaPool
  contextSize: number
  gpuLayers: number
  /** generation slots: the context's sequences */
  gen: SlotGate
  /** embedding slots */
  emb: SlotGate
  tps: number | null
}

/** `max_tokens` and `temperature` with their defaults; every option checked. */
export function validateOptions (o: GenerateOptions, contextSize: number): Required<Pick<GenerateOptions, 'max_tokens' | 'temperature'>> {
  const maxTokens = o.max_tokens ?? DEFAULT_MAX_TOKENS
  if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > contextSize) throw new InvalidRequestError(`max_tokens must be an integer between 1 and ${contextSize}`, { param: 'max_tokens' })
  const temperature = o.temperature ?? DEFAULT_TEMPERATURE
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0 || temperature > 2) throw new InvalidRequestError('temperature must be a number between 0 and 2', { param: 'temperature' })
  if (o.seed !== undefined && (!Number.isSafeInteger(o.seed) || o.seed < 0)) throw new InvalidRequestError('seed must be a non-negative integer', { param: 'seed' })
  if (o.stop !== undefined && (!Array.isArray(o.stop) || o.stop.length > 4 || !o.stop.every(s => typeof s === 'string' && s.length > 0 && s.length <= 256))) throw new InvalidRequestError('stop must be at most 4 non-empty strings', { param: 'stop' })
  return { max_tokens: maxTokens, temperature }
}

/** `continue_from`, checked: a string, or undefined. */
export function continuation (o: GenerateOptions): string | undefined {
  if (o.continue_from === undefined || o.continue_from === '') return undefined
  if (typeof o.continue_from !== 'string') throw new InvalidRequestError('continue_from must be a string', { param: 'continue_from' })
  return o.continue_from
}

/** `clamp_max_tokens`: lower max_tokens to what fits after the prompt (at least 1; the context check still applies). */
export function clampMaxTokens (o: GenerateOptions, contextSize: number, promptTokens: number): GenerateOptions {
  if (o.clamp_max_tokens !== true || typeof o.max_tokens !== 'number' || !Number.isInteger(o.max_tokens) || o.max_tokens < 1) return o
  return { ...o, max_tokens: Math.max(1, Math.min(o.max_tokens, contextSize - promptTokens)) }
}

/** Chat messages, checked; the last one must come from the user. */
export function checkMessages (messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) throw new InvalidRequestError('messages must be a non-empty array', { param: 'messages' })
  const checked = messages.map((m: unknown, i) => {
    const msg = m as Partial<ChatMessage> | null
    if (msg === null || typeof msg !== 'object' || !['system', 'user', 'assistant'].includes(String(msg.role)) || typeof msg.content !== 'string') {
      throw new InvalidRequestError(`messages[${i}] must be {role: system|user|assistant, content: string}`, { param: `messages[${i}]` })
    }
    return { role: msg.role as ChatMessage['role'], content: msg.content }
  })
  if (checked[checked.length - 1]!.role !== 'user') throw new InvalidRequestError('the last message must come from the user', { param: 'messages' })
  return checked
}

/** Every message but the last, as node-llama-cpp's chat history. */
export function chatHistory (messages: ChatMessage[]): ChatHistoryItem[] {
  return messages.slice(0, -1).map((m): ChatHistoryItem => {
    if (m.role === 'system') return { type: 'system', text: m.content }
    if (m.role === 'user') return { type: 'user', text: m.content }
    return { type: 'model', response: [m.content] }
  })
}

/** The task of a chat or completion, less the sampling fields `generateOn` fills in. */
export type GenerationTask = Omit<PoolGenerateRequest, 'maxTokens' | 'temperature' | 'seed' | 'stop'>

/**
 * One generation on `l`: options checked (max_tokens clamped first when asked), the prompt fits
 * the context, a sequence slot held, the deadline and the caller's abort applied, the error typed.
 */
export async function generateOn (l: LoadedModel, task: GenerationTask, o: GenerateOptions, promptTokens: number): Promise<GenerateResult> {
  const id = l.id
  o = clampMaxTokens(o, l.contextSize, promptTokens)
  const { max_tokens: maxTokens, temperature } = validateOptions(o, l.contextSize)
  if (promptTokens + maxTokens > l.contextSize) throw new PromptTooLongError(`the prompt (${promptTokens} tokens) plus max_tokens (${maxTokens}) exceeds the context of ${l.contextSize} tokens`, { model: id })
  const ac = new AbortController()
  const deadline = o.deadline_ms ?? DEFAULT_DEADLINE_MS
  const timer = setTimeout(() => { ac.abort(new DeadlineExceededError(`no answer within ${deadline} ms`, { model: id })) }, deadline)
  const onAbort = (): void => { ac.abort(new RequestAbortedError('the request was aborted', { model: id })) }
  if (o.signal?.aborted === true) onAbort()
  o.signal?.addEventListener('abort', onAbort, { once: true })
  const started = performance.now()
  let first = -1
  try {
    return await l.gen.hold(ac.signal, async () => {
      const genStart = performance.now()
      const r = await l.pool.generate({ ...task, maxTokens, temperature, seed: o.seed, stop: o.stop }, {
        signal: ac.signal,
        onText: (t) => {
          if (first < 0) first = performance.now()
          o.onToken?.(t)
        }
      })
      if (ac.signal.aborted) throw ac.signal.reason
      const seconds = (performance.now() - genStart) / 1000
      if (r.tokens > 0 && seconds > 0) {
        const tps = r.tokens / seconds
        l.tps = l.tps === null ? tps : l.tps * (1 - TPS_EMA_ALPHA) + tps * TPS_EMA_ALPHA
      }
      const usage: Usage = { prompt_tokens: promptTokens, completion_tokens: r.tokens, total_tokens: promptTokens + r.tokens }
      const now = performance.now()
      return { model: id, text: r.text, finish_reason: r.stop === 'maxTokens' ? 'length' : 'stop', usage, ttft_ms: (first < 0 ? now : first) - started, duration_ms: now - started }
    })
  } catch (err) {
    if (ac.signal.aborted && ac.signal.reason instanceof InferenceError) throw ac.signal.reason
    if (err instanceof InferenceError) throw err
    throw new InferenceError(`${id}: generation failed: ${errorMessage(err)}`, { model: id, cause: err })
  } finally {
    clearTimeout(timer)
    o.signal?.removeEventListener('abort', onAbort)
  }
}

/** Embeddings: one embedding slot held (bounded queue, then BusyError), every input within the context. */
export async function embedOn (l: LoadedModel, input: string[], o: { signal?: AbortSignal }): Promise<{ model: string, embeddings: number[][], usage: Usage }> {
  const id = l.id
  if (!Array.isArray(input) || input.length === 0 || input.length > 256 || !input.every(s => typeof s === 'string' && s.length > 0)) throw new InvalidRequestError('input must be 1 to 256 non-empty strings', { param: 'input' })
  return await l.emb.hold(o.signal, async () => {
    try {
      if (o.signal?.aborted === true) throw new RequestAbortedError('the request was aborted', { model: id })
      let tokens = 0
      for (const n of await l.pool.tokenCounts(input, o)) {
        if (n > l.contextSize) throw new PromptTooLongError(`an input of ${n} tokens exceeds the context of ${l.contextSize}`, { model: id })
        tokens += n
      }
      const embeddings = await l.pool.embed(input, o)
      return { model: id, embeddings, usage: { prompt_tokens: tokens, completion_tokens: 0, total_tokens: tokens } }
    } catch (err) {
      if (err instanceof InferenceError) throw err
      if (o.signal?.aborted === true) throw new RequestAbortedError('the request was aborted', { model: id, cause: err })
      throw new InferenceError(`${id}: embedding failed: ${errorMessage(err)}`, { model: id, cause: err })
    }
  })
}
