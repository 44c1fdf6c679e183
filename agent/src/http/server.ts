/**
 * The node's OpenAI-compatible HTTP API (node:http, loopback by default):
 *
 * - `GET  /v1/models`, `GET /v1/models/{id}`
 * - `POST /v1/chat/completions`, `POST /v1/completions` (both with `stream: true` as SSE)
 * - `POST /v1/embeddings`
 * - `POST /v1/inference/single`, `POST /v1/moe/query`: seams for the mesh layer (501 without a router)
 * - node-local model admin (501 when the engine cannot load models):
 *   `POST /v1/models/{id}/load` (SSE `{"progress": 0..1}` events, then `{"model": ModelInfo}` and
 *   `[DONE]`; `{"stream": false}` for one JSON `ModelInfo`), `POST /v1/models/{id}/unload`
 *   (`{id, loaded: false}`), `GET /v1/node/models` (every `ModelInfo`, with sizes and files)
 *
 * Models this node holds are served by its `InferenceEngine`; others go to `router.remote` when
 * one is given, else 404 `model_not_found`. Every error leaves as `{error: {message, type, param,
 * code}}` with its status; a client that disconnects aborts its generation.
 *
 * Browsers: a request whose `Host` is not a loopback name (`localhost`, 127.0.0.0/8, `[::1]`), the
 * address it arrived on or a name in `allowedHosts` gets 403 `host_not_allowed` (DNS rebinding);
 * a POST whose `Origin` names another host gets 403 `origin_not_allowed` (CSRF); requests without
 * `Origin` (curl, SDKs) are served. Listings name model files relative to their models dir.
 *
 * ```ts
 * const http = createHttpServer({ port: 8080 }, { engine, logger })
 * const { port } = await http.start()
 * // curl -s localhost:8080/v1/chat/completions -H 'content-type: application/json' \
 * //   -d '{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":16}'
 * await http.stop()
 * ```
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { errorMessage, ListenError } from '../errors.ts'
import type { ChatMessage, GenerateOptions, GenerateResult, InferenceEngine, ModelInfo } from '../inference/types.ts'
import { ModelNotFoundError, RequestAbortedError } from '../inference/types.ts'
import type { ComponentLogger } from '../logger.ts'
import {
  DEFAULT_HOST, DEFAULT_MAX_BODY_BYTES, DEFAULT_PORT, HEADERS_TIMEOUT_MS, JSON_MEDIA_TYPE, KEEP_ALIVE_TIMEOUT_MS, MAX_DRAIN_BYTES,
  REMOTE_MAX_TOKENS_LIMIT, REQUEST_TIMEOUT_MS, STOP_GRACE_MS
} from './constants.ts'
import { EventStream } from './sse.ts'
import { isIP } from 'node:net'
import {
  chatChunk, chatCompletion, embeddingList, generateOptions, HostNotAllowedError, MalformedJsonError, OriginNotAllowedError, MethodNotAllowedError, modelObject,
  newId, NotImplementedError, nowSeconds, parseChatCompletionRequest, parseCompletionRequest, parseEmbeddingRequest,
  parseModelLoadRequest, parseMoeQueryRequest, parseSingleQueryRequest, PayloadTooLargeError, RouteNotFoundError, ShuttingDownError, textCompletion,
  toOpenAIError, UnsupportedMediaTypeError, usageChunk,
  type ChatCompletionChunk, type FinishReason, type ModelInfoList, type ModelLoadEvent, type ModelUnloaded, type MoeQueryRequest, type MoeQueryResult, type ParseOptions, type SingleQueryRequest, type TextCompletion
} from './openai.ts'

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
}

/** Inference on models this node does not hold (another node of the mesh); same calls as the engine. */
export type RemoteInference = Pick<InferenceEngine, 'chat' | 'complete' | 'embed'>

export interface RouteOptions { signal: AbortSignal }

/** The mesh layer's hooks. Each absent hook makes its route answer 501 (remote: 404 model_not_found). */
export interface HttpRouter {
  /** `POST /v1/inference/single`; the result is sent as the JSON body */
  single?: (request: SingleQueryRequest, options: RouteOptions) => Promise<object>
  /** `POST /v1/moe/query` */
  moe?: (request: MoeQueryRequest, options: RouteOptions) => Promise<MoeQueryResult>
  /** chat / completions / embeddings for a model that is not in `engine.listModels()` */
  remote?: RemoteInference
}

