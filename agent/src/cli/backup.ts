/**
 * `flexnode backup` and `flexnode restore` (the library is `audit/backup.ts`).
 *
 * ```
 * flexnode backup --to /backups/node.tar                 # a file (0600), written whole or not at all
 * flexnode backup --to postgres://user@db/flexnode       # a node_backup row
 * flexnode restore --from /backups/node.tar --data-dir /var/lib/flexnode-new
 * flexnode restore --from postgres://user@db/flexnode --node uhCAk… --data-dir ./new
 * ```
 * While a node runs on the data dir, `backup` asks it (`POST /v1/backup`): its database is
 * snapshotted online and its artifact pins are included. Without a running node the data dir is
 * locked for the time, the database copied read-only, and the backup holds no pins (a warning
 * says so). Every archive is checked whole before it is kept. `restore` refuses a non-empty
 * target, checks every sha256 and walks every source chain before the data dir appears; with
 * FLEXNODE_PASSPHRASE set it also checks the keystore opens with it.
 * Exit codes: 0 done, 1 an error (one line naming its type), 2 a usage error.
 */
import { resolve } from 'node:path'
import { UsageError } from '../config.ts'
import { FlexnodeError, errorMessage } from '../errors.ts'
import { createLogger } from '../logger.ts'
import { redactUrl } from '../audit/types.ts'
import {
  MAX_POSTGRES_BACKUP_BYTES, BackupTooLargeError, offlineBackupSource, openBackupFile, nodeBackup, restoreBackup, writeBackupFile,
  type BackupManifest, type RestoreResult
} from '../audit/backup.ts'
import { isPostgresUrl, readPostgresBackup, storePostgresBackup } from '../audit/backup-pg.ts'
import { BACKUP_PROOF_HEADER, dataDirProof } from '../audit/backup-routes.ts'
import { NodeApiError, printJson, readHttpPort } from './inference.ts'
import { counted, Progress } from './progress.ts'
import { NodeNotRunningError, readRuntimeInfo } from './runtime.ts'

export interface BackupOptions {
  dataDir: string
  /** a file path or a postgres:// URL */
  to: string
  force: boolean
  includePlaintextKeystore: boolean
  json: boolean
}

export interface RestoreOptions {
  from: string
  dataDir: string
  id?: string
  node?: string
  passphrase?: string
  json: boolean
}

/** `flexnode backup`'s options from its flags (commander's, `backup-command.ts`): the target's default, and what cannot be run. */
export function backupOptionsOf (v: { dataDir: string, to?: string, force?: boolean, includePlaintextKeystore?: boolean, json?: boolean }, now = new Date()): BackupOptions {
  const to = v.to ?? `flexnode-backup-${now.toISOString().replace(/[:.]/g, '-')}.tar`
  if (isPostgresUrl(to) && v.force === true) throw new UsageError('--force is for a file; a Postgres backup never replaces another', '--force')
  return {
    dataDir: resolve(v.dataDir),
    to: isPostgresUrl(to) ? to : resolve(to),
    force: v.force === true,
    includePlaintextKeystore: v.includePlaintextKeystore === true,
    json: v.json === true
  }
}

/** `flexnode restore`'s options from its flags; `passphrase` is FLEXNODE_PASSPHRASE's, when set. */
export function restoreOptionsOf (v: { from: string, dataDir: string, id?: string, node?: string, json?: boolean }, passphrase?: string): RestoreOptions {
  const postgres = isPostgresUrl(v.from)
  if (!postgres && (v.id !== undefined || v.node !== undefined)) throw new UsageError(`${v.id !== undefined ? '--id' : '--node'} is for a Postgres --from`, v.id !== undefined ? '--id' : '--node')
  return { from: postgres ? v.from : resolve(v.from), dataDir: resolve(v.dataDir), id: v.id, node: v.node, passphrase: passphrase === '' ? undefined : passphrase, json: v.json === true }
}

// ---------------------------------------------------------------------------------------------

async function bufferOf (source: AsyncIterable<Uint8Array>, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of source) {
    size += chunk.byteLength
    if (size > limit) throw new BackupTooLargeError(size, limit)
    chunks.push(Buffer.from(chunk))
  }
  return Buffer.concat(chunks)
}

interface Written { to: string, size: number, sha256: string, manifest: BackupManifest }

/** Keeps an archive: a file (checked whole before it is put in place) or a Postgres row (checked before it is sent). */
async function keep (archive: AsyncIterable<Uint8Array>, opts: BackupOptions): Promise<Written> {
  // progress on stderr, except for machine output
  const progress = opts.json ? undefined : Progress.onStderr(isPostgresUrl(opts.to) ? redactUrl(opts.to) : opts.to, 'backing up to')
  const source = progress === undefined ? archive : counted(archive, progress)
  try {
    return await keepArchive(source, opts)
  } finally {
    progress?.finish()
  }
}

