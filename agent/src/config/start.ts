/**
 * `flexnode start`'s configuration: ONE schema (`START_FIELDS`, zod) that names every option once
 * — its type and range, default, description, flag, environment variable and YAML key — and the
 * loader that layers the sources in order of precedence: default < YAML file < `FLEXNODE_*`
 * environment < flags.
 *
 * ```ts
 * const { options, sources } = await loadStartConfig({ flags: { httpPort: '8080' }, env: process.env })
 * sources.httpPort // { value: 8080, source: 'flag' }
 * ```
 * ```yaml
 * # <data-dir>/flexnode.yaml (or --config <file>): the flags' names as keys
 * network: testnet
 * http-port: 8080
 * bootstrap:
 *   - /ip4/203.0.113.7/tcp/4001/p2p/12D3KooW…
 * ```
 * The `--help` text of `start`, `flexnode config show` and the README's option table
 * (`npm run docs`) are generated from the same fields. An unknown key, a malformed file or a bad
 * value is a `UsageError` naming the key (and the file's line) or the flag or the variable.
 */
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { LineCounter, parseDocument, isMap, isScalar } from 'yaml'
import { z } from 'zod'
import { isBrowserOrigin, originProblem } from '../conductor/origins.ts'
import { DEFAULT_ADVERTISE_INTERVAL_SECONDS, DEFAULT_DATA_DIR, DEFAULT_HEARTBEAT_INTERVAL_SECONDS, DEFAULT_HOST, DEFAULT_NETWORK, MAX_PRUNE_AFTER_DAYS, NETWORKS, type NetworkName } from '../constants.ts'
import { UsageError } from './errors.ts'

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent'
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'silent']

/** The config file's name in the data dir, read when no `--config` is given. */
export const CONFIG_FILE = 'flexnode.yaml'

/** Where a value of the effective configuration came from. */
export type ConfigSource = 'default' | 'file' | 'env' | 'flag'

/** One option of `flexnode start`. */
export interface StartField {
  /** the kebab-case name: the flag `--<name>` (`--no-<name>` when `negate`), the YAML key, and `FLEXNODE_<UPPER_SNAKE>` */
  name: string
  /** what the value must be, from YAML (typed) or from a flag or variable (a string) */
  schema: z.ZodType
  /** the value's placeholder in the help (`<port>`); absent: a boolean flag */
  arg?: string
  /** the flag turns the option off: `--no-mdns` sets `mdns: false` */
  negate?: boolean
  /** the flag may be repeated (a list; the variable's value is comma-separated) */
  multiple?: boolean
  /** one line or a few of help */
  description: string
  /** the default as the help shows it; absent: no default (unset) */
  defaultText?: string
  /** a value that holds a secret is shown as `***` by `config show` */
  secret?: boolean
}

/** `http-port` → `httpPort` */
export const camelName = (name: string): string => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())
/** `http-port` → `FLEXNODE_HTTP_PORT` */
export const envName = (name: string): string => `FLEXNODE_${name.replace(/-/g, '_').toUpperCase()}`
/** `mdns` → `--no-mdns`, `http-port` → `--http-port` */
export const flagName = (f: Pick<StartField, 'name' | 'negate'>): string => f.negate === true ? `--no-${f.name}` : `--${f.name}`

// -- value schemas: each takes a YAML value or a string --------------------------------------

const fromString = (toValue: (s: string) => unknown) => (v: unknown): unknown => typeof v === 'string' ? toValue(v.trim()) : v
const numeric = fromString(s => /^-?\d+(\.\d+)?$/.test(s) ? Number(s) : s)

/** An integer in [min, max]. */
const int = (min: number, max: number): z.ZodType<number> =>
  z.preprocess(numeric, z.number().int().min(min).max(max)).meta({ problem: `must be an integer from ${min} to ${max}` })
/** A number in (0, max]. */
const positive = (max: number): z.ZodType<number> =>
  z.preprocess(numeric, z.number().gt(0).lte(max)).meta({ problem: `must be a number in (0, ${max}]` })
const port = (): z.ZodType<number> => int(0, 65535).meta({ problem: 'must be a port number 0..65535' })
const bool = (): z.ZodType<boolean> =>
  z.preprocess(fromString(s => s === 'true' || s === '1' ? true : s === 'false' || s === '0' ? false : s), z.boolean()).meta({ problem: 'must be true or false' })
