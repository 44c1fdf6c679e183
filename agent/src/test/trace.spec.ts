/** W3C traceparent: parsing by the spec's rules, formatting, child spans. */
import { describe, expect, it } from 'vitest'
import { childSpan, continueTrace, formatTraceparent, newTrace, nextHop, parseTraceparent } from '../trace.ts'

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const SPAN = '00f067aa0ba902b7'

describe('traceparent', () => {
  it('parses valid headers and formats them back', () => {
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-01`)).toEqual({ traceId: TRACE, spanId: SPAN, flags: 1 })
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-00`)).toEqual({ traceId: TRACE, spanId: SPAN, flags: 0 })
    expect(formatTraceparent({ traceId: TRACE, spanId: SPAN, flags: 1 })).toBe(`00-${TRACE}-${SPAN}-01`)
    // a later version: its first four fields, when more follow after a dash
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-09-future`)).toEqual({ traceId: TRACE, spanId: SPAN, flags: 9 })
    expect(parseTraceparent(`cc-${TRACE}-${SPAN}-01`)).toEqual({ traceId: TRACE, spanId: SPAN, flags: 1 })
  })

  it('ignores invalid headers', () => {
    for (const h of [
      undefined, '', 'garbage', [`00-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-01`],
      `ff-${TRACE}-${SPAN}-01`, // version ff is forbidden
      `00-${'0'.repeat(32)}-${SPAN}-01`, `00-${TRACE}-${'0'.repeat(16)}-01`, // all-zero ids
      `00-${TRACE.toUpperCase()}-${SPAN}-01`, // upper-case hex
      `00-${TRACE}-${SPAN}-01-extra`, // version 00 has exactly four fields
      `00-${TRACE.slice(1)}-${SPAN}-01`, `00-${TRACE}-${SPAN}-1`, `0-${TRACE}-${SPAN}-01`,
      `00-${TRACE}-${SPAN}-01`.padEnd(600, 'x')
    ]) expect(parseTraceparent(h), String(h)).toBeUndefined()
  })

  it('starts traces and child spans', () => {
    const t = newTrace()
    expect(formatTraceparent(t)).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
    expect(newTrace().traceId).not.toBe(t.traceId)
    const c = childSpan(t)
    expect(c.traceId).toBe(t.traceId)
    expect(c.spanId).not.toBe(t.spanId)
    const cont = continueTrace(`00-${TRACE}-${SPAN}-01`)
    expect(cont).toMatchObject({ traceId: TRACE, flags: 1 })
    expect(cont.spanId).not.toBe(SPAN)
    expect(continueTrace('garbage').traceId).not.toBe(TRACE)
    expect(nextHop(`00-${TRACE}-${SPAN}-01`)).toMatchObject({ traceId: TRACE, traceparent: expect.stringMatching(new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`)) as unknown })
  })
})
