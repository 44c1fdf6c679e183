/**
 * The zome sandbox: zome code cannot reach the host (Node built-ins, the process, the file
 * system, the network, the host realm through HDK objects or errors), cannot read the clock or
 * randomness except through the HDK, and cannot hang or exhaust the node: each attempt ends in a
 * typed error and the node keeps serving. The first test is the observed exploit: a crafted
 * bundle installed through the real Admin API whose module writes a file when evaluated.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AdminWebsocket, AppWebsocket, type CellId } from '@holochain/client'
import { createTestConductor, HOSTILE_HAPP, NOTES_HAPP, tempDir, type TestConductor, type TempDir } from '../../../../fixtures/index.ts'
import { encodeHappBundle, loadHappYaml, type HappBundle } from '../bundle.ts'
import { InProcessAppClient } from '../in-process-client.ts'

/** Any non-browser origin string, as Node clients send. */
const ORIGIN = 'flexnode-test'

/** The notes hApp with its coordinator's code replaced by `code`. */
async function craftedHapp (code: string): Promise<Uint8Array> {
  const happ: HappBundle = await loadHappYaml(NOTES_HAPP)
  const dna = happ.dnas.get('notes')!
  dna.code.set('notes', new TextEncoder().encode(code))
  return encodeHappBundle(happ)
}

describe('zome sandbox: a crafted bundle from the Admin API', () => {
  let t: TestConductor
  let dir: TempDir
  let admin: AdminWebsocket

  beforeAll(async () => {
    t = await createTestConductor()
    dir = await tempDir('flexnode-sandbox-')
    const { port } = await t.conductor.startAdminInterface({ port: 0 })
    admin = await AdminWebsocket.connect({ url: new URL(`ws://127.0.0.1:${port}`), wsClientOptions: { origin: ORIGIN } })
  })
  afterAll(async () => {
    await admin.client.close()
    await t[Symbol.asyncDispose]()
    await dir[Symbol.asyncDispose]()
  })

  it('cannot write a file while its module is evaluated at install', async () => {
    const marker = join(dir.path, 'pwned-static')
    // a static import of a Node built-in: the module cannot even be linked
    const staticImport = await craftedHapp(`import { writeFileSync } from 'node:fs'\nwriteFileSync(${JSON.stringify(marker)}, 'x')\nexport async function f () { return 1 }`)
    await expect(admin.installApp({ source: { type: 'bytes', value: staticImport }, agent_key: t.agent, installed_app_id: 'static' }))
      .rejects.toMatchObject({ name: 'dna_read_error' })
    // every other way to the host from top-level code: none exists, so the module loads harmlessly
    const marker2 = join(dir.path, 'pwned-dynamic')
    const dynamic = await craftedHapp(`
      const g = globalThis
      try { g.process.mainModule.require('fs').writeFileSync(${JSON.stringify(marker2)}, 'x') } catch {}
      try { require('fs').writeFileSync(${JSON.stringify(marker2)}, 'x') } catch {}
      export const reached = [typeof g.process, typeof g.require, typeof g.fetch, typeof g.Buffer, typeof g.setTimeout].join()
      export async function whatDidISee () { return reached }`)
    const info = await admin.installApp({ source: { type: 'bytes', value: dynamic }, agent_key: t.agent, installed_app_id: 'dynamic' })
    await admin.enableApp({ installed_app_id: 'dynamic' })
    const client = await InProcessAppClient.connect(t.conductor, 'dynamic')
    expect(await client.callZome({ role_name: 'notes', zome_name: 'notes', fn_name: 'whatDidISee', payload: null }))
      .toBe('undefined,undefined,undefined,undefined,undefined')
    expect(existsSync(marker)).toBe(false)
    expect(existsSync(marker2)).toBe(false)
    expect(info.installed_app_id).toBe('dynamic')
    // the conductor still answers
    expect((await admin.listApps({})).map(a => a.installed_app_id).sort()).toEqual(['dynamic'])
  })

  it('cannot swap the coordinator code of a DNA another app runs', async () => {
    // same integrity zomes and modifiers = the same DNA hash as 'dynamic' above, other coordinator
    const swap = await craftedHapp('export async function whatDidISee () { return "swapped" }')
    await expect(admin.installApp({ source: { type: 'bytes', value: swap }, agent_key: t.agent, installed_app_id: 'swap' }))
      .rejects.toMatchObject({ name: 'dna_read_error' })
    const client = await InProcessAppClient.connect(t.conductor, 'dynamic')
    expect(await client.callZome({ role_name: 'notes', zome_name: 'notes', fn_name: 'whatDidISee', payload: null })).not.toBe('swapped')
  })

  it('refuses a module that loops forever at the top level, and keeps serving', async () => {
    await using fast = await createTestConductor({ sandbox: { startTimeMs: 2000 } })
    const bytes = await craftedHapp('for (;;) {}\nexport async function f () { return 1 }')
    await expect(fast.conductor.installApp({ source: { type: 'bytes', value: bytes }, agent_key: fast.agent, installed_app_id: 'spin' }))
      .rejects.toMatchObject({ name: 'ConductorApiError', kind: 'dna_read_error' })
    await fast.conductor.installApp({ source: { type: 'path', value: NOTES_HAPP }, agent_key: fast.agent, installed_app_id: 'notes' })
    await fast.conductor.enableApp({ installed_app_id: 'notes' })
    const client = await InProcessAppClient.connect(fast.conductor, 'notes')
    expect(await client.callZome({ role_name: 'notes', zome_name: 'notes', fn_name: 'chain_length', payload: null })).toBeGreaterThan(0)
  })
})