export interface HttpServerComponents {
  /** without `loadModel`/`unloadModel` the model admin routes answer 501; `refresh` lets a load find new files */
  engine: Pick<InferenceEngine, 'listModels' | 'chat' | 'complete' | 'embed'> & Partial<Pick<InferenceEngine, 'loadModel' | 'unloadModel' | 'refresh'>>
  logger: ComponentLogger
  router?: HttpRouter
}

export interface HttpServer {
  /** listen; resolves with the bound port */
  start: () => Promise<{ port: number }>
  /** abort running generations, close every connection */
  stop: () => Promise<void>
  /** the bound port (0 before `start()`) */
  readonly port: number
}

type Method = 'GET' | 'POST'

/** A load stream sends a progress event only when it grew by this much (llama.cpp reports far more often). */
const LOAD_PROGRESS_STEP = 0.01
/** Progress reported while loading stays below this; 1 is sent once the model is ready to serve. */
const LOAD_PROGRESS_BEFORE_READY = 0.99
/** `POST /v1/models/{id}/load|unload`, matched on the raw (still encoded) path */
const MODEL_ACTION_RE = /^\/v1\/models\/([^/]+)\/(load|unload)$/

interface RequestContext {
  req: IncomingMessage
  res: ServerResponse
  /** aborted when the client disconnects or stops reading, or the server stops */
  signal: AbortSignal
  /** abort the request's work (a reader that stopped reading) */
  abort: (reason: Error) => void
  /** the path's parameter, for `/v1/models/{id}` */
  param?: string
}

type Handler = (ctx: RequestContext) => Promise<void>

function sendJson (res: ServerResponse, status: number, body: unknown, headers: Record<string, string | string[]> = {}): void {
  const data = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(data), ...headers })
  res.end(data)
}

/** `application/json`, optionally with `charset=utf-8`. */
function isJsonContentType (header: string | undefined): boolean {
  if (header === undefined) return false
  const [type, ...params] = header.split(';').map(s => s.trim().toLowerCase())
  if (type !== JSON_MEDIA_TYPE) return false
  return params.every(p => !p.startsWith('charset=') || p === 'charset=utf-8' || p === 'charset="utf-8"')
}

const UTF8 = new TextDecoder('utf-8', { fatal: true })

/** The host name of a `Host` header (`name`, `name:port`, `[v6]:port`), lower-cased, without brackets or a trailing dot. */
export function hostName (header: string): string | undefined {
  const h = header.trim().toLowerCase()
  if (h.length === 0 || h.length > 300) return undefined
  let name: string
  if (h.startsWith('[')) {
    const end = h.indexOf(']')
    if (end < 0 || (end + 1 < h.length && !/^:\d{1,5}$/.test(h.slice(end + 1)))) return undefined
    name = h.slice(1, end)
  } else {
    const m = /^([^:]+)(:\d{1,5})?$/.exec(h)
    if (m === null) return undefined
    name = m[1]!
  }
  return name.endsWith('.') ? name.slice(0, -1) : name
}

/** An address without an IPv4-mapped IPv6 prefix (`::ffff:127.0.0.1` → `127.0.0.1`). */
const plainAddress = (a: string): string => a.toLowerCase().replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '')

/** `localhost`, 127.0.0.0/8 and ::1: names a page of another site can never resolve to by itself. */
export function isLoopbackName (name: string): boolean {
  if (name === 'localhost') return true
  const a = plainAddress(name)
  if (isIP(a) === 4) return a.startsWith('127.')
  return isIP(a) === 6 && (a === '::1' || a === '0:0:0:0:0:0:0:1')
}

