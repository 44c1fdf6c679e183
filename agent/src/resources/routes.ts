/**
 * The `resources` capability over the node's HTTP API: design §11.4's tool contract as JSON
 * routes, every body and query checked with the operations' schemas (`schemas.ts`, the same the
 * MCP tools use: an unknown field, a wrong type, bad base64 or an oversized module is an
 * `InvalidInputError` naming its `field`; value ranges are the capability's own checks, shared
 * with the library and the CLI). Errors are the server's JSON error body with the
 * typed error's `name` (`NoCapacityError` 503, `WasmCpuLimitError` 422…, `http/openai.ts`).
 *
 * | route | in | out |
 * |---|---|---|
 * | `POST /v1/resources/allocate` | `{resource_type, requirements?, locality_preference?, duration_seconds?, wait_seconds?, workload_class?, node_id?, explain?}` | the lease (`placement` with `explain`) |
 * | `POST /v1/resources/renew` | `{allocation_id, duration_seconds}` | the lease under its new id |
 * | `POST /v1/resources/release` | `{allocation_id}` | `{allocation_id, released: true}` |
 * | `GET /v1/resources/available` | `?resource_type=&cpu_cores=&memory_gb=&gpu=&…` | per node and in total: advertised, leased, free |
 * | `GET /v1/resources/allocations` | | this node's leases, as holder and as provider |
 * | `POST /v1/resources/tasks` | `{wasm_base64 \| wasm_cid, input_base64?, limits?, allow_clock?, requirements?, locality_preference?, workload_class?, node_id?, explain?}` | `{output_base64, exit_code, usage, node_id, allocation_id}` |
 *
 * `?explain=true` (or `"explain": true`) on allocate and tasks adds the placement: every
 * candidate node with why it was ranked or left out.
 *
 * ```ts
 * const http = httpServer({ port: 8080 })({ logger, routes: [resourceRoutes({ resources: node.resources })] })
 * // curl -s localhost:8080/v1/resources/allocate -H 'content-type: application/json' \
 * //   -d '{"resource_type":"compute","requirements":{"cpu_cores":1}}'
 * ```
 */
import { z } from 'zod'
import { queryObject } from '../api/query.ts'
import { invalidInput, parseInput } from '../api/validate.ts'
import { sendJson } from '../http/body.ts'
import type { Handler, HttpRoutes, RequestContext } from '../http/types.ts'
import type { ResourcesService } from './index.ts'
import { allocateInput, availableQuery, base64Length, explainQuery, releaseInput, renewInput, runScheduledTask, scheduleTaskInput } from './schemas.ts'
import { WASM_MAX_INPUT_BYTES, WASM_MAX_MODULE_BYTES } from './wasm.ts'

/** Largest `POST /v1/resources/tasks` body: the largest module and input in base64, and room for the other fields. */
export const TASK_MAX_BODY_BYTES = base64Length(WASM_MAX_MODULE_BYTES) + base64Length(WASM_MAX_INPUT_BYTES) + 64 * 1024

const query = (ctx: RequestContext): Record<string, string> => queryObject(ctx.req.url, invalidInput)
/** a query string that must be empty */
const noQuery = z.strictObject({})

/** `?explain=true` or `"explain": true`. */
function explains (ctx: RequestContext, body: { explain?: boolean | undefined }): boolean {
  return body.explain === true || parseInput(explainQuery, query(ctx), 'query', invalidInput).explain === true
}

export interface ResourceRoutesComponents {
  resources: Pick<ResourcesService, 'allocate' | 'renew' | 'release' | 'queryAvailable' | 'allocations' | 'scheduleTask'>
}

/** The resources routes, for the node's HTTP server. */
export function resourceRoutes (components: ResourceRoutesComponents): HttpRoutes {
  const { resources } = components

  const body = <S extends z.ZodType>(schema: S, value: unknown): z.output<S> => parseInput(schema, value, 'body', invalidInput)

  const allocate: Handler = async (ctx) => {
    const { explain, ...input } = body(allocateInput, await ctx.readJson())
    const showPlacement = explains(ctx, { explain })
    const { placement, ...lease } = await resources.allocate(input, { signal: ctx.signal })
    sendJson(ctx.res, 200, showPlacement ? { ...lease, placement } : lease)
  }

  const renew: Handler = async (ctx) => {
    body(noQuery, query(ctx))
    sendJson(ctx.res, 200, await resources.renew(body(renewInput, await ctx.readJson())))
  }

  const release: Handler = async (ctx) => {
    body(noQuery, query(ctx))
    sendJson(ctx.res, 200, await resources.release(body(releaseInput, await ctx.readJson())))
  }

  const available: Handler = async (ctx) => {
    const { resource_type: type, ...requirements } = body(availableQuery, query(ctx))
    sendJson(ctx.res, 200, await resources.queryAvailable({
      ...(type !== undefined ? { resource_type: type } : {}),
      ...(Object.keys(requirements).length > 0 ? { requirements } : {})
    }))
  }

  const allocations: Handler = async (ctx) => {
    body(noQuery, query(ctx))
    sendJson(ctx.res, 200, await resources.allocations())
  }

  const tasks: Handler = async (ctx) => {
    const input = body(scheduleTaskInput, await ctx.readJson({ maxBytes: TASK_MAX_BODY_BYTES }))
    const showPlacement = explains(ctx, input)
    sendJson(ctx.res, 200, await runScheduledTask(resources, input, showPlacement, ctx.signal))
  }

  return {
    paths: {
      '/v1/resources/allocate': { POST: allocate },
      '/v1/resources/renew': { POST: renew },
      '/v1/resources/release': { POST: release },
      '/v1/resources/available': { GET: available },
      '/v1/resources/allocations': { GET: allocations },
      '/v1/resources/tasks': { POST: tasks }
    }
  }
}
