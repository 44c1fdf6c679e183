/**
 * The `artifacts` capability: content-addressed artifacts (models, WASM modules, build outputs,
 * index snapshots) on IPFS, recorded in `artifact_index` and replicated across the mesh by the
 * storage policy's warm tier (design §10.6: `min_providers`).
 *
 * - **Bytes** live in an `ArtifactStore`: Helia on the agent's own libp2p node (bitswap over the
 *   mesh, blocks under `<dir>`), or a Kubo daemon (`kuboApi`). CIDs are Kubo's for the same bytes
 *   and import options.
 * - **Records**: `add` records an `ArtifactRecord` (cid, name, size, sha256, media type, the
 *   producer, `replication: {min, max}`) and a provider record for this node; `pin` of someone
 *   else's artifact fetches every block (from its providers first), pins it and records this node
 *   as a provider; `unpin` withdraws it. `providers(cid)` is who has it, with their liveness.
 * - **Replication**: every `replicationIntervalMs` (± 20 % jitter) each node looks at the records
 *   and decides for itself (`scheduler/src/replication.ts`): under `min` live providers, the
 *   missing number of nodes with room — the same ones on every node, by rendezvous rank — pin it;
 *   over `max`, the lowest-ranked providers let go. A decision is acted on only once it has held
 *   for `settleMs` on fresh reads; a provider that went offline counts for `graceMs` after its
 *   last heartbeat, and a pin that failed waits an exponential backoff with jitter before the next try, so a provider dropping out briefly moves nothing and one that is
 *   gone is replaced once, not by every node at once.
 *
 * ```ts
 * const { cid } = await node.artifacts.add(bytes, { name: 'build.tar', media_type: 'application/x-tar' })
 * for await (const chunk of node2.artifacts.get(cid)) process.stdout.write(chunk)
 * await node2.artifacts.providers(cid)   // [{ node: 'uhCAk…', live: true, since }, …]
 * ```
 */
import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, readFile, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import type { Libp2p } from '@libp2p/interface'
import { replicationDecision, type ReplicationNode } from '../../../scheduler/index.ts'
import type { NodeCapability } from '../../../zomes-ts/agent_registry/types.ts'
import type { ZomeCaller } from '../../../zomes-ts/client.ts'
import { ArtifactIndexClient } from '../../../zomes-ts/artifact_index/client.ts'
import { LIST_LIMITS, type ArtifactInfo, type ArtifactRecord } from '../../../zomes-ts/artifact_index/types.ts'
import { errorMessage, InvalidInputError } from '../errors.ts'
import { decodeHash, encodeHash } from '../holo/hash.ts'
import { peerIdFromAgentPubKey } from '../identity/peer-id.ts'
import type { ComponentLogger } from '../logger.ts'
import { service, type Service } from '../service.ts'
import {
  DEFAULT_MAX_CONCURRENT_PINS, DEFAULT_REPLICATION, DEFAULT_REPLICATION_GRACE_MS, DEFAULT_REPLICATION_INTERVAL_MS,
  MIN_SETTLE_MS, PIN_BACKOFF_BASE_MS, PIN_BACKOFF_MAX_MS, RESTORE_PINS_FILE, STORAGE_HEADROOM
} from './constants.ts'
import { heliaStore } from './helia-store.ts'
import { kuboStore } from './kubo-store.ts'
import { parseCid } from './cid.ts'
import {
  ArtifactIntegrityError, ArtifactNotRecordedError, type AddOptions, type AddResult, type ArtifactProgress, type ArtifactStore, type FetchOptions, type GetOptions, type ImportOptions, type StatResult
} from './types.ts'

export interface ArtifactsInit {
  /** where the embedded store keeps its blocks and datastore, and pulls in progress */
  dir: string
  /** a Kubo daemon's RPC API (`http://127.0.0.1:5001`) to use instead of the embedded Helia store. @default none */
  kuboApi?: string
  /** `{min, max}` providers of an artifact whose add names none (the storage policy's `min_providers`). @default {min: 3, max: 5} */
  replication?: { min: number, max: number }
  /** ms between two replication passes (each ± 20 % jitter). @default 30000 */
  replicationIntervalMs?: number
  /** a provider that went offline still counts this long after its last heartbeat, ms. @default 60000 */
  graceMs?: number
  /**
   * a node pins (or unpins) only when its decision has held this long over passes, on fresh reads
   * of the records and of presence (views of a mesh are eventually consistent). @default twice the replication interval, at least 2 s
   */
  settleMs?: number
  /** a fetch gives up when no block arrived for this long, ms. @default 30000 */
  fetchTimeoutMs?: number
  /** replication pins running at once. @default 2 */
  maxConcurrentPins?: number
}

