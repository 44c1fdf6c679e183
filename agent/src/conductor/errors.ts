/**
 * Conductor errors. `ConductorApiError` carries one of Holochain's `ExternalApiWireError` kinds
 * and is what goes over the wire as `{type: "error", value: {type: kind, value: message}}`.
 */
import { FlexnodeError } from '../errors.ts'
import { assertHash, type HoloHash, type HoloHashType } from '../holo/hash.ts'

export type WireErrorKind =
  | 'internal_error'
  | 'deserialization'
  | 'dna_read_error'
  | 'ribosome_error'
  | 'activate_app'
  | 'zome_call_authentication_failed'
  | 'zome_call_unauthorized'
  | 'countersigning_session_error'

export class ConductorApiError extends FlexnodeError {
  static override readonly name = 'ConductorApiError'
  readonly kind: WireErrorKind

  constructor (kind: WireErrorKind, message: string, options?: ErrorOptions) {
    super(message, options)
    this.kind = kind
  }
}

export const deserializationError = (message: string): ConductorApiError => new ConductorApiError('deserialization', message)
export const internalError = (message: string, cause?: unknown): ConductorApiError => new ConductorApiError('internal_error', message, { cause })
export const ribosomeError = (message: string, cause?: unknown): ConductorApiError => new ConductorApiError('ribosome_error', message, { cause })
export const unauthorized = (message: string): ConductorApiError => new ConductorApiError('zome_call_unauthorized', message)
export const authenticationFailed = (message: string): ConductorApiError => new ConductorApiError('zome_call_authentication_failed', message)

/** A hash from an API request: a malformed one is the caller's `deserialization` error, not ours. */
export function requestHash (value: unknown, type: HoloHashType, field: string): HoloHash {
  try {
    return assertHash(value, type, field)
  } catch (err) {
    throw deserializationError(err instanceof Error ? err.message : String(err))
  }
}

/** An HDK function was called with arguments it cannot take, or when it cannot serve (after its call returned…). */
export class HdkCallError extends FlexnodeError {
  static override readonly name = 'HdkCallError'
}

/** A coordinator zome's `init` answered `Fail`: the cell does not start its zome calls. */
export class ZomeInitFailedError extends FlexnodeError {
  static override readonly name = 'ZomeInitFailedError'
  readonly reason: string

  constructor (reason: string) {
    super(`init failed: ${reason}`)
    this.reason = reason
  }
}

/** A commit whose op failed the integrity zome's or the system's validation. */
export class InvalidCommitError extends FlexnodeError {
  static override readonly name = 'InvalidCommitError'
  readonly reason: string

  constructor (reason: string) {
    super(`invalid commit: ${reason}`)
    this.reason = reason
  }
}

/** Thrown inside validation when a dependency is not held; the op waits instead of failing. */
export class UnresolvedDependenciesError extends FlexnodeError {
  static override readonly name = 'UnresolvedDependenciesError'
  readonly hashes: Uint8Array[]

  constructor (hashes: Uint8Array[]) {
    super(`unresolved dependencies: ${hashes.length}`)
    this.hashes = hashes
  }
}

export class BundleError extends FlexnodeError {
  static override readonly name = 'BundleError'
  readonly path?: string

  constructor (message: string, options?: ErrorOptions & { path?: string }) {
    super(message, options)
    this.path = options?.path
  }
}

export class AppNotFoundError extends FlexnodeError {
  static override readonly name = 'AppNotFoundError'
  readonly installedAppId: string

  constructor (installedAppId: string) {
    super(`app ${JSON.stringify(installedAppId)} is not installed`)
    this.installedAppId = installedAppId
  }
}

/**
 * The node's database failed its integrity check at open (or is not a database at all). Nothing
 * was written to it; the node does not start on it.
 */
export class DatabaseCorruptError extends FlexnodeError {
  static override readonly name = 'DatabaseCorruptError'
  readonly path: string
  /** what SQLite's check reported (the first few problems) */
  readonly problems: string[]

  constructor (path: string, problems: string[], options?: ErrorOptions) {
    const first = problems[0] ?? 'unknown damage'
    super(`the database ${path} is damaged (${first}${problems.length > 1 ? `, and ${problems.length - 1} more` : ''}). ` +
      'The node will not start on it: restore it from a backup (replace the file and delete its -wal and -shm files), ' +
      'or move it away and start with --new-chain to begin a new source chain under a new agent key', options)
    this.path = path
    this.problems = problems
  }
}

/**
 * The database was written by a newer flexnode (its schema version is above the one this code
 * knows). Nothing was written to it; run the newer release, or restore a backup of this one.
 */
export class SchemaTooNewError extends FlexnodeError {
  static override readonly name = 'SchemaTooNewError'
  readonly path: string
  /** the database's schema version */
  readonly found: number
  /** the newest version this code supports */
  readonly supported: number

  constructor (path: string, found: number, supported: number) {
    super(`the database ${path} has schema version ${found}, newer than the ${supported} this flexnode supports: it was written by a newer release. ` +
      'Nothing was changed; run that release (or newer) on it')
    this.path = path
    this.found = found
    this.supported = supported
  }
}

/** A schema migration failed; the upgrade was rolled back, the database is as it was. */
export class MigrationFailedError extends FlexnodeError {
  static override readonly name = 'MigrationFailedError'
  readonly path: string
  /** the version the database had (and still has) */
  readonly from: number
  /** the migration that failed */
  readonly version: number

  constructor (path: string, from: number, version: number, cause: unknown) {
    super(`upgrading the database ${path} from schema ${from} failed at migration ${version}: ${cause instanceof Error ? cause.message : String(cause)}. The upgrade was rolled back`, { cause })
    this.path = path
    this.from = from
    this.version = version
  }
}
