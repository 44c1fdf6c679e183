/**
 * The mesh, measured end to end on 127.0.0.1 (never mDNS):
 *
 * 1. baseline: one 64-byte libp2p request/response round trip between two bare mesh nodes
 *    (TCP + noise + yamux, one stream per exchange), the floor every mesh figure sits on;
 * 2. registry convergence: tryorama players (real FlexNodes driven through the real
 *    `@holochain/client`); one of them calls `capabilities.advertise` with a new `agent_name` and
 *    the clock runs until every player's `discovery.query_peers` returns the new name. Players
 *    are polled through their app WebSockets in parallel rounds every ~20 ms, so a figure
 *    includes the advertise call itself and is only as fine as one poll round (printed beside);
 * 3. anti-entropy cost: a late joiner pulls a converged 3-player DHT through `/sync/1`; bytes it
 *    sent and received per record and per integrated op (all five DNAs of the flexstack app, as
 *    `dht.totals` counts them), against the records encoded once (goal ≤ 2x; the early players
 *    do not republish, so every record reaches it through sync), and what a no-op round costs.
 *
 * The convergence meshes run the node's defaults (anti-entropy every 5 s, 2 random peers per
 * round, one digest per DNA; republish every 15 s) with a heartbeat every 3600 s, so only the
 * advertise calls here write to the DHT; the late joiner's mesh syncs every 500 ms.
 * At full scale the 20-node mesh is the 10-node one plus 10 more players (same full-mesh
 * topology, half the start-up time), and each size samples for at most ~30 s (at least 3
 * samples). `FLEXNODE_BENCH_SCALE` < 0.1 shrinks the meshes to 3 and 4 nodes with 2 samples.
 */
import { fullSectorSet } from '../agent/src/conductor/sectors.ts'
import { randomBytes } from 'node:crypto'
import { encode } from '../agent/src/conductor/codec.ts'
import { encodeHash } from '../agent/src/holo/hash.ts'
import { silentLogger } from '../agent/src/logger.ts'
import { createMeshNode, type Libp2pMeshNode } from '../agent/src/mesh/libp2p-node.ts'
import type { SyncStats } from '../agent/src/conductor/network/types.ts'
import { DEFAULT_SYNC_INTERVAL_MS } from '../agent/src/conductor/network/dht-network.ts'
import { dhtSync, integratedOps, Scenario, waitUntil, type Player } from '../tryorama/src/index.ts'
import type { NodeCapability } from '../zomes-ts/agent_registry/types.ts'
import { BENCH_SCALE, fmtMs, fmtNum, fmtRatio, measureAsync, percentile, type Report } from './util.ts'

export const LIBP2P_RTT = 'mesh.libp2p-rtt'

const SMALL = BENCH_SCALE < 0.1
const SIZES: readonly number[] = SMALL ? [3, 4] : [10, 20]
const MAX_SAMPLES = SMALL ? 2 : 10
const MIN_SAMPLES = SMALL ? 2 : 3
/** sampling time per mesh size, after which no new sample starts (once MIN_SAMPLES are in) */
const SIZE_BUDGET_MS = 30_000 * BENCH_SCALE
const POLL_MS = 20
const SYNC_INTERVAL_MS = 500
const SAMPLE_TIMEOUT_MS = 60_000
const LOOPBACK = '/ip4/127.0.0.1/tcp/0'

const registry = (p: Player): Uint8Array => p.cells.agent_registry!.cell_id[0]
const queryPeers = async (p: Player): Promise<NodeCapability[]> => await p.cells.agent_registry!.callZome<NodeCapability[]>('discovery', 'query_peers', null)
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
const pct = (xs: number[], p: number): number => percentile(Float64Array.from(xs).sort(), p)
const sum = (s: SyncStats): number => s.bytesSent + s.bytesReceived

// -- 1. raw libp2p round trip ----------------------------------------------------------------

async function libp2pRtt (report: Report): Promise<number> {
  const logger = silentLogger()
  const nodes: Libp2pMeshNode[] = []
  try {
    for (let i = 0; i < 2; i++) {
      const node = await createMeshNode({ network: 'local', seed: randomBytes(32), listen: [LOOPBACK], mdns: false }, { logger })
      nodes.push(node)
      await node.handle('echo', async (req) => req)
      await node.start()
    }
    const [a, b] = nodes as [Libp2pMeshNode, Libp2pMeshNode]
    const peer = await a.dial(b.multiaddrs()[0]!)
    const msg = randomBytes(64)
    const r = await measureAsync({
      id: LIBP2P_RTT,
      name: 'libp2p request/response 64 B round trip',
      group: 'mesh',
      warmup: 50,
      budgetMs: 2000,
      fn: async () => {
        const res = await a.request(peer, 'echo', msg)
        if (res.length !== msg.length) throw new Error(`echo returned ${res.length} bytes`)
      }
    })
    report.add(r)
    return r.p50Ms
  } finally {
    await Promise.allSettled(nodes.map(async n => { await n.stop() }))
  }
}

// -- 2. registry convergence -----------------------------------------------------------------

