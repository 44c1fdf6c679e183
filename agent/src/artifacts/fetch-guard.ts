/**
 * The deadline and the error mapping of one fetch: its signal aborts when the caller's does or
 * when no block arrived for `timeoutMs` (restarted by every block, paused while the caller holds a
 * chunk), and `fail(err)` turns what the backend threw into the store's typed errors
 * (`AbortError`, `ContentNotFoundError`, `ContentMismatchError`).
 *
 * ```ts
 * const guard = new FetchGuard(cid, timeoutMs, options.signal)
 * try { for await (const b of fetch({ signal: guard.signal, onBlock: () => guard.touch() })) … }
 * catch (err) { throw guard.fail(err) } finally { guard.done() }
 * ```
 */
import { setMaxListeners } from 'node:events'
import { AbortError } from '../errors.ts'
import { ContentMismatchError, ContentNotFoundError } from './types.ts'

/** What Helia throws for a block that is not here and cannot be fetched. */
const NOT_HERE = new Set(['BlockNotFoundWhileOfflineError', 'InvalidConfigurationError', 'NotFoundError'])

export class FetchGuard {
  readonly cid: string
  readonly timeoutMs: number
  readonly #controller = new AbortController()
  readonly #outer: AbortSignal | undefined
  readonly #onOuterAbort = (): void => { this.#controller.abort(new AbortError()) }
  #timer: NodeJS.Timeout | undefined
  #timedOut = false

  constructor (cid: string, timeoutMs: number, outer?: AbortSignal) {
    this.cid = cid
    this.timeoutMs = timeoutMs
    this.#outer = outer
    // Helia hangs a listener per block wanted on it
    setMaxListeners(0, this.#controller.signal)
    if (outer?.aborted === true) this.#onOuterAbort()
    else outer?.addEventListener('abort', this.#onOuterAbort, { once: true })
    this.touch()
  }

  get signal (): AbortSignal {
    return this.#controller.signal
  }

  /** a block arrived: the idle deadline starts again */
  touch (): void {
    if (this.#controller.signal.aborted) return
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#timedOut = true
      this.#controller.abort(new ContentNotFoundError(this.cid, this.timeoutMs))
    }, this.timeoutMs)
    this.#timer.unref?.()
  }

  /** the caller holds the data: no deadline until `touch()` */
  pause (): void {
    clearTimeout(this.#timer)
  }

  /** throws the typed error when the fetch was stopped (between chunks) */
  check (): void {
    if (this.#controller.signal.aborted) throw this.fail(this.#controller.signal.reason)
  }

  /** the typed error for what a fetch threw */
  fail (err: unknown): Error {
    if (this.#outer?.aborted === true) return new AbortError()
    const mismatch = findMismatch(err)
    if (mismatch !== undefined) return new ContentMismatchError(this.cid, mismatch.cid)
    if (this.#timedOut) return new ContentNotFoundError(this.cid, this.timeoutMs, { cause: err })
    // an offline store (no block broker) knows at once that no peer will be asked
    if (NOT_HERE.has((err as Error | null)?.name ?? '')) return new ContentNotFoundError(this.cid, 0, { cause: err })
    if (err instanceof ContentNotFoundError || err instanceof AbortError) return err
    return err instanceof Error ? err : new Error(String(err))
  }

  done (): void {
    clearTimeout(this.#timer)
    this.#outer?.removeEventListener('abort', this.#onOuterAbort)
  }
}

/** A `ContentMismatchError` anywhere in an error's causes or an AggregateError's errors. */
export function findMismatch (err: unknown, depth = 0): ContentMismatchError | undefined {
  if (depth > 8 || err === null || typeof err !== 'object') return undefined
  if (err instanceof ContentMismatchError) return err
  const errors = (err as { errors?: unknown }).errors
  if (Array.isArray(errors)) {
    for (const e of errors) {
      const found = findMismatch(e, depth + 1)
      if (found !== undefined) return found
    }
  }
  return findMismatch((err as { cause?: unknown }).cause, depth + 1)
}
