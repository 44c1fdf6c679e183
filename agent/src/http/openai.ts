/**
 * The OpenAI-compatible wire format: the response and stream-chunk shapes, the HTTP-level errors,
 * and the mapping of any error to `{error: {message, type, param, code}}`. The request bodies are
 * zod schemas (`schemas.ts`), each failure an `InvalidRequestError` naming its `param`.
 *
 * ```ts
 * const req = parseChatCompletionRequest(await ctx.readJson(), { maxTokensLimit: () => 2048 }) // schemas.ts
 * const result = await engine.chat(req.model, req.messages, generateOptions(req))
 * send(200, chatCompletion(newId('chatcmpl'), nowSeconds(), result))
 * ```
 */
import { randomBytes } from 'node:crypto'
import { FlexnodeError } from '../errors.ts'
import {
  InferenceError,
  type GenerateResult, type ModelInfo, type Usage
} from '../inference/types.ts'
import { OWNED_BY } from './constants.ts'

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
// the mesh queries' types (their bodies are parsed with `inference/schemas.ts`, the OpenAI ones with `schemas.ts`)

export type { MoeQueryRequest, MoeQueryResult, MoeTaskType, SingleQueryRequest } from '../inference/types.ts'

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
