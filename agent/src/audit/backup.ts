/**
 * Backup and restore of a node: its source chains (the conductor database, a consistent online
 * snapshot), its keystore file exactly as it is on disk (encrypted; never decrypted here) and the
 * CIDs of the artifacts it pins, in one tar archive with a manifest (`backup-types.ts`).
 *
 * A restore rebuilds a data dir from an archive and never leaves half of one: it writes into a
 * temporary directory beside the target, checks every part's size and sha256, opens the database
 * (structure, schema), walks every source chain in it (sequence, previous-action hashes, action
 * hashes, signatures, entry hashes), and only then renames the directory into place. The pins go
 * to `<data-dir>/artifacts/restore-pins.json` (`readRestorePins`), which the artifacts service
 * re-pins from the mesh at start.
 *
 * ```ts
 * const backups = nodeBackup({})({ dataDir, agent, snapshot: (file) => conductor.backupDatabase(file), pins: () => artifacts.pins() })
 * await using archive = await backups.create()
 * await writeBackupFile(archive.stream(), '/backups/node.tar')
 * const restored = await restoreBackup({ dataDir: '/var/lib/flexnode-new', from: openBackupFile('/backups/node.tar') })
 * restored.chains // [{ dna: 'uhC0k…', author: 'uhCAk…', length: 42, head: 'uhCkk…' }]
 * ```
 */
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { chmod, link, mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { pipeline } from 'node:stream/promises'
import Database from 'better-sqlite3'
import { CID } from 'multiformats/cid'
import { DB_FILE } from '../conductor/constants.ts'
import { decodeAction, decodeEntry } from '../conductor/records.ts'
import { INSTALLED_APP_ID } from '../constants.ts'
import { dataDirService } from '../data-dir.ts'
import type { ComponentLogger } from '../logger.ts'
import { ConductorStore } from '../conductor/store.ts'
import { checkActionIntegrity, checkChainLink } from '../conductor/validation.ts'
import { errorMessage, FlexnodeError, InvalidInputError } from '../errors.ts'
import { decodeHash, encodeHash, hashEquals } from '../holo/hash.ts'
import { KEYSTORE_FILE, Keystore } from '../identity/keystore.ts'
import type { Action } from '../../../zomes-ts/hdk/index.ts'
import {
  BACKUP_FORMAT, BACKUP_PARTS, BACKUP_VERSION, BackupChainInvalidError, BackupCorruptError, BackupNotFoundError, BackupTargetExistsError, DB_PART, KEYSTORE_PART,
  MANIFEST_NAME, MAX_KEYSTORE_BYTES, MAX_MANIFEST_BYTES, MAX_PINS_BYTES, PINS_PART, PlaintextKeystoreError, RESTORE_PINS_PATH,
  RestoreTargetNotEmptyError, type BackupManifest, type BackupPart, type BackupPartName, type ChainSummary
} from './backup-types.ts'
import { TarReader, tarSize, tarStream, type ByteSource } from './tar.ts'

export * from './backup-types.ts'
export type { ByteSource } from './tar.ts'

export interface BackupInit {
  /**
   * include a keystore that is not encrypted (its private keys in clear); without it such a
   * backup is refused with `PlaintextKeystoreError`. @default false
   */
  includePlaintextKeystore?: boolean
  /** where the database snapshot is staged while the archive is read. @default the data dir */
  tmpDir?: string
}

export interface BackupComponents {
  /** the node's data dir (its `keystore.json` is read from it) */
  dataDir: string
  /** the node's agent key (its primary key) */
  agent: Uint8Array
  /** writes a consistent snapshot of the conductor database into a new file (`EmbeddedConductor.backupDatabase`) */
  snapshot: (destination: string) => Promise<void>
  /**
   * the CIDs this node pins (the artifacts service's `pins()`). Without it the archive holds no
   * pins and its manifest says `pins_included: false`.
   */
  pins?: () => Promise<string[]>
}

export interface BackupArchive extends AsyncDisposable {
  readonly manifest: BackupManifest
  /** bytes of the whole archive */
  readonly size: number
  /** the archive's bytes; each call streams it again from the staged parts */
  stream: (options?: { signal?: AbortSignal }) => AsyncIterable<Uint8Array>
  /** removes the staged snapshot. Idempotent */
  dispose: () => Promise<void>
}

export interface CreateBackupOptions {
  signal?: AbortSignal
  /** this backup's `includePlaintextKeystore`. @default the init's */
  includePlaintextKeystore?: boolean
}

export interface NodeBackup {
  /** takes a snapshot and stages the archive (dispose it when it has been read) */
  create: (options?: CreateBackupOptions) => Promise<BackupArchive>
}

const HEX64 = /^[0-9a-f]{64}$/

const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

async function sha256File (path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path, { signal })) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** The schema version SQLite keeps in the database header (`PRAGMA user_version`, bytes 60–63). */
async function headerUserVersion (path: string): Promise<number> {
  const fh = await open(path, 'r')
  try {
    const buf = Buffer.alloc(100)
    const { bytesRead } = await fh.read(buf, 0, 100, 0)
    if (bytesRead < 100 || buf.subarray(0, 16).toString('latin1') !== 'SQLite format 3\0') throw new FlexnodeError(`the database snapshot ${path} is not an SQLite database`)
    return buf.readUInt32BE(60)
  } finally {
    await fh.close()
  }
}

