/**
 * Machine probe: what this node has (advertised once in its `NodeCapability` entry) and how
 * busy it is (sent with every heartbeat).
 *
 * ```ts
 * const profile = await probeMachine({ dataDir: '/var/lib/flexnode' })
 * // { cpu_cores: 16, cpu_arch: 'x86_64', ram_gb: 62.7, gpu: { vendor: 'nvidia', … }, local_ssd_gb: 811.4, … }
 * const sampler = createLoadSampler()
 * setInterval(async () => { heartbeat(await sampler.sample()) }, 10_000)
 * ```
 *
 * GPU detection never throws and never hangs: each command runs at most
 * `GPU_COMMAND_TIMEOUT_MS`, a missing binary or unreadable sysfs file means "no such GPU",
 * and an aborted signal makes it resolve `null` at once. When a machine has several GPUs of
 * the detected vendor, the one with the most memory is advertised and its load reported.
 */
import { execFile, type ChildProcess } from 'node:child_process'
import { readdir, readFile, statfs } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { AbortError, FlexnodeError, InvalidInputError } from '../errors.ts'
import {
  AMD_DEFAULT_MODEL,
  AMD_PCI_VENDOR_ID,
  BYTES_PER_GIB,
  DRM_CLASS_DIR,
  GPU_COMMAND_KILL_GRACE_MS,
  GPU_COMMAND_MAX_BUFFER,
  GPU_COMMAND_TIMEOUT_MS,
  GPU_VENDOR_AMD,
  GPU_VENDOR_APPLE,
  GPU_VENDOR_NVIDIA,
  MIB_PER_GIB,
  NVIDIA_SMI_ARGS,
  NVIDIA_SMI_COMMAND,
  ROUNDING_STEP
} from './constants.ts'

export interface GpuInfo { vendor: string, model: string, vram_gb: number }

export interface MachineProfile {
  /** `os.availableParallelism()` */
  cpu_cores: number
  /** normalized: 'x86_64' | 'aarch64' | 'arm' | 'riscv64' | 'ppc64' | 's390x' | other `os.arch()` */
  cpu_arch: string
  /** total RAM in GiB, rounded to 0.1 */
  ram_gb: number
  gpu: GpuInfo | null
  /** free space (GiB, rounded to 0.1) of the filesystem holding `dataDir` (statfs bavail*bsize) */
  local_ssd_gb: number
  hostname: string
  platform: NodeJS.Platform
}

export interface ProbeOptions {
  /** Where the node keeps its data; it need not exist yet (its nearest existing ancestor is measured). */
  dataDir: string
  signal?: AbortSignal
  /** @default true */
  detectGpu?: boolean
}

/** Each 0..100, rounded to 0.1. */
export interface LoadSample { cpu_percent: number, gpu_percent: number, memory_percent: number }

export interface LoadSampler {
  /** `cpu_percent` is the busy share of all cores since the previous sample (first call: since construction). */
  sample: () => Promise<LoadSample>
}

/** One row of `nvidia-smi --query-gpu=name,memory.total,utilization.gpu --format=csv,noheader,nounits`. */
export interface NvidiaSmiGpu { model: string, vram_gb: number, utilization_percent: number }

const ROUNDING_FACTOR = Math.round(1 / ROUNDING_STEP)

function round (value: number): number {
  return Math.round(value * ROUNDING_FACTOR) / ROUNDING_FACTOR
}

function clampPercent (value: number): number {
  if (!Number.isFinite(value)) return 0
  return Math.min(100, Math.max(0, value))
}

/** Maps `os.arch()` (or a `uname -m` spelling) to the architecture name advertised by nodes. */
export function normalizeArch (arch: string): string {
  const a = arch.trim().toLowerCase()
  switch (a) {
    case 'x64': case 'x86_64': case 'amd64':
      return 'x86_64'
    case 'arm64': case 'aarch64':
      return 'aarch64'
    case 'arm': case 'armhf': case 'armel': case 'armv6l': case 'armv7l':
      return 'arm'
    case 'riscv64':
      return 'riscv64'
    case 'ppc64': case 'ppc64le':
      return 'ppc64'
    case 's390x':
      return 's390x'
    default:
      return a
  }
}

/** A plain decimal number, or NaN (no hex, no empty strings, no "[N/A]"). */
function parseDecimal (text: string): number {
  const t = text.trim()
  return /^[+-]?\d+(\.\d+)?$/.test(t) ? Number(t) : NaN
}

/**
 * Parses nvidia-smi CSV output (`name, memory MiB, utilization %` per line). Lines that do not
 * fit are skipped; an unavailable utilization ("[N/A]", "[Not Supported]") reads as 0.
 * Returns null when no line describes a GPU.
 */
