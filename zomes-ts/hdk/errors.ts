/**
 * The typed errors zome functions throw. They are bundled into the zome and thrown inside the
 * sandbox; the conductor reports them as a `ribosome_error` whose text starts with the error's
 * name (`ZomeInputError: …`), as Holochain reports a `wasm_error!`.
 */
import { FlexnodeError } from '../../lib/errors.ts'

/** A zome function's input failed its checks. `field` is the offending field, when there is one. */
export class ZomeInputError extends FlexnodeError {
  static override readonly name = 'ZomeInputError'
  readonly field?: string

  constructor (message: string, field?: string) {
    super(message)
    this.field = field
  }
}

/** A zome function cannot run in the current state of the chain (nothing to update yet…). */
export class ZomeStateError extends FlexnodeError {
  static override readonly name = 'ZomeStateError'
}
