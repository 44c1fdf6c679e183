/**
 * Reading a UnixFS file through `@helia/unixfs` over any blockstore (Helia's own, or Kubo's block
 * API): the range checks, the `get` progress (bytes, blocks, total), the idle deadline and the
 * typed errors, shared by `HeliaStore` and `KuboStore`.
 *
 * ```ts
 * yield * readFile(unixfs(helia), parseCid(text), { offset: 10, length: 100, timeoutMs: 30_000 })
 * ```
 */
import type { UnixFS } from '@helia/unixfs'
import type { CID } from 'multiformats/cid'
import { InvalidInputError } from '../errors.ts'
import { GET_READ_AHEAD_BLOCKS } from './constants.ts'
import { FetchGuard } from './fetch-guard.ts'
import type { ArtifactProgress, GetOptions, StatResult } from './types.ts'

/** Helia's progress events that mean "a block was read" (from disk, or fetched then stored). */
const BLOCK_EVENTS = new Set(['blocks:get:blockstore:get', 'blocks:get:blockstore:put'])

export interface ReadOptions extends Omit<GetOptions, 'providers' | 'timeoutMs'> {
  timeoutMs: number
  /** peers to ask first, as Helia wants them */
  providers?: CID[]
}

/** The file's bytes from `offset` for `length`, streamed; every block read restarts the deadline. */
export async function * readFile (fs: Pick<UnixFS, 'cat' | 'stat'>, cid: CID, options: ReadOptions): AsyncGenerator<Uint8Array> {
  const offset = rangeValue(options.offset, 'offset') ?? 0
  const length = rangeValue(options.length, 'length')
  const text = cid.toString()
  const guard = new FetchGuard(text, options.timeoutMs, options.signal)
  let blocks = 0
  let bytes = 0
  const common = {
    signal: guard.signal,
    ...(options.providers !== undefined && options.providers.length > 0 ? { providers: options.providers } : {}),
    onProgress: (evt: { type: string }) => {
      if (BLOCK_EVENTS.has(evt.type)) { blocks++; guard.touch() }
    }
  }
  try {
    const stat = await fs.stat(cid, common)
    if (stat.type === 'directory') throw new InvalidInputError(`${text} is a directory, not a file`, { field: 'cid' })
    const size = Number(stat.size)
    const total = Math.max(0, Math.min(length ?? Infinity, size - offset))
    const report = (): void => { options.onProgress?.({ phase: 'get', bytes, blocks, total } satisfies ArtifactProgress) }
    report()
    if (total === 0) return
    for await (const chunk of fs.cat(cid, { ...common, offset, length: total, blockReadConcurrency: GET_READ_AHEAD_BLOCKS } as Parameters<UnixFS['cat']>[1])) {
      guard.check()
      bytes += chunk.byteLength
      report()
      guard.pause()
      yield chunk
      guard.touch()
    }
  } catch (err) {
    throw notUnixfs(err, text) ?? guard.fail(err)
  } finally {
    guard.done()
  }
}

/** What a UnixFS root says about itself (`local` is the caller's business). */
export async function statFile (fs: Pick<UnixFS, 'stat'>, cid: CID, options: ReadOptions): Promise<Omit<StatResult, 'local'>> {
  const guard = new FetchGuard(cid.toString(), options.timeoutMs, options.signal)
  try {
    const stat = await fs.stat(cid, {
      signal: guard.signal,
      ...(options.providers !== undefined && options.providers.length > 0 ? { providers: options.providers } : {}),
      onProgress: (evt: { type: string }) => { if (BLOCK_EVENTS.has(evt.type)) guard.touch() }
    })
    return { cid: cid.toString(), size: stat.type === 'directory' ? 0 : Number(stat.size), type: stat.type }
  } catch (err) {
    throw notUnixfs(err, cid.toString()) ?? guard.fail(err)
  } finally {
    guard.done()
  }
}

/** The exporter's word that the content is not a UnixFS file or directory (a dag-cbor CID…), as a typed error. */
function notUnixfs (err: unknown, cid: string): InvalidInputError | undefined {
  if (err instanceof InvalidInputError) return err
  const name = (err as Error | null)?.name
  if (name === 'NotUnixFSError' || name === 'NoResolverError' || name === 'NotAFileError') {
    return new InvalidInputError(`${cid} is not a UnixFS file (${(err as Error).message})`, { field: 'cid' })
  }
  return undefined
}

function rangeValue (value: number | undefined, field: 'offset' | 'length'): number | undefined {
  if (value === undefined) return undefined
  if (!Number.isSafeInteger(value) || value < 0) throw new InvalidInputError(`${field} must be a non-negative integer, got ${JSON.stringify(value)}`, { field })
  return value
}
