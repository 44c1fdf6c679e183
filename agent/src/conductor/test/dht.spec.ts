/**
 * DHT spaces between conductors, without a network: records of one node handed to another,
 * in any order; forged, invalid and forked records; warrants; anti-entropy summaries.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestConductor, FLEXSTACK_HAPP, type TestConductor } from '../../../../fixtures/index.ts'
import { InProcessAppClient } from '../in-process-client.ts'
import { encodeHash, hashFromContent } from '../../holo/hash.ts'
import { encode } from '../codec.ts'
import { checkNetRecord, LIMBO_MAX_PER_AUTHOR, type DhtSpace, type NetRecord } from '../space.ts'
import { differing, emptySectorSet, fullSectorSet, LEAVES, sectorsOf } from '../sectors.ts'
import type { Action } from '../../../../zomes-ts/hdk/index.ts'
import { buildCapability } from '../../registry/registry-service.ts'

const machine = { cpu_cores: 4, cpu_arch: 'x86_64', ram_gb: 16, gpu: null, local_ssd_gb: 100, hostname: 'h', platform: 'linux' as const }
const load = { cpu_percent: 1, gpu_percent: 0, memory_percent: 2 }

interface Node { t: TestConductor, client: InProcessAppClient, dna: Uint8Array }

async function node (): Promise<Node> {
  const t = await createTestConductor()
  await t.conductor.installApp({ source: { type: 'path', value: FLEXSTACK_HAPP }, agent_key: t.agent, installed_app_id: 'flexstack', network_seed: 'ripple-local' })
  await t.conductor.enableApp({ installed_app_id: 'flexstack' })
  const client = await InProcessAppClient.connect(t.conductor, 'flexstack')
  return { t, client, dna: client.cellId('agent_registry')[0] }
}

const advertise = async (n: Node, name: string): Promise<void> => {
  await n.client.callZome({ role_name: 'agent_registry', zome_name: 'capabilities', fn_name: 'advertise', payload: buildCapability(n.t.agent, name, machine, load, {}) })
}
/** two more actions on n's agent_registry chain: a heartbeat and a re-advertise */
const n2 = async (n: Node): Promise<void> => {
  await n.client.callZome({ role_name: 'agent_registry', zome_name: 'heartbeat', fn_name: 'beat', payload: load })
  await advertise(n, 'alice-2')
}
const peers = async (n: Node): Promise<string[]> =>
  ((await n.client.callZome({ role_name: 'agent_registry', zome_name: 'discovery', fn_name: 'query_peers', payload: null })) as Array<{ agent_name: string }>).map(p => p.agent_name).sort()

function allRecords (n: Node): NetRecord[] {
  const space = n.t.conductor.space(n.dna)!
  return space.records(space.validActions(), 1e9)
}

/** Sign a hand-made action as an agent of `n` (for forgeries). */
function signAs (n: Node, action: Action): NetRecord {
  const hash = hashFromContent(action, 'Action')
  return { action, signature: n.t.keystore.sign(n.t.agent, hash), entry: null }
}

