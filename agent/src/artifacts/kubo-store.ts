/**
 * `KuboStore`, the `ArtifactStore` of a Kubo daemon, through its RPC API (`kubo-rpc-client`):
 * for a node whose operator runs Kubo already. Adds use Kubo's own importer with the same
 * options; reads fetch the blocks over Kubo's block API and hash each against its CID here (the
 * same UnixFS reader as `HeliaStore`), so a lying daemon cannot hand out wrong bytes.
 *
 * Kubo lives in its own swarm: the mesh's `providers` hints mean nothing to it and are ignored
 * (Kubo finds providers with its own routing).
 *
 * ```ts
 * const store = kuboStore({ api: 'http://127.0.0.1:5001' })({ logger })
 * await store.start() // ArtifactStoreUnavailableError when the daemon does not answer
 * const { cid } = await store.add(bytes, { cidVersion: 1 })
 * ```
 */
import { unixfs, type UnixFS } from '@helia/unixfs'
import { create, type KuboRPCClient } from 'kubo-rpc-client'
import type { CID } from 'multiformats/cid'
import { AbortError, DisposedError, InvalidInputError, errorMessage } from '../errors.ts'
import type { ComponentLogger } from '../logger.ts'
import { NotStartedError, service, type Service } from '../service.ts'
import { verifyBlock } from './blocks.ts'
import { parseCid } from './cid.ts'
import { countedContent } from './content.ts'
import { DEFAULT_FETCH_TIMEOUT_MS } from './constants.ts'
import { resolveAddOptions } from './import-options.ts'
import { ArtifactStoreUnavailableError, ContentNotFoundError, type AddOptions, type AddResult, type ArtifactStore, type FetchOptions, type GetOptions, type StatResult } from './types.ts'
import { readFile, statFile, type ReadOptions } from './unixfs-read.ts'

export interface KuboStoreInit {
  /** the daemon's RPC API. @default 'http://127.0.0.1:5001' */
  api?: string
  /** a fetch gives up when no block arrived for this long (ms); a call's `timeoutMs` wins. @default 30_000 */
  timeoutMs?: number
}

export interface KuboStoreComponents {
  logger: ComponentLogger
}

export type KuboStore = ArtifactStore & Service & { readonly kind: 'kubo' }

export const DEFAULT_KUBO_API = 'http://127.0.0.1:5001'

