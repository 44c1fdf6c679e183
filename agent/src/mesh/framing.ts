/**
 * Framing of the mesh's exchanges, on `lpStream` (@libp2p/utils): every message is one
 * length-prefixed frame (unsigned varint length ‖ bytes).
 *
 * One exchange per stream: the requester sends one frame, the request, and closes its writable
 * end; the provider answers with frames `type ‖ body`: any number of `FRAME_CHUNK`, then exactly
 * one `FRAME_FINAL` (the body is the final message) or `FRAME_ERROR` (the body is a msgpack map
 * `{name, message, fields}`, see `ErrorFrame`), then closes. A request/response exchange is the
 * case with no chunks.
 */
import type { Stream } from '@libp2p/interface'
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils'
import { decode, encode } from '@msgpack/msgpack'
import { Uint8ArrayList } from 'uint8arraylist'
import { FlexnodeError, errorMessage } from '../errors.ts'
import { MESH_MAX_ERROR_FIELDS, MESH_MAX_ERROR_FRAME_BYTES, MESH_MAX_ERROR_MESSAGE_BYTES } from './constants.ts'
import { MeshProtocolError, MessageTooLargeError, RemoteError } from './types.ts'

/** The final frame: the body is the response. */
export const FRAME_FINAL = 0
/** The error frame: the body is an encoded `ErrorFrame`. */
export const FRAME_ERROR = 1
/** A chunk of a streamed response. */
export const FRAME_CHUNK = 2

export type ErrorFieldValue = string | number | boolean | null

/** The one error channel of the mesh: the provider's error, with its kind and context. */
export interface ErrorFrame {
  /** the error's `name` (its kind: `BusyError`, `InvalidInputError`…) */
  name: string
  message: string
  /** the error's structured context fields (scalars only) */
  fields: Record<string, ErrorFieldValue>
}

const NAME_RE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/
/** Own properties of an Error that are not context fields. */
const NOT_FIELDS = new Set(['name', 'message', 'stack', 'cause', 'errors'])

function truncateUtf8 (text: string, maxBytes: number): string {
  const bytes = new TextEncoder().encode(text)
  if (bytes.length <= maxBytes) return text
  let end = maxBytes
  // do not cut a multi-byte character in half
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--
  return new TextDecoder().decode(bytes.subarray(0, end))
}

function isFieldValue (v: unknown): v is ErrorFieldValue {
  return v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))
}

/**
 * The error frame of a thrown value: its `name` when it is a typed error (a `FlexnodeError`),
 * its message, and its own scalar fields. Anything else (a plain `Error`, a `RangeError` from a
 * decoder, a library's error) names no kind of ours: it goes as `MeshProtocolError`.
 */
export function errorFrameOf (err: unknown): ErrorFrame {
  const name = err instanceof FlexnodeError && NAME_RE.test(err.name) ? err.name : MeshProtocolError.name
  const fields: Record<string, ErrorFieldValue> = {}
  if (err !== null && typeof err === 'object') {
    // a typed error's structured fields (a relayed RemoteError's are the provider's)
    for (const [k, v] of Object.entries(err instanceof FlexnodeError ? err.fields : err)) {
      if (NOT_FIELDS.has(k) || !NAME_RE.test(k) || !isFieldValue(v)) continue
      fields[k] = typeof v === 'string' ? truncateUtf8(v, 256) : v
      if (Object.keys(fields).length >= MESH_MAX_ERROR_FIELDS) break
    }
  }
  return { name, message: truncateUtf8(errorMessage(err), MESH_MAX_ERROR_MESSAGE_BYTES), fields }
}

export function encodeErrorFrame (frame: ErrorFrame): Uint8Array {
  const bytes = encode(frame)
  // fields are small scalars; should they still not fit, the kind and the message go alone
  return bytes.byteLength <= MESH_MAX_ERROR_FRAME_BYTES - 1 ? bytes : encode({ ...frame, fields: {} })
}

