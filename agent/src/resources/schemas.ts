/**
 * The `resources` operations' schemas (design §11.4, CONTRACTS §11.4), described once: the MCP
 * tools `resources.*` (`agent/src/api/operations.ts`) and the HTTP routes (`routes.ts`) both parse
 * with them. Shapes and types are checked here; value ranges (a positive duration, a known node)
 * stay the capability's own checks, shared with the library.
 *
 * ```ts
 * const input = parseInput(allocateInput, await ctx.readJson(), 'body', invalidInput)
 * const lease = await node.resources.allocate(input)
 * ```
 */
import { z } from 'zod'
import { LOCALITY_PREFERENCES } from '../../../scheduler/index.ts'
import { LEASE_RESOURCE_TYPES } from '../../../zomes-ts/resource_mesh/types.ts'
import { WASM_MAX_CPU_MS, WASM_MAX_INPUT_BYTES, WASM_MAX_MEMORY_MB, WASM_MAX_MODULE_BYTES, WASM_MAX_WALL_MS } from './wasm.ts'

/** Most base64 characters of `n` bytes. */
export const base64Length = (n: number): number => Math.ceil(n / 3) * 4

/**
 * Standard padded base64 only (no URL alphabet, whitespace or stray bits), at most `maxBytes`
 * decoded: the round trip refuses what Node would quietly skip or truncate.
 */
export function base64Bytes (maxBytes: number, what: string): z.ZodString {
  return z.string().describe(`${what}, standard base64 (at most ${maxBytes} bytes decoded)`).superRefine((v, ctx) => {
    if (v.length > base64Length(maxBytes)) {
      ctx.addIssue({ code: 'custom', message: `must decode to at most ${maxBytes} bytes` })
      return
    }
    const ok = v.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(v) && Buffer.from(v, 'base64').toString('base64') === v
    if (!ok) ctx.addIssue({ code: 'custom', message: 'must be standard base64 (A-Z, a-z, 0-9, +, /, padded with =)' })
  })
}

/** The bytes of a string `base64Bytes` accepted. */
export function decodeBase64 (v: string): Uint8Array {
  const b = Buffer.from(v, 'base64')
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}

export const encodeBase64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')

export const resourceType = z.enum(LEASE_RESOURCE_TYPES).describe('compute, inference, storage or memory')
export const localityPreference = z.enum(LOCALITY_PREFERENCES).describe('how placement ranks the nodes. Default nearest')

/** design §11.4's `requirements` (and `bandwidth_mbps`, `vectors`): what a lease needs of its node */
export const requirements = z.strictObject({
  cpu_cores: z.number().describe('CPU cores').optional(),
  memory_gb: z.number().describe('RAM, GB').optional(),
  gpu: z.boolean().describe('needs a GPU').optional(),
  gpu_vram_gb: z.number().describe('VRAM per GPU, GB').optional(),
  storage_gb: z.number().describe('disk, GB').optional(),
  model_name: z.string().describe('an inference lease: the model it serves').optional(),
  vector_dimensions: z.number().describe('a memory lease: the vectors\' dimensions').optional(),
  bandwidth_mbps: z.number().describe('network bandwidth, Mbit/s').optional(),
  vectors: z.number().describe('a memory lease: vectors it will store').optional()
}).describe('what the lease needs of its node')

export const REQUIREMENT_FIELDS = Object.keys(requirements.shape) as Array<keyof typeof requirements.shape>

/** The placement fields allocate and schedule_task share. */
const placing = {
  requirements: requirements.optional(),
  locality_preference: localityPreference.optional(),
  workload_class: z.string().describe('a compute policy workload class (its defaults and timeout)').optional(),
  node_id: z.string().describe('only this node (uhCAk…) may take it').optional(),
  explain: z.boolean().describe('add the placement: every candidate node and why it was ranked or left out').optional()
}

export const allocateInput = z.strictObject({
  resource_type: resourceType,
  ...placing,
  duration_seconds: z.number().describe('lease length, seconds. Default 3600').optional(),
  wait_seconds: z.number().describe('when no node can take it now, wait this long for capacity. Default 0').optional()
})

const leaseResources = z.object({
  cpu_cores: z.number(), memory_gb: z.number(), gpu_count: z.number(), storage_gb: z.number(), model_slots: z.number(), vectors: z.number()
})

