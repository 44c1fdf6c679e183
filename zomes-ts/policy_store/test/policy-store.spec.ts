/** policy_store's policies zome on an embedded conductor. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestConductor, FLEXSTACK_HAPP, type TestConductor } from '../../../fixtures/index.ts'
import { InProcessAppClient } from '../../../agent/src/conductor/in-process-client.ts'
import { encodeHash } from '../../../agent/src/holo/hash.ts'
import { decodeHash, hashFrom32, hashFromContent } from '../../../agent/src/holo/hash.ts'
import { DEFAULT_MOE_POLICY, parseMoePolicy } from '../../../scheduler/index.ts'
import type { Action, Op, ValidateContext } from '../../hdk/index.ts'
import { validate } from '../integrity/index.ts'

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

describe('policy_store validate() with policy admins', () => {
  const admin = hashFrom32(new Uint8Array(32).fill(1), 'Agent')
  const other = hashFrom32(new Uint8Array(32).fill(2), 'Agent')
  const ctx = (admins: string[] | undefined): ValidateContext => ({
    must_get_action: () => { throw new Error('unexpected lookup') },
    must_get_entry: () => { throw new Error('unexpected lookup') },
    must_get_valid_record: () => { throw new Error('unexpected lookup') },
    decode: (e) => e.entry as never,
    dna_info: () => ({ hash: hashFrom32(new Uint8Array(32), 'Dna'), name: 'policy_store', modifiers: { network_seed: 'x', properties: admins === undefined ? {} : { policy_admins: admins } }, zome_names: [] }),
    encode_hash: encodeHash,
    decode_hash: (s) => decodeHash(s),
    verify_signature: () => { throw new Error('unexpected signature check') }
  })
  const header = (author: Uint8Array): Action['header'] => ({ author, timestamp: Date.now() * 1000, action_seq: 5, prev_action: hashFrom32(new Uint8Array(32).fill(9), 'Action') })
  const link = (author: Uint8Array): Op => {
    const data: Action['data'] = { type: 'CreateLink', base_address: hashFrom32(new Uint8Array(32).fill(7), 'Entry'), target_address: hashFrom32(new Uint8Array(32).fill(3), 'Action'), zome_index: 0, link_type: 0, tag: new Uint8Array(), weight: { bucket_id: 0, units: 0 } }
    return { type: 'CreateRecord', action: { header: header(author), data }, action_hash: hashFromContent(data, 'Action'), signature: new Uint8Array(64), entry: null, link_type: 'NameToPolicy' }
  }

  it('refuses policy links by anyone but an admin when admins are named', () => {
    expect(validate(link(admin), ctx([encodeHash(admin)]))).toEqual({ type: 'Valid' })
    expect(validate(link(other), ctx([encodeHash(admin)])).type).toBe('Invalid')
    // no admins: anyone may link (publications are then ignored by every reader)
    expect(validate(link(other), ctx(undefined))).toEqual({ type: 'Valid' })
  })
})
