/** The artifacts capability's defaults (`index.ts` documents each where it is an option). */

/** the storage policy's warm tier: `min_providers` 3 (design §10.6), and room for two more */
export const DEFAULT_REPLICATION = { min: 3, max: 5 } as const
export const DEFAULT_REPLICATION_INTERVAL_MS = 30_000
export const DEFAULT_REPLICATION_GRACE_MS = 60_000
export const DEFAULT_FETCH_TIMEOUT_MS = 30_000
export const DEFAULT_MAX_CONCURRENT_PINS = 2
/** a replication pin that failed waits this long, doubling per failure up to the max (× a jitter of 0.5–1) */
export const PIN_BACKOFF_BASE_MS = 10_000
export const PIN_BACKOFF_MAX_MS = 600_000
/** the share of a node's free disk (its NodeCapability's `storage.local_ssd_gb`) replication may fill */
export const STORAGE_HEADROOM = 0.5
/** largest `POST /v1/artifacts` body by default: 10 GiB */
export const DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 ** 3
