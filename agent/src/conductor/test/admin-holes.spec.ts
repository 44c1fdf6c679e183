/**
 * Holes a robustness run found in the Admin API: an occupied port on `attach_app_interface`
 * (it crashed the whole node), and garbage hashes in admin calls (internal errors instead of
 * `deserialization`). Driven through the real `@holochain/client`.
 */
import { type Server } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AdminWebsocket, type CellId } from '@holochain/client'
import { createTestConductor, NOTES_HAPP, TEST_ORIGIN, type TestConductor } from '../../../../fixtures/index.ts'
import { occupy } from '../../../../fixtures/occupy.ts'

/** The `.name` (Holochain error kind) and message of the error `p` rejects with. */
async function failure (p: Promise<unknown>): Promise<{ name: string, message: string }> {
  try {
    await p
  } catch (err) {
    return { name: (err as Error).name, message: (err as Error).message }
  }
  throw new Error('expected a rejection')
}

let t: TestConductor
let admin: AdminWebsocket
let cellId: CellId
const held: Server[] = []

beforeAll(async () => {
  t = await createTestConductor()
  await t.conductor.installApp({ source: { type: 'path', value: NOTES_HAPP }, agent_key: t.agent, installed_app_id: 'notes' })
  await t.conductor.enableApp({ installed_app_id: 'notes' })
  const { port } = await t.conductor.startAdminInterface({ port: 0 })
  admin = await AdminWebsocket.connect({ url: new URL(`ws://127.0.0.1:${port}`), wsClientOptions: { origin: TEST_ORIGIN } })
  cellId = (await admin.listCellIds())[0]!
})

afterAll(async () => {
  await admin?.client.close()
  for (const s of held) s.close()
  await t?.[Symbol.asyncDispose]()
})

describe('attach_app_interface on a port already in use', () => {
  it('is a typed error, and the node keeps serving', async () => {
    const { server, port } = await occupy()
    held.push(server)
    const err = await failure(admin.attachAppInterface({ port, allowed_origins: '*', installed_app_id: 'notes' }))
    expect(err.name).toBe('internal_error')
    // the conductor's typed error, by name, with what failed and why
    expect(err.message.startsWith('ListenError:')).toBe(true)
    expect(err.message).toContain('EADDRINUSE')
    // nothing half-made: no interface listed on that port
    expect((await admin.listAppInterfaces()).map(i => i.port)).not.toContain(port)
    // the node still answers, and a later attach on a free port works
    expect((await admin.listApps({})).map(a => a.installed_app_id)).toEqual(['notes'])
    const { port: free } = await admin.attachAppInterface({ allowed_origins: '*', installed_app_id: 'notes' })
    expect(free).toBeGreaterThan(0)
    expect((await admin.listAppInterfaces()).map(i => i.port)).toContain(free)
  })

  it('the conductor API reports the same error class in-process', async () => {
    const { server, port } = await occupy()
    held.push(server)
    let caught: unknown
    try {
      await t.conductor.attachAppInterface({ port, allowed_origins: '*' })
    } catch (err) {
      caught = err
    }
    expect((caught as Error).name).toBe('ListenError')
    expect((caught as { code?: string }).code).toBe('EADDRINUSE')
    expect((caught as { port?: number }).port).toBe(port)
    caught = undefined
    try {
      await t.conductor.startAdminInterface({ port })
    } catch (err) {
      caught = err
    }
    expect((caught as Error).name).toBe('ListenError')
    expect((caught as { code?: string }).code).toBe('EADDRINUSE')
    expect((await admin.listApps({})).length).toBe(1)
  })
})

describe('garbage hashes in admin calls', () => {
  const garbage: unknown[] = [
    'not a cell id',
    42,
    null,
    [],
    [new Uint8Array(5), new Uint8Array(39)],
    [new Uint8Array(39), new Uint8Array(39)],
    [new Uint8Array([0x84, 0x2d, 0x24, ...new Uint8Array(36)]), 'agent'],
    { 0: 1, 1: 2 }
  ]

  it('a garbage cell_id is a deserialization error in every call that takes one', async () => {
    for (const bad of garbage) {
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['dump_full_state', async () => await admin.dumpFullState({ cell_id: bad as CellId })],
        ['dump_state', async () => await admin.dumpState({ cell_id: bad as CellId })],
        ['grant_zome_call_capability', async () => await admin.grantZomeCallCapability({ cell_id: bad as CellId, cap_grant: { tag: 't', functions: { type: 'all' } as never, access: { type: 'unrestricted' } as never } })],
        ['revoke_zome_call_capability', async () => await admin.revokeZomeCallCapability({ cell_id: bad as CellId, action_hash: new Uint8Array(39) } as never)]
      ]
      for (const [call, run] of calls) {
        const err = await failure(run())
        expect({ call, bad, name: err.name }).toEqual({ call, bad, name: 'deserialization' })
      }
    }
    expect((await admin.listApps({})).length).toBe(1)
  })

  it('garbage hashes elsewhere are deserialization errors too', async () => {
    for (const bad of ['x', new Uint8Array(39), new Uint8Array(7), 5]) {
      expect((await failure(admin.getDnaDefinition(bad as never))).name).toBe('deserialization')
      expect((await failure(admin.revokeZomeCallCapability({ cell_id: cellId, action_hash: bad } as never))).name).toBe('deserialization')
      expect((await failure(admin.installApp({ source: { type: 'path', value: NOTES_HAPP }, agent_key: bad, installed_app_id: 'other' } as never))).name).toBe('deserialization')
    }
    // a well-formed but unknown cell is still the conductor's CellMissing (an internal error)
    const unknown: CellId = [cellId[0], new Uint8Array([0x84, 0x20, 0x24, ...new Uint8Array(32).fill(9), 0, 0, 0, 0])]
    expect((await failure(admin.dumpState({ cell_id: unknown }))).name).not.toBe('deserialization')
    expect((await admin.listApps({})).length).toBe(1)
  })
})
