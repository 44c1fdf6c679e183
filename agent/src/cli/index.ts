/**
 * The `flexnode` command line's entry point (`bin/flexnode.js` loads it): runs `program.ts`'s
 * program on the process's arguments and exits with its code.
 *
 * ```
 * flexnode --help
 * ```
 */
import { main } from './program.ts'

process.exitCode = await main(process.argv.slice(2))
