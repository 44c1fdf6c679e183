/**
 * The node's operations (`agent/src/api/`) as MCP tools: each operation is one tool, named as
 * the operation (`resources.allocate`), its `inputSchema` and `outputSchema` the JSON Schema of
 * the operation's zod objects, so the tools, the HTTP API and the CLI share one description.
 *
 * - A call's arguments are parsed by the operation's input schema (`parseInput`, as the HTTP
 *   routes do): arguments it refuses are a tool error `InvalidRequestError: <path>: <reason>`,
 *   and the operation does not run.
 * - A result is checked against the output schema and sent as `structuredContent`, with the
 *   same JSON as a text content for clients that read only text.
 * - A thrown error is a tool error (`isError: true`) whose text is `<ErrorName>: <message>` (the
 *   typed reason, as the HTTP API's `error.name`), with `_meta['flexnode/error']` =
 *   `{name, type, code, param}`; an error that is not a typed one (`FlexnodeError`, or an error
 *   the HTTP API describes) is logged and answered as `InternalServerError: internal server error`.
 * - An unknown tool name is a protocol error (-32602), as the MCP specification asks.
 *
 * ```ts
 * const tools = mcpTools(nodeOperations(components), { logger })
 * const server = mcpServer(tools)
 * await server.connect(new StdioServerTransport())
 * ```
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { CallToolRequestSchema, ErrorCode, ListToolsRequestSchema, McpError, type CallToolResult, type Tool } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'
import type { AnyOperation, OperationContext } from '../api/operation.ts'
import { parseInput } from '../api/validate.ts'
import { errorMessage, FlexnodeError } from '../errors.ts'
import { toOpenAIError } from '../http/openai.ts'
import { silentLogger, type ComponentLogger } from '../logger.ts'
import { MCP_ERROR_META_KEY, MCP_INTERNAL_ERROR_NAME, MCP_JSON_SCHEMA_TARGET, MCP_SERVER_NAME, MCP_SERVER_VERSION } from './constants.ts'

/** An operation cannot be offered as a tool: a bad or duplicate name, a schema with no JSON Schema form. */
export class McpToolDefinitionError extends FlexnodeError {
  static override readonly name = 'McpToolDefinitionError'
  readonly tool: string

  constructor (tool: string, message: string, options?: ErrorOptions) {
    super(`MCP tool ${JSON.stringify(tool)}: ${message}`, options)
    this.tool = tool
  }
}

/** An operation's result does not match its own output schema (a bug of the operation, logged). */
export class McpToolOutputError extends FlexnodeError {
  static override readonly name = 'McpToolOutputError'
  readonly tool: string

  constructor (tool: string, message: string) {
    super(`the result of ${tool} does not match its output schema: ${message}`)
    this.tool = tool
  }
}

/** A tool error's structured reason, in `_meta['flexnode/error']`. */
export interface McpToolErrorReason {
  name: string
  type: string
  code: string | null
  param: string | null
}

export interface McpToolsComponents {
  /** where unexpected failures are logged. @default a silent logger */
  logger?: ComponentLogger
}

/** The tools of a set of operations, their definitions computed once. */
export interface McpTools {
  /** what `tools/list` answers */
  readonly definitions: readonly Tool[]
  /** one `tools/call`; an unknown tool is an `McpError` (-32602), every other failure a tool error */
  call: (name: string, args: unknown, ctx: OperationContext) => Promise<CallToolResult>
}

/** the MCP specification's tool names: 1 to 128 of letters, digits, `_`, `-`, `.` */
const TOOL_NAME = /^[A-Za-z0-9_.-]{1,128}$/

function jsonSchema (tool: string, schema: z.ZodObject, io: 'input' | 'output'): Tool['inputSchema'] {
  let converted: Record<string, unknown>
  try {
    converted = z.toJSONSchema(schema, { target: MCP_JSON_SCHEMA_TARGET, io, unrepresentable: 'any' }) as Record<string, unknown>
  } catch (err) {
    throw new McpToolDefinitionError(tool, `its ${io} schema has no JSON Schema form: ${errorMessage(err)}`, { cause: err })
  }
  if (converted.type !== 'object') throw new McpToolDefinitionError(tool, `its ${io} schema is not an object schema`)
  return converted as Tool['inputSchema']
}

/**
 * The tool error for a thrown error: the HTTP API's description of it (`toOpenAIError`), else,
 * for a typed error that API does not list, its own name and message; anything else is internal.
 */
