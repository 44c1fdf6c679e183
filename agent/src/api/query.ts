/**
 * A request's query string as an object for a schema (`parseInput(schema, query(ctx.req.url))`):
 * each parameter at most once (a repeated one is refused, naming it), values as text.
 *
 * ```ts
 * const q = parseInput(availableQuery, queryObject(ctx.req.url), 'query', invalidInput)
 * ```
 */
import type { InputErrorFactory } from './validate.ts'
import { invalidRequest } from './validate.ts'

export function queryObject (url: string | undefined, error: InputErrorFactory = invalidRequest): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [key, value] of new URL(url ?? '/', 'http://localhost').searchParams) {
    if (Object.hasOwn(out, key)) throw error(`${key} is given more than once`, key)
    out[key] = value
  }
  return out
}
