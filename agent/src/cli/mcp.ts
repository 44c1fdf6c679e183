/**
 * `flexnode mcp`: an MCP server on stdio for an AI agent's MCP client, forwarding `tools/list`
 * and `tools/call` to the running node's `/mcp` endpoint (streamable HTTP), so the tools are
 * defined once, on the node. The node is the one running on `--data-dir` (its HTTP port from its
 * `node.json`), or `--node http://host:port`; a token (`--api-token`, `FLEXNODE_API_TOKEN`, else
 * the data dir's `api-token` for the local node) is sent as `Authorization: Bearer`.
 *
 * ```
 * flexnode mcp --data-dir ~/.flexnode
 * # an MCP client's configuration (Claude Desktop, Cursor…):
 * # { "mcpServers": { "flexnode": { "command": "flexnode", "args": ["mcp", "--data-dir", "/home/me/.flexnode"] } } }
 * ```
 * No node running, or its endpoint refusing the connection: one line on stderr, exit 1. Stdout
 * carries only MCP messages. Ends (exit 0) when stdin closes or on SIGINT/SIGTERM.
 */
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js'
import { CallToolRequestSchema, CallToolResultSchema, ErrorCode, ListToolsRequestSchema, ListToolsResultSchema, McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { UsageError } from '../config.ts'
import { DEFAULT_DATA_DIR } from '../constants.ts'
import { errorMessage, FlexnodeError } from '../errors.ts'
import { MCP_PATH } from '../mcp/constants.ts'
import { toolError } from '../mcp/server.ts'
import { readHttpPort } from './inference.ts'
import { NodeNotRunningError } from './runtime.ts'

/** How long a forwarded call may take: as long as the agent's own client lets it (a model load, an MOE query). */
const FORWARD_TIMEOUT_MS = 24 * 60 * 60 * 1000
/** the file a node with authentication on writes its local token to (in its data dir) */
const LOCAL_TOKEN_FILE = 'api-token'

export const MCP_USAGE = `Usage: flexnode mcp [--data-dir <dir>] [--node http://host:port] [--api-token <token>]

An MCP server on stdio for an AI agent's MCP client: it offers the running node's tools
(holochain.*, resources.*, inference.*, memory.*, artifacts.*) by forwarding to the node's /mcp.

Options:
  --data-dir <dir>     data dir of the running node (default ~/.flexnode, or FLEXNODE_DATA_DIR)
  --node <url>         the node's HTTP API instead, e.g. http://10.0.0.5:8080
  --api-token <token>  bearer token for the node's API (or FLEXNODE_API_TOKEN; default: the
                       data dir's api-token when the node is local)
  -h, --help           show this help
`

/** The node's MCP endpoint refused the bridge (HTTP status) or answered something that is not MCP. */
export class McpBridgeError extends FlexnodeError {
  static override readonly name = 'McpBridgeError'
  readonly url: string
  readonly status?: number

  constructor (url: string, message: string, status?: number) {
    super(`the node's MCP endpoint at ${url} ${message}`)
    this.url = url
    this.status = status
  }
}

export interface McpCommandOptions {
  /** data dir of the running node. @default ~/.flexnode (or FLEXNODE_DATA_DIR) */
  dataDir: string
  /** the node's HTTP API base URL instead of the data dir's node. @default the data dir's node */
  node?: string
  /** bearer token for the node's API. @default the data dir's `api-token`, when `node` is not given */
  token?: string
}

/** `flexnode mcp` flags (until the commander program takes them over). */
export function parseMcpArgs (args: string[], env: NodeJS.ProcessEnv = process.env): McpCommandOptions | 'help' {
  let v: { 'data-dir'?: string, node?: string, 'api-token'?: string, help?: boolean }
  try {
    v = parseArgs({ args, strict: true, allowPositionals: false, options: { 'data-dir': { type: 'string' }, node: { type: 'string' }, 'api-token': { type: 'string' }, help: { type: 'boolean', short: 'h' } } }).values
  } catch (err) {
    throw new UsageError(errorMessage(err))
  }
  if (v.help === true) return 'help'
  const dataDir = v['data-dir'] ?? env.FLEXNODE_DATA_DIR ?? DEFAULT_DATA_DIR
  if (dataDir.trim() === '') throw new UsageError('--data-dir must not be empty', '--data-dir')
  const token = v['api-token'] ?? env.FLEXNODE_API_TOKEN
  return { dataDir: resolve(dataDir), ...(v.node === undefined ? {} : { node: v.node }), ...(token === undefined || token === '' ? {} : { token }) }
}

/** The node's `/mcp` URL: `--node`'s, else the data dir's node's. */
async function endpoint (opts: McpCommandOptions): Promise<URL> {
  if (opts.node === undefined) return new URL(MCP_PATH, `http://127.0.0.1:${await readHttpPort(opts.dataDir)}`)
  let base: URL
  try {
    base = new URL(opts.node)
  } catch {
    throw new UsageError(`--node must be a URL such as http://host:port, not ${JSON.stringify(opts.node)}`, '--node')
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new UsageError(`--node must be an http:// or https:// URL, not ${JSON.stringify(opts.node)}`, '--node')
  return new URL(MCP_PATH, base)
}

/** The local node's token, when it wrote one (authentication on); never sent to another host. */
async function localToken (dataDir: string): Promise<string | undefined> {
  try {
    const token = (await readFile(join(dataDir, LOCAL_TOKEN_FILE), 'utf8')).trim()
    return token === '' ? undefined : token
  } catch {
    return undefined
  }
}

/** A failure to reach the node as a typed error: not answering, or answering with an HTTP error. */
function reachError (opts: McpCommandOptions, url: URL, err: unknown): Error {
  if (err instanceof FlexnodeError || err instanceof McpError) return err
  if (err instanceof StreamableHTTPError) {
    const status = err.code ?? undefined
    return new McpBridgeError(url.href, `refused the request${status === undefined ? '' : ` (HTTP ${status})`}: ${err.message.replace(/^Streamable HTTP error: /, '')}`, status)
  }
  const cause = (err as { cause?: unknown } | null)?.cause
  return new NodeNotRunningError(opts.node ?? opts.dataDir, `its MCP endpoint at ${url.href} does not answer: ${errorMessage(cause ?? err)}`)
}

/** Run the stdio bridge until stdin closes or a signal; 0, or 1 (a line on stderr) when the node cannot be reached. */
export async function mcpCommand (opts: McpCommandOptions): Promise<number> {
  let url: URL | undefined
  const client = new Client({ name: 'flexnode-mcp-bridge', version: '1' })
  try {
    url = await endpoint(opts)
    const token = opts.token ?? (opts.node === undefined ? await localToken(opts.dataDir) : undefined)
    const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` }
    await client.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers } }))
  } catch (err) {
    await client.close().catch(() => {})
    if (err instanceof UsageError) throw err
    const e = url === undefined ? err : reachError(opts, url, err)
    console.error(`flexnode: ${e instanceof Error ? e.name : 'Error'}: ${errorMessage(e)}`)
    return 1
  }
  const nodeUrl = url

  const remote = client.getServerVersion()
  const server = new McpServer({ name: remote?.name ?? 'flexnode', version: remote?.version ?? '0' })
  server.server.registerCapabilities({ tools: {} })
  server.server.setRequestHandler(ListToolsRequestSchema, async (request, extra) => {
    try {
      return await client.request({ method: 'tools/list', params: request.params }, ListToolsResultSchema, { signal: extra.signal, timeout: FORWARD_TIMEOUT_MS })
    } catch (err) {
      const e = reachError(opts, nodeUrl, err)
      throw e instanceof McpError ? e : new McpError(ErrorCode.InternalError, `${e.name}: ${e.message}`)
    }
  })
  server.server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
    try {
      return await client.request({ method: 'tools/call', params: request.params }, CallToolResultSchema, { signal: extra.signal, timeout: FORWARD_TIMEOUT_MS })
    } catch (err) {
      const e = reachError(opts, nodeUrl, err)
      // the node's protocol errors (an unknown tool) pass through as they are
      if (e instanceof McpError) throw e
      return toolError(e)
    }
  })

  const done = Promise.withResolvers<void>()
  const finish = (): void => { done.resolve() }
  process.stdin.once('end', finish)
  process.stdin.once('close', finish)
  process.once('SIGINT', finish)
  process.once('SIGTERM', finish)
  const transport = new StdioServerTransport()
  transport.onclose = finish
  await server.connect(transport)
  await done.promise
  process.off('SIGINT', finish)
  process.off('SIGTERM', finish)
  await server.close().catch(() => {})
  await client.close().catch(() => {})
  return 0
}

/** `flexnode mcp <args>`: the flags, then the bridge. */
export async function mcpMain (args: string[]): Promise<number> {
  const opts = parseMcpArgs(args)
  if (opts === 'help') {
    process.stdout.write(MCP_USAGE)
    return 0
  }
  return await mcpCommand(opts)
}
