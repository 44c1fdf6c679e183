import { describe, it, expect } from 'vitest'
import { DEFAULT_COMPUTE_POLICY, InvalidPolicyError, InvalidSchedulerInputError, parseComputePolicy, pickNode, placeRequest } from '../index.ts'
import type { PlacementNode, PlacementRequest, SchedulingAlgorithm } from '../index.ts'

function node (node_id: string, patch: Partial<PlacementNode> = {}): PlacementNode {
  return {
    node_id,
    availability: 'online',
    latency_region: 'eu-west',
    offers: ['compute', 'inference', 'storage', 'memory'],
    capacity: { cpu_cores: 16, memory_gb: 64, gpu_count: 0, storage_gb: 1000 },
    leased: { cpu_cores: 0, memory_gb: 0, gpu_count: 0, storage_gb: 0 },
    load: { cpu_percent: 10, gpu_percent: 0 },
    rtt_ms: 10,
    ...patch
  }
}

const leased = (cpu_cores: number, memory_gb = cpu_cores * 4): PlacementNode['leased'] => ({ cpu_cores, memory_gb, gpu_count: 0, storage_gb: 0 })
const compute = (cpu_cores: number, patch: Partial<PlacementRequest> = {}): PlacementRequest => ({ resource_type: 'compute', requirements: { cpu_cores, memory_gb: cpu_cores * 4 }, ...patch })

// a near-full node, a half-full one and an empty one, all in the requester's region at the same rtt
const full = node('a-full', { leased: leased(12) })
const half = node('b-half', { leased: leased(8) })
const empty = node('c-empty')

interface Case {
  name: string
  algorithm: SchedulingAlgorithm
  nodes: PlacementNode[]
  request: PlacementRequest
  order: string[]
  /** a fragment of the winner's explanation */
  explains: string
}

const CASES: Case[] = [
  { name: 'binpack: the fullest node that still fits', algorithm: 'binpack', nodes: [empty, half, full], request: compute(2, { region: 'eu-west' }), order: ['a-full', 'b-half', 'c-empty'], explains: 'fit 88%' },
  { name: 'binpack: a node the request does not fit is filtered, the next fullest wins', algorithm: 'binpack', nodes: [empty, half, full], request: compute(6, { region: 'eu-west' }), order: ['b-half', 'c-empty', 'a-full'], explains: 'fit 88%' },
  { name: 'spread: the emptiest node', algorithm: 'spread', nodes: [full, half, empty], request: compute(2, { region: 'eu-west' }), order: ['c-empty', 'b-half', 'a-full'], explains: 'fit 13%' },
  { name: 'spread: equal fit, the lighter load first', algorithm: 'spread', nodes: [node('a', { load: { cpu_percent: 80, gpu_percent: 0 } }), node('b', { load: { cpu_percent: 5, gpu_percent: 0 } })], request: compute(2), order: ['b', 'a'], explains: 'load 5%' },
  {
    name: 'locality_aware_binpack: the requester\'s region before a fuller node elsewhere',
    algorithm: 'locality_aware_binpack',
    nodes: [node('a-far-full', { latency_region: 'us-east', leased: leased(12), rtt_ms: 90 }), half, empty],
    request: compute(2, { region: 'eu-west' }),
    order: ['b-half', 'c-empty', 'a-far-full'],
    explains: 'same region'
  },
  {
    name: 'locality_aware_binpack: the requester itself first, then binpack among the near',
    algorithm: 'locality_aware_binpack',
    nodes: [node('a-self', { self: true }), half, full],
    request: compute(2, { region: 'eu-west' }),
    order: ['a-self', 'a-full', 'b-half'],
    explains: 'the requester itself'
  },
  {
    name: 'nearest: lower rtt within the region',
    algorithm: 'locality_aware_binpack',
    nodes: [node('a-slow', { rtt_ms: 40, leased: leased(8) }), node('b-close', { rtt_ms: 2 })],
    request: compute(2, { region: 'eu-west', locality_preference: 'nearest' }),
    order: ['b-close', 'a-slow'],
    explains: 'rtt 2 ms'
  },
  {
    name: 'cheapest: lower cost per hour; an unknown cost last',
    algorithm: 'locality_aware_binpack',
    nodes: [node('a-dear', { cost_per_hour: 3 }), node('b-unknown'), node('c-cheap', { cost_per_hour: 0.5 })],
    request: compute(2, { locality_preference: 'cheapest' }),
    order: ['c-cheap', 'a-dear', 'b-unknown'],
    explains: '0.5/h'
  },
  {
    name: 'fastest: higher measured speed; an unmeasured node last',
    algorithm: 'locality_aware_binpack',
    nodes: [node('a-slow', { speed: 20 }), node('b-unmeasured'), node('c-fast', { speed: 150 })],
    request: compute(2, { locality_preference: 'fastest' }),
    order: ['c-fast', 'a-slow', 'b-unmeasured'],
    explains: 'speed 150'
  },
  {
    name: 'any: no locality, binpack decides',
    algorithm: 'locality_aware_binpack',
    nodes: [node('a-far', { latency_region: 'us-east', rtt_ms: 90, leased: leased(12) }), node('b-near', { rtt_ms: 1 })],
    request: compute(2, { region: 'eu-west', locality_preference: 'any' }),
    order: ['a-far', 'b-near'],
    explains: 'fit 88%'
  },
  {
    name: 'affinity: the node with the model loaded before one that has it on disk, before any fit',
    algorithm: 'binpack',
    nodes: [node('a-disk', { models_available: ['qwen3-4b'], leased: leased(12) }), node('b-loaded', { models_loaded: ['qwen3-4b'], models_available: ['qwen3-4b'] }), node('c-none')],
    request: { resource_type: 'inference', requirements: { model_name: 'qwen3-4b' } },
    order: ['b-loaded', 'a-disk', 'c-none'],
    explains: 'qwen3-4b loaded'
  }
]

