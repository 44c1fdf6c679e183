/**
 * Query strings and the bodies of the node's own (non-OpenAI) routes, checked with a zod schema:
 * a mismatch is `InvalidInputError` (400 `invalid_value`) whose `field` is the first bad parameter,
 * as the routes' hand-written checkers answered before. (`parseInput` in `api/validate.ts` is the
 * same with `InvalidRequestError`, the OpenAI bodies' error.)
 *
 * ```ts
 * const q = parseQuery(z.strictObject({ kind: z.string().optional() }), ctx.req.url) // ?kind=pin → { kind: 'pin' }
 * ```
 */
import type { z } from 'zod'
import { describeIssue } from '../api/validate.ts'
import { InvalidInputError } from '../errors.ts'

/** The parsed value, or `InvalidInputError` naming the first problem (`root` names the value itself). */
export function parseFields<S extends z.ZodType> (schema: S, value: unknown, root = 'body'): z.output<S> {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const { param, message } = describeIssue(result.error.issues[0]!, root)
  throw new InvalidInputError(message, { field: param })
}

/** A request URL's query parameters as an object, each with its first value. */
export function queryObject (url: string | undefined): Record<string, string> {
  const first = new Map<string, string>()
  for (const [key, value] of new URL(url ?? '/', 'http://localhost').searchParams) {
    if (!first.has(key)) first.set(key, value)
  }
  return Object.fromEntries(first)
}

/** A request URL's query parameters, parsed by `schema` (`InvalidInputError` naming the first bad one). */
export function parseQuery<S extends z.ZodType> (schema: S, url: string | undefined): z.output<S> {
  return parseFields(schema, queryObject(url), 'query')
}
