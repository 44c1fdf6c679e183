/**
 * The network gate, a libp2p service: every node of a network serves the sentinel
 * `/flexstack/<network>/hello/1`; a peer whose identify does not list it is hung up on and never
 * reported. Only peers that passed this check are `peers()`, get `onPeer` events, and have their
 * inbound streams and gossip served (`checkInbound`: an inbound stream on a fresh connection
 * waits briefly for the check rather than racing identify).
 *
 * ```ts
 * services: { identify: identify(), gate: networkGate({ network, hello, blocked, log }) }
 * await libp2p.services.gate.checkInbound(from, connection, protocol, signal)
 * ```
 */
import { setMaxListeners } from 'node:events'
import type { Identify } from '@libp2p/identify'
import type { AbortOptions, Connection, IdentifyResult, Libp2pEvents, PeerId, Startable, StreamHandler, StreamHandlerOptions, TypedEventTarget } from '@libp2p/interface'
import { serviceDependencies } from '@libp2p/interface'
import type { NetworkName } from '../constants.ts'
import { AbortError, DisposedError, errorMessage } from '../errors.ts'
import type { ComponentLogger } from '../logger.ts'
import {
  MESH_IDENTIFY_TIMEOUT_MS,
  MESH_INBOUND_CHECK_RETRY_MS,
  MESH_INBOUND_CHECK_TIMEOUT_MS,
  MESH_STREAM_CLOSE_GRACE_MS
} from './constants.ts'
import { MeshProtocolError, MeshTimeoutError } from './types.ts'
import { asError, raceSignal, settleStream, sleep } from './util.ts'

export interface NetworkGateInit {
  network: NetworkName
  /** the sentinel protocol id, `/flexstack/<network>/hello/1` */
  hello: string
  /** peers refused at once (shared with the connection gater) */
  blocked: ReadonlySet<string>
  log: ComponentLogger
}

export interface NetworkGateComponents {
  events: TypedEventTarget<Libp2pEvents>
  connectionManager: {
    getConnections: (peer?: PeerId) => Connection[]
    closeConnections: (peer: PeerId, options?: AbortOptions) => Promise<void>
  }
  registrar: {
    handle: (protocol: string, handler: StreamHandler, options?: StreamHandlerOptions) => Promise<void>
    unhandle: (protocol: string) => Promise<void>
  }
  identify: Pick<Identify, 'identify'>
}

export type PeerEvent = 'connect' | 'disconnect'

interface VerifyWaiter { resolve: () => void, reject: (err: Error) => void }

/** Peers recently hung up on for not speaking this network, remembered for precise dial errors. */
const MAX_MISMATCHED = 1024

export class NetworkGate implements Startable {
  readonly [Symbol.toStringTag] = 'flexnode/network-gate'
  readonly [serviceDependencies]: string[] = ['@libp2p/identify']
  readonly #init: NetworkGateInit
  readonly #c: NetworkGateComponents
  readonly #log: ComponentLogger
  readonly #verified = new Set<string>()
  readonly #mismatched = new Set<string>()
  readonly #verifyWaiters = new Map<string, Set<VerifyWaiter>>()
  /** the network check run for an inbound stream of a fresh connection, once per connection */
  readonly #inboundChecks = new WeakMap<Connection, Promise<void>>()
  readonly #disconnectWaiters = new Map<string, Set<(wasVerified: boolean) => void>>()
  readonly #listeners = { connect: new Set<(peerId: string) => void>(), disconnect: new Set<(peerId: string) => void>() }
  readonly #timers = new Set<NodeJS.Timeout>()
  #stop = new AbortController()
  #running = false

  constructor (init: NetworkGateInit, components: NetworkGateComponents) {
    this.#init = init
    this.#c = components
    this.#log = init.log
  }

