/**
 * Which `Origin` header a Conductor API interface admits.
 *
 * `allowed_origins` is `*` or a comma-separated list of origins, as for the real conductor, with
 * one difference: `*` admits every client that is not a browser, and no browser. Browsers send
 * `null` or a serialized origin `scheme://host[:port]` (`http(s)://…`, `file://`,
 * `chrome-extension://…`), and any web page the operator visits could otherwise open
 * `ws://127.0.0.1:<admin port>`. A browser origin is admitted only when it is listed, e.g.
 * `*,http://localhost:3000`. Non-browser clients choose their own origin string (`my-tool`).
 *
 * ```ts
 * originAllowed('*', 'my-tool')                                    // true
 * originAllowed('*', 'http://evil.example')                        // false
 * originAllowed('*,http://localhost:3000', 'http://localhost:3000') // true
 * ```
 * Dependency-free, so the CLI's flag parsing can use it.
 */
import { InvalidInputError } from '../errors.ts'

/** Longest origin accepted in an allowed-origins list. */
export const MAX_ORIGIN_LENGTH = 256

const SCHEME_RE = /^[a-z][a-z0-9+.-]*:/i
/** a serialized origin: scheme, `://`, a host (and port), nothing after it */
const SERIALIZED_ORIGIN_RE = /^[a-z][a-z0-9+.-]*:\/\/[^\s/?#@,]+$/i

/** `null`, or anything that starts with a URL scheme: what a browser (or an extension) sends. */
export function isBrowserOrigin (origin: string): boolean {
  const o = origin.trim()
  return o.toLowerCase() === 'null' || SCHEME_RE.test(o)
}

/** Why `origin` cannot be an entry of an allowed-origins list, or undefined when it can. */
export function originProblem (origin: string): string | undefined {
  if (origin.length === 0) return 'an origin must not be empty'
  if (origin.length > MAX_ORIGIN_LENGTH) return `an origin must be at most ${MAX_ORIGIN_LENGTH} characters`
  if (/[\s,\u0000-\u001f\u007f]/.test(origin)) return `${JSON.stringify(origin)} contains a space, comma or control character`
  if (origin === '*' || origin.toLowerCase() === 'null' || !SCHEME_RE.test(origin)) return undefined
  if (origin.toLowerCase() === 'file://') return undefined
  if (!SERIALIZED_ORIGIN_RE.test(origin)) return `${JSON.stringify(origin)} is not an origin: scheme://host[:port], without a path (e.g. http://localhost:3000)`
  return undefined
}

/** The entries of an `allowed_origins` string (`*` or origins, comma-separated); throws a message on a malformed one. */
export function parseAllowedOrigins (allowed: string): string[] {
  const entries = allowed.split(',').map(s => s.trim())
  for (const e of entries) {
    const problem = originProblem(e)
    if (problem !== undefined) throw new InvalidInputError(`allowed_origins must be "*" or a comma-separated list of origins: ${problem}`, { field: 'allowed_origins' })
  }
  return entries
}

/** Does an interface with these `allowed_origins` admit a client sending `origin`? */
export function originAllowed (allowed: string | readonly string[], origin: string): boolean {
  const entries = typeof allowed === 'string' ? allowed.split(',').map(s => s.trim()).filter(s => s.length > 0) : allowed
  if (entries.includes(origin)) return true
  return entries.includes('*') && !isBrowserOrigin(origin)
}
