/**
 * The `flexnode` command line.
 *
 * ```
 * flexnode start --network local --data-dir ~/.flexnode
 * flexnode peers --data-dir ~/.flexnode [--json]
 * flexnode status --data-dir ~/.flexnode [--json]
 * flexnode models [load|unload <id>] [--data-dir ~/.flexnode] [--json]
 * flexnode infer "Hello" [--model <id>] [--stream] [--json]
 * flexnode moe "Hello" --task-type general [--json]
 * flexnode allocate --type compute --cpu-cores 2 [--explain] [--json]
 * flexnode release|renew <allocation_id> · flexnode available · flexnode allocations
 * flexnode task run hello.wasm --input in.txt [--json]
 * flexnode memory create docs --dimensions 384 · memory insert docs --file points.jsonl
 * flexnode memory search docs --vector '[…]' -k 10 · memory info|delete docs · memory list
 * flexnode pin build.tar · get <cid> -o build.tar · artifacts [providers <cid>]
 * flexnode models publish <id> · models pull <cid> --load
 * flexnode config show [--json] · keys show · keys token [--name n | --list | --revoke id] · mcp
 * flexnode --version · flexnode --node http://10.0.0.5:8080 --api-token $TOKEN status|infer|… (or FLEXNODE_NODE, FLEXNODE_API_TOKEN)
 * ```
 * The program is commander's (`program()`, which `npm run docs` also renders into the README's
 * command reference; `index.ts` runs it): every command has `--help`; exit 0 ok, 1 failure, 2 usage error
 * (an unknown command or flag, a bad value, a bad config file), with a one-line reason on stderr
 * and never a stack trace. `start`'s options come from one schema (`config/start.ts`): defaults <
 * the YAML config file < `FLEXNODE_*` < flags. `start` prints exactly one `FLEXNODE_READY {json}` line on stdout when the node is ready;
 * logs go to stderr. SIGINT/SIGTERM stop the node cleanly, also during start-up (what started
 * is stopped and the process exits without READY). `peers` and `status` inspect the node
 * running on a data dir (see `inspect.ts`); they exit 1 when none runs there. `models`, `infer` and
 * `moe` use that node's HTTP API (declared in `inference-command.ts`, run by `inference.ts`), with
 * the same exit codes, and so do the
 * resources commands (declared from their operations' schemas in `resources-command.ts`, run by
 * `resources.ts`; `task run` exits with the task's exit code) and the memory commands (declared
 * in `memory-command.ts`, run by `memory.ts`) and the artifact commands (`artifacts-command.ts`,
 * `artifacts.ts`).
 */
import { resolve } from 'node:path'
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { UsageError, type StartOptions } from '../config.ts'
import { FLEXNODE_VERSION } from '../version.ts'
import { addStartOptions, startConfigOf } from '../config/start-command.ts'
import { DEFAULT_DATA_DIR, READY_PREFIX, START_ABORT_GRACE_MS } from '../constants.ts'
import { tokenNameProblem } from '../http/tokens.ts'
import { configShowCommand } from './config.ts'
import { addArtifactCommands } from './artifacts-command.ts'
import { addAuditCommands } from './audit-command.ts'
import { addBackupCommands } from './backup-command.ts'
import { addInferenceCommands } from './inference-command.ts'
import { addMemoryCommands } from './memory-command.ts'
import { addResourceCommands } from './resources-command.ts'

async function start (opts: StartOptions): Promise<number> {
  // Signal handlers go in before anything loads or starts. A signal during start-up aborts it:
  // the step in progress is abandoned, what already started is stopped, and the process exits
  // (at the latest START_ABORT_GRACE_MS later, should a step not let go). After READY a signal
  // stops the node cleanly; a second signal exits at once.
  const stopRequested = Promise.withResolvers<NodeJS.Signals>()
  const startup = new AbortController()
  let starting = true
  let signals = 0
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++signals > 1) {
      console.error(`flexnode: ${signal} again, exiting now`)
      process.exit(130)
    }
    if (starting) {
      startup.abort()
      setTimeout(() => {
        console.error(`flexnode: start-up did not stop within ${START_ABORT_GRACE_MS} ms of ${signal}; exiting`)
        process.exit(1)
      }, START_ABORT_GRACE_MS).unref()
    }
    stopRequested.resolve(signal)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  // loaded on demand, so `peers` and `status` do not pay for libp2p and the conductor
  const [{ createLogger }, { FlexNode }] = await Promise.all([import('../logger.ts'), import('../node.ts')])
  const logger = createLogger({ level: opts.logLevel, json: opts.json })
  const interrupted = async (): Promise<never> => {
    console.error(`flexnode: start-up interrupted by ${await stopRequested.promise}; what had started is stopped`)
    // a step abandoned mid-way (a model loading in a worker) may still hold the event loop
    process.exit(0)
  }
  if (startup.signal.aborted) return await interrupted()
  let node: Awaited<ReturnType<typeof FlexNode.start>>
  try {
    node = await FlexNode.start({ ...opts, logger, signal: startup.signal })
  } catch (err) {
    if (startup.signal.aborted) return await interrupted()
    throw err
  }
  starting = false
  if (signals === 0) process.stdout.write(`${READY_PREFIX} ${JSON.stringify(node.info)}\n`)
  await stopRequested.promise
  try {
    await node.stop()
  } catch (err) {
    console.error(`flexnode: stop failed: ${err instanceof Error ? err.message : String(err)}`)
    return 1
  }
  return 0
}