/** Whether a keystore file is the encrypted form (`{version: 1, encrypted: …}`). */
export function keystoreIsEncrypted (bytes: Uint8Array): boolean {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'))
  } catch {
    return false
  }
  return parsed !== null && typeof parsed === 'object' && 'encrypted' in parsed
}

/** CIDs checked (each parses as a CIDv0 or CIDv1), deduplicated and sorted. */
export function normalizePins (cids: readonly unknown[], field = 'pins'): string[] {
  if (!Array.isArray(cids)) throw new InvalidInputError(`${field} must be a list of CIDs`, { field })
  const out = new Set<string>()
  cids.forEach((cid, i) => {
    if (typeof cid !== 'string') throw new InvalidInputError(`${field}[${i}] must be a CID string`, { field })
    try {
      CID.parse(cid)
    } catch {
      throw new InvalidInputError(`${field}[${i}] is not a CID: ${JSON.stringify(cid.slice(0, 100))}`, { field })
    }
    out.add(cid)
  })
  return [...out].sort()
}

/** Backups of one node: `create()` snapshots its database and stages the archive. */
export function nodeBackup (init: BackupInit = {}): (components: BackupComponents) => NodeBackup {
  return (components: BackupComponents): NodeBackup => ({
    create: async (options = {}) => await createBackup({ ...init, includePlaintextKeystore: options.includePlaintextKeystore ?? init.includePlaintextKeystore }, components, options)
  })
}

async function createBackup (init: BackupInit, c: BackupComponents, options: { signal?: AbortSignal }): Promise<BackupArchive> {
  const { signal } = options
  const keystorePath = join(c.dataDir, KEYSTORE_FILE)
  const keystore = await readFile(keystorePath)
  if (keystore.length > MAX_KEYSTORE_BYTES) throw new FlexnodeError(`the keystore ${keystorePath} is larger than ${MAX_KEYSTORE_BYTES} bytes`)
  const encrypted = keystoreIsEncrypted(keystore)
  if (!encrypted && init.includePlaintextKeystore !== true) throw new PlaintextKeystoreError(keystorePath)
  const pins = c.pins === undefined ? [] : normalizePins(await c.pins())
  const pinsBytes = Buffer.from(JSON.stringify({ cids: pins }))
  signal?.throwIfAborted()

  const staging = await mkdtemp(join(init.tmpDir ?? c.dataDir, '.backup-'))
  const dispose = async (): Promise<void> => { await rm(staging, { recursive: true, force: true }) }
  try {
    await chmod(staging, 0o700)
    const dbPath = join(staging, DB_FILE)
    await c.snapshot(dbPath)
    signal?.throwIfAborted()
    const dbSize = (await stat(dbPath)).size
    const parts: BackupPart[] = [
      { name: DB_PART, size: dbSize, sha256: await sha256File(dbPath, signal) },
      { name: KEYSTORE_PART, size: keystore.length, sha256: sha256Hex(keystore) },
      { name: PINS_PART, size: pinsBytes.length, sha256: sha256Hex(pinsBytes) }
    ]
    const manifest: BackupManifest = {
      format: BACKUP_FORMAT,
      version: BACKUP_VERSION,
      agent: encodeHash(c.agent),
      created_at: new Date().toISOString(),
      schema_version: await headerUserVersion(dbPath),
      keystore_encrypted: encrypted,
      pins_included: c.pins !== undefined,
      pin_count: pins.length,
      parts
    }
    const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 2) + '\n')
    const mtime = Math.floor(Date.parse(manifest.created_at) / 1000)
    return {
      manifest,
      size: tarSize([manifestBytes.length, ...parts.map(p => p.size)]),
      stream: (o = {}) => tarStream([
        { name: MANIFEST_NAME, size: manifestBytes.length, content: [manifestBytes], mtime },
        { name: DB_PART, size: dbSize, content: createReadStream(dbPath, { signal: o.signal }), mtime },
        { name: KEYSTORE_PART, size: keystore.length, content: [keystore], mtime },
        { name: PINS_PART, size: pinsBytes.length, content: [pinsBytes], mtime }
      ], o),
      dispose,
      [Symbol.asyncDispose]: dispose
    }
  } catch (err) {
    await dispose()
    throw err
  }
}

