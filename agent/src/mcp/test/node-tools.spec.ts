/**
 * The Done-when for MCP: a client of `@modelcontextprotocol/sdk` lists every tool the
 * issue names and calls each one successfully against a running node, over streamable HTTP
 * (`/mcp` on the node's HTTP port) and over stdio (`flexnode mcp --data-dir …`, a child process
 * forwarding to that same node); arguments the schema refuses and a failing call come back as
 * tool errors (`isError`) with the typed reason. One node serves both transports.
 */
import type { Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { REPO_ROOT, waitUntil, type TestAgent } from '../../../../fixtures/index.ts'
import { OPERATION_TOOLS as TOOLS, operationsNode, type OperationsNode } from '../../../../fixtures/operations-node.ts'
import type { WasmFixtures } from '../../../../fixtures/wasm.ts'
import { MCP_ERROR_META_KEY } from '../constants.ts'
import type { McpToolErrorReason } from '../server.ts'

/** a model load or an MOE query may take longer than the SDK's default 60 s on a busy machine */
const CALL_TIMEOUT_MS = 120_000

type Json = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

const textOf = (r: CallToolResult): string => (r.content[0] as { type: 'text', text: string }).text
const reasonOf = (r: CallToolResult): McpToolErrorReason => r._meta?.[MCP_ERROR_META_KEY] as McpToolErrorReason

describe('the node\'s tools over MCP', () => {
  let n: OperationsNode
  let a: TestAgent
  let model: string
  let wasm: WasmFixtures
  let self: string

  beforeAll(async () => {
    n = await operationsNode('flexnode-mcp-')
    ;({ agent: a, model, wasm, self } = n)
  }, 120_000)

  afterAll(async () => {
    await n?.[Symbol.asyncDispose]()
  })

  /** Lists the tools, calls every one successfully, then a refused and a failing call; `tag` keeps the two runs' names apart. */
  async function exercise (client: Client, tag: string): Promise<void> {
    const { tools } = await client.listTools()
    expect(tools.map(t => t.name)).toEqual(expect.arrayContaining([...TOOLS]))
    for (const t of tools) {
      expect(t.description?.length, t.name).toBeGreaterThan(0)
      expect(t.inputSchema.type, t.name).toBe('object')
      expect(t.outputSchema?.type, t.name).toBe('object')
    }
    // CONTRACTS §11's schemas, as the client sees them
    const byName = new Map(tools.map(t => [t.name, t]))
    expect(byName.get('holochain.join_mesh')!.inputSchema).toMatchObject({ required: expect.arrayContaining(['network', 'agent_name', 'capabilities']) as unknown, properties: { network: { enum: ['mainnet', 'testnet', 'local'] } } })
    expect(byName.get('holochain.join_mesh')!.outputSchema).toMatchObject({ properties: { mesh_status: { enum: ['connected', 'syncing', 'isolated'] } } })
    expect(byName.get('resources.allocate')!.inputSchema).toMatchObject({ required: ['resource_type'], properties: { resource_type: { enum: ['compute', 'inference', 'storage', 'memory'] } } })
    expect(byName.get('inference.moe_query')!.outputSchema).toMatchObject({ required: expect.arrayContaining(['response', 'consensus_score', 'model_votes', 'trace_id']) as unknown })

    const called = new Set<string>()
    /** a successful call: structured content (the client checks it against the output schema) and the same JSON as text */
    const call = async (name: string, args: Record<string, unknown>): Promise<Json> => {
      const result = await client.callTool({ name, arguments: args }, undefined, { timeout: CALL_TIMEOUT_MS }) as CallToolResult
      expect(result.isError, `${name}: ${JSON.stringify(result.content)}`).toBeFalsy()
      expect(JSON.parse(textOf(result))).toEqual(result.structuredContent)
      called.add(name)
      return result.structuredContent as Json
    }
    const fail = async (name: string, args: Record<string, unknown>): Promise<CallToolResult> => {
      const result = await client.callTool({ name, arguments: args }, undefined, { timeout: CALL_TIMEOUT_MS }) as CallToolResult
      expect(result.isError, `${name} ${JSON.stringify(args)} succeeded`).toBe(true)
      expect(result.structuredContent).toBeUndefined()
      return result
    }

    // holochain.*
    expect(await call('holochain.init_conductor', {})).toMatchObject({ status: 'running', agent_pubkey: self, network: 'local', installed_app_id: 'flexstack' })
    expect(await call('holochain.join_mesh', { network: 'local', agent_name: `mcp-${tag}`, capabilities: { storage: { s3_available_gb: 1 } } }))
      .toMatchObject({ agent_pubkey: self, mesh_status: 'isolated', peer_count: 0 })
    expect(await call('holochain.register_node', { agent_name: `mcp-${tag}` })).toMatchObject({ node_id: self, agent_name: `mcp-${tag}` })
    await waitUntil(async () => ((await call('holochain.query_peers', {})).peers as Json[]).some(p => p.node_id === self && p.agent_name === `mcp-${tag}`), { what: 'the node to list itself', timeoutMs: 30_000 })
    expect(await call('holochain.install_dna', { dna: 'agent_registry' })).toMatchObject({ installed_app_id: 'flexstack', already_installed: true })

    // resources.*
    await waitUntil(async () => ((await call('resources.query_available', { resource_type: 'compute' })).nodes as Json[]).some(n => n.node_id === self), { what: 'the node to see its own offer', timeoutMs: 30_000 })
    const lease = await call('resources.allocate', { resource_type: 'compute', requirements: { cpu_cores: 1 }, duration_seconds: 600 })
    expect(lease).toMatchObject({ node_id: self, resource_type: 'compute', allocation_id: expect.stringMatching(/^uhCkk/) as unknown })
    expect(await call('resources.release', { allocation_id: lease.allocation_id })).toEqual({ allocation_id: lease.allocation_id, released: true })
    const task = await call('resources.schedule_task', { wasm_base64: Buffer.from(wasm.echo).toString('base64'), input_base64: Buffer.from(`via ${tag}`).toString('base64') })
    expect(Buffer.from(task.output_base64 as string, 'base64').toString()).toBe(`VIA ${tag.toUpperCase()}`)

    // inference.*
    expect(await call('inference.single_query', { prompt: 'Hi', max_tokens: 3 })).toMatchObject({ model, node: self })
    const moe = await call('inference.moe_query', { prompt: 'Hi', task_type: 'general', max_tokens: 3, require_consensus: false })
    expect(moe.model_votes[0]).toMatchObject({ model })
    expect(await call('inference.unload_model', { id: model })).toEqual({ id: model, loaded: false })
    expect(await call('inference.load_model', { id: model })).toMatchObject({ id: model, loaded: true })

    // memory.*
    const collection = `mcp_${tag}`
    expect(await call('memory.create_collection', { name: collection, dimensions: 2, distance: 'cosine', shard_count: 1, replication_factor: 1 })).toMatchObject({ name: collection, dimensions: 2 })
    expect(await call('memory.insert', { collection, points: [{ id: 'a', vector: [1, 0], metadata: { via: tag } }, { id: 'b', vector: [0, 1] }] })).toMatchObject({ written: 2 })
    expect((await call('memory.search', { collection, vector: [1, 0.1], k: 1 })).results).toEqual([expect.objectContaining({ id: 'a', metadata: { via: tag } })])
    expect(await call('memory.info', { name: collection })).toMatchObject({ name: collection, count: 2 })
    expect((await call('memory.list_collections', {})).collections).toContainEqual(expect.objectContaining({ name: collection }))
    expect(await call('memory.delete_collection', { name: collection })).toEqual({ name: collection, deleted: true })

    // artifacts.*
    const text = `hello from ${tag}`
    const added = await call('artifacts.add', { name: `${tag}.txt`, content: text, media_type: 'text/plain' })
    expect(await call('artifacts.get', { cid: added.cid, encoding: 'utf8' })).toEqual({ cid: added.cid, size: text.length, encoding: 'utf8', content: text })
    expect(await call('artifacts.stat', { cid: added.cid })).toMatchObject({ cid: added.cid, size: text.length, local: true })
    expect(await call('artifacts.pin', { cid: added.cid })).toEqual({ cid: added.cid, pinned: true })
    await waitUntil(async () => ((await call('artifacts.providers', { cid: added.cid })).providers as Json[]).some(p => p.node === self), { what: 'this node to provide it', timeoutMs: 30_000 })
    expect(((await call('artifacts.list', { limit: 100 })).artifacts as Json[]).map(r => r.cid)).toContain(added.cid)
    expect(await call('artifacts.unpin', { cid: added.cid })).toEqual({ cid: added.cid, pinned: false })
    const published = await call('artifacts.publish_model', { id: model })
    expect(published).toMatchObject({ model, cid: expect.any(String) as unknown })
    expect(await call('artifacts.pull_model', { cid: published.cid })).toMatchObject({ cid: published.cid, model: { id: model } })

    expect([...called].sort()).toEqual([...TOOLS].sort())

    // arguments the schema refuses: a tool error naming the argument, nothing run
    const refused = await fail('resources.allocate', { resource_type: 'compute', requirements: { cpu_cores: 'two' } })
    expect(reasonOf(refused)).toEqual({ name: 'InvalidRequestError', type: 'invalid_request_error', code: 'invalid_value', param: 'requirements.cpu_cores' })
    expect(textOf(refused)).toMatch(/^InvalidRequestError: requirements\.cpu_cores: /)
    const unknownField = await fail('memory.create_collection', { name: 'x', dimensions: 2, distance: 'l2', colour: 'red' })
    expect(textOf(unknownField)).toBe('InvalidRequestError: colour is not a known field')
    expect(reasonOf(await fail('inference.moe_query', { prompt: 'x', task_type: 'poetry' })).param).toBe('task_type')
    // a call that fails: the typed reason
    const missing = await fail('memory.info', { name: `never_${tag}` })
    expect(reasonOf(missing)).toMatchObject({ name: 'UnknownCollectionError', code: 'collection_not_found' })
    expect(textOf(missing)).toMatch(/^UnknownCollectionError: /)
    const wrongNetwork = await fail('holochain.join_mesh', { network: 'mainnet', agent_name: `mcp-${tag}`, capabilities: {} })
    expect(reasonOf(wrongNetwork).name).toBe('WrongNetworkError')
    expect(textOf(wrongNetwork)).toMatch(/^WrongNetworkError: .*mainnet/)
    // the node kept serving
    expect((await call('holochain.init_conductor', {})).status).toBe('running')
  }

  it('over streamable HTTP at /mcp on the node\'s HTTP port', async () => {
    const client = new Client({ name: 'flexnode-test', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${a.node.info.http_port}/mcp`)))
    try {
      await exercise(client, 'http')
    } finally {
      await client.close()
    }
  }, 300_000)

  it('over stdio: flexnode mcp --data-dir, forwarding to the same node', async () => {
    const transport = new StdioClientTransport({ command: process.execPath, args: ['bin/flexnode.js', 'mcp', '--data-dir', a.dataDir], cwd: REPO_ROOT, env: getDefaultEnvironment(), stderr: 'pipe' })
    let stderr = ''
    ;(transport.stderr as Readable).setEncoding('utf8').on('data', (c: string) => { stderr += c })
    const client = new Client({ name: 'flexnode-test', version: '1.0.0' })
    await client.connect(transport)
    try {
      expect(client.getServerVersion()?.name).toBe('flexnode')
      await exercise(client, 'stdio')
    } finally {
      await client.close()
    }
    expect(stderr).toBe('')
  }, 300_000)
})
