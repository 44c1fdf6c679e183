/**
 * `flexnode models`, `flexnode infer`, `flexnode moe`: use the node running on a data dir through
 * its OpenAI-compatible HTTP API (the port in `<data-dir>/node.json`, on loopback), with `fetch`.
 *
 * ```
 * flexnode models                                   # id, loaded, size, context, tokens/s
 * flexnode models load tiny-llama                   # progress on stderr, then "loaded tiny-llama"
 * flexnode infer "Hello" --model tiny-llama --stream
 * flexnode moe "Why is the sky blue?" --task-type reasoning --json
 * ```
 * A node that is not running exits 1 with `no flexnode is running on <dir>`; an HTTP error exits 1
 * with the node's OpenAI-style error message.
 */
import type { InferOptions, ModelsOptions, MoeOptions } from '../config.ts'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FlexnodeError, InvalidInputError, errorMessage } from '../errors.ts'
import { API_TOKEN_FILE, isLoopbackUrlHost } from '../http/tokens.ts'
import type { ModelInfo } from '../inference/types.ts'
import { formatBytes, Progress } from './progress.ts'
import { NodeNotRunningError, readRuntimeInfo, renderTable, shortId } from './runtime.ts'

export { formatBytes, Progress as LoadProgress } from './progress.ts'

/**
 * An error answer of the node's HTTP API (`{error: {message, type, param, code, name}}`). It
 * takes the node's typed error name when the answer has one (`WasmCpuLimitError`), as a
 * `RemoteError` does, so the CLI's error line names it; `NodeApiError` otherwise.
 */
export class NodeApiError extends FlexnodeError {
  static override readonly name: string = 'NodeApiError'
  override name: string
  readonly status: number
  readonly code: string | null
  readonly param: string | null
  /** the node's typed error name, when it sent one */
  readonly remoteName: string | null

  constructor (message: string, status: number, code: string | null, param: string | null, remoteName: string | null = null) {
    super(`${message} (HTTP ${status}${code === null ? '' : ` ${code}`})`)
    this.name = remoteName ?? NodeApiError.name
    this.status = status
    this.code = code
    this.param = param
    this.remoteName = remoteName
  }
}

/** The OpenAI error shape (with flexnode's typed `name`), or undefined. */
function openAIError (value: unknown): { message: string, code: string | null, param: string | null, name: string | null } | undefined {
  if (value === null || typeof value !== 'object') return undefined
  const e = (value as { error?: unknown }).error
  if (e === null || typeof e !== 'object') return undefined
  const { message, code, param, name } = e as Record<string, unknown>
  if (typeof message !== 'string') return undefined
  const typed = typeof name === 'string' && /^[A-Za-z][A-Za-z0-9]{0,63}$/.test(name) ? name : null
  return { message, code: typeof code === 'string' ? code : null, param: typeof param === 'string' ? param : null, name: typed }
}


/** The HTTP API port of the node running on `dataDir`, from its `node.json`. */
export async function readHttpPort (dataDir: string): Promise<number> {
  const info = await readRuntimeInfo(dataDir)
  const port = (info as { http_port?: unknown }).http_port
  if (!Number.isInteger(port) || (port as number) <= 0 || (port as number) > 65535) throw new FlexnodeError(`the node on ${dataDir} (pid ${info.pid}) advertises no HTTP API port in its node.json`)
  return port as number
}

// ---------------------------------------------------------------------------------------------
// the node's HTTP API

/** `--node`: an http(s) URL with a host and nothing after the port but an optional `/`. */
export function parseNodeUrl (node: string): URL {
  let url: URL
  try {
    url = new URL(node)
  } catch {
    throw new InvalidInputError(`--node must be a URL such as http://host:port, got ${JSON.stringify(node)}`, { field: 'node' })
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '' || url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '' || url.pathname !== '/') {
    throw new InvalidInputError(`--node must be an http(s) URL such as http://host:port with no path, query or credentials, got ${JSON.stringify(node)}`, { field: 'node' })
  }
  return url
}

