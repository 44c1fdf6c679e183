/**
 * Retention per network (design §9.4), between real conductors over real libp2p on 127.0.0.1:
 *
 * - testnet prunes what is older than its horizon (30 days by default) on a fake clock, and keeps
 *   live state (every entry's newest live version and its original, live links), each author's
 *   newest action before the horizon (its chain head when it wrote nothing since), warrants and
 *   this node's own chain; anti-entropy from a peer that still holds the pruned records does not
 *   bring them back, a sync request for pruned data is answered (not refused), and a late joiner
 *   still syncs everything a pruning node retains;
 * - mainnet keeps everything, past the testnet horizon and across restarts;
 * - local is session-only: other agents' data does not outlive the process, the node's own chain
 *   does, and after a restart it re-syncs from its peers without looking like a fork.
 */
import { afterEach, describe, expect, it } from 'vitest'
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { createTestConductor, FLEXSTACK_HAPP, LOOPBACK, tempDir, waitUntil, type TempDir, type TestConductor } from '../../../../fixtures/index.ts'
import type { Action } from '../../../../zomes-ts/hdk/index.ts'
import { buildCapability } from '../../registry/registry-service.ts'
import { silentLogger } from '../../logger.ts'
import { createMeshNode, type Libp2pMeshNode } from '../../mesh/libp2p-node.ts'
import { decodeHash, encodeHash, hashEquals, hashFromContent } from '../../holo/hash.ts'
import { decode, encode } from '../codec.ts'
import { DB_FILE } from '../constants.ts'
import { InProcessAppClient } from '../in-process-client.ts'
import { dhtNetwork } from '../network/dht-network.ts'
import type { DhtNetwork } from '../network/types.ts'
import type { RetentionPolicy } from '../retention.ts'
import type { DhtSpace } from '../space.ts'
import { fullSectorSet, sectorsOf } from '../sectors.ts'

const DAY_MS = 24 * 60 * 60 * 1000
const machine = { cpu_cores: 4, cpu_arch: 'x86_64', ram_gb: 16, gpu: null, local_ssd_gb: 100, hostname: 'h', platform: 'linux' as const }
const load = { cpu_percent: 1, gpu_percent: 0, memory_percent: 2 }

/** The mesh's shared fake clock: `advance` moves every node's "now" at once. */
function fakeClock (): { now: () => number, advance: (ms: number) => void } {
  let offset = 0
  return { now: () => Date.now() + offset, advance: (ms) => { offset += ms } }
}

interface Node {
  t: TestConductor
  mesh: Libp2pMeshNode
  net: DhtNetwork
  client: InProcessAppClient
  dna: Uint8Array
  name: string
}

const dirs: TempDir[] = []
const open: Node[] = []
afterEach(async () => {
  for (const n of open.splice(0)) await close(n)
  for (const d of dirs.splice(0)) await d[Symbol.asyncDispose]()
})

async function close (n: Node): Promise<void> {
  await n.t.stop()
  await n.mesh.stop()
}

/** A conductor with the flexstack app on `seed`, its DHT network over its own libp2p node (sync by hand). */
async function node (name: string, seed: string, retention: RetentionPolicy, clock: () => number, dataDir?: string): Promise<Node> {
  let dir = dataDir
  if (dir === undefined) {
    const d = await tempDir('flexnode-retention-')
    dirs.push(d)
    dir = d.path
  }
  const { Keystore } = await import('../../identity/keystore.ts')
  // the mesh's key is the agent's key (PeerId = AgentPubKey), as in a node
  const keys = await Keystore.open({ dataDir: dir, scryptN: 2 ** 12 })
  const mesh = await createMeshNode({ network: 'testnet', seed: keys.exportSeed(keys.primary.agentPubKey), listen: [LOOPBACK], mdns: false }, { logger: silentLogger() })
  keys.dispose()
  await mesh.start()
  // presence signs with the conductor's keystore, opened by createTestConductor (used only once started)
  const opened: { keys?: TestConductor['keystore'] } = {}
  const keystore = {
    sign: (agent: Uint8Array, data: Uint8Array) => opened.keys!.sign(agent, data),
    verify: (key: Uint8Array, data: Uint8Array, signature: Uint8Array) => opened.keys!.verify(key, data, signature)
  }
  const t = await createTestConductor({
    dataDir: dir,
    retention,
    clock,
    network: (host) => dhtNetwork({ syncIntervalMs: 3_600_000, republishIntervalMs: 3_600_000, syncOnConnect: false })({ host, mesh, logger: silentLogger(), keystore })
  })
  opened.keys = t.keystore
  if ((t.conductor.listApps() as unknown[]).length === 0) {
    await t.conductor.installApp({ source: { type: 'path', value: FLEXSTACK_HAPP }, agent_key: t.agent, installed_app_id: 'flexstack', network_seed: seed })
  }
  await t.conductor.enableApp({ installed_app_id: 'flexstack' })
  await t.conductor.retention.start()
  await t.conductor.network!.start()
  const client = await InProcessAppClient.connect(t.conductor, 'flexstack')
  const n: Node = { t, mesh, net: t.conductor.network!, client, dna: client.cellId('agent_registry')[0], name }
  open.push(n)
  return n
}