describe('placeRequest', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const placement = placeRequest(c.nodes, c.request, DEFAULT_COMPUTE_POLICY, { algorithm: c.algorithm })
      expect(placement.candidates.map(x => x.node_id)).toEqual(c.order)
      const winner = placement.candidates[0]!
      const expectedPick = winner.eligible ? winner.node_id : null
      expect(placement.picked).toBe(expectedPick)
      expect(winner.explain).toContain(c.explains)
      // the one-pass pick agrees with the ranking, whatever the input order
      expect(pickNode([...c.nodes].reverse(), c.request, DEFAULT_COMPUTE_POLICY, { algorithm: c.algorithm })).toBe(expectedPick)
    })
  }

  it('uses the policy\'s algorithm: locality_aware_binpack by default', () => {
    expect(placeRequest([half], compute(1)).algorithm).toBe('locality_aware_binpack')
    const spread = parseComputePolicy({ scheduling: { algorithm: 'spread' } })
    expect(placeRequest([full, empty], compute(1), spread).picked).toBe('c-empty')
  })

  it('says why each excluded node was filtered out, and never places on less than its free capacity', () => {
    const nodes = [
      node('a-no-compute', { offers: ['storage'] }),
      node('b-offline', { availability: 'offline' }),
      node('c-draining', { availability: 'draining' }),
      node('d-leased-out', { leased: leased(15) }),
      node('e-no-gpu'),
      node('f-small-gpu', { capacity: { cpu_cores: 16, memory_gb: 64, gpu_count: 1, storage_gb: 100 }, gpu_vram_gb: 8 }),
      node('g-gpu-taken', { capacity: { cpu_cores: 16, memory_gb: 64, gpu_count: 1, storage_gb: 100 }, leased: { cpu_cores: 0, memory_gb: 0, gpu_count: 1, storage_gb: 0 }, gpu_vram_gb: 24 }),
      node('h-ok', { capacity: { cpu_cores: 16, memory_gb: 64, gpu_count: 2, storage_gb: 100 }, gpu_vram_gb: 24 })
    ]
    const placement = placeRequest(nodes, { resource_type: 'compute', requirements: { cpu_cores: 2, memory_gb: 8, gpu: true, gpu_vram_gb: 16 } })
    expect(placement.picked).toBe('h-ok')
    const why = Object.fromEntries(placement.candidates.filter(c => !c.eligible).map(c => [c.node_id, c.excluded_because]))
    expect(why).toEqual({
      'a-no-compute': 'resource_type',
      'b-offline': 'availability',
      'c-draining': 'availability',
      'd-leased-out': 'cpu_cores',
      'e-no-gpu': 'gpu_count',
      'f-small-gpu': 'gpu_vram_gb',
      'g-gpu-taken': 'gpu_count'
    })
    expect(placement.candidates.find(c => c.node_id === 'd-leased-out')!.detail).toBe('needs 2 cpu_cores, 1 free of 16')
  })

  it('filters memory requests by vector dimension and inference requests by model', () => {
    const nodes = [node('a-384', { vector_dimensions: [384] }), node('b-768', { vector_dimensions: [768, 1024] }), node('c-any')]
    const placement = placeRequest(nodes, { resource_type: 'memory', requirements: { vector_dimensions: 768, memory_gb: 1 } })
    expect(placement.candidates.filter(c => c.eligible).map(c => c.node_id).sort()).toEqual(['b-768', 'c-any'])
    expect(placement.candidates.find(c => c.node_id === 'a-384')!.excluded_because).toBe('vector_dimensions')
    expect(placeRequest([node('x')], { resource_type: 'inference', requirements: { model_name: 'phi-4-mini' } }).candidates[0]!.excluded_because).toBe('model_name')
  })

  it('applies a workload class: its pools, its resource_request defaults and its timeout', () => {
    const gpuBox = node('a-gpu', { pools: ['gpu-node-pool'], capacity: { cpu_cores: 16, memory_gb: 64, gpu_count: 1, storage_gb: 100 }, gpu_vram_gb: 24 })
    const cpuMoe = node('b-cpu-moe', { pools: ['cpu-moe-distributed'], capacity: { cpu_cores: 16, memory_gb: 64, gpu_count: 1, storage_gb: 100 } })
    const other = node('c-other', { capacity: { cpu_cores: 16, memory_gb: 64, gpu_count: 1, storage_gb: 100 } })
    const placement = placeRequest([other, cpuMoe, gpuBox], { resource_type: 'compute', workload_class: 'inference' })
    expect(placement.candidates.map(c => [c.node_id, c.excluded_because])).toEqual([['a-gpu', undefined], ['b-cpu-moe', undefined], ['c-other', 'workload_class']])
    expect(placement.candidates[0]!.explain).toContain('preferred pool gpu-node-pool')
    expect(placement.candidates[1]!.explain).toContain('fallback pool cpu-moe-distributed')
    expect(placement.demand).toEqual({ cpu_cores: 0, memory_gb: 24, gpu_count: 1, storage_gb: 0 })
    expect(placement.timeout_seconds).toBe(120)
    // the request's own requirements win over the class's defaults
    expect(placeRequest([gpuBox], { resource_type: 'compute', workload_class: 'inference', requirements: { memory_gb: 2 } }).demand.memory_gb).toBe(2)
    // agent_task prefers nearest-available: any node, nearest first
    const agent = placeRequest([node('far', { rtt_ms: 80 }), node('near', { rtt_ms: 1 })], { resource_type: 'compute', workload_class: 'agent_task', region: 'eu-west' })
    expect([agent.picked, agent.locality_preference, agent.timeout_seconds]).toEqual(['near', 'nearest', 1800])
  })

  it('answers null when nothing fits, and an empty mesh is not an error', () => {
    expect(placeRequest([full], compute(8)).picked).toBeNull()
    expect(placeRequest([], compute(1))).toMatchObject({ picked: null, candidates: [] })
    expect(pickNode([], compute(1))).toBeNull()
  })

  it.each([
    [{ resource_type: 'gpu-farm' }, 'resource_type'],
    [{ resource_type: 'compute', workload_class: 'mining' }, 'workload_class'],
    [{ resource_type: 'compute', workload_class: 'constructor' }, 'workload_class'],
    [{ resource_type: 'compute', locality_preference: 'closest' }, 'locality_preference'],
    [{ resource_type: 'compute', requirements: { cpu_cores: -1 } }, 'requirements.cpu_cores'],
    [{ resource_type: 'compute', requirements: { memory_gb: Number.NaN } }, 'requirements.memory_gb'],
    [{ resource_type: 'compute', requirements: { cpu_cores: Number.POSITIVE_INFINITY } }, 'requirements.cpu_cores'],
    [{ resource_type: 'compute', requirements: { cpu_cores: 1e9 } }, 'requirements.cpu_cores'],
    [{ resource_type: 'compute', requirements: { gpu: 'yes' } }, 'requirements.gpu'],
    [{ resource_type: 'compute', requirements: { ram: 4 } }, 'requirements.ram'],
    [{ resource_type: 'memory', requirements: { vector_dimensions: 1.5 } }, 'requirements.vector_dimensions'],
    [{ resource_type: 'inference', requirements: { model_name: '' } }, 'requirements.model_name'],
    [{ resource_type: 'compute', requirements: [] }, 'requirements']
  ])('refuses %j with a typed error naming %s', (request, field) => {
    const err = (() => { try { placeRequest([half], request as PlacementRequest) } catch (e) { return e } })()
    expect(err).toBeInstanceOf(InvalidSchedulerInputError)
    expect(err).toMatchObject({ name: 'InvalidSchedulerInputError', field })
  })
})

