/**
 * The dashboard's snapshot as a pure function of what a node knows, the MOE ring buffer, and the
 * snapshot source's sharing and its tolerance of a part that cannot be read.
 */
import { describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { encodeHash, hashFrom32 } from '../../holo/hash.ts'
import { silentLogger } from '../../logger.ts'
import type { PresenceInfo } from '../../conductor/network/presence.ts'
import type { ModelInfo } from '../../inference/types.ts'
import type { NodeAllocations } from '../../resources/index.ts'
import type { NodeCapability } from '../../../../zomes-ts/agent_registry/types.ts'
import type { MoeResultEvent } from '../../inference/router.ts'
import { arcCoverage, buildSnapshot, dashboard, hardwareClass, moeLog, type SnapshotParts } from '../index.ts'

interface Agent { key: Uint8Array, id: string, peerId: string }
async function agent (): Promise<Agent> {
  const k = await generateKeyPair('Ed25519')
  const key = hashFrom32(k.publicKey.raw, 'Agent')
  return { key, id: encodeHash(key), peerId: peerIdFromPublicKey(k.publicKey).toString() }
}

const NOW = Date.parse('2026-12-02T12:00:00Z')
const µs = (ms: number): number => ms * 1000

function capability (a: Agent, name: string, over: { gpu?: boolean, arch?: string, cores?: number, ram?: number, models?: string[], demo?: string[], shards?: number } = {}): NodeCapability {
  return {
    node_id: a.id,
    agent_name: name,
    capabilities: {
      compute: { cpu_cores: over.cores ?? 8, cpu_arch: over.arch ?? 'x86_64', ram_gb: over.ram ?? 16, gpu: over.gpu === true ? { vendor: 'nvidia', model: 'RTX 4090', vram_gb: 24 } : null },
      storage: { local_ssd_gb: 100, ipfs_pinned_gb: 0, s3_available_gb: 0 },
      inference: { models_loaded: over.models ?? [], max_batch_size: 2, tokens_per_second: 12.34, ...(over.demo !== undefined ? { demo_models: over.demo } : {}) },
      memory: { vector_shards: over.shards ?? 0, redis_memory_gb: 0 }
    },
    network: { bandwidth_mbps: 1000, latency_region: 'eu-west' },
    availability: 'online',
    load: { cpu_percent: 5, gpu_percent: 0, memory_percent: 40 },
    last_heartbeat: new Date(NOW - 60_000).toISOString()
  }
}

function presence (a: Agent, over: Partial<PresenceInfo> = {}): PresenceInfo {
  return { agent: a.key, created_at: µs(NOW - 2000), expires_at: µs(NOW + 20_000), is_tombstone: false, arc: [0, 0xffffffff], availability: 'online', load: { cpu_percent: 33.33, gpu_percent: 0, memory_percent: 50 }, ...over }
}

function model (id: string, over: Partial<ModelInfo> = {}): ModelInfo {
  return { id, file: `${id}.gguf`, size_bytes: 1, architecture: 'llama', context_length: 256, embedding_length: 64, loaded: true, tokens_per_second: 20, queue_depth: 1, in_flight: 2, demo: false, ...over }
}

describe('buildSnapshot', () => {
  it('lists every known node with its liveness, this node\'s own figures, its links and its live leases', async () => {
    const [self, peer, gone, stranger] = await Promise.all([agent(), agent(), agent(), agent()])
    const lease = (id: string, provider: string, expires: number): NodeAllocations['provided'][number] =>
      ({ allocation_id: id, node_id: provider, endpoint: '/flexstack/local/resources/1', expires_at: new Date(expires).toISOString(), resource_type: 'compute', resources: { cpu_cores: 1, memory_gb: 1, gpu_count: 0, storage_gb: 0, model_slots: 0, vectors: 0 }, holder: self.id })
    const parts: SnapshotParts = {
      network: 'local',
      self: self.id,
      now: NOW,
      capabilities: [
        capability(self, 'alpha', { models: ['old-model'], shards: 8 }),
        capability(peer, 'bravo', { gpu: true, models: ['tiny', 'demo'], demo: ['demo'] }),
        capability(gone, 'charlie', { arch: 'aarch64', ram: 4 })
      ],
      presence: [
        presence(self, { arc: [0x80000000, 0x7fffffff] }),
        presence(peer, { availability: 'busy', queue: { tiny: 3 }, arc: [0, 0x3fffffff] }),
        // an expired record and a tombstone count as no record
        presence(gone, { expires_at: µs(NOW - 1) })
      ],
      // an offline node's last sign of life, as the dashboard remembers it (a live record wins)
      lastSeen: new Map([[gone.id, µs(NOW - 30_000)], [peer.id, µs(NOW - 60_000)]]),
      connected: [peer.peerId, stranger.peerId, 'not-a-peer-id'],
      selfArc: [0, 0xffffffff],
      models: [model('tiny'), model('unloaded', { loaded: false }), model('toy-demo', { demo: true, queue_depth: 0, in_flight: 0 })],
      shards: ['notes/0', 'notes/3'],
      allocations: {
        held: [
          { ...lease('uhCkkHELD', peer.id, NOW + 60_000), live: true },
          { ...lease('uhCkkDEAD', peer.id, NOW + 60_000), live: false },
          // held from this node itself: listed once
          { ...lease('uhCkkSELF', self.id, NOW + 30_000), live: true }
        ],
        provided: [lease('uhCkkSELF', self.id, NOW + 30_000), lease('uhCkkOLD', self.id, NOW - 1)]
      },
      moe: [],
      problems: ['allocations: nothing to see']
    }
    const snap = buildSnapshot(parts)

    expect(snap.self).toBe(self.id)
    expect(snap.network).toBe('local')
    expect(snap.generated_at).toBe('2026-12-02T12:00:00.000Z')
    // this node first, then by name; a connected node that advertised nothing has a short key for a name
    expect(snap.nodes.map(n => n.name)).toEqual(['alpha', 'bravo', 'charlie', `${stranger.id.slice(5, 13)}…`])
    const [a, b, c, s] = snap.nodes as [typeof snap.nodes[number], typeof snap.nodes[number], typeof snap.nodes[number], typeof snap.nodes[number]]
    expect(a).toMatchObject({ self: true, status: 'online', peer_id: self.peerId, shards: ['notes/0', 'notes/3'], shard_capacity: 8, arc: [0, 0xffffffff], arc_coverage: 1, tokens_per_second: 20 })
    // this node's models come from its engine (loaded only), with requests waiting and generating
    expect(a.models).toEqual([{ id: 'tiny', demo: false, queue: 3 }, { id: 'toy-demo', demo: true, queue: 0 }])
    expect(a.hardware).toEqual({ class: 'desktop', cpu_cores: 8, cpu_arch: 'x86_64', ram_gb: 16, gpu: null })
    expect(a.capabilities).toEqual(['compute', 'inference', 'memory', 'storage'])

    expect(b).toMatchObject({ self: false, status: 'busy', peer_id: peer.peerId, region: 'eu-west', shards: null, arc: [0, 0x3fffffff], arc_coverage: 0.25, tokens_per_second: 12.3 })
    expect(b.models).toEqual([{ id: 'tiny', demo: false, queue: 3 }, { id: 'demo', demo: true, queue: 0 }])
    expect(b.hardware?.class).toBe('gpu-server')
    expect(b.hardware?.gpu).toBe('nvidia RTX 4090 (24 GB)')
    expect(b.load).toEqual({ cpu_percent: 33.3, gpu_percent: 0, memory_percent: 50 })
    expect(b.last_seen).toBe('2026-12-02T11:59:58.000Z')

    expect(c).toMatchObject({ status: 'offline', arc: null, arc_coverage: null, last_seen: '2026-12-02T11:59:30.000Z' })
    expect(snap.nodes[3]?.last_seen).toBeNull()
    expect(c.hardware?.class).toBe('arm-board')
    expect(s).toMatchObject({ status: 'offline', hardware: null, capabilities: [], models: [] })

    // links: this node's connections, to agent keys only
    expect(snap.links).toEqual([peer.id, stranger.id].sort().map(to => ({ from: self.id, to, kind: 'connected' })))
    // live leases, once each, soonest first; a dead or expired one is left out
    expect(snap.allocations.map(l => [l.allocation_id, l.provider, l.holder])).toEqual([['uhCkkSELF', self.id, self.id], ['uhCkkHELD', peer.id, self.id]])
    expect(snap.problems).toEqual(['allocations: nothing to see'])
  })

  it('shows a node draining when its NodeCapability says so and its presence is live, offline when it is not', async () => {
    const [self, drainer] = await Promise.all([agent(), agent()])
    const cap = { ...capability(drainer, 'delta'), availability: 'draining' as const }
    const base: SnapshotParts = { network: 'local', self: self.id, now: NOW, capabilities: [cap], presence: [presence(drainer, { availability: undefined })], connected: [], selfArc: null, models: [], shards: [], allocations: null, moe: [], problems: [] }
    expect(buildSnapshot(base).nodes.find(n => n.name === 'delta')?.status).toBe('draining')
    expect(buildSnapshot({ ...base, presence: [] }).nodes.find(n => n.name === 'delta')?.status).toBe('offline')
    // this node with no capability or presence yet: online, known by its key, its arc empty
    expect(buildSnapshot(base).nodes[0]).toMatchObject({ self: true, status: 'online', arc: null, arc_coverage: 0, hardware: null })
  })

  it('measures arcs on the u32 ring, wrapping ones too, and classes machines', () => {
    expect(arcCoverage(null)).toBe(0)
    expect(arcCoverage([0, 0xffffffff])).toBe(1)
    expect(arcCoverage([0xc0000000, 0x3fffffff])).toBe(0.5)
    expect(arcCoverage([5, 5])).toBe(1 / 2 ** 32)
    expect(hardwareClass({ cpu_cores: 64, cpu_arch: 'x86_64', ram_gb: 256, gpu: null })).toBe('server')
    expect(hardwareClass({ cpu_cores: 4, cpu_arch: 'arm64', ram_gb: 8, gpu: null })).toBe('arm-board')
  })
})

describe('moeLog', () => {
  const event = (trace: string): MoeResultEvent => ({
    task_type: 'general',
    policy: 'ripple-moe',
    outcome: {
      response: 'secret answer',
      consensus: true,
      consensus_score: 0.75,
      trace_id: trace,
      model_votes: [
        { model: 'a', node: 'n1', response_hash: 'h1', weight: 1, latency_ms: 10 },
        { model: 'b', node: 'n2', response_hash: 'h2', weight: 0.5, latency_ms: 12 },
        Object.assign({ model: 'c', node: 'n3', response_hash: '', weight: 0, latency_ms: 3 }, { error: 'boom' })
      ]
    },
    vote_clusters: [0, 1, null]
  })

  it('keeps the newest results, votes without the answers, and which agreed with the winner', () => {
    let t = NOW
    const log = moeLog({ size: 2, clock: () => (t += 1000) })
    log.record(event('t1'))
    log.record(event('t2'))
    log.record(event('t3'))
    const recent = log.recent()
    expect(recent.map(r => r.trace_id)).toEqual(['t3', 't2'])
    expect(recent[0]).toEqual({
      at: '2026-12-02T12:00:03.000Z',
      trace_id: 't3',
      task_type: 'general',
      policy: 'ripple-moe',
      consensus: true,
      consensus_score: 0.75,
      votes: [
        { model: 'a', node: 'n1', weight: 1, latency_ms: 10, agreed: true },
        { model: 'b', node: 'n2', weight: 0.5, latency_ms: 12, agreed: false },
        { model: 'c', node: 'n3', weight: 0, latency_ms: 3, agreed: false, error: 'boom' }
      ]
    })
    expect(JSON.stringify(recent)).not.toContain('secret answer')
  })
})

describe('dashboard', () => {
  it('builds one snapshot for concurrent readers, and a part that fails is named, not thrown', async () => {
    const self = await agent()
    let capabilityReads = 0
    let allocationsFail = true
    const components: Parameters<ReturnType<typeof dashboard>>[0] = {
      network: 'testnet',
      selfNodeId: self.id,
      registry: { queryPeers: async (input) => { capabilityReads++; expect(input?.availability).toEqual(['online', 'busy', 'draining', 'offline']); return [capability(self, 'solo')] } },
      mesh: { peers: () => [] },
      dht: { arcStatus: () => ({ arc: [0, 0xffffffff], sectors: 512, authoritiesSeen: 1, coverage: 0, targetRedundancy: 5, peers: [] }), presence: { live: () => [presence(self, { created_at: µs(Date.now()), expires_at: µs(Date.now() + 60_000) })] } as never },
      engine: { listModels: () => [] },
      resources: { allocations: async () => { if (allocationsFail) throw new Error('the cell is closed'); return { held: [], provided: [] } } },
      memory: { host: { hosted: () => [{ collection: 'notes.mabc12', shard: 2, dimensions: 4, distance: 'cosine' }] } },
      moe: { recent: () => [] },
      logger: silentLogger()
    }
    const dash = dashboard({ snapshotMaxAgeMs: 60_000 })(components)
    const [x, y] = await Promise.all([dash.snapshot(), dash.snapshot()])
    expect(x).toBe(y)
    expect(capabilityReads).toBe(1)
    expect(x.problems).toEqual(['allocations: the cell is closed'])
    expect(x.allocations).toEqual([])
    expect(x.nodes).toHaveLength(1)
    expect(x.nodes[0]).toMatchObject({ name: 'solo', self: true, status: 'online', shards: ['notes/2'] })
    allocationsFail = false
    // within the max age the same snapshot serves; past it, the parts are read again
    expect(await dash.snapshot()).toBe(x)
    const eager = dashboard({ snapshotMaxAgeMs: 0 })(components)
    expect((await eager.snapshot()).problems).toEqual([])
    expect(capabilityReads).toBe(2)
  })
})
