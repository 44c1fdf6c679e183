/**
 * resource_mesh validation, step by step: ledger steps committed straight through the zome (not
 * the agent's ledger, which would refuse them first) are checked by the integrity zome, and a
 * refused step leaves nothing on the chain.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { createTestAgent, type TestAgent } from '../../../fixtures/index.ts'
import { ResourceMeshClient } from '../client.ts'
import type { LeaseChange, LeaseRequest, LedgerHead } from '../types.ts'
import type { ActionHash } from '../../hdk/index.ts'

const CAPACITY = { cpu_cores: 4, memory_gb: 8, gpu_count: 0, storage_gb: 10 }
const US = 1_000_000

describe('resource_mesh validation of ledger steps', () => {
  let agent: TestAgent
  let client: ResourceMeshClient
  let me: Uint8Array

  beforeAll(async () => {
    agent = await createTestAgent({ resourceCapacity: CAPACITY, wasmThreads: 1 })
    client = new ResourceMeshClient(agent.node.client)
    me = agent.node.keystore.primary.agentPubKey
  }, 60_000)
  afterAll(async () => { await agent?.[Symbol.asyncDispose]() })

  const request = (over: Partial<LeaseRequest> = {}): LeaseRequest => ({
    requester: me,
    provider: me,
    resource_type: 'compute',
    resources: { cpu_cores: 1, memory_gb: 1, gpu_count: 0, storage_gb: 0, model_slots: 0, vectors: 0 },
    duration_seconds: 600,
    workload_class: null,
    nonce: new Uint8Array(randomBytes(16)),
    requested_at: Date.now() * 1000,
    ...over
  })
  const head = async (): Promise<LedgerHead> => await client.ledgerHead()
  /** a step after the current head, keeping every live lease, unless told otherwise */
  const link = async (live?: ActionHash[]): Promise<{ seq: number, prev: ActionHash | null, live: ActionHash[] }> => {
    const h = await head()
    return { seq: h.head === null ? 0 : h.head.seq + 1, prev: h.head?.action_hash ?? null, live: live ?? h.live.map(l => l.allocation) }
  }
  const commit = async (req: LeaseRequest, over: { signature?: Uint8Array, expires_at?: number, live?: ActionHash[] } = {}): Promise<ActionHash> => {
    const h = await head()
    return await client.commitAllocation({
      request: req,
      request_signature: over.signature ?? await client.signRequest(req),
      offer: h.offer!.action_hash,
      expires_at: over.expires_at ?? Date.now() * 1000 + req.duration_seconds * US - US,
      renewal: null,
      ledger: await link(over.live)
    })
  }

  it('accepts a well-formed step and refuses each bad one with its reason, leaving the chain as it was', async () => {
    const first = await commit(request())
    const before = await head()
    expect(before.live.map(l => l.allocation)).toEqual([first])

    await expect(commit(request({ resources: { cpu_cores: 4, memory_gb: 1, gpu_count: 0, storage_gb: 0, model_slots: 0, vectors: 0 } }))).rejects.toThrow(/would commit 5 cpu_cores, over its capacity of 4/)
    await expect(commit(request(), { live: [] })).rejects.toThrow(/drops a lease that has not expired/)
    await expect(commit(request(), { signature: new Uint8Array(64).fill(3) })).rejects.toThrow(/not signed by its requester/)
    await expect(commit(request({ requested_at: Date.now() * 1000 - 10 * 60 * US }))).rejects.toThrow(/signed more than 300 s before/)
    await expect(commit(request(), { expires_at: Date.now() * 1000 + 3600 * US })).rejects.toThrow(/later than the lease's duration allows/)
    await expect(commit(request(), { expires_at: Date.now() * 1000 - US })).rejects.toThrow(/not after the allocation/)
    await expect(commit(request({ duration_seconds: 2 * 86_400 }))).rejects.toThrow(/longer than the provider's maximum of 86400 s/)
    await expect(commit(request({ provider: new Uint8Array(me).fill(9, 3, 35) }))).rejects.toThrow(/committed by the provider its request names/)
    await expect(commit(request({ resources: { cpu_cores: -1, memory_gb: 0, gpu_count: 0, storage_gb: 0, model_slots: 0, vectors: 0 } }))).rejects.toThrow(/cpu_cores must be a number from 0/)
    await expect(commit(request({ resources: { cpu_cores: Number.NaN, memory_gb: 0, gpu_count: 0, storage_gb: 0, model_slots: 0, vectors: 0 } }))).rejects.toThrow(/cpu_cores must be a number from 0/)
    // a granted request cannot be granted twice while it is live
    const granted = (await client.getAllocation(first))!.allocation.request
    await expect(commit({ ...granted })).rejects.toThrow(/already granted/)

    // nothing of the refused steps reached the chain: the head is where it was
    expect(await head()).toEqual(before)
    // and the next good step follows it
    const second = await commit(request())
    expect((await head()).live.map(l => l.allocation).sort()).toEqual([first, second].sort())
  })

  it('refuses a release its holder did not sign, and one that names another allocation', async () => {
    const a = await commit(request())
    const change: LeaseChange = { kind: 'release', allocation: a, duration_seconds: null, nonce: new Uint8Array(randomBytes(16)), requested_at: Date.now() * 1000 }
    const h = await head()
    const rest = h.live.map(l => l.allocation).filter(x => x.toString() !== a.toString())
    const ledger = { seq: h.head!.seq + 1, prev: h.head!.action_hash, live: rest }
    await expect(client.commitRelease({ allocation: a, change: { change, signature: new Uint8Array(64).fill(1) }, ledger })).rejects.toThrow(/not signed by the lease's holder/)
    const other = h.live.find(l => l.allocation.toString() !== a.toString())!.allocation
    await expect(client.commitRelease({ allocation: other, change: { change, signature: await client.signChange(change) }, ledger: { ...ledger, live: h.live.map(l => l.allocation).filter(x => x.toString() !== other.toString()) } })).rejects.toThrow(/names another allocation/)
    // the holder's own release goes through and frees the lease
    await client.commitRelease({ allocation: a, change: { change, signature: await client.signChange(change) }, ledger })
    expect((await head()).live.some(l => l.allocation.toString() === a.toString())).toBe(false)
  })
})
