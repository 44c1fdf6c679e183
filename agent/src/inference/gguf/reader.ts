/**
 * A bounded structural reader of GGUF v2/v3 files: it walks the header, every metadata key/value
 * and every tensor info through small file-handle reads (never the whole file in memory), bounds
 * every count and length by `GGUF_LIMITS` and by the bytes left in the file, and computes each
 * tensor's byte range from its ggml type and dimensions. A file it accepts passes the checks
 * ggml's `gguf.cpp` and llama.cpp's model loader make before they touch tensor data (counts,
 * string lengths, value types, alignment, tensor names, dims, types, contiguous offsets, and
 * "tensor data is not within the file bounds"); a file it refuses is an `InvalidGgufError` naming
 * the defect. It keeps the scalar metadata (architecture, context length, …) and skips arrays.
 *
 * The engine runs it in a worker thread with a deadline (`inspect.ts`); it is plain JS with no
 * native code, so it can run anywhere.
 *
 * ```ts
 * const info = await readGgufStructure('/models/qwen3-4b.gguf')
 * info.metadata['general.architecture']  // 'qwen3'
 * info.tensors.at(-1)                     // { name: 'output.weight', type: 'Q6_K', start, end }
 * ```
 */
import { open, type FileHandle } from 'node:fs/promises'
import { basename } from 'node:path'
import { GGML_MAX_DIMS, GGML_MAX_NAME, GGML_TYPES, GGUF_ALIGNMENT, GGUF_LIMITS, GGUF_MAGIC, GGUF_READ_CHUNK_BYTES, GGUF_READABLE_VERSIONS } from './constants.ts'
import { InvalidGgufError, type GgufDefect } from './errors.ts'

export type GgufScalarValue = number | bigint | boolean | string

export interface GgufTensorRange {
  name: string
  /** ggml type name (`F32`, `Q4_K`, …) */
  type: string
  /** ggml `ne`, innermost first */
  dims: number[]
  /** absolute byte range of the tensor's data in the file: [start, end) */
  start: number
  end: number
}

export interface GgufStructure {
  version: number
  fileSize: number
  alignment: number
  /** absolute offset of the tensor data section */
  dataOffset: number
  /** scalar metadata values (arrays are skipped; strings longer than `maxKeptStringBytes` too) */
  metadata: Record<string, GgufScalarValue>
  /** how many metadata entries the file has, arrays included */
  kvCount: number
  tensors: GgufTensorRange[]
}

export interface GgufReadOptions {
  /** @default GGUF_LIMITS */
  limits?: Partial<typeof GGUF_LIMITS>
  /** longest string value kept in `metadata`. @default 4096 */
  maxKeptStringBytes?: number
}

const INT64_MAX = (1n << 63n) - 1n
/** GGUF value types (`gguf_type`) and the size of a fixed-size value; string = 8, array = 9 */
const FIXED_SIZES: ReadonlyMap<number, number> = new Map([[0, 1], [1, 1], [2, 2], [3, 2], [4, 4], [5, 4], [6, 4], [7, 1], [10, 8], [11, 8], [12, 8]])
const TYPE_STRING = 8
const TYPE_ARRAY = 9
const TYPE_U32 = 4
/** smallest encoding of one key/value: key length (8), a 0-byte key, type (4), a 1-byte value */
const MIN_KV_BYTES = 13
/** smallest encoding of one tensor info: name length (8), n_dims (4), type (4), offset (8) */
const MIN_TENSOR_INFO_BYTES = 24

const pad = (n: bigint, alignment: bigint): bigint => ((n + alignment - 1n) / alignment) * alignment

/** Sequential little-endian reads through a small window of the file. */
class Cursor {
  pos = 0
  private buf: Buffer = Buffer.allocUnsafe(GGUF_READ_CHUNK_BYTES)
  private bufStart = 0
  private bufLen = 0
  private readonly fh: FileHandle
  readonly size: number
  private readonly fail: (defect: GgufDefect, message: string) => never
  private readonly maxHeader: number

