/**
 * The zome sandbox as the conductor sees it ("the ribosome"): zome code runs in QuickJS compiled to
 * WebAssembly, inside a worker thread (`native/workers/zome-worker.ts`), never in the node's own
 * JavaScript realm. A zome reaches exactly what the conductor hands it: the HDK (or, in
 * validation, the read-only validation context), JSON-shaped data and bytes. No Node built-ins,
 * no `require`, no `import()`, no `process`, no `fetch`, no file system or network, no clock or
 * randomness except through the HDK; memory and CPU time are bounded.
 *
 * Limits are enforced twice: QuickJS's interrupt handler stops zome code at its CPU time, and a
 * watchdog here terminates the worker when a run of zome code overstays even so (QuickJS's C
 * built-ins, like `Array.prototype.indexOf` over a huge array-like, do not check for interrupts).
 * A terminated worker is replaced on next use; calls that were running in it fail with
 * `ZomeSandboxError` (`cpu_time` for the culprit, `reset` for the rest), everything else goes on.
 *
 * ```ts
 * const sandbox = await ZomeSandbox.create({ cpuTimeMs: 1000 }, { logger })
 * const exports = await sandbox.loadDna(key, 'notes', info, [{ name: 'notes', code }])
 * const hash = await sandbox.call(key, 'notes', 'create_note', hdk, { text: 'hi' })
 * const verdict = sandbox.validate(key, 'notes_integrity', op, ['CreateRecord'], ctx)   // synchronous
 * ```
 *
 * Why QuickJS in a worker: QuickJS is a real isolation boundary (a separate heap in WebAssembly
 * memory, nothing of the host reachable by reflection, unlike `node:vm`), enforces memory and
 * interrupt limits, needs no native build and runs the same on Node 20 and 24; the worker adds a
 * hard wall-clock bound. `isolated-vm` needs Node ≥ 24 (or `--no-node-snapshot`); SES
 * compartments share the host's heap and have no memory or time limit.
 */
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { errorMessage, FlexnodeError } from '../../errors.ts'
import type { ComponentLogger } from '../../logger.ts'
import type { HostApi } from './engine.ts'
import { fromWireError, toWireError, ZomeSandboxError } from './errors.ts'
import {
  SYNC_ANSWER, SYNC_ASK, SYNC_DONE, SYNC_IDLE, SyncChannel,
  type DnaStatic, type ExportsInfo, type FromWorker, type SandboxLimits, type ToWorker, type WireError, type ZomeSource
} from './protocol.ts'

export type { HostApi } from './engine.ts'
export { ZomeSandboxError, ZomeThrewError } from './errors.ts'

export interface ZomeSandboxInit {
  /** Heap one DNA's zomes may use together, in bytes. @default 64 MiB */
  memoryLimitBytes?: number
  /**
   * CPU time one zome call or one validation may spend in zome code. Validation runs while the
   * conductor waits for it, so this also bounds how long a validation can hold the node. @default 1000
   */
  cpuTimeMs?: number
  /** CPU time a zome module's top-level code may take when it is loaded. @default 10000 */
  startTimeMs?: number
  /** Stack of the zome interpreter, in bytes. @default 1 MiB */
  maxStackBytes?: number
  /** Largest validation look-up answer or verdict, in bytes. @default 16 MiB */
  channelBytes?: number
}

export interface ZomeSandboxComponents {
  logger: ComponentLogger
}

export const DEFAULT_SANDBOX_MEMORY_BYTES = 64 * 1024 * 1024
export const DEFAULT_SANDBOX_CPU_TIME_MS = 1000
export const DEFAULT_SANDBOX_START_TIME_MS = 10_000
export const DEFAULT_SANDBOX_STACK_BYTES = 1024 * 1024
export const DEFAULT_SANDBOX_CHANNEL_BYTES = 16 * 1024 * 1024
/** How much longer than its budget a run may go before the watchdog terminates the worker. */
const WATCHDOG_GRACE_MS = 500
const WATCHDOG_INTERVAL_MS = 100
/** HDK functions that append to the call's workspace, and so move its `agent_info` chain head. */
const WRITES = new Set(['create_entry', 'update_entry', 'delete_entry', 'create_link', 'delete_link', 'create_cap_grant'])

