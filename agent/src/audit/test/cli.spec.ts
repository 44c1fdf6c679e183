/**
 * `flexnode audit` and `flexnode audit verify [--db]` on a real data dir (a conductor that ran
 * zome calls, stopped: the CLI reads its database read-only) and a real Postgres the records
 * were shipped to; an edited row makes `verify --db` exit 1 naming the record. Argument parsing.
 */
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestConductor, NOTES_HAPP, type TestConductor } from '../../../../fixtures/index.ts'
import { startPostgres, type TestPostgres } from '../../../../fixtures/postgres.ts'
import { parseSinceFlag } from '../../cli/audit-command.ts'
import { runInProcess } from '../../../../fixtures/cli.ts'
import type { CliResult } from '../../../../fixtures/spawn-node.ts'
import { parseStartArgs } from '../../config.ts'
import { InProcessAppClient } from '../../conductor/in-process-client.ts'
import { encodeHash } from '../../holo/hash.ts'
import { silentLogger } from '../../logger.ts'
import { audit } from '../index.ts'

let server: TestPostgres
let t: TestConductor
let url: string

/** Runs `flexnode audit <args>` in-process (the commander program), returning its exit code and what it printed. */
async function run (args: string[], dataDir: string | undefined = t.dataDir): Promise<CliResult> {
  return await runInProcess(['audit', ...args, ...(dataDir === undefined ? [] : ['--data-dir', dataDir])])
}

beforeAll(async () => {
  ;[server, t] = await Promise.all([startPostgres(), createTestConductor()])
  url = server.url
  const a = audit({ url, intervalMs: 20 })({ conductor: t.conductor, keystore: t.keystore, logger: silentLogger() })
  await a.start()
  await t.conductor.installApp({ source: { type: 'path', value: NOTES_HAPP }, agent_key: t.agent, installed_app_id: 'notes' })
  await t.conductor.enableApp({ installed_app_id: 'notes' })
  const client = await InProcessAppClient.connect(t.conductor, 'notes')
  for (let i = 0; i < 5; i++) await client.callZome({ role_name: 'notes', zome_name: 'notes', fn_name: 'create_note', payload: { text: `n${i}` } })
  a.append({ kind: 'inference', actor: 'requester', subject: 'model-a', detail: { tokens: 12, latency_ms: 40 }, trace_id: 'trace-1' })
  await a.shipper!.drain()
  await a.stop()
  await t.stop()
})
afterAll(async () => {
  await server?.destroy()
  await t?.[Symbol.asyncDispose]()
})

describe('flexnode audit', () => {
  it('lists the records of a data dir (read-only when no node runs), filtered by kind and time', async () => {
    const all = await run(['--json'])
    expect(all.code).toBe(0)
    const parsed = JSON.parse(all.stdout) as { node: string, records: Array<{ kind: string, seq: number }> }
    expect(parsed.node).toBe(encodeHash(t.agent))
    expect(parsed.records.map(r => r.kind)).toEqual(['zome_call', 'zome_call', 'zome_call', 'zome_call', 'zome_call', 'inference'])
    const inference = JSON.parse((await run(['--kind', 'inference', '--since', '1h', '--json'])).stdout) as { records: Array<{ trace_id: string }> }
    expect(inference.records.map(r => r.trace_id)).toEqual(['trace-1'])
    expect(JSON.parse((await run(['--since', '2200-01-01T00:00:00Z', '--json'])).stdout).records).toEqual([])
    const table = await run(['--limit', '2'])
    expect(table.stdout).toMatch(/^SEQ +TIME +KIND/)
    expect(table.stdout.trim().split('\n')).toHaveLength(3)
  })

  it('verifies the outbox and the Postgres copy; an edited row fails with the record and why', async () => {
    expect(await run([])).toMatchObject({ code: 0 })
    const local = await run(['verify'])
    expect(local).toMatchObject({ code: 0 })
    expect(local.stdout).toContain('audit chain OK: 6 records')
    const remote = await run(['verify', '--db', url, '--json'])
    expect(remote.code).toBe(0)
    expect(JSON.parse(remote.stdout)).toMatchObject({ ok: true, checked: 6, source: 'postgres' })

    const c = new pg.Client({ connectionString: url })
    await c.connect()
    await c.query("UPDATE audit_record SET subject = 'model-b' WHERE seq = 6")
    await c.end()
    const edited = await run(['verify', '--db', url])
    expect(edited.code).toBe(1)
    expect(edited.stdout).toContain(`record ${encodeHash(t.agent)}:6: hash: was edited`)
  })

  it('parses its arguments in commander and refuses bad ones with exit 2', async () => {
    expect((await run(['--help'], undefined)).code).toBe(0)
    expect(parseSinceFlag('2h', 10_000_000)).toBe((10_000_000 - 7_200_000) * 1000)
    expect(parseSinceFlag('2026-01-31T00:00:00Z')).toBe(Date.parse('2026-01-31T00:00:00Z') * 1000)
    const bad = [['--since', 'yesterday'], ['--since', '9999-01-01T00:00:00Z'], ['--limit', '0'], ['--kind', 'Bad Kind'], ['verify', '--db', 'mysql://x/y'], ['verify', '--since', '1h'], ['--db', 'postgres://h/d'], ['verify', '--node', 'nope', '--db', 'postgres://h/d'], ['verify', '--node', `uhCAk${'A'.repeat(48)}`], ['other'], ['--bogus']]
    for (const args of bad) {
      const r = await run(args, '/nonexistent/flexnode')
      expect(r.code, args.join(' ')).toBe(2)
      // the reason goes first (through console.error for the program's own checks), then the help
      expect(r.stderr, args.join(' ')).toContain('Usage: flexnode audit')
      expect(r.stdout, args.join(' ')).toBe('')
    }
  })

  it('flexnode start --audit-db (or FLEXNODE_AUDIT_DB) takes a postgres URL', async () => {
    expect(await parseStartArgs(['--audit-db', 'postgres://u:p@db:5432/audit'], {})).toMatchObject({ audit: { url: 'postgres://u:p@db:5432/audit' } })
    expect(await parseStartArgs([], { FLEXNODE_AUDIT_DB: 'postgresql://db/audit' })).toMatchObject({ audit: { url: 'postgresql://db/audit' } })
    expect(await parseStartArgs([], {})).not.toHaveProperty('audit')
    for (const bad of ['mysql://db/x', 'db:5432', 'postgres://']) {
      const err = await parseStartArgs(['--audit-db', bad], {}).catch((e: unknown) => e)
      expect(err, bad).toMatchObject({ name: 'UsageError' })
    }
    const err = await parseStartArgs(['--audit-db', 'https://u:secret@db/x'], {}).catch((e: unknown) => e) as Error
    expect(err.message).not.toContain('secret')
  })
})
