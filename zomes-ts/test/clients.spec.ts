/**
 * The typed DNA clients against the embedded conductor, through the in-process client and
 * through the unmodified `AppWebsocket`: the same calls, the same typed results.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AdminWebsocket, AppWebsocket, type CellId } from '@holochain/client'
import { createTestConductor, FLEXSTACK_HAPP, TEST_ORIGIN, type TestConductor } from '../../fixtures/index.ts'
import { InProcessAppClient } from '../../agent/src/conductor/in-process-client.ts'
import { encodeHash } from '../../agent/src/holo/hash.ts'
import { DEFAULT_MOE_POLICY } from '../../scheduler/index.ts'
import { AgentRegistryClient } from '../agent_registry/client.ts'
import type { NodeCapability } from '../agent_registry/types.ts'
import { PolicyStoreClient } from '../policy_store/client.ts'
import { MemoryShardsClient } from '../memory_shards/client.ts'
import { collectionUid } from '../memory_shards/types.ts'
import { ArtifactIndexClient } from '../artifact_index/client.ts'
import type { CellTarget, ZomeCaller } from '../client.ts'

function capability (nodeId: string): NodeCapability {
  return {
    node_id: nodeId,
    agent_name: 'typed-client',
    capabilities: {
      compute: { cpu_cores: 4, cpu_arch: 'arm64', ram_gb: 8, gpu: null },
      storage: { local_ssd_gb: 64, ipfs_pinned_gb: 0, s3_available_gb: 0 },
      inference: { models_loaded: [], max_batch_size: 1, tokens_per_second: 0 },
      memory: { vector_shards: 0, redis_memory_gb: 0 }
    },
    network: { bandwidth_mbps: 100, latency_region: 'eu-west' },
    availability: 'online',
    load: { cpu_percent: 1, gpu_percent: 0, memory_percent: 2 },
    last_heartbeat: new Date().toISOString()
  }
}

interface Setup { caller: ZomeCaller, registry: CellTarget, policies: CellTarget, memory: CellTarget, artifacts: CellTarget, close: () => Promise<void> }

const setups: Record<string, (t: TestConductor, appId: string) => Promise<Setup>> = {
  'in-process client': async (t, appId) => {
    const client = await InProcessAppClient.connect(t.conductor, appId)
    return { caller: client, registry: { role_name: 'agent_registry' }, policies: { role_name: 'policy_store' }, memory: { role_name: 'memory_shards' }, artifacts: { role_name: 'artifact_index' }, close: async () => {} }
  },
  AppWebsocket: async (t, appId) => {
    const { port: adminPort } = await t.conductor.startAdminInterface({ port: 0 })
    const admin = await AdminWebsocket.connect({ url: new URL(`ws://127.0.0.1:${adminPort}`), wsClientOptions: { origin: TEST_ORIGIN } })
    const { port } = await admin.attachAppInterface({ allowed_origins: '*', installed_app_id: appId })
    const { token } = await admin.issueAppAuthenticationToken({ installed_app_id: appId })
    const app = await AppWebsocket.connect({ url: new URL(`ws://127.0.0.1:${port}`), token, wsClientOptions: { origin: TEST_ORIGIN } })
    const cells: Record<string, CellId> = {}
    for (const role of ['agent_registry', 'policy_store', 'memory_shards', 'artifact_index']) {
      const cell = (await app.appInfo())?.cell_info[role]?.[0]
      if (cell?.type !== 'provisioned') throw new Error(`no provisioned ${role} cell`)
      cells[role] = cell.value.cell_id
      await admin.authorizeSigningCredentials(cell.value.cell_id)
    }
    return {
      caller: app,
      registry: { cell_id: cells.agent_registry! },
      policies: { cell_id: cells.policy_store! },
      memory: { cell_id: cells.memory_shards! },
      artifacts: { cell_id: cells.artifact_index! },
      close: async () => { await Promise.all([app.client.close(), admin.client.close()]) }
    }
  }
}

describe.each(Object.keys(setups))('typed DNA clients over the %s', (name) => {
  let t: TestConductor
  let s: Setup
  let registry: AgentRegistryClient
  let policies: PolicyStoreClient
  let memory: MemoryShardsClient
  let artifacts: ArtifactIndexClient

  beforeAll(async () => {
    t = await createTestConductor()
    await t.conductor.installApp({ source: { type: 'path', value: FLEXSTACK_HAPP }, agent_key: t.agent, installed_app_id: 'flexstack', network_seed: 'ripple-local' })
    await t.conductor.enableApp({ installed_app_id: 'flexstack' })
    s = await setups[name]!(t, 'flexstack')
    registry = new AgentRegistryClient(s.caller, s.registry)
    policies = new PolicyStoreClient(s.caller, s.policies)
    memory = new MemoryShardsClient(s.caller, s.memory)
    artifacts = new ArtifactIndexClient(s.caller, s.artifacts)
  })
  afterAll(async () => {
    await s?.close()
    await t?.[Symbol.asyncDispose]()
  })

  it('advertise, beat, read back and query agent_registry', async () => {
    expect(await registry.getCapability(t.agent)).toBeNull()
    expect(await registry.myCapabilityHash()).toBeNull()
    const first = await registry.advertise(capability(encodeHash(t.agent)))
    expect(encodeHash((await registry.myCapabilityHash())!)).toBe(encodeHash(first))
    await registry.beat({ cpu_percent: 42, gpu_percent: 0, memory_percent: 7, queue_depth: 3 })
    const mine = await registry.getCapability(t.agent)
    expect(mine?.load).toEqual({ cpu_percent: 42, gpu_percent: 0, memory_percent: 7 })
    expect(mine?.capabilities.inference.queue_depth).toBe(3)
    // a conductor without a network holds no presence: every node, itself included, reads offline
    const peers = await registry.queryPeers({ availability: ['offline'] })
    expect(peers.map((p) => p.agent_name)).toEqual(['typed-client'])
    expect(await registry.queryPeers({ availability: ['online', 'busy'] })).toEqual([])
    expect(await registry.queryPeers({ requirements: { gpu: true } })).toEqual([])
  })

  it('publish and read a policy through policy_store', async () => {
    expect(await policies.getPolicy('ripple-moe')).toBeNull()
    await policies.setPolicy({ name: 'ripple-moe', kind: 'moe', document: { ...DEFAULT_MOE_POLICY } })
    const got = await policies.getPolicy('ripple-moe')
    expect(got).toMatchObject({ name: 'ripple-moe', kind: 'moe', version: 1, author: encodeHash(t.agent) })
    expect(got?.document).toEqual(JSON.parse(JSON.stringify(DEFAULT_MOE_POLICY)))
  })

  it('create a collection, propose an epoch and state an assignment through memory_shards: keys come back as bytes', async () => {
    const docs = { name: 'docs', dimensions: 8, distance: 'cosine', shard_count: 4, replication_factor: 2, embedding_model: null, created_epoch: 1, created_at: Date.now() } as const
    await memory.createCollection(docs)
    expect(await memory.listCollections()).toEqual([docs])
    const hash = await memory.proposeEpoch({ epoch: 1, members: [{ node: t.agent, weight: 1e6 }], at: docs.created_at })
    const epoch = await memory.currentEpoch()
    expect(epoch?.members[0]?.node).toBeInstanceOf(Uint8Array)
    expect(encodeHash(epoch!.members[0]!.node)).toBe(encodeHash(t.agent))
    expect(encodeHash(epoch!.hash)).toBe(encodeHash(hash))
    await memory.commitAssignment({ collection: collectionUid(docs), shard: 2, epoch: 1, state: 'serving', at: docs.created_at })
    const [assignment] = await memory.assignments(collectionUid(docs))
    expect(assignment?.host).toBeInstanceOf(Uint8Array)
    expect(encodeHash(assignment!.host)).toBe(encodeHash(t.agent))
    expect(await memory.deleteCollection('docs')).toBe(true)
    expect(await memory.getCollection('docs')).toBeNull()
  })

  it('record, provide and read an artifact through artifact_index: keys and hashes come back as bytes', async () => {
    const cid = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
    const input = { cid, name: 'hello.txt', size: 12, sha256: 'a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447', media_type: 'text/plain', produced_by: { task: 't1' }, replication: { min: 1, max: 2 } }
    const recorded = await artifacts.record(input)
    expect(recorded).toMatchObject(input)
    expect(recorded.producer).toBeInstanceOf(Uint8Array)
    expect(encodeHash(recorded.producer)).toBe(encodeHash(t.agent))
    expect(await artifacts.byProducer(t.agent)).toEqual([recorded])
    const provider = await artifacts.provide(cid)
    expect(encodeHash(provider.provider)).toBe(encodeHash(t.agent))
    expect(await artifacts.status(cid)).toEqual({ cid, min: 1, max: 2, providers: [provider] })
    await expect(artifacts.record({ ...input, sha256: 'A'.repeat(64) })).rejects.toThrow(/ArtifactRecord.sha256 must be 64 lowercase hex digits/)
  })

  it('a zome\'s refusal keeps its kind, and an aborted call rejects with a typed error', async () => {
    await expect(policies.getPolicy('../etc')).rejects.toMatchObject({ name: 'ribosome_error', message: expect.stringContaining('ZomeInputError') })
    await expect(registry.beat({ cpu_percent: 1, gpu_percent: 0, memory_percent: 1, queue_depth: -1 })).rejects.toMatchObject({ name: 'ribosome_error', message: expect.stringContaining('ZomeInputError') })
    const aborted = new AbortController()
    aborted.abort()
    await expect(registry.queryPeers(null, { signal: aborted.signal })).rejects.toMatchObject({ name: 'ZomeCallAbortedError', zome: 'discovery', fn: 'query_peers' })
    const later = new AbortController()
    const pending = registry.queryPeers(null, { signal: later.signal })
    later.abort()
    await expect(pending).rejects.toMatchObject({ name: 'ZomeCallAbortedError' })
    // the client keeps working after an abort
    expect((await registry.queryPeers()).length).toBe(1)
  })
})
