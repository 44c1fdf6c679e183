/**
 * The mesh on libp2p v3: TCP + noise + yamux + identify + ping + kad-dht + gossipsub (+ mDNS on
 * the `local` network). The PeerId is the agent's ed25519 key, so PeerId and AgentPubKey convert
 * into each other without a lookup.
 *
 * ```ts
 * const mesh = await createMeshNode({ network: 'testnet', seed, listen: ['/ip4/127.0.0.1/tcp/0'] }, { logger })
 * await mesh.handle('echo', async (req) => req)
 * await mesh.start()
 * const peer = await mesh.dial(otherAddr)
 * const res = await mesh.request(peer, 'echo', new Uint8Array([1, 2, 3]))
 * await mesh.stop()
 * ```
 *
 * Request/response wire format, one exchange per stream: the caller sends `varint(n) ‖ n request
 * bytes` and closes its writable end; the handler answers `varint(n) ‖ status ‖ n-1 bytes` where
 * status 0 = ok (the bytes are the response) and 1 = error (the bytes are a UTF-8 message), then
 * closes. Every failure path resets the stream.
 *
 * Streamed responses (`handleStream` / `requestStream`), one exchange per stream: the requester
 * sends `varint(n) ‖ n request bytes` and closes its writable end; the provider answers with a
 * sequence of frames `varint(n) ‖ type ‖ n-1 bytes`: any number of type 2 = chunk, then exactly one
 * of type 0 = final ok (the bytes are the final message) or type 1 = error (a UTF-8 message), then
 * closes. Either side aborts by resetting the stream: the requester on abort, timeout, a refused
 * chunk or a throwing `onChunk`; the provider on stop or when it cannot even send an error frame.
 * A provider-side timeout is reported with an error frame when the stream can still take it.
 *
 * Network isolation: protocol ids are `/flexstack/<network>/<name>/1`, gossip topics
 * `/flexstack/<network>/<topic>`, and every node serves `/flexstack/<network>/hello/1`; a peer whose
 * identify does not list that sentinel is hung up on and never reported. Every inbound request,
 * stream and gossip message of a peer that has not passed that check is refused (an inbound
 * stream on a fresh connection waits briefly for the check). Reading a request has its own short
 * deadline (`requestTimeoutMs`), whatever the protocol's longer timeouts.
 */
import { setMaxListeners } from 'node:events'
import '../polyfill.ts'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPairFromSeed, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { gossipsub, TopicValidatorResult } from '@libp2p/gossipsub'
import type { GossipSub, GossipsubMessage, Message as GossipMessage } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import type { Identify } from '@libp2p/identify'
import type { Connection, IdentifyResult, Libp2p, PeerId, PeerInfo, PrivateKey, Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import type { KadDHT } from '@libp2p/kad-dht'
import { mdns } from '@libp2p/mdns'
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import type { Ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { Uint8ArrayList } from 'uint8arraylist'
import { NETWORKS } from '../constants.ts'
import type { NetworkName } from '../constants.ts'
import { AbortError, DisposedError, InvalidInputError, ListenError, errorMessage } from '../errors.ts'
import { assertHash, core32, hashFrom32 } from '../holo/hash.ts'
import type { ComponentLogger } from '../logger.ts'
import {
  MESH_DEFAULT_LISTEN,
  MESH_DHT_PROTOCOL_NAME,
  MESH_DHT_PROTOCOL_VERSION,
  MESH_DIAL_TIMEOUT_MS,
  MESH_GOSSIP_HEARTBEAT_MS,
  MESH_HELLO_PROTOCOL_NAME,
  MESH_IDENTIFY_TIMEOUT_MS,
  MESH_INBOUND_CHECK_RETRY_MS,
  MESH_INBOUND_CHECK_TIMEOUT_MS,
  MESH_INBOUND_CONNECTION_THRESHOLD,
  MESH_MAX_ERROR_MESSAGE_BYTES,
  MESH_MAX_INBOUND_STREAMS,
  MESH_MAX_INFLIGHT_PER_PEER,
  MESH_MAX_OUTBOUND_STREAMS,
  MESH_MAX_QUEUED_PER_PEER,
  MESH_MAX_REQUEST_BYTES,
  MESH_MAX_RESPONSE_BYTES,
  MESH_MAX_CHUNK_BYTES,
  MESH_MAX_STREAM_CHUNKS,
  MESH_MAX_STREAMS_INFLIGHT_PER_PEER,
  MESH_MAX_STREAMS_QUEUED_PER_PEER,
  MESH_MDNS_MAX_AUTODIAL_PEERS,
  MESH_PROTOCOL_PREFIX,
  MESH_PROTOCOL_VERSION,
  MESH_REDIAL_MAX_MS,
  MESH_REDIAL_MIN_MS,
  MESH_REQUEST_READ_TIMEOUT_MS,
  MESH_REQUEST_TIMEOUT_MS,
  MESH_STREAM_CLOSE_GRACE_MS,
  MESH_STREAM_IDLE_TIMEOUT_MS,
  MESH_STREAM_TIMEOUT_MS
} from './constants.ts'
import { MeshProtocolError, MeshTimeoutError, MessageTooLargeError } from './types.ts'
import type {
  MeshComponents,
  MeshInit,
  MeshNode,
  ProtocolOptions,
  RequestHandler,
  StreamHandler,
  StreamProtocolOptions,
  StreamRequestOptions,
  StreamResponder
} from './types.ts'

// a type alias, not an interface: libp2p's ServiceMap needs an index signature
export type MeshServices = {
  identify: Identify
  ping: Ping
  dht: KadDHT
  pubsub: GossipSub
}

/** A `MeshNode` that also exposes its libp2p node (for tests and for components that build on it, e.g. Helia). */
export interface Libp2pMeshNode extends MeshNode {
  readonly libp2p: Libp2p<MeshServices>
  readonly network: NetworkName
}

const STATUS_OK = 0
const STATUS_ERROR = 1
/** Streamed responses: a chunk frame (final and error frames use the statuses above). */
const STATUS_CHUNK = 2
/** 5 varint bytes hold lengths up to 2^35, far above any limit here. */
const MAX_VARINT_BYTES = 5

// ---------------------------------------------------------------------------------------------
// identity

/** The PeerId string of a 32-byte ed25519 seed. */
export async function peerIdFromSeed (seed: Uint8Array): Promise<string> {
  return peerIdFromPrivateKeyOf(await privateKeyFromSeed(seed))
}

/** The PeerId string of an agent (its 39-byte AgentPubKey). */
export function peerIdFromAgentPubKey (agentPubKey39: Uint8Array): string {
  const key = assertHash(agentPubKey39, 'Agent', 'agentPubKey')
  return peerIdFromPublicKey(publicKeyFromRaw(core32(key))).toString()
}

/** The 39-byte AgentPubKey of an ed25519 PeerId string. */
export function agentPubKeyFromPeerId (peerId: string): Uint8Array {
  const id = parsePeerId(peerId)
  if (id.type !== 'Ed25519') throw new InvalidInputError(`peerId ${peerId} is not an ed25519 key`, { field: 'peerId' })
  return hashFrom32(id.publicKey.raw, 'Agent')
}

async function privateKeyFromSeed (seed: Uint8Array): Promise<PrivateKey> {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) {
    throw new InvalidInputError('seed must be the 32-byte ed25519 seed of the node key', { field: 'seed' })
  }
  return await generateKeyPairFromSeed('Ed25519', seed)
}

function peerIdFromPrivateKeyOf (key: PrivateKey): string {
  return peerIdFromPublicKey(key.publicKey).toString()
}

function parsePeerId (peerId: string): PeerId {
  if (typeof peerId !== 'string' || peerId === '') throw new InvalidInputError('peerId must be a non-empty string', { field: 'peerId' })
  try {
    return peerIdFromString(peerId)
  } catch (err) {
    throw new InvalidInputError(`not a PeerId: ${JSON.stringify(peerId.slice(0, 80))} (${errorMessage(err)})`, { field: 'peerId' })
  }
}

function parseMultiaddr (addr: string, field: string): Multiaddr {
  if (typeof addr !== 'string' || addr === '') throw new InvalidInputError(`${field} must be a non-empty multiaddr string`, { field })
  try {
    return multiaddr(addr)
  } catch (err) {
    throw new InvalidInputError(`${field}: not a multiaddr: ${JSON.stringify(addr.slice(0, 200))} (${errorMessage(err)})`, { field })
  }
}

// ---------------------------------------------------------------------------------------------
// framing

function encodeVarint (value: number): Uint8Array {
  const out: number[] = []
  let v = value
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80)
    v = Math.floor(v / 0x80)
  }
  out.push(v)
  return Uint8Array.from(out)
}

