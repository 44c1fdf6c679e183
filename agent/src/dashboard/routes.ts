/**
 * The dashboard over the node's HTTP API.
 *
 * | route | out |
 * |---|---|
 * | `GET /` | the page (HTML shell: holds no data, so it is served without a token) |
 * | `GET /dashboard/app.js`, `GET /dashboard/app.css` | its script and style, shipped prebuilt in `static/` |
 * | `GET /v1/dashboard/snapshot` | the snapshot (`types.ts`) as JSON |
 * | `GET /v1/dashboard/events` | SSE: a snapshot on connect, then each changed one (checked every second), and the same one again every 15 s |
 *
 * ```sh
 * curl -s localhost:8080/v1/dashboard/snapshot | jq '.nodes[] | {name, status}'
 * curl -sN localhost:8080/v1/dashboard/events
 * # a browser: http://localhost:8080/   (a node that needs a token: http://host:8080/#token=<token>)
 * ```
 * The page keeps a `#token=` fragment in `sessionStorage`, removes it from the address bar, and
 * sends it as `Authorization: Bearer` on its data requests (it reads the event stream with
 * `fetch`, since `EventSource` cannot send headers).
 */
import { readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { sendJson } from '../http/body.ts'
import type { HttpRoutes, RequestContext } from '../http/types.ts'
import { DEFAULT_EVENTS_INTERVAL_MS, DEFAULT_EVENTS_KEEPALIVE_MS } from './constants.ts'
import type { Dashboard } from './types.ts'

export interface DashboardRoutesInit {
  /** how often an event stream looks for a changed snapshot, ms. @default 1000 */
  eventsIntervalMs?: number
  /** an unchanged snapshot is sent again after this long, ms. @default 15000 */
  keepaliveMs?: number
}

export interface DashboardRoutesComponents {
  dashboard: Dashboard
}

const STATIC = new URL('./static/', import.meta.url)

/** The page may load only its own script, style and data: no inline script, no other origin, no framing. */
const PAGE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache'
})

const FILES: Record<string, { file: string, type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/dashboard/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' }
}

export function dashboardRoutes (init: DashboardRoutesInit = {}): (components: DashboardRoutesComponents) => HttpRoutes {
  const intervalMs = init.eventsIntervalMs ?? DEFAULT_EVENTS_INTERVAL_MS
  const keepaliveMs = init.keepaliveMs ?? DEFAULT_EVENTS_KEEPALIVE_MS
  return ({ dashboard }) => {
    // read once, on first use: the files ship with the code and do not change while it runs
    const cache = new Map<string, Promise<Buffer>>()
    const file = (name: string): Promise<Buffer> => {
      let p = cache.get(name)
      if (p === undefined) {
        p = readFile(new URL(name, STATIC))
        cache.set(name, p)
        p.catch(() => { cache.delete(name) })
      }
      return p
    }
    const serve = (path: string) => async (ctx: RequestContext): Promise<void> => {
      const { file: name, type } = FILES[path]!
      const body = await file(name)
      ctx.res.writeHead(200, { ...PAGE_HEADERS, 'content-type': type, 'content-length': body.length })
      ctx.res.end(ctx.req.method === 'HEAD' ? undefined : body)
    }

    const events = async (ctx: RequestContext): Promise<void> => {
      const stream = ctx.eventStream()
      stream.open()
      let sent = ''
      let sentAt = 0
      while (!ctx.signal.aborted) {
        const snapshot = await dashboard.snapshot()
        // `generated_at` alone changes every time: it does not make a snapshot new
        const key = JSON.stringify({ ...snapshot, generated_at: '' })
        if (key !== sent || performance.now() - sentAt >= keepaliveMs) {
          stream.send(snapshot)
          sent = key
          sentAt = performance.now()
        }
        try {
          await sleep(intervalMs, undefined, { signal: ctx.signal })
        } catch {
          break
        }
      }
      await stream.end()
    }

    return {
      paths: {
        '/': { GET: serve('/') },
        '/dashboard/app.js': { GET: serve('/dashboard/app.js') },
        '/dashboard/app.css': { GET: serve('/dashboard/app.css') },
        '/v1/dashboard/snapshot': { GET: async (ctx) => { sendJson(ctx.res, 200, await dashboard.snapshot(), { 'cache-control': 'no-store' }) } },
        '/v1/dashboard/events': { GET: events }
      }
    }
  }
}
