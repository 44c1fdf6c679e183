/**
 * The HTTP API's bearer-token auth on the core server: bound to loopback it is open; bound to a
 * non-loopback address (0.0.0.0 here, reached over 127.0.0.1) every route needs a token from the
 * token file, the issued tokens (issued and revoked while the server runs) or the local token;
 * the dashboard's static shell is served without one; the Host/Origin guard still runs first.
 * Raw node:http requests, because fetch may not set `Host`.
 */
import { describe, expect, it } from 'vitest'
import { request } from 'node:http'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir } from '../../../../fixtures/index.ts'
import { silentLogger } from '../../logger.ts'
import { sendJson } from '../body.ts'
import { API_TOKEN_FILE, ISSUED_TOKENS_FILE, issueToken, requiresAuth, revokeToken } from '../auth.ts'
import { httpServer, type HttpRoutes } from '../server.ts'

interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: string, json: () => { error?: { code: string, type: string, name?: string } } & Record<string, unknown> }

/** One request to 127.0.0.1:port with exactly these headers. */
async function send (port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }) } }, (res) => {
      let data = ''
      res.setEncoding('utf8').on('data', (c: string) => { data += c }).on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data, json: () => JSON.parse(data) as ReturnType<Answer['json']> })
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

const routes: HttpRoutes = {
  paths: {
    '/': { GET: async ({ res }) => { res.writeHead(200, { 'content-type': 'text/html' }).end('<html>shell</html>') } },
    '/dashboard/app.js': { GET: async ({ res }) => { res.writeHead(200, { 'content-type': 'text/javascript' }).end('// app') } },
    '/v1/secret': {
      GET: async ({ res }) => { sendJson(res, 200, { secret: 42 }) },
      POST: async ({ res, readJson }) => { sendJson(res, 200, { got: await readJson() }) }
    }
  }
}

const FILE_TOKEN = 'operator-token-0123456789'

