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
