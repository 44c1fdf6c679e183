/**
 * A minimal POSIX ustar writer and reader for backup archives: regular files only, names under
 * 100 bytes, sizes in octal (base-256 above 8 GiB, as GNU tar), streamed both ways. What it
 * writes `tar -tvf` lists and `tar -xf` extracts.
 *
 * ```ts
 * await pipeline(tarStream([{ name: 'a.txt', size: 3, content: [bytes] }]), createWriteStream('x.tar'))
 * const tar = new TarReader(createReadStream('x.tar'))
 * for (let e = await tar.next(); e !== undefined; e = await tar.next()) for await (const chunk of tar.body()) …
 * ```
 */
import { BackupCorruptError } from './backup-types.ts'

const BLOCK = 512
const OCTAL_SIZE_LIMIT = 8 ** 11

/** Bytes in chunks: a stream, or chunks at hand (`[buffer]`). */
export type ByteSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array>

export interface TarEntry {
  name: string
  size: number
}

export interface TarSource extends TarEntry {
  /** exactly `size` bytes */
  content: AsyncIterable<Uint8Array> | Iterable<Uint8Array>
  /** @default 0o600 */
  mode?: number
  /** seconds since the epoch. @default now */
  mtime?: number
}

function writeString (buf: Buffer, offset: number, length: number, value: string): void {
  buf.write(value, offset, length, 'utf8')
}

function writeOctal (buf: Buffer, offset: number, length: number, value: number): void {
  writeString(buf, offset, length - 1, value.toString(8).padStart(length - 1, '0'))
}

function writeSize (buf: Buffer, size: number): void {
  if (size < OCTAL_SIZE_LIMIT) {
    writeOctal(buf, 124, 12, size)
    return
  }
  // GNU base-256: the high bit of the first byte set, the value big-endian in the rest
  buf[124] = 0x80
  let v = BigInt(size)
  for (let i = 135; i > 124; i--) {
    buf[i] = Number(v & 0xffn)
    v >>= 8n
  }
}

function checksum (header: Buffer): number {
  let sum = 0
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!
  return sum
}

/** The 512-byte ustar header of a regular file. */
export function tarHeader (entry: { name: string, size: number, mode?: number, mtime?: number }): Buffer {
  const name = Buffer.from(entry.name, 'utf8')
  if (name.length === 0 || name.length > 99) throw new RangeError(`tar member name must be 1–99 bytes: ${entry.name}`)
  if (!Number.isSafeInteger(entry.size) || entry.size < 0) throw new RangeError(`tar member size must be a non-negative integer: ${entry.size}`)
  const h = Buffer.alloc(BLOCK)
  name.copy(h, 0)
  writeOctal(h, 100, 8, entry.mode ?? 0o600)
  writeOctal(h, 108, 8, 0)
  writeOctal(h, 116, 8, 0)
  writeSize(h, entry.size)
  writeOctal(h, 136, 12, entry.mtime ?? Math.floor(Date.now() / 1000))
  h[156] = 0x30 // '0': a regular file
  writeString(h, 257, 6, 'ustar\0')
  writeString(h, 263, 2, '00')
  writeOctal(h, 148, 7, checksum(h))
  h[155] = 0x20
  return h
}

const padding = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK

/** Bytes of a tar archive of members of these sizes. */
export function tarSize (sizes: readonly number[]): number {
  return sizes.reduce((total, s) => total + BLOCK + s + padding(s), 0) + 2 * BLOCK
}

/** The archive's bytes: each member's header, content and padding, then the two zero blocks. */
export async function * tarStream (entries: Iterable<TarSource>, options: { signal?: AbortSignal } = {}): AsyncGenerator<Uint8Array> {
  for (const entry of entries) {
    options.signal?.throwIfAborted()
    yield tarHeader(entry)
    let written = 0
    for await (const chunk of entry.content) {
      options.signal?.throwIfAborted()
      written += chunk.byteLength
      if (written > entry.size) throw new RangeError(`tar member ${entry.name} is longer than its ${entry.size} bytes`)
      yield chunk
    }
    if (written !== entry.size) throw new RangeError(`tar member ${entry.name} has ${written} bytes, not ${entry.size}`)
    const pad = padding(entry.size)
    if (pad > 0) yield Buffer.alloc(pad)
  }
  yield Buffer.alloc(2 * BLOCK)
}

