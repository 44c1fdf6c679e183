/** Small helpers the mesh's parts share: signals, sleeps, validation, stream settling. */
import type { Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { InvalidInputError, errorMessage } from '../errors.ts'
import { MESH_STREAM_CLOSE_GRACE_MS } from './constants.ts'
import { MeshProtocolError, MeshTimeoutError } from './types.ts'

export function asError (err: unknown): Error {
  return err instanceof Error ? err : new MeshProtocolError(String(err))
}

export function isAborted (signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}

/** Resolves with the outcome of `promise`, or rejects with the signal's reason when it aborts first. */
export async function raceSignal<T> (promise: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted()
  return await new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      value => { signal.removeEventListener('abort', onAbort); resolve(value) },
      (err: unknown) => { signal.removeEventListener('abort', onAbort); reject(err) }
    )
  })
}

/** A sleep that ends early on abort or on `wake` (resolves true when woken). */
export async function sleep (ms: number, signal: AbortSignal, wake?: EventTarget): Promise<boolean> {
  if (signal.aborted) return false
  return await new Promise<boolean>(resolve => {
    const done = (woken: boolean): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      wake?.removeEventListener('wake', onWake)
      resolve(woken)
    }
    const onAbort = (): void => { done(false) }
    const onWake = (): void => { done(true) }
    const timer = setTimeout(() => { done(false) }, ms)
    timer.unref?.()
    signal.addEventListener('abort', onAbort, { once: true })
    wake?.addEventListener('wake', onWake, { once: true })
  })
}

export function jitter (ms: number): number {
  return Math.round(ms * (0.8 + Math.random() * 0.4))
}

export function positiveInt (value: number | undefined, fallback: number, field: string): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value <= 0) throw new InvalidInputError(`${field} must be a positive integer, got ${String(value)}`, { field })
  return value
}

export function parseMultiaddr (addr: string, field: string): Multiaddr {
  if (typeof addr !== 'string' || addr === '') throw new InvalidInputError(`${field} must be a non-empty multiaddr string`, { field })
  try {
    return multiaddr(addr)
  } catch (err) {
    throw new InvalidInputError(`${field}: not a multiaddr: ${JSON.stringify(addr.slice(0, 200))} (${errorMessage(err)})`, { field })
  }
}

/**
 * Our side is done with `stream`: if the remote has not closed its end too, reset the stream
 * after a grace period so nothing stays half-open.
 */
export function settleStream (stream: Stream): void {
  if (stream.status !== 'open' && stream.status !== 'closing') return
  if (stream.writeStatus !== 'closed') {
    stream.abort(new MeshProtocolError('stream abandoned'))
    return
  }
  const timer = setTimeout(() => {
    stream.abort(new MeshTimeoutError('the remote did not close the stream'))
  }, MESH_STREAM_CLOSE_GRACE_MS)
  timer.unref?.()
  stream.addEventListener('close', () => { clearTimeout(timer) }, { once: true })
}
