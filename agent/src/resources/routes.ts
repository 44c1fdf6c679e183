/**
 * The `resources` capability over the node's HTTP API: design §11.4's tool contract as JSON
 * routes, every field checked here (an unknown field, a wrong type, bad base64 or an oversized
 * module is an `InvalidInputError` naming its `field`; value ranges are the capability's own
 * checks, shared with the library and the CLI). Errors are the server's JSON error body with the
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
import type { Requirements } from '../../../scheduler/index.ts'
import { InvalidInputError } from '../errors.ts'
import { jsonObject, sendJson } from '../http/body.ts'
import type { Handler, HttpRoutes, RequestContext } from '../http/types.ts'
import type { AllocateInput, ResourcesService, ScheduleTaskInput } from './index.ts'
import type { LeaseResourceType } from './types.ts'
import { WASM_MAX_CPU_MS, WASM_MAX_INPUT_BYTES, WASM_MAX_MEMORY_MB, WASM_MAX_MODULE_BYTES, WASM_MAX_WALL_MS, type WasmLimits } from './wasm.ts'

/** Most base64 characters of `n` bytes. */
const base64Length = (n: number): number => Math.ceil(n / 3) * 4
/** Largest `POST /v1/resources/tasks` body: the largest module and input in base64, and room for the other fields. */
export const TASK_MAX_BODY_BYTES = base64Length(WASM_MAX_MODULE_BYTES) + base64Length(WASM_MAX_INPUT_BYTES) + 64 * 1024
/** Longest number a query parameter may spell. */
const MAX_QUERY_NUMBER_LENGTH = 32

const REQUIREMENT_FIELDS = ['cpu_cores', 'memory_gb', 'gpu', 'gpu_vram_gb', 'storage_gb', 'model_name', 'vector_dimensions', 'bandwidth_mbps', 'vectors'] as const satisfies ReadonlyArray<keyof Requirements>
const NUMERIC_REQUIREMENTS: ReadonlySet<string> = new Set(['cpu_cores', 'memory_gb', 'gpu_vram_gb', 'storage_gb', 'vector_dimensions', 'bandwidth_mbps', 'vectors'])
const PLACING_FIELDS = ['requirements', 'locality_preference', 'workload_class', 'node_id', 'explain'] as const
const ALLOCATE_FIELDS = ['resource_type', 'duration_seconds', 'wait_seconds', ...PLACING_FIELDS] as const
const TASK_FIELDS = ['wasm_base64', 'wasm_cid', 'input_base64', 'limits', 'allow_clock', ...PLACING_FIELDS] as const
const LIMIT_FIELDS = { memory_mb: WASM_MAX_MEMORY_MB, cpu_ms: WASM_MAX_CPU_MS, wall_ms: WASM_MAX_WALL_MS } as const satisfies Record<keyof WasmLimits, number>

type Body = Record<string, unknown>
const object = jsonObject

const invalid = (field: string, message: string): InvalidInputError => new InvalidInputError(message, { field })

function optionalString (body: Body, field: string): string | undefined {
  const v = body[field]
  if (v === undefined) return undefined
  if (typeof v !== 'string') throw invalid(field, `${field} must be a string`)
  return v
}

function requiredString (body: Body, field: string): string {
  const v = optionalString(body, field)
  if (v === undefined) throw invalid(field, `${field} is required`)
  return v
}

function optionalNumber (body: Body, field: string): number | undefined {
  const v = body[field]
  if (v === undefined) return undefined
  if (typeof v !== 'number') throw invalid(field, `${field} must be a number`)
  return v
}

function optionalBoolean (body: Body, field: string): boolean | undefined {
  const v = body[field]
  if (v === undefined) return undefined
  if (typeof v !== 'boolean') throw invalid(field, `${field} must be true or false`)
  return v
}

/** `requirements`: known fields only (their values are placement's to check). */
function requirements (v: unknown): Requirements {
  return object(v, 'requirements', REQUIREMENT_FIELDS) as Requirements
}