/** Stop a node and start it again on its data dir (same key, same database). */
async function restart (n: Node, retention: RetentionPolicy, clock: () => number): Promise<Node> {
  open.splice(open.indexOf(n), 1)
  await close(n)
  return await node(n.name, n.name === 'q' || n.name === 's' ? 'ripple-local' : 'ripple-testnet', retention, clock, n.t.dataDir)
}

const space = (n: Node): DhtSpace => n.t.conductor.space(n.dna)!
const call = async <T>(n: Node, zome: string, fn: string, payload: unknown): Promise<T> =>
  await n.client.callZome({ role_name: 'agent_registry', zome_name: zome, fn_name: fn, payload }) as T
const advertise = async (n: Node): Promise<void> => { await call(n, 'capabilities', 'advertise', buildCapability(n.t.agent, n.name, machine, load, {})) }
const beat = async (n: Node, cpu: number): Promise<void> => { await call(n, 'heartbeat', 'beat', { ...load, cpu_percent: cpu }) }
const names = async (n: Node): Promise<string[]> => (await call<Array<{ agent_name: string }>>(n, 'discovery', 'query_peers', null)).map(c => c.agent_name).sort()

async function connect (nodes: Node[]): Promise<void> {
  for (const a of nodes) {
    for (const b of nodes) {
      if (a === b || a.mesh.peers().includes(b.mesh.peerId)) continue
      await a.mesh.dial(b.mesh.multiaddrs()[0]!)
    }
  }
}

/** Pull from every other node until all summaries agree; a timeout says what each node lacks. */
async function converge (nodes: Node[]): Promise<void> {
  const what = `the DHTs of ${nodes.map(n => n.name).join(', ')} to converge`
  try {
    await waitUntil(async () => {
      for (const a of nodes) for (const b of nodes) if (a !== b) await a.net.syncDna(b.mesh.peerId, a.dna)
      const d = encodeHash(space(nodes[0]!).digest(fullSectorSet()) as never)
      return nodes.every(n => encodeHash(space(n).digest(fullSectorSet()) as never) === d)
    }, { timeoutMs: 60_000, intervalMs: 100, what })
  } catch (err) {
    const helds = nodes.map(held)
    const all = new Set(helds.flatMap(h => [...h]))
    const state = nodes.map((n, i) => {
      const h = helds[i]!
      const lacks = [...all].filter(x => !h.has(x))
      return `${n.name}: ${space(n).opCount()} ops in the summary, ${h.size} actions, ${space(n).pendingCount()} in limbo (needing ${space(n).missingPrevs(8).map(x => encodeHash(x)).join(', ') || 'nothing missing'}), ${space(n).droppedBeyondHorizon} dropped beyond the horizon; lacks ${lacks.length}: ${lacks.slice(0, 8).join(', ')}`
    })
    throw new Error(`${(err as Error).message}\n${state.join('\n')}`)
  }
}

/** The action hashes of every op a node has integrated (what `dump_full_state` shows). */
function held (n: Node): Set<string> {
  const dump = n.t.conductor.dumpFullState({ cell_id: n.client.cellId('agent_registry') }) as { integration_dump: { integrated: Array<{ ChainOp?: Record<string, [Uint8Array, Action]> }> } }
  const out = new Set<string>()
  for (const op of dump.integration_dump.integrated) {
    if (op.ChainOp === undefined) continue
    const [, action] = Object.values(op.ChainOp)[0]!
    out.add(encodeHash(hashFromContent(action, 'Action')))
  }
  return out
}