/** The local token the node running on `dataDir` wrote (`<data-dir>/api-token`), if any. */
async function readLocalToken (dataDir: string): Promise<string | undefined> {
  try {
    const token = (await readFile(join(dataDir, API_TOKEN_FILE), 'utf8')).trim()
    return token === '' ? undefined : token
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined
    throw new FlexnodeError(`cannot read the node's API token ${join(dataDir, API_TOKEN_FILE)}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`)
  }
}

/** How a CLI command reaches a node: `--node`/`--api-token` as given, or the data dir's node. */
export interface NodeTarget {
  /** data dir of the running node (its `node.json`, its local token) */
  dataDir: string
  /** the node's HTTP API, `http://host:port`, instead of the data dir's node */
  node?: string
  /** bearer token; else the local token, for the data dir's node (by the data dir, or a loopback --node at its port) */
  token?: string
}

/** Where a node's HTTP API is, the bearer token to send it, and what a NodeNotRunningError names. */
export interface ResolvedNode {
  /** the API's origin, `http://host:port` */
  base: string
  token?: string
  /** the data dir, or the `--node` URL's origin */
  where: string
}

/**
 * The node at `node` (`http://host:port`), else the node running on `dataDir`. The bearer token
 * is `token`, else — for the data dir's node, named by the data dir or by a loopback `--node` at
 * the port its node.json names — the local token that node wrote into `<data-dir>/api-token` (a
 * node bound to loopback needs none); the local token never leaves the machine, nor goes to
 * another service on it. Every CLI client of a node (`NodeApi`, `flexnode mcp`) resolves it here.
 */
export async function resolveNode (opts: NodeTarget): Promise<ResolvedNode> {
  if (opts.token !== undefined && (opts.token === '' || /\s/.test(opts.token))) throw new InvalidInputError('--api-token must be a non-empty token without whitespace', { field: 'token' })
  const withToken = (base: string, where: string, local: string | undefined): ResolvedNode => {
    const token = opts.token ?? local
    return { base, where, ...(token === undefined ? {} : { token }) }
  }
  if (opts.node === undefined) return withToken(`http://127.0.0.1:${await readHttpPort(opts.dataDir)}`, opts.dataDir, await readLocalToken(opts.dataDir))
  const url = parseNodeUrl(opts.node)
  return withToken(url.origin, url.origin, await isDataDirNode(url, opts.dataDir) ? await readLocalToken(opts.dataDir) : undefined)
}

/** `url` is the HTTP API of the node running on `dataDir`: on loopback, at the port its node.json names (another loopback service never sees the local token). */
async function isDataDirNode (url: URL, dataDir: string): Promise<boolean> {
  if (!isLoopbackUrlHost(url.hostname)) return false
  const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port)
  return await readHttpPort(dataDir).then(p => p === port, () => false)
}

export class NodeApi {
  readonly dataDir: string
  readonly base: string
  /** sent as `Authorization: Bearer`, when there is one */
  readonly #token: string | undefined
  /** what a NodeNotRunningError names: the data dir, or the `--node` URL */
  readonly #where: string

  private constructor (dataDir: string, { base, token, where }: ResolvedNode) {
    this.dataDir = dataDir
    this.base = base
    this.#token = token
    this.#where = where
  }

  /** The API of the node running on `dataDir`; NodeNotRunningError when there is none. */
  static async open (dataDir: string): Promise<NodeApi> {
    return await NodeApi.connect({ dataDir })
  }

  /** The API of the node `opts` names (see `resolveNode`). */
  static async connect (opts: NodeTarget): Promise<NodeApi> {
    return new NodeApi(opts.dataDir, await resolveNode(opts))
  }