/** The registry DHT's anti-entropy summary of a player (in process, cheap): equal summaries, equal op sets. */
function fingerprint (p: Player): string {
  const s = p.node.conductor.space(registry(p))?.digest(fullSectorSet())
  return s === undefined ? '' : Buffer.from(s).toString('base64')
}

/**
 * Wait until every player's query_peers lists all the players and their registry DHTs agree. A
 * cheap in-process check comes first, so the WebSocket polling does not add to the load while
 * the mesh is still forming.
 */
async function warm (players: Player[]): Promise<void> {
  const n = players.length
  await waitUntil(() => players.every(p => p.node.mesh.peers().length >= n - 1) && new Set(players.map(fingerprint)).size === 1,
    { what: `${n} players to connect and agree on the registry DHT`, timeoutMs: 180_000, intervalMs: 250 })
  const want = players.map(p => encodeHash(p.agentPubKey)).sort().join()
  await waitUntil(async () => {
    const seen = await Promise.all(players.map(async p => (await queryPeers(p)).map(c => c.node_id).sort().join()))
    return seen.every(s => s === want)
  }, { what: `${n} players to see each other in query_peers`, timeoutMs: 120_000, intervalMs: 500 })
  await dhtSync(players, registry(players[0]!), { timeoutMs: 120_000 })
}

interface Sample { ms: number, rounds: number, advertiseMs: number, roundMs: number[], firstRoundSeen: number }

async function convergeOnce (players: Player[], author: Player, name: string): Promise<Sample> {
  const cell = author.cells.agent_registry!
  const cap = await cell.callZome<NodeCapability | null>('capabilities', 'get_capability', author.agentPubKey)
  if (cap === null) throw new Error(`${author.name} has no capability to change`)
  const id = encodeHash(author.agentPubKey)
  const t0 = performance.now()
  await cell.callZome('capabilities', 'advertise', { ...cap, agent_name: name, last_heartbeat: new Date().toISOString() })
  const advertiseMs = performance.now() - t0
  const roundMs: number[] = []
  let firstRoundSeen = -1
  for (let rounds = 1; ; rounds++) {
    const roundStart = performance.now()
    const seen = await Promise.all(players.map(async p => (await queryPeers(p)).some(c => c.node_id === id && c.agent_name === name)))
    const now = performance.now()
    roundMs.push(now - roundStart)
    const have = seen.filter(Boolean).length
    if (firstRoundSeen < 0) firstRoundSeen = have
    if (have === players.length) return { ms: now - t0, rounds, advertiseMs, roundMs, firstRoundSeen }
    if (now - t0 > SAMPLE_TIMEOUT_MS) throw new Error(`${players.length - have} of ${players.length} players still lack ${name} after ${SAMPLE_TIMEOUT_MS} ms`)
    await sleep(Math.max(0, POLL_MS - (now - roundStart)))
  }
}

/** The gossipsub score one player gives another (libp2p internals; NaN if unavailable). */
function gossipScore (of: Player, peer: Player): number {
  const mesh = of.node.mesh as Partial<Libp2pMeshNode>
  const pubsub = mesh.libp2p?.services.pubsub as { getScore?: (id: string) => number } | undefined
  return pubsub?.getScore?.(peer.peerId) ?? Number.NaN
}

async function convergence (report: Report, players: Player[], rttP50: number): Promise<string> {
  const n = players.length
  const samples: Sample[] = []
  const started = performance.now()
  while (samples.length < MAX_SAMPLES && (samples.length < MIN_SAMPLES || performance.now() - started < SIZE_BUDGET_MS)) {
    const i = samples.length
    samples.push(await convergeOnce(players, players[i % n]!, `bench-${n}-${i}`))
  }
  const ms = samples.map(s => s.ms)
  const rounds = samples.map(s => s.rounds)
  const p50 = pct(ms, 50)
  const score = gossipScore(players[0]!, players[1]!)
  const line = `mesh: registry convergence, ${n} nodes, advertise → all query_peers (${samples.length} samples, sync every ${DEFAULT_SYNC_INTERVAL_MS} ms): ` +
    `p50 ${fmtMs(p50)} ms  p95 ${fmtMs(pct(ms, 95))} ms  max ${fmtMs(Math.max(...ms))} ms = ${fmtRatio(p50 / rttP50)} the libp2p RTT p50; ` +
    `advertise call p50 ${fmtMs(pct(samples.map(s => s.advertiseMs), 50))} ms; poll rounds p50 ${pct(rounds, 50)} max ${Math.max(...rounds)}, ` +
    `one round (${n} query_peers over WebSocket in parallel) p50 ${fmtMs(pct(samples.flatMap(s => s.roundMs), 50))} ms; ` +
    `nodes already showing it at the first round p50 ${pct(samples.map(s => s.firstRoundSeen), 50)}/${n}; ` +
    `gossipsub score of a loopback peer ${fmtNum(score)}`
  report.log(`  ${line}`)
  return line
}

// -- 3. anti-entropy bytes -------------------------------------------------------------------

