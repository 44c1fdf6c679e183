/**
 * `flexnode start`'s options on a commander `Command`, generated from the config schema
 * (`START_FIELDS`): each flag's help names its default and its environment variable.
 *
 * ```ts
 * const opts = await parseStartArgs(['--network', 'testnet', '--http-port', '8080'], process.env)
 * ```
 */
import { Command, CommanderError, Option } from 'commander'
import { UsageError } from './errors.ts'
import { camelName, envName, flagName, flagSpec, loadStartConfig, START_FIELDS, type LoadedStartConfig, type StartOptions } from './start.ts'

/** `--name <arg>` repeated: the values in order. */
const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value]

/** Adds every option of the config schema (but those in `except`), and `--config <file>`, to `cmd`. */
export function addStartOptions (cmd: Command, options: { except?: string[] } = {}): Command {
  cmd.addOption(new Option('--config <file>', 'read options from this YAML file (keys as the flags\' names) [env: FLEXNODE_CONFIG] (default: <data-dir>/flexnode.yaml when it exists)'))
  for (const f of START_FIELDS) {
    if (options.except?.includes(f.name) === true) continue
    const help = `${f.description}${f.multiple === true ? ' (repeatable)' : ''} [env: ${envName(f.name)}]${f.defaultText !== undefined ? ` (default: ${f.defaultText})` : ''}`
    const option = new Option(flagSpec(f), help)
    if (f.multiple === true) option.argParser(collect)
    cmd.addOption(option)
  }
  return cmd
}

/** The schema's flags given on the command line (not commander's implied defaults), by camelCase name. */
export function givenStartFlags (cmd: Command): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const f of START_FIELDS) {
    const key = camelName(f.name)
    if (cmd.options.some(o => o.long === flagName(f)) && cmd.getOptionValueSource(key) === 'cli') out[key] = cmd.getOptionValue(key)
  }
  return out
}

/** The effective configuration of a parsed `start` (or `config show`) command. */
export async function startConfigOf (cmd: Command, env: NodeJS.ProcessEnv = process.env): Promise<LoadedStartConfig> {
  const config = cmd.getOptionValue('config') as string | undefined
  return await loadStartConfig({ flags: givenStartFlags(cmd), env, ...(config !== undefined ? { configFile: config } : {}) })
}

/** A commander error (unknown option, missing value) as a UsageError. */
export function usageErrorOf (err: CommanderError): UsageError {
  return new UsageError(err.message.replace(/^error: /, ''))
}

/**
 * `flexnode start`'s arguments, parsed and layered over the config file and the environment;
 * 'help' when help is asked for. A bad flag or value is a UsageError.
 */
export async function parseStartArgs (args: string[], env: NodeJS.ProcessEnv = process.env): Promise<StartOptions | 'help'> {
  const end = args.indexOf('--')
  if ((end < 0 ? args : args.slice(0, end)).some(a => a === '-h' || a === '--help')) return 'help'
  const cmd = addStartOptions(new Command('start'))
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} })
    .allowExcessArguments(false)
  try {
    cmd.parse(args, { from: 'user' })
  } catch (err) {
    if (err instanceof CommanderError) throw usageErrorOf(err)
    throw err
  }
  return (await startConfigOf(cmd, env)).options
}
