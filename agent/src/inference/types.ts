/**
 * The inference plane's interfaces: a node's `InferenceEngine` (its models, served from its own
 * hardware) and the errors every layer above it (HTTP API, mesh protocol, MOE) maps to its wire.
 */
import { FlexnodeError } from '../errors.ts'
import type { MOE_TASK_TYPES } from './constants.ts'

export interface ChatMessage { role: 'system' | 'user' | 'assistant', content: string }

/** Why a model file cannot be served: `name` is the error's (e.g. `InvalidGgufError`), `code` its kind. */
export interface ModelFileError {
  name: string
  /** for `InvalidGgufError` the failed check: `bounds`, `count`, `string`, `magic`, `deadline`, … */
  code: string
  message: string
}

export interface ModelInfo {
  /** the model id: the GGUF file name without `.gguf` */
  id: string
  /** the file's name in its models directory (never an absolute path) */
  file: string
  size_bytes: number
  architecture: string
  context_length: number
  embedding_length: number
  loaded: boolean
  /** measured generation speed of the last requests, null before any */
  tokens_per_second: number | null
  /** requests waiting for a free slot (generations and embeddings) */
  queue_depth: number
  /** requests being served now (generations and embeddings) */
  in_flight: number
  /**
   * the random-weight demo model a node generates for itself on first start (its metadata has
   * `flexnode.demo = true`); routing and MOE prefer any other model
   */
  demo: boolean
  /** set when the file failed the structural check (or cannot be read): it is listed, never loaded */
  error?: ModelFileError
}

export interface GenerateOptions {
  /** @default 256 */
  max_tokens?: number
  /** 0 = greedy. @default 0.8 */
  temperature?: number
  seed?: number
  stop?: string[]
  signal?: AbortSignal
  /** the request fails with DeadlineExceededError after this many ms. @default 120000 */
  deadline_ms?: number
  /** each generated piece of text, as it comes */
  onToken?: (text: string) => void
  /**
   * `max_tokens` is an upper bound: it is lowered to what fits in the model's context after the
   * prompt, instead of failing the request (MOE votes ask every model for the same bound).
   * @default false
   */
  clamp_max_tokens?: boolean
  /**
   * Continue an answer that already begins with this text (another node's partial answer, when
   * it failed mid-stream): a chat continues the assistant's response from it, a completion
   * continues `prompt + continue_from`. Only the new text is streamed and returned; max_tokens
   * counts new tokens.
   */
  continue_from?: string
}

export interface Usage { prompt_tokens: number, completion_tokens: number, total_tokens: number }

export interface GenerateResult {
  model: string
  text: string
  finish_reason: 'stop' | 'length'
  usage: Usage
  /** ms from the request until the first token */
  ttft_ms: number
  duration_ms: number
}

/** A model load's progress: 0 when it starts, 1 once the model serves. */
export interface ModelLoadProgressEvent {
  type: 'flexnode:model:load'
  model: string
  /** 0..1 */
  progress: number
}

export interface LoadOptions {
  signal?: AbortSignal
  onProgress?: (event: ModelLoadProgressEvent) => void
}

export interface InferenceEngine {
  listModels: () => ModelInfo[]
  /** re-scan the models directory */
  refresh: (options?: { signal?: AbortSignal }) => Promise<ModelInfo[]>
  loadModel: (id: string, options?: LoadOptions) => Promise<ModelInfo>
  unloadModel: (id: string, options?: { signal?: AbortSignal }) => Promise<void>
  chat: (model: string, messages: ChatMessage[], options?: GenerateOptions) => Promise<GenerateResult>
  complete: (model: string, prompt: string, options?: GenerateOptions) => Promise<GenerateResult>
  embed: (model: string, input: string[], options?: { signal?: AbortSignal }) => Promise<{ model: string, embeddings: number[][], usage: Usage }>
  /** unload every model; idempotent; every call afterwards throws DisposedError */
  dispose: () => Promise<void>
}

// the mesh-wide queries (`inference.moe_query`, `inference.single_query`), as the router takes them

/** `task_type` of an MOE or single query. */
export type MoeTaskType = typeof MOE_TASK_TYPES[number]

