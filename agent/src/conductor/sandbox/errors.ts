/** Errors of the zome sandbox, shared by the conductor and its zome worker. */
import { FlexnodeError } from '../../errors.ts'
import type { WireError } from './protocol.ts'

export type SandboxLimit = 'cpu_time' | 'memory' | 'stack'

/** A zome hit a sandbox limit, handed over a value that cannot cross, or its runtime was reset. */
export class ZomeSandboxError extends FlexnodeError {
  static override readonly name = 'ZomeSandboxError'
  override name = 'ZomeSandboxError'
  /** the limit that was hit, or: 'marshal' (a value that cannot cross), 'reset' (the runtime was reset under this call), 'load', 'closed' */
  readonly reason: SandboxLimit | 'marshal' | 'reset' | 'load' | 'closed'
  readonly zome: string

  constructor (reason: ZomeSandboxError['reason'], zome: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.reason = reason
    this.zome = zome
  }
}

/** An error a zome threw (or let through) that did not come from the host. */
export class ZomeThrewError extends FlexnodeError {
  static override readonly name = 'ZomeThrewError'
  override name = 'ZomeThrewError'
  /** the `name` of the error inside the zome (TypeError, Error, …) */
  readonly errorName: string

  constructor (errorName: string, message: string) {
    super(`${errorName}: ${message}`)
    this.errorName = errorName
  }
}

const REASONS = new Set(['cpu_time', 'memory', 'stack', 'marshal', 'reset', 'load', 'closed'])

/** An error → its wire form. */
export function toWireError (err: unknown, hostError?: number): WireError {
  if (err instanceof ZomeSandboxError) return { name: err.name, message: err.message, reason: err.reason, zome: err.zome }
  if (err instanceof ZomeThrewError) return { name: err.name, message: err.message, errorName: err.errorName }
  const e = err instanceof Error ? err : new Error(String(err))
  return { name: e.name, message: e.message, ...(hostError !== undefined ? { hostError } : {}) }
}

/** A wire error → the sandbox's typed error (host errors are resolved by the caller first). */
export function fromWireError (w: WireError): Error {
  if (w.name === 'ZomeSandboxError' && typeof w.reason === 'string' && REASONS.has(w.reason)) {
    return new ZomeSandboxError(w.reason as ZomeSandboxError['reason'], w.zome ?? '', w.message)
  }
  if (w.name === 'ZomeThrewError') {
    const e = new ZomeThrewError(w.errorName ?? 'Error', '')
    e.message = w.message
    return e
  }
  const e = new FlexnodeError(w.message)
  e.name = w.name
  return e
}
