/**
 * `flexnode keys show` and `flexnode keys token`: the node's identity and the HTTP API's tokens,
 * read from the data dir itself (the node need not run; a running node reads issued and revoked
 * tokens again at once).
 *
 * ```
 * flexnode keys show                      # agent key, peer id, keystore (path, encrypted or not)
 * flexnode keys token --name ci           # a new token, printed once: fxn_…
 * flexnode keys token --list --json       # the issued tokens (id, name, created_at), never the tokens
 * flexnode keys token --revoke ci         # by id or name; the node refuses it from now on
 * ```
 * Then `curl -H "Authorization: Bearer fxn_…" http://<host>:<port>/v1/models` against a node
 * bound to a non-loopback address (`--http-host 0.0.0.0`).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FlexnodeError, InvalidInputError, errorMessage } from '../errors.ts'
import { decodeHash } from '../holo/hash.ts'
import { issueToken, ISSUED_TOKENS_FILE, readIssuedTokens, revokeToken, tokenNameProblem, type IssuedToken } from '../http/tokens.ts'
import { KEYSTORE_FILE } from '../identity/keystore.ts'
import { peerIdFromAgentPubKey } from '../identity/peer-id.ts'
import { NodeNotRunningError, readRuntimeInfo, renderTable } from './runtime.ts'

/** The data dir has no keystore (no node was ever started on it). */
export class NoKeystoreError extends FlexnodeError {
  static override readonly name = 'NoKeystoreError'
  readonly dataDir: string

  constructor (dataDir: string) {
    super(`${dataDir} has no ${KEYSTORE_FILE}: start a node on it first (flexnode start --data-dir ${dataDir})`)
    this.dataDir = dataDir
  }
}

/** What `flexnode keys show` reports. */
export interface KeysReport {
  /** the node key (uhCAk…); null when the keystore is encrypted and no node runs on the data dir */
  agent_pub_key: string | null
  peer_id: string | null
  keystore: {
    path: string
    encrypted: boolean
    /** the passphrase's KDF, for an encrypted keystore */
    kdf?: { name: string, N: number, r: number, p: number }
    /** how many keys it holds (known without the passphrase only for a plaintext keystore) */
    keys?: number
  }
  /** the pid of the node running on the data dir, or null */
  running_pid: number | null
  /** how many API tokens `flexnode keys token` issued and are not revoked */
  api_tokens: number
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

/** The public part of the keystore file, without the passphrase. */
async function readKeystoreFile (dataDir: string): Promise<{ report: KeysReport['keystore'], agent?: string }> {
  const path = join(dataDir, KEYSTORE_FILE)
  const text = await readFile(path, 'utf8').catch((err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code
    throw code === 'ENOENT' || code === 'ENOTDIR' ? new NoKeystoreError(dataDir) : new FlexnodeError(`cannot read ${path}: ${code ?? errorMessage(err)}`)
  })
  const parsed: unknown = (() => {
    try { return JSON.parse(text) } catch (err) { throw new FlexnodeError(`${path} is not valid JSON: ${errorMessage(err)}`) }
  })()
  if (!isRecord(parsed)) throw new FlexnodeError(`${path} is malformed: not an object`)
  if (Array.isArray(parsed.keys)) {
    const first: unknown = parsed.keys[0]
    const agent = isRecord(first) && typeof first.agentPubKey === 'string' ? first.agentPubKey : undefined
    if (agent === undefined) throw new FlexnodeError(`${path} is malformed: its first key has no agentPubKey`)
    return { report: { path, encrypted: false, keys: parsed.keys.length }, agent }
  }
  const enc = parsed.encrypted
  if (!isRecord(enc)) throw new FlexnodeError(`${path} is malformed: neither "keys" nor "encrypted"`)
  const num = (v: unknown): number => typeof v === 'number' ? v : NaN
  return { report: { path, encrypted: true, kdf: { name: String(enc.kdf), N: num(enc.N), r: num(enc.r), p: num(enc.p) } } }
}

/** The node's identity as the data dir knows it (and the running node, for an encrypted keystore). */
export async function keysReport (dataDir: string): Promise<KeysReport> {
  const keystore = await readKeystoreFile(dataDir)
  let running: { pid: number, agent: string, peer: string } | undefined
  try {
    const info = await readRuntimeInfo(dataDir)
    running = { pid: info.pid, agent: info.agent_pub_key, peer: info.peer_id }
  } catch (err) {
    if (!(err instanceof NodeNotRunningError)) throw err
  }
  const agent = keystore.agent ?? running?.agent ?? null
  let peer: string | null = running?.peer ?? null
  if (agent !== null && peer === null) {
    try {
      peer = peerIdFromAgentPubKey(decodeHash(agent, 'Agent'))
    } catch (err) {
      throw new FlexnodeError(`${keystore.report.path} is malformed: ${errorMessage(err)}`)
    }
  }
  return { agent_pub_key: agent, peer_id: peer, keystore: keystore.report, running_pid: running?.pid ?? null, api_tokens: (await readIssuedTokens(join(dataDir, ISSUED_TOKENS_FILE))).length }
}

export function renderKeys (r: KeysReport): string {
  const ks = r.keystore
  const how = ks.encrypted ? `encrypted (${ks.kdf?.name ?? '?'} N=${ks.kdf?.N ?? '?'} r=${ks.kdf?.r ?? '?'} p=${ks.kdf?.p ?? '?'})` : `plaintext, ${ks.keys ?? 0} key(s)`
  const unknown = 'unknown: the keystore is encrypted and no node runs on this data dir'
  return [
    `agent key   ${r.agent_pub_key ?? unknown}`,
    `peer id     ${r.peer_id ?? unknown}`,
    `keystore    ${ks.path} (${how})`,
    `node        ${r.running_pid === null ? 'not running' : `running (pid ${r.running_pid})`}`,
    `api tokens  ${r.api_tokens} issued`
  ].join('\n') + '\n'
}

/** `flexnode keys show [--json]`. */
export async function keysShowCommand (opts: { dataDir: string, json: boolean }): Promise<number> {
  const report = await keysReport(opts.dataDir)
  process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : renderKeys(report))
  return 0
}

