/**
 * `flexnode audit [verify]`'s arguments, declared in commander: listing takes `--since`, `--kind`,
 * `--limit`; `verify` takes `--db` and `--node`. `audit.ts` runs them.
 *
 * ```
 * flexnode audit --since 2h --kind pin
 * flexnode audit verify --db postgres://u:p@db/audit
 * ```
 */
import type { Command } from 'commander'
import { InvalidArgumentError } from 'commander'
import { checkPostgresUrl, UsageError } from '../config.ts'
import type { AuditOptions } from './audit.ts'
import { integerArg, type CommandContext } from './command-options.ts'

const DURATION_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/** `--since`: an ISO time or a duration back from `now`, as µs since the epoch. */
export function parseSinceFlag (value: string, now = Date.now()): number {
  const d = /^(\d{1,9})(s|m|h|d|w)$/.exec(value)
  if (d !== null) return (now - Number(d[1]) * DURATION_UNITS[d[2]!]!) * 1000
  const ms = Date.parse(value)
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(ms) || ms < 0 || ms * 1000 > Number.MAX_SAFE_INTEGER) throw new UsageError(`--since must be an ISO time (2026-01-31T12:00:00Z) or a duration (30s, 15m, 2h, 7d), got ${JSON.stringify(value)}`, '--since')
  return ms * 1000
}

const kindArg = (value: string): string => {
  if (!/^[a-z][a-z0-9_.-]{0,63}$/.test(value)) throw new InvalidArgumentError('must be a kind such as pin or zome_call')
  return value
}

const agentKeyArg = (value: string): string => {
  if (!/^uhCAk[A-Za-z0-9_-]{48}$/.test(value)) throw new InvalidArgumentError('must be an agent key (uhCAk…)')
  return value
}

const dbArg = (value: string): string => {
  checkPostgresUrl(value, '--db')
  return value
}

/** Declares `audit` and `audit verify` on `prog`; `dataDirOf` is the program's reading of `--data-dir`. */
export function addAuditCommands (prog: Command, ctx: CommandContext, dataDirOf: (cmd: Command) => string): void {
  const run = async (o: AuditOptions): Promise<void> => { ctx.done(await (await import('./audit.ts')).auditCommand(o)) }
  const audit = prog.command('audit')
    .description('the node\'s audit log: every zome call that writes, allocation, release, pin, policy decision, warrant and inference request, hash-chained and signed by the node (audit [verify])')
    .option('--since <time|duration>', 'records at or after an ISO time (2026-01-31T12:00:00Z) or this long ago (30s, 15m, 2h, 7d)', (v: string) => parseSinceFlag(v))
    .option('--kind <kind>', 'only records of this kind (zome_call, allocation, release, artifact, pin, unpin, policy, warrant, inference…)', kindArg)
    .option('--limit <n>', 'at most n records, oldest first', integerArg(1, 100_000), 1000)
    .option('--data-dir <dir>', 'the node\'s data dir [env: FLEXNODE_DATA_DIR] (default: ~/.flexnode)')
    .option('--json', 'print JSON')
    .allowExcessArguments(false)
    .action(async (o: { since?: number, kind?: string, limit: number, json?: boolean }, cmd: Command) => {
      await run({ action: 'list', dataDir: dataDirOf(cmd), json: o.json === true, limit: o.limit, ...(o.since !== undefined ? { since: o.since } : {}), ...(o.kind !== undefined ? { kind: o.kind } : {}) })
    })
  audit.command('verify')
    .description('check every record\'s hash and signature and the chain\'s order; exit 1 naming each record that fails and why')
    .option('--db <postgres://…>', 'verify the records shipped to this Postgres database instead', dbArg)
    .option('--node <agent key>', 'with --db: the node whose records to verify (default this node)', agentKeyArg)
    .option('--data-dir <dir>', 'the node\'s data dir [env: FLEXNODE_DATA_DIR] (default: ~/.flexnode)')
    .option('--json', 'print JSON')
    .allowExcessArguments(false)
    .action(async (o: { db?: string, node?: string, json?: boolean }, cmd: Command) => {
      if (o.node !== undefined && o.db === undefined) throw new UsageError('--node needs --db (the outbox holds this node\'s records only)', '--node')
      await run({ action: 'verify', dataDir: dataDirOf(cmd), json: o.json === true, ...(o.db !== undefined ? { db: o.db } : {}), ...(o.node !== undefined ? { node: o.node } : {}) })
    })
}
