import { base36 } from 'multiformats/bases/base36'
import { base58btc } from 'multiformats/bases/base58'
import { describe, expect, it } from 'vitest'
import { parseCid } from '../cid.ts'
import { fixedSizeChunker, parseChunker, parseImportQuery, resolveAddOptions, resolveImportOptions } from '../import-options.ts'

function fieldOf (f: () => unknown): string {
  try {
    f()
    return 'returned'
  } catch (err: unknown) {
    const e = err as { name?: string, field?: string }
    return e.field !== undefined ? `${String(e.name)}:${e.field}` : String(e.name)
  }
}

async function chunksOf (size: number, pieces: number[]): Promise<number[]> {
  async function * source (): AsyncGenerator<Uint8Array> { for (const n of pieces) yield new Uint8Array(n) }
  const out: number[] = []
  for await (const c of fixedSizeChunker(size)(source())) out.push(c.byteLength)
  return out
}

describe('import options', () => {
  it("applies Kubo's defaults: CIDv0 without raw leaves, CIDv1 with them, 256 KiB leaves, pinned", () => {
    expect(resolveImportOptions()).toEqual({ cidVersion: 0, rawLeaves: false, chunkSize: 262_144 })
    expect(resolveImportOptions({ cidVersion: 1 })).toEqual({ cidVersion: 1, rawLeaves: true, chunkSize: 262_144 })
    expect(resolveImportOptions({ cidVersion: 1, rawLeaves: false, chunker: 'size-1048576' })).toEqual({ cidVersion: 1, rawLeaves: false, chunkSize: 1_048_576 })
    expect(resolveAddOptions({})).toMatchObject({ pin: true })
    expect(resolveAddOptions({ pin: false })).toMatchObject({ pin: false })
  })

  it('refuses what Kubo would not take, naming the option', () => {
    expect(fieldOf(() => resolveImportOptions({ cidVersion: 2 as 0 }))).toBe('InvalidImportOptionsError:cidVersion')
    expect(fieldOf(() => resolveImportOptions({ rawLeaves: 1 as unknown as boolean }))).toBe('InvalidImportOptionsError:rawLeaves')
    for (const bad of ['rabin', 'buzhash', 'size-', 'size-0', 'size-1048577', 'size--1', 'size-1.5', ' size-10', 'size-0010x']) {
      expect(fieldOf(() => parseChunker(bad)), bad).toBe('InvalidImportOptionsError:chunker')
    }
    expect(parseChunker('size-1')).toBe(1)
    expect(fieldOf(() => resolveAddOptions({ pin: 'yes' as unknown as boolean }))).toBe('InvalidImportOptionsError:pin')
  })

  it('parses the text forms of an HTTP query or CLI flags', () => {
    expect(parseImportQuery({})).toEqual({})
    expect(parseImportQuery({ cid_version: '1', raw_leaves: 'false', chunker: 'size-65536', pin: '0' })).toEqual({ cidVersion: 1, rawLeaves: false, chunker: 'size-65536', pin: false })
    expect(parseImportQuery({ cid_version: '0', raw_leaves: 'true', pin: 'true', chunker: '' })).toEqual({ cidVersion: 0, rawLeaves: true, pin: true })
    expect(parseImportQuery({ cid_version: null, raw_leaves: null })).toEqual({})
    expect(fieldOf(() => parseImportQuery({ cid_version: '2' }))).toBe('InvalidImportOptionsError:cidVersion')
    expect(fieldOf(() => parseImportQuery({ raw_leaves: 'yes' }))).toBe('InvalidImportOptionsError:rawLeaves')
    expect(fieldOf(() => parseImportQuery({ chunker: 'rabin-1-2-3' }))).toBe('InvalidImportOptionsError:chunker')
    expect(fieldOf(() => parseImportQuery({ pin: 'maybe' }))).toBe('InvalidImportOptionsError:pin')
  })

  it('cuts a stream into leaves of exactly N bytes, whatever the pieces, one empty leaf for nothing', async () => {
    expect(await chunksOf(4, [1, 2, 3, 4, 5])).toEqual([4, 4, 4, 3])
    expect(await chunksOf(4, [8])).toEqual([4, 4])
    expect(await chunksOf(4, [])).toEqual([0])
    expect(await chunksOf(4, [0, 0])).toEqual([0])
  })
})

describe('parseCid', () => {
  it('parses CIDv0 and CIDv1 in base32, base58btc and base36', () => {
    const v0 = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
    const cid = parseCid(v0)
    expect(cid.version).toBe(0)
    const v1 = cid.toV1()
    expect(parseCid(v1.toString()).equals(v1)).toBe(true)
    expect(parseCid(v1.toString(base58btc)).equals(v1)).toBe(true)
    expect(parseCid(v1.toString(base36)).equals(v1)).toBe(true)
  })

  it('refuses anything else with InvalidCidError (the text kept)', () => {
    for (const bad of ['', ' ', 'Qm', 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o ', 'bafyXYZ', 'hello', 'x'.repeat(300), 42 as unknown as string, undefined as unknown as string]) {
      expect(() => parseCid(bad)).toThrow(expect.objectContaining({ name: 'InvalidCidError' }))
    }
    expect(() => parseCid('nope')).toThrow(expect.objectContaining({ cid: 'nope' }))
  })
})
