/**
 * The one base of every typed error in flexnode, shared by `agent/`, `scheduler/`, `native/` and
 * `tryorama/` (this folder depends on nothing, so the pure `scheduler/` can use it without
 * importing the agent).
 *
 * A subclass declares its `static override readonly name` and its context as readonly fields;
 * the instance `name` follows from the static one, and `fields` / `toJSON()` give the
 * structured context to the boundaries that put errors on a wire (the mesh's error frame, the
 * HTTP error body, the MCP tool result), so no boundary keeps its own copy of each error's shape.
 */

/** The structured context of an error: JSON-like values (and byte arrays) keyed by field name. */
export type ErrorFields = Record<string, unknown>

/** What an error looks like on a wire: its `name`, its human reason and its structured fields. */
export interface WireError {
  name: string
  message: string
  fields: ErrorFields
}

const NOT_FIELDS = new Set(['name', 'message', 'stack', 'cause'])

export class FlexnodeError extends Error {
  static override readonly name: string = 'FlexnodeError'

  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    // the subclass's declared static name, so `err.name` is what callers branch on
    this.name = new.target.name
  }

  /** This error's structured context: its own fields other than name, message, stack and cause. */
  get fields (): ErrorFields {
    const out: ErrorFields = {}
    for (const [key, value] of Object.entries(this)) {
      if (!NOT_FIELDS.has(key) && value !== undefined && typeof value !== 'function') out[key] = value
    }
    return out
  }

  toJSON (): WireError {
    return { name: this.name, message: this.message, fields: this.fields }
  }
}

/** Any thrown value as a {@link WireError}: typed errors keep their name and fields. */
export function toWireError (err: unknown): WireError {
  if (err instanceof FlexnodeError) return err.toJSON()
  if (err instanceof Error) return { name: err.name, message: err.message, fields: {} }
  return { name: 'Error', message: String(err), fields: {} }
}
