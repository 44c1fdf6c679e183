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
 * ```
 * `start` prints exactly one `FLEXNODE_READY {json}` line on stdout when the node is ready;
 * logs go to stderr. SIGINT/SIGTERM stop the node cleanly, also during start-up (what started
 * is stopped and the process exits without READY). `peers` and `status` inspect the node
 * running on a data dir (see `inspect.ts`); they exit 1 when none runs there. `models`, `infer` and
 * `moe` use that node's HTTP API (see `inference.ts`), with the same exit codes, and so do the
 * resources commands (see `resources.ts`; `task run` exits with the task's exit code) and the
 * memory commands (see `memory.ts`).
 */
import {
  inspectUsage, NODE_API_COMMANDS, nodeApiUsage, parseAllocateArgs, parseAllocationsArgs, parseAvailableArgs, parseInferArgs, parseInspectArgs,
  parseArtifactsArgs, parseGetArgs, parseMemoryArgs, parseModelsArgs, parseMoeArgs, parsePinArgs, parseReleaseArgs, parseRenewArgs, parseStartArgs, parseTaskArgs, START_USAGE, UsageError,
  type InspectCommand, type NodeApiCommand
} from '../config.ts'
import { READY_PREFIX, START_ABORT_GRACE_MS } from '../constants.ts'

const USAGE = `Usage: flexnode <command> [options]

