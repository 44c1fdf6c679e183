/**
 * One operation of the node, described once: its name (the MCP tool's), its input and output
 * schemas (zod), and what it does. The same description serves the MCP tool definitions
 * (`agent/src/mcp/`) and the HTTP routes' request validation (`parseInput`), so the surfaces
 * cannot drift apart (the CLI's arguments are meant to follow; see `operations.ts`).
 *
 * ```ts
 * const release = defineOperation({
 *   name: 'resources.release',
 *   description: 'Release allocated resources',
 *   input: z.object({ allocation_id: z.string().min(1) }).strict(),
 *   output: z.object({ allocation_id: z.string(), released: z.boolean() }),
 *   run: async (input, ctx) => await resources.release(input.allocation_id, { signal: ctx.signal })
 * })
 * ```
 */
import type { z } from 'zod'

export interface OperationContext {
  /** aborted when the caller goes away or the node stops */
  signal: AbortSignal
  /** the caller's W3C `traceparent`, when it sent one */
  traceparent?: string
}

export interface Operation<I extends z.ZodObject = z.ZodObject, O extends z.ZodObject = z.ZodObject> {
  /** `<group>.<verb>` as in CONTRACTS §11 (`resources.allocate`, `memory.search`…) */
  name: string
  /** one line, shown by MCP clients and `--help` */
  description: string
  input: I
  output: O
  /** the input is already parsed by `input`; the result must satisfy `output` */
  run: (input: z.output<I>, ctx: OperationContext) => Promise<z.input<O>>
}

/** An operation, with its types inferred from its schemas. */
export function defineOperation<I extends z.ZodObject, O extends z.ZodObject> (op: Operation<I, O>): Operation<I, O> {
  return op
}

/** Any operation, for lists of operations of different shapes. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyOperation = Operation<any, any>
