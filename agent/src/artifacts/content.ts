/**
 * The content handed to `ArtifactStore.add`, streamed once: checked to be bytes, counted, hashed
 * (sha256) and reported (`add` progress) on its way into the importer, whichever store imports it.
 *
 * ```ts
 * const content = countedContent(bytesOrStream, options)
 * const cid = await importer(content.source)
 * return { cid, size: content.size, sha256: content.sha256() }
 * ```
 */
import { createHash } from 'node:crypto'
import { AbortError, InvalidInputError } from '../errors.ts'
import type { ProgressOptions } from './types.ts'

export interface CountedContent {
  /** the content's chunks, each counted and hashed as it passes */
  source: AsyncGenerator<Uint8Array>
  /** bytes passed so far */
  readonly size: number
  /** hex sha256 of the bytes passed (call once, after the source is drained) */
  sha256: () => string
}

export function countedContent (content: Uint8Array | AsyncIterable<Uint8Array>, options: ProgressOptions = {}): CountedContent {
  const notBytes = (): InvalidInputError => new InvalidInputError('content must be bytes (a Uint8Array or an async iterable of them)', { field: 'content' })
  if (!(content instanceof Uint8Array) && (content === null || typeof content !== 'object' || !(Symbol.asyncIterator in content))) throw notBytes()
  const { signal, onProgress } = options
  const hash = createHash('sha256')
  const counted = { size: 0 }
  async function * source (): AsyncGenerator<Uint8Array> {
    const chunks = content instanceof Uint8Array ? [content] : content
    for await (const chunk of chunks) {
      if (signal?.aborted === true) throw new AbortError()
      if (!(chunk instanceof Uint8Array)) throw notBytes()
      hash.update(chunk)
      counted.size += chunk.byteLength
      onProgress?.({ phase: 'add', bytes: counted.size })
      yield chunk
    }
  }
  return {
    source: source(),
    get size () { return counted.size },
    sha256: () => hash.digest('hex')
  }
}
