/**
 * W3C Trace Context (`traceparent`): one inference or MOE query followed across nodes. The HTTP
 * API takes a caller's `traceparent` (else starts a trace), each hop over the mesh carries a child
 * span of it, and audit records keep its trace id.
 *
 * `traceparent: 00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`; lower-case hex, neither
 * id all zeros, version `ff` forbidden; a later version is read by its first four fields when the
 * header goes on with `-` (https://www.w3.org/TR/trace-context/#traceparent-header). An invalid
 * header is ignored and a new trace started, as the spec says.
 *
 * ```ts
 * const span = continueTrace(req.headers.traceparent)  // a child of the caller's span, or a new trace
 * res.setHeader('traceparent', formatTraceparent(span))
 * peer.chat(model, messages, { traceparent: formatTraceparent(childSpan(span)) })
 * audit.append({ kind: 'inference', …, trace_id: span.traceId })
 * ```
 */
import { randomBytes } from 'node:crypto'

export interface TraceContext {
  /** 32 lower-case hex digits, not all zeros */
  traceId: string
  /** this span's id: 16 lower-case hex digits, not all zeros */
  spanId: string
  /** the trace flags (bit 0: sampled) */
  flags: number
}

/** Flags of a trace this node starts: sampled (every trace is recorded in the audit trail). */
const SAMPLED = 0x01

const HEADER = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/

/** The context a `traceparent` header names, or undefined when it is absent or invalid. */
export function parseTraceparent (header: string | string[] | undefined): TraceContext | undefined {
  // a repeated header is invalid: which one would be the parent?
  if (typeof header !== 'string' || header.length > 512) return undefined
  const m = HEADER.exec(header.trim())
  if (m === null) return undefined
  const [, version, traceId, spanId, flags, rest] = m
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined
  if (/^0+$/.test(traceId!) || /^0+$/.test(spanId!)) return undefined
  return { traceId: traceId!, spanId: spanId!, flags: parseInt(flags!, 16) }
}

/** The `traceparent` header (version 00) of a context. */
export function formatTraceparent (ctx: TraceContext): string {
  return `00-${ctx.traceId}-${ctx.spanId}-${(ctx.flags & 0xff).toString(16).padStart(2, '0')}`
}

const randomHex = (bytes: number): string => {
  for (;;) {
    const hex = randomBytes(bytes).toString('hex')
    if (!/^0+$/.test(hex)) return hex
  }
}

/** A new trace, sampled. */
export function newTrace (): TraceContext {
  return { traceId: randomHex(16), spanId: randomHex(8), flags: SAMPLED }
}

/** A new span of the same trace (the next hop's parent). */
export function childSpan (parent: TraceContext): TraceContext {
  return { traceId: parent.traceId, spanId: randomHex(8), flags: parent.flags }
}

/** A child span of the caller's `traceparent`, or a new trace when there is none or it is invalid. */
export function continueTrace (header: string | string[] | undefined): TraceContext {
  const parent = parseTraceparent(header)
  return parent === undefined ? newTrace() : childSpan(parent)
}

/** The trace id of a `traceparent` (or a new one when it is absent or invalid) with the header of a child span, for the next hop. */
export function nextHop (traceparent: string | undefined): { traceId: string, traceparent: string } {
  const span = continueTrace(traceparent)
  return { traceId: span.traceId, traceparent: formatTraceparent(span) }
}
