/**
 * The resources routes over HTTP on a real node (and a second one, "someone else"), with the real
 * `fetch`: allocate, renew, release, available, allocations and WASM tasks; every bad input
 * answers its status and typed `name`, and the node keeps serving.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestAgent, waitUntil, type TestAgent } from '../../../../fixtures/index.ts'
import { buildWasmFixtures, type WasmFixtures } from '../../../../fixtures/wasm.ts'
import { ResourceMeshClient } from '../../../../zomes-ts/resource_mesh/client.ts'
import { decodeHash, encodeHash, hashFrom32 } from '../../holo/hash.ts'
import { WASM_MAX_MODULE_BYTES } from '../wasm.ts'

const CAPACITY = { cpu_cores: 4, memory_gb: 8, gpu_count: 0, storage_gb: 50 }

type Json = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

const b64 = (bytes: Uint8Array | string): string => Buffer.from(bytes).toString('base64')

describe('resources HTTP routes', () => {
  let a: TestAgent
  let b: TestAgent
  let wasm: WasmFixtures
  let base: string
  let selfId: string

  const call = async (method: 'GET' | 'POST', route: string, body?: unknown, at = base): Promise<{ status: number, json: Json }> => {
    const res = await fetch(`${at}${route}`, body === undefined
      ? { method }
      : { method, headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) })
    return { status: res.status, json: await res.json() as Json }
  }
  const post = async (route: string, body: unknown): Promise<{ status: number, json: Json }> => await call('POST', route, body)
  /** a failure: its status and typed name (and the OpenAI fields an OpenAI client reads) */
  const failure = async (pending: Promise<{ status: number, json: Json }>): Promise<{ status: number, name: string, param: unknown }> => {
    const { status, json } = await pending
    expect(json.error, JSON.stringify(json)).toMatchObject({ message: expect.any(String) as unknown, type: expect.any(String) as unknown })
    return { status, name: json.error.name as string, param: json.error.param }
  }

  beforeAll(async () => {
    ;[a, wasm] = await Promise.all([createTestAgent({ resourceCapacity: CAPACITY, wasmThreads: 1 }), buildWasmFixtures()])
    b = await createTestAgent({ resourceCapacity: { cpu_cores: 0, memory_gb: 0, gpu_count: 0, storage_gb: 0 }, wasmThreads: 1, bootstrap: a.node.info.multiaddrs })
    base = `http://127.0.0.1:${a.node.info.http_port}`
    selfId = a.node.info.agent_pub_key
    // placement sees the node once its own capability is advertised
    await waitUntil(async () => (await call('GET', '/v1/resources/available')).json.nodes?.some((n: Json) => n.node_id === selfId), { what: 'the node to see its own offer', timeoutMs: 20_000 })
  }, 60_000)

  afterAll(async () => {
    await b?.[Symbol.asyncDispose]()
    await a?.[Symbol.asyncDispose]()
  })

  it('allocates, lists, renews and releases a lease; available counts it', async () => {
    const got = await post('/v1/resources/allocate', { resource_type: 'compute', requirements: { cpu_cores: 2, memory_gb: 1 }, duration_seconds: 600 })
    expect(got.status, JSON.stringify(got.json)).toBe(200)
    const lease = got.json
    expect(lease).toMatchObject({ node_id: selfId, resource_type: 'compute', resources: { cpu_cores: 2, memory_gb: 1 } })
    expect(lease.allocation_id).toMatch(/^uhCkk/)
    expect(lease.endpoint).toMatch(/\/resources\/1$/)
    expect(Date.parse(lease.expires_at as string)).toBeGreaterThan(Date.now() + 500_000)
    expect(lease).not.toHaveProperty('placement')

    const available = (await call('GET', '/v1/resources/available?resource_type=compute')).json
    const self = available.nodes.find((n: Json) => n.node_id === selfId)
    expect(self).toMatchObject({ self: true, advertised: CAPACITY, leased: { cpu_cores: 2, memory_gb: 1 }, free: { cpu_cores: 2, memory_gb: 7 } })
    expect(available.total.free.cpu_cores).toBe(2)
    // requirements filter the nodes: nobody has 3 free cores now
    const filtered = await call('GET', '/v1/resources/available?cpu_cores=3&gpu=false')
    expect(filtered.status).toBe(200)
    expect(filtered.json.nodes).toEqual([])

    const mine = (await call('GET', '/v1/resources/allocations')).json
    expect(mine.held.find((l: Json) => l.allocation_id === lease.allocation_id)).toMatchObject({ live: true })
    expect(mine.provided.find((l: Json) => l.allocation_id === lease.allocation_id)).toMatchObject({ holder: selfId })

    const renewed = await post('/v1/resources/renew', { allocation_id: lease.allocation_id, duration_seconds: 1200 })
    expect(renewed.status, JSON.stringify(renewed.json)).toBe(200)
    expect(renewed.json.allocation_id).not.toBe(lease.allocation_id)
    expect(Date.parse(renewed.json.expires_at as string)).toBeGreaterThan(Date.parse(lease.expires_at as string))
    // the old id is no longer a live lease
    expect(await failure(post('/v1/resources/release', { allocation_id: lease.allocation_id }))).toMatchObject({ status: 410, name: 'LeaseNotLiveError' })

    // someone else (another node of the mesh) may not release it
    const other = `http://127.0.0.1:${b.node.info.http_port}`
    const hash = decodeHash(renewed.json.allocation_id as string, 'Action')
    await waitUntil(async () => await new ResourceMeshClient(b.node.client).getAllocation(hash) !== null, { what: 'the allocation to reach the other node', timeoutMs: 30_000 })
    expect(await failure(call('POST', '/v1/resources/release', { allocation_id: renewed.json.allocation_id }, other))).toMatchObject({ status: 403, name: 'NotTheHolderError', param: 'allocation_id' })

    const released = await post('/v1/resources/release', { allocation_id: renewed.json.allocation_id })
    expect(released).toEqual({ status: 200, json: { allocation_id: renewed.json.allocation_id, released: true } })
    expect((await call('GET', '/v1/resources/available')).json.total.leased.cpu_cores).toBe(0)

    // with explain: every candidate's explanation
    const explained = await call('POST', '/v1/resources/allocate?explain=true', { resource_type: 'compute', duration_seconds: 60 })
    expect(explained.status).toBe(200)
    expect(explained.json.placement.picked).toBe(selfId)
    expect(explained.json.placement.candidates.find((c: Json) => c.node_id === selfId)).toMatchObject({ eligible: true, explain: expect.any(String) as unknown })
    await post('/v1/resources/release', { allocation_id: explained.json.allocation_id })
    // more than the mesh has
    expect(await failure(post('/v1/resources/allocate', { resource_type: 'compute', requirements: { cpu_cores: 64 } }))).toMatchObject({ status: 503, name: 'NoCapacityError' })
  }, 60_000)

  it('runs a WASM task and answers its output and usage; a task that misbehaves answers its typed error', async () => {
    const done = await post('/v1/resources/tasks', { wasm_base64: b64(wasm.echo), input_base64: b64('hello http'), limits: { memory_mb: 16, cpu_ms: 5000 } })
    expect(done.status, JSON.stringify(done.json)).toBe(200)
    expect(Buffer.from(done.json.output_base64 as string, 'base64').toString()).toBe('HELLO HTTP')
    expect(done.json).toMatchObject({ exit_code: 0, node_id: selfId, usage: { cpu_ms: expect.any(Number) as unknown, wall_ms: expect.any(Number) as unknown, peak_memory_mb: expect.any(Number) as unknown } })
    expect(done.json.allocation_id).toMatch(/^uhCkk/)
    expect(done.json).not.toHaveProperty('placement')
    const explained = await post('/v1/resources/tasks', { wasm_base64: b64(wasm.echo), explain: true })
    expect(explained.json.placement.picked).toBe(selfId)

    expect(await failure(post('/v1/resources/tasks', { wasm_base64: b64(wasm.loop), limits: { cpu_ms: 200 } }))).toMatchObject({ status: 422, name: 'WasmCpuLimitError' })
    expect(await failure(post('/v1/resources/tasks', { wasm_base64: b64(wasm.notWasm) }))).toMatchObject({ status: 422, name: 'InvalidWasmModuleError' })
    expect(await failure(post('/v1/resources/tasks', { wasm_base64: b64(wasm.unknownImport) }))).toMatchObject({ status: 422, name: 'WasmImportError' })
    expect(await failure(post('/v1/resources/tasks', { wasm_base64: b64(wasm.trap) }))).toMatchObject({ status: 422, name: 'WasmTrapError' })
    expect(await failure(post('/v1/resources/tasks', { wasm_cid: 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku' }))).toMatchObject({ status: 404, name: 'WasmModuleNotFoundError' })
    // each task's lease was released
    expect((await call('GET', '/v1/resources/available')).json.total.leased.cpu_cores).toBe(0)
    // and the node keeps serving
    const again = await post('/v1/resources/tasks', { wasm_base64: b64(wasm.echo), input_base64: b64('ok') })
    expect(Buffer.from(again.json.output_base64 as string, 'base64').toString()).toBe('OK')
  }, 60_000)

  it('refuses each bad input with its status and name, and keeps serving', async () => {
    const unknownId = encodeHash(hashFrom32(new Uint8Array(32).fill(7), 'Action'))
    const cases: Array<[Promise<{ status: number, json: Json }>, number, string, string?]> = [
      // a value outside an enum or of the wrong type is the schema's (`schemas.ts`, shared with MCP); a range the scheduler's
      [post('/v1/resources/allocate', { resource_type: 'gpu-farm' }), 400, 'InvalidInputError', 'resource_type'],
      [post('/v1/resources/allocate', {}), 400, 'InvalidInputError', 'resource_type'],
      [post('/v1/resources/allocate', { resource_type: 'compute', workload_class: 'nope' }), 400, 'InvalidSchedulerInputError', 'workload_class'],
      [post('/v1/resources/allocate', { resource_type: 'compute', requirements: { cpu_cores: -1 } }), 400, 'InvalidSchedulerInputError', 'requirements.cpu_cores'],
      [post('/v1/resources/allocate', { resource_type: 'compute', requirements: { cpu_cores: 'NaN' } }), 400, 'InvalidInputError', 'requirements.cpu_cores'],
      [post('/v1/resources/allocate', { resource_type: 'compute', requirements: { memory_gb: 1e12 } }), 400, 'InvalidSchedulerInputError', 'requirements.memory_gb'],
      [post('/v1/resources/allocate', { resource_type: 'compute', requirements: { cores: 1 } }), 400, 'InvalidInputError', 'requirements.cores'],
      [post('/v1/resources/allocate', { resource_type: 'compute', locality_preference: 'moon' }), 400, 'InvalidInputError', 'locality_preference'],
      [post('/v1/resources/allocate', { resource_type: 'compute', duration_seconds: 0 }), 400, 'InvalidInputError', 'duration_seconds'],
      [post('/v1/resources/allocate', { resource_type: 'compute', duration_seconds: 31 * 86400 }), 400, 'InvalidInputError', 'duration_seconds'],
      [post('/v1/resources/allocate', { resource_type: 'compute', duration_seconds: '60' }), 400, 'InvalidInputError', 'duration_seconds'],
      [post('/v1/resources/allocate', { resource_type: 'compute', colour: 'blue' }), 400, 'InvalidInputError', 'colour'],
      [post('/v1/resources/allocate', { resource_type: 'compute', node_id: 'somebody' }), 400, 'InvalidInputError', 'node_id'],
      [call('POST', '/v1/resources/allocate?explain=maybe', { resource_type: 'compute' }), 400, 'InvalidInputError', 'explain'],
      [post('/v1/resources/allocate', '[1, 2]'), 400, 'InvalidInputError', 'body'],
      [post('/v1/resources/allocate', '{"resource_type": '), 400, 'MalformedJsonError'],
      [post('/v1/resources/renew', { allocation_id: unknownId }), 400, 'InvalidInputError', 'duration_seconds'],
      [post('/v1/resources/renew', { allocation_id: unknownId, duration_seconds: 60 }), 410, 'LeaseNotLiveError', 'allocation_id'],
      [post('/v1/resources/release', { allocation_id: 'not-an-id' }), 400, 'InvalidInputError', 'allocation_id'],
      [post('/v1/resources/release', { allocation_id: unknownId }), 410, 'LeaseNotLiveError', 'allocation_id'],
      [post('/v1/resources/release', { allocation_id: unknownId, force: true }), 400, 'InvalidInputError', 'force'],
      [call('GET', '/v1/resources/available?cpu_cores=-1'), 400, 'InvalidInputError', 'cpu_cores'],
      [call('GET', '/v1/resources/available?cpu_cores=NaN'), 400, 'InvalidInputError', 'cpu_cores'],
      [call('GET', '/v1/resources/available?cpu_cores=1e3'), 400, 'InvalidInputError', 'cpu_cores'],
      [call('GET', '/v1/resources/available?memory_gb=99999999999'), 400, 'InvalidSchedulerInputError', 'requirements.memory_gb'],
      [call('GET', '/v1/resources/available?resource_type=gpu-farm'), 400, 'InvalidInputError', 'resource_type'],
      [call('GET', '/v1/resources/available?gpu=yes'), 400, 'InvalidInputError', 'gpu'],
      [call('GET', '/v1/resources/available?cpu_cores=1&cpu_cores=2'), 400, 'InvalidInputError', 'cpu_cores'],
      [call('GET', '/v1/resources/available?colour=blue'), 400, 'InvalidInputError', 'colour'],
      [call('GET', '/v1/resources/allocations?all=true'), 400, 'InvalidInputError', 'all'],
      [post('/v1/resources/tasks', { wasm_base64: 'AGFzbQ' }), 400, 'InvalidInputError', 'wasm_base64'],
      [post('/v1/resources/tasks', { wasm_base64: 'AGFz bQ==' }), 400, 'InvalidInputError', 'wasm_base64'],
      [post('/v1/resources/tasks', { wasm_base64: 'AGFzbR==' }), 400, 'InvalidInputError', 'wasm_base64'],
      [post('/v1/resources/tasks', { wasm_base64: '_-_-' }), 400, 'InvalidInputError', 'wasm_base64'],
      [post('/v1/resources/tasks', { wasm_base64: b64(wasm.echo), input_base64: 'a' }), 400, 'InvalidInputError', 'input_base64'],
      [post('/v1/resources/tasks', { wasm_base64: 'A'.repeat(Math.ceil(WASM_MAX_MODULE_BYTES / 3) * 4 + 4) }), 400, 'InvalidInputError', 'wasm_base64'],
      [post('/v1/resources/tasks', { input_base64: 'aGk=' }), 400, 'InvalidInputError', 'wasm_base64'],
      [post('/v1/resources/tasks', { wasm_base64: b64(wasm.echo), limits: { cpu_ms: 0 } }), 400, 'InvalidInputError', 'limits.cpu_ms'],
      [post('/v1/resources/tasks', { wasm_base64: b64(wasm.echo), limits: { gpu_ms: 1 } }), 400, 'InvalidInputError', 'limits.gpu_ms'],
      [post('/v1/resources/tasks', { wasm_base64: b64(wasm.echo), wasm: [0, 97] }), 400, 'InvalidInputError', 'wasm'],
      [post('/v1/resources/tasks', { wasm_cid: 'not-a-cid' }), 400, 'InvalidInputError', 'wasm_cid']
    ]
    for (const [pending, status, name, param] of cases) {
      const got = await failure(pending)
      expect({ status: got.status, name: got.name }, JSON.stringify({ status, name, param })).toEqual({ status, name })
      if (param !== undefined) expect(got.param, name).toBe(param)
    }
    // nothing was leased by any of them, and the node still allocates
    expect((await call('GET', '/v1/resources/available')).json.total.leased.cpu_cores).toBe(0)
    const ok = await post('/v1/resources/allocate', { resource_type: 'compute', duration_seconds: 30 })
    expect(ok.status).toBe(200)
    await post('/v1/resources/release', { allocation_id: ok.json.allocation_id })
  }, 60_000)
})