const WORKER = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'native', 'workers', 'zome-worker.mjs')

interface PendingCall {
  resolve: (v: unknown) => void
  reject: (e: unknown) => void
  hdk: HostApi
  /** host errors thrown into the zome, by the id the worker sees */
  hostErrors: Map<number, unknown>
  generation: number
}

interface Registered { label: string, info: DnaStatic, zomes: ZomeSource[] }

interface Live {
  worker: Worker
  generation: number
  loaded: Set<string>
  /** each worker gets its own channel, so a terminated worker still winding down cannot write into its successor's */
  channel: SyncChannel
}

export class ZomeSandbox {
  readonly limits: SandboxLimits
  private readonly log: ComponentLogger
  private readonly channelBytes: number
  private readonly dnas = new Map<string, Registered>()
  private readonly calls = new Map<number, PendingCall>()
  private readonly loads = new Map<number, { resolve: (v: Record<string, ExportsInfo>) => void, reject: (e: unknown) => void, generation: number }>()
  private live: Live | undefined
  private generation = 0
  private nextId = 1
  private readonly watchdog: NodeJS.Timeout
  private disposed = false

  private constructor (limits: SandboxLimits, channelBytes: number, log: ComponentLogger) {
    this.limits = limits
    this.log = log
    this.channelBytes = channelBytes
    this.watchdog = setInterval(() => { this.watch() }, WATCHDOG_INTERVAL_MS)
    this.watchdog.unref()
  }

  static async create (init: ZomeSandboxInit, components: ZomeSandboxComponents): Promise<ZomeSandbox> {
    const limits: SandboxLimits = {
      memoryLimitBytes: init.memoryLimitBytes ?? DEFAULT_SANDBOX_MEMORY_BYTES,
      cpuTimeMs: init.cpuTimeMs ?? DEFAULT_SANDBOX_CPU_TIME_MS,
      startTimeMs: init.startTimeMs ?? DEFAULT_SANDBOX_START_TIME_MS,
      maxStackBytes: init.maxStackBytes ?? DEFAULT_SANDBOX_STACK_BYTES
    }
    const channelBytes = init.channelBytes ?? DEFAULT_SANDBOX_CHANNEL_BYTES
    for (const [k, v] of Object.entries({ ...limits, channelBytes })) {
      if (!Number.isSafeInteger(v) || v <= 0) throw new FlexnodeError(`zome sandbox: ${k} must be a positive integer, got ${String(v)}`)
    }
    const sandbox = new ZomeSandbox(limits, channelBytes, components.logger.forComponent('flexnode:sandbox'))
    sandbox.worker()
    return sandbox
  }

  // -- the worker ----------------------------------------------------------------------------

  private worker (): Live {
    if (this.disposed) throw new ZomeSandboxError('closed', '', 'the zome sandbox is disposed')
    if (this.live !== undefined) return this.live
    const generation = ++this.generation
    const channel = new SyncChannel(this.channelBytes)
    const worker = new Worker(WORKER, { workerData: { limits: this.limits, channel: channel.buffer } })
    worker.unref()
    const live: Live = { worker, generation, loaded: new Set(), channel }
    worker.on('message', (m: FromWorker) => { this.onMessage(live, m) })
    worker.on('error', (err) => {
      this.log.error({ err: errorMessage(err) }, 'the zome worker failed')
      this.lose(live, new ZomeSandboxError('reset', '', `the zome worker failed: ${errorMessage(err)}`))
    })
    worker.on('exit', (code) => {
      if (this.live === live && !this.disposed) {
        this.log.warn({ code }, 'the zome worker exited')
        this.lose(live, new ZomeSandboxError('reset', '', `the zome worker exited with code ${code}`))
      }
    })
    this.live = live
    return live
  }

