/**
 * The registry service against a real conductor: it advertises on start, beats on demand, goes
 * back to a full advertise when the model set changes, and has the service shape (idempotent
 * stop, no use after stop, calls that take a signal).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestConductor, FLEXSTACK_HAPP, type TestConductor } from '../../../../fixtures/index.ts'
import { InProcessAppClient } from '../../conductor/in-process-client.ts'
import { silentLogger } from '../../logger.ts'
import { createLoadSampler, probeMachine } from '../../probe/probe.ts'
import { AgentRegistryClient } from '../../../../zomes-ts/agent_registry/client.ts'
import { registryService, type InferenceSnapshot } from '../registry-service.ts'

describe('registryService', () => {
  let t: TestConductor
  let client: InProcessAppClient

  beforeAll(async () => {
    t = await createTestConductor()
    await t.conductor.installApp({ source: { type: 'path', value: FLEXSTACK_HAPP }, agent_key: t.agent, installed_app_id: 'flexstack', network_seed: 'ripple-local' })
    await t.conductor.enableApp({ installed_app_id: 'flexstack' })
    client = await InProcessAppClient.connect(t.conductor, 'flexstack')
  })
  afterAll(async () => { await t?.[Symbol.asyncDispose]() })

  it('advertises on start, beats, re-advertises a changed model set, and stops once', async () => {
    let snapshot: InferenceSnapshot = { models_loaded: ['a'], max_batch_size: 2, tokens_per_second: 10, queue_depth: 0, in_flight: 0 }
    const sampler = createLoadSampler()
    const registry = registryService({ agentName: 'svc-test', heartbeatIntervalMs: 3_600_000 })({
      client,
      logger: silentLogger(),
      probe: { machine: async () => await probeMachine({ dataDir: t.dataDir }), load: async () => await sampler.sample() },
      inference: () => snapshot
    })
    const dna = new AgentRegistryClient(client)
    await registry.start()
    expect((await dna.getCapability(t.agent))?.capabilities.inference.models_loaded).toEqual(['a'])
    await registry.beat()
    expect(registry.beats).toBe(1)
    snapshot = { ...snapshot, models_loaded: ['b', 'a'] }
    await registry.advertise()
    expect((await dna.getCapability(t.agent))?.capabilities.inference.models_loaded).toEqual(['a', 'b'])
    await expect(registry.beat({ signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'ZomeCallAbortedError' })
    await registry.stop()
    await registry[Symbol.asyncDispose]()
    await expect(registry.start()).rejects.toMatchObject({ name: 'DisposedError' })
  })
})
