/**
 * Browser access to the HTTP API: a DNS-rebinding page (a foreign `Host`) is refused, a
 * cross-origin state-changing request (a foreign `Origin`) is refused, and listings never show an
 * absolute file path. Real engine on a generated tiny model; raw node:http requests, because
 * fetch may not set `Host`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'node:http'
import { mkdir } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { ensureModel } from '../../../../fixtures/gguf/index.ts'
import { writeDamagedModels } from '../../../../fixtures/gguf/damaged.ts'
import { tempDir, type TempDir } from '../../../../fixtures/index.ts'
import { createInferenceEngine } from '../../inference/engine.ts'
import { silentLogger } from '../../logger.ts'
import { createHttpServer, type HttpServer } from '../server.ts'

type Engine = Awaited<ReturnType<typeof createInferenceEngine>>
interface Answer { status: number, body: string, json: () => { error?: { code: string, type: string } } & Record<string, unknown> }

/** One request to 127.0.0.1:port with exactly these headers. */
async function send (port: number, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }) } }, (res) => {
      let data = ''
      res.setEncoding('utf8').on('data', (c: string) => { data += c }).on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: data, json: () => JSON.parse(data) as ReturnType<Answer['json']> })
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}

describe('HTTP API: browser access', () => {
  let dir: TempDir
  let engine: Engine
  let server: HttpServer
  let port: number
  let model: string

  beforeAll(async () => {
    dir = await tempDir('flexnode-http-browser-')
    const models = join(dir.path, 'models')
    await mkdir(models)
    const good = await ensureModel(models, 'tiny', 1)
    model = basename(good, '.gguf')
    await writeDamagedModels(models, good)
    engine = await createInferenceEngine({ modelsDirs: [models], gpu: false, threads: 1, sequences: 1, contextSize: 256 }, { logger: silentLogger() })
    await engine.loadModel(model)
    server = createHttpServer({ port: 0, allowedHosts: ['flexnode.example.lan'] }, { engine, logger: silentLogger() })
    port = (await server.start()).port
  }, 120_000)

  afterAll(async () => {
    await server?.stop()
    await engine?.dispose()
    await dir?.[Symbol.asyncDispose]()
  })

  it('refuses a request whose Host is not a loopback name, the bound address or a configured name (DNS rebinding)', async () => {
    for (const host of ['attacker.example', `attacker.example:${port}`, `rebind.127.0.0.1.nip.io:${port}`, '10.0.0.1', 'localhost.attacker.example']) {
      for (const [method, path] of [['GET', '/v1/models'], ['GET', '/v1/node/models'], ['POST', `/v1/models/${model}/unload`], ['GET', '/v1/nope']]) {
        const res = await send(port, method!, path!, { host })
        expect(res.status, `${host} ${method} ${path}`).toBe(403)
        expect(res.json().error).toMatchObject({ code: 'host_not_allowed', type: 'permission_error' })
        expect(res.body).not.toContain(model)
      }
    }
    expect(engine.listModels().find(m => m.id === model)!.loaded).toBe(true)
  })

  it('answers loopback names, with or without the port, and the configured names', async () => {
    for (const host of ['localhost', `localhost:${port}`, 'LOCALHOST', '127.0.0.1', `127.0.0.1:${port}`, '127.1.2.3', `[::1]:${port}`, '[::1]', 'flexnode.example.lan', `flexnode.example.lan:${port}`]) {
      const res = await send(port, 'GET', '/v1/models', { host })
      expect(res.status, host).toBe(200)
    }
  })

  it('refuses state-changing and generating requests from a foreign Origin, and serves those without one', async () => {
    const chat = JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 })
    const host = `127.0.0.1:${port}`
    for (const origin of ['http://attacker.example', 'https://attacker.example:8443', 'null', `http://attacker.example:${port}`]) {
      for (const [path, body] of [[`/v1/models/${model}/unload`, undefined], [`/v1/models/${model}/load`, undefined], ['/v1/chat/completions', chat], ['/v1/embeddings', JSON.stringify({ model, input: 'x' })]] as const) {
        const res = await send(port, 'POST', path, { host, origin }, body)
        expect(res.status, `${origin} ${path}`).toBe(403)
        expect(res.json().error).toMatchObject({ code: 'origin_not_allowed', type: 'permission_error' })
      }
    }
    // the body-less cross-origin unload did nothing
    expect(engine.listModels().find(m => m.id === model)!.loaded).toBe(true)
    // a page of the node's own (loopback) origin, and clients that send no Origin (curl, SDKs)
    expect((await send(port, 'POST', '/v1/chat/completions', { host, origin: `http://localhost:${port}` }, chat)).status).toBe(200)
    expect((await send(port, 'POST', '/v1/chat/completions', { host, origin: 'http://flexnode.example.lan' }, chat)).status).toBe(200)
    expect((await send(port, 'POST', '/v1/chat/completions', { host }, chat)).status).toBe(200)
    // reading is not state-changing: a foreign Origin on GET gets the answer (no CORS header lets a page read it)
    const get = await send(port, 'GET', '/v1/models', { host, origin: 'http://attacker.example' })
    expect(get.status).toBe(200)
    expect(get.body.includes('access-control-allow-origin')).toBe(false)
  })

  it('lists models without absolute file paths, damaged ones with their errors', async () => {
    const res = await send(port, 'GET', '/v1/node/models', { host: `localhost:${port}` })
    expect(res.status).toBe(200)
    expect(res.body).not.toContain(dir.path)
    const list = res.json() as unknown as { data: Array<{ id: string, file: string, error?: { name: string, message: string } }> }
    expect(list.data.find(m => m.id === model)!.file).toBe(`${model}.gguf`)
    expect(list.data.find(m => m.id === 'cut-1-byte')!.error).toMatchObject({ name: 'InvalidGgufError' })
    const load = await send(port, 'POST', '/v1/models/cut-1-byte/load', { host: `localhost:${port}` })
    expect(load.status).toBe(422)
    expect(load.body).not.toContain(dir.path)
  })
})

describe('HTTP API bound to another address', () => {
  it('answers the bound address as Host', async () => {
    const server = createHttpServer({ host: '127.0.0.2', port: 0 }, { engine: { listModels: () => [], chat: async () => { throw new Error('unused') }, complete: async () => { throw new Error('unused') }, embed: async () => { throw new Error('unused') } }, logger: silentLogger() })
    const { port } = await server.start()
    try {
      const res = await new Promise<number>((resolve, reject) => {
        request({ host: '127.0.0.2', port, path: '/v1/models', headers: { host: `127.0.0.2:${port}` } }, (r) => { r.resume(); resolve(r.statusCode ?? 0) }).on('error', reject).end()
      })
      expect(res).toBe(200)
    } finally {
      await server.stop()
    }
  })
})
