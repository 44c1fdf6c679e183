/**
 * Backup and restore on a real conductor (notes DNA, real SQLite): the archive is a tar that
 * `tar` reads, a round trip restores chains that validate and a conductor that reads its old
 * entries under the same agent key, a snapshot taken while the node writes is consistent, and
 * every bad archive or target is refused with a typed error, leaving nothing behind.
 */
import { execFile } from 'node:child_process'
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createTestConductor, NOTES_HAPP, tempDir, type TempDir, type TestConductor } from '../../../../fixtures/index.ts'
import { InProcessAppClient } from '../../conductor/in-process-client.ts'
import { backupCommand, backupOptionsOf } from '../../cli/backup.ts'
import { encodeHash } from '../../holo/hash.ts'
import { silentLogger } from '../../logger.ts'
import {
  BackupChainInvalidError, BackupCorruptError, BackupTargetExistsError, nodeBackup, offlineBackupSource, openBackupFile, PlaintextKeystoreError,
  readRestorePins, restoreBackup, verifyBackup, writeBackupFile, type BackupComponents
} from '../backup.ts'
import { tarHeader } from '../tar.ts'

const run = promisify(execFile)
const CID_A = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
const CID_B = 'bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e'

let t: TestConductor
let client: InProcessAppClient
let tmp: TempDir
const notes: Uint8Array[] = []
let components: BackupComponents
let archivePath: string

const call = async (fn: string, payload: unknown = null): Promise<any> => // eslint-disable-line @typescript-eslint/no-explicit-any
  await client.callZome({ role_name: 'notes', zome_name: 'notes', fn_name: fn, payload })

/** The offset of a member's content in an archive written by this code. */
function contentOffset (archive: Buffer, name: string): number {
  for (let at = 0; at < archive.length; at += 512) {
    if (archive.subarray(at, at + name.length).toString('utf8') === name && archive[at + name.length] === 0) return at + 512
  }
  throw new Error(`no member ${name}`)
}

beforeAll(async () => {
  tmp = await tempDir('flexnode-backup-')
  t = await createTestConductor()
  await t.conductor.installApp({ source: { type: 'path', value: NOTES_HAPP }, agent_key: t.agent, installed_app_id: 'notes' })
  await t.conductor.enableApp({ installed_app_id: 'notes' })
  client = await InProcessAppClient.connect(t.conductor, 'notes')
  for (let i = 0; i < 5; i++) notes.push(await call('create_note', { text: `note ${i}`, tag: 'red' }))
  await call('update_note', { original: notes[0], text: 'note 0, edited' })
  await call('delete_note', notes[1])
  await call('store_secret', 'a private entry')
  components = {
    dataDir: t.dataDir,
    agent: t.agent,
    snapshot: async (file) => { await t.conductor.backupDatabase(file) },
    pins: async () => [CID_B, CID_A, CID_A]
  }
  await using archive = await nodeBackup({ includePlaintextKeystore: true })(components).create()
  archivePath = (await writeBackupFile(archive.stream(), join(tmp.path, 'node.tar'))).path
})

afterAll(async () => {
  await t?.[Symbol.asyncDispose]()
  await tmp?.[Symbol.asyncDispose]()
})

describe('backup', () => {
  it('is a tar that tar reads: the manifest first, then the database, the keystore as it is, the pins', async () => {
    const { stdout } = await run('tar', ['-tf', archivePath])
    expect(stdout.trim().split('\n')).toEqual(['manifest.json', 'conductor.sqlite3', 'keystore.json', 'pins.json'])
    const manifest = JSON.parse((await run('tar', ['-xOf', archivePath, 'manifest.json'])).stdout)
    expect(manifest).toMatchObject({ format: 'flexnode-backup', version: 1, agent: encodeHash(t.agent), keystore_encrypted: false, pins_included: true })
    expect((await run('tar', ['-xOf', archivePath, 'keystore.json'])).stdout).toBe(await readFile(join(t.dataDir, 'keystore.json'), 'utf8'))
    expect(JSON.parse((await run('tar', ['-xOf', archivePath, 'pins.json'])).stdout)).toEqual({ cids: [CID_A, CID_B].sort() })
    expect(await verifyBackup(openBackupFile(archivePath))).toEqual(manifest)
    expect((await stat(archivePath)).mode & 0o777).toBe(0o600)
    // the staged snapshot is gone
    expect((await readdir(t.dataDir)).filter(f => f.startsWith('.backup-'))).toEqual([])
  })

  it('refuses a plaintext keystore unless asked, an existing file unless forced, and a pin that is no CID', async () => {
    await expect(nodeBackup({})(components).create()).rejects.toMatchObject({ name: PlaintextKeystoreError.name })
    await expect(nodeBackup({ includePlaintextKeystore: true })({ ...components, pins: async () => ['not-a-cid'] }).create()).rejects.toMatchObject({ name: 'InvalidInputError' })
    await using archive = await nodeBackup({ includePlaintextKeystore: true })(components).create()
    await expect(writeBackupFile(archive.stream(), archivePath)).rejects.toMatchObject({ name: BackupTargetExistsError.name })
    const again = join(tmp.path, 'again.tar')
    await writeFile(again, 'old')
    expect((await writeBackupFile(archive.stream(), again, { force: true })).size).toBe(archive.size)
    expect((await stat(again)).size).toBe(archive.size)
  })

  it('takes a consistent snapshot while the node writes', async () => {
    const writes = Promise.all(Array.from({ length: 20 }, async (_, i) => await call('create_note', { text: `during ${i}` })))
    await using archive = await nodeBackup({ includePlaintextKeystore: true })(components).create()
    await writes
    const restored = await restoreBackup({ dataDir: join(tmp.path, 'during'), from: archive.stream() })
    expect(restored.chains.length).toBeGreaterThan(0)
  })
})

