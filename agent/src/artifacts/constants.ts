/**
 * The artifact store's defaults: Kubo's import defaults, so the same bytes get the same CID from
 * `HeliaStore`, `KuboStore` and `ipfs add`.
 */

/** `cidVersion` when not given: Kubo's default. */
export const DEFAULT_CID_VERSION = 0
/** Bytes per leaf when no `chunker` is given: Kubo's `size-262144`. */
export const DEFAULT_CHUNK_SIZE = 262_144
/** Largest leaf a chunker may ask for: Kubo's limit (bitswap moves blocks of at most 2 MiB). */
export const MAX_CHUNK_SIZE = 1_048_576
/** A fetch gives up when no block arrived for this long (ms). */
export const DEFAULT_FETCH_TIMEOUT_MS = 30_000
/** Blocks fetched at once while pinning a DAG (bitswap asks every connected peer for each). */
export const PIN_FETCH_CONCURRENCY = 16
/** Blocks a `get` reads ahead of the one it streams (bounds its memory: 16 leaves of 256 KiB are 4 MiB). */
export const GET_READ_AHEAD_BLOCKS = 16
/** Sub-directories of a HeliaStore's `dir`. */
export const BLOCKS_DIR = 'blocks'
export const DATASTORE_DIR = 'datastore'

// the capability (`index.ts`, `routes.ts`): replication and uploads

/** the storage policy's warm tier: `min_providers` 3 (design §10.6), and room for two more */
export const DEFAULT_REPLICATION = { min: 3, max: 5 } as const
/** ms between two replication passes */
export const DEFAULT_REPLICATION_INTERVAL_MS = 30_000
/** the least time a replication decision must hold before it is acted on (the capabilities a node reads are up to 1 s old) */
export const MIN_SETTLE_MS = 2_000
/** a provider that went offline still counts this long after its last heartbeat (ms) */
export const DEFAULT_REPLICATION_GRACE_MS = 60_000
export const DEFAULT_MAX_CONCURRENT_PINS = 2
/** a replication pin that failed waits this long, doubling per failure up to the max (× a jitter of 0.5–1) */
export const PIN_BACKOFF_BASE_MS = 10_000
export const PIN_BACKOFF_MAX_MS = 600_000
/** the share of a node's free disk (its NodeCapability's `storage.local_ssd_gb`) replication may fill */
export const STORAGE_HEADROOM = 0.5
/** largest `POST /v1/artifacts` body by default: 10 GiB */
export const DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 ** 3
/** the pins a restored backup lists, in the store's dir (`flexnode restore` writes it; the service pins them at start) */
export const RESTORE_PINS_FILE = 'restore-pins.json'