export function parseNvidiaSmi (text: string): NvidiaSmiGpu[] | null {
  const gpus: NvidiaSmiGpu[] = []
  for (const line of text.split(/\r?\n/)) {
    const fields = line.split(',')
    if (fields.length < 3) continue
    const utilization = parseDecimal(fields[fields.length - 1] ?? '')
    const memoryMib = parseDecimal(fields[fields.length - 2] ?? '')
    const model = fields.slice(0, -2).join(',').trim()
    if (model === '' || !(memoryMib > 0)) continue
    gpus.push({
      model,
      vram_gb: round(memoryMib / MIB_PER_GIB),
      utilization_percent: round(clampPercent(utilization))
    })
  }
  return gpus.length > 0 ? gpus : null
}

type CommandResult = { kind: 'ok', stdout: string } | { kind: 'missing' } | { kind: 'failed' }

/**
 * Runs a command with a hard deadline. Resolves (never rejects) once it exits, fails, times out
 * or `signal` aborts; a child still holding its pipes after the grace period is abandoned.
 */
function runCommand (file: string, args: readonly string[], signal?: AbortSignal): Promise<CommandResult> {
  if (signal?.aborted === true) return Promise.resolve({ kind: 'failed' })
  return new Promise((resolve) => {
    let settled = false
    let child: ChildProcess | undefined
    const abandon = (): void => {
      child?.kill('SIGKILL')
      child?.stdout?.destroy()
      child?.stderr?.destroy()
      finish({ kind: 'failed' })
    }
    const deadline = setTimeout(abandon, GPU_COMMAND_TIMEOUT_MS + GPU_COMMAND_KILL_GRACE_MS)
    const finish = (result: CommandResult): void => {
      if (settled) return
      settled = true
      clearTimeout(deadline)
      signal?.removeEventListener('abort', abandon)
      resolve(result)
    }
    signal?.addEventListener('abort', abandon, { once: true })
    try {
      child = execFile(file, [...args], {
        encoding: 'utf8',
        timeout: GPU_COMMAND_TIMEOUT_MS,
        killSignal: 'SIGKILL',
        maxBuffer: GPU_COMMAND_MAX_BUFFER,
        windowsHide: true
      }, (err, stdout) => {
        if (err === null) finish({ kind: 'ok', stdout })
        else finish(err.code === 'ENOENT' ? { kind: 'missing' } : { kind: 'failed' })
      })
    } catch {
      finish({ kind: 'failed' })
    }
  })
}

async function readText (file: string, signal?: AbortSignal): Promise<string | null> {
  try {
    return (await readFile(file, { encoding: 'utf8', signal })).trim()
  } catch {
    return null
  }
}

interface GpuReading { info: GpuInfo, busy_percent: number }

function largest<T extends { vram_gb: number }> (items: readonly T[]): T | undefined {
  let best: T | undefined
  for (const item of items) if (best === undefined || item.vram_gb > best.vram_gb) best = item
  return best
}

/**
 * The PATH on which nvidia-smi was last found missing: a detection path that cannot succeed is
 * not tried again, by any caller of the process (tryorama runs many nodes in one; each spawn
 * costs about 20 ms of the event loop), until PATH changes.
 */
let nvidiaMissingOnPath: string | undefined

async function readNvidia (signal?: AbortSignal): Promise<GpuReading | null> {
  const searchPath = process.env.PATH ?? ''
  if (nvidiaMissingOnPath === searchPath) return null
  const result = await runCommand(NVIDIA_SMI_COMMAND, NVIDIA_SMI_ARGS, signal)
  if (result.kind === 'missing') nvidiaMissingOnPath = searchPath
  if (result.kind !== 'ok') return null
  const gpu = largest(parseNvidiaSmi(result.stdout) ?? [])
  if (gpu === undefined) return null
  return { info: { vendor: GPU_VENDOR_NVIDIA, model: gpu.model, vram_gb: gpu.vram_gb }, busy_percent: gpu.utilization_percent }
}

async function readAmd (signal?: AbortSignal): Promise<GpuReading | null> {
  if (process.platform !== 'linux') return null
  let entries: string[]
  try {
    entries = await readdir(DRM_CLASS_DIR)
  } catch {
    return null
  }
  const cards = entries
    .filter((name) => /^card\d+$/.test(name))
    .sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)))
  const found: Array<GpuReading & { vram_gb: number }> = []
  for (const card of cards) {
    if (isAborted(signal)) return null
    const device = path.join(DRM_CLASS_DIR, card, 'device')
    const vendor = await readText(path.join(device, 'vendor'), signal)
    if (vendor?.toLowerCase() !== AMD_PCI_VENDOR_ID) continue
    const vramBytes = parseDecimal(await readText(path.join(device, 'mem_info_vram_total'), signal) ?? '')
    if (!(vramBytes > 0)) continue
    const product = await readText(path.join(device, 'product_name'), signal)
    const busy = parseDecimal(await readText(path.join(device, 'gpu_busy_percent'), signal) ?? '')
    const vram_gb = round(vramBytes / BYTES_PER_GIB)
    found.push({
      info: { vendor: GPU_VENDOR_AMD, model: product !== null && product !== '' ? product : AMD_DEFAULT_MODEL, vram_gb },
      busy_percent: round(clampPercent(busy)),
      vram_gb
    })
  }
  const best = largest(found)
  return best === undefined ? null : { info: best.info, busy_percent: best.busy_percent }
}

