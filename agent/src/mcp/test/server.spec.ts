/**
 * Operations as MCP tools, served at `/mcp` by the real HTTP core and called by the SDK's own
 * client over streamable HTTP: the tool definitions, structured results, arguments the schema
 * refuses, typed tool errors, and the core's guard in front of the route.
 */
import { describe, expect, it } from 'vitest'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { ErrorCode, McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'
import { defineOperation, type AnyOperation } from '../../api/operation.ts'
import { FlexnodeError } from '../../errors.ts'
import { httpServer } from '../../http/server.ts'
import { ModelNotFoundError, RequestAbortedError } from '../../inference/types.ts'
import { silentLogger } from '../../logger.ts'
import { MCP_ERROR_META_KEY } from '../constants.ts'
import { mcpRoutes } from '../routes.ts'
import { mcpServer, McpToolDefinitionError, mcpTools, type McpToolErrorReason } from '../server.ts'

class TankEmptyError extends FlexnodeError {
  static override readonly name = 'TankEmptyError'
  readonly param = 'tank'
}

function operations (seen: { traceparent?: string, aborted?: boolean }): AnyOperation[] {
  return [
    defineOperation({
      name: 'test.echo',
      description: 'Echo a text some times',
      input: z.object({ text: z.string().min(1), times: z.number().int().min(1).max(5).default(1) }).strict(),
      output: z.object({ text: z.string(), length: z.number() }),
      run: async (input, ctx) => {
        seen.traceparent = ctx.traceparent
        const text = input.text.repeat(input.times)
        return { text, length: text.length }
      }
    }),
    defineOperation({
      name: 'test.fail',
      description: 'Fail in a chosen way',
      input: z.object({ how: z.enum(['model', 'typed', 'bug', 'shape']) }),
      output: z.object({ ok: z.boolean() }),
      run: async (input) => {
        if (input.how === 'model') throw new ModelNotFoundError('no-such-model')
        if (input.how === 'typed') throw new TankEmptyError('the tank is empty')
        if (input.how === 'shape') return { ok: 'yes' } as unknown as { ok: boolean }
        throw new TypeError('secret internals')
      }
    })
  ]
}

const errorOf = (result: CallToolResult): McpToolErrorReason => result._meta?.[MCP_ERROR_META_KEY] as McpToolErrorReason
const textOf = (result: CallToolResult): string => (result.content[0] as { text: string }).text

describe('MCP tools over streamable HTTP', () => {
  it('lists the operations with their schemas, calls them, and refuses what their schemas refuse', async () => {
    const seen: { traceparent?: string } = {}
    await using http = httpServer({ port: 0 })({ logger: silentLogger(), routes: [mcpRoutes({ operations: operations(seen) })] })
    const { port } = await http.start()
    const url = new URL(`http://127.0.0.1:${port}/mcp`)
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
    const client = new Client({ name: 'test', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers: { traceparent } } }))
    try {
      expect(client.getServerVersion()?.name).toBe('flexnode')
      // tools only, and no list_changed notifications promised: the list is fixed for the node's life
      expect(client.getServerCapabilities()).toEqual({ tools: {} })

      const { tools } = await client.listTools()
      expect(tools.map(t => t.name)).toEqual(['test.echo', 'test.fail'])
      const echo = tools[0]!
      expect(echo.description).toBe('Echo a text some times')
      expect(echo.inputSchema).toMatchObject({ type: 'object', required: ['text'], additionalProperties: false, properties: { text: { type: 'string', minLength: 1 }, times: { type: 'integer', default: 1, maximum: 5 } } })
      expect(echo.outputSchema).toMatchObject({ type: 'object', required: ['text', 'length'], properties: { text: { type: 'string' }, length: { type: 'number' } } })

      // a result: structured, and the same JSON as text; the schema's default applied
      const ok = await client.callTool({ name: 'test.echo', arguments: { text: 'ab', times: 2 } }) as CallToolResult
      expect(ok.isError).toBeFalsy()
      expect(ok.structuredContent).toEqual({ text: 'abab', length: 4 })
      expect(JSON.parse(textOf(ok))).toEqual({ text: 'abab', length: 4 })
      expect((await client.callTool({ name: 'test.echo', arguments: { text: 'x' } })).structuredContent).toEqual({ text: 'x', length: 1 })
      // the operation runs in the HTTP request's trace: the same trace id, the node's own span
      const [version, traceId, spanId] = traceparent.split('-')
      expect(seen.traceparent).toMatch(new RegExp(`^${version}-${traceId}-[0-9a-f]{16}-01$`))
      expect(seen.traceparent!.split('-')[2]).not.toBe(spanId)

      // arguments the schema refuses: a tool error naming the argument, the operation not run
      seen.traceparent = undefined
      for (const [args, param] of [
        [{ text: 'x', times: 9 }, 'times'],
        [{ text: 'x', times: 'two' }, 'times'],
        [{ times: 1 }, 'text'],
        [{ text: 'x', colour: 'red' }, 'colour']
      ] as const) {
        const refused = await client.callTool({ name: 'test.echo', arguments: args }) as CallToolResult
        expect(refused.isError, JSON.stringify(args)).toBe(true)
        expect(refused.structuredContent).toBeUndefined()
        expect(errorOf(refused)).toEqual({ name: 'InvalidRequestError', type: 'invalid_request_error', code: 'invalid_value', param })
        expect(textOf(refused)).toMatch(new RegExp(`^InvalidRequestError: ${param}`))
      }
      expect(textOf(await client.callTool({ name: 'test.echo', arguments: { text: 'x', colour: 'red' } }) as CallToolResult)).toBe('InvalidRequestError: colour is not a known field')
      expect(seen.traceparent).toBeUndefined()

      // errors: the typed reason as the HTTP API names it, a typed error it does not list, a bug
      const model = await client.callTool({ name: 'test.fail', arguments: { how: 'model' } }) as CallToolResult
      expect(model.isError).toBe(true)
      expect(errorOf(model)).toEqual({ name: 'ModelNotFoundError', type: 'invalid_request_error', code: 'model_not_found', param: 'model' })
      expect(textOf(model)).toMatch(/^ModelNotFoundError: .*no-such-model/)
      const typed = await client.callTool({ name: 'test.fail', arguments: { how: 'typed' } }) as CallToolResult
      expect(errorOf(typed)).toEqual({ name: 'TankEmptyError', type: 'server_error', code: null, param: 'tank' })
      expect(textOf(typed)).toBe('TankEmptyError: the tank is empty')
      const bug = await client.callTool({ name: 'test.fail', arguments: { how: 'bug' } }) as CallToolResult
      expect(bug.isError).toBe(true)
      expect(errorOf(bug).name).toBe('InternalServerError')
      expect(textOf(bug)).not.toContain('secret')
      const shape = await client.callTool({ name: 'test.fail', arguments: { how: 'shape' } }) as CallToolResult
      expect(errorOf(shape).name).toBe('McpToolOutputError')
      expect(textOf(shape)).toMatch(/^McpToolOutputError: the result of test\.fail does not match its output schema/)

      // an unknown tool is a protocol error
      const unknown = await client.callTool({ name: 'test.nope', arguments: {} }).then(() => undefined, (err: unknown) => err)
      expect(unknown).toBeInstanceOf(McpError)
      expect((unknown as McpError).code).toBe(ErrorCode.InvalidParams)

      // the server still serves
      expect((await client.callTool({ name: 'test.echo', arguments: { text: 'y' } })).structuredContent).toEqual({ text: 'y', length: 1 })
    } finally {
      await client.close()
    }

    // stateless: no server-sent stream, no session to end; the core's guard stands in front
    expect((await fetch(url, { headers: { accept: 'text/event-stream' } })).status).toBe(405)
    expect((await fetch(url, { method: 'DELETE' })).status).toBe(405)
    const foreign = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', origin: 'http://evil.example' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' })
    })
    expect(foreign.status).toBe(403)
    const notJson = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{"jsonrpc":' })
    expect(notJson.status).toBe(400)
  })

  it('hands each call an abort signal: the client cancelling it, or the server\'s own (the HTTP request gone)', async () => {
    const started = Promise.withResolvers<void>()
    const aborted = Promise.withResolvers<unknown>()
    const wait = defineOperation({
      name: 'test.wait',
      description: 'Wait until aborted',
      input: z.object({}),
      output: z.object({ done: z.boolean() }),
      run: async (_input, ctx) => {
        ctx.signal.addEventListener('abort', () => { aborted.resolve(ctx.signal.reason) }, { once: true })
        started.resolve()
        return await new Promise<never>((_resolve, reject) => { ctx.signal.addEventListener('abort', () => { reject(ctx.signal.reason) }, { once: true }) })
      }
    })
    // the client cancels: the operation's signal aborts
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
    const server = mcpServer([wait])
    await server.connect(serverSide)
    const client = new Client({ name: 'test', version: '1.0.0' })
    await client.connect(clientSide)
    const cancel = new AbortController()
    const call = client.callTool({ name: 'test.wait', arguments: {} }, undefined, { signal: cancel.signal }).then(() => 'answered', () => 'cancelled')
    await started.promise
    cancel.abort()
    await aborted.promise
    expect(await call).toBe('cancelled')
    await client.close()

    // the server's context signal aborts (as routes.ts passes the HTTP request's): so does the call, a tool error
    const gone = new AbortController()
    const second = { started: Promise.withResolvers<void>() }
    const op = { ...wait, run: async (input: Record<string, never>, ctx: { signal: AbortSignal }) => { second.started.resolve(); return await wait.run(input, ctx) } }
    const [c2, s2] = InMemoryTransport.createLinkedPair()
    await mcpServer([op], {}, { signal: gone.signal }).connect(s2)
    const client2 = new Client({ name: 'test', version: '1.0.0' })
    await client2.connect(c2)
    const result = client2.callTool({ name: 'test.wait', arguments: {} })
    await second.started.promise
    gone.abort(new RequestAbortedError('the client disconnected'))
    const answer = await result as CallToolResult
    expect(answer.isError).toBe(true)
    expect(errorOf(answer).name).toBe('RequestAbortedError')
    await client2.close()
  })

  it('refuses operations that cannot be tools', () => {
    const op = operations({})[0]!
    const err = (ops: AnyOperation[]): unknown => { try { mcpTools(ops) } catch (e) { return e } }
    expect((err([op, op]) as Error).name).toBe(McpToolDefinitionError.name)
    expect((err([{ ...op, name: 'has space' }]) as McpToolDefinitionError).tool).toBe('has space')
  })
})
