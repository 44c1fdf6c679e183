/**
 * The mesh node on libp2p v3: one libp2p node per agent (configuration in `config.ts`), the
 * network gate (`gate.ts`), bootstrap redial, the one exchange primitive (`exchange.ts`, framing
 * in `framing.ts`, per-peer slots in `slots.ts`) and gossip (`gossip.ts`). The PeerId is the agent's ed25519
 * key (`identity/peer-id.ts`).
 *
 * ```ts
 * const mesh = await createMeshNode({ network: 'testnet', seed, listen: ['/ip4/127.0.0.1/tcp/0'] }, { logger })
 * await mesh.handle('echo', async (req) => req)
 * await mesh.start()
 * const peer = await mesh.dial(otherAddr)
 * const res = await mesh.request(peer, 'echo', new Uint8Array([1, 2, 3]))
 * await mesh.unhandle('echo')
 * await mesh.stop()
 * ```
 *
 * Network isolation: protocol ids are `/flexstack/<network>/<name>/1`, gossip topics
 * `/flexstack/<network>/<topic>`; only peers that passed the network gate are served, reported
 * or heard on gossip. Reading a request has its own short deadline (`requestTimeoutMs`),
 * whatever the protocol's longer timeouts.
 */
import { setMaxListeners } from 'node:events'
import '../polyfill.ts'
import type { Connection, Libp2p, PeerId, PeerInfo, Stream } from '@libp2p/interface'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import type { NetworkName } from '../constants.ts'
import { AbortError, DisposedError, InvalidInputError, ListenError, errorMessage } from '../errors.ts'
import { parsePeerId, privateKeyFromSeed } from '../identity/peer-id.ts'
import type { ComponentLogger } from '../logger.ts'
import { libp2pOptions, networkPrefix, protocolIdOf, resolveMeshInit, type MeshServices, type ResolvedMeshInit } from './config.ts'
import {
  MESH_DIAL_TIMEOUT_MS,
  MESH_MAX_CHUNK_BYTES,
  MESH_MAX_INBOUND_STREAMS,
  MESH_MAX_INFLIGHT_PER_PEER,
  MESH_MAX_OUTBOUND_STREAMS,
  MESH_MAX_QUEUED_PER_PEER,
  MESH_MAX_REQUEST_BYTES,
  MESH_MAX_RESPONSE_BYTES,
  MESH_MAX_STREAM_CHUNKS,
  MESH_MAX_STREAMS_INFLIGHT_PER_PEER,
  MESH_MAX_STREAMS_QUEUED_PER_PEER,
  MESH_MDNS_MAX_AUTODIAL_PEERS,
  MESH_REDIAL_MAX_MS,
  MESH_REDIAL_MIN_MS,
  MESH_REQUEST_READ_TIMEOUT_MS,
  MESH_REQUEST_TIMEOUT_MS,
  MESH_STREAM_IDLE_TIMEOUT_MS,
  MESH_STREAM_TIMEOUT_MS
} from './constants.ts'
import { MeshGossip } from './gossip.ts'
import { requestExchange, serveExchange, type ExchangeOptions, type ServeLimits } from './exchange.ts'
import { PeerSlots } from './slots.ts'
import { MeshProtocolError } from './types.ts'
import type {
  MeshComponents,
  MeshInit,
  MeshNode,
  ProtocolOptions,
  RequestHandler,
  StreamHandler,
  StreamProtocolOptions,
  StreamRequestOptions,
  SubscribeOptions
} from './types.ts'
import { asError, isAborted, jitter, parseMultiaddr, positiveInt, sleep } from './util.ts'

export type { MeshServices } from './config.ts'

/** A `MeshNode` that also exposes its libp2p node (for tests and for components that build on it, e.g. Helia). */
export interface Libp2pMeshNode extends MeshNode {
  readonly libp2p: Libp2p<MeshServices>
  readonly network: NetworkName
}