  constructor (fh: FileHandle, size: number, maxHeader: number, fail: (defect: GgufDefect, message: string) => never) {
    this.fh = fh
    this.size = size
    this.maxHeader = maxHeader
    this.fail = fail
  }

  get left (): number { return this.size - this.pos }

  /** make [pos, pos + n) readable from the window */
  private async fill (n: number, what: string): Promise<number> {
    if (this.pos + n > this.size) this.fail('truncated', `the file ends inside ${what} (at byte ${this.pos} of ${this.size})`)
    if (this.pos + n > this.maxHeader) this.fail('header-size', `the header, metadata and tensor infos exceed ${this.maxHeader} bytes`)
    if (this.pos >= this.bufStart && this.pos + n <= this.bufStart + this.bufLen) return this.pos - this.bufStart
    const len = Math.min(Math.max(n, GGUF_READ_CHUNK_BYTES), this.size - this.pos)
    if (this.buf.length < len) this.buf = Buffer.allocUnsafe(len)
    let got = 0
    while (got < len) {
      const { bytesRead } = await this.fh.read(this.buf, got, len - got, this.pos + got)
      if (bytesRead === 0) this.fail('truncated', `the file ended while it was read (at byte ${this.pos + got})`)
      got += bytesRead
    }
    this.bufStart = this.pos
    this.bufLen = len
    return 0
  }

  async u32 (what: string): Promise<number> {
    const at = await this.fill(4, what)
    this.pos += 4
    return this.buf.readUInt32LE(at)
  }

  async u64 (what: string): Promise<bigint> {
    const at = await this.fill(8, what)
    this.pos += 8
    return this.buf.readBigUInt64LE(at)
  }

  /** a fixed-size scalar of GGUF type `type` */
  async scalar (type: number, what: string): Promise<number | bigint | boolean> {
    const size = FIXED_SIZES.get(type)!
    const at = await this.fill(size, what)
    this.pos += size
    const b = this.buf
    switch (type) {
      case 0: return b.readUInt8(at)
      case 1: return b.readInt8(at)
      case 2: return b.readUInt16LE(at)
      case 3: return b.readInt16LE(at)
      case 4: return b.readUInt32LE(at)
      case 5: return b.readInt32LE(at)
      case 6: return b.readFloatLE(at)
      case 7: return b.readUInt8(at) !== 0
      case 10: return b.readBigUInt64LE(at)
      case 11: return b.readBigInt64LE(at)
      default: return b.readDoubleLE(at)
    }
  }

  /** a string's length, checked against `max` and the bytes left */
  async stringLength (max: number, what: string): Promise<number> {
    const len = await this.u64(`the length of ${what}`)
    if (len > BigInt(max)) this.fail('string', `${what} claims ${len} bytes; at most ${max} are allowed`)
    if (len > BigInt(this.left)) this.fail('string', `${what} claims ${len} bytes but only ${this.left} are left in the file`)
    return Number(len)
  }

  /** a string, decoded when `keep`, else skipped */
  async string (max: number, what: string, keep: boolean): Promise<string | undefined> {
    return await this.stringBody(await this.stringLength(max, what), what, keep)
  }

  /** the `len` bytes of a string whose length was read already */
  async stringBody (len: number, what: string, keep: boolean): Promise<string | undefined> {
    if (!keep) {
      this.skip(len, what)
      return undefined
    }
    const at = await this.fill(len, what)
    this.pos += len
    return this.buf.toString('utf8', at, at + len)
  }

  skip (n: number, what: string): void {
    if (n > this.left) this.fail('truncated', `the file ends inside ${what}`)
    if (this.pos + n > this.maxHeader) this.fail('header-size', `the header, metadata and tensor infos exceed ${this.maxHeader} bytes`)
    this.pos += n
  }
}

