/**
 * The inference capability's routes (the OpenAI-compatible API and the mesh queries):
 *
 * - `GET  /v1/models`, `GET /v1/models/{id}`
 * - `POST /v1/chat/completions`, `POST /v1/completions` (both with `stream: true` as SSE)
 * - `POST /v1/embeddings`
 * - `POST /v1/inference/single`, `POST /v1/moe/query`: seams for the mesh layer (501 without a router)
 *
 * Models this node holds are served by its `InferenceEngine`; others go to `router.remote` when
 * one is given, else 404 `model_not_found`. A client that disconnects (or stops reading its
 * stream) aborts its generation.
 *
 * With a `promptCache`, deterministic chat and completion requests (temperature 0 or a `seed`)
 * are answered from it when it holds their answer (body fields `cache`: `"exact"` (default) |
 * `"semantic"` | `"off"`, and `cache_threshold` 0..1 with `"semantic"`; see `memory/prompt-cache.ts`):
 * a hit is sent as the model would (one JSON response, or replayed as SSE chunks) with
 * `x-flexnode-cache: hit` and `x-flexnode-cache-match: exact|semantic`; a cacheable request the
 * cache did not hold gets `x-flexnode-cache: miss` and its answer is stored once it succeeded.
 * Requests under an inference lease (`allocation_id`) are never cached.
 *
 * ```ts
 * const http = httpServer({ port: 8080 })({ logger, routes: [openaiRoutes({ engine, router })] })
 * ```
 */
import type { PromptCache, PromptCacheMiss, PromptCacheRequest } from '../../memory/prompt-cache.ts'
import type { ChatMessage, GenerateOptions, GenerateResult, InferenceEngine, MoeQueryRequest, SingleQueryRequest } from '../../inference/types.ts'
import { ModelNotFoundError } from '../../inference/types.ts'
import { sendJson } from '../body.ts'
import { CACHE_HEADER, CACHE_MATCH_HEADER, REMOTE_MAX_TOKENS_LIMIT } from '../constants.ts'
import {
  chatChunk, chatCompletion, embeddingList, modelObject, newId, NotImplementedError, nowSeconds,
  ShuttingDownError, textCompletion, toOpenAIError,
  usageChunk, type ChatCompletionChunk, type FinishReason, type MoeQueryResult, type TextCompletion
} from '../openai.ts'
import { generateOptions, parseChatCompletionRequest, parseCompletionRequest, parseEmbeddingRequest, type ParseOptions } from '../schemas.ts'
import type { Handler, HttpRoutes, RequestContext } from '../types.ts'
import { parseInput } from '../../api/validate.ts'
import { moeQueryInput, moeQueryRequest, singleQueryInput, singleQueryRequest } from '../../inference/schemas.ts'

/** Inference on models this node does not hold (another node of the mesh); same calls as the engine. */
export type RemoteInference = Pick<InferenceEngine, 'chat' | 'complete' | 'embed'>

export interface RouteOptions {
  signal: AbortSignal
  /** the request's W3C traceparent (the HTTP core's span), carried over the mesh */
  traceparent?: string
}

/** The mesh layer's hooks. Each absent hook makes its route answer 501 (remote: 404 model_not_found). */
export interface HttpRouter {
  /** `POST /v1/inference/single`; the result is sent as the JSON body */
  single?: (request: SingleQueryRequest, options: RouteOptions) => Promise<object>
  /** `POST /v1/moe/query` */
  moe?: (request: MoeQueryRequest, options: RouteOptions) => Promise<MoeQueryResult>
  /** chat / completions / embeddings for a model that is not in `engine.listModels()` */
  remote?: RemoteInference
  /** generation under an inference lease this node holds (`allocation_id`): its provider's model, counted against the lease; throws when the lease is not this node's */
  leased?: (allocationId: string) => Pick<InferenceEngine, 'chat' | 'complete'>
}

export interface OpenAIRoutesComponents {
  engine: Pick<InferenceEngine, 'listModels' | 'chat' | 'complete' | 'embed'>
  router?: HttpRouter
  /** answers deterministic requests it holds; without it nothing is cached */
  promptCache?: Pick<PromptCache, 'lookup'>
}

