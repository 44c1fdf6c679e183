/**
 * The OpenAI-compatible request bodies (`POST /v1/chat/completions`, `/v1/completions`,
 * `/v1/embeddings`) as zod schemas, and the requests the routes serve, made from them by
 * `parseInput` (a body that does not match is an `InvalidRequestError` whose `param` names the
 * first bad field, sent as a 400) and the defaults.
 *
 * As OpenAI's own clients expect: a field sent as `null` is a field not sent, and fields this node
 * does not use (`user`, `logit_bias`, `top_p`, `dimensions`…) are accepted and ignored.
 *
 * ```ts
 * const req = parseChatCompletionRequest(await ctx.readJson(), { maxTokensLimit: () => 2048 })
 * const result = await engine.chat(req.model, req.messages, generateOptions(req))
 * ```
 */
import { z } from 'zod'
import { parseInput } from '../api/validate.ts'
import { InvalidRequestError, type ChatMessage, type GenerateOptions } from '../inference/types.ts'
import { PROMPT_CACHE_MODES, type PromptCacheMode } from '../memory/prompt-cache.ts'
import { DEFAULT_MAX_TOKENS, MAX_EMBEDDING_INPUTS, MAX_STOP_LENGTH, MAX_STOP_SEQUENCES, MAX_TEMPERATURE } from './constants.ts'

// ---------------------------------------------------------------------------------------------
// the wire bodies

/** A non-empty string the body must have (`model`, `prompt`). */
const requiredText = z.string({ error: (issue) => issue.input == null ? 'is required' : 'must be a string' })
  .min(1, 'must be a non-empty string')

/** An allocation id (`uhCkk…`, Holochain base64 of an action hash). */
const ALLOCATION_ID = /^uhCkk[A-Za-z0-9_-]{48}$/

const STOP_ERROR = `must be a string or an array of at most ${MAX_STOP_SEQUENCES} strings of 1 to ${MAX_STOP_LENGTH} characters`
const stop = z.union([z.string(), z.array(z.string())], { error: STOP_ERROR })
  .refine(v => typeof v === 'string' ? v.length > 0 && v.length <= MAX_STOP_LENGTH : v.length <= MAX_STOP_SEQUENCES && v.every(s => s.length > 0 && s.length <= MAX_STOP_LENGTH), { error: STOP_ERROR })

/** `max_tokens` / `max_completion_tokens`; the model's own limit is checked once the model is known. */
const tokenCount = z.int({ error: 'must be an integer of at least 1' }).min(1, 'must be an integer of at least 1')

/** The fields chat and text completions share. */
const sampling = {
  max_tokens: tokenCount.nullish(),
  /** OpenAI's newer name of `max_tokens`; `max_tokens` wins when both are given */
  max_completion_tokens: tokenCount.nullish(),
  temperature: z.number({ error: `must be a number between 0 and ${MAX_TEMPERATURE}` })
    .min(0, `must be a number between 0 and ${MAX_TEMPERATURE}`).max(MAX_TEMPERATURE, `must be a number between 0 and ${MAX_TEMPERATURE}`).nullish(),
  seed: z.int({ error: 'must be a non-negative integer' }).min(0, 'must be a non-negative integer').nullish(),
  n: z.literal(1, { error: 'must be 1 (one choice per request)' }).nullish(),
  stream: z.boolean({ error: 'must be a boolean' }).nullish(),
  stream_options: z.object({
    /** a last chunk with `usage` and no choices */
    include_usage: z.boolean({ error: 'must be a boolean' }).nullish()
  }, { error: 'must be an object' }).nullish(),
  /** flexnode extension: the prompt cache (`memory/prompt-cache.ts`) */
  cache: z.enum(PROMPT_CACHE_MODES, { error: `must be one of ${PROMPT_CACHE_MODES.map(m => JSON.stringify(m)).join(', ')}` }).nullish(),
  cache_threshold: z.number({ error: 'must be a number from 0 to 1 (a cosine similarity)' })
    .min(0, 'must be a number from 0 to 1 (a cosine similarity)').max(1, 'must be a number from 0 to 1 (a cosine similarity)').nullish(),
  stop: stop.nullish(),
  /** flexnode extension: served under this inference lease */
  allocation_id: z.string({ error: 'must be an allocation id (uhCkk…)' }).regex(ALLOCATION_ID, 'must be an allocation id (uhCkk…)').nullish()
}

/** `cache_threshold` means something only to the semantic cache. */
function thresholdNeedsSemantic (body: { cache?: PromptCacheMode | null, cache_threshold?: number | null }): boolean {
  return body.cache_threshold == null || body.cache === 'semantic'
}
const THRESHOLD_ONLY_SEMANTIC = { path: ['cache_threshold'], error: 'applies only with cache: "semantic"' }

/** The body itself is not a JSON object. */
const BODY = { error: 'must be a JSON object' }

export const chatMessage = z.object({
  role: z.enum(['system', 'user', 'assistant'], { error: 'must be one of system, user, assistant' }),
  content: z.string({ error: 'must be a string' })
}, { error: 'must be an object {role, content}' })