describe('zome sandbox: hostile functions', () => {
  let t: TestConductor
  let dir: TempDir
  let client: InProcessAppClient
  let notes: InProcessAppClient

  const call = async (fn: string, payload: unknown = null): Promise<unknown> =>
    await client.callZome({ role_name: 'hostile', zome_name: 'hostile', fn_name: fn, payload })

  /** The error a call rejects with (name = Holochain error kind; message for the reason). */
  const failure = async (fn: string, payload: unknown = null): Promise<{ name: string, message: string }> => {
    try {
      await call(fn, payload)
    } catch (err) {
      return { name: (err as Error).name, message: (err as Error).message }
    }
    throw new Error(`${fn} did not fail`)
  }

  /** The node still serves: this DNA, and another DNA of the same conductor. */
  const stillServing = async (): Promise<void> => {
    expect(await call('ping', { ok: [1, 2] })).toEqual({ ok: [1, 2] })
    expect(await notes.callZome({ role_name: 'notes', zome_name: 'notes', fn_name: 'chain_length', payload: null })).toBeGreaterThan(0)
  }

  beforeAll(async () => {
    t = await createTestConductor({ sandbox: { cpuTimeMs: 300, memoryLimitBytes: 16 * 1024 * 1024 } })
    dir = await tempDir('flexnode-sandbox-')
    for (const [id, happ] of [['hostile', HOSTILE_HAPP], ['notes', NOTES_HAPP]] as const) {
      await t.conductor.installApp({ source: { type: 'path', value: happ }, agent_key: t.agent, installed_app_id: id })
      await t.conductor.enableApp({ installed_app_id: id })
    }
    client = await InProcessAppClient.connect(t.conductor, 'hostile')
    notes = await InProcessAppClient.connect(t.conductor, 'notes')
  })
  afterAll(async () => {
    await t[Symbol.asyncDispose]()
    await dir[Symbol.asyncDispose]()
  })

  it.each([
    ['use_process', /process/],
    ['use_require', /require/],
    ['use_fetch', /fetch/],
    ['escape_constructor', /no process behind the HDK/],
    ['escape_error', /no process behind a host error/],
    ['clock', /NonDeterminismError: Date\.now is not available/],
    ['random', /NonDeterminismError: Math\.random is not available/],
    ['cyclic', /cannot|circular|cyclic/i]
  ])('%s is a ribosome error and the node keeps serving', async (fn, reason) => {
    const err = await failure(fn)
    expect(err.name).toBe('ribosome_error')
    expect(err.message).toMatch(reason)
    await stillServing()
  })

  it('import() of a Node built-in fails and writes nothing', async () => {
    const marker = join(dir.path, 'imported')
    expect((await failure('use_import', marker)).name).toBe('ribosome_error')
    expect(existsSync(marker)).toBe(false)
    await stillServing()
  })

  it.each([
    ['loop', /CPU time/],
    ['loop_after_await', /CPU time/],
    // QuickJS slows to a crawl near its memory limit, so the CPU watchdog may stop the bomb first
    ['memory_bomb', /memory limit|CPU time/],
    ['stack_bomb', /stack/],
    ['stall_in_builtin', /not available in zomes/],
    ['stall_fill', /not available in zomes/],
    ['stall_spread', /not available in zomes/]
  ])('%s hits its limit as a typed error, and the node keeps serving', async (fn, reason) => {
    const err = await failure(fn)
    expect(err.name).toBe('ribosome_error')
    expect(err.message).toMatch(reason)
    await stillServing()
  })

  it('a length from the payload cannot make a built-in loop in C past its bound', async () => {
    const err = await failure('stall_from', 1e15)
    expect(err.name).toBe('ribosome_error')
    expect(err.message).toMatch(/not available in zomes/)
    expect(await call('stall_from', 3)).toBe(3)
  })

  it('an HDK kept past its call no longer reaches the host', async () => {
    await call('keep_hdk')
    const err = await failure('use_kept_hdk')
    expect(err.name).toBe('ribosome_error')
    expect(err.message).toMatch(/ended/)
  })

  it('tampering with its own intrinsics breaks only that zome\'s realm', async () => {
    expect(await call('tamper')).toBe('tampered')
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(await notes.callZome({ role_name: 'notes', zome_name: 'notes', fn_name: 'chain_length', payload: null })).toBeGreaterThan(0)
  })

  it('validation gets no clock or randomness, and a validation loop is stopped without a verdict', async () => {
    await using fresh = await createTestConductor({ sandbox: { cpuTimeMs: 300 } })
    await fresh.conductor.installApp({ source: { type: 'path', value: HOSTILE_HAPP }, agent_key: fresh.agent, installed_app_id: 'h' })
    await fresh.conductor.enableApp({ installed_app_id: 'h' })
    const c = await InProcessAppClient.connect(fresh.conductor, 'h')
    const probe = async (mode: string): Promise<unknown> => await c.callZome({ role_name: 'hostile', zome_name: 'hostile', fn_name: 'probe', payload: mode })
    const before = await c.callZome({ role_name: 'hostile', zome_name: 'hostile', fn_name: 'ping', payload: 1 })
    await expect(probe('clock')).rejects.toMatchObject({ name: 'ribosome_error', message: expect.stringMatching(/Date\.now is not available/) })
    await expect(probe('random')).rejects.toMatchObject({ name: 'ribosome_error', message: expect.stringMatching(/Math\.random is not available/) })
    await expect(probe('loop')).rejects.toMatchObject({ name: 'ribosome_error', message: expect.stringMatching(/CPU time/) })
    expect(await probe('fine')).toBeInstanceOf(Uint8Array)
    expect(before).toBe(1)
  })

  it('gives zomes UTF-8 text helpers', async () => {
    expect(await call('text_roundtrip', 'héllo, 世界 🌍')).toBe('héllo, 世界 🌍')
  })
})