export async function antiEntropy (report: Report): Promise<string[]> {
  const scenario = new Scenario()
  try {
    // no republish: what the late joiner lacks reaches it through sync, not a republish round
    const early = await scenario.addPlayers(3, { syncIntervalMs: SYNC_INTERVAL_MS, republishIntervalMs: 3_600_000 })
    const roles = Object.keys(early[0]!.cells)
    const dnaOf = (p: Player, role: string): Uint8Array => p.cells[role]!.cell_id[0]
    for (const role of roles) await dhtSync(early, dnaOf(early[0]!, role))
    const before = await Promise.all(roles.map(async role => (await integratedOps([early[0]!], dnaOf(early[0]!, role)))[0]!))

    const late = await scenario.addPlayer({ syncIntervalMs: SYNC_INTERVAL_MS })
    const t0 = performance.now()
    for (const role of roles) await dhtSync([...early, late], dnaOf(late, role), { timeoutMs: 60_000 })
    const syncedMs = performance.now() - t0
    const t = { ...late.node.dht.totals }

    let fromOthers = 0
    let own = 0
    let records = 0
    let payload = 0
    for (const [i, role] of roles.entries()) {
      const dna = dnaOf(late, role)
      const joined = (await integratedOps([late], dna))[0]!
      const n = [...joined].filter(k => before[i]!.has(k)).length
      fromOthers += n
      own += joined.size - n
      // the floor: the others' records of this DNA msgpack-encoded once, as one fetch response carries them
      const theirs = early.flatMap(p => p.node.conductor.cell(p.cells[role]!.cell_id)!.chain().map(r => r.signed_action.hashed.hash))
      records += theirs.length
      payload += encode({ records: late.node.conductor.space(dna)!.records(theirs, Number.MAX_SAFE_INTEGER) }).length
    }
    const bytes = sum(t)
    const noopDna = await late.node.dht.syncDna(early[0]!.peerId, registry(late))
    const noopPeer = await late.node.dht.syncWithPeer(early[0]!.peerId)
    const perSecond = sum(noopPeer) * 2 * 1000 / SYNC_INTERVAL_MS
    const lines = [
      `mesh: anti-entropy, late joiner of a 3-node DHT (${roles.length} DNAs, in sync ${fmtNum(syncedMs)} ms after its start returned): ` +
        `${fmtNum(bytes)} B in ${t.requests} sync requests (${fmtNum(t.bytesSent)} sent, ${fmtNum(t.bytesReceived)} received); ` +
        `the others' ${records} records = ${fromOthers} ops (+ ${own} own ops): ${fmtNum(bytes / records)} B/record, ${fmtNum(bytes / fromOthers)} B/op; ` +
        `the same records encoded once: ${fmtNum(payload)} B (${fmtNum(payload / records)} B/record), so sync moved ${fmtRatio(bytes / payload)} that ` +
        `(${t.records} records integrated through sync, the rest by gossip/republish)`,
      `mesh: anti-entropy no-op round (already in sync): one DNA ${fmtNum(sum(noopDna))} B in ${noopDna.requests} request(s) ` +
        `(${fmtNum(noopDna.bytesSent)} sent, ${fmtNum(noopDna.bytesReceived)} received); one peer, all ${roles.length} DNAs ${fmtNum(sum(noopPeer))} B in ${noopPeer.requests} requests; ` +
        `at 2 peers every ${SYNC_INTERVAL_MS} ms an idle node moves ≈ ${fmtNum(perSecond / 1024, 1)} KiB/s of summaries`
    ]
    for (const l of lines) report.log(`  ${l}`)
    return lines
  } finally {
    await scenario.cleanUp()
  }
}

// -- run ---------------------------------------------------------------------------------------

export async function run (report: Report): Promise<void> {
  let rtt = Number.NaN
  try {
    rtt = await libp2pRtt(report)
  } catch (err) {
    report.fail('libp2p round trip', err)
  }

  const scenario = new Scenario()
  try {
    const players: Player[] = []
    let startSeconds = 0
    for (const n of SIZES) {
      const t0 = performance.now()
      // the node's defaults: a start as users run it
      players.push(...await scenario.addPlayers(n - players.length))
      await warm(players)
      const s = (performance.now() - t0) / 1000
      startSeconds += s
      report.log(`  mesh: ${n} players started, see each other and hold the same registry DHT after ${fmtNum(s, 1)} s`)
      if (n === SIZES.at(-1)) report.note(`mesh: ${n}-node start and convergence (in-process players, started one after another): ${fmtNum(startSeconds, 1)} s in all (goal ≤ 20 s at 20 nodes)`)
      try {
        report.note(await convergence(report, players, rtt))
      } catch (err) {
        report.fail(`registry convergence, ${n} nodes`, err)
      }
    }
  } catch (err) {
    report.fail('registry convergence', err)
  } finally {
    await scenario.cleanUp()
  }

  try {
    for (const l of await antiEntropy(report)) report.note(l)
  } catch (err) {
    report.fail('anti-entropy bytes', err)
  }
}
