/**
 * What an idle node costs per hour with 1 s heartbeats, extrapolated from a measured minute
 * (`FLEXNODE_BENCH_SCALE` shortens it), on each node of a small loopback mesh:
 *
 * - presence (today's heartbeat): chain actions and database bytes added (every node's, replicas
 *   of the others' records included), and the presence records it signed and sent;
 * - the baseline, measured in the same run on the same nodes: the heartbeat as it was before
 *   presence, one `heartbeat.beat` zome call per node per second (an `Update` of its
 *   NodeCapability, kept on every node's DHT forever).
 *
 * Database bytes are the pages in use (page_count − freelist_count, × page_size) read through a
 * second, read-only connection, after the mesh has synced the registry DHT.
 */
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { encode, encodeCanonical } from '../agent/src/conductor/codec.ts'
import { DB_FILE } from '../agent/src/conductor/constants.ts'
import { dhtSync, Scenario, waitUntil, type Player } from '../tryorama/src/index.ts'
import { BENCH_SCALE, fmtNum, fmtRatio, type Report } from './util.ts'

const NODES = BENCH_SCALE < 0.1 ? 2 : 3
/** the measured window of each phase */
const WINDOW_MS = Math.max(5000, Math.round(60_000 * BENCH_SCALE))
const HOUR_MS = 3_600_000
const ROLES = ['agent_registry', 'resource_mesh', 'policy_store', 'artifact_index', 'memory_shards']

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

interface Cost { actions: number, bytes: number, records: number }

function chainActions (p: Player): number {
  return ROLES.reduce((n, role) => n + (p.node.conductor.cell(p.cells[role]!.cell_id)?.chain().length ?? 0), 0)
}

/** Bytes of the pages a node's database uses, read through a read-only connection. */
function dbBytes (p: Player): number {
  const db = new Database(join(p.dataDir, DB_FILE), { readonly: true, fileMustExist: true })
  try {
    const pages = db.pragma('page_count', { simple: true }) as number
    const free = db.pragma('freelist_count', { simple: true }) as number
    return (pages - free) * (db.pragma('page_size', { simple: true }) as number)
  } finally {
    db.close()
  }
}

function snapshot (players: Player[]): Cost[] {
  return players.map(p => ({ actions: chainActions(p), bytes: dbBytes(p), records: p.node.dht.presence.stats.published }))
}

/** Per node per hour: the mean over the nodes of what the window added, scaled to an hour. */
function perHour (before: Cost[], after: Cost[], ms: number): Cost {
  const scale = HOUR_MS / ms / before.length
  const total = (k: keyof Cost): number => after.reduce((s, a, i) => s + a[k] - before[i]![k], 0) * scale
  return { actions: total('actions'), bytes: total('bytes'), records: total('records') }
}

/** Run `phase` for the window, let the registry DHT settle, and return what it cost per node per hour. */
async function measure (players: Player[], phase: (until: number) => Promise<void>): Promise<Cost> {
  await dhtSync(players, players[0]!.cells.agent_registry!.cell_id[0], { timeoutMs: 60_000 })
  const before = snapshot(players)
  const t0 = performance.now()
  await phase(t0 + WINDOW_MS)
  const ms = performance.now() - t0
  await dhtSync(players, players[0]!.cells.agent_registry!.cell_id[0], { timeoutMs: 60_000 })
  return perHour(before, snapshot(players), ms)
}

export async function run (report: Report): Promise<void> {
  const scenario = new Scenario()
  try {
    const players = await scenario.addPlayers(NODES, { heartbeatIntervalSeconds: 1 })
    await waitUntil(() => players.every(p => players.every(q => q === p || p.node.dht.presence.get(q.agentPubKey) !== null)), { what: 'every node to see every other\'s presence', timeoutMs: 60_000 })
    // the harness's first zome call over the WebSocket grants its signing credentials (a CapGrant
    // on the chain): made before anything is measured
    await Promise.all(players.map(async p => await p.cells.agent_registry!.callZome('capabilities', 'my_capability_hash', null)))

    // presence: the node's own 1 s heartbeat, nothing else
    const presence = await measure(players, async (until) => { await sleep(until - performance.now()) })
    const own = players[0]!.node.dht.presence.own!
    const recordBytes = encode({ info: encodeCanonical(own), signature: new Uint8Array(64) }).length

    // the baseline: one heartbeat.beat (an Update of the NodeCapability) per node per second
    const baseline = await measure(players, async (until) => {
      await Promise.all(players.map(async (p) => {
        for (let next = performance.now(); next < until; next += 1000) {
          await sleep(next - performance.now())
          await p.cells.agent_registry!.callZome('heartbeat', 'beat', { cpu_percent: 5, gpu_percent: 0, memory_percent: 20, availability: 'online', queue_depth: 0 })
        }
      }))
      await sleep(until - performance.now())
    })

    const line = `presence: idle hour per node, ${NODES} nodes, 1 s heartbeats, extrapolated from ${fmtNum(WINDOW_MS / 1000)} s: ` +
      `${fmtNum(presence.actions)} chain actions, ${fmtNum(presence.bytes / 1024)} KiB of database; ` +
      `${fmtNum(presence.records)} presence records sent (${recordBytes} B each, ≈ ${fmtNum(presence.records * recordBytes / 1024)} KiB, in memory only); ` +
      `baseline (a heartbeat Update per second, as before presence): ${fmtNum(baseline.actions)} chain actions, ${fmtNum(baseline.bytes / 1024)} KiB of database ` +
      `(replicas of the others' included); presence ÷ baseline: chain actions ${fmtRatio(presence.actions / baseline.actions)}, database bytes ${fmtRatio(presence.bytes / baseline.bytes)}`
    report.log(`  ${line}`)
    report.note(line)
  } catch (err) {
    report.fail('presence: idle hour', err)
  } finally {
    await scenario.cleanUp()
  }
}