Commands:
  start     run a node (see flexnode start --help)
  backup    back up the node: source chains, keystore (encrypted), artifact pins
            (flexnode backup [--to <file> | postgres://…] [--data-dir <dir>] [--json])
  restore   rebuild a data dir from a backup
            (flexnode restore --from <file | postgres://…> --data-dir <new dir> [--json])
  peers     list the nodes the running node knows and its connected peers
            (flexnode peers [--data-dir <dir>] [--json])
  status    show the running node: identity, addresses, apps, peers, DHT op counts
            (flexnode status [--data-dir <dir>] [--json])
  models    list the running node's models, load or unload one, publish one to the mesh or
            pull one from it by CID (flexnode models [list | load <id> | unload <id> |
            publish <id> | pull <cid> [--load]] [--data-dir <dir>] [--json])
  infer     ask the running node one prompt, on one model or the mesh's pick
            (flexnode infer <prompt> [--model <id>] [--max-tokens <n>] [--temperature <t>]
             [--seed <n>] [--stream] [--data-dir <dir>] [--json])
  moe       ask several models of the mesh at once, answer by weighted consensus
            (flexnode moe <prompt> --task-type <code_generation|reasoning|general|review>
             [--max-tokens <n>] [--policy <name>] [--no-consensus] [--data-dir <dir>] [--json])
  allocate  lease resources of the mesh, placed by the scheduler
            (flexnode allocate --type <compute|inference|storage|memory> [--cpu-cores <n>]
             [--memory-gb <n>] [--gpu] [--storage-gb <n>] [--model <name>]
             [--locality <nearest|cheapest|fastest|any>] [--duration <s>] [--workload-class <c>]
             [--node <id>] [--explain] [--data-dir <dir>] [--json])
  release   end a lease (flexnode release <allocation_id> [--data-dir <dir>] [--json])
  renew     extend a lease (flexnode renew <allocation_id> --duration <s> [--data-dir <dir>] [--json])
  available what the mesh offers, has leased and has free, per node and in total
            (flexnode available [--type <type>] [requirements] [--data-dir <dir>] [--json])
  allocations
            this node's leases, held and granted (flexnode allocations [--data-dir <dir>] [--json])
  task      run a WebAssembly task on the mesh; its output goes to stdout
            (flexnode task run <file.wasm> [--input <file>] [--memory-mb <n>] [--cpu-ms <n>]
             [--wall-ms <n>] [--node <id>] [--explain] [--data-dir <dir>] [--json])
  memory    the mesh's vector memory: collections, points, nearest-neighbour search
            (flexnode memory create <name> --dimensions <n> [--distance <d>] [--shards <n>]
             [--replication <n>] [--embedding-model <id>] · memory insert <name> [--file <f> | -]
             [--consistency <c>] · memory search <name> (--vector <json> | --text <t>) [-k <n>]
             [--ef <n>] [--filter <json>] · memory info|delete <name> · memory list;
             all with [--data-dir <dir>] [--json]; see flexnode memory --help)
  pin       add a file to the mesh's artifact store (IPFS) and record it; prints its CID
            (flexnode pin <file> [--name <n>] [--cid-version <0|1>] [--raw-leaves]
             [--chunker size-<n>] [--min <n>] [--max <n>] [--data-dir <dir>] [--json])
  get       fetch an artifact by CID from this node or the mesh, verified
            (flexnode get <cid> [-o <file>] [--data-dir <dir>] [--json])
  artifacts the mesh's artifact records, an artifact's providers, pin or unpin one here
            (flexnode artifacts [list [--limit <n>] | providers <cid> | pin <cid> | unpin <cid>]
             [--data-dir <dir>] [--json])
  audit     the node's tamper-evident audit log, and its verification (here or in Postgres)
            (flexnode audit [--since <time|duration>] [--kind <k>] [--json] ·
             audit verify [--db <postgres://…>] [--json]; exit 1 when verification fails)
  mcp       an MCP server on stdio offering the running node's tools to an AI agent
            (flexnode mcp [--data-dir <dir>] [--node http://host:port] [--api-token <t>])
  help      show this help
`

async function inspect (command: InspectCommand, args: string[]): Promise<number> {
  const opts = parseInspectArgs(args)
  if (opts === 'help') {
    process.stdout.write(inspectUsage(command))
    return 0
  }
  // loaded on demand: `start` never needs the Conductor API client code
  const { peersCommand, statusCommand } = await import('./inspect.ts')
  return command === 'peers' ? await peersCommand(opts) : await statusCommand(opts)
}

async function nodeApi (command: NodeApiCommand, args: string[]): Promise<number> {
  const help = (): number => { process.stdout.write(nodeApiUsage(command)); return 0 }
  // parsed before the import, so a usage error costs nothing; loaded on demand like inspect.ts
  switch (command) {
    case 'models': {
      const opts = parseModelsArgs(args)
      if (opts === 'help') return help()
      return opts.action === 'pull' || opts.action === 'publish'
        ? await (await import('./artifacts.ts')).modelArtifactCommand(opts)
        : await (await import('./inference.ts')).modelsCommand(opts)
    }
    case 'infer': {
      const opts = parseInferArgs(args)
      return opts === 'help' ? help() : await (await import('./inference.ts')).inferCommand(opts)
    }
    case 'moe': {
      const opts = parseMoeArgs(args)
      return opts === 'help' ? help() : await (await import('./inference.ts')).moeCommand(opts)
    }
    case 'allocate': {
      const opts = parseAllocateArgs(args)
      return opts === 'help' ? help() : await (await import('./resources.ts')).allocateCommand(opts)
    }
    case 'release': {
      const opts = parseReleaseArgs(args)
      return opts === 'help' ? help() : await (await import('./resources.ts')).releaseCommand(opts)
    }
    case 'renew': {
      const opts = parseRenewArgs(args)
      return opts === 'help' ? help() : await (await import('./resources.ts')).renewCommand(opts)
    }
    case 'available': {
      const opts = parseAvailableArgs(args)
      return opts === 'help' ? help() : await (await import('./resources.ts')).availableCommand(opts)
    }
    case 'allocations': {
      const opts = parseAllocationsArgs(args)
      return opts === 'help' ? help() : await (await import('./resources.ts')).allocationsCommand(opts)
    }
    case 'task': {
      const opts = parseTaskArgs(args)
      return opts === 'help' ? help() : await (await import('./resources.ts')).taskRunCommand(opts)
    }
    case 'memory': {
      const opts = parseMemoryArgs(args)
      return opts === 'help' ? help() : await (await import('./memory.ts')).memoryCommand(opts)
    }
    case 'pin': {
      const opts = parsePinArgs(args)
      return opts === 'help' ? help() : await (await import('./artifacts.ts')).pinCommand(opts)
    }
    case 'get': {
      const opts = parseGetArgs(args)
      return opts === 'help' ? help() : await (await import('./artifacts.ts')).getCommand(opts)
    }
    case 'artifacts': {
      const opts = parseArtifactsArgs(args)
      return opts === 'help' ? help() : await (await import('./artifacts.ts')).artifactsCommand(opts)
    }
  }
}

const isNodeApiCommand = (command: string | undefined): command is NodeApiCommand => (NODE_API_COMMANDS as readonly unknown[]).includes(command)

async function start (args: string[]): Promise<number> {
  const opts = await parseStartArgs(args)
  if (opts === 'help') {
    process.stdout.write(START_USAGE)
    return 0
  }
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

export async function main (argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case 'backup':
      case 'restore':
        return await (await import('./backup.ts')).backupCli(command, rest)
      case 'start':
        return await start(rest)
      case 'peers':
      case 'status':
        return await inspect(command, rest)
      case 'audit':
        return await (await import('./audit.ts')).auditMain(rest)
      case 'mcp':
        return await (await import('./mcp.ts')).mcpMain(rest)
      case 'help':
      case '--help':
      case '-h':
      case undefined:
        process.stdout.write(USAGE)
        return command === undefined ? 2 : 0
      default:
        if (isNodeApiCommand(command)) return await nodeApi(command, rest)
        throw new UsageError(`unknown command ${JSON.stringify(command)}`)
    }
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`flexnode: ${err.message}\n`)
      console.error(command === 'start'
        ? START_USAGE
        : command === 'peers' || command === 'status'
          ? inspectUsage(command)
          : isNodeApiCommand(command) ? nodeApiUsage(command) : USAGE)
      return 2
    }
    const name = err instanceof Error ? err.name : 'Error'
    console.error(`flexnode: ${name}: ${err instanceof Error ? err.message : String(err)}`)
    return 1
  }
}

process.exitCode = await main(process.argv.slice(2))