/** Create (not start) the mesh node of an agent. Call `start()` to listen and dial the bootstrap peers. */
export async function createMeshNode (init: MeshInit, components: MeshComponents): Promise<Libp2pMeshNode> {
  const resolved = resolveMeshInit(init)
  const privateKey = await privateKeyFromSeed(init.seed)
  const log = components.logger.forComponent('flexnode:mesh')
  const blocked = new Set<string>()
  // mDNS discovery is configured before the node that dials its peers exists
  const built: { node?: Libp2pMesh } = {}
  const libp2p = await createLibp2p(libp2pOptions(resolved, { privateKey, blocked, log, onMdnsPeer: (info) => { built.node?.onMdnsPeer(info) } }))
  built.node = new Libp2pMesh(resolved, peerIdFromPublicKey(privateKey.publicKey).toString(), libp2p, blocked, log)
  return built.node
}

class Libp2pMesh implements Libp2pMeshNode {
  readonly peerId: string
  readonly network: NetworkName
  readonly libp2p: Libp2p<MeshServices>
  readonly #log: ComponentLogger
  readonly #init: ResolvedMeshInit
  readonly #prefix: string
  readonly #blocked: Set<string>
  readonly #gossip: MeshGossip
  /** protocols registered with `handle` / `handleStream`, removed by `unhandle` and by stop */
  readonly #handled = new Set<string>()
  readonly #slots = new PeerSlots(MESH_MAX_INFLIGHT_PER_PEER, MESH_MAX_QUEUED_PER_PEER)
  /** long-lived streamed responses get their own per-peer slots, so they never starve `handle` */
  readonly #streamSlots = new PeerSlots(MESH_MAX_STREAMS_INFLIGHT_PER_PEER, MESH_MAX_STREAMS_QUEUED_PER_PEER)
  /** inbound exchanges being served: stop aborts them (and so resets their streams) */
  readonly #serves = new Set<AbortController>()
  // every bootstrap loop and stream listens for the node's stop: more than Node's default 10 listeners
  readonly #stopController = ((): AbortController => { const c = new AbortController(); setMaxListeners(0, c.signal); return c })()
  readonly #bootstrapWake = new EventTarget()
  readonly #loops = new Set<Promise<void>>()
  #startPromise: Promise<void> | undefined
  #stopPromise: Promise<void> | undefined
  #running = false

  constructor (init: ResolvedMeshInit, peerId: string, libp2p: Libp2p<MeshServices>, blocked: Set<string>, log: ComponentLogger) {
    this.#init = init
    this.network = init.network
    this.peerId = peerId
    this.libp2p = libp2p
    this.#blocked = blocked
    this.#log = log
    this.#prefix = networkPrefix(init.network)
    this.#gossip = new MeshGossip({ pubsub: libp2p.services.pubsub, gate: libp2p.services.gate, blocked, log })
  }

