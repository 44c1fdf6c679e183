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
 * const opts = nodeApiOptions({ 'data-dir': '/srv/flexnode', json: true }, process.env)
 * ```
 */
import { resolve } from 'node:path'
import { DEFAULT_DATA_DIR } from './constants.ts'
import type { MOE_TASK_TYPES } from './http/constants.ts'
import { UsageError } from './config/errors.ts'

export { UsageError } from './config/errors.ts'
export { checkPostgresUrl, LOG_LEVELS, type LogLevel, type StartOptions } from './config/start.ts'
export { parseStartArgs } from './config/start-command.ts'

/** Options of the commands that inspect a running node: `flexnode peers`, `flexnode status`. */
export interface InspectOptions {
  /** data dir of the running node. @default ~/.flexnode (or FLEXNODE_DATA_DIR) */
  dataDir: string
  /** print one JSON document instead of a table. @default false */
  json: boolean
}

// ---------------------------------------------------------------------------------------------
// the options of the commands that use the running node's HTTP API (declared in commander:
// cli/inference-command.ts, resources-command.ts, memory-command.ts, artifacts-command.ts)

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