function readApple (): GpuReading | null {
  if (process.platform !== 'darwin' || process.arch !== 'arm64') return null
  const model = os.cpus()[0]?.model.trim()
  return {
    // unified memory: the GPU can address all of RAM; macOS offers no unprivileged utilization figure
    info: { vendor: GPU_VENDOR_APPLE, model: model !== undefined && model !== '' ? model : 'Apple Silicon', vram_gb: round(os.totalmem() / BYTES_PER_GIB) },
    busy_percent: 0
  }
}

function isAborted (signal?: AbortSignal): boolean {
  return signal?.aborted === true
}

async function readGpu (signal?: AbortSignal): Promise<GpuReading | null> {
  try {
    if (isAborted(signal)) return null
    const nvidia = await readNvidia(signal)
    if (nvidia !== null || isAborted(signal)) return nvidia
    const amd = await readAmd(signal)
    if (amd !== null || isAborted(signal)) return amd
    return readApple()
  } catch {
    return null
  }
}

/** Finds this machine's GPU (NVIDIA, then AMD, then Apple Silicon); null when there is none. Never throws. */
export async function detectGpu (options: { signal?: AbortSignal } = {}): Promise<GpuInfo | null> {
  const reading = await readGpu(options.signal)
  return reading?.info ?? null
}

function errorCode (err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined
}

/** Free GiB of the filesystem holding `dir`, measured at its nearest existing ancestor. */
async function freeSpaceGb (dir: string): Promise<number> {
  let current = path.resolve(dir)
  for (;;) {
    try {
      const stats = await statfs(current)
      return round((Number(stats.bavail) * Number(stats.bsize)) / BYTES_PER_GIB)
    } catch (err) {
      const code = errorCode(err)
      const parent = path.dirname(current)
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === current) {
        throw new FlexnodeError(`cannot measure free space for ${dir}`, { cause: err })
      }
      current = parent
    }
  }
}

function throwIfAborted (signal?: AbortSignal): void {
  if (signal?.aborted === true) throw new AbortError('machine probe aborted')
}

/**
 * Measures this machine. Throws `InvalidInputError` for an empty `dataDir`, `AbortError` when
 * `signal` aborts, and `FlexnodeError` when no filesystem can be measured for `dataDir`.
 */
export async function probeMachine (options: ProbeOptions): Promise<MachineProfile> {
  const { dataDir, signal, detectGpu: wantGpu = true } = options
  if (typeof dataDir !== 'string' || dataDir.trim() === '') {
    throw new InvalidInputError('dataDir must be a non-empty path', { field: 'dataDir' })
  }
  throwIfAborted(signal)
  const [local_ssd_gb, gpu] = await Promise.all([
    freeSpaceGb(dataDir),
    wantGpu ? detectGpu({ signal }) : Promise.resolve(null)
  ])
  throwIfAborted(signal)
  return {
    cpu_cores: os.availableParallelism(),
    cpu_arch: normalizeArch(os.arch()),
    ram_gb: round(os.totalmem() / BYTES_PER_GIB),
    gpu,
    local_ssd_gb,
    hostname: os.hostname(),
    platform: process.platform
  }
}

interface CpuTicks { busy: number, total: number }

function cpuTicks (): CpuTicks {
  let busy = 0
  let total = 0
  for (const cpu of os.cpus()) {
    const { user, nice, sys, idle, irq } = cpu.times
    busy += user + nice + sys + irq
    total += user + nice + sys + irq + idle
  }
  return { busy, total }
}

function memoryPercent (): number {
  const total = os.totalmem()
  return total > 0 ? round(clampPercent(100 * (1 - os.freemem() / total))) : 0
}

/**
 * A sampler of live load. CPU is measured from `os.cpus()` tick counters between samples; when
 * no tick has elapsed (or the counters went backwards) the previous figure is repeated.
 */
export function createLoadSampler (options: { detectGpu?: boolean } = {}): LoadSampler {
  const wantGpu = options.detectGpu ?? true
  let previous = cpuTicks()
  let lastCpuPercent = 0

  return {
    async sample (): Promise<LoadSample> {
      const now = cpuTicks()
      const busy = now.busy - previous.busy
      const total = now.total - previous.total
      if (total > 0 && busy >= 0) lastCpuPercent = round(clampPercent((100 * busy) / total))
      previous = now
      const memory_percent = memoryPercent()
      const gpu = wantGpu ? await readGpu() : null
      return {
        cpu_percent: lastCpuPercent,
        gpu_percent: gpu === null ? 0 : round(clampPercent(gpu.busy_percent)),
        memory_percent
      }
    }
  }
}
