/**
 * `HeliaStore`, the embedded `ArtifactStore`: Helia (light: no libp2p of its own, no routers, no
 * gateways, no bootstrap peers) with a filesystem blockstore and datastore under `dir`, and
 * bitswap over the agent's own libp2p node (the mesh's) as its only block broker — it fetches
 * from connected mesh peers and from the `providers` it is told about, and serves its blocks to
 * them. Without a libp2p node it is offline: a missing block is a `ContentNotFoundError` at once.
 *
 * ```ts
 * const mesh = await createMeshNode({ network: 'testnet', seed, listen: ['/ip4/127.0.0.1/tcp/0'] }, { logger })
 * await mesh.start()
 * const store = heliaStore({ dir: join(dataDir, 'artifacts') })({ libp2p: mesh.libp2p, logger })
 * await store.start()
 * const { cid } = await store.add(bytes)
 * for await (const chunk of store.get(cid, { providers: [peerId] })) …
 * await store.stop()
 * ```
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import '../polyfill.ts'
import { withBitswap } from '@helia/bitswap'
import { unixfs, type UnixFS } from '@helia/unixfs'
import type { Libp2p } from '@libp2p/interface'
import { FsBlockstore } from 'blockstore-fs'
import { FsDatastore } from 'datastore-fs'
import { createHeliaLight, type Helia } from 'helia'
import type { CID } from 'multiformats/cid'
import { AbortError, DisposedError, InvalidInputError, errorMessage } from '../errors.ts'
import { parsePeerId } from '../identity/peer-id.ts'
import type { ComponentLogger } from '../logger.ts'
import { libp2pLogger } from '../mesh/config.ts'
import { NotStartedError, service, type Service } from '../service.ts'
import { readBlock, VerifyingBlockstore } from './blocks.ts'
import { parseCid } from './cid.ts'
import { countedContent } from './content.ts'
import { BLOCKS_DIR, DATASTORE_DIR, DEFAULT_FETCH_TIMEOUT_MS, PIN_FETCH_CONCURRENCY } from './constants.ts'
import { walkDag, type WalkedBlock } from './dag.ts'
import { FetchGuard } from './fetch-guard.ts'
import { fixedSizeChunker, resolveAddOptions } from './import-options.ts'
import { type AddOptions, type AddResult, type ArtifactStore, type FetchOptions, type GetOptions, type StatResult } from './types.ts'
import { readFile, statFile, type ReadOptions } from './unixfs-read.ts'

export interface HeliaStoreInit {
  /** where blocks (`<dir>/blocks`) and pins (`<dir>/datastore`) are kept */
  dir: string
  /** a fetch gives up when no block arrived for this long (ms); a call's `timeoutMs` wins. @default 30_000 */
  timeoutMs?: number
}

export interface HeliaStoreComponents {
  /** the agent's libp2p node (`MeshNode.libp2p`), started by its owner; none: offline */
  libp2p?: Libp2p
  logger: ComponentLogger
}

export type HeliaStore = ArtifactStore & Service & { readonly kind: 'helia' }

interface Running {
  helia: Helia
  fs: UnixFS
  /** the blocks on disk, read without verification (for `has`) */
  disk: FsBlockstore
  datastore: FsDatastore
}

