/** policy_store's policies zome on an embedded conductor. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestConductor, FLEXSTACK_HAPP, type TestConductor } from '../../../fixtures/index.ts'
import { InProcessAppClient } from '../../../agent/src/conductor/in-process-client.ts'
import { encodeHash } from '../../../agent/src/holo/hash.ts'
import { DEFAULT_MOE_POLICY, parseMoePolicy } from '../../../scheduler/index.ts'

describe('policy_store policies', () => {
  let t: TestConductor
  let client: InProcessAppClient
  const call = async (fn: string, payload: unknown): Promise<any> => await client.callZome({ role_name: 'policy_store', zome_name: 'policies', fn_name: fn, payload }) // eslint-disable-line @typescript-eslint/no-explicit-any

  beforeAll(async () => {
    t = await createTestConductor()
    await t.conductor.installApp({ source: { type: 'path', value: FLEXSTACK_HAPP }, agent_key: t.agent, installed_app_id: 'flexstack', network_seed: 'ripple-local' })
    await t.conductor.enableApp({ installed_app_id: 'flexstack' })
    client = await InProcessAppClient.connect(t.conductor, 'flexstack')
  })
  afterAll(async () => { await t[Symbol.asyncDispose]() })

  it('publishes a policy and reads back the newest version', async () => {
    expect(await call('get_policy', 'ripple-moe')).toBeNull()
    await call('set_policy', { name: 'ripple-moe', kind: 'moe', document: DEFAULT_MOE_POLICY })
    const strict = { ...DEFAULT_MOE_POLICY, reducer: { ...DEFAULT_MOE_POLICY.reducer, min_agreement: 0.9 } }
    await call('set_policy', { name: 'ripple-moe', kind: 'moe', document: strict })
    const got = await call('get_policy', 'ripple-moe')
    expect(got.version).toBe(2)
    expect(got.author).toBe(encodeHash(t.agent))
    expect(parseMoePolicy(got.document).reducer.min_agreement).toBe(0.9)
  })

  it('rejects malformed policies', async () => {
    for (const bad of [{ name: 'Bad Name', kind: 'moe', document: {} }, { name: 'x', kind: 'teleport', document: {} }, { name: 'x', kind: 'moe', document: [1] }, { name: 'x', kind: 'moe' }]) {
      await expect(call('set_policy', bad)).rejects.toMatchObject({ name: 'ribosome_error' })
    }
    await expect(call('get_policy', '../etc')).rejects.toMatchObject({ name: 'ribosome_error' })
  })

  it('lets only policy_admins publish when the DNA names them', async () => {
    await using other = await createTestConductor()
    const someoneElse = encodeHash((await other.keystore.generate()).agentPubKey)
    await other.conductor.installApp({
      source: { type: 'path', value: FLEXSTACK_HAPP }, agent_key: other.agent, installed_app_id: 'restricted', network_seed: 'ripple-local',
      roles_settings: { policy_store: { type: 'provisioned', value: { modifiers: { properties: { policy_admins: [someoneElse] } } } } }
    })
    await other.conductor.enableApp({ installed_app_id: 'restricted' })
    const c = await InProcessAppClient.connect(other.conductor, 'restricted')
    await expect(c.callZome({ role_name: 'policy_store', zome_name: 'policies', fn_name: 'set_policy', payload: { name: 'p', kind: 'moe', document: {} } })).rejects.toMatchObject({ name: 'ribosome_error' })
  })
})