/** Validates an error frame from the network; a malformed one is a `MeshProtocolError`. */
export function decodeErrorFrame (bytes: Uint8Array, ctx: { peerId: string, protocol: string }): ErrorFrame {
  let value: unknown
  try {
    value = decode(bytes)
  } catch (err) {
    throw new MeshProtocolError(`malformed error frame from ${ctx.peerId} on ${ctx.protocol}: ${errorMessage(err)}`, ctx)
  }
  const v = value as Partial<Record<keyof ErrorFrame, unknown>> | null
  if (v === null || typeof v !== 'object' || typeof v.name !== 'string' || !NAME_RE.test(v.name) || typeof v.message !== 'string') {
    throw new MeshProtocolError(`malformed error frame from ${ctx.peerId} on ${ctx.protocol}: not {name, message, fields}`, ctx)
  }
  const fields: Record<string, ErrorFieldValue> = {}
  if (v.fields !== null && typeof v.fields === 'object' && !Array.isArray(v.fields)) {
    for (const [k, f] of Object.entries(v.fields as Record<string, unknown>).slice(0, MESH_MAX_ERROR_FIELDS)) {
      if (NAME_RE.test(k) && !NOT_FIELDS.has(k) && isFieldValue(f)) fields[k] = f
    }
  }
  return { name: v.name, message: truncateUtf8(v.message, MESH_MAX_ERROR_MESSAGE_BYTES), fields }
}

/** The requester's error for a provider's error frame: `name` is the provider's. */
export function remoteError (frame: ErrorFrame, ctx: { peerId: string, protocol: string }): RemoteError {
  return new RemoteError(frame.message, { remoteName: frame.name, fields: frame.fields, peerId: ctx.peerId, protocol: ctx.protocol })
}

/** Frames on one stream: length-prefixed reads bounded by `maxFrameBytes`, writes that wait for the transport. */
export class FrameStream {
  readonly #lp: LengthPrefixedStream<Stream>
  readonly #maxFrameBytes: number

  constructor (stream: Stream, maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes
    // bytes that arrive before they are read are bounded too: a frame and what follows it in flight
    this.#lp = lpStream(stream, { maxDataLength: maxFrameBytes, maxBufferSize: 2 * maxFrameBytes + (1 << 20) })
  }

  /**
   * The next frame's bytes. Refuses a frame whose declared length exceeds the limit before
   * reading its body (`tooLarge`); a stream that ends mid-frame is a `MeshProtocolError`.
   */
  async read (signal: AbortSignal, tooLarge: () => Error): Promise<Uint8Array> {
    try {
      const bytes = (await this.#lp.read({ signal })).subarray()
      // a plain Uint8Array view (not the socket's Buffer), so consumers compare and decode it as such
      return Buffer.isBuffer(bytes) ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes
    } catch (err) {
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new MeshProtocolError(String(signal.reason))
      const name = err instanceof Error ? err.name : ''
      if (name === 'InvalidDataLengthError') throw tooLarge()
      if (name === 'InvalidDataLengthLengthError' || name === 'InvalidMessageLengthError') throw new MeshProtocolError('malformed frame length prefix', { cause: err })
      if (name === 'UnexpectedEOFError') throw new MeshProtocolError('the stream ended before a whole frame arrived', { cause: err })
      if (name === 'StreamBufferError') throw new MessageTooLargeError(`more than ${this.#maxFrameBytes} bytes arrived unread`, { cause: err })
      throw err
    }
  }

  /** One frame (`parts` concatenated); resolves once the transport took it. */
  async write (parts: Uint8Array[], signal: AbortSignal): Promise<void> {
    await this.#lp.write(parts.length === 1 ? parts[0]! : new Uint8ArrayList(...parts), { signal })
  }

  /** Stop reading: the stream's listeners are removed, unread bytes go back to it. */
  release (): void {
    try {
      this.#lp.unwrap()
    } catch {
      // a closed stream refuses the unread bytes back; its listeners are gone all the same
    }
  }
}
