/**
 * The HTTP API's bearer-token auth. Bound to a loopback address (127.0.0.0/8, ::1, `localhost`)
 * the API is open, as Ollama's is; bound to any other address every request needs
 * `Authorization: Bearer <token>` (else 401 `AuthenticationError`), except the dashboard's static
 * shell (`GET /`, `GET /dashboard/…`), which holds no data. The Host/Origin guard runs first.
 *
 * A token is valid when it is
 * - a line of the operator's token file (`--api-token-file`; `#` comments and blank lines skipped),
 * - issued by `flexnode keys token` (kept as sha256 digests in `<data-dir>/api-tokens.json`),
 * - or the node's local token, written at each start to `<data-dir>/api-token` (mode 0600) so
 *   the CLI on the same machine works.
 * Both files are read again when they change (mtime, size or inode), so a token issued or revoked
 * while the node runs counts at once. Tokens are compared as sha256 digests with
 * `crypto.timingSafeEqual`.
 *
 * ```ts
 * const auth = httpAuth({ tokenFile: '/etc/flexnode/tokens', issuedTokensFile: join(dataDir, ISSUED_TOKENS_FILE), localTokenFile: join(dataDir, API_TOKEN_FILE) }, log)
 * await auth.start()                         // reads the token file, writes the local token
 * await auth.check(req, 'GET', '/v1/models') // throws AuthenticationError without a valid token
 * const { token } = await issueToken(join(dataDir, ISSUED_TOKENS_FILE), { name: 'ci' })
 * ```
 */
import { timingSafeEqual } from 'node:crypto'
import { readFile, rm, stat } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { errorMessage } from '../errors.ts'
import type { ComponentLogger } from '../logger.ts'
import { hostName, isLoopbackName } from './browser-access.ts'
import { HttpApiError } from './openai.ts'
import { ApiTokenFileError, MAX_TOKEN_LENGTH, newToken, parseIssued, parseTokenFile, tokenDigest, writePrivate } from './tokens.ts'

export { API_TOKEN_FILE, ApiTokenFileError, ISSUED_TOKENS_FILE, issueToken, readIssuedTokens, revokeToken, UnknownTokenError, type IssuedToken } from './tokens.ts'

/** A request without a valid bearer token to a node that requires one. */
export class AuthenticationError extends HttpApiError {
  static override readonly name: string = 'AuthenticationError'
  override readonly status = 401
  override readonly type = 'authentication_error'
  override readonly code = 'invalid_api_key'
  /** no `Authorization: Bearer` header at all (else: a token that is not valid) */
  readonly missing: boolean

  constructor (missing: boolean) {
    super(missing
      ? 'this node requires an API token: send Authorization: Bearer <token> (flexnode keys token issues one)'
      : 'the API token is not valid')
    this.missing = missing
  }
}

/** True when a server bound to `host` needs tokens: any address but a loopback one. */
export function requiresAuth (host: string): boolean {
  return !isLoopbackName(hostName(host) ?? host.toLowerCase())
}

// ---------------------------------------------------------------------------------------------
// the server's check

/** A file's digests, read again when the file changes; a file that turns bad counts as empty (fail closed). */
function watchedDigests (path: string, parse: (text: string) => Buffer[], log: ComponentLogger, opts: { optional: boolean }): { load: () => Promise<void>, current: () => Promise<Buffer[]> } {
  let version = ''
  let digests: Buffer[] = []
  const refresh = async (strict: boolean): Promise<void> => {
    let v: string
    try {
      const s = await stat(path)
      v = `${s.ino}:${s.size}:${s.mtimeMs}`
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' && opts.optional) {
        version = 'absent'
        digests = []
        return
      }
      if (strict) throw new ApiTokenFileError(path, code === 'ENOENT' ? 'does not exist' : `cannot be read: ${code ?? errorMessage(err)}`)
      if (version !== 'gone') log.warn({ path, err: errorMessage(err) }, 'an API token file is gone: its tokens no longer count')
      version = 'gone'
      digests = []
      return
    }
    if (v === version) return
    try {
      digests = parse(await readFile(path, 'utf8'))
      version = v
    } catch (err) {
      if (strict) throw err instanceof ApiTokenFileError ? err : new ApiTokenFileError(path, `cannot be read: ${errorMessage(err)}`)
      log.warn({ path, err: errorMessage(err) }, 'an API token file cannot be used: its tokens no longer count')
      version = v
      digests = []
    }
  }
  return { load: async () => { await refresh(true) }, current: async () => { await refresh(false); return digests } }
}

export interface HttpAuthInit {
  /** the operator's token file (`--api-token-file`): one token a line; it must exist. @default none */
  tokenFile?: string
  /** tokens issued by `flexnode keys token` (`<data-dir>/api-tokens.json`); may not exist. @default none */
  issuedTokensFile?: string
  /** where the node writes its local token at start (mode 0600) and removes it at stop (`<data-dir>/api-token`). @default none: no local token */
  localTokenFile?: string
}

export interface HttpAuth {
  /** read the token file (ApiTokenFileError when it is missing or malformed) and write the local token */
  start: () => Promise<void>
  /** remove the local token */
  stop: () => Promise<void>
  /** throws AuthenticationError unless the request carries a valid token or is for the static shell */
  check: (req: IncomingMessage, method: string, path: string) => Promise<void>
}

/** `Bearer <token>`: the scheme case-insensitive (RFC 7235), a token of at most MAX_TOKEN_LENGTH characters. */
const BEARER = new RegExp(`^Bearer +(\\S{1,${MAX_TOKEN_LENGTH}}) *$`, 'i')

/** The dashboard's static shell holds no data: a browser loads it before it has a token. */
const isStaticShell = (method: string, path: string): boolean =>
  (method === 'GET' || method === 'HEAD') && (path === '/' || path.startsWith('/dashboard/'))

/** The bearer check of a server that requires tokens. */
export function httpAuth (init: HttpAuthInit, log: ComponentLogger): HttpAuth {
  const sources = [
    ...(init.tokenFile === undefined ? [] : [watchedDigests(init.tokenFile, text => parseTokenFile(init.tokenFile!, text).map(tokenDigest), log, { optional: false })]),
    ...(init.issuedTokensFile === undefined ? [] : [watchedDigests(init.issuedTokensFile, text => parseIssued(init.issuedTokensFile!, text).map(t => Buffer.from(t.sha256, 'hex')), log, { optional: true })])
  ]
  let local: Buffer | undefined

  const valid = async (token: string): Promise<boolean> => {
    const d = tokenDigest(token)
    let ok = false
    // every digest is compared: how long it takes does not say which one matched
    for (const known of [...(local === undefined ? [] : [local]), ...(await Promise.all(sources.map(async s => await s.current()))).flat()]) {
      if (timingSafeEqual(d, known)) ok = true
    }
    return ok
  }

  return {
    start: async () => {
      for (const s of sources) await s.load()
      if (init.localTokenFile !== undefined) {
        const token = newToken()
        await writePrivate(init.localTokenFile, `${token}\n`)
        local = tokenDigest(token)
      }
    },
    stop: async () => {
      local = undefined
      if (init.localTokenFile !== undefined) await rm(init.localTokenFile, { force: true })
    },
    check: async (req, method, path) => {
      if (isStaticShell(method, path)) return
      const header = req.headers.authorization
      const m = header === undefined ? null : BEARER.exec(header)
      if (m === null) throw new AuthenticationError(header === undefined)
      if (!await valid(m[1]!)) throw new AuthenticationError(false)
    }
  }
}
