/**
 * The node's database (better-sqlite3, one file per node): installed DNAs and apps, zome code,
 * every local agent's source chain, the DHT ops this node holds and the records, links,
 * updates and deletes integrated from them, capability grants and used zome-call nonces.
 *
 * Writes of one zome call happen inside one `store.transaction(...)`.
 */
import { closeSync, openSync } from 'node:fs'
import Database from 'better-sqlite3'
import type { Database as Db, Statement } from 'better-sqlite3'
import { DisposedError, InvalidInputError } from '../errors.ts'
import { DatabaseCorruptError, MigrationFailedError, SchemaTooNewError } from './errors.ts'
import { MIGRATIONS, type Migration } from './migrations.ts'
import { NONCE_WRITE_DELAY_MS, WAL_CHECKPOINT_PAGES } from './constants.ts'

export interface ChainActionRow {
  dna: Uint8Array
  author: Uint8Array
  seq: number
  hash: Uint8Array
  type: string
  timestamp: number
  entry_hash: Uint8Array | null
  entry_type: string | null
  action: Uint8Array
  signature: Uint8Array
}

export interface DhtActionRow {
  dna: Uint8Array
  hash: Uint8Array
  author: Uint8Array
  seq: number
  timestamp: number
  type: string
  entry_hash: Uint8Array | null
  original_action: Uint8Array | null
  deletes_action: Uint8Array | null
  base: Uint8Array | null
  target: Uint8Array | null
  link_add: Uint8Array | null
  zome_index: number | null
  link_type: number | null
  tag: Uint8Array | null
  action: Uint8Array
  signature: Uint8Array
  status: string
}

export interface DhtOpRow {
  dna: Uint8Array
  hash: Uint8Array
  type: string
  basis: Uint8Array
  location: number
  action_hash: Uint8Array
  author: Uint8Array
  stage: 'validation_limbo' | 'integration_limbo' | 'integrated'
  validation_status: string | null
  when_integrated: number | null
  authored: number
}

export interface CapGrantRow {
  dna: Uint8Array
  author: Uint8Array
  action_hash: Uint8Array
  tag: string
  access: string
  secret: Uint8Array | null
  assignees: Uint8Array | null
  functions: Uint8Array
  created_at: number
  revoked_at: number | null
}

export interface StoreInit {
  /** path of the database file, or ':memory:' */
  path: string
  /** the schema's migrations, numbered 1, 2, 3… (tests add failing ones). @default MIGRATIONS */
  migrations?: readonly Migration[]
}

function checkMigrations (migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new InvalidInputError(`migration ${i} has version ${m.version}; versions must be 1, 2, 3… in order`, { field: 'migrations' })
  })
}

/**
 * The schema version of an open database, read without writing: `PRAGMA user_version`, or for
 * a database of the release before migrations, `meta.schema_version`; 0 for an empty database.
 */
function readSchemaVersion (db: Db): number {
  const user = db.pragma('user_version', { simple: true }) as number
  if (user > 0) return user
  const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get() !== undefined
  if (!hasMeta) return 0
  const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: Buffer | string | null } | undefined
  if (row === undefined || row.value === null) return 1
  const text = Buffer.isBuffer(row.value) ? row.value.toString('utf8') : String(row.value)
  const v = Number(text)
  // a value this code cannot read is no version it knows: refuse rather than guess
  return Number.isSafeInteger(v) && v > 0 ? v : Number.MAX_SAFE_INTEGER
}

/** Problems `PRAGMA quick_check` reports at most. */
const MAX_REPORTED_PROBLEMS = 5

/** SQLite's result codes for a damaged file or one that is not a database. */
function isCorruption (err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB')
}

function toBuf (b: Uint8Array | null | undefined): Buffer | null {
  if (b == null) return null
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

/** Normalize Buffers read back from SQLite into plain Uint8Arrays (msgpack encodes both as bin). */
function u8 (b: Buffer | Uint8Array | null): Uint8Array | null {
  if (b == null) return null
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}

function rowU8<T extends object> (row: T | undefined): T | undefined {
  if (row === undefined) return undefined
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(row)) out[k] = Buffer.isBuffer(v) ? u8(v) : v
  return out as T
}

/** Run the migrations after `from`, all in one transaction, and record the new version. */
function migrate (db: Db, path: string, from: number, migrations: readonly Migration[]): void {
  let current = from
  const now = Date.now()
  try {
    db.transaction(() => {
      for (const m of migrations.slice(from)) {
        current = m.version
        m.up(db)
      }
      current = migrations.length
      const logged = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migration'").get() !== undefined
      if (logged) {
        const log = db.prepare('INSERT OR IGNORE INTO schema_migration (version, description, applied_at) VALUES (?, ?, ?)')
        // versions applied before the log existed are listed without a time
        for (const m of migrations) log.run(m.version, m.description, m.version > from ? now : null)
      }
      db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run('schema_version', Buffer.from(String(migrations.length)))
      db.pragma(`user_version = ${migrations.length}`)
    })()
  } catch (err) {
    if (isCorruption(err)) throw err
    throw new MigrationFailedError(path, from, current, err)
  }
}

export class ConductorStore {
  readonly db: Db
  /** the schema version after open (the latest of `init.migrations`) */
  readonly schemaVersion: number
  private disposed = false
  private readonly stmts: Map<string, Statement> = new Map()
  /** nonces accepted and not yet written (see `useNonce`), by agent and nonce */
  private readonly owedNonces = new Map<string, { agent: Buffer, nonce: Buffer, expires: number }>()
  private nonceTimer: NodeJS.Timeout | undefined