describe('zome sandbox over the real App API', () => {
  it('a hostile call through AppWebsocket is a ribosome_error and the socket keeps working', async () => {
    await using t = await createTestConductor({ sandbox: { cpuTimeMs: 300 } })
    await t.conductor.installApp({ source: { type: 'path', value: HOSTILE_HAPP }, agent_key: t.agent, installed_app_id: 'hostile' })
    await t.conductor.enableApp({ installed_app_id: 'hostile' })
    const { port: adminPort } = await t.conductor.startAdminInterface({ port: 0 })
    const admin = await AdminWebsocket.connect({ url: new URL(`ws://127.0.0.1:${adminPort}`), wsClientOptions: { origin: ORIGIN } })
    const { port } = await admin.attachAppInterface({ allowed_origins: ORIGIN, installed_app_id: 'hostile' })
    const { token } = await admin.issueAppAuthenticationToken({ installed_app_id: 'hostile' })
    const app = await AppWebsocket.connect({ url: new URL(`ws://127.0.0.1:${port}`), token, wsClientOptions: { origin: ORIGIN } })
    try {
      const cell = (await app.appInfo())?.cell_info.hostile?.[0]
      if (cell?.type !== 'provisioned') throw new Error('no hostile cell')
      const cellId: CellId = cell.value.cell_id
      await admin.authorizeSigningCredentials(cellId)
      const call = async (fn: string): Promise<unknown> => await app.callZome({ cell_id: cellId, zome_name: 'hostile', fn_name: fn, payload: null })
      await expect(call('loop')).rejects.toMatchObject({ name: 'ribosome_error' })
      await expect(call('use_process')).rejects.toMatchObject({ name: 'ribosome_error' })
      expect(await app.callZome({ cell_id: cellId, zome_name: 'hostile', fn_name: 'ping', payload: 'still here' })).toBe('still here')
    } finally {
      await app.client.close()
      await admin.client.close()
    }
  })
})
