/**
 * The `artifacts` area's interfaces and typed errors: one content-addressed store of files
 * (models, WASM modules, build outputs, index snapshots), two implementations — `HeliaStore`,
 * embedded on the agent's own libp2p node (`helia-store.ts`), and `KuboStore`, a Kubo daemon's
 * RPC API (`kubo-store.ts`) — and one compliance suite (`test/compliance.ts`).
 *
 * CIDs are strings at this interface (`Qm…` CIDv0, `bafy…`/`bafk…` CIDv1); every one is parsed
 * with `parseCid` (`cid.ts`) first, so a bad one is an `InvalidCidError` before anything else.
 */
import { FlexnodeError } from '../errors.ts'

/** How content is cut into blocks: Kubo's `ipfs add` options, with Kubo's defaults. */
export interface ImportOptions {
  /** the CID version of the result. @default 0 (Kubo's default) */
  cidVersion?: 0 | 1
  /** leaves as `raw` blocks instead of UnixFS dag-pb nodes. @default false for CIDv0, true for CIDv1 (as Kubo) */
  rawLeaves?: boolean
  /** `size-N`: N bytes per leaf (1 ≤ N ≤ 1 MiB). @default 'size-262144' */
  chunker?: string
}

/** Progress of a long operation: bytes (and blocks) so far, and the total when known. */
export type ArtifactProgress =
  | { phase: 'add', bytes: number }
  | { phase: 'get' | 'pin', bytes: number, blocks: number, total?: number }

export interface ProgressOptions {
  /** aborts the operation: it rejects with `AbortError` */
  signal?: AbortSignal
  onProgress?: (progress: ArtifactProgress) => void
}

export interface AddOptions extends ImportOptions, ProgressOptions {
  /** pin the result recursively. @default true */
  pin?: boolean
}

export interface AddResult {
  cid: string
  /** bytes of the file */
  size: number
  /** sha256 of the file's bytes, 64 lowercase hex */
  sha256: string
}

export interface FetchOptions extends ProgressOptions {
  /** peer ids (the mesh's) known to provide the content: dialled and asked first */
  providers?: string[]
  /** give up when no block arrives for this long → `ContentNotFoundError`. @default 30_000 */
  timeoutMs?: number
}

export interface GetOptions extends FetchOptions {
  /** first byte of the file to return. @default 0 */
  offset?: number
  /** bytes to return from `offset`. @default to the end of the file */
  length?: number
}

export interface StatResult {
  cid: string
  /** bytes of the file (0 for a directory) */
  size: number
  /** every block of it is in this store */
  local: boolean
  /** a UnixFS file, a single raw block, or a UnixFS directory */
  type: 'file' | 'raw' | 'directory'
}

/** A content-addressed store of files (compliance suite: `test/compliance.ts`). */
export interface ArtifactStore {
  readonly kind: 'helia' | 'kubo'
  /** imports the content (streamed), pins it unless `pin: false` */
  add: (content: Uint8Array | AsyncIterable<Uint8Array>, options?: AddOptions) => Promise<AddResult>
  /** the file's bytes, streamed and verified: every block is checked against its CID */
  get: (cid: string, options?: GetOptions) => AsyncIterable<Uint8Array>
  stat: (cid: string, options?: FetchOptions) => Promise<StatResult>
  /** fetches every block (from the mesh when missing), then pins recursively. Idempotent. */
  pin: (cid: string, options?: FetchOptions) => Promise<void>
  /** removes the pin (the blocks stay until a garbage collection). Unpinning what is not pinned does nothing. */
  unpin: (cid: string, options?: { signal?: AbortSignal }) => Promise<void>
  /** the recursively pinned CIDs, as they were pinned */
  pins: (options?: { signal?: AbortSignal }) => Promise<string[]>
  /** every block of it is here (asks no peer) */
  has: (cid: string) => Promise<boolean>
  /** deletes every block no pin holds (what was unpinned, or added with `pin: false`) */
  gc: (options?: { signal?: AbortSignal }) => Promise<void>
}

// -----------------------------------------------------------------------------------------------
// typed errors

/** A CID that does not parse (not a CIDv0 nor a multibase CIDv1). (400) */
export class InvalidCidError extends FlexnodeError {
  static override readonly name = 'InvalidCidError'
  readonly cid: string

  constructor (cid: unknown, options?: ErrorOptions) {
    const text = typeof cid === 'string' ? cid : String(cid)
    super(`not a CID: ${JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}…` : text)}`, options)
    this.cid = text
  }
}

/** An import option (`cid_version`, `raw_leaves`, `chunker`) is not valid. (400) */
export class InvalidImportOptionsError extends FlexnodeError {
  static override readonly name = 'InvalidImportOptionsError'
  /** the option at fault: `cidVersion`, `rawLeaves`, `chunker`, `pin` */
  readonly field: string

  constructor (field: string, message: string) {
    super(message)
    this.field = field
  }
}

/** No block of the content arrived for `timeoutMs`: no peer asked had it. (404) */
export class ContentNotFoundError extends FlexnodeError {
  static override readonly name = 'ContentNotFoundError'
  readonly cid: string
  readonly timeoutMs: number

  constructor (cid: string, timeoutMs: number, options?: ErrorOptions) {
    super(`no block of ${cid} arrived within ${timeoutMs} ms: no peer asked has it`, options)
    this.cid = cid
    this.timeoutMs = timeoutMs
  }
}

/** Bytes that do not hash to their CID (a corrupted block on disk, a lying peer). (502) */
export class ContentMismatchError extends FlexnodeError {
  static override readonly name = 'ContentMismatchError'
  /** the content asked for */
  readonly cid: string
  /** the block whose bytes do not match (may be the content's own CID) */
  readonly block?: string

  constructor (cid: string, block?: string) {
    super(block === undefined || block === cid
      ? `the bytes of ${cid} do not hash to its CID`
      : `the bytes of block ${block} (of ${cid}) do not hash to its CID`)
    this.cid = cid
    this.block = block
  }
}

/** The store's backend cannot be reached (a Kubo daemon that is down). (503) */
export class ArtifactStoreUnavailableError extends FlexnodeError {
  static override readonly name = 'ArtifactStoreUnavailableError'
  /** the backend that failed, such as `http://127.0.0.1:5001` */
  readonly api: string

  constructor (api: string, options?: ErrorOptions & { reason?: string }) {
    super(`the artifact store at ${api} cannot be reached${options?.reason !== undefined ? `: ${options.reason}` : ''}`, options)
    this.api = api
  }
}

/** Fetched bytes do not match the artifact's record (size or sha256): nothing is kept. */
export class ArtifactIntegrityError extends FlexnodeError {
  static override readonly name = 'ArtifactIntegrityError'
  readonly cid: string

  constructor (message: string, options: { cid: string }) {
    super(message)
    this.cid = options.cid
  }
}

/** No ArtifactRecord names this CID (its bytes may still be on IPFS: get or pin it by CID). */
export class ArtifactNotRecordedError extends FlexnodeError {
  static override readonly name = 'ArtifactNotRecordedError'
  readonly cid: string

  constructor (cid: string) {
    super(`no artifact record for ${cid}: publish it first (POST /v1/artifacts, flexnode pin, flexnode models publish)`)
    this.cid = cid
  }
}
