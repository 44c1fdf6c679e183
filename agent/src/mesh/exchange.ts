/**
 * The mesh's one stream primitive: an exchange is one request, any number of chunks, and one
 * final message or error (wire format in `framing.ts`). Request/response is its zero-chunk case.
 *
 * Either side aborts by resetting the stream: the requester on abort, timeout, a refused chunk
 * or a throwing `onChunk`; the provider on stop, on a peer with too many exchanges in flight and
 * queued, on a peer that never sent its whole request, or when it cannot even send an error
 * frame (a reset before any frame reaches the requester as `MeshResetError`). Any other failure
 * of the provider (its handler's error, its timeouts) reaches the requester as an error frame
 * `{name, message, fields}`.
 *
 * Backpressure end to end: `responder.send` resolves once the transport took the chunk, and a
 * requester whose `onChunk` returns a promise pauses the stream (yamux stops granting window)
 * until it settles, so a slow reader slows the writer. What a provider may have sent but not yet
 * handed to the transport is bounded (`MESH_MAX_SEND_BUFFER_BYTES`, else `MeshBackpressureError`),
 * and a send blocked longer than the idle timeout fails the stream with `MeshTimeoutError`.
 */
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { AbortError, DisposedError, InvalidInputError, errorMessage } from '../errors.ts'
import type { ComponentLogger } from '../logger.ts'
import { MESH_MAX_ERROR_FRAME_BYTES, MESH_MAX_SEND_BUFFER_BYTES, MESH_STREAM_CLOSE_GRACE_MS } from './constants.ts'
import { FRAME_CHUNK, FRAME_ERROR, FRAME_FINAL, FrameStream, decodeErrorFrame, encodeErrorFrame, errorFrameOf, remoteError } from './framing.ts'
import type { NetworkGate } from './gate.ts'
import type { PeerSlots } from './slots.ts'
import { MeshBackpressureError, MeshProtocolError, MeshResetError, MeshTimeoutError, MessageTooLargeError } from './types.ts'
import type { StreamHandler, StreamResponder } from './types.ts'
import { asError, isAborted, raceSignal, settleStream } from './util.ts'

/** The provider's limits of one protocol. */
export interface ServeLimits {
  maxRequestBytes: number
  /** the whole exchange */
  timeoutMs: number
  /** reading the request, once the stream holds a slot */
  requestTimeoutMs: number
  /** the wait for the request (a slot included), then for each frame from the handler; none for request/response */
  idleTimeoutMs?: number
  maxChunkBytes: number
  maxChunks: number
}

export interface ServeContext {
  gate: Pick<NetworkGate, 'checkInbound'>
  slots: PeerSlots
  blocked: ReadonlySet<string>
  log: ComponentLogger
  /** serves under way: the node's stop aborts them (and so resets their streams) */
  serves: Set<AbortController>
  stopping: () => boolean
}