export const lease = z.object({
  allocation_id: z.string().describe('the Allocation\'s action hash (uhCkk…)'),
  node_id: z.string().describe('the provider\'s agent key (uhCAk…)'),
  endpoint: z.string().describe('where the lease is used: the provider\'s mesh protocol'),
  expires_at: z.string().describe('RFC 3339'),
  resource_type: resourceType,
  resources: leaseResources
})

export const allocateOutput = lease.extend({
  placement: z.unknown().describe('with explain: how every node was ranked or why it was left out').optional()
})

export const renewInput = z.strictObject({
  allocation_id: z.string().describe('the lease to extend'),
  duration_seconds: z.number().describe('its new length from now, seconds')
})

export const releaseInput = z.strictObject({
  allocation_id: z.string().describe('the lease to release (uhCkk…)')
})

export const releaseOutput = z.object({ allocation_id: z.string(), released: z.boolean() })

export const queryAvailableInput = z.strictObject({
  resource_type: resourceType.optional(),
  requirements: requirements.optional()
})

const nodeResources = { advertised: leaseResources, leased: leaseResources, free: leaseResources }
export const queryAvailableOutput = z.object({
  nodes: z.array(z.object({ node_id: z.string(), self: z.boolean(), ...nodeResources, max_lease_seconds: z.number() })),
  total: z.object(nodeResources),
  unreachable: z.array(z.string()).describe('nodes that did not answer')
})

/** `GET /v1/resources/available`'s query: numbers spelled plainly, `gpu` as true/false. */
const queryNumber = z.string().max(32).regex(/^\d+(\.\d+)?$/, 'must be a non-negative decimal number').transform(Number)
const queryBoolean = z.enum(['true', 'false']).transform(v => v === 'true')
export const availableQuery = z.strictObject({
  resource_type: resourceType.optional(),
  cpu_cores: queryNumber.optional(),
  memory_gb: queryNumber.optional(),
  gpu: queryBoolean.optional(),
  gpu_vram_gb: queryNumber.optional(),
  storage_gb: queryNumber.optional(),
  model_name: z.string().optional(),
  vector_dimensions: queryNumber.optional(),
  bandwidth_mbps: queryNumber.optional(),
  vectors: queryNumber.optional()
})

/** `?explain=true|false` on allocate and tasks. */
export const explainQuery = z.strictObject({ explain: queryBoolean.optional() })

export const wasmLimits = z.strictObject({
  memory_mb: z.int().min(1).max(WASM_MAX_MEMORY_MB).describe('the module\'s linear memory at most, MiB. Default 64').optional(),
  cpu_ms: z.int().min(1).max(WASM_MAX_CPU_MS).describe('CPU time of the run, ms. Default 10000').optional(),
  wall_ms: z.int().min(1).max(WASM_MAX_WALL_MS).describe('wall-clock time from submission, ms. Default 30000').optional()
})

export const scheduleTaskInput = z.strictObject({
  wasm_base64: base64Bytes(WASM_MAX_MODULE_BYTES, 'the module\'s bytes').optional(),
  wasm_cid: z.string().describe('the module by its CID (CIDv1 raw sha2-256), fetched from the artifact store').optional(),
  input_base64: base64Bytes(WASM_MAX_INPUT_BYTES, 'what the module reads with input_read').optional(),
  limits: wasmLimits.optional(),
  allow_clock: z.boolean().describe('offer flexnode.clock_ms to the module. Default false').optional(),
  ...placing
}).superRefine((v, ctx) => {
  if (v.wasm_base64 === undefined && v.wasm_cid === undefined) ctx.addIssue({ code: 'custom', path: ['wasm_base64'], message: 'a task needs its module: wasm_base64 or wasm_cid' })
})

export const scheduleTaskOutput = z.object({
  output_base64: z.string().describe('what the module wrote, base64'),
  exit_code: z.number(),
  usage: z.object({ cpu_ms: z.number(), wall_ms: z.number(), peak_memory_mb: z.number() }).describe('what the run used'),
  node_id: z.string().describe('the node that ran it'),
  allocation_id: z.string().describe('the compute lease it ran under (released since)'),
  placement: z.unknown().describe('with explain: how every node was ranked or why it was left out').optional()
})