describe('DHT space', () => {
  let a: Node
  let b: Node
  let c: Node

  beforeAll(async () => {
    ;[a, b, c] = await Promise.all([node(), node(), node()])
    await advertise(a, 'alice')
    await advertise(b, 'bob')
  })
  afterAll(async () => { for (const n of [a, b, c]) await n?.t[Symbol.asyncDispose]() })

  it('integrates another agent\'s chain delivered out of order, and sees its NodeCapability', async () => {
    expect(await peers(b)).toEqual(['bob'])
    const records = allRecords(a).reverse()
    expect(records.length).toBeGreaterThan(5)
    const out = b.t.conductor.receiveRecords(b.dna, records)
    expect(out.rejected).toEqual([])
    expect(out.integrated.length).toBe(records.length)
    expect(out.pending).toBe(0)
    expect(await peers(b)).toEqual(['alice', 'bob'])
    // receiving the same records again does nothing
    expect(b.t.conductor.receiveRecords(b.dna, records).integrated).toEqual([])
  })

  it('keeps a record whose previous action is missing in limbo until it arrives', async () => {
    await n2(a)
    const [latest] = allRecords(a).filter(r => r.action.header.action_seq === Math.max(...allRecords(a).map(x => x.action.header.action_seq)))
    const fresh = allRecords(a).filter(r => !b.t.conductor.space(b.dna)!.knows(hashFromContent(r.action, 'Action')))
    const withoutFirst = fresh.filter(r => r !== fresh.find(f => f.action.header.action_seq === Math.min(...fresh.map(x => x.action.header.action_seq))))
    const first = b.t.conductor.receiveRecords(b.dna, withoutFirst)
    expect(withoutFirst.length).toBeGreaterThan(0)
    expect(first.integrated).toEqual([])
    expect(first.pending).toBe(withoutFirst.length)
    const dump = b.t.conductor.dumpFullState({ cell_id: b.client.cellId('agent_registry') }) as { integration_dump: { validation_limbo: unknown[] } }
    expect(dump.integration_dump.validation_limbo.length).toBeGreaterThan(0)
    const second = b.t.conductor.receiveRecords(b.dna, fresh)
    expect(second.pending).toBe(0)
    expect(b.t.conductor.space(b.dna)!.knows(hashFromContent(latest!.action, 'Action'))).toBe(true)
    expect(await peers(b)).toEqual(['alice-2', 'bob'])
  })

  it('finds exactly the differing sectors and leaves between two nodes', () => {
    const all = fullSectorSet()
    const sa = a.t.conductor.space(a.dna)!
    const sb = b.t.conductor.space(b.dna)!
    /** what `from` holds in the sectors and leaves where its sums differ from `to`'s, and `to` lacks */
    const lacking = (to: DhtSpace, from: DhtSpace): Set<string> => {
      const out = new Set<string>()
      for (const sector of differing(from.sectorSums(all), to.sectorSums(all), sectorsOf(all))) {
        const leaves = differing(from.leafSums(sector), to.leafSums(sector), Array.from({ length: LEAVES }, (_, i) => i)).map(l => [sector, l] as [number, number])
        for (const h of from.actionsIn(leaves, 10_000)) if (!to.knows(h)) out.add(encodeHash(h))
        // whole-sector listing agrees with the leaf listing
        for (const h of from.actionsIn([sector], 10_000)) if (!to.knows(h)) expect(out.has(encodeHash(h))).toBe(true)
      }
      return out
    }
    expect(sb.digest(all)).not.toEqual(sa.digest(all))
    // b holds all of a's records already
    expect(lacking(sb, sa).size).toBe(0)
    const sc = c.t.conductor.space(c.dna)!
    expect(lacking(sc, sa).size).toBe(allRecords(a).length)
    // equal holdings, equal digests; and a digest only covers the sectors asked
    expect(sa.digest(all)).toEqual(sa.digest(all))
    expect(sa.opCount(all)).toBe([...sa.sectorSums(all).values()].reduce((n, s) => n + s.count, 0))
    expect(sa.digest(emptySectorSet())).toEqual(sc.digest(emptySectorSet()))
  })

  it('drops records their author did not sign, without warranting anyone', () => {
    const [genesis] = allRecords(a)
    const forged = { ...genesis!, signature: new Uint8Array(64).fill(7) }
    const wrongAuthor = { ...genesis!, action: { ...genesis!.action, header: { ...genesis!.action.header, author: c.t.agent } } }
    const out = c.t.conductor.receiveRecords(c.dna, [forged, wrongAuthor])
    expect(out.dropped).toBe(2)
    expect(out.warrants).toEqual([])
    expect(c.t.conductor.space(c.dna)!.isBlocked(a.t.agent)).toBe(false)
  })

  it('rejects an invalid entry its author signed, warrants the author, and the warrant convinces others', async () => {
    // c gets a's chain first
    c.t.conductor.receiveRecords(c.dna, allRecords(a))
    const head = allRecords(a).reduce((x, y) => (y.action.header.action_seq > x.action.header.action_seq ? y : x))
    const bad = buildCapability(b.t.agent, 'impostor', machine, load, {}) // node_id is bob, author will be alice
    const entry = { entry_type: 'App' as const, entry: encode(bad) }
    const action: Action = {
      header: { author: a.t.agent, timestamp: head.action.header.timestamp + 1000, action_seq: head.action.header.action_seq + 1, prev_action: hashFromContent(head.action, 'Action') },
      data: { type: 'Create', entry_type: { App: { entry_index: 0, zome_index: 0, visibility: 'Public' } }, entry_hash: hashFromContent(entry, 'Entry') }
    }
    const record = { ...signAs(a, action), entry }
    const out = b.t.conductor.receiveRecords(b.dna, [record])
    expect(out.rejected.map(r => r.reason)).toEqual([expect.stringContaining('node_id')])
    expect(out.warrants.map(w => w.kind)).toEqual(['ChainIntegrity'])
    expect(b.t.conductor.space(b.dna)!.isBlocked(a.t.agent)).toBe(true)
    // a node that never saw the record checks the evidence itself and agrees
    const verdict = c.t.conductor.space(c.dna)!.receiveWarrant(out.warrants[0])
    expect(verdict.accepted).toBe(true)
    expect(c.t.conductor.space(c.dna)!.isBlocked(a.t.agent)).toBe(true)
    // blocked: further records of a are dropped
    expect(c.t.conductor.receiveRecords(c.dna, [record]).integrated).toEqual([])
    const dump = c.t.conductor.dumpFullState({ cell_id: c.client.cellId('agent_registry') }) as { integration_dump: { integrated: Array<Record<string, unknown>> } }
    expect(dump.integration_dump.integrated.some(op => 'WarrantOp' in op)).toBe(true)
  })

  it('detects a forked chain and refuses a forged warrant', async () => {
    await using d = { ...(await node()), [Symbol.asyncDispose]: async () => {} }
    try {
      await advertise(d, 'dave')
      b.t.conductor.receiveRecords(b.dna, allRecords(d))
      const head = allRecords(d).reduce((x, y) => (y.action.header.action_seq > x.action.header.action_seq ? y : x))
      const forkOf = (ts: number): NetRecord => signAs(d, { header: { ...head.action.header, timestamp: head.action.header.timestamp + ts }, data: { type: 'InitZomesComplete' } })
      const other = forkOf(5)
      const out = b.t.conductor.receiveRecords(b.dna, [other])
      expect(out.warrants.map(w => w.kind)).toEqual(['ChainFork'])
      expect(b.t.conductor.space(b.dna)!.isBlocked(d.t.agent)).toBe(true)
      // c verifies the fork from the evidence alone
      expect(c.t.conductor.space(c.dna)!.receiveWarrant(out.warrants[0]).accepted).toBe(true)
      // a warrant with a tampered signature, or evidence that is no fork, convinces nobody
      const e = await node()
      try {
        expect(e.t.conductor.space(e.dna)!.receiveWarrant({ ...out.warrants[0]!, signature: new Uint8Array(64) }).accepted).toBe(false)
        expect(e.t.conductor.space(e.dna)!.receiveWarrant({ ...out.warrants[0]!, evidence: [out.warrants[0]!.evidence[0], out.warrants[0]!.evidence[0]] }).accepted).toBe(false)
        expect(e.t.conductor.space(e.dna)!.receiveWarrant('nonsense').accepted).toBe(false)
      } finally {
        await e.t[Symbol.asyncDispose]()
      }
    } finally {
      await d.t[Symbol.asyncDispose]()
    }
  })

  it('caps what one author can park in limbo', async () => {
    const f = await node()
    try {
      const orphans: NetRecord[] = Array.from({ length: LIMBO_MAX_PER_AUTHOR + 40 }, (_, i) => signAs(f, {
        header: { author: f.t.agent, timestamp: Date.now() * 1000 + i, action_seq: 1000 + i, prev_action: hashFromContent({ nowhere: i }, 'Action') },
        data: { type: 'InitZomesComplete' }
      }))
      const out = b.t.conductor.receiveRecords(b.dna, orphans)
      expect(out.dropped).toBe(40)
      expect(out.integrated).toEqual([])
      const store = (b.t.conductor as unknown as { store: { limboCount: (dna: Uint8Array, author?: Uint8Array) => number } }).store
      expect(store.limboCount(b.dna, f.t.agent)).toBe(LIMBO_MAX_PER_AUTHOR)
    } finally {
      await f.t[Symbol.asyncDispose]()
    }
  })

  it('judges a warrant\'s evidence without integrating it', async () => {
    const g = await node()
    try {
      await advertise(g, 'gina')
      const valid = allRecords(g)[0]!
      // a correctly signed warrant (issued by g against itself) whose evidence is a valid record
      const body = { kind: 'ChainIntegrity', warrantee: g.t.agent, issuer: g.t.agent, timestamp: Date.now() * 1000, reason: 'framed' }
      const digest = hashFromContent({ kind: body.kind, warrantee: body.warrantee, evidence: [hashFromContent(valid.action, 'Action')], issuer: body.issuer, timestamp: body.timestamp, reason: body.reason }, 'Warrant')
      const forged = { ...body, evidence: [valid], signature: g.t.keystore.sign(g.t.agent, digest) }
      expect(c.t.conductor.space(c.dna)!.receiveWarrant(forged).reason).toBe('evidence does not fail validation here')
      const e = c.t.conductor.space(c.dna)!
      expect(e.receiveWarrant(forged).accepted).toBe(false)
      expect(e.knows(hashFromContent(valid.action, 'Action'))).toBe(false)
    } finally {
      await g.t[Symbol.asyncDispose]()
    }
  })

  it('refuses malformed records at the boundary', () => {
    for (const bad of [null, 5, { action: {}, signature: new Uint8Array(64) }, { action: { header: {}, data: {} }, signature: new Uint8Array(3) }, { ...allRecords(b)[0]!, action: { ...allRecords(b)[0]!.action, data: { type: 'Teleport' } } }]) {
      expect(() => checkNetRecord(bad)).toThrow(expect.objectContaining({ name: 'DhtWireError' }))
    }
    expect(() => b.t.conductor.receiveRecords(new Uint8Array(39), [])).toThrow(expect.objectContaining({ kind: 'internal_error' }))
  })

  it('signs receipts the author can verify, and refuses forged ones', () => {
    const [rec] = allRecords(a).slice(-1)
    const hash = hashFromContent(rec!.action, 'Action')
    const receipt = c.t.conductor.space(c.dna)!.makeReceipt(hash)
    expect(a.t.conductor.space(a.dna)!.receiveReceipt(receipt)).toBe(true)
    expect(a.t.conductor.space(a.dna)!.receiveReceipt({ ...receipt, signature: new Uint8Array(64) })).toBe(false)
    expect(a.t.conductor.space(a.dna)!.receiveReceipt({ ...receipt, action_hash: new Uint8Array(39) })).toBe(false)
  })
})