export interface ArtifactsComponents {
  client: ZomeCaller
  /** the mesh's libp2p node: the embedded store's bitswap runs on it */
  libp2p: Libp2p
  agent: Uint8Array
  /** the mesh's NodeCapabilities with liveness (free storage, last heartbeat) */
  capabilities: () => Promise<NodeCapability[]>
  logger: ComponentLogger
}

export interface AddArtifactOptions extends AddOptions {
  /** the artifact's name (a file name): 1–255 characters, no control characters */
  name: string
  /** @default 'application/octet-stream' */
  media_type?: string
  /** @default the service's `replication` */
  replication?: { min: number, max: number }
  /** the allocation or task that produced it */
  produced_by?: { allocation: string } | { task: string } | null
}

export interface AddArtifactResult extends AddResult {
  /** the action hash of its ArtifactRecord */
  record: string
}

export interface ProviderInfo {
  /** the provider's agent key (uhCAk…) */
  node: string
  /** ms since the epoch it announced the pin */
  since: number
  /** its presence is live now */
  live: boolean
}

export interface ArtifactRecordView extends Omit<ArtifactRecord, 'producer'> {
  /** the producer's agent key (uhCAk…) */
  producer: string
}

export interface ReplicationPass {
  /** records looked at */
  records: number
  pinned: string[]
  unpinned: string[]
  failed: Array<{ cid: string, error: string }>
}

export interface ArtifactsStats {
  pins_started: number
  pins_completed: number
  pins_failed: number
  unpins: number
  replication_passes: number
}

/**
 * The store's `get`, `stat`, `pin`, `unpin` and `pins`, with the mesh's records behind them: a
 * fetch asks the artifact's live providers first, `pin` records this node as a provider and
 * `unpin` withdraws that record.
 */
export interface ArtifactService extends Service, Pick<ArtifactStore, 'get' | 'stat' | 'pin' | 'unpin' | 'pins'> {
  readonly store: ArtifactStore
  /**
   * adds bytes and records them (an ArtifactRecord); pins them here and records this node as a
   * provider unless `pin: false` (then the mesh's replication pins them elsewhere, fetching from
   * here while the blocks last)
   */
  add: (content: Uint8Array | AsyncIterable<Uint8Array>, options: AddArtifactOptions) => Promise<AddArtifactResult>
  providers: (cid: string) => Promise<ProviderInfo[]>
  /** the first record of a CID (its producer's), or undefined */
  record: (cid: string) => Promise<ArtifactRecordView | undefined>
  records: (options?: { limit?: number }) => Promise<ArtifactRecordView[]>
  /**
   * Fetches an artifact into a file: written to `<path>.part`, its size and sha256 checked against
   * its record (`ArtifactIntegrityError`), then renamed into place. Resolves with its record.
   */
  fetchToFile: (cid: string, path: string, options?: FetchOptions) => Promise<ArtifactRecordView>
  /** one replication pass now (the service runs one every `replicationIntervalMs`) */
  replicate: (options?: { signal?: AbortSignal }) => Promise<ReplicationPass>
  stats: () => ArtifactsStats
}

const NAME_RE = /^[^\u0000-\u001f\u007f/\\]{1,255}$/
const MEDIA_TYPE_RE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/i
const MAX_REPLICATION = 64

/** The checks the DNA makes of a record's fields, made before any byte is stored. */
export function checkRecordFields (o: { name: string, media_type?: string, replication?: { min: number, max: number } }): void {
  if (typeof o.name !== 'string' || !NAME_RE.test(o.name) || o.name === '.' || o.name === '..') {
    throw new InvalidInputError('name must be a file name: 1–255 characters, no slashes or control characters', { field: 'name' })
  }
  if (o.media_type !== undefined && (typeof o.media_type !== 'string' || !MEDIA_TYPE_RE.test(o.media_type))) {
    throw new InvalidInputError('media_type must look like type/subtype', { field: 'media_type' })
  }
  const r = o.replication
  if (r !== undefined && (!Number.isInteger(r.min) || !Number.isInteger(r.max) || r.min < 1 || r.max < r.min || r.max > MAX_REPLICATION)) {
    throw new InvalidInputError(`replication must be integers 1 ≤ min ≤ max ≤ ${MAX_REPLICATION}`, { field: 'replication' })
  }
}