  /** A request; a node that does not answer is NodeNotRunningError, an error status NodeApiError. */
  async request (method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<Response> {
    return await this.send(method, path, body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  }

  /** As `request`, with the request's headers and body as given (a streamed upload, a Range). */
  async send (method: 'GET' | 'POST' | 'DELETE', path: string, init: { headers?: Record<string, string>, body?: RequestInit['body'] }): Promise<Response> {
    let res: Response
    try {
      // a streamed body must say it is sent while the answer may already come (fetch's duplex)
      const headers = this.#token === undefined ? init.headers : { ...init.headers, authorization: `Bearer ${this.#token}` }
      res = await fetch(`${this.base}${path}`, { method, ...init, headers, ...(init.body instanceof ReadableStream ? { duplex: 'half' } : {}) } as RequestInit)
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause
      throw new NodeNotRunningError(this.#where, `its HTTP API at ${this.base} does not answer: ${errorMessage(cause ?? err)}`)
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '')
      let parsed: unknown
      try { parsed = JSON.parse(text) } catch { /* not JSON */ }
      const e = openAIError(parsed)
      throw new NodeApiError(e?.message ?? (text.trim() || res.statusText), res.status, e?.code ?? null, e?.param ?? null, e?.name ?? null)
    }
    return res
  }

  async json<T> (method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const res = await this.request(method, path, body)
    return await res.json() as T
  }

  /** The `data:` payloads of an SSE answer, parsed; an error event is thrown as NodeApiError. */
  async * events (res: Response): AsyncGenerator<unknown> {
    if (res.body === null) return
    const decoder = new TextDecoder()
    let buffer = ''
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true })
      for (let at = buffer.indexOf('\n\n'); at >= 0; at = buffer.indexOf('\n\n')) {
        const event = buffer.slice(0, at)
        buffer = buffer.slice(at + 2)
        const data = event.split('\n').filter(l => l.startsWith('data:')).map(l => l.slice(5).trimStart()).join('\n')
        if (data.length === 0) continue
        if (data === '[DONE]') return
        let value: unknown
        try {
          value = JSON.parse(data)
        } catch {
          throw new FlexnodeError(`the node sent an event that is not JSON: ${data.slice(0, 200)}`)
        }
        const e = openAIError(value)
        if (e !== undefined) throw new NodeApiError(e.message, res.status, e.code, e.param, e.name)
        yield value
      }
    }
    throw new FlexnodeError('the node closed the stream before it ended')
  }
}

const writeOut = (text: string): void => { process.stdout.write(text) }
/** One JSON document on stdout. */
export const printJson = (value: unknown): void => { writeOut(`${JSON.stringify(value, null, 2)}\n`) }

// ---------------------------------------------------------------------------------------------
// models

export function renderModels (models: ModelInfo[]): string {
  if (models.length === 0) return 'no models on this node (drop .gguf files into <data-dir>/models)\n'
  return renderTable(['ID', 'LOADED', 'SIZE', 'CONTEXT', 'TOKENS/S'], models.map(m => [
    m.id,
    m.loaded ? 'yes' : 'no',
    formatBytes(m.size_bytes),
    m.context_length > 0 ? String(m.context_length) : '-',
    m.tokens_per_second === null ? '-' : m.tokens_per_second.toFixed(1)
  ]))
}

/** `models list|load|unload` (`publish` and `pull` are the artifacts commands', `artifacts.ts`) */
export async function modelsCommand (opts: Exclude<ModelsOptions, { action: 'pull' | 'publish' }>): Promise<number> {
  const api = await NodeApi.connect(opts)
  if (opts.action === 'list') {
    const list = await api.json<{ data: ModelInfo[] }>('GET', '/v1/node/models')
    if (opts.json) printJson({ models: list.data })
    else writeOut(renderModels(list.data))
    return 0
  }
  const route = `/v1/models/${encodeURIComponent(opts.id)}/${opts.action}`
  if (opts.action === 'unload') {
    const result = await api.json<{ id: string, loaded: boolean }>('POST', route)
    if (opts.json) printJson(result)
    else writeOut(`unloaded ${opts.id}\n`)
    return 0
  }
  const res = await api.request('POST', route, { stream: true })
  const progress = Progress.onStderr(opts.id, 'loading')
  let model: ModelInfo | undefined
  try {
    for await (const event of api.events(res)) {
      const e = event as { progress?: unknown, model?: unknown }
      if (typeof e.progress === 'number') progress.update(e.progress)
      else if (e.model !== null && typeof e.model === 'object') model = e.model as ModelInfo
    }
  } finally {
    progress.finish()
  }
  if (model === undefined) throw new FlexnodeError(`the node ended the load of ${opts.id} without the loaded model`)
  if (opts.json) printJson(model)
  else writeOut(`loaded ${model.id}\n`)
  return 0
}