/** Network failures of the RPC (the daemon is down or unreachable), as opposed to Kubo's own answers. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT'])

export function kuboStore (init: KuboStoreInit = {}): (components: KuboStoreComponents) => KuboStore {
  const api = init.api ?? DEFAULT_KUBO_API
  let url: URL
  try {
    url = new URL(api)
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http(s)')
  } catch {
    throw new InvalidInputError(`kubo api must be an http(s) URL such as ${DEFAULT_KUBO_API}, got ${JSON.stringify(api)}`, { field: 'api' })
  }
  const defaultTimeoutMs = init.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS
  if (!Number.isSafeInteger(defaultTimeoutMs) || defaultTimeoutMs <= 0) throw new InvalidInputError(`timeoutMs must be a positive integer (ms), got ${JSON.stringify(init.timeoutMs)}`, { field: 'timeoutMs' })

  return (components) => {
    const log = components.logger.forComponent('flexnode:artifacts:kubo')
    let client: KuboRPCClient | undefined
    let fs: UnixFS | undefined
    let stopped = false

    const current = (): { client: KuboRPCClient, fs: UnixFS } => {
      if (stopped) throw new DisposedError('KuboStore')
      if (client === undefined || fs === undefined) throw new NotStartedError('KuboStore')
      return { client, fs }
    }

    /** Kubo unreachable → ArtifactStoreUnavailableError, an abort → AbortError, else as it is. */
    const mapped = (err: unknown, signal?: AbortSignal): unknown => {
      if (signal?.aborted === true) return new AbortError()
      if (isUnreachable(err)) return new ArtifactStoreUnavailableError(api, { cause: err, reason: errorMessage(err) })
      return err
    }

    const readOptions = (options: FetchOptions | GetOptions = {}): ReadOptions => {
      const timeoutMs = options.timeoutMs ?? defaultTimeoutMs
      if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) throw new InvalidInputError(`timeoutMs must be a positive integer (ms), got ${JSON.stringify(timeoutMs)}`, { field: 'timeoutMs' })
      const { providers: _ignored, ...rest } = options
      return { ...rest, timeoutMs }
    }

    const lifecycle = service({
      start: async (options) => {
        const c = create({ url })
        try {
          const { version } = await c.version({ signal: options?.signal })
          log.info({ api, version }, 'artifact store: Kubo daemon reached')
        } catch (err) {
          throw mapped(err, options?.signal)
        }
        client = c
        fs = unixfs({ blockstore: kuboBlocks(c) })
      },
      stop: () => {
        stopped = true
        client = undefined
        fs = undefined
      }
    })

    const has = async (text: string): Promise<boolean> => {
      const cid = parseCid(text)
      const { client } = current()
      try {
        const options = { withLocal: true, offline: true }
        const stat = await client.files.stat(`/ipfs/${cid.toString()}`, options)
        return stat.local === true
      } catch (err) {
        const e = mapped(err)
        if (e instanceof ArtifactStoreUnavailableError) throw e
        return false
      }
    }

    const store: KuboStore = {
      ...lifecycle,
      kind: 'kubo',

      async add (content, options: AddOptions = {}): Promise<AddResult> {
        const { cidVersion, rawLeaves, chunkSize, pin } = resolveAddOptions(options)
        const counted = countedContent(content, options)
        const { client } = current()
        const { signal } = options
        if (signal?.aborted === true) throw new AbortError()
        try {
          const added = await client.add(counted.source, { cidVersion, rawLeaves, chunker: `size-${chunkSize}`, pin, signal })
          return { cid: added.cid.toString(), size: counted.size, sha256: counted.sha256() }
        } catch (err) {
          throw mapped(err, signal)
        }
      },

      async * get (text: string, options: GetOptions = {}): AsyncGenerator<Uint8Array> {
        const cid = parseCid(text)
        const read = readOptions(options)
        try {
          yield * readFile(current().fs, cid, read)
        } catch (err) {
          throw mapped(err, options.signal)
        }
      },

      async stat (text: string, options: FetchOptions = {}): Promise<StatResult> {
        const cid = parseCid(text)
        const read = readOptions(options)
        try {
          const stat = await statFile(current().fs, cid, read)
          return { ...stat, cid: text, local: await has(text) }
        } catch (err) {
          throw mapped(err, options.signal)
        }
      },

      async pin (text: string, options: FetchOptions = {}): Promise<void> {
        const cid = parseCid(text)
        const read = readOptions(options)
        const { client } = current()
        // Kubo fetches and pins in one call; its own `timeout` bounds it (no per-block deadline over the RPC)
        // (and reports no progress: the RPC client does not stream `pin add --progress`)
        try {
          await client.pin.add(cid, { recursive: true, signal: options.signal, timeout: read.timeoutMs })
        } catch (err) {
          const e = mapped(err, options.signal)
          if (e === err && ((err as Error).name === 'TimeoutError' || /deadline exceeded/i.test(errorMessage(err)))) {
            throw new ContentNotFoundError(cid.toString(), read.timeoutMs, { cause: err })
          }
          throw e
        }
      },

      async unpin (text: string, options: { signal?: AbortSignal } = {}): Promise<void> {
        const cid = parseCid(text)
        const { client } = current()
        try {
          await client.pin.rm(cid, { recursive: true, signal: options.signal })
        } catch (err) {
          const e = mapped(err, options.signal)
          // Kubo answers "not pinned or pinned indirectly": nothing to do
          if (e === err && /not pinned/i.test(errorMessage(err))) return
          throw e
        }
      },

      async pins (options: { signal?: AbortSignal } = {}): Promise<string[]> {
        const { client } = current()
        const out: string[] = []
        try {
          for await (const pin of client.pin.ls({ type: 'recursive', signal: options.signal })) out.push(pin.cid.toString())
        } catch (err) {
          throw mapped(err, options.signal)
        }
        return out
      },

      has,

      async gc (options: { signal?: AbortSignal } = {}): Promise<void> {
        const { client } = current()
        try {
          for await (const result of client.repo.gc({ signal: options.signal })) {
            if (result.err != null) throw result.err
          }
        } catch (err) {
          throw mapped(err, options.signal)
        }
      }
    }
    return store
  }
}

/** Kubo's block API as the blockstore `@helia/unixfs` reads: every block is hashed against its CID. */
function kuboBlocks (client: KuboRPCClient): Parameters<typeof unixfs>[0]['blockstore'] {
  return {
    async * get (cid: CID, options?: { signal?: AbortSignal, onProgress?: (evt: { type: string }) => void }): AsyncGenerator<Uint8Array> {
      const bytes = await client.block.get(cid, { signal: options?.signal })
      await verifyBlock(cid, bytes)
      options?.onProgress?.({ type: 'blocks:get:blockstore:put' })
      yield bytes
    },
    async has (cid: CID, options?: { signal?: AbortSignal }): Promise<boolean> {
      try {
        await client.block.stat(cid, { signal: options?.signal, offline: true } as Parameters<KuboRPCClient['block']['stat']>[1])
        return true
      } catch {
        return false
      }
    },
    async put (): Promise<never> {
      throw new InvalidInputError('the Kubo store reads through its block API; it writes only with add', { field: 'blockstore' })
    }
  } as unknown as Parameters<typeof unixfs>[0]['blockstore']
}

function isUnreachable (err: unknown): boolean {
  for (let e: unknown = err, i = 0; e !== null && typeof e === 'object' && i < 6; e = (e as { cause?: unknown }).cause, i++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && UNREACHABLE_CODES.has(code)) return true
    if ((e as Error).message === 'fetch failed') return true
  }
  return false
}
