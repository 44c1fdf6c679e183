/** Conductor defaults. */

/** Largest WebSocket message accepted, in bytes. */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
/** An app socket must authenticate within this many ms, as the real conductor requires. */
export const AUTHENTICATE_TIMEOUT_MS = 10_000
/** Server pings every client this often. */
export const PING_INTERVAL_MS = 5_000
/** Default lifetime of an app authentication token, in seconds. */
export const DEFAULT_TOKEN_EXPIRY_SECONDS = 30
/** A zome call's nonce may expire at most this far in the future. */
export const NONCE_MAX_FUTURE_MS = 50 * 60 * 1000
/**
 * A nonce accepted by a call that writes nothing is written to disk with the next write, or at
 * the latest this long after (and when the conductor stops); one that commits is written with its
 * records. Only a crash within this window could let a read call be replayed after a restart.
 */
export const NONCE_WRITE_DELAY_MS = 100
/** A zome function that has not returned after this long fails with a ribosome error. */
export const DEFAULT_ZOME_CALL_TIMEOUT_MS = 30_000
/** Requests one socket may have in flight at once; more are answered with an error. */
export const MAX_IN_FLIGHT_PER_SOCKET = 256
/** SQLite checkpoints its write-ahead log into the database file after this many pages (4 KiB each). */
export const WAL_CHECKPOINT_PAGES = 4000
/** The database file in the data dir. */
export const DB_FILE = 'conductor.sqlite3'
/** Peers one `block_peers` / `unblock_peers` request may name. */
export const MAX_PEERS_PER_REQUEST = 1024
/** Peers the Admin API may hold blocked at once (warranted agents are not counted). */
export const MAX_OPERATOR_BLOCKED_PEERS = 65_536
