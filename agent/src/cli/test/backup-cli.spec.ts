/**
 * `flexnode backup` / `restore` arguments: defaults, the file or Postgres target, and the usage
 * errors (exit 2) for what cannot be run as given — through the commander program, in-process.
 */
import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { backupOptionsOf, restoreOptionsOf } from '../backup.ts'
import { runInProcess as run } from '../../../../fixtures/cli.ts'

const NOW = new Date('2026-12-02T08:00:00.000Z')

describe('flexnode backup arguments', () => {
  it('defaults to a timestamped file in the current directory', () => {
    expect(backupOptionsOf({ dataDir: '/var/lib/fn' }, NOW)).toEqual({
      dataDir: '/var/lib/fn', to: resolve('flexnode-backup-2026-12-02T08-00-00-000Z.tar'), force: false, includePlaintextKeystore: false, json: false
    })
  })

  it('takes a file or a Postgres URL, --force, --include-plaintext-keystore, --json', () => {
    expect(backupOptionsOf({ to: 'x.tar', force: true, includePlaintextKeystore: true, json: true, dataDir: 'd' })).toMatchObject({ to: resolve('x.tar'), force: true, includePlaintextKeystore: true, json: true, dataDir: resolve('d') })
    expect(backupOptionsOf({ to: 'postgres://u:p@127.0.0.1/db', dataDir: 'd' })).toMatchObject({ to: 'postgres://u:p@127.0.0.1/db' })
  })

  it('refuses what cannot be run: exit 2, the reason naming the flag', async () => {
    expect(() => backupOptionsOf({ to: 'postgres://h/db', force: true, dataDir: 'd' })).toThrow(expect.objectContaining({ name: 'UsageError', flag: '--force' }))
    for (const [args, reason] of [
      [['backup', '--to', ''], /--to .* must not be empty/], [['backup', '--to', 'postgres://h/db', '--force'], /--force is for a file/],
      [['backup', '--bogus'], /unknown option '--bogus'/], [['backup', 'extra'], /too many arguments/], [['backup', '--data-dir', ''], /--data-dir must not be empty/]
    ] as Array<[string[], RegExp]>) {
      const r = await run(args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr, args.join(' ')).toMatch(reason)
      expect(r.stderr, args.join(' ')).toContain('Usage: flexnode backup')
    }
    expect((await run(['backup', '--help'])).code).toBe(0)
  })
})

describe('flexnode restore arguments', () => {
  it('needs --from and --data-dir (never a default data dir)', async () => {
    for (const [args, reason] of [
      [['restore', '--data-dir', 'n'], /required option '--from/], [['restore', '--from', 'b.tar'], /required option '--data-dir/],
      [['restore', '--from', 'b.tar', '--data-dir', 'n', '--id', '7'], /--id is for a Postgres --from/]
    ] as Array<[string[], RegExp]>) {
      const r = await run(args, { FLEXNODE_DATA_DIR: '/x' })
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr, args.join(' ')).toMatch(reason)
    }
  })

  it('takes a file, or Postgres with --id / --node; the passphrase from FLEXNODE_PASSPHRASE', () => {
    expect(restoreOptionsOf({ from: 'b.tar', dataDir: 'n' }, 'pw')).toEqual({ from: resolve('b.tar'), dataDir: resolve('n'), id: undefined, node: undefined, passphrase: 'pw', json: false })
    expect(restoreOptionsOf({ from: 'postgresql://h/db', dataDir: 'n', node: 'uhCAkx', json: true }, '')).toMatchObject({ from: 'postgresql://h/db', node: 'uhCAkx', passphrase: undefined, json: true })
  })
})
