/**
 * Store migrations: a data dir written by the release before migrations existed (schema 1,
 * `fixtures/conductor-v1`, made by that release's code) opens and upgrades without loss; a
 * database from a newer schema is refused with `SchemaTooNewError` before anything is written;
 * a migration that fails rolls the whole upgrade back.
 */
import { createHash } from 'node:crypto'
import { cp, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { decodeHash, encodeHash } from '../../holo/hash.ts'
import { silentLogger } from '../../logger.ts'
import { Keystore } from '../../identity/keystore.ts'
import { tempDir, type TempDir } from '../../../../fixtures/index.ts'
import { EmbeddedConductor } from '../conductor.ts'
import { DB_FILE } from '../constants.ts'
import { InProcessAppClient } from '../in-process-client.ts'
import { LATEST_SCHEMA_VERSION, MIGRATIONS, type Migration } from '../migrations.ts'
import { ConductorStore } from '../store.ts'

const FIXTURE = join(import.meta.dirname, '..', '..', '..', '..', 'fixtures', 'conductor-v1')
const V1_TABLES = ['meta', 'zome_code', 'dna_def', 'app', 'app_interface', 'chain_action', 'entry', 'dht_op', 'dht_action', 'cap_grant', 'limbo', 'warrant', 'receipt', 'nonce']

interface Snapshot { userVersion: number, schemaVersion: string | undefined, tables: string[], rows: Record<string, string[]> }

/** Every row of every table (hex of a stable JSON form), read without writing. */
function snapshot (path: string): Snapshot {
  const db = new Database(path, { readonly: true })
  try {
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as Array<{ name: string }>).map(r => r.name)
    const rows: Record<string, string[]> = {}
    for (const t of tables) {
      rows[t] = (db.prepare(`SELECT * FROM "${t}"`).all() as Array<Record<string, unknown>>)
        .map(r => JSON.stringify(r, (_k, v: unknown) => Buffer.isBuffer(v) ? v.toString('hex') : v)).sort()
    }
    const meta = tables.includes('meta') ? db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: Buffer } | undefined : undefined
    return { userVersion: db.pragma('user_version', { simple: true }) as number, schemaVersion: meta?.value.toString(), tables, rows }
  } finally {
    db.close()
  }
}

async function fileHash (path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex')
}

