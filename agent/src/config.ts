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
import { MAX_TEMPERATURE, MOE_TASK_TYPES } from './http/constants.ts'
import { UsageError } from './config/errors.ts'
import { DISTANCES, InvalidVectorError, type CollectionConfig, type Distance, type Filter, type SearchQuery, type WriteConsistency } from './memory/types.ts'
import {
  COLLECTION_NAME, MAX_DIMENSIONS, MAX_EF, MAX_K, MAX_REPLICATION_FACTOR, MAX_SHARD_COUNT, MAX_BATCH, MIN_DEFAULT_EF, validateFilter, validateVector
} from './memory/validate.ts'
import { DEFAULT_REPLICATION_FACTOR, DEFAULT_SHARD_COUNT } from './memory/constants.ts'

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
// commands that use the running node's HTTP API: models, infer, moe, the resources commands
// and the memory commands

/** The commands that are clients of the running node's HTTP API. */
export const NODE_API_COMMANDS = ['models', 'infer', 'moe', 'memory', 'pin', 'get', 'artifacts'] as const
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

/** Largest --max-tokens the CLI accepts; the node checks the model's own limit. */
const CLI_MAX_TOKENS = 1_048_576

const COMMON_NODE_API_OPTIONS = `  --data-dir <dir>              data directory of the running node (default ~/.flexnode, or
                                FLEXNODE_DATA_DIR)
  --node <http://host:port>     a node's HTTP API, here or on another host (or FLEXNODE_NODE;
                                for allocate and task: flexnode --node <url> <command>)
  --api-token <token>           bearer token for a node that needs one (or FLEXNODE_API_TOKEN;
                                default: the data dir's local token)
  --json                        print JSON instead of text
  -h, --help                    show this help
`

/** `-k` of `memory search` when not given. */
export const MEMORY_DEFAULT_K = 10
const WRITE_CONSISTENCIES: readonly WriteConsistency[] = ['one', 'quorum', 'all']
/** The actions of `flexnode memory`. */
export const MEMORY_ACTIONS = ['create', 'insert', 'search', 'info', 'list', 'delete'] as const
export type MemoryAction = typeof MEMORY_ACTIONS[number]

