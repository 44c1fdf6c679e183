/**
 * The HTTP API's tokens on disk, apart from the server so the CLI reads them without loading it:
 * the operator's token file (one token a line), the tokens `flexnode keys token` issues (kept as
 * sha256 digests in `<data-dir>/api-tokens.json`, written atomically with mode 0600) and the
 * node's local token (`<data-dir>/api-token`).
 *
 * ```ts
 * const { token, entry } = await issueToken(join(dataDir, ISSUED_TOKENS_FILE), { name: 'ci' })
 * console.log(token)                        // fxn_…, shown once
 * await revokeToken(join(dataDir, ISSUED_TOKENS_FILE), entry.id)
 * ```
 */
import { createHash, randomBytes } from 'node:crypto'
import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { FlexnodeError, errorMessage } from '../errors.ts'

/** The node's local token, written at start when auth is on: `<data-dir>/api-token`. */
export const API_TOKEN_FILE = 'api-token'
/** Tokens issued by `flexnode keys token`, as digests: `<data-dir>/api-tokens.json`. */
export const ISSUED_TOKENS_FILE = 'api-tokens.json'
/** What a generated token starts with (so a leaked one is recognisable). */
const TOKEN_PREFIX = 'fxn_'
/** The shortest token a token file may hold. */
export const MIN_TOKEN_LENGTH = 16
/** The longest token accepted (a longer `Authorization` header is refused before hashing). */
export const MAX_TOKEN_LENGTH = 4096

/** A token name (`flexnode keys token --name`): what `--revoke` may name later. */
export const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** Why `name` is no token name, or undefined when it is one. */
export const tokenNameProblem = (name: string): string | undefined =>
  TOKEN_NAME.test(name) ? undefined : `--name must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit), got ${JSON.stringify(name)}`

/** The token file or the issued-tokens file cannot be read or is malformed. */
export class ApiTokenFileError extends FlexnodeError {
  static override readonly name = 'ApiTokenFileError'
  readonly path: string

  constructor (path: string, reason: string) {
    super(`the API token file ${path} ${reason}`)
    this.path = path
  }
}

/** `flexnode keys token --revoke` named no issued token. */
export class UnknownTokenError extends FlexnodeError {
  static override readonly name = 'UnknownTokenError'
  readonly token: string

  constructor (token: string) {
    super(`no issued API token has the id or name ${JSON.stringify(token)}`)
    this.token = token
  }
}

/** `flexnode keys token --name` named a token that exists. */
export class TokenNameTakenError extends FlexnodeError {
  static override readonly name = 'TokenNameTakenError'
  readonly tokenName: string

  constructor (tokenName: string) {
    super(`an API token named ${JSON.stringify(tokenName)} exists already: revoke it first or choose another name`)
    this.tokenName = tokenName
  }
}

/** `localhost`, 127.0.0.0/8 or `[::1]`: a URL's host name on this machine. */
export const isLoopbackUrlHost = (hostname: string): boolean =>
  hostname === 'localhost' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname) || hostname === '[::1]'

/** A new random token (`fxn_` and 32 random bytes, base64url). */
export function newToken (): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`
}

/** The sha256 digest a token is known by. */
export const tokenDigest = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest()

// ---------------------------------------------------------------------------------------------
// issued tokens: <data-dir>/api-tokens.json

/** One issued token as stored (never the token itself). */
export interface IssuedToken {
  /** `tok_` and 8 hex digits */
  id: string
  name: string
  /** hex sha256 of the token */
  sha256: string
  created_at: string
}

interface IssuedTokensFile { version: 1, tokens: IssuedToken[] }

const isIssuedToken = (v: unknown): v is IssuedToken => {
  if (v === null || typeof v !== 'object') return false
  const t = v as Record<string, unknown>
  return typeof t.id === 'string' && typeof t.name === 'string' && typeof t.created_at === 'string' &&
    typeof t.sha256 === 'string' && /^[0-9a-f]{64}$/.test(t.sha256)
}

export function parseIssued (path: string, text: string): IssuedToken[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new ApiTokenFileError(path, `is not valid JSON: ${errorMessage(err)}`)
  }
  const file = parsed as Partial<IssuedTokensFile> | null
  if (file === null || typeof file !== 'object' || file.version !== 1 || !Array.isArray(file.tokens)) throw new ApiTokenFileError(path, 'is malformed: expected {"version": 1, "tokens": [...]}')
  const bad = file.tokens.findIndex(t => !isIssuedToken(t))
  if (bad >= 0) throw new ApiTokenFileError(path, `is malformed: tokens[${bad}] needs id, name, sha256 (64 hex digits) and created_at`)
  return file.tokens
}

/** The tokens issued on a data dir (none when the file does not exist). */
export async function readIssuedTokens (path: string): Promise<IssuedToken[]> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw new ApiTokenFileError(path, `cannot be read: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`)
  }
  return parseIssued(path, text)
}

/** Write a file readable by its owner only, atomically (a temp file renamed over it). */
export async function writePrivate (path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    await writeFile(tmp, text, { mode: 0o600, flag: 'wx' })
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}

const writeIssued = async (path: string, tokens: IssuedToken[]): Promise<void> => {
  await writePrivate(path, `${JSON.stringify({ version: 1, tokens } satisfies IssuedTokensFile, null, 2)}\n`)
}

/** Issue a token: its digest is stored, the token itself is returned once. */
export async function issueToken (path: string, opts: { name?: string } = {}): Promise<{ token: string, entry: IssuedToken }> {
  const tokens = await readIssuedTokens(path)
  if (opts.name !== undefined && tokens.some(t => t.name === opts.name || t.id === opts.name)) throw new TokenNameTakenError(opts.name)
  const token = newToken()
  let id: string
  do id = `tok_${randomBytes(4).toString('hex')}`; while (tokens.some(t => t.id === id))
  const entry: IssuedToken = { id, name: opts.name ?? id, sha256: tokenDigest(token).toString('hex'), created_at: new Date().toISOString() }
  await writeIssued(path, [...tokens, entry])
  return { token, entry }
}

/** Revoke the issued tokens with this id or name; UnknownTokenError when there is none. */
export async function revokeToken (path: string, idOrName: string): Promise<IssuedToken[]> {
  const tokens = await readIssuedTokens(path)
  const revoked = tokens.filter(t => t.id === idOrName || t.name === idOrName)
  if (revoked.length === 0) throw new UnknownTokenError(idOrName)
  await writeIssued(path, tokens.filter(t => !revoked.includes(t)))
  return revoked
}

// ---------------------------------------------------------------------------------------------
// the operator's token file

/** The tokens of a token file: one a line, `#` comments and blank lines skipped. */
export function parseTokenFile (path: string, text: string): string[] {
  const tokens: string[] = []
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    if (/\s/.test(line)) throw new ApiTokenFileError(path, `line ${i + 1}: a token may not contain whitespace`)
    if (line.length < MIN_TOKEN_LENGTH) throw new ApiTokenFileError(path, `line ${i + 1}: a token must have at least ${MIN_TOKEN_LENGTH} characters`)
    if (line.length > MAX_TOKEN_LENGTH) throw new ApiTokenFileError(path, `line ${i + 1}: a token may have at most ${MAX_TOKEN_LENGTH} characters`)
    tokens.push(line)
  }
  return tokens
}