/** `POST /v1/chat/completions` */
export const chatCompletionBody = z.object({
  model: requiredText,
  messages: z.array(chatMessage, { error: (issue) => issue.input == null ? 'is required' : 'must be a non-empty array' }).min(1, 'must be a non-empty array'),
  ...sampling
}, BODY).refine(thresholdNeedsSemantic, THRESHOLD_ONLY_SEMANTIC)

/** `POST /v1/completions` (one prompt per request) */
export const completionBody = z.object({
  model: requiredText,
  prompt: requiredText,
  ...sampling
}, BODY).refine(thresholdNeedsSemantic, THRESHOLD_ONLY_SEMANTIC)

const INPUT_ERROR = `must be a non-empty string or an array of 1 to ${MAX_EMBEDDING_INPUTS} non-empty strings`

/** `POST /v1/embeddings` */
export const embeddingBody = z.object({
  model: requiredText,
  input: z.union([z.string(), z.array(z.string())], { error: (issue) => issue.input == null ? 'is required' : INPUT_ERROR })
    .refine(v => typeof v === 'string' ? v.length > 0 : v.length > 0 && v.length <= MAX_EMBEDDING_INPUTS && v.every(s => s.length > 0), { error: INPUT_ERROR }),
  encoding_format: z.enum(['float', 'base64'], { error: 'must be "float" or "base64"' }).nullish()
}, BODY)

// ---------------------------------------------------------------------------------------------
// the requests served

export interface SamplingRequest {
  model: string
  max_tokens: number
  temperature?: number
  seed?: number
  stop?: string[]
  stream: boolean
  /** `stream_options.include_usage`: a last chunk with `usage` and no choices */
  include_usage: boolean
  /** flexnode extension: served under this inference lease (`POST /v1/resources/allocate`), on its provider, counted against it */
  allocation_id?: string
  /**
   * flexnode extension, the prompt cache (`memory/prompt-cache.ts`) of a deterministic request
   * (temperature 0 or a seed): `exact` (default) answers a repeat of the same request from the
   * cache; `semantic` also answers a prompt whose embedding is at least `cache_threshold` similar
   * (cosine) to a cached one with the same sampling parameters; `off` neither reads nor stores.
   */
  cache: PromptCacheMode
  /** with `cache: "semantic"` only: the cosine similarity 0..1 a cached prompt needs. @default 0.95 (the node's) */
  cache_threshold?: number
}

export interface ChatCompletionRequest extends SamplingRequest { messages: ChatMessage[] }
export interface CompletionRequest extends SamplingRequest { prompt: string }

export interface ParseOptions {
  /** largest `max_tokens` for a model: its context length, or a generous bound for a remote model */
  maxTokensLimit: (model: string) => number
}

type SamplingBody = { model: string } & z.output<z.ZodObject<typeof sampling>>

/** The sampling fields of a parsed body, with their defaults; `max_tokens` within the model's limit. */
function samplingRequest (body: SamplingBody, options: ParseOptions): SamplingRequest {
  const limit = options.maxTokensLimit(body.model)
  const param = body.max_tokens != null ? 'max_tokens' : 'max_completion_tokens'
  const maxTokens = body.max_tokens ?? body.max_completion_tokens ?? Math.min(DEFAULT_MAX_TOKENS, limit)
  if (maxTokens > limit) throw new InvalidRequestError(`${param}: must be an integer between 1 and ${limit}`, { param })
  const out: SamplingRequest = {
    model: body.model,
    max_tokens: maxTokens,
    stream: body.stream ?? false,
    include_usage: body.stream_options?.include_usage ?? false,
    cache: body.cache ?? 'exact'
  }
  if (body.cache_threshold != null) out.cache_threshold = body.cache_threshold
  if (body.temperature != null) out.temperature = body.temperature
  if (body.seed != null) out.seed = body.seed
  const stop = typeof body.stop === 'string' ? [body.stop] : body.stop
  if (stop != null && stop.length > 0) out.stop = stop
  if (body.allocation_id != null) out.allocation_id = body.allocation_id
  return out
}

/** `POST /v1/chat/completions` */
export function parseChatCompletionRequest (value: unknown, options: ParseOptions): ChatCompletionRequest {
  const body = parseInput(chatCompletionBody, value)
  return { ...samplingRequest(body, options), messages: body.messages }
}

/** `POST /v1/completions` */
export function parseCompletionRequest (value: unknown, options: ParseOptions): CompletionRequest {
  const body = parseInput(completionBody, value)
  return { ...samplingRequest(body, options), prompt: body.prompt }
}

export interface EmbeddingRequest {
  model: string
  input: string[]
  encoding_format: 'float' | 'base64'
}

/** `POST /v1/embeddings` */
export function parseEmbeddingRequest (value: unknown): EmbeddingRequest {
  const body = parseInput(embeddingBody, value)
  return { model: body.model, input: typeof body.input === 'string' ? [body.input] : body.input, encoding_format: body.encoding_format ?? 'float' }
}

/** The engine options of a parsed request. */
export function generateOptions (req: SamplingRequest): GenerateOptions {
  const o: GenerateOptions = { max_tokens: req.max_tokens }
  if (req.temperature !== undefined) o.temperature = req.temperature
  if (req.seed !== undefined) o.seed = req.seed
  if (req.stop !== undefined) o.stop = req.stop
  return o
}
