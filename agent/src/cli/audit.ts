/**
 * `flexnode audit` and `flexnode audit verify`: the node's audit log (the outbox in its data
 * dir's database) and its verification, locally or against the Postgres it was shipped to.
 *
 * ```
 * flexnode audit --since 2h --kind pin            # records of the last two hours, of kind pin
 * flexnode audit --since 2026-01-31T00:00:00Z --json
 * flexnode audit verify                          # the outbox: hashes, signatures, seq, prev
 * flexnode audit verify --db postgres://u:p@db/audit [--node uhCAk…]
 * ```
 * With a node running on the data dir the records come from its HTTP API (`GET /v1/audit`,
 * `GET /v1/audit/verify`, see `audit/routes.ts`); without one the database is read directly,
 * read-only. `verify --db` reads the node's rows from Postgres and checks them against the node's
 * key, and — for this node — that every record Postgres acknowledged is there. `verify` exits 1
 * when the chain fails, one line per problem naming the record and why.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { DB_FILE } from '../conductor/constants.ts'
import { InvalidInputError } from '../errors.ts'
import type { AuditRecord, AuditVerification } from '../audit/types.ts'
import { NodeApi } from './inference.ts'
import { NodeNotRunningError, renderTable, shortId } from './runtime.ts'

export type AuditOptions =
  | { action: 'list', dataDir: string, json: boolean, since?: number, kind?: string, limit: number }
  | { action: 'verify', dataDir: string, json: boolean, db?: string, node?: string }

// ---------------------------------------------------------------------------------------------
// where the records come from: the running node, else its database read-only

interface Source {
  node: string
  list: (o: { since?: number, kind?: string, afterSeq?: number, limit: number }) => Promise<AuditRecord[]>
  verify: () => Promise<AuditVerification>
  /** the last record Postgres acknowledged (seq 0: none) */
  shipped: () => Promise<{ seq: number, hash: string } | null>
  close: () => void
}

async function nodeSource (dataDir: string): Promise<Source | undefined> {
  let api: NodeApi
  let node: string
  try {
    api = await NodeApi.open(dataDir)
    node = (await api.json<{ node: string }>('GET', '/v1/audit/stats')).node
  } catch (err) {
    if (err instanceof NodeNotRunningError) return undefined
    throw err
  }
  const list: Source['list'] = async (o) => {
    const q = new URLSearchParams({ limit: String(o.limit) })
    if (o.since !== undefined) q.set('since', String(o.since))
    if (o.kind !== undefined) q.set('kind', o.kind)
    if (o.afterSeq !== undefined) q.set('after_seq', String(o.afterSeq))
    return (await api.json<{ records: AuditRecord[] }>('GET', `/v1/audit?${q.toString()}`)).records
  }
  return {
    node,
    list,
    verify: async () => await api.json<AuditVerification>('GET', '/v1/audit/verify'),
    shipped: async () => {
      const { shipped_seq: seq } = await api.json<{ shipped_seq: number }>('GET', '/v1/audit/stats')
      if (seq === 0) return null
      const [r] = await list({ afterSeq: seq - 1, limit: 1 })
      return r === undefined ? null : { seq: r.seq, hash: r.hash }
    },
    close: () => {}
  }
}

async function databaseSource (dataDir: string): Promise<Source> {
  const path = join(dataDir, DB_FILE)
  if (!existsSync(path)) throw new NodeNotRunningError(dataDir, `and it holds no ${DB_FILE}: no node has run there`)
  const [{ default: Database }, { AuditLog }, { encodeHash }] = await Promise.all([import('better-sqlite3'), import('../audit/log.ts'), import('../holo/hash.ts')])
  const db = new Database(path, { readonly: true, fileMustExist: true })
  try {
    // the node's key from its own app (the outbox rows name it too, but they are what is checked)
    const app = db.prepare('SELECT agent FROM app ORDER BY installed_at LIMIT 1').get() as { agent: Buffer } | undefined
    if (app === undefined) throw new NodeNotRunningError(dataDir, 'and its database has no app installed: no node has run there')
    const agent = new Uint8Array(app.agent)
    const log = new AuditLog({}, { db, agent, keystore: { sign: () => { throw new InvalidInputError('the audit log is open read-only') } } })
    return {
      node: encodeHash(agent),
      list: async (o) => log.list(o),
      verify: async () => log.verify(),
      shipped: async () => {
        const seq = log.shippedSeq()
        const [r] = seq === 0 ? [] : log.list({ afterSeq: seq - 1, limit: 1 })
        return r === undefined ? null : { seq: r.seq, hash: r.hash }
      },
      close: () => { db.close() }
    }
  } catch (err) {
    db.close()
    throw err
  }
}

