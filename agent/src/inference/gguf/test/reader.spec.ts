/**
 * The bounded GGUF structural reader and its off-thread inspector, on generated models and on
 * hand-made headers that break one rule each.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { getLlama } from 'node-llama-cpp'
import { ensureDemoModel, ensureModel } from '../../../../../fixtures/gguf/index.ts'
import { DAMAGED_MODELS, writeDamagedModels } from '../../../../../fixtures/gguf/damaged.ts'
import { tempDir, type TempDir } from '../../../../../fixtures/index.ts'
import { GGML_TYPES, GGUF_MAGIC } from '../constants.ts'
import { GgufInspector } from '../inspect.ts'
import { readGgufStructure } from '../reader.ts'

/** Little-endian GGUF bytes, written by hand. */
class Bytes {
  private parts: Buffer[] = []
  u32 (v: number): this { const b = Buffer.alloc(4); b.writeUInt32LE(v); this.parts.push(b); return this }
  u64 (v: bigint | number): this { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.parts.push(b); return this }
  str (s: string): this { const b = Buffer.from(s); this.u64(b.length); this.parts.push(b); return this }
  raw (b: Buffer): this { this.parts.push(b); return this }
  header (tensors: number, kvs: number, version = 3): this { return this.u32(GGUF_MAGIC).u32(version).u64(tensors).u64(kvs) }
  /** a u32 key/value */
  kvU32 (key: string, v: number): this { return this.str(key).u32(4).u32(v) }
  /** a tensor info */
  tensor (name: string, dims: number[], type: number, offset: bigint | number): this {
    this.str(name).u32(dims.length)
    for (const d of dims) this.u64(d)
    return this.u32(type).u64(offset)
  }

  padTo (alignment: number): this {
    const n = this.length % alignment
    if (n !== 0) this.parts.push(Buffer.alloc(alignment - n))
    return this
  }

  get length (): number { return this.parts.reduce((n, b) => n + b.length, 0) }
  done (): Buffer { return Buffer.concat(this.parts) }
}

