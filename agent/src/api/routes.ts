/**
 * Operations as HTTP routes: `POST /v1/<group>/<verb>` for each operation `<group>.<verb>`, the
 * JSON body (optional: none is `{}`) parsed by the operation's input schema (400
 * `InvalidRequestError` naming the field), the result sent through its output schema. The node
 * mounts the `holochain.*` operations this way (the other groups have their own routes, parsed
 * with the same schemas).
 *
 * ```sh
 * curl -s -X POST localhost:8080/v1/holochain/query_peers
 * curl -s localhost:8080/v1/holochain/join_mesh -H 'content-type: application/json' \
 *   -d '{"network":"local","agent_name":"gpu-box-01","capabilities":{}}'
 * ```
 */
import { sendJson } from '../http/body.ts'
import type { Handler, HttpRoutes } from '../http/types.ts'
import type { AnyOperation } from './operation.ts'
import { parseInput } from './validate.ts'

export interface OperationRoutesComponents {
  operations: AnyOperation[]
}

/** `POST /v1/<group>/<verb>` for each operation. */
export function operationRoutes (components: OperationRoutesComponents): HttpRoutes {
  const paths: Record<string, { POST: Handler }> = {}
  for (const op of components.operations) {
    const path = `/v1/${op.name.replace('.', '/')}`
    paths[path] = {
      POST: async (ctx) => {
        const input: unknown = parseInput(op.input, (await ctx.readOptionalJson()) ?? {})
        const traceparent = ctx.req.headers.traceparent
        const out: unknown = await op.run(input, { signal: ctx.signal, ...(typeof traceparent === 'string' ? { traceparent } : {}) })
        sendJson(ctx.res, 200, op.output.parse(out))
      }
    }
  }
  return { paths }
}
