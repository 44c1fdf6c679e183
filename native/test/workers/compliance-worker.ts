/**
 * The worker module of the ComputePool compliance suite (`../pool.compliance.ts`): small real
 * tasks that exercise results, progress, abort, crashes, handler errors, logs and moved buffers.
 */
import type { TaskHandler } from '../../workers/task.ts'

export type ComplianceTask =
  | { op: 'echo', value: unknown }
  | { op: 'progress', n: number }
  | { op: 'hang' }
  | { op: 'crash' }
  | { op: 'fail' }
  | { op: 'log', msg: string }
  | { op: 'sum', bytes: Uint8Array }
  | { op: 'bytes', n: number }

export type ComplianceEvent = { type: 'flexnode:test:step', i: number } | { type: 'flexnode:test:started' }

export const handler: TaskHandler<ComplianceTask, unknown, ComplianceEvent> = async (task, ctx) => {
  switch (task.op) {
    case 'echo': return task.value
    case 'progress':
      for (let i = 0; i < task.n; i++) ctx.progress({ type: 'flexnode:test:step', i })
      return task.n
    case 'hang':
      ctx.progress({ type: 'flexnode:test:started' })
      // until the caller aborts (a process host fires the signal; piscina terminates the thread)
      await new Promise<void>((resolve) => { ctx.signal.addEventListener('abort', () => { resolve() }, { once: true }) })
      throw new Error('aborted')
    case 'crash':
      ctx.progress({ type: 'flexnode:test:started' })
      process.exit(3)
    case 'fail': throw new RangeError('the task refuses')
    case 'log':
      ctx.log('warn', task.msg, { from: 'compliance-worker' })
      return true
    case 'sum': return task.bytes.reduce((a, b) => a + b, 0)
    case 'bytes': return new Uint8Array(task.n).fill(7)
  }
}