/** A node's own chain: its actions' hashes and their types, oldest first. */
function chainOf (n: Node): Array<{ hash: string, type: string, original: string | null }> {
  return n.t.conductor.cell(n.client.cellId('agent_registry'))!.chain().map(r => {
    const a = r.signed_action.hashed
    return { hash: encodeHash(a.hash), type: a.content.data.type, original: a.content.data.type === 'Update' ? encodeHash(a.content.data.original_action_address) : null }
  })
}

/** The sector sums kept as ops come and go agree with the per-leaf sums computed from the store. */
function expectSummaryConsistent (s: DhtSpace): void {
  const all = fullSectorSet()
  const kept = s.sectorSums(all)
  for (const sector of sectorsOf(all)) {
    const leaves = [...s.leafSums(sector).values()]
    const count = leaves.reduce((n, l) => n + l.count, 0)
    const xor = leaves.reduce((x, l) => x ^ l.xor, 0n)
    expect({ sector, count, xor }).toEqual({ sector, count: kept.get(sector)?.count ?? 0, xor: kept.get(sector)?.xor ?? 0n })
  }
}

async function syncAsk (from: Node, to: Node, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  return decode(await from.mesh.request(to.mesh.peerId, 'sync', encode(body), { timeoutMs: 20_000, maxResponseBytes: 8 << 20 })) as Record<string, unknown>
}

/** The testnet's policy: 30 days, passes hourly (the tests run passes by hand). */
const testnet: RetentionPolicy = { mode: 'prune', maxAgeMs: 30 * DAY_MS, intervalMs: 3_600_000 }

