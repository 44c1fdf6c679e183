/**
 * The Conductor API's WebSocket listener (admin or app interface).
 *
 * Binary msgpack frames only. Envelopes `{id, type: "request", data: bin}` are answered with
 * `{id, type: "response", data: bin}`; app sockets must first send `{type: "authenticate",
 * data: bin(msgpack({token}))}` within 10 s and are then scoped to the token's app and
 * subscribed to its signals. Connections without an `Origin` header, or from an origin the
 * interface does not allow (browser origins unless listed: see `origins.ts`), are refused at the
 * upgrade. Bad frames close only their own socket.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { WebSocketServer, type WebSocket, type RawData } from 'ws'
import { ListenError } from '../../errors.ts'
import { deserializationError } from '../errors.ts'
import type { ComponentLogger } from '../../logger.ts'
import { handleAdminRequest, handleAppRequest } from './dispatch.ts'
import { decode, encode, isPlainObject } from '../codec.ts'
import { originAllowed, parseAllowedOrigins } from '../origins.ts'
import { AUTHENTICATE_TIMEOUT_MS, MAX_IN_FLIGHT_PER_SOCKET, PING_INTERVAL_MS } from '../constants.ts'
import type { ConductorApi } from './types.ts'

export interface WsServerInit {
  kind: 'admin' | 'app'
  port: number
  host: string
  allowedOrigins: string
  installedAppId: string | null
  maxMessageBytes: number
  /** the conductor, as the APIs see it */
  conductor: ConductorApi
  logger: ComponentLogger
}

/** Close codes this server uses. */
export const CLOSE = {
  UNSUPPORTED_DATA: 1003,
  INVALID_PAYLOAD: 1007,
  POLICY: 1008,
  TOO_BIG: 1009
} as const

function rawToBytes (data: RawData): Uint8Array {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return new Uint8Array(data)
}

export class ConductorWsServer {
  readonly kind: 'admin' | 'app'
  readonly allowedOrigins: string
  private readonly origins: string[]
  readonly installedAppId: string | null
  private readonly http: Server
  private readonly wss: WebSocketServer
  private readonly init: WsServerInit
  private readonly log: ComponentLogger
  private readonly pinger: NodeJS.Timeout
  private readonly alive = new WeakMap<WebSocket, boolean>()
  port = 0

