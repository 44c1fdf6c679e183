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
 * A bad query value or an unknown parameter is `InvalidInputError` (400) naming it (`schemas.ts`).
 */
import { sendJson } from '../http/body.ts'
import { parseQuery } from '../http/input.ts'
import type { HttpRoutes, RequestContext } from '../http/types.ts'
import type { AuditService } from './index.ts'
import { auditListQuery } from './schemas.ts'
import type { AuditListOptions } from './types.ts'

function listOptions (ctx: RequestContext): AuditListOptions {
  const q = parseQuery(auditListQuery, ctx.req.url)
  const options: AuditListOptions = {}
  if (q.since !== undefined) options.since = q.since
  if (q.kind !== undefined) options.kind = q.kind
  if (q.after_seq !== undefined) options.afterSeq = q.after_seq
  if (q.limit !== undefined) options.limit = q.limit
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