  /**
   * Open (or create) the database. Its structure is checked first (`PRAGMA quick_check`: every
   * b-tree page of every table and index, not the index contents; about 3 ms per MiB on a warm
   * cache): a damaged file, or one that is not a database, is a `DatabaseCorruptError` before
   * anything is written to it. A database of a newer schema is a `SchemaTooNewError`, also
   * before anything is written; an older one is upgraded by the pending migrations in one
   * transaction (a failure is a `MigrationFailedError` and leaves it as it was).
   */
  constructor (init: StoreInit) {
    const migrations = init.migrations ?? MIGRATIONS
    checkMigrations(migrations)
    const latest = migrations.length
    if (init.path !== ':memory:') closeSync(openSync(init.path, 'a', 0o600))
    let db: Db | undefined
    try {
      db = new Database(init.path)
      const problems = (db.pragma(`quick_check(${MAX_REPORTED_PROBLEMS})`) as Array<{ quick_check: string }>).map(r => r.quick_check)
      if (problems.length !== 1 || problems[0] !== 'ok') throw new DatabaseCorruptError(init.path, problems)
      const found = readSchemaVersion(db)
      if (found > latest) throw new SchemaTooNewError(init.path, found, latest)
      db.pragma('journal_mode = WAL')
      db.pragma('synchronous = NORMAL')
      // checkpoint every 4000 WAL pages (16 MiB) instead of 1000: a zome call's commit dirties the
      // same index pages again and again, and each checkpoint copies them (and syncs) once; measured
      // here, a heartbeat-shaped commit costs about 20% less CPU
      db.pragma(`wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`)
      db.pragma('foreign_keys = ON')
      if (found < latest) migrate(db, init.path, found, migrations)
    } catch (err) {
      db?.close()
      if (isCorruption(err)) throw new DatabaseCorruptError(init.path, [err instanceof Error ? err.message : String(err)], { cause: err })
      throw err
    }
    this.db = db
    this.schemaVersion = latest
  }

  private stmt (sql: string): Statement {
    if (this.disposed) throw new DisposedError('ConductorStore')
    let s = this.stmts.get(sql)
    if (s === undefined) {
      s = this.db.prepare(sql)
      this.stmts.set(sql, s)
    }
    return s
  }

  /**
   * Run `fn` in one write transaction. Nonces accepted since the last write (`useNonce`) are
   * written in it too, so a call that commits writes its nonce with its records; a rollback keeps
   * them owed.
   */
  transaction<T> (fn: () => T): T {
    if (this.disposed) throw new DisposedError('ConductorStore')
    if (this.owedNonces.size === 0 || this.db.inTransaction) return this.db.transaction(fn)()
    const owed = [...this.owedNonces]
    const insert = this.stmt('INSERT OR IGNORE INTO nonce (agent, nonce, expires) VALUES (?, ?, ?)')
    const result = this.db.transaction(() => {
      for (const [, n] of owed) insert.run(n.agent, n.nonce, n.expires)
      return fn()
    })()
    for (const [key] of owed) this.owedNonces.delete(key)
    return result
  }

  getMeta (key: string): Uint8Array | undefined {
    const row = this.stmt('SELECT value FROM meta WHERE key = ?').get(key) as { value: Buffer } | undefined
    return row === undefined ? undefined : u8(row.value) ?? undefined
  }

