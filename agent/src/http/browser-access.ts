/**
 * Browsers: a request whose `Host` is not a loopback name (`localhost`, 127.0.0.0/8, `[::1]`), the
 * address it arrived on or an allowed name gets 403 `host_not_allowed` (DNS rebinding); a POST
 * whose `Origin` names another host gets 403 `origin_not_allowed` (CSRF); requests without
 * `Origin` (curl, SDKs) are served.
 */
import type { IncomingMessage } from 'node:http'
import { isIP } from 'node:net'
import { HostNotAllowedError, OriginNotAllowedError } from './openai.ts'

/** The host name of a `Host` header (`name`, `name:port`, `[v6]:port`), lower-cased, without brackets or a trailing dot. */
export function hostName (header: string): string | undefined {
  const h = header.trim().toLowerCase()
  if (h.length === 0 || h.length > 300) return undefined
  let name: string
  if (h.startsWith('[')) {
    const end = h.indexOf(']')
    if (end < 0 || (end + 1 < h.length && !/^:\d{1,5}$/.test(h.slice(end + 1)))) return undefined
    name = h.slice(1, end)
  } else {
    const m = /^([^:]+)(:\d{1,5})?$/.exec(h)
    if (m === null) return undefined
    name = m[1]!
  }
  return name.endsWith('.') ? name.slice(0, -1) : name
}

/** An address without an IPv4-mapped IPv6 prefix (`::ffff:127.0.0.1` → `127.0.0.1`). */
const plainAddress = (a: string): string => a.toLowerCase().replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '')

/** `localhost`, 127.0.0.0/8 and ::1: names a page of another site can never resolve to by itself. */
export function isLoopbackName (name: string): boolean {
  if (name === 'localhost') return true
  const a = plainAddress(name)
  if (isIP(a) === 4) return a.startsWith('127.')
  return isIP(a) === 6 && (a === '::1' || a === '0:0:0:0:0:0:0:1')
}

/** The guard of a server bound to `host` that also answers to `allowed` names. */
export function browserAccessGuard (host: string, allowed: string[]): (req: IncomingMessage, method: string) => void {
  // the bound address, unless it is a wildcard (a request names the address it arrived on instead)
  const allowedHosts = new Set([...(['0.0.0.0', '::'].includes(host) ? [] : [host]), ...allowed].map(h => hostName(h) ?? h.toLowerCase()))

  /** A loopback name, the address the request arrived on, the bound address or a configured name. */
  const isAllowedHost = (name: string, req: IncomingMessage): boolean => {
    if (isLoopbackName(name) || allowedHosts.has(name)) return true
    const local = req.socket.localAddress
    return local !== undefined && isIP(plainAddress(name)) !== 0 && plainAddress(name) === plainAddress(local)
  }

  /** DNS rebinding (a foreign `Host`) and CSRF (a POST from a foreign `Origin`) are refused. */
  return (req, method) => {
    const hostHeader = req.headers.host
    // HTTP/1.1 requires Host (node answers 400 without it); an HTTP/1.0 client without one is no browser
    if (hostHeader !== undefined) {
      const name = hostName(hostHeader)
      if (name === undefined || !isAllowedHost(name, req)) throw new HostNotAllowedError(hostHeader)
    }
    const origin = req.headers.origin
    if (origin === undefined || method === 'GET' || method === 'HEAD') return
    let name: string | undefined
    try {
      const url = new URL(origin)
      name = url.protocol === 'http:' || url.protocol === 'https:' ? hostName(url.host) : undefined
    } catch { /* `null` and other opaque origins */ }
    if (name === undefined || !isAllowedHost(name, req)) throw new OriginNotAllowedError(origin)
  }
}
