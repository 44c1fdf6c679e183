/**
 * The audit log on a real conductor database (SQLite, the conductor's migrations) and a real
 * keystore: the chain, its transactions, bad events, and verification of edited, dropped,
 * reordered and forged records.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDir, TEST_SCRYPT_N, type TempDir } from '../../../../fixtures/index.ts'
import { ConductorStore } from '../../conductor/store.ts'
import { Keystore } from '../../identity/keystore.ts'
import { GENESIS_PREV } from '../constants.ts'
import { auditLog, type AuditLog } from '../log.ts'
import { canonicalJson, recordHash } from '../record.ts'
import type { AuditRecord } from '../types.ts'
import { verifyChain } from '../verify.ts'

let dir: TempDir
let keystore: Keystore
let store: ConductorStore
let log: AuditLog

beforeAll(async () => {
  dir = await tempDir('flexnode-audit-')
  keystore = await Keystore.open({ dataDir: dir.path, scryptN: TEST_SCRYPT_N })
  store = new ConductorStore({ path: `${dir.path}/conductor.sqlite3` })
  log = auditLog()({ db: store.db, keystore, agent: keystore.primary.agentPubKey })
})
afterAll(async () => {
  store.dispose()
  keystore.dispose()
  await dir[Symbol.asyncDispose]()
})

const fresh = (): void => { store.db.exec('DELETE FROM audit_outbox; DELETE FROM audit_shipped') }

describe('AuditLog', () => {
  it('chains records: seq 1, 2, 3…, prev = the hash before, signed by the node', () => {
    fresh()
    const a = log.append({ kind: 'pin', subject: 'bafy', detail: { size: 1, z: null, a: [1, 'x'] } })
    const b = log.append({ kind: 'zome_call', actor: 'someone', detail: {} })
    expect(a).toMatchObject({ seq: 1, prev: GENESIS_PREV, node: log.node, id: `${log.node}:1`, kind: 'pin', actor: null, subject: 'bafy', trace_id: null })
    expect(b).toMatchObject({ seq: 2, prev: a.hash })
    expect(a.hash).toMatch(/^[0-9a-f]{64}$/)
    expect(Buffer.from(a.signature, 'base64')).toHaveLength(64)
    expect(b.at).toBeGreaterThanOrEqual(a.at)
    expect(log.list()).toEqual([a, b])
    expect(log.verify()).toEqual({ ok: true, checked: 2, last_seq: 2, problems: [] })
    expect(log.head()).toEqual({ seq: 2, hash: b.hash })
  })

  it('hashes a canonical encoding: key order does not matter, content does', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, 2], c: 'é' }, u: undefined })).toBe('{"a":{"c":"é","d":[1,2]},"b":1}')
    const f = { node: log.node, seq: 1, at: 5, kind: 'k', actor: null, subject: null, trace_id: null, prev: GENESIS_PREV }
    expect(recordHash({ ...f, detail: canonicalJson({ x: 1, y: 2 }) })).toBe(recordHash({ ...f, detail: canonicalJson({ y: 2, x: 1 }) }))
    expect(recordHash({ ...f, detail: canonicalJson({ x: 1 }) })).not.toBe(recordHash({ ...f, detail: canonicalJson({ x: 2 }) }))
  })

  it('joins the caller\'s transaction: a rollback takes the record back, and the chain stays whole', () => {
    fresh()
    log.append({ kind: 'a', detail: {} })
    expect(() => log.transaction(() => {
      log.append({ kind: 'b', detail: {} })
      throw new Error('the action failed')
    })).toThrow('the action failed')
    expect(log.list().map(r => r.kind)).toEqual(['a'])
    const c = log.append({ kind: 'c', detail: {} })
    expect(c.seq).toBe(2)
    log.transaction(() => { for (let i = 0; i < 100; i++) log.append({ kind: 'many', detail: { i } }) })
    expect(log.head()?.seq).toBe(102)
    expect(log.verify().ok).toBe(true)
  })

  it('refuses a bad event with InvalidAuditEventError and writes nothing', () => {
    fresh()
    const bad: unknown[] = [
      { kind: 'Bad Kind', detail: {} },
      { kind: '', detail: {} },
      { kind: 'k', detail: [] },
      { kind: 'k', detail: null },
      { kind: 'k', detail: { n: Number.NaN } },
      { kind: 'k', detail: { n: Infinity } },
      { kind: 'k', detail: { d: new Date() } },
      { kind: 'k', detail: { b: new Uint8Array(1) } },
      { kind: 'k', detail: { big: 10n } },
      { kind: 'k', detail: { s: 'x\uD800y' } },
      { kind: 'k', detail: { s: 'x'.repeat(70_000) } },
      { kind: 'k', actor: 'a\u0000b', detail: {} },
      { kind: 'k', subject: 5, detail: {} },
      { kind: 'k', trace_id: 'x'.repeat(2000), detail: {} }
    ]
    for (const event of bad) {
      expect(() => log.append(event as never), JSON.stringify(event, (_k, v: unknown) => typeof v === 'bigint' ? String(v) : v)).toThrow(expect.objectContaining({ name: 'InvalidAuditEventError' }))
    }
    let deep: Record<string, unknown> = {}
    for (let i = 0; i < 40; i++) deep = { deep }
    expect(() => log.append({ kind: 'k', detail: deep as never })).toThrow(expect.objectContaining({ name: 'InvalidAuditEventError' }))
    expect(log.head()).toBeNull()
  })

  it('lists by kind, time, seq and limit; refuses a bad limit', () => {
    fresh()
    let t = 1_000_000
    const clocked = auditLog({ clock: () => (t += 1000) })({ db: store.db, keystore, agent: keystore.primary.agentPubKey })
    for (let i = 0; i < 10; i++) clocked.append({ kind: i % 2 === 0 ? 'even' : 'odd', detail: { i } })
    expect(clocked.list({ kind: 'odd' }).map(r => r.detail.i)).toEqual([1, 3, 5, 7, 9])
    expect(clocked.list({ since: 1_006_000 }).map(r => r.seq)).toEqual([6, 7, 8, 9, 10])
    expect(clocked.list({ afterSeq: 8 }).map(r => r.seq)).toEqual([9, 10])
    expect(clocked.list({ limit: 3 }).map(r => r.seq)).toEqual([1, 2, 3])
    expect(() => clocked.list({ limit: 0 })).toThrow(expect.objectContaining({ name: 'InvalidInputError' }))
    expect(() => clocked.list({ since: -1 })).toThrow(expect.objectContaining({ name: 'InvalidInputError' }))
  })

  it('counts what a sink has not acknowledged', () => {
    fresh()
    for (let i = 0; i < 5; i++) log.append({ kind: 'k', detail: {} })
    expect(log.depth()).toBe(5)
    log.markShipped(3)
    expect(log.depth()).toBe(2)
    expect(log.rowsAfter(log.shippedSeq(), 10).map(r => r.seq)).toEqual([4, 5])
    log.markShipped(2) // never moves back
    expect(log.shippedSeq()).toBe(3)
    log.markShipped(5)
    expect(log.depth()).toBe(0)
    expect(log.lagMs()).toBe(0)
  })
})

describe('verification', () => {
  let records: AuditRecord[]
  beforeAll(() => {
    fresh()
    for (let i = 0; i < 8; i++) log.append({ kind: 'k', actor: 'me', detail: { i, nested: { b: true, a: 'x' } } })
    records = log.list()
  })
  const reasons = (rs: AuditRecord[], head?: { seq: number, hash: string }): Array<[number, string]> =>
    verifyChain(rs, log.node, { head }).problems.map(p => [p.seq, p.reason])

  it('a whole chain verifies, also against its head', () => {
    expect(verifyChain(records, log.node, { head: log.head() }).ok).toBe(true)
  })

  it('an edited record fails its hash', () => {
    const edited = records.map(r => r.seq === 4 ? { ...r, detail: { ...r.detail, i: 99 } } : r)
    expect(reasons(edited)).toEqual([[4, 'hash']])
    expect(reasons(records.map(r => r.seq === 2 ? { ...r, at: r.at + 1 } : r))).toEqual([[2, 'hash']])
    expect(reasons(records.map(r => r.seq === 2 ? { ...r, actor: 'someone else' } : r))).toEqual([[2, 'hash']])
  })

  it('an edited and re-hashed record fails its signature, and breaks the next prev', () => {
    const r4 = records[3]!
    const detail = { ...r4.detail, i: 99 }
    const hash = recordHash({ ...r4, detail: canonicalJson(detail) })
    const forged = records.map(r => r.seq === 4 ? { ...r, detail, hash } : r)
    expect(reasons(forged)).toEqual([[4, 'signature'], [5, 'prev']])
  })

  it('a dropped record leaves a gap; a dropped last one is missing against the head', () => {
    expect(reasons(records.filter(r => r.seq !== 3))).toEqual([[3, 'gap']])
    expect(reasons(records.filter(r => r.seq !== 3 && r.seq !== 4))).toEqual([[3, 'gap']])
    expect(reasons(records.slice(0, 7), log.head()!)).toEqual([[8, 'gap']])
    expect(reasons(records.slice(1))).toEqual([[1, 'gap']])
  })

  it('a reordered listing is out of order; a duplicated or forked one is flagged', () => {
    const swapped = [...records]
    ;[swapped[2], swapped[3]] = [swapped[3]!, swapped[2]!]
    expect(reasons(swapped)).toEqual([[3, 'order']])
    expect(reasons([...records, records[1]!])).toEqual([[2, 'duplicate']])
  })

  it('a record of another node, or a mangled one, is flagged', () => {
    expect(reasons(records.map(r => r.seq === 5 ? { ...r, node: 'uhCAkAAAA' } : r))).toEqual([[5, 'node'], [5, 'gap']])
    expect(reasons(records.map(r => r.seq === 5 ? { ...r, hash: 'zz' } : r))).toEqual([[5, 'malformed'], [5, 'gap']])
    expect(reasons(records.map(r => r.seq === 5 ? { ...r, signature: 'AAAA' } : r))).toEqual([[5, 'signature']])
  })

  it('the outbox itself: an edit made in SQLite is found', () => {
    store.db.prepare("UPDATE audit_outbox SET detail = '{\"i\":5}' WHERE seq = 6").run()
    const v = log.verify()
    expect(v.ok).toBe(false)
    expect(v.problems.map(p => [p.seq, p.reason])).toEqual([[6, 'hash']])
    store.db.prepare('DELETE FROM audit_outbox WHERE seq = 6').run()
    expect(log.verify().problems.map(p => [p.seq, p.reason])).toEqual([[6, 'gap']])
  })
})
