/**
 * `flexnode mcp` as an MCP client starts it (a child process on stdio), forwarding to an `/mcp`
 * endpoint served by the real HTTP core: found through a data dir's `node.json` with its local
 * token, or named with `--node` and `--api-token`; and its failures: no node, a refused token, the
 * node going away during a session.
 */
import { describe, expect, it } from 'vitest'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { ErrorCode, McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'
import { REPO_ROOT, tempDir } from '../../../../fixtures/index.ts'
import { runFlexnode } from '../../../../fixtures/spawn-node.ts'
import { defineOperation } from '../../api/operation.ts'
import { RUNTIME_FILE } from '../../constants.ts'
import { sendJson } from '../../http/body.ts'
import { httpServer } from '../../http/server.ts'
import type { HttpRoutes } from '../../http/types.ts'
import { silentLogger } from '../../logger.ts'
import { LeaseNotLiveError } from '../../resources/types.ts'
import { MCP_ERROR_META_KEY } from '../constants.ts'
import { mcpRoutes } from '../routes.ts'

const TOKEN = 'test-token-0123456789'

const operations = [
  defineOperation({
    name: 'test.add',
    description: 'Add two numbers',
    input: z.object({ a: z.number(), b: z.number() }).strict(),
    output: z.object({ sum: z.number() }),
    run: async ({ a, b }) => ({ sum: a + b })
  }),
  defineOperation({
    name: 'test.release',
    description: 'Release a lease that is gone',
    input: z.object({ allocation_id: z.string() }),
    output: z.object({ released: z.boolean() }),
    run: async ({ allocation_id: id }) => { throw new LeaseNotLiveError(id, 'expired') }
  })
]

/** `/mcp`, behind a bearer token check (the node's auth does this in front of every route). */
function guarded (routes: HttpRoutes, seen: string[]): HttpRoutes {
  const post = routes.paths!['/mcp']!.POST!
  return {
    paths: {
      '/mcp': {
        POST: async (ctx) => {
          seen.push(ctx.req.headers.authorization ?? '')
          if (ctx.req.headers.authorization !== `Bearer ${TOKEN}`) {
            sendJson(ctx.res, 401, { error: { message: 'a valid API token is required', type: 'authentication_error', param: null, code: 'invalid_api_key' } })
            return
          }
          await post(ctx)
        }
      }
    }
  }
}

function bridge (args: string[]): { client: Client, transport: StdioClientTransport, stderr: () => string } {
  const transport = new StdioClientTransport({ command: process.execPath, args: ['bin/flexnode.js', 'mcp', ...args], cwd: REPO_ROOT, env: getDefaultEnvironment(), stderr: 'pipe' })
  let err = ''
  ;(transport.stderr as Readable).setEncoding('utf8').on('data', (c: string) => { err += c })
  return { client: new Client({ name: 'test', version: '1.0.0' }), transport, stderr: () => err }
}

const meta = (r: CallToolResult): unknown => r._meta?.[MCP_ERROR_META_KEY]

/** What a running node leaves in its data dir: its node.json, this process standing in as its pid. */
async function writeNodeJson (dataDir: string, httpPort: number): Promise<void> {
  await writeFile(join(dataDir, RUNTIME_FILE), JSON.stringify({
    pid: process.pid, admin_port: 1, app_port: 2, http_port: httpPort, installed_app_id: 'flexstack', agent_pub_key: 'uhCAk', peer_id: '12D3Koo', network: 'local', multiaddrs: []
  }))
}

describe('flexnode mcp (stdio bridge)', () => {
  it('forwards tools/list and tools/call to the node found by its data dir, with its local token', async () => {
    await using dir = await tempDir()
    const seen: string[] = []
    await using http = httpServer({ port: 0 })({ logger: silentLogger(), routes: [guarded(mcpRoutes({ operations }), seen)] })
    const { port } = await http.start()
    // what a running node leaves in its data dir: node.json and its local token
    await writeNodeJson(dir.path, port)
    await writeFile(join(dir.path, 'api-token'), `${TOKEN}\n`, { mode: 0o600 })

    const { client, transport, stderr } = bridge(['--data-dir', dir.path])
    await client.connect(transport)
    try {
      const { tools } = await client.listTools()
      expect(tools.map(t => t.name)).toEqual(['test.add', 'test.release'])
      expect(tools[0]!.inputSchema).toMatchObject({ type: 'object', required: ['a', 'b'] })
      expect(tools[0]!.outputSchema).toMatchObject({ type: 'object', required: ['sum'] })

      const sum = await client.callTool({ name: 'test.add', arguments: { a: 2, b: 3 } }) as CallToolResult
      expect(sum.isError).toBeFalsy()
      expect(sum.structuredContent).toEqual({ sum: 5 })

      const refused = await client.callTool({ name: 'test.add', arguments: { a: 2, b: 'three' } }) as CallToolResult
      expect(refused.isError).toBe(true)
      expect(meta(refused)).toMatchObject({ name: 'InvalidRequestError', param: 'b' })
      expect((refused.content[0] as { text: string }).text).toMatch(/^InvalidRequestError: b: /)

      const gone = await client.callTool({ name: 'test.release', arguments: { allocation_id: 'lease-1' } }) as CallToolResult
      expect(gone.isError).toBe(true)
      expect(meta(gone)).toEqual({ name: 'LeaseNotLiveError', type: 'invalid_request_error', code: 'lease_not_live', param: 'allocation_id' })

      const unknown = await client.callTool({ name: 'test.nope', arguments: {} }).then(() => undefined, (e: unknown) => e)
      expect(unknown).toBeInstanceOf(McpError)
      expect((unknown as McpError).code).toBe(ErrorCode.InvalidParams)
      expect(seen.length).toBeGreaterThan(0)
      expect(seen.every(h => h === `Bearer ${TOKEN}`)).toBe(true)

      // the node goes away: a tool error naming it, and the bridge still answers
      await http.stop()
      const down = await client.callTool({ name: 'test.add', arguments: { a: 1, b: 1 } }) as CallToolResult
      expect(down.isError).toBe(true)
      expect((down.content[0] as { text: string }).text).toMatch(/^NodeNotRunningError: no flexnode is running on .*does not answer/)
      expect(stderr()).toBe('')
    } finally {
      await client.close()
    }
    // closing stdin ends it, cleanly
    expect(transport.pid).toBeNull()
  })

  it('reaches a node by --node with --api-token; refuses without the token, with no node, and bad flags', async () => {
    await using dir = await tempDir()
    const seen: string[] = []
    await using http = httpServer({ port: 0 })({ logger: silentLogger(), routes: [guarded(mcpRoutes({ operations }), seen)] })
    const { port } = await http.start()
    const node = `http://127.0.0.1:${port}`

    const { client, transport } = bridge(['--node', node, '--api-token', TOKEN])
    await client.connect(transport)
    try {
      expect((await client.callTool({ name: 'test.add', arguments: { a: 20, b: 22 } })).structuredContent).toEqual({ sum: 42 })
    } finally {
      await client.close()
    }

    // without a token the node refuses the bridge
    const refused = await runFlexnode(['mcp', '--data-dir', dir.path, '--node', node])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/^flexnode: McpBridgeError: the node's MCP endpoint at http:\/\/127\.0\.0\.1:\d+\/mcp refused the request \(HTTP 401\): .*\n$/)
    expect(seen.at(-1)).toBe('')

    // a loopback --node that is not the data dir's node never sees the data dir's local token
    await writeFile(join(dir.path, 'api-token'), TOKEN)
    const foreign = await runFlexnode(['mcp', '--data-dir', dir.path, '--node', node])
    expect(foreign.code).toBe(1)
    expect(foreign.stderr).toMatch(/refused the request \(HTTP 401\)/)
    expect(seen.at(-1)).toBe('')
    // the data dir's node (its node.json names the port) named by --node on loopback gets it, as every CLI command sends it (resolveNode)
    await writeNodeJson(dir.path, port)
    const local = bridge(['--data-dir', dir.path, '--node', `http://localhost:${port}`])
    await local.client.connect(local.transport)
    try {
      expect((await local.client.callTool({ name: 'test.add', arguments: { a: 1, b: 2 } })).structuredContent).toEqual({ sum: 3 })
      expect(seen.at(-1)).toBe(`Bearer ${TOKEN}`)
    } finally {
      await local.client.close()
    }

    const none = await runFlexnode(['mcp', '--data-dir', join(dir.path, 'nothing')])
    expect(none.code).toBe(1)
    expect(none.stderr).toMatch(/^flexnode: NodeNotRunningError: no flexnode is running on .*nothing\n$/)
    expect(none.stdout).toBe('')

    await http.stop()
    const stopped = await runFlexnode(['mcp', '--node', node])
    expect(stopped.code).toBe(1)
    expect(stopped.stderr).toMatch(/^flexnode: NodeNotRunningError: no flexnode is running on http:\/\/127\.0\.0\.1:\d+ \(its MCP endpoint at .* does not answer: .*\)\n$/)

    const usage = await runFlexnode(['mcp', '--colour', 'red'])
    expect(usage.code).toBe(2)
    expect(usage.stderr).toMatch(/^flexnode: unknown option '--colour'/)
    const badUrl = await runFlexnode(['mcp', '--node', 'localhost:8080'])
    expect(badUrl.code).toBe(2)
    expect(badUrl.stderr).toMatch(/^flexnode: --node must be an http\(s\) URL such as http:\/\/host:port/)
    const help = await runFlexnode(['mcp', '--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/^Usage: flexnode mcp /)
  })
})
