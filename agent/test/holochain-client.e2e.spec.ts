/**
 * The unmodified @holochain/client against a started flexnode, end to end:
 * AdminWebsocket.connect → listApps → attachAppInterface → issueAppAuthenticationToken →
 * authorizeSigningCredentials → AppWebsocket.connect → appInfo → callZome advertise /
 * get_capability / query_peers → a signal arrives.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AdminWebsocket, AppWebsocket, CellType, encodeHashToBase64, type AppSignal, type CellId, type Signal } from '@holochain/client'
import { createTestAgent, TEST_ORIGIN, waitUntil, type TestAgent } from '../../fixtures/index.ts'
import type { NodeCapability } from '../../zomes-ts/agent_registry/types.ts'

describe('@holochain/client against a flexnode', () => {
  let agent: TestAgent
  let admin: AdminWebsocket
  let app: AppWebsocket
  let cellId: CellId

  beforeAll(async () => {
    agent = await createTestAgent({ agentName: 'e2e-node', heartbeatIntervalSeconds: 3600 })
  })

  afterAll(async () => {
    await app?.client.close()
    await admin?.client.close()
    await agent?.[Symbol.asyncDispose]()
  })

  it('drives the admin and app APIs through a full zome-call round trip', async () => {
    const { info } = agent.node
    admin = await AdminWebsocket.connect({ url: new URL(`ws://127.0.0.1:${info.admin_port}`), wsClientOptions: { origin: TEST_ORIGIN } })

    const apps = await admin.listApps({})
    expect(apps.map(a => a.installed_app_id)).toEqual(['flexstack'])
    const flexstack = apps[0]!
    expect(flexstack.status).toEqual({ type: 'enabled' })
    expect(Object.keys(flexstack.cell_info).sort()).toEqual(['agent_registry', 'artifact_index', 'memory_shards', 'policy_store', 'resource_mesh'])
    expect(encodeHashToBase64(flexstack.agent_pub_key)).toBe(info.agent_pub_key)

    const { port } = await admin.attachAppInterface({ allowed_origins: '*', installed_app_id: 'flexstack' })
    expect(port).toBeGreaterThan(0)
    expect((await admin.listAppInterfaces()).map(i => i.port)).toContain(port)

    const { token } = await admin.issueAppAuthenticationToken({ installed_app_id: 'flexstack' })
    const cell = flexstack.cell_info.agent_registry![0]!
    if (cell.type !== CellType.Provisioned) throw new Error('expected a provisioned cell')
    cellId = cell.value.cell_id
    expect(cell.value.dna_modifiers.network_seed).toBe('ripple-local')
    await admin.authorizeSigningCredentials(cellId)

    app = await AppWebsocket.connect({ url: new URL(`ws://127.0.0.1:${port}`), token, wsClientOptions: { origin: TEST_ORIGIN } })
    const appInfo = await app.appInfo()
    expect(appInfo.installed_app_id).toBe('flexstack')
    expect(encodeHashToBase64(app.myPubKey)).toBe(info.agent_pub_key)

    const signals: AppSignal[] = []
    app.on('signal', (s: Signal) => { if (s.type === 'app') signals.push(s.value) })

    // the node advertised itself at start
    const mine = await app.callZome({ role_name: 'agent_registry', zome_name: 'capabilities', fn_name: 'get_capability', payload: app.myPubKey }) as NodeCapability
    expect(mine.node_id).toBe(info.agent_pub_key)
    expect(mine.agent_name).toBe('e2e-node')
    expect(mine.availability).toBe('online')

    // advertise a changed capability through the signed call path
    const changed: NodeCapability = {
      ...mine,
      capabilities: { ...mine.capabilities, inference: { models_loaded: ['tiny-llama'], max_batch_size: 4, tokens_per_second: 120 } },
      last_heartbeat: new Date().toISOString()
    }
    const hash = await app.callZome({ role_name: 'agent_registry', zome_name: 'capabilities', fn_name: 'advertise', payload: changed }) as Uint8Array
    expect(encodeHashToBase64(hash).startsWith('uhCkk')).toBe(true)

    const signal = await waitUntil(() => signals.find(s => (s.payload as { type?: string }).type === 'capability_advertised'), { what: 'the capability_advertised signal' })
    expect(signal.zome_name).toBe('capabilities')
    expect(encodeHashToBase64(signal.cell_id[0])).toBe(encodeHashToBase64(cellId[0]))
    expect(encodeHashToBase64((signal.payload as { action_hash: Uint8Array }).action_hash)).toBe(encodeHashToBase64(hash))

    const got = await app.callZome({ role_name: 'agent_registry', zome_name: 'capabilities', fn_name: 'get_capability', payload: app.myPubKey }) as NodeCapability
    expect(got.capabilities.inference.models_loaded).toEqual(['tiny-llama'])

    const peers = await app.callZome({ role_name: 'agent_registry', zome_name: 'discovery', fn_name: 'query_peers', payload: { requirements: { model_name: 'tiny-llama' } } }) as NodeCapability[]
    expect(peers.map(p => p.node_id)).toEqual([info.agent_pub_key])
    const none = await app.callZome({ role_name: 'agent_registry', zome_name: 'discovery', fn_name: 'query_peers', payload: { requirements: { gpu: true, gpu_vram_gb: 80 } } }) as NodeCapability[]
    expect(none).toEqual([])

    // a beat through the client writes the entry and emits its own signal; the live load read
    // back is the node's presence (what its heartbeat signed), not the entry's
    // the node's first heartbeat reaches its presence a moment after start
    await waitUntil(() => agent.node.dht.presence.own?.load !== undefined, { what: 'the node\'s first heartbeat in its presence' })
    await app.callZome({ role_name: 'agent_registry', zome_name: 'heartbeat', fn_name: 'beat', payload: { cpu_percent: 42, gpu_percent: 0, memory_percent: 17 } })
    const beat = await waitUntil(() => signals.find(s => (s.payload as { type?: string }).type === 'heartbeat'), { what: 'the heartbeat signal' })
    expect((beat.payload as { load: unknown }).load).toEqual({ cpu_percent: 42, gpu_percent: 0, memory_percent: 17 })
    const beaten = await app.callZome({ role_name: 'agent_registry', zome_name: 'capabilities', fn_name: 'get_capability', payload: app.myPubKey }) as NodeCapability
    expect(beaten.load).toEqual(agent.node.dht.presence.own?.load)
    expect(beaten.availability).toBe('online')
    expect(beaten.capabilities.inference.models_loaded).toEqual(['tiny-llama'])
  })

  it('reports the DHT through dump_full_state', async () => {
    const dump = await admin.dumpFullState({ cell_id: cellId }) as unknown as { integration_dump: { integrated: unknown[], validation_limbo: unknown[], dht_ops_cursor: number }, source_chain_dump: { records: Array<{ action: { data: { type: string } } }> } }
    const types = dump.source_chain_dump.records.map(r => r.action.data.type)
    expect(types.slice(0, 4)).toEqual(['Dna', 'AgentValidationPkg', 'Create', 'InitZomesComplete'])
    expect(types).toContain('Update')
    expect(dump.integration_dump.validation_limbo).toEqual([])
    expect(dump.integration_dump.integrated.length).toBeGreaterThan(types.length)
    const kinds = new Set(dump.integration_dump.integrated.map(op => Object.keys((op as { ChainOp: Record<string, unknown> }).ChainOp)[0]))
    for (const k of ['CreateRecord', 'AgentActivity', 'CreateEntry', 'UpdateEntry', 'UpdateRecord', 'CreateLink']) expect(kinds).toContain(k)
    const again = await admin.dumpFullState({ cell_id: cellId, dht_ops_cursor: dump.integration_dump.dht_ops_cursor }) as unknown as { integration_dump: { integrated: unknown[] } }
    expect(again.integration_dump.integrated).toEqual([])
  })
})
