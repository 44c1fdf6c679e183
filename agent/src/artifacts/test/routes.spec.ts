/**
 * The artifacts routes over HTTP on a real node (its embedded conductor, mesh and Helia store),
 * with the real `fetch`: a streamed upload recorded and pinned, Kubo's CID for Kubo's defaults,
 * ranges, providers, records, unpin; every bad input answers its status and typed `name`, writes
 * nothing, and the node keeps serving.
 */
import { randomBytes, createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestAgent, type TestAgent } from '../../../../fixtures/index.ts'
import { encodeHash } from '../../holo/hash.ts'

type Json = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

describe('artifacts HTTP routes', () => {
  let a: TestAgent
  let base: string

  const upload = async (query: string, body: string | Uint8Array | ReadableStream<Uint8Array>, headers: Record<string, string> = {}): Promise<{ status: number, json: Json }> => {
    const res = await fetch(`${base}/v1/artifacts?${query}`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream', ...headers }, duplex: 'half' } as RequestInit)
    return { status: res.status, json: await res.json() as Json }
  }
  const get = async (route: string, headers: Record<string, string> = {}): Promise<Response> => await fetch(`${base}${route}`, { headers })
  const failure = async (pending: Promise<{ status: number, json: Json }>): Promise<[number, string]> => {
    const { status, json } = await pending
    expect(json.error, JSON.stringify(json)).toMatchObject({ message: expect.any(String) as unknown })
    return [status, json.error.name as string]
  }

  beforeAll(async () => {
    a = await createTestAgent({ artifacts: { fetchTimeoutMs: 1000, maxUploadBytes: 8 * 1024 * 1024, replicationIntervalMs: 3_600_000 } })
    base = `http://127.0.0.1:${a.node.info.http_port}`
  }, 60_000)

  afterAll(async () => { await a?.[Symbol.asyncDispose]() })

  it('adds with Kubo\'s defaults and gets Kubo\'s CID; the record names this node as producer and provider', async () => {
    const added = await upload('name=hello.txt&media_type=text/plain', 'hello world\n')
    expect(added.status, JSON.stringify(added.json)).toBe(200)
    expect(added.json).toMatchObject({ cid: 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', size: 12, sha256: createHash('sha256').update('hello world\n').digest('hex') })
    const record = await (await get(`/v1/artifacts/${added.json.cid as string}/record`)).json() as Json
    expect(record).toMatchObject({ name: 'hello.txt', media_type: 'text/plain', size: 12, producer: encodeHash(a.node.keystore.primary.agentPubKey), replication: { min: 3, max: 5 } })
    const providers = await (await get(`/v1/artifacts/${added.json.cid as string}/providers`)).json() as Json
    expect(providers).toMatchObject({ live: 1, providers: [{ node: encodeHash(a.node.keystore.primary.agentPubKey), live: true }] })
    const listed = await (await get('/v1/artifacts')).json() as Json
    expect((listed.artifacts as Json[]).map(r => r.cid)).toContain(added.json.cid)
  })

  it('streams a multi-block upload in and out, with ranges, and unpins it', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 5)
    // a body sent as a stream of pieces, without a content-length
    const body = new ReadableStream<Uint8Array>({
      start (controller) {
        for (let i = 0; i < bytes.byteLength; i += 100_000) controller.enqueue(bytes.subarray(i, i + 100_000))
        controller.close()
      }
    })
    const added = await upload('name=blob.bin&cid_version=1&chunker=size-65536', body)
    expect(added.status, JSON.stringify(added.json)).toBe(200)
    expect(added.json.cid).toMatch(/^bafy/)
    const cid = added.json.cid as string
    const whole = await get(`/v1/artifacts/${cid}`)
    expect(whole.status).toBe(200)
    expect(whole.headers.get('content-length')).toBe(String(bytes.byteLength))
    expect(Buffer.from(await whole.arrayBuffer()).equals(bytes)).toBe(true)
    const part = await get(`/v1/artifacts/${cid}`, { range: 'bytes=65530-131080' })
    expect(part.status).toBe(206)
    expect(part.headers.get('content-range')).toBe(`bytes 65530-131080/${bytes.byteLength}`)
    expect(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(65530, 131081))).toBe(true)
    const tail = await get(`/v1/artifacts/${cid}`, { range: 'bytes=-10' })
    expect(Buffer.from(await tail.arrayBuffer()).equals(bytes.subarray(bytes.byteLength - 10))).toBe(true)
    expect((await get(`/v1/artifacts/${cid}`, { range: `bytes=${bytes.byteLength}-` })).status).toBe(416)
    expect(await a.node.artifacts.pins()).toContain(cid)
    const unpinned = await fetch(`${base}/v1/artifacts/${cid}/pin`, { method: 'DELETE' })
    expect(await unpinned.json()).toEqual({ cid, pinned: false })
    expect(await a.node.artifacts.pins()).not.toContain(cid)
    expect((await (await get(`/v1/artifacts/${cid}/providers`)).json() as Json).providers).toEqual([])

    // pin=false: recorded for the mesh, not pinned or provided here
    const loose = await upload('name=loose.bin&pin=false', randomBytes(1000))
    expect(loose.status, JSON.stringify(loose.json)).toBe(200)
    expect(await a.node.artifacts.record(loose.json.cid as string)).toMatchObject({ name: 'loose.bin', size: 1000 })
    expect(await a.node.artifacts.pins()).not.toContain(loose.json.cid)
    expect(await a.node.artifacts.providers(loose.json.cid as string)).toEqual([])
  })

  it('refuses bad input with its status and name, and stores nothing', async () => {
    const before = (await a.node.artifacts.pins()).sort()
    expect(await failure(upload('cid_version=1', 'x'))).toEqual([400, 'InvalidInputError'])
    expect(await failure(upload('name=a&cid_version=2', 'x'))).toEqual([400, 'InvalidImportOptionsError'])
    expect(await failure(upload('name=a&chunker=rabin', 'x'))).toEqual([400, 'InvalidImportOptionsError'])
    expect(await failure(upload('name=a&raw_leaves=maybe', 'x'))).toEqual([400, 'InvalidImportOptionsError'])
    expect(await failure(upload('name=a/b', 'x'))).toEqual([400, 'InvalidInputError'])
    expect(await failure(upload('name=a&media_type=nope', 'x'))).toEqual([400, 'InvalidInputError'])
    expect(await failure(upload('name=a&min=3&max=2', 'x'))).toEqual([400, 'InvalidInputError'])
    expect(await failure(upload('name=a&color=red', 'x'))).toEqual([400, 'InvalidInputError'])
    // past the upload limit: 413, whether announced by content-length or only found while streaming
    expect(await failure(upload('name=big.bin', randomBytes(9 * 1024 * 1024)))).toEqual([413, 'PayloadTooLargeError'])
    const big = new ReadableStream<Uint8Array>({ start (c) { for (let i = 0; i < 90; i++) c.enqueue(randomBytes(100_000)); c.close() } })
    expect(await failure(upload('name=big.bin', big))).toEqual([413, 'PayloadTooLargeError'])
    const json = async (r: Response): Promise<{ status: number, json: Json }> => ({ status: r.status, json: await r.json() as Json })
    expect(await failure(json(await get('/v1/artifacts/not-a-cid')))).toEqual([400, 'InvalidCidError'])
    expect(await failure(json(await get('/v1/artifacts/not-a-cid/providers')))).toEqual([400, 'InvalidCidError'])
    // a CID nobody has: the fetch gives up (fetchTimeoutMs) with 404
    expect(await failure(json(await get('/v1/artifacts/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku')))).toEqual([404, 'ContentNotFoundError'])
    expect(await failure(json(await get('/v1/artifacts/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku/record')))).toEqual([404, 'ArtifactNotRecordedError'])
    expect(await failure(json(await fetch(`${base}/v1/models/pull`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ cid: 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', stream: false }) })))).toEqual([400, 'InvalidInputError'])
    expect((await a.node.artifacts.pins()).sort()).toEqual(before)
    // and the node still serves
    expect((await upload('name=after.txt', 'still here')).status).toBe(200)
  })
})
