/**
 * The `flexnode` command line.
 *
 * ```
 * flexnode start --network local --data-dir ~/.flexnode
 * ```
 * `start` prints exactly one `FLEXNODE_READY {json}` line on stdout when the node is ready;
 * logs go to stderr. SIGINT/SIGTERM stop the node cleanly.
 */
import { parseStartArgs, START_USAGE, UsageError } from '../config.ts'
import { READY_PREFIX } from '../constants.ts'
import { createLogger } from '../logger.ts'
import { FlexNode } from '../node.ts'

const USAGE = `Usage: flexnode <command> [options]

Commands:
  start     run a node (see flexnode start --help)
  help      show this help
`

async function start (args: string[]): Promise<number> {
  const opts = await parseStartArgs(args)
  if (opts === 'help') {
    process.stdout.write(START_USAGE)
    return 0
  }
  const logger = createLogger({ level: opts.logLevel, json: opts.json })
  // Signal handlers go in before anything starts, so a SIGTERM that races the READY line (or
  // arrives during start-up) still stops the node cleanly instead of killing it mid-write.
  const stopRequested = Promise.withResolvers<NodeJS.Signals>()
  let signals = 0
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++signals > 1) {
      console.error(`flexnode: ${signal} again, exiting now`)
      process.exit(130)
    }
    stopRequested.resolve(signal)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const node = await FlexNode.start({ ...opts, logger })
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
      case 'start':
        return await start(rest)
      case 'help':
      case '--help':
      case '-h':
      case undefined:
        process.stdout.write(USAGE)
        return command === undefined ? 2 : 0
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`)
    }
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`flexnode: ${err.message}\n`)
      console.error(command === 'start' ? START_USAGE : USAGE)
      return 2
    }
    const name = err instanceof Error ? err.name : 'Error'
    console.error(`flexnode: ${name}: ${err instanceof Error ? err.message : String(err)}`)
    return 1
  }
}

process.exitCode = await main(process.argv.slice(2))
