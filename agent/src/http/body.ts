/**
 * Request bodies: JSON only (`application/json`, optionally `charset=utf-8`), at most
 * `maxBodyBytes` (413 beyond, after reading and discarding a bounded amount so the answer
 * reaches the client), valid UTF-8 and valid JSON (400 otherwise).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { errorMessage, InvalidInputError } from '../errors.ts'
import { RequestAbortedError } from '../inference/types.ts'
import { JSON_MEDIA_TYPE, MAX_DRAIN_BYTES } from './constants.ts'
import { MalformedJsonError, PayloadTooLargeError, UnsupportedMediaTypeError } from './openai.ts'

/** `application/json`, optionally with `charset=utf-8`. */
function isJsonContentType (header: string | undefined): boolean {
  if (header === undefined) return false
  const [type, ...params] = header.split(';').map(s => s.trim().toLowerCase())
  if (type !== JSON_MEDIA_TYPE) return false
  return params.every(p => !p.startsWith('charset=') || p === 'charset=utf-8' || p === 'charset="utf-8"')
}

const UTF8 = new TextDecoder('utf-8', { fatal: true })

/** The body's bytes, refused past `maxBodyBytes`. */
async function readBytes (req: IncomingMessage, maxBodyBytes: number): Promise<Buffer> {
  return await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let drained = 0
    const cleanup = (): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
      req.off('close', onClose)
    }
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size <= maxBodyBytes) { chunks.push(chunk); return }
      cleanup()
      // keep reading (and discarding) a bounded amount so the 413 reaches the client
      req.on('data', (c: Buffer) => { drained += c.length; if (drained > MAX_DRAIN_BYTES) req.socket.destroy() })
      reject(new PayloadTooLargeError(maxBodyBytes))
    }
    const onEnd = (): void => { cleanup(); resolve(Buffer.concat(chunks)) }
    const onError = (err: Error): void => { cleanup(); reject(new RequestAbortedError(`the request body could not be read: ${err.message}`)) }
    const onClose = (): void => { cleanup(); reject(new RequestAbortedError('the client closed the connection before sending the body')) }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
    req.on('close', onClose)
  })
}

export async function readJson (req: IncomingMessage, maxBodyBytes: number): Promise<unknown> {
  const type = req.headers['content-type']
  if (!isJsonContentType(type)) throw new UnsupportedMediaTypeError(type)
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > maxBodyBytes) throw new PayloadTooLargeError(maxBodyBytes)
  const bytes = await readBytes(req, maxBodyBytes)
  if (bytes.length === 0) throw new MalformedJsonError('the request body is empty; a JSON object is required')
  let text: string
  try {
    text = UTF8.decode(bytes)
  } catch {
    throw new MalformedJsonError('the request body is not valid UTF-8')
  }
  try {
    return JSON.parse(text) as unknown
  } catch (err: unknown) {
    throw new MalformedJsonError(`the request body is not valid JSON: ${errorMessage(err)}`)
  }
}

/** A body that may be absent (no content-length, or 0): `{}` then, else as `readJson`. */
export async function readOptionalJson (req: IncomingMessage, maxBodyBytes: number): Promise<unknown> {
  const length = req.headers['content-length']
  const chunked = req.headers['transfer-encoding'] !== undefined
  if (!chunked && (length === undefined || length.trim() === '0')) return {}
  return await readJson(req, maxBodyBytes)
}

/** A JSON response with its length. */
export function sendJson (res: ServerResponse, status: number, body: unknown, headers: Record<string, string | string[]> = {}): void {
  const data = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(data), ...headers })
  res.end(data)
}

/** A JSON object with none but `allowed` fields (`InvalidInputError` naming the first other one); `field` names it in errors (`body` for the whole body). */
export function jsonObject (value: unknown, field: string, allowed: readonly string[]): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new InvalidInputError(`${field} must be a JSON object`, { field })
  const prefix = field === 'body' ? '' : `${field}.`
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new InvalidInputError(`${prefix}${key} is not a known field (known: ${allowed.join(', ')})`, { field: `${prefix}${key}` })
  }
  return value as Record<string, unknown>
}
