/**
 * Which `Origin`s the Admin and App interfaces admit. A web page the operator visits must not
 * reach `ws://127.0.0.1:<admin port>`: browser origins (`http(s)://…`, `null`, `file://`,
 * extension schemes) are refused unless listed, while non-browser clients, which send an origin
 * string of their own choosing, keep working as with the real conductor's `allowed_origins`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { AdminWebsocket, AppWebsocket } from '@holochain/client'
import { createTestAgent, createTestConductor, NOTES_HAPP, TEST_ORIGIN, type TestConductor } from '../../../../fixtures/index.ts'
import { parseStartArgs, type UsageError } from '../../config.ts'
import { isBrowserOrigin, originAllowed } from '../origins.ts'
import { runFlexnode } from '../../../../fixtures/spawn-node.ts'

const BROWSER_ORIGINS = ['http://evil.example', 'https://evil.example:8443', 'null', 'file://', 'chrome-extension://x', 'moz-extension://abc-def', 'http://127.0.0.1']

/** Open a raw WebSocket with this Origin: 'open', or the HTTP status of the refused handshake. */
async function handshake (port: number, origin: string): Promise<'open' | number> {
  return await new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}`, { origin })
    ws.once('unexpected-response', (req, res) => {
      resolve(res.statusCode ?? 0)
      req.destroy()
    })
    ws.once('open', () => {
      ws.terminate()
      resolve('open')
    })
    ws.on('error', (err) => { reject(err) })
  })
}

describe('origin rules', () => {
  it('tells browser origins from the strings other clients send', () => {
    for (const o of BROWSER_ORIGINS) expect({ o, browser: isBrowserOrigin(o) }).toEqual({ o, browser: true })
    for (const o of ['flexnode-cli', 'flexnode-test', 'my-tool', 'hc-client']) expect({ o, browser: isBrowserOrigin(o) }).toEqual({ o, browser: false })
    // '*' admits every non-browser origin and no browser one; a listed origin is admitted, browser or not
    expect(originAllowed('*', 'my-tool')).toBe(true)
    expect(originAllowed('*', 'http://evil.example')).toBe(false)
    expect(originAllowed('*,http://localhost:3000', 'http://localhost:3000')).toBe(true)
    expect(originAllowed('*,http://localhost:3000', 'http://localhost:3001')).toBe(false)
    expect(originAllowed('http://localhost:3000', 'my-tool')).toBe(false)
    expect(originAllowed('my-tool, other-tool', 'other-tool')).toBe(true)
  })
})

describe('the conductor interfaces', () => {
  let t: TestConductor
  let adminPort: number
  let admin: AdminWebsocket

  beforeAll(async () => {
    t = await createTestConductor()
    await t.conductor.installApp({ source: { type: 'path', value: NOTES_HAPP }, agent_key: t.agent, installed_app_id: 'notes' })
    await t.conductor.enableApp({ installed_app_id: 'notes' })
    adminPort = (await t.conductor.startAdminInterface({ port: 0 })).port
    admin = await AdminWebsocket.connect({ url: new URL(`ws://127.0.0.1:${adminPort}`), wsClientOptions: { origin: TEST_ORIGIN } })
  })

  afterAll(async () => {
    await admin?.client.close()
    await t?.[Symbol.asyncDispose]()
  })

  it('refuse browser origins by default on the admin interface and on app interfaces attached with "*"', async () => {
    const { port: appPort } = await admin.attachAppInterface({ allowed_origins: '*', installed_app_id: 'notes' })
    for (const port of [adminPort, appPort]) {
      for (const origin of BROWSER_ORIGINS) expect({ port, origin, result: await handshake(port, origin) }).toEqual({ port, origin, result: 403 })
      // a non-browser client still connects
      expect(await handshake(port, 'my-tool')).toBe('open')
    }
    // and the real client works with its own origin string
    const { token } = await admin.issueAppAuthenticationToken({ installed_app_id: 'notes' })
    const app = await AppWebsocket.connect({ url: new URL(`ws://127.0.0.1:${appPort}`), token, wsClientOptions: { origin: 'my-tool' } })
    expect((await app.appInfo())?.installed_app_id).toBe('notes')
    await app.client.close()
  })

  it('admit a browser origin that is listed, and only that one', async () => {
    const listed = await createTestConductor()
    try {
      const { port } = await listed.conductor.startAdminInterface({ port: 0, allowedOrigins: '*,http://localhost:3000' })
      expect(await handshake(port, 'http://localhost:3000')).toBe('open')
      expect(await handshake(port, 'http://localhost:3001')).toBe(403)
      expect(await handshake(port, 'null')).toBe(403)
      expect(await handshake(port, 'my-tool')).toBe('open')
    } finally {
      await listed[Symbol.asyncDispose]()
    }
    // through the admin API: an explicit list admits exactly its origins, as the real conductor does
    const { port } = await admin.attachAppInterface({ allowed_origins: 'http://localhost:3000', installed_app_id: 'notes' })
    expect(await handshake(port, 'http://localhost:3000')).toBe('open')
    expect(await handshake(port, 'http://evil.example')).toBe(403)
    expect(await handshake(port, 'my-tool')).toBe(403)
  })

  it('refuse a malformed allowed_origins on attach_app_interface', async () => {
    for (const bad of ['', ',', 'a,,b', 'http://x.example/path', 'has space', 'x'.repeat(300)]) {
      let name = ''
      try {
        await admin.attachAppInterface({ allowed_origins: bad, installed_app_id: 'notes' })
      } catch (err) {
        name = (err as Error).name
      }
      expect({ bad, name }).toEqual({ bad, name: 'deserialization' })
    }
  })
})

