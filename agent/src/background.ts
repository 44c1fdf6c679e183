/**
 * Periodic background work that can never crash the process: every run is awaited and caught,
 * a failure is logged (`warn`, then `error` once it keeps failing) and the next run backs off
 * (doubling, capped), runs never overlap, and the timer does not hold the process open.
 *
 * ```ts
 * const sync = periodic({ name: 'dht sync round', intervalMs: 5000 }, async () => { await syncRound() }, log)
 * await sync.stop()   // clears the timer and waits for a run in progress
 * ```
 */
import { errorMessage } from './errors.ts'
import type { ComponentLogger } from './logger.ts'

/** Longest wait between two runs of a task that keeps failing. */
export const DEFAULT_MAX_BACKOFF_MS = 5 * 60_000
/** Consecutive failures after which they are logged at `error` instead of `warn`. */
export const FAILURES_BEFORE_ERROR = 3

export interface PeriodicInit {
  /** what the task is, in its log records (`task` field) */
  name: string
  /** ms between the end of one run and the start of the next */
  intervalMs: number
  /** longest wait after repeated failures. @default max(5 min, intervalMs) */
  maxBackoffMs?: number
}

export interface Periodic {
  /** consecutive failed runs (0 after a success) */
  readonly failures: number
  /** runs so far, failed ones included */
  readonly runs: number
  /** clear the timer and wait for a run in progress. Idempotent. */
  stop: () => Promise<void>
}

/** The wait before the next run after `failures` consecutive failures. */
export function backoffDelay (intervalMs: number, failures: number, maxBackoffMs: number): number {
  if (failures <= 0) return intervalMs
  return Math.min(maxBackoffMs, intervalMs * 2 ** Math.min(failures, 30))
}

/** Run `fn` every `intervalMs` (first run after one interval) until `stop()`. */
export function periodic (init: PeriodicInit, fn: () => Promise<unknown> | unknown, log: ComponentLogger): Periodic {
  const maxBackoffMs = init.maxBackoffMs ?? Math.max(DEFAULT_MAX_BACKOFF_MS, init.intervalMs)
  let failures = 0
  let runs = 0
  let stopped = false
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | undefined

  const schedule = (ms: number): void => {
    if (stopped) return
    timer = setTimeout(() => { running = run().finally(() => { running = undefined }) }, ms)
    timer.unref()
  }

  const run = async (): Promise<void> => {
    runs++
    try {
      await fn()
      if (failures > 0) log.info({ task: init.name, after: failures }, 'background task recovered')
      failures = 0
    } catch (err) {
      failures++
      const retryInMs = backoffDelay(init.intervalMs, failures, maxBackoffMs)
      const record = { task: init.name, failures, retryInMs, err: errorMessage(err) }
      if (failures >= FAILURES_BEFORE_ERROR) log.error(record, 'background task keeps failing; backing off')
      else log.warn(record, 'background task failed; backing off')
    }
    schedule(backoffDelay(init.intervalMs, failures, maxBackoffMs))
  }

  schedule(init.intervalMs)
  return {
    get failures () { return failures },
    get runs () { return runs },
    stop: async () => {
      stopped = true
      clearTimeout(timer)
      await running
    }
  }
}
