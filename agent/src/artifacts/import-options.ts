/**
 * Kubo-compatible import options: validation of typed options (`resolveImportOptions`) and
 * parsing of their text forms from an HTTP query or CLI flags (`parseImportQuery`: `cid_version`,
 * `raw_leaves`, `chunker`, `pin`).
 *
 * ```ts
 * resolveImportOptions({ cidVersion: 1 }) // { cidVersion: 1, rawLeaves: true, chunkSize: 262144 }
 * parseImportQuery({ cid_version: '1', chunker: 'size-1048576' }) // { cidVersion: 1, chunker: 'size-1048576' }
 * ```
 */
import { DEFAULT_CHUNK_SIZE, DEFAULT_CID_VERSION, MAX_CHUNK_SIZE } from './constants.ts'
import { InvalidImportOptionsError, type AddOptions, type ImportOptions } from './types.ts'

/** Import options checked, Kubo's defaults applied. */
export interface ResolvedImportOptions {
  cidVersion: 0 | 1
  rawLeaves: boolean
  /** bytes per leaf */
  chunkSize: number
}

/** Bytes per leaf of a `size-N` chunker (the only kind supported: Kubo's `rabin`/`buzhash` are not). */
export function parseChunker (chunker: string): number {
  const match = typeof chunker === 'string' ? /^size-(\d{1,8})$/.exec(chunker) : null
  if (match === null) {
    throw new InvalidImportOptionsError('chunker', `chunker must be 'size-N' (N bytes per leaf), got ${JSON.stringify(chunker)}`)
  }
  const size = Number(match[1])
  if (size < 1 || size > MAX_CHUNK_SIZE) {
    throw new InvalidImportOptionsError('chunker', `a chunker's size must be 1..${MAX_CHUNK_SIZE} bytes, got ${size}`)
  }
  return size
}

export function resolveImportOptions (options: ImportOptions = {}): ResolvedImportOptions {
  const { cidVersion = DEFAULT_CID_VERSION, rawLeaves, chunker } = options
  if (cidVersion !== 0 && cidVersion !== 1) {
    throw new InvalidImportOptionsError('cidVersion', `cidVersion must be 0 or 1, got ${JSON.stringify(cidVersion)}`)
  }
  if (rawLeaves !== undefined && typeof rawLeaves !== 'boolean') {
    throw new InvalidImportOptionsError('rawLeaves', `rawLeaves must be a boolean, got ${JSON.stringify(rawLeaves)}`)
  }
  return {
    cidVersion,
    rawLeaves: rawLeaves ?? cidVersion === 1,
    chunkSize: chunker === undefined ? DEFAULT_CHUNK_SIZE : parseChunker(chunker)
  }
}

/** `add`'s options checked: the import options and `pin` (@default true). */
export function resolveAddOptions (options: AddOptions = {}): ResolvedImportOptions & { pin: boolean } {
  const resolved = resolveImportOptions(options)
  if (options.pin !== undefined && typeof options.pin !== 'boolean') throw new InvalidImportOptionsError('pin', `pin must be a boolean, got ${JSON.stringify(options.pin)}`)
  return { ...resolved, pin: options.pin ?? true }
}

/** The text forms of the import options, as an HTTP query or CLI flags give them. */
export interface ImportQuery {
  /** `0` or `1` */
  cid_version?: string | null
  /** `true`/`false` (also `1`/`0`) */
  raw_leaves?: string | null
  /** `size-N` */
  chunker?: string | null
  /** `true`/`false` (also `1`/`0`) */
  pin?: string | null
}

/** The typed options of a query's text (absent or empty values are left to the defaults), validated. */
export function parseImportQuery (query: ImportQuery): ImportOptions & Pick<AddOptions, 'pin'> {
  const out: ImportOptions & Pick<AddOptions, 'pin'> = {}
  const cidVersion = present(query.cid_version)
  if (cidVersion !== undefined) {
    if (cidVersion !== '0' && cidVersion !== '1') throw new InvalidImportOptionsError('cidVersion', `cid_version must be 0 or 1, got ${JSON.stringify(cidVersion)}`)
    out.cidVersion = cidVersion === '1' ? 1 : 0
  }
  const rawLeaves = present(query.raw_leaves)
  if (rawLeaves !== undefined) out.rawLeaves = parseBoolean('rawLeaves', 'raw_leaves', rawLeaves)
  const chunker = present(query.chunker)
  if (chunker !== undefined) {
    parseChunker(chunker)
    out.chunker = chunker
  }
  const pin = present(query.pin)
  if (pin !== undefined) out.pin = parseBoolean('pin', 'pin', pin)
  return out
}

function present (value: string | null | undefined): string | undefined {
  return value === null || value === undefined || value === '' ? undefined : value
}

function parseBoolean (field: string, name: string, value: string): boolean {
  if (value === 'true' || value === '1') return true
  if (value === 'false' || value === '0') return false
  throw new InvalidImportOptionsError(field, `${name} must be true or false, got ${JSON.stringify(value)}`)
}

/**
 * Cuts a byte stream into leaves of exactly `size` bytes (the last one shorter; one empty leaf
 * for empty content, as Kubo): the `size-N` chunker.
 */
export function fixedSizeChunker (size: number): (source: AsyncIterable<Uint8Array>) => AsyncGenerator<Uint8Array> {
  return async function * chunk (source) {
    // every byte of a leaf is written before it is handed on: no need to zero it first
    let leaf: Uint8Array = Buffer.allocUnsafeSlow(size)
    let filled = 0
    let emitted = false
    for await (const piece of source) {
      let at = 0
      while (at < piece.byteLength) {
        const n = Math.min(size - filled, piece.byteLength - at)
        leaf.set(piece.subarray(at, at + n), filled)
        filled += n
        at += n
        if (filled === size) {
          yield leaf
          emitted = true
          leaf = Buffer.allocUnsafeSlow(size)
          filled = 0
        }
      }
    }
    if (filled > 0 || !emitted) yield leaf.subarray(0, filled)
  }
}
