/**
 * `flexnode allocate`, `release`, `renew`, `available`, `allocations` and `task run`: the
 * resources capability of the node running on a data dir, through its HTTP API
 * (`/v1/resources/*`, see `resources/routes.ts`), like `inference.ts`.
 *
 * ```
 * flexnode allocate --type compute --cpu-cores 2 --duration 600 --explain
 * flexnode available --type compute --json
 * flexnode release uhCkk…
 * flexnode task run hello.wasm --input in.txt --cpu-ms 2000 > out.txt
 * ```
 * A node that is not running exits 1 with `no flexnode is running on <dir>`; an error of the
 * node exits 1 with one line naming it (`flexnode: NoCapacityError: …`). `task run` exits with
 * the task's own exit code when it ran.
 */
import { readFile, stat } from 'node:fs/promises'
import type { z } from 'zod'
import type { NodeApiOptions } from '../config.ts'
import { UsageError } from '../config.ts'
import { errorMessage } from '../errors.ts'
import type { allocateInput, queryAvailableInput, releaseInput, renewInput } from '../resources/schemas.ts'
import { scheduleTaskInput } from '../resources/schemas.ts'
import type { Availability, NodeAllocations } from '../resources/index.ts'
import type { Lease, LeaseResources } from '../resources/types.ts'
import type { Placement } from '../../../scheduler/index.ts'
import { checkedInput } from './command-options.ts'
import { NodeApi, printJson } from './inference.ts'
import { renderTable, shortId } from './runtime.ts'

/** The largest module and input the node takes (`WASM_MAX_MODULE_BYTES`, `WASM_MAX_INPUT_BYTES`): larger files are not read. */
const MAX_MODULE_BYTES = 32 * 1_048_576
const MAX_INPUT_BYTES = 16 * 1_048_576

type LeaseAnswer = Lease & { placement?: Placement }
interface TaskAnswer { output_base64: string, exit_code: number, usage: { cpu_ms: number, wall_ms: number, peak_memory_mb: number }, node_id: string, allocation_id: string, placement?: Placement }

const writeOut = (text: string): void => { process.stdout.write(text) }

/** `2 cpu, 4 GB memory, 1 gpu, 10 GB storage, 1 model slot, 1000 vectors`, the dimensions that are not 0. */
export function formatResources (r: LeaseResources): string {
  const parts = [
    r.cpu_cores > 0 ? `${r.cpu_cores} cpu` : '',
    r.memory_gb > 0 ? `${r.memory_gb} GB memory` : '',
    r.gpu_count > 0 ? `${r.gpu_count} gpu` : '',
    r.storage_gb > 0 ? `${r.storage_gb} GB storage` : '',
    r.model_slots > 0 ? `${r.model_slots} model slot${r.model_slots === 1 ? '' : 's'}` : '',
    r.vectors > 0 ? `${r.vectors} vectors` : ''
  ].filter(p => p !== '')
  return parts.length === 0 ? 'nothing' : parts.join(', ')
}

/** Every candidate of a placement with its explanation, the pick first and marked. */
export function renderPlacement (p: Placement): string {
  const head = `placement: ${p.algorithm}, locality ${p.locality_preference}${p.workload_class === null ? '' : `, class ${p.workload_class}`}; picked ${p.picked ?? 'none'}\n`
  if (p.candidates.length === 0) return `${head}no node offers anything for lease\n`
  return head + renderTable(['', 'NODE', 'EXPLANATION'], p.candidates.map(c => [c.node_id === p.picked ? '*' : '', shortId(c.node_id), c.explain]))
}

/** One `field  value` line per field of the lease. */
export function renderLease (l: Lease): string {
  const rows: Array<[string, string]> = [
    ['allocation_id', l.allocation_id],
    ['node_id', l.node_id],
    ['endpoint', l.endpoint],
    ['expires_at', l.expires_at],
    ['resources', `${l.resource_type}: ${formatResources(l.resources)}`]
  ]
  return rows.map(([k, v]) => `${k.padEnd(13)}  ${v}\n`).join('')
}

const cell = (a: LeaseResources, b: LeaseResources, d: keyof LeaseResources): string => `${b[d]}/${a[d]}`

export function renderAvailability (a: Availability): string {
  const rows = a.nodes.map(n => [shortId(n.node_id) + (n.self ? ' (self)' : ''), cell(n.advertised, n.free, 'cpu_cores'), cell(n.advertised, n.free, 'memory_gb'), cell(n.advertised, n.free, 'gpu_count'), cell(n.advertised, n.free, 'storage_gb')])
  rows.push(['total', cell(a.total.advertised, a.total.free, 'cpu_cores'), cell(a.total.advertised, a.total.free, 'memory_gb'), cell(a.total.advertised, a.total.free, 'gpu_count'), cell(a.total.advertised, a.total.free, 'storage_gb')])
  const table = renderTable(['NODE', 'CPU FREE/ALL', 'MEMORY GB', 'GPU', 'STORAGE GB'], rows)
  return a.unreachable.length === 0 ? table : `${table}${a.unreachable.length} node(s) did not answer\n`
}

