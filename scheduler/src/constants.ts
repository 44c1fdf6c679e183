/** Scheduler defaults and tuning constants: every magic number of the pure algorithms lives here. */

/** A fan-out wider than this is refused by policy validation (a typo, not a plan). */
export const MAX_PARALLEL_LIMIT = 64

/** Vote weight of a model the policy does not name. */
export const DEFAULT_MODEL_WEIGHT = 1.0

/** Score multiplier when a model's specialization is the task's first preference. */
export const SPECIALIZATION_BONUS = 1.5
/** Score multiplier when it is an accepted second preference (a `code` model for `review`). */
export const SECONDARY_SPECIALIZATION_BONUS = 1.25

/** Load factor = 1 − LOAD_PENALTY × max(cpu%, gpu%)/100: a saturated node keeps half its score. */
export const LOAD_PENALTY = 0.5
/** Each queued request divides the load factor by (1 + QUEUE_PENALTY × queue_depth). */
export const QUEUE_PENALTY = 0.5
/** A `busy` node's score is multiplied by this. */
export const BUSY_FACTOR = 0.5
/** A model that is on disk but not loaded pays its load time: its score is multiplied by this. */
export const UNLOADED_FACTOR = 0.6

/** Locality factors of the MOE score. */
export const SELF_LOCALITY_FACTOR = 1.1
export const SAME_REGION_LOCALITY_FACTOR = 1.0
export const OTHER_REGION_LOCALITY_FACTOR = 0.8

/**
 * Single-model routing compares load in buckets of this many percent, so that noise in the
 * load figure (45 % vs 47 %) does not override a real difference in measured tokens/s.
 */
export const LOAD_BUCKET_PERCENT = 10
/** One queued request weighs as much as this many load buckets (i.e. a fully loaded node). */
export const QUEUE_WEIGHT_IN_BUCKETS = 100 / LOAD_BUCKET_PERCENT

/** Answers at least this similar (0..1) cluster together in the reducer. */
export const DEFAULT_SIMILARITY_THRESHOLD = 0.85

/** A compute policy's `max_queue_depth` above this is refused (a typo, not a queue). */
export const MAX_QUEUE_DEPTH_LIMIT = 1_000_000

/**
 * Placement compares fit (the share of a node's capacity in use once the request lands) in
 * buckets of this many percent, so a hair's difference in fit does not override locality or load
 * further down the key.
 */
export const FIT_BUCKET_PERCENT = 5
/** Placement compares round-trip times in buckets of this many ms (`nearest`). */
export const RTT_BUCKET_MS = 5
/** Requirements above these are refused as absurd, not filtered as unplaceable. */
export const MAX_REQUIREMENT = { cpu_cores: 4096, memory_gb: 1 << 20, gpu_count: 64, gpu_vram_gb: 4096, storage_gb: 1 << 30, vector_dimensions: 65_536, bandwidth_mbps: 1 << 20, vectors: 1e12 } as const

/**
 * Virtual nodes per ring member of average weight (`HashRing`): 64 keep each member's share of
 * the ring within about ±12 % of its weight's share while a lookup stays a binary search over a
 * few thousand points.
 */
export const DEFAULT_VNODES = 64
/** A `vnodes` option above this is refused (a typo, not a ring). */
export const MAX_VNODES = 4096
