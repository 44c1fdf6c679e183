/**
 * The OpenAI-compatible wire format: request validation (every field checked at the boundary,
 * each failure an `InvalidRequestError` naming its `param`), the response and stream-chunk shapes,
 * the HTTP-level errors, and the mapping of any error to `{error: {message, type, param, code}}`.
 *
 * ```ts
 * const req = parseChatCompletionRequest(JSON.parse(body), { maxTokensLimit: () => 2048 })
 * const result = await engine.chat(req.model, req.messages, generateOptions(req))
 * send(200, chatCompletion(newId('chatcmpl'), nowSeconds(), result))
 * ```
 */
import { randomBytes } from 'node:crypto'
import { FlexnodeError } from '../errors.ts'
import {
  InferenceError, InvalidRequestError,
  type ChatMessage, type GenerateOptions, type GenerateResult, type ModelInfo, type Usage
} from '../inference/types.ts'
import {
  DEFAULT_MAX_TOKENS, MAX_EMBEDDING_INPUTS, MAX_STOP_LENGTH, MAX_STOP_SEQUENCES, MAX_TEMPERATURE, OWNED_BY
} from './constants.ts'
import { PROMPT_CACHE_MODES, type PromptCacheMode } from '../memory/prompt-cache.ts'

// ---------------------------------------------------------------------------------------------
// HTTP-level errors

/** An error of the HTTP layer itself (routing, body, media type), already in OpenAI's terms. */
export class HttpApiError extends FlexnodeError {
  static override readonly name: string = 'HttpApiError'
  readonly status: number = 500
  readonly type: string = 'server_error'
  readonly code: string | null = null
  readonly param: string | null = null
}

export class RouteNotFoundError extends HttpApiError {
  static override readonly name: string = 'RouteNotFoundError'
  override readonly status = 404
  override readonly type = 'invalid_request_error'
  override readonly code = 'unknown_url'
  readonly path: string

  constructor (method: string, path: string) {
    super(`unknown route: ${method} ${path}`)
    this.path = path
  }
}

export class MethodNotAllowedError extends HttpApiError {
  static override readonly name: string = 'MethodNotAllowedError'
  override readonly status = 405
  override readonly type = 'invalid_request_error'
  override readonly code = 'method_not_allowed'
  readonly allow: string[]

  constructor (method: string, path: string, allow: string[]) {
    super(`${method} is not allowed on ${path}; allowed: ${allow.join(', ')}`)
    this.allow = allow
  }
}

export class PayloadTooLargeError extends HttpApiError {
  static override readonly name: string = 'PayloadTooLargeError'
  override readonly status = 413
  override readonly type = 'invalid_request_error'
  override readonly code = 'payload_too_large'
  readonly limit: number

  constructor (limit: number) {
    super(`the request body exceeds ${limit} bytes`)
    this.limit = limit
  }
}

export class UnsupportedMediaTypeError extends HttpApiError {
  static override readonly name: string = 'UnsupportedMediaTypeError'
  override readonly status = 415
  override readonly type = 'invalid_request_error'
  override readonly code = 'unsupported_media_type'

  constructor (got: string | undefined) {
    super(`content-type must be application/json${got === undefined ? '' : `, not ${got}`}`)
  }
}

export class MalformedJsonError extends HttpApiError {
  static override readonly name: string = 'MalformedJsonError'
  override readonly status = 400
  override readonly type = 'invalid_request_error'
  override readonly code = 'invalid_json'
}

export class NotImplementedError extends HttpApiError {
  static override readonly name: string = 'NotImplementedError'
  override readonly status = 501
  override readonly type = 'server_error'
  override readonly code = 'not_implemented'
}

/**
 * The request's `Host` is not one this node answers to (a loopback name, the bound address or a
 * configured name): a page that rebinds its own DNS name to this node's address is refused.
 */
export class HostNotAllowedError extends HttpApiError {
  static override readonly name: string = 'HostNotAllowedError'
  override readonly status = 403
  override readonly type = 'permission_error'
  override readonly code = 'host_not_allowed'
  readonly host: string

  constructor (host: string) {
    super(`this node does not answer to the host ${JSON.stringify(host)}; allow it with --http-allowed-hosts`)
    this.host = host
  }
}

/** A state-changing or generating request sent by a page of a foreign origin (CSRF). */
export class OriginNotAllowedError extends HttpApiError {
  static override readonly name: string = 'OriginNotAllowedError'
  override readonly status = 403
  override readonly type = 'permission_error'
  override readonly code = 'origin_not_allowed'
  readonly origin: string