/** The data dir has no keystore or no database: nothing to back up. */
export class NotADataDirError extends FlexnodeError {
  static override readonly name = 'NotADataDirError'
  readonly dataDir: string

  constructor (dataDir: string, reason: string) {
    super(`${dataDir} is not a flexnode data dir: ${reason}`)
    this.dataDir = dataDir
  }
}

/** The agent whose chains a database holds: its flexstack app's, else its only author. */
function databaseAgent (db: Database.Database, dataDir: string): Uint8Array {
  const app = db.prepare('SELECT agent FROM app WHERE id = ?').get(INSTALLED_APP_ID) as { agent: Buffer } | undefined
  if (app !== undefined) return new Uint8Array(app.agent)
  const authors = db.prepare('SELECT DISTINCT author FROM chain_action').all() as Array<{ author: Buffer }>
  if (authors.length !== 1) throw new NotADataDirError(dataDir, `its database has no ${INSTALLED_APP_ID} app and ${authors.length} source chain authors`)
  return new Uint8Array(authors[0]!.author)
}

/**
 * What a backup of a data dir needs when no node runs on it: the dir is locked for the time
 * (`DataDirInUseError` when a node holds it), the database is opened read-only and snapshotted,
 * the agent is its app's. There are no pins (the artifacts service is not running): the
 * manifest says `pins_included: false`. `close()` releases the database and the lock.
 */
export async function offlineBackupSource (dataDir: string, components: { logger: ComponentLogger }): Promise<BackupComponents & { close: () => Promise<void> }> {
  const path = resolve(dataDir)
  for (const file of [KEYSTORE_FILE, DB_FILE]) {
    if (!await exists(join(path, file))) throw new NotADataDirError(path, `it has no ${file}`)
  }
  const dir = dataDirService({ dataDir: path })(components)
  await dir.start()
  let db: Database.Database | undefined
  try {
    db = new Database(join(path, DB_FILE), { readonly: true, fileMustExist: true })
    const agent = databaseAgent(db, path)
    const open = db
    return {
      dataDir: path,
      agent,
      snapshot: async (destination) => { await open.backup(destination) },
      close: async () => {
        open.close()
        await dir.stop()
      }
    }
  } catch (err) {
    db?.close()
    await dir.stop()
    throw err
  }
}

// ---------------------------------------------------------------------------------------------
// reading an archive

function checkManifest (value: unknown): BackupManifest {
  const bad = (reason: string): BackupCorruptError => new BackupCorruptError(`manifest.json ${reason}`, { part: MANIFEST_NAME })
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad('is not a JSON object')
  const m = value as Record<string, unknown>
  if (m.format !== BACKUP_FORMAT) throw bad(`is not a flexnode backup manifest (format ${JSON.stringify(m.format)})`)
  if (m.version !== BACKUP_VERSION) throw bad(`has format version ${JSON.stringify(m.version)}; this flexnode reads version ${BACKUP_VERSION}`)
  try {
    decodeHash(m.agent as string, 'Agent')
  } catch {
    throw bad('has no valid agent key')
  }
  if (typeof m.created_at !== 'string' || Number.isNaN(Date.parse(m.created_at))) throw bad('has no valid created_at')
  if (!Number.isSafeInteger(m.schema_version) || (m.schema_version as number) < 1) throw bad('has no valid schema_version')
  if (typeof m.keystore_encrypted !== 'boolean' || typeof m.pins_included !== 'boolean') throw bad('lacks keystore_encrypted or pins_included')
  if (!Number.isSafeInteger(m.pin_count) || (m.pin_count as number) < 0) throw bad('has no valid pin_count')
  const parts = m.parts
  if (!Array.isArray(parts) || parts.length !== BACKUP_PARTS.length) throw bad(`must list the parts ${BACKUP_PARTS.join(', ')}`)
  parts.forEach((p: unknown, i) => {
    const part = (p ?? {}) as Partial<BackupPart>
    if (part.name !== BACKUP_PARTS[i]) throw bad(`part ${i} must be ${BACKUP_PARTS[i]}`)
    if (!Number.isSafeInteger(part.size) || part.size! < 0) throw bad(`part ${part.name} has no valid size`)
    if (typeof part.sha256 !== 'string' || !HEX64.test(part.sha256)) throw bad(`part ${part.name} has no valid sha256`)
  })
  return m as unknown as BackupManifest
}

