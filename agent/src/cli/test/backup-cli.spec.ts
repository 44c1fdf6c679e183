/**
 * `flexnode backup` / `restore` argument parsing: defaults, the file or Postgres target, and the
 * usage errors (exit 2) for what cannot be run as given.
 */
import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseBackupArgs, parseRestoreArgs } from '../backup.ts'

const NOW = new Date('2026-12-02T08:00:00.000Z')

describe('flexnode backup arguments', () => {
  it('defaults to a timestamped file in the current directory, of the default data dir', () => {
    expect(parseBackupArgs([], { FLEXNODE_DATA_DIR: '/var/lib/fn' }, NOW)).toEqual({
      dataDir: '/var/lib/fn', to: resolve('flexnode-backup-2026-12-02T08-00-00-000Z.tar'), force: false, includePlaintextKeystore: false, json: false
    })
  })

  it('takes a file or a Postgres URL, --force, --include-plaintext-keystore, --json', () => {
    expect(parseBackupArgs(['--to', 'x.tar', '--force', '--include-plaintext-keystore', '--json', '--data-dir', 'd'], {})).toMatchObject({ to: resolve('x.tar'), force: true, includePlaintextKeystore: true, json: true, dataDir: resolve('d') })
    expect(parseBackupArgs(['--to', 'postgres://u:p@127.0.0.1/db'], {})).toMatchObject({ to: 'postgres://u:p@127.0.0.1/db' })
    expect(parseBackupArgs(['-h'], {})).toBe('help')
  })

  it('refuses what cannot be run', () => {
    expect(() => parseBackupArgs(['--to', ''], {})).toThrow(expect.objectContaining({ name: 'UsageError', flag: '--to' }))
    expect(() => parseBackupArgs(['--to', 'postgres://h/db', '--force'], {})).toThrow(expect.objectContaining({ name: 'UsageError', flag: '--force' }))
    expect(() => parseBackupArgs(['--bogus'], {})).toThrow(expect.objectContaining({ name: 'UsageError' }))
    expect(() => parseBackupArgs(['extra'], {})).toThrow(expect.objectContaining({ name: 'UsageError' }))
  })
})

describe('flexnode restore arguments', () => {
  it('needs --from and --data-dir (never a default data dir)', () => {
    expect(() => parseRestoreArgs(['--data-dir', 'n'], {})).toThrow(expect.objectContaining({ name: 'UsageError', flag: '--from' }))
    expect(() => parseRestoreArgs(['--from', 'b.tar'], { FLEXNODE_DATA_DIR: '/x' })).toThrow(expect.objectContaining({ name: 'UsageError', flag: '--data-dir' }))
  })

  it('takes a file, or Postgres with --id / --node; the passphrase from FLEXNODE_PASSPHRASE', () => {
    expect(parseRestoreArgs(['--from', 'b.tar', '--data-dir', 'n'], { FLEXNODE_PASSPHRASE: 'pw' })).toEqual({ from: resolve('b.tar'), dataDir: resolve('n'), id: undefined, node: undefined, passphrase: 'pw', json: false })
    expect(parseRestoreArgs(['--from', 'postgresql://h/db', '--data-dir', 'n', '--node', 'uhCAkx', '--json'], { FLEXNODE_PASSPHRASE: '' })).toMatchObject({ from: 'postgresql://h/db', node: 'uhCAkx', passphrase: undefined, json: true })
    expect(() => parseRestoreArgs(['--from', 'b.tar', '--data-dir', 'n', '--id', 'x'], {})).toThrow(expect.objectContaining({ name: 'UsageError', flag: '--id' }))
  })
})
