/**
 * The canonical encoding of an audit record, its hash and its signature.
 *
 * The hash is sha256 over the UTF-8 bytes of the record's canonical JSON: the object
 * `{actor, at, detail, kind, node, prev, seq, subject, trace_id, v: 1}` with keys sorted by UTF-16
 * code units at every level, no whitespace, strings and numbers as `JSON.stringify` writes them,
 * absent optional fields as `null` — for the values a record may hold (finite numbers, well-formed
 * strings) this is RFC 8785 (JCS). `id` and `signature` are not hashed; `id` is `<node>:<seq>`.
 * The signature is ed25519 by the node's agent key over the 32 raw bytes of the hash, base64.
 *
 * ```ts
 * const detail = canonicalDetail({ b: 1, a: [true, null] })   // '{"a":[true,null],"b":1}'
 * const hash = recordHash({ node, seq: 1, at, kind: 'pin', actor: null, subject: cid, detail, trace_id: null, prev: GENESIS_PREV })
 * ```
 */
import { createHash } from 'node:crypto'
import { KIND_PATTERN, MAX_DETAIL_BYTES, MAX_DETAIL_DEPTH, MAX_FIELD_LENGTH, RECORD_ENCODING_VERSION } from './constants.ts'
import { InvalidAuditEventError, type AuditEvent, type JsonObject } from './types.ts'

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
const CONTROL = /[\u0000-\u001f\u007f]/

function isPlain (v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

function enc (value: unknown, path: string, depth: number): string {
  switch (typeof value) {
    case 'string':
      if (LONE_SURROGATE.test(value)) throw new InvalidAuditEventError(path, 'holds a lone UTF-16 surrogate (not well-formed Unicode)')
      return JSON.stringify(value)
    case 'number':
      if (!Number.isFinite(value)) throw new InvalidAuditEventError(path, `must be a finite number, not ${String(value)}`)
      return JSON.stringify(value)
    case 'boolean':
      return value ? 'true' : 'false'
    case 'object': {
      if (value === null) return 'null'
      if (depth >= MAX_DETAIL_DEPTH) throw new InvalidAuditEventError(path, `nests deeper than ${MAX_DETAIL_DEPTH} levels`)
      if (Array.isArray(value)) {
        let out = '['
        for (let i = 0; i < value.length; i++) out += (i === 0 ? '' : ',') + enc(value[i] === undefined ? null : value[i], `${path}[${i}]`, depth + 1)
        return out + ']'
      }
      if (!isPlain(value)) throw new InvalidAuditEventError(path, 'must be JSON: a plain object, array, string, finite number, boolean or null')
      const keys = Object.keys(value).sort()
      let out = '{'
      let first = true
      for (const k of keys) {
        const v = value[k]
        if (v === undefined) continue
        if (LONE_SURROGATE.test(k)) throw new InvalidAuditEventError(`${path}.${k}`, 'key holds a lone UTF-16 surrogate')
        out += (first ? '' : ',') + JSON.stringify(k) + ':' + enc(v, `${path}.${k}`, depth + 1)
        first = false
      }
      return out + '}'
    }
    default:
      throw new InvalidAuditEventError(path, `must be JSON, not a ${typeof value}`)
  }
}

/** The canonical JSON of any JSON value (sorted keys, no whitespace). Throws `InvalidAuditEventError` for what is not JSON. */
export function canonicalJson (value: unknown, path = 'value'): string {
  return enc(value, path, 0)
}

/** The canonical JSON of an event's `detail`: a JSON object of at most `MAX_DETAIL_BYTES`. */
export function canonicalDetail (detail: unknown): string {
  if (!isPlain(detail)) throw new InvalidAuditEventError('detail', 'must be a JSON object')
  const text = enc(detail, 'detail', 0)
  if (text.length > MAX_DETAIL_BYTES || Buffer.byteLength(text) > MAX_DETAIL_BYTES) throw new InvalidAuditEventError('detail', `is larger than ${MAX_DETAIL_BYTES} bytes`)
  return text
}

function optionalField (value: unknown, field: string): string | null {
  if (value === undefined || value === null) return null
  if (typeof value !== 'string') throw new InvalidAuditEventError(field, 'must be a string or null')
  if (value.length > MAX_FIELD_LENGTH) throw new InvalidAuditEventError(field, `is longer than ${MAX_FIELD_LENGTH} characters`)
  if (CONTROL.test(value)) throw new InvalidAuditEventError(field, 'holds a control character')
  if (LONE_SURROGATE.test(value)) throw new InvalidAuditEventError(field, 'holds a lone UTF-16 surrogate')
  return value
}

/** An event checked at the boundary, its detail in canonical JSON. */
export interface CheckedEvent {
  kind: string
  actor: string | null
  subject: string | null
  detail: string
  trace_id: string | null
}

export function checkEvent (event: AuditEvent): CheckedEvent {
  if (typeof event !== 'object' || event === null) throw new InvalidAuditEventError('event', 'must be an object')
  if (typeof event.kind !== 'string' || !KIND_PATTERN.test(event.kind)) throw new InvalidAuditEventError('kind', `must match ${String(KIND_PATTERN)}`)
  return {
    kind: event.kind,
    actor: optionalField(event.actor, 'actor'),
    subject: optionalField(event.subject, 'subject'),
    detail: canonicalDetail(event.detail),
    trace_id: optionalField(event.trace_id, 'trace_id')
  }
}

/** What the hash covers, `detail` as canonical JSON text. */
export interface HashedFields {
  node: string
  seq: number
  at: number
  kind: string
  actor: string | null
  subject: string | null
  /** canonical JSON */
  detail: string
  trace_id: string | null
  prev: string
}

const str = (s: string | null): string => s === null ? 'null' : JSON.stringify(s)

/** The canonical encoding (keys in sorted order, written out directly: `detail` is canonical already). */
export function canonicalRecord (f: HashedFields): string {
  return `{"actor":${str(f.actor)},"at":${JSON.stringify(f.at)},"detail":${f.detail},"kind":${str(f.kind)},"node":${str(f.node)},"prev":${str(f.prev)},"seq":${JSON.stringify(f.seq)},"subject":${str(f.subject)},"trace_id":${str(f.trace_id)},"v":${RECORD_ENCODING_VERSION}}`
}

/** sha256 of the canonical encoding, 64 lowercase hex. */
export function recordHash (f: HashedFields): string {
  return createHash('sha256').update(canonicalRecord(f)).digest('hex')
}

/** `<node>:<seq>` */
export function recordId (node: string, seq: number): string {
  return `${node}:${seq}`
}

/** The detail of a stored record, parsed (it is canonical JSON text in SQLite and Postgres). */
export function parseDetail (text: string): JsonObject {
  return JSON.parse(text) as JsonObject
}
