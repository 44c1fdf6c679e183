/**
 * The core HTTP server with a capability's own routes mounted (as resources, memory, artifacts
 * will mount theirs): routing, 404/405, decoded path params, the browser guard and the body
 * limit apply to every capability's routes alike; stop is idempotent.
 */
import { describe, expect, it } from 'vitest'
import { silentLogger } from '../../logger.ts'
import { sendJson } from '../body.ts'
import { httpServer, type HttpRoutes } from '../server.ts'

const echoRoutes: HttpRoutes = {
  paths: {
    '/v1/echo': {
      GET: async ({ res }) => { sendJson(res, 200, { ok: true }) },
      POST: async ({ res, readJson }) => { sendJson(res, 200, { got: await readJson() }) }
    }
  },
  patterns: [{ pattern: /^\/v1\/echo\/([^/]+)$/, methods: { GET: async ({ res, params }) => { sendJson(res, 200, { id: params[0] }) } } }]
}

describe('HTTP core server', () => {
  it('serves a mounted capability\'s routes with the same routing, guard and limits as every route', async () => {
    await using http = httpServer({ port: 0, maxBodyBytes: 64 })({ logger: silentLogger(), routes: [echoRoutes] })
    const { port } = await http.start()
    const base = `http://127.0.0.1:${port}`
    expect(await (await fetch(`${base}/v1/echo`)).json()).toEqual({ ok: true })
    expect(await (await fetch(`${base}/v1/echo/a%20b`)).json()).toEqual({ id: 'a b' })
    const posted = await fetch(`${base}/v1/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"x":1}' })
    expect(await posted.json()).toEqual({ got: { x: 1 } })

    const notFound = await fetch(`${base}/v1/nope`)
    expect(notFound.status).toBe(404)
    expect(((await notFound.json()) as { error: { code: string } }).error.code).toBe('unknown_url')
    const wrongMethod = await fetch(`${base}/v1/echo/x`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    expect(wrongMethod.status).toBe(405)
    expect(wrongMethod.headers.get('allow')).toBe('GET, HEAD')
    const badParam = await fetch(`${base}/v1/echo/%E0%A4%A`)
    expect(badParam.status).toBe(404)
    const tooLarge = await fetch(`${base}/v1/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ x: 'y'.repeat(100) }) })
    expect(tooLarge.status).toBe(413)
    const csrf = await fetch(`${base}/v1/echo`, { method: 'POST', headers: { 'content-type': 'application/json', origin: 'http://evil.example' }, body: '{}' })
    expect(csrf.status).toBe(403)
    expect(((await csrf.json()) as { error: { code: string } }).error.code).toBe('origin_not_allowed')

    await http.stop()
    await http.stop()
  })
})