describe('retention per network', () => {
  it('testnet prunes past its horizon but keeps live state, chain heads and its own chain; anti-entropy does not bring pruned data back', async () => {
    const clock = fakeClock()
    const a = await node('a', 'ripple-testnet', testnet, clock.now)
    const b = await node('b', 'ripple-testnet', testnet, clock.now)
    // a peer that keeps everything (a longer retention, or one whose pass has not run yet)
    const p = await node('p', 'ripple-testnet', { mode: 'permanent' }, clock.now)
    expect(encodeHash(a.dna)).toBe(encodeHash(p.dna))
    for (const n of [a, b, p]) await advertise(n)
    for (let i = 0; i < 4; i++) { await beat(a, i); await beat(b, i + 10) }
    await beat(p, 20)
    await connect([a, b, p])
    await converge([a, b, p])

    const bChain = chainOf(b)
    const bUpdates = bChain.filter(x => x.type === 'Update')
    const latest = bUpdates[bUpdates.length - 1]!
    const superseded = bUpdates.slice(0, -1).map(x => x.hash)
    const bCreate = bChain.find(x => x.type === 'Create' && x.hash === latest.original)!
    const bLinks = bChain.filter(x => x.type === 'CreateLink').map(x => x.hash)
    const bHead = bChain[bChain.length - 1]!.hash
    expect(superseded.length).toBe(3)
    for (const h of superseded) expect(held(a).has(h)).toBe(true)
    const aOwn = chainOf(a).map(x => x.hash)
    const pHeldBefore = held(p)

    // 31 days later
    clock.advance(31 * DAY_MS)
    const reportA = await a.t.conductor.retention.prune()
    // b carries its pass out one record per transaction: the same result, step by step
    let steps = 0
    for (let more = true; more; steps++) more = space(b).prune(1).more
    expect(steps).toBeGreaterThan(2)
    const reportP = await p.t.conductor.retention.prune()
    expect(reportA.deleted).toBeGreaterThan(0)
    expect(reportP).toEqual({ deleted: 0, excluded: 0 })
    // what the node's metrics follow (flexnode_dht_ops_pruned_total): the records its passes deleted
    expect(a.t.conductor.retention.pruned).toBe(reportA.deleted)
    expect(p.t.conductor.retention.pruned).toBe(0)

    // old history gone: b's superseded heartbeats, its genesis actions
    const aHeld = held(a)
    for (const h of superseded) expect(aHeld.has(h), `superseded ${h}`).toBe(false)
    expect(aHeld.has(bChain[0]!.hash)).toBe(false)
    // live state kept: b's newest capability, its original, the links to it, b's chain head
    for (const h of [latest.hash, bCreate.hash, ...bLinks, bHead]) expect(aHeld.has(h), `kept ${h}`).toBe(true)
    // a's own chain is never pruned
    for (const h of aOwn) expect(aHeld.has(h), `own ${h}`).toBe(true)
    expect(chainOf(a).map(x => x.hash)).toEqual(aOwn)
    // everyone is still found, with their newest capability
    expect(await names(a)).toEqual(['a', 'b', 'p'])
    const seen = await call<{ load: { cpu_percent: number } }>(a, 'capabilities', 'get_capability', b.t.agent)
    expect(seen.load.cpu_percent).toBe(13)
    // the summary the node syncs with matches what it holds, and two pruned nodes agree at once
    expectSummaryConsistent(space(a))
    expectSummaryConsistent(space(b))
    expect(hashEquals(space(a).digest(fullSectorSet()), space(b).digest(fullSectorSet()))).toBe(true)
    // mainnet-like retention keeps everything
    expect(held(p)).toEqual(pHeldBefore)

    // anti-entropy with the peer that still holds the pruned records brings none of them back
    const pulled = await a.net.syncDna(p.mesh.peerId, a.dna)
    expect(pulled.records).toBe(0)
    for (const h of superseded) expect(held(a).has(h)).toBe(false)

    // a sync request for pruned data is answered, naming what was pruned; nothing is refused
    const prunedHashes = superseded.map(h => decodeHash(h))
    const answer = await syncAsk(p, a, { op: 'fetch', dna: a.dna, hashes: prunedHashes })
    expect(answer.records).toEqual([])
    expect((answer.pruned as Uint8Array[]).map(h => encodeHash(h))).toEqual(prunedHashes.map(h => encodeHash(h)))
    const served = await syncAsk(p, a, { op: 'fetch', dna: a.dna, hashes: [decodeHash(latest.hash)] })
    expect((served.records as unknown[]).length).toBe(1)

    // after a restart (nothing remembered) the old records p offers are dropped and counted,
    // and a second round does not fetch them again
    const a2 = await restart(a, testnet, clock.now)
    await connect([a2, p])
    const again = await a2.net.syncDna(p.mesh.peerId, a2.dna)
    expect(again.records).toBe(0)
    const dropped = space(a2).droppedBeyondHorizon
    expect(dropped).toBeGreaterThanOrEqual(superseded.length)
    for (const h of superseded) expect(held(a2).has(h)).toBe(false)
    const third = await a2.net.syncDna(p.mesh.peerId, a2.dna)
    expect(third.records).toBe(0)
    expect(space(a2).droppedBeyondHorizon).toBe(dropped)

    // a late joiner syncs everything a pruned node retains, and finds every node
    const j = await node('j', 'ripple-testnet', testnet, clock.now)
    await connect([j, a2])
    const retained = space(a2).validActions().map(h => encodeHash(h))
    await converge([j, a2])
    const atJ = new Set(space(j).validActions().map(h => encodeHash(h)))
    expect(retained.filter(h => !atJ.has(h))).toEqual([])
    expect(await names(j)).toEqual(['a', 'b', 'p'])
    expect(held(j).has(latest.hash)).toBe(true)
    expect(held(j).has(superseded[0]!)).toBe(false)
    expectSummaryConsistent(space(j))
  }, 180_000)

  it('a chain older than the horizon, taken in one batch, is kept as its author\'s own pass keeps it, so the two summaries agree', async () => {
    // (CI: a late joiner's first pass ran after a peer had synced its chain; the peer had kept
    // every action, each one looking like its author's newest when it arrived, and the two
    // summaries then differed until the peer's next pass, an hour later)
    const clock = fakeClock()
    clock.advance(31 * DAY_MS) // every action written from now on is past the 30-day horizon
    const a = await node('a', 'ripple-testnet', testnet, clock.now)
    await advertise(a)
    await a.t.conductor.retention.prune() // what a wrote since its first pass is past the horizon too
    // j's chain reaches a from a copy whose summary still holds all of it (a pass not run yet)
    const j0 = await node('j', 'ripple-testnet', { mode: 'permanent' }, clock.now)
    await advertise(j0)
    await connect([a, j0])
    await a.net.syncDna(j0.mesh.peerId, a.dna)
    const jChain = chainOf(j0)
    const dropped = space(a).droppedBeyondHorizon
    expect(dropped).toBeGreaterThan(0)
    // j's newest action (its chain head), its Agent entry and its capability are kept; its Dna action is not
    const atA = held(a)
    expect(atA.has(jChain[jChain.length - 1]!.hash)).toBe(true)
    expect(atA.has(jChain[0]!.hash)).toBe(false)
    for (const x of jChain.filter(x => x.type === 'Create')) expect(atA.has(x.hash), `Create ${x.hash}`).toBe(true)
    // j under the testnet policy: its own pass takes the same actions out of its summary, and the two agree
    const j = await restart(j0, testnet, clock.now)
    await j.t.conductor.retention.prune()
    await connect([a, j])
    await converge([j, a])
    expect(space(a).droppedBeyondHorizon).toBe(dropped)
    expect(await names(a)).toEqual(['a', 'j'])
  }, 120_000)

  it('testnet prunes on its own schedule, with the clock it is given', async () => {
    const clock = fakeClock()
    const a = await node('a', 'ripple-testnet', { mode: 'prune', maxAgeMs: 30 * DAY_MS, intervalMs: 50 }, clock.now)
    await advertise(a)
    const passes = a.t.conductor.retention.passes
    await waitUntil(() => a.t.conductor.retention.passes > passes + 1, { what: 'two pruning passes' })
    expect(a.t.conductor.retention.policy).toEqual({ mode: 'prune', maxAgeMs: 30 * DAY_MS, intervalMs: 50 })
  }, 120_000)

  it('mainnet keeps everything, past the testnet horizon and across restarts', async () => {
    const clock = fakeClock()
    const p = await node('p', 'ripple-testnet', { mode: 'permanent' }, clock.now)
    const q = await node('b', 'ripple-testnet', { mode: 'permanent' }, clock.now)
    await advertise(p)
    await advertise(q)
    for (let i = 0; i < 3; i++) await beat(q, i)
    await connect([p, q])
    await converge([p, q])
    const before = held(p)
    clock.advance(400 * DAY_MS)
    expect(await p.t.conductor.retention.prune()).toEqual({ deleted: 0, excluded: 0 })
    const p2 = await restart(p, { mode: 'permanent' }, clock.now)
    expect(held(p2)).toEqual(before)
  }, 120_000)

  it('local is session-only: other agents\' data does not outlive the process; the own chain does, and the node re-syncs without a fork', async () => {
    const clock = fakeClock()
    const s = await node('s', 'ripple-local', { mode: 'session' }, clock.now)
    const q = await node('q', 'ripple-local', { mode: 'session' }, clock.now)
    await advertise(s)
    await advertise(q)
    await beat(q, 1)
    await connect([s, q])
    await converge([s, q])
    const qChain = chainOf(q).map(x => x.hash)
    const sChain = chainOf(s).map(x => x.hash)
    for (const h of qChain) expect(held(s).has(h)).toBe(true)
    const dataDir = s.t.dataDir

    // stopped: what s held for q is gone from its database, its own chain is all there
    open.splice(open.indexOf(s), 1)
    await close(s)
    const db = new Database(join(dataDir, DB_FILE), { readonly: true })
    try {
      const authors = (db.prepare('SELECT DISTINCT author FROM dht_action').all() as Array<{ author: Buffer }>).map(r => encodeHash(new Uint8Array(r.author)))
      expect(authors).toEqual([encodeHash(s.t.agent)])
      expect((db.prepare('SELECT COUNT(*) AS n FROM limbo').get() as { n: number }).n).toBe(0)
      expect((db.prepare('SELECT COUNT(*) AS n FROM chain_action WHERE author = ?').get(Buffer.from(s.t.agent)) as { n: number }).n).toBeGreaterThanOrEqual(sChain.length)
    } finally {
      db.close()
    }

    // started again: same chain, q's data re-synced from q, and s's next action is no fork
    const s2 = await node('s', 'ripple-local', { mode: 'session' }, clock.now, dataDir)
    expect(chainOf(s2).map(x => x.hash)).toEqual(sChain)
    expect(held(s2).has(qChain[qChain.length - 1]!)).toBe(false)
    await connect([s2, q])
    await converge([s2, q])
    for (const h of qChain) expect(held(s2).has(h)).toBe(true)
    await beat(s2, 5)
    await converge([s2, q])
    expect(space(q).warrants()).toEqual([])
    expect(space(q).isBlocked(s2.t.agent)).toBe(false)
    expect(space(s2).warrants()).toEqual([])
    expect(await names(q)).toEqual(['q', 's'])
  }, 120_000)

  it('warrants, and the blocks they carry, outlive a testnet pass and a local session', async () => {
    const clock = fakeClock()
    /** A conductor without a network, on its own data dir. */
    const standalone = async (seed: string, retention: RetentionPolicy, dataDir?: string): Promise<{ t: TestConductor, client: InProcessAppClient, dna: Uint8Array }> => {
      let dir = dataDir
      if (dir === undefined) {
        const d = await tempDir('flexnode-retention-')
        dirs.push(d)
        dir = d.path
      }
      const t = await createTestConductor({ dataDir: dir, retention, clock: clock.now })
      if ((t.conductor.listApps() as unknown[]).length === 0) await t.conductor.installApp({ source: { type: 'path', value: FLEXSTACK_HAPP }, agent_key: t.agent, installed_app_id: 'flexstack', network_seed: seed })
      await t.conductor.enableApp({ installed_app_id: 'flexstack' })
      await t.conductor.retention.start()
      const client = await InProcessAppClient.connect(t.conductor, 'flexstack')
      return { t, client, dna: client.cellId('agent_registry')[0] }
    }
    for (const [seed, retention] of [['ripple-testnet', { mode: 'prune', maxAgeMs: 30 * DAY_MS }], ['ripple-local', { mode: 'session' }]] as const) {
      const m = await standalone(seed, { mode: 'permanent' })
      const w = await standalone(seed, retention)
      try {
        // m forks its chain; w sees both branches and warrants m
        await m.client.callZome({ role_name: 'agent_registry', zome_name: 'capabilities', fn_name: 'advertise', payload: buildCapability(m.t.agent, 'm', machine, load, {}) })
        const ms = m.t.conductor.space(m.dna)!
        const records = ms.records(ms.validActions(), 1e9)
        expect(w.t.conductor.receiveRecords(w.dna, records).integrated.length).toBe(records.length)
        const head = records.reduce((x, y) => (y.action.header.action_seq > x.action.header.action_seq ? y : x))
        const fork: Action = { header: { ...head.action.header, timestamp: head.action.header.timestamp + 5 }, data: { type: 'InitZomesComplete' } }
        const out = w.t.conductor.receiveRecords(w.dna, [{ action: fork, signature: m.t.keystore.sign(m.t.agent, hashFromContent(fork, 'Action')), entry: null }])
        expect(out.warrants.map(x => x.kind)).toEqual(['ChainFork'])
        // a pass 31 days later (testnet), or the end of the session (local)
        clock.advance(31 * DAY_MS)
        await w.t.conductor.retention.prune()
        const dir = w.t.dataDir
        await w.t.stop()
        const again = await standalone(seed, retention, dir)
        try {
          expect(again.t.conductor.space(again.dna)!.warrants().map(x => x.kind)).toEqual(['ChainFork'])
          expect(again.t.conductor.space(again.dna)!.isBlocked(m.t.agent)).toBe(true)
        } finally {
          await again.t.stop()
        }
      } finally {
        await m.t.stop()
        await w.t.stop()
      }
    }
  }, 120_000)

  it('local forgets other agents\' data left on disk by a process that did not stop cleanly', async () => {
    const clock = fakeClock()
    // a process that kept others' data on disk (as a crash would leave it)
    const s = await node('s', 'ripple-local', { mode: 'permanent' }, clock.now)
    const q = await node('q', 'ripple-local', { mode: 'permanent' }, clock.now)
    await advertise(s)
    await advertise(q)
    await connect([s, q])
    await converge([s, q])
    const qHead = chainOf(q).at(-1)!.hash
    const sChain = chainOf(s).map(x => x.hash)
    expect(held(s).has(qHead)).toBe(true)
    const s2 = await restart(s, { mode: 'session' }, clock.now)
    expect(held(s2).has(qHead)).toBe(false)
    for (const h of sChain) expect(held(s2).has(h)).toBe(true)
    expectSummaryConsistent(space(s2))
  }, 120_000)
})

