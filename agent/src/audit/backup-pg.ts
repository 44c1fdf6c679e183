/**
 * Backups in Postgres: one row of `node_backup` (migration 2 of `pg-schema.ts`) per archive —
 * `id` (the archive's sha256, so storing the same archive twice is one row), `node` (the agent
 * key), `created_at` (the manifest's), `size`, `sha256`, `data` (the whole archive, `bytea`).
 *
 * ```ts
 * const row = await storePostgresBackup('postgres://…/flexnode', archiveBytes)
 * const { row, data } = await readPostgresBackup('postgres://…/flexnode', { node: 'uhCAk…' }) // the newest of that node
 * await restoreBackup({ dataDir, from: data })
 * ```
 *
 * An archive is sent in one message and must fit a `bytea` (`MAX_POSTGRES_BACKUP_BYTES`); it is
 * read back in chunks, and its sha256 is checked against the row's as it streams.
 */
import { createHash } from 'node:crypto'
import pg from 'pg'
import { migrate, type PgQueryable } from './pg-schema.ts'
import { AuditSinkUnavailableError, InvalidAuditUrlError, redactUrl } from './types.ts'
import { verifyBackup } from './backup.ts'
import { BackupCorruptError, BackupNotFoundError, BackupTooLargeError, MAX_POSTGRES_BACKUP_BYTES, POSTGRES_READ_CHUNK_BYTES, type BackupManifest } from './backup-types.ts'

export interface PostgresBackupRow {
  id: string
  /** agent key (uhCAk…) */
  node: string
  /** ISO 8601 */
  created_at: string
  size: number
  sha256: string
}

/** Whether a `--to`/`--from` value names Postgres rather than a file. */
export const isPostgresUrl = (value: string): boolean => /^postgres(ql)?:\/\//i.test(value)

async function connect (url: string): Promise<pg.Client> {
  if (!isPostgresUrl(url)) throw new InvalidAuditUrlError(url, 'it must start with postgres:// or postgresql://')
  try {
    new URL(url)
  } catch {
    throw new InvalidAuditUrlError(url, 'it is not a URL')
  }
  const client = new pg.Client({ connectionString: url })
  // a connection lost while idle must not become an uncaught exception
  client.on('error', () => {})
  try {
    await client.connect()
  } catch (err) {
    await client.end().catch(() => undefined)
    throw new AuditSinkUnavailableError(url, err)
  }
  return client
}

async function withClient<T> (url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(url)
  try {
    return await fn(client)
  } finally {
    await client.end().catch(() => undefined)
  }
}

const rowOf = (r: Record<string, unknown>): PostgresBackupRow => ({
  id: String(r.id),
  node: String(r.node),
  created_at: (r.created_at instanceof Date ? r.created_at : new Date(String(r.created_at))).toISOString(),
  size: Number(r.size),
  sha256: String(r.sha256)
})

/**
 * Stores an archive (checked whole first: `BackupCorruptError` if it is not a sound backup) as a
 * `node_backup` row, creating or upgrading the schema. Errors: `BackupTooLargeError`,
 * `AuditSinkUnavailableError` (unreachable, refused), `AuditSchemaError` (a schema this node does
 * not know), `InvalidAuditUrlError`.
 */
export async function storePostgresBackup (url: string, archive: Uint8Array, options: { signal?: AbortSignal, limit?: number } = {}): Promise<PostgresBackupRow & { manifest: BackupManifest }> {
  const limit = options.limit ?? MAX_POSTGRES_BACKUP_BYTES
  if (archive.byteLength > limit) throw new BackupTooLargeError(archive.byteLength, limit)
  const manifest = await verifyBackup([archive], options)
  const sha256 = createHash('sha256').update(archive).digest('hex')
  const row: PostgresBackupRow = { id: sha256, node: manifest.agent, created_at: manifest.created_at, size: archive.byteLength, sha256 }
  return await withClient(url, async (client) => {
    await migrate(client as unknown as PgQueryable)
    options.signal?.throwIfAborted()
    await client.query('INSERT INTO node_backup (id, node, created_at, size, sha256, data) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING',
      [row.id, row.node, row.created_at, row.size, row.sha256, Buffer.from(archive.buffer, archive.byteOffset, archive.byteLength)])
    return { ...row, manifest }
  })
}

/** The stored backups (without their data), newest first; of one node when `node` is given. */
export async function listPostgresBackups (url: string, options: { node?: string } = {}): Promise<PostgresBackupRow[]> {
  return await withClient(url, async (client) => {
    await migrate(client as unknown as PgQueryable)
    const { rows } = await client.query('SELECT id, node, created_at, size, sha256 FROM node_backup WHERE ($1::text IS NULL OR node = $1) ORDER BY created_at DESC, id', [options.node ?? null])
    return rows.map(rowOf)
  })
}

/**
 * One stored backup: by `id`, else the newest of `node`, else the newest of the only node that has
 * backups there (several nodes' backups and neither given → `BackupNotFoundError` naming them).
 * `data` streams the archive in chunks over one connection (closed at the end, or when the
 * reader stops) and fails with `BackupCorruptError` when its bytes do not hash to the row's sha256.
 */
export async function readPostgresBackup (url: string, options: { id?: string, node?: string } = {}): Promise<{ row: PostgresBackupRow, data: AsyncIterable<Uint8Array> }> {
  const client = await connect(url)
  let handedOver = false
  try {
    await migrate(client as unknown as PgQueryable)
    const { rows } = await client.query(`SELECT id, node, created_at, size, sha256 FROM node_backup
      WHERE ($1::text IS NULL OR id = $1) AND ($2::text IS NULL OR node = $2) ORDER BY created_at DESC, id`, [options.id ?? null, options.node ?? null])
    const found = rows.map(rowOf)
    const where = `in ${redactUrl(url)}`
    if (found.length === 0) {
      throw new BackupNotFoundError(options.id !== undefined
        ? `no backup ${options.id}${options.node === undefined ? '' : ` of node ${options.node}`} ${where}`
        : options.node !== undefined ? `no backup of node ${options.node} ${where}` : `no backups ${where}`, options)
    }
    const nodes = [...new Set(found.map(r => r.node))]
    if (options.id === undefined && nodes.length > 1) {
      throw new BackupNotFoundError(`backups of ${nodes.length} nodes are ${where}: name one with --node (${nodes.join(', ')}) or a backup with --id`, options)
    }
    const row = found[0]!
    handedOver = true
    return { row, data: chunks(client, row) }
  } finally {
    if (!handedOver) await client.end().catch(() => undefined)
  }
}

async function * chunks (client: pg.Client, row: PostgresBackupRow): AsyncGenerator<Uint8Array> {
  try {
    const hash = createHash('sha256')
    let read = 0
    while (read < row.size) {
      const { rows } = await client.query('SELECT substring(data FROM $2 FOR $3) AS chunk FROM node_backup WHERE id = $1', [row.id, read + 1, POSTGRES_READ_CHUNK_BYTES])
      const chunk = rows[0]?.chunk as Buffer | undefined
      if (chunk === undefined || chunk.length === 0) throw new BackupCorruptError(`the stored backup ${row.id} ends after ${read} of its ${row.size} bytes`)
      read += chunk.length
      hash.update(chunk)
      if (read >= row.size) {
        const actual = hash.digest('hex')
        if (read !== row.size || actual !== row.sha256) throw new BackupCorruptError(`the stored backup ${row.id} does not match its sha256 (or size)`, { expected: row.sha256, actual })
      }
      yield chunk
    }
  } finally {
    await client.end().catch(() => undefined)
  }
}
