/**
 * The shape every DNA's typed client (`zomes-ts/<dna>/client.ts`) follows: agent code names a
 * zome function through a method with typed input and output instead of a string `fn_name` and a
 * cast, and reaches the conductor only through `Pick<AppClient, 'callZome'>`, so the same client
 * works over the in-process client, an `AppWebsocket` to the embedded conductor or to a real
 * `holochain`.
 */
import type { AppClient, CellId, RoleName } from '@holochain/client'
import { FlexnodeError } from '../lib/errors.ts'

/** The one conductor method a DNA client needs. */
export type ZomeCaller = Pick<AppClient, 'callZome'>

/** Which cell a client calls: by role name (the app's provisioned cell) or by cell id. */
export type CellTarget = { role_name: RoleName } | { cell_id: CellId }

export interface ZomeCallOptions {
  /** stops waiting for the answer (the call itself may still complete on the conductor) */
  signal?: AbortSignal
}

/** A zome call was given up because its caller's signal aborted. */
export class ZomeCallAbortedError extends FlexnodeError {
  static override readonly name = 'ZomeCallAbortedError'
  readonly zome: string
  readonly fn: string

  constructor (zome: string, fn: string, options?: ErrorOptions) {
    super(`the call to ${zome}.${fn} was aborted`, options)
    this.zome = zome
    this.fn = fn
  }
}

/** The base of a DNA's typed client: one place that turns a method into a zome call. */
export class DnaClient {
  readonly #caller: ZomeCaller
  readonly #target: CellTarget

  constructor (caller: ZomeCaller, target: CellTarget) {
    this.#caller = caller
    this.#target = target
  }

  /** Calls `zome.fn` with `payload`; `O` is the zome function's declared output type. */
  protected async call<O> (zome: string, fn: string, payload: unknown, options: ZomeCallOptions = {}): Promise<O> {
    const { signal } = options
    if (signal?.aborted === true) throw new ZomeCallAbortedError(zome, fn, { cause: signal.reason })
    const call = this.#caller.callZome({ ...this.#target, zome_name: zome, fn_name: fn, payload }) as Promise<O>
    if (signal === undefined) return await call
    let onAbort: (() => void) | undefined
    const aborted = new Promise<never>((_resolve, reject) => {
      onAbort = () => { reject(new ZomeCallAbortedError(zome, fn, { cause: signal.reason })) }
      signal.addEventListener('abort', onAbort, { once: true })
    })
    try {
      return await Promise.race([call, aborted])
    } finally {
      signal.removeEventListener('abort', onAbort!)
      // the conductor's answer after an abort is not wanted
      call.catch(() => undefined)
    }
  }
}