/**
 * Reads an archive, checking it as it streams: the manifest first, then each part in order, each
 * handed to `onPart` while it is hashed; a size or sha256 that differs from the manifest, a
 * missing or extra member, a truncated stream: `BackupCorruptError`. `onPart` must tolerate that
 * the part it consumed turns out corrupt after it has read the last byte.
 */
async function readArchive (source: ByteSource, onPart: (part: BackupPart, body: AsyncIterable<Buffer>) => Promise<void>, signal?: AbortSignal): Promise<BackupManifest> {
  const tar = new TarReader(source)
  try {
    return await readMembers(tar, onPart, signal)
  } finally {
    await tar.close()
  }
}

async function readMembers (tar: TarReader, onPart: (part: BackupPart, body: AsyncIterable<Buffer>) => Promise<void>, signal?: AbortSignal): Promise<BackupManifest> {
  const first = await tar.next()
  if (first?.name !== MANIFEST_NAME) throw new BackupCorruptError(`the first member must be ${MANIFEST_NAME}, not ${first === undefined ? 'nothing' : JSON.stringify(first.name)}`, { part: MANIFEST_NAME })
  if (first.size > MAX_MANIFEST_BYTES) throw new BackupCorruptError(`${MANIFEST_NAME} is larger than ${MAX_MANIFEST_BYTES} bytes`, { part: MANIFEST_NAME })
  const chunks: Buffer[] = []
  for await (const chunk of tar.body()) chunks.push(Buffer.from(chunk))
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch (err) {
    throw new BackupCorruptError(`${MANIFEST_NAME} is not JSON: ${errorMessage(err)}`, { part: MANIFEST_NAME })
  }
  const manifest = checkManifest(parsed)
  for (const part of manifest.parts) {
    signal?.throwIfAborted()
    const entry = await tar.next()
    if (entry?.name !== part.name) throw new BackupCorruptError(`expected the member ${part.name}, found ${entry === undefined ? 'the end of the archive' : JSON.stringify(entry.name)}`, { part: part.name })
    if (entry.size !== part.size) throw new BackupCorruptError(`${part.name} has ${entry.size} bytes; the manifest says ${part.size}`, { part: part.name, expected: String(part.size), actual: String(entry.size) })
    const hash = createHash('sha256')
    const body = tar.body()
    await onPart(part, (async function * () {
      for await (const chunk of body) {
        signal?.throwIfAborted()
        hash.update(chunk)
        yield chunk
      }
    })())
    for await (const chunk of body) hash.update(chunk)
    const actual = hash.digest('hex')
    if (actual !== part.sha256) throw new BackupCorruptError(`the sha256 of ${part.name} does not match the manifest`, { part: part.name, expected: part.sha256, actual })
  }
  const extra = await tar.next()
  if (extra !== undefined) throw new BackupCorruptError(`unexpected member ${JSON.stringify(extra.name)} after the parts`, { part: extra.name })
  if (!await tar.trailingIsZero()) throw new BackupCorruptError('data follows the end of the archive')
  return manifest
}

async function collect (body: AsyncIterable<Buffer>, max: number, part: string): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.length
    if (size > max) throw new BackupCorruptError(`${part} is larger than ${max} bytes`, { part })
    chunks.push(Buffer.from(chunk))
  }
  return Buffer.concat(chunks)
}

