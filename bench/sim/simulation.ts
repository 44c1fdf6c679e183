/**
 * A deterministic, seeded simulation of the sharded DHT: N nodes on an in-memory transport with
 * simulated latency and churn (no sockets, no SQLite), running the real arc code (`arc.ts`:
 * sizing, authorities, overlap), the real summary diff of anti-entropy (through `sync-model.ts`)
 * and records measured in their wire encoding (`records.ts`).
 *
 * What happens, on one event clock:
 * - every node authors ops (exponential gaps) and publishes each to the authorities of its basis,
 *   nearest first, capped at the coverage band's max; a receiver whose arc holds the basis
 *   validates and stores it, anything else is dropped as "not an authority";
 * - every `syncIntervalMs` each node syncs with the overlapping peer it synced with least
 *   recently, over the overlap of their arcs only;
 * - every presence lifetime each node resizes its arc with `nextArc` from the mesh as presence
 *   shows it (a crashed node stays visible until its record expires); a node drops the ops
 *   outside its arc one lifetime after it stopped declaring them;
 * - churn: nodes crash (no tombstone) and as many new nodes join, at `churnPerHour`; a joiner
 *   sizes its arc from the records traded on connect and syncs at once;
 * - presence: every node re-signs its record every `presenceRefreshMs` and at once when its arc
 *   changes; what that costs per node and how fast a change spreads are measured by flooding
 *   records over the gossip overlay (`overlay.ts`) at the end.
 * The last `quietTailMs` has no churn and no new ops, so the end state shows where the mesh
 * converges. Then `leaveShares` of the nodes leave at once, each share drawn independently from
 * the end state, and the records still held by a surviving authority are counted. Last, the
 * largest share crashes for real and the run goes on for `repairMs`: arcs grow back as the
 * records of the dead expire and anti-entropy refills the new sectors.
 */
import { arcAt, arcContains, arcOverlap, arcSectors, hasSector, sectorHolders, sectorOf, type Arc, type SectorSet } from '../../agent/src/conductor/network/arc.ts'
import { encode } from '../../agent/src/conductor/codec.ts'
import { dhtLocation, hashFrom32, type HoloHash } from '../../agent/src/holo/hash.ts'
import { ArcView, type ViewNode } from './arc-view.ts'
import { EventQueue } from './event-queue.ts'
import { buildOverlay, flood, Latency } from './overlay.ts'
import { opRecord, presenceMessageBytes, recordBytes } from './records.ts'
import { Rng } from './rng.ts'
import { syncOverlap, type SyncSide } from './sync-model.ts'

export interface SimConfig {
  seed: number
  /** nodes in the mesh (kept constant under churn: each crash is matched by a join) */
  nodes: number
  /** simulated time, ms */
  durationMs: number
  /** authorities wanted per location @default 5 */
  targetRedundancy?: number
  /** mean gap between two ops of one node, ms @default 120000 */
  opIntervalMs?: number
  /** ms between two anti-entropy rounds a node initiates @default 5000 (dht-network's default) */
  syncIntervalMs?: number
  /** ms between two presence records of a node @default 10000 (the default heartbeat) */
  presenceRefreshMs?: number
  /** presence lifetime ÷ refresh @default 2.5 (presence.ts) */
  presenceLifetimeFactor?: number
  /** share of the nodes that crash (and are replaced by joiners) per hour @default 0.1 */
  churnPerHour?: number
  /** gossipsub mesh degree D @default 6 */
  gossipDegree?: number
  /** authorities an op is published to @default the coverage band's max */
  publishCap?: number
  /** capability changes flooded over the overlay to time their spread @default 8 */
  floodSamples?: number
  /** models in each node's presence queue field @default 2 */
  models?: number
  /** shares of nodes leaving at once at the end @default [0.1, 0.3] */
  leaveShares?: number[]
  /** final stretch with no churn and no new ops @default 3 presence lifetimes + 6 sync intervals */
  quietTailMs?: number
  /** after the end, the largest leave share crashes for real and the run goes on this long (0: not) @default 4 presence lifetimes */
  repairMs?: number
}

