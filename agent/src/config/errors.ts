/**
 * The error of a command line (or a config file) that cannot be run as given: the CLI prints its
 * one-line reason and exits 2.
 *
 * ```ts
 * throw new UsageError('--http-port must be a port number 0..65535, got "x"', '--http-port')
 * ```
 */
import { FlexnodeError } from '../errors.ts'

/** A command line that cannot be run as given. */
export class UsageError extends FlexnodeError {
  static override readonly name = 'UsageError'
  /** the flag (`--http-port`), environment variable or config key the reason is about */
  readonly flag?: string

  constructor (message: string, flag?: string) {
    super(message)
    this.flag = flag
  }
}
