/**
 * The Postgres schema of the audit sink (and of the node backups, `backup.ts`), created and
 * upgraded by numbered migrations. `flexnode_schema_version` lists the migrations applied; a
 * database with a version this node does not know (newer, or never ours) is refused with
 * `AuditSchemaError` rather than written to.
 *
 * ```ts
 * const client = new pg.Client({ connectionString: url })
 * await client.connect()
 * await migrate(client)          // { from: 0, to: 2 } the first time, { from: 2, to: 2 } after
 * ```
 *
 * Every migration runs in one transaction under a transaction-scoped advisory lock, so two nodes
 * starting against one fresh database do not both create the tables.
 */
import { AuditSchemaError } from './types.ts'

/** What `migrate` needs of a `pg` client: one connection (a `pg.Client` or a pool's client, never a `pg.Pool`). */
export interface PgQueryable {
  query: (text: string, values?: unknown[]) => Promise<{ rows: Array<Record<string, unknown>> }>
}

export interface PgMigration {
  version: number
  name: string
  sql: string
}

/** The table that records which migrations were applied. */
export const SCHEMA_VERSION_TABLE = 'flexnode_schema_version'

/** `pg_advisory_xact_lock` key of the migrations (an arbitrary constant: "flexnode" in ASCII, truncated). */
const MIGRATION_LOCK_KEY = 0x666c6578

/**
 * The migrations, in order. Never edit one that has shipped: add the next.
 *
 * 1. `audit_record`: one row per audit record. `detail` is the record's canonical JSON as text
 *    (jsonb would reorder keys and refuses `\u0000`; the hash is over the canonical text), `at` is
 *    µs since the Unix epoch, `prev`/`hash` are 64 lowercase hex, `signature` base64.
 * 2. `node_backup`: one row per backup archive of a node (`backup.ts`).
 */
export const PG_MIGRATIONS: readonly PgMigration[] = [
  {
    version: 1,
    name: 'audit_record',
    sql: `
CREATE TABLE audit_record (
  id        text PRIMARY KEY,
  node      text NOT NULL,
  seq       bigint NOT NULL,
  at        bigint NOT NULL,
  kind      text NOT NULL,
  actor     text,
  subject   text,
  detail    text NOT NULL,
  trace_id  text,
  prev      text NOT NULL,
  hash      text NOT NULL,
  signature text NOT NULL,
  UNIQUE (node, seq)
);
-- records arrive in time order: a BRIN index serves time ranges at a fraction of a b-tree's
-- cost per insert (two b-trees more halved the rows shipped per second)
CREATE INDEX audit_record_at ON audit_record USING brin (at);`
  },
  {
    version: 2,
    name: 'node_backup',
    sql: `
CREATE TABLE node_backup (
  id         text PRIMARY KEY,
  node       text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  size       bigint NOT NULL,
  sha256     text NOT NULL,
  data       bytea NOT NULL
);
CREATE INDEX node_backup_node_created ON node_backup (node, created_at);`
  }
]

/** The newest schema version this node knows. */
export const PG_SCHEMA_VERSION: number = PG_MIGRATIONS[PG_MIGRATIONS.length - 1]!.version

/**
 * The schema version of the database (0 when it has none), checked: a version this node does not
 * know, or a migration recorded under another name, is an `AuditSchemaError`.
 */
export async function schemaVersion (client: PgQueryable): Promise<number> {
  const exists = await client.query(`SELECT to_regclass('${SCHEMA_VERSION_TABLE}') IS NOT NULL AS present`)
  if (exists.rows[0]?.present !== true) return 0
  const { rows } = await client.query(`SELECT version, name FROM ${SCHEMA_VERSION_TABLE} ORDER BY version`)
  return checkApplied(rows)
}

function checkApplied (rows: Array<Record<string, unknown>>): number {
  let version = 0
  for (const row of rows) {
    const v = Number(row.version)
    const known = PG_MIGRATIONS.find(m => m.version === v)
    if (v > PG_SCHEMA_VERSION) {
      throw new AuditSchemaError(`the audit database has schema version ${v}, newer than this node knows (${PG_SCHEMA_VERSION}): upgrade flexnode, or point --audit-db at another database`, { found: v, supported: PG_SCHEMA_VERSION })
    }
    if (known === undefined || known.name !== row.name) {
      throw new AuditSchemaError(`the audit database has an unknown schema migration ${v} (${JSON.stringify(row.name)}), not one of flexnode's: it was not made by flexnode`, { found: v, supported: PG_SCHEMA_VERSION })
    }
    if (v !== version + 1) {
      throw new AuditSchemaError(`the audit database's schema migrations are not contiguous: ${v} follows ${version}`, { found: v, supported: PG_SCHEMA_VERSION })
    }
    version = v
  }
  return version
}

/**
 * Brings the database to {@link PG_SCHEMA_VERSION}: applies the migrations it lacks, in order, in
 * one transaction. A database at a version this node does not know → `AuditSchemaError`, and
 * nothing is changed; a migration that fails (a table of that name exists that is not ours) →
 * `AuditSchemaError` with the Postgres error as its cause, rolled back.
 */
export async function migrate (client: PgQueryable): Promise<{ from: number, to: number }> {
  await client.query('BEGIN')
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY])
    await client.query(`CREATE TABLE IF NOT EXISTS ${SCHEMA_VERSION_TABLE} (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`)
    const { rows } = await client.query(`SELECT version, name FROM ${SCHEMA_VERSION_TABLE} ORDER BY version`)
    const from = checkApplied(rows)
    for (const m of PG_MIGRATIONS) {
      if (m.version <= from) continue
      try {
        await client.query(m.sql)
      } catch (err) {
        throw new AuditSchemaError(`the audit database's schema migration ${m.version} (${m.name}) failed: ${err instanceof Error ? err.message : String(err)}`, { found: from, supported: PG_SCHEMA_VERSION }, { cause: err })
      }
      await client.query(`INSERT INTO ${SCHEMA_VERSION_TABLE} (version, name) VALUES ($1, $2)`, [m.version, m.name])
    }
    await client.query('COMMIT')
    return { from, to: PG_SCHEMA_VERSION }
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw err
  }
}