export function artifacts (init: ArtifactsInit) {
  return (c: ArtifactsComponents): ArtifactService => {
    const log = c.logger.forComponent('flexnode:artifacts')
    const index = new ArtifactIndexClient(c.client)
    const self = encodeHash(c.agent)
    const store = init.kuboApi !== undefined
      ? kuboStore({ api: init.kuboApi, timeoutMs: init.fetchTimeoutMs })({ logger: c.logger })
      : heliaStore({ dir: init.dir, timeoutMs: init.fetchTimeoutMs })({ libp2p: c.libp2p, logger: c.logger })
    const defaults = init.replication ?? DEFAULT_REPLICATION
    checkRecordFields({ name: 'x', replication: defaults })
    const intervalMs = init.replicationIntervalMs ?? DEFAULT_REPLICATION_INTERVAL_MS
    const graceMs = init.graceMs ?? DEFAULT_REPLICATION_GRACE_MS
    const maxPins = init.maxConcurrentPins ?? DEFAULT_MAX_CONCURRENT_PINS
    const stats: ArtifactsStats = { pins_started: 0, pins_completed: 0, pins_failed: 0, unpins: 0, replication_passes: 0 }
    /** CIDs whose last replication pin failed: not tried again before `until` */
    const backoff = new Map<string, { failures: number, until: number }>()
    const stopping = new AbortController()
    let timer: NodeJS.Timeout | undefined
    let passing: Promise<ReplicationPass> | undefined
    /** decisions waiting to have held for `settleMs` before they are acted on, by CID */
    const settling = new Map<string, { action: 'pin' | 'unpin', at: number }>()
    const settleMs = init.settleMs ?? Math.max(2 * intervalMs, MIN_SETTLE_MS)
    /** something was unpinned since the last garbage collection: the next pass frees its blocks */
    let collect = false

    const viewOf = ({ author: _author, action_hash: _hash, ...r }: ArtifactInfo): ArtifactRecordView => ({ ...r, producer: encodeHash(r.producer) })

    const liveness = async (): Promise<Map<string, NodeCapability>> => new Map((await c.capabilities()).map(n => [n.node_id, n]))
    const isLive = (n: NodeCapability | undefined): boolean => n !== undefined && n.availability !== 'offline' && n.availability !== 'draining'

    const providers = async (cid: string): Promise<ProviderInfo[]> => {
      const [records, nodes] = await Promise.all([index.providers(cid), liveness()])
      return records.map(p => {
        const node = encodeHash(p.provider)
        return { node, since: Math.floor(p.since / 1000), live: node === self || isLive(nodes.get(node)) }
      })
    }

    /** the peer ids of an artifact's live providers other than this node: asked first for its blocks */
    const providerHints = async (cid: string, given: string[] | undefined): Promise<string[]> => {
      if (given !== undefined) return given
      try {
        return (await providers(cid)).filter(p => p.live && p.node !== self).map(p => peerIdFromAgentPubKey(decodeHash(p.node)))
      } catch (err) {
        log.debug({ cid, err: errorMessage(err) }, 'no provider hints')
        return []
      }
    }

    const record = async (cid: string): Promise<ArtifactRecordView | undefined> => {
      const text = parseCid(cid).toString()
      const found = await index.get(text)
      return found.length === 0 ? undefined : viewOf(found[0]!)
    }

    const pin = async (cid: string, options: FetchOptions = {}): Promise<void> => {
      const text = parseCid(cid).toString()
      await store.pin(text, { ...options, providers: await providerHints(text, options.providers) })
      await index.provide(text)
    }

    const unpin = async (cid: string, options: { signal?: AbortSignal } = {}): Promise<void> => {
      const text = parseCid(cid).toString()
      await store.unpin(text, options)
      await index.withdraw(text)
      collect = true
    }

    const replicateOnce = async (signal: AbortSignal): Promise<ReplicationPass> => {
      stats.replication_passes++
      const pass: ReplicationPass = { records: 0, pinned: [], unpinned: [], failed: [] }
      // the newest records, up to the DNA's largest page (a mesh with more artifacts needs a walk by arc)
      const [records, nodes] = await Promise.all([index.list({ limit: LIST_LIMITS.max }), liveness()])
      const now = Date.now()
      const view: ReplicationNode[] = [...nodes.values()].map(n => ({
        node: n.node_id,
        live: isLive(n),
        last_seen: Date.parse(n.last_heartbeat),
        free_bytes: Math.max(0, n.capabilities.storage.local_ssd_gb * 1e9 * STORAGE_HEADROOM)
      }))
      const todo: Array<{ cid: string, action: 'pin' | 'unpin' }> = []
      const seen = new Set<string>()
      for (const r of records) {
        if (seen.has(r.cid)) continue
        seen.add(r.cid)
        pass.records++
        const held = backoff.get(r.cid)
        if (held !== undefined && held.until > now) continue
        const provs = await index.providers(r.cid)
        const decision = replicationDecision({
          cid: r.cid, size: r.size, replication: r.replication, producer: encodeHash(r.producer),
          providers: provs.map(p => ({ node: encodeHash(p.provider) })), nodes: view, self, now, graceMs
        })
        // a decision is acted on only once it has held for `settleMs`, judged again on fresh
        // reads: a view that had not yet seen another node (or its pin) would otherwise act on it
        const since = settling.get(r.cid)
        if (decision.action === 'none' || since?.action !== decision.action) {
          if (decision.action === 'none') settling.delete(r.cid)
          else settling.set(r.cid, { action: decision.action, at: now })
          continue
        }
        if (now - since.at < settleMs) continue
        settling.delete(r.cid)
        todo.push({ cid: r.cid, action: decision.action })
      }
      for (const cid of settling.keys()) if (!seen.has(cid)) settling.delete(cid)
      let next = 0
      const worker = async (): Promise<void> => {
        while (next < todo.length && !signal.aborted) {
          const { cid, action } = todo[next++]!
          try {
            if (action === 'pin') {
              stats.pins_started++
              log.info({ cid }, 'pinning: the artifact has fewer live providers than its minimum')
              await pin(cid, { signal })
              stats.pins_completed++
              pass.pinned.push(cid)
            } else {
              log.info({ cid }, 'unpinning: the artifact has more live providers than its maximum')
              await unpin(cid, { signal })
              stats.unpins++
              pass.unpinned.push(cid)
            }
            backoff.delete(cid)
          } catch (err) {
            if (action === 'pin') stats.pins_failed++
            const failures = (backoff.get(cid)?.failures ?? 0) + 1
            const wait = Math.min(PIN_BACKOFF_MAX_MS, PIN_BACKOFF_BASE_MS * 2 ** (failures - 1))
            backoff.set(cid, { failures, until: Date.now() + wait * (0.5 + Math.random() / 2) })
            pass.failed.push({ cid, error: errorMessage(err) })
            log.warn({ cid, action, failures, err: errorMessage(err) }, 'replication step failed; backing off')
          }
        }
      }
      await Promise.all(Array.from({ length: Math.max(1, maxPins) }, worker))
      if (collect && !signal.aborted) {
        collect = false
        await store.gc({ signal }).catch((err: unknown) => { collect = true; log.warn({ err: errorMessage(err) }, 'garbage collection failed') })
      }
      return pass
    }

    const replicate = async (options: { signal?: AbortSignal } = {}): Promise<ReplicationPass> => {
      // one pass at a time: a caller during a pass waits for it, then runs its own
      while (passing !== undefined) await passing.catch(() => {})
      const signal = options.signal === undefined ? stopping.signal : AbortSignal.any([stopping.signal, options.signal])
      passing = replicateOnce(signal).finally(() => { passing = undefined })
      return await passing
    }

    const schedule = (): void => {
      if (stopping.signal.aborted) return
      timer = setTimeout(() => {
        replicate().catch((err: unknown) => { if (!stopping.signal.aborted) log.warn({ err: errorMessage(err) }, 'replication pass failed') }).finally(schedule)
      }, intervalMs * (0.8 + Math.random() * 0.4))
      timer.unref()
    }

    /**
     * Pins what a restored backup listed (`restore-pins.json`: `{"cids": [...]}`, written by
     * `flexnode restore`), in the background, then forgets the list; a CID no peer has is left to
     * replication.
     */
    const restorePins = async (): Promise<void> => {
      const file = join(init.dir, RESTORE_PINS_FILE)
      let listed: unknown
      try {
        listed = (JSON.parse(await readFile(file, 'utf8')) as { cids?: unknown }).cids
      } catch {
        return
      }
      if (!Array.isArray(listed)) return
      log.info({ pins: listed.length }, 'pinning the restored backup\'s artifacts')
      for (const cid of listed) {
        if (stopping.signal.aborted) return
        try {
          await pin(String(cid), { signal: stopping.signal })
        } catch (err) {
          log.warn({ cid, err: errorMessage(err) }, 'a pin of the restored backup failed (replication may pin it later)')
        }
      }
      await rm(file, { force: true })
    }

    const fetchToFile = async (cid: string, path: string, options: FetchOptions = {}): Promise<ArtifactRecordView> => {
      const text = parseCid(cid).toString()
      const r = await record(text)
      if (r === undefined) throw new ArtifactNotRecordedError(text)
      const part = `${path}.${randomBytes(4).toString('hex')}.part`
      const hash = createHash('sha256')
      let size = 0
      try {
        const { onProgress, ...fetch } = options
        const source = store.get(text, { ...fetch, providers: await providerHints(text, options.providers) })
        let blocks = 0
        await pipeline(Readable.from((async function * () {
          for await (const chunk of source) {
            hash.update(chunk)
            size += chunk.byteLength
            onProgress?.({ phase: 'get', bytes: size, blocks: ++blocks, total: r.size })
            yield chunk
          }
        })()), createWriteStream(part, { mode: 0o600 }), { signal: options.signal })
        const sha256 = hash.digest('hex')
        if (size !== r.size || sha256 !== r.sha256) {
          throw new ArtifactIntegrityError(`${text} does not match its record: ${size} bytes with sha256 ${sha256}, the record says ${r.size} bytes with sha256 ${r.sha256}`, { cid: text })
        }
        await rename(part, path)
      } catch (err) {
        await rm(part, { force: true })
        throw err
      }
      return r
    }

    const svc = service({
      start: async (options) => {
        await mkdir(init.dir, { recursive: true, mode: 0o700 })
        await store.start(options)
        // the first zome call into artifact_index runs the cell's init, a chain action: at start,
        // not in the middle of whatever the node is doing when the first replication pass comes
        await index.list({ limit: 1 }, { signal: options?.signal })
        schedule()
        restorePins().catch((err: unknown) => { log.warn({ err: errorMessage(err) }, 'restoring the backup\'s pins failed') })
      },
      stop: async () => {
        stopping.abort()
        clearTimeout(timer)
        await passing?.catch(() => {})
        await store.stop()
      }
    })

    return Object.assign(svc, {
      store,
      add: async (content: Uint8Array | AsyncIterable<Uint8Array>, options: AddArtifactOptions): Promise<AddArtifactResult> => {
        checkRecordFields(options)
        // pinned only once recorded: an add whose record is refused leaves no pin (its blocks go at the next collection)
        const added = await store.add(content, { ...options, pin: false })
        const recorded = await index.record({
          cid: added.cid, name: options.name, size: added.size, sha256: added.sha256,
          media_type: options.media_type ?? 'application/octet-stream',
          produced_by: options.produced_by ?? null,
          replication: options.replication ?? defaults
        })
        // `pin: false` (Kubo's `add --pin=false`): recorded for the mesh to replicate, kept here only until a collection
        if (options.pin !== false) {
          await store.pin(added.cid, { signal: options.signal })
          await index.provide(added.cid)
        }
        return { ...added, record: encodeHash(recorded.action_hash) }
      },
      get: (cid: string, options: GetOptions = {}): AsyncIterable<Uint8Array> => {
        const text = parseCid(cid).toString()
        return (async function * () {
          yield * store.get(text, { ...options, providers: await providerHints(text, options.providers) })
        })()
      },
      stat: async (cid: string, options: FetchOptions = {}) => {
        const text = parseCid(cid).toString()
        return await store.stat(text, { ...options, providers: await providerHints(text, options.providers) })
      },
      pin,
      unpin,
      pins: async (options?: { signal?: AbortSignal }) => await store.pins(options),
      providers: async (cid: string) => await providers(parseCid(cid).toString()),
      record,
      records: async (options: { limit?: number } = {}) => (await index.list({ limit: options.limit })).map(viewOf),
      fetchToFile,
      replicate,
      stats: () => ({ ...stats })
    })
  }
}

export type { AddOptions, ArtifactProgress, ArtifactStore, FetchOptions, GetOptions, ImportOptions, StatResult }
