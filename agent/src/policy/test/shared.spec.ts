/**
 * Mesh-wide policies as a node applies them: only a policy admin's publications count, and with
 * no admins none do (the node says so once in its log).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Writable } from 'node:stream'
import { createTestConductor, FLEXSTACK_HAPP, type TestConductor } from '../../../../fixtures/index.ts'
import { InProcessAppClient } from '../../conductor/in-process-client.ts'
import { encodeHash, hashFrom32 } from '../../holo/hash.ts'
import { createLogger } from '../../logger.ts'
import { DEFAULT_MOE_POLICY } from '../../../../scheduler/index.ts'
import { acceptPublished, sharedPolicies } from '../shared.ts'

const ADMIN = encodeHash(hashFrom32(new Uint8Array(32).fill(1), 'Agent'))
const OTHER = encodeHash(hashFrom32(new Uint8Array(32).fill(2), 'Agent'))

function capture (): { logger: ReturnType<typeof createLogger>, lines: () => Array<Record<string, unknown>> } {
  const out: string[] = []
  const destination = new Writable({ write (chunk: Buffer, _enc, done) { out.push(chunk.toString()); done() } })
  return { logger: createLogger({ json: true, destination, level: 'info' }), lines: () => out.join('').split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Record<string, unknown>) }
}

describe('acceptPublished', () => {
  const published = { name: 'inference-access', kind: 'access', document: { deny: [] }, version: 1, author: ADMIN }
  it('accepts an admin\'s publication of the expected kind only', () => {
    expect(acceptPublished(published, [ADMIN], 'access')).toEqual(published)
    expect(acceptPublished({ ...published, author: OTHER }, [ADMIN], 'access')).toBeNull()
    expect(acceptPublished(published, [ADMIN], 'moe')).toBeNull()
    expect(acceptPublished(published, [], 'access')).toBeNull()
    for (const junk of [null, 'x', [published], { ...published, author: 7 }]) expect(acceptPublished(junk, [ADMIN], 'access')).toBeNull()
  })
})

describe('sharedPolicies on a real conductor', () => {
  let t: TestConductor
  let client: InProcessAppClient
  let me: string

  beforeAll(async () => {
    t = await createTestConductor()
    await t.conductor.installApp({ source: { type: 'path', value: FLEXSTACK_HAPP }, agent_key: t.agent, installed_app_id: 'flexstack', network_seed: 'ripple-local' })
    await t.conductor.enableApp({ installed_app_id: 'flexstack' })
    client = await InProcessAppClient.connect(t.conductor, 'flexstack')
    me = encodeHash(t.agent)
    // in this (admin-less) DNA anyone may publish; the reader decides what counts
    await client.callZome({ role_name: 'policy_store', zome_name: 'policies', fn_name: 'set_policy', payload: { name: 'inference-access', kind: 'access', document: { deny: [OTHER] } } })
    await client.callZome({ role_name: 'policy_store', zome_name: 'policies', fn_name: 'set_policy', payload: { name: 'ripple-moe', kind: 'moe', document: DEFAULT_MOE_POLICY } })
  })
  afterAll(async () => { await t?.[Symbol.asyncDispose]() })

  it('with no admins ignores every publication and says so once', async () => {
    const { logger, lines } = capture()
    const shared = sharedPolicies({}, { client, logger })
    expect(await shared.access()).toBeNull()
    expect(await shared.access()).toBeNull()
    expect(await shared.moe('ripple-moe')).toBeNull()
    const notices = lines().filter(l => String(l.msg).includes('no policy admins'))
    expect(notices).toHaveLength(1)
    expect(notices[0]).toMatchObject({ component: 'flexnode:policy' })
  })

  it('applies an admin\'s publications and ignores (with one warning) another author\'s', async () => {
    const mine = sharedPolicies({ admins: [me] }, { client, logger: capture().logger })
    expect(mine.isAdmin(me)).toBe(true)
    expect((await mine.access())?.deny).toHaveLength(1)
    expect((await mine.moe('ripple-moe'))?.name).toBe('ripple-moe')
    expect(await mine.moe('inference-access')).toBeNull()

    const { logger, lines } = capture()
    const theirs = sharedPolicies({ admins: [ADMIN] }, { client, logger })
    expect(await theirs.access()).toBeNull()
    expect(await theirs.access()).toBeNull()
    expect(await theirs.moe('ripple-moe')).toBeNull()
    expect(lines().filter(l => l.level === 40 && l.policy === 'inference-access')).toHaveLength(1)
  })
})
