/** Mesh defaults: protocol ids, request/response limits, per-peer fairness, redial backoff, gossip. */

/** Every protocol id and gossip topic starts with `/flexstack/<network>/`. */
export const MESH_PROTOCOL_PREFIX = '/flexstack'
/** Version suffix of request/response protocols: `/flexstack/<network>/<name>/1`. */
export const MESH_PROTOCOL_VERSION = '1'
/** Sentinel protocol every node of a network serves; a peer whose identify lacks it is hung up on. */
export const MESH_HELLO_PROTOCOL_NAME = 'hello'

export const MESH_DEFAULT_LISTEN: readonly string[] = ['/ip4/0.0.0.0/tcp/0']

/** Largest request a handler accepts, bytes. */
export const MESH_MAX_REQUEST_BYTES = 1 << 20
/** Largest response a caller accepts, bytes. */
export const MESH_MAX_RESPONSE_BYTES = 4 << 20
/** Whole-exchange deadline on both sides of a request. */
export const MESH_REQUEST_TIMEOUT_MS = 10_000
/**
 * Reading a request (`handle` and `handleStream`): once a peer's stream holds a slot, its whole
 * request frame must arrive within this, whatever the protocol's longer timeouts.
 */
export const MESH_REQUEST_READ_TIMEOUT_MS = 10_000
/** Concurrent inbound streams of one protocol per connection (libp2p resets the excess). */
export const MESH_MAX_INBOUND_STREAMS = 8
/** Concurrent outbound streams of one protocol per connection. */
export const MESH_MAX_OUTBOUND_STREAMS = 64
/** Longest error message sent back in an error frame, bytes (UTF-8, truncated). */
export const MESH_MAX_ERROR_MESSAGE_BYTES = 1024
/** Largest error frame (`{name, message, fields}`, msgpack), bytes. */
export const MESH_MAX_ERROR_FRAME_BYTES = 4096
/** Most context fields an error frame carries. */
export const MESH_MAX_ERROR_FIELDS = 16
/** After our side is done, how long a stream may wait for the remote to close before it is reset. */
export const MESH_STREAM_CLOSE_GRACE_MS = 5_000

/** Handler executions in flight per remote peer, across all protocols. */
export const MESH_MAX_INFLIGHT_PER_PEER = 4
/** Inbound requests of one peer waiting for a slot; beyond this their streams are reset. */
export const MESH_MAX_QUEUED_PER_PEER = 8

/** Streamed responses (`handleStream`/`requestStream`): largest chunk, bytes. */
export const MESH_MAX_CHUNK_BYTES = 64 << 10
/** Streamed responses: most chunks in one response. */
export const MESH_MAX_STREAM_CHUNKS = 100_000
/**
 * Streamed responses: chunk bytes a provider may have sent but not yet handed to the transport.
 * A send beyond it while earlier ones still wait (a handler that does not await its sends, and a
 * reader that does not keep up) fails the stream with `MeshBackpressureError`.
 */
export const MESH_MAX_SEND_BUFFER_BYTES = 256 << 10
/**
 * Largest yamux receive window of one stream (yamux's default is 16 MiB): what a reader that
 * pauses (backpressure) may have in flight towards it, kept below libp2p's 4 MiB read buffer.
 */
export const MESH_MAX_STREAM_WINDOW_BYTES = 2 << 20
/** Streamed responses: whole-exchange deadline on both sides. */
export const MESH_STREAM_TIMEOUT_MS = 10 * 60_000
/** Streamed responses: longest silence before the first chunk or between two frames. */
export const MESH_STREAM_IDLE_TIMEOUT_MS = 30_000
/** Stream handler executions in flight per remote peer, across all stream protocols (apart from `handle`'s). */
export const MESH_MAX_STREAMS_INFLIGHT_PER_PEER = 4
/** Inbound streams of one peer waiting for a stream slot; beyond this they are reset. */
export const MESH_MAX_STREAMS_QUEUED_PER_PEER = 4

/** A connected peer must pass the network check (identify lists the sentinel) within this. */
export const MESH_IDENTIFY_TIMEOUT_MS = 10_000
/** An inbound stream of a peer not yet checked waits at most this long for the check, then is refused. */
export const MESH_INBOUND_CHECK_TIMEOUT_MS = 10_000
/** While identify already runs on a connection, how often the inbound check looks again. */
export const MESH_INBOUND_CHECK_RETRY_MS = 50
/** One bootstrap dial attempt gives up after this. */
export const MESH_DIAL_TIMEOUT_MS = 10_000
/** First and largest delay between bootstrap redials (doubling, ±20 % jitter). */
export const MESH_REDIAL_MIN_MS = 500
export const MESH_REDIAL_MAX_MS = 30_000

/** Inbound connections per second from one host before libp2p refuses more (libp2p's default is 5). */
export const MESH_INBOUND_CONNECTION_THRESHOLD = 50
/** With mDNS on, stop auto-dialling discovered peers beyond this many connected peers. */
export const MESH_MDNS_MAX_AUTODIAL_PEERS = 32

/**
 * Gossipsub heartbeat (mesh upkeep and IHAVE gossip), gossipsub's own default. Publishing floods
 * every subscribed peer, so delivery does not wait for it; a 250 ms heartbeat cost a 20-node
 * in-process start about a sixth of its CPU time in IHAVE/IWANT traffic (measured: 40 s → 33 s).
 */
export const MESH_GOSSIP_HEARTBEAT_MS = 1000
