/**
 * The mesh: one libp2p node per agent, keyed by the agent's ed25519 key (PeerId and AgentPubKey
 * are the same key). Every protocol id carries the network: `/flexstack/<network>/<name>/<version>`,
 * and every gossip topic too: `/flexstack/<network>/<topic>`.
 */
import type { NetworkName } from '../constants.ts'
import type { ComponentLogger } from '../logger.ts'
import { FlexnodeError } from '../errors.ts'

export interface MeshInit {
  network: NetworkName
  /** 32-byte ed25519 seed of the node key: the PeerId is this key */
  seed: Uint8Array
  /** multiaddrs to listen on. @default ['/ip4/0.0.0.0/tcp/0'] */
  listen?: string[]
  /** multiaddrs to dial at start and keep dialling while not connected */
  bootstrap?: string[]
  /** discover peers by mDNS (the `local` network's default; never in tests). @default network === 'local' && bootstrap.length === 0 */
  mdns?: boolean
  /**
   * IP addresses exempt from gossipsub's IP-colocation penalty. Tests and benchmarks run many
   * nodes on one loopback address, which that penalty takes for a sybil attack (above ~13 such
   * peers gossip stops reaching anyone); real deployments keep the protection. @default []
   */
  gossipColocationWhitelist?: string[]
}

export interface MeshComponents {
  logger: ComponentLogger
}

export interface ProtocolOptions {
  /** largest request accepted, bytes. @default 1 MiB */
  maxRequestBytes?: number
  /** largest response accepted, bytes. @default 4 MiB */
  maxResponseBytes?: number
  /** a peer must send its whole request (and the handler answer) within this. @default 10 s */
  timeoutMs?: number
  /**
   * a peer must send its whole request within this once its stream holds a per-peer slot, so a
   * half-sent request cannot hold the slot for the protocol's longer timeouts. @default 10 s
   */
  requestTimeoutMs?: number
  /** concurrent inbound streams of this protocol per connection. @default 8 */
  maxInboundStreams?: number
}

export type RequestHandler = (request: Uint8Array, from: string) => Promise<Uint8Array>

/** The provider's side of one streamed response. */
export interface StreamResponder {
  /**
   * Send one chunk. Resolves once the transport accepted it: a reader that does not keep up
   * holds it back (backpressure: await it before the next). Calls are queued in order, up to
   * `MESH_MAX_SEND_BUFFER_BYTES` not yet taken by the transport; a send beyond that fails the
   * stream with `MeshBackpressureError`. Rejects once `signal` has aborted (the requester went
   * away, a timeout passed, the node stopped), after the handler returned, and with
   * `MessageTooLargeError` beyond `maxChunkBytes` / `maxChunks`.
   */
  send: (chunk: Uint8Array) => Promise<void>
  /** aborted when the requester aborts, disconnects, a timeout passes or the node stops */
  signal: AbortSignal
}

/**
 * Serves one streamed request: `responder.send` the chunks, then resolve with the final message,
 * or throw: the requester rejects with a `RemoteError` carrying the thrown error's `name`, message
 * and scalar fields.
 */
export type StreamHandler = (request: Uint8Array, from: string, responder: StreamResponder) => Promise<Uint8Array>

export interface StreamProtocolOptions extends ProtocolOptions {
  /** largest chunk `responder.send` accepts, bytes. @default 64 KiB */
  maxChunkBytes?: number
  /** most chunks per response. @default 100_000 */
  maxChunks?: number
  /** longest wait for the request (a wait for a per-peer slot included), then for each chunk and the final message from the handler. @default 30 s */
  idleTimeoutMs?: number
  // timeoutMs (inherited): the whole exchange. @default 10 min for streams
}

export interface StreamRequestOptions {
  signal?: AbortSignal
  /** the whole exchange. @default 10 min */
  timeoutMs?: number
  /** longest wait for the next frame, the first chunk included. @default 30 s */
  idleTimeoutMs?: number
  /** largest chunk accepted, bytes. @default 64 KiB */
  maxChunkBytes?: number
  /** most chunks accepted. @default 100_000 */
  maxChunks?: number
  /** largest final message accepted, bytes. @default 4 MiB */
  maxResponseBytes?: number
  /**
   * called in order with each chunk; if it throws (or its promise rejects), the stream is reset
   * and `requestStream` rejects with that error. A returned promise holds the next chunk back,
   * and the provider with it (backpressure: the stream is paused until it settles).
   */
  onChunk: (chunk: Uint8Array) => void | Promise<void>
}

/**
 * What a judging subscriber makes of a message: only `accept` is delivered to the other
 * subscribers and relayed to the mesh; `reject` also counts against the peer that relayed it
 * (gossipsub's score), `ignore` does not (stale or rate-limited, not malicious).
 */
export type GossipVerdict = 'accept' | 'ignore' | 'reject'
export type GossipJudge = (data: Uint8Array, from: string) => GossipVerdict