  /** The worker is gone: fail what was running in it; a new one starts on next use. */
  private lose (live: Live, err: ZomeSandboxError, culprit?: number, culpritError?: ZomeSandboxError): void {
    if (this.live !== live) return
    this.live = undefined
    void live.worker.terminate().catch(() => {})
    for (const [id, c] of this.calls) {
      if (c.generation !== live.generation) continue
      this.calls.delete(id)
      c.reject(id === culprit && culpritError !== undefined ? culpritError : err)
    }
    for (const [id, l] of this.loads) {
      if (l.generation !== live.generation) continue
      this.loads.delete(id)
      l.reject(err)
    }
  }

  /** Terminate a worker whose current run of zome code overstays its budget. */
  private watch (): void {
    const live = this.live
    if (live === undefined) return
    const { since, tag } = live.channel.busy()
    if (since === 0) return
    const budget = (tag === 0 ? this.limits.startTimeMs : this.limits.cpuTimeMs) + WATCHDOG_GRACE_MS
    if (Date.now() - since <= budget) return
    this.log.warn({ ranMs: Date.now() - since, budgetMs: budget }, 'zome code overstayed its CPU time; restarting the zome worker')
    this.lose(live,
      new ZomeSandboxError('reset', '', 'the zome worker was restarted because zome code overstayed its CPU time'),
      tag, new ZomeSandboxError('cpu_time', '', `zome code exceeded its CPU time (${tag === 0 ? this.limits.startTimeMs : this.limits.cpuTimeMs} ms) and was stopped`))
  }

  private post (live: Live, m: ToWorker): void {
    live.worker.postMessage(m)
  }

  /** Make sure the live worker holds this DNA (after a restart it is loaded again). */
  private ensureLoaded (key: string): Live {
    const live = this.worker()
    if (live.loaded.has(key)) return live
    const dna = this.dnas.get(key)
    if (dna === undefined) throw new ZomeSandboxError('load', '', `DNA ${key} is not loaded in the sandbox`)
    const id = this.nextId++
    live.loaded.add(key)
    this.loads.set(id, { resolve: () => {}, reject: () => {}, generation: live.generation })
    this.post(live, { type: 'load', id, dna: key, label: dna.label, info: dna.info, zomes: dna.zomes })
    return live
  }

  private onMessage (live: Live, m: FromWorker): void {
    if (this.live !== live) return
    switch (m.type) {
      case 'loaded': {
        const l = this.loads.get(m.id)
        this.loads.delete(m.id)
        if (m.ok) l?.resolve(m.zomes)
        else l?.reject(fromWireError(m.error))
        break
      }
      case 'result': {
        const c = this.calls.get(m.id)
        if (c === undefined) break
        this.calls.delete(m.id)
        if (m.ok) c.resolve(m.value)
        else c.reject(this.errorOf(m.error, c.hostErrors))
        break
      }
      case 'hdk': {
        const c = this.calls.get(m.call)
        if (c === undefined) break
        void this.answerHdk(live, c, m)
        break
      }
      case 'signal': {
        const c = this.calls.get(m.call)
        const emit = c !== undefined && Object.hasOwn(c.hdk, 'emit_signal') ? c.hdk.emit_signal : undefined
        if (typeof emit === 'function') {
          try {
            (emit as (p: unknown) => void)(m.payload)
          } catch (err) {
            this.log.debug({ err: errorMessage(err) }, 'emit_signal failed')
          }
        }
        break
      }
      case 'log': {
        const fields = { ...m.fields, where: 'zome-worker' }
        if (m.level === 'error') this.log.error(fields, m.message)
        else if (m.level === 'warn') this.log.warn(fields, m.message)
        else if (m.level === 'info') this.log.info(fields, m.message)
        else this.log.debug(fields, m.message)
        break
      }
    }
  }