async function openSource (dataDir: string): Promise<Source> {
  return await nodeSource(dataDir) ?? await databaseSource(dataDir)
}

// ---------------------------------------------------------------------------------------------

const out = (text: string): void => { process.stdout.write(text) }

function renderRecords (records: AuditRecord[]): string {
  if (records.length === 0) return 'no audit records\n'
  return renderTable(['SEQ', 'TIME', 'KIND', 'ACTOR', 'SUBJECT', 'DETAIL'], records.map(r => {
    const detail = JSON.stringify(r.detail)
    return [String(r.seq), new Date(Math.floor(r.at / 1000)).toISOString(), r.kind, r.actor === null ? '-' : shortId(r.actor), r.subject === null ? '-' : shortId(r.subject), detail.length > 60 ? `${detail.slice(0, 59)}…` : detail]
  }))
}

function renderVerification (v: AuditVerification, what: string): string {
  if (v.ok) return `audit chain OK: ${v.checked} records (seq 1–${v.last_seq}) ${what}\n`
  return `audit chain FAILED ${what}: ${v.problems.length} problem(s) in ${v.checked} records\n` +
    v.problems.map(p => `  record ${p.id ?? `#${p.seq}`}: ${p.reason}: ${p.message}\n`).join('')
}

/** The node's rows of `audit_record` in Postgres, in seq order. */
async function postgresRecords (url: string, node: string): Promise<AuditRecord[]> {
  const [{ default: pg }, { schemaVersion }, { AuditSinkUnavailableError }] = await Promise.all([import('pg'), import('../audit/pg-schema.ts'), import('../audit/types.ts')])
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  client.on('error', () => {})
  try {
    await client.connect()
  } catch (err) {
    throw new AuditSinkUnavailableError(url, err)
  }
  try {
    if (await schemaVersion(client) === 0) return []
    const out: AuditRecord[] = []
    let after = 0
    for (;;) {
      const { rows } = await client.query<Record<string, string | null>>('SELECT id, node, seq, at, kind, actor, subject, detail, trace_id, prev, hash, signature FROM audit_record WHERE node = $1 AND seq > $2 ORDER BY seq LIMIT 10000', [node, after])
      for (const r of rows) {
        let detail: unknown
        try { detail = JSON.parse(r.detail ?? '') } catch { detail = r.detail }
        out.push({ ...r, seq: Number(r.seq), at: Number(r.at), detail } as unknown as AuditRecord)
      }
      if (rows.length < 10000) return out
      after = Number(rows[rows.length - 1]!.seq)
    }
  } finally {
    await client.end().catch(() => undefined)
  }
}

export async function auditCommand (o: AuditOptions): Promise<number> {
  if (o.action === 'list') {
    const source = await openSource(o.dataDir)
    try {
      const records = await source.list({ since: o.since, kind: o.kind, limit: o.limit })
      out(o.json ? JSON.stringify({ node: source.node, records }, null, 2) + '\n' : renderRecords(records))
      return 0
    } finally {
      source.close()
    }
  }
  if (o.db === undefined) {
    const source = await openSource(o.dataDir)
    try {
      const v = await source.verify()
      out(o.json ? JSON.stringify({ node: source.node, source: 'outbox', ...v }, null, 2) + '\n' : renderVerification(v, `in the outbox of ${source.node}`))
      return v.ok ? 0 : 1
    } finally {
      source.close()
    }
  }
  const { verifyChain } = await import('../audit/verify.ts')
  let node = o.node
  let head: { seq: number, hash: string } | null = null
  if (node === undefined) {
    const source = await openSource(o.dataDir)
    try {
      node = source.node
      head = await source.shipped()
    } finally {
      source.close()
    }
  }
  const v = verifyChain(await postgresRecords(o.db, node), node, { head })
  out(o.json ? JSON.stringify({ node, source: 'postgres', ...v }, null, 2) + '\n' : renderVerification(v, `in Postgres for ${node}`))
  return v.ok ? 0 : 1
}
