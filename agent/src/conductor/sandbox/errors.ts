/** Errors of the zome sandbox, shared by the conductor and its zome worker. */
import { FlexnodeError } from '../../errors.ts'

export type SandboxLimit = 'cpu_time' | 'memory' | 'stack'

/** A zome hit a sandbox limit, handed over a value that cannot cross, or its runtime was reset. */
export class ZomeSandboxError extends FlexnodeError {
  static override readonly name = 'ZomeSandboxError'
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
  /** the `name` of the error inside the zome (TypeError, Error, …) */
  readonly errorName: string

  constructor (errorName: string, message: string) {
    super(`${errorName}: ${message}`)
    this.errorName = errorName
  }
}

/** A value handed over by a zome does not decode (a marker that points outside its bytes…). */
export class MarshalError extends FlexnodeError {
  static override readonly name = 'MarshalError'
}