  /** A host error comes back from the zome as itself; everything else as the sandbox's errors. */
  private errorOf (w: WireError, hostErrors: Map<number, unknown>): unknown {
    if (w.hostError !== undefined && hostErrors.has(w.hostError)) return hostErrors.get(w.hostError)
    return fromWireError(w)
  }

  private async answerHdk (live: Live, c: PendingCall, m: Extract<FromWorker, { type: 'hdk' }>): Promise<void> {
    let ok = true
    let value: unknown
    let agent: unknown
    try {
      const fn = Object.hasOwn(c.hdk, m.name) ? c.hdk[m.name] : undefined
      if (typeof fn !== 'function') throw new TypeError(`${m.name} is not an HDK function`)
      value = await (fn as (...a: unknown[]) => unknown)(...(Array.isArray(m.args) ? m.args : []))
      if (WRITES.has(m.name)) agent = await agentInfoOf(c.hdk)
    } catch (err) {
      ok = false
      const id = c.hostErrors.size + 1
      c.hostErrors.set(id, err)
      value = toWireError(err, id)
    }
    if (this.live !== live) return
    try {
      this.post(live, { type: 'hdk-result', id: m.id, ok, value, ...(agent !== undefined ? { agent } : {}) })
    } catch (err) {
      // a value that cannot be posted (not cloneable) is the caller's error
      const id = c.hostErrors.size + 1
      c.hostErrors.set(id, err)
      this.post(live, { type: 'hdk-result', id: m.id, ok: false, value: toWireError(err, id) })
    }
  }

  // -- the conductor's API -------------------------------------------------------------------

  /** Load a DNA's zome modules; resolves with each zome's exports. Loading again replaces them. */
  async loadDna (key: string, label: string, info: DnaStatic, zomes: ZomeSource[]): Promise<Record<string, ExportsInfo>> {
    this.dnas.set(key, { label, info, zomes })
    const live = this.worker()
    const id = this.nextId++
    live.loaded.add(key)
    try {
      return await new Promise<Record<string, ExportsInfo>>((resolve, reject) => {
        this.loads.set(id, { resolve, reject, generation: live.generation })
        this.post(live, { type: 'load', id, dna: key, label, info, zomes })
      })
    } catch (err) {
      this.dnas.delete(key)
      live.loaded.delete(key)
      throw err
    }
  }

  unloadDna (key: string): void {
    this.dnas.delete(key)
    const live = this.live
    if (live?.loaded.delete(key) === true) this.post(live, { type: 'unload', dna: key })
  }

  /** Call a coordinator function; the HDK calls it makes are answered by `hdk`. */
  async call (key: string, zome: string, fn: string, hdk: HostApi, payload: unknown, options: { signal?: AbortSignal } = {}): Promise<unknown> {
    // the worker answers agent_info from this snapshot (refreshed after each write of the call)
    const agent = await agentInfoOf(hdk)
    const live = this.ensureLoaded(key)
    const id = this.nextId++
    const signal = options.signal
    return await new Promise<unknown>((resolve, reject) => {
      const onAbort = (): void => {
        if (!this.calls.delete(id)) return
        if (this.live === live) this.post(live, { type: 'abandon', id })
        reject(signal?.reason instanceof Error ? signal.reason : new ZomeSandboxError('closed', zome, `${zome}/${fn}: the call was aborted`))
      }
      const done = (): void => { signal?.removeEventListener('abort', onAbort) }
      this.calls.set(id, {
        resolve: (v) => { done(); resolve(v) },
        reject: (e) => { done(); reject(e) },
        hdk,
        hostErrors: new Map(),
        generation: live.generation
      })
      if (signal?.aborted === true) { onAbort(); return }
      signal?.addEventListener('abort', onAbort, { once: true })
      try {
        this.post(live, { type: 'call', id, dna: key, zome, fn, payload, agent })
      } catch (err) {
        this.calls.delete(id)
        done()
        reject(new ZomeSandboxError('marshal', zome, `${zome}/${fn}: the payload cannot be sent to the zome: ${errorMessage(err)}`))
      }
    })
  }

