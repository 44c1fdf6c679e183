import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startPostgres, type TestPostgres } from '../../../../fixtures/postgres.ts'
import { migrate, PG_SCHEMA_VERSION, schemaVersion } from '../pg-schema.ts'
import { AuditSchemaError } from '../types.ts'

let server: TestPostgres
beforeAll(async () => { server = await startPostgres() })
afterAll(async () => { await server?.destroy() })

async function withClient<T> (url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try { return await fn(client) } finally { await client.end() }
}

describe('pg-schema', () => {
  it('creates the schema once, and again is a no-op', async () => {
    const url = await server.database('fresh')
    await withClient(url, async c => {
      expect(await schemaVersion(c)).toBe(0)
      expect(await migrate(c)).toEqual({ from: 0, to: PG_SCHEMA_VERSION })
      expect(await migrate(c)).toEqual({ from: PG_SCHEMA_VERSION, to: PG_SCHEMA_VERSION })
      expect(await schemaVersion(c)).toBe(2)
      const { rows } = await c.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
      expect(rows.map(r => r.table_name)).toEqual(['audit_record', 'flexnode_schema_version', 'node_backup'])
    })
  })

  it('two migrations at once against one fresh database: both succeed, tables made once', async () => {
    const url = await server.database('race')
    const results = await Promise.all([withClient(url, migrate), withClient(url, migrate)])
    expect(results.map(r => r.to)).toEqual([2, 2])
    expect(results.map(r => r.from).sort()).toEqual([0, 2])
  })

  it('a newer schema version is refused with AuditSchemaError, nothing changed', async () => {
    const url = await server.database('newer')
    await withClient(url, async c => {
      await migrate(c)
      await c.query("INSERT INTO flexnode_schema_version (version, name) VALUES (3, 'from_the_future')")
      const err = await migrate(c).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(AuditSchemaError)
      expect((err as AuditSchemaError).name).toBe('AuditSchemaError')
      expect((err as AuditSchemaError).found).toBe(3)
      expect((err as AuditSchemaError).supported).toBe(2)
      await expect(schemaVersion(c)).rejects.toBeInstanceOf(AuditSchemaError)
    })
  })

  it('an unknown migration name, or a foreign table in the way, is refused', async () => {
    const url = await server.database('foreign')
    await withClient(url, async c => {
      await c.query('CREATE TABLE audit_record (x int)')
      const err = await migrate(c).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(AuditSchemaError)
      // rolled back: no version recorded
      expect(await schemaVersion(c)).toBe(0)
      await c.query('DROP TABLE audit_record')
      await c.query("CREATE TABLE flexnode_schema_version (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()); INSERT INTO flexnode_schema_version VALUES (1, 'something_else')")
      await expect(migrate(c)).rejects.toBeInstanceOf(AuditSchemaError)
    })
  })

  it('the fixture stops, restarts with the same data, and survives a kill -9', async () => {
    const url = await server.database('restart')
    await withClient(url, migrate)
    await server.stop()
    await server.start()
    expect(await withClient(url, schemaVersion)).toBe(2)
    await server.kill()
    await expect(withClient(url, schemaVersion)).rejects.toThrow()
    await server.start()
    expect(await withClient(url, schemaVersion)).toBe(2)
  })
})
