/**
 * The registry service against a real conductor and a real presence (over a loopback mesh node
 * keyed like the conductor's agent): heartbeats go into the presence and write no chain action;
 * the NodeCapability is written at start, when the offer changes, and an unchanged offer once per
 * advertise interval; a restart with the same offer writes nothing. And it has the service shape
 * (idempotent stop, no use after stop, calls that take a signal).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestConductor, FLEXSTACK_HAPP, LOOPBACK, waitUntil, type TestConductor } from '../../../../fixtures/index.ts'
import { InProcessAppClient } from '../../conductor/in-process-client.ts'
import { meshPresence, type Presence } from '../../conductor/network/presence.ts'
import { silentLogger } from '../../logger.ts'
import { createMeshNode, type Libp2pMeshNode } from '../../mesh/libp2p-node.ts'
import { createLoadSampler, probeMachine } from '../../probe/probe.ts'
import { AgentRegistryClient } from '../../../../zomes-ts/agent_registry/client.ts'
import { registryService, type InferenceSnapshot, type RegistryServiceInit } from '../registry-service.ts'

describe('registryService', () => {
  let t: TestConductor
  let client: InProcessAppClient
  let mesh: Libp2pMeshNode
  let presence: Presence
  let snapshot: InferenceSnapshot
  const sampler = createLoadSampler()
  const chain = (): number => t.conductor.cell(client.cellId('agent_registry'))!.chain().length
  const registry = (init: RegistryServiceInit = {}): ReturnType<ReturnType<typeof registryService>> => registryService({ agentName: 'svc-test', heartbeatIntervalMs: 3_600_000, ...init })({
    client,
    logger: silentLogger(),
    presence,
    probe: { machine: async () => await probeMachine({ dataDir: t.dataDir, detectGpu: false }), load: async () => await sampler.sample() },
    inference: () => snapshot
  })

  beforeAll(async () => {
    t = await createTestConductor()
    await t.conductor.installApp({ source: { type: 'path', value: FLEXSTACK_HAPP }, agent_key: t.agent, installed_app_id: 'flexstack', network_seed: 'ripple-local' })
    await t.conductor.enableApp({ installed_app_id: 'flexstack' })
    client = await InProcessAppClient.connect(t.conductor, 'flexstack')
    mesh = await createMeshNode({ network: 'local', seed: t.keystore.exportSeed(t.agent), listen: [LOOPBACK], mdns: false }, { logger: silentLogger() })
    await mesh.start()
    presence = meshPresence({ refreshIntervalMs: 3_600_000 })({ mesh, keystore: t.keystore, logger: silentLogger() })
    await presence.start()
  })
  afterAll(async () => {
    await presence?.stop()
    await mesh?.stop()
    await t?.[Symbol.asyncDispose]()
  })

  it('advertises on start, beats into the presence without a chain write, and stops once', async () => {
    snapshot = { models_loaded: ['a'], max_batch_size: 2, tokens_per_second: 10, queue_depth: 0, in_flight: 0, queue: { a: 0 } }
    const svc = registry()
    const dna = new AgentRegistryClient(client)
    await svc.start()
    expect((await dna.getCapability(t.agent))?.capabilities.inference.models_loaded).toEqual(['a'])
    const written = chain()
    const beats = svc.beats
    snapshot = { ...snapshot, queue_depth: 2, in_flight: 1, queue: { a: 3 } }
    await svc.beat()
    await svc.beat()
    expect(svc.beats).toBe(beats + 2)
    expect(chain()).toBe(written)
    // a record goes out at most once a second: a faster beat is folded into the next one
    await waitUntil(() => presence.own?.availability === 'busy', { what: 'the busy record to go out' })
    expect(presence.own).toMatchObject({ availability: 'busy', queue: { a: 3 }, is_tombstone: false })
    expect(presence.own?.load?.cpu_percent).toBeGreaterThanOrEqual(0)
    expect(presence.get(t.agent)?.created_at).toBe(presence.own?.created_at)
    snapshot = { ...snapshot, queue_depth: 0, in_flight: 0, queue: { a: 0 } }
    await svc.beat()
    await waitUntil(() => presence.own?.availability === 'online', { what: 'the online record to go out' })
    expect(chain()).toBe(written)
    // an explicit advertise writes, changed or not
    snapshot = { ...snapshot, models_loaded: ['b', 'a'] }
    await svc.advertise()
    expect(chain()).toBe(written + 1)
    expect((await dna.getCapability(t.agent))?.capabilities.inference.models_loaded).toEqual(['a', 'b'])
    await expect(svc.beat({ signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' })
    await svc.stop()
    await svc[Symbol.asyncDispose]()
    await expect(svc.start()).rejects.toMatchObject({ name: 'DisposedError' })
  })

  it('writes the NodeCapability only when the offer changes, and an unchanged one once per advertise interval', async () => {
    snapshot = { models_loaded: ['a'], max_batch_size: 2, tokens_per_second: 10, queue_depth: 0, in_flight: 0, queue: { a: 0 } }
    // a restart with the offer on the chain writes nothing
    const first = registry()
    await first.start()
    await first.stop()
    const before = chain()
    const svc = registry({ heartbeatIntervalMs: 20 })
    await svc.start()
    expect(svc.advertisements).toBe(0)
    // live figures and a speed within 25 % are not a change of offer
    snapshot = { ...snapshot, tokens_per_second: 11, queue_depth: 4, queue: { a: 4 } }
    let beats = svc.beats
    await waitUntil(() => svc.beats >= beats + 5, { what: '5 heartbeats' })
    expect(chain()).toBe(before)
    // a model loaded is: exactly one write
    snapshot = { ...snapshot, models_loaded: ['a', 'c'], queue: { a: 4, c: 0 } }
    await waitUntil(() => chain() > before, { what: 'the new offer to be written' })
    beats = svc.beats
    await waitUntil(() => svc.beats >= beats + 5, { what: '5 more heartbeats' })
    expect(chain()).toBe(before + 1)
    // and so is a clear change of speed
    snapshot = { ...snapshot, tokens_per_second: 30 }
    await waitUntil(() => chain() > before + 1, { what: 'the new speed to be written' })
    await svc.stop()
    // an unchanged offer goes out again once the advertise interval has passed (here 50 ms)
    const again = registry({ heartbeatIntervalMs: 20, advertiseIntervalMs: 50 })
    await again.start()
    const after = chain()
    await waitUntil(() => chain() >= after + 2, { what: 'two re-advertisements of an unchanged offer' })
    await again.stop()
    expect(again.advertisements).toBeGreaterThanOrEqual(2)
  })
})