/** The CIDs of a pins part. */
function parsePins (bytes: Buffer): string[] {
  try {
    const value = JSON.parse(bytes.toString('utf8')) as { cids?: unknown }
    return normalizePins(value.cids as unknown[], 'cids')
  } catch (err) {
    throw new BackupCorruptError(`${PINS_PART} is not {"cids": [CID…]}: ${errorMessage(err)}`, { part: PINS_PART, cause: err })
  }
}

/** The primary agent key of a keystore file, when it is plaintext (an encrypted one needs the passphrase). */
function plaintextPrimary (bytes: Buffer): string | undefined {
  try {
    const value = JSON.parse(bytes.toString('utf8')) as { version?: unknown, keys?: Array<{ agentPubKey?: unknown }>, encrypted?: unknown }
    if (value.version !== 1) throw new Error(`version ${JSON.stringify(value.version)}`)
    if (value.encrypted !== undefined) return undefined
    const key = value.keys?.[0]?.agentPubKey
    if (typeof key !== 'string') throw new Error('no keys')
    return key
  } catch (err) {
    throw new BackupCorruptError(`${KEYSTORE_PART} is not a keystore: ${errorMessage(err)}`, { part: KEYSTORE_PART, cause: err })
  }
}

/**
 * Checks a whole archive without writing anything: the manifest, every part's size and sha256,
 * the pins. Returns the manifest.
 */
export async function verifyBackup (source: ByteSource, options: { signal?: AbortSignal } = {}): Promise<BackupManifest> {
  let pins: Buffer | undefined
  const manifest = await readArchive(source, async (part, body) => {
    if (part.name === PINS_PART) pins = await collect(body, MAX_PINS_BYTES, PINS_PART)
  }, options.signal)
  if (parsePins(pins!).length !== manifest.pin_count) throw new BackupCorruptError(`${PINS_PART} does not hold the manifest's ${manifest.pin_count} CIDs`, { part: PINS_PART })
  return manifest
}

/** An archive file as a byte stream; a missing file (or a directory) is `BackupNotFoundError` when read. */
export async function * openBackupFile (path: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<Uint8Array> {
  try {
    yield * createReadStream(path, { signal: options.signal, highWaterMark: 1 << 20 })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'EISDIR') throw new BackupNotFoundError(`${code === 'ENOENT' ? 'there is no backup file' : 'the backup is a directory, not a file:'} ${resolve(path)}`)
    throw err
  }
}

/**
 * Writes an archive to a file: to a temporary file beside it first, synced (and with `verify`
 * read back and checked whole: `BackupCorruptError`), then put in place — without `force` only if
 * no file of that name exists (`BackupTargetExistsError`); never half.
 */