  constructor (origin: string) {
    super(`requests from the origin ${JSON.stringify(origin)} may not change or use this node; allow its host with --http-allowed-hosts`)
    this.origin = origin
  }
}

/** The server is stopping; requests still generating are aborted with this. */
export class ShuttingDownError extends HttpApiError {
  static override readonly name: string = 'ShuttingDownError'
  override readonly status = 503
  override readonly type = 'server_error'
  override readonly code = 'shutting_down'

  constructor () {
    super('the server is shutting down')
  }
}

/** An SSE client stopped reading: its stream is dropped and its generation aborted, so the model serves others. */
export class SlowReaderError extends HttpApiError {
  static override readonly name: string = 'SlowReaderError'
  override readonly status = 408
  override readonly type = 'invalid_request_error'
  override readonly code = 'slow_reader'
  /** bytes the client left unread when it was dropped */
  readonly bufferedBytes: number

  constructor (reason: string, bufferedBytes: number) {
    super(`the client does not read its event stream: ${reason}`)
    this.bufferedBytes = bufferedBytes
  }
}

// ---------------------------------------------------------------------------------------------
// errors → OpenAI's error body

export interface OpenAIErrorBody {
  /**
   * `name`: the typed error's name (`NoCapacityError`, `WasmCpuLimitError`…), for every known
   * error, so clients branch on it as in-process callers do; `model_votes`: each vote's error,
   * when every vote of an MOE query failed
   */
  error: { message: string, type: string, param: string | null, code: string | null, name?: string, model_votes?: unknown[] }
}

/**
 * What each typed error of the capabilities behind this API means in HTTP, by `name`: its status,
 * OpenAI error `type` and `code`, and the `param` it points at when it carries none itself. The
 * errors themselves know nothing of HTTP; a provider's error that crossed the mesh keeps its name
 * (`RemoteError`), so it maps the same.
 */