/** `limits`: each a positive integer within the runner's maximum. */
function limits (v: unknown): WasmLimits {
  const body = object(v, 'limits', Object.keys(LIMIT_FIELDS))
  const out: WasmLimits = {}
  for (const [key, max] of Object.entries(LIMIT_FIELDS) as Array<[keyof WasmLimits, number]>) {
    const n = body[key]
    if (n === undefined) continue
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > max) throw invalid(`limits.${key}`, `limits.${key} must be an integer from 1 to ${max}`)
    out[key] = n
  }
  return out
}

/** Standard padded base64 only (no URL alphabet, whitespace or stray bits), at most `maxBytes` decoded. */
function base64 (body: Body, field: string, maxBytes: number): Uint8Array | undefined {
  const v = optionalString(body, field)
  if (v === undefined) return undefined
  if (v.length > base64Length(maxBytes)) throw invalid(field, `${field} must decode to at most ${maxBytes} bytes`)
  const bytes = v.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(v) ? Buffer.from(v, 'base64') : undefined
  // the round trip refuses what Node would quietly skip or truncate
  if (bytes === undefined || bytes.toString('base64') !== v) throw invalid(field, `${field} must be standard base64 (A-Z, a-z, 0-9, +, /, padded with =)`)
  if (bytes.byteLength > maxBytes) throw invalid(field, `${field} must decode to at most ${maxBytes} bytes, it is ${bytes.byteLength}`)
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** The placement fields allocate and tasks share. */
function placing (body: Body): Pick<AllocateInput, 'requirements' | 'locality_preference' | 'workload_class' | 'node_id'> {
  const out: Pick<AllocateInput, 'requirements' | 'locality_preference' | 'workload_class' | 'node_id'> = {}
  if (body.requirements !== undefined) out.requirements = requirements(body.requirements)
  const locality = optionalString(body, 'locality_preference')
  if (locality !== undefined) out.locality_preference = locality as AllocateInput['locality_preference']
  const workloadClass = optionalString(body, 'workload_class')
  if (workloadClass !== undefined) out.workload_class = workloadClass
  const nodeId = optionalString(body, 'node_id')
  if (nodeId !== undefined) out.node_id = nodeId
  return out
}

/** The request's query parameters, each given at most once and each one of `allowed`. */
function query (ctx: RequestContext, allowed: readonly string[]): Map<string, string> {
  const params = new URL(ctx.req.url ?? '/', 'http://localhost').searchParams
  const out = new Map<string, string>()
  for (const [key, value] of params) {
    if (!allowed.includes(key)) throw invalid(key, `${key} is not a known query parameter (known: ${allowed.join(', ') || 'none'})`)
    if (out.has(key)) throw invalid(key, `${key} is given more than once`)
    out.set(key, value)
  }
  return out
}

function queryBoolean (value: string, field: string): boolean {
  if (value !== 'true' && value !== 'false') throw invalid(field, `${field} must be true or false`)
  return value === 'true'
}

/** `?explain=true` or `"explain": true`. */
function explains (ctx: RequestContext, body: Body): boolean {
  const q = query(ctx, ['explain']).get('explain')
  return optionalBoolean(body, 'explain') === true || (q !== undefined && queryBoolean(q, 'explain'))
}

/** `GET /v1/resources/available`'s query: a resource type and requirements, numbers spelled plainly. */
function parseAvailableQuery (ctx: RequestContext): { resource_type?: LeaseResourceType, requirements?: Requirements } {
  const q = query(ctx, ['resource_type', ...REQUIREMENT_FIELDS])
  const out: { resource_type?: LeaseResourceType, requirements?: Requirements } = {}
  const type = q.get('resource_type')
  if (type !== undefined) out.resource_type = type as LeaseResourceType
  const r: Record<string, unknown> = {}
  for (const key of REQUIREMENT_FIELDS) {
    const v = q.get(key)
    if (v === undefined) continue
    if (key === 'gpu') r[key] = queryBoolean(v, key)
    else if (!NUMERIC_REQUIREMENTS.has(key)) r[key] = v
    else if (v.length > MAX_QUERY_NUMBER_LENGTH || !/^\d+(\.\d+)?$/.test(v)) throw invalid(key, `${key} must be a non-negative decimal number, got ${JSON.stringify(v.slice(0, MAX_QUERY_NUMBER_LENGTH))}`)
    else r[key] = Number(v)
  }
  if (Object.keys(r).length > 0) out.requirements = r as Requirements
  return out
}

export interface ResourceRoutesComponents {
  resources: Pick<ResourcesService, 'allocate' | 'renew' | 'release' | 'queryAvailable' | 'allocations' | 'scheduleTask'>
}

/** The resources routes, for the node's HTTP server. */
export function resourceRoutes (components: ResourceRoutesComponents): HttpRoutes {
  const { resources } = components

  const allocate: Handler = async (ctx) => {
    const body = object(await ctx.readJson(), 'body', ALLOCATE_FIELDS)
    const explain = explains(ctx, body)
    const input: AllocateInput = { resource_type: requiredString(body, 'resource_type') as LeaseResourceType, ...placing(body) }
    const duration = optionalNumber(body, 'duration_seconds')
    if (duration !== undefined) input.duration_seconds = duration
    const wait = optionalNumber(body, 'wait_seconds')
    if (wait !== undefined) input.wait_seconds = wait
    const { placement, ...lease } = await resources.allocate(input, { signal: ctx.signal })
    sendJson(ctx.res, 200, explain ? { ...lease, placement } : lease)
  }

  const renew: Handler = async (ctx) => {
    query(ctx, [])
    const body = object(await ctx.readJson(), 'body', ['allocation_id', 'duration_seconds'])
    const allocationId = requiredString(body, 'allocation_id')
    const duration = optionalNumber(body, 'duration_seconds')
    if (duration === undefined) throw invalid('duration_seconds', 'duration_seconds is required')
    sendJson(ctx.res, 200, await resources.renew({ allocation_id: allocationId, duration_seconds: duration }))
  }

  const release: Handler = async (ctx) => {
    query(ctx, [])
    const body = object(await ctx.readJson(), 'body', ['allocation_id'])
    sendJson(ctx.res, 200, await resources.release({ allocation_id: requiredString(body, 'allocation_id') }))
  }

  const available: Handler = async (ctx) => {
    sendJson(ctx.res, 200, await resources.queryAvailable(parseAvailableQuery(ctx)))
  }

  const allocations: Handler = async (ctx) => {
    query(ctx, [])
    sendJson(ctx.res, 200, await resources.allocations())
  }

  const tasks: Handler = async (ctx) => {
    const body = object(await ctx.readJson({ maxBytes: TASK_MAX_BODY_BYTES }), 'body', TASK_FIELDS)
    const explain = explains(ctx, body)
    const input: ScheduleTaskInput = placing(body)
    const wasm = base64(body, 'wasm_base64', WASM_MAX_MODULE_BYTES)
    if (wasm !== undefined) input.wasm = wasm
    const cid = optionalString(body, 'wasm_cid')
    if (cid !== undefined) input.wasm_cid = cid
    if (wasm === undefined && cid === undefined) throw invalid('wasm_base64', 'a task needs its module: wasm_base64 or wasm_cid')
    const taskInput = base64(body, 'input_base64', WASM_MAX_INPUT_BYTES)
    if (taskInput !== undefined) input.input = taskInput
    if (body.limits !== undefined) input.limits = limits(body.limits)
    const allowClock = optionalBoolean(body, 'allow_clock')
    if (allowClock !== undefined) input.allow_clock = allowClock
    const result = await resources.scheduleTask(input, { signal: ctx.signal })
    const out = {
      output_base64: Buffer.from(result.output.buffer, result.output.byteOffset, result.output.byteLength).toString('base64'),
      exit_code: result.exit_code,
      usage: result.usage,
      node_id: result.node_id,
      allocation_id: result.allocation_id
    }
    sendJson(ctx.res, 200, explain ? { ...out, placement: result.placement } : out)
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
