/**
 * Backup and restore of a node: the archive's manifest, the typed errors, the defaults.
 *
 * An archive is a POSIX (ustar) tar file, readable with `tar -tvf`, with exactly these members in
 * this order: `manifest.json`, then each part the manifest lists, in its order
 * (`conductor.sqlite3`, `keystore.json`, `pins.json`). The manifest comes first so a reader checks
 * every part's size and sha256 as it streams by.
 *
 * ```jsonc
 * // manifest.json
 * { "format": "flexnode-backup", "version": 1, "agent": "uhCAk…", "created_at": "2026-12-02T08:00:00.000Z",
 *   "schema_version": 4, "keystore_encrypted": true, "pins_included": true, "pin_count": 2,
 *   "parts": [{ "name": "conductor.sqlite3", "size": 1234, "sha256": "<64 hex>" }, …] }
 * // pins.json
 * { "cids": ["bafy…", "Qm…"] }
 * ```
 */
import { FlexnodeError } from '../errors.ts'

/** `manifest.format` of every flexnode backup. */
export const BACKUP_FORMAT = 'flexnode-backup'
/** The archive format version this code writes and reads. */
export const BACKUP_VERSION = 1
export const MANIFEST_NAME = 'manifest.json'
export const DB_PART = 'conductor.sqlite3'
export const KEYSTORE_PART = 'keystore.json'
export const PINS_PART = 'pins.json'
/** The parts of a version-1 archive, in archive order. */
export const BACKUP_PARTS = [DB_PART, KEYSTORE_PART, PINS_PART] as const
export type BackupPartName = typeof BACKUP_PARTS[number]
/** Where a restore leaves the artifact pins for the artifacts service to re-pin from the mesh at start. */
export const RESTORE_PINS_PATH = 'artifacts/restore-pins.json'
/** Largest manifest a reader accepts. */
export const MAX_MANIFEST_BYTES = 1_048_576
/** Largest pins part (about 15,000 CIDs per MiB). */
export const MAX_PINS_BYTES = 64 * 1_048_576
/** Largest keystore part (the keystore's own limit). */
export const MAX_KEYSTORE_BYTES = 1_048_576
/**
 * Largest archive stored in Postgres: the row's `bytea` is sent in one message and held in
 * memory once (Postgres caps a value at 1 GB). Larger backups go to a file.
 */
export const MAX_POSTGRES_BACKUP_BYTES = 512 * 1_048_576
/** Bytes read from Postgres per query when a stored archive is read back. */
export const POSTGRES_READ_CHUNK_BYTES = 8 * 1_048_576

export interface BackupPart {
  name: BackupPartName
  /** bytes */
  size: number
  /** hex sha256 of the part's bytes */
  sha256: string
}

export interface BackupManifest {
  format: typeof BACKUP_FORMAT
  version: typeof BACKUP_VERSION
  /** the node's agent key (uhCAk…): its source chains are in the database part */
  agent: string
  /** ISO 8601 */
  created_at: string
  /** the conductor database's schema version in the snapshot */
  schema_version: number
  /** the keystore part is encrypted (a plaintext one is only included when asked for) */
  keystore_encrypted: boolean
  /** false when the backup was taken without a running node: the pins part is empty */
  pins_included: boolean
  /** CIDs in the pins part */
  pin_count: number
  parts: BackupPart[]
}

/** One source chain of the node's agent, as a restore found and validated it. */
export interface ChainSummary {
  /** the DNA hash (uhC0k…) */
  dna: string
  /** the chain's author (uhCAk…) */
  author: string
  /** actions in the chain */
  length: number
  /** the head's action hash (uhCkk…) */
  head: string
}

/**
 * An archive that is not a whole, unaltered flexnode backup: not a tar, truncated, a part whose
 * size or sha256 differs from the manifest, an unknown format version, a malformed part.
 */
export class BackupCorruptError extends FlexnodeError {
  static override readonly name = 'BackupCorruptError'
  /** the member at fault, when one is (`manifest.json`, `conductor.sqlite3`…) */
  readonly part?: string
  readonly expected?: string
  readonly actual?: string

  constructor (reason: string, options: ErrorOptions & { part?: string, expected?: string, actual?: string } = {}) {
    super(`the backup is corrupt: ${reason}`, options)
    this.part = options.part
    this.expected = options.expected
    this.actual = options.actual
  }
}

/** A restored source chain does not validate (a broken link, a bad hash or signature). */
export class BackupChainInvalidError extends FlexnodeError {
  static override readonly name = 'BackupChainInvalidError'
  readonly dna: string
  readonly seq: number
  readonly reason: string

  constructor (dna: string, seq: number, reason: string) {
    super(`the backup's source chain of DNA ${dna} is invalid at action ${seq}: ${reason}`)
    this.dna = dna
    this.seq = seq
    this.reason = reason
  }
}

/** `restore` was pointed at a data dir that exists and is not empty (or is not a directory). */
export class RestoreTargetNotEmptyError extends FlexnodeError {
  static override readonly name = 'RestoreTargetNotEmptyError'
  readonly dataDir: string

  constructor (dataDir: string, detail = 'it is not empty') {
    super(`cannot restore into ${dataDir}: ${detail}; restore into a new (or empty) directory`)
    this.dataDir = dataDir
  }
}

/** A backup file would overwrite an existing file (without `force`). */
export class BackupTargetExistsError extends FlexnodeError {
  static override readonly name = 'BackupTargetExistsError'
  readonly path: string

  constructor (path: string) {
    super(`${path} already exists; choose another file or pass --force to replace it`)
    this.path = path
  }
}

/**
 * The keystore is not encrypted: its seeds would leave the machine in clear. Start the node with
 * a passphrase (which encrypts it in place) or ask for it explicitly (`--include-plaintext-keystore`).
 */
export class PlaintextKeystoreError extends FlexnodeError {
  static override readonly name = 'PlaintextKeystoreError'
  readonly path: string

  constructor (path: string) {
    super(`the keystore ${path} is not encrypted: a backup would hold its private keys in clear. ` +
      'Set a passphrase (start the node with FLEXNODE_PASSPHRASE) or pass --include-plaintext-keystore')
    this.path = path
  }
}

/** An archive too large for a Postgres `bytea` row. */
export class BackupTooLargeError extends FlexnodeError {
  static override readonly name = 'BackupTooLargeError'
  readonly size: number
  readonly limit: number

  constructor (size: number, limit: number) {
    super(`the backup is ${size} bytes; Postgres holds at most ${limit} per backup: back up to a file instead`)
    this.size = size
    this.limit = limit
  }
}

/** No backup in Postgres matches (none at all, no such id, none of that node), or several nodes' do. */
export class BackupNotFoundError extends FlexnodeError {
  static override readonly name = 'BackupNotFoundError'
  readonly id?: string
  readonly node?: string

  constructor (message: string, options: { id?: string, node?: string } = {}) {
    super(message)
    this.id = options.id
    this.node = options.node
  }
}
