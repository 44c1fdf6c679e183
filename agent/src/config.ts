/**
 * Configuration of `flexnode` commands: flags and the environment, validated at the boundary.
 * This module and `config/start.ts` (start's schema: YAML file < `FLEXNODE_*` < flags) are the
 * only ones that read environment variables:
 *
 * - `FLEXNODE_DATA_DIR`   default for `--data-dir`
 * - `FLEXNODE_PASSPHRASE` encrypts the keystore at rest (or `--passphrase-file`)
 * - `FLEXNODE_<OPTION>`   any option of `flexnode start` (see `config/start.ts`)
 *
 * ```ts
 * const opts = parseInferArgs(['Hello', '--model', 'tiny'], process.env)
 * ```
 */
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { DEFAULT_DATA_DIR } from './constants.ts'
import type { MOE_TASK_TYPES } from './http/constants.ts'
import { UsageError } from './config/errors.ts'

export { UsageError } from './config/errors.ts'
export { checkPostgresUrl, LOG_LEVELS, type LogLevel, type StartOptions } from './config/start.ts'
export { parseStartArgs } from './config/start-command.ts'
function integer (value: string, flag: string, min: number, max: number): number {
  if (!/^\d{1,9}$/.test(value) || Number(value) < min || Number(value) > max) throw new UsageError(`${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`, flag)
  return Number(value)
}

type FlagSpec = Record<string, { type: 'string' | 'boolean', multiple?: boolean, short?: string }>

/** node:util parseArgs in strict mode, no positionals, its errors turned into UsageErrors. */
function parseFlags<const O extends FlagSpec> (args: string[], options: O) {
  try {
    return parseArgs({ args, strict: true, allowPositionals: false, options }).values
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err))
  }
}

/** Options of the commands that inspect a running node: `flexnode peers`, `flexnode status`. */
export interface InspectOptions {
  /** data dir of the running node. @default ~/.flexnode (or FLEXNODE_DATA_DIR) */
  dataDir: string
  /** print one JSON document instead of a table. @default false */
  json: boolean
}

export type InspectCommand = 'peers' | 'status'

const INSPECT_SUMMARY: Record<InspectCommand, string> = {
  peers: 'List the nodes the running node knows (agent_registry) and which of them are connected.',
  status: 'Show the running node: identity, addresses, ports, apps, peers and DHT op counts.'
}

export function inspectUsage (command: InspectCommand): string {
  return `Usage: flexnode ${command} [options]

${INSPECT_SUMMARY[command]}

Options:
  --data-dir <dir>              data directory of the running node (default ~/.flexnode, or
                                FLEXNODE_DATA_DIR)
  --json                        print one JSON document instead of a table
  -h, --help                    show this help
`
}

export function parseInspectArgs (args: string[], env: NodeJS.ProcessEnv = process.env): InspectOptions | 'help' {
  const v = parseFlags(args, {
    'data-dir': { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }
  })
  if (v.help === true) return 'help'
  const dataDir = v['data-dir'] ?? env.FLEXNODE_DATA_DIR ?? DEFAULT_DATA_DIR
  if (dataDir.trim() === '') throw new UsageError('--data-dir must not be empty', '--data-dir')
  return { dataDir: resolve(dataDir), json: v.json === true }
}

// ---------------------------------------------------------------------------------------------
// commands that use the running node's HTTP API: pin, get, artifacts (the inference, resources
// and memory commands are declared in commander: cli/inference-command.ts, resources-command.ts,
// memory-command.ts)

/** The commands that are clients of the running node's HTTP API. */
export const NODE_API_COMMANDS = ['pin', 'get', 'artifacts'] as const
export type NodeApiCommand = typeof NODE_API_COMMANDS[number]

/** Options every command talking to the running node's HTTP API has. */
export interface NodeApiOptions {
  /** data dir of the running node. @default ~/.flexnode (or FLEXNODE_DATA_DIR) */
  dataDir: string
  /** print JSON instead of text. @default false */
  json: boolean
  /** the node's HTTP API, `http://host:port` (--node, or `flexnode --node <url> <command>`, or FLEXNODE_NODE). @default the node running on the data dir */
  node?: string
  /** bearer token (--api-token or FLEXNODE_API_TOKEN). @default the data dir's local token, if any */
  token?: string
}

/** `flexnode models [list]`, `models load|unload|publish <id>`, `models pull <cid> [--load]` */
export type ModelsOptions = NodeApiOptions & ({ action: 'list' } | { action: 'load' | 'unload', id: string } | { action: 'publish', id: string } | { action: 'pull', cid: string, load: boolean })

