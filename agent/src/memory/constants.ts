/** Defaults of the memory capability (the design's memory policy, `../shared/CONTRACTS.md` §10.7). */

/** `prompt_cache.ttl_seconds`: a cached answer is served for this long after it was stored, never after. */
export const PROMPT_CACHE_TTL_SECONDS = 3600
/** `prompt_cache.max_entries`: answers kept over all models; beyond it the oldest are evicted. */
export const PROMPT_CACHE_MAX_ENTRIES = 100_000
/** `cache_threshold` of a `cache: "semantic"` request that gives none: the cosine similarity a paraphrase needs. */
export const PROMPT_CACHE_DEFAULT_THRESHOLD = 0.95
/** Nearest cached prompts a semantic lookup considers (the best fresh one at or above the threshold wins). */
export const PROMPT_CACHE_SEMANTIC_CANDIDATES = 4
/** The node-local vector collections of the semantic cache: `prompt-cache-<16 hex of sha256(model id)>`. */
export const PROMPT_CACHE_COLLECTION_PREFIX = 'prompt-cache-'
/** Most ids one delete of evicted entries sends to the vector memory (its batch limit). */
export const PROMPT_CACHE_DELETE_BATCH = 1000
/** At most this often expired entries are swept while the node is idle (they are never served in any case). */
export const PROMPT_CACHE_SWEEP_INTERVAL_MS = 60_000