interface Outcome { code: number }

/** `keys token --name`'s value, or a usage error (exit 2). */
function tokenName (name: string): string {
  const problem = tokenNameProblem(name)
  if (problem !== undefined) throw new InvalidArgumentError(problem.replace(/^--name must be/, 'must be'))
  return name
}

/** `env` with the program's own --node and --api-token (given before the command) over FLEXNODE_NODE and FLEXNODE_API_TOKEN. */
function connectionEnv (prog: Command, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { node, apiToken } = prog.opts<{ node?: string, apiToken?: string }>()
  return { ...env, ...(node !== undefined ? { FLEXNODE_NODE: node } : {}), ...(apiToken !== undefined ? { FLEXNODE_API_TOKEN: apiToken } : {}) }
}

/** The `flexnode` program: commander parses the command line, each action sets `outcome.code`. */
export function program (outcome: Outcome, env: NodeJS.ProcessEnv = process.env): Command {
  const prog = new Command('flexnode')
    .description('a peer-to-peer node of the flexnode mesh: inference, vector memory, artifacts, resources')
    .version(FLEXNODE_VERSION, '-V, --version', 'print flexnode\'s version')
    .option('--node <url>', 'the node\'s HTTP API, http://host:port, for every command that talks to a node [env: FLEXNODE_NODE] (default: the node running on --data-dir)')
    .option('--api-token <token>', 'bearer token for a node that requires one [env: FLEXNODE_API_TOKEN] (default: the data dir\'s local token)')
    .enablePositionalOptions()
    .showSuggestionAfterError()
    .helpCommand('help [command]', 'show the help of flexnode or of a command')
    .configureOutput({ outputError: (text, write) => { write(`flexnode: ${text.replace(/^error: /, '')}`) } })
    .exitOverride()
  const exitOverride = (cmd: Command): Command => cmd.exitOverride().configureOutput({ outputError: (text, write) => { write(`flexnode: ${text.replace(/^error: /, '')}`) } })

  exitOverride(addStartOptions(prog.command('start')
    .description('run a node; prints one FLEXNODE_READY {json} line on stdout when it is ready (options: flags > FLEXNODE_* > the config file > defaults)')
    .allowExcessArguments(false)))
    .action(async (_opts: unknown, cmd: Command) => {
      const { options } = await startConfigOf(cmd, env)
      outcome.code = await start(options)
    })

  const config = exitOverride(prog.command('config').description('the configuration of flexnode start (config show)'))
  exitOverride(addStartOptions(config.command('show')
    .description('the effective configuration of flexnode start, given these options, and where each value came from (default, file, env, flag)')
    .allowExcessArguments(false)
    .option('--json', 'print JSON: {file, options: {<key>: {value, source}}}'), { except: ['json'] }))
    .action(async (_opts: unknown, cmd: Command) => {
      outcome.code = await configShowCommand(await startConfigOf(cmd, env), { json: cmd.getOptionValue('json') === true })
    })


  const ctx = { env: () => connectionEnv(prog, env), done: (code: number) => { outcome.code = code } }
  addInferenceCommands(prog, ctx)
  addResourceCommands(prog, ctx)
  addMemoryCommands(prog, ctx)
  addArtifactCommands(prog, ctx)

  const dataDirOf = (cmd: Command): string => {
    const dir = (cmd.getOptionValue('dataDir') as string | undefined) ?? env.FLEXNODE_DATA_DIR ?? DEFAULT_DATA_DIR
    if (dir.trim() === '') throw new UsageError('--data-dir must not be empty', '--data-dir')
    return resolve(dir)
  }
  for (const [name, description] of [
    ['peers', 'list the nodes the running node knows (agent_registry) and which of them are connected'],
    ['status', 'show the running node: identity, addresses, ports, apps, peers and DHT op counts']
  ] as const) {
    prog.command(name)
      .description(description)
      .option('--data-dir <dir>', 'data directory of the running node [env: FLEXNODE_DATA_DIR] (default: ~/.flexnode)')
      .option('--json', 'print one JSON document instead of a table')
      .allowExcessArguments(false)
      .action(async (o: { json?: boolean }, cmd: Command) => {
        const opts = { dataDir: dataDirOf(cmd), json: o.json === true }
        // loaded on demand: `start` never needs the Conductor API client code
        const { peersCommand, statusCommand } = await import('./inspect.ts')
        outcome.code = name === 'peers' ? await peersCommand(opts) : await statusCommand(opts)
      })
  }
  addAuditCommands(prog, ctx, dataDirOf)
  addBackupCommands(prog, ctx, dataDirOf)
  exitOverride(prog.command('mcp')
    .description('an MCP server on stdio offering the running node\'s tools to an AI agent (forwards to the node\'s /mcp)')
    .option('--data-dir <dir>', 'the running node\'s data dir [env: FLEXNODE_DATA_DIR] (default: ~/.flexnode)')
    .option('--node <url>', 'the node\'s HTTP API instead, e.g. http://10.0.0.5:8080 [env: FLEXNODE_NODE]')
    .option('--api-token <token>', 'bearer token for the node\'s API [env: FLEXNODE_API_TOKEN] (default: the data dir\'s local token, for the data dir\'s own node)')
    .allowExcessArguments(false))
    .action(async (o: { node?: string, apiToken?: string }, cmd: Command) => {
      const conn = connectionEnv(prog, env)
      const node = o.node ?? (conn.FLEXNODE_NODE === '' ? undefined : conn.FLEXNODE_NODE)
      const token = o.apiToken ?? (conn.FLEXNODE_API_TOKEN === '' ? undefined : conn.FLEXNODE_API_TOKEN)
      const { mcpCommand } = await import('./mcp.ts')
      outcome.code = await mcpCommand({ dataDir: dataDirOf(cmd), ...(node === undefined ? {} : { node }), ...(token === undefined ? {} : { token }) })
    })

  const keys = exitOverride(prog.command('keys').description('this node\'s keys (keys show) and the HTTP API\'s bearer tokens (keys token)'))
  exitOverride(keys.command('show')
    .description('the agent key, peer id, keystore path and whether it is encrypted')
    .option('--data-dir <dir>', 'the node\'s data dir [env: FLEXNODE_DATA_DIR] (default: ~/.flexnode)')
    .option('--json', 'print JSON')
    .allowExcessArguments(false))
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const { keysShowCommand } = await import('./keys.ts')
      outcome.code = await keysShowCommand({ dataDir: dataDirOf(cmd), json: o.json === true })
    })
  exitOverride(keys.command('token')
    .description('issue a bearer token for the HTTP API (printed once), list the issued ones, or revoke one')
    .addOption(new Option('--name <name>', 'a name for the new token').argParser(tokenName).conflicts(['list', 'revoke']))
    .addOption(new Option('--list', 'list the issued tokens (id, name, created)').conflicts('revoke'))
    .option('--revoke <id|name>', 'revoke a token')
    .option('--data-dir <dir>', 'the node\'s data dir [env: FLEXNODE_DATA_DIR] (default: ~/.flexnode)')
    .option('--json', 'print JSON')
    .allowExcessArguments(false))
    .action(async (o: { json?: boolean, name?: string, list?: boolean, revoke?: string }, cmd: Command) => {
      const { keysTokenCommand } = await import('./keys.ts')
      outcome.code = await keysTokenCommand({
        dataDir: dataDirOf(cmd),
        json: o.json === true,
        ...(o.name !== undefined ? { name: o.name } : {}),
        ...(o.list === true ? { list: true } : {}),
        ...(o.revoke !== undefined ? { revoke: o.revoke } : {})
      })
    })
  return prog
}

