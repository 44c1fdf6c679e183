/**
 * Defaults and limits of the OpenAI-compatible HTTP API.
 */

/** Loopback only unless the operator says otherwise. */
export const DEFAULT_HOST = '127.0.0.1'

/** 0 = the OS picks a free port. */
export const DEFAULT_PORT = 0

/** Largest request body accepted (1 MiB); larger bodies get 413. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024

/** After a 413, at most this many further body bytes are read and discarded before the socket is dropped. */
export const MAX_DRAIN_BYTES = 4 * 1024 * 1024

/** Time a client has to send its request headers. */
export const HEADERS_TIMEOUT_MS = 20_000

/** Time a client has to send its whole request (headers and body); generation time is not counted. */
export const REQUEST_TIMEOUT_MS = 60_000

/** Idle time before a keep-alive connection is closed. */
export const KEEP_ALIVE_TIMEOUT_MS = 5_000

/** On `stop()`, time open responses get to finish after their generations are aborted. */
export const STOP_GRACE_MS = 2_000

/** `max_tokens` when the request gives none (capped by the model's context length). */
export const DEFAULT_MAX_TOKENS = 256

/** Upper bound of `max_tokens` for a model this node does not hold (its holder checks the real limit). */
export const REMOTE_MAX_TOKENS_LIMIT = 1_048_576

export const MAX_TEMPERATURE = 2

/** OpenAI allows up to 4 stop sequences. */
export const MAX_STOP_SEQUENCES = 4

/** Longest stop sequence (characters), as the engine accepts it. */
export const MAX_STOP_LENGTH = 256

/** Inputs per embeddings request. */
export const MAX_EMBEDDING_INPUTS = 256

/** `owned_by` of every model this node lists. */
export const OWNED_BY = 'flexnode'

/** MOE `task_type` values (`inference.moe_query` in CONTRACTS.md), the inference layer's. */
export { MOE_TASK_TYPES } from '../inference/constants.ts'

/** `inference.moe_query` defaults. */
export const MOE_DEFAULT_REQUIRE_CONSENSUS = true
export const MOE_DEFAULT_MAX_TOKENS = 4096

/** Media type every POST body must declare. */
export const JSON_MEDIA_TYPE = 'application/json'

/** Bytes of events an SSE client may leave unread (in the socket and queued) before it is dropped. */
export const DEFAULT_SSE_MAX_BUFFERED_BYTES = 1024 * 1024

/** An SSE client that takes none of what it was sent for this long is dropped and its generation aborted. */
export const DEFAULT_SSE_DRAIN_TIMEOUT_MS = 30_000

export const SSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no'
})

/** Response header of a cacheable generation request: `hit` (answered from the prompt cache) or `miss`. */
export const CACHE_HEADER = 'x-flexnode-cache'

/** Response header of a prompt cache hit: `exact` or `semantic`. */
export const CACHE_MATCH_HEADER = 'x-flexnode-cache-match'