/** `inference.moe_query` inputs (CONTRACTS.md), defaults applied. */
export interface MoeQueryRequest {
  prompt: string
  task_type: MoeTaskType
  policy_override?: string
  require_consensus: boolean
  max_tokens: number
}

/** `inference.moe_query` outputs (CONTRACTS.md). */
export interface MoeQueryResult {
  response: string
  consensus_score: number
  model_votes: Array<{ model: string, response_hash: string, weight: number, latency_ms: number }>
  trace_id: string
}

/**
 * `POST /v1/inference/single` (`inference.single_query`; CONTRACTS.md gives it no input schema, so
 * this is ours): one prompt to one model, the mesh picking the model and node unless `model` is set.
 */
export interface SingleQueryRequest {
  prompt: string
  model?: string
  task_type?: MoeTaskType
  max_tokens?: number
}

/**
 * The base of the inference plane's typed errors. What each means to a protocol (its HTTP status
 * and OpenAI `type`/`code`) is decided at that boundary, by name (`http/openai.ts`).
 */
export class InferenceError extends FlexnodeError {
  static override readonly name: string = 'InferenceError'
  readonly model?: string

  constructor (message: string, options?: ErrorOptions & { model?: string }) {
    super(message, options)
    this.model = options?.model
  }
}

export class ModelNotFoundError extends InferenceError {
  static override readonly name: string = 'ModelNotFoundError'
}

export class ModelNotLoadedError extends InferenceError {
  static override readonly name: string = 'ModelNotLoadedError'
}

export class ModelLoadError extends InferenceError {
  static override readonly name: string = 'ModelLoadError'
}

/** The process serving a model stopped (a native abort, or it was killed); the model is unloaded. */
export class ModelCrashedError extends InferenceError {
  static override readonly name: string = 'ModelCrashedError'
}

export class InsufficientMemoryError extends InferenceError {
  static override readonly name: string = 'InsufficientMemoryError'
}

export class BusyError extends InferenceError {
  static override readonly name: string = 'BusyError'
}

export class PromptTooLongError extends InferenceError {
  static override readonly name: string = 'PromptTooLongError'
}

export class InvalidRequestError extends InferenceError {
  static override readonly name: string = 'InvalidRequestError'
  readonly param?: string

  constructor (message: string, options?: ErrorOptions & { model?: string, param?: string }) {
    super(message, options)
    this.param = options?.param
  }
}

export class DeadlineExceededError extends InferenceError {
  static override readonly name: string = 'DeadlineExceededError'
}

export class RequestAbortedError extends InferenceError {
  static override readonly name: string = 'RequestAbortedError'
}

/** The node serving a request failed and no other holder of the model could take it over: 502. */
export class ProviderFailedError extends InferenceError {
  static override readonly name: string = 'ProviderFailedError'
}

/** Every vote of an MOE fan-out failed on the serving side: 502, with each vote's error. */
export class MoeNoAnswersError extends InferenceError {
  static override readonly name: string = 'MoeNoAnswersError'
  readonly model_votes: Array<{ model: string, node: string, error: string, error_name: string, latency_ms: number }>

  constructor (message: string, options: ErrorOptions & { model_votes: MoeNoAnswersError['model_votes'] }) {
    super(message, options)
    this.model_votes = options.model_votes
  }
}

export class PolicyDeniedError extends InferenceError {
  static override readonly name: string = 'PolicyDeniedError'
}

/**
 * One generation of a node's engine, when it ended (the node's metrics): its model (a loaded
 * one), `chat` or `complete`, whether it produced an answer, and its seconds from the call
 * (queueing included).
 */
export type GenerationObserver = (event: { model: string, op: 'chat' | 'complete', ok: boolean, seconds: number }) => void

/**
 * What the inference plane records in the audit trail (the audit log's `append`, or nothing): one
 * event per request served or asked, with who, which model, tokens, latency and the trace id.
 */
export type InferenceAudit = (event: { kind: 'inference' | 'moe', actor?: string, subject?: string, detail: Record<string, unknown>, trace_id?: string }) => void
