/**
 * The compliance suite of `ArtifactStore`: what every implementation (`HeliaStore`, `KuboStore`)
 * must do, run by each implementation's spec on a fresh store per test.
 *
 * ```ts
 * artifactStoreCompliance('HeliaStore', async () => {
 *   const store = heliaStore({ dir })({ libp2p: mesh.libp2p, logger })
 *   await store.start()
 *   return { store, online: true, cleanup: async () => { await store.stop() } }
 * })
 * ```
 */
import { randomBytes, createHash } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import type { ArtifactProgress, ArtifactStore } from '../types.ts'

export interface ArtifactStoreSetup {
  store: ArtifactStore
  /** the store asks peers for what it lacks (a fetch of unknown content waits for its deadline) */
  online: boolean
  /** overwrites the block of `cid` in the store's own storage with other bytes (tests verification); none: not tested */
  corruptBlock?: (cid: string) => Promise<void>
  cleanup: () => Promise<void>
}

/** The error's `name` and `field` when it has one (`InvalidImportOptionsError:chunker`), or `resolved`. */
export async function failure (p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'resolved'
  } catch (err: unknown) {
    const e = err as { name?: string, field?: string }
    return e.field !== undefined ? `${String(e.name)}:${e.field}` : String(e.name)
  }
}

export async function collect (source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const chunk of source) chunks.push(chunk)
  return Buffer.concat(chunks)
}

/** Deterministic pseudo-random bytes (no two leaves alike). */
export function bytesOf (size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size)
  let x = seed >>> 0 || 1
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

async function * pieces (bytes: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  let at = 0
  for (let i = 0; at < bytes.byteLength; i++) {
    const n = sizes[i % sizes.length] ?? 1
    yield bytes.subarray(at, at + n)
    at += n
  }
}

/** A CID of content nobody has. */
async function unknownCid (): Promise<string> {
  return CID.createV0(await sha256.digest(randomBytes(64))).toString()
}

