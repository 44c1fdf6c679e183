/**
 * What the conductor and its zome worker say to each other.
 *
 * Asynchronous traffic (loading DNAs, coordinator calls, the HDK functions those calls await,
 * signals, logs) goes over the worker's message port. Validation is synchronous in the
 * conductor, so it uses a `SyncChannel` over shared memory instead: the conductor posts the
 * request, then blocks (with a deadline) answering the validation context's look-ups until the
 * worker writes the verdict.
 */
import { decode, encode } from '../codec.ts'

export interface ZomeSource { name: string, code: Uint8Array }

/** What a zome may read about its DNA without asking the conductor. */
export interface DnaStatic {
  hash: Uint8Array
  name: string
  modifiers: { network_seed: string, properties: Record<string, unknown> }
  zome_names: string[]
}

export interface SandboxLimits {
  memoryLimitBytes: number
  cpuTimeMs: number
  startTimeMs: number
  maxStackBytes: number
}

export type ToWorker =
  | { type: 'load', id: number, dna: string, label: string, info: DnaStatic, zomes: ZomeSource[] }
  | { type: 'unload', dna: string }
  | { type: 'call', id: number, dna: string, zome: string, fn: string, payload: unknown, agent: unknown }
  | { type: 'abandon', id: number }
  /** `agent`: the call's `agent_info` after a write, so the worker answers the next one itself */
  | { type: 'hdk-result', id: number, ok: boolean, value: unknown, agent?: unknown }
  /** `known`: actions the validation will likely `must_get_action`, sent along to save round trips */
  | { type: 'validate', id: number, dna: string, zome: string, base: unknown, types: string[], known: unknown[] }

export interface ExportsInfo { functions: string[], values: Record<string, unknown> }

export type FromWorker =
  | { type: 'loaded', id: number, ok: true, zomes: Record<string, ExportsInfo> }
  | { type: 'loaded', id: number, ok: false, error: WireError }
  | { type: 'result', id: number, ok: true, value: unknown }
  | { type: 'result', id: number, ok: false, error: WireError }
  | { type: 'hdk', id: number, call: number, name: string, args: unknown[] }
  | { type: 'signal', call: number, payload: unknown }
  | { type: 'log', level: 'debug' | 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string }

/** An error crossing the thread boundary: its class name, message and sandbox fields. */
export interface WireError {
  name: string
  message: string
  /** ZomeSandboxError.reason */
  reason?: string
  zome?: string
  /** ZomeThrewError.errorName */
  errorName?: string
  /** a host error passed back through the zome: the id the conductor gave it */
  hostError?: number
}

// -- the synchronous channel -----------------------------------------------------------------

const STATE = 0
const LENGTH = 1
/** wall-clock start (Date.now()) of the run of zome code the worker is in, or 0; and that run's call tag */
const BUSY = 0
const BUSY_TAG = 1

export const SYNC_IDLE = 0
/** the worker asks the conductor something (a validation look-up) */
export const SYNC_ASK = 1
/** the conductor answered the last question */
export const SYNC_ANSWER = 2
/** the worker is done: the verdict is in the buffer */
export const SYNC_DONE = 3

export class SyncChannelError extends Error {
  override name = 'SyncChannelError'
}

/**
 * A one-question-at-a-time mailbox in shared memory, plus the worker's "busy since" clock that the
 * conductor's watchdog reads. Payloads are msgpack; one message holds at most `capacity` bytes.
 */
export class SyncChannel {
  readonly buffer: SharedArrayBuffer
  private readonly ctrl: Int32Array
  private readonly clock: Float64Array
  private readonly data: Uint8Array

  constructor (buffer: SharedArrayBuffer | number) {
    this.buffer = typeof buffer === 'number' ? new SharedArrayBuffer(16 + 16 + buffer) : buffer
    this.ctrl = new Int32Array(this.buffer, 0, 4)
    this.clock = new Float64Array(this.buffer, 16, 2)
    this.data = new Uint8Array(this.buffer, 32)
  }

  get capacity (): number { return this.data.length }

  state (): number { return Atomics.load(this.ctrl, STATE) }

  /** Write a message and move to `state`, waking the other side. */
  put (state: number, value: unknown): void {
    const bytes = encode(value)
    if (bytes.length > this.data.length) throw new SyncChannelError(`a message of ${bytes.length} bytes exceeds the channel's ${this.data.length}`)
    this.data.set(bytes)
    Atomics.store(this.ctrl, LENGTH, bytes.length)
    Atomics.store(this.ctrl, STATE, state)
    Atomics.notify(this.ctrl, STATE)
  }

  /** The message in the buffer. */
  take (): unknown {
    const n = Atomics.load(this.ctrl, LENGTH)
    return decode(this.data.slice(0, n))
  }

  reset (): void {
    Atomics.store(this.ctrl, STATE, SYNC_IDLE)
  }

  /** Block until the state is no longer `from`, at most `ms`. Returns false on timeout. */
  waitChange (from: number, ms: number): boolean {
    return Atomics.wait(this.ctrl, STATE, from, Math.max(0, ms)) !== 'timed-out' || this.state() !== from
  }

  /** Worker: mark the start (a timestamp, and the call's tag) or end (0) of a run of zome code. */
  setBusy (since: number, tag: number): void {
    this.clock[BUSY_TAG] = tag
    this.clock[BUSY] = since
  }

  /** Conductor: when the worker's current run of zome code started (0 when idle), and for which call. */
  busy (): { since: number, tag: number } {
    return { since: this.clock[BUSY] ?? 0, tag: this.clock[BUSY_TAG] ?? 0 }
  }
}
