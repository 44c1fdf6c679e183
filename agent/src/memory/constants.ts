/**
 * The memory capability's defaults (design §10.7, `memory_policy`), and the limits of its inputs.
 */

/** Shards of a collection unless it says otherwise (`memory_policy.vector_store.sharding.shard_count`). */
export const DEFAULT_SHARD_COUNT = 16
/** Copies of each shard (`sharding.replication_factor`). */
export const DEFAULT_REPLICATION_FACTOR = 2
/** ms between two pulls of recent writes from each co-replica (`sync.gossip_interval_ms`). */
export const DEFAULT_GOSSIP_INTERVAL_MS = 1000
/** Seconds between two full digest comparisons of each replica with its co-replicas (`sync.full_sync_interval_seconds`). */
export const DEFAULT_FULL_SYNC_INTERVAL_SECONDS = 300
/** ms between two looks at the ring and at which shards this node should hold. */
export const DEFAULT_RING_CHECK_INTERVAL_MS = 2000
/** A node must be live this long before the ring takes it in: a node flapping in and out moves nothing. */
export const DEFAULT_JOIN_STABLE_MS = 10_000
/** Shortest time between two ring epochs: moves are rate-limited. */
export const DEFAULT_EPOCH_INTERVAL_MS = 10_000
/** A replica the ring no longer places here is dropped this long after its new hosts serve (searches in flight finish). */
export const DEFAULT_RETIRE_GRACE_MS = 10_000
/** Shards this node copies at once when the ring moves them here. */
export const DEFAULT_MAX_CONCURRENT_MOVES = 2
/** Points per page of a replica sync (a shard copy moves in pages of this many). */
export const SYNC_PAGE_POINTS = 2000
/** Largest message of the memory protocol (a page of 2,000 points of 1,024 dimensions is 8 MiB). */
export const MAX_MEMORY_WIRE_BYTES = 32 * 1_048_576
/** How long a node waits for one shard host's answer. */
export const HOST_TIMEOUT_MS = 15_000
/** A search asks the other replica of a shard when its first pick has not answered within this many times its usual latency. */
export const HEDGE_LATENCY_FACTOR = 3
/** …and never sooner than this (ms). */
export const HEDGE_MIN_MS = 30
/** A collection unknown to the DHT this long after its creation (deleted, or never there) loses its replicas here. */
export const ORPHAN_GRACE_MS = 60_000
/** Shard replicas a node offers to host when not told (its weight on the ring), per GB of RAM. */
export const SHARDS_PER_RAM_GB = 4
/** Requests this node has in flight to one shard host; more wait their turn (the mesh serves 4 streams per peer at once). */
export const MAX_OUTBOUND_PER_PEER = 4
