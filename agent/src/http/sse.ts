/**
 * Server-sent events with backpressure. A response's headers go out with its first event, so a
 * request that fails before any token (busy, prompt too long) still gets its proper status.
 * Once `res.write` returns false (the client reads slower than the events come), nothing more is
 * written until 'drain': events wait in a queue whose bytes (with what the socket still holds)
 * are bounded by `maxBufferedBytes`. A reader that lets the queue pass that bound, or gives no
 * 'drain' within `drainTimeoutMs`, is dropped: `onStall` gets a `SlowReaderError` (the request's
 * generation is aborted with it, which frees the model for others) and the connection is closed.
 *
 * ```ts
 * const events = new EventStream(res, { open: () => undefined, onStall: (err) => { controller.abort(err) } })
 * events.send({ progress: 0.5 })
 * await events.end()   // resolves once the client has taken everything (or was dropped)
 * ```
 */
import type { ServerResponse } from 'node:http'
import { DEFAULT_SSE_DRAIN_TIMEOUT_MS, DEFAULT_SSE_MAX_BUFFERED_BYTES, SSE_HEADERS } from './constants.ts'
import { SlowReaderError } from './openai.ts'

export interface EventStreamInit {
  /** the opening event (the chat role chunk), if any, sent right after the headers */
  open?: () => unknown
  /** the client stopped reading: the stream is being dropped with this error */
  onStall: (err: SlowReaderError) => void
  /** @default 1 MiB */
  maxBufferedBytes?: number
  /** @default 30000 */
  drainTimeoutMs?: number
}

export class EventStream {
  private readonly res: ServerResponse
  private readonly init: EventStreamInit
  private readonly maxBufferedBytes: number
  private readonly drainTimeoutMs: number
  private readonly queue: string[] = []
  private queuedBytes = 0
  private opened = false
  private stalled = false
  private timer: NodeJS.Timeout | undefined
  private drained: PromiseWithResolvers<void> | undefined

  constructor (res: ServerResponse, init: EventStreamInit) {
    this.res = res
    this.init = init
    this.maxBufferedBytes = init.maxBufferedBytes ?? DEFAULT_SSE_MAX_BUFFERED_BYTES
    this.drainTimeoutMs = init.drainTimeoutMs ?? DEFAULT_SSE_DRAIN_TIMEOUT_MS
    res.on('drain', () => { this.flush() })
    res.on('close', () => { this.settle() })
  }

  get isOpen (): boolean { return this.opened }

  /** bytes written but not yet taken by the client, plus those queued here */
  get bufferedBytes (): number { return this.res.writableLength + this.queuedBytes }

  /** headers, then the opening event if there is one */
  open (): void {
    if (this.opened) return
    this.opened = true
    this.res.writeHead(200, SSE_HEADERS)
    const first = this.init.open?.()
    if (first !== undefined) this.send(first)
  }

  /** one `data:` event; queued while the client has not drained what it was sent */
  send (data: unknown): void {
    if (this.closed) return
    const event = `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`
    if (this.queue.length > 0 || this.res.writableNeedDrain) {
      this.queue.push(event)
      this.queuedBytes += Buffer.byteLength(event)
      if (this.bufferedBytes > this.maxBufferedBytes) this.stall(`more than ${this.maxBufferedBytes} bytes of events are waiting for the client to read them`)
      return
    }
    if (!this.res.write(event)) this.waitForDrain()
  }

  /** Send what is queued, end the response, and resolve once the client has taken it (or was dropped). */
  async end (): Promise<void> {
    if (this.closed) return
    if (this.queue.length > 0 || this.res.writableNeedDrain) {
      this.drained ??= Promise.withResolvers<void>()
      await this.drained.promise
    }
    if (!this.closed) this.res.end()
  }

  private get closed (): boolean { return this.stalled || this.res.destroyed || this.res.writableEnded }

  private waitForDrain (): void {
    if (this.timer !== undefined) return
    this.timer = setTimeout(() => { this.stall(`the client read nothing for ${this.drainTimeoutMs} ms`) }, this.drainTimeoutMs)
  }

  private flush (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    while (this.queue.length > 0 && !this.closed) {
      const event = this.queue.shift()!
      this.queuedBytes -= Buffer.byteLength(event)
      if (!this.res.write(event)) { this.waitForDrain(); return }
    }
    if (!this.res.writableNeedDrain) this.settle()
  }

  private stall (reason: string): void {
    if (this.stalled) return
    this.stalled = true
    const err = new SlowReaderError(reason, this.bufferedBytes)
    this.queue.length = 0
    this.queuedBytes = 0
    this.init.onStall(err)
    this.res.destroy()
    this.settle()
  }

  private settle (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.drained?.resolve()
    this.drained = undefined
  }
}
