/**
 * Reading a small artifact whole (a WASM module by its CID), bounded.
 */
import { InvalidInputError } from '../errors.ts'
import { WASM_MAX_MODULE_BYTES } from '../resources/wasm.ts'
import type { ArtifactService } from './index.ts'
import { ContentNotFoundError } from './types.ts'

/**
 * An artifact's bytes (undefined when no provider has it), for `resources.schedule_task`'s
 * `wasm_cid`; one larger than `maxBytes` is refused as soon as it passes the limit.
 */
export async function readModule (artifacts: Pick<ArtifactService, 'get'>, cid: string, options: { maxBytes?: number, signal?: AbortSignal } = {}): Promise<Uint8Array | undefined> {
  const max = options.maxBytes ?? WASM_MAX_MODULE_BYTES
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    for await (const chunk of artifacts.get(cid, { signal: options.signal })) {
      size += chunk.byteLength
      if (size > max) throw new InvalidInputError(`the module ${cid} is larger than ${max} bytes`, { field: 'wasm_cid' })
      chunks.push(chunk)
    }
  } catch (err) {
    if (err instanceof ContentNotFoundError) return undefined
    throw err
  }
  return Buffer.concat(chunks)
}