/** A varint at the start of `list`: undefined if incomplete, 'invalid' if longer than allowed. */
function decodeVarint (list: Uint8ArrayList): { value: number, bytes: number } | undefined | 'invalid' {
  let value = 0
  for (let i = 0; i < MAX_VARINT_BYTES; i++) {
    if (i >= list.byteLength) return undefined
    const b = list.get(i)
    value += (b & 0x7f) * 2 ** (7 * i)
    if ((b & 0x80) === 0) return { value, bytes: i + 1 }
  }
  return 'invalid'
}

/**
 * Reads length-prefixed frames from a stream through its 'message' events. Refuses a frame whose
 * declared length exceeds the limit before reading its body.
 */
class FrameReader {
  readonly #stream: Stream
  readonly #buf = new Uint8ArrayList()
  #ended: boolean
  #error: Error | undefined
  #wake: (() => void) | undefined

  constructor (stream: Stream) {
    this.#stream = stream
    this.#ended = stream.readableEnded
    if (stream.status === 'aborted' || stream.status === 'reset') this.#error = new MeshProtocolError(`the stream was ${stream.status}`)
    stream.addEventListener('message', this.#onMessage)
    stream.addEventListener('end', this.#onEnd)
    stream.addEventListener('close', this.#onClose)
  }

  #onMessage = (evt: StreamMessageEvent): void => {
    this.#buf.append(evt.data)
    this.#notify()
  }

  #onEnd = (): void => {
    this.#ended = true
    this.#notify()
  }

  #onClose = (evt: StreamCloseEvent): void => {
    if (evt.error !== undefined) this.#error = evt.error
    // a graceful close may still have buffered bytes to deliver; 'end' follows them
    else if (this.#stream.readBufferLength === 0) this.#ended = true
    this.#notify()
  }

  #notify (): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }

  /**
   * The next frame. `maxLength` may depend on the frame's first byte (its type): then the limit is
   * checked as soon as that byte arrives, before the body is buffered.
   */
  async read (maxLength: number | ((firstByte: number) => number), signal: AbortSignal, tooLarge: (declared: number) => Error): Promise<Uint8Array> {
    for (;;) {
      signal.throwIfAborted()
      const header = decodeVarint(this.#buf)
      if (header === 'invalid') throw new MeshProtocolError('malformed frame length prefix')
      // with a per-type limit, wait for the type byte (an empty frame has none: it is under any limit)
      const limit = header === undefined
        ? undefined
        : typeof maxLength === 'number'
          ? maxLength
          : header.value === 0
            ? 0
            : this.#buf.byteLength > header.bytes ? maxLength(this.#buf.get(header.bytes)) : undefined
      if (header !== undefined && limit !== undefined) {
        if (header.value > limit) throw tooLarge(header.value)
        const end = header.bytes + header.value
        if (this.#buf.byteLength >= end) {
          const frame = this.#buf.slice(header.bytes, end)
          this.#buf.consume(end)
          return frame
        }
      }
      if (this.#error !== undefined) throw this.#error
      if (this.#ended) throw new MeshProtocolError('the stream ended before a whole frame arrived')
      await new Promise<void>(resolve => {
        const onAbort = (): void => { resolve() }
        this.#wake = () => {
          signal.removeEventListener('abort', onAbort)
          resolve()
        }
        signal.addEventListener('abort', onAbort, { once: true })
      })
    }
  }

  dispose (): void {
    this.#stream.removeEventListener('message', this.#onMessage)
    this.#stream.removeEventListener('end', this.#onEnd)
    this.#stream.removeEventListener('close', this.#onClose)
    this.#wake = undefined
  }
}

async function sendFrame (stream: Stream, parts: Uint8Array[], signal: AbortSignal): Promise<void> {
  const length = parts.reduce((n, p) => n + p.byteLength, 0)
  const list = new Uint8ArrayList(encodeVarint(length), ...parts)
  if (!stream.send(list)) await stream.onDrain({ signal })
}

/**
 * Our side is done with `stream`: if the remote has not closed its end too, reset the stream
 * after a grace period so nothing stays half-open.
 */
function settleStream (stream: Stream): void {
  if (stream.status !== 'open' && stream.status !== 'closing') return
  if (stream.writeStatus !== 'closed') {
    stream.abort(new MeshProtocolError('stream abandoned'))
    return
  }
  const timer = setTimeout(() => {
    stream.abort(new MeshTimeoutError('the remote did not close the stream'))
  }, MESH_STREAM_CLOSE_GRACE_MS)
  timer.unref?.()
  stream.addEventListener('close', () => { clearTimeout(timer) }, { once: true })
}

function isAborted (signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}

function asError (err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}

function truncateUtf8 (text: string, maxBytes: number): Uint8Array {
  const bytes = new TextEncoder().encode(text)
  if (bytes.length <= maxBytes) return bytes
  let end = maxBytes
  // do not cut a multi-byte character in half
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--
  return bytes.subarray(0, end)
}

/** Resolves with the outcome of `promise`, or rejects with the signal's reason when it aborts first. */
async function raceSignal<T> (promise: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted()
  return await new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      value => { signal.removeEventListener('abort', onAbort); resolve(value) },
      (err: unknown) => { signal.removeEventListener('abort', onAbort); reject(err) }
    )
  })
}

/** A sleep that ends early on abort or on `wake` (resolves true when woken). */
async function sleep (ms: number, signal: AbortSignal, wake?: EventTarget): Promise<boolean> {
  if (signal.aborted) return false
  return await new Promise<boolean>(resolve => {
    const done = (woken: boolean): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      wake?.removeEventListener('wake', onWake)
      resolve(woken)
    }
    const onAbort = (): void => { done(false) }
    const onWake = (): void => { done(true) }
    const timer = setTimeout(() => { done(false) }, ms)
    timer.unref?.()
    signal.addEventListener('abort', onAbort, { once: true })
    wake?.addEventListener('wake', onWake, { once: true })
  })
}

function jitter (ms: number): number {
  return Math.round(ms * (0.8 + Math.random() * 0.4))
}

// ---------------------------------------------------------------------------------------------
// per-peer fairness

interface PeerSlotState { active: number, queue: Array<(granted: boolean) => void> }

/** At most `max` handler executions in flight per peer; up to `maxQueued` more wait; the rest are refused. */
class PeerSlots {
  readonly #peers = new Map<string, PeerSlotState>()
  readonly #max: number
  readonly #maxQueued: number

  constructor (max: number, maxQueued: number) {
    this.#max = max
    this.#maxQueued = maxQueued
  }

