import { describe, it, expect } from 'vitest'
import {
  DEFAULT_COMPUTE_POLICY,
  InvalidSchedulerInputError,
  LOCALITY_PREFERENCES,
  PlacementIndex,
  RESOURCE_TYPES,
  SCHEDULING_ALGORITHMS,
  createSeededRng,
  pickNode
} from '../index.ts'
import type { LocalityPreference, PlacementNode, PlacementRequest, Requirements, Rng, SchedulingAlgorithm } from '../index.ts'

// Few distinct values per field, so that keys tie often and the node_id decides.
const REGIONS = ['eu-west', 'us-east', 'ap-south']
const MODELS = ['qwen3-4b', 'phi-4-mini', 'gemma-3n']
const POOLS = ['gpu-node-pool', 'cpu-moe-distributed', 'cloud-ephemeral', 'local-containerized', 'storage-tier-nodes']
const AVAILABILITIES = ['online', 'online', 'online', 'busy', 'draining', 'offline'] as const
const CLASSES = [undefined, ...Object.keys(DEFAULT_COMPUTE_POLICY.workload_classes)]

function gen (rng: Rng): {
  pick: <T>(xs: readonly T[]) => T
  maybe: <T>(p: number, value: () => T) => T | undefined
  subset: <T>(xs: readonly T[], p: number) => T[]
  int: (n: number) => number
} {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!
  return {
    pick,
    maybe: (p, value) => rng() < p ? value() : undefined,
    subset: (xs, p) => xs.filter(() => rng() < p),
    int: n => Math.floor(rng() * n)
  }
}

function randomNode (rng: Rng, i: number): PlacementNode {
  const { pick, maybe, subset, int } = gen(rng)
  const cap = { cpu_cores: pick([0, 4, 8, 16]), memory_gb: pick([0, 16, 32, 64]), gpu_count: pick([0, 0, 1, 2]), storage_gb: pick([0, 100, 1000]) }
  const loaded = subset(MODELS, 0.2)
  return {
    // ids out of order, so the index cannot lean on the input order
    node_id: `n-${String((i * 7919) % 1000).padStart(3, '0')}-${i}`,
    ...(rng() < 0.05 ? { self: true } : {}),
    availability: pick(AVAILABILITIES),
    latency_region: pick(REGIONS),
    offers: subset(RESOURCE_TYPES, 0.7),
    capacity: cap,
    // sometimes over the capacity (a stale lease), sometimes exactly full
    leased: { cpu_cores: int(cap.cpu_cores + 3), memory_gb: pick([0, 8, 16, cap.memory_gb]), gpu_count: int(cap.gpu_count + 1), storage_gb: pick([0, 50, cap.storage_gb]) },
    gpu_vram_gb: maybe(0.5, () => pick([8, 16, 24])),
    bandwidth_mbps: maybe(0.5, () => pick([100, 500, 1000])),
    load: { cpu_percent: pick([0, 5, 9, 35, 80, 100]), gpu_percent: pick([0, 0, 50]) },
    models_loaded: maybe(0.8, () => loaded),
    models_available: maybe(0.8, () => [...loaded, ...subset(MODELS, 0.3)]),
    vector_dimensions: maybe(0.3, () => subset([384, 768, 1024], 0.6)),
    pools: maybe(0.7, () => subset(POOLS, 0.3)),
    rtt_ms: pick([undefined, null, 0, 3, 4.9, 5, 12, 80, Number.POSITIVE_INFINITY, Number.NaN]),
    cost_per_hour: pick([undefined, null, 0, 0.5, 1, 1, 3]),
    speed: pick([undefined, null, 0, 20, 20, 150]),
    holds_data: rng() < 0.15
  }
}

function randomRequest (rng: Rng): PlacementRequest {
  const { pick, maybe } = gen(rng)
  const requirements: Requirements = {}
  if (rng() < 0.6) requirements.cpu_cores = pick([0, 1, 2, 4, 8, 16])
  if (rng() < 0.5) requirements.memory_gb = pick([0, 1, 8, 16, 48])
  if (rng() < 0.2) requirements.gpu = rng() < 0.7
  if (rng() < 0.15) requirements.gpu_vram_gb = pick([0, 8, 16])
  if (rng() < 0.2) requirements.storage_gb = pick([10, 100, 900])
  if (rng() < 0.3) requirements.model_name = pick([...MODELS, 'absent-model'])
  if (rng() < 0.15) requirements.vector_dimensions = pick([384, 768])
  if (rng() < 0.1) requirements.bandwidth_mbps = pick([100, 600])
  return {
    resource_type: pick(RESOURCE_TYPES),
    requirements,
    ...(rng() < 0.8 ? { locality_preference: pick(LOCALITY_PREFERENCES) } : {}),
    ...(rng() < 0.3 ? { workload_class: pick(CLASSES) } : {}),
    region: maybe(0.8, () => pick(REGIONS))
  }
}

