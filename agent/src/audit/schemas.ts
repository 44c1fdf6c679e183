/**
 * What the audit routes take, as zod schemas: the query of `GET /v1/audit` and the optional body of
 * `POST /v1/backup`. Parsed with `parseQuery` / `parseFields` (`http/input.ts`): a bad value is
 * `InvalidInputError` (400) naming the parameter.
 *
 * ```ts
 * parseQuery(auditListQuery, '/v1/audit?kind=pin&since=2026-01-01T00:00:00Z&limit=10')
 * // → { kind: 'pin', since: 1767225600000000, limit: 10 }
 * ```
 */
import { z } from 'zod'
import { MAX_LIST_LIMIT } from './constants.ts'

/** `since` as µs since the epoch: an ISO time, or a whole number of µs; undefined when it is neither. */
export function sinceMicros (value: string): number | undefined {
  if (/^\d{1,17}$/.test(value)) return Number(value)
  const ms = Date.parse(value)
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(ms) || ms < 0 || ms * 1000 > Number.MAX_SAFE_INTEGER) return undefined
  return ms * 1000
}

/** A query value that is a whole number (at most 15 digits). */
const wholeNumber = z.string().regex(/^\d{1,15}$/, 'must be a whole number').transform(Number)

/** `GET /v1/audit`: unknown parameters are refused. */
export const auditListQuery = z.strictObject({
  /** only records at or after this time: an ISO time (2026-01-31T12:00:00Z) or µs since the Unix epoch */
  since: z.string().transform((value, ctx) => {
    const us = sinceMicros(value)
    if (us === undefined) ctx.issues.push({ code: 'custom', input: value, message: `must be an ISO time (2026-01-31T12:00:00Z) or µs since the Unix epoch, got ${JSON.stringify(value)}` })
    return us ?? z.NEVER
  }).optional(),
  /** only records of this kind (`zome_call`, `pin`…) */
  kind: z.string().optional(),
  /** only records with a seq greater than this */
  after_seq: wholeNumber.optional(),
  /** at most this many records. @default 1000 */
  limit: wholeNumber.pipe(z.number().min(1, `must be from 1 to ${MAX_LIST_LIMIT}`).max(MAX_LIST_LIMIT, `must be from 1 to ${MAX_LIST_LIMIT}`)).optional()
})

/** `POST /v1/backup` (the body is optional: `{}`). */
export const backupBody = z.strictObject({
  /** back up a keystore that is not encrypted (refused without it: `PlaintextKeystoreError`). @default false */
  include_plaintext_keystore: z.boolean({ error: 'must be a boolean' }).optional()
}, { error: 'must be a JSON object' })