/** Serve one inbound exchange on `stream`. Never throws: every failure ends in an error frame or a reset. */
export async function serveExchange (stream: Stream, connection: Connection, protocol: string, handler: StreamHandler, limits: ServeLimits, ctx: ServeContext): Promise<void> {
  const from = connection.remotePeer.toString()
  if (ctx.blocked.has(from) || ctx.stopping()) {
    stream.abort(new MeshProtocolError('refused', { peerId: from, protocol }))
    return
  }
  const at = { peerId: from, protocol }
  const controller = new AbortController()
  const signal = controller.signal
  const fail = (err: Error): void => { if (!signal.aborted) controller.abort(err) }
  const overall = setTimeout(() => { fail(new MeshTimeoutError(`${protocol}: not served within ${limits.timeoutMs} ms`, at)) }, limits.timeoutMs)
  // restarted on every frame the handler sends (and while a request or a send is pending)
  const idleMs = limits.idleTimeoutMs
  const idle = idleMs === undefined ? undefined : setTimeout(() => { fail(new MeshTimeoutError(`${protocol}: stream idle for ${idleMs} ms`, at)) }, idleMs)
  const onClose = (evt: Event & { error?: Error }): void => {
    fail(new MeshProtocolError(evt.error !== undefined ? 'the requester reset the stream' : 'the stream closed', at))
  }
  stream.addEventListener('close', onClose)
  ctx.serves.add(controller)
  let slot: 'none' | 'held' | 'handed-over' = 'none'
  let frames: FrameStream | undefined
  let requestRead = false
  let finished = false
  let chunks = 0
  let queuedBytes = 0
  let readTimer: NodeJS.Timeout | undefined
  // sends run one after another, so a handler that does not await each one still keeps order
  let tail: Promise<void> = Promise.resolve()
  try {
    await ctx.gate.checkInbound(from, connection, protocol, signal)
    if (!await ctx.slots.acquire(from, signal)) {
      throw signal.aborted ? asError(signal.reason) : new MeshProtocolError(`too many concurrent exchanges from ${from}`, at)
    }
    slot = 'held'
    // the request has its own deadline: a half-sent one must not hold the slot for long
    readTimer = setTimeout(() => { fail(new MeshTimeoutError(`${protocol}: request not received within ${limits.requestTimeoutMs} ms`, at)) }, limits.requestTimeoutMs)
    frames = new FrameStream(stream, limits.maxRequestBytes)
    const request = await frames.read(signal, () => new MessageTooLargeError(`request exceeds maxRequestBytes ${limits.maxRequestBytes}`, at))
    requestRead = true
    clearTimeout(readTimer)
    idle?.refresh()
    const out = frames

    const responder: StreamResponder = {
      signal,
      send: async (chunk: Uint8Array): Promise<void> => {
        if (!(chunk instanceof Uint8Array)) throw new InvalidInputError('a chunk must be a Uint8Array', { field: 'chunk' })
        if (chunk.byteLength > limits.maxChunkBytes) {
          throw new MessageTooLargeError(`chunk of ${chunk.byteLength} bytes exceeds maxChunkBytes ${limits.maxChunkBytes}`, at)
        }
        if (chunks >= limits.maxChunks) throw new MessageTooLargeError(`more than maxChunks ${limits.maxChunks} chunks`, at)
        if (finished) throw new MeshProtocolError('the response is already finished', at)
        if (signal.aborted) throw asError(signal.reason)
        if (queuedBytes > 0 && queuedBytes + chunk.byteLength > MESH_MAX_SEND_BUFFER_BYTES) {
          const err = new MeshBackpressureError(`the reader is ${queuedBytes} bytes behind; more than ${MESH_MAX_SEND_BUFFER_BYTES} bytes would wait for the transport (await each send)`, at)
          fail(err)
          throw err
        }
        chunks++
        queuedBytes += chunk.byteLength
        const sent = tail.then(async () => {
          signal.throwIfAborted()
          idle?.refresh()
          await out.write([Uint8Array.of(FRAME_CHUNK), chunk], signal)
          idle?.refresh()
        }).finally(() => { queuedBytes -= chunk.byteLength })
        tail = sent.catch(() => undefined)
        await sent
      }
    }

    // the slot is held until the handler settles, even if the stream ends first
    slot = 'handed-over'
    const execution = (async () => await handler(request, from, responder))()
      .then(
        (response): { ok: true, body: Uint8Array } | { ok: false, err: unknown } => response instanceof Uint8Array
          ? { ok: true, body: response }
          : { ok: false, err: new MeshProtocolError('the handler returned a non-binary final message', at) },
        (err: unknown) => ({ ok: false as const, err })
      )
      .finally(() => { ctx.slots.release(from) })
    const outcome = await raceSignal(execution, signal)
    finished = true
    await raceSignal(tail, signal)
    if (!outcome.ok) ctx.log.debug({ peer: from, protocol, err: errorMessage(outcome.err) }, 'handler failed')
    const frame = outcome.ok
      ? [Uint8Array.of(FRAME_FINAL), outcome.body]
      : [Uint8Array.of(FRAME_ERROR), encodeErrorFrame(errorFrameOf(outcome.err))]
    idle?.refresh()
    await out.write(frame, signal)
    await stream.close({ signal })
    settleStream(stream)
  } catch (err) {
    finished = true
    const reason = signal.aborted ? asError(signal.reason) : asError(err)
    ctx.log.debug({ peer: from, protocol, err: errorMessage(reason) }, 'inbound exchange failed')
    // a peer that never sent its whole request gets no error frame: its stream is reset
    if (requestRead && reason instanceof MeshTimeoutError && frames !== undefined && await sendErrorAndClose(stream, frames, reason, ctx.log)) return
    stream.abort(reason)
  } finally {
    clearTimeout(overall)
    clearTimeout(idle)
    clearTimeout(readTimer)
    stream.removeEventListener('close', onClose)
    ctx.serves.delete(controller)
    frames?.release()
    if (slot === 'held') ctx.slots.release(from)
  }
}

/** Best effort: an error frame and a close, if the stream can take the frame without waiting. */
async function sendErrorAndClose (stream: Stream, frames: FrameStream, err: Error, log: ComponentLogger): Promise<boolean> {
  if (stream.writeStatus !== 'writable' || stream.writableNeedsDrain) return false
  try {
    const grace = AbortSignal.timeout(MESH_STREAM_CLOSE_GRACE_MS)
    await frames.write([Uint8Array.of(FRAME_ERROR), encodeErrorFrame(errorFrameOf(err))], grace)
    await stream.close({ signal: grace })
    settleStream(stream)
    return true
  } catch (e) {
    log.debug({ protocol: stream.protocol, err: errorMessage(e) }, 'could not send an error frame')
    return false
  }
}

/** The requester's limits and options of one exchange. */
export interface ExchangeOptions {
  signal?: AbortSignal
  timeoutMs: number
  /** longest wait for the next frame; none for request/response */
  idleTimeoutMs?: number
  maxChunkBytes: number
  /** 0 for request/response */
  maxChunks: number
  maxResponseBytes: number
  onChunk?: (chunk: Uint8Array) => void | Promise<void>
}

export interface RequestContext {
  dialProtocol: (peer: PeerId, protocol: string, options: { signal: AbortSignal }) => Promise<Stream>
  /** aborts when the node stops (listened to, not combined: it lives as long as the node) */
  stopSignal: AbortSignal
}

