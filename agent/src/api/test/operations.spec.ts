/**
 * Every operation of `nodeOperations` run on one real node (conductor, mesh, engine with a
 * generated model, memory, artifacts, WASM tasks), through `runOperation` as the MCP server and
 * the HTTP routes run them: arguments parsed by the input schema, the result by the output schema.
 * Then the schema refusals of each: a typed `InvalidRequestError` naming the field, nothing run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { NOTES_HAPP, waitUntil, type TestAgent } from '../../../../fixtures/index.ts'
import { OPERATION_TOOLS as TOOLS, operationsNode, type OperationsNode } from '../../../../fixtures/operations-node.ts'
import type { WasmFixtures } from '../../../../fixtures/wasm.ts'
import type { AnyOperation } from '../operation.ts'
import { runOperation } from '../operations.ts'

type Json = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

describe('node operations on a running node', () => {
  let n: OperationsNode
  let a: TestAgent
  let model: string
  let wasm: WasmFixtures
  let self: string
  const ran = new Set<string>()

  const op = (name: string): AnyOperation => {
    const found = a.node.operations.find(o => o.name === name)
    if (found === undefined) throw new Error(`no operation ${name}`)
    return found
  }
  const run = async (name: string, args: unknown): Promise<Json> => {
    const out = await runOperation(op(name), args, { signal: AbortSignal.timeout(60_000) })
    ran.add(name)
    return out
  }
  /** a refusal: the typed error's name and its field */
  const refusal = async (name: string, args: unknown): Promise<[string, unknown]> => {
    try {
      await runOperation(op(name), args, { signal: AbortSignal.timeout(60_000) })
    } catch (err) {
      const e = err as Error & { param?: string, field?: string }
      return [e.name, e.param ?? e.field]
    }
    throw new Error(`${name} accepted ${JSON.stringify(args)}`)
  }

  beforeAll(async () => {
    n = await operationsNode('flexnode-ops-')
    ;({ agent: a, model, wasm, self } = n)
  }, 60_000)

  afterAll(async () => {
    await n?.[Symbol.asyncDispose]()
  })

  it('lists every tool of the issue, each with object schemas', () => {
    expect(a.node.operations.map(o => o.name).sort()).toEqual([...TOOLS].sort())
    for (const o of a.node.operations) {
      expect(o.description.length, o.name).toBeGreaterThan(0)
      expect(o.input.def.type, o.name).toBe('object')
      expect(o.output.def.type, o.name).toBe('object')
      // what an MCP server advertises: JSON Schemas of the input and the output
      expect(z.toJSONSchema(o.input, { io: 'input' }), o.name).toMatchObject({ type: 'object' })
      expect(z.toJSONSchema(o.output, { io: 'output' }), o.name).toMatchObject({ type: 'object' })
    }
    // CONTRACTS §11.3–§11.5's enums and required fields
    const schema = (name: string): Json => z.toJSONSchema(op(name).input, { io: 'input' }) as Json
    expect(schema('holochain.join_mesh')).toMatchObject({ required: ['network', 'agent_name', 'capabilities'], properties: { network: { enum: ['mainnet', 'testnet', 'local'] } } })
    expect(schema('resources.allocate')).toMatchObject({ required: ['resource_type'], properties: { resource_type: { enum: ['compute', 'inference', 'storage', 'memory'] }, locality_preference: { enum: ['nearest', 'cheapest', 'fastest', 'any'] } } })
    expect(schema('inference.moe_query')).toMatchObject({ required: ['prompt', 'task_type'] })
  })

  it('holochain.*: reports the conductor, joins, registers, lists peers, installs a hApp', async () => {
    const conductor = await run('holochain.init_conductor', {})
    expect(conductor).toMatchObject({ status: 'running', agent_pubkey: self, network: 'local', admin_port: a.node.info.admin_port, app_port: a.node.info.app_port, installed_app_id: 'flexstack', peer_id: a.node.info.peer_id })
    expect((conductor.cells as Json[]).map(c => c.role).sort()).toEqual(['agent_registry', 'artifact_index', 'memory_shards', 'policy_store', 'resource_mesh'])
    // idempotent
    expect(await run('holochain.init_conductor', {})).toEqual(conductor)

    const joined = await run('holochain.join_mesh', { network: 'local', agent_name: 'ops-node', capabilities: { storage: { s3_available_gb: 7 } } })
    expect(joined).toEqual({ agent_pubkey: self, cell_ids: expect.any(Array) as unknown, peer_count: 0, mesh_status: 'isolated' })
    expect(joined.cell_ids).toHaveLength(5)
    expect(await refusal('holochain.join_mesh', { network: 'testnet', agent_name: 'x', capabilities: {} })).toEqual(['WrongNetworkError', undefined])
    expect(await refusal('holochain.join_mesh', { network: 'local', agent_name: 'x', capabilities: {}, bootstrap_override: 'not a multiaddr' })).toEqual(['InvalidInputError', 'bootstrap_override'])
    expect((await refusal('holochain.join_mesh', { network: 'local', agent_name: 'x', capabilities: {}, bootstrap_override: '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWGRUJz1j1o5gquSVhZZ4M3DkE6LMsmM6TgAX1PuEpDqAo' }))[0]).toBe('BootstrapDialError')

    const registered = await run('holochain.register_node', { capabilities: { compute: { cpu_arch: 'riscv64' } }, network: { latency_region: 'eu-north' } })
    expect(registered).toMatchObject({ node_id: self, agent_name: 'ops-node', action_hash: expect.stringMatching(/^uhCkk/) as unknown })
    // the earlier overrides are kept, the new ones merged over the probed capability
    expect(registered.capability).toMatchObject({ agent_name: 'ops-node', capabilities: { storage: { s3_available_gb: 7 }, compute: { cpu_arch: 'riscv64' } }, network: { latency_region: 'eu-north' } })
    // the DNA's rules refuse what a NodeCapability may not hold, and the earlier offer stays
    expect((await refusal('holochain.register_node', { capabilities: { compute: { cpu_cores: -3 } } }))[0]).not.toBe('InvalidRequestError')
    expect((await run('holochain.register_node', {})).capability).toMatchObject({ agent_name: 'ops-node', capabilities: { compute: { cpu_arch: 'riscv64' } } })

    await waitUntil(async () => ((await run('holochain.query_peers', {})).peers as Json[]).some(p => p.node_id === self && p.agent_name === 'ops-node'), { what: 'the node to list itself', timeoutMs: 20_000 })
    const peers = await run('holochain.query_peers', { include_offline: false })
    expect(peers.peers).toContainEqual(expect.objectContaining({ node_id: self, self: true, state: expect.stringMatching(/^(online|busy)$/) as unknown, latency_region: 'eu-north' }))
    expect(peers.connected).toBe(0)

    const bundled = await run('holochain.install_dna', { dna: 'agent_registry' })
    expect(bundled).toMatchObject({ installed_app_id: 'flexstack', already_installed: true, cell_ids: [expect.stringMatching(/^uhC0k.+:uhCAk/)] })
    const notes = await run('holochain.install_dna', { dna: NOTES_HAPP })
    expect(notes).toMatchObject({ installed_app_id: 'notes', already_installed: false })
    expect(notes.cell_ids.length).toBeGreaterThan(0)
    expect(await run('holochain.install_dna', { dna: NOTES_HAPP })).toEqual({ ...notes, already_installed: true })
    expect(await refusal('holochain.install_dna', { dna: '/etc/passwd' })).toEqual(['InvalidInputError', 'dna'])
  }, 60_000)

  it('resources.*: available, allocate, release, schedule_task', async () => {
    await waitUntil(async () => ((await run('resources.query_available', {})).nodes as Json[]).some(n => n.node_id === self), { what: 'the node to see its own offer', timeoutMs: 20_000 })
    const available = await run('resources.query_available', { resource_type: 'compute', requirements: { cpu_cores: 1 } })
    expect(available.nodes[0]).toMatchObject({ node_id: self, self: true, advertised: { cpu_cores: 4 } })

    const lease = await run('resources.allocate', { resource_type: 'compute', requirements: { cpu_cores: 2, memory_gb: 1 }, duration_seconds: 600 })
    expect(lease).toMatchObject({ node_id: self, resource_type: 'compute', resources: { cpu_cores: 2 }, allocation_id: expect.stringMatching(/^uhCkk/) as unknown })
    expect(lease).not.toHaveProperty('placement')
    expect(await run('resources.release', { allocation_id: lease.allocation_id })).toEqual({ allocation_id: lease.allocation_id, released: true })
    const explained = await run('resources.allocate', { resource_type: 'compute', requirements: { cpu_cores: 1 }, explain: true })
    expect(explained.placement).toMatchObject({ picked: self })
    await run('resources.release', { allocation_id: explained.allocation_id })

    const task = await run('resources.schedule_task', { wasm_base64: Buffer.from(wasm.echo).toString('base64'), input_base64: Buffer.from('hi').toString('base64') })
    expect(Buffer.from(task.output_base64 as string, 'base64').toString()).toBe('HI')
    expect(task).toMatchObject({ exit_code: 0, node_id: self })
  }, 60_000)

  it('inference.*: single and MOE queries, unload and load', async () => {
    const single = await run('inference.single_query', { prompt: 'Hi', max_tokens: 3 })
    expect(single).toMatchObject({ model, node: self, response: expect.any(String) as unknown })
    const moe = await run('inference.moe_query', { prompt: 'Hi', task_type: 'general', max_tokens: 3, require_consensus: false })
    expect(moe).toMatchObject({ response: expect.any(String) as unknown, consensus_score: expect.any(Number) as unknown, trace_id: expect.any(String) as unknown })
    expect(moe.model_votes[0]).toMatchObject({ model })

    expect(await run('inference.unload_model', { id: model })).toEqual({ id: model, loaded: false })
    expect(a.node.inference.listModels().find(m => m.id === model)?.loaded).toBe(false)
    expect(await run('inference.load_model', { id: model })).toMatchObject({ id: model, loaded: true })
    expect((await refusal('inference.load_model', { id: 'no-such-model' }))[0]).toBe('ModelNotFoundError')
  }, 60_000)

  it('memory.*: create, insert, search, info, list, delete', async () => {
    expect(await run('memory.create_collection', { name: 'ops', dimensions: 2, distance: 'cosine', shard_count: 1, replication_factor: 1 })).toMatchObject({ name: 'ops', dimensions: 2, shard_count: 1 })
    expect(await run('memory.insert', { collection: 'ops', points: [{ id: 'a', vector: [1, 0], metadata: { lang: 'en' } }, { id: 'b', vector: [0, 1] }] })).toMatchObject({ written: 2 })
    const found = await run('memory.search', { collection: 'ops', vector: [1, 0.1], k: 1, filter: { lang: 'en' } })
    expect(found.results).toEqual([expect.objectContaining({ id: 'a', metadata: { lang: 'en' } })])
    expect(await run('memory.info', { name: 'ops' })).toMatchObject({ name: 'ops', count: 2, shards: [expect.objectContaining({ shard: 0 })] })
    expect((await run('memory.list_collections', {})).collections).toContainEqual(expect.objectContaining({ name: 'ops' }))
    expect(await run('memory.delete_collection', { name: 'ops' })).toEqual({ name: 'ops', deleted: true })
    expect((await refusal('memory.info', { name: 'ops' }))[0]).toBe('UnknownCollectionError')
    // the capability's own checks name the element at fault
    await run('memory.create_collection', { name: 'ops2', dimensions: 2, distance: 'l2', shard_count: 1, replication_factor: 1 })
    expect(await refusal('memory.insert', { collection: 'ops2', points: [{ id: 'p', vector: [1, 2, 3] }] })).toEqual(['InvalidVectorError', 'points[0].vector'])
  }, 60_000)

  it('artifacts.*: add, get, stat, pin, unpin, providers, list, publish and pull a model', async () => {
    const added = await run('artifacts.add', { name: 'hello.txt', content: 'hello, mesh', media_type: 'text/plain' })
    expect(added).toMatchObject({ cid: expect.any(String) as unknown, size: 11, record: expect.stringMatching(/^uhCkk/) as unknown })
    expect(await run('artifacts.get', { cid: added.cid, encoding: 'utf8' })).toEqual({ cid: added.cid, size: 11, encoding: 'utf8', content: 'hello, mesh' })
    expect((await run('artifacts.get', { cid: added.cid })).content).toBe(Buffer.from('hello, mesh').toString('base64'))
    expect(await refusal('artifacts.get', { cid: added.cid, max_bytes: 4 })).toEqual(['InvalidInputError', 'max_bytes'])
    expect(await run('artifacts.stat', { cid: added.cid })).toMatchObject({ cid: added.cid, size: 11, local: true })
    const bytes = await run('artifacts.add', { name: 'b.bin', content_base64: Buffer.from([0, 1, 2, 255]).toString('base64'), cid_version: 1, pin: false })
    expect(bytes.size).toBe(4)
    expect(await run('artifacts.pin', { cid: bytes.cid })).toEqual({ cid: bytes.cid, pinned: true })
    await waitUntil(async () => ((await run('artifacts.providers', { cid: bytes.cid })).providers as Json[]).some(p => p.node === self), { what: 'this node to provide it', timeoutMs: 20_000 })
    expect(await run('artifacts.providers', { cid: bytes.cid })).toMatchObject({ cid: bytes.cid, live: 1 })
    expect(await run('artifacts.unpin', { cid: bytes.cid })).toEqual({ cid: bytes.cid, pinned: false })
    expect(((await run('artifacts.list', { limit: 10 })).artifacts as Json[]).map(r => r.cid)).toEqual(expect.arrayContaining([added.cid, bytes.cid]))

    const published = await run('artifacts.publish_model', { id: model })
    expect(published).toMatchObject({ model, cid: expect.any(String) as unknown })
    // the model sits in another models dir: pulled into the node's own (the same file, checked against its record)
    expect(await run('artifacts.pull_model', { cid: published.cid })).toMatchObject({ cid: published.cid, model: { id: model } })
  }, 60_000)

  it('serves the holochain.* operations at POST /v1/holochain/<verb>', async () => {
    const post = async (verb: string, body?: unknown): Promise<{ status: number, json: Json }> => {
      const res = await fetch(`http://127.0.0.1:${a.node.info.http_port}/v1/holochain/${verb}`, body === undefined
        ? { method: 'POST' }
        : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      return { status: res.status, json: await res.json() as Json }
    }
    // no body is {}
    const init = await post('init_conductor')
    expect(init).toEqual({ status: 200, json: await run('holochain.init_conductor', {}) })
    expect(await post('query_peers', {})).toMatchObject({ status: 200, json: { peers: expect.arrayContaining([expect.objectContaining({ node_id: self })]) as unknown } })
    expect(await post('join_mesh', { network: 'local', agent_name: 'ops-node', capabilities: {} })).toMatchObject({ status: 200, json: { agent_pubkey: self, mesh_status: 'isolated' } })
    expect(await post('register_node', { agent_name: 'ops-node' })).toMatchObject({ status: 200, json: { node_id: self, agent_name: 'ops-node' } })
    expect(await post('install_dna', { dna: 'policy_store' })).toMatchObject({ status: 200, json: { installed_app_id: 'flexstack', already_installed: true } })
    // refusals: the schema's (400 with the field), the operation's typed ones
    expect(await post('join_mesh', { network: 'local', agent_name: 'x' })).toMatchObject({ status: 400, json: { error: { name: 'InvalidRequestError', param: 'capabilities' } } })
    expect(await post('init_conductor', { force: true })).toMatchObject({ status: 400, json: { error: { param: 'force' } } })
    expect(await post('join_mesh', { network: 'mainnet', agent_name: 'x', capabilities: {} })).toMatchObject({ status: 409, json: { error: { name: 'WrongNetworkError', code: 'wrong_network', param: 'network' } } })
    expect(await post('install_dna', { dna: '/no/such/app.happ' })).toMatchObject({ status: 400, json: { error: { name: 'InvalidInputError', param: 'dna' } } })
    expect((await post('no_such_verb')).status).toBe(404)
  }, 60_000)

  it('ran every operation', () => {
    expect([...ran].sort()).toEqual([...TOOLS].sort())
  })

  it('refuses schema-invalid arguments with the field at fault, running nothing', async () => {
    const cases: Array<[string, unknown, string]> = [
      ['holochain.init_conductor', { force: true }, 'force'],
      ['holochain.join_mesh', { agent_name: 'x', capabilities: {} }, 'network'],
      ['holochain.join_mesh', { network: 'moon', agent_name: 'x', capabilities: {} }, 'network'],
      ['holochain.join_mesh', { network: 'local', capabilities: {} }, 'agent_name'],
      ['holochain.join_mesh', { network: 'local', agent_name: 'x' }, 'capabilities'],
      ['holochain.join_mesh', { network: 'local', agent_name: 'x', capabilities: { compute: { cpu_cores: 'many' } } }, 'capabilities.compute.cpu_cores'],
      ['holochain.register_node', { capabilities: { gpu: {} } }, 'capabilities.gpu'],
      ['holochain.query_peers', { include_offline: 'yes' }, 'include_offline'],
      ['holochain.install_dna', {}, 'dna'],
      ['resources.allocate', {}, 'resource_type'],
      ['resources.allocate', { resource_type: 'gold' }, 'resource_type'],
      ['resources.allocate', { resource_type: 'compute', requirements: { cores: 1 } }, 'requirements.cores'],
      ['resources.allocate', { resource_type: 'compute', duration_seconds: '60' }, 'duration_seconds'],
      ['resources.allocate', { resource_type: 'compute', locality_preference: 'far' }, 'locality_preference'],
      ['resources.release', {}, 'allocation_id'],
      ['resources.query_available', { requirements: { gpu: 'yes' } }, 'requirements.gpu'],
      ['resources.schedule_task', {}, 'wasm_base64'],
      ['resources.schedule_task', { wasm_base64: 'AGFz bQ==' }, 'wasm_base64'],
      ['resources.schedule_task', { wasm_cid: 'x', limits: { cpu_ms: 0 } }, 'limits.cpu_ms'],
      ['inference.moe_query', { task_type: 'general' }, 'prompt'],
      ['inference.moe_query', { prompt: 'x', task_type: 'poetry' }, 'task_type'],
      ['inference.moe_query', { prompt: 'x', task_type: 'general', max_tokens: -1 }, 'max_tokens'],
      ['inference.single_query', { prompt: '' }, 'prompt'],
      ['inference.single_query', { prompt: 'x', max_tokens: 1.5 }, 'max_tokens'],
      ['inference.load_model', {}, 'id'],
      ['inference.unload_model', { id: 3 }, 'id'],
      ['memory.create_collection', { name: 'x', dimensions: 2, distance: 'hamming' }, 'distance'],
      ['memory.create_collection', { name: 'x', dimensions: 2, distance: 'l2', colour: 'red' }, 'colour'],
      ['memory.insert', { collection: 'x', points: 'all' }, 'points'],
      ['memory.insert', { collection: 'x', points: [{ id: 'p', vector: [1], size: 2 }] }, 'points[0].size'],
      ['memory.insert', { collection: 'x', points: [], write_consistency: 'most' }, 'write_consistency'],
      ['memory.search', { collection: 'x', vector: [1] }, 'k'],
      ['memory.info', {}, 'name'],
      ['memory.list_collections', { all: true }, 'all'],
      ['memory.delete_collection', { name: 5 }, 'name'],
      ['artifacts.add', { name: 'x' }, 'content'],
      ['artifacts.add', { name: 'x', content: 'a', content_base64: 'YQ==' }, 'content'],
      ['artifacts.add', { name: 'x', content: 'a', cid_version: 2 }, 'cid_version'],
      ['artifacts.get', { cid: 'x', encoding: 'hex' }, 'encoding'],
      ['artifacts.get', { cid: 'x', max_bytes: 1e9 }, 'max_bytes'],
      ['artifacts.stat', {}, 'cid'],
      ['artifacts.pin', { cid: 1 }, 'cid'],
      ['artifacts.unpin', { cid: 'x', recursive: true }, 'recursive'],
      ['artifacts.providers', {}, 'cid'],
      ['artifacts.list', { limit: -1 }, 'limit'],
      ['artifacts.publish_model', {}, 'id'],
      ['artifacts.pull_model', { cid: 'x', load: 'yes' }, 'load']
    ]
    for (const [name, args, field] of cases) {
      expect({ name, field, got: await refusal(name, args) }).toEqual({ name, field, got: ['InvalidRequestError', field] })
    }
    // not an object at all
    expect(await refusal('resources.release', ['x'])).toEqual(['InvalidRequestError', 'arguments'])
    // the node kept serving
    expect((await run('holochain.init_conductor', {})).status).toBe('running')
  }, 60_000)
})
