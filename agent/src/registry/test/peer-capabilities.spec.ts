import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestConductor, FLEXSTACK_HAPP, type TestConductor } from '../../../../fixtures/index.ts'
import { InProcessAppClient } from '../../conductor/in-process-client.ts'
import { AgentRegistryClient } from '../../../../zomes-ts/agent_registry/client.ts'
import type { QueryPeersInput } from '../../../../zomes-ts/agent_registry/types.ts'
import { peerCapabilities } from '../peer-capabilities.ts'

describe('peerCapabilities', () => {
  let t: TestConductor
  let registry: AgentRegistryClient

  beforeAll(async () => {
    t = await createTestConductor()
    await t.conductor.installApp({ source: { type: 'path', value: FLEXSTACK_HAPP }, agent_key: t.agent, installed_app_id: 'flexstack', network_seed: 'ripple-local' })
    await t.conductor.enableApp({ installed_app_id: 'flexstack' })
    registry = new AgentRegistryClient(await InProcessAppClient.connect(t.conductor, 'flexstack'))
  })
  afterAll(async () => { await t?.[Symbol.asyncDispose]() })

  it('shares one query_peers among concurrent readers and within its age, asks again after it, and never keeps a failure', async () => {
    let calls = 0
    const counted = { queryPeers: async (i: QueryPeersInput | null) => { calls++; return await registry.queryPeers(i) } }
    const fresh = peerCapabilities({ maxAgeMs: 60_000 })({ registry: counted })
    expect(await Promise.all([fresh(), fresh(), fresh()])).toEqual([[], [], []])
    await fresh()
    expect(calls).toBe(1)

    const always = peerCapabilities({ maxAgeMs: -1 })({ registry: counted })
    await always()
    await always()
    expect(calls).toBe(3)

    // a refused call (a bad input here) is not kept: the next reader asks again
    let fail = true
    const flaky = peerCapabilities({ maxAgeMs: 60_000 })({ registry: { queryPeers: async (i) => { calls++; return await registry.queryPeers(fail ? { ttl_seconds: -1 } : i) } } })
    await expect(flaky()).rejects.toMatchObject({ name: 'ribosome_error' })
    fail = false
    expect(await flaky()).toEqual([])
  })
})