describe('a node', () => {
  it('admits the origins of --admin-allowed-origins / --app-allowed-origins on its own interfaces', async () => {
    await using agent = await createTestAgent({ adminAllowedOrigins: ['http://localhost:3000'], appAllowedOrigins: ['https://dash.example', 'null'] })
    const { admin_port: adminPort, app_port: appPort } = agent.node.info
    expect(await handshake(adminPort, 'http://localhost:3000')).toBe('open')
    expect(await handshake(adminPort, 'https://dash.example')).toBe(403)
    expect(await handshake(adminPort, 'http://evil.example')).toBe(403)
    expect(await handshake(adminPort, TEST_ORIGIN)).toBe('open')
    expect(await handshake(appPort, 'https://dash.example')).toBe('open')
    expect(await handshake(appPort, 'null')).toBe('open')
    expect(await handshake(appPort, 'http://localhost:3000')).toBe(403)
    expect(await handshake(appPort, 'file://')).toBe(403)
    expect(await handshake(appPort, TEST_ORIGIN)).toBe('open')
  })

  it('refuses every browser origin on both interfaces without the flags', async () => {
    await using agent = await createTestAgent()
    for (const port of [agent.node.info.admin_port, agent.node.info.app_port]) {
      for (const origin of BROWSER_ORIGINS) expect({ port, origin, result: await handshake(port, origin) }).toEqual({ port, origin, result: 403 })
      expect(await handshake(port, TEST_ORIGIN)).toBe('open')
    }
  })
})

describe('the start flags', () => {
  it('parse repeated and comma-separated origins', async () => {
    const opts = await parseStartArgs(['--admin-allowed-origins', 'http://localhost:3000,https://a.example', '--admin-allowed-origins', 'null', '--app-allowed-origins', 'chrome-extension://abc'], {})
    if (opts === 'help') throw new Error('unexpected help')
    expect(opts.adminAllowedOrigins).toEqual(['http://localhost:3000', 'https://a.example', 'null'])
    expect(opts.appAllowedOrigins).toEqual(['chrome-extension://abc'])
    const none = await parseStartArgs([], {})
    if (none === 'help') throw new Error('unexpected help')
    expect(none.adminAllowedOrigins).toEqual([])
    expect(none.appAllowedOrigins).toEqual([])
  })

  it('a bad origin on the command line is a usage error (exit 2)', async () => {
    const res = await runFlexnode(['start', '--admin-allowed-origins', '*'])
    expect(res.code).toBe(2)
    expect(res.stderr).toContain('--admin-allowed-origins')
    expect(res.stderr).toContain('Usage: flexnode start')
  })

  it('reject "*", empty entries, paths and junk with a UsageError naming the flag', async () => {
    for (const flag of ['--admin-allowed-origins', '--app-allowed-origins']) {
      for (const bad of ['*', '', 'http://a.example,', 'http://a.example/', 'http://a.example/app', 'has space', 'http://', 'x'.repeat(300), 'ftp//x']) {
        let err: unknown
        try {
          await parseStartArgs([flag, bad], {})
        } catch (e) {
          err = e
        }
        expect({ flag, bad, name: (err as Error | undefined)?.name, field: (err as UsageError | undefined)?.flag }).toEqual({ flag, bad, name: 'UsageError', field: flag })
      }
    }
  })
})
