/**
 * The audit log: an outbox table (`audit_outbox`, conductor migration 5) in the conductor's
 * SQLite database. `append` writes one hash-chained, signed record; inside an open transaction
 * (a zome call's commit, through the conductor's `onCommitting` hook) it joins that transaction,
 * so the record exists exactly when the action it records does.
 *
 * ```ts
 * const log = auditLog()({ db: conductor.database, keystore, agent: keystore.primary.agentPubKey })
 * const r = log.append({ kind: 'pin', subject: cid, detail: { size: 42 } })   // r.seq, r.hash…
 * log.list({ kind: 'pin', limit: 10 })
 * log.verify().ok
 * ```
 */
import type { Database, Statement } from 'better-sqlite3'
import { encodeHash } from '../holo/hash.ts'
import type { Keystore } from '../identity/keystore.ts'
import { DisposedError, InvalidInputError } from '../errors.ts'
import { DEFAULT_LIST_LIMIT, GENESIS_PREV, MAX_LIST_LIMIT, POSTGRES_SINK, VERIFY_PAGE } from './constants.ts'
import { checkEvent, parseDetail, recordHash, recordId, type HashedFields } from './record.ts'
import type { AuditEvent, AuditListOptions, AuditRecord, AuditVerification } from './types.ts'
import { ChainVerifier } from './verify.ts'

export interface AuditLogInit {
  /** µs since the Unix epoch, for `at` (tests pass a fake clock). @default Date.now() × 1000 */
  clock?: () => number
}

export interface AuditLogComponents {
  /** the conductor's database (`EmbeddedConductor.database`): the outbox lives in it */
  db: Database
  keystore: Pick<Keystore, 'sign'>
  /** the node's agent key (39-byte AgentPubKey): it signs every record */
  agent: Uint8Array
}

/** A row of `audit_outbox`: the hashed fields, the hash and the signature. */
export interface OutboxRow extends HashedFields {
  hash: string
  signature: string
}

export function rowToRecord (r: OutboxRow): AuditRecord {
  return { id: recordId(r.node, r.seq), node: r.node, seq: r.seq, at: r.at, kind: r.kind, actor: r.actor, subject: r.subject, detail: parseDetail(r.detail), trace_id: r.trace_id, prev: r.prev, hash: r.hash, signature: r.signature }
}

const COLUMNS = 'seq, node, at, kind, actor, subject, detail, trace_id, prev, hash, signature'

function checkCount (value: unknown, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) throw new InvalidInputError(`${field} must be an integer from ${min} to ${max}`, { field })
  return value
}

export class AuditLog {
  /** the node's agent key, Holochain base64: every record's `node` */
  readonly node: string
  readonly db: Database
  private readonly agent: Uint8Array
  private readonly keystore: Pick<Keystore, 'sign'>
  private readonly clock: () => number
  private readonly listeners = new Set<(record: AuditRecord) => void>()
  private disposed = false
  private readonly sHead: Statement
  private readonly sInsert: Statement
  private readonly sMark: Statement
  private readonly sShipped: Statement
  private readonly sPage: Statement
  private readonly sFirstAfter: Statement

