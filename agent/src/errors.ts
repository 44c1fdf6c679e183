/**
 * The base of every typed error in flexnode. Callers branch on `err.name`; each subclass
 * carries its own structured context fields.
 */
export class FlexnodeError extends Error {
  static override readonly name: string = 'FlexnodeError'
  override name: string = 'FlexnodeError'

  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
  }
}

/** An input (flag, file, HTTP body, network message) failed validation at the boundary. */
export class InvalidInputError extends FlexnodeError {
  static override readonly name = 'InvalidInputError'
  override name = 'InvalidInputError'
  readonly field?: string

  constructor (message: string, options?: ErrorOptions & { field?: string }) {
    super(message, options)
    this.field = options?.field
  }
}

/** A component was used after `dispose()` / `stop()`. */
export class DisposedError extends FlexnodeError {
  static override readonly name = 'DisposedError'
  override name = 'DisposedError'

  constructor (component: string) {
    super(`${component} has been disposed`)
  }
}

export class AbortError extends FlexnodeError {
  static override readonly name = 'AbortError'
  override name = 'AbortError'

  constructor (message = 'the operation was aborted') {
    super(message)
  }
}

export function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