/** `flexnode pin <file>`: add a file to the mesh's artifact store (and record it) */
export interface PinOptions extends NodeApiOptions {
  file: string
  /** @default the file's base name */
  name?: string
  mediaType?: string
  cidVersion?: 0 | 1
  rawLeaves?: boolean
  chunker?: string
  min?: number
  max?: number
}

/** `flexnode get <cid> [-o file]` */
export interface GetOptions extends NodeApiOptions {
  cid: string
  /** @default stdout */
  output?: string
}

/** `flexnode artifacts [providers <cid> | unpin <cid>] [--limit n]` */
export type ArtifactsOptions = NodeApiOptions & ({ action: 'list', limit?: number } | { action: 'providers' | 'unpin' | 'pin', cid: string })

/** `flexnode infer <prompt>` */
export interface InferOptions extends NodeApiOptions {
  prompt: string
  /** chat completions on this model; without it the mesh picks (`/v1/inference/single`) */
  model?: string
  maxTokens?: number
  temperature?: number
  seed?: number
  /** print tokens as they arrive (needs --model) */
  stream: boolean
}

export type MoeTaskTypeName = typeof MOE_TASK_TYPES[number]

/** `flexnode moe <prompt>` */
export interface MoeOptions extends NodeApiOptions {
  prompt: string
  taskType: MoeTaskTypeName
  maxTokens?: number
  policy?: string
  /** false with --no-consensus. @default true */
  requireConsensus: boolean
}

const COMMON_NODE_API_OPTIONS = `  --data-dir <dir>              data directory of the running node (default ~/.flexnode, or
                                FLEXNODE_DATA_DIR)
  --node <http://host:port>     a node's HTTP API, here or on another host (or FLEXNODE_NODE;
                                for allocate and task: flexnode --node <url> <command>)
  --api-token <token>           bearer token for a node that needs one (or FLEXNODE_API_TOKEN;
                                default: the data dir's local token)
  --json                        print JSON instead of text
  -h, --help                    show this help
`


const NODE_API_USAGE: Record<NodeApiCommand, string> = {
  pin: `Usage: flexnode pin <file> [options]

Add a file to the mesh's artifact store (IPFS), pinned on this node, and record it in
artifact_index; prints its CID. The upload streams (progress on stderr). CIDs match Kubo's
\`ipfs add\` for the same options.

Options:
  --name <name>                 the artifact's name (default: the file's base name)
  --media-type <type/subtype>   default application/octet-stream
  --cid-version <0|1>           default 0 (Kubo's default)
  --raw-leaves                  raw leaf blocks (default for CIDv1)
  --chunker <size-N>            bytes per leaf block (default size-262144)
  --min <n> --max <n>           providers the mesh keeps (default the node's: 3 and 5)
${COMMON_NODE_API_OPTIONS}`,
  get: `Usage: flexnode get <cid> [-o <file>] [options]

Fetch an artifact by its CID (from this node, else from the mesh), verified block by block,
to stdout or to a file (progress on stderr).

Options:
  -o, --output <file>           write to this file instead of stdout
${COMMON_NODE_API_OPTIONS}`,
  artifacts: `Usage: flexnode artifacts [list] [--limit <n>] [options]
       flexnode artifacts providers <cid> [options]
       flexnode artifacts pin|unpin <cid> [options]

List the mesh's artifact records (CID, name, size, producer), show who provides one, or pin or
unpin one on this node.

Options:
  --limit <n>                   at most this many records
${COMMON_NODE_API_OPTIONS}`,
}

export function nodeApiUsage (command: NodeApiCommand): string {
  return NODE_API_USAGE[command]
}

/** node:util parseArgs in strict mode with positionals (`--` ends the options), errors as UsageErrors. */
function parseCommandLine<const O extends FlagSpec> (args: string[], options: O) {
  try {
    return parseArgs({ args, strict: true, allowPositionals: true, options })
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err))
  }
}

const NODE_API_FLAGS = {
  'data-dir': { type: 'string' },
  json: { type: 'boolean' },
  node: { type: 'string' },
  'api-token': { type: 'string' },
  help: { type: 'boolean', short: 'h' }
} as const

/**
 * The options every node API command shares. `--node` is the node's URL, except where a command
 * gives it another meaning (`allocate`, `task run`: the agent key of the node to place on; the
 * URL then comes from `flexnode --node <url> <command>` or FLEXNODE_NODE).
 */
