/**
 * `flexnode backup` and `flexnode restore`'s arguments, declared in commander; `backup.ts` checks
 * what the flags cannot say alone (`backupOptionsOf`, `restoreOptionsOf`) and runs them.
 *
 * ```
 * flexnode backup --to node.tar
 * flexnode restore --from node.tar --data-dir ~/.flexnode-restored
 * ```
 */
import { type Command, Option } from 'commander'
import { nonEmptyArg, type CommandContext } from './command-options.ts'

/** Declares `backup` and `restore` on `prog`; `dataDirOf` is the program's reading of `--data-dir` (backup's default data dir). */
export function addBackupCommands (prog: Command, ctx: CommandContext, dataDirOf: (cmd: Command) => string): void {
  prog.command('backup')
    .description('back up the node on a data dir: its source chains (a consistent snapshot of the conductor database), its keystore file as it is (encrypted) and its artifact pins, in one tar archive')
    .addOption(new Option('--to <file | postgres://…>', 'a new file, or a Postgres database (table node_backup) (default: ./flexnode-backup-<time>.tar)').argParser(nonEmptyArg))
    .option('--force', 'replace an existing file')
    .option('--include-plaintext-keystore', 'back up a keystore that is not encrypted (its keys in clear)')
    .option('--data-dir <dir>', 'the node\'s data dir [env: FLEXNODE_DATA_DIR] (default: ~/.flexnode)')
    .option('--json', 'print one JSON document')
    .allowExcessArguments(false)
    .action(async (o: { to?: string, force?: boolean, includePlaintextKeystore?: boolean, json?: boolean }, cmd: Command) => {
      const { backupCommand, backupOptionsOf } = await import('./backup.ts')
      ctx.done(await backupCommand(backupOptionsOf({ ...o, dataDir: dataDirOf(cmd) })))
    })
  prog.command('restore')
    .description('rebuild a data dir from a backup: every part\'s sha256 and every source chain are checked before the directory appears. Start a node on it with the same passphrase (FLEXNODE_PASSPHRASE, when set, is checked against the restored keystore); do not run the original node as well')
    .addOption(new Option('--from <file | postgres://…>', 'the backup file, or the Postgres database holding it').argParser(nonEmptyArg).makeOptionMandatory())
    // never a default: a restore creates this directory
    .addOption(new Option('--data-dir <dir>', 'the data dir to create (must not exist, or be empty)').argParser(nonEmptyArg).makeOptionMandatory())
    .addOption(new Option('--id <id>', '(Postgres) the backup with this id (default: the newest)').argParser(nonEmptyArg))
    .addOption(new Option('--node <agent key>', '(Postgres) the newest backup of this node').argParser(nonEmptyArg))
    .option('--json', 'print one JSON document')
    .allowExcessArguments(false)
    .action(async (o: { from: string, dataDir: string, id?: string, node?: string, json?: boolean }) => {
      const { restoreCommand, restoreOptionsOf } = await import('./backup.ts')
      ctx.done(await restoreCommand(restoreOptionsOf(o, ctx.env().FLEXNODE_PASSPHRASE)))
    })
}