// ---------------------------------------------------------------------------------------------
// infer

interface ChatCompletionBody { choices?: Array<{ message?: { content?: unknown } }> }
interface ChatChunkBody { choices?: Array<{ delta?: { content?: unknown } }> }

export async function inferCommand (opts: InferOptions): Promise<number> {
  const api = await NodeApi.connect(opts)
  if (opts.model === undefined) {
    const body: Record<string, unknown> = { prompt: opts.prompt }
    if (opts.maxTokens !== undefined) body.max_tokens = opts.maxTokens
    const result = await api.json<{ response?: unknown }>('POST', '/v1/inference/single', body)
    if (opts.json) printJson(result)
    else writeOut(`${typeof result.response === 'string' ? result.response : ''}\n`)
    return 0
  }
  const body: Record<string, unknown> = { model: opts.model, messages: [{ role: 'user', content: opts.prompt }], stream: opts.stream }
  if (opts.maxTokens !== undefined) body.max_tokens = opts.maxTokens
  if (opts.temperature !== undefined) body.temperature = opts.temperature
  if (opts.seed !== undefined) body.seed = opts.seed
  if (!opts.stream) {
    const result = await api.json<ChatCompletionBody>('POST', '/v1/chat/completions', body)
    if (opts.json) printJson(result)
    else {
      const content = result.choices?.[0]?.message?.content
      writeOut(`${typeof content === 'string' ? content : ''}\n`)
    }
    return 0
  }
  const res = await api.request('POST', '/v1/chat/completions', body)
  let printed = false
  try {
    for await (const chunk of api.events(res)) {
      if (opts.json) {
        writeOut(`${JSON.stringify(chunk)}\n`)
        continue
      }
      const content = (chunk as ChatChunkBody).choices?.[0]?.delta?.content
      if (typeof content === 'string' && content.length > 0) {
        writeOut(content)
        printed = true
      }
    }
  } finally {
    if (!opts.json && printed) writeOut('\n')
  }
  if (!opts.json && !printed) writeOut('\n')
  return 0
}

// ---------------------------------------------------------------------------------------------
// moe

interface MoeVote { model: string, node?: string, response_hash: string | null, weight: number, latency_ms: number, error?: string }
interface MoeAnswer { response: string, consensus?: boolean, consensus_score: number, model_votes: MoeVote[], trace_id: string }

export function renderMoe (r: MoeAnswer): string {
  const consensus = r.consensus === undefined ? '?' : r.consensus ? 'yes' : 'no'
  const failed = r.model_votes.some(v => v.error !== undefined)
  const headers = ['MODEL', 'NODE', 'WEIGHT', 'LATENCY', 'HASH', ...(failed ? ['ERROR'] : [])]
  const rows = r.model_votes.map(v => [
    v.model,
    v.node === undefined ? '-' : shortId(v.node),
    v.weight.toFixed(2),
    `${Math.round(v.latency_ms)} ms`,
    v.response_hash === null || v.response_hash === '' ? '-' : v.response_hash.slice(0, 12),
    ...(failed ? [v.error ?? ''] : [])
  ])
  return `${r.response}\n\nconsensus: ${consensus} (score ${r.consensus_score.toFixed(2)})\n${renderTable(headers, rows)}`
}

export async function moeCommand (opts: MoeOptions): Promise<number> {
  const api = await NodeApi.connect(opts)
  const body: Record<string, unknown> = { prompt: opts.prompt, task_type: opts.taskType, require_consensus: opts.requireConsensus }
  if (opts.maxTokens !== undefined) body.max_tokens = opts.maxTokens
  if (opts.policy !== undefined) body.policy_override = opts.policy
  const result = await api.json<MoeAnswer>('POST', '/v1/moe/query', body)
  if (opts.json) printJson(result)
  else writeOut(renderMoe({ ...result, model_votes: Array.isArray(result.model_votes) ? result.model_votes : [] }))
  return 0
}
