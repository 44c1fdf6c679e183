/**
 * The HTTP server's interfaces: what a capability's routes file hands the core server
 * (`server.ts`) to mount, and the context each handler gets.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { EventStream } from './sse.ts'

export type Method = 'GET' | 'POST' | 'DELETE'

export interface RequestContext {
  req: IncomingMessage
  res: ServerResponse
  /** aborted when the client disconnects or stops reading, or the server stops */
  signal: AbortSignal
  /** abort the request's work (a reader that stopped reading) */
  abort: (reason: Error) => void
  /** the URI-decoded captures of the route's pattern */
  params: string[]
  /**
   * the JSON body, within the server's body limit (415, 413, 400 otherwise); `maxBytes` is a
   * route's own limit instead (a WASM task carries its module and input)
   */
  readJson: (options?: BodyOptions) => Promise<unknown>
  /** as `readJson`, but an absent body (no content-length, or 0) is `{}` */
  readOptionalJson: (options?: BodyOptions) => Promise<unknown>
  /** an SSE stream on the response, with the server's backpressure limits; a stalled client aborts the request */
  eventStream: (open?: () => unknown) => EventStream
  /** log a failure the way the server's error mapping does (for errors inside an open stream) */
  logFailure: (err: unknown) => void
  /**
   * this request's W3C `traceparent` (`trace.ts`): a child span of the caller's, or a new trace
   * when it sent none or an invalid one; echoed as the answer's `traceparent` header
   */
  traceparent: string
}

export interface BodyOptions {
  /** this route's body limit instead of the server's */
  maxBytes?: number
}

export type Handler = (ctx: RequestContext) => Promise<void>

export type MethodHandlers = Partial<Record<Method, Handler>>

/** The routes of one capability. */
export interface HttpRoutes {
  /** exact paths */
  paths?: Record<string, MethodHandlers>
  /**
   * Tried in order after every capability's exact paths: the first pattern that matches decides
   * (its methods, else 405); its captures become `params`.
   */
  patterns?: Array<{ pattern: RegExp, methods: MethodHandlers }>
}
