/**
 * The worker side of a `ComputePool` (`native/pool.ts`): what a worker module exports and the
 * messages the hosts (`piscina-host.ts` for threads, `process-host.ts` for a child process)
 * exchange with the pool. A worker module:
 *
 * ```ts
 * import type { TaskHandler } from './task.ts'
 * export const handler: TaskHandler<{ n: number }, number, { type: 'flexnode:demo:step', i: number }> = async (task, ctx) => {
 *   for (let i = 0; i < task.n; i++) { ctx.signal.throwIfAborted(); ctx.progress({ type: 'flexnode:demo:step', i }) }
 *   ctx.log('debug', 'counted', { n: task.n })
 *   return task.n
 * }
 * export async function dispose (): Promise<void> {} // optional: free what the module holds
 * ```
 */
export type WorkerLogLevel = 'error' | 'warn' | 'info' | 'debug'

export interface TaskContext<E> {
  /** aborted when the caller's signal aborts (a thread is terminated instead: piscina's abort) */
  signal: AbortSignal
  /** a progress event back to the caller's `onProgress` */
  progress: (event: E) => void
  /** a line into the node's logger, under the pool's component */
  log: WorkerLog
}

export type WorkerLog = (level: WorkerLogLevel, msg: string, fields?: Record<string, unknown>) => void

export type TaskHandler<Task, Result, E = unknown> = (task: Task, ctx: TaskContext<E>) => Promise<Result> | Result

export interface WorkerModule {
  handler: TaskHandler<unknown, unknown, unknown>
  dispose?: () => Promise<void> | void
}

export interface LogLine { level: WorkerLogLevel, msg: string, fields?: Record<string, unknown> }

/** How a task ended, as a value: a handler's error crosses as its name and message. */
export type TaskOutcome = { ok: unknown } | { err: { name: string, message: string } }

/** Thread host → pool, on the task's port. */
export type PortMessage = { event: unknown } | { log: LogLine } | { end: true }

/** Pool → process host. */
export type HostRequest = { id: number, task: unknown } | { id: number, abort: true } | { id: number, dispose: true }
/** Process host → pool. */
export type HostReply = { id: number, event: unknown } | { id: number, outcome: TaskOutcome } | { log: LogLine }

/** Run a handler, its thrown error (or a rejection of any kind) turned into an outcome. */
export async function settle (run: () => Promise<unknown> | unknown, signal: AbortSignal): Promise<TaskOutcome> {
  try {
    return { ok: await run() }
  } catch (err: unknown) {
    if (signal.aborted) return { err: { name: 'AbortError', message: 'the task was aborted' } }
    return { err: { name: err instanceof Error ? err.name : 'Error', message: err instanceof Error ? err.message : String(err) } }
  }
}

/** The module a host serves, checked. */
export async function loadWorkerModule (url: string): Promise<WorkerModule> {
  const mod = await import(url) as Partial<WorkerModule>
  if (typeof mod.handler !== 'function') throw new TypeError(`${url} exports no handler(task, ctx)`)
  return mod as WorkerModule
}
