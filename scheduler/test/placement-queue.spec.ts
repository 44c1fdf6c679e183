import { describe, it, expect } from 'vitest'
import { InvalidSchedulerInputError, PlacementIndex, PlacementQueue, QueueFullError, UnsupportedPolicyError, parseComputePolicy } from '../index.ts'
import type { PlacementNode, PlacementRequest } from '../index.ts'

function node (node_id: string, cpu_cores: number, leased_cpu = 0): PlacementNode {
  return {
    node_id,
    availability: 'online',
    latency_region: 'eu-west',
    offers: ['compute'],
    capacity: { cpu_cores, memory_gb: cpu_cores * 4, gpu_count: 0, storage_gb: 0 },
    leased: { cpu_cores: leased_cpu, memory_gb: 0, gpu_count: 0, storage_gb: 0 },
    load: { cpu_percent: 0, gpu_percent: 0 }
  }
}

const cpu = (cpu_cores: number): PlacementRequest => ({ resource_type: 'compute', requirements: { cpu_cores } })

interface Case {
  name: string
  nodes: PlacementNode[]
  /** @default 1000 */
  max_queue_depth?: number
  /** enqueued in this order, by label */
  requests: Array<[string, PlacementRequest]>
  /** labels refused with QueueFullError at enqueue */
  refused?: string[]
  /** what one drain places, in order: [label, node] */
  placed: Array<[string, string]>
  /** labels still held after it, in order */
  held: string[]
}

const CASES: Case[] = [
  { name: 'an empty queue places nothing', nodes: [node('a', 8)], requests: [], placed: [], held: [] },
  { name: 'places everything that fits, oldest first', nodes: [node('a', 8)], requests: [['r1', cpu(2)], ['r2', cpu(4)]], placed: [['r1', 'a'], ['r2', 'a']], held: [] },
  {
    name: 'a placement leases before the next request is tried: the second one no longer fits',
    nodes: [node('a', 8)],
    requests: [['r1', cpu(6)], ['r2', cpu(6)], ['r3', cpu(2)]],
    placed: [['r1', 'a'], ['r3', 'a']],
    held: ['r2']
  },
  {
    name: 'a request that fits nowhere does not block smaller ones behind it, and keeps its place',
    nodes: [node('a', 8, 4), node('b', 4, 2)],
    requests: [['big', cpu(6)], ['small', cpu(2)], ['huge', cpu(16)], ['small2', cpu(2)]],
    placed: [['small', 'b'], ['small2', 'a']],
    held: ['big', 'huge']
  },
  {
    name: 'binpack places on the fullest node that fits',
    nodes: [node('empty', 16), node('half', 16, 8)],
    requests: [['r1', cpu(4)]],
    placed: [['r1', 'half']],
    held: []
  },
  {
    name: 'max_queue_depth: past the bound a request is refused, not held',
    nodes: [node('a', 1)],
    max_queue_depth: 2,
    requests: [['r1', cpu(4)], ['r2', cpu(4)], ['r3', cpu(1)]],
    refused: ['r3'],
    placed: [],
    held: ['r1', 'r2']
  },
  {
    name: 'max_queue_depth 0: nothing is ever held',
    nodes: [node('a', 8)],
    max_queue_depth: 0,
    requests: [['r1', cpu(1)]],
    refused: ['r1'],
    placed: [],
    held: []
  },
  {
    name: 'an empty mesh places nothing and keeps everything',
    nodes: [],
    requests: [['r1', cpu(1)], ['r2', cpu(1)]],
    placed: [],
    held: ['r1', 'r2']
  }
]

describe('PlacementQueue', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const policy = parseComputePolicy({ scheduling: { algorithm: 'binpack', max_queue_depth: c.max_queue_depth ?? 1000 } })
      const queue = new PlacementQueue(policy)
      const index = new PlacementIndex(c.nodes)
      const label = new Map(c.requests.map(([name, r]) => [r, name]))
      const refused: string[] = []
      for (const [name, request] of c.requests) {
        try {
          queue.enqueue(request)
        } catch (err) {
          expect(err).toBeInstanceOf(QueueFullError)
          expect(err).toMatchObject({ name: 'QueueFullError', depth: queue.depth, max_queue_depth: policy.scheduling.max_queue_depth })
          refused.push(name)
        }
      }
      expect(refused).toEqual(c.refused ?? [])
      const placed = queue.drain(index)
      expect(placed.map(p => [label.get(p.request), p.node_id])).toEqual(c.placed)
      expect(queue.pending().map(r => label.get(r))).toEqual(c.held)
      expect(queue.depth).toBe(c.held.length)
      // each placement is leased on its node, and nothing else moved
      const leasedCpu = new Map(c.nodes.map(n => [n.node_id, n.leased.cpu_cores]))
      for (const p of placed) leasedCpu.set(p.node_id, leasedCpu.get(p.node_id)! + p.demand.cpu_cores)
      for (const n of c.nodes) expect(index.get(n.node_id)!.leased.cpu_cores).toBe(leasedCpu.get(n.node_id))
    })
  }

  it('preemption_enabled: false — a held request waits for a release; no lease is evicted to make room', () => {
    const index = new PlacementIndex([node('a', 8)])
    const queue = new PlacementQueue()
    const running = cpu(6)
    expect(index.pick(running)).toBe('a')
    index.lease('a', { cpu_cores: 6, memory_gb: 0, gpu_count: 0, storage_gb: 0 })
    queue.enqueue(cpu(4))
    expect(queue.drain(index)).toEqual([])
    expect(index.get('a')!.leased.cpu_cores).toBe(6)
    expect(queue.depth).toBe(1)
    index.release('a', { cpu_cores: 6, memory_gb: 0, gpu_count: 0, storage_gb: 0 })
    expect(queue.drain(index)).toMatchObject([{ node_id: 'a', demand: { cpu_cores: 4 } }])
    expect(queue.depth).toBe(0)
  })

  it('refuses a policy that enables preemption with a typed error naming the field', () => {
    const err = (() => { try { return new PlacementQueue(parseComputePolicy({ scheduling: { preemption_enabled: true } })) } catch (e) { return e } })()
    expect(err).toBeInstanceOf(UnsupportedPolicyError)
    expect(err).toMatchObject({ name: 'UnsupportedPolicyError', field: 'scheduling.preemption_enabled' })
  })

  it('refuses a bad request at enqueue, without holding it', () => {
    const queue = new PlacementQueue()
    expect(() => queue.enqueue({ resource_type: 'compute', requirements: { cpu_cores: -1 } })).toThrow(InvalidSchedulerInputError)
    expect(queue.depth).toBe(0)
  })

  it('leases the workload class\'s demand, and a freed slot takes a new request', () => {
    const policy = parseComputePolicy({ scheduling: { max_queue_depth: 1 } })
    const queue = new PlacementQueue(policy)
    const index = new PlacementIndex([node('a', 8)])
    queue.enqueue({ resource_type: 'compute', workload_class: 'agent_task' })
    expect(() => queue.enqueue(cpu(1))).toThrow(QueueFullError)
    expect(queue.drain(index)).toMatchObject([{ node_id: 'a', demand: { cpu_cores: 1, memory_gb: 4 } }])
    expect(index.get('a')!.leased).toMatchObject({ cpu_cores: 1, memory_gb: 4 })
    expect(queue.enqueue(cpu(1))).toBe(1)
  })
})
