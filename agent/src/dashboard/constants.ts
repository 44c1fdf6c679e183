/**
 * Defaults of the dashboard (`dashboard/index.ts`, `dashboard/routes.ts`).
 */

/** One snapshot serves every reader (page load, each event stream) for this long, ms. */
export const DEFAULT_SNAPSHOT_MAX_AGE_MS = 1000

/** An event stream checks for a changed snapshot this often, ms. */
export const DEFAULT_EVENTS_INTERVAL_MS = 1000

/** An unchanged snapshot is sent again after this long, so the page knows the stream is alive, ms. */
export const DEFAULT_EVENTS_KEEPALIVE_MS = 15_000

/** Recent MOE results kept for the page. */
export const DEFAULT_MOE_HISTORY = 20

/** Live allocations listed at most (the newest first). */
export const MAX_ALLOCATIONS = 200

/** Shards listed per node at most. */
export const MAX_SHARDS = 256