describe('parseComputePolicy', () => {
  it('gives the design\'s flexstack-compute policy for an empty object', () => {
    expect(parseComputePolicy({})).toEqual(DEFAULT_COMPUTE_POLICY)
    expect(DEFAULT_COMPUTE_POLICY.scheduling).toEqual({ algorithm: 'locality_aware_binpack', preemption_enabled: false, max_queue_depth: 1000, rebalance_interval_seconds: 300 })
    expect(Object.keys(DEFAULT_COMPUTE_POLICY.workload_classes)).toEqual(['build', 'inference', 'storage_heavy', 'agent_task'])
  })

  it('reads the design\'s YAML fields, timeouts in minutes or seconds', () => {
    const p = parseComputePolicy({
      name: 'lab',
      workload_classes: { build: { prefer: 'cloud-ephemeral', fallback: 'local-containerized', isolation: 'firecracker', resource_request: { cpu: 8, memory_gb: 32, timeout_minutes: 90 } } },
      scheduling: { algorithm: 'binpack', max_queue_depth: 10 }
    })
    expect(p.workload_classes).toEqual({ build: { prefer: 'cloud-ephemeral', fallback: 'local-containerized', isolation: 'firecracker', data_locality: false, resource_request: { cpu: 8, memory_gb: 32, timeout_seconds: 5400 } } })
    expect(p.scheduling).toMatchObject({ algorithm: 'binpack', max_queue_depth: 10, preemption_enabled: false })
  })

  it.each([
    [[], 'compute_policy'],
    [{ schedulng: {} }, 'schedulng'],
    [{ scheduling: { algorithm: 'first_fit' } }, 'scheduling.algorithm'],
    [{ scheduling: { max_queue_depth: -1 } }, 'scheduling.max_queue_depth'],
    [{ scheduling: { max_queue_depth: 1.5 } }, 'scheduling.max_queue_depth'],
    [{ workload_classes: { build: { resource_request: { cpu: -2 } } } }, 'workload_classes.build.resource_request.cpu'],
    [{ workload_classes: { build: { resource_request: { timeout_minutes: 1, timeout_seconds: 60 } } } }, 'workload_classes.build.resource_request.timeout_seconds'],
    [{ workload_classes: { 'Bad Name': {} } }, 'workload_classes.Bad Name'],
    [{ autoscaling: { scale_up_threshold: 0.2, scale_down_threshold: 0.5 } }, 'autoscaling.scale_down_threshold'],
    [{ autoscaling: { min_nodes: 5, max_nodes: 2 } }, 'autoscaling.min_nodes']
  ])('refuses %j, naming %s', (policy, field) => {
    expect(() => parseComputePolicy(policy)).toThrow(InvalidPolicyError)
    try { parseComputePolicy(policy) } catch (err) { expect(err).toMatchObject({ field }) }
  })
})
