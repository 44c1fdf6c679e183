/**
 * Placement (scheduler/src/placement.ts), pure CPU, on seeded synthetic meshes:
 *
 * - decisions per second over 1,000 and 10,000 nodes, as a scheduler makes them: a
 *   `PlacementIndex` picks (the policy's locality_aware_binpack, mixed compute/inference/memory
 *   requests) and the picked node's leases grow (`lease`, an `update`); once as many leases are live as
 *   there are nodes, each decision also releases the oldest (a task ending), so the mesh stays
 *   as full as it started plus one lease a node. Beside it, `pickNode` (one pass over every node,
 *   the same pick) and the explaining ranking (`placeRequest`, every node scored and described)
 *   on the starting mesh; the goal is ≥ 50,000 decisions/s at 1,000 nodes;
 * - packing: a stream of compute requests placed one by one on identical empty nodes with
 *   `binpack` through the index (each lease kept), against first-fit-decreasing on the same
 *   requests (offline: it sees them all, sorted) and the capacity lower bound (⌈Σ demand ÷
 *   capacity⌉, the larger over cpu and memory); the goal is ≤ 1.05 × the lower bound.
 */
import { PlacementIndex, createSeededRng, pickNode, placeRequest, resolveRequest, type PlacementNode, type PlacementRequest, type Resources, type Rng } from '../scheduler/index.ts'
import { BENCH_SCALE, fmtNum, measureSync, type Report } from './util.ts'

const REGIONS = ['eu-west', 'eu-central', 'us-east', 'us-west', 'ap-south']
const MODELS = ['qwen3-4b', 'phi-4-mini', 'gemma-3n-E2B', 'llama-3.2-3b']
const NODE_CAPACITY = { cpu_cores: 32, memory_gb: 128, gpu_count: 0, storage_gb: 1000 }

function syntheticMesh (n: number, rng: Rng): PlacementNode[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!
  return Array.from({ length: n }, (_, i) => {
    const cpu = pick([4, 8, 16, 32, 64])
    const gpus = rng() < 0.2 ? pick([1, 2, 4]) : 0
    const capacity: Resources = { cpu_cores: cpu, memory_gb: cpu * 4, gpu_count: gpus, storage_gb: pick([100, 500, 2000]) }
    const used = rng() * 0.8
    return {
      node_id: `node-${String(i).padStart(5, '0')}`,
      availability: rng() < 0.9 ? 'online' : 'busy',
      latency_region: pick(REGIONS),
      offers: ['compute', 'inference', 'storage', 'memory'],
      capacity,
      leased: { cpu_cores: Math.floor(cpu * used), memory_gb: Math.floor(cpu * 4 * used), gpu_count: gpus > 0 && rng() < 0.5 ? 1 : 0, storage_gb: 0 },
      gpu_vram_gb: gpus > 0 ? pick([8, 16, 24]) : undefined,
      load: { cpu_percent: Math.round(rng() * 100), gpu_percent: gpus > 0 ? Math.round(rng() * 100) : 0 },
      models_loaded: rng() < 0.3 ? [pick(MODELS)] : [],
      models_available: MODELS.filter(() => rng() < 0.5),
      rtt_ms: rng() * 150,
      speed: rng() < 0.8 ? Math.round(rng() * 200) : null
    }
  })
}

function syntheticRequests (n: number, rng: Rng): PlacementRequest[] {
  return Array.from({ length: n }, (): PlacementRequest => {
    const r = rng()
    const region = REGIONS[Math.floor(rng() * REGIONS.length)]
    if (r < 0.6) return { resource_type: 'compute', region, requirements: { cpu_cores: 1 + Math.floor(rng() * 8), memory_gb: 2 + Math.floor(rng() * 16) } }
    if (r < 0.85) return { resource_type: 'inference', region, requirements: { model_name: MODELS[Math.floor(rng() * MODELS.length)]!, memory_gb: 8 } }
    return { resource_type: 'memory', region, requirements: { memory_gb: 1 + Math.floor(rng() * 4), vector_dimensions: 384 } }
  })
}