  setMeta (key: string, value: Uint8Array): void {
    this.stmt('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, toBuf(value))
  }

  // -- code, DNAs, apps, interfaces --------------------------------------------------------

  putZomeCode (hash: Uint8Array, code: Uint8Array): void {
    this.stmt('INSERT OR IGNORE INTO zome_code (hash, code) VALUES (?, ?)').run(toBuf(hash), toBuf(code))
  }

  getZomeCode (hash: Uint8Array): Uint8Array | undefined {
    const row = this.stmt('SELECT code FROM zome_code WHERE hash = ?').get(toBuf(hash)) as { code: Buffer } | undefined
    return row === undefined ? undefined : u8(row.code) ?? undefined
  }

  putDnaDef (hash: Uint8Array, def: Uint8Array): void {
    this.stmt('INSERT OR IGNORE INTO dna_def (hash, def) VALUES (?, ?)').run(toBuf(hash), toBuf(def))
  }

  getDnaDef (hash: Uint8Array): Uint8Array | undefined {
    const row = this.stmt('SELECT def FROM dna_def WHERE hash = ?').get(toBuf(hash)) as { def: Buffer } | undefined
    return row === undefined ? undefined : u8(row.def) ?? undefined
  }

  listDnaHashes (): Uint8Array[] {
    return (this.stmt('SELECT hash FROM dna_def').all() as Array<{ hash: Buffer }>).map(r => u8(r.hash)!)
  }

  putApp (row: { id: string, agent: Uint8Array, def: Uint8Array, status: string, disabled_reason: Uint8Array | null, installed_at: number }): void {
    this.stmt(`INSERT INTO app (id, agent, def, status, disabled_reason, installed_at) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT(id) DO UPDATE SET agent = excluded.agent, def = excluded.def, status = excluded.status, disabled_reason = excluded.disabled_reason`)
      .run(row.id, toBuf(row.agent), toBuf(row.def), row.status, toBuf(row.disabled_reason), row.installed_at)
  }

  listApps (): Array<{ id: string, agent: Uint8Array, def: Uint8Array, status: string, disabled_reason: Uint8Array | null, installed_at: number }> {
    return (this.stmt('SELECT * FROM app ORDER BY installed_at, id').all() as Array<Record<string, unknown>>).map(r => rowU8(r) as never)
  }

  deleteApp (id: string): void {
    this.stmt('DELETE FROM app WHERE id = ?').run(id)
  }

  putAppInterface (port: number, allowedOrigins: string, installedAppId: string | null): void {
    this.stmt('INSERT OR REPLACE INTO app_interface (port, allowed_origins, installed_app_id) VALUES (?, ?, ?)').run(port, allowedOrigins, installedAppId)
  }

  listAppInterfaces (): Array<{ port: number, allowed_origins: string, installed_app_id: string | null }> {
    return this.stmt('SELECT port, allowed_origins, installed_app_id FROM app_interface ORDER BY port').all() as never
  }

  deleteAppInterface (port: number): void {
    this.stmt('DELETE FROM app_interface WHERE port = ?').run(port)
  }

  // -- source chain ------------------------------------------------------------------------

  insertChainAction (row: ChainActionRow): void {
    this.stmt(`INSERT INTO chain_action (dna, author, seq, hash, type, timestamp, entry_hash, entry_type, action, signature)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(toBuf(row.dna), toBuf(row.author), row.seq, toBuf(row.hash), row.type, row.timestamp, toBuf(row.entry_hash), row.entry_type, toBuf(row.action), toBuf(row.signature))
  }

  /** The hash of a chain's newest action (no row to copy, no action to decode). */
  chainHeadHash (dna: Uint8Array, author: Uint8Array): Uint8Array | undefined {
    const row = this.stmt('SELECT hash FROM chain_action WHERE dna = ? AND author = ? ORDER BY seq DESC LIMIT 1').get(toBuf(dna), toBuf(author)) as { hash: Buffer } | undefined
    return row === undefined ? undefined : u8(row.hash) ?? undefined
  }

  chainHead (dna: Uint8Array, author: Uint8Array): ChainActionRow | undefined {
    return rowU8(this.stmt('SELECT * FROM chain_action WHERE dna = ? AND author = ? ORDER BY seq DESC LIMIT 1').get(toBuf(dna), toBuf(author)) as ChainActionRow | undefined)
  }

  chainActions (dna: Uint8Array, author: Uint8Array, opts: { start?: number, end?: number, type?: string, entryType?: string, descending?: boolean } = {}): ChainActionRow[] {
    const rows = this.stmt(`SELECT * FROM chain_action WHERE dna = ? AND author = ? AND seq >= ? AND seq <= ?
      AND (? IS NULL OR type = ?) AND (? IS NULL OR entry_type = ?) ORDER BY seq ${opts.descending === true ? 'DESC' : 'ASC'}`)
      .all(toBuf(dna), toBuf(author), opts.start ?? 0, opts.end ?? Number.MAX_SAFE_INTEGER, opts.type ?? null, opts.type ?? null, opts.entryType ?? null, opts.entryType ?? null) as ChainActionRow[]
    return rows.map(r => rowU8(r)!)
  }

  chainActionByHash (hash: Uint8Array): ChainActionRow | undefined {
    return rowU8(this.stmt('SELECT * FROM chain_action WHERE hash = ?').get(toBuf(hash)) as ChainActionRow | undefined)
  }

  putEntry (dna: Uint8Array, hash: Uint8Array, blob: Uint8Array, isPrivate: boolean): void {
    this.stmt('INSERT OR IGNORE INTO entry (dna, hash, blob, private) VALUES (?, ?, ?, ?)').run(toBuf(dna), toBuf(hash), toBuf(blob), isPrivate ? 1 : 0)
  }

  getEntry (dna: Uint8Array, hash: Uint8Array): { blob: Uint8Array, private: number } | undefined {
    return rowU8(this.stmt('SELECT blob, private FROM entry WHERE dna = ? AND hash = ?').get(toBuf(dna), toBuf(hash)) as { blob: Uint8Array, private: number } | undefined)
  }

  // -- DHT ---------------------------------------------------------------------------------

  insertOp (row: DhtOpRow): boolean {
    const info = this.stmt(`INSERT OR IGNORE INTO dht_op (dna, hash, type, basis, location, action_hash, author, stage, validation_status, when_integrated, authored)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(toBuf(row.dna), toBuf(row.hash), row.type, toBuf(row.basis), row.location, toBuf(row.action_hash), toBuf(row.author), row.stage, row.validation_status, row.when_integrated, row.authored)
    return info.changes > 0
  }

  opsByStage (dna: Uint8Array, stage: DhtOpRow['stage'], afterSeq = 0): Array<DhtOpRow & { seq: number }> {
    return (this.stmt('SELECT * FROM dht_op WHERE dna = ? AND stage = ? AND seq > ? ORDER BY seq').all(toBuf(dna), stage, afterSeq) as Array<DhtOpRow & { seq: number }>).map(r => rowU8(r)!)
  }

  insertDhtAction (row: DhtActionRow): void {
    this.stmt(`INSERT OR IGNORE INTO dht_action (dna, hash, author, seq, timestamp, type, entry_hash, original_action, deletes_action,
      base, target, link_add, zome_index, link_type, tag, action, signature, status)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(toBuf(row.dna), toBuf(row.hash), toBuf(row.author), row.seq, row.timestamp, row.type, toBuf(row.entry_hash), toBuf(row.original_action),
        toBuf(row.deletes_action), toBuf(row.base), toBuf(row.target), toBuf(row.link_add), row.zome_index, row.link_type, toBuf(row.tag),
        toBuf(row.action), toBuf(row.signature), row.status)
  }

  dhtAction (dna: Uint8Array, hash: Uint8Array): DhtActionRow | undefined {
    return rowU8(this.stmt('SELECT * FROM dht_action WHERE dna = ? AND hash = ?').get(toBuf(dna), toBuf(hash)) as DhtActionRow | undefined)
  }

  /** Valid actions that create or update the entry, oldest first. */
  dhtActionsForEntry (dna: Uint8Array, entryHash: Uint8Array): DhtActionRow[] {
    return (this.stmt("SELECT * FROM dht_action WHERE dna = ? AND entry_hash = ? AND status = 'Valid' ORDER BY timestamp, hash").all(toBuf(dna), toBuf(entryHash)) as DhtActionRow[]).map(r => rowU8(r)!)
  }

  dhtUpdates (dna: Uint8Array, original: Uint8Array): DhtActionRow[] {
    return (this.stmt("SELECT * FROM dht_action WHERE dna = ? AND original_action = ? AND status = 'Valid' ORDER BY timestamp, hash").all(toBuf(dna), toBuf(original)) as DhtActionRow[]).map(r => rowU8(r)!)
  }

  /** The newest valid, undeleted update of an action (latest timestamp, ties broken by the greater hash). */
  dhtLatestUpdate (dna: Uint8Array, original: Uint8Array): DhtActionRow | undefined {
    return rowU8(this.stmt(`SELECT * FROM dht_action u WHERE u.dna = ? AND u.original_action = ? AND u.status = 'Valid'
      AND NOT EXISTS (SELECT 1 FROM dht_action d WHERE d.dna = u.dna AND d.deletes_action = u.hash AND d.status = 'Valid')
      ORDER BY u.timestamp DESC, u.hash DESC LIMIT 1`).get(toBuf(dna), toBuf(original)) as DhtActionRow | undefined)
  }

  dhtDeletes (dna: Uint8Array, deleted: Uint8Array): DhtActionRow[] {
    return (this.stmt("SELECT * FROM dht_action WHERE dna = ? AND deletes_action = ? AND status = 'Valid' ORDER BY timestamp, hash").all(toBuf(dna), toBuf(deleted)) as DhtActionRow[]).map(r => rowU8(r)!)
  }

  /** Live links: valid CreateLinks from a base of one type not removed by a valid DeleteLink. */
  dhtLinks (dna: Uint8Array, base: Uint8Array, zomeIndex: number, linkType: number): DhtActionRow[] {
    return (this.stmt(`SELECT * FROM dht_action c WHERE c.dna = ? AND c.base = ? AND c.zome_index = ? AND c.link_type = ?
      AND c.type = 'CreateLink' AND c.status = 'Valid'
      AND NOT EXISTS (SELECT 1 FROM dht_action d WHERE d.dna = c.dna AND d.link_add = c.hash AND d.status = 'Valid')
      ORDER BY c.timestamp, c.hash`).all(toBuf(dna), toBuf(base), zomeIndex, linkType) as DhtActionRow[]).map(r => rowU8(r)!)
  }


  /** Location and hash of every valid op this node holds for a DNA and summarizes (the sector summary). */
  validOps (dna: Uint8Array): Array<{ location: number, hash: Uint8Array }> {
    return (this.stmt(`SELECT o.location, o.hash FROM dht_op o JOIN dht_action a ON a.dna = o.dna AND a.hash = o.action_hash
      WHERE o.dna = ? AND o.validation_status = 'Valid' AND a.in_summary = 1`).all(toBuf(dna)) as Array<{ location: number, hash: Buffer }>)
      .map(r => ({ location: r.location, hash: u8(r.hash)! }))
  }

  /** Valid ops located in [lo, hi], in location order, up to `limit`. */
  validOpsInRange (dna: Uint8Array, lo: number, hi: number, limit: number): Array<{ location: number, hash: Uint8Array, action_hash: Uint8Array }> {
    return (this.stmt(`SELECT o.location, o.hash, o.action_hash FROM dht_op o JOIN dht_action a ON a.dna = o.dna AND a.hash = o.action_hash
      WHERE o.dna = ? AND o.location BETWEEN ? AND ? AND o.validation_status = 'Valid' AND a.in_summary = 1 ORDER BY o.location LIMIT ?`)
      .all(toBuf(dna), lo, hi, limit) as Array<{ location: number, hash: Buffer, action_hash: Buffer }>)
      .map(r => ({ location: r.location, hash: u8(r.hash)!, action_hash: u8(r.action_hash)! }))
  }

  /** Valid action hashes a node offers to sync (own records past a pruning horizon are held but not offered). */
  allValidHashes (dna: Uint8Array, limit = -1): Uint8Array[] {
    return (this.stmt("SELECT hash FROM dht_action WHERE dna = ? AND status = 'Valid' AND in_summary = 1 LIMIT ?").all(toBuf(dna), limit) as Array<{ hash: Buffer }>).map(r => u8(r.hash)!)
  }

  /** Any action (valid, rejected) this node knows by hash, or one waiting in limbo. */
  knows (dna: Uint8Array, hash: Uint8Array): boolean {
    return this.stmt('SELECT 1 FROM dht_action WHERE dna = ? AND hash = ? UNION ALL SELECT 1 FROM limbo WHERE dna = ? AND hash = ? LIMIT 1')
      .get(toBuf(dna), toBuf(hash), toBuf(dna), toBuf(hash)) !== undefined
  }

  /** The valid action of an author at a sequence number (to detect forks). */
  dhtActionAt (dna: Uint8Array, author: Uint8Array, seq: number): DhtActionRow | undefined {
    return rowU8(this.stmt("SELECT * FROM dht_action WHERE dna = ? AND author = ? AND seq = ? AND status = 'Valid' LIMIT 1").get(toBuf(dna), toBuf(author), seq) as DhtActionRow | undefined)
  }

  putLimbo (dna: Uint8Array, hash: Uint8Array, author: Uint8Array, seq: number, waitingFor: Uint8Array, record: Uint8Array, at: number): void {
    this.stmt('INSERT OR REPLACE INTO limbo (dna, hash, author, seq, waiting_for, record, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)').run(toBuf(dna), toBuf(hash), toBuf(author), seq, toBuf(waitingFor), toBuf(record), at)
  }

  limboCount (dna: Uint8Array, author?: Uint8Array): number {
    const row = author === undefined
      ? this.stmt('SELECT COUNT(*) AS n FROM limbo WHERE dna = ?').get(toBuf(dna))
      : this.stmt('SELECT COUNT(*) AS n FROM limbo WHERE dna = ? AND author = ?').get(toBuf(dna), toBuf(author))
    return (row as { n: number }).n
  }

  /** Records waiting for this hash. */
  limboWaitingFor (dna: Uint8Array, hash: Uint8Array): Array<{ hash: Uint8Array, record: Uint8Array }> {
    return (this.stmt('SELECT hash, record FROM limbo WHERE dna = ? AND waiting_for = ? ORDER BY seq').all(toBuf(dna), toBuf(hash)) as Array<Record<string, unknown>>).map(r => rowU8(r) as never)
  }

  /** Distinct hashes that records in limbo wait for. */
  limboNeeds (dna: Uint8Array, limit: number): Uint8Array[] {
    return (this.stmt('SELECT DISTINCT waiting_for FROM limbo WHERE dna = ? LIMIT ?').all(toBuf(dna), limit) as Array<{ waiting_for: Buffer }>).map(r => u8(r.waiting_for)!)
  }

  limbo (dna: Uint8Array, limit = 10_000): Array<{ hash: Uint8Array, record: Uint8Array, received_at: number }> {
    return (this.stmt('SELECT hash, record, received_at FROM limbo WHERE dna = ? ORDER BY author, seq LIMIT ?').all(toBuf(dna), limit) as Array<Record<string, unknown>>).map(r => rowU8(r) as never)
  }

  deleteLimbo (dna: Uint8Array, hash: Uint8Array): void {
    this.stmt('DELETE FROM limbo WHERE dna = ? AND hash = ?').run(toBuf(dna), toBuf(hash))
  }

  pruneLimbo (olderThan: number): number {
    return this.stmt('DELETE FROM limbo WHERE received_at < ?').run(olderThan).changes
  }

  putWarrant (dna: Uint8Array, hash: Uint8Array, warrantee: Uint8Array, kind: string, blob: Uint8Array, at: number): boolean {
    return this.stmt('INSERT OR IGNORE INTO warrant (dna, hash, warrantee, kind, blob, received_at) VALUES (?, ?, ?, ?, ?, ?)').run(toBuf(dna), toBuf(hash), toBuf(warrantee), kind, toBuf(blob), at).changes > 0
  }

  warrants (dna: Uint8Array | null): Array<{ dna: Uint8Array, hash: Uint8Array, warrantee: Uint8Array, kind: string, blob: Uint8Array }> {
    const rows = dna === null
      ? this.stmt('SELECT dna, hash, warrantee, kind, blob FROM warrant ORDER BY received_at').all()
      : this.stmt('SELECT dna, hash, warrantee, kind, blob FROM warrant WHERE dna = ? ORDER BY received_at').all(toBuf(dna))
    return (rows as Array<Record<string, unknown>>).map(r => rowU8(r) as never)
  }

  putReceipt (dna: Uint8Array, actionHash: Uint8Array, validator: Uint8Array, signature: Uint8Array): boolean {
    return this.stmt('INSERT OR IGNORE INTO receipt (dna, action_hash, validator, signature) VALUES (?, ?, ?, ?)').run(toBuf(dna), toBuf(actionHash), toBuf(validator), toBuf(signature)).changes > 0
  }

  receiptCount (dna: Uint8Array, actionHash: Uint8Array): number {
    return (this.stmt('SELECT COUNT(*) AS n FROM receipt WHERE dna = ? AND action_hash = ?').get(toBuf(dna), toBuf(actionHash)) as { n: number }).n
  }

  /** This author's actions with fewer than `target` receipts, oldest first. */
  underReceipted (dna: Uint8Array, author: Uint8Array, target: number, limit: number): ChainActionRow[] {
    return (this.stmt(`SELECT c.* FROM chain_action c WHERE c.dna = ? AND c.author = ?
      AND (SELECT COUNT(*) FROM receipt r WHERE r.dna = c.dna AND r.action_hash = c.hash) < ? ORDER BY c.seq LIMIT ?`)
      .all(toBuf(dna), toBuf(author), target, limit) as ChainActionRow[]).map(r => rowU8(r)!)
  }

  // -- capability grants and nonces --------------------------------------------------------

  insertCapGrant (row: CapGrantRow): void {
    this.stmt(`INSERT OR IGNORE INTO cap_grant (dna, author, action_hash, tag, access, secret, assignees, functions, created_at, revoked_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(toBuf(row.dna), toBuf(row.author), toBuf(row.action_hash), row.tag, row.access, toBuf(row.secret), toBuf(row.assignees), toBuf(row.functions), row.created_at, row.revoked_at)
  }

  /** Live grants of a cell usable with this secret (or unrestricted ones when secret is null). */
  capGrantsFor (dna: Uint8Array, author: Uint8Array, secret: Uint8Array | null): CapGrantRow[] {
    return (this.stmt(`SELECT * FROM cap_grant WHERE dna = ? AND author = ? AND revoked_at IS NULL
      AND (access = 'unrestricted' OR (? IS NOT NULL AND secret = ?))`).all(toBuf(dna), toBuf(author), toBuf(secret), toBuf(secret)) as CapGrantRow[]).map(r => rowU8(r)!)
  }

  listCapGrants (dna: Uint8Array, author: Uint8Array, includeRevoked: boolean): CapGrantRow[] {
    return (this.stmt('SELECT * FROM cap_grant WHERE dna = ? AND author = ? AND (? OR revoked_at IS NULL) ORDER BY created_at')
      .all(toBuf(dna), toBuf(author), includeRevoked ? 1 : 0) as CapGrantRow[]).map(r => rowU8(r)!)
  }

  revokeCapGrant (dna: Uint8Array, actionHash: Uint8Array, at: number): boolean {
    return this.stmt('UPDATE cap_grant SET revoked_at = ? WHERE dna = ? AND action_hash = ? AND revoked_at IS NULL').run(at, toBuf(dna), toBuf(actionHash)).changes > 0
  }

  /**
   * Record a nonce; false when this (agent, nonce) pair was seen before. The row is written with
   * the next write transaction (a call that commits writes its own), within `NONCE_WRITE_DELAY_MS`
   * otherwise, and at `dispose()`: a read-only call costs a lookup, not a transaction of its own.
   * Expired ones are pruned now and then.
   */
  useNonce (agent: Uint8Array, nonce: Uint8Array, expires: number): boolean {
    if (this.disposed) throw new DisposedError('ConductorStore')
    const a = toBuf(agent)!
    const n = toBuf(nonce)!
    const key = `${a.toString('latin1')}|${n.toString('latin1')}`
    if (this.owedNonces.has(key)) return false
    if (this.stmt('SELECT 1 FROM nonce WHERE agent = ? AND nonce = ?').get(a, n) !== undefined) return false
    this.owedNonces.set(key, { agent: Buffer.from(a), nonce: Buffer.from(n), expires })
    if (this.nonceTimer === undefined) {
      this.nonceTimer = setTimeout(() => {
        this.nonceTimer = undefined
        if (!this.disposed && this.owedNonces.size > 0) this.transaction(() => undefined)
      }, NONCE_WRITE_DELAY_MS)
      this.nonceTimer.unref()
    }
    return true
  }

  pruneNonces (now: number): number {
    return this.stmt('DELETE FROM nonce WHERE expires < ?').run(now).changes
  }

  // -- retention (see retention.ts) --------------------------------------------------------



  /** `underReceipted`, leaving out actions older than `since` (µs): what peers past a horizon would drop. */
  underReceiptedSince (dna: Uint8Array, author: Uint8Array, target: number, since: number, limit: number): ChainActionRow[] {
    return (this.stmt(`SELECT c.* FROM chain_action c WHERE c.dna = ? AND c.author = ? AND c.timestamp >= ?
      AND (SELECT COUNT(*) FROM receipt r WHERE r.dna = c.dna AND r.action_hash = c.hash) < ? ORDER BY c.seq LIMIT ?`)
      .all(toBuf(dna), toBuf(author), since, target, limit) as ChainActionRow[]).map(r => rowU8(r)!)
  }

  /**
   * Whether a record older than `horizon` (µs), arriving now, is one a retention pass would keep,
   * judged against what this node holds (a pass then decides for good): the newest action its
   * author has before the horizon, a record something held (or waiting in limbo) refers to, a
   * Create or CreateLink, the newest Update of its original, or the delete of a record held.
   * `laterArriving`: a later action of its author from before the horizon arrives with it, so it
   * is not its author's newest (judged by the store alone, every record of a batch taken in chain
   * order would look like the newest, and the node would keep what the author's own pass dropped).
   */
  keepsOld (dna: Uint8Array, r: Pick<DhtActionRow, 'hash' | 'author' | 'seq' | 'timestamp' | 'type' | 'original_action' | 'deletes_action' | 'link_add'>, horizon: number, laterArriving = false): boolean {
    const p = { dna: toBuf(dna), hash: toBuf(r.hash), author: toBuf(r.author), seq: r.seq, ts: r.timestamp, original: toBuf(r.original_action), target: toBuf(r.deletes_action ?? r.link_add), h: horizon }
    if (!laterArriving) {
      const anchor = this.stmt("SELECT NOT EXISTS (SELECT 1 FROM dht_action WHERE dna = @dna AND author = @author AND seq > @seq AND status = 'Valid' AND timestamp < @h) AS ok")
      if ((anchor.get(p) as { ok: number }).ok === 1) return true
    }
    const needed = this.stmt(`SELECT EXISTS (SELECT 1 FROM dht_action WHERE dna = @dna AND original_action = @hash AND status = 'Valid')
      OR EXISTS (SELECT 1 FROM dht_action WHERE dna = @dna AND deletes_action = @hash AND status = 'Valid')
      OR EXISTS (SELECT 1 FROM dht_action WHERE dna = @dna AND link_add = @hash AND status = 'Valid')
      OR EXISTS (SELECT 1 FROM dht_action WHERE dna = @dna AND target = @hash AND status = 'Valid')
      OR EXISTS (SELECT 1 FROM limbo WHERE dna = @dna AND waiting_for = @hash) AS ok`)
    if ((needed.get(p) as { ok: number }).ok === 1) return true
    switch (r.type) {
      case 'Create':
      case 'CreateLink':
        return true
      case 'Update': {
        const newer = this.stmt(`SELECT EXISTS (SELECT 1 FROM dht_action u WHERE u.dna = @dna AND u.original_action = @original AND u.status = 'Valid'
          AND u.timestamp >= @ts AND (u.timestamp > @ts OR u.hash > @hash)
          AND NOT EXISTS (SELECT 1 FROM dht_action d WHERE d.dna = u.dna AND d.deletes_action = u.hash AND d.status = 'Valid')) AS newer`)
        return (newer.get(p) as { newer: number }).newer === 0
      }
      case 'Delete':
      case 'DeleteLink':
        return this.stmt("SELECT 1 FROM dht_action WHERE dna = @dna AND hash = @target AND status = 'Valid'").get(p) !== undefined
      default:
        return false
    }
  }

  /**
   * Plan a retention pass over a DNA at `horizon` (µs), in one transaction, and return how many
   * records it will take out of the summary (`applyPrune` then does it in small steps). Of the
   * summarized valid records older than the horizon it keeps: each author's newest action
   * before the horizon (its chain head when it wrote nothing since), every Create and the newest
   * Update of each original that no valid Delete removed, live CreateLinks, whatever a kept or
   * newer record refers to (the original of an update, the target of a delete, a link's target),
   * and the deletes of what is kept. Rejected records, warrants and anything newer than the
   * horizon are never planned. A new plan replaces the DNA's unfinished one.
   */
  planPrune (dna: Uint8Array, horizon: number): number {
    this.db.exec(`CREATE TEMP TABLE IF NOT EXISTS prune_keep (hash BLOB PRIMARY KEY);
      CREATE TEMP TABLE IF NOT EXISTS prune_victim (dna BLOB NOT NULL, hash BLOB NOT NULL, entry_hash BLOB, own INTEGER NOT NULL, PRIMARY KEY (dna, hash))`)
    const p = { dna: toBuf(dna), h: horizon }
    const old = (a: string): string => `${a}.dna = @dna AND ${a}.in_summary = 1 AND ${a}.status = 'Valid' AND ${a}.timestamp < @h`
    const deleted = (a: string, col: string): string => `EXISTS (SELECT 1 FROM dht_action d WHERE d.dna = ${a}.dna AND d.${col} = ${a}.hash AND d.status = 'Valid')`
    const kept = (a: string): string => `EXISTS (SELECT 1 FROM temp.prune_keep k WHERE k.hash = ${a}.hash)`
    const survivor = (col: string): string => `EXISTS (SELECT 1 FROM dht_action r WHERE r.dna = a.dna AND r.${col} = a.hash AND r.status = 'Valid' AND r.in_summary = 1 AND (r.timestamp >= @h OR ${kept('r')}))`
    return this.transaction(() => {
      this.stmt('DELETE FROM temp.prune_keep').run()
      this.stmt('DELETE FROM temp.prune_victim WHERE dna = ?').run(p.dna)
      // each author's newest action before the horizon
      this.stmt(`INSERT OR IGNORE INTO temp.prune_keep (hash) SELECT a.hash FROM
        (SELECT o.author, MAX(o.seq) AS seq FROM dht_action o WHERE ${old('o')} GROUP BY o.author) m
        JOIN dht_action a ON a.dna = @dna AND a.author = m.author AND a.seq = m.seq AND a.status = 'Valid'`).run(p)
      // live state: undeleted Creates, the newest undeleted Update of each original, live links
      this.stmt(`INSERT OR IGNORE INTO temp.prune_keep (hash) SELECT a.hash FROM dht_action a WHERE ${old('a')} AND (
        (a.type = 'Create' AND NOT ${deleted('a', 'deletes_action')})
        OR (a.type = 'CreateLink' AND NOT ${deleted('a', 'link_add')})
        OR (a.type = 'Update' AND NOT ${deleted('a', 'deletes_action')} AND NOT EXISTS (SELECT 1 FROM dht_action u WHERE u.dna = a.dna
          AND u.original_action = a.original_action AND u.status = 'Valid' AND u.timestamp >= a.timestamp AND (u.timestamp > a.timestamp OR u.hash > a.hash)
          AND NOT ${deleted('u', 'deletes_action')})))`).run(p)
      // what kept and newer records depend on, and the deletes of what is kept, to a fixed point
      const closure = this.stmt(`INSERT OR IGNORE INTO temp.prune_keep (hash) SELECT a.hash FROM dht_action a WHERE ${old('a')} AND NOT ${kept('a')} AND (
        ${survivor('original_action')} OR ${survivor('deletes_action')} OR ${survivor('link_add')} OR ${survivor('target')}
        OR (a.type = 'Delete' AND EXISTS (SELECT 1 FROM temp.prune_keep k WHERE k.hash = a.deletes_action))
        OR (a.type = 'DeleteLink' AND EXISTS (SELECT 1 FROM temp.prune_keep k WHERE k.hash = a.link_add)))`)
      for (let i = 0; i < 32 && closure.run(p).changes > 0; i++) { /* until nothing more is kept */ }
      const planned = this.stmt(`INSERT INTO temp.prune_victim (dna, hash, entry_hash, own)
        SELECT a.dna, a.hash, a.entry_hash, EXISTS (SELECT 1 FROM chain_action c WHERE c.hash = a.hash) FROM dht_action a WHERE ${old('a')} AND NOT ${kept('a')}`).run(p).changes
      this.stmt('DELETE FROM temp.prune_keep').run()
      return planned
    })
  }

  /**
   * Carry out at most `limit` records of a DNA's pruning plan, in one transaction: another
   * agent's record is deleted with its ops and the entries only it held; one of this node's own
   * chains stays, out of the summary (`in_summary = 0`). `more` says whether the plan has more.
   */
  applyPrune (dna: Uint8Array, limit: number): { deleted: Uint8Array[], excluded: Uint8Array[], removedOps: Array<{ location: number, hash: Uint8Array }>, more: boolean } {
    const out = { deleted: [] as Uint8Array[], excluded: [] as Uint8Array[], removedOps: [] as Array<{ location: number, hash: Uint8Array }>, more: false }
    const planned = this.db.prepare("SELECT 1 FROM sqlite_temp_master WHERE type = 'table' AND name = 'prune_victim'").get() !== undefined
    if (!planned) return out
    const d = toBuf(dna)
    return this.transaction(() => {
      const victims = this.stmt('SELECT hash, entry_hash, own FROM temp.prune_victim WHERE dna = ? LIMIT ?').all(d, limit) as Array<{ hash: Buffer, entry_hash: Buffer | null, own: number }>
      const entries = new Map<string, Buffer>()
      // the valid ops of a record that leaves the summary: the sector sums counted them
      const leaving = (hash: Buffer): void => {
        for (const r of this.stmt("SELECT location, hash FROM dht_op WHERE dna = ? AND action_hash = ? AND validation_status = 'Valid'").all(d, hash) as Array<{ location: number, hash: Buffer }>) {
          out.removedOps.push({ location: r.location, hash: u8(r.hash)! })
        }
      }
      for (const v of victims) {
        this.stmt('DELETE FROM temp.prune_victim WHERE dna = ? AND hash = ?').run(d, v.hash)
        if (v.own === 1) {
          if (this.stmt('UPDATE dht_action SET in_summary = 0 WHERE dna = ? AND hash = ? AND in_summary = 1').run(d, v.hash).changes > 0) {
            out.excluded.push(u8(v.hash)!)
            leaving(v.hash)
          }
          continue
        }
        // gone already (a new plan, another writer): nothing to take out of the summary
        if (this.stmt('DELETE FROM dht_action WHERE dna = ? AND hash = ?').run(d, v.hash).changes === 0) continue
        leaving(v.hash)
        this.stmt('DELETE FROM dht_op WHERE dna = ? AND action_hash = ?').run(d, v.hash)
        if (v.entry_hash !== null) entries.set(v.entry_hash.toString('hex'), v.entry_hash)
        out.deleted.push(u8(v.hash)!)
      }
      const orphan = this.stmt('DELETE FROM entry WHERE dna = @dna AND hash = @e AND NOT EXISTS (SELECT 1 FROM dht_action a WHERE a.dna = @dna AND a.entry_hash = @e)')
      for (const e of entries.values()) orphan.run({ dna: d, e })
      out.more = victims.length >= limit
      return out
    })
  }

  /**
   * Forget what this node holds for other agents (a session-only network): their records, ops
   * and entries, rejected ones included, and everything in limbo. Every local agent's source
   * chain and its records stay, and so do warrants (who is blocked) and receipts. Returns how
   * many records were forgotten.
   */
  forgetOthers (): number {
    return this.transaction(() => {
      this.stmt('DELETE FROM dht_op WHERE NOT EXISTS (SELECT 1 FROM chain_action c WHERE c.hash = dht_op.action_hash)').run()
      const n = this.stmt('DELETE FROM dht_action WHERE NOT EXISTS (SELECT 1 FROM chain_action c WHERE c.hash = dht_action.hash)').run().changes
      this.stmt('DELETE FROM limbo').run()
      this.stmt(`DELETE FROM entry WHERE NOT EXISTS (SELECT 1 FROM dht_action a WHERE a.dna = entry.dna AND a.entry_hash = entry.hash)
        AND NOT EXISTS (SELECT 1 FROM chain_action c WHERE c.dna = entry.dna AND c.entry_hash = entry.hash)`).run()
      return n
    })
  }

  /**
   * A consistent copy of the whole database in the file `destination` (SQLite's online backup,
   * step by step: writes through this connection meanwhile are carried into the copy).
   */
  async backup (destination: string): Promise<void> {
    if (this.disposed) throw new DisposedError('ConductorStore')
    await this.db.backup(destination)
  }

  dispose (): void {
    if (this.disposed) return
    if (this.nonceTimer !== undefined) clearTimeout(this.nonceTimer)
    this.nonceTimer = undefined
    if (this.owedNonces.size > 0) this.transaction(() => undefined)
    this.disposed = true
    this.stmts.clear()
    this.db.close()
  }
}