  async start (): Promise<void> {
    this.#stop = new AbortController()
    setMaxListeners(0, this.#stop.signal)
    this.#running = true
    const events = this.#c.events
    events.addEventListener('peer:identify', this.#onIdentifyEvent)
    events.addEventListener('peer:disconnect', this.#onDisconnectEvent)
    events.addEventListener('connection:open', this.#onConnectionOpenEvent)
    await this.#c.registrar.handle(this.#init.hello, async (stream) => {
      // the sentinel answers with the network name; its presence in identify is what matters
      try {
        stream.send(new TextEncoder().encode(this.#init.network))
        await stream.close({ signal: AbortSignal.timeout(MESH_STREAM_CLOSE_GRACE_MS) })
        settleStream(stream)
      } catch (err) {
        stream.abort(asError(err))
      }
    }, { maxInboundStreams: 2 })
  }

  /** Before libp2p closes its connections: no peer events and no waiting from here on. */
  beforeStop (): void {
    this.#running = false
    this.#stop.abort(new DisposedError('MeshNode'))
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    for (const [, waiters] of this.#verifyWaiters) for (const w of waiters) w.reject(new DisposedError('MeshNode'))
    this.#verifyWaiters.clear()
    this.#verified.clear()
  }

  async stop (): Promise<void> {
    this.beforeStop()
    const events = this.#c.events
    events.removeEventListener('peer:identify', this.#onIdentifyEvent)
    events.removeEventListener('peer:disconnect', this.#onDisconnectEvent)
    events.removeEventListener('connection:open', this.#onConnectionOpenEvent)
    await this.#c.registrar.unhandle(this.#init.hello)
  }

  /** Peers that passed the check and are not blocked. */
  peers (): string[] {
    return [...this.#verified].filter(id => !this.#init.blocked.has(id))
  }

  isVerified (id: string): boolean {
    return this.#verified.has(id)
  }

  isConnected (peer: PeerId): boolean {
    return this.#c.connectionManager.getConnections(peer).length > 0
  }

  onPeer (event: PeerEvent, cb: (peerId: string) => void): () => void {
    const set = this.#listeners[event]
    const entry = (peerId: string): void => { cb(peerId) }
    set.add(entry)
    return () => { set.delete(entry) }
  }

  #emit (event: PeerEvent, peerId: string): void {
    for (const cb of [...this.#listeners[event]]) {
      try {
        cb(peerId)
      } catch (err) {
        this.#log.warn({ event, peer: peerId, err: errorMessage(err) }, 'onPeer callback threw')
      }
    }
  }

  #hangUp (peer: PeerId): void {
    void this.#c.connectionManager.closeConnections(peer).catch(() => undefined)
  }

  #onConnectionOpenEvent = (evt: CustomEvent<Connection>): void => {
    const conn = evt.detail
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

  #onIdentifyEvent = (evt: CustomEvent<IdentifyResult>): void => {
    if (!this.#running) return
    const result = evt.detail
    const id = result.peerId.toString()
    if (this.#init.blocked.has(id)) {
      this.#hangUp(result.peerId)
      return
    }
    const hello = this.#init.hello
    if (!result.protocols.includes(hello)) {
      this.#log.debug({ peer: id }, `peer does not speak ${hello}; hanging up`)
      const wasVerified = this.#verified.delete(id)
      this.#mismatched.add(id)
      if (this.#mismatched.size > MAX_MISMATCHED) this.#mismatched.delete(this.#mismatched.values().next().value as string)
      this.#rejectVerify(id, this.#mismatch(id))
      this.#hangUp(result.peerId)
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

  #onDisconnectEvent = (evt: CustomEvent<PeerId>): void => {
    const id = evt.detail.toString()
    const wasVerified = this.#verified.delete(id)
    this.#rejectVerify(id, new MeshProtocolError(`peer ${id} disconnected before passing the network check`, { peerId: id }))
    const waiters = this.#disconnectWaiters.get(id)
    this.#disconnectWaiters.delete(id)
    for (const w of waiters ?? []) w(wasVerified)
    if (wasVerified && this.#running) {
      this.#log.debug({ peer: id }, 'peer disconnected')
      this.#emit('disconnect', id)
    }
  }

  #mismatch (id: string): MeshProtocolError {
    return new MeshProtocolError(`peer ${id} is not on network ${this.#init.network}`, { peerId: id, protocol: this.#init.hello })
  }

  #rejectVerify (id: string, err: Error): void {
    const waiters = this.#verifyWaiters.get(id)
    this.#verifyWaiters.delete(id)
    for (const w of waiters ?? []) w.reject(err)
  }

  /** Resolves once `id` passed the check; rejects when it fails it, disconnects, or not in time. */
  async awaitVerified (id: string, signal: AbortSignal | undefined): Promise<void> {
    if (this.#verified.has(id)) return
    if (this.#mismatched.has(id)) throw this.#mismatch(id)
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

  /** Resolves when `peer` disconnects (true if it had passed the check), or false on abort. */
  async waitDisconnect (peer: PeerId, signal: AbortSignal): Promise<boolean> {
    const id = peer.toString()
    if (!this.isConnected(peer)) return this.#verified.has(id)
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

  /**
   * The network check, for every inbound protocol: the peer must have passed it (its identify
   * lists the sentinel) before any handler sees its request. On a fresh connection identify may
   * still be under way, so wait for its verdict, briefly, rather than racing it. Refused: a
   * blocked peer, a peer on another network, one that does not identify, or not within
   * `MESH_INBOUND_CHECK_TIMEOUT_MS`.
   */
  async checkInbound (from: string, connection: Connection, protocol: string, signal: AbortSignal): Promise<void> {
    if (this.#init.blocked.has(from)) throw new MeshProtocolError('peer is blocked', { peerId: from, protocol })
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
      throw new MeshProtocolError(`peer ${from} did not pass the network check: ${errorMessage(err)}`, { peerId: from, protocol: this.#init.hello, cause: err })
    }
    if (this.#init.blocked.has(from)) throw new MeshProtocolError('peer is blocked', { peerId: from, protocol })
  }

  /**
   * Identify a connection's peer now, or wait for the identify already running on it (libp2p runs
   * one identify stream per connection at a time and refuses a second at once): retry shortly
   * until a verdict arrives. The identify event handler judges every result before it returns.
   */
  async #identifyInbound (from: string, connection: Connection): Promise<void> {
    const deadline = AbortSignal.any([this.#stop.signal, AbortSignal.timeout(MESH_INBOUND_CHECK_TIMEOUT_MS)])
    const hello = this.#init.hello
    for (;;) {
      if (this.#verified.has(from)) return
      if (this.#mismatched.has(from)) throw this.#mismatch(from)
      if (connection.status !== 'open') throw new MeshProtocolError(`peer ${from} hung up before passing the network check`, { peerId: from, protocol: hello })
      if (deadline.aborted) throw new MeshTimeoutError(`peer ${from} did not pass the network check within ${MESH_INBOUND_CHECK_TIMEOUT_MS} ms`, { peerId: from, protocol: hello })
      try {
        await this.#c.identify.identify(connection, { signal: deadline })
        if (this.#verified.has(from)) return
        throw this.#mismatch(from)
      } catch (err) {
        if (err instanceof MeshProtocolError) throw err
        // a peer that does not speak identify at all can never pass
        if (err instanceof Error && err.name === 'UnsupportedProtocolError') throw new MeshProtocolError(`peer ${from} does not identify itself`, { peerId: from, protocol: hello, cause: err })
        // identify already running on this connection (its verdict comes as an event), or a transient failure
        await sleep(MESH_INBOUND_CHECK_RETRY_MS, deadline)
      }
    }
  }
}

/** The network gate as a libp2p service factory (list it after `identify`). */
export function networkGate (init: NetworkGateInit): (components: NetworkGateComponents) => NetworkGate {
  return (components) => new NetworkGate(init, components)
}