export interface SubscribeOptions {
  /**
   * Judge each message before gossipsub relays it: the judge runs in gossipsub's validation
   * step, and its verdict decides whether the message is delivered and goes on, so what a
   * subscriber drops (a forged record, a flood) is not spread to the rest of the mesh by this
   * node. A subscription may have a judge, a handler (called for accepted messages), or both.
   */
  judge?: GossipJudge
}

export interface MeshNode {
  /** base58btc PeerId string */
  readonly peerId: string
  multiaddrs: () => string[]
  start: () => Promise<void>
  stop: () => Promise<void>
  /** `/flexstack/<network>/<name>/1` */
  protocolId: (name: string) => string
  /** serve a request/response protocol: one length-prefixed request, one final (or error) frame per stream */
  handle: (name: string, handler: RequestHandler, options?: ProtocolOptions) => Promise<void>
  /** stop serving a protocol registered with `handle` or `handleStream` (no-op if not registered); streams under way finish */
  unhandle: (name: string) => Promise<void>
  request: (peerId: string, name: string, request: Uint8Array, options?: { signal?: AbortSignal, timeoutMs?: number, maxResponseBytes?: number }) => Promise<Uint8Array>
  /**
   * serve a streamed protocol: one length-prefixed request, then many chunk frames and one final
   * (or error) frame per stream
   */
  handleStream: (name: string, handler: StreamHandler, options?: StreamProtocolOptions) => Promise<void>
  /**
   * one streamed request: `onChunk` gets each chunk in order; resolves with the final message.
   * Rejects with `RemoteError` (the provider's error, its `name` kept), `MeshProtocolError` (a
   * reset, a dial failure), `MeshTimeoutError`, `MessageTooLargeError`, `AbortError` (our
   * signal), `DisposedError` (stop)
   */
  requestStream: (peerId: string, name: string, request: Uint8Array, options: StreamRequestOptions) => Promise<Uint8Array>
  publish: (topic: string, data: Uint8Array) => Promise<void>
  /**
   * deliver a topic's gossip to `handler` (`from`: the publisher); with `options.judge`, each
   * message is first ruled on, and only what it accepts is delivered and relayed
   */
  subscribe: (topic: string, handler: ((data: Uint8Array, from: string) => void) | undefined, options?: SubscribeOptions) => () => void
  /** connected peers (PeerId strings) that speak this network's protocols */
  peers: () => string[]
  dial: (multiaddr: string, options?: { signal?: AbortSignal }) => Promise<string>
  /** refuse and drop connections with these peers (partitions, warranted agents) */
  block: (peerIds: string[]) => void
  unblock: (peerIds: string[]) => void
  onPeer: (event: 'connect' | 'disconnect', cb: (peerId: string) => void) => () => void
}

export class MeshProtocolError extends FlexnodeError {
  static override readonly name: string = 'MeshProtocolError'
  readonly peerId?: string
  readonly protocol?: string

  constructor (message: string, options?: ErrorOptions & { peerId?: string, protocol?: string }) {
    super(message, options)
    this.peerId = options?.peerId
    this.protocol = options?.protocol
  }
}

export class MeshTimeoutError extends MeshProtocolError {
  static override readonly name = 'MeshTimeoutError'
}

export class MessageTooLargeError extends MeshProtocolError {
  static override readonly name = 'MessageTooLargeError'
}

/**
 * The peer reset the stream before it answered anything: it refused the exchange (too many of
 * ours in flight or queued there, a peer that is stopping or has blocked us) or dropped it.
 * Whether its handler ran is unknown, so only a request the peer recognises when it comes again
 * (a signed request with a nonce) is safe to send again.
 */
export class MeshResetError extends MeshProtocolError {
  static override readonly name = 'MeshResetError'
}

/** A streamed response's provider outran its reader by more than its send buffer. */
export class MeshBackpressureError extends MeshProtocolError {
  static override readonly name = 'MeshBackpressureError'
}

/**
 * The provider's error, as its error frame carried it: `name` is the provider's error name
 * (`BusyError`, `InvalidInputError`…; `MeshProtocolError` for an error that is not a FlexnodeError), also in
 * `remoteName`; `fields` are its scalar context fields.
 */
export class RemoteError extends MeshProtocolError {
  static override readonly name: string = 'RemoteError'
  override name: string
  readonly remoteName: string
  readonly #fields: Readonly<Record<string, string | number | boolean | null>>

  constructor (message: string, options: ErrorOptions & { remoteName: string, fields?: Record<string, string | number | boolean | null>, peerId?: string, protocol?: string }) {
    super(message, options)
    this.name = options.remoteName
    this.remoteName = options.remoteName
    this.#fields = Object.freeze({ ...(options.fields ?? {}) })
  }

  /** the provider's structured fields, as its error frame carried them */
  override get fields (): Readonly<Record<string, string | number | boolean | null>> {
    return this.#fields
  }
}
