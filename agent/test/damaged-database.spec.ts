/**
 * A database that fails after start must not take the node down: the background tasks that
 * touch it (anti-entropy rounds, which prune limbo, republish rounds, heartbeats) catch, log and
 * back off. Here a real node runs with fast rounds while one table's root page is overwritten
 * under it; an unhandled rejection from any timer would fail this file.
 */
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createLogger } from '../src/logger.ts'
import { DB_FILE } from '../src/conductor/constants.ts'
import { createTestAgent, waitUntil } from '../../fixtures/index.ts'
import { overwriteRootPage } from '../../fixtures/sqlite-damage.ts'

interface LogRecord { level: number, component?: string, msg?: string, task?: string, failures?: number, err?: string }

function capturingLogger (): { logger: ReturnType<typeof createLogger>, records: LogRecord[] } {
  const records: LogRecord[] = []
  const logger = createLogger({ level: 'warn', destination: { write: (line: string) => { records.push(JSON.parse(line) as LogRecord) } } })
  return { logger, records }
}

describe('a database damaged under a running node', () => {
  it('does not crash it: the failing rounds are logged and backed off, and the node keeps serving', async () => {
    const { logger, records } = capturingLogger()
    await using agent = await createTestAgent({ logger, syncIntervalMs: 20, republishIntervalMs: 20, heartbeatIntervalSeconds: 0.05 })
    const node = agent.node
    // the rounds run and succeed first
    await waitUntil(() => node.registry.beats >= 2, { what: 'two heartbeats' })
    await overwriteRootPage(join(agent.dataDir, DB_FILE), 'limbo', { live: true })
    // every sync round prunes limbo: it now fails, is logged, and is retried later, not thrown
    const failed = await waitUntil(() => records.find(r => r.task === 'dht sync round' && (r.failures ?? 0) >= 2), { what: 'the sync round to fail twice and be logged' })
    expect(failed.level).toBeGreaterThanOrEqual(40)
    expect(failed.err).toContain('malformed')
    // backed off: each failure waits longer before the next try
    const first = records.find(r => r.task === 'dht sync round' && r.failures === 1) as LogRecord & { retryInMs: number }
    expect((failed as LogRecord & { retryInMs: number }).retryInMs).toBeGreaterThan(first.retryInMs)
    // the node still serves what does not need the damaged table
    expect(node.conductor.listApps().length).toBe(1)
    const res = await fetch(`http://127.0.0.1:${node.info.http_port}/v1/models`)
    expect(res.status).toBe(200)
    // and stops cleanly
    await node.stop()
  })
})