const NODE_API_USAGE: Record<NodeApiCommand, string> = {
  models: `Usage: flexnode models [list] [options]
       flexnode models load <id> [options]
       flexnode models unload <id> [options]
       flexnode models publish <id> [options]
       flexnode models pull <cid> [--load] [options]

List the running node's models (id, loaded, size, context, tokens/s), or load or unload one.
A load shows its progress on stderr, then prints "loaded <id>". publish adds a model's file to
the mesh's artifact store and records it (prints its CID); pull fetches a published model from
the mesh by its CID (progress on stderr), checks it against its record, places it in the models
dir and, with --load, loads it.

Options:
  --load                        (pull) load the model once it is in place
${COMMON_NODE_API_OPTIONS}`,
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
  infer: `Usage: flexnode infer <prompt> [options]

Ask the running node one prompt. With --model, that model answers (chat completions); without,
the mesh picks the model and the node (inference.single_query).

Options:
  --model <id>                  the model to ask
  --max-tokens <n>              largest answer, in tokens (1..${CLI_MAX_TOKENS})
  --temperature <t>             sampling temperature 0..${MAX_TEMPERATURE}, 0 = greedy (needs --model)
  --seed <n>                    sampling seed, a non-negative integer (needs --model)
  --stream                      print the answer as it is generated (needs --model; with --json,
                                one JSON chunk per line)
${COMMON_NODE_API_OPTIONS}`,
  moe: `Usage: flexnode moe <prompt> --task-type <type> [options]

Ask several (model, node) pairs of the mesh at once and reduce their answers by weighted
consensus (inference.moe_query). Prints the answer, the consensus and every model's vote.

Options:
  --task-type <type>            ${MOE_TASK_TYPES.join(' | ')} (required)
  --max-tokens <n>              largest answer per model, in tokens (1..${CLI_MAX_TOKENS}; default 4096)
  --policy <name>               a named MOE policy instead of the default
  --no-consensus                do not require consensus
${COMMON_NODE_API_OPTIONS}`,
  memory: `Usage: flexnode memory create <name> --dimensions <n> [--distance <d>] [--shards <n>]
                              [--replication <n>] [--embedding-model <id>] [options]
       flexnode memory insert <name> [--file <points.jsonl|points.json> | -] [--consistency <c>] [options]
       flexnode memory search <name> (--vector <json> | --text <text>) [-k <n>] [--ef <n>]
                              [--filter <json>] [options]
       flexnode memory info <name> [options]
       flexnode memory list [options]
       flexnode memory delete <name> [options]

The mesh's vector memory: collections of vectors sharded over the nodes, two copies of each
shard (/v1/memory/collections). create makes a collection; insert writes points (inserted, or
replaced by id), read as JSON lines {"id", "vector" | "text", "metadata"?} or one JSON array,
from a file or stdin, sent in batches of ${MAX_BATCH}, and prints the count written; search prints
the nearest points (id, score, metadata) and says when some shards did not answer; info prints
the collection, its ring epoch, count and every shard's replicas (node, state, live, count);
list prints the collections; delete deletes one and its points.

create options:
  <name>                        1..64 letters, digits, _ or -
  --dimensions <n>              numbers per vector, 1..${MAX_DIMENSIONS} (required)
  --distance <d>                ${DISTANCES.join(' | ')} (default cosine)
  --shards <n>                  shards of the collection, 1..${MAX_SHARD_COUNT} (default ${DEFAULT_SHARD_COUNT})
  --replication <n>             copies of each shard, 1..${MAX_REPLICATION_FACTOR} (default ${DEFAULT_REPLICATION_FACTOR})
  --embedding-model <id>        the model that embeds points' and queries' text (default none:
                                vectors only)
insert options:
  --file <file>                 the points, JSON lines or a JSON array; - or no --file: stdin
                                (also: insert <name> -)
  --consistency <c>             ${WRITE_CONSISTENCIES.join(' | ')}: the replicas of a shard that acknowledge each
                                write (default quorum)
search options:
  --vector <json>               the query vector, a JSON array of numbers: '[0.1, 0.2, 0.3]'
  --text <text>                 the query as text, embedded with the collection's model
  -k <n>                        results wanted, 1..${MAX_K} (default ${MEMORY_DEFAULT_K})
  --ef <n>                      HNSW search breadth, k..${MAX_EF} (default max(k, ${MIN_DEFAULT_EF}))
  --filter <json>               metadata every result matches: '{"lang": "en"}', a value or
                                {"in": [values]} per key
every action:
${COMMON_NODE_API_OPTIONS}`
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

/** The one prompt argument. */
function promptOf (positionals: string[]): string {
  if (positionals.length === 0) throw new UsageError('a prompt is required')
  if (positionals.length > 1) throw new UsageError(`give the prompt as one argument (quote it); got ${positionals.length} arguments`)
  const prompt = positionals[0]!
  if (prompt.trim() === '') throw new UsageError('the prompt must not be empty')
  return prompt
}

function maxTokensOf (value: string | undefined): number | undefined {
  return value === undefined ? undefined : integer(value, '--max-tokens', 1, CLI_MAX_TOKENS)
}

function nonEmpty (value: string | undefined, flag: string): string | undefined {
  if (value === undefined) return undefined
  if (value.trim() === '' || value.length > 256) throw new UsageError(`${flag} must be a non-empty name of at most 256 characters`, flag)
  return value
}

export function parseModelsArgs (args: string[], env: NodeJS.ProcessEnv = process.env): ModelsOptions | 'help' {
  const { values: v, positionals } = parseCommandLine(args, { ...NODE_API_FLAGS, load: { type: 'boolean' } })
  if (v.help === true) return 'help'
  const base = nodeApiOptions(v, env)
  const [action = 'list', id, ...extra] = positionals
  if (v.load === true && action !== 'pull') throw new UsageError('--load goes with models pull', '--load')
  if (action === 'list') {
    if (id !== undefined) throw new UsageError(`models list takes no argument, got ${JSON.stringify(id)}`)
    return { ...base, action }
  }
  if (action !== 'load' && action !== 'unload' && action !== 'publish' && action !== 'pull') throw new UsageError(`unknown models action ${JSON.stringify(action)}: expected list, load, unload, publish or pull`)
  const what = action === 'pull' ? 'CID' : 'model id'
  if (id === undefined || id.trim() === '') throw new UsageError(`models ${action} needs a ${what}`)
  if (extra.length > 0) throw new UsageError(`models ${action} takes one ${what}, got ${extra.length + 1} arguments`)
  if (action === 'pull') return { ...base, action, cid: id, load: v.load === true }
  if (action === 'publish') return { ...base, action, id }
  return { ...base, action, id }
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

export function parseInferArgs (args: string[], env: NodeJS.ProcessEnv = process.env): InferOptions | 'help' {
  const { values: v, positionals } = parseCommandLine(args, {
    ...NODE_API_FLAGS,
    model: { type: 'string' },
    'max-tokens': { type: 'string' },
    temperature: { type: 'string' },
    seed: { type: 'string' },
    stream: { type: 'boolean' }
  })
  if (v.help === true) return 'help'
  const out: InferOptions = { ...nodeApiOptions(v, env), prompt: promptOf(positionals), stream: v.stream === true }
  const model = nonEmpty(v.model, '--model')
  if (model !== undefined) out.model = model
  const maxTokens = maxTokensOf(v['max-tokens'])
  if (maxTokens !== undefined) out.maxTokens = maxTokens
  if (v.temperature !== undefined) {
    const t = v.temperature
    if (!/^\d{1,3}(\.\d{1,6})?$/.test(t) || Number(t) > MAX_TEMPERATURE) throw new UsageError(`--temperature must be a number from 0 to ${MAX_TEMPERATURE}, got ${JSON.stringify(t)}`, '--temperature')
    out.temperature = Number(t)
  }
  if (v.seed !== undefined) {
    if (!/^\d{1,15}$/.test(v.seed)) throw new UsageError(`--seed must be a non-negative integer, got ${JSON.stringify(v.seed)}`, '--seed')
    out.seed = Number(v.seed)
  }
  if (model === undefined) {
    // inference.single_query takes a prompt and max_tokens only
    for (const [flag, given] of [['--stream', out.stream], ['--temperature', out.temperature !== undefined], ['--seed', out.seed !== undefined]] as const) {
      if (given) throw new UsageError(`${flag} needs --model (without it the mesh picks the model)`, flag)
    }
  }
  return out
}

export function parseMoeArgs (args: string[], env: NodeJS.ProcessEnv = process.env): MoeOptions | 'help' {
  const { values: v, positionals } = parseCommandLine(args, {
    ...NODE_API_FLAGS,
    'task-type': { type: 'string' },
    'max-tokens': { type: 'string' },
    policy: { type: 'string' },
    'no-consensus': { type: 'boolean' }
  })
  if (v.help === true) return 'help'
  const base = nodeApiOptions(v, env)
  const prompt = promptOf(positionals)
  const taskType = v['task-type']
  if (taskType === undefined) throw new UsageError(`--task-type is required: ${MOE_TASK_TYPES.join(', ')}`, '--task-type')
  if (!(MOE_TASK_TYPES as readonly string[]).includes(taskType)) throw new UsageError(`--task-type must be one of ${MOE_TASK_TYPES.join(', ')}, got ${JSON.stringify(taskType)}`, '--task-type')
  const out: MoeOptions = { ...base, prompt, taskType: taskType as MoeTaskTypeName, requireConsensus: v['no-consensus'] !== true }
  const maxTokens = maxTokensOf(v['max-tokens'])
  if (maxTokens !== undefined) out.maxTokens = maxTokens
  const policy = nonEmpty(v.policy, '--policy')
  if (policy !== undefined) out.policy = policy
  return out
}

/** The one argument a command takes (an allocation id, a file). */
function oneArgument (positionals: string[], what: string): string {
  if (positionals.length === 0) throw new UsageError(`${what} is required`)
  if (positionals.length > 1) throw new UsageError(`give one ${what}, got ${positionals.length} arguments`)
  const arg = positionals[0]!
  if (arg.trim() === '') throw new UsageError(`${what} must not be empty`)
  return arg
}


// ---------------------------------------------------------------------------------------------
// the memory commands: memory create | insert | search | info | list | delete

/** `flexnode memory <action>`: what each action was given, checked. */
export type MemoryOptions = NodeApiOptions & (
  | { action: 'create', config: CollectionConfig & { distance: Distance } }
  /** `file` resolved; undefined: the points come from stdin */
  | { action: 'insert', collection: string, file?: string, writeConsistency?: WriteConsistency }
  | { action: 'search', collection: string, query: SearchQuery & { vector?: number[] } }
  | { action: 'info', collection: string }
  | { action: 'delete', collection: string }
  | { action: 'list' }
)

const MEMORY_FLAGS = {
  dimensions: { type: 'string' },
  distance: { type: 'string' },
  shards: { type: 'string' },
  replication: { type: 'string' },
  'embedding-model': { type: 'string' },
  file: { type: 'string' },
  consistency: { type: 'string' },
  vector: { type: 'string' },
  text: { type: 'string' },
  k: { type: 'string', short: 'k' },
  ef: { type: 'string' },
  filter: { type: 'string' }
} as const

/** The flags each action takes, besides --data-dir, --json and --help. */
const MEMORY_ACTION_FLAGS: Record<MemoryAction, ReadonlyArray<keyof typeof MEMORY_FLAGS>> = {
  create: ['dimensions', 'distance', 'shards', 'replication', 'embedding-model'],
  insert: ['file', 'consistency'],
  search: ['vector', 'text', 'k', 'ef', 'filter'],
  info: [],
  list: [],
  delete: []
}

const flagName = (key: string): string => key === 'k' ? '-k' : `--${key}`

/** The collection a memory action names: one argument, a name the node takes (`COLLECTION_NAME`). */
function collectionOf (positionals: string[], action: MemoryAction): string {
  if (positionals.length === 0) throw new UsageError(`memory ${action} needs a collection name`)
  if (positionals.length > 1) throw new UsageError(`memory ${action} takes one collection name, got ${positionals.length} arguments: ${positionals.map(p => JSON.stringify(p)).join(' ')}`)
  const name = positionals[0]!
  if (!COLLECTION_NAME.test(name)) throw new UsageError(`a collection name is 1..64 letters, digits, _ or -, got ${JSON.stringify(name)}`)
  return name
}

/** The memory capability's own check of a flag's value (its field named as the flag), its error a usage error. */
function memoryCheck<T> (flag: string, check: () => T): T {
  try {
    return check()
  } catch (err) {
    if (err instanceof InvalidVectorError) throw new UsageError(err.message, flag)
    throw err
  }
}

/** A JSON flag's value, parsed; malformed JSON is a usage error naming the flag. */
function jsonFlag (value: string, flag: string, example: string): unknown {
  try {
    return JSON.parse(value)
  } catch (err) {
    throw new UsageError(`${flag} must be JSON such as ${example}: ${err instanceof Error ? err.message : String(err)}`, flag)
  }
}

/** `--vector '[0.1, 0.2]'`: a non-empty JSON array of finite numbers (as 32-bit floats too). */
export function parseVectorFlag (value: string): number[] {
  const v = jsonFlag(value, '--vector', "'[0.1, 0.2, 0.3]'")
  if (!Array.isArray(v) || v.length === 0) throw new UsageError(`--vector must be a non-empty JSON array of numbers such as '[0.1, 0.2, 0.3]', got ${JSON.stringify(value.slice(0, 80))}`, '--vector')
  if (v.length > MAX_DIMENSIONS) throw new UsageError(`--vector has ${v.length} numbers; a collection has at most ${MAX_DIMENSIONS} dimensions`, '--vector')
  memoryCheck('--vector', () => validateVector(v, v.length, '--vector'))
  return v as number[]
}

/** `--filter '{"lang":"en","topic":{"in":["a","b"]}}'`: per key, a value or `{"in": [values]}`. */
export function parseFilterFlag (value: string): Filter {
  const f = jsonFlag(value, '--filter', `'{"lang": "en"}'`)
  const filter = memoryCheck('--filter', () => validateFilter(f, '--filter'))
  if (Object.keys(filter).length === 0) throw new UsageError('--filter must name at least one metadata key', '--filter')
  return filter
}

export function parseMemoryArgs (args: string[], env: NodeJS.ProcessEnv = process.env): MemoryOptions | 'help' {
  const { values: v, positionals } = parseCommandLine(args, { ...NODE_API_FLAGS, ...MEMORY_FLAGS })
  if (v.help === true) return 'help'
  const [action, ...rest] = positionals
  if (action === undefined) throw new UsageError(`memory needs an action: ${MEMORY_ACTIONS.join(', ')}`)
  if (!(MEMORY_ACTIONS as readonly string[]).includes(action)) throw new UsageError(`unknown memory action ${JSON.stringify(action)}: expected ${MEMORY_ACTIONS.join(', ')}`)
  const a = action as MemoryAction
  const allowed = MEMORY_ACTION_FLAGS[a]
  for (const key of Object.keys(v)) {
    if (key in MEMORY_FLAGS && !(allowed as readonly string[]).includes(key)) {
      const flag = flagName(key)
      throw new UsageError(`${flag} is not an option of memory ${a} (${allowed.length === 0 ? 'it takes none besides --data-dir and --json' : `its options: ${allowed.map(flagName).join(', ')}`})`, flag)
    }
  }
  const base = nodeApiOptions(v, env)
  switch (a) {
    case 'list':
      if (rest.length > 0) throw new UsageError(`memory list takes no arguments, got ${JSON.stringify(rest[0])}`)
      return { ...base, action: a }
    case 'info':
    case 'delete':
      return { ...base, action: a, collection: collectionOf(rest, a) }
    case 'create': {
      const name = collectionOf(rest, a)
      if (v.dimensions === undefined) throw new UsageError('--dimensions is required: the numbers per vector', '--dimensions')
      const distance = v.distance ?? 'cosine'
      if (!(DISTANCES as readonly string[]).includes(distance)) throw new UsageError(`--distance must be one of ${DISTANCES.join(', ')}, got ${JSON.stringify(distance)}`, '--distance')
      const config: CollectionConfig & { distance: Distance } = { name, dimensions: integer(v.dimensions, '--dimensions', 1, MAX_DIMENSIONS), distance: distance as Distance }
      if (v.shards !== undefined) config.shard_count = integer(v.shards, '--shards', 1, MAX_SHARD_COUNT)
      if (v.replication !== undefined) config.replication_factor = integer(v.replication, '--replication', 1, MAX_REPLICATION_FACTOR)
      const model = nonEmpty(v['embedding-model'], '--embedding-model')
      if (model !== undefined) config.embedding_model = model
      return { ...base, action: a, config }
    }
    case 'insert': {
      // `insert <name> -` reads stdin, as `--file -` does
      const stdinArg = rest.length === 2 && rest[1] === '-'
      const collection = collectionOf(stdinArg ? rest.slice(0, 1) : rest, a)
      if (stdinArg && v.file !== undefined) throw new UsageError('give the points as --file <file> or as -, not both', '--file')
      const out: MemoryOptions = { ...base, action: a, collection }
      if (v.file !== undefined && v.file !== '-') {
        if (v.file.trim() === '') throw new UsageError('--file must name a file (or - for stdin)', '--file')
        out.file = resolve(v.file)
      }
      if (v.consistency !== undefined) {
        if (!(WRITE_CONSISTENCIES as readonly string[]).includes(v.consistency)) throw new UsageError(`--consistency must be one of ${WRITE_CONSISTENCIES.join(', ')}, got ${JSON.stringify(v.consistency)}`, '--consistency')
        out.writeConsistency = v.consistency as WriteConsistency
      }
      return out
    }
    case 'search': {
      const collection = collectionOf(rest, a)
      if ((v.vector === undefined) === (v.text === undefined)) throw new UsageError(v.vector === undefined ? 'search needs --vector <json> or --text <text>' : 'give --vector or --text, not both', v.vector === undefined ? '--vector' : '--text')
      const k = v.k === undefined ? MEMORY_DEFAULT_K : integer(v.k, '-k', 1, MAX_K)
      const query: SearchQuery & { vector?: number[] } = { k }
      if (v.vector !== undefined) query.vector = parseVectorFlag(v.vector)
      if (v.text !== undefined) {
        if (v.text.trim() === '') throw new UsageError('--text must not be empty', '--text')
        query.text = v.text
      }
      if (v.ef !== undefined) {
        query.ef = integer(v.ef, '--ef', 1, MAX_EF)
        if (query.ef < k) throw new UsageError(`--ef must be at least -k (${k}), got ${query.ef}`, '--ef')
      }
      if (v.filter !== undefined) query.filter = parseFilterFlag(v.filter)
      return { ...base, action: a, collection, query }
    }
  }
}