interface Generation {
  ctx: RequestContext
  stream: boolean
  includeUsage: boolean
  options: GenerateOptions
  run: (options: GenerateOptions) => Promise<GenerateResult>
  /** the complete (non-streaming) response */
  whole: (result: GenerateResult) => unknown
  /** the stream's opening event, if any */
  opening: () => unknown
  /** a stream event: a piece of text (finish null) or the end (text '', finish set) */
  chunk: (text: string, finish: FinishReason | null) => ChatCompletionChunk | TextCompletion
  /** a prompt cache miss: the answer is stored once the generation succeeded */
  miss?: PromptCacheMiss
}

/** A failure inside an open stream: the error event, then the end (a stopping server's reason wins). */
export async function streamFailure (ctx: RequestContext, events: ReturnType<RequestContext['eventStream']>, err: unknown): Promise<void> {
  const failure = ctx.signal.aborted && ctx.signal.reason instanceof ShuttingDownError ? ctx.signal.reason : err
  ctx.logFailure(failure)
  events.send(toOpenAIError(failure).body)
  await events.end()
}

/** One generation, as one JSON response or as an event stream whose headers go out with the first token. */
async function generate (g: Generation): Promise<void> {
  const { ctx } = g
  if (!g.stream) {
    const result = await g.run({ ...g.options, signal: ctx.signal })
    g.miss?.store(result)
    sendJson(ctx.res, 200, g.whole(result))
    return
  }
  const events = ctx.eventStream(g.opening)
  let result: GenerateResult
  try {
    result = await g.run({
      ...g.options,
      signal: ctx.signal,
      onToken: (text) => {
        if (text.length === 0) return
        events.open()
        events.send(g.chunk(text, null))
      }
    })
  } catch (err: unknown) {
    if (!events.isOpen) throw err
    await streamFailure(ctx, events, err)
    return
  }
  g.miss?.store(result)
  await finish(g, events, result)
}

/** A stream's end: the finish chunk, the usage chunk when asked, `[DONE]`. */
async function finish (g: Generation, events: ReturnType<RequestContext['eventStream']>, result: Pick<GenerateResult, 'finish_reason' | 'usage'>): Promise<void> {
  events.open()
  const last = g.chunk('', result.finish_reason)
  events.send(last)
  if (g.includeUsage) events.send(usageChunk(last, result.usage))
  events.send('[DONE]')
  await events.end()
}

/**
 * Answers the request from the prompt cache when it holds it (true: the response is sent). On a
 * miss `g.miss` is set, to store the answer with; the cache header is set on both. A request the
 * cache does not take (not deterministic, `cache: "off"`, under a lease) gets no header.
 */
async function fromCache (g: Generation, cache: OpenAIRoutesComponents['promptCache'], request: PromptCacheRequest & { allocation_id?: string }): Promise<boolean> {
  if (cache === undefined || request.allocation_id !== undefined) return false
  const found = await cache.lookup(request, { signal: g.ctx.signal })
  if (found === undefined) return false
  const { res } = g.ctx
  if (found.status === 'miss') {
    res.setHeader(CACHE_HEADER, 'miss')
    g.miss = found
    return false
  }
  res.setHeader(CACHE_HEADER, 'hit')
  res.setHeader(CACHE_MATCH_HEADER, found.match)
  const { answer } = found
  if (!g.stream) {
    sendJson(res, 200, g.whole({ ...answer, ttft_ms: 0, duration_ms: 0 }))
    return true
  }
  // replayed as the model would stream it: the opening, the text, the end
  const events = g.ctx.eventStream(g.opening)
  events.open()
  if (answer.text.length > 0) events.send(g.chunk(answer.text, null))
  await finish(g, events, answer)
  return true
}

