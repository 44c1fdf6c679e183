/**
 * Bad input on the Conductor API wire: every malformed frame, bad token, bad signature, bad
 * nonce, missing grant or invalid write gets its specific error kind or close code, and the
 * server keeps answering afterwards.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket, type RawData } from 'ws'
import { decode, encode } from '@msgpack/msgpack'
import {
  AdminWebsocket,
  AppWebsocket,
  getNonceExpiration,
  HolochainError,
  randomNonce,
  type CallZomeRequestSigned,
  type CapSecret,
  type CellId
} from '@holochain/client'
import { createTestConductor, NOTES_HAPP, TEST_ORIGIN, waitUntil, type TestConductor } from '../../../../fixtures/index.ts'
import { CLOSE } from '../api/ws-server.ts'

// -- raw socket helpers ------------------------------------------------------------------------

const rawSockets: WebSocket[] = []

async function openRaw (port: number): Promise<WebSocket> {
  return new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}`, { origin: TEST_ORIGIN })
    rawSockets.push(ws)
    ws.once('open', () => { resolve(ws) })
    ws.once('error', reject)
  })
}

/** Resolves with the close code of `ws` (attach before provoking the close). */
async function closeCode (ws: WebSocket): Promise<number> {
  return new Promise<number>(resolve => { ws.once('close', (code: number) => { resolve(code) }) })
}

const requestFrame = (id: number, inner: unknown): Uint8Array => encode({ id, type: 'request', data: encode(inner) })

interface RawResponse { id: number, type: string, inner: unknown }

/** Send `frame` and wait for the response envelope with request id `id`. */
async function exchange (ws: WebSocket, id: number, frame: Uint8Array): Promise<RawResponse> {
  const p = new Promise<RawResponse>((resolve, reject) => {
    const onMessage = (data: RawData): void => {
      const msg = decode(data as Buffer) as { id?: unknown, type?: unknown, data?: unknown }
      if (msg.type !== 'response' || msg.id !== id) return
      cleanup()
      if (!(msg.data instanceof Uint8Array)) { reject(new Error('response data is not binary')); return }
      resolve({ id, type: msg.type, inner: decode(msg.data) })
    }
    const onClose = (code: number): void => { cleanup(); reject(new Error(`socket closed with ${code} before a response`)) }
    const cleanup = (): void => { ws.off('message', onMessage); ws.off('close', onClose) }
    ws.on('message', onMessage)
    ws.on('close', onClose)
  })
  ws.send(frame, { binary: true })
  return p
}

async function rawListApps (ws: WebSocket, id: number): Promise<RawResponse> {
  return exchange(ws, id, requestFrame(id, { type: 'list_apps', value: {} }))
}

/** The `.name` (Holochain error kind) of the error `p` rejects with. */
async function kindOf (p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    return (err as Error).name
  }
  throw new Error('expected a rejection')
}

/**
 * How the unmodified client reports an app connection the conductor refused for its token (it
 * closes the socket with 1008): `InvalidTokenError` when the close arrives within the 10 ms the
 * client waits after sending `authenticate`, else its following `app_info` request fails with the
 * close. Which of the two is a matter of scheduling (a busy machine), not of the conductor.
 */
async function tokenRefusal (p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    const e = err as Error
    if (e.name === 'InvalidTokenError') return 'refused'
    if (e.name === 'ClientClosedWithPendingRequests' && /close event code: 1008\b/.test(e.message)) return 'refused'
    return `${e.name}: ${e.message}`
  }
  throw new Error('expected a rejection')
}

// -- zome call signing ---------------------------------------------------------------------

interface Signer { signingKey: Uint8Array, privateKey: KeyObject }

function newSigner (): Signer {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519')
  const x = publicKey.export({ format: 'jwk' }).x
  if (x === undefined) throw new Error('no raw ed25519 public key')
  const raw = Buffer.from(x, 'base64url')
  // as the client builds it: AgentPubKey prefix + key + zero location bytes
  return { signingKey: new Uint8Array([0x84, 0x20, 0x24, ...raw, 0, 0, 0, 0]), privateKey }
}

function signBytes (signer: Signer, bytes: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, createHash('sha512').update(bytes).digest(), signer.privateKey))
}

// -- fixture -------------------------------------------------------------------------------