const oneOf = <const T extends readonly [string, ...string[]]>(values: T): z.ZodType<T[number]> =>
  z.enum(values).meta({ problem: `must be one of ${values.join(', ')}` })
const text = (re: RegExp, problem: string): z.ZodType<string> => z.string().regex(re).meta({ problem })
/** A list: a YAML sequence or one string; strings are split on commas (an empty entry is an error unless `dropEmpty`). */
const list = <T>(item: (s: string, ctx: z.core.$RefinementCtx) => T, problem: string, dropEmpty = false): z.ZodType<T[]> =>
  z.union([z.string(), z.array(z.string())])
    .transform(v => (Array.isArray(v) ? v : [v]).flatMap(s => s.split(',')).map(s => s.trim()).filter(s => !dropEmpty || s.length > 0))
    .transform((v, ctx) => v.map(s => item(s, ctx)))
    .meta({ problem })
/** A custom check: `check` throws a UsageError whose message becomes the issue. */
const checked = <T>(check: (s: string) => T) => (s: string, ctx: z.core.$RefinementCtx): T => {
  try {
    return check(s)
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) })
    return z.NEVER
  }
}
const path = (): z.ZodType<string> => z.string().trim().min(1).transform(s => resolve(s)).meta({ problem: 'must name a file or directory' })

const ADDRESS = /^[A-Za-z0-9.:[\]-]{1,253}$/
const MULTIADDR = /^(\/[A-Za-z0-9._~:%+=-]+)+$/
const HOST_NAME = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$|^\[?[0-9A-Fa-f:.]{2,45}\]?$/

function multiaddr (a: string): string {
  if (!MULTIADDR.test(a) || a.length > 512) throw new UsageError(`must be a multiaddr such as /ip4/127.0.0.1/tcp/4001, got ${JSON.stringify(a)}`)
  return a
}

function browserOrigin (origin: string): string {
  if (origin === '*') throw new UsageError('takes origins, not "*": every client that is not a browser is admitted already; list the browser origins to admit')
  const problem = originProblem(origin)
  if (problem !== undefined) throw new UsageError(problem)
  if (!isBrowserOrigin(origin)) throw new UsageError(`${JSON.stringify(origin)} is not a browser origin (scheme://host[:port] or null); other clients are admitted anyway`)
  return origin
}

