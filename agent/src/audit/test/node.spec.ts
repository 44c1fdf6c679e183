/**
 * The audit service wired into a whole node (`node.ts`): a node started with an audit database
 * records its own zome calls (the registry's advertise at start), serves them over
 * `GET /v1/audit`, `/v1/audit/verify` and `/v1/audit/stats`, ships them to a real Postgres, and
 * `flexnode audit` reaches it through its HTTP API.
 */
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createTestAgent, waitUntil, type TestAgent } from '../../../../fixtures/index.ts'
import { startPostgres, type TestPostgres } from '../../../../fixtures/postgres.ts'
import { auditCommand } from '../../cli/audit.ts'

let server: TestPostgres
let agent: TestAgent
let base: string

beforeAll(async () => {
  server = await startPostgres()
  agent = await createTestAgent({ audit: { url: server.url, intervalMs: 50 } })
  base = `http://127.0.0.1:${agent.node.info.http_port}`
})
afterAll(async () => {
  await agent?.[Symbol.asyncDispose]()
  await server?.destroy()
})

const get = async (path: string): Promise<{ status: number, body: any }> => { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(`${base}${path}`)
  return { status: res.status, body: await res.json() }
}

describe('audit in a node', () => {
  it('records the node\'s own zome calls, serves and verifies them, and ships them to Postgres', async () => {
    await waitUntil(() => agent.node.audit.log.head() !== null, { what: 'a first audit record' })
    const list = await get('/v1/audit?kind=zome_call&limit=10')
    expect(list.status).toBe(200)
    expect(list.body.node).toBe(agent.node.info.agent_pub_key)
    expect(list.body.records.length).toBeGreaterThan(0)
    expect(list.body.records[0]).toMatchObject({ kind: 'zome_call', actor: agent.node.info.agent_pub_key, detail: { dna: expect.any(String), zome: expect.any(String), fn: expect.any(String) } })
    expect((await get('/v1/audit/verify')).body).toMatchObject({ ok: true, problems: [] })

    await waitUntil(async () => (await get('/v1/audit/stats')).body.shipper.depth === 0, { what: 'the outbox shipped' })
    const stats = (await get('/v1/audit/stats')).body
    expect(stats.shipper).toMatchObject({ depth: 0, last_error: null })
    const c = new pg.Client({ connectionString: server.url })
    await c.connect()
    const { rows } = await c.query('SELECT count(*)::int AS n FROM audit_record WHERE node = $1 AND seq <= $2', [agent.node.info.agent_pub_key, stats.shipped_seq])
    await c.end()
    expect(rows[0].n).toBe(stats.shipped_seq)
  })

  it('refuses a bad query with a typed 400', async () => {
    for (const q of ['limit=0', 'since=yesterday', 'after_seq=-1', 'bogus=1']) {
      const r = await get(`/v1/audit?${q}`)
      expect(r.status, q).toBe(400)
      expect(r.body.error.name, q).toBe('InvalidInputError')
      expect(r.body.error.param, q).toBe(q.split('=')[0])
    }
  })

  it('flexnode audit reaches the running node over its HTTP API', async () => {
    let stdout = ''
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => { stdout += String(chunk); return true })
    try {
      expect(await auditCommand({ action: 'list', dataDir: agent.dataDir, json: true, limit: 5 })).toBe(0)
      expect(JSON.parse(stdout).node).toBe(agent.node.info.agent_pub_key)
      stdout = ''
      expect(await auditCommand({ action: 'verify', dataDir: agent.dataDir, json: false, db: server.url })).toBe(0)
      expect(stdout).toContain('audit chain OK')
    } finally {
      spy.mockRestore()
    }
  })
})
