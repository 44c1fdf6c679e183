/**
 * The audit capability's interfaces and typed errors: a tamper-evident audit log kept as an
 * outbox in the conductor's SQLite database (appended in the same transaction as the action it
 * records), hash-chained and signed by the node's agent key, and shipped to Postgres.
 *
 * ```ts
 * const record = log.append({ kind: 'pin', actor: agentB64, subject: cid, detail: { size } })
 * verifyChain(log.list(), publicKey).ok   // true
 * ```
 */
import { FlexnodeError } from '../errors.ts'

/** A JSON value, as the `detail` of an audit record holds it. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }
export type JsonObject = { [key: string]: JsonValue }

/**
 * What an audit record is about. The conductor hook derives the specific kinds from the entries a
 * zome call wrote; other capabilities may append their own kinds (`[a-z][a-z0-9_.-]*`).
 */
export type AuditKind =
  | 'zome_call' | 'allocation' | 'release' | 'artifact' | 'pin' | 'unpin' | 'policy' | 'warrant' | 'inference'
  | (string & Record<never, never>)

/** What a caller appends. */
export interface AuditEvent {
  kind: AuditKind
  /** who acted (an agent key in Holochain base64, a user, a peer id). @default null */
  actor?: string | null
  /** what was acted on (a CID, an allocation id, an action hash…). @default null */
  subject?: string | null
  /** the specifics: a JSON object (its keys are sorted when hashed) */
  detail: JsonObject
  /** the request's trace id, when it has one. @default null */
  trace_id?: string | null
}

/** One record of the chain, as stored in the outbox and shipped to Postgres. */
export interface AuditRecord {
  /** globally unique: `<node>:<seq>` */
  id: string
  /** the node's agent key, Holochain base64 (`uhCAk…`) */
  node: string
  /** 1, 2, 3… without gaps, per node */
  seq: number
  /** µs since the Unix epoch */
  at: number
  kind: AuditKind
  actor: string | null
  subject: string | null
  detail: JsonObject
  trace_id: string | null
  /** `hash` of the record before it (64 hex), 64 zeros for the first */
  prev: string
  /** sha256 (64 lowercase hex) of the record's canonical encoding (see `record.ts`) */
  hash: string
  /** base64 of the 64-byte ed25519 signature of the 32 raw bytes of `hash` by the node's agent key */
  signature: string
}

export interface AuditListOptions {
  /** only records at or after this time (µs since the Unix epoch) */
  since?: number
  kind?: AuditKind
  /** only records with a seq greater than this */
  afterSeq?: number
  /** @default 1000 (at most 100,000) */
  limit?: number
}

/** What `verify` found. `ok` is false when any problem is found; `problems` says which record and why. */
export interface AuditVerification {
  ok: boolean
  /** records checked */
  checked: number
  /** the highest seq seen (0 when none) */
  last_seq: number
  problems: AuditProblem[]
}

export interface AuditProblem {
  /** the seq of the record at fault (or the seq expected where one is missing) */
  seq: number
  id?: string
  reason: 'hash' | 'signature' | 'gap' | 'prev' | 'order' | 'node' | 'duplicate' | 'malformed'
  message: string
}

export interface AuditShipperStats {
  /** records shipped since this shipper started */
  shipped: number
  /** records in the outbox not yet shipped */
  depth: number
  /** age (ms) of the oldest unshipped record, 0 when the outbox is drained */
  lag_ms: number
  /** the last failure's message, null after a successful batch */
  last_error: string | null
  /** failed attempts in a row (0 after a success) */
  failures: number
}

// -----------------------------------------------------------------------------------------------
// typed errors

/** An audit event failed validation: nothing was written. */
export class InvalidAuditEventError extends FlexnodeError {
  static override readonly name = 'InvalidAuditEventError'
  readonly field: string
  constructor (field: string, message: string) {
    super(`audit event ${field}: ${message}`)
    this.field = field
  }
}

/**
 * The Postgres database's audit schema is not one this node knows: a newer version (written by a
 * newer flexnode), a version this node never had, or tables that are not ours.
 */
export class AuditSchemaError extends FlexnodeError {
  static override readonly name = 'AuditSchemaError'
  /** the version found in `flexnode_schema_version`, when there is one */
  readonly found?: number
  /** the newest version this node knows */
  readonly supported: number
  constructor (message: string, fields: { found?: number, supported: number }, options?: ErrorOptions) {
    super(message, options)
    this.found = fields.found
    this.supported = fields.supported
  }
}

/** Postgres could not be reached or refused the connection (the outbox keeps the records). */
export class AuditSinkUnavailableError extends FlexnodeError {
  static override readonly name = 'AuditSinkUnavailableError'
  /** the database URL without its password */
  readonly url: string
  /** the system or Postgres error code (`ECONNREFUSED`, `28P01`…), when there is one */
  readonly code?: string
  constructor (url: string, cause: unknown) {
    const code = (cause as { code?: unknown } | null)?.code
    const reason = cause instanceof Error ? cause.message : String(cause)
    super(`the audit database ${redactUrl(url)} is unavailable: ${reason === '' ? String(code ?? 'unknown error') : reason}`, { cause })
    this.url = redactUrl(url)
    this.code = typeof code === 'string' ? code : undefined
  }
}

/** The audit URL is not a `postgres://` or `postgresql://` URL. */
export class InvalidAuditUrlError extends FlexnodeError {
  static override readonly name = 'InvalidAuditUrlError'
  readonly url: string
  constructor (url: string, reason: string) {
    super(`the audit database URL ${JSON.stringify(redactUrl(url))} is not usable: ${reason}`)
    this.url = redactUrl(url)
  }
}

/** The URL with its password replaced by `***` (for messages and logs). */
export function redactUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString()
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@')
  }
}

/** The sink holds a different record under an id this node is shipping (a fork, or an edited row). */
export class AuditConflictError extends FlexnodeError {
  static override readonly name = 'AuditConflictError'
  readonly id: string
  constructor (id: string, ours: string, theirs: string) {
    super(`the audit database already holds a different record ${id} (hash ${theirs.slice(0, 16)}…, ours ${ours.slice(0, 16)}…): it was edited there, or another node ships under this node's key; shipping stops until it is resolved`)
    this.id = id
  }
}

/** A batch failed in Postgres for a reason other than the connection (the outbox keeps it). */
export class AuditShipError extends FlexnodeError {
  static override readonly name = 'AuditShipError'
  readonly code?: string
  constructor (message: string, cause: unknown) {
    const code = (cause as { code?: unknown } | null)?.code
    super(`shipping audit records failed: ${message}`, { cause })
    this.code = typeof code === 'string' ? code : undefined
  }
}