/** A random change of one node: leases and load mostly, sometimes what decides its groups. */
function randomChange (rng: Rng, node: PlacementNode): PlacementNode {
  const { pick, int } = gen(rng)
  const r = rng()
  if (r < 0.5) return { ...node, leased: { ...node.leased, cpu_cores: int(node.capacity.cpu_cores + 2), memory_gb: int(node.capacity.memory_gb + 2) }, load: { cpu_percent: int(101), gpu_percent: 0 } }
  if (r < 0.7) return { ...node, availability: pick(AVAILABILITIES) }
  if (r < 0.8) return { ...node, latency_region: pick(REGIONS), rtt_ms: pick([null, 1, 7, 40]) }
  if (r < 0.9) return { ...node, models_loaded: gen(rng).subset(MODELS, 0.4), holds_data: rng() < 0.5, offers: gen(rng).subset(RESOURCE_TYPES, 0.7) }
  return { ...node, cost_per_hour: pick([null, 0.2, 2]), speed: pick([null, 10, 200]), self: rng() < 0.1 }
}

describe('PlacementIndex', () => {
  it('picks exactly what pickNode picks: 3,000 seeded random meshes, every algorithm and locality, through updates and removals', () => {
    const rng = createSeededRng(20_251_202)
    let compared = 0
    let nulls = 0
    for (let mesh = 0; mesh < 3000; mesh++) {
      const nodes = Array.from({ length: Math.floor(rng() * (mesh % 10 === 0 ? 200 : 30)) }, (_, i) => randomNode(rng, i))
      const index = new PlacementIndex(nodes)
      const byId = new Map(nodes.map(n => [n.node_id, n]))
      for (let step = 0; step < 6; step++) {
        const request = randomRequest(rng)
        for (const algorithm of SCHEDULING_ALGORITHMS) {
          const expected = pickNode([...byId.values()], request, DEFAULT_COMPUTE_POLICY, { algorithm })
          const got = index.pick(request, DEFAULT_COMPUTE_POLICY, { algorithm })
          if (got !== expected) throw new Error(`mesh ${mesh} step ${step} ${algorithm}: index picked ${got}, pickNode ${expected} for ${JSON.stringify(request)}`)
          compared++
          if (expected === null) nulls++
        }
        // then the mesh changes: a node's leases, load, availability, region, models…; one leaves, one joins
        const ids = [...byId.keys()]
        for (let k = 0; k < 3 && ids.length > 0; k++) {
          const id = ids[Math.floor(rng() * ids.length)]!
          const changed = randomChange(rng, byId.get(id)!)
          byId.set(id, changed)
          index.update(changed)
        }
        if (ids.length > 0 && rng() < 0.3) {
          const id = ids[Math.floor(rng() * ids.length)]!
          byId.delete(id)
          expect(index.remove(id)).toBe(true)
        }
        if (rng() < 0.3) {
          const added = randomNode(rng, 1000 + step)
          byId.set(added.node_id, added)
          index.update(added)
        }
        expect(index.size).toBe(byId.size)
      }
    }
    // the test must have covered both outcomes often
    expect(compared).toBe(3000 * 6 * 3)
    expect(nulls).toBeGreaterThan(compared / 10)
    expect(compared - nulls).toBeGreaterThan(compared / 4)
  })

  it('picks what pickNode picks on a large mesh of many ties, visiting far fewer nodes than it holds', () => {
    const rng = createSeededRng(7)
    const nodes = Array.from({ length: 2000 }, (_, i) => ({ ...randomNode(rng, i), availability: rng() < 0.9 ? 'online' as const : 'busy' as const, offers: [...RESOURCE_TYPES] }))
    const index = new PlacementIndex(nodes)
    const request = (locality: LocalityPreference): PlacementRequest => ({ resource_type: 'compute', requirements: { cpu_cores: 1, memory_gb: 1 }, locality_preference: locality, region: 'eu-west' })
    for (const locality of LOCALITY_PREFERENCES) {
      for (const algorithm of SCHEDULING_ALGORITHMS) {
        expect(index.pick(request(locality), DEFAULT_COMPUTE_POLICY, { algorithm })).toBe(pickNode(nodes, request(locality), DEFAULT_COMPUTE_POLICY, { algorithm }))
      }
    }
    const before = index.stats().visited
    index.pick(request('nearest'))
    expect(index.stats().visited - before).toBeLessThan(nodes.length / 10)
  })

  it('sees a node changed in place and given to update again', () => {
    const node: PlacementNode = {
      node_id: 'a',
      availability: 'online',
      latency_region: 'eu-west',
      offers: ['compute'],
      capacity: { cpu_cores: 8, memory_gb: 32, gpu_count: 0, storage_gb: 0 },
      leased: { cpu_cores: 0, memory_gb: 0, gpu_count: 0, storage_gb: 0 },
      load: { cpu_percent: 0, gpu_percent: 0 }
    }
    const index = new PlacementIndex([node, { ...node, node_id: 'b', leased: { ...node.leased, cpu_cores: 4 } }])
    const request: PlacementRequest = { resource_type: 'compute', requirements: { cpu_cores: 4 } }
    expect(index.pick(request, DEFAULT_COMPUTE_POLICY, { algorithm: 'binpack' })).toBe('b')
    node.leased.cpu_cores = 6
    index.update(node)
    expect(index.pick(request, DEFAULT_COMPUTE_POLICY, { algorithm: 'binpack' })).toBe('b')
    node.availability = 'offline'
    index.update(node)
    index.update({ ...node, node_id: 'b', availability: 'draining' })
    expect(index.pick(request)).toBeNull()
    expect(index.remove('a')).toBe(true)
    expect(index.remove('a')).toBe(false)
    expect(index.get('b')?.availability).toBe('draining')
    expect([...index.nodes()].map(n => n.node_id)).toEqual(['b'])
  })

  it('leases and releases on a node: what the next pick sees; a release never goes below 0; an unknown node is refused', () => {
    const base = randomNode(createSeededRng(3), 0)
    const node: PlacementNode = { ...base, availability: 'online', offers: ['compute'], capacity: { cpu_cores: 8, memory_gb: 32, gpu_count: 0, storage_gb: 0 }, leased: { cpu_cores: 0, memory_gb: 0, gpu_count: 0, storage_gb: 0 }, vector_dimensions: undefined }
    const index = new PlacementIndex([node])
    const request: PlacementRequest = { resource_type: 'compute', requirements: { cpu_cores: 6 } }
    const demand = { cpu_cores: 6, memory_gb: 0, gpu_count: 0, storage_gb: 0 }
    expect(index.pick(request)).toBe(node.node_id)
    expect(index.lease(node.node_id, demand).leased.cpu_cores).toBe(6)
    expect(index.pick(request)).toBeNull()
    expect(index.release(node.node_id, { ...demand, cpu_cores: 10 }).leased.cpu_cores).toBe(0)
    expect(index.pick(request)).toBe(node.node_id)
    expect(node.leased.cpu_cores).toBe(0)
    const err = (() => { try { return index.lease('nope', demand) } catch (e) { return e } })()
    expect(err).toMatchObject({ name: 'InvalidSchedulerInputError', field: 'node_id' })
  })

  it.each([
    ['a NaN load', 'load', { load: { cpu_percent: Number.NaN, gpu_percent: 0 } }],
    ['an infinite lease', 'leased.cpu_cores', { leased: { cpu_cores: Number.POSITIVE_INFINITY, memory_gb: 0, gpu_count: 0, storage_gb: 0 } }],
    ['a NaN cost', 'cost_per_hour', { cost_per_hour: Number.NaN }],
    ['an empty node_id', 'node_id', { node_id: '' }],
    ['no offers', 'offers', { offers: undefined }]
  ])('refuses %s (a NaN key makes pickNode depend on the order of the nodes), naming %s', (_what, field, patch) => {
    const node = { node_id: 'x', availability: 'online', latency_region: 'eu-west', offers: ['compute'], capacity: { cpu_cores: 1, memory_gb: 1, gpu_count: 0, storage_gb: 0 }, leased: { cpu_cores: 0, memory_gb: 0, gpu_count: 0, storage_gb: 0 }, load: { cpu_percent: 0, gpu_percent: 0 }, ...patch } as PlacementNode
    const err = (() => { try { return new PlacementIndex([node]) } catch (e) { return e } })()
    expect(err).toBeInstanceOf(InvalidSchedulerInputError)
    expect(err).toMatchObject({ name: 'InvalidSchedulerInputError', field })
  })

  it('refuses a node_id given twice at construction, and a request out of its domain as pickNode does', () => {
    const node = randomNode(createSeededRng(1), 0)
    expect(() => new PlacementIndex([node, node])).toThrow(InvalidSchedulerInputError)
    expect(() => new PlacementIndex([node]).pick({ resource_type: 'gpu-farm' } as unknown as PlacementRequest)).toThrow(InvalidSchedulerInputError)
  })

  it('answers null on an empty index', () => {
    expect(new PlacementIndex().pick({ resource_type: 'compute' }, DEFAULT_COMPUTE_POLICY, { algorithm: 'spread' as SchedulingAlgorithm })).toBeNull()
  })
})
