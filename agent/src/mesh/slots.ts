/**
 * Per-peer fairness: at most `max` handler executions in flight per remote peer; up to
 * `maxQueued` more wait in order; the rest are refused at once.
 *
 * ```ts
 * const slots = new PeerSlots(4, 8)
 * if (!await slots.acquire(peerId, signal)) throw new MeshProtocolError('too many concurrent requests')
 * try { await work() } finally { slots.release(peerId) }
 * ```
 */

interface PeerSlotState { active: number, queue: Array<(granted: boolean) => void> }

export class PeerSlots {
  readonly #peers = new Map<string, PeerSlotState>()
  readonly #max: number
  readonly #maxQueued: number

  constructor (max: number, maxQueued: number) {
    this.#max = max
    this.#maxQueued = maxQueued
  }

  /** Resolves true with a slot, false when the queue is full or `signal` aborts while waiting. */
  async acquire (peer: string, signal: AbortSignal): Promise<boolean> {
    let state = this.#peers.get(peer)
    if (state === undefined) {
      state = { active: 0, queue: [] }
      this.#peers.set(peer, state)
    }
    if (state.active < this.#max) {
      state.active++
      return true
    }
    if (signal.aborted || state.queue.length >= this.#maxQueued) return false
    const s = state
    return await new Promise<boolean>(resolve => {
      const grant = (granted: boolean): void => {
        signal.removeEventListener('abort', onAbort)
        resolve(granted)
      }
      const onAbort = (): void => {
        const i = s.queue.indexOf(grant)
        if (i >= 0) s.queue.splice(i, 1)
        resolve(false)
      }
      s.queue.push(grant)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  release (peer: string): void {
    const state = this.#peers.get(peer)
    if (state === undefined) return
    const next = state.queue.shift()
    if (next !== undefined) {
      next(true) // the slot passes to the next waiter
      return
    }
    state.active--
    if (state.active <= 0) this.#peers.delete(peer)
  }

  inFlight (peer: string): number {
    return this.#peers.get(peer)?.active ?? 0
  }
}
