/**
 * The agent's common typed errors. The base class, `FlexnodeError`, lives in `lib/errors.ts` so
 * the scheduler shares it without importing the agent; it is re-exported here for agent code.
 */
import { FlexnodeError } from '../../lib/errors.ts'

export { FlexnodeError, toWireError, type ErrorFields, type WireError } from '../../lib/errors.ts'

/** An input (flag, file, HTTP body, network message) failed validation at the boundary. */
export class InvalidInputError extends FlexnodeError {
  static override readonly name = 'InvalidInputError'
  readonly field?: string

  constructor (message: string, options?: ErrorOptions & { field?: string }) {
    super(message, options)
    this.field = options?.field
  }
}

/** A component was used after `dispose()` / `stop()`. */
export class DisposedError extends FlexnodeError {
  static override readonly name = 'DisposedError'
  constructor (component: string) {
    super(`${component} has been disposed`)
  }
}

export class AbortError extends FlexnodeError {
  static override readonly name = 'AbortError'
  constructor (message = 'the operation was aborted') {
    super(message)
  }
}

export function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

const LISTEN_REASONS: Record<string, string> = {
  EADDRINUSE: 'the port is already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'this machine has no such address',
  ENOTFOUND: 'the host name does not resolve'
}

/** A server could not listen on its address: the port is in use, not permitted, no such address. */
export class ListenError extends FlexnodeError {
  static override readonly name = 'ListenError'
  /** what tried to listen: `admin interface`, `app interface`, `HTTP API`, `mesh` */
  readonly what: string
  readonly host?: string
  readonly port?: number
  /** the system error code (`EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL`…), when there is one */
  readonly code?: string

  constructor (what: string, address: { host?: string, port?: number, addr?: string }, cause: unknown, code?: string) {
    code ??= typeof (cause as { code?: unknown } | null)?.code === 'string' ? (cause as { code: string }).code : undefined
    const where = address.addr ?? `${address.host ?? ''}:${String(address.port ?? '')}`
    const reason = code !== undefined ? `${LISTEN_REASONS[code] ?? errorMessage(cause)} (${code})` : errorMessage(cause)
    super(`the ${what} cannot listen on ${where}: ${reason}`, { cause })
    this.what = what
    this.host = address.host
    this.port = address.port
    this.code = code
  }
}