describe('backup without a running node', () => {
  it('flexnode backup locks the data dir, copies the database read-only, and says it has no pins', async () => {
    const to = join(tmp.path, 'offline.tar')
    const opts = backupOptionsOf({ dataDir: t.dataDir, to, includePlaintextKeystore: true, json: true })
    let printed = ''
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { printed += String(chunk); return true })
    try {
      expect(await backupCommand(opts)).toBe(0)
    } finally {
      write.mockRestore()
    }
    const out = JSON.parse(printed) as { to: string, manifest: { agent: string, pins_included: boolean, pin_count: number } }
    expect(out).toMatchObject({ to, manifest: { agent: encodeHash(t.agent), pins_included: false, pin_count: 0 } })
    // the lock is released, nothing staged is left
    expect((await readdir(t.dataDir)).filter(f => f === 'flexnode.lock' || f.startsWith('.backup-'))).toEqual([])
    const restored = await restoreBackup({ dataDir: join(tmp.path, 'offline'), from: openBackupFile(to) })
    expect(restored.pins).toBe(0)
    expect(restored.chains.some(c => c.length >= 9)).toBe(true)
  })

  it('refuses a directory that is no data dir', async () => {
    await expect(offlineBackupSource(tmp.path, { logger: silentLogger() })).rejects.toMatchObject({ name: 'NotADataDirError' })
  })
})