/** Distribution of a per-node figure over the nodes alive at the end. */
export interface Dist { mean: number, p50: number, p99: number, max: number }

export interface SimResult {
  config: Required<SimConfig>
  /** ops authored in the run */
  ops: number
  /** encoded bytes of all those records */
  opBytes: number
  nodesAtEnd: number
  joined: number
  crashed: number
  perNode: {
    opsStored: Dist
    opsValidatedPerSec: Dist
    gossipBytesPerSec: Dist
    presenceBytesPerSec: Dist
    arcSectors: Dist
  }
  /** mean presence message, bytes */
  presenceMessageBytes: number
  /** presence messages published per second, mesh-wide */
  presencePerSec: number
  /** ms until a capability change reached 99% of live nodes: median and worst of the samples */
  capabilityVisible99Ms: { median: number, max: number }
  /** fewest live holders of any sector at the end */
  minSectorHolders: number
  /** share of ops held by ≥ 1 live authority, and by ≥ targetRedundancy, at the end */
  retrievable: number
  atTarget: number
  /** share of ops still held by a surviving authority after each share of nodes left at once */
  afterLeave: Array<{ share: number, retrievable: number }>
  /**
   * the largest leave share, played out: ops held ≥ targetRedundancy times by the survivors right
   * after and `afterMs` later, the fewest holders of a sector and the arcs then
   */
  repair: null | { share: number, afterMs: number, atTargetBefore: number, atTarget: number, minSectorHolders: number, arcSectors: Dist }
  /** bytes joiners moved in their first sync rounds ÷ bytes of the records they fetched (NaN: no joiner fetched) */
  joinerSyncOverhead: number
  /** ops a node refused as not an authority */
  notAuthority: number
  /** arc changes over the run */
  arcChanges: number
  /** anti-entropy rounds with a live peer, and those whose digests differed */
  syncRounds: number
  syncRoundsWithDiff: number
  /** events processed */
  events: number
}

interface SimNode extends ViewNode {
  agent: HoloHash
  alive: boolean
  joinedAt: number
  leftAt: number
  /** the arc declared before the last resize: its ops are kept one more lifetime */
  graceArc: Arc
  held: Set<number>
  /** held ops by sector */
  bySector: Map<number, Set<number>>
  side: SyncSide | null
  /** `view.overlapping(arc)` as of `view.version` */
  partners: { version: number, list: SimNode[] }
  lastSync: Map<number, number>
  validated: number
  gossipBytes: number
  presenceBytes: number
  /** presence records received or sent in trades on connect (a joiner and its first peers) */
  tradeRecords: number
  seq: number
  head: HoloHash
  joiner: boolean
  joinSyncBytes: number
  joinFetchedBytes: number
}

/** records one presence trade answers at most (presence.ts `PRESENCE.maxTradeRecords`) */
const PRESENCE_TRADE_MAX_RECORDS = 4096

type SimEvent =
  | { k: 'op', n: SimNode }
  | { k: 'deliver', n: SimNode, op: number }
  | { k: 'sync', n: SimNode }
  | { k: 'fetched', n: SimNode, ops: number[] }
  | { k: 'resize', n: SimNode }
  | { k: 'churn' }
  | { k: 'expire', n: SimNode }

function dist (xs: number[]): Dist {
  if (xs.length === 0) return { mean: Number.NaN, p50: Number.NaN, p99: Number.NaN, max: Number.NaN }
  const s = Float64Array.from(xs).sort()
  const at = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!
  return { mean: xs.reduce((a, b) => a + b, 0) / xs.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1]! }
}