/** A `postgres://` (or `postgresql://`) URL with a host, or a UsageError naming `flag` (the password never shown). */
export function checkPostgresUrl (value: string, flag: string): string {
  let u: URL | undefined
  try { u = new URL(value) } catch { /* reported below */ }
  if (u === undefined || (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') || u.hostname === '') {
    throw new UsageError(`${flag} must be a postgres://user:password@host:port/database URL, got ${JSON.stringify(value.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@'))}`, flag)
  }
  return value
}

function httpUrl (value: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new UsageError(`must be a URL such as http://127.0.0.1:5001, got ${JSON.stringify(value)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('must be an http:// or https:// URL')
  return url.toString().replace(/\/$/, '')
}

const one = <T>(check: (s: string) => T, problem: string): z.ZodType<T> =>
  z.string().transform((s, ctx) => checked(check)(s.trim(), ctx)).meta({ problem })

// -- the schema -------------------------------------------------------------------------------

/** Every option of `flexnode start`, in the order the help lists them. */
export const START_FIELDS: readonly StartField[] = [
  { name: 'data-dir', arg: '<dir>', schema: path(), defaultText: '~/.flexnode', description: 'keystore, database and zome code of this node; its config file is <data-dir>/flexnode.yaml' },
  { name: 'network', arg: '<name>', schema: oneOf(NETWORKS), defaultText: DEFAULT_NETWORK, description: `${NETWORKS.join(' | ')}; selects the DNAs' network seed (ripple-<network>)` },
  { name: 'admin-port', arg: '<port>', schema: port(), defaultText: '0', description: 'Conductor Admin API port, 0 = pick a free port' },
  { name: 'app-port', arg: '<port>', schema: port(), defaultText: '0', description: 'Conductor App API port, 0 = pick a free port' },
  { name: 'host', arg: '<address>', schema: text(ADDRESS, 'must be an address or host name'), defaultText: DEFAULT_HOST, description: 'address the conductor interfaces bind to' },
  { name: 'admin-allowed-origins', arg: '<origins>', multiple: true, schema: list(checked(browserOrigin), 'must list browser origins'), defaultText: 'none', description: 'browser origins the Admin API admits, comma-separated, e.g. http://localhost:3000 (every client that is not a browser is admitted, no web page is)' },
  { name: 'app-allowed-origins', arg: '<origins>', multiple: true, schema: list(checked(browserOrigin), 'must list browser origins'), defaultText: 'none', description: 'browser origins the App API admits, likewise' },
  { name: 'listen', arg: '<multiaddr>', multiple: true, schema: list(checked(multiaddr), 'must list multiaddrs'), defaultText: '/ip4/0.0.0.0/tcp/0', description: 'libp2p listen address' },
  { name: 'bootstrap', arg: '<multiaddr>', multiple: true, schema: list(checked(multiaddr), 'must list multiaddrs'), defaultText: "the network profile's list", description: 'peer to join through, e.g. /ip4/203.0.113.7/tcp/4001/p2p/12D3KooW… (local also uses mDNS)' },
  { name: 'mdns', negate: true, schema: bool(), defaultText: 'true', description: 'mDNS (multicast on the LAN) on local without bootstrap peers; --no-mdns never multicasts' },
  { name: 'prune-after-days', arg: '<n>', schema: int(1, MAX_PRUNE_AFTER_DAYS), defaultText: '30 (testnet)', description: 'testnet: days of DHT data kept before it is pruned; live state, chain heads and this node\'s own chain are always kept (mainnet and local refuse it)' },
  { name: 'models-dir', arg: '<dir>', multiple: true, schema: list(s => resolve(s), 'must list directories'), defaultText: 'none', description: 'more .gguf model directories (always also <data-dir>/models)' },
  { name: 'demo-model', negate: true, schema: bool(), defaultText: 'true', description: 'generate the random-weight demo model into an empty <data-dir>/models; --no-demo-model does not' },
  { name: 'prompt-cache', negate: true, schema: bool(), defaultText: 'true', description: 'answer deterministic requests (temperature 0 or a seed) from the prompt cache; --no-prompt-cache never does' },
  { name: 'memory-shards', arg: '<n>', schema: int(0, 65_536), defaultText: '4 per GB of RAM', description: 'vector-memory shard replicas this node offers to host; 0 hosts none' },
  { name: 'memory-threads', arg: '<n>', schema: int(1, 64), defaultText: '1', description: 'worker threads holding the HNSW shard indexes' },
  { name: 'kubo-api', arg: '<url>', schema: one(httpUrl, 'must be an http(s) URL'), defaultText: 'none (embedded Helia)', description: 'keep artifacts in a Kubo daemon (its RPC API, e.g. http://127.0.0.1:5001)' },
  { name: 'max-upload-mb', arg: '<n>', schema: int(1, 16 * 1024 * 1024), defaultText: '10240', description: 'largest POST /v1/artifacts upload, MiB' },
  { name: 'gpu', arg: '<auto|false>', schema: z.preprocess(v => typeof v === 'boolean' ? String(v) : v, oneOf(['auto', 'true', 'false'])), defaultText: 'auto', description: 'use a GPU when one is found, or force CPU' },
  { name: 'threads', arg: '<n>', schema: int(1, 256), defaultText: 'half the cores', description: 'llama.cpp threads per model' },
  { name: 'max-queue', arg: '<n>', schema: int(0, 100_000), defaultText: '16', description: 'requests waiting per model before 503 busy' },
  { name: 'http-port', arg: '<port>', schema: port(), defaultText: '0', description: 'OpenAI-compatible HTTP API port, 0 = pick a free port' },
  { name: 'http-host', arg: '<address>', schema: text(ADDRESS, 'must be an address or host name'), defaultText: DEFAULT_HOST, description: 'address the HTTP API binds to; any but loopback requires a bearer token' },
  { name: 'http-allowed-hosts', arg: '<names>', multiple: true, schema: list(checked(h => { if (!HOST_NAME.test(h) || h.length > 253) throw new UsageError(`must list host names or addresses, got ${JSON.stringify(h)}`); return h }), 'must list host names', true), defaultText: 'none', description: 'host names the HTTP API also answers to (besides loopback and the address a request arrives on), comma-separated' },
  { name: 'api-token-file', arg: '<file>', schema: path(), defaultText: 'none', description: 'a file of bearer tokens (one a line) the HTTP API accepts' },
  { name: 'moe-policy', arg: '<file>', schema: path(), defaultText: 'none', description: 'a local MOE policy (YAML or JSON, the inference_policy format); it overrides the mesh\'s entry of the same name' },
  { name: 'policy-admin', arg: '<key>', multiple: true, schema: list(checked(k => { if (!/^uhCAk[A-Za-z0-9_-]{48}$/.test(k)) throw new UsageError(`must be an agent key (uhCAk… as in FLEXNODE_READY's agent_pub_key), got ${JSON.stringify(k)}`); return k }), 'must list agent keys'), defaultText: 'none', description: 'an agent key whose policy_store publications every node applies; every node of a mesh needs the same set' },
  { name: 'audit-db', arg: '<postgres://…>', secret: true, schema: one(s => checkPostgresUrl(s, 'the URL'), 'must be a postgres:// URL'), defaultText: 'none', description: 'ship the audit log to this Postgres database (default: kept in the data dir only)' },
  { name: 'agent-name', arg: '<name>', schema: text(/^[\p{L}\p{N}][\p{L}\p{N} ._-]{0,63}$/u, 'must be 1-64 letters, digits, spaces, . _ - (starting with a letter or digit)'), defaultText: 'the hostname', description: 'name advertised in NodeCapability.agent_name' },
  { name: 'heartbeat-interval', arg: '<secs>', schema: positive(86400), defaultText: String(DEFAULT_HEARTBEAT_INTERVAL_SECONDS), description: 'seconds between heartbeats: signed presence records (load, queue, availability), gossiped, never on a chain; a node is offline 2.5 intervals after its last one' },
  { name: 'advertise-interval', arg: '<secs>', schema: positive(365 * 86400), defaultText: String(DEFAULT_ADVERTISE_INTERVAL_SECONDS), description: 'seconds after which an unchanged NodeCapability is written again; a changed offer goes out with the next heartbeat' },
  { name: 'region', arg: '<region>', schema: text(/^[a-z0-9-]{0,64}$/, 'must be lowercase letters, digits and - (at most 64)'), defaultText: 'local', description: 'NodeCapability.network.latency_region' },
  { name: 'bandwidth-mbps', arg: '<n>', schema: positive(10_000_000), defaultText: '1000', description: 'NodeCapability.network.bandwidth_mbps (configured, not measured)' },
  { name: 'target-redundancy', arg: '<n>', schema: int(1, 1000), defaultText: '5', description: 'DHT authorities wanted per location; in a mesh of more nodes each node stores about n/N of the DHT' },
  { name: 'passphrase-file', arg: '<file>', schema: path(), defaultText: 'none (or FLEXNODE_PASSPHRASE)', description: 'encrypt the keystore with the passphrase in this file' },
  { name: 'new-chain', schema: bool(), defaultText: 'false', description: 'the data dir has a keystore but no database: start a new source chain under a new agent key (the old keystore is kept as a .bak)' },
  { name: 'log-level', arg: '<level>', schema: oneOf(LOG_LEVELS as unknown as readonly [LogLevel, ...LogLevel[]]), defaultText: 'info', description: `${LOG_LEVELS.join(' | ')}` },
  { name: 'json', schema: bool(), defaultText: 'false', description: 'log JSON lines on stderr' }
]

const FIELD_BY_NAME = new Map(START_FIELDS.map(f => [f.name, f]))

/** The zod schema of the YAML file: every field optional, nothing else. */
export const START_CONFIG_SCHEMA = z.strictObject(Object.fromEntries(START_FIELDS.map(f => [f.name, f.schema.optional()])))

export interface StartOptions {
  /** @default ~/.flexnode (or FLEXNODE_DATA_DIR) */
  dataDir: string
  /** @default 'local' */
  network: NetworkName
  /** Admin interface port; 0 picks a free port. @default 0 */
  adminPort: number
  /** App interface port; 0 picks a free port. @default 0 */
  appPort: number
  /** Interface the conductor's WebSockets bind to. @default '127.0.0.1' */
  host: string
  /** Browser origins the Admin API admits besides non-browser clients. @default none */
  adminAllowedOrigins: string[]
  /** Browser origins the App API admits besides non-browser clients. @default none */
  appAllowedOrigins: string[]
  /** Log JSON lines instead of readable lines. @default false */
  json: boolean
  /** @default 'info' (or FLEXNODE_LOG_LEVEL) */
  logLevel: LogLevel
  /** With a keystore but no database: start a new source chain under a new agent key. @default false */
  newChain: boolean
  /** Keystore passphrase, from FLEXNODE_PASSPHRASE or --passphrase-file. */
  passphrase?: string
  /** Name in the NodeCapability. @default the hostname */
  agentName?: string
  /** Seconds between heartbeats. @default 10 */
  heartbeatIntervalSeconds: number
  /** Seconds after which an unchanged NodeCapability is advertised again. @default 86400 */
  advertiseIntervalSeconds: number
  /** Region advertised in NodeCapability.network.latency_region. @default 'local' */
  region: string
  /** Advertised link speed. @default 1000 */
  bandwidthMbps: number
  /** DHT authorities wanted per location. @default 5 */
  targetRedundancy: number
  /** libp2p listen multiaddrs. @default ['/ip4/0.0.0.0/tcp/0'] */
  listen: string[]
  /** Bootstrap peers. @default the network profile's list */
  bootstrap?: string[]
  /** Days of DHT data a network that prunes keeps (testnet only). @default the network profile's: 30 */
  pruneAfterDays?: number
  /** false with --no-mdns. @default on for `local` without bootstrap peers */
  mdns?: boolean
  /** extra model directories besides `<data-dir>/models`. @default none */
  modelsDirs?: string[]
  /** false with --no-demo-model. @default true */
  generateDefaultModel?: boolean
  /** false with --no-prompt-cache. @default cached */
  promptCache?: false
  /** the vector memory's shard replicas and threads. @default 4 per GB of RAM, 1 thread */
  memory?: { shardCapacity?: number, threads?: number }
  /** the artifact store: a Kubo daemon, the largest upload. @default Helia, 10 GiB */
  artifacts?: { kuboApi?: string, maxUploadBytes?: number }
  /** GPU use: auto-detect, or false to force CPU. @default 'auto' */
  gpu: boolean | 'auto'
  /** threads per model. @default half the cores */
  threads?: number
  /** requests waiting per model before a 503. @default 16 */
  maxQueue?: number
  /** HTTP API port; 0 picks a free port. @default 0 */
  httpPort: number
  /** address the HTTP API binds to. @default '127.0.0.1' */
  httpHost: string
  /** host names the HTTP API answers to besides loopback names and its bound address. @default [] */
  httpAllowedHosts?: string[]
  /** a file of bearer tokens the HTTP API accepts. @default none */
  apiTokenFile?: string
  /** a local MOE policy file. @default none */
  moePolicyFile?: string
  /** agent keys whose policy_store publications the mesh applies. @default none */
  policyAdmins?: string[]
  /** ship the audit outbox to this Postgres database. @default none */
  audit?: { url: string }
}

/** One value of the effective configuration and where it came from. */
export interface SourcedValue { value: unknown, source: ConfigSource }

export interface LoadStartConfigInit {
  /** the flags given, by camelCase name (`httpPort`, `mdns: false` for `--no-mdns`); strings or string lists. @default {} */
  flags?: Record<string, unknown>
  /** the config file: `--config`; absent: `<data-dir>/flexnode.yaml` when there is one */
  configFile?: string
  /** @default process.env */
  env?: NodeJS.ProcessEnv
}

export interface LoadedStartConfig {
  options: StartOptions
  /** every field's effective value (after validation) and its source, by field name */
  sources: Record<string, SourcedValue>
  /** the config file read, if any */
  file?: string
}

/** The problem a zod failure reports: a custom check's message, else the field's `problem`. */
function problemOf (field: StartField, error: z.ZodError): { message: string, custom: boolean } {
  const custom = error.issues.find(i => i.code === 'custom')
  if (custom !== undefined) return { message: custom.message, custom: true }
  const meta = field.schema.meta() as { problem?: string } | undefined
  return { message: meta?.problem ?? error.issues[0]?.message ?? 'is invalid', custom: false }
}

interface RawValue { value: unknown, source: Exclude<ConfigSource, 'default'>, where: string, flag: string }

function validate (field: StartField, raw: RawValue): unknown {
  const r = field.schema.safeParse(raw.value)
  if (r.success) return r.data
  const { message, custom } = problemOf(field, r.error)
  const got = custom || field.secret === true ? '' : `, got ${JSON.stringify(raw.value)}`
  throw new UsageError(`${raw.where}: ${message}${got}`, raw.flag)
}

/** The YAML file's values by field name, each with its line; a malformed file or an unknown key is a UsageError. */
async function readConfigFile (file: string, explicit: boolean): Promise<Map<string, RawValue> | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (!explicit && code === 'ENOENT') return undefined
    throw new UsageError(`--config: cannot read ${file}: ${code ?? String(err)}`, '--config')
  }
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true })
  const error = doc.errors[0]
  if (error !== undefined) {
    const line = error.linePos?.[0].line ?? lineCounter.linePos(error.pos[0]).line
    throw new UsageError(`${file}:${line}: malformed YAML: ${error.message.split('\n')[0]!}`, '--config')
  }
  const out = new Map<string, RawValue>()
  if (doc.contents === null) return out
  if (!isMap(doc.contents)) throw new UsageError(`${file}:1: the config file must be a mapping of option names to values (network: testnet)`, '--config')
  for (const pair of doc.contents.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key)
    const offset = isScalar(pair.key) ? pair.key.range?.[0] ?? 0 : 0
    const line = lineCounter.linePos(offset).line
    const field = FIELD_BY_NAME.get(key)
    if (field === undefined) {
      const near = START_FIELDS.find(f => f.name === key.replace(/_/g, '-').replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase() || f.name === key.replace(/^no-/, ''))
      throw new UsageError(`${file}:${line}: unknown key ${JSON.stringify(key)}${near === undefined ? '' : ` (did you mean ${near.name}?)`}`, key)
    }
    const value: unknown = pair.value === null ? null : (pair.value as { toJSON: () => unknown }).toJSON()
    out.set(field.name, { value, source: 'file', where: `${file}:${line}: ${key}`, flag: key })
  }
  return out
}