/**
 * Check the structure of the GGUF file at `path` and return its scalar metadata and tensor data
 * ranges; throws `InvalidGgufError` (with the file's name, never its path) for any defect.
 */
export async function readGgufStructure (path: string, options: GgufReadOptions = {}): Promise<GgufStructure> {
  const file = basename(path)
  const limits = { ...GGUF_LIMITS, ...options.limits }
  const maxKept = options.maxKeptStringBytes ?? 4096
  const fail = (defect: GgufDefect, message: string): never => { throw new InvalidGgufError(file, defect, message) }
  let fh: FileHandle
  try {
    fh = await open(path, 'r')
  } catch (err: unknown) {
    return fail('io', `cannot be opened (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  try {
    const st = await fh.stat()
    if (!st.isFile()) fail('io', 'is not a regular file')
    const c = new Cursor(fh, st.size, limits.maxHeaderBytes, fail)
    if (st.size < 24) fail('magic', `is ${st.size} bytes, too short for a GGUF header`)
    const magic = await c.u32('the magic')
    if (magic !== GGUF_MAGIC) fail('magic', 'does not start with the GGUF magic')
    const version = await c.u32('the version')
    if (!GGUF_READABLE_VERSIONS.includes(version)) fail('version', `has GGUF version ${version}; versions ${GGUF_READABLE_VERSIONS.join(' and ')} are supported (little-endian)`)
    const tensorCount = await c.u64('the tensor count')
    const kvCount = await c.u64('the metadata count')
    if (kvCount > BigInt(limits.maxKv)) fail('count', `claims ${kvCount} metadata entries; at most ${limits.maxKv} are allowed`)
    if (tensorCount > BigInt(limits.maxTensors)) fail('count', `claims ${tensorCount} tensors; at most ${limits.maxTensors} are allowed`)
    if (kvCount * BigInt(MIN_KV_BYTES) + tensorCount * BigInt(MIN_TENSOR_INFO_BYTES) > BigInt(c.left)) {
      fail('count', `claims ${kvCount} metadata entries and ${tensorCount} tensors, more than its ${st.size} bytes can hold`)
    }

    const metadata: Record<string, GgufScalarValue> = Object.create(null) as Record<string, GgufScalarValue>
    const keys = new Set<string>()
    let alignment = GGUF_ALIGNMENT
    for (let i = 0; i < Number(kvCount); i++) {
      const key = (await c.string(limits.maxKeyBytes, `the key of metadata entry ${i}`, true))!
      if (keys.has(key)) fail('duplicate', `has the metadata key ${JSON.stringify(key)} twice`)
      keys.add(key)
      const type = await c.u32(`the type of ${key}`)
      // gguf.cpp reads it with gguf_get_val_u32, which aborts on any other type
      if (key === 'general.alignment' && type !== TYPE_U32) fail('alignment', 'general.alignment is not a u32')
      if (type === TYPE_ARRAY) {
        const itemType = await c.u32(`the item type of ${key}`)
        if (itemType === TYPE_ARRAY) fail('array', `${key} is an array of arrays`)
        if (itemType !== TYPE_STRING && !FIXED_SIZES.has(itemType)) fail('value-type', `${key} has items of unknown type ${itemType}`)
        const length = await c.u64(`the length of ${key}`)
        if (length > BigInt(limits.maxArrayLength)) fail('array', `${key} claims ${length} items; at most ${limits.maxArrayLength} are allowed`)
        const itemBytes = itemType === TYPE_STRING ? 8 : FIXED_SIZES.get(itemType)!
        if (length * BigInt(itemBytes) > BigInt(c.left)) fail('array', `${key} claims ${length} items, more than the ${c.left} bytes left can hold`)
        if (itemType === TYPE_STRING) {
          for (let j = 0; j < Number(length); j++) await c.string(limits.maxStringBytes, `${key}[${j}]`, false)
        } else {
          c.skip(Number(length) * itemBytes, key)
        }
        continue
      }
      if (type === TYPE_STRING) {
        const len = await c.stringLength(limits.maxStringBytes, `the value of ${key}`)
        const value = await c.stringBody(len, `the value of ${key}`, len <= maxKept)
        if (value !== undefined) metadata[key] = value
        continue
      }
      if (!FIXED_SIZES.has(type)) fail('value-type', `${key} has the unknown value type ${type}`)
      const value = await c.scalar(type, `the value of ${key}`)
      metadata[key] = typeof value === 'bigint' && value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value
      if (key === 'general.alignment') {
        const a = value as number
        if (a === 0 || (a & (a - 1)) !== 0) fail('alignment', `general.alignment ${a} is not a power of two`)
        alignment = a
      }
    }

    const infos: Array<{ name: string, type: string, dims: number[], offset: bigint, bytes: bigint }> = []
    const names = new Set<string>()
    for (let i = 0; i < Number(tensorCount); i++) {
      const name = (await c.string(GGML_MAX_NAME - 1, `the name of tensor ${i}`, true))!
      if (names.has(name)) fail('duplicate', `has the tensor ${JSON.stringify(name)} twice`)
      names.add(name)
      const nDims = await c.u32(`the dimension count of ${name}`)
      if (nDims > GGML_MAX_DIMS) fail('tensor', `tensor ${name} has ${nDims} dimensions; at most ${GGML_MAX_DIMS}`)
      const ne: bigint[] = []
      for (let d = 0; d < nDims; d++) {
        const v = await c.u64(`a dimension of ${name}`)
        if (v > INT64_MAX) fail('tensor', `tensor ${name} has a negative dimension`)
        ne.push(v)
      }
      let elements = 1n
      for (const v of ne) {
        elements *= v
        if (elements > INT64_MAX) fail('tensor', `tensor ${name} has more than 2^63 elements`)
      }
      const typeId = await c.u32(`the type of ${name}`)
      const type = GGML_TYPES.get(typeId)
      if (type === undefined) fail('tensor', `tensor ${name} has the unknown ggml type ${typeId}`)
      const { typeSize, blockSize, name: typeName } = type!
      const rowLength = ne[0] ?? 1n
      if (rowLength % BigInt(blockSize) !== 0n) fail('tensor', `tensor ${name} has rows of ${rowLength} elements, not a multiple of the ${typeName} block size ${blockSize}`)
      // ggml_nbytes of a contiguous tensor
      const bytes = elements / BigInt(blockSize) * BigInt(typeSize)
      const offset = await c.u64(`the offset of ${name}`)
      infos.push({ name, type: typeName, dims: ne.map(Number), offset, bytes })
    }

    const align = BigInt(alignment)
    const dataOffset = pad(BigInt(c.pos), align)
    const size = BigInt(st.size)
    const tensors: GgufTensorRange[] = []
    let expected = 0n
    for (const t of infos) {
      // gguf.cpp: tensors follow each other in order, each padded to the alignment
      if (t.offset !== expected) fail('tensor', `tensor ${t.name} starts at data offset ${t.offset}; ${expected} was expected`)
      const start = dataOffset + t.offset
      const end = start + t.bytes
      // llama.cpp's model loader: "tensor data is not within the file bounds"
      if (end > size) fail('bounds', `tensor ${t.name} needs bytes ${start}..${end} but the file has ${st.size}: it is cut short or corrupt`)
      tensors.push({ name: t.name, type: t.type, dims: t.dims, start: Number(start), end: Number(end) })
      expected += pad(t.bytes, align)
    }
    if (infos.length === 0 && dataOffset > size) fail('bounds', 'the tensor data section starts past the end of the file')
    return { version, fileSize: st.size, alignment, dataOffset: Number(dataOffset), metadata, kvCount: Number(kvCount), tensors }
  } finally {
    await fh.close()
  }
}