/** One outbound exchange: resolves with the final message. */
export async function requestExchange (peer: PeerId, protocol: string, request: Uint8Array, o: ExchangeOptions, ctx: RequestContext): Promise<Uint8Array> {
  const peerId = peer.toString()
  const at = { peerId, protocol }
  if (o.signal?.aborted === true) throw new AbortError()
  // aborted by our timeouts and by stop
  const local = new AbortController()
  const fail = (err: Error): void => { if (!local.signal.aborted) local.abort(err) }
  const overall = setTimeout(() => { fail(new MeshTimeoutError(`${protocol} from ${peerId}: no answer within ${o.timeoutMs} ms`, at)) }, o.timeoutMs)
  // restarted on every frame received
  const idleMs = o.idleTimeoutMs
  const idle = idleMs === undefined ? undefined : setTimeout(() => { fail(new MeshTimeoutError(`${protocol} from ${peerId}: stream idle for ${idleMs} ms`, at)) }, idleMs)
  const onStop = (): void => { fail(new DisposedError('MeshNode')) }
  ctx.stopSignal.addEventListener('abort', onStop, { once: true })
  if (ctx.stopSignal.aborted) onStop()
  const signal = o.signal === undefined ? local.signal : AbortSignal.any([o.signal, local.signal])
  const maxFrame = 1 + Math.max(o.maxResponseBytes, o.maxChunks > 0 ? o.maxChunkBytes : 0, MESH_MAX_ERROR_FRAME_BYTES)
  let stream: Stream | undefined
  let frames: FrameStream | undefined
  let chunks = 0
  let callbackError: { err: unknown } | undefined
  let frame: Uint8Array
  let answered = false
  try {
    stream = await ctx.dialProtocol(peer, protocol, { signal })
    frames = new FrameStream(stream, maxFrame)
    await frames.write([request], signal)
    await stream.close({ signal })
    for (;;) {
      frame = await frames.read(signal, () => new MessageTooLargeError(`a frame from ${peerId} on ${protocol} exceeds ${maxFrame - 1} bytes`, at))
      answered = true
      idle?.refresh()
      const type = frame[0]
      const size = frame.byteLength - 1
      if (type === FRAME_FINAL && size > o.maxResponseBytes) {
        throw new MessageTooLargeError(`final message of ${size} bytes from ${peerId} on ${protocol} exceeds maxResponseBytes ${o.maxResponseBytes}`, at)
      }
      if (type === FRAME_ERROR && size > MESH_MAX_ERROR_FRAME_BYTES) throw new MessageTooLargeError(`error frame of ${size} bytes from ${peerId} on ${protocol}`, at)
      if (type !== FRAME_CHUNK) break
      if (size > o.maxChunkBytes) throw new MessageTooLargeError(`chunk of ${size} bytes from ${peerId} on ${protocol} exceeds maxChunkBytes ${o.maxChunkBytes}`, at)
      if (++chunks > o.maxChunks) throw new MessageTooLargeError(`more than maxChunks ${o.maxChunks} chunks from ${peerId} on ${protocol}`, at)
      try {
        const pending = o.onChunk?.(frame.subarray(1))
        if (pending !== undefined) await readerPaused(stream, raceSignal(pending, signal))
      } catch (err) {
        if (!signal.aborted) callbackError = { err }
        throw err
      }
    }
  } catch (err) {
    stream?.abort(asError(err))
    if (callbackError !== undefined) throw callbackError.err
    if (local.signal.aborted) throw asError(local.signal.reason)
    if (isAborted(o.signal)) throw new AbortError()
    if (err instanceof MeshProtocolError && err.peerId !== undefined) throw err
    // libp2p's own words for a reset are about our write or read ("Cannot write to a stream that is closed")
    if (stream?.status === 'reset') {
      if (!answered) throw new MeshResetError(`${protocol} from ${peerId} failed: the peer reset the stream before answering (it refused or dropped the exchange)`, { cause: err, ...at })
      throw new MeshProtocolError(`${protocol} from ${peerId} failed: the peer reset the stream`, { cause: err, ...at })
    }
    throw new MeshProtocolError(`${protocol} from ${peerId} failed: ${errorMessage(err)}`, { cause: err, ...at })
  } finally {
    clearTimeout(overall)
    clearTimeout(idle)
    ctx.stopSignal.removeEventListener('abort', onStop)
    frames?.release()
    if (stream !== undefined) settleStream(stream)
  }
  if (frame[0] === FRAME_FINAL) return frame.subarray(1)
  if (frame[0] === FRAME_ERROR) throw remoteError(decodeErrorFrame(frame.subarray(1), at), at)
  throw new MeshProtocolError(`malformed frame from ${peerId} on ${protocol}: type ${String(frame[0])}`, at)
}

/** Hold the stream's reading (and so the remote's writing) while `pending` runs. */
async function readerPaused (stream: Stream, pending: Promise<void>): Promise<void> {
  try { stream.pause() } catch { /* closing: nothing more will arrive anyway */ }
  try {
    await pending
  } finally {
    try { stream.resume() } catch { /* closing */ }
  }
}