export function renderAllocations (a: NodeAllocations): string {
  const rows = [
    ...a.held.map(l => ['held', l.allocation_id, shortId(l.node_id), `${l.resource_type}: ${formatResources(l.resources)}`, l.expires_at, l.live ? 'yes' : 'no']),
    ...a.provided.map(l => ['provided', l.allocation_id, shortId(l.holder), `${l.resource_type}: ${formatResources(l.resources)}`, l.expires_at, 'yes'])
  ]
  if (rows.length === 0) return 'this node holds and provides no leases\n'
  return renderTable(['ROLE', 'ALLOCATION', 'PROVIDER/HOLDER', 'RESOURCES', 'EXPIRES', 'LIVE'], rows)
}

/** A command's options: the common ones and its operation's input, checked by the operation's schema. */
type WithInput<S extends z.ZodType> = NodeApiOptions & { input: z.output<S> }

/** `flexnode task run <file.wasm>`: the files are read here, the rest is `resources.schedule_task`'s input. */
export interface TaskRunOptions extends NodeApiOptions {
  /** the module's file, resolved */
  file: string
  /** the input's file, resolved */
  input?: string
  limits: { memory_mb?: number, cpu_ms?: number, wall_ms?: number }
  /** the node to run it on (uhCAk…) */
  node?: string
  explain: boolean
}

/** A file the user named, at most `max` bytes; what cannot be read is a usage error. */
export async function readBounded (path: string, flag: string, max: number): Promise<Uint8Array> {
  try {
    const { size } = await stat(path)
    if (size > max) throw new UsageError(`${flag} ${path} is ${size} bytes; the node takes at most ${max}`, flag)
    return await readFile(path)
  } catch (err) {
    if (err instanceof UsageError) throw err
    throw new UsageError(`cannot read ${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`, flag)
  }
}

export async function allocateCommand (opts: WithInput<typeof allocateInput>): Promise<number> {
  const api = await NodeApi.connect(opts)
  const lease = await api.json<LeaseAnswer>('POST', '/v1/resources/allocate', opts.input)
  if (opts.json) printJson(lease)
  else {
    const { placement, ...rest } = lease
    if (placement !== undefined) writeOut(`${renderPlacement(placement)}\n`)
    writeOut(renderLease(rest))
  }
  return 0
}

export async function releaseCommand (opts: WithInput<typeof releaseInput>): Promise<number> {
  const api = await NodeApi.connect(opts)
  const result = await api.json<{ allocation_id: string, released: boolean }>('POST', '/v1/resources/release', opts.input)
  if (opts.json) printJson(result)
  else writeOut(`released ${result.allocation_id}\n`)
  return 0
}

export async function renewCommand (opts: WithInput<typeof renewInput>): Promise<number> {
  const api = await NodeApi.connect(opts)
  const lease = await api.json<Lease>('POST', '/v1/resources/renew', opts.input)
  if (opts.json) printJson(lease)
  else writeOut(renderLease(lease))
  return 0
}

export async function availableCommand (opts: WithInput<typeof queryAvailableInput>): Promise<number> {
  const api = await NodeApi.connect(opts)
  // GET /v1/resources/available takes the requirements as its query
  const query = new URLSearchParams(Object.entries(opts.input.requirements ?? {}).map(([k, v]): [string, string] => [k, String(v)]))
  if (opts.input.resource_type !== undefined) query.set('resource_type', opts.input.resource_type)
  const q = query.toString()
  const available = await api.json<Availability>('GET', `/v1/resources/available${q === '' ? '' : `?${q}`}`)
  if (opts.json) printJson(available)
  else writeOut(renderAvailability(available))
  return 0
}

export async function allocationsCommand (opts: NodeApiOptions): Promise<number> {
  const api = await NodeApi.connect(opts)
  const allocations = await api.json<NodeAllocations>('GET', '/v1/resources/allocations')
  if (opts.json) printJson(allocations)
  else writeOut(renderAllocations(allocations))
  return 0
}

/** A task's exit code as a process exit code: 0..255 as it is, anything else 255. */
export function processExitCode (code: number): number {
  return Number.isInteger(code) && code >= 0 && code <= 255 ? code : 255
}

export async function taskRunCommand (opts: TaskRunOptions): Promise<number> {
  const wasm = await readBounded(opts.file, 'the module', MAX_MODULE_BYTES)
  const input = opts.input === undefined ? undefined : await readBounded(opts.input, '--input', MAX_INPUT_BYTES)
  // checked as resources.schedule_task checks it, before the node is contacted
  const body = checkedInput(scheduleTaskInput, {
    wasm_base64: Buffer.from(wasm).toString('base64'),
    limits: opts.limits,
    explain: opts.explain,
    ...(input !== undefined ? { input_base64: Buffer.from(input).toString('base64') } : {}),
    ...(opts.node !== undefined ? { node_id: opts.node } : {})
  })
  const api = await NodeApi.connect(opts)
  const result = await api.json<TaskAnswer>('POST', '/v1/resources/tasks', body)
  if (opts.json) printJson(result)
  else {
    // stdout is the task's output alone: the explanation goes to stderr
    if (result.placement !== undefined) process.stderr.write(renderPlacement(result.placement))
    await new Promise<void>((resolve, reject) => {
      process.stdout.write(Buffer.from(result.output_base64, 'base64'), (err) => { if (err == null) resolve(); else reject(err) })
    })
  }
  return processExitCode(result.exit_code)
}