describe('restore', () => {
  it('rebuilds a data dir whose chains validate; a conductor on it has the same agent and reads its entries', async () => {
    const dataDir = join(tmp.path, 'restored')
    const result = await restoreBackup({ dataDir, from: openBackupFile(archivePath) })
    expect(result.dataDir).toBe(dataDir)
    expect(result.pins).toBe(2)
    const notesChain = result.chains.find(c => c.length >= 9)
    expect(notesChain?.author).toBe(encodeHash(t.agent))
    expect((await readdir(dataDir)).sort()).toEqual(['artifacts', 'conductor.sqlite3', 'keystore.json'])
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700)
    expect((await stat(join(dataDir, 'keystore.json'))).mode & 0o777).toBe(0o600)
    expect(await readRestorePins(dataDir)).toEqual([CID_A, CID_B].sort())
    expect((await readdir(tmp.path)).filter(f => f.includes('.restore-'))).toEqual([])

    await using r = await createTestConductor({ dataDir })
    expect(encodeHash(r.agent)).toBe(encodeHash(t.agent))
    const rc = await InProcessAppClient.connect(r.conductor, 'notes')
    const get = async (fn: string, payload: unknown): Promise<unknown> => await rc.callZome({ role_name: 'notes', zome_name: 'notes', fn_name: fn, payload })
    expect(await get('get_note', notes[2])).toEqual({ text: 'note 2' })
    expect(await get('latest_note', notes[0])).toEqual({ text: 'note 0, edited' })
    expect(await get('notes_tagged', 'red')).toEqual(['note 0', 'note 1', 'note 2', 'note 3', 'note 4'])
    // the restored chain goes on where it ended
    expect(await get('chain_length', null)).toBe(notesChain!.length)
    await get('create_note', { text: 'after the restore' })
    expect(await get('chain_length', null)).toBe(notesChain!.length + 1)
  })

  it('restores into an existing empty directory', async () => {
    const dataDir = join(tmp.path, 'empty')
    await mkdir(dataDir)
    await restoreBackup({ dataDir, from: openBackupFile(archivePath) })
    expect((await readdir(dataDir)).length).toBe(3)
  })

  it('refuses a missing backup file and a missing directory to write to', async () => {
    await expect(restoreBackup({ dataDir: join(tmp.path, 'nothing'), from: openBackupFile(join(tmp.path, 'missing.tar')) })).rejects.toMatchObject({ name: 'BackupNotFoundError' })
    await expect(stat(join(tmp.path, 'nothing'))).rejects.toMatchObject({ code: 'ENOENT' })
    await expect(writeBackupFile(openBackupFile(archivePath), join(tmp.path, 'no', 'such', 'x.tar'))).rejects.toMatchObject({ name: 'InvalidInputError', field: 'to' })
  })

  it('refuses a non-empty target and a file, and writes nothing', async () => {
    const dataDir = join(tmp.path, 'busy')
    await mkdir(dataDir)
    await writeFile(join(dataDir, 'something'), 'x')
    await expect(restoreBackup({ dataDir, from: openBackupFile(archivePath) })).rejects.toMatchObject({ name: 'RestoreTargetNotEmptyError', dataDir })
    expect(await readdir(dataDir)).toEqual(['something'])
    await expect(restoreBackup({ dataDir: join(dataDir, 'something'), from: openBackupFile(archivePath) })).rejects.toMatchObject({ name: 'RestoreTargetNotEmptyError' })
    expect((await readdir(tmp.path)).filter(f => f.includes('.restore-'))).toEqual([])
  })

  describe('refuses a corrupt archive with BackupCorruptError, leaving no data dir', () => {
    const corrupt = async (bytes: Buffer, name: string): Promise<BackupCorruptError> => {
      const dataDir = join(tmp.path, `corrupt-${name}`)
      const err = await restoreBackup({ dataDir, from: [bytes] }).then(() => undefined, (e: unknown) => e)
      expect(err).toMatchObject({ name: BackupCorruptError.name })
      await expect(stat(dataDir)).rejects.toMatchObject({ code: 'ENOENT' })
      expect((await readdir(tmp.path)).filter(f => f.includes('.restore-'))).toEqual([])
      return err as BackupCorruptError
    }

    it('a flipped byte in the database', async () => {
      const bytes = await readFile(archivePath)
      bytes[contentOffset(bytes, 'conductor.sqlite3') + 5000]! ^= 0xff
      expect(await corrupt(bytes, 'db')).toMatchObject({ part: 'conductor.sqlite3' })
    })

    it('a flipped byte in the keystore', async () => {
      const bytes = await readFile(archivePath)
      bytes[contentOffset(bytes, 'keystore.json') + 3]! ^= 0x01
      expect(await corrupt(bytes, 'keystore')).toMatchObject({ part: 'keystore.json' })
    })

    it('a manifest edited to another sha256', async () => {
      const bytes = await readFile(archivePath)
      const at = contentOffset(bytes, 'manifest.json')
      const text = bytes.subarray(at, at + 2000).toString('latin1')
      const i = text.indexOf('"sha256": "') + 11
      bytes[at + i] = bytes[at + i] === 0x30 ? 0x31 : 0x30
      expect(await corrupt(bytes, 'manifest')).toMatchObject({ part: 'conductor.sqlite3' })
    })

    it('a truncated archive, an empty file, something that is not a tar', async () => {
      const bytes = await readFile(archivePath)
      await corrupt(bytes.subarray(0, bytes.length - 3000), 'truncated')
      await corrupt(Buffer.alloc(0), 'empty')
      await corrupt(Buffer.from('hello world\n'.repeat(100)), 'text')
    })

    it('a member added after the parts', async () => {
      const bytes = await readFile(archivePath)
      const extra = Buffer.concat([tarHeader({ name: 'extra', size: 1 }), Buffer.alloc(512, 0x41)])
      await corrupt(Buffer.concat([bytes.subarray(0, bytes.length - 1024), extra, Buffer.alloc(1024)]), 'extra')
    })

    it('an archive of a future format version', async () => {
      const manifest = JSON.parse((await run('tar', ['-xOf', archivePath, 'manifest.json'])).stdout)
      const text = Buffer.from(JSON.stringify({ ...manifest, version: 2 }))
      const bytes = Buffer.concat([tarHeader({ name: 'manifest.json', size: text.length }), text, Buffer.alloc(512 - (text.length % 512)), Buffer.alloc(1024)])
      expect((await corrupt(bytes, 'future')).message).toMatch(/version 2/)
    })
  })

  it('refuses a chain that does not validate, even with every sha256 right', async () => {
    // a database whose action was altered after signing, packed as a well-formed archive
    const work = join(tmp.path, 'tamper')
    await mkdir(work)
    const db = join(work, 'conductor.sqlite3')
    await t.conductor.backupDatabase(db)
    const sql = new Database(db)
    const row = sql.prepare("SELECT dna, author, seq, signature FROM chain_action WHERE type = 'Create' ORDER BY seq DESC LIMIT 1").get() as { dna: Buffer, author: Buffer, seq: number, signature: Buffer }
    row.signature[0]! ^= 0xff
    sql.prepare('UPDATE chain_action SET signature = ? WHERE dna = ? AND author = ? AND seq = ?').run(row.signature, row.dna, row.author, row.seq)
    sql.close()
    await copyFile(join(t.dataDir, 'keystore.json'), join(work, 'keystore.json'))
    await using archive = await nodeBackup({ includePlaintextKeystore: true })({ ...components, dataDir: work, snapshot: async (file) => { await copyFile(db, file) } }).create()
    const dataDir = join(tmp.path, 'tampered')
    await expect(restoreBackup({ dataDir, from: archive.stream() })).rejects.toMatchObject({ name: BackupChainInvalidError.name, seq: row.seq, reason: 'action signature does not verify' })
    await expect(stat(dataDir)).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
