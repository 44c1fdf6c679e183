/**
 * `periodic()`: background work that never throws out of its timer, logs failures and backs off.
 */
import { describe, expect, it } from 'vitest'
import { backoffDelay, FAILURES_BEFORE_ERROR, periodic } from '../src/background.ts'
import { createLogger } from '../src/logger.ts'
import { waitUntil } from '../../fixtures/wait.ts'

interface LogRecord { level: number, msg: string, task?: string, failures?: number, retryInMs?: number }

describe('periodic', () => {
  it('catches and logs failures (warn, then error), backs off, recovers, and stop waits for a run', async () => {
    const records: LogRecord[] = []
    const log = createLogger({ level: 'info', destination: { write: (line: string) => { records.push(JSON.parse(line) as LogRecord) } } })
    let calls = 0
    let inRun = false
    const task = periodic({ name: 'flaky', intervalMs: 5, maxBackoffMs: 40 }, async () => {
      calls++
      inRun = true
      await new Promise(resolve => setImmediate(resolve))
      inRun = false
      if (calls <= FAILURES_BEFORE_ERROR + 1) throw new Error(`boom ${calls}`)
    }, log)
    await waitUntil(() => records.some(r => r.msg === 'background task recovered'), { what: 'the task to recover' })
    const failures = records.filter(r => r.task === 'flaky' && r.failures !== undefined)
    expect(failures.map(r => r.failures)).toEqual([1, 2, 3, 4])
    expect(failures.map(r => r.level)).toEqual([40, 40, 50, 50])
    expect(failures.map(r => r.retryInMs)).toEqual([10, 20, 40, 40])
    expect(task.failures).toBe(0)
    await task.stop()
    expect(inRun).toBe(false)
  })

  it('computes a capped doubling delay', () => {
    expect(backoffDelay(100, 0, 1000)).toBe(100)
    expect(backoffDelay(100, 1, 1000)).toBe(200)
    expect(backoffDelay(100, 3, 1000)).toBe(800)
    expect(backoffDelay(100, 50, 1000)).toBe(1000)
  })
})