export async function writeBackupFile (source: AsyncIterable<Uint8Array>, path: string, options: { force?: boolean, verify?: boolean, signal?: AbortSignal } = {}): Promise<{ path: string, size: number, sha256: string, manifest?: BackupManifest }> {
  const target = resolve(path)
  if (options.force !== true && await exists(target)) throw new BackupTargetExistsError(target)
  const tmp = join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`)
  if (!await exists(dirname(target))) throw new InvalidInputError(`cannot write ${target}: the directory ${dirname(target)} does not exist`, { field: 'to' })
  const hash = createHash('sha256')
  let size = 0
  let manifest: BackupManifest | undefined
  try {
    await pipeline(async function * () {
      for await (const chunk of source) {
        hash.update(chunk)
        size += chunk.byteLength
        yield chunk
      }
    }, createWriteStream(tmp, { mode: 0o600, flags: 'wx' }), { signal: options.signal })
    await syncFile(tmp)
    if (options.verify === true) manifest = await verifyBackup(openBackupFile(tmp, options), options)
    if (options.force === true) {
      await rename(tmp, target)
    } else {
      try {
        await link(tmp, target)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new BackupTargetExistsError(target)
        throw err
      }
      await unlink(tmp)
    }
  } finally {
    await rm(tmp, { force: true })
  }
  return { path: target, size, sha256: hash.digest('hex'), ...manifest === undefined ? {} : { manifest } }
}

async function exists (path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

async function syncFile (path: string): Promise<void> {
  const fh = await open(path, 'r+')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

// ---------------------------------------------------------------------------------------------
// chains

/**
 * Walks every source chain in a conductor database, action by action: the stored row matches its
 * action (seq, author), the action hashes to its hash and its signature verifies against its
 * author, a stored entry hashes to the entry hash, and each action links to the one before
 * (seq + 1, prev_action, same author, no earlier timestamp) from the Dna action at seq 0.
 * A broken chain is `BackupChainInvalidError`.
 */
export function verifyChains (store: ConductorStore): ChainSummary[] {
  const db = store.db
  const out: ChainSummary[] = []
  const chains = db.prepare('SELECT DISTINCT dna, author FROM chain_action ORDER BY dna, author').all() as Array<{ dna: Buffer, author: Buffer }>
  const rows = db.prepare('SELECT seq, hash, action, signature, entry_hash FROM chain_action WHERE dna = ? AND author = ? ORDER BY seq')
  for (const { dna, author } of chains) {
    const dnaStr = encodeHash(dna)
    let prev: { hash: Uint8Array, action: Action } | null = null
    let length = 0
    for (const row of rows.iterate(dna, author) as IterableIterator<{ seq: number, hash: Buffer, action: Buffer, signature: Buffer, entry_hash: Buffer | null }>) {
      const fail = (reason: string): never => { throw new BackupChainInvalidError(dnaStr, row.seq, reason) }
      let action: Action
      try {
        action = decodeAction(row.action)
      } catch {
        return fail('the action does not decode')
      }
      if (action.header.action_seq !== row.seq) fail(`the row's seq ${row.seq} is not the action's ${action.header.action_seq}`)
      if (!hashEquals(action.header.author, author)) fail('the action is not by the chain\'s author')
      const stored = row.entry_hash === null ? undefined : store.getEntry(dna, row.entry_hash)
      const entry = stored === undefined ? null : decodeEntry(stored.blob)
      const integrity = checkActionIntegrity({ action, hash: row.hash, signature: row.signature }, entry)
      if (integrity.type !== 'Valid') fail(integrity.type === 'Invalid' ? integrity.reason : integrity.type)
      const linked = checkChainLink(action, prev)
      if (linked.type !== 'Valid') fail(linked.type === 'Invalid' ? linked.reason : linked.type)
      prev = { hash: row.hash, action }
      length++
    }
    if (prev !== null) out.push({ dna: dnaStr, author: encodeHash(author), length, head: encodeHash(prev.hash) })
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// restore

export interface RestoreInit {
  /** the data dir to create: it must not exist, or be an empty directory */
  dataDir: string
  /** the archive's bytes (`openBackupFile`, `readPostgresBackup`'s `data`, or `[bytes]`) */
  from: ByteSource
  /**
   * the keystore's passphrase: when given, the restored keystore is opened with it, which checks
   * the passphrase and that its primary key is the manifest's agent. @default not checked
   */
  passphrase?: string
}

export interface RestoreResult {
  /** the absolute path of the restored data dir */
  dataDir: string
  manifest: BackupManifest
  /** the node agent's source chains, validated */
  chains: ChainSummary[]
  /** CIDs left in `artifacts/restore-pins.json` for the artifacts service */
  pins: number
}

async function checkTarget (target: string): Promise<void> {
  let entries: string[]
  try {
    entries = await readdir(target)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return
    if (code === 'ENOTDIR') throw new RestoreTargetNotEmptyError(target, 'it is not a directory')
    throw err
  }
  if (entries.length > 0) throw new RestoreTargetNotEmptyError(target)
}

async function writePart (path: string, body: AsyncIterable<Buffer>, signal?: AbortSignal): Promise<void> {
  await pipeline(body, createWriteStream(path, { mode: 0o600, flags: 'wx' }), { signal })
  await syncFile(path)
}

/**
 * Rebuilds a data dir from an archive, all or nothing (see the file's doc). Errors:
 * `RestoreTargetNotEmptyError`, `BackupCorruptError` (also for a database SQLite finds damaged),
 * `BackupChainInvalidError`, `SchemaTooNewError` (a backup of a newer flexnode),
 * `WrongPassphraseError` (with `passphrase`), `AbortError`-like aborts by `signal`.
 */
export async function restoreBackup (init: RestoreInit, options: { signal?: AbortSignal } = {}): Promise<RestoreResult> {
  if (typeof init?.dataDir !== 'string' || init.dataDir.trim() === '') throw new InvalidInputError('dataDir must be a non-empty path', { field: 'dataDir' })
  const { signal } = options
  const target = resolve(init.dataDir)
  await checkTarget(target)
  const parent = dirname(target)
  await mkdir(parent, { recursive: true })
  const tmp = await mkdtemp(join(parent, `.${basename(target)}.restore-`))
  try {
    await chmod(tmp, 0o700)
    await mkdir(join(tmp, dirname(RESTORE_PINS_PATH)), { mode: 0o700 })
    let keystore: Buffer | undefined
    let pins: string[] = []
    const paths: Record<BackupPartName, string> = { [DB_PART]: join(tmp, DB_FILE), [KEYSTORE_PART]: join(tmp, KEYSTORE_FILE), [PINS_PART]: join(tmp, RESTORE_PINS_PATH) }
    const manifest = await readArchive(init.from, async (part, body) => {
      if (part.name === DB_PART) {
        await writePart(paths[DB_PART], body, signal)
      } else {
        const bytes = await collect(body, part.name === PINS_PART ? MAX_PINS_BYTES : MAX_KEYSTORE_BYTES, part.name)
        if (part.name === KEYSTORE_PART) keystore = bytes
        else pins = parsePins(bytes)
        await writePart(paths[part.name], (async function * () { yield bytes })(), signal)
      }
    }, signal)

    if (pins.length !== manifest.pin_count) throw new BackupCorruptError(`${PINS_PART} does not hold the manifest's ${manifest.pin_count} CIDs`, { part: PINS_PART })
    // the keystore: the form the manifest says, the manifest's agent when it can be read
    const primary = plaintextPrimary(keystore!)
    if ((primary === undefined) !== manifest.keystore_encrypted) throw new BackupCorruptError(`${KEYSTORE_PART} is ${primary === undefined ? '' : 'not '}encrypted, unlike what the manifest says`, { part: KEYSTORE_PART })
    if (primary !== undefined && primary !== manifest.agent) throw new BackupCorruptError(`the keystore's primary key ${primary} is not the manifest's agent ${manifest.agent}`, { part: KEYSTORE_PART })
    if (init.passphrase !== undefined && manifest.keystore_encrypted) {
      const ks = await Keystore.open({ dataDir: tmp, passphrase: init.passphrase })
      try {
        if (encodeHash(ks.primary.agentPubKey) !== manifest.agent) throw new BackupCorruptError(`the keystore's primary key is not the manifest's agent ${manifest.agent}`, { part: KEYSTORE_PART })
      } finally {
        ks.dispose()
      }
    }
    signal?.throwIfAborted()

    // the database: its structure and schema (ConductorStore's checks), then every source chain
    let chains: RestoreResult['chains']
    let store: ConductorStore
    try {
      store = new ConductorStore({ path: paths[DB_PART] })
    } catch (err) {
      if ((err as Error).name === 'DatabaseCorruptError') throw new BackupCorruptError(`${DB_PART} is damaged: ${errorMessage(err)}`, { part: DB_PART, cause: err })
      throw err
    }
    try {
      const all = verifyChains(store)
      if (!all.some(c => c.author === manifest.agent)) throw new BackupCorruptError(`the database holds no source chain of the manifest's agent ${manifest.agent}`, { part: DB_PART })
      chains = all.filter(c => c.author === manifest.agent)
    } finally {
      store.dispose()
    }
    await rm(`${paths[DB_PART]}-wal`, { force: true })
    await rm(`${paths[DB_PART]}-shm`, { force: true })
    signal?.throwIfAborted()

    // in place: a POSIX rename replaces an empty directory, and fails on one that is not
    try {
      await rename(tmp, target)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOTEMPTY' || code === 'EEXIST') throw new RestoreTargetNotEmptyError(target, 'something was written into it during the restore')
      throw err
    }
    return { dataDir: target, manifest, chains, pins: pins.length }
  } catch (err) {
    await rm(tmp, { recursive: true, force: true })
    throw err
  }
}

/**
 * The CIDs a restore left for the artifacts service (`<data-dir>/artifacts/restore-pins.json`),
 * or undefined when there is no such file. The service re-pins them from the mesh and then
 * removes the file (`clearRestorePins`).
 */
export async function readRestorePins (dataDir: string): Promise<string[] | undefined> {
  let bytes: Buffer
  try {
    bytes = await readFile(join(dataDir, RESTORE_PINS_PATH))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  return parsePins(bytes)
}

/** Removes the restored pins file once every CID in it is pinned again. */
export async function clearRestorePins (dataDir: string): Promise<void> {
  await rm(join(dataDir, RESTORE_PINS_PATH), { force: true })
}