export function heliaStore (init: HeliaStoreInit): (components: HeliaStoreComponents) => HeliaStore {
  if (init === null || typeof init !== 'object' || typeof init.dir !== 'string' || init.dir === '') {
    throw new InvalidInputError('heliaStore needs a dir (where its blocks and pins are kept)', { field: 'dir' })
  }
  const defaultTimeoutMs = timeoutOf(init.timeoutMs, DEFAULT_FETCH_TIMEOUT_MS)
  return (components) => {
    const log = components.logger.forComponent('flexnode:artifacts:helia')
    let running: Running | undefined
    let stopped = false

    const current = (): Running => {
      if (stopped) throw new DisposedError('HeliaStore')
      if (running === undefined) throw new NotStartedError('HeliaStore')
      return running
    }

    const readOptions = (options: FetchOptions | GetOptions = {}): ReadOptions => ({
      ...options,
      timeoutMs: timeoutOf(options.timeoutMs, defaultTimeoutMs),
      providers: providerCids(options.providers)
    })

    const lifecycle = service({
      start: async () => {
        await mkdir(init.dir, { recursive: true })
        const disk = new FsBlockstore(join(init.dir, BLOCKS_DIR))
        const datastore = new FsDatastore(join(init.dir, DATASTORE_DIR))
        await disk.open()
        await datastore.open()
        const logger = libp2pLogger()
        const helia = createHeliaLight({
          blockstore: new VerifyingBlockstore(disk),
          datastore,
          // no content routing (no delegated HTTP routers, no DHT): peers are the mesh's
          routers: [],
          blockBrokers: [],
          ...(logger !== undefined ? { logger } : {})
        })
        if (components.libp2p !== undefined) {
          // bitswap builds on `helia.libp2p`: the mesh's node, which Helia neither starts nor stops
          Object.defineProperty(helia, 'libp2p', { value: components.libp2p, enumerable: true })
          withBitswap(helia as unknown as Parameters<typeof withBitswap>[0])
        }
        try {
          await helia.start()
        } catch (err) {
          await Promise.allSettled([datastore.close(), disk.close()])
          throw err
        }
        running = { helia, fs: unixfs(helia), disk, datastore }
        log.info({ dir: init.dir, online: components.libp2p !== undefined }, 'artifact store started')
      },
      stop: async () => {
        stopped = true
        const r = running
        running = undefined
        if (r === undefined) return
        try {
          await r.helia.stop()
        } catch (err) {
          log.warn({ err: errorMessage(err) }, 'Helia failed to stop cleanly')
        }
        await Promise.allSettled([r.datastore.close(), r.disk.close()])
      }
    })

    const isPinned = async (helia: Helia, cid: CID, signal?: AbortSignal): Promise<boolean> => {
      try {
        await helia.pins.get(cid, { signal })
        return true
      } catch (err) {
        if ((err as Error).name === 'NotFoundError') return false
        throw err
      }
    }

    const has = async (text: string): Promise<boolean> => {
      const cid = parseCid(text)
      const { disk, helia } = current()
      // a recursive pin exists only once every block was here, and pinned blocks are never collected
      if (await isPinned(helia, cid)) return true
      return await walkDag(cid, {
        load: async (c) => await disk.has(c) ? await readBlock(disk, c) : undefined,
        exists: async (c) => await disk.has(c),
        getCodec: helia.getCodec,
        concurrency: PIN_FETCH_CONCURRENCY
      })
    }

    const pinLocal = async (helia: Helia, cid: CID, text: string, signal?: AbortSignal): Promise<void> => {
      try {
        for await (const _ of helia.pins.add(cid, { signal, metadata: { cid: text } })) { /* walks the local DAG */ }
      } catch (err) {
        if ((err as Error).name !== 'AlreadyPinnedError') throw err
      }
    }

    const store: HeliaStore = {
      ...lifecycle,
      kind: 'helia',

      async add (content, options: AddOptions = {}): Promise<AddResult> {
        const { cidVersion, rawLeaves, chunkSize, pin } = resolveAddOptions(options)
        const counted = countedContent(content, options)
        const { helia, fs } = current()
        const { signal } = options
        let cid: CID
        try {
          cid = await fs.addByteStream(counted.source, {
            // Kubo's layout: balanced, 174 links per node, links before data
            profile: 'unixfs-v0-2015',
            layout: undefined,
            cidVersion,
            rawLeaves,
            chunker: fixedSizeChunker(chunkSize),
            signal
          })
        } catch (err) {
          if (signal?.aborted === true) throw new AbortError()
          throw err
        }
        const text = cid.toString()
        if (pin) await pinLocal(helia, cid, text, signal)
        if (signal?.aborted === true) throw new AbortError()
        return { cid: text, size: counted.size, sha256: counted.sha256() }
      },

      async * get (text: string, options: GetOptions = {}): AsyncGenerator<Uint8Array> {
        const cid = parseCid(text)
        const read = readOptions(options)
        const { fs } = current()
        yield * readFile(fs, cid, read)
      },

      async stat (text: string, options: FetchOptions = {}): Promise<StatResult> {
        const cid = parseCid(text)
        const read = readOptions(options)
        const { fs } = current()
        const stat = await statFile(fs, cid, read)
        return { ...stat, cid: text, local: await has(text) }
      },

      async pin (text: string, options: FetchOptions = {}): Promise<void> {
        const cid = parseCid(text)
        const read = readOptions(options)
        const { helia } = current()
        if (await isPinned(helia, cid, options.signal)) return
        const guard = new FetchGuard(text, read.timeoutMs, options.signal)
        let bytes = 0
        let blocks = 0
        let total: number | undefined
        try {
          await walkDag(cid, {
            load: async (c) => {
              const block = await readBlock(helia.blockstore, c, {
                signal: guard.signal,
                ...(read.providers !== undefined && read.providers.length > 0 ? { providers: read.providers } : {})
              } as { signal: AbortSignal })
              guard.touch()
              return block
            },
            getCodec: helia.getCodec,
            concurrency: PIN_FETCH_CONCURRENCY,
            signal: guard.signal,
            onBlock: (block) => {
              if (blocks === 0) total = dagSize(block)
              blocks++
              bytes += block.bytes.byteLength
              options.onProgress?.({ phase: 'pin', bytes, blocks, ...(total !== undefined ? { total } : {}) })
            }
          })
        } catch (err) {
          throw guard.fail(err)
        } finally {
          guard.done()
        }
        await pinLocal(helia, cid, text, options.signal)
      },

      async unpin (text: string, options: { signal?: AbortSignal } = {}): Promise<void> {
        const cid = parseCid(text)
        const { helia } = current()
        try {
          for await (const _ of helia.pins.rm(cid, { signal: options.signal })) { /* unpins each block */ }
        } catch (err) {
          if ((err as Error).name !== 'NotFoundError') throw err
        }
      },

      async pins (options: { signal?: AbortSignal } = {}): Promise<string[]> {
        const { helia } = current()
        const out: string[] = []
        for await (const pin of helia.pins.ls({ signal: options.signal })) {
          out.push(typeof pin.metadata.cid === 'string' ? pin.metadata.cid : pin.cid.toString())
        }
        return out
      },

      has,

      async gc (options: { signal?: AbortSignal } = {}): Promise<void> {
        const { helia } = current()
        await helia.gc({ signal: options.signal })
        if (options.signal?.aborted === true) throw new AbortError()
      }
    }
    return store
  }
}

/** The whole DAG's size in bytes from its root: a dag-pb node's own bytes plus its links' `Tsize`. */
function dagSize (root: WalkedBlock): number | undefined {
  const links = (root.value as { Links?: Array<{ Tsize?: number }> } | null)?.Links
  if (!Array.isArray(links)) return root.bytes.byteLength
  let size = root.bytes.byteLength
  for (const link of links) {
    if (typeof link.Tsize !== 'number') return undefined
    size += link.Tsize
  }
  return size
}

function timeoutOf (value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value <= 0) throw new InvalidInputError(`timeoutMs must be a positive integer (ms), got ${JSON.stringify(value)}`, { field: 'timeoutMs' })
  return value
}

/** Mesh peer ids as the CIDs Helia's `providers` option wants. */
export function providerCids (providers: string[] | undefined): CID[] | undefined {
  if (providers === undefined) return undefined
  if (!Array.isArray(providers)) throw new InvalidInputError('providers must be an array of peer ids', { field: 'providers' })
  return providers.map(p => {
    try {
      return parsePeerId(p).toCID()
    } catch (err) {
      throw new InvalidInputError(`providers: ${(err as Error).message}`, { field: 'providers' })
    }
  })
}