function readOctal (h: Buffer, offset: number, length: number, field: string): number {
  if ((h[offset]! & 0x80) !== 0) {
    let v = 0n
    for (let i = offset + 1; i < offset + length; i++) v = (v << 8n) | BigInt(h[i]!)
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new BackupCorruptError(`tar header ${field} is too large`)
    return Number(v)
  }
  const text = h.subarray(offset, offset + length).toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '')
  if (!/^[0-7]+$/.test(text)) throw new BackupCorruptError(`tar header ${field} is not an octal number`)
  return parseInt(text, 8)
}

/**
 * Reads a tar archive from a byte stream, one member at a time: `next()` gives the next member's
 * header (undefined at the end), `body()` streams its content. Anything that is not a well-formed
 * archive of regular files (a bad checksum, a truncated stream) is a `BackupCorruptError`.
 */
export class TarReader {
  readonly #source: AsyncIterator<Uint8Array>
  #buffer: Buffer = Buffer.alloc(0)
  #current: { entry: TarEntry, left: number, pad: number } | undefined
  #ended = false

  constructor (source: ByteSource) {
    this.#source = Symbol.asyncIterator in source
      ? source[Symbol.asyncIterator]()
      : (async function * () { yield * source })()
  }

  /** Up to `max` bytes (at least 1), or undefined at the end of the stream. */
  async #pull (max: number): Promise<Buffer | undefined> {
    if (this.#buffer.length === 0) {
      const { value, done } = await this.#source.next()
      if (done === true) return undefined
      this.#buffer = Buffer.from(value.buffer, value.byteOffset, value.byteLength)
      if (this.#buffer.length === 0) return await this.#pull(max)
    }
    const out = this.#buffer.subarray(0, max)
    this.#buffer = this.#buffer.subarray(out.length)
    return out
  }

  async #exactly (n: number, what: string): Promise<Buffer> {
    const parts: Buffer[] = []
    let have = 0
    while (have < n) {
      const chunk = await this.#pull(n - have)
      if (chunk === undefined) throw new BackupCorruptError(`the archive ends in the middle of ${what}`)
      parts.push(chunk)
      have += chunk.length
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts)
  }

  /** The next member, or undefined at the end of the archive. The previous member's body is skipped. */
  async next (): Promise<TarEntry | undefined> {
    if (this.#current !== undefined) for await (const _ of this.body()) { /* skip */ }
    if (this.#ended) return undefined
    const h = await this.#exactly(BLOCK, 'a tar header')
    if (h.every(b => b === 0)) {
      await this.#exactly(BLOCK, 'the end-of-archive marker')
      this.#ended = true
      return undefined
    }
    if (readOctal(h, 148, 8, 'checksum') !== checksum(h)) throw new BackupCorruptError('a tar header checksum does not match')
    if (h.subarray(257, 262).toString('latin1') !== 'ustar') throw new BackupCorruptError('not a ustar archive')
    const type = h[156]!
    const nameEnd = h.indexOf(0, 0)
    const name = h.subarray(0, nameEnd < 0 || nameEnd > 100 ? 100 : nameEnd).toString('utf8')
    if (type !== 0x30 && type !== 0) throw new BackupCorruptError(`tar member ${name} is not a regular file`, { part: name })
    const size = readOctal(h, 124, 12, 'size')
    this.#current = { entry: { name, size }, left: size, pad: padding(size) }
    return { name, size }
  }

  /** The current member's content, streamed (each chunk is valid only until the next is read). */
  async * body (): AsyncGenerator<Buffer> {
    const cur = this.#current
    if (cur === undefined) return
    while (cur.left > 0) {
      const chunk = await this.#pull(cur.left)
      if (chunk === undefined) throw new BackupCorruptError(`the archive ends in the middle of ${cur.entry.name}`, { part: cur.entry.name })
      cur.left -= chunk.length
      yield chunk
    }
    if (cur.pad > 0) await this.#exactly(cur.pad, `the padding of ${cur.entry.name}`)
    this.#current = undefined
  }

  /** Lets go of the source (closes a file, returns a database connection). Idempotent. */
  async close (): Promise<void> {
    this.#ended = true
    this.#current = undefined
    await this.#source.return?.()
  }

  /** After the end of the archive: whether only zero bytes follow (tar pads to a record size). */
  async trailingIsZero (): Promise<boolean> {
    for (let chunk = await this.#pull(65_536); chunk !== undefined; chunk = await this.#pull(65_536)) {
      if (!chunk.every(b => b === 0)) return false
    }
    return true
  }
}
