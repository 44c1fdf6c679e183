/** Inference defaults. */
import { availableParallelism } from 'node:os'

/** Threads per model: llama.cpp fights the event loop when it takes every core. */
export const DEFAULT_THREADS = Math.max(1, Math.floor(availableParallelism() / 2))
/** Context window per model (capped by the model's training context). */
export const DEFAULT_CONTEXT_SIZE = 2048
/** Concurrent requests one loaded model serves (context sequences). */
export const DEFAULT_SEQUENCES = 2
/** Requests that may wait for a sequence per model; beyond that: BusyError (503). Embeddings have a queue of the same size. */
export const DEFAULT_MAX_QUEUE = 16
/** Embedding requests one loaded model serves at once (its one embedding context). */
export const EMBEDDING_SLOTS = 1
export const DEFAULT_MAX_TOKENS = 256
export const DEFAULT_TEMPERATURE = 0.8
export const DEFAULT_DEADLINE_MS = 120_000
/** Models preloaded at start may use at most this share of free memory. */
export const PRELOAD_MEMORY_SHARE = 0.5
/** Weight of the newest sample in the tokens/s moving average. */
export const TPS_EMA_ALPHA = 0.3
/** On unload, time a model's process gets to free the model and exit before it is killed. */
export const MODEL_PROCESS_EXIT_GRACE_MS = 5_000
/** Requests per minute one peer may start on a provider when no policy sets a rate. */
export const DEFAULT_PER_PEER_PER_MINUTE = 120
/** Peers whose request windows a provider holds at most (a flood of peer ids cannot grow it further). */
export const MAX_TRACKED_PEERS = 10_000
/** How long a provider reuses the mesh-wide access policy it read from policy_store. */
export const SHARED_POLICY_TTL_MS = 5000
/**
 * A provider sends a keep-alive chunk after this much silence while it works on a request
 * (queued, evaluating the prompt, between slow tokens), so requesters can tell busy from frozen.
 */
export const KEEPALIVE_INTERVAL_MS = 1000
/**
 * A requester's progress deadline: no frame from the provider (token or keep-alive) for this long
 * means it is frozen, dead or cut off, and the request moves to the next holder of the model.
 */
export const PROGRESS_TIMEOUT_MS = 5000
/** MOE `task_type` values (`inference.moe_query` in CONTRACTS.md). */
export const MOE_TASK_TYPES = ['code_generation', 'reasoning', 'general', 'review'] as const
