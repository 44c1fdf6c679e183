/**
 * The audit routes' inputs (`audit/schemas.ts`, parsed by `http/input.ts`): the `GET /v1/audit`
 * query and the `POST /v1/backup` body. A bad value or an unknown parameter is
 * `InvalidInputError` naming it (its `field`, sent as the 400's `param`).
 */
import { describe, expect, it } from 'vitest'
import { parseFields, parseQuery, queryObject } from '../../http/input.ts'
import { auditListQuery, backupBody, sinceMicros } from '../schemas.ts'

function refusal (parse: () => unknown): { name: string, field: string, message: string } {
  try {
    parse()
  } catch (err: unknown) {
    const e = err as { name: string, field: string, message: string }
    return { name: e.name, field: e.field, message: e.message }
  }
  throw new Error('the input was accepted')
}

describe('GET /v1/audit query', () => {
  const list = (query: string): unknown => parseQuery(auditListQuery, `/v1/audit${query}`)

  it('parses each parameter', () => {
    expect(list('')).toEqual({})
    expect(list('?kind=pin&since=2026-01-01T00:00:00Z&after_seq=12&limit=10'))
      .toEqual({ kind: 'pin', since: Date.parse('2026-01-01T00:00:00Z') * 1000, after_seq: 12, limit: 10 })
    expect(list('?since=1767225600000000&limit=100000')).toEqual({ since: 1767225600000000, limit: 100_000 })
  })

  it('takes the first of a repeated parameter', () => {
    expect(queryObject('/v1/audit?kind=a&kind=b&limit=3')).toEqual({ kind: 'a', limit: '3' })
    expect(list('?kind=a&kind=b')).toEqual({ kind: 'a' })
  })

  it.each<[string, string, string]>([
    ['?limit=0', 'limit', 'limit: must be from 1 to 100000'],
    ['?limit=100001', 'limit', 'limit: must be from 1 to 100000'],
    ['?limit=1e3', 'limit', 'limit: must be a whole number'],
    ['?limit=', 'limit', 'limit: must be a whole number'],
    ['?after_seq=-1', 'after_seq', 'after_seq: must be a whole number'],
    ['?since=yesterday', 'since', 'since: must be an ISO time (2026-01-31T12:00:00Z) or µs since the Unix epoch, got "yesterday"'],
    ['?since=1969-12-31T00:00:00Z', 'since', 'since: must be an ISO time (2026-01-31T12:00:00Z) or µs since the Unix epoch, got "1969-12-31T00:00:00Z"'],
    ['?bogus=1', 'bogus', 'bogus is not a known field'],
    ['?__proto__=1', '__proto__', '__proto__ is not a known field']
  ])('refuses %s', (query, field, message) => {
    expect(refusal(() => list(query))).toEqual({ name: 'InvalidInputError', field, message })
  })

  it('reads since as µs: a whole number as is, an ISO time converted', () => {
    expect(sinceMicros('42')).toBe(42)
    expect(sinceMicros('2026-01-31T12:00:00.001Z')).toBe(Date.parse('2026-01-31T12:00:00.001Z') * 1000)
    expect(sinceMicros('Jan 31 2026')).toBeUndefined()
  })
})

describe('POST /v1/backup body', () => {
  it('takes an empty body or include_plaintext_keystore', () => {
    expect(parseFields(backupBody, {})).toEqual({})
    expect(parseFields(backupBody, { include_plaintext_keystore: true })).toEqual({ include_plaintext_keystore: true })
  })

  it.each<[unknown, string, string]>([
    [{ include_plaintext_keystore: 'yes' }, 'include_plaintext_keystore', 'include_plaintext_keystore: must be a boolean'],
    [{ include_plaintext_keystore: true, to: '/tmp/x' }, 'to', 'to is not a known field'],
    [[], 'body', 'body: must be a JSON object'],
    [null, 'body', 'body: must be a JSON object']
  ])('refuses %j', (body, field, message) => {
    expect(refusal(() => parseFields(backupBody, body))).toEqual({ name: 'InvalidInputError', field, message })
  })
})