let t: TestConductor
let adminPort: number
let appPort: number
let admin: AdminWebsocket
let appWs: AppWebsocket
let cellId: CellId
let signer: Signer
let signerSecret: CapSecret
const extraApps: AppWebsocket[] = []

async function connectApp (token: number[]): Promise<AppWebsocket> {
  const ws = await AppWebsocket.connect({ url: new URL(`ws://127.0.0.1:${appPort}`), token, wsClientOptions: { origin: TEST_ORIGIN } })
  extraApps.push(ws)
  return ws
}

async function freshToken (): Promise<number[]> {
  return (await admin.issueAppAuthenticationToken({ installed_app_id: 'notes' })).token
}

async function chainLength (): Promise<number> {
  return appWs.callZome<number>({ cell_id: cellId, zome_name: 'notes', fn_name: 'chain_length', payload: null })
}

/** The server still answers on both interfaces. */
async function expectAlive (): Promise<void> {
  expect(await admin.listApps({})).toHaveLength(1)
  expect(typeof await chainLength()).toBe('number')
}

async function callParams (s: Signer, capSecret: CapSecret | null, overrides: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  return {
    cap_secret: capSecret,
    cell_id: cellId,
    zome_name: 'notes',
    fn_name: 'chain_length',
    provenance: s.signingKey,
    payload: encode(null),
    nonce: await randomNonce(),
    expires_at: getNonceExpiration(),
    ...overrides
  }
}

async function signedCall (overrides: Record<string, unknown> = {}, s: Signer = signer, capSecret: CapSecret | null = signerSecret): Promise<CallZomeRequestSigned> {
  const bytes = encode(await callParams(s, capSecret, overrides))
  return { bytes, signature: signBytes(s, bytes) }
}

/**
 * Send a hand-signed `call_zome` exactly as given. (`AppWebsocket.callZome` would insist on a
 * `cell_id` and add a `provenance` next to `bytes` and `signature`, so go one level lower and
 * turn an error response into a `HolochainError` as the client's `catchError` does.)
 */
async function sendSigned<T = unknown> (call: CallZomeRequestSigned): Promise<T> {
  const res = await appWs.client.request<{ type: string, value: unknown }>({ type: 'call_zome', value: { bytes: call.bytes, signature: call.signature } })
  if (res.type === 'error') {
    const e = res.value as { type: string, value: string }
    throw new HolochainError(e.type, e.value)
  }
  expect(res.type).toBe('zome_called')
  return decode(res.value as Uint8Array) as T
}

async function closeClient (c: AdminWebsocket | AppWebsocket): Promise<void> {
  if (c.client.socket.readyState === WebSocket.OPEN) await c.client.close()
}

beforeAll(async () => {
  t = await createTestConductor()
  await t.conductor.installApp({ source: { type: 'path', value: NOTES_HAPP }, agent_key: t.agent, installed_app_id: 'notes' })
  await t.conductor.enableApp({ installed_app_id: 'notes' })
  adminPort = (await t.conductor.startAdminInterface({ port: 0 })).port
  appPort = (await t.conductor.attachAppInterface({ port: 0, allowed_origins: '*', installed_app_id: 'notes' })).port
  admin = await AdminWebsocket.connect({ url: new URL(`ws://127.0.0.1:${adminPort}`), wsClientOptions: { origin: TEST_ORIGIN } })
  const cells = await admin.listCellIds()
  expect(cells).toHaveLength(1)
  cellId = cells[0]!
  await admin.authorizeSigningCredentials(cellId)
  appWs = await AppWebsocket.connect({ url: new URL(`ws://127.0.0.1:${appPort}`), token: await freshToken(), wsClientOptions: { origin: TEST_ORIGIN } })
  signer = newSigner()
  signerSecret = await admin.grantSigningKey(cellId, { type: 'all' }, signer.signingKey)
})

afterAll(async () => {
  for (const ws of rawSockets) ws.terminate()
  for (const c of extraApps) await closeClient(c)
  if (appWs !== undefined) await closeClient(appWs)
  if (admin !== undefined) await closeClient(admin)
  await t?.[Symbol.asyncDispose]()
})

