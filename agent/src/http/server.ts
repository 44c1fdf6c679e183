/**
 * The node's HTTP server (node:http, loopback by default): the core every capability mounts its
 * routes on (`routes/openai.ts`, `routes/models-admin.ts`; later resources, memory, artifacts,
 * metrics, dashboard). The core does what is the same for every route:
 *
 * - listening (a typed `ListenError`), timeouts, and a stop that aborts running requests;
 * - the browser guard (`browser-access.ts`: DNS rebinding by `Host`, CSRF by `Origin`), then,
 *   bound to a non-loopback address, bearer tokens (`auth.ts`);
 * - request bodies within a size limit (`body.ts`) and SSE streams with backpressure (`sse.ts`);
 * - routing (404 `unknown_url`, 405 with `allow`) and the mapping of every error to
 *   `{error: {message, type, param, code}}` with its status, at this boundary only.
 *
 * ```ts
 * const http = httpServer({ port: 8080 })({ logger, routes: [modelAdminRoutes({ engine }), openaiRoutes({ engine })] })
 * const { port } = await http.start()
 * // curl -s localhost:8080/v1/chat/completions -H 'content-type: application/json' \
 * //   -d '{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":16}'
 * await http.stop()
 * ```
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { errorMessage, ListenError } from '../errors.ts'
import { RequestAbortedError } from '../inference/types.ts'
import type { ComponentLogger } from '../logger.ts'
import { readJson, readOptionalJson, sendJson } from './body.ts'
import { AuthenticationError, httpAuth, requiresAuth, type HttpAuthInit } from './auth.ts'
import { browserAccessGuard } from './browser-access.ts'
import { DEFAULT_HOST, DEFAULT_MAX_BODY_BYTES, DEFAULT_PORT, HEADERS_TIMEOUT_MS, KEEP_ALIVE_TIMEOUT_MS, REQUEST_TIMEOUT_MS, STOP_GRACE_MS } from './constants.ts'
import { MethodNotAllowedError, PayloadTooLargeError, RouteNotFoundError, ShuttingDownError, toOpenAIError, UnsupportedMediaTypeError } from './openai.ts'
import { modelAdminRoutes, type ModelAdminRoutesComponents } from './routes/models-admin.ts'
import { openaiRoutes, type HttpRouter, type OpenAIRoutesComponents } from './routes/openai.ts'
import { EventStream } from './sse.ts'
import type { Handler, HttpRoutes, Method, MethodHandlers, RequestContext } from './types.ts'

export { hostName, isLoopbackName } from './browser-access.ts'
export type { HttpRouter, RemoteInference, RouteOptions } from './routes/openai.ts'
export type { BodyOptions, Handler, HttpRoutes, RequestContext } from './types.ts'

export interface HttpServerInit {
  /** @default '127.0.0.1' */
  host?: string
  /** 0 = a free port. @default 0 */
  port?: number
  /** larger request bodies get 413. @default 1 MiB */
  maxBodyBytes?: number
  /**
   * host names (or addresses) the API answers to besides loopback names and the address it is
   * bound to, e.g. the machine's LAN name when bound to 0.0.0.0; any other `Host` (or `Origin` on
   * a POST) gets 403. @default []
   */
  allowedHosts?: string[]
  /** bytes of events an SSE client may leave unread before it is dropped (and its generation aborted). @default 1 MiB */
  sseMaxBufferedBytes?: number
  /** an SSE client that reads nothing for this long is dropped (and its generation aborted). @default 30000 */
  sseDrainTimeoutMs?: number
  /**
   * where the tokens come from when the server is bound to a non-loopback address (bound to
   * loopback it is open and this is unused); without any source only `GET /` and the dashboard's
   * assets answer. @default none
   */
  auth?: HttpAuthInit
}

export interface HttpCoreComponents {
  logger: ComponentLogger
  /** each capability's routes; exact paths first, then patterns in this order */
  routes: HttpRoutes[]
  /** told of every answered request (the metrics). @default none */
  onRequest?: (method: string, status: number, seconds: number) => void
}