function decisions (report: Report, size: number): void {
  const rng = createSeededRng(size)
  const mesh = syntheticMesh(size, rng)
  const requests = syntheticRequests(1024, rng)
  const demands = requests.map(r => resolveRequest(r).demand)
  const index = new PlacementIndex(mesh)
  // the live leases, oldest first, in a ring as long as the mesh
  const liveNode: string[] = new Array<string>(size)
  const liveDemand = new Int32Array(size)
  let oldest = 0
  let live = 0
  let tried = 0
  let placed = 0
  const decide = (i: number): void => {
    const r = i % requests.length
    const id = index.pick(requests[r]!)
    tried++
    if (id === null) return
    placed++
    index.lease(id, demands[r]!)
    if (live === size) {
      index.release(liveNode[oldest]!, demands[liveDemand[oldest]!]!)
      oldest = (oldest + 1) % size
      live--
    }
    const at = (oldest + live) % size
    liveNode[at] = id
    liveDemand[at] = r
    live++
  }
  const before = index.stats()
  const picked = measureSync({
    id: `scheduler.decide.${size}`,
    name: `scheduler PlacementIndex pick + update over ${fmtNum(size)} nodes`,
    group: 'scheduler',
    budgetMs: 1500,
    warmup: 2000,
    fn: decide
  })
  report.add(picked)
  const after = index.stats()
  const scan = measureSync({
    id: `scheduler.pick.${size}`,
    name: `scheduler pickNode over ${fmtNum(size)} nodes`,
    group: 'scheduler',
    budgetMs: 1000,
    fn: i => { pickNode(mesh, requests[i % requests.length]!) }
  })
  report.add(scan)
  const ranked = measureSync({
    id: `scheduler.explain.${size}`,
    name: `scheduler placeRequest (ranked, explained) over ${fmtNum(size)} nodes`,
    group: 'scheduler',
    budgetMs: 1000,
    warmup: 5,
    fn: i => { placeRequest(mesh, requests[i % requests.length]!) }
  })
  report.add(ranked)
  report.note(`scheduler: ${fmtNum(picked.opsPerSec)} decisions/s over ${fmtNum(size)} synthetic nodes (PlacementIndex pick + update of the picked node's leases, ` +
    `the oldest of ${fmtNum(size)} live leases released; ${(100 * placed / tried).toFixed(0)}% of the requests placed, ` +
    `${fmtNum((after.visited - before.visited) / (after.picks - before.picks), 1)} nodes visited per decision; ${size === 1000 ? 'goal ≥ 50,000/s; ' : ''}` +
    `pickNode scanning every node: ${fmtNum(scan.opsPerSec)}/s, ${(scan.opsPerSec / picked.opsPerSec).toFixed(3)}x; ` +
    `with every node ranked and explained: ${fmtNum(ranked.opsPerSec)}/s, ${(ranked.opsPerSec / picked.opsPerSec).toFixed(3)}x)`)
}

/** Identical empty nodes, enough for every request. */
function emptyNodes (n: number): PlacementNode[] {
  return Array.from({ length: n }, (_, i) => ({
    node_id: `bin-${String(i).padStart(5, '0')}`,
    availability: 'online',
    latency_region: 'eu-west',
    offers: ['compute'],
    capacity: { ...NODE_CAPACITY },
    leased: { cpu_cores: 0, memory_gb: 0, gpu_count: 0, storage_gb: 0 },
    load: { cpu_percent: 0, gpu_percent: 0 }
  }))
}

/** First-fit decreasing over (cpu, memory), by the larger of the two shares: the offline reference. */
function firstFitDecreasing (items: Array<{ cpu: number, mem: number }>): number {
  const sorted = [...items].sort((a, b) => Math.max(b.cpu / NODE_CAPACITY.cpu_cores, b.mem / NODE_CAPACITY.memory_gb) - Math.max(a.cpu / NODE_CAPACITY.cpu_cores, a.mem / NODE_CAPACITY.memory_gb))
  const bins: Array<{ cpu: number, mem: number }> = []
  for (const it of sorted) {
    const bin = bins.find(b => b.cpu + it.cpu <= NODE_CAPACITY.cpu_cores && b.mem + it.mem <= NODE_CAPACITY.memory_gb)
    if (bin !== undefined) { bin.cpu += it.cpu; bin.mem += it.mem } else bins.push({ cpu: it.cpu, mem: it.mem })
  }
  return bins.length
}

function packing (report: Report): void {
  const rng = createSeededRng(7)
  const count = Math.max(200, Math.round(2000 * BENCH_SCALE))
  // cpu and memory drawn together, as tasks ask for them (memory ≈ 4 GB per core, ± noise)
  const items = Array.from({ length: count }, () => {
    const cpu = 1 + Math.floor(rng() * 8)
    return { cpu, mem: Math.max(1, Math.round(cpu * 4 * (0.5 + rng()))) }
  })
  const lower = Math.max(
    Math.ceil(items.reduce((a, x) => a + x.cpu, 0) / NODE_CAPACITY.cpu_cores),
    Math.ceil(items.reduce((a, x) => a + x.mem, 0) / NODE_CAPACITY.memory_gb)
  )
  const index = new PlacementIndex(emptyNodes(count))
  for (const it of items) {
    const id = index.pick({ resource_type: 'compute', requirements: { cpu_cores: it.cpu, memory_gb: it.mem } }, undefined, { algorithm: 'binpack' })
    if (id === null) throw new Error('a request found no node although every one was empty at the start')
    index.lease(id, { cpu_cores: it.cpu, memory_gb: it.mem, gpu_count: 0, storage_gb: 0 })
  }
  const used = [...index.nodes()].filter(n => n.leased.cpu_cores > 0).length
  const ffd = firstFitDecreasing(items)
  report.note(`scheduler packing: ${fmtNum(count)} compute requests placed one by one with binpack (PlacementIndex) use ${used} nodes; ` +
    `first-fit-decreasing (offline, sorted) ${ffd}; capacity lower bound ${lower}: binpack ÷ lower bound ${(used / lower).toFixed(3)}x (goal ≤ 1.05x), ` +
    `FFD ÷ lower bound ${(ffd / lower).toFixed(3)}x`)
}

export async function run (report: Report): Promise<void> {
  decisions(report, 1000)
  decisions(report, BENCH_SCALE < 0.1 ? 2000 : 10_000)
  packing(report)
}