export function artifactStoreCompliance (name: string, make: () => Promise<ArtifactStoreSetup>): void {
  describe(`ArtifactStore compliance: ${name}`, () => {
    let setup: ArtifactStoreSetup
    let store: ArtifactStore
    // 1 MiB + a bit: five 256 KiB leaves with the default chunker
    const big = bytesOf(4 * 262_144 + 1234, 7)

    beforeEach(async () => {
      setup = await make()
      store = setup.store
    })

    afterEach(async () => {
      await setup.cleanup()
    })

    describe('add and get', () => {
      it('round-trips a multi-chunk file with Kubo defaults (CIDv0), its size and sha256', async () => {
        const added = await store.add(big)
        expect(added.cid).toMatch(/^Qm/)
        expect(added.size).toBe(big.byteLength)
        expect(added.sha256).toBe(createHash('sha256').update(big).digest('hex'))
        expect((await collect(store.get(added.cid))).equals(big)).toBe(true)
      })

      it('gives the same CID for the same bytes however they are streamed in, and another for other options', async () => {
        const whole = await store.add(big, { pin: false })
        const streamed = await store.add(pieces(big, [1, 1000, 70_000, 3]), { pin: false })
        expect(streamed).toEqual(whole)
        const v1 = await store.add(big, { cidVersion: 1, pin: false })
        expect(v1.cid).toMatch(/^bafy/)
        const small = await store.add(big, { chunker: 'size-65536', pin: false })
        expect(new Set([whole.cid, v1.cid, small.cid]).size).toBe(3)
        expect((await collect(store.get(small.cid))).equals(big)).toBe(true)
        expect((await collect(store.get(v1.cid))).equals(big)).toBe(true)
      })

      it('adds an empty file and a one-block raw file', async () => {
        const empty = await store.add(new Uint8Array(0))
        expect(empty).toEqual({ cid: 'QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH', size: 0, sha256: createHash('sha256').digest('hex') })
        expect((await collect(store.get(empty.cid))).byteLength).toBe(0)
        const hello = Buffer.from('hello world\n')
        const rawAdded = await store.add(hello, { cidVersion: 1 })
        expect(rawAdded.cid).toBe(CID.createV1(raw.code, await sha256.digest(hello)).toString())
        expect((await collect(store.get(rawAdded.cid))).equals(hello)).toBe(true)
      })

      it('gets a range: across leaf boundaries, to the end, past the end', async () => {
        const { cid } = await store.add(big)
        const at = 262_144 - 10
        expect((await collect(store.get(cid, { offset: at, length: 262_144 + 20 }))).equals(big.subarray(at, at + 262_144 + 20))).toBe(true)
        expect((await collect(store.get(cid, { offset: big.byteLength - 5 }))).equals(big.subarray(big.byteLength - 5))).toBe(true)
        expect((await collect(store.get(cid, { length: 3 }))).equals(big.subarray(0, 3))).toBe(true)
        expect((await collect(store.get(cid, { offset: big.byteLength + 10 }))).byteLength).toBe(0)
        expect((await collect(store.get(cid, { offset: 5, length: 0 }))).byteLength).toBe(0)
      })

      it('refuses a bad range', async () => {
        const { cid } = await store.add(Buffer.from('abc'))
        expect(await failure(collect(store.get(cid, { offset: -1 })))).toBe('InvalidInputError:offset')
        expect(await failure(collect(store.get(cid, { length: 1.5 })))).toBe('InvalidInputError:length')
      })
    })

    describe('stat, has, pins', () => {
      it('stats a file and a raw block', async () => {
        const { cid } = await store.add(big)
        expect(await store.stat(cid)).toEqual({ cid, size: big.byteLength, local: true, type: 'file' })
        const r = await store.add(Buffer.from('x'), { cidVersion: 1 })
        expect(await store.stat(r.cid)).toEqual({ cid: r.cid, size: 1, local: true, type: 'raw' })
      })

      it('has what it added, not what it never saw', async () => {
        const { cid } = await store.add(big, { cidVersion: 1 })
        expect(await store.has(cid)).toBe(true)
        expect(await store.has(await unknownCid())).toBe(false)
      })

      it('pins on add unless told not to; pin, unpin and pins', async () => {
        const pinned = await store.add(Buffer.from('pinned'))
        const loose = await store.add(Buffer.from('loose'), { pin: false, cidVersion: 1 })
        expect(await store.pins()).toContain(pinned.cid)
        expect(await store.pins()).not.toContain(loose.cid)
        await store.pin(loose.cid)
        await store.pin(loose.cid) // idempotent
        expect(await store.pins()).toEqual(expect.arrayContaining([pinned.cid, loose.cid]))
        await store.unpin(pinned.cid)
        await store.unpin(pinned.cid) // nothing to do
        expect(await store.pins()).not.toContain(pinned.cid)
        expect(await store.pins()).toContain(loose.cid)
      })
    })

    describe('garbage collection', () => {
      it('deletes what no pin holds, keeps what one does', async () => {
        const kept = await store.add(bytesOf(300_000, 21))
        const loose = await store.add(bytesOf(300_000, 22), { pin: false, cidVersion: 1 })
        const unpinned = await store.add(bytesOf(1000, 23))
        await store.unpin(unpinned.cid)
        await store.gc()
        expect(await store.has(kept.cid)).toBe(true)
        expect(await store.has(loose.cid)).toBe(false)
        expect(await store.has(unpinned.cid)).toBe(false)
        expect((await collect(store.get(kept.cid))).equals(bytesOf(300_000, 21))).toBe(true)
      })
    })

    describe('progress and abort', () => {
      it('reports add, get and pin progress', async () => {
        const adds: ArtifactProgress[] = []
        const { cid } = await store.add(pieces(big, [100_000]), { onProgress: p => adds.push(p), pin: false })
        expect(adds.length).toBeGreaterThan(1)
        expect(adds.at(-1)).toEqual({ phase: 'add', bytes: big.byteLength })
        const gets: ArtifactProgress[] = []
        await collect(store.get(cid, { onProgress: p => gets.push(p) }))
        const last = gets.at(-1)
        expect(last).toMatchObject({ phase: 'get', bytes: big.byteLength, total: big.byteLength })
        expect(last?.phase === 'get' ? last.blocks : 0).toBeGreaterThanOrEqual(5)
        const pins: ArtifactProgress[] = []
        await store.pin(cid, { onProgress: p => pins.push(p) })
        if (pins.length > 0) expect(pins.at(-1)).toMatchObject({ phase: 'pin', blocks: 6 })
      })

      it('aborts an add and a get', async () => {
        const controller = new AbortController()
        controller.abort()
        expect(await failure(store.add(big, { signal: controller.signal }))).toBe('AbortError')
        const { cid } = await store.add(big)
        const reading = new AbortController()
        let n = 0
        const read = (async () => {
          for await (const _ of store.get(cid, { signal: reading.signal })) {
            if (++n === 1) reading.abort()
          }
        })()
        expect(await failure(read)).toBe('AbortError')
      })
    })

    describe('bad input', () => {
      it('refuses a CID that does not parse, everywhere', async () => {
        for (const bad of ['', 'nope', 'Qm123', ' QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', 'bafy!']) {
          expect(await failure(collect(store.get(bad)))).toBe('InvalidCidError')
          expect(await failure(store.stat(bad))).toBe('InvalidCidError')
          expect(await failure(store.pin(bad))).toBe('InvalidCidError')
          expect(await failure(store.unpin(bad))).toBe('InvalidCidError')
          expect(await failure(store.has(bad))).toBe('InvalidCidError')
        }
      })

      it('refuses bad import options, nothing added', async () => {
        const before = await store.pins()
        expect(await failure(store.add(big, { cidVersion: 2 as 0 }))).toBe('InvalidImportOptionsError:cidVersion')
        expect(await failure(store.add(big, { rawLeaves: 'yes' as unknown as boolean }))).toBe('InvalidImportOptionsError:rawLeaves')
        expect(await failure(store.add(big, { chunker: 'rabin' }))).toBe('InvalidImportOptionsError:chunker')
        expect(await failure(store.add(big, { chunker: 'size-0' }))).toBe('InvalidImportOptionsError:chunker')
        expect(await failure(store.add(big, { chunker: 'size-1048577' }))).toBe('InvalidImportOptionsError:chunker')
        expect(await failure(store.add('text' as unknown as Uint8Array))).toBe('InvalidInputError:content')
        expect(await store.pins()).toEqual(before)
      })

      it('times out on content no peer has (ContentNotFoundError), and such a fetch is abortable', async () => {
        const cid = await unknownCid()
        expect(await failure(store.stat(cid, { timeoutMs: 200 }))).toBe('ContentNotFoundError')
        expect(await failure(collect(store.get(cid, { timeoutMs: 200 })))).toBe('ContentNotFoundError')
        expect(await failure(store.pin(cid, { timeoutMs: 200 }))).toBe('ContentNotFoundError')
        expect(await store.pins()).not.toContain(cid)
        if (!setup.online) return
        const controller = new AbortController()
        const pinning = store.pin(cid, { timeoutMs: 60_000, signal: controller.signal })
        setTimeout(() => { controller.abort() }, 50)
        expect(await failure(pinning)).toBe('AbortError')
        expect(await failure(store.get(cid, { timeoutMs: 0 })[Symbol.asyncIterator]().next())).toBe('InvalidInputError:timeoutMs')
      })

      it('refuses a corrupted block (ContentMismatchError), never hands out its bytes', async (ctx) => {
        if (setup.corruptBlock === undefined) { ctx.skip(); return }
        // a raw single-block file: its CID is its block's
        const one = await store.add(Buffer.from('one block'), { cidVersion: 1 })
        await setup.corruptBlock(one.cid)
        expect(await failure(collect(store.get(one.cid)))).toBe('ContentMismatchError')
        // a leaf of a multi-chunk file
        const { cid } = await store.add(big, { cidVersion: 1 })
        const leaf = CID.createV1(raw.code, await sha256.digest(big.subarray(262_144, 2 * 262_144))).toString()
        await setup.corruptBlock(leaf)
        const read = collect(store.get(cid))
        await expect(read).rejects.toMatchObject({ name: 'ContentMismatchError', cid, block: leaf })
        // the range before the bad leaf is still good
        expect((await collect(store.get(cid, { length: 1000 }))).equals(big.subarray(0, 1000))).toBe(true)
      })
    })
  })
}