function envValue (field: StartField, env: NodeJS.ProcessEnv): RawValue | undefined {
  const name = envName(field.name)
  const value = env[name]
  if (value === undefined || value === '') return undefined
  return { value, source: 'env', where: name, flag: name }
}

function flagValue (field: StartField, flags: Record<string, unknown>): RawValue | undefined {
  const value = flags[camelName(field.name)]
  if (value === undefined) return undefined
  // commander gives a negated flag as false: the schema takes it as is
  return { value: typeof value === 'boolean' ? value : value, source: 'flag', where: flagName(field), flag: flagName(field) }
}

/** The effective configuration of `flexnode start`: defaults < config file < environment < flags, validated. */
export async function loadStartConfig (init: LoadStartConfigInit = {}): Promise<LoadedStartConfig> {
  const env = init.env ?? process.env
  const flags = init.flags ?? {}
  const dataDirField = FIELD_BY_NAME.get('data-dir')!
  // the data dir first: the default config file lives in it
  const early = flagValue(dataDirField, flags) ?? envValue(dataDirField, env)
  const earlyDir = early === undefined ? DEFAULT_DATA_DIR : validate(dataDirField, early) as string
  const configFromEnv = env.FLEXNODE_CONFIG === '' ? undefined : env.FLEXNODE_CONFIG
  const explicit = init.configFile ?? configFromEnv
  const file = explicit !== undefined ? resolve(explicit) : join(earlyDir, CONFIG_FILE)
  const fromFile = await readConfigFile(file, explicit !== undefined)

  const sources: Record<string, SourcedValue> = {}
  const given: Record<string, unknown> = {}
  for (const field of START_FIELDS) {
    const raw = flagValue(field, flags) ?? envValue(field, env) ?? fromFile?.get(field.name)
    if (raw === undefined || raw.value === null) {
      sources[field.name] = { value: field.defaultText ?? null, source: 'default' }
      continue
    }
    const value = validate(field, raw)
    given[field.name] = value
    sources[field.name] = { value: field.secret === true ? '***' : value, source: raw.source }
  }
  const options = await toStartOptions(given, env)
  return { options, sources, ...(fromFile !== undefined ? { file } : {}) }
}