const HTTP_ERRORS: Readonly<Record<string, { status: number, type: string, code: string, param?: string }>> = {
  ModelNotFoundError: { status: 404, type: 'invalid_request_error', code: 'model_not_found', param: 'model' },
  ModelNotLoadedError: { status: 409, type: 'invalid_request_error', code: 'model_not_loaded', param: 'model' },
  ModelLoadError: { status: 422, type: 'invalid_request_error', code: 'model_load_failed', param: 'model' },
  ModelCrashedError: { status: 500, type: 'server_error', code: 'model_crashed' },
  InsufficientMemoryError: { status: 507, type: 'server_error', code: 'insufficient_memory' },
  BusyError: { status: 503, type: 'server_error', code: 'queue_full' },
  PromptTooLongError: { status: 400, type: 'invalid_request_error', code: 'context_length_exceeded' },
  InvalidRequestError: { status: 400, type: 'invalid_request_error', code: 'invalid_value' },
  InvalidInputError: { status: 400, type: 'invalid_request_error', code: 'invalid_value' },
  DeadlineExceededError: { status: 504, type: 'server_error', code: 'timeout' },
  RequestAbortedError: { status: 499, type: 'server_error', code: 'request_aborted' },
  PolicyDeniedError: { status: 403, type: 'permission_error', code: 'policy_denied' },
  MoeNoAnswersError: { status: 502, type: 'server_error', code: 'moe_no_answers' },
  ProviderFailedError: { status: 502, type: 'server_error', code: 'provider_failed' },
  // resources: leases and WASM tasks (`agent/src/resources/`, the scheduler's placement)
  InvalidSchedulerInputError: { status: 400, type: 'invalid_request_error', code: 'invalid_value' },
  NotTheHolderError: { status: 403, type: 'permission_error', code: 'not_the_holder', param: 'allocation_id' },
  LeaseRefusedError: { status: 409, type: 'invalid_request_error', code: 'lease_refused' },
  LeaseNotLiveError: { status: 410, type: 'invalid_request_error', code: 'lease_not_live', param: 'allocation_id' },
  NoCapacityError: { status: 503, type: 'server_error', code: 'no_capacity' },
  WasmModuleNotFoundError: { status: 404, type: 'invalid_request_error', code: 'wasm_module_not_found', param: 'wasm_cid' },
  InvalidWasmModuleError: { status: 422, type: 'invalid_request_error', code: 'invalid_wasm_module', param: 'wasm' },
  WasmImportError: { status: 422, type: 'invalid_request_error', code: 'wasm_import_refused', param: 'wasm' },
  WasmTrapError: { status: 422, type: 'invalid_request_error', code: 'wasm_trap' },
  // a task past a budget it was given: the request's own doing, so 4xx, each with its own code
  WasmMemoryLimitError: { status: 422, type: 'invalid_request_error', code: 'wasm_memory_limit', param: 'limits.memory_mb' },
  WasmCpuLimitError: { status: 422, type: 'invalid_request_error', code: 'wasm_cpu_limit', param: 'limits.cpu_ms' },
  WasmWallTimeoutError: { status: 422, type: 'invalid_request_error', code: 'wasm_wall_timeout', param: 'limits.wall_ms' },
  WasmOutputLimitError: { status: 422, type: 'invalid_request_error', code: 'wasm_output_limit' },
  UnknownCollectionError: { status: 404, type: 'invalid_request_error', code: 'collection_not_found', param: 'collection' },
  CollectionExistsError: { status: 409, type: 'invalid_request_error', code: 'collection_exists', param: 'name' },
  InvalidVectorError: { status: 400, type: 'invalid_request_error', code: 'invalid_value' },
  BatchTooLargeError: { status: 413, type: 'invalid_request_error', code: 'batch_too_large', param: 'points' },
  NoEmbeddingModelError: { status: 400, type: 'invalid_request_error', code: 'no_embedding_model', param: 'text' },
  // artifacts (`agent/src/artifacts/`): IPFS content and its records
  InvalidCidError: { status: 400, type: 'invalid_request_error', code: 'invalid_cid', param: 'cid' },
  InvalidImportOptionsError: { status: 400, type: 'invalid_request_error', code: 'invalid_import_options' },
  ContentNotFoundError: { status: 404, type: 'invalid_request_error', code: 'content_not_found', param: 'cid' },
  ArtifactNotRecordedError: { status: 404, type: 'invalid_request_error', code: 'artifact_not_recorded', param: 'cid' },
  ContentMismatchError: { status: 502, type: 'server_error', code: 'content_mismatch' },
  ArtifactIntegrityError: { status: 502, type: 'server_error', code: 'artifact_integrity' },
  ArtifactStoreUnavailableError: { status: 503, type: 'server_error', code: 'artifact_store_unavailable' },
  RangeNotSatisfiableError: { status: 416, type: 'invalid_request_error', code: 'range_not_satisfiable', param: 'range' },
  InvalidModelArtifactError: { status: 422, type: 'invalid_request_error', code: 'invalid_model_artifact', param: 'cid' },
  ModelExistsError: { status: 409, type: 'invalid_request_error', code: 'model_exists', param: 'cid' },
  WriteConsistencyError: { status: 503, type: 'server_error', code: 'write_consistency_not_met', param: 'write_consistency' },
  // holochain.* operations (`api/holochain.ts`)
  WrongNetworkError: { status: 409, type: 'invalid_request_error', code: 'wrong_network', param: 'network' },
  BootstrapDialError: { status: 502, type: 'server_error', code: 'bootstrap_unreachable', param: 'bootstrap_override' },
  // backup (`audit/backup-routes.ts`)
  PlaintextKeystoreError: { status: 409, type: 'invalid_request_error', code: 'plaintext_keystore', param: 'include_plaintext_keystore' },
  NotHostedError: { status: 503, type: 'server_error', code: 'shard_not_hosted' },
  // an inference error of a kind this table does not name
  InferenceError: { status: 500, type: 'server_error', code: 'inference_failed' }
}

/** The HTTP meaning of an error: by its name, else by the nearest base class that has one. */
function httpMeaning (err: Error): { status: number, type: string, code: string, param?: string } | undefined {
  if (Object.hasOwn(HTTP_ERRORS, err.name)) return HTTP_ERRORS[err.name]
  if (err instanceof InferenceError) return HTTP_ERRORS.InferenceError
  return undefined
}

/**
 * Status and body for any error. Unknown errors (`known: false`) become a bare 500: their message
 * and stack stay in the log.
 */