describe('GGUF structural reader', () => {
  let dir: TempDir
  let tiny: string
  let n = 0
  const write = async (bytes: Buffer): Promise<string> => {
    const path = join(dir.path, `case-${n++}.gguf`)
    await writeFile(path, bytes)
    return path
  }
  const defectOf = async (bytes: Buffer): Promise<string> => {
    try {
      await readGgufStructure(await write(bytes))
    } catch (err: unknown) {
      expect((err as Error).name).toBe('InvalidGgufError')
      return (err as { defect: string }).defect
    }
    return 'accepted'
  }

  beforeAll(async () => {
    dir = await tempDir('flexnode-gguf-reader-')
    tiny = await ensureModel(dir.path, 'tiny', 1)
  })
  afterAll(async () => { await dir?.[Symbol.asyncDispose]() })

  it('reads a generated model: scalar metadata, and tensor ranges that end at the end of the file', async () => {
    const s = await readGgufStructure(tiny)
    expect(s.version).toBe(3)
    expect(s.alignment).toBe(32)
    expect(s.metadata['general.architecture']).toBe('llama')
    expect(s.metadata['llama.context_length']).toBe(2048)
    expect(s.metadata['llama.embedding_length']).toBe(64)
    expect(s.metadata['flexnode.demo']).toBeUndefined()
    // arrays (the vocabulary) are skipped, not kept
    expect(s.metadata['tokenizer.ggml.tokens']).toBeUndefined()
    expect(s.tensors.map(t => t.name)).toContain('output.weight')
    expect(s.tensors.every(t => t.type === 'F32' && t.start % 32 === 0 && t.start >= s.dataOffset)).toBe(true)
    expect(s.tensors.at(-1)!.end).toBe((await stat(tiny)).size)
    const demo = await readGgufStructure(await ensureDemoModel(dir.path))
    expect(demo.metadata['flexnode.demo']).toBe(true)
  })

  it('refuses each damaged file with the defect it has', async () => {
    const files = await writeDamagedModels(dir.path, tiny)
    const defects: Record<string, string> = {}
    for (const id of DAMAGED_MODELS) {
      await readGgufStructure(files[id]).then(() => { defects[id] = 'accepted' }, (err: { name: string, defect: string, file: string, message: string }) => {
        expect(err.name).toBe('InvalidGgufError')
        expect(err.file).toBe(`${id}.gguf`)
        expect(err.message).not.toContain(dir.path)
        defects[id] = err.defect
      })
    }
    expect(defects).toEqual({
      'cut-1-byte': 'bounds', 'cut-4-kib': 'bounds', 'kv-count-2p63': 'count', 'huge-string': 'string', 'tensor-past-eof': 'bounds', 'not-gguf': 'magic', empty: 'magic'
    })
  })

  it('bounds every header field', async () => {
    const ok = new Bytes().header(1, 1).kvU32('general.alignment', 32).tensor('t', [32], 0, 0).padTo(32).raw(Buffer.alloc(128)).done()
    expect(await defectOf(ok)).toBe('accepted')
    expect(await defectOf(new Bytes().header(0, 0, 1).done())).toBe('version')
    // a big-endian file reads its version byte-swapped
    expect(await defectOf(new Bytes().u32(GGUF_MAGIC).raw(Buffer.from([0, 0, 0, 3])).u64(0).u64(0).done())).toBe('version')
    // more tensors than the file can describe
    expect(await defectOf(new Bytes().header(1000, 0).raw(Buffer.alloc(64)).done())).toBe('count')
    // an array claiming 2^40 items
    expect(await defectOf(new Bytes().header(0, 1).str('a').u32(9).u32(4).u64(2n ** 40n).done())).toBe('array')
    // an array of arrays
    expect(await defectOf(new Bytes().header(0, 1).str('a').u32(9).u32(9).u64(1).raw(Buffer.alloc(32)).done())).toBe('array')
    // a string value longer than the file
    expect(await defectOf(new Bytes().header(0, 1).str('a').u32(8).u64(1000).raw(Buffer.alloc(16)).done())).toBe('string')
    expect(await defectOf(new Bytes().header(0, 1).str('a').u32(77).u32(0).done())).toBe('value-type')
    expect(await defectOf(new Bytes().header(0, 2).kvU32('a', 1).kvU32('a', 2).done())).toBe('duplicate')
    expect(await defectOf(new Bytes().header(0, 1).kvU32('general.alignment', 24).done())).toBe('alignment')
    expect(await defectOf(new Bytes().header(0, 1).str('general.alignment').u32(8).str('32').done())).toBe('alignment')
    // tensors: too many dims, an unknown (removed) type, rows not a multiple of the block, a gap, a long name
    const tensor = (dims: number[], type: number, offset = 0, name = 't'): Buffer => new Bytes().header(1, 0).tensor(name, dims, type, offset).padTo(32).raw(Buffer.alloc(4096)).done()
    expect(await defectOf(tensor([1, 1, 1, 1, 1], 0))).toBe('tensor')
    expect(await defectOf(tensor([32], 4))).toBe('tensor')
    expect(await defectOf(tensor([33], 2))).toBe('tensor')
    expect(await defectOf(tensor([32], 2))).toBe('accepted')
    expect(await defectOf(tensor([32], 0, 32))).toBe('tensor')
    expect(await defectOf(tensor([32], 0, 0, 'x'.repeat(64)))).toBe('string')
    expect(await defectOf(tensor([2 ** 31, 2 ** 31, 2 ** 31], 0))).toBe('tensor')
    expect(await defectOf(tensor([1024, 1024], 0))).toBe('bounds')
  })

  it("sizes every ggml type as node-llama-cpp's llama.cpp binary does", async () => {
    const llama = await getLlama({ gpu: false, build: 'never' })
    try {
      // test-only use of the binary's own type table, to catch a drift when node-llama-cpp updates
      const bindings = (llama as unknown as { _bindings: { getTypeSizeForGgmlType: (t: number) => number | undefined, getBlockSizeForGgmlType: (t: number) => number | undefined } })._bindings
      for (let id = 0; id < 64; id++) {
        const size = bindings.getTypeSizeForGgmlType(id)
        const ours = GGML_TYPES.get(id)
        if (size === undefined || size === 0) expect(ours, `type ${id}`).toBeUndefined()
        else expect(ours && { typeSize: ours.typeSize, blockSize: ours.blockSize }, `type ${id}`).toEqual({ typeSize: size, blockSize: bindings.getBlockSizeForGgmlType(id) })
      }
    } finally {
      await llama.dispose()
    }
  })
})

describe('GGUF inspector (off the main thread, with a deadline)', () => {
  let dir: TempDir
  let tiny: string
  beforeAll(async () => {
    dir = await tempDir('flexnode-gguf-inspect-')
    tiny = await ensureModel(dir.path, 'tiny', 1)
  })
  afterAll(async () => { await dir?.[Symbol.asyncDispose]() })

  it('checks files in a worker and refuses a file past its deadline', async () => {
    const files = await writeDamagedModels(dir.path, tiny)
    const inspector = new GgufInspector()
    try {
      expect((await inspector.inspect(tiny)).metadata['general.architecture']).toBe('llama')
      await expect(inspector.inspect(files['kv-count-2p63'])).rejects.toMatchObject({ name: 'InvalidGgufError', defect: 'count' })
      await expect(inspector.inspect(join(dir.path, 'absent.gguf'))).rejects.toMatchObject({ name: 'InvalidGgufError', defect: 'io' })
    } finally {
      await inspector.dispose()
    }
    await expect(inspector.inspect(tiny)).rejects.toMatchObject({ name: 'DisposedError' })

    // no check can finish within 1 ms (a worker does not even start that fast): the deadline refuses it
    const hasty = new GgufInspector({ deadlineMs: 1 })
    try {
      await expect(hasty.inspect(tiny)).rejects.toMatchObject({ name: 'InvalidGgufError', defect: 'deadline', file: tiny.split('/').pop() })
    } finally {
      await hasty.dispose()
    }
  })
})
