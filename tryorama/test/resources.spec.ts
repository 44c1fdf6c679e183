/**
 * Leases across the mesh (issue 10): one provider, several requesters, real nodes on 127.0.0.1.
 * The provider's ledger is the only authority over its capacity; every other node checks each
 * ledger step it receives.
 */
import { describe, expect, it } from 'vitest'
import { encode } from '@msgpack/msgpack'
import { dhtSync, runScenario, waitUntil, type Player } from '../src/index.ts'
import { decodeHash, encodeHash, hashFromContent } from '../../agent/src/holo/hash.ts'
import { decode as decodeWire, encode as encodeWire } from '../../agent/src/conductor/codec.ts'
import { ResourceMeshClient } from '../../zomes-ts/resource_mesh/client.ts'
import type { Allocation, LeaseRequest } from '../../zomes-ts/resource_mesh/types.ts'
import type { NetRecord } from '../../agent/src/conductor/space.ts'
import type { Action } from '../../zomes-ts/hdk/index.ts'
import { RESOURCES_PROTOCOL } from '../../agent/src/resources/index.ts'
import { buildWasmFixtures } from '../../fixtures/wasm.ts'
import { PolicyStoreClient } from '../../zomes-ts/policy_store/client.ts'
import { MESH_MAX_INFLIGHT_PER_PEER, MESH_MAX_QUEUED_PER_PEER } from '../../agent/src/mesh/constants.ts'
import type { Libp2pMeshNode } from '../../agent/src/mesh/libp2p-node.ts'

const CAPACITY = { cpu_cores: 16, memory_gb: 32, gpu_count: 0, storage_gb: 100 }
const SMALL = { cpu_cores: 0, memory_gb: 0, gpu_count: 0, storage_gb: 0 }
const meshDna = (p: Player): Uint8Array => p.cells.resource_mesh!.cell_id[0]
const client = (p: Player): ResourceMeshClient => new ResourceMeshClient(p.node.client)
const nodeId = (p: Player): string => encodeHash(p.agentPubKey)

