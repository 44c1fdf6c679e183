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
 * The node and its token are resolved as every CLI client of a node resolves them (`resolveNode`
 * in `inference.ts`: the data dir's node, also when a loopback --node names its port, gets the
 * data dir's local token). No node running, or its endpoint refusing the connection: one line on stderr, exit 1. Stdout carries only MCP messages.
 * Ends (exit 0) when stdin closes or on SIGINT/SIGTERM. Its flags are the commander program's.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js'
import { CallToolRequestSchema, CallToolResultSchema, ErrorCode, ListToolsRequestSchema, ListToolsResultSchema, McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { UsageError } from '../config.ts'
import { errorMessage, FlexnodeError, InvalidInputError } from '../errors.ts'
import { MCP_PATH } from '../mcp/constants.ts'
import { toolError } from '../mcp/server.ts'
import { resolveNode, type NodeTarget } from './inference.ts'
import { NodeNotRunningError } from './runtime.ts'

/** How long a forwarded call may take: as long as the agent's own client lets it (a model load, an MOE query). */
const FORWARD_TIMEOUT_MS = 24 * 60 * 60 * 1000

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

/** `flexnode mcp`'s options: the node to forward to (see `resolveNode`). */
export type McpCommandOptions = NodeTarget

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
    const { base, token } = await resolveNode(opts)
    url = new URL(MCP_PATH, base)
    const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` }
    await client.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers } }))
  } catch (err) {
    await client.close().catch(() => {})
    // a malformed --node or --api-token is the user's mistake: exit 2
    if (url === undefined && err instanceof InvalidInputError) throw new UsageError(err.message, `--${err.field === 'token' ? 'api-token' : err.field ?? 'node'}`)
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