export function nodeApiOptions (v: { 'data-dir'?: string, json?: boolean, node?: string, 'api-token'?: string }, env: NodeJS.ProcessEnv, nodeIsUrl = true): NodeApiOptions {
  const dataDir = v['data-dir'] ?? env.FLEXNODE_DATA_DIR ?? DEFAULT_DATA_DIR
  if (dataDir.trim() === '') throw new UsageError('--data-dir must not be empty', '--data-dir')
  const node = (nodeIsUrl ? v.node : undefined) ?? (env.FLEXNODE_NODE === '' ? undefined : env.FLEXNODE_NODE)
  if (node !== undefined && !/^https?:\/\/[^/?#\s]+\/?$/.test(node)) throw new UsageError(`--node must be the node's HTTP API as http://host:port, got ${JSON.stringify(node)}`, '--node')
  const token = v['api-token'] ?? (env.FLEXNODE_API_TOKEN === '' ? undefined : env.FLEXNODE_API_TOKEN)
  if (token !== undefined && (token.trim() === '' || /\s/.test(token))) throw new UsageError('--api-token must be a non-empty token without whitespace', '--api-token')
  return { dataDir: resolve(dataDir), json: v.json === true, ...(node !== undefined ? { node } : {}), ...(token !== undefined ? { token } : {}) }
}

export function parsePinArgs (args: string[], env: NodeJS.ProcessEnv = process.env): PinOptions | 'help' {
  const { values: v, positionals } = parseCommandLine(args, {
    ...NODE_API_FLAGS,
    name: { type: 'string' },
    'media-type': { type: 'string' },
    'cid-version': { type: 'string' },
    'raw-leaves': { type: 'boolean' },
    chunker: { type: 'string' },
    min: { type: 'string' },
    max: { type: 'string' }
  })
  if (v.help === true) return 'help'
  const opts: PinOptions = { ...nodeApiOptions(v, env), file: resolve(oneArgument(positionals, 'a file')) }
  if (v.name !== undefined) opts.name = v.name
  if (v['media-type'] !== undefined) opts.mediaType = v['media-type']
  if (v['cid-version'] !== undefined) {
    if (v['cid-version'] !== '0' && v['cid-version'] !== '1') throw new UsageError('--cid-version must be 0 or 1', '--cid-version')
    opts.cidVersion = Number(v['cid-version']) as 0 | 1
  }
  if (v['raw-leaves'] === true) opts.rawLeaves = true
  if (v.chunker !== undefined) {
    if (!/^size-\d{1,9}$/.test(v.chunker)) throw new UsageError('--chunker must be size-<bytes>, e.g. size-262144', '--chunker')
    opts.chunker = v.chunker
  }
  if (v.min !== undefined) opts.min = integer(v.min, '--min', 1, 64)
  if (v.max !== undefined) opts.max = integer(v.max, '--max', 1, 64)
  return opts
}

export function parseGetArgs (args: string[], env: NodeJS.ProcessEnv = process.env): GetOptions | 'help' {
  const { values: v, positionals } = parseCommandLine(args, { ...NODE_API_FLAGS, output: { type: 'string', short: 'o' } })
  if (v.help === true) return 'help'
  const opts: GetOptions = { ...nodeApiOptions(v, env), cid: oneArgument(positionals, 'a CID') }
  if (v.output !== undefined) {
    if (v.output.trim() === '') throw new UsageError('--output must not be empty', '--output')
    opts.output = resolve(v.output)
  }
  return opts
}

export function parseArtifactsArgs (args: string[], env: NodeJS.ProcessEnv = process.env): ArtifactsOptions | 'help' {
  const { values: v, positionals } = parseCommandLine(args, { ...NODE_API_FLAGS, limit: { type: 'string' } })
  if (v.help === true) return 'help'
  const base = nodeApiOptions(v, env)
  const [action = 'list', ...rest] = positionals
  if (action === 'list') {
    if (rest.length > 0) throw new UsageError(`artifacts list takes no argument, got ${JSON.stringify(rest[0])}`)
    return { ...base, action, limit: v.limit === undefined ? undefined : integer(v.limit, '--limit', 1, 10_000) }
  }
  if (action !== 'providers' && action !== 'unpin' && action !== 'pin') throw new UsageError(`unknown artifacts action ${JSON.stringify(action)}: expected list, providers, pin or unpin`)
  if (v.limit !== undefined) throw new UsageError('--limit goes with artifacts list', '--limit')
  return { ...base, action, cid: oneArgument(rest, 'a CID') }
}

/** The one argument a command takes (an allocation id, a file). */
function oneArgument (positionals: string[], what: string): string {
  if (positionals.length === 0) throw new UsageError(`${what} is required`)
  if (positionals.length > 1) throw new UsageError(`give one ${what}, got ${positionals.length} arguments`)
  const arg = positionals[0]!
  if (arg.trim() === '') throw new UsageError(`${what} must not be empty`)
  return arg
}
