/**
 * What the commander commands that talk to a node share: the options every one has (`--data-dir`,
 * `--node`, `--api-token`, `--json`), option texts taken from the operations' zod schemas
 * (`.describe()`), value parsers whose refusal is a usage error (exit 2), and the local check of
 * an operation's input with that operation's own schema, so the CLI refuses what the HTTP API and
 * MCP refuse, with the same reason, before it contacts any node.
 *
 * ```ts
 * cmd.addOption(schemaOption('--duration <s>', allocateInput.shape.duration_seconds).argParser(integerArg(60, 86400)))
 * const input = checkedInput(allocateInput, { resource_type: 'compute', duration_seconds: 600 })
 * ```
 */
import { type Command, InvalidArgumentError, Option } from 'commander'
import type { z } from 'zod'
import { parseInput } from '../api/validate.ts'
import { nodeApiOptions, UsageError, type NodeApiOptions } from '../config.ts'

/** What a command module needs of the program: the environment (with the program's --node and --api-token) and where the exit code goes. */
export interface CommandContext {
  env: () => NodeJS.ProcessEnv
  done: (code: number) => void
}

/** A schema's `.describe()` text, looked for through `.optional()` and `.default()` wrappers. */
export function describeField (schema: z.ZodType): string {
  for (let s: unknown = schema; s !== undefined;) {
    const description = (s as { description?: string }).description
    if (description !== undefined) return description
    const unwrap = (s as { unwrap?: () => unknown }).unwrap
    s = typeof unwrap === 'function' ? unwrap.call(s) : undefined
  }
  throw new Error('a schema field without .describe(): describe it in its schema')
}

/** An option whose description is the schema field's, with `more` after it. */
export function schemaOption (flags: string, field: z.ZodType, more = ''): Option {
  return new Option(flags, `${describeField(field)}${more}`)
}

/** An integer from `min` to `max`, spelled plainly. */
export const integerArg = (min: number, max: number) => (value: string): number => {
  if (!/^\d{1,9}$/.test(value) || Number(value) < min || Number(value) > max) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`)
  return Number(value)
}

/** A non-negative decimal amount (`2`, `0.5`); the node checks it is not absurd. */
export const amountArg = (value: string): number => {
  if (!/^\d{1,9}(\.\d{1,6})?$/.test(value)) throw new InvalidArgumentError('must be a non-negative number')
  return Number(value)
}

/** A non-empty name of at most 256 characters. */
export const nameArg = (value: string): string => {
  if (value.trim() === '' || value.length > 256) throw new InvalidArgumentError('must be a non-empty name of at most 256 characters')
  return value
}

/** A non-empty argument (an id, a file). */
export const nonEmptyArg = (value: string): string => {
  if (value.trim() === '') throw new InvalidArgumentError('must not be empty')
  return value
}

/**
 * The options every command talking to a node has. `--node` is the node's URL unless the command
 * gives it another meaning (`allocate`, `task run`: the node to place on; the URL is then
 * `flexnode --node <url> <command>` or FLEXNODE_NODE).
 */
export function addNodeApiOptions (cmd: Command, { nodeIsUrl = true } = {}): Command {
  cmd.option('--data-dir <dir>', 'data directory of the running node [env: FLEXNODE_DATA_DIR] (default: ~/.flexnode)')
  if (nodeIsUrl) cmd.option('--node <url>', 'a node\'s HTTP API, http://host:port, here or on another host [env: FLEXNODE_NODE]')
  return cmd
    .option('--api-token <token>', 'bearer token for a node that needs one [env: FLEXNODE_API_TOKEN] (default: the data dir\'s local token)')
    .option('--json', 'print JSON instead of text')
    .allowExcessArguments(false)
}

/** The parsed common options, checked (`--node` a URL, `--api-token` a token, `--data-dir` not empty). */
export function nodeApiOptionsOf (cmd: Command, env: NodeJS.ProcessEnv, { nodeIsUrl = true } = {}): NodeApiOptions {
  const o = cmd.opts<{ dataDir?: string, node?: string, apiToken?: string, json?: boolean }>()
  return nodeApiOptions({ 'data-dir': o.dataDir, json: o.json, node: nodeIsUrl ? o.node : undefined, 'api-token': o.apiToken }, env, nodeIsUrl)
}

/** `input` parsed by an operation's input schema; what it refuses is a usage error with the reason the HTTP API and MCP give. */
export function checkedInput<S extends z.ZodType> (schema: S, input: unknown): z.output<S> {
  return parseInput(schema, input, 'arguments', (message, param) => new UsageError(message, param))
}

/** `{ key: value }` when the value is given, else `{}`: for building an input from optional flags. */
export const given = <K extends string, V> (key: K, value: V | undefined): Partial<Record<K, V>> =>
  (value === undefined ? {} : { [key]: value }) as Partial<Record<K, V>>