async function keepArchive (source: AsyncIterable<Uint8Array>, opts: BackupOptions): Promise<Written> {
  if (isPostgresUrl(opts.to)) {
    const row = await storePostgresBackup(opts.to, await bufferOf(source, MAX_POSTGRES_BACKUP_BYTES))
    return { to: `${redactUrl(opts.to)} (node_backup ${row.id})`, size: row.size, sha256: row.sha256, manifest: row.manifest }
  }
  const file = await writeBackupFile(source, opts.to, { force: opts.force, verify: true })
  return { to: file.path, size: file.size, sha256: file.sha256, manifest: file.manifest! }
}

/** The running node's archive (`POST /v1/backup`), or undefined when no node runs on the data dir. */
async function fromRunningNode (opts: BackupOptions): Promise<AsyncIterable<Uint8Array> | undefined> {
  try {
    await readRuntimeInfo(opts.dataDir)
  } catch (err) {
    if (err instanceof NodeNotRunningError) return undefined
    throw err
  }
  const base = `http://127.0.0.1:${await readHttpPort(opts.dataDir)}`
  let res: Response
  try {
    res = await fetch(`${base}/v1/backup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [BACKUP_PROOF_HEADER]: await dataDirProof(opts.dataDir) },
      body: JSON.stringify({ include_plaintext_keystore: opts.includePlaintextKeystore })
    })
  } catch (err) {
    throw new NodeNotRunningError(opts.dataDir, `its HTTP API at ${base} does not answer: ${errorMessage((err as { cause?: unknown }).cause ?? err)}`)
  }
  if (!res.ok) {
    const text = await res.text().catch(() => '')
    let e: { message?: string, code?: string, param?: string, name?: string } | undefined
    try { e = (JSON.parse(text) as { error?: typeof e }).error } catch { /* not JSON */ }
    throw new NodeApiError(e?.message ?? (text.trim() || res.statusText), res.status, e?.code ?? null, e?.param ?? null, e?.name ?? null)
  }
  if (res.body === null) throw new FlexnodeError('the node answered the backup request without a body')
  return res.body as unknown as AsyncIterable<Uint8Array>
}

export async function backupCommand (opts: BackupOptions): Promise<number> {
  let written: Written
  const live = await fromRunningNode(opts)
  if (live !== undefined) {
    written = await keep(live, opts)
  } else {
    const source = await offlineBackupSource(opts.dataDir, { logger: createLogger({ level: 'silent' }) })
    try {
      await using archive = await nodeBackup({ includePlaintextKeystore: opts.includePlaintextKeystore })(source).create()
      written = await keep(archive.stream(), opts)
    } finally {
      await source.close()
    }
  }
  const m = written.manifest
  if (opts.json) {
    printJson({ to: written.to, size: written.size, sha256: written.sha256, manifest: m })
    return 0
  }
  if (!m.pins_included) console.error('flexnode: warning: no node runs on this data dir, so the backup holds no artifact pins (back up while the node runs to include them)')
  process.stdout.write(`backed up agent ${m.agent} to ${written.to}\n` +
    `  ${written.size} bytes, sha256 ${written.sha256}\n` +
    `  database ${m.parts[0]!.size} bytes (schema ${m.schema_version}), keystore ${m.keystore_encrypted ? 'encrypted' : 'NOT encrypted'}, ${m.pins_included ? `${m.pin_count} artifact pins` : 'no artifact pins'}\n`)
  return 0
}

export async function restoreCommand (opts: RestoreOptions): Promise<number> {
  let result: RestoreResult
  const progress = opts.json ? undefined : Progress.onStderr(isPostgresUrl(opts.from) ? redactUrl(opts.from) : opts.from, 'restoring from')
  const tracked = (from: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> => progress === undefined ? from : counted(from, progress)
  try {
    if (isPostgresUrl(opts.from)) {
      const { data } = await readPostgresBackup(opts.from, { id: opts.id, node: opts.node })
      result = await restoreBackup({ dataDir: opts.dataDir, from: tracked(data), passphrase: opts.passphrase })
    } else {
      result = await restoreBackup({ dataDir: opts.dataDir, from: tracked(openBackupFile(opts.from)), passphrase: opts.passphrase })
    }
  } finally {
    progress?.finish()
  }
  if (opts.json) {
    printJson(result)
    return 0
  }
  const m = result.manifest
  process.stdout.write(`restored agent ${m.agent} (backup of ${m.created_at}) into ${result.dataDir}\n` +
    result.chains.map(c => `  chain ${c.dna}: ${c.length} actions, head ${c.head}\n`).join('') +
    `  ${result.pins} artifact pins to re-pin from the mesh at start\n` +
    `start it with: flexnode start --data-dir ${result.dataDir}${m.keystore_encrypted ? ' (with its passphrase)' : ''}\n`)
  return 0
}
