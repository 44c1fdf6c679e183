/** Typed errors of the GGUF reader and writer; callers branch on `err.name`. */
import { FlexnodeError } from '../../errors.ts'

/** A model spec handed to the writer is not one it can write. */
export class InvalidModelSpecError extends FlexnodeError {
  static override readonly name = 'InvalidModelSpecError'
  readonly field?: string

  constructor (message = 'invalid model spec', field?: string) {
    super(message)
    this.field = field
  }
}

/** The writer was used against its contract (a big-endian host, tensor data filled out of order). */
export class GgufWriteError extends FlexnodeError {
  static override readonly name = 'GgufWriteError'
}

/** Which structural check a GGUF file failed. */
export type GgufDefect =
  | 'io' | 'magic' | 'version' | 'truncated' | 'count' | 'string' | 'value-type' | 'array'
  | 'duplicate' | 'alignment' | 'tensor' | 'bounds' | 'header-size' | 'deadline' | 'resources'

/**
 * A `.gguf` file that fails the structural check (`inspectGguf`): native code never sees it.
 * `file` is the file's name (never its absolute path), `defect` the kind of check it failed.
 */
export class InvalidGgufError extends FlexnodeError {
  static override readonly name = 'InvalidGgufError'
  readonly file: string
  readonly defect: GgufDefect
  /** what is wrong, without the file name */
  readonly detail: string

  constructor (file: string, defect: GgufDefect, detail: string) {
    super(`${file}: ${detail}`)
    this.file = file
    this.defect = defect
    this.detail = detail
  }
}