export function openaiRoutes (components: OpenAIRoutesComponents): HttpRoutes {
  const { engine, router, promptCache } = components
  const created = nowSeconds()

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

  const listModels: Handler = async ({ res }) => {
    sendJson(res, 200, { object: 'list', data: engine.listModels().map(m => modelObject(m, created)) })
  }

  const getModel: Handler = async ({ res, params: [id] }) => {
    const info = id === undefined ? undefined : localModel(id)
    if (info === undefined) throw new ModelNotFoundError(`the model ${JSON.stringify(id ?? '')} does not exist on this node`, { model: id })
    sendJson(res, 200, modelObject(info, created))
  }

  /** Under a lease, its provider; else the engine or the remote router by the model. */
  const generatorFor = (model: string, allocationId: string | undefined): Pick<InferenceEngine, 'chat' | 'complete'> => {
    if (allocationId === undefined) return backendFor(model)
    if (router?.leased === undefined) throw new NotImplementedError('inference leases are not available on this node')
    return router.leased(allocationId)
  }

  const chatCompletions: Handler = async (ctx) => {
    const request = parseChatCompletionRequest(await ctx.readJson(), parseOptions)
    const backend = generatorFor(request.model, request.allocation_id)
    const id = newId('chatcmpl')
    const at = nowSeconds()
    const messages: ChatMessage[] = request.messages
    const g: Generation = {
      ctx,
      stream: request.stream,
      includeUsage: request.include_usage,
      options: generateOptions(request),
      run: async (options) => await backend.chat(request.model, messages, options),
      whole: (result) => chatCompletion(id, at, result),
      opening: () => chatChunk(id, at, request.model, { role: 'assistant', content: '' }, null),
      chunk: (text, finish) => chatChunk(id, at, request.model, finish === null ? { content: text } : {}, finish)
    }
    if (await fromCache(g, promptCache, request)) return
    await generate(g)
  }

  const completions: Handler = async (ctx) => {
    const request = parseCompletionRequest(await ctx.readJson(), parseOptions)
    const backend = generatorFor(request.model, request.allocation_id)
    const id = newId('cmpl')
    const at = nowSeconds()
    const g: Generation = {
      ctx,
      stream: request.stream,
      includeUsage: request.include_usage,
      options: generateOptions(request),
      run: async (options) => await backend.complete(request.model, request.prompt, options),
      whole: (result) => textCompletion(id, at, result.model, result.text, result.finish_reason, result.usage),
      opening: () => undefined,
      chunk: (text, finish) => textCompletion(id, at, request.model, text, finish)
    }
    if (await fromCache(g, promptCache, request)) return
    await generate(g)
  }

  const embeddings: Handler = async ({ res, signal, readJson }) => {
    const request = parseEmbeddingRequest(await readJson())
    const result = await backendFor(request.model).embed(request.model, request.input, { signal })
    sendJson(res, 200, embeddingList(result, request.encoding_format))
  }

  /** A mesh query: the router's hook, else 501. */
  const meshQuery = <R>(what: string, parse: (body: unknown) => R, hook: ((request: R, o: RouteOptions) => Promise<object>) | undefined): Handler =>
    async ({ res, signal, readJson, traceparent }) => {
      if (hook === undefined) throw new NotImplementedError(`${what} are not available on this node`)
      sendJson(res, 200, await hook(parse(await readJson()), { signal, traceparent }))
    }

  return {
    paths: {
      '/v1/models': { GET: listModels },
      '/v1/chat/completions': { POST: chatCompletions },
      '/v1/completions': { POST: completions },
      '/v1/embeddings': { POST: embeddings },
      // the same schemas as the MCP tools inference.single_query and inference.moe_query
      '/v1/inference/single': { POST: meshQuery('single-model mesh queries', (body) => singleQueryRequest(parseInput(singleQueryInput, body)), router?.single) },
      '/v1/moe/query': { POST: meshQuery('MOE queries', (body) => moeQueryRequest(parseInput(moeQueryInput, body)), router?.moe) }
    },
    // after the model admin's `/v1/models/{id}/load|unload` (mounted first): any other `/v1/models/…`
    patterns: [{ pattern: /^\/v1\/models\/(.+)$/, methods: { GET: getModel } }]
  }
}
