/**
 * `POST /mcp`: the node's operations as MCP tools over streamable HTTP, mounted on the node's
 * HTTP server, so the core's Host/Origin guard, body limit and authentication apply to it as to
 * every route. Stateless: each POST gets its own server and transport (no session id), and the
 * answer is one JSON response; `GET /mcp` (a server-sent stream) and `DELETE /mcp` (a session's
 * end) have nothing to serve and get 405, which MCP clients expect from a stateless server.
 *
 * ```ts
 * const http = httpServer({ port: 8080 })({ logger, routes: [mcpRoutes({ operations: nodeOperations(components), logger })] })
 * // an MCP client: { "type": "http", "url": "http://127.0.0.1:8080/mcp" }
 * ```
 */
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import type { AnyOperation } from '../api/operation.ts'
import type { Handler, HttpRoutes } from '../http/types.ts'
import type { ComponentLogger } from '../logger.ts'
import { MCP_PATH } from './constants.ts'
import { mcpServer, mcpTools, type McpServerInit } from './server.ts'

export interface McpRoutesComponents {
  /** the operations offered as tools */
  operations: readonly AnyOperation[]
  /** where unexpected tool failures are logged. @default a silent logger */
  logger?: ComponentLogger
}

/** The `/mcp` route; throws `McpToolDefinitionError` when an operation cannot be a tool. */
export function mcpRoutes (components: McpRoutesComponents, init: McpServerInit = {}): HttpRoutes {
  const tools = mcpTools(components.operations, { logger: components.logger })

  const post: Handler = async (ctx) => {
    const { req, res, signal } = ctx
    const body = await ctx.readJson()
    const traceparent = typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined
    const server = mcpServer(tools, init, { signal, traceparent })
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true })
    res.once('close', () => { void server.close() })
    await server.connect(transport)
    await transport.handleRequest(req, res, body)
  }

  return { paths: { [MCP_PATH]: { POST: post } } }
}