const publicView = (t: IssuedToken): Omit<IssuedToken, 'sha256'> => ({ id: t.id, name: t.name, created_at: t.created_at })

/**
 * `flexnode keys token [--name <n>] | --list | --revoke <id|name>` (`--json` for each): issue a
 * token (printed once, only its digest is kept), list the issued ones, or revoke one.
 */
export async function keysTokenCommand (opts: { dataDir: string, json: boolean, name?: string, revoke?: string, list?: boolean }): Promise<number> {
  const file = join(opts.dataDir, ISSUED_TOKENS_FILE)
  const out = (text: string): void => { process.stdout.write(text) }
  if ([opts.list === true, opts.revoke !== undefined, opts.name !== undefined].filter(Boolean).length > 1) throw new InvalidInputError('keys token takes one of --name, --list and --revoke', { field: 'revoke' })
  if (opts.list === true) {
    const tokens = (await readIssuedTokens(file)).map(publicView)
    out(opts.json ? `${JSON.stringify({ tokens }, null, 2)}\n` : tokens.length === 0 ? 'no API tokens issued\n' : renderTable(['ID', 'NAME', 'CREATED'], tokens.map(t => [t.id, t.name, t.created_at])))
    return 0
  }
  if (opts.revoke !== undefined) {
    const revoked = (await revokeToken(file, opts.revoke)).map(publicView)
    out(opts.json ? `${JSON.stringify({ revoked }, null, 2)}\n` : revoked.map(t => `revoked ${t.id} (${t.name})\n`).join(''))
    return 0
  }
  const problem = opts.name === undefined ? undefined : tokenNameProblem(opts.name)
  if (problem !== undefined) throw new InvalidInputError(problem, { field: 'name' })
  // only a data dir a node was started on gets tokens: a typo in --data-dir is not a new directory
  await readKeystoreFile(opts.dataDir)
  const { token, entry } = await issueToken(file, { name: opts.name })
  out(opts.json ? `${JSON.stringify({ ...publicView(entry), token }, null, 2)}\n` : `${token}\n`)
  if (!opts.json) process.stderr.write(`issued API token ${entry.id} (${entry.name}); it is shown only now — send it as "Authorization: Bearer <token>"\n`)
  return 0
}