describe('resource_mesh leases', () => {
  it('200 concurrent requests from 3 requesters never over-commit one provider, checked by its ledger and by another node\'s validation', async () => {
    await runScenario(async (scenario) => {
      const provider = await scenario.addPlayer({ resourceCapacity: CAPACITY })
      const requesters = await scenario.addPlayers(3, { resourceCapacity: SMALL })
      const everyone = [provider, ...requesters]
      await dhtSync(everyone, meshDna(provider))
      for (const r of requesters) await waitUntil(async () => (await r.cells.agent_registry!.callZome<unknown[]>('discovery', 'query_peers', null)).length === 4, { what: 'every node advertised' })

      const asks = Array.from({ length: 200 }, async (_, i) => {
        const r = requesters[i % 3]!
        const lease = await r.node.resources.allocate({ resource_type: 'compute', requirements: { cpu_cores: 1, memory_gb: 1 }, node_id: nodeId(provider), duration_seconds: 600 })
        holders.set(lease.allocation_id, r)
        return lease
      })
      const holders = new Map<string, Player>()
      const outcomes = await Promise.allSettled(asks)
      const granted = outcomes.flatMap(o => o.status === 'fulfilled' ? [o.value] : [])
      const refused = outcomes.flatMap(o => o.status === 'rejected' ? [o.reason as Error] : [])
      expect(granted.length).toBe(16)
      expect(new Set(refused.map(e => e.name))).toEqual(new Set(['NoCapacityError']))
      const odd = refused.filter(e => !/LeaseRefusedError: not enough cpu_cores/.test(e.message)).map(e => e.message)
      expect(odd.slice(0, 3)).toEqual([])
      expect(new Set(granted.map(g => g.allocation_id)).size).toBe(16)
      expect(granted.every(g => g.node_id === nodeId(provider) && g.endpoint.endsWith(`/${RESOURCES_PROTOCOL}/1`))).toBe(true)

      // the provider's ledger
      expect(provider.node.resources.ledger!.committed().cpu_cores).toBe(16)
      expect(provider.node.resources.ledger!.live().length).toBe(16)

      // another node received every step and validated it: the steps are there, valid, and the
      // newest step's live set fits the offer
      const checker = requesters[0]!
      await dhtSync(everyone, meshDna(provider), { timeoutMs: 60_000 })
      const read = client(checker)
      let newest: { seq: number, live: Uint8Array[], own: Allocation } | undefined
      for (const g of granted) {
        const record = await read.getAllocation(decodeHash(g.allocation_id, 'Action'))
        expect(record).not.toBeNull()
        // held and integrated by the checker itself, so its validation passed
        expect(await checker.node.conductor.space(meshDna(provider))!.knows(decodeHash(g.allocation_id, 'Action'))).toBe(true)
        const a = record!.allocation
        if (newest === undefined || a.ledger.seq > newest.seq) newest = { seq: a.ledger.seq, live: a.ledger.live, own: a }
      }
      expect(checker.node.conductor.space(meshDna(provider))!.warrants()).toEqual([])
      let cores = newest!.own.request.resources.cpu_cores
      for (const h of newest!.live) cores += (await read.getAllocation(h))!.allocation.request.resources.cpu_cores
      expect(cores).toBe(16)

      // releasing one frees its core for the next request; only the holder may release
      const [first] = granted
      const holder = holders.get(first!.allocation_id)!
      const other = requesters.find(r => r !== holder)!
      await expect(other.node.resources.release({ allocation_id: first!.allocation_id })).rejects.toMatchObject({ name: 'NotTheHolderError' })
      // the provider checks too, whatever the other node's own code does
      const change = { kind: 'release' as const, allocation: decodeHash(first!.allocation_id, 'Action'), duration_seconds: null, nonce: new Uint8Array(16).fill(7), requested_at: Date.now() * 1000 }
      const signature = await client(other).signChange(change)
      await expect(other.node.mesh.request(provider.peerId, RESOURCES_PROTOCOL, encodeWire({ op: 'release', change, signature }))).rejects.toMatchObject({ name: 'NotTheHolderError' })
      expect(provider.node.resources.ledger!.committed().cpu_cores).toBe(16)
      await holder.node.resources.release({ allocation_id: first!.allocation_id })
      expect(provider.node.resources.ledger!.committed().cpu_cores).toBe(15)
      const again = await other.node.resources.allocate({ resource_type: 'compute', requirements: { cpu_cores: 1 }, node_id: nodeId(provider), duration_seconds: 600 })
      expect(again.node_id).toBe(nodeId(provider))
      await expect(other.node.resources.allocate({ resource_type: 'compute', requirements: { cpu_cores: 1 }, node_id: nodeId(provider) })).rejects.toMatchObject({ name: 'NoCapacityError' })

      // renewing extends the lease under a new allocation id, still counted once
      const renewed = await other.node.resources.renew({ allocation_id: again.allocation_id, duration_seconds: 1200 })
      expect(renewed.allocation_id).not.toBe(again.allocation_id)
      expect(Date.parse(renewed.expires_at)).toBeGreaterThan(Date.parse(again.expires_at))
      expect(provider.node.resources.ledger!.committed().cpu_cores).toBe(16)
      await expect(other.node.resources.release({ allocation_id: again.allocation_id })).rejects.toMatchObject({ name: 'LeaseNotLiveError' })
    })
  }, 240_000)

  it('a lease request the provider resets unanswered (its queue for the requester is full) is sent again and granted once', async () => {
    await runScenario(async (scenario) => {
      const provider = await scenario.addPlayer({ resourceCapacity: CAPACITY })
      const requester = await scenario.addPlayer({ resourceCapacity: SMALL })
      await waitUntil(async () => (await requester.cells.agent_registry!.callZome<unknown[]>('discovery', 'query_peers', null)).length === 2, { what: 'both nodes advertised' })
      await requester.node.resources.queryAvailable() // the provider's offer is known: the lease below asks it nothing else first
      // the requester's other exchanges with the provider take every slot and queue place it has there
      let release!: () => void
      const held = new Promise<void>(resolve => { release = resolve })
      await provider.node.mesh.handle('hold', async (req) => { await held; return req }, { maxInboundStreams: 64 })
      const holding = Array.from({ length: MESH_MAX_INFLIGHT_PER_PEER + MESH_MAX_QUEUED_PER_PEER }, async () => await requester.node.mesh.request(provider.peerId, 'hold', new Uint8Array(1), { timeoutMs: 60_000 }))
      const inbound = (): number => (provider.node.mesh as Libp2pMeshNode).libp2p.getConnections().flatMap(c => c.streams).filter(st => st.protocol === provider.node.mesh.protocolId('hold')).length
      await waitUntil(() => inbound() === holding.length, { what: 'the provider to hold or queue every one of them' })
      // what the requester's resources service gets back from the mesh, observed (the real call runs)
      const mesh = requester.node.mesh
      const real = mesh.request.bind(mesh)
      const resets: string[] = []
      mesh.request = async (...args) => await real(...args).catch((err: Error) => { if (args[1] === RESOURCES_PROTOCOL) resets.push(err.name); throw err })
      const lease = requester.node.resources.allocate({ resource_type: 'compute', requirements: { cpu_cores: 1 }, node_id: nodeId(provider), duration_seconds: 60 })
      await waitUntil(() => resets.length > 0, { what: 'the provider to reset the lease request' })
      release()
      await Promise.all(holding)
      const granted = await lease
      expect(resets.every(name => name === 'MeshResetError')).toBe(true)
      expect(provider.node.resources.ledger!.live().map(l => encodeHash(l.allocation))).toEqual([granted.allocation_id])
    })
  }, 120_000)

  it('a lease ends at its expiry and its capacity is free again; bad input is refused with typed errors', async () => {
    await runScenario(async (scenario) => {
      const provider = await scenario.addPlayer({ resourceCapacity: { ...CAPACITY, cpu_cores: 2, vectors: 1000 } })
      const requester = await scenario.addPlayer({ resourceCapacity: SMALL })
      await waitUntil(async () => (await requester.cells.agent_registry!.callZome<unknown[]>('discovery', 'query_peers', null)).length === 2, { what: 'both nodes advertised' })
      const short = await requester.node.resources.allocate({ resource_type: 'compute', requirements: { cpu_cores: 2 }, node_id: nodeId(provider), duration_seconds: 2 })
      expect(provider.node.resources.ledger!.committed().cpu_cores).toBe(2)
      const available = await requester.node.resources.queryAvailable()
      const seen = available.nodes.find(n => n.node_id === nodeId(provider))!
      expect(seen.leased.cpu_cores).toBe(2)
      expect(seen.free.cpu_cores).toBe(0)
      await waitUntil(() => provider.node.resources.ledger!.committed().cpu_cores === 0, { what: 'the lease to expire', timeoutMs: 10_000 })
      await expect(requester.node.resources.renew({ allocation_id: short.allocation_id, duration_seconds: 60 })).rejects.toMatchObject({ name: 'LeaseNotLiveError' })
      const next = await requester.node.resources.allocate({ resource_type: 'compute', requirements: { cpu_cores: 2 }, node_id: nodeId(provider), duration_seconds: 60 })
      expect(next.node_id).toBe(nodeId(provider))

      // a request that waits for capacity gets it when the lease holding it ends
      const waiting = requester.node.resources.allocate({ resource_type: 'compute', requirements: { cpu_cores: 2 }, node_id: nodeId(provider), duration_seconds: 60, wait_seconds: 20 })
      await new Promise(resolve => setTimeout(resolve, 1500))
      expect(provider.node.resources.ledger!.live().map(l => encodeHash(l.allocation))).toEqual([next.allocation_id])
      await requester.node.resources.release(next)
      const queued = await waiting
      expect(provider.node.resources.ledger!.live().map(l => encodeHash(l.allocation))).toEqual([queued.allocation_id])
      await requester.node.resources.release(queued)
      const again = await requester.node.resources.allocate({ resource_type: 'compute', requirements: { cpu_cores: 2 }, node_id: nodeId(provider), duration_seconds: 60 })
      // without waiting, a full provider refuses at once
      await expect(requester.node.resources.allocate({ resource_type: 'compute', requirements: { cpu_cores: 1 }, node_id: nodeId(provider) })).rejects.toMatchObject({ name: 'NoCapacityError' })

      // memory leases hold vector capacity
      const memory = await requester.node.resources.allocate({ resource_type: 'memory', requirements: { vectors: 600 }, node_id: nodeId(provider) })
      expect(memory.resources.vectors).toBe(600)
      await expect(requester.node.resources.allocate({ resource_type: 'memory', requirements: { vectors: 600 }, node_id: nodeId(provider) })).rejects.toThrow(/not enough vectors: 400 free of 1000/)
      await requester.node.resources.release(memory)

      const r = requester.node.resources
      await expect(r.allocate({ resource_type: 'compute', wait_seconds: -1 })).rejects.toMatchObject({ name: 'InvalidInputError', field: 'wait_seconds' })
      await expect(r.allocate({ resource_type: 'gpu-farm' as never })).rejects.toMatchObject({ name: 'InvalidSchedulerInputError', field: 'resource_type' })
      await expect(r.allocate({ resource_type: 'compute', workload_class: 'nope' })).rejects.toMatchObject({ name: 'InvalidSchedulerInputError', field: 'workload_class' })
      await expect(r.allocate({ resource_type: 'compute', requirements: { cpu_cores: -1 } })).rejects.toMatchObject({ name: 'InvalidSchedulerInputError', field: 'requirements.cpu_cores' })
      await expect(r.allocate({ resource_type: 'compute', requirements: { cpu_cores: Number.NaN } })).rejects.toMatchObject({ name: 'InvalidSchedulerInputError' })
      await expect(r.allocate({ resource_type: 'compute', requirements: { memory_gb: 1e12 } })).rejects.toMatchObject({ name: 'InvalidSchedulerInputError', field: 'requirements.memory_gb' })
      await expect(r.allocate({ resource_type: 'memory', requirements: { vectors: 1.5 } })).rejects.toMatchObject({ name: 'InvalidSchedulerInputError', field: 'requirements.vectors' })
      for (const d of [0, -5, 1.5, 31 * 86400]) await expect(r.allocate({ resource_type: 'compute', duration_seconds: d })).rejects.toMatchObject({ name: 'InvalidInputError', field: 'duration_seconds' })
      await expect(r.release({ allocation_id: 'not-a-hash' })).rejects.toMatchObject({ name: 'InvalidInputError', field: 'allocation_id' })
      // the wire: junk and a request whose signature is not the requester's
      await expect(requester.node.mesh.request(provider.peerId, RESOURCES_PROTOCOL, new Uint8Array([0xc1]))).rejects.toMatchObject({ name: 'InvalidInputError' })
      const request: LeaseRequest = { requester: requester.agentPubKey, provider: provider.agentPubKey, resource_type: 'compute', resources: { ...SMALL, cpu_cores: 1, model_slots: 0, vectors: 0 }, duration_seconds: 60, workload_class: null, nonce: new Uint8Array(16).fill(1), requested_at: Date.now() * 1000 }
      await expect(requester.node.mesh.request(provider.peerId, RESOURCES_PROTOCOL, encodeWire({ op: 'allocate', request, signature: new Uint8Array(64).fill(9) }))).rejects.toMatchObject({ name: 'InvalidInputError' })
      // nothing was half-written: the provider's ledger holds exactly the one live lease
      expect(provider.node.resources.ledger!.live().map(l => encodeHash(l.allocation))).toEqual([again.allocation_id])
      const answer = decodeWire(await requester.node.mesh.request(provider.peerId, RESOURCES_PROTOCOL, encodeWire({ op: 'available' }))) as { committed: { cpu_cores: number } }
      expect(answer.committed.cpu_cores).toBe(2)
    })
  }, 120_000)

  it('a forged allocation published by a third node is rejected by every honest node and warranted', async () => {
    await runScenario(async (scenario) => {
      const provider = await scenario.addPlayer({ resourceCapacity: CAPACITY })
      const honest = [provider, ...await scenario.addPlayers(2, { resourceCapacity: SMALL })]
      const mallory = await scenario.addPlayer({ resourceCapacity: SMALL })
      const everyone = [...honest, mallory]
      const dna = meshDna(provider)
      await dhtSync(everyone, dna)
      // a real lease, so the forger has a genuine offer and request to copy
      const lease = await honest[1]!.node.resources.allocate({ resource_type: 'compute', requirements: { cpu_cores: 1 }, node_id: nodeId(provider) })
      await dhtSync(everyone, dna)
      const genuine = (await client(mallory).getAllocation(decodeHash(lease.allocation_id, 'Action')))!.allocation
      // mallory commits, as its own record, an allocation on the provider's capacity carrying a
      // request signed by nobody, and one copying the genuine request (signed, but not for mallory)
      const chain = mallory.node.conductor.cell(mallory.cells.resource_mesh!.cell_id)!.chain()
      const head = chain[chain.length - 1]!.signed_action.hashed
      const forge = (allocation: Allocation, seq: number): NetRecord => {
        const entry = { entry_type: 'App' as const, entry: encode(allocation) }
        const action: Action = { header: { author: mallory.agentPubKey, timestamp: head.content.header.timestamp + 1000 * (seq + 1), action_seq: head.content.header.action_seq + 1 + seq, prev_action: head.hash }, data: { type: 'Create', entry_type: { App: { entry_index: 1, zome_index: 0, visibility: 'Public' } }, entry_hash: hashFromContent(entry, 'Entry') } }
        return { action, signature: mallory.node.keystore.sign(mallory.agentPubKey, hashFromContent(action, 'Action')), entry }
      }
      const singleSigned = forge({ ...genuine, request: { ...genuine.request, nonce: new Uint8Array(16).fill(3) }, request_signature: new Uint8Array(64).fill(5), ledger: { seq: 0, prev: null, live: [] } }, 0)
      const publish = async (): Promise<void> => { await mallory.node.mesh.publish(`ops/${encodeHash(dna)}`, encode({ records: [singleSigned] })) }
      await waitUntil(async () => { await publish(); return honest.every(p => p.node.conductor.space(dna)!.isBlocked(mallory.agentPubKey)) }, { what: 'the warrant to spread', timeoutMs: 30_000, intervalMs: 500 })
      for (const p of honest) {
        expect(p.node.conductor.space(dna)!.warrants().some(w => encodeHash(w.warrantee) === nodeId(mallory))).toBe(true)
        expect(await client(p).getAllocation(hashFromContent(singleSigned.action, 'Action'))).toBeNull()
      }
      // the provider's real ledger is untouched
      expect(provider.node.resources.ledger!.committed().cpu_cores).toBe(1)
    })
  }, 120_000)

  it('schedule_task runs a WASM module on a remote node of a 3-node mesh, records its usage, and a task that misbehaves there ends in its typed error', async () => {
    const wasm = await buildWasmFixtures()
    await runScenario(async (scenario) => {
      const worker = await scenario.addPlayer({ resourceCapacity: { ...CAPACITY, cpu_cores: 4 } })
      const [requester, third] = await scenario.addPlayers(2, { resourceCapacity: SMALL })
      await dhtSync([worker, requester!, third!], meshDna(worker))
      await waitUntil(async () => (await requester!.cells.agent_registry!.callZome<unknown[]>('discovery', 'query_peers', null)).length === 3, { what: 'every node advertised' })
      // placed by the scheduler: the only node with free cores is the worker
      const done = await requester!.node.resources.scheduleTask({ wasm: wasm.echo, input: new TextEncoder().encode('hello mesh'), requirements: { cpu_cores: 1 } })
      expect(new TextDecoder().decode(done.output)).toBe('HELLO MESH')
      expect(done.exit_code).toBe(0)
      expect(done.node_id).toBe(nodeId(worker))
      expect(done.usage.wall_ms).toBeGreaterThanOrEqual(0)
      expect(done.placement.picked).toBe(nodeId(worker))
      // the lease was released and its usage recorded in an accounting entry on the worker's chain
      expect(worker.node.resources.ledger!.committed().cpu_cores).toBe(0)
      await waitUntil(async () => (await requester!.node.resources.usage({ allocation_id: done.allocation_id })).tasks === 1, { what: 'the usage record to reach the requester', timeoutMs: 30_000 })
      const usage = await third!.node.resources.usage({ allocation_id: done.allocation_id })
      expect(usage.tasks).toBe(1)
      expect(usage.cpu_seconds).toBeGreaterThanOrEqual(0)
      // a task that loops forever hits its CPU limit on the worker, which keeps serving
      await expect(requester!.node.resources.scheduleTask({ wasm: wasm.loop, limits: { cpu_ms: 300 }, node_id: nodeId(worker) })).rejects.toMatchObject({ name: 'WasmCpuLimitError' })
      await expect(requester!.node.resources.scheduleTask({ wasm: wasm.unknownImport, node_id: nodeId(worker) })).rejects.toMatchObject({ name: 'WasmImportError' })
      await expect(requester!.node.resources.scheduleTask({ wasm: wasm.notWasm, node_id: nodeId(worker) })).rejects.toMatchObject({ name: 'InvalidWasmModuleError' })
      // the worker's policy gives tasks no clock
      await expect(requester!.node.resources.scheduleTask({ wasm: wasm.clock, allow_clock: true, node_id: nodeId(worker) })).rejects.toMatchObject({ name: 'InvalidInputError', message: expect.stringMatching(/no clock/) })
      const again = await requester!.node.resources.scheduleTask({ wasm: wasm.echo, input: new TextEncoder().encode('ok'), node_id: nodeId(worker) })
      expect(new TextDecoder().decode(again.output)).toBe('OK')
      expect(worker.node.resources.ledger!.committed().cpu_cores).toBe(0)
      // only the holder of a compute lease runs tasks under it
      const lease = await requester!.node.resources.allocate({ resource_type: 'compute', requirements: { cpu_cores: 1 }, node_id: nodeId(worker) })
      const stolen = encodeWire({ op: 'task', allocation: decodeHash(lease.allocation_id, 'Action'), task: { wasm: wasm.echo } })
      await expect(third!.node.mesh.request(worker.peerId, RESOURCES_PROTOCOL, stolen)).rejects.toMatchObject({ name: 'NotTheHolderError' })
    })
  }, 120_000)

  it('placement follows the compute policy a policy admin stores in policy_store, and a workload class sets the lease\'s length', async () => {
    await runScenario(async (scenario) => {
      const admin = await scenario.prepareAgent()
      const policyAdmins = [admin.agentPubKey]
      const big = await scenario.addPlayer({ resourceCapacity: { ...CAPACITY, cpu_cores: 16 }, policyAdmins, dataDir: admin.dataDir })
      const small = await scenario.addPlayer({ resourceCapacity: { ...CAPACITY, cpu_cores: 4 }, policyAdmins })
      const requester = await scenario.addPlayer({ resourceCapacity: SMALL, policyAdmins })
      await waitUntil(async () => (await requester.cells.agent_registry!.callZome<unknown[]>('discovery', 'query_peers', null)).length === 3, { what: 'every node advertised' })
      // the design's default, locality_aware_binpack: the fullest node that fits — both are empty,
      // so the fit decides: 1 of 4 cores beats 1 of 16
      const before = await requester.node.resources.allocate({ resource_type: 'compute', requirements: { cpu_cores: 1 }, duration_seconds: 60 })
      expect(before.placement.algorithm).toBe('locality_aware_binpack')
      expect(before.node_id).toBe(nodeId(small))
      await requester.node.resources.release(before)
      // the admin stores a policy that spreads
      await new PolicyStoreClient(big.node.client).setPolicy({ name: 'flexstack-compute', kind: 'compute', document: { scheduling: { algorithm: 'spread' } } })
      await dhtSync([big, small, requester], requester.cells.policy_store!.cell_id[0])
      await waitUntil(async () => {
        const lease = await requester.node.resources.allocate({ resource_type: 'compute', requirements: { cpu_cores: 1 }, duration_seconds: 60 })
        await requester.node.resources.release(lease)
        return lease.placement.algorithm === 'spread' && lease.node_id === nodeId(big)
      }, { what: 'placement to follow the stored policy', timeoutMs: 20_000, intervalMs: 1000 })
      // agent_task's timeout (1800 s) is the lease's length when none is given
      const classed = await requester.node.resources.allocate({ resource_type: 'compute', workload_class: 'agent_task' })
      expect(Date.parse(classed.expires_at) - Date.now()).toBeGreaterThan(1700_000)
      expect(Date.parse(classed.expires_at) - Date.now()).toBeLessThanOrEqual(1800_000)
      expect(classed.resources.memory_gb).toBe(4)
    })
  }, 120_000)
})
