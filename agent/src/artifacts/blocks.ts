/**
 * Blocks checked against their CIDs: `verifyBlock`, and `VerifyingBlockstore`, a blockstore
 * wrapper whose reads hash every block (a block corrupted on disk is a `ContentMismatchError`,
 * not wrong bytes handed out). Helia checks the blocks it fetches from peers; this checks the ones
 * it reads back.
 *
 * ```ts
 * const blockstore = new VerifyingBlockstore(new FsBlockstore(dir))
 * ```
 */
import type { HeliaInit } from 'helia'
import { identity } from 'multiformats/hashes/identity'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import type { CID } from 'multiformats/cid'
import type { MultihashHasher } from 'multiformats/hashes/interface'
import { ContentMismatchError, InvalidCidError } from './types.ts'

export type Blockstore = NonNullable<HeliaInit['blockstore']>

const HASHERS = new Map<number, MultihashHasher>([[sha256.code, sha256], [sha512.code, sha512]])

/** Throws `ContentMismatchError` when `bytes` do not hash to `cid` (`InvalidCidError` for a hash this store cannot check). */
export async function verifyBlock (cid: CID, bytes: Uint8Array): Promise<void> {
  if (cid.multihash.code === identity.code) {
    if (!equalBytes(cid.multihash.digest, bytes)) throw new ContentMismatchError(cid.toString())
    return
  }
  const hasher = HASHERS.get(cid.multihash.code)
  if (hasher === undefined) throw new InvalidCidError(cid.toString(), { cause: new Error(`multihash 0x${cid.multihash.code.toString(16)} is not supported (sha2-256, sha2-512, identity)`) })
  const digest = await hasher.digest(bytes)
  if (!equalBytes(digest.digest, cid.multihash.digest)) throw new ContentMismatchError(cid.toString())
}

export function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false
  return true
}

export function concatBytes (chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1 && chunks[0] !== undefined) return chunks[0]
  let length = 0
  for (const c of chunks) length += c.byteLength
  const out = new Uint8Array(length)
  let at = 0
  for (const c of chunks) { out.set(c, at); at += c.byteLength }
  return out
}

/** A whole block from a store's streamed `get`. */
export async function readBlock (store: Pick<Blockstore, 'get'>, cid: CID, options?: { signal?: AbortSignal }): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  for await (const chunk of store.get(cid, options)) chunks.push(chunk)
  return concatBytes(chunks)
}

/** Every read is hashed and compared with its CID; everything else is the wrapped store's. */
export class VerifyingBlockstore implements Blockstore {
  readonly #inner: Blockstore

  constructor (inner: Blockstore) {
    this.#inner = inner
  }

  /** the wrapped store (reads from it are not checked) */
  get inner (): Blockstore {
    return this.#inner
  }

  async * get (cid: CID, options?: Parameters<Blockstore['get']>[1]): AsyncGenerator<Uint8Array> {
    const bytes = await readBlock(this.#inner, cid, options)
    await verifyBlock(cid, bytes)
    yield bytes
  }

  async * getMany (source: Parameters<Blockstore['getMany']>[0], options?: Parameters<Blockstore['getMany']>[1]): AsyncGenerator<{ cid: CID, bytes: AsyncGenerator<Uint8Array> }> {
    for await (const cid of source) yield { cid, bytes: this.get(cid, options) }
  }

  async * getAll (options?: Parameters<Blockstore['getAll']>[0]): AsyncGenerator<{ cid: CID, bytes: AsyncGenerator<Uint8Array> }> {
    for await (const { cid } of this.#inner.getAll(options)) yield { cid, bytes: this.get(cid, options) }
  }

  async has (cid: CID, options?: Parameters<Blockstore['has']>[1]): Promise<boolean> {
    return await this.#inner.has(cid, options)
  }

  async put (cid: CID, bytes: Parameters<Blockstore['put']>[1], options?: Parameters<Blockstore['put']>[2]): Promise<CID> {
    return await this.#inner.put(cid, bytes, options)
  }

  putMany (source: Parameters<Blockstore['putMany']>[0], options?: Parameters<Blockstore['putMany']>[1]): ReturnType<Blockstore['putMany']> {
    return this.#inner.putMany(source, options)
  }

  async delete (cid: CID, options?: Parameters<Blockstore['delete']>[1]): Promise<void> {
    await this.#inner.delete(cid, options)
  }

  deleteMany (source: Parameters<Blockstore['deleteMany']>[0], options?: Parameters<Blockstore['deleteMany']>[1]): ReturnType<Blockstore['deleteMany']> {
    return this.#inner.deleteMany(source, options)
  }
}
