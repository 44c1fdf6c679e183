/**
 * The audit capability's defaults and the limits of its inputs.
 */

/** `prev` of a node's first record. */
export const GENESIS_PREV = '0'.repeat(64)
/** The version of the canonical encoding a record's hash is taken over (the `v` key). */
export const RECORD_ENCODING_VERSION = 1
/** Largest `detail` of one record, in bytes of its canonical JSON. */
export const MAX_DETAIL_BYTES = 64 * 1024
/** Deepest nesting of a `detail` (objects and arrays). */
export const MAX_DETAIL_DEPTH = 32
/** Longest `actor`, `subject` or `trace_id`. */
export const MAX_FIELD_LENGTH = 1024
/** What a kind looks like: lowercase, starts with a letter, at most 64 characters. */
export const KIND_PATTERN = /^[a-z][a-z0-9_.-]{0,63}$/
/** Records `list` returns when not told. */
export const DEFAULT_LIST_LIMIT = 1000
/** Most records one `list` returns. */
export const MAX_LIST_LIMIT = 100_000
/** Records read from the outbox per page while verifying it. */
export const VERIFY_PAGE = 5000
/** The name under which the Postgres shipper keeps its high-water mark in `audit_shipped`. */
export const POSTGRES_SINK = 'postgres'

// the shipper

/** Records per Postgres transaction. */
export const DEFAULT_BATCH_SIZE = 1000
/** The bound on `batchSize` (a bigger one is refused). */
export const MAX_BATCH_SIZE = 10_000
/** ms between two looks at the outbox when it was drained. */
export const DEFAULT_SHIP_INTERVAL_MS = 500
/** The first retry after a failure waits this long (ms), doubling up to `DEFAULT_BACKOFF_MAX_MS`. */
export const DEFAULT_BACKOFF_INITIAL_MS = 250
export const DEFAULT_BACKOFF_MAX_MS = 30_000
export const DEFAULT_BACKOFF_FACTOR = 2
/** Each wait is cut by up to this fraction at random (jitter), so nodes do not retry in step. */
export const DEFAULT_BACKOFF_JITTER = 0.5
/** A connection to Postgres that takes longer than this fails (ms). */
export const PG_CONNECT_TIMEOUT_MS = 5000
/** A batch's statements that take longer than this fail (ms). */
export const PG_QUERY_TIMEOUT_MS = 30_000
/** `stop()` waits this long for a batch in flight before it drops the connection (ms). */
export const STOP_GRACE_MS = 5000

// kinds derived from the entries a zome call writes: `<dna>/<entry type>` → kind

/** Creates (and updates) of these entry types make the record's kind. */
export const KIND_OF_ENTRY: Readonly<Record<string, string>> = {
  'resource_mesh/Allocation': 'allocation',
  'resource_mesh/Release': 'release',
  'artifact_index/ArtifactRecord': 'artifact',
  'artifact_index/ProviderRecord': 'pin'
}
/** Deletes of these entry types make the record's kind. */
export const KIND_OF_DELETE: Readonly<Record<string, string>> = {
  'artifact_index/ProviderRecord': 'unpin'
}
/** Any write to these DNAs is of this kind (unless an entry type above says otherwise). */
export const KIND_OF_DNA: Readonly<Record<string, string>> = {
  policy_store: 'policy'
}
/** Actions a zome-call record lists in its detail (the count is always there). */
export const MAX_LISTED_ACTIONS = 16
