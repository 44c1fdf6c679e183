/**
 * A walk over every block of a DAG (a UnixFS file or directory), a few blocks at once: used to
 * fetch a whole DAG before pinning it (with progress), and to tell whether every block is here.
 *
 * ```ts
 * const complete = await walkDag(root, { load, getCodec, concurrency: 16, onBlock: (b) => { bytes += b.bytes.byteLength } })
 * ```
 */
import { createUnsafe } from 'multiformats/block'
import type { BlockCodec } from 'multiformats/codecs/interface'
import * as raw from 'multiformats/codecs/raw'
import type { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { AbortError } from '../errors.ts'

export interface WalkedBlock {
  cid: CID
  bytes: Uint8Array
  /** the decoded block (a dag-pb `PBNode`, raw bytes…) */
  value: unknown
}

export interface WalkOptions {
  /** a block's bytes; `undefined` when it is not there (the walk then answers false) */
  load: (cid: CID) => Promise<Uint8Array | undefined>
  /** whether a raw block is there, without reading it (raw blocks have no links); default: `load` */
  exists?: (cid: CID) => Promise<boolean>
  getCodec: (code: number) => BlockCodec<number, unknown> | Promise<BlockCodec<number, unknown>>
  /** blocks loaded at once. @default 1 */
  concurrency?: number
  signal?: AbortSignal
  onBlock?: (block: WalkedBlock) => void
}

/** Visits every block once; true when all were there. Rejects with what `load` throws. */
export async function walkDag (root: CID, options: WalkOptions): Promise<boolean> {
  const { load, exists, getCodec, signal, onBlock } = options
  const concurrency = Math.max(1, options.concurrency ?? 1)
  const seen = new Set<string>([root.toString()])
  const queue: CID[] = [root]
  let complete = true
  let failure: unknown
  let active = 0

  const visit = async (cid: CID): Promise<void> => {
    if (cid.multihash.code === identity.code) return
    if (cid.code === raw.code && exists !== undefined && onBlock === undefined) {
      if (!await exists(cid)) complete = false
      return
    }
    const bytes = await load(cid)
    if (bytes === undefined) { complete = false; return }
    const block = createUnsafe({ cid, bytes, codec: await getCodec(cid.code) })
    onBlock?.({ cid, bytes, value: block.value })
    for (const [, link] of block.links()) {
      const key = link.toString()
      if (!seen.has(key)) { seen.add(key); queue.push(link) }
    }
  }

  await new Promise<void>((resolve) => {
    const pump = (): void => {
      if (failure === undefined && signal?.aborted === true) failure = signal.reason ?? new AbortError()
      while (failure === undefined && complete && active < concurrency && queue.length > 0) {
        const cid = queue.shift() as CID
        active++
        visit(cid).then(() => { active-- ; pump() }, (err: unknown) => { active--; failure ??= err; pump() })
      }
      if (active === 0 && (queue.length === 0 || failure !== undefined || !complete)) resolve()
    }
    pump()
  })
  if (failure !== undefined) throw failure
  return complete
}
