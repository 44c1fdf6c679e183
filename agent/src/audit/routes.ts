/**
 * The audit log over the node's HTTP API (read only).
 *
 * | route | query | out |
 * |---|---|---|
 * | `GET /v1/audit` | `since` (ISO time or µs since the epoch), `kind`, `after_seq`, `limit` (1–100000, default 1000) | `{node, records, head, next_after_seq}` |
 * | `GET /v1/audit/verify` | | `{node, ok, checked, last_seq, problems, head}` (the whole outbox) |
 * | `GET /v1/audit/stats` | | `{node, head, shipper: {shipped, depth, lag_ms, last_error, failures} \| null}` |
 *
 * ```sh
 * curl -s 'localhost:8080/v1/audit?kind=pin&since=2026-01-01T00:00:00Z'
 * curl -s localhost:8080/v1/audit/verify
 * ```
 * A bad query value is `InvalidInputError` (400) naming the parameter.
 */
import { InvalidInputError } from '../errors.ts'
import { sendJson } from '../http/body.ts'
import type { HttpRoutes, RequestContext } from '../http/types.ts'
import type { AuditService } from './index.ts'
import type { AuditListOptions } from './types.ts'

const QUERY_KEYS = ['since', 'kind', 'after_seq', 'limit']

/** `since` as µs since the epoch: an ISO time, or a whole number of µs. */
export function parseSince (value: string, field = 'since'): number {
  if (/^\d{1,17}$/.test(value)) return Number(value)
  const ms = Date.parse(value)
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(ms) || ms < 0 || ms * 1000 > Number.MAX_SAFE_INTEGER) throw new InvalidInputError(`${field} must be an ISO time (2026-01-31T12:00:00Z) or µs since the Unix epoch, got ${JSON.stringify(value)}`, { field })
  return ms * 1000
}

function whole (value: string, field: string): number {
  if (!/^\d{1,15}$/.test(value)) throw new InvalidInputError(`${field} must be a whole number, got ${JSON.stringify(value)}`, { field })
  return Number(value)
}

function listOptions (ctx: RequestContext): AuditListOptions {
  const q = new URL(ctx.req.url ?? '/', 'http://localhost').searchParams
  const options: AuditListOptions = {}
  for (const key of q.keys()) {
    if (!QUERY_KEYS.includes(key)) throw new InvalidInputError(`${key} is not a parameter of /v1/audit (known: ${QUERY_KEYS.join(', ')})`, { field: key })
  }
  const since = q.get('since')
  if (since !== null) options.since = parseSince(since)
  const kind = q.get('kind')
  if (kind !== null) options.kind = kind
  const after = q.get('after_seq')
  if (after !== null) options.afterSeq = whole(after, 'after_seq')
  const limit = q.get('limit')
  if (limit !== null) options.limit = whole(limit, 'limit')
  return options
}

export function auditRoutes (c: { audit: Pick<AuditService, 'log' | 'stats'> }): HttpRoutes {
  return {
    paths: {
      '/v1/audit': {
        GET: async (ctx) => {
          const records = c.audit.log.list(listOptions(ctx))
          const last = records[records.length - 1]
          sendJson(ctx.res, 200, { node: c.audit.log.node, records, head: c.audit.log.head(), next_after_seq: last?.seq ?? null })
        }
      },
      '/v1/audit/verify': {
        GET: async ({ res }) => {
          const head = c.audit.log.head()
          sendJson(res, 200, { node: c.audit.log.node, ...c.audit.log.verify(), head })
        }
      },
      '/v1/audit/stats': {
        GET: async ({ res }) => { sendJson(res, 200, { node: c.audit.log.node, ...c.audit.stats() }) }
      }
    }
  }
}