/** The validated values (by field name, only those given) as FlexNode's start options. */
async function toStartOptions (v: Record<string, unknown>, env: NodeJS.ProcessEnv): Promise<StartOptions> {
  const get = <T>(name: string): T | undefined => v[name] as T | undefined
  let passphrase = env.FLEXNODE_PASSPHRASE
  const passphraseFile = get<string>('passphrase-file')
  if (passphraseFile !== undefined) {
    try {
      passphrase = (await readFile(passphraseFile, 'utf8')).replace(/\r?\n$/, '')
    } catch (err) {
      throw new UsageError(`--passphrase-file: cannot read ${passphraseFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, '--passphrase-file')
    }
    if (passphrase.length === 0) throw new UsageError('--passphrase-file is empty', '--passphrase-file')
  }
  if (passphrase === '') passphrase = undefined
  const memoryShards = get<number>('memory-shards')
  const memoryThreads = get<number>('memory-threads')
  const kuboApi = get<string>('kubo-api')
  const maxUploadMb = get<number>('max-upload-mb')
  const auditDb = get<string>('audit-db')
  const optional = <K extends keyof StartOptions>(key: K, value: StartOptions[K] | undefined): Partial<StartOptions> => value === undefined ? {} : { [key]: value }
  return {
    dataDir: get<string>('data-dir') ?? resolve(DEFAULT_DATA_DIR),
    network: get<NetworkName>('network') ?? DEFAULT_NETWORK,
    adminPort: get<number>('admin-port') ?? 0,
    appPort: get<number>('app-port') ?? 0,
    host: get<string>('host') ?? DEFAULT_HOST,
    adminAllowedOrigins: [...new Set(get<string[]>('admin-allowed-origins') ?? [])],
    appAllowedOrigins: [...new Set(get<string[]>('app-allowed-origins') ?? [])],
    json: get<boolean>('json') ?? false,
    logLevel: get<LogLevel>('log-level') ?? 'info',
    newChain: get<boolean>('new-chain') ?? false,
    passphrase,
    agentName: get<string>('agent-name'),
    heartbeatIntervalSeconds: get<number>('heartbeat-interval') ?? DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
    advertiseIntervalSeconds: get<number>('advertise-interval') ?? DEFAULT_ADVERTISE_INTERVAL_SECONDS,
    region: get<string>('region') ?? 'local',
    bandwidthMbps: get<number>('bandwidth-mbps') ?? 1000,
    targetRedundancy: get<number>('target-redundancy') ?? 5,
    listen: get<string[]>('listen') ?? ['/ip4/0.0.0.0/tcp/0'],
    bootstrap: get<string[]>('bootstrap'),
    ...(get<boolean>('mdns') === false ? { mdns: false } : {}),
    ...optional('pruneAfterDays', get<number>('prune-after-days')),
    modelsDirs: get<string[]>('models-dir'),
    ...(get<boolean>('demo-model') === false ? { generateDefaultModel: false } : {}),
    ...(get<boolean>('prompt-cache') === false ? { promptCache: false as const } : {}),
    ...(memoryShards !== undefined || memoryThreads !== undefined
      ? { memory: { ...(memoryShards !== undefined ? { shardCapacity: memoryShards } : {}), ...(memoryThreads !== undefined ? { threads: memoryThreads } : {}) } }
      : {}),
    ...(kuboApi !== undefined || maxUploadMb !== undefined
      ? { artifacts: { ...(kuboApi !== undefined ? { kuboApi } : {}), ...(maxUploadMb !== undefined ? { maxUploadBytes: maxUploadMb * 1024 * 1024 } : {}) } }
      : {}),
    gpu: get<string>('gpu') === 'false' ? false : 'auto',
    threads: get<number>('threads'),
    maxQueue: get<number>('max-queue'),
    httpPort: get<number>('http-port') ?? 0,
    httpHost: get<string>('http-host') ?? DEFAULT_HOST,
    ...optional('httpAllowedHosts', get<string[]>('http-allowed-hosts')),
    ...optional('apiTokenFile', get<string>('api-token-file')),
    moePolicyFile: get<string>('moe-policy'),
    ...optional('policyAdmins', get<string[]>('policy-admin')),
    ...(auditDb !== undefined ? { audit: { url: auditDb } } : {})
  }
}

// -- generated documentation ------------------------------------------------------------------

/** The flag as the help shows it: `--http-port <port>`. */
export const flagSpec = (f: StartField): string => f.arg === undefined ? flagName(f) : `${flagName(f)} ${f.arg}`