  async acquire (peer: string, signal: AbortSignal): Promise<boolean> {
    let state = this.#peers.get(peer)
    if (state === undefined) {
      state = { active: 0, queue: [] }
      this.#peers.set(peer, state)
    }
    if (state.active < this.#max) {
      state.active++
      return true
    }
    if (signal.aborted || state.queue.length >= this.#maxQueued) return false
    const s = state
    return await new Promise<boolean>(resolve => {
      const grant = (granted: boolean): void => {
        signal.removeEventListener('abort', onAbort)
        resolve(granted)
      }
      const onAbort = (): void => {
        const i = s.queue.indexOf(grant)
        if (i >= 0) s.queue.splice(i, 1)
        resolve(false)
      }
      s.queue.push(grant)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  release (peer: string): void {
    const state = this.#peers.get(peer)
    if (state === undefined) return
    const next = state.queue.shift()
    if (next !== undefined) {
      next(true) // the slot passes to the next waiter
      return
    }
    state.active--
    if (state.active <= 0) this.#peers.delete(peer)
  }

  inFlight (peer: string): number {
    return this.#peers.get(peer)?.active ?? 0
  }
}

// ---------------------------------------------------------------------------------------------
// the node

interface RequestLimits { maxRequestBytes: number, timeoutMs: number, requestTimeoutMs: number }
interface StreamLimits extends RequestLimits { idleTimeoutMs: number, maxChunkBytes: number, maxChunks: number }
interface VerifyWaiter { resolve: () => void, reject: (err: Error) => void }
interface Subscriber { handler: (data: Uint8Array, from: string) => void }
interface Resolved {
  network: NetworkName
  listen: string[]
  bootstrap: string[]
  mdns: boolean
}

function resolveInit (init: MeshInit): Resolved {
  if (init === null || typeof init !== 'object') throw new InvalidInputError('mesh init must be an object')
  if (!(NETWORKS as readonly string[]).includes(init.network)) {
    throw new InvalidInputError(`network must be one of ${NETWORKS.join(', ')}, got ${JSON.stringify(init.network)}`, { field: 'network' })
  }
  const listen = init.listen ?? [...MESH_DEFAULT_LISTEN]
  const bootstrap = init.bootstrap ?? []
  if (!Array.isArray(listen)) throw new InvalidInputError('listen must be an array of multiaddr strings', { field: 'listen' })
  if (!Array.isArray(bootstrap)) throw new InvalidInputError('bootstrap must be an array of multiaddr strings', { field: 'bootstrap' })
  listen.forEach(a => parseMultiaddr(a, 'listen'))
  bootstrap.forEach(a => parseMultiaddr(a, 'bootstrap'))
  if (init.mdns !== undefined && typeof init.mdns !== 'boolean') throw new InvalidInputError('mdns must be a boolean', { field: 'mdns' })
  return {
    network: init.network,
    listen: [...listen],
    bootstrap: [...new Set(bootstrap)],
    mdns: init.mdns ?? (init.network === 'local' && bootstrap.length === 0)
  }
}

/** Create (not start) the mesh node of an agent. Call `start()` to listen and dial the bootstrap peers. */
export async function createMeshNode (init: MeshInit, components: MeshComponents): Promise<Libp2pMeshNode> {
  const resolved = resolveInit(init)
  const privateKey = await privateKeyFromSeed(init.seed)
  return await Libp2pMesh.create(resolved, privateKey, components.logger.forComponent('flexnode:mesh'))
}

class Libp2pMesh implements Libp2pMeshNode {
  readonly peerId: string
  readonly network: NetworkName
  #libp2p!: Libp2p<MeshServices>
  readonly #log: ComponentLogger
  readonly #init: Resolved
  readonly #prefix: string
  readonly #hello: string
  readonly #blocked: Set<string>
  readonly #verified = new Set<string>()
  /** peers recently hung up on for not speaking this network (bounded), for precise dial errors */
  readonly #mismatched = new Set<string>()
  readonly #verifyWaiters = new Map<string, Set<VerifyWaiter>>()
  /** the network check run for an inbound stream of a fresh connection, once per connection */
  readonly #inboundChecks = new WeakMap<Connection, Promise<void>>()
  readonly #disconnectWaiters = new Map<string, Set<(wasVerified: boolean) => void>>()
  readonly #listeners = { connect: new Set<(peerId: string) => void>(), disconnect: new Set<(peerId: string) => void>() }
  readonly #subs = new Map<string, Set<Subscriber>>()
  readonly #slots = new PeerSlots(MESH_MAX_INFLIGHT_PER_PEER, MESH_MAX_QUEUED_PER_PEER)
  /** long-lived streamed responses get their own per-peer slots, so they never starve `handle` */
  readonly #streamSlots = new PeerSlots(MESH_MAX_STREAMS_INFLIGHT_PER_PEER, MESH_MAX_STREAMS_QUEUED_PER_PEER)
  /** inbound streamed responses being served: stop aborts them (and so resets their streams) */
  readonly #streamServes = new Set<AbortController>()
  readonly #timers = new Set<NodeJS.Timeout>()
  // every bootstrap loop and stream listens for the node's stop: more than Node's default 10 listeners
  readonly #stopController = ((): AbortController => { const c = new AbortController(); setMaxListeners(0, c.signal); return c })()
  readonly #bootstrapWake = new EventTarget()
  readonly #loops = new Set<Promise<void>>()
  #startPromise: Promise<void> | undefined
  #stopPromise: Promise<void> | undefined
  #running = false

  private constructor (init: Resolved, peerId: string, blocked: Set<string>, log: ComponentLogger) {
    this.#init = init
    this.network = init.network
    this.peerId = peerId
    this.#blocked = blocked
    this.#log = log
    this.#prefix = `${MESH_PROTOCOL_PREFIX}/${init.network}`
    this.#hello = this.protocolId(MESH_HELLO_PROTOCOL_NAME)
  }

  static async create (init: Resolved, privateKey: PrivateKey, log: ComponentLogger): Promise<Libp2pMesh> {
    const blocked = new Set<string>()
    const node = new Libp2pMesh(init, peerIdFromPrivateKeyOf(privateKey), blocked, log)
    const denyPeer = (peerId: PeerId): boolean => blocked.has(peerId.toString())
    node.#libp2p = await createLibp2p({
      start: false,
      privateKey,
      addresses: { listen: init.listen },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionGater: {
        denyDialPeer: denyPeer,
        denyInboundEncryptedConnection: denyPeer,
        denyOutboundEncryptedConnection: denyPeer,
        denyInboundUpgradedConnection: denyPeer,
        denyOutboundUpgradedConnection: denyPeer
      },
      connectionManager: { inboundConnectionThreshold: MESH_INBOUND_CONNECTION_THRESHOLD },
      peerDiscovery: init.mdns
        ? [(c) => {
            const discovery = mdns({ serviceTag: `_flexstack-${init.network}._udp.local` })(c)
            discovery.addEventListener('peer', evt => { node.#onMdnsPeer(evt.detail) })
            return discovery
          }]
        : [],
      services: {
        identify: identify(),
        ping: ping({ maxOutboundStreams: 4 }),
        dht: kadDHT({
          protocol: `${node.#prefix}/${MESH_DHT_PROTOCOL_NAME}/${MESH_DHT_PROTOCOL_VERSION}`,
          clientMode: false,
          peerInfoMapper: passthroughMapper
        }),
        pubsub: gossipsub({
          allowPublishToZeroTopicPeers: true,
          emitSelf: false,
          heartbeatInterval: MESH_GOSSIP_HEARTBEAT_MS,
          // many peers on one loopback address are nodes of one machine (tests, benchmarks, a
          // dev box), not a sybil attack: without this, above ~13 such peers their IP-colocation
          // penalty drops them below the publish threshold and gossip stops reaching anyone.
          // Real addresses keep the default protection.
          scoreParams: { IPColocationFactorWhitelist: new Set(['127.0.0.1', '::1']) }
        })
      }
    })
    node.#wire()
    await node.#libp2p.handle(node.#hello, async (stream) => {
      // the sentinel answers with the network name; its presence in identify is what matters
      try {
        stream.send(new TextEncoder().encode(init.network))
        await stream.close({ signal: AbortSignal.timeout(MESH_STREAM_CLOSE_GRACE_MS) })
        settleStream(stream)
      } catch (err) {
        stream.abort(asError(err))
      }
    }, { maxInboundStreams: 2 })
    return node
  }

  get libp2p (): Libp2p<MeshServices> {
    return this.#libp2p
  }

  #wire (): void {
    const lp = this.#libp2p
    lp.addEventListener('peer:identify', evt => { this.#onIdentify(evt.detail) })
    lp.addEventListener('peer:disconnect', evt => { this.#onPeerDisconnect(evt.detail) })
    lp.addEventListener('connection:open', evt => { this.#onConnectionOpen(evt.detail) })
    lp.services.pubsub.addEventListener('gossipsub:message', evt => { this.#onGossip(evt.detail) })
  }

  // -------------------------------------------------------------------------------------------
  // lifecycle

  async start (): Promise<void> {
    if (this.#stopPromise !== undefined) throw new DisposedError('MeshNode')
    this.#startPromise ??= (async () => {
      try {
        await this.#libp2p.start()
      } catch (err) {
        // a listen address that failed leaves the others (and the services) started: stop them
        try { await this.#libp2p.stop() } catch { /* already failing: the listen error says why */ }
        throw listenError(err, this.#init.listen)
      }
      this.#running = true
      for (const topic of this.#subs.keys()) this.#join(topic)
      for (const addr of this.#init.bootstrap) {
        const loop = this.#bootstrapLoop(addr).catch((err: unknown) => {
          this.#log.warn({ addr, err: errorMessage(err) }, 'bootstrap loop failed')
        })
        this.#loops.add(loop)
        void loop.finally(() => this.#loops.delete(loop))
      }
      this.#log.info({ peerId: this.peerId, network: this.network, addrs: this.multiaddrs(), mdns: this.#init.mdns }, 'mesh started')
    })()
    await this.#startPromise
  }

  async stop (): Promise<void> {
    this.#stopPromise ??= (async () => {
      await this.#startPromise?.catch(() => undefined)
      this.#running = false
      this.#stopController.abort(new DisposedError('MeshNode'))
      for (const t of this.#timers) clearTimeout(t)
      this.#timers.clear()
      for (const [, waiters] of this.#verifyWaiters) for (const w of waiters) w.reject(new DisposedError('MeshNode'))
      this.#verifyWaiters.clear()
      this.#verified.clear()
      for (const serve of this.#streamServes) serve.abort(new DisposedError('MeshNode'))
      try {
        await this.#libp2p.stop()
      } catch (err) {
        this.#log.warn({ err: errorMessage(err) }, 'libp2p stop failed')
      }
      await Promise.allSettled([...this.#loops])
      this.#log.info({ peerId: this.peerId }, 'mesh stopped')
    })()
    await this.#stopPromise
  }

  #assertRunning (): void {
    if (this.#stopPromise !== undefined) throw new DisposedError('MeshNode')
    if (!this.#running) throw new MeshProtocolError('the mesh node is not started')
  }

  multiaddrs (): string[] {
    return this.#libp2p.getMultiaddrs().map(String)
  }

  protocolId (name: string): string {
    if (typeof name !== 'string' || name === '' || name.includes('/')) {
      throw new InvalidInputError(`a protocol name must be a non-empty string without '/', got ${JSON.stringify(name)}`, { field: 'name' })
    }
    return `${this.#prefix}/${name}/${MESH_PROTOCOL_VERSION}`
  }

  #topicId (topic: string): string {
    if (typeof topic !== 'string' || topic.replace(/^\/+/, '') === '') {
      throw new InvalidInputError('a topic must be a non-empty string', { field: 'topic' })
    }
    return `${this.#prefix}/${topic.replace(/^\/+/, '')}`
  }

  // -------------------------------------------------------------------------------------------
  // peers and the network check

  #onConnectionOpen (conn: Connection): void {
    const id = conn.remotePeer.toString()
    if (this.#verified.has(id)) return
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      if (!this.#verified.has(id) && conn.status === 'open') {
        this.#log.debug({ peer: id }, 'peer did not pass the network check in time; hanging up')
        conn.abort(new MeshTimeoutError('network check timed out', { peerId: id }))
      }
    }, MESH_IDENTIFY_TIMEOUT_MS)
    timer.unref?.()
    this.#timers.add(timer)
  }

  #onIdentify (result: IdentifyResult): void {
    if (this.#stopPromise !== undefined) return
    const id = result.peerId.toString()
    if (this.#blocked.has(id)) {
      void this.#libp2p.hangUp(result.peerId).catch(() => undefined)
      return
    }
    if (!result.protocols.includes(this.#hello)) {
      this.#log.debug({ peer: id }, `peer does not speak ${this.#hello}; hanging up`)
      const wasVerified = this.#verified.delete(id)
      this.#mismatched.add(id)
      if (this.#mismatched.size > 1024) this.#mismatched.delete(this.#mismatched.values().next().value as string)
      this.#rejectVerify(id, new MeshProtocolError(`peer ${id} is not on network ${this.network}`, { peerId: id, protocol: this.#hello }))
      void this.#libp2p.hangUp(result.peerId).catch(() => undefined)
      if (wasVerified) this.#emit('disconnect', id)
      return
    }
    this.#mismatched.delete(id)
    const waiters = this.#verifyWaiters.get(id)
    this.#verifyWaiters.delete(id)
    for (const w of waiters ?? []) w.resolve()
    if (this.#verified.has(id)) return
    this.#verified.add(id)
    this.#log.debug({ peer: id }, 'peer connected')
    this.#emit('connect', id)
  }

  #onPeerDisconnect (peer: PeerId): void {
    const id = peer.toString()
    const wasVerified = this.#verified.delete(id)
    this.#rejectVerify(id, new MeshProtocolError(`peer ${id} disconnected before passing the network check`, { peerId: id }))
    const waiters = this.#disconnectWaiters.get(id)
    this.#disconnectWaiters.delete(id)
    for (const w of waiters ?? []) w(wasVerified)
    if (wasVerified && this.#stopPromise === undefined) {
      this.#log.debug({ peer: id }, 'peer disconnected')
      this.#emit('disconnect', id)
    }
  }

  #rejectVerify (id: string, err: Error): void {
    const waiters = this.#verifyWaiters.get(id)
    this.#verifyWaiters.delete(id)
    for (const w of waiters ?? []) w.reject(err)
  }

  async #awaitVerified (id: string, signal: AbortSignal | undefined): Promise<void> {
    if (this.#verified.has(id)) return
    if (this.#mismatched.has(id)) throw new MeshProtocolError(`peer ${id} is not on network ${this.network}`, { peerId: id, protocol: this.#hello })
    if (signal?.aborted === true) throw new AbortError()
    let waiter: VerifyWaiter | undefined
    let timer: NodeJS.Timeout | undefined
    let onAbort: (() => void) | undefined
    try {
      await new Promise<void>((resolve, reject) => {
        waiter = { resolve, reject }
        let set = this.#verifyWaiters.get(id)
        if (set === undefined) this.#verifyWaiters.set(id, set = new Set())
        set.add(waiter)
        timer = setTimeout(() => {
          reject(new MeshTimeoutError(`peer ${id} did not pass the network check within ${MESH_IDENTIFY_TIMEOUT_MS} ms`, { peerId: id }))
        }, MESH_IDENTIFY_TIMEOUT_MS)
        onAbort = () => { reject(new AbortError()) }
        signal?.addEventListener('abort', onAbort, { once: true })
      })
    } finally {
      clearTimeout(timer)
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort)
      if (waiter !== undefined) this.#verifyWaiters.get(id)?.delete(waiter)
    }
  }

  /**
   * The network check, for every inbound protocol: the peer must have passed it (its identify
   * lists the sentinel) before any handler sees its request. On a fresh connection identify may
   * still be under way, so wait for its verdict, briefly, rather than racing it. Refused: a
   * blocked peer, a peer on another network, one that does not identify, or not within
   * `MESH_INBOUND_CHECK_TIMEOUT_MS`.
   */
  async #checkInbound (from: string, connection: Connection, protocol: string, signal: AbortSignal): Promise<void> {
    if (this.#blocked.has(from)) throw new MeshProtocolError('peer is blocked', { peerId: from, protocol })
    if (this.#verified.has(from)) return
    let check = this.#inboundChecks.get(connection)
    if (check === undefined) {
      check = this.#identifyInbound(from, connection)
      check.catch(() => undefined)
      this.#inboundChecks.set(connection, check)
    }
    try {
      await raceSignal(check, signal)
    } catch (err) {
      if (signal.aborted) throw asError(signal.reason)
      if (err instanceof MeshProtocolError) throw err
      throw new MeshProtocolError(`peer ${from} did not pass the network check: ${errorMessage(err)}`, { peerId: from, protocol: this.#hello, cause: err })
    }
    if (this.#blocked.has(from)) throw new MeshProtocolError('peer is blocked', { peerId: from, protocol })
  }

  /**
   * Identify a connection's peer now, or wait for the identify already running on it (libp2p runs
   * one identify stream per connection at a time and refuses a second at once): retry shortly
   * until a verdict arrives. `#onIdentify` judges every identify result before it returns.
   */
  async #identifyInbound (from: string, connection: Connection): Promise<void> {
    const deadline = AbortSignal.any([this.#stopController.signal, AbortSignal.timeout(MESH_INBOUND_CHECK_TIMEOUT_MS)])
    const mismatch = (): MeshProtocolError => new MeshProtocolError(`peer ${from} is not on network ${this.network}`, { peerId: from, protocol: this.#hello })
    for (;;) {
      if (this.#verified.has(from)) return
      if (this.#mismatched.has(from)) throw mismatch()
      if (connection.status !== 'open') throw new MeshProtocolError(`peer ${from} hung up before passing the network check`, { peerId: from, protocol: this.#hello })
      if (deadline.aborted) throw new MeshTimeoutError(`peer ${from} did not pass the network check within ${MESH_INBOUND_CHECK_TIMEOUT_MS} ms`, { peerId: from, protocol: this.#hello })
      try {
        await this.#libp2p.services.identify.identify(connection, { signal: deadline })
        if (this.#verified.has(from)) return
        throw mismatch()
      } catch (err) {
        if (err instanceof MeshProtocolError) throw err
        // a peer that does not speak identify at all can never pass
        if (err instanceof Error && err.name === 'UnsupportedProtocolError') throw new MeshProtocolError(`peer ${from} does not identify itself`, { peerId: from, protocol: this.#hello, cause: err })
        // identify already running on this connection (its verdict comes as an event), or a transient failure
        await sleep(MESH_INBOUND_CHECK_RETRY_MS, deadline)
      }
    }
  }

  #isConnected (id: string): boolean {
    try {
      return this.#libp2p.getConnections(peerIdFromString(id)).length > 0
    } catch {
      return false
    }
  }

  #emit (event: 'connect' | 'disconnect', peerId: string): void {
    for (const cb of [...this.#listeners[event]]) {
      try {
        cb(peerId)
      } catch (err) {
        this.#log.warn({ event, peer: peerId, err: errorMessage(err) }, 'onPeer callback threw')
      }
    }
  }

  peers (): string[] {
    return [...this.#verified].filter(id => !this.#blocked.has(id))
  }

  onPeer (event: 'connect' | 'disconnect', cb: (peerId: string) => void): () => void {
    const set = this.#listeners[event]
    if (set === undefined || typeof cb !== 'function') throw new InvalidInputError(`onPeer takes 'connect' or 'disconnect' and a callback, got ${JSON.stringify(event)}`, { field: 'event' })
    const entry = (peerId: string): void => { cb(peerId) }
    set.add(entry)
    return () => { set.delete(entry) }
  }

  async dial (addr: string, options: { signal?: AbortSignal } = {}): Promise<string> {
    this.#assertRunning()
    const ma = parseMultiaddr(addr, 'multiaddr')
    if (options.signal?.aborted === true) throw new AbortError()
    let conn: Connection
    try {
      conn = await this.#libp2p.dial(ma, { signal: options.signal })
    } catch (err) {
      if (isAborted(options.signal)) throw new AbortError()
      throw new MeshProtocolError(`cannot dial ${addr}: ${errorMessage(err)}`, { cause: err })
    }
    const id = conn.remotePeer.toString()
    await this.#awaitVerified(id, options.signal)
    return id
  }

  block (peerIds: string[]): void {
    const ids = peerIds.map(p => parsePeerId(p))
    for (const peer of ids) {
      const id = peer.toString()
      if (id === this.peerId) continue
      this.#blocked.add(id)
      this.#log.debug({ peer: id }, 'peer blocked')
      void this.#libp2p.hangUp(peer).catch((err: unknown) => {
        this.#log.debug({ peer: id, err: errorMessage(err) }, 'hang-up of a blocked peer failed')
      })
    }
  }

  unblock (peerIds: string[]): void {
    const ids = peerIds.map(p => parsePeerId(p).toString())
    let any = false
    for (const id of ids) any = this.#blocked.delete(id) || any
    // let bootstrap loops retry now rather than after their backoff
    if (any) this.#bootstrapWake.dispatchEvent(new Event('wake'))
  }

  #onMdnsPeer (info: PeerInfo): void {
    const id = info.id.toString()
    if (!this.#running || id === this.peerId || this.#blocked.has(id) || this.#isConnected(id)) return
    if (this.#verified.size >= MESH_MDNS_MAX_AUTODIAL_PEERS) return
    void this.#libp2p.dial(info.id, { signal: AbortSignal.timeout(MESH_DIAL_TIMEOUT_MS) }).catch((err: unknown) => {
      this.#log.debug({ peer: id, err: errorMessage(err) }, 'dial of an mDNS peer failed')
    })
  }

  async #waitDisconnect (id: string, signal: AbortSignal): Promise<boolean> {
    if (!this.#isConnected(id)) return this.#verified.has(id)
    return await new Promise<boolean>(resolve => {
      let set = this.#disconnectWaiters.get(id)
      if (set === undefined) this.#disconnectWaiters.set(id, set = new Set())
      const s = set
      const done = (wasVerified: boolean): void => {
        signal.removeEventListener('abort', onAbort)
        s.delete(done)
        resolve(wasVerified)
      }
      const onAbort = (): void => { done(false) }
      s.add(done)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Dial `addr` whenever we are not connected to it, with doubling backoff, until stop. */
  async #bootstrapLoop (addr: string): Promise<void> {
    const signal = this.#stopController.signal
    const ma = multiaddr(addr)
    let peer = ma.getComponents().find(c => c.name === 'p2p')?.value
    let delay = MESH_REDIAL_MIN_MS
    const backoff = async (): Promise<void> => {
      const woken = await sleep(jitter(delay), signal, this.#bootstrapWake)
      delay = woken ? MESH_REDIAL_MIN_MS : Math.min(delay * 2, MESH_REDIAL_MAX_MS)
    }
    while (!signal.aborted) {
      if (peer === this.peerId) return
      if (peer !== undefined && this.#isConnected(peer)) {
        const wasVerified = await this.#waitDisconnect(peer, signal)
        if (signal.aborted) return
        if (wasVerified) {
          delay = MESH_REDIAL_MIN_MS
          await sleep(jitter(MESH_REDIAL_MIN_MS), signal)
        } else {
          // connected but never passed the network check: do not hammer it
          await backoff()
        }
        continue
      }
      if (peer !== undefined && this.#blocked.has(peer)) {
        await backoff()
        continue
      }
      try {
        const conn = await this.#libp2p.dial(ma, { signal: AbortSignal.any([signal, AbortSignal.timeout(MESH_DIAL_TIMEOUT_MS)]) })
        peer = conn.remotePeer.toString()
        await this.#awaitVerified(peer, signal)
        delay = MESH_REDIAL_MIN_MS
        this.#log.debug({ addr, peer }, 'bootstrap peer connected')
      } catch (err) {
        if (signal.aborted) return
        this.#log.debug({ addr, err: errorMessage(err), retryInMs: delay }, 'bootstrap dial failed')
        await backoff()
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // request / response

  async handle (name: string, handler: RequestHandler, options: ProtocolOptions = {}): Promise<void> {
    if (this.#stopPromise !== undefined) throw new DisposedError('MeshNode')
    const protocol = this.protocolId(name)
    if (typeof handler !== 'function') throw new InvalidInputError('handler must be a function', { field: 'handler' })
    const limits: RequestLimits = {
      maxRequestBytes: positiveInt(options.maxRequestBytes, MESH_MAX_REQUEST_BYTES, 'maxRequestBytes'),
      timeoutMs: positiveInt(options.timeoutMs, MESH_REQUEST_TIMEOUT_MS, 'timeoutMs'),
      requestTimeoutMs: positiveInt(options.requestTimeoutMs, MESH_REQUEST_READ_TIMEOUT_MS, 'requestTimeoutMs')
    }
    const maxInboundStreams = positiveInt(options.maxInboundStreams, MESH_MAX_INBOUND_STREAMS, 'maxInboundStreams')
    await this.#libp2p.handle(protocol, async (stream, connection) => {
      await this.#serve(stream, connection, protocol, handler, limits)
    }, { maxInboundStreams, maxOutboundStreams: MESH_MAX_OUTBOUND_STREAMS })
  }

  async #serve (stream: Stream, connection: Connection, protocol: string, handler: RequestHandler, limits: RequestLimits): Promise<void> {
    const from = connection.remotePeer.toString()
    if (this.#blocked.has(from) || this.#stopPromise !== undefined) {
      stream.abort(new MeshProtocolError('refused', { peerId: from, protocol }))
      return
    }
    const controller = new AbortController()
    const timer = setTimeout(() => {
      controller.abort(new MeshTimeoutError(`request not served within ${limits.timeoutMs} ms`, { peerId: from, protocol }))
    }, limits.timeoutMs)
    const onClose = (): void => { controller.abort(new MeshProtocolError('the stream closed', { peerId: from, protocol })) }
    stream.addEventListener('close', onClose)
    const signal = controller.signal
    let slot: 'none' | 'held' | 'handed-over' = 'none'
    let reader: FrameReader | undefined
    let readTimer: NodeJS.Timeout | undefined
    try {
      await this.#checkInbound(from, connection, protocol, signal)
      if (!await this.#slots.acquire(from, signal)) {
        throw signal.aborted ? asError(signal.reason) : new MeshProtocolError(`too many concurrent requests from ${from}`, { peerId: from, protocol })
      }
      slot = 'held'
      // the request has its own deadline: a half-sent one must not hold the slot for long
      readTimer = setTimeout(() => {
        controller.abort(new MeshTimeoutError(`request not received within ${limits.requestTimeoutMs} ms`, { peerId: from, protocol }))
      }, limits.requestTimeoutMs)
      reader = new FrameReader(stream)
      const request = await reader.read(limits.maxRequestBytes, signal, declared =>
        new MessageTooLargeError(`request of ${declared} bytes exceeds maxRequestBytes ${limits.maxRequestBytes}`, { peerId: from, protocol }))
      clearTimeout(readTimer)
      reader.dispose()
      reader = undefined

      // the slot is held until the handler settles, even if the stream times out first
      slot = 'handed-over'
      const execution = (async () => await handler(request, from))()
        .then(
          (response): { ok: true, body: Uint8Array } | { ok: false, message: string } => response instanceof Uint8Array
            ? { ok: true, body: response }
            : { ok: false, message: 'the handler returned a non-binary response' },
          (err: unknown) => ({ ok: false as const, message: errorMessage(err) })
        )
        .finally(() => { this.#slots.release(from) })
      const outcome = await raceSignal(execution, signal)
      if (!outcome.ok) this.#log.debug({ peer: from, protocol, err: outcome.message }, 'handler failed')
      const frame = outcome.ok
        ? [Uint8Array.of(STATUS_OK), outcome.body]
        : [Uint8Array.of(STATUS_ERROR), truncateUtf8(outcome.message, MESH_MAX_ERROR_MESSAGE_BYTES)]
      await sendFrame(stream, frame, signal)
      await stream.close({ signal })
      settleStream(stream)
    } catch (err) {
      this.#log.debug({ peer: from, protocol, err: errorMessage(err) }, 'inbound request failed; resetting the stream')
      stream.abort(asError(err))
    } finally {
      clearTimeout(timer)
      clearTimeout(readTimer)
      stream.removeEventListener('close', onClose)
      reader?.dispose()
      if (slot === 'held') this.#slots.release(from)
    }
  }

  async request (peerId: string, name: string, request: Uint8Array, options: { signal?: AbortSignal, timeoutMs?: number, maxResponseBytes?: number } = {}): Promise<Uint8Array> {
    this.#assertRunning()
    const peer = parsePeerId(peerId)
    const protocol = this.protocolId(name)
    if (!(request instanceof Uint8Array)) throw new InvalidInputError('request must be a Uint8Array', { field: 'request' })
    const timeoutMs = positiveInt(options.timeoutMs, MESH_REQUEST_TIMEOUT_MS, 'timeoutMs')
    const maxResponseBytes = positiveInt(options.maxResponseBytes, MESH_MAX_RESPONSE_BYTES, 'maxResponseBytes')
    if (this.#blocked.has(peer.toString())) throw new MeshProtocolError(`peer ${peerId} is blocked`, { peerId, protocol })
    if (options.signal?.aborted === true) throw new AbortError()

    const timeout = new AbortController()
    const timer = setTimeout(() => {
      timeout.abort(new MeshTimeoutError(`no response from ${peerId} on ${protocol} within ${timeoutMs} ms`, { peerId, protocol }))
    }, timeoutMs)
    const signal = options.signal === undefined ? timeout.signal : AbortSignal.any([options.signal, timeout.signal])
    let stream: Stream | undefined
    let reader: FrameReader | undefined
    let frame: Uint8Array
    try {
      stream = await this.#libp2p.dialProtocol(peer, protocol, { signal })
      reader = new FrameReader(stream)
      await sendFrame(stream, [request], signal)
      await stream.close({ signal })
      frame = await reader.read(maxResponseBytes + 1, signal, declared =>
        new MessageTooLargeError(`response of ${declared - 1} bytes exceeds maxResponseBytes ${maxResponseBytes}`, { peerId, protocol }))
    } catch (err) {
      stream?.abort(asError(err))
      if (timeout.signal.aborted) throw asError(timeout.signal.reason)
      if (isAborted(options.signal)) throw new AbortError()
      if (err instanceof MeshProtocolError && err.peerId !== undefined) throw err
      throw new MeshProtocolError(`request ${protocol} to ${peerId} failed: ${errorMessage(err)}`, { cause: err, peerId, protocol })
    } finally {
      clearTimeout(timer)
      reader?.dispose()
      if (stream !== undefined) settleStream(stream)
    }
    const status = frame[0]
    if (status === STATUS_OK) return frame.subarray(1)
    if (status === STATUS_ERROR) throw new MeshProtocolError(new TextDecoder().decode(frame.subarray(1)), { peerId, protocol })
    throw new MeshProtocolError(`malformed response from ${peerId} on ${protocol}: status ${String(status)}`, { peerId, protocol })
  }

  // -------------------------------------------------------------------------------------------
  // streamed responses

  async handleStream (name: string, handler: StreamHandler, options: StreamProtocolOptions = {}): Promise<void> {
    if (this.#stopPromise !== undefined) throw new DisposedError('MeshNode')
    const protocol = this.protocolId(name)
    if (typeof handler !== 'function') throw new InvalidInputError('handler must be a function', { field: 'handler' })
    const limits: StreamLimits = {
      maxRequestBytes: positiveInt(options.maxRequestBytes, MESH_MAX_REQUEST_BYTES, 'maxRequestBytes'),
      timeoutMs: positiveInt(options.timeoutMs, MESH_STREAM_TIMEOUT_MS, 'timeoutMs'),
      requestTimeoutMs: positiveInt(options.requestTimeoutMs, MESH_REQUEST_READ_TIMEOUT_MS, 'requestTimeoutMs'),
      idleTimeoutMs: positiveInt(options.idleTimeoutMs, MESH_STREAM_IDLE_TIMEOUT_MS, 'idleTimeoutMs'),
      maxChunkBytes: positiveInt(options.maxChunkBytes, MESH_MAX_CHUNK_BYTES, 'maxChunkBytes'),
      maxChunks: positiveInt(options.maxChunks, MESH_MAX_STREAM_CHUNKS, 'maxChunks')
    }
    const maxInboundStreams = positiveInt(options.maxInboundStreams, MESH_MAX_INBOUND_STREAMS, 'maxInboundStreams')
    await this.#libp2p.handle(protocol, async (stream, connection) => {
      await this.#serveStream(stream, connection, protocol, handler, limits)
    }, { maxInboundStreams, maxOutboundStreams: MESH_MAX_OUTBOUND_STREAMS })
  }

  async #serveStream (stream: Stream, connection: Connection, protocol: string, handler: StreamHandler, limits: StreamLimits): Promise<void> {
    const from = connection.remotePeer.toString()
    if (this.#blocked.has(from) || this.#stopPromise !== undefined) {
      stream.abort(new MeshProtocolError('refused', { peerId: from, protocol }))
      return
    }
    const controller = new AbortController()
    const signal = controller.signal
    const fail = (err: Error): void => { if (!signal.aborted) controller.abort(err) }
    const overall = setTimeout(() => {
      fail(new MeshTimeoutError(`stream not finished within ${limits.timeoutMs} ms`, { peerId: from, protocol }))
    }, limits.timeoutMs)
    // restarted on every frame the handler sends (and while a request or a send is pending)
    const idle = setTimeout(() => {
      fail(new MeshTimeoutError(`stream idle for ${limits.idleTimeoutMs} ms`, { peerId: from, protocol }))
    }, limits.idleTimeoutMs)
    const onClose = (evt: StreamCloseEvent): void => {
      fail(new MeshProtocolError(evt.error !== undefined ? 'the requester reset the stream' : 'the stream closed', { peerId: from, protocol }))
    }
    stream.addEventListener('close', onClose)
    this.#streamServes.add(controller)
    let slot: 'none' | 'held' | 'handed-over' = 'none'
    let reader: FrameReader | undefined
    let finished = false
    let chunks = 0
    let readTimer: NodeJS.Timeout | undefined
    let requestLate = false
    // sends run one after another, so a handler that does not await each one still keeps order and backpressure
    let tail: Promise<void> = Promise.resolve()
    try {
      await this.#checkInbound(from, connection, protocol, signal)
      if (!await this.#streamSlots.acquire(from, signal)) {
        throw signal.aborted ? asError(signal.reason) : new MeshProtocolError(`too many concurrent streams from ${from}`, { peerId: from, protocol })
      }
      slot = 'held'
      // the request has its own deadline, far shorter than the idle timeout of a long stream
      readTimer = setTimeout(() => {
        requestLate = true
        fail(new MeshTimeoutError(`request not received within ${limits.requestTimeoutMs} ms`, { peerId: from, protocol }))
      }, limits.requestTimeoutMs)
      reader = new FrameReader(stream)
      const request = await reader.read(limits.maxRequestBytes, signal, declared =>
        new MessageTooLargeError(`request of ${declared} bytes exceeds maxRequestBytes ${limits.maxRequestBytes}`, { peerId: from, protocol }))
      clearTimeout(readTimer)
      reader.dispose()
      reader = undefined
      idle.refresh()

      const responder: StreamResponder = {
        signal,
        send: async (chunk: Uint8Array): Promise<void> => {
          if (!(chunk instanceof Uint8Array)) throw new InvalidInputError('a chunk must be a Uint8Array', { field: 'chunk' })
          if (chunk.byteLength > limits.maxChunkBytes) {
            throw new MessageTooLargeError(`chunk of ${chunk.byteLength} bytes exceeds maxChunkBytes ${limits.maxChunkBytes}`, { peerId: from, protocol })
          }
          if (chunks >= limits.maxChunks) throw new MessageTooLargeError(`more than maxChunks ${limits.maxChunks} chunks`, { peerId: from, protocol })
          if (finished) throw new MeshProtocolError('the response is already finished', { peerId: from, protocol })
          if (signal.aborted) throw asError(signal.reason)
          chunks++
          const sent = tail.then(async () => {
            signal.throwIfAborted()
            idle.refresh()
            await sendFrame(stream, [Uint8Array.of(STATUS_CHUNK), chunk], signal)
            idle.refresh()
          })
          tail = sent.catch(() => undefined)
          await sent
        }
      }

      // the slot is held until the handler settles, even if the stream ends first
      slot = 'handed-over'
      const execution = (async () => await handler(request, from, responder))()
        .then(
          (response): { ok: true, body: Uint8Array } | { ok: false, message: string } => response instanceof Uint8Array
            ? { ok: true, body: response }
            : { ok: false, message: 'the handler returned a non-binary final message' },
          (err: unknown) => ({ ok: false as const, message: errorMessage(err) })
        )
        .finally(() => { this.#streamSlots.release(from) })
      const outcome = await raceSignal(execution, signal)
      finished = true
      await raceSignal(tail, signal)
      if (!outcome.ok) this.#log.debug({ peer: from, protocol, err: outcome.message }, 'stream handler failed')
      const frame = outcome.ok
        ? [Uint8Array.of(STATUS_OK), outcome.body]
        : [Uint8Array.of(STATUS_ERROR), truncateUtf8(outcome.message, MESH_MAX_ERROR_MESSAGE_BYTES)]
      idle.refresh()
      await sendFrame(stream, frame, signal)
      await stream.close({ signal })
      settleStream(stream)
    } catch (err) {
      finished = true
      const reason = signal.aborted ? asError(signal.reason) : asError(err)
      this.#log.debug({ peer: from, protocol, err: errorMessage(reason) }, 'inbound stream failed')
      // a peer that never sent its whole request gets no error frame: its stream is reset
      if (reason instanceof MeshTimeoutError && !requestLate && await this.#sendErrorAndClose(stream, reason.message)) return
      stream.abort(reason)
    } finally {
      clearTimeout(overall)
      clearTimeout(idle)
      clearTimeout(readTimer)
      stream.removeEventListener('close', onClose)
      this.#streamServes.delete(controller)
      reader?.dispose()
      if (slot === 'held') this.#streamSlots.release(from)
    }
  }

  /** Best effort: an error frame and a close, if the stream can take the frame without waiting. */
  async #sendErrorAndClose (stream: Stream, message: string): Promise<boolean> {
    if (stream.writeStatus !== 'writable' || stream.writableNeedsDrain) return false
    try {
      const bytes = truncateUtf8(message, MESH_MAX_ERROR_MESSAGE_BYTES)
      stream.send(new Uint8ArrayList(encodeVarint(1 + bytes.byteLength), Uint8Array.of(STATUS_ERROR), bytes))
      await stream.close({ signal: AbortSignal.timeout(MESH_STREAM_CLOSE_GRACE_MS) })
      settleStream(stream)
      return true
    } catch (err) {
      this.#log.debug({ protocol: stream.protocol, err: errorMessage(err) }, 'could not send an error frame')
      return false
    }
  }

  async requestStream (peerId: string, name: string, request: Uint8Array, options: StreamRequestOptions): Promise<Uint8Array> {
    this.#assertRunning()
    const peer = parsePeerId(peerId)
    const protocol = this.protocolId(name)
    if (!(request instanceof Uint8Array)) throw new InvalidInputError('request must be a Uint8Array', { field: 'request' })
    if (options === null || typeof options !== 'object' || typeof options.onChunk !== 'function') {
      throw new InvalidInputError('options.onChunk must be a function', { field: 'onChunk' })
    }
    const onChunk = options.onChunk
    const timeoutMs = positiveInt(options.timeoutMs, MESH_STREAM_TIMEOUT_MS, 'timeoutMs')
    const idleTimeoutMs = positiveInt(options.idleTimeoutMs, MESH_STREAM_IDLE_TIMEOUT_MS, 'idleTimeoutMs')
    const maxChunkBytes = positiveInt(options.maxChunkBytes, MESH_MAX_CHUNK_BYTES, 'maxChunkBytes')
    const maxChunks = positiveInt(options.maxChunks, MESH_MAX_STREAM_CHUNKS, 'maxChunks')
    const maxResponseBytes = positiveInt(options.maxResponseBytes, MESH_MAX_RESPONSE_BYTES, 'maxResponseBytes')
    if (this.#blocked.has(peer.toString())) throw new MeshProtocolError(`peer ${peerId} is blocked`, { peerId, protocol })
    if (options.signal?.aborted === true) throw new AbortError()

    // aborted by our timeouts and by stop (whose signal lives as long as the node: listened to, not combined)
    const local = new AbortController()
    const fail = (err: Error): void => { if (!local.signal.aborted) local.abort(err) }
    const overall = setTimeout(() => {
      fail(new MeshTimeoutError(`stream ${protocol} from ${peerId} not finished within ${timeoutMs} ms`, { peerId, protocol }))
    }, timeoutMs)
    // restarted on every frame received
    const idle = setTimeout(() => {
      fail(new MeshTimeoutError(`stream ${protocol} from ${peerId} idle for ${idleTimeoutMs} ms`, { peerId, protocol }))
    }, idleTimeoutMs)
    const stopSignal = this.#stopController.signal
    const onStop = (): void => { fail(new DisposedError('MeshNode')) }
    stopSignal.addEventListener('abort', onStop, { once: true })
    const signal = options.signal === undefined ? local.signal : AbortSignal.any([options.signal, local.signal])
    let type: number | undefined
    const limitFor = (first: number): number => {
      type = first
      if (type === STATUS_CHUNK) return maxChunkBytes + 1
      if (type === STATUS_OK) return maxResponseBytes + 1
      if (type === STATUS_ERROR) return MESH_MAX_ERROR_MESSAGE_BYTES + 1
      throw new MeshProtocolError(`malformed frame from ${peerId} on ${protocol}: type ${type}`, { peerId, protocol })
    }
    let stream: Stream | undefined
    let reader: FrameReader | undefined
    let chunks = 0
    let callbackError: { err: unknown } | undefined
    let frame: Uint8Array
    try {
      stream = await this.#libp2p.dialProtocol(peer, protocol, { signal })
      reader = new FrameReader(stream)
      await sendFrame(stream, [request], signal)
      await stream.close({ signal })
      for (;;) {
        type = undefined
        frame = await reader.read(limitFor, signal, declared => new MessageTooLargeError(type === STATUS_CHUNK
          ? `chunk of ${declared - 1} bytes from ${peerId} on ${protocol} exceeds maxChunkBytes ${maxChunkBytes}`
          : type === STATUS_OK
            ? `final message of ${declared - 1} bytes from ${peerId} on ${protocol} exceeds maxResponseBytes ${maxResponseBytes}`
            : `error message of ${declared - 1} bytes from ${peerId} on ${protocol} exceeds ${MESH_MAX_ERROR_MESSAGE_BYTES}`, { peerId, protocol }))
        idle.refresh()
        if (frame[0] !== STATUS_CHUNK) break
        if (++chunks > maxChunks) throw new MessageTooLargeError(`more than maxChunks ${maxChunks} chunks from ${peerId} on ${protocol}`, { peerId, protocol })
        try {
          onChunk(frame.subarray(1))
        } catch (err) {
          callbackError = { err }
          throw err
        }
      }
    } catch (err) {
      stream?.abort(asError(err))
      if (callbackError !== undefined) throw callbackError.err
      if (local.signal.aborted) throw asError(local.signal.reason)
      if (isAborted(options.signal)) throw new AbortError()
      if (err instanceof MeshProtocolError && err.peerId !== undefined) throw err
      throw new MeshProtocolError(`stream ${protocol} from ${peerId} failed: ${errorMessage(err)}`, { cause: err, peerId, protocol })
    } finally {
      clearTimeout(overall)
      clearTimeout(idle)
      stopSignal.removeEventListener('abort', onStop)
      reader?.dispose()
      if (stream !== undefined) settleStream(stream)
    }
    if (frame[0] === STATUS_OK) return frame.subarray(1)
    if (frame[0] === STATUS_ERROR) throw new MeshProtocolError(new TextDecoder().decode(frame.subarray(1)), { peerId, protocol })
    throw new MeshProtocolError(`malformed frame from ${peerId} on ${protocol}: empty`, { peerId, protocol })
  }

  // -------------------------------------------------------------------------------------------
  // gossip

  async publish (topic: string, data: Uint8Array): Promise<void> {
    this.#assertRunning()
    const full = this.#topicId(topic)
    if (!(data instanceof Uint8Array)) throw new InvalidInputError('data must be a Uint8Array', { field: 'data' })
    try {
      await this.#libp2p.services.pubsub.publish(full, data)
    } catch (err) {
      throw new MeshProtocolError(`publish to ${full} failed: ${errorMessage(err)}`, { cause: err, protocol: full })
    }
  }

  subscribe (topic: string, handler: (data: Uint8Array, from: string) => void): () => void {
    if (this.#stopPromise !== undefined) throw new DisposedError('MeshNode')
    const full = this.#topicId(topic)
    if (typeof handler !== 'function') throw new InvalidInputError('handler must be a function', { field: 'handler' })
    let set = this.#subs.get(full)
    if (set === undefined) {
      set = new Set()
      this.#subs.set(full, set)
      if (this.#running) this.#join(full)
    }
    const entry: Subscriber = { handler }
    const subs = set
    subs.add(entry)
    return () => {
      if (!subs.delete(entry) || subs.size > 0 || this.#subs.get(full) !== subs) return
      this.#subs.delete(full)
      if (this.#running) this.#leave(full)
    }
  }

  #join (topic: string): void {
    const pubsub = this.#libp2p.services.pubsub
    pubsub.topicValidators.set(topic, this.#validateGossip)
    pubsub.subscribe(topic)
  }

  #leave (topic: string): void {
    const pubsub = this.#libp2p.services.pubsub
    pubsub.unsubscribe(topic)
    pubsub.topicValidators.delete(topic)
  }

  #validateGossip = (propagationSource: PeerId, msg: GossipMessage): TopicValidatorResult => {
    if (msg.type !== 'signed') return TopicValidatorResult.Reject
    if (this.#blocked.has(propagationSource.toString()) || this.#blocked.has(msg.from.toString())) return TopicValidatorResult.Ignore
    // the network gate covers gossip too: only a peer that passed the check may hand us messages
    if (!this.#verified.has(propagationSource.toString())) return TopicValidatorResult.Ignore
    return TopicValidatorResult.Accept
  }

  #onGossip ({ msg, propagationSource }: GossipsubMessage): void {
    if (msg.type !== 'signed') return
    const from = msg.from.toString()
    if (this.#blocked.has(from) || this.#blocked.has(propagationSource.toString())) return
    const subs = this.#subs.get(msg.topic)
    if (subs === undefined) return
    for (const { handler } of [...subs]) {
      try {
        handler(msg.data, from)
      } catch (err) {
        this.#log.warn({ topic: msg.topic, from, err: errorMessage(err) }, 'gossip handler threw')
      }
    }
  }
}

/** libp2p's failure to listen as a `ListenError` naming the first address that failed and why. */
function listenError (err: unknown, listen: string[]): Error {
  if (!(err instanceof Error) || err.name !== 'UnsupportedListenAddressesError') return asError(err)
  // libp2p lists each failed address and its error on a line of the message
  const failed = /^\s*(\/\S+): .*?\b(E[A-Z]{4,})\b/m.exec(err.message)
  return new ListenError('mesh', { addr: failed?.[1] ?? listen.join(', ') }, err, failed?.[2])
}

function positiveInt (value: number | undefined, fallback: number, field: string): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value <= 0) throw new InvalidInputError(`${field} must be a positive integer, got ${String(value)}`, { field })
  return value
}