  constructor (init: AuditLogInit, components: AuditLogComponents) {
    this.db = components.db
    this.agent = components.agent
    this.node = encodeHash(components.agent)
    this.keystore = components.keystore
    this.clock = init.clock ?? (() => Date.now() * 1000)
    this.sHead = this.db.prepare('SELECT seq, at, hash FROM audit_outbox ORDER BY seq DESC LIMIT 1')
    this.sInsert = this.db.prepare(`INSERT INTO audit_outbox (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    this.sMark = this.db.prepare('INSERT INTO audit_shipped (sink, seq, at) VALUES (?, ?, ?) ON CONFLICT(sink) DO UPDATE SET seq = max(seq, excluded.seq), at = excluded.at')
    this.sShipped = this.db.prepare('SELECT seq FROM audit_shipped WHERE sink = ?').pluck()
    this.sPage = this.db.prepare(`SELECT ${COLUMNS} FROM audit_outbox WHERE seq > ? ORDER BY seq LIMIT ?`)
    this.sFirstAfter = this.db.prepare('SELECT at FROM audit_outbox WHERE seq > ? ORDER BY seq LIMIT 1').pluck()
  }

  private check (): void {
    if (this.disposed || !this.db.open) throw new DisposedError('AuditLog')
  }

  /**
   * Append one record: checked (`InvalidAuditEventError`: nothing written), chained to the last
   * one, hashed and signed. Inside an open transaction it joins it (a rollback takes it back,
   * seq and all); otherwise it commits on its own.
   */
  append (event: AuditEvent): AuditRecord {
    this.check()
    const e = checkEvent(event)
    const row = this.db.inTransaction ? this.insert(e) : this.db.transaction(() => this.insert(e))()
    const record = rowToRecord(row)
    for (const fn of this.listeners) fn(record)
    return record
  }

  private insert (e: ReturnType<typeof checkEvent>): OutboxRow {
    const head = this.sHead.get() as { seq: number, at: number, hash: string } | undefined
    const seq = (head?.seq ?? 0) + 1
    // `at` never goes back along the chain (a clock step back keeps the previous record's time)
    const at = Math.max(Math.floor(this.clock()), head?.at ?? 0)
    const prev = head?.hash ?? GENESIS_PREV
    const fields = { node: this.node, seq, at, kind: e.kind, actor: e.actor, subject: e.subject, detail: e.detail, trace_id: e.trace_id, prev }
    const hash = recordHash(fields)
    const signature = Buffer.from(this.keystore.sign(this.agent, Buffer.from(hash, 'hex'))).toString('base64')
    this.sInsert.run(seq, this.node, at, e.kind, e.actor, e.subject, e.detail, e.trace_id, prev, hash, signature)
    return { ...fields, hash, signature }
  }

  /** Run `fn` in one transaction of the conductor's database (many appends, one commit). */
  transaction<T> (fn: () => T): T {
    this.check()
    return this.db.transaction(fn)()
  }

  /** Be told of each record appended (after `append` returns it; a later rollback may take it back). */
  onAppend (fn: (record: AuditRecord) => void): () => void {
    this.listeners.add(fn)
    return () => { this.listeners.delete(fn) }
  }

  /** Records in seq order, filtered. */
  list (options: AuditListOptions = {}): AuditRecord[] {
    this.check()
    const since = checkCount(options.since, 'since', 0)
    const afterSeq = checkCount(options.afterSeq, 'afterSeq', 0) ?? 0
    const limit = checkCount(options.limit, 'limit', 1, MAX_LIST_LIMIT) ?? DEFAULT_LIST_LIMIT
    if (options.kind !== undefined && typeof options.kind !== 'string') throw new InvalidInputError('kind must be a string', { field: 'kind' })
    const where = ['seq > ?']
    const args: unknown[] = [afterSeq]
    if (since !== undefined) { where.push('at >= ?'); args.push(since) }
    if (options.kind !== undefined) { where.push('kind = ?'); args.push(options.kind) }
    const rows = this.db.prepare(`SELECT ${COLUMNS} FROM audit_outbox WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`).all(...args, limit) as OutboxRow[]
    return rows.map(rowToRecord)
  }

  /** The last record's seq and hash, or null when the log is empty. */
  head (): { seq: number, hash: string } | null {
    this.check()
    const h = this.sHead.get() as { seq: number, hash: string } | undefined
    return h === undefined ? null : { seq: h.seq, hash: h.hash }
  }

  /** The highest seq a sink has acknowledged (0: none). */
  shippedSeq (sink = POSTGRES_SINK): number {
    this.check()
    return (this.sShipped.get(sink) as number | undefined) ?? 0
  }

  /** Records a sink has not acknowledged yet. */
  depth (sink = POSTGRES_SINK): number {
    return (this.head()?.seq ?? 0) - this.shippedSeq(sink)
  }

  /** Age in ms of the oldest record a sink has not acknowledged (0 when drained). */
  lagMs (sink = POSTGRES_SINK): number {
    this.check()
    const at = this.sFirstAfter.get(this.shippedSeq(sink)) as number | undefined
    return at === undefined ? 0 : Math.max(0, Math.round((this.clock() - at) / 1000))
  }

  /** Raw outbox rows after `afterSeq`, in seq order (what a shipper sends). */
  rowsAfter (afterSeq: number, limit: number): OutboxRow[] {
    this.check()
    return this.sPage.all(afterSeq, limit) as OutboxRow[]
  }

  /** A sink has every record up to `seq` (never moves back). */
  markShipped (seq: number, sink = POSTGRES_SINK): void {
    this.check()
    this.sMark.run(sink, seq, this.clock())
  }

  /** Verify the whole outbox: hashes, signatures, seq without gaps, prev links. */
  verify (): AuditVerification {
    this.check()
    const v = new ChainVerifier(this.node)
    let after = 0
    for (;;) {
      const rows = this.rowsAfter(after, VERIFY_PAGE)
      for (const r of rows) v.add(rowToRecord(r))
      if (rows.length < VERIFY_PAGE) break
      after = rows[rows.length - 1]!.seq
    }
    return v.result()
  }

  dispose (): void {
    this.disposed = true
    this.listeners.clear()
  }
}

/** The audit log over the conductor's database. */
export function auditLog (init: AuditLogInit = {}): (components: AuditLogComponents) => AuditLog {
  return (components) => new AuditLog(init, components)
}