export function toOpenAIError (err: unknown): { status: number, body: OpenAIErrorBody, known: boolean } {
  if (err instanceof HttpApiError) {
    return { status: err.status, known: true, body: { error: { message: err.message, type: err.type, param: err.param, code: err.code, name: err.name } } }
  }
  const meaning = err instanceof Error ? httpMeaning(err) : undefined
  if (err instanceof Error && meaning !== undefined) {
    // own fields only: a field name is never looked up on Object.prototype
    const own = err as Error & { param?: unknown, field?: unknown, model_votes?: unknown }
    const param = typeof own.param === 'string' ? own.param : typeof own.field === 'string' ? own.field : meaning.param ?? null
    const body: OpenAIErrorBody = { error: { message: err.message, type: meaning.type, param, code: meaning.code, name: err.name } }
    if (Array.isArray(own.model_votes)) body.error.model_votes = own.model_votes
    return { status: meaning.status, known: true, body }
  }
  return { status: 500, known: false, body: { error: { message: 'internal server error', type: 'server_error', param: null, code: null } } }
}

// ---------------------------------------------------------------------------------------------
// request validation

type Body = Record<string, unknown>

function invalid (param: string, message: string): InvalidRequestError {
  return new InvalidRequestError(message, { param })
}

/** The parsed JSON body must be an object. */
export function asBody (value: unknown): Body {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalid('body', 'the request body must be a JSON object')
  return value as Body
}

function requiredString (body: Body, field: string, options: { nonEmpty?: boolean } = {}): string {
  const v = body[field]
  if (v === undefined || v === null) throw invalid(field, `${field} is required`)
  if (typeof v !== 'string') throw invalid(field, `${field} must be a string`)
  if (options.nonEmpty === true && v.length === 0) throw invalid(field, `${field} must be a non-empty string`)
  return v
}

function optionalBoolean (body: Body, field: string): boolean | undefined {
  const v = body[field]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'boolean') throw invalid(field, `${field} must be a boolean`)
  return v
}

function integerInRange (v: unknown, param: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalid(param, `${param} must be an integer between ${min} and ${max}`)
  return v
}

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

const ROLES: ReadonlySet<string> = new Set(['system', 'user', 'assistant'])

function parseMessages (v: unknown): ChatMessage[] {
  if (v === undefined || v === null) throw invalid('messages', 'messages is required')
  if (!Array.isArray(v) || v.length === 0) throw invalid('messages', 'messages must be a non-empty array')
  return v.map((m: unknown, i): ChatMessage => {
    const param = `messages[${i}]`
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw invalid(param, `${param} must be an object {role, content}`)
    const { role, content } = m as Body
    if (typeof role !== 'string' || !ROLES.has(role)) throw invalid(`${param}.role`, `${param}.role must be one of system, user, assistant`)
    if (typeof content !== 'string') throw invalid(`${param}.content`, `${param}.content must be a string`)
    return { role: role as ChatMessage['role'], content }
  })
}

function parseStop (v: unknown): string[] | undefined {
  if (v === undefined || v === null) return undefined
  const list = typeof v === 'string' ? [v] : v
  const ok = Array.isArray(list) && list.length <= MAX_STOP_SEQUENCES &&
    list.every((s: unknown) => typeof s === 'string' && s.length > 0 && s.length <= MAX_STOP_LENGTH)
  if (!ok) throw invalid('stop', `stop must be a string or an array of at most ${MAX_STOP_SEQUENCES} strings of 1 to ${MAX_STOP_LENGTH} characters`)
  return list.length === 0 ? undefined : list as string[]
}

