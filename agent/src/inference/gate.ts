/**
 * Slots for one kind of request of a loaded model (its context's sequences, or its embedding
 * context), and the bounded queue of requests waiting for one: a full queue is BusyError (503).
 *
 * ```ts
 * const gate = new SlotGate({ model: id, slots: 2, maxQueue: 16 })
 * await gate.acquire(signal)
 * try { await work() } finally { gate.release() }
 * ```
 */
import { BusyError, RequestAbortedError } from './types.ts'

interface Waiter { resolve: () => void, reject: (e: Error) => void }

export class SlotGate {
  private readonly model: string
  private readonly maxQueue: number
  private free: number
  private readonly queue: Waiter[] = []
  /** requests holding a slot now */
  inFlight = 0

  constructor (init: { model: string, slots: number, maxQueue: number }) {
    this.model = init.model
    this.free = init.slots
    this.maxQueue = init.maxQueue
  }

  /** requests waiting for a slot */
  get waiting (): number { return this.queue.length }

  /**
   * Take a free slot, or wait in the bounded queue; a full queue is BusyError. The slot is taken
   * (or the request queued or refused) synchronously, before the caller awaits anything.
   */
  async acquire (signal: AbortSignal | undefined): Promise<void> {
    if (this.free > 0) { this.free--; return }
    if (this.queue.length >= this.maxQueue) throw new BusyError(`model ${this.model} is busy: ${this.inFlight} running, ${this.queue.length} waiting`, { model: this.model })
    signal?.throwIfAborted()
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.queue.indexOf(w)
        if (i >= 0) this.queue.splice(i, 1)
        reject(signal?.reason instanceof Error ? signal.reason : new RequestAbortedError('aborted while queued', { model: this.model }))
      }
      const w: Waiter = {
        resolve: () => { signal?.removeEventListener('abort', onAbort); resolve() },
        reject: (e) => { signal?.removeEventListener('abort', onAbort); reject(e) }
      }
      this.queue.push(w)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Hand the slot to the next waiter, or free it. */
  release (): void {
    const w = this.queue.shift()
    if (w !== undefined) w.resolve()
    else this.free++
  }

  /** Run `work` holding a slot (counted in flight), released however it ends. */
  async hold<T> (signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
    await this.acquire(signal)
    this.inFlight++
    try {
      return await work()
    } finally {
      this.inFlight--
      this.release()
    }
  }

  /** Reject everyone waiting (the model is gone). */
  rejectAll (err: Error): void {
    for (const w of this.queue.splice(0)) w.reject(err)
  }
}