export function createHttpServer (init: HttpServerInit, components: HttpServerComponents): HttpServer {
  const log = components.logger.forComponent('flexnode:http')
  const { engine, router } = components
  const host = init.host ?? DEFAULT_HOST
  const maxBodyBytes = init.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
  // the bound address, unless it is a wildcard (a request names the address it arrived on instead)
  const allowedHosts = new Set([...(['0.0.0.0', '::'].includes(host) ? [] : [host]), ...(init.allowedHosts ?? [])].map(h => hostName(h) ?? h.toLowerCase()))
  const created = nowSeconds()
  const active = new Set<AbortController>()
  let boundPort = 0
  let stopping = false

  // -------------------------------------------------------------------------------------------
  // body

  const readJson = async (req: IncomingMessage): Promise<unknown> => {
    const type = req.headers['content-type']
    if (!isJsonContentType(type)) throw new UnsupportedMediaTypeError(type)
    const declared = Number(req.headers['content-length'])
    if (Number.isFinite(declared) && declared > maxBodyBytes) throw new PayloadTooLargeError(maxBodyBytes)
    const bytes = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = []
      let size = 0
      let drained = 0
      const cleanup = (): void => {
        req.off('data', onData)
        req.off('end', onEnd)
        req.off('error', onError)
        req.off('close', onClose)
      }
      const onData = (chunk: Buffer): void => {
        size += chunk.length
        if (size <= maxBodyBytes) { chunks.push(chunk); return }
        cleanup()
        // keep reading (and discarding) a bounded amount so the 413 reaches the client
        req.on('data', (c: Buffer) => { drained += c.length; if (drained > MAX_DRAIN_BYTES) req.socket.destroy() })
        reject(new PayloadTooLargeError(maxBodyBytes))
      }
      const onEnd = (): void => { cleanup(); resolve(Buffer.concat(chunks)) }
      const onError = (err: Error): void => { cleanup(); reject(new RequestAbortedError(`the request body could not be read: ${err.message}`)) }
      const onClose = (): void => { cleanup(); reject(new RequestAbortedError('the client closed the connection before sending the body')) }
      req.on('data', onData)
      req.on('end', onEnd)
      req.on('error', onError)
      req.on('close', onClose)
    })
    if (bytes.length === 0) throw new MalformedJsonError('the request body is empty; a JSON object is required')
    let text: string
    try {
      text = UTF8.decode(bytes)
    } catch {
      throw new MalformedJsonError('the request body is not valid UTF-8')
    }
    try {
      return JSON.parse(text) as unknown
    } catch (err: unknown) {
      throw new MalformedJsonError(`the request body is not valid JSON: ${errorMessage(err)}`)
    }
  }

  /** A body that may be absent (no content-length, or 0): `{}` then, else as `readJson`. */
  const readOptionalJson = async (req: IncomingMessage): Promise<unknown> => {
    const length = req.headers['content-length']
    const chunked = req.headers['transfer-encoding'] !== undefined
    if (!chunked && (length === undefined || length.trim() === '0')) return {}
    return await readJson(req)
  }

  // -------------------------------------------------------------------------------------------
  // models: local or remote

  const localModel = (id: string): ReturnType<typeof engine.listModels>[number] | undefined =>
    engine.listModels().find(m => m.id === id)

  const parseOptions: ParseOptions = {
    maxTokensLimit: (model) => {
      const info = localModel(model)
      return info !== undefined && info.context_length > 0 ? info.context_length : REMOTE_MAX_TOKENS_LIMIT
    }
  }

  /** The engine for a model this node holds, else the remote router, else 404. */
  const backendFor = (model: string): RemoteInference => {
    if (localModel(model) !== undefined) return engine
    if (router?.remote !== undefined) return router.remote
    throw new ModelNotFoundError(`the model ${JSON.stringify(model)} does not exist on this node`, { model })
  }

  // -------------------------------------------------------------------------------------------
  // generation (shared by chat and completions)

  /** an event stream on a request's response; a client that stops reading aborts the request */
  const eventStream = (ctx: Pick<RequestContext, 'res' | 'abort'>, open?: () => unknown): EventStream => new EventStream(ctx.res, {
    open,
    maxBufferedBytes: init.sseMaxBufferedBytes,
    drainTimeoutMs: init.sseDrainTimeoutMs,
    onStall: (err) => {
      log.warn({ err: err.name, bufferedBytes: err.bufferedBytes }, 'dropped an event-stream client that does not read')
      ctx.abort(err)
    }
  })

  interface Generation {
    res: ServerResponse
    abort: (reason: Error) => void
    signal: AbortSignal
    stream: boolean
    includeUsage: boolean
    model: string
    options: GenerateOptions
    run: (options: GenerateOptions) => Promise<GenerateResult>
    /** the complete (non-streaming) response */
    whole: (result: GenerateResult) => unknown
    /** the stream's opening event, if any */
    opening: () => unknown
    /** a stream event: a piece of text (finish null) or the end (text '', finish set) */
    chunk: (text: string, finish: FinishReason | null) => ChatCompletionChunk | TextCompletion
  }

  const generate = async (g: Generation): Promise<void> => {
    if (!g.stream) {
      const result = await g.run({ ...g.options, signal: g.signal })
      sendJson(g.res, 200, g.whole(result))
      return
    }
    const events = eventStream(g, g.opening)
    let result: GenerateResult
    try {
      result = await g.run({
        ...g.options,
        signal: g.signal,
        onToken: (text) => {
          if (text.length === 0) return
          events.open()
          events.send(g.chunk(text, null))
        }
      })
    } catch (err: unknown) {
      if (!events.isOpen) throw err
      const failure = g.signal.aborted && g.signal.reason instanceof ShuttingDownError ? g.signal.reason : err
      logFailure(failure)
      events.send(toOpenAIError(failure).body)
      await events.end()
      return
    }
    events.open()
    const last = g.chunk('', result.finish_reason)
    events.send(last)
    if (g.includeUsage) events.send(usageChunk(last, result.usage))
    events.send('[DONE]')
    await events.end()
  }

  // -------------------------------------------------------------------------------------------
  // handlers

  const listModels: Handler = async ({ res }) => {
    sendJson(res, 200, { object: 'list', data: engine.listModels().map(m => modelObject(m, created)) })
  }

  const getModel: Handler = async ({ res, param }) => {
    const info = param === undefined ? undefined : localModel(param)
    if (info === undefined) throw new ModelNotFoundError(`the model ${JSON.stringify(param ?? '')} does not exist on this node`, { model: param })
    sendJson(res, 200, modelObject(info, created))
  }

  const chatCompletions: Handler = async ({ req, res, signal, abort }) => {
    const request = parseChatCompletionRequest(await readJson(req), parseOptions)
    const backend = backendFor(request.model)
    const id = newId('chatcmpl')
    const at = nowSeconds()
    const messages: ChatMessage[] = request.messages
    await generate({
      res,
      abort,
      signal,
      stream: request.stream,
      includeUsage: request.include_usage,
      model: request.model,
      options: generateOptions(request),
      run: async (options) => await backend.chat(request.model, messages, options),
      whole: (result) => chatCompletion(id, at, result),
      opening: () => chatChunk(id, at, request.model, { role: 'assistant', content: '' }, null),
      chunk: (text, finish) => chatChunk(id, at, request.model, finish === null ? { content: text } : {}, finish)
    })
  }

  const completions: Handler = async ({ req, res, signal, abort }) => {
    const request = parseCompletionRequest(await readJson(req), parseOptions)
    const backend = backendFor(request.model)
    const id = newId('cmpl')
    const at = nowSeconds()
    await generate({
      res,
      abort,
      signal,
      stream: request.stream,
      includeUsage: request.include_usage,
      model: request.model,
      options: generateOptions(request),
      run: async (options) => await backend.complete(request.model, request.prompt, options),
      whole: (result) => textCompletion(id, at, result.model, result.text, result.finish_reason, result.usage),
      opening: () => undefined,
      chunk: (text, finish) => textCompletion(id, at, request.model, text, finish)
    })
  }

  const embeddings: Handler = async ({ req, res, signal }) => {
    const request = parseEmbeddingRequest(await readJson(req))
    const backend = backendFor(request.model)
    const result = await backend.embed(request.model, request.input, { signal })
    sendJson(res, 200, embeddingList(result, request.encoding_format))
  }

  const single: Handler = async ({ req, res, signal }) => {
    if (router?.single === undefined) throw new NotImplementedError('single-model mesh queries are not available on this node')
    const request = parseSingleQueryRequest(await readJson(req))
    sendJson(res, 200, await router.single(request, { signal }))
  }

  const moe: Handler = async ({ req, res, signal }) => {
    if (router?.moe === undefined) throw new NotImplementedError('MOE queries are not available on this node')
    const request = parseMoeQueryRequest(await readJson(req))
    sendJson(res, 200, await router.moe(request, { signal }))
  }

  // -------------------------------------------------------------------------------------------
  // node-local model admin

  /** the engine, when it can load and unload models; else 501 */
  const admin = (): typeof engine & Pick<InferenceEngine, 'loadModel' | 'unloadModel'> => {
    if (engine.loadModel === undefined || engine.unloadModel === undefined) throw new NotImplementedError('loading and unloading models is not available on this node')
    return engine as typeof engine & Pick<InferenceEngine, 'loadModel' | 'unloadModel'>
  }

  const nodeModels: Handler = async ({ res }) => {
    await engine.refresh?.()
    const body: ModelInfoList = { object: 'list', data: engine.listModels() }
    sendJson(res, 200, body)
  }

  const loadModel: Handler = async ({ req, res, signal, abort, param }) => {
    const models = admin()
    const request = parseModelLoadRequest(await readOptionalJson(req))
    const id = param ?? ''
    // a file dropped into a models dir since the last scan
    if (localModel(id) === undefined) await engine.refresh?.()
    if (!request.stream) {
      sendJson(res, 200, await models.loadModel(id, { signal }))
      return
    }
    // opened by the first progress above 0, so a model that fails at once (unknown, corrupt, too
    // large) still gets its own status
    const events = eventStream({ res, abort })
    const send = (event: ModelLoadEvent): void => { events.open(); events.send(event) }
    let last = 0
    let info: ModelInfo
    try {
      info = await models.loadModel(id, {
        signal,
        onProgress: (e) => {
          const progress = Math.round(Math.min(e.progress, LOAD_PROGRESS_BEFORE_READY) * 1000) / 1000
          if (!(progress - last >= LOAD_PROGRESS_STEP || (progress === LOAD_PROGRESS_BEFORE_READY && progress > last))) return
          last = progress
          send({ progress })
        }
      })
    } catch (err: unknown) {
      if (!events.isOpen) throw err
      const failure = signal.aborted && signal.reason instanceof ShuttingDownError ? signal.reason : err
      logFailure(failure)
      events.send(toOpenAIError(failure).body)
      await events.end()
      return
    }
    send({ progress: 1 })
    send({ model: info })
    events.send('[DONE]')
    await events.end()
  }

  const unloadModel: Handler = async ({ res, req, param }) => {
    const models = admin()
    await readOptionalJson(req)
    const id = param ?? ''
    await models.unloadModel(id)
    const body: ModelUnloaded = { id, loaded: false }
    sendJson(res, 200, body)
  }

  const routes: ReadonlyMap<string, Partial<Record<Method, Handler>>> = new Map([
    ['/v1/models', { GET: listModels }],
    ['/v1/chat/completions', { POST: chatCompletions }],
    ['/v1/completions', { POST: completions }],
    ['/v1/embeddings', { POST: embeddings }],
    ['/v1/inference/single', { POST: single }],
    ['/v1/moe/query', { POST: moe }],
    ['/v1/node/models', { GET: nodeModels }]
  ])
  const MODEL_PREFIX = '/v1/models/'

  const route = (method: string, path: string): { handler: Handler, param?: string } => {
    let methods = routes.get(path)
    let param: string | undefined
    const action = methods === undefined ? MODEL_ACTION_RE.exec(path) : null
    if (action !== null) {
      methods = action[2] === 'load' ? { POST: loadModel } : { POST: unloadModel }
      try {
        param = decodeURIComponent(action[1]!)
      } catch {
        throw new RouteNotFoundError(method, path)
      }
    } else if (methods === undefined && path.startsWith(MODEL_PREFIX) && path.length > MODEL_PREFIX.length) {
      methods = { GET: getModel }
      try {
        param = decodeURIComponent(path.slice(MODEL_PREFIX.length))
      } catch {
        throw new RouteNotFoundError(method, path)
      }
    }
    if (methods === undefined) throw new RouteNotFoundError(method, path)
    const handler = methods[(method === 'HEAD' ? 'GET' : method) as Method]
    if (handler === undefined) {
      const allow = Object.keys(methods).flatMap(m => m === 'GET' ? ['GET', 'HEAD'] : [m])
      throw new MethodNotAllowedError(method, path, allow)
    }
    return param === undefined ? { handler } : { handler, param }
  }

  // -------------------------------------------------------------------------------------------
  // errors

  /** Unexpected errors with their stack (to the log only), other server-side failures briefly. */
  function logFailure (err: unknown): void {
    const { status, known } = toOpenAIError(err)
    if (!known) log.error({ err }, 'request failed with an unexpected error')
    else if (status >= 500 && status !== 503) log.warn({ status, err: errorMessage(err) }, 'request failed')
  }

  const sendError = (ctx: RequestContext, err: unknown): void => {
    const { res, signal } = ctx
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
    if (failure instanceof PayloadTooLargeError || failure instanceof UnsupportedMediaTypeError || stopping) headers.connection = 'close'
    sendJson(res, status, body, headers)
  }

  // -------------------------------------------------------------------------------------------
  // server

  /** A loopback name, the address the request arrived on, the bound address or a configured name. */
  const isAllowedHost = (name: string, req: IncomingMessage): boolean => {
    if (isLoopbackName(name) || allowedHosts.has(name)) return true
    const local = req.socket.localAddress
    return local !== undefined && isIP(plainAddress(name)) !== 0 && plainAddress(name) === plainAddress(local)
  }

  /** DNS rebinding (a foreign `Host`) and CSRF (a POST from a foreign `Origin`) are refused. */
  const checkBrowserAccess = (req: IncomingMessage, method: string): void => {
    const hostHeader = req.headers.host
    // HTTP/1.1 requires Host (node answers 400 without it); an HTTP/1.0 client without one is no browser
    if (hostHeader !== undefined) {
      const name = hostName(hostHeader)
      if (name === undefined || !isAllowedHost(name, req)) throw new HostNotAllowedError(hostHeader)
    }
    const origin = req.headers.origin
    if (origin === undefined || method === 'GET' || method === 'HEAD') return
    let name: string | undefined
    try {
      const url = new URL(origin)
      name = url.protocol === 'http:' || url.protocol === 'https:' ? hostName(url.host) : undefined
    } catch { /* `null` and other opaque origins */ }
    if (name === undefined || !isAllowedHost(name, req)) throw new OriginNotAllowedError(origin)
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
    })
    const ctx: RequestContext = { req, res, signal: controller.signal, abort: (reason) => { controller.abort(reason) } }
    try {
      if (stopping) throw new ShuttingDownError()
      checkBrowserAccess(req, method)
      const { handler, param } = route(method, path)
      if (param !== undefined) ctx.param = param
      await handler(ctx)
    } catch (err: unknown) {
      sendError(ctx, err)
    }
  }

  const server: Server = createServer((req, res) => { void handle(req, res) })
  server.headersTimeout = HEADERS_TIMEOUT_MS
  server.requestTimeout = REQUEST_TIMEOUT_MS
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS
  // a server error after listening (EMFILE on accept) is logged, not an uncaught exception
  server.on('error', (err) => { log.warn({ err: errorMessage(err) }, 'HTTP server error') })

  return {
    get port () { return boundPort },

    start: async () => {
      if (server.listening) return { port: boundPort }
      stopping = false
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error): void => { reject(new ListenError('HTTP API', { host, port: init.port ?? DEFAULT_PORT }, err)) }
        server.once('error', onError)
        server.listen(init.port ?? DEFAULT_PORT, host, () => {
          server.off('error', onError)
          resolve()
        })
      })
      boundPort = (server.address() as AddressInfo).port
      log.info({ host, port: boundPort }, 'OpenAI-compatible API listening')
      return { port: boundPort }
    },

    stop: async () => {
      if (!server.listening) return
      stopping = true
      const reason = new ShuttingDownError()
      for (const c of active) c.abort(reason)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => { server.closeAllConnections() }, STOP_GRACE_MS)
        server.close(() => { clearTimeout(timer); resolve() })
        server.closeIdleConnections()
      })
      log.info({ port: boundPort }, 'OpenAI-compatible API stopped')
    }
  }
}
