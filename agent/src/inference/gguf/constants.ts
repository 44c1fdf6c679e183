/**
 * Constants of the GGUF reader and writer: format numbers from gguf-py `constants.py` and ggml
 * (`ggml.h`, `gguf.cpp`), the reader's limits and tokenizer token types (the model presets: `presets.ts`).
 */

export interface AbortOptions { signal?: AbortSignal }

/** "GGUF" read as a little-endian u32 */
export const GGUF_MAGIC = 0x46554747
export const GGUF_VERSION = 3
/** versions the reader accepts (v1 had 32-bit counts; llama.cpp refuses it too) */
export const GGUF_READABLE_VERSIONS: readonly number[] = [2, 3]
export const GGUF_ALIGNMENT = 32
/** `GGML_MAX_DIMS` */
export const GGML_MAX_DIMS = 4
/** `GGML_MAX_NAME`: a tensor name is shorter than this (it is stored with its NUL) */
export const GGML_MAX_NAME = 64

/**
 * `ggml_type_size` and `ggml_blck_size` of every ggml type id llama.cpp reads, as node-llama-cpp
 * 3.21's binary reports them (a test checks this table against the binary); ids missing here were
 * removed from ggml, and llama.cpp refuses them as well.
 */
export const GGML_TYPES: ReadonlyMap<number, { name: string, typeSize: number, blockSize: number }> = new Map([
  [0, { name: 'F32', typeSize: 4, blockSize: 1 }],
  [1, { name: 'F16', typeSize: 2, blockSize: 1 }],
  [2, { name: 'Q4_0', typeSize: 18, blockSize: 32 }],
  [3, { name: 'Q4_1', typeSize: 20, blockSize: 32 }],
  [6, { name: 'Q5_0', typeSize: 22, blockSize: 32 }],
  [7, { name: 'Q5_1', typeSize: 24, blockSize: 32 }],
  [8, { name: 'Q8_0', typeSize: 34, blockSize: 32 }],
  [9, { name: 'Q8_1', typeSize: 36, blockSize: 32 }],
  [10, { name: 'Q2_K', typeSize: 84, blockSize: 256 }],
  [11, { name: 'Q3_K', typeSize: 110, blockSize: 256 }],
  [12, { name: 'Q4_K', typeSize: 144, blockSize: 256 }],
  [13, { name: 'Q5_K', typeSize: 176, blockSize: 256 }],
  [14, { name: 'Q6_K', typeSize: 210, blockSize: 256 }],
  [15, { name: 'Q8_K', typeSize: 292, blockSize: 256 }],
  [16, { name: 'IQ2_XXS', typeSize: 66, blockSize: 256 }],
  [17, { name: 'IQ2_XS', typeSize: 74, blockSize: 256 }],
  [18, { name: 'IQ3_XXS', typeSize: 98, blockSize: 256 }],
  [19, { name: 'IQ1_S', typeSize: 50, blockSize: 256 }],
  [20, { name: 'IQ4_NL', typeSize: 18, blockSize: 32 }],
  [21, { name: 'IQ3_S', typeSize: 110, blockSize: 256 }],
  [22, { name: 'IQ2_S', typeSize: 82, blockSize: 256 }],
  [23, { name: 'IQ4_XS', typeSize: 136, blockSize: 256 }],
  [24, { name: 'I8', typeSize: 1, blockSize: 1 }],
  [25, { name: 'I16', typeSize: 2, blockSize: 1 }],
  [26, { name: 'I32', typeSize: 4, blockSize: 1 }],
  [27, { name: 'I64', typeSize: 8, blockSize: 1 }],
  [28, { name: 'F64', typeSize: 8, blockSize: 1 }],
  [29, { name: 'IQ1_M', typeSize: 56, blockSize: 256 }],
  [30, { name: 'BF16', typeSize: 2, blockSize: 1 }],
  [34, { name: 'TQ1_0', typeSize: 54, blockSize: 256 }],
  [35, { name: 'TQ2_0', typeSize: 66, blockSize: 256 }],
  [39, { name: 'MXFP4', typeSize: 17, blockSize: 32 }],
  [40, { name: 'NVFP4', typeSize: 36, blockSize: 64 }],
  [41, { name: 'Q1_0', typeSize: 18, blockSize: 128 }],
  [42, { name: 'Q2_0', typeSize: 18, blockSize: 64 }]
])

/**
 * Limits of the structural reader. Real models stay far below them (a 256k-token vocabulary with
 * its merges is ~20 MiB of metadata; the largest MoE models have a few thousand tensors); every
 * count is also bounded by the bytes left in the file.
 */
export const GGUF_LIMITS = Object.freeze({
  /** metadata key/value pairs */
  maxKv: 1 << 20,
  /** tensors */
  maxTensors: 1 << 20,
  /** bytes of a key */
  maxKeyBytes: 1 << 16,
  /** bytes of a string value (chat templates are the longest, some 10 KiB) */
  maxStringBytes: 16 << 20,
  /** elements of an array value */
  maxArrayLength: 1 << 26,
  /** bytes before the tensor data: header, metadata and tensor infos */
  maxHeaderBytes: 256 << 20
})

/** How long the metadata of one file may take to check, off the main thread, before it is refused. */
export const GGUF_INSPECT_DEADLINE_MS = 30_000
/** Heap of the worker that checks a file (the reader streams; it keeps only scalars). */
export const GGUF_INSPECT_HEAP_MB = 64
/** Bytes the reader reads from the file at a time. */
export const GGUF_READ_CHUNK_BYTES = 1 << 16

/** Metadata key our generator writes into the demo model, and only into it. */
export const DEMO_METADATA_KEY = 'flexnode.demo'
/** `GGMLQuantizationType.F32` */
export const GGML_TYPE_F32 = 0
/** `LlamaFileType.ALL_F32` */
export const LLAMA_FILE_TYPE_ALL_F32 = 0
/** float32 elements generated and written per chunk (4 MiB) */
export const WRITE_CHUNK_ELEMENTS = 1 << 20

/** `TokenType` of gguf-py / `llama_token_type` of llama.cpp */
export const TokenType = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const

/** SentencePiece word-boundary marker (U+2581) */
export const SPM_SPACE = '\u2581'

export const RMS_NORM_EPS = 1e-5
export const ROPE_FREQ_BASE = 10_000

/** ChatML, as Qwen and many fine-tunes ship it; node-llama-cpp maps it to its ChatML wrapper. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

/** bump when the bytes written for a given spec change, so cached fixtures are regenerated */
export const WRITER_VERSION = 1