/** The help printed after a usage error: the innermost command's that argv names. */
function usageAfterError (prog: Command, argv: string[]): string {
  let cmd = prog
  for (const arg of argv) {
    const sub = arg.startsWith('-') ? undefined : cmd.commands.find(c => c.name() === arg)
    if (sub !== undefined) cmd = sub
  }
  return cmd.helpInformation()
}

export async function main (argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const outcome: Outcome = { code: 0 }
  const prog = program(outcome, env)
  if (argv.length === 0) {
    process.stdout.write(prog.helpInformation())
    return 2
  }
  try {
    await prog.parseAsync(argv, { from: 'user' })
    return outcome.code
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') return err.exitCode === 0 ? 0 : 2
      // commander printed its one-line reason already; an unknown command gets a pointer to the help
      const usage = usageAfterError(prog, argv)
      process.stderr.write(err.code === 'commander.unknownCommand' && usage === prog.helpInformation() ? 'see flexnode --help\n' : `\n${usage}`)
      return 2
    }
    if (err instanceof UsageError) {
      console.error(`flexnode: ${err.message}\n`)
      process.stderr.write(usageAfterError(prog, argv))
      return 2
    }
    const name = err instanceof Error ? err.name : 'Error'
    console.error(`flexnode: ${name}: ${err instanceof Error ? err.message : String(err)}`)
    return 1
  }
}