function parseSampling (body: Body, model: string, options: ParseOptions): Omit<SamplingRequest, 'model'> {
  const limit = options.maxTokensLimit(model)
  let maxTokens = Math.min(DEFAULT_MAX_TOKENS, limit)
  if (body.max_tokens !== undefined && body.max_tokens !== null) maxTokens = integerInRange(body.max_tokens, 'max_tokens', 1, limit)
  else if (body.max_completion_tokens !== undefined && body.max_completion_tokens !== null) maxTokens = integerInRange(body.max_completion_tokens, 'max_completion_tokens', 1, limit)

  let temperature: number | undefined
  const t = body.temperature
  if (t !== undefined && t !== null) {
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0 || t > MAX_TEMPERATURE) throw invalid('temperature', `temperature must be a number between 0 and ${MAX_TEMPERATURE}`)
    temperature = t
  }

  let seed: number | undefined
  const s = body.seed
  if (s !== undefined && s !== null) {
    if (typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0) throw invalid('seed', 'seed must be a non-negative integer')
    seed = s
  }

  const n = body.n
  if (n !== undefined && n !== null && n !== 1) throw invalid('n', 'n must be 1 (one choice per request)')

  const stream = optionalBoolean(body, 'stream') ?? false
  let includeUsage = false
  const so = body.stream_options
  if (so !== undefined && so !== null) {
    if (typeof so !== 'object' || Array.isArray(so)) throw invalid('stream_options', 'stream_options must be an object')
    const iu = (so as Body).include_usage
    if (iu !== undefined && iu !== null && typeof iu !== 'boolean') throw invalid('stream_options.include_usage', 'stream_options.include_usage must be a boolean')
    includeUsage = iu === true
  }

  let cache: PromptCacheMode = 'exact'
  const c = body.cache
  if (c !== undefined && c !== null) {
    if (typeof c !== 'string' || !(PROMPT_CACHE_MODES as readonly string[]).includes(c)) throw invalid('cache', `cache must be one of ${PROMPT_CACHE_MODES.map(m => JSON.stringify(m)).join(', ')}`)
    cache = c as PromptCacheMode
  }

  const out: Omit<SamplingRequest, 'model'> = { max_tokens: maxTokens, stream, include_usage: includeUsage, cache }
  const th = body.cache_threshold
  if (th !== undefined && th !== null) {
    if (typeof th !== 'number' || !Number.isFinite(th) || th < 0 || th > 1) throw invalid('cache_threshold', 'cache_threshold must be a number from 0 to 1 (a cosine similarity)')
    if (cache !== 'semantic') throw invalid('cache_threshold', 'cache_threshold applies only with cache: "semantic"')
    out.cache_threshold = th
  }
  if (temperature !== undefined) out.temperature = temperature
  if (seed !== undefined) out.seed = seed
  const stop = parseStop(body.stop)
  if (stop !== undefined) out.stop = stop
  const lease = body.allocation_id
  if (lease !== undefined && lease !== null) {
    if (typeof lease !== 'string' || !/^uhCkk[A-Za-z0-9_-]{48}$/.test(lease)) throw invalid('allocation_id', 'allocation_id must be an allocation id (uhCkk…)')
    out.allocation_id = lease
  }
  return out
}

/** `POST /v1/chat/completions` */
export function parseChatCompletionRequest (value: unknown, options: ParseOptions): ChatCompletionRequest {
  const body = asBody(value)
  const model = requiredString(body, 'model', { nonEmpty: true })
  const messages = parseMessages(body.messages)
  return { model, messages, ...parseSampling(body, model, options) }
}

/** `POST /v1/completions` */
export function parseCompletionRequest (value: unknown, options: ParseOptions): CompletionRequest {
  const body = asBody(value)
  const model = requiredString(body, 'model', { nonEmpty: true })
  const prompt = requiredString(body, 'prompt', { nonEmpty: true })
  return { model, prompt, ...parseSampling(body, model, options) }
}

export interface EmbeddingRequest {
  model: string
  input: string[]
  encoding_format: 'float' | 'base64'
}

/** `POST /v1/embeddings` */
export function parseEmbeddingRequest (value: unknown): EmbeddingRequest {
  const body = asBody(value)
  const model = requiredString(body, 'model', { nonEmpty: true })
  const raw = body.input
  if (raw === undefined || raw === null) throw invalid('input', 'input is required')
  const input = typeof raw === 'string' ? [raw] : raw
  const ok = Array.isArray(input) && input.length > 0 && input.length <= MAX_EMBEDDING_INPUTS &&
    input.every((s: unknown) => typeof s === 'string' && s.length > 0)
  if (!ok) throw invalid('input', `input must be a non-empty string or an array of 1 to ${MAX_EMBEDDING_INPUTS} non-empty strings`)
  const ef = body.encoding_format
  if (ef !== undefined && ef !== null && ef !== 'float' && ef !== 'base64') throw invalid('encoding_format', 'encoding_format must be "float" or "base64"')
  return { model, input: input as string[], encoding_format: ef === 'base64' ? 'base64' : 'float' }
}

export type { MoeQueryRequest, MoeQueryResult, MoeTaskType, SingleQueryRequest } from '../inference/types.ts'

// `POST /v1/moe/query` and `POST /v1/inference/single` are parsed with `inference/schemas.ts`

