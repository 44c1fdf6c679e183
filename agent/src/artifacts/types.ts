// TEMPORARY: the store helper's types.ts replaces this file at merge (the design's interface)
import { FlexnodeError } from '../errors.ts'
export interface ImportOptions { cidVersion?: 0 | 1, rawLeaves?: boolean, chunker?: string }
export type ArtifactProgress =
  | { phase: 'add', bytes: number }
  | { phase: 'get' | 'pin', bytes: number, blocks: number, total?: number }
export interface ProgressOptions { signal?: AbortSignal, onProgress?: (p: ArtifactProgress) => void }
export interface AddOptions extends ImportOptions, ProgressOptions { pin?: boolean }
export interface AddResult { cid: string, size: number, sha256: string }
export interface FetchOptions extends ProgressOptions { providers?: string[], timeoutMs?: number }
export interface GetOptions extends FetchOptions { offset?: number, length?: number }
export interface StatResult { cid: string, size: number, local: boolean, type: 'file' | 'raw' | 'directory' }
export interface ArtifactStore {
  readonly kind: 'helia' | 'kubo'
  add: (content: Uint8Array | AsyncIterable<Uint8Array>, options?: AddOptions) => Promise<AddResult>
  get: (cid: string, options?: GetOptions) => AsyncIterable<Uint8Array>
  stat: (cid: string, options?: FetchOptions) => Promise<StatResult>
  pin: (cid: string, options?: FetchOptions) => Promise<void>
  unpin: (cid: string, options?: { signal?: AbortSignal }) => Promise<void>
  pins: (options?: { signal?: AbortSignal }) => Promise<string[]>
  has: (cid: string) => Promise<boolean>
}
export class InvalidCidError extends FlexnodeError { static override readonly name = 'InvalidCidError' }
export class ContentNotFoundError extends FlexnodeError { static override readonly name = 'ContentNotFoundError' }
export class ContentMismatchError extends FlexnodeError { static override readonly name = 'ContentMismatchError' }
/** Fetched bytes do not match the artifact's record (size or sha256): nothing is kept. */
export class ArtifactIntegrityError extends FlexnodeError {
  static override readonly name = 'ArtifactIntegrityError'
  readonly cid: string
  constructor (message: string, options: { cid: string }) {
    super(message)
    this.cid = options.cid
  }
}
/** No ArtifactRecord names this CID (its bytes may still be on IPFS: pin or get it by CID). */
export class ArtifactNotRecordedError extends FlexnodeError {
  static override readonly name = 'ArtifactNotRecordedError'
  readonly cid: string
  constructor (cid: string) {
    super(`no artifact record for ${cid}: publish it first (POST /v1/artifacts, flexnode pin, flexnode models publish)`)
    this.cid = cid
  }
}