describe('conductor store migrations', () => {
  const dirs: TempDir[] = []
  afterEach(async () => {
    for (const d of dirs.splice(0)) await d[Symbol.asyncDispose]()
  })

  /** A copy of the v1 data dir. */
  async function v1 (): Promise<{ dir: string, db: string }> {
    const d = await tempDir('flexnode-migrate-')
    dirs.push(d)
    for (const f of [DB_FILE, 'keystore.json']) await cp(join(FIXTURE, f), join(d.path, f))
    return { dir: d.path, db: join(d.path, DB_FILE) }
  }

  it('the fixture is what the schema-1 release wrote', async () => {
    const { db } = await v1()
    const s = snapshot(db)
    expect(s.userVersion).toBe(0)
    expect(s.schemaVersion).toBe('1')
    expect(s.tables).toEqual([...V1_TABLES].sort())
    expect(s.rows.chain_action).toHaveLength(14)
  })

  it('opens a schema-1 database, upgrades it to the latest version and keeps every row', async () => {
    expect(LATEST_SCHEMA_VERSION).toBeGreaterThan(1)
    const { db } = await v1()
    const before = snapshot(db)
    const store = new ConductorStore({ path: db })
    expect(store.schemaVersion).toBe(LATEST_SCHEMA_VERSION)
    store.dispose()
    const after = snapshot(db)
    expect(after.userVersion).toBe(LATEST_SCHEMA_VERSION)
    expect(after.schemaVersion).toBe(String(LATEST_SCHEMA_VERSION))
    for (const t of V1_TABLES) {
      if (t === 'meta') continue
      // every row keeps every value it had; columns added later (with their defaults) aside
      const v1Columns = (row: string): string => {
        const r = JSON.parse(row) as Record<string, unknown>
        return JSON.stringify(Object.fromEntries(Object.keys(JSON.parse(before.rows[t]![0] ?? '{}') as object).map(k => [k, r[k]])))
      }
      expect(after.rows[t]?.map(v1Columns), t).toEqual(before.rows[t]?.map(v1Columns))
    }
    // schema 3: every record held is in the anti-entropy summary until a pruning pass says otherwise
    expect(after.rows.dht_action?.every(r => (JSON.parse(r) as { in_summary: number }).in_summary === 1)).toBe(true)
    // the migration log names every version, the first one included
    expect(after.rows.schema_migration?.map(r => (JSON.parse(r) as { version: number }).version).sort((a, b) => a - b)).toEqual(MIGRATIONS.map(m => m.version))
    // opening again changes nothing
    new ConductorStore({ path: db }).dispose()
    expect(snapshot(db)).toEqual(after)
  })

  it('runs the upgraded data dir: apps, chains, links, updates, deletes and grants as before', async () => {
    const { dir } = await v1()
    const expected = JSON.parse(await readFile(join(FIXTURE, 'expected.json'), 'utf8')) as Record<string, unknown>
    const keystore = await Keystore.open({ dataDir: dir })
    const conductor = await EmbeddedConductor.open({ dataDir: dir }, { keystore, logger: silentLogger() })
    try {
      const client = await InProcessAppClient.connect(conductor, 'notes')
      const call = async (fn: string, payload: unknown = null): Promise<unknown> => await client.callZome({ role_name: 'notes', zome_name: 'notes', fn_name: fn, payload })
      expect(conductor.listApps()).toHaveLength(1)
      expect(encodeHash(client.myPubKey)).toBe(expected.agent)
      const note = decodeHash(expected.first as string)
      expect(await call('latest_note', note)).toEqual(expected.latest_first)
      expect(await call('details', note)).toEqual(expected.details_first)
      expect(await call('notes_tagged', 'v1')).toEqual(expected.tagged)
      expect(await call('my_notes')).toEqual(expected.my_notes)
      expect(await call('chain_length')).toBe(expected.chain_length)
      const grants = conductor.listCapabilityGrants({ installed_app_id: 'notes', include_revoked: false }) as Array<[unknown, Array<{ cap_grant: { tag: string } }>]>
      expect(grants.flatMap(([, g]) => g.map(x => x.cap_grant.tag))).toContain('v1 grant')
      // and it keeps writing
      await call('create_note', { text: 'after the upgrade', tag: 'v1' })
      expect(await call('chain_length')).toBeGreaterThan(expected.chain_length as number)
    } finally {
      await conductor.stop()
      keystore.dispose()
    }
  })

  it('refuses a database with a newer schema (user_version) with SchemaTooNewError and writes nothing', async () => {
    const { dir, db } = await v1()
    const raw = new Database(db)
    raw.pragma(`user_version = ${LATEST_SCHEMA_VERSION + 3}`)
    raw.close()
    const before = snapshot(db)
    const hash = await fileHash(db)
    let err: unknown
    try {
      new ConductorStore({ path: db }).dispose()
    } catch (e) {
      err = e
    }
    expect(err).toMatchObject({ name: 'SchemaTooNewError', found: LATEST_SCHEMA_VERSION + 3, supported: LATEST_SCHEMA_VERSION, path: db })
    expect(await fileHash(db)).toBe(hash)
    expect(snapshot(db)).toEqual(before)
    // the conductor refuses it the same way
    const keystore = await Keystore.open({ dataDir: dir })
    try {
      await expect(EmbeddedConductor.open({ dataDir: dir }, { keystore, logger: silentLogger() })).rejects.toMatchObject({ name: 'SchemaTooNewError', found: LATEST_SCHEMA_VERSION + 3 })
    } finally {
      keystore.dispose()
    }
    expect(await fileHash(db)).toBe(hash)
  })

  it('refuses a database whose meta table records a newer schema', async () => {
    const { db } = await v1()
    const raw = new Database(db)
    raw.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'").run(Buffer.from('99'))
    raw.close()
    const hash = await fileHash(db)
    expect(() => new ConductorStore({ path: db })).toThrow(expect.objectContaining({ name: 'SchemaTooNewError', found: 99, supported: LATEST_SCHEMA_VERSION }))
    expect(await fileHash(db)).toBe(hash)
  })

  it('rolls the whole upgrade back when a migration fails, and upgrades later', async () => {
    const { db } = await v1()
    const before = snapshot(db)
    const failing: Migration = {
      version: LATEST_SCHEMA_VERSION + 1,
      description: 'fails half way',
      up: (d) => {
        d.exec('CREATE TABLE half_done (x INTEGER)')
        d.exec('DELETE FROM nonce')
        throw new Error('boom')
      }
    }
    expect(() => new ConductorStore({ path: db, migrations: [...MIGRATIONS, failing] }))
      .toThrow(expect.objectContaining({ name: 'MigrationFailedError', version: LATEST_SCHEMA_VERSION + 1, from: 1 }))
    expect(snapshot(db)).toEqual(before)
    const store = new ConductorStore({ path: db })
    expect(store.schemaVersion).toBe(LATEST_SCHEMA_VERSION)
    store.dispose()
  })

  it('creates a fresh database at the latest version', async () => {
    const d = await tempDir('flexnode-migrate-')
    dirs.push(d)
    const path = join(d.path, DB_FILE)
    const store = new ConductorStore({ path })
    expect(store.schemaVersion).toBe(LATEST_SCHEMA_VERSION)
    store.dispose()
    const s = snapshot(path)
    expect(s.userVersion).toBe(LATEST_SCHEMA_VERSION)
    expect(s.tables).toEqual(expect.arrayContaining(V1_TABLES))
  })

  it('refuses a migration list that is not numbered 1, 2, 3…', () => {
    expect(() => new ConductorStore({ path: ':memory:', migrations: [MIGRATIONS[0]!, { version: 3, description: 'gap', up: () => {} }] }))
      .toThrow(expect.objectContaining({ name: 'InvalidInputError' }))
  })
})