/** The engine options of a validated request. */
export function generateOptions (req: SamplingRequest): GenerateOptions {
  const o: GenerateOptions = { max_tokens: req.max_tokens }
  if (req.temperature !== undefined) o.temperature = req.temperature
  if (req.seed !== undefined) o.seed = req.seed
  if (req.stop !== undefined) o.stop = req.stop
  return o
}

// ---------------------------------------------------------------------------------------------
// response shapes

export function newId (prefix: 'chatcmpl' | 'cmpl'): string {
  return `${prefix}-${randomBytes(12).toString('hex')}`
}

export function nowSeconds (): number {
  return Math.floor(Date.now() / 1000)
}

export type FinishReason = GenerateResult['finish_reason']

export interface ModelObject {
  id: string
  object: 'model'
  created: number
  owned_by: string
  loaded: boolean
  context_length: number
  tokens_per_second: number | null
  /** the node's self-generated random-weight demo model */
  demo: boolean
}

export function modelObject (info: ModelInfo, created: number): ModelObject {
  return { id: info.id, object: 'model', created, owned_by: OWNED_BY, loaded: info.loaded, context_length: info.context_length, tokens_per_second: info.tokens_per_second, demo: info.demo }
}

export interface ChatCompletion {
  id: string
  object: 'chat.completion'
  created: number
  model: string
  choices: Array<{ index: 0, message: { role: 'assistant', content: string }, logprobs: null, finish_reason: FinishReason }>
  usage: Usage
}

export function chatCompletion (id: string, created: number, result: GenerateResult): ChatCompletion {
  return {
    id,
    object: 'chat.completion',
    created,
    model: result.model,
    choices: [{ index: 0, message: { role: 'assistant', content: result.text }, logprobs: null, finish_reason: result.finish_reason }],
    usage: result.usage
  }
}

export interface ChatCompletionChunk {
  id: string
  object: 'chat.completion.chunk'
  created: number
  model: string
  choices: Array<{ index: 0, delta: { role?: 'assistant', content?: string }, logprobs: null, finish_reason: FinishReason | null }>
  usage?: Usage
}

export function chatChunk (id: string, created: number, model: string, delta: ChatCompletionChunk['choices'][number]['delta'], finishReason: FinishReason | null): ChatCompletionChunk {
  return { id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }] }
}

export interface TextCompletion {
  id: string
  object: 'text_completion'
  created: number
  model: string
  choices: Array<{ text: string, index: 0, logprobs: null, finish_reason: FinishReason | null }>
  usage?: Usage
}

export function textCompletion (id: string, created: number, model: string, text: string, finishReason: FinishReason | null, usage?: Usage): TextCompletion {
  const out: TextCompletion = { id, object: 'text_completion', created, model, choices: [{ text, index: 0, logprobs: null, finish_reason: finishReason }] }
  if (usage !== undefined) out.usage = usage
  return out
}

/** The extra last chunk of `stream_options.include_usage`: no choices, the request's usage. */
export function usageChunk<T extends ChatCompletionChunk | TextCompletion> (chunk: T, usage: Usage): T {
  return { ...chunk, choices: [], usage }
}

export interface EmbeddingList {
  object: 'list'
  data: Array<{ object: 'embedding', index: number, embedding: number[] | string }>
  model: string
  usage: { prompt_tokens: number, total_tokens: number }
}

export function embeddingList (result: { model: string, embeddings: number[][], usage: Usage }, encoding: 'float' | 'base64'): EmbeddingList {
  return {
    object: 'list',
    data: result.embeddings.map((v, index) => ({
      object: 'embedding' as const,
      index,
      embedding: encoding === 'base64' ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v
    })),
    model: result.model,
    usage: { prompt_tokens: result.usage.prompt_tokens, total_tokens: result.usage.total_tokens }
  }
}

// ---------------------------------------------------------------------------------------------
// node-local model administration (`/v1/models/{id}/load`, `/v1/models/{id}/unload`)

// `POST /v1/models/{id}/load`'s optional body is parsed with `inference/schemas.ts` (`modelLoadBody`)

/** The events of a load stream, each sent as `data: {json}`, then `data: [DONE]`. */
export type ModelLoadEvent = { progress: number } | { model: ModelInfo }

/** `POST /v1/models/{id}/unload` answer. */
export interface ModelUnloaded { id: string, loaded: false }

/** `GET /v1/node/models`: every model of this node, with its size and file (node-local admin). */
export interface ModelInfoList { object: 'list', data: ModelInfo[] }