  /**
   * Run an integrity zome's `validate` for every op type of one action and return its verdict.
   * Synchronous: the conductor blocks, answering the validation context's look-ups, until the
   * verdict arrives or the budget runs out (then the worker is replaced and this throws).
   */
  validate (key: string, zome: string, base: unknown, types: readonly string[], ctx: HostApi, known: unknown[] = []): unknown {
    const pendingLoad = this.live === undefined || !this.live.loaded.has(key)
    const live = this.ensureLoaded(key)
    const id = this.nextId++
    const hostErrors = new Map<number, unknown>()
    const budget = 2 * this.limits.cpuTimeMs + WATCHDOG_GRACE_MS + (pendingLoad ? this.limits.startTimeMs : 0)
    const deadline = Date.now() + budget
    const channel = live.channel
    channel.reset()
    this.post(live, { type: 'validate', id, dna: key, zome, base, types: [...types], known })
    for (;;) {
      const state = channel.state()
      if (state === SYNC_DONE) {
        const verdict = channel.take() as { ok: boolean, value?: unknown, error?: WireError }
        channel.reset()
        if (verdict.ok) return verdict.value
        throw this.errorOf(verdict.error ?? { name: 'Error', message: 'validation failed' }, hostErrors)
      }
      if (state === SYNC_ASK) {
        const q = channel.take() as { name: string, args: unknown[] }
        let answer: unknown
        try {
          const fn = Object.hasOwn(ctx, q.name) ? ctx[q.name] : undefined
          if (typeof fn !== 'function') throw new TypeError(`${q.name} is not a validation context function`)
          answer = { ok: true, value: (fn as (...a: unknown[]) => unknown)(...(Array.isArray(q.args) ? q.args : [])) }
        } catch (err) {
          const hid = hostErrors.size + 1
          hostErrors.set(hid, err)
          answer = { ok: false, error: toWireError(err, hid) }
        }
        try {
          channel.put(SYNC_ANSWER, answer)
        } catch (err) {
          const hid = hostErrors.size + 1
          hostErrors.set(hid, err)
          channel.put(SYNC_ANSWER, { ok: false, error: toWireError(err, hid) })
        }
        continue
      }
      const left = deadline - Date.now()
      if (left <= 0 || !channel.waitChange(state === SYNC_ANSWER ? SYNC_ANSWER : SYNC_IDLE, left)) {
        if (channel.state() !== state) continue
        const err = new ZomeSandboxError('cpu_time', zome, `validation by zome ${zome} exceeded its CPU time (${this.limits.cpuTimeMs} ms) and was stopped`)
        this.log.warn({ zome }, 'validation overstayed its CPU time; restarting the zome worker')
        this.lose(live, new ZomeSandboxError('reset', zome, 'the zome worker was restarted because a validation overstayed its CPU time'))
        throw err
      }
    }
  }

  dispose (): void {
    if (this.disposed) return
    this.disposed = true
    clearInterval(this.watchdog)
    const live = this.live
    if (live !== undefined) this.lose(live, new ZomeSandboxError('closed', '', 'the zome sandbox was disposed'))
    this.dnas.clear()
  }
}

/** The call's `agent_info`, or undefined when the HDK has none (or the chain is still empty). */
async function agentInfoOf (hdk: HostApi): Promise<unknown> {
  const fn = Object.hasOwn(hdk, 'agent_info') ? hdk.agent_info : undefined
  if (typeof fn !== 'function') return undefined
  try {
    return await (fn as () => unknown)()
  } catch {
    return undefined
  }
}