export interface HttpServer {
  /** listen; resolves with the bound port */
  start: (options?: { signal?: AbortSignal }) => Promise<{ port: number }>
  /** abort running requests, close every connection; idempotent */
  stop: () => Promise<void>
  [Symbol.asyncDispose]: () => Promise<void>
  /** the bound port (0 before `start()`) */
  readonly port: number
}

/** The core server with the given capabilities' routes. */
export function httpServer (init: HttpServerInit): (components: HttpCoreComponents) => HttpServer {
  return (components) => {
    const log = components.logger.forComponent('flexnode:http')
    const host = init.host ?? DEFAULT_HOST
    const maxBodyBytes = init.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
    const checkBrowserAccess = browserAccessGuard(host, init.allowedHosts ?? [])
    const auth = requiresAuth(host) ? httpAuth(init.auth ?? {}, log) : undefined
    const paths = new Map<string, MethodHandlers>(components.routes.flatMap(r => Object.entries(r.paths ?? {})))
    const patterns = components.routes.flatMap(r => r.patterns ?? [])
    const active = new Set<AbortController>()
    let boundPort = 0
    let stopping = false

    const route = (method: string, path: string): { handler: Handler, params: string[] } => {
      let methods = paths.get(path)
      let params: string[] = []
      if (methods === undefined) {
        for (const p of patterns) {
          const m = p.pattern.exec(path)
          if (m === null) continue
          try {
            params = m.slice(1).map(c => decodeURIComponent(c))
          } catch {
            throw new RouteNotFoundError(method, path)
          }
          methods = p.methods
          break
        }
      }
      if (methods === undefined) throw new RouteNotFoundError(method, path)
      const handler = methods[(method === 'HEAD' ? 'GET' : method) as Method]
      if (handler === undefined) {
        const allow = Object.keys(methods).flatMap(m => m === 'GET' ? ['GET', 'HEAD'] : [m])
        throw new MethodNotAllowedError(method, path, allow)
      }
      return { handler, params }
    }

    /** Unexpected errors with their stack (to the log only), other server-side failures briefly. */
    const logFailure = (err: unknown): void => {
      const { status, known } = toOpenAIError(err)
      if (!known) log.error({ err }, 'request failed with an unexpected error')
      else if (status >= 500 && status !== 503) log.warn({ status, err: errorMessage(err) }, 'request failed')
    }

    const sendError = (res: ServerResponse, signal: AbortSignal, err: unknown): void => {
      const failure = signal.aborted && signal.reason instanceof ShuttingDownError ? signal.reason : err
      logFailure(failure)
      if (res.destroyed || res.writableEnded) return
      if (res.headersSent) {
        res.destroy()
        return
      }
      const { status, body } = toOpenAIError(failure)
      const headers: Record<string, string> = {}
      if (failure instanceof MethodNotAllowedError) headers.allow = failure.allow.join(', ')
      if (failure instanceof AuthenticationError) headers['www-authenticate'] = failure.missing ? 'Bearer realm="flexnode"' : 'Bearer realm="flexnode", error="invalid_token"'
      if (failure instanceof PayloadTooLargeError || failure instanceof UnsupportedMediaTypeError || stopping) headers.connection = 'close'
      sendJson(res, status, body, headers)
    }

    const context = (req: IncomingMessage, res: ServerResponse, controller: AbortController): RequestContext => {
      const abort = (reason: Error): void => { controller.abort(reason) }
      return {
        req,
        res,
        signal: controller.signal,
        abort,
        params: [],
        readJson: async (options = {}) => await readJson(req, options.maxBytes ?? maxBodyBytes),
        readOptionalJson: async (options = {}) => await readOptionalJson(req, options.maxBytes ?? maxBodyBytes),
        eventStream: (open) => new EventStream(res, {
          open,
          maxBufferedBytes: init.sseMaxBufferedBytes,
          drainTimeoutMs: init.sseDrainTimeoutMs,
          onStall: (err) => {
            log.warn({ err: err.name, bufferedBytes: err.bufferedBytes }, 'dropped an event-stream client that does not read')
            abort(err)
          }
        }),
        logFailure
      }
    }

    const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      const started = performance.now()
      const method = req.method ?? 'GET'
      let path = '/'
      try {
        path = new URL(req.url ?? '/', 'http://localhost').pathname
      } catch { /* an unparsable target matches no route */ }
      const controller = new AbortController()
      active.add(controller)
      res.on('close', () => {
        active.delete(controller)
        if (!res.writableFinished) controller.abort(new RequestAbortedError('the client disconnected'))
        // while stopping, a keep-alive connection is closed as soon as its last response is done
        if (stopping) setImmediate(() => { server.closeIdleConnections() })
        log.debug({ method, path, status: res.statusCode, ms: Math.round(performance.now() - started), complete: res.writableFinished }, 'request')
        components.onRequest?.(method, res.statusCode, (performance.now() - started) / 1000)
      })
      const ctx = context(req, res, controller)
      try {
        if (stopping) throw new ShuttingDownError()
        checkBrowserAccess(req, method)
        await auth?.check(req, method, path)
        const { handler, params } = route(method, path)
        ctx.params = params
        await handler(ctx)
      } catch (err: unknown) {
        sendError(res, ctx.signal, err)
      }
    }

    const server: Server = createServer((req, res) => { void handle(req, res) })
    server.headersTimeout = HEADERS_TIMEOUT_MS
    server.requestTimeout = REQUEST_TIMEOUT_MS
    server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS
    // a server error after listening (EMFILE on accept) is logged, not an uncaught exception
    server.on('error', (err) => { log.warn({ err: errorMessage(err) }, 'HTTP server error') })

    const stop = async (): Promise<void> => {
      if (!server.listening) return
      stopping = true
      const reason = new ShuttingDownError()
      for (const c of active) c.abort(reason)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => { server.closeAllConnections() }, STOP_GRACE_MS)
        server.close(() => { clearTimeout(timer); resolve() })
        server.closeIdleConnections()
      })
      await auth?.stop()
      log.info({ port: boundPort }, 'OpenAI-compatible API stopped')
    }

    return {
      get port () { return boundPort },

      start: async (options = {}) => {
        options.signal?.throwIfAborted()
        if (server.listening) return { port: boundPort }
        stopping = false
        await auth?.start()
        await new Promise<void>((resolve, reject) => {
          const onError = (err: Error): void => { reject(new ListenError('HTTP API', { host, port: init.port ?? DEFAULT_PORT }, err)) }
          server.once('error', onError)
          server.listen(init.port ?? DEFAULT_PORT, host, () => {
            server.off('error', onError)
            resolve()
          })
        }).catch(async (err: unknown) => {
          await auth?.stop()
          throw err
        })
        boundPort = (server.address() as AddressInfo).port
        log.info({ host, port: boundPort, auth: auth !== undefined }, 'OpenAI-compatible API listening')
        return { port: boundPort }
      },

      stop,
      [Symbol.asyncDispose]: stop
    }
  }
}

export interface HttpServerComponents {
  /** without `loadModel`/`unloadModel` the model admin routes answer 501; `refresh` lets a load find new files */
  engine: OpenAIRoutesComponents['engine'] & ModelAdminRoutesComponents['engine']
  logger: ComponentLogger
  router?: HttpRouter
  promptCache?: OpenAIRoutesComponents['promptCache']
}

/** The server with the inference capability's routes (the OpenAI-compatible API and model admin). */
export function createHttpServer (init: HttpServerInit, components: HttpServerComponents): HttpServer {
  const { engine, router, logger, promptCache } = components
  return httpServer(init)({ logger, routes: [modelAdminRoutes({ engine }), openaiRoutes({ engine, router, promptCache })] })
}
