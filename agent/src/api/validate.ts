/**
 * Input validation at a boundary (an HTTP body, an MCP call's arguments, CLI flags) with a zod
 * schema: a value that does not match becomes an `InvalidRequestError` whose `param` is the path
 * of the first problem (`requirements.cpu_cores`), which the HTTP API sends as a 400 with that
 * `param`, and MCP as a tool error.
 *
 * ```ts
 * const body = parseInput(allocateInput, await ctx.readJson())
 * ```
 */
import type { z } from 'zod'
import { InvalidInputError } from '../errors.ts'
import { InvalidRequestError } from '../inference/types.ts'

/** The error a refused input becomes: its one-line message and the path of the problem. */
export type InputErrorFactory = (message: string, param: string) => Error

/** `InvalidRequestError` with `param` (the inference plane's, and the default). */
export const invalidRequest: InputErrorFactory = (message, param) => new InvalidRequestError(message, { param })

/** `InvalidInputError` with `field` (the capabilities' own: resources, memory, artifacts). */
export const invalidInput: InputErrorFactory = (message, param) => new InvalidInputError(message, { field: param })

/** `a.b[2].c` from a zod issue path; '' for the value itself. */
export function issuePath (path: ReadonlyArray<PropertyKey>): string {
  let out = ''
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`
    else out += out.length === 0 ? String(key) : `.${String(key)}`
  }
  return out
}

/** The first issue of a failed parse as one line: `requirements.cpu_cores: expected number, received string`. */
export function describeIssue (issue: z.core.$ZodIssue, root = 'body'): { param: string, message: string } {
  const path = issuePath(issue.path)
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? ''
    const param = path.length === 0 ? key : `${path}.${key}`
    return { param, message: `${param} is not a known field` }
  }
  const param = path.length === 0 ? root : path
  return { param, message: `${param}: ${issue.message}` }
}

/**
 * The parsed value, or an error naming the first problem: `InvalidRequestError` unless `error`
 * says otherwise (`invalidInput` for the capabilities whose callers know `InvalidInputError`).
 */
export function parseInput<S extends z.ZodType> (schema: S, value: unknown, root = 'body', error: InputErrorFactory = invalidRequest): z.output<S> {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const { param, message } = describeIssue(result.error.issues[0]!, root)
  throw error(message, param)
}