describe('conductor wire errors', () => {
  it('1. a text frame on the admin socket closes it with 1003; a new connection still works', async () => {
    const ws = await openRaw(adminPort)
    const closed = closeCode(ws)
    ws.send('{"type":"request"}')
    expect(await closed).toBe(CLOSE.UNSUPPORTED_DATA)
    expect(CLOSE.UNSUPPORTED_DATA).toBe(1003)
    const ws2 = await openRaw(adminPort)
    const res = await rawListApps(ws2, 0)
    expect(res.type).toBe('response')
    expect(res.inner).toMatchObject({ type: 'apps_listed' })
    await expectAlive()
  })

  it('2. bytes that are not msgpack close the socket with 1007', async () => {
    const ws = await openRaw(adminPort)
    const closed = closeCode(ws)
    ws.send(new Uint8Array([0xc1]), { binary: true })
    expect(await closed).toBe(1007)
    await expectAlive()
  })

  it('3. an unknown request type is a deserialization error and the socket stays usable', async () => {
    const ws = await openRaw(adminPort)
    const res = await exchange(ws, 0, requestFrame(0, { type: 'frobnicate', value: null }))
    expect(res.type).toBe('response')
    expect(res.inner).toMatchObject({ type: 'error', value: { type: 'deserialization' } })
    const again = await rawListApps(ws, 1)
    expect(again.inner).toMatchObject({ type: 'apps_listed' })
    expect(ws.readyState).toBe(WebSocket.OPEN)
  })

  it('4. wrong field types are deserialization errors; an unknown app is an internal error', async () => {
    expect(await kindOf(admin.installApp({ source: 42 } as never))).toBe('deserialization')
    expect(await kindOf(admin.issueAppAuthenticationToken({ installed_app_id: 7 } as never))).toBe('deserialization')
    expect(await kindOf(admin.enableApp({ installed_app_id: 'nope' }))).toBe('internal_error')
    await expectAlive()
  })

  it('5. a message over maxMessageBytes closes the socket with 1009; a new connection still works', async () => {
    const small = await createTestConductor({ maxMessageBytes: 64 * 1024 })
    try {
      const { port } = await small.conductor.startAdminInterface({ port: 0 })
      const ws = await openRaw(port)
      const closed = closeCode(ws)
      ws.send(new Uint8Array(100 * 1024), { binary: true })
      expect(await closed).toBe(1009)
      const ws2 = await openRaw(port)
      const res = await rawListApps(ws2, 0)
      expect(res.inner).toMatchObject({ type: 'apps_listed', value: [] })
      ws2.close()
    } finally {
      await small[Symbol.asyncDispose]()
    }
    await expectAlive()
  })

  it('6. a request whose data is not binary is a deserialization error and the socket stays open', async () => {
    const ws = await openRaw(adminPort)
    const res = await exchange(ws, 0, encode({ id: 0, type: 'request', data: 'x' }))
    expect(res.inner).toMatchObject({ type: 'error', value: { type: 'deserialization' } })
    expect(ws.readyState).toBe(WebSocket.OPEN)
    expect((await rawListApps(ws, 1)).inner).toMatchObject({ type: 'apps_listed' })
  })

  it('7. an unknown token is refused (close 1008: the client\'s InvalidTokenError)', async () => {
    const token = [...randomBytes(64)]
    expect(await tokenRefusal(connectApp(token))).toBe('refused')
    await expectAlive()
  })

  it('8. a single-use token works once only', async () => {
    const token = await freshToken()
    const first = await connectApp(token)
    expect((await first.appInfo()).installed_app_id).toBe('notes')
    expect(await tokenRefusal(connectApp(token))).toBe('refused')
    await closeClient(first)
    await expectAlive()
  })

  it('9. an expired token is refused (close 1008)', async () => {
    const { token, expires_at: expiresAt } = await admin.issueAppAuthenticationToken({ installed_app_id: 'notes', expiry_seconds: 1 })
    expect(typeof expiresAt).toBe('number')
    await waitUntil(() => Date.now() > (expiresAt ?? 0) / 1000 + 50, { what: 'the token to expire' })
    expect(await tokenRefusal(connectApp(token))).toBe('refused')
    await expectAlive()
  })

  it('10. an app socket that sends a request before authenticating is closed with 1008', async () => {
    const ws = await openRaw(appPort)
    const closed = closeCode(ws)
    ws.send(requestFrame(0, { type: 'app_info', value: null }), { binary: true })
    expect(await closed).toBe(1008)
    await expectAlive()
  })

  it('11. a connection without an Origin header fails the handshake with HTTP 400', async () => {
    for (const port of [adminPort, appPort]) {
      const status = await new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}`)
        rawSockets.push(ws)
        ws.once('unexpected-response', (req, res) => {
          resolve(res.statusCode ?? 0)
          req.destroy()
        })
        ws.once('open', () => { reject(new Error('the handshake succeeded without an Origin header')) })
        ws.on('error', (err) => { reject(err) })
      })
      expect(status).toBe(400)
    }
    await expectAlive()
  })

  it('12. a flipped signature byte fails authentication', async () => {
    const call = await signedCall()
    const signature = new Uint8Array(call.signature)
    signature[0] = signature[0]! ^ 0x01
    expect(await kindOf(sendSigned({ bytes: call.bytes, signature }))).toBe('zome_call_authentication_failed')
    // the untouched call still goes through
    expect(typeof await sendSigned<number>(call)).toBe('number')
    await expectAlive()
  })

  it('13. an expired nonce, or one expiring too far ahead, is unauthorized', async () => {
    const past = await signedCall({ expires_at: (Date.now() - 60_000) * 1000 })
    expect(await kindOf(sendSigned(past))).toBe('zome_call_unauthorized')
    const farFuture = await signedCall({ expires_at: (Date.now() + 2 * 60 * 60 * 1000) * 1000 })
    expect(await kindOf(sendSigned(farFuture))).toBe('zome_call_unauthorized')
    await expectAlive()
  })

  it('14. a replayed nonce is unauthorized', async () => {
    const call = await signedCall()
    expect(typeof await sendSigned<number>(call)).toBe('number')
    expect(await kindOf(sendSigned(call))).toBe('zome_call_unauthorized')
    await expectAlive()
  })

  it('15. a key without a grant, or outside a listed grant, is unauthorized', async () => {
    const stranger = newSigner()
    const noGrant = await signedCall({}, stranger, new Uint8Array(randomBytes(64)))
    expect(await kindOf(sendSigned(noGrant))).toBe('zome_call_unauthorized')

    const limited = newSigner()
    const secret = await admin.grantSigningKey(cellId, { type: 'listed', value: [['notes', 'chain_length']] }, limited.signingKey)
    expect(typeof await sendSigned<number>(await signedCall({}, limited, secret))).toBe('number')
    const before = await chainLength()
    const create = await signedCall({ fn_name: 'create_note', payload: encode({ text: 'not allowed' }) }, limited, secret)
    expect(await kindOf(sendSigned(create))).toBe('zome_call_unauthorized')
    expect(await chainLength()).toBe(before)
    await expectAlive()
  })

  it('16. an invalid entry is a ribosome error and nothing reaches the chain', async () => {
    const before = await chainLength()
    expect(await kindOf(appWs.callZome({ cell_id: cellId, zome_name: 'notes', fn_name: 'create_note', payload: { text: 'forbidden' } }))).toBe('ribosome_error')
    expect(await chainLength()).toBe(before)
    expect(await kindOf(appWs.callZome({ cell_id: cellId, zome_name: 'notes', fn_name: 'valid_then_invalid', payload: null }))).toBe('ribosome_error')
    expect(await chainLength()).toBe(before)
    await expectAlive()
  })

  it('17. an unknown zome or function is a ribosome error', async () => {
    expect(await kindOf(appWs.callZome({ cell_id: cellId, zome_name: 'no_such_zome', fn_name: 'chain_length', payload: null }))).toBe('ribosome_error')
    expect(await kindOf(appWs.callZome({ cell_id: cellId, zome_name: 'notes', fn_name: 'no_such_fn', payload: null }))).toBe('ribosome_error')
    await expectAlive()
  })

  it('18. a payload that is not msgpack is a deserialization error', async () => {
    const call = await signedCall({ payload: new Uint8Array([0xc1]) })
    expect(await kindOf(sendSigned(call))).toBe('deserialization')
    await expectAlive()
  })

  it('19. a client sending garbage does not disturb concurrent good calls of another client', async () => {
    const bad = await openRaw(appPort)
    bad.send(encode({ type: 'authenticate', data: encode({ token: await freshToken() }) }), { binary: true })
    const closed = closeCode(bad)
    const calls = Array.from({ length: 20 }, async () => chainLength())
    bad.send(new Uint8Array([0xc1, 0xc1, 0xc1]), { binary: true })
    expect(await closed).toBe(1007)
    const results = await Promise.all(calls)
    expect(results).toHaveLength(20)
    for (const r of results) expect(typeof r).toBe('number')
    await expectAlive()
  })
})