export function withDefaults (c: SimConfig): Required<SimConfig> {
  const presenceRefreshMs = c.presenceRefreshMs ?? 10_000
  const presenceLifetimeFactor = c.presenceLifetimeFactor ?? 2.5
  const syncIntervalMs = c.syncIntervalMs ?? 5_000
  return {
    seed: c.seed,
    nodes: c.nodes,
    durationMs: c.durationMs,
    targetRedundancy: c.targetRedundancy ?? 5,
    opIntervalMs: c.opIntervalMs ?? 120_000,
    syncIntervalMs,
    presenceRefreshMs,
    presenceLifetimeFactor,
    churnPerHour: c.churnPerHour ?? 0.1,
    gossipDegree: c.gossipDegree ?? 6,
    publishCap: c.publishCap ?? 0,
    floodSamples: c.floodSamples ?? 8,
    models: c.models ?? 2,
    leaveShares: c.leaveShares ?? [0.1, 0.3],
    quietTailMs: c.quietTailMs ?? 3 * presenceRefreshMs * presenceLifetimeFactor + 6 * syncIntervalMs,
    repairMs: c.repairMs ?? 4 * presenceRefreshMs * presenceLifetimeFactor
  }
}

/** Run the simulation; the same config (seed included) gives the same result. */
export function simulate (input: SimConfig): SimResult {
  const cfg = withDefaults(input)
  const rng = new Rng(cfg.seed)
  const opsRng = rng.fork()
  const latency = new Latency(rng.fork())
  const view = new ArcView<SimNode>({ targetRedundancy: cfg.targetRedundancy })
  const publishCap = cfg.publishCap > 0 ? cfg.publishCap : view.band.max
  const lifetimeMs = cfg.presenceRefreshMs * cfg.presenceLifetimeFactor
  const activeUntil = cfg.durationMs - cfg.quietTailMs
  const q = new EventQueue<SimEvent>()
  const nodes: SimNode[] = []

  // ops: parallel arrays, indexed by op id
  const opHash: HoloHash[] = []
  const opLoc: number[] = []
  const opSize: number[] = []
  const opId = new Map<HoloHash, number>()
  const publishFrame = encode({ op: 'publish', dna: new Uint8Array(39), records: [] }).length

  let notAuthority = 0
  let arcChanges = 0
  let presenceEvents = 0
  let joined = 0
  let crashed = 0
  let events = 0
  let syncRounds = 0
  let syncRoundsWithDiff = 0

  const newNode = (at: number, joiner: boolean): SimNode => {
    const i = nodes.length
    const agent = hashFrom32(rng.bytes(32), 'Agent')
    const n: SimNode = {
      i, id: `n${i}`, agent, location: dhtLocation(agent), arc: null, graceArc: null,
      alive: true, joinedAt: at, leftAt: Number.POSITIVE_INFINITY, held: new Set(), bySector: new Map(), side: null, partners: { version: -1, list: [] }, lastSync: new Map(),
      validated: 0, gossipBytes: 0, presenceBytes: 0, tradeRecords: 0, seq: 3, head: hashFrom32(rng.bytes(32), 'Action'), joiner, joinSyncBytes: 0, joinFetchedBytes: 0
    }
    nodes.push(n)
    return n
  }

  const toggle = (n: SimNode, op: number, add: boolean): void => {
    const s = sectorOf(opLoc[op]!)
    let ops = n.bySector.get(s)
    if (ops === undefined) n.bySector.set(s, ops = new Set())
    if (add) ops.add(op)
    else ops.delete(op)
  }
  const hold = (n: SimNode, op: number): boolean => {
    if (n.held.has(op)) return false
    n.held.add(op)
    toggle(n, op, true)
    return true
  }
  const drop = (n: SimNode, op: number): void => {
    if (n.held.delete(op)) toggle(n, op, false)
  }
  const holdsBasis = (n: SimNode, loc: number): boolean => arcContains(n.arc, loc) || arcContains(n.graceArc, loc)

  // a node's store as the sync protocol sees it; the digest is (count, XOR) of the hashes held in
  // the sectors, kept per sector as ops come and go (kitsune2 keeps sector hashes the same way)
  const side = (n: SimNode): SyncSide => {
    n.side ??= {
      hashesIn: (sectors: SectorSet) => {
        const out: HoloHash[] = []
        for (const [s, ops] of n.bySector) if (hasSector(sectors, s)) for (const op of ops) out.push(opHash[op]!)
        return out
      },
      locationOf: (h: HoloHash) => opLoc[opId.get(h)!]!,
      knows: (h: HoloHash) => n.held.has(opId.get(h)!)
    }
    return n.side
  }
  const partnersOf = (n: SimNode): SimNode[] => {
    if (n.partners.version !== view.version) n.partners = { version: view.version, list: view.overlapping(n.arc) }
    return n.partners.list
  }

  const setArc = (n: SimNode, arc: Arc): void => {
    if (arcSectors(arc) === arcSectors(n.arc) && (arc === null || n.arc === null || arc[0] === n.arc[0])) return
    const old = n.arc
    n.graceArc = old
    n.arc = arc
    if (view.has(n) || arc !== null) view.add(n, old)
    arcChanges++
    presenceEvents++ // re-signed at once when the arc changes
  }

  const schedulePeriodic = (n: SimNode, first: boolean): void => {
    q.after(first ? rng.next() * cfg.syncIntervalMs : 1, { k: 'sync', n })
    q.after(rng.next() * lifetimeMs, { k: 'resize', n })
    q.after(rng.exp(cfg.opIntervalMs), { k: 'op', n })
  }

  // -- the initial mesh: every node sizes its arc from everyone's records (a mesh that grew to N)
  for (let i = 0; i < cfg.nodes; i++) newNode(0, false)
  // (any non-empty arc makes a node count; the arcs themselves are then sized from null)
  for (const n of nodes) { n.arc = arcAt(n.location, 1); view.add(n) }
  const initial = nodes.map(n => view.nextArc({ i: n.i, location: n.location, arc: null }))
  nodes.forEach((n, k) => { const old = n.arc; n.arc = initial[k]!; view.add(n, old) })
  for (const n of nodes) schedulePeriodic(n, true)
  const churnRatePerMs = cfg.churnPerHour * cfg.nodes / 3_600_000
  if (churnRatePerMs > 0) q.after(rng.exp(1 / churnRatePerMs), { k: 'churn' })

  const alive = (): SimNode[] => nodes.filter(n => n.alive)

  const runUntil = (limit: number): void => {
    for (let e = q.pop(limit); e !== undefined; e = q.pop(limit)) {
      events++
      const now = q.now
      switch (e.k) {
        case 'op': {
          const n = e.n
          if (!n.alive || now >= activeUntil) break
          const { record, hash, basis } = opRecord(opsRng, n.agent, n.seq++, Math.round(now * 1000), n.head)
          n.head = hash
          const op = opHash.length
          opHash.push(hash)
          opLoc.push(dhtLocation(basis))
          opSize.push(recordBytes(record))
          opId.set(hash, op)
          if (holdsBasis(n, opLoc[op]!)) hold(n, op)
          for (const a of view.authorities(opLoc[op]!, publishCap + 1)) {
            if (a === n) continue
            const bytes = publishFrame + opSize[op]!
            n.gossipBytes += bytes
            if (a.alive) a.gossipBytes += bytes
            q.after(latency.oneWay(n.i, a.i), { k: 'deliver', n: a, op })
          }
          q.after(rng.exp(cfg.opIntervalMs), { k: 'op', n })
          break
        }
        case 'deliver': {
          const n = e.n
          if (!n.alive) break
          if (!holdsBasis(n, opLoc[e.op]!)) { notAuthority++; break }
          if (hold(n, e.op)) n.validated++
          break
        }
        case 'sync': {
          const n = e.n
          if (!n.alive) break
          q.after(cfg.syncIntervalMs * (0.9 + 0.2 * rng.next()), { k: 'sync', n })
          let peer: SimNode | undefined
          let oldest = Number.POSITIVE_INFINITY
          for (const p of partnersOf(n)) {
            if (p === n) continue
            const t = n.lastSync.get(p.i) ?? Number.NEGATIVE_INFINITY
            if (t < oldest) { oldest = t; peer = p }
          }
          if (peer === undefined) break
          n.lastSync.set(peer.i, now)
          const overlap = arcOverlap(n.arc, peer.arc)
          if (!peer.alive) {
            // unresponsive: the digest request goes out and times out
            n.gossipBytes += syncOverlap(side(n), side(n), overlap, () => 0).bytesSent
            break
          }
          const out = syncOverlap(side(n), side(peer), overlap, h => opSize[opId.get(h)!]!)
          syncRounds++
          if (out.requests > 1) syncRoundsWithDiff++
          const bytes = out.bytesSent + out.bytesReceived
          n.gossipBytes += bytes
          peer.gossipBytes += bytes
          const ops = out.fetched.map(h => opId.get(h)!)
          if (n.joiner && now - n.joinedAt < lifetimeMs) {
            n.joinSyncBytes += bytes
            n.joinFetchedBytes += ops.reduce((s, op) => s + opSize[op]!, 0)
          }
          if (ops.length > 0) q.after(out.requests * 2 * latency.oneWay(n.i, peer.i), { k: 'fetched', n, ops })
          break
        }
        case 'fetched': {
          const n = e.n
          if (!n.alive) break
          for (const op of e.ops) if (holdsBasis(n, opLoc[op]!) && hold(n, op)) n.validated++
          break
        }
        case 'resize': {
          const n = e.n
          if (!n.alive) break
          q.after(lifetimeMs, { k: 'resize', n })
          // drop what was only held under the arc declared before the last resize
          if (n.graceArc !== null) {
            const keep = n.arc
            for (const op of [...n.held]) if (!arcContains(keep, opLoc[op]!)) drop(n, op)
            n.graceArc = null
          }
          setArc(n, view.nextArc(n))
          break
        }
        case 'churn': {
          if (now >= activeUntil) break
          q.after(rng.exp(1 / churnRatePerMs), { k: 'churn' })
          const live = alive()
          const victim = live[rng.int(live.length)]
          if (victim === undefined) break
          victim.alive = false
          victim.leftAt = now
          crashed++
          q.after(lifetimeMs, { k: 'expire', n: victim })
          const j = newNode(now, true)
          joined++
          // the joiner trades records with its first peers, then sizes its arc from them
          const traded = Math.min(view.size, PRESENCE_TRADE_MAX_RECORDS)
          for (let k = 0; k < cfg.gossipDegree / 2; k++) {
            const p = live[rng.int(live.length)]!
            if (p === victim) continue
            p.tradeRecords += traded
            j.tradeRecords += traded
          }
          setArc(j, view.nextArc(j))
          presenceEvents++
          schedulePeriodic(j, false)
          break
        }
        case 'expire': {
          view.remove(e.n)
          break
        }
      }
    }
  }
  runUntil(cfg.durationMs)

  // -- the end state ----------------------------------------------------------------------------
  const end = Math.min(cfg.durationMs, q.now)
  const live = alive()
  const liveSet = new Set(live.map(n => n.i))
  const aliveSeconds = (n: SimNode): number => Math.max(1e-3, (Math.min(end, n.leftAt) - n.joinedAt) / 1000)

  // presence: the cost of one record per node, from floods over the overlay, scaled to the rate
  const presenceRng = rng.fork()
  const presenceBytes = live.slice(0, 32).map(n => presenceMessageBytes(presenceRng, n.agent, n.arc, end * 1000, lifetimeMs, cfg.models))
  const meanPresence = presenceBytes.reduce((a, b) => a + b, 0) / presenceBytes.length
  const nodeMs = nodes.reduce((s, n) => s + (Math.min(end, n.leftAt) - n.joinedAt), 0)
  const presenceTotal = nodeMs / cfg.presenceRefreshMs + presenceEvents
  const overlay = buildOverlay(rng.fork(), live.map(n => n.i), cfg.gossipDegree)
  const sources = rng.sample(live.length, cfg.floodSamples).map(k => live[k]!.i)
  const p99s: number[] = []
  const perRecord = new Map<number, number>()
  for (const s of sources) {
    const f = flood(s, overlay, n => liveSet.has(n), latency)
    const times = live.filter(n => n.i !== s).map(n => f.arrival.get(n.i) ?? Number.POSITIVE_INFINITY).sort((a, b) => a - b)
    p99s.push(times[Math.max(0, Math.ceil(0.99 * times.length) - 1)] ?? 0)
    for (const n of live) perRecord.set(n.i, (perRecord.get(n.i) ?? 0) + (f.sent.get(n.i) ?? 0) + (f.received.get(n.i) ?? 0))
  }
  const seconds = end / 1000
  for (const n of live) n.presenceBytes = (perRecord.get(n.i) ?? 0) / sources.length * meanPresence * presenceTotal / seconds + n.tradeRecords * meanPresence / aliveSeconds(n)
  p99s.sort((a, b) => a - b)

  // holders per op among the live nodes
  const holders = new Uint32Array(opHash.length)
  for (const n of live) for (const op of n.held) holders[op]!++
  const share = (pred: (op: number) => boolean): number => {
    if (opHash.length === 0) return 1
    let k = 0
    for (let op = 0; op < opHash.length; op++) if (pred(op)) k++
    return k / opHash.length
  }
  const leavers = (s: number): Set<number> => new Set(new Rng(cfg.seed ^ Math.round(s * 1e6)).sample(live.length, Math.round(s * live.length)).map(k => live[k]!.i))
  const afterLeave = cfg.leaveShares.map(s => {
    const gone = leavers(s)
    const kept = new Uint8Array(opHash.length)
    for (const n of live) if (!gone.has(n.i)) for (const op of n.held) kept[op] = 1
    return { share: s, retrievable: share(op => kept[op] === 1) }
  })
  const joiners = nodes.filter(n => n.joiner && n.joinFetchedBytes > 0)
  const figures = {
    opsStored: dist(live.map(n => n.held.size)),
    opsValidatedPerSec: dist(live.map(n => n.validated / aliveSeconds(n))),
    gossipBytesPerSec: dist(live.map(n => n.gossipBytes / aliveSeconds(n))),
    presenceBytesPerSec: dist(live.map(n => n.presenceBytes)),
    arcSectors: dist(live.map(n => arcSectors(n.arc)))
  }
  const minSectorHolders = Math.min(...sectorHolders(live.map(n => n.arc)))

  // -- repair: the largest share leaves for real; arcs grow back and anti-entropy refills them
  let repair: SimResult['repair'] = null
  if (cfg.repairMs > 0 && cfg.leaveShares.length > 0) {
    const s = Math.max(...cfg.leaveShares)
    const gone = leavers(s)
    const atTarget = (): number => {
      const count = new Uint32Array(opHash.length)
      for (const n of live) if (n.alive && !gone.has(n.i)) for (const op of n.held) count[op]!++
      return share(op => count[op]! >= cfg.targetRedundancy)
    }
    const atTargetBefore = atTarget()
    for (const n of live) {
      if (!gone.has(n.i)) continue
      n.alive = false
      n.leftAt = end
      q.at(end + lifetimeMs, { k: 'expire', n })
    }
    runUntil(end + cfg.repairMs)
    const survivors = live.filter(n => n.alive)
    repair = {
      share: s,
      afterMs: cfg.repairMs,
      atTargetBefore,
      atTarget: atTarget(),
      minSectorHolders: Math.min(...sectorHolders(survivors.map(n => n.arc))),
      arcSectors: dist(survivors.map(n => arcSectors(n.arc)))
    }
  }

  return {
    config: cfg,
    ops: opHash.length,
    opBytes: opSize.reduce((a, b) => a + b, 0),
    nodesAtEnd: live.length,
    joined,
    crashed,
    perNode: figures,
    presenceMessageBytes: meanPresence,
    presencePerSec: presenceTotal / seconds,
    capabilityVisible99Ms: { median: p99s[Math.floor((p99s.length - 1) / 2)] ?? Number.NaN, max: p99s[p99s.length - 1] ?? Number.NaN },
    minSectorHolders,
    retrievable: share(op => holders[op]! >= 1),
    atTarget: share(op => holders[op]! >= cfg.targetRedundancy),
    afterLeave,
    repair,
    joinerSyncOverhead: joiners.length === 0 ? Number.NaN : joiners.reduce((s, n) => s + n.joinSyncBytes, 0) / joiners.reduce((s, n) => s + n.joinFetchedBytes, 0),
    notAuthority,
    arcChanges,
    syncRounds,
    syncRoundsWithDiff,
    events
  }
}