  private constructor (init: WsServerInit) {
    this.init = init
    this.kind = init.kind
    this.allowedOrigins = init.allowedOrigins
    this.origins = parseAllowedOrigins(init.allowedOrigins)
    this.installedAppId = init.installedAppId
    this.log = init.logger.forComponent(`flexnode:conductor:${init.kind}-ws`)
    this.http = createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('this is a Holochain Conductor API WebSocket endpoint\n')
    })
    this.wss = new WebSocketServer({
      server: this.http,
      maxPayload: init.maxMessageBytes,
      perMessageDeflate: false,
      verifyClient: (info: { origin: string, req: IncomingMessage }, cb: (ok: boolean, code?: number, message?: string) => void) => {
        const origin = info.req.headers.origin
        if (typeof origin !== 'string' || origin.length === 0) { cb(false, 400, 'an Origin header is required'); return }
        if (!originAllowed(this.origins, origin)) { cb(false, 403, 'origin not allowed'); return }
        cb(true)
      }
    })
    this.wss.on('connection', (ws) => { this.onConnection(ws) })
    // ws re-emits the HTTP server's errors (EADDRINUSE at listen, and any later one): without a
    // listener they would be an uncaught exception that takes the whole node down
    this.wss.on('error', (err) => { this.log.warn({ err: err.message }, 'server error') })
    this.pinger = setInterval(() => {
      for (const ws of this.wss.clients) {
        try {
          if (this.alive.get(ws) === false) { ws.terminate(); continue }
          this.alive.set(ws, false)
          ws.ping()
        } catch (err) {
          this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'ping failed; dropping the socket')
          ws.terminate()
        }
      }
    }, PING_INTERVAL_MS)
    this.pinger.unref()
  }

  /** Listen on `init.host:init.port`; rejects with `ListenError` (e.g. `code: 'EADDRINUSE'`) and leaves nothing behind. */
  static async listen (init: WsServerInit): Promise<ConductorWsServer> {
    const s = new ConductorWsServer(init)
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => { reject(err) }
      s.http.once('error', onError)
      s.http.listen(init.port, init.host, () => {
        s.http.off('error', onError)
        resolve()
      })
    }).catch(async (err: unknown) => {
      clearInterval(s.pinger)
      await new Promise<void>(resolve => { s.wss.close(() => { resolve() }) })
      throw new ListenError(`${init.kind} interface`, { host: init.host, port: init.port }, err)
    })
    const addr = s.http.address()
    s.port = typeof addr === 'object' && addr !== null ? addr.port : init.port
    s.log.debug({ port: s.port }, 'listening')
    return s
  }

  private onConnection (ws: WebSocket): void {
    const conductor = this.init.conductor
    this.alive.set(ws, true)
    ws.on('pong', () => { this.alive.set(ws, true) })
    let appId: string | null = null
    let inFlight = 0
    let unsubscribe: (() => void) | undefined
    let authTimer: NodeJS.Timeout | undefined
    if (this.kind === 'app') {
      authTimer = setTimeout(() => { if (appId === null) ws.close(CLOSE.POLICY, 'authenticate first') }, AUTHENTICATE_TIMEOUT_MS)
      authTimer.unref()
    }
    ws.on('error', (err) => { this.log.debug({ err: err.message }, 'socket error') })
    ws.on('close', () => {
      clearTimeout(authTimer)
      unsubscribe?.()
    })
    const send = (msg: unknown): void => {
      if (ws.readyState === ws.OPEN) ws.send(encode(msg), { binary: true })
    }
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (!isBinary) { ws.close(CLOSE.UNSUPPORTED_DATA, 'binary msgpack frames only'); return }
      let msg: unknown
      try {
        msg = decode(rawToBytes(data))
      } catch {
        ws.close(CLOSE.INVALID_PAYLOAD, 'frame is not msgpack'); return
      }
      if (!isPlainObject(msg) || typeof msg.type !== 'string') { ws.close(CLOSE.INVALID_PAYLOAD, 'frame is not a {type, data} envelope'); return }
      if (msg.type === 'authenticate') {
        if (this.kind !== 'app' || appId !== null) { ws.close(CLOSE.POLICY, 'unexpected authenticate'); return }
        try {
          if (!(msg.data instanceof Uint8Array)) throw deserializationError('authenticate data must be binary')
          const payload = decode(msg.data)
          if (!isPlainObject(payload)) throw deserializationError('authenticate data must be {token}')
          const id = conductor.authenticateToken(payload.token, this.installedAppId)
          appId = id
          clearTimeout(authTimer)
          unsubscribe = conductor.onAppSignal(id, (signal) => {
            send({ type: 'signal', data: encode({ type: 'app', value: { cell_id: signal.cell_id, zome_name: signal.zome_name, signal: encode(signal.payload) } }) })
          })
        } catch (err) {
          this.log.debug({ err: err instanceof Error ? err.message : String(err) }, 'authentication refused')
          ws.close(CLOSE.POLICY, 'authentication failed')
        }
        return
      }
      if (msg.type === 'signal' || msg.type === 'response') return
      if (msg.type !== 'request') { ws.close(CLOSE.INVALID_PAYLOAD, `unknown envelope type ${msg.type.slice(0, 32)}`); return }
      const id = msg.id
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) { ws.close(CLOSE.INVALID_PAYLOAD, 'request id must be a non-negative integer'); return }
      if (this.kind === 'app' && appId === null) { ws.close(CLOSE.POLICY, 'authenticate first'); return }
      const respond = (inner: unknown): void => { send({ id, type: 'response', data: encode(inner) }) }
      if (!(msg.data instanceof Uint8Array)) {
        respond({ type: 'error', value: { type: 'deserialization', value: 'request data must be binary msgpack' } }); return
      }
      if (inFlight >= MAX_IN_FLIGHT_PER_SOCKET) {
        respond({ type: 'error', value: { type: 'internal_error', value: `more than ${MAX_IN_FLIGHT_PER_SOCKET} requests in flight on this connection` } }); return
      }
      let inner: unknown
      try {
        inner = decode(msg.data)
      } catch (err) {
        respond({ type: 'error', value: { type: 'deserialization', value: `request is not msgpack: ${err instanceof Error ? err.message : String(err)}` } }); return
      }
      inFlight++
      const p = this.kind === 'admin' ? handleAdminRequest(conductor, inner) : handleAppRequest(conductor, appId ?? '', inner)
      p.then(respond, (err: unknown) => {
        respond({ type: 'error', value: { type: 'internal_error', value: err instanceof Error ? err.message : String(err) } })
      }).catch((err: unknown) => {
        // the answer itself could not be sent (not encodable): an error answer instead, never an unhandled rejection
        this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not send a response')
        try {
          respond({ type: 'error', value: { type: 'internal_error', value: 'the response could not be encoded' } })
        } catch {
          ws.terminate()
        }
      }).finally(() => { inFlight-- })
    })
  }

  async close (): Promise<void> {
    clearInterval(this.pinger)
    for (const ws of this.wss.clients) ws.terminate()
    await new Promise<void>(resolve => { this.wss.close(() => { resolve() }) })
    await new Promise<void>(resolve => { this.http.close(() => { resolve() }) })
  }
}