export function toolError (err: unknown): CallToolResult {
  const { known, body: { error } } = toOpenAIError(err)
  let reason: McpToolErrorReason
  let message = error.message
  if (known) {
    reason = { name: error.name ?? MCP_INTERNAL_ERROR_NAME, type: error.type, code: error.code, param: error.param }
  } else if (err instanceof FlexnodeError) {
    const own = err as FlexnodeError & { param?: unknown, field?: unknown }
    const param = typeof own.param === 'string' ? own.param : typeof own.field === 'string' ? own.field : null
    reason = { name: err.name, type: 'server_error', code: null, param }
    message = err.message
  } else {
    reason = { name: MCP_INTERNAL_ERROR_NAME, type: error.type, code: error.code, param: error.param }
  }
  return {
    isError: true,
    content: [{ type: 'text', text: `${reason.name}: ${message}` }],
    _meta: { [MCP_ERROR_META_KEY]: reason }
  }
}

/** The operations as tools; throws `McpToolDefinitionError` for a name or schema that cannot be one. */
export function mcpTools (operations: readonly AnyOperation[], components: McpToolsComponents = {}): McpTools {
  const log = (components.logger ?? silentLogger()).forComponent('flexnode:mcp')
  const byName = new Map<string, AnyOperation>()
  const definitions: Tool[] = []
  for (const op of operations) {
    if (!TOOL_NAME.test(op.name)) throw new McpToolDefinitionError(op.name, 'a tool name is 1 to 128 letters, digits, "_", "-" or "."')
    if (byName.has(op.name)) throw new McpToolDefinitionError(op.name, 'two operations have this name')
    byName.set(op.name, op)
    definitions.push({
      name: op.name,
      description: op.description,
      inputSchema: jsonSchema(op.name, op.input, 'input'),
      outputSchema: jsonSchema(op.name, op.output, 'output')
    })
  }

  const call = async (name: string, args: unknown, ctx: OperationContext): Promise<CallToolResult> => {
    const op = byName.get(name)
    if (op === undefined) throw new McpError(ErrorCode.InvalidParams, `unknown tool ${JSON.stringify(name)}`)
    let output: unknown
    try {
      output = await op.run(parseInput(op.input, args ?? {}, 'arguments'), ctx)
    } catch (err) {
      const answer = toolError(err)
      if ((answer._meta?.[MCP_ERROR_META_KEY] as McpToolErrorReason).name === MCP_INTERNAL_ERROR_NAME) log.error({ err, tool: name }, 'tool call failed with an unexpected error')
      return answer
    }
    const result = op.output.safeParse(output)
    if (!result.success) {
      const err = new McpToolOutputError(name, z.prettifyError(result.error))
      log.error({ err, tool: name }, 'an operation broke its output schema')
      return toolError(err)
    }
    const structured = result.data as Record<string, unknown>
    return { content: [{ type: 'text', text: JSON.stringify(structured) }], structuredContent: structured }
  }

  return { definitions, call }
}

export interface McpServerInit {
  /** @default 'flexnode' */
  name?: string
  /** @default the package's version */
  version?: string
}

export interface McpServerContext {
  /** aborts every call of this server (the HTTP request went away, the node stops); a call is also aborted when its client cancels it */
  signal?: AbortSignal
  /** the caller's W3C `traceparent`, handed to each operation */
  traceparent?: string
}

/**
 * An MCP server offering the tools (operations are turned into tools first). Connect it to a
 * transport: stdio, or a streamable HTTP transport per request (`routes.ts`).
 */
export function mcpServer (tools: McpTools | readonly AnyOperation[], init: McpServerInit = {}, context: McpServerContext = {}): McpServer {
  const catalog = 'call' in tools ? tools : mcpTools(tools)
  const server = new McpServer({ name: init.name ?? MCP_SERVER_NAME, version: init.version ?? MCP_SERVER_VERSION })
  // the low-level handlers, not registerTool: the operations' schemas parse the arguments (a
  // typed reason naming the argument, as over HTTP) and the definitions are computed once
  server.server.registerCapabilities({ tools: {} })
  server.server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [...catalog.definitions] }))
  server.server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const signal = context.signal === undefined ? extra.signal : AbortSignal.any([extra.signal, context.signal])
    return await catalog.call(request.params.name, request.params.arguments, { signal, traceparent: context.traceparent })
  })
  return server
}