describe('HTTP API auth', () => {
  it('knows which bind addresses need tokens', () => {
    for (const host of ['127.0.0.1', '127.0.0.2', 'localhost', '::1', '[::1]', 'LOCALHOST']) expect(requiresAuth(host), host).toBe(false)
    for (const host of ['0.0.0.0', '::', '192.168.1.10', '10.0.0.1', 'node.example.lan']) expect(requiresAuth(host), host).toBe(true)
  })

  it('bound to loopback: open, whatever Authorization says', async () => {
    await using dir = await tempDir('flexnode-auth-')
    await using http = httpServer({ host: '127.0.0.1', port: 0, auth: { localTokenFile: join(dir.path, API_TOKEN_FILE) } })({ logger: silentLogger(), routes: [routes] })
    const { port } = await http.start()
    expect((await send(port, 'GET', '/v1/secret')).status).toBe(200)
    expect((await send(port, 'GET', '/v1/secret', bearer('wrong-token-wrong-token'))).status).toBe(200)
    // no local token is written for an open server
    await expect(stat(join(dir.path, API_TOKEN_FILE))).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('bound to 0.0.0.0: no token or a wrong one is 401; token-file, local and issued tokens are served; revoked ones are 401', async () => {
    await using dir = await tempDir('flexnode-auth-')
    const tokenFile = join(dir.path, 'tokens')
    await writeFile(tokenFile, `# operators\n\n${FILE_TOKEN}\n  second-token-abcdefghij  \n`)
    const issued = join(dir.path, ISSUED_TOKENS_FILE)
    const localFile = join(dir.path, API_TOKEN_FILE)
    await using http = httpServer({ host: '0.0.0.0', port: 0 , auth: { tokenFile, issuedTokensFile: issued, localTokenFile: localFile } })({ logger: silentLogger(), routes: [routes] })
    const { port } = await http.start()

    // no token: 401 with the OpenAI-style body and a Bearer challenge, on every route, known or not
    for (const [method, path] of [['GET', '/v1/secret'], ['HEAD', '/v1/secret'], ['GET', '/v1/nope'], ['POST', '/'], ['GET', '/metrics']] as const) {
      const res = await send(port, method, path)
      expect(res.status, `${method} ${path}`).toBe(401)
      expect(res.headers['www-authenticate'], `${method} ${path}`).toMatch(/^Bearer /)
      if (method !== 'HEAD') expect(res.json().error).toMatchObject({ type: 'authentication_error', code: 'invalid_api_key', name: 'AuthenticationError' })
    }
    // wrong tokens and other schemes: 401, and the body says nothing of the route
    for (const authorization of ['Bearer wrong-token-wrong-token', `Bearer ${FILE_TOKEN}x`, `Basic ${Buffer.from(`u:${FILE_TOKEN}`).toString('base64')}`, 'Bearer', 'Bearer ', `Bearer ${FILE_TOKEN} extra`, `Bearer ${'x'.repeat(10_000)}`, FILE_TOKEN]) {
      const res = await send(port, 'GET', '/v1/secret', { authorization })
      expect(res.status, authorization.slice(0, 40)).toBe(401)
      expect(res.headers['www-authenticate']).toContain('invalid_token')
      expect(res.body).not.toContain('42')
    }
    // the dashboard's static shell holds no data: served without a token
    expect((await send(port, 'GET', '/')).status).toBe(200)
    expect((await send(port, 'GET', '/dashboard/app.js')).status).toBe(200)
    expect((await send(port, 'GET', '/dashboard/nope.js')).status).toBe(404)

    // the token file's tokens (trimmed), the scheme in any case
    for (const token of [FILE_TOKEN, 'second-token-abcdefghij']) {
      const res = await send(port, 'GET', '/v1/secret', bearer(token))
      expect(res.status, token).toBe(200)
      expect(res.json()).toEqual({ secret: 42 })
    }
    expect((await send(port, 'GET', '/v1/secret', { authorization: `bearer ${FILE_TOKEN}` })).status).toBe(200)
    expect((await send(port, 'POST', '/v1/secret', bearer(FILE_TOKEN), '{"a":1}')).json()).toEqual({ got: { a: 1 } })

    // the local token: written 0600 at start, valid, removed at stop
    const local = (await readFile(localFile, 'utf8')).trim()
    expect(local).toMatch(/^fxn_[A-Za-z0-9_-]{43}$/)
    expect((await stat(localFile)).mode & 0o777).toBe(0o600)
    expect((await send(port, 'GET', '/v1/secret', bearer(local))).status).toBe(200)

    // an issued token counts at once, and a revoked one is refused at once
    const a = await issueToken(issued, { name: 'ci' })
    const b = await issueToken(issued, { name: 'laptop' })
    expect((await send(port, 'GET', '/v1/secret', bearer(a.token))).status).toBe(200)
    expect((await send(port, 'GET', '/v1/secret', bearer(b.token))).status).toBe(200)
    expect(await readFile(issued, 'utf8')).not.toContain(a.token)
    expect((await stat(issued)).mode & 0o777).toBe(0o600)
    await revokeToken(issued, 'ci')
    expect((await send(port, 'GET', '/v1/secret', bearer(a.token))).status).toBe(401)
    expect((await send(port, 'GET', '/v1/secret', bearer(b.token))).status).toBe(200)
    await revokeToken(issued, b.entry.id)
    expect((await send(port, 'GET', '/v1/secret', bearer(b.token))).status).toBe(401)

    // the token file edited while running: the new line counts, the removed one no longer
    await writeFile(tokenFile, 'third-token-abcdefghijkl\n')
    expect((await send(port, 'GET', '/v1/secret', bearer('third-token-abcdefghijkl'))).status).toBe(200)
    expect((await send(port, 'GET', '/v1/secret', bearer(FILE_TOKEN))).status).toBe(401)
    // a token file that turns bad counts as empty (fail closed), the local token still works
    await writeFile(tokenFile, 'short\n')
    expect((await send(port, 'GET', '/v1/secret', bearer('third-token-abcdefghijkl'))).status).toBe(401)
    expect((await send(port, 'GET', '/v1/secret', bearer(local))).status).toBe(200)

    await http.stop()
    await expect(stat(localFile)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('keeps the Host and Origin checks first, whatever the token', async () => {
    await using dir = await tempDir('flexnode-auth-')
    const tokenFile = join(dir.path, 'tokens')
    await writeFile(tokenFile, `${FILE_TOKEN}\n`)
    await using http = httpServer({ host: '0.0.0.0', port: 0, auth: { tokenFile } })({ logger: silentLogger(), routes: [routes] })
    const { port } = await http.start()
    for (const headers of [{}, bearer(FILE_TOKEN)]) {
      const rebind = await send(port, 'GET', '/v1/secret', { ...headers, host: `attacker.example:${port}` })
      expect(rebind.status).toBe(403)
      expect(rebind.json().error).toMatchObject({ code: 'host_not_allowed' })
      const csrf = await send(port, 'POST', '/v1/secret', { ...headers, host: `127.0.0.1:${port}`, origin: 'http://attacker.example' }, '{}')
      expect(csrf.status).toBe(403)
      expect(csrf.json().error).toMatchObject({ code: 'origin_not_allowed' })
    }
    // the shell too answers only to allowed hosts
    expect((await send(port, 'GET', '/', { host: 'attacker.example' })).status).toBe(403)
    expect((await send(port, 'POST', '/v1/secret', { ...bearer(FILE_TOKEN), host: `localhost:${port}`, origin: `http://localhost:${port}` }, '{}')).status).toBe(200)
  })

  it('without any token source only the static shell answers', async () => {
    await using http = httpServer({ host: '0.0.0.0', port: 0 })({ logger: silentLogger(), routes: [routes] })
    const { port } = await http.start()
    expect((await send(port, 'GET', '/v1/secret', bearer(FILE_TOKEN))).status).toBe(401)
    expect((await send(port, 'GET', '/')).status).toBe(200)
  })

  it('refuses to start with a missing or malformed token file, naming it and the line', async () => {
    await using dir = await tempDir('flexnode-auth-')
    const missing = join(dir.path, 'nope')
    const short = join(dir.path, 'short')
    await writeFile(short, `${FILE_TOKEN}\n# fine\ntoo-short\n`)
    const spaced = join(dir.path, 'spaced')
    await writeFile(spaced, 'a token with spaces in it\n')
    const badIssued = join(dir.path, 'issued.json')
    await writeFile(badIssued, '{"version": 1, "tokens": [{"id": "x"}]}')
    const cases: Array<[Parameters<typeof httpServer>[0]['auth'], RegExp]> = [
      [{ tokenFile: missing }, /nope does not exist/],
      [{ tokenFile: short }, /short line 3: a token must have at least 16 characters/],
      [{ tokenFile: spaced }, /line 1: a token may not contain whitespace/],
      [{ issuedTokensFile: badIssued }, /issued\.json is malformed: tokens\[0\]/]
    ]
    for (const [auth, message] of cases) {
      const http = httpServer({ host: '0.0.0.0', port: 0, auth: { ...auth, localTokenFile: join(dir.path, API_TOKEN_FILE) } })({ logger: silentLogger(), routes: [routes] })
      const err = await http.start().then(() => undefined, (e: unknown) => e)
      expect(err).toMatchObject({ name: 'ApiTokenFileError' })
      expect((err as Error).message).toMatch(message)
      await expect(stat(join(dir.path, API_TOKEN_FILE))).rejects.toMatchObject({ code: 'ENOENT' })
    }
    // a malformed issued-tokens file on an open server is no matter
    await using open = httpServer({ host: '127.0.0.1', port: 0, auth: { issuedTokensFile: badIssued } })({ logger: silentLogger(), routes: [routes] })
    await open.start()
  })

  it('issues tokens with unique names and refuses to revoke an unknown one', async () => {
    await using dir = await tempDir('flexnode-auth-')
    const issued = join(dir.path, ISSUED_TOKENS_FILE)
    const a = await issueToken(issued, { name: 'ci' })
    expect(a.token).toMatch(/^fxn_/)
    expect(a.entry).toMatchObject({ id: expect.stringMatching(/^tok_[0-9a-f]{8}$/) as unknown, name: 'ci' })
    await expect(issueToken(issued, { name: 'ci' })).rejects.toMatchObject({ name: 'TokenNameTakenError' })
    const unnamed = await issueToken(issued)
    expect(unnamed.entry.name).toBe(unnamed.entry.id)
    await expect(revokeToken(issued, 'nope')).rejects.toMatchObject({ name: 'UnknownTokenError' })
  })
})