  get #gate (): MeshServices['gate'] {
    return this.libp2p.services.gate
  }

  // -------------------------------------------------------------------------------------------
  // lifecycle

  async start (): Promise<void> {
    if (this.#stopPromise !== undefined) throw new DisposedError('MeshNode')
    this.#startPromise ??= (async () => {
      try {
        await this.libp2p.start()
      } catch (err) {
        // a listen address that failed leaves the others (and the services) started: stop them
        try { await this.libp2p.stop() } catch { /* already failing: the listen error says why */ }
        throw listenError(err, this.#init.listen)
      }
      this.#running = true
      this.#gossip.start()
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
      this.#gossip.stop()
      this.#stopController.abort(new DisposedError('MeshNode'))
      for (const serve of this.#serves) serve.abort(new DisposedError('MeshNode'))
      await Promise.allSettled([...this.#handled].map(async p => { await this.#unhandleProtocol(p) }))
      try {
        await this.libp2p.stop()
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
    return this.libp2p.getMultiaddrs().map(String)
  }

  protocolId (name: string): string {
    return protocolIdOf(this.network, name)
  }

  #topicId (topic: string): string {
    if (typeof topic !== 'string' || topic.replace(/^\/+/, '') === '') {
      throw new InvalidInputError('a topic must be a non-empty string', { field: 'topic' })
    }
    return `${this.#prefix}/${topic.replace(/^\/+/, '')}`
  }

  // -------------------------------------------------------------------------------------------
  // peers

  peers (): string[] {
    return this.#gate.peers()
  }

  onPeer (event: 'connect' | 'disconnect', cb: (peerId: string) => void): () => void {
    if ((event !== 'connect' && event !== 'disconnect') || typeof cb !== 'function') {
      throw new InvalidInputError(`onPeer takes 'connect' or 'disconnect' and a callback, got ${JSON.stringify(event)}`, { field: 'event' })
    }
    return this.#gate.onPeer(event, cb)
  }

  async dial (addr: string, options: { signal?: AbortSignal } = {}): Promise<string> {
    this.#assertRunning()
    const ma = parseMultiaddr(addr, 'multiaddr')
    if (options.signal?.aborted === true) throw new AbortError()
    let conn: Connection
    try {
      conn = await this.libp2p.dial(ma, { signal: options.signal })
    } catch (err) {
      if (isAborted(options.signal)) throw new AbortError()
      throw new MeshProtocolError(`cannot dial ${addr}: ${errorMessage(err)}`, { cause: err })
    }
    const id = conn.remotePeer.toString()
    await this.#gate.awaitVerified(id, options.signal)
    return id
  }

  block (peerIds: string[]): void {
    const ids = peerIds.map(p => parsePeerId(p))
    for (const peer of ids) {
      const id = peer.toString()
      if (id === this.peerId) continue
      this.#blocked.add(id)
      this.#log.debug({ peer: id }, 'peer blocked')
      void this.libp2p.hangUp(peer).catch((err: unknown) => {
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

  /** A peer found by mDNS: dial it unless connected, blocked, or enough peers are. */
  onMdnsPeer (info: PeerInfo): void {
    const id = info.id.toString()
    if (!this.#running || id === this.peerId || this.#blocked.has(id) || this.#gate.isConnected(info.id)) return
    if (this.#gate.peers().length >= MESH_MDNS_MAX_AUTODIAL_PEERS) return
    void this.libp2p.dial(info.id, { signal: AbortSignal.timeout(MESH_DIAL_TIMEOUT_MS) }).catch((err: unknown) => {
      this.#log.debug({ peer: id, err: errorMessage(err) }, 'dial of an mDNS peer failed')
    })
  }

  /** Dial `addr` whenever we are not connected to it, with doubling backoff, until stop. */
  async #bootstrapLoop (addr: string): Promise<void> {
    const signal = this.#stopController.signal
    const ma = multiaddr(addr)
    const p2p = ma.getComponents().find(c => c.name === 'p2p')?.value
    let peer: PeerId | undefined = p2p === undefined ? undefined : parsePeerId(p2p)
    let delay = MESH_REDIAL_MIN_MS
    const backoff = async (): Promise<void> => {
      const woken = await sleep(jitter(delay), signal, this.#bootstrapWake)
      delay = woken ? MESH_REDIAL_MIN_MS : Math.min(delay * 2, MESH_REDIAL_MAX_MS)
    }
    while (!signal.aborted) {
      if (peer?.toString() === this.peerId) return
      if (peer !== undefined && this.#gate.isConnected(peer)) {
        const wasVerified = await this.#gate.waitDisconnect(peer, signal)
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
      if (peer !== undefined && this.#blocked.has(peer.toString())) {
        await backoff()
        continue
      }
      try {
        const conn = await this.libp2p.dial(ma, { signal: AbortSignal.any([signal, AbortSignal.timeout(MESH_DIAL_TIMEOUT_MS)]) })
        peer = conn.remotePeer
        await this.#gate.awaitVerified(peer.toString(), signal)
        delay = MESH_REDIAL_MIN_MS
        this.#log.debug({ addr, peer: peer.toString() }, 'bootstrap peer connected')
      } catch (err) {
        if (signal.aborted) return
        this.#log.debug({ addr, err: errorMessage(err), retryInMs: delay }, 'bootstrap dial failed')
        await backoff()
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // exchanges: request/response is the zero-chunk case of a streamed response

  async handle (name: string, handler: RequestHandler, options: ProtocolOptions = {}): Promise<void> {
    if (typeof handler !== 'function') throw new InvalidInputError('handler must be a function', { field: 'handler' })
    const limits: ServeLimits = {
      maxRequestBytes: positiveInt(options.maxRequestBytes, MESH_MAX_REQUEST_BYTES, 'maxRequestBytes'),
      timeoutMs: positiveInt(options.timeoutMs, MESH_REQUEST_TIMEOUT_MS, 'timeoutMs'),
      requestTimeoutMs: positiveInt(options.requestTimeoutMs, MESH_REQUEST_READ_TIMEOUT_MS, 'requestTimeoutMs'),
      maxChunkBytes: 0,
      maxChunks: 0
    }
    await this.#register(name, async (req, from) => await handler(req, from), limits, this.#slots, options.maxInboundStreams)
  }

  async handleStream (name: string, handler: StreamHandler, options: StreamProtocolOptions = {}): Promise<void> {
    if (typeof handler !== 'function') throw new InvalidInputError('handler must be a function', { field: 'handler' })
    const limits: ServeLimits = {
      maxRequestBytes: positiveInt(options.maxRequestBytes, MESH_MAX_REQUEST_BYTES, 'maxRequestBytes'),
      timeoutMs: positiveInt(options.timeoutMs, MESH_STREAM_TIMEOUT_MS, 'timeoutMs'),
      requestTimeoutMs: positiveInt(options.requestTimeoutMs, MESH_REQUEST_READ_TIMEOUT_MS, 'requestTimeoutMs'),
      idleTimeoutMs: positiveInt(options.idleTimeoutMs, MESH_STREAM_IDLE_TIMEOUT_MS, 'idleTimeoutMs'),
      maxChunkBytes: positiveInt(options.maxChunkBytes, MESH_MAX_CHUNK_BYTES, 'maxChunkBytes'),
      maxChunks: positiveInt(options.maxChunks, MESH_MAX_STREAM_CHUNKS, 'maxChunks')
    }
    await this.#register(name, handler, limits, this.#streamSlots, options.maxInboundStreams)
  }

  async #register (name: string, handler: StreamHandler, limits: ServeLimits, slots: PeerSlots, maxInbound: number | undefined): Promise<void> {
    if (this.#stopPromise !== undefined) throw new DisposedError('MeshNode')
    const protocol = this.protocolId(name)
    const maxInboundStreams = positiveInt(maxInbound, MESH_MAX_INBOUND_STREAMS, 'maxInboundStreams')
    const ctx = { gate: this.#gate, slots, blocked: this.#blocked, log: this.#log, serves: this.#serves, stopping: () => this.#stopPromise !== undefined }
    await this.libp2p.handle(protocol, async (stream: Stream, connection: Connection) => {
      await serveExchange(stream, connection, protocol, handler, limits, ctx)
    }, { maxInboundStreams, maxOutboundStreams: MESH_MAX_OUTBOUND_STREAMS })
    this.#handled.add(protocol)
  }

  async unhandle (name: string): Promise<void> {
    await this.#unhandleProtocol(this.protocolId(name))
  }

  async #unhandleProtocol (protocol: string): Promise<void> {
    if (!this.#handled.delete(protocol)) return
    await this.libp2p.unhandle(protocol)
  }

  async request (peerId: string, name: string, request: Uint8Array, options: { signal?: AbortSignal, timeoutMs?: number, maxResponseBytes?: number } = {}): Promise<Uint8Array> {
    return await this.#exchange(peerId, name, request, {
      signal: options.signal,
      timeoutMs: positiveInt(options.timeoutMs, MESH_REQUEST_TIMEOUT_MS, 'timeoutMs'),
      maxResponseBytes: positiveInt(options.maxResponseBytes, MESH_MAX_RESPONSE_BYTES, 'maxResponseBytes'),
      maxChunkBytes: MESH_MAX_CHUNK_BYTES,
      maxChunks: 0
    })
  }

  async requestStream (peerId: string, name: string, request: Uint8Array, options: StreamRequestOptions): Promise<Uint8Array> {
    if (options === null || typeof options !== 'object' || typeof options.onChunk !== 'function') {
      throw new InvalidInputError('options.onChunk must be a function', { field: 'onChunk' })
    }
    return await this.#exchange(peerId, name, request, {
      signal: options.signal,
      onChunk: options.onChunk,
      timeoutMs: positiveInt(options.timeoutMs, MESH_STREAM_TIMEOUT_MS, 'timeoutMs'),
      idleTimeoutMs: positiveInt(options.idleTimeoutMs, MESH_STREAM_IDLE_TIMEOUT_MS, 'idleTimeoutMs'),
      maxChunkBytes: positiveInt(options.maxChunkBytes, MESH_MAX_CHUNK_BYTES, 'maxChunkBytes'),
      maxChunks: positiveInt(options.maxChunks, MESH_MAX_STREAM_CHUNKS, 'maxChunks'),
      maxResponseBytes: positiveInt(options.maxResponseBytes, MESH_MAX_RESPONSE_BYTES, 'maxResponseBytes')
    })
  }

  async #exchange (peerId: string, name: string, request: Uint8Array, options: ExchangeOptions): Promise<Uint8Array> {
    this.#assertRunning()
    const peer = parsePeerId(peerId)
    const protocol = this.protocolId(name)
    if (!(request instanceof Uint8Array)) throw new InvalidInputError('request must be a Uint8Array', { field: 'request' })
    if (this.#blocked.has(peer.toString())) throw new MeshProtocolError(`peer ${peerId} is blocked`, { peerId, protocol })
    return await requestExchange(peer, protocol, request, options, {
      dialProtocol: async (p, proto, o) => await this.libp2p.dialProtocol(p, proto, o),
      stopSignal: this.#stopController.signal
    })
  }

  // -------------------------------------------------------------------------------------------
  // gossip

  async publish (topic: string, data: Uint8Array): Promise<void> {
    this.#assertRunning()
    const full = this.#topicId(topic)
    if (!(data instanceof Uint8Array)) throw new InvalidInputError('data must be a Uint8Array', { field: 'data' })
    await this.#gossip.publish(full, data)
  }

  subscribe (topic: string, handler: ((data: Uint8Array, from: string) => void) | undefined, options: SubscribeOptions = {}): () => void {
    if (this.#stopPromise !== undefined) throw new DisposedError('MeshNode')
    const full = this.#topicId(topic)
    if (handler !== undefined && typeof handler !== 'function') throw new InvalidInputError('handler must be a function', { field: 'handler' })
    if (options.judge !== undefined && typeof options.judge !== 'function') throw new InvalidInputError('judge must be a function', { field: 'judge' })
    if (handler === undefined && options.judge === undefined) throw new InvalidInputError('a subscription needs a handler or a judge', { field: 'handler' })
    return this.#gossip.subscribe(full, handler, options)
  }
}

/** libp2p's failure to listen as a `ListenError` naming the first address that failed and why. */
function listenError (err: unknown, listen: string[]): Error {
  if (!(err instanceof Error) || err.name !== 'UnsupportedListenAddressesError') return asError(err)
  // libp2p lists each failed address and its error on a line of the message
  const failed = /^\s*(\/\S+): .*?\b(E[A-Z]{4,})\b/m.exec(err.message)
  return new ListenError('mesh', { addr: failed?.[1] ?? listen.join(', ') }, err, failed?.[2])
}
