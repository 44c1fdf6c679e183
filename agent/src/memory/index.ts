/**
 * The `memory` capability: the mesh as one vector memory (design §10.7). Any node creates
 * collections, inserts and searches; the points live on shard hosts, `replication_factor` copies
 * of every shard, placed by a consistent-hash ring (`scheduler/src/ring.ts`) whose members are the
 * live nodes offering shard capacity (their NodeCapability's `memory.vector_shards`, the ring
 * weight). No coordinator: the ring epochs, collections and shard assignments are `memory_shards`
 * entries and every node computes the same routes from them (`routing.ts`).
 *
 * - **Writes** go to every replica of the point's shard (serving ones, and new hosts still
 *   copying it) and succeed when `write_consistency` of them (`one`, `quorum`: a majority of the
 *   placed replicas, `all`) acknowledged. Each point carries a last-write-wins version.
 * - **Searches** ask one serving replica of every shard (this node's own when it has one, else the
 *   least loaded), one request per host for all its shards, hedge to the other replica when a host
 *   is slow, merge the top k, and say which shards answered (`partial`).
 * - **Replica sync**: every `gossipIntervalMs` each replica pulls what its co-replicas wrote since
 *   its cursor on them (one request per peer for all shared shards); every
 *   `fullSyncIntervalSeconds` it compares digests and pulls everything again from a peer whose
 *   digest differs.
 * - **Rebalancing**: when live membership changes (a node stable for `joinStableMs`, or one whose
 *   presence expired), one node proposes a new ring epoch (at most one per `epochIntervalMs`). A
 *   new host copies its shards from their serving replicas (at most `maxConcurrentMoves` at
 *   once), says so with a `ShardAssignment`, and the old hosts drop theirs `retireGraceMs` after.
 *
 * ```ts
 * await node.memory.createCollection({ name: 'docs', dimensions: 128, distance: 'cosine' })
 * await node.memory.upsert('docs', [{ id: 'a', vector, metadata: { lang: 'en' } }])
 * const { results, partial } = await node.memory.search('docs', { vector, k: 10, filter: { lang: 'en' } })
 * ```
 */
import { totalmem } from 'node:os'
import { join } from 'node:path'
import type { RingMember } from '../../../scheduler/index.ts'
import { shardOfId } from '../../../scheduler/index.ts'
import type { NodeCapability } from '../../../zomes-ts/agent_registry/types.ts'
import type { ZomeCaller } from '../../../zomes-ts/client.ts'
import type { AgentPubKey } from '../../../zomes-ts/hdk/index.ts'
import { MemoryShardsClient } from '../../../zomes-ts/memory_shards/client.ts'
import { collectionUid, type CollectionEntry } from '../../../zomes-ts/memory_shards/types.ts'
import { compareKeys } from '../../../zomes-ts/memory_shards/rules.ts'
import { decode, encode } from '../conductor/codec.ts'
import { errorMessage, InvalidInputError } from '../errors.ts'
import { decodeHash, encodeHash } from '../holo/hash.ts'
import { peerIdFromAgentPubKey } from '../identity/peer-id.ts'
import type { ComponentLogger } from '../logger.ts'
import type { MeshNode } from '../mesh/types.ts'
import { service, type Service } from '../service.ts'
import {
  DEFAULT_EPOCH_INTERVAL_MS, DEFAULT_FULL_SYNC_INTERVAL_SECONDS, DEFAULT_GOSSIP_INTERVAL_MS, DEFAULT_JOIN_STABLE_MS, DEFAULT_MAX_CONCURRENT_MOVES,
  DEFAULT_RETIRE_GRACE_MS, DEFAULT_RING_CHECK_INTERVAL_MS, HEDGE_LATENCY_FACTOR, HEDGE_MIN_MS,
  HOST_TIMEOUT_MS, MAX_MEMORY_WIRE_BYTES, MAX_OUTBOUND_PER_PEER, ORPHAN_GRACE_MS, SHARDS_PER_RAM_GB, SYNC_PAGE_POINTS
} from './constants.ts'
import { memoryProtocol, MEMORY_PROTOCOL, type WireCollection, type WireRequest, type WireSearchAnswer, type WireSyncAnswer, type WireSyncItem, type WireVersionsItem, packPoints, unpackPoints, unpackVersions } from './protocol.ts'
import { routeCollection, type AssignmentView, type EpochView, type ShardRoute } from './routing.ts'
import { shardHost, type ShardHost, type ShardKey, type ShardSpec, type Version } from './shard-host.ts'
import { compareHits, scoreOf, validateCollectionConfig, validateIds, validatePoints, validateQuery, validateVector } from './validate.ts'
import {
  NoEmbeddingModelError, UnknownCollectionError, WriteConsistencyError, CollectionExistsError,
  type Collection, type CollectionConfig, type CollectionInfo, type MemoryEvent, type Metadata, type Point, type PointInput, type ReplicaInfo, type SearchHit,
  type VectorMemory, type WriteConsistency
} from './types.ts'

export * from './types.ts'
export { MEMORY_PROTOCOL } from './protocol.ts'

export interface MemoryInit {
  /** where shard replicas are kept (`<data-dir>/memory`) */
  dir: string
  /**
   * shard replicas this node offers to host: its weight on the ring (advertised as the
   * NodeCapability's `memory.vector_shards`); 0 hosts nothing (this node only asks). @default 4 per GB of RAM
   */
  shardCapacity?: number
  /** worker threads holding the HNSW indexes. @default 1 */
  threads?: number
  /** ms between pulls of recent writes from co-replicas. @default 1000 */
  gossipIntervalMs?: number
  /** seconds between full digest comparisons. @default 300 */
  fullSyncIntervalSeconds?: number
  /** ms between looks at the ring. @default 2000 */
  ringCheckIntervalMs?: number
  /** a node joins the ring after being live this long. @default 10000 */
  joinStableMs?: number
  /** shortest time between ring epochs. @default 10000 */
  epochIntervalMs?: number
  /** a replica moved away is dropped this long after its new hosts serve. @default 10000 */
  retireGraceMs?: number
  /** shards copied at once. @default 2 */
  maxConcurrentMoves?: number
}

export interface MemoryComponents {
  client: ZomeCaller
  mesh: Pick<MeshNode, 'handle' | 'unhandle' | 'request' | 'peers' | 'peerId'>
  /** this node's agent key */
  agent: AgentPubKey
  /** the mesh's NodeCapabilities with liveness (`availability: 'offline'` when presence expired) */
  capabilities: () => Promise<NodeCapability[]>
  /** embeds texts with a model (the node's, or the mesh's through its router) */
  embed?: (model: string, texts: string[], options?: { signal?: AbortSignal }) => Promise<number[][]>
  /** told of each search this node ran (the node's metrics). @default none */
  onEvent?: (event: MemoryEvent) => void
  logger: ComponentLogger
}

/** The ring as this node sees it. */
export interface RingInfo {
  epoch: number
  members: RingMember[]
  /** live nodes offering capacity that the ring does not hold yet, or holds though gone */
  pending: string[]
}

/** What moved, for operators and the rebalance benchmark. */
export interface MemoryStats {
  /** bytes of points received while copying shards moved here */
  bytes_moved: number
  /** points received while copying shards moved here */
  points_moved: number
  /** shard copies completed */
  moves_completed: number
  /** points replica sync fetched from co-replicas (writes a replica had missed) */
  points_synced: number
  /** searches that asked a shard's other replica because its first pick was slow */
  hedged_searches: number
  /** shard replicas held here */
  replicas: number
}

export interface MemoryService extends Service, VectorMemory {
  readonly host: ShardHost
  /** shard replicas this node offers to host: its ring weight, advertised as `memory.vector_shards` */
  readonly capacity: number
  ring: () => Promise<RingInfo>
  stats: () => MemoryStats
  /** points held in this node's shard replicas (live ones, every replica counted) */
  vectors: () => Promise<number>
  /** one round of ring and hosting decisions, now (tests and operators; it also runs on its own) */
  reconcile: () => Promise<void>
  /** the routes of a collection's shards, as this node computes them */
  routes: (name: string) => Promise<ShardRoute[]>
}

/** Shard replicas a node offers when not told: 4 per GB of RAM, 1..1024. */
export function defaultShardCapacity (): number {
  return Math.max(1, Math.min(1024, Math.floor(totalmem() / 2 ** 30 * SHARDS_PER_RAM_GB)))
}

export { collectionUid }

const toCollection = (e: CollectionEntry): Collection => ({
  name: e.name,
  dimensions: e.dimensions,
  distance: e.distance,
  shard_count: e.shard_count,
  replication_factor: e.replication_factor,
  ...(e.embedding_model === null || e.embedding_model === undefined ? {} : { embedding_model: e.embedding_model }),
  created_epoch: e.created_epoch,
  created_at: e.created_at
})

const wireOf = (c: Collection): WireCollection => ({ uid: collectionUid(c), dimensions: c.dimensions, distance: c.distance, shard_count: c.shard_count, replication_factor: c.replication_factor, created_epoch: c.created_epoch })

/** Replicas needed for a write of `consistency` on a shard placed on `placed` hosts. */
export function needed (consistency: WriteConsistency, placed: number): number {
  if (consistency === 'one') return 1
  if (consistency === 'all') return placed
  return Math.floor(placed / 2) + 1
}

/** Members in one order (by key string) wherever they are compared. */
const byNode = (members: RingMember[]): RingMember[] => members.sort((a, b) => a.node < b.node ? -1 : a.node > b.node ? 1 : 0)

/** Members as a `RingEpoch` entry holds them: keys as bytes, sorted by their bytes (validation's order). */
const entryMembers = (members: RingMember[]): Array<{ node: AgentPubKey, weight: number }> =>
  members.map(m => ({ node: decodeHash(m.node, 'Agent'), weight: m.weight })).sort((a, b) => compareKeys(a.node, b.node))

interface View {
  at: number
  /** the write generation it was read in (see `invalidate`) */
  gen: number
  epochs: EpochView[]
  collections: Map<string, Collection>
  assignments: Map<string, AssignmentView[]>
}

interface Cursor { instance: string, seq: number }

export function memory (init: MemoryInit) {
  return (c: MemoryComponents): MemoryService => {
    const log = c.logger.forComponent('flexnode:memory')
    const client = new MemoryShardsClient(c.client)
    const self = encodeHash(c.agent)
    const host = shardHost({ dir: init.dir, threads: init.threads })({ logger: c.logger })
    const gossipMs = init.gossipIntervalMs ?? DEFAULT_GOSSIP_INTERVAL_MS
    const fullSyncMs = (init.fullSyncIntervalSeconds ?? DEFAULT_FULL_SYNC_INTERVAL_SECONDS) * 1000
    const ringCheckMs = init.ringCheckIntervalMs ?? DEFAULT_RING_CHECK_INTERVAL_MS
    const joinStableMs = init.joinStableMs ?? DEFAULT_JOIN_STABLE_MS
    const epochIntervalMs = init.epochIntervalMs ?? DEFAULT_EPOCH_INTERVAL_MS
    const retireGraceMs = init.retireGraceMs ?? DEFAULT_RETIRE_GRACE_MS
    const maxMoves = init.maxConcurrentMoves ?? DEFAULT_MAX_CONCURRENT_MOVES
    /** this node's weight on the ring (0: it hosts nothing) */
    const capacity = init.shardCapacity ?? defaultShardCapacity()

    let view: View | undefined
    let viewing: { gen: number, read: Promise<View> } | undefined
    /** bumped by this node's own writes to the DHT: a view read before one of them is stale (read-your-writes) */
    let gen = 0
    const invalidate = (): void => { gen++; view = undefined }
    /** when each node was first seen live, without a gap since */
    const liveSince = new Map<string, number>()
    /** when this node first saw the ring differ from the live membership */
    let disagreeSince: number | undefined
    /** cursors on co-replicas: `${uid}/${shard}>${peer}` */
    const cursors = new Map<string, Cursor>()
    /** replicas copying now (`uid/shard`) */
    const copying = new Set<string>()
    /** copies this node completed, with the epoch it said so for (`uid/shard`): not copied again while the DHT catches up */
    const copied = new Map<string, number>()
    /** when a replica held here stopped being placed here (`uid/shard`) */
    const unplacedSince = new Map<string, number>()
    /** when a collection held here was last missing from the DHT */
    const orphanSince = new Map<string, number>()
    /** under-replicated collections already logged */
    const warned = new Set<string>()
    /** latency (EWMA, ms) and requests in flight, per peer */
    const peerLoad = new Map<string, { ewma: number, inFlight: number, waiting: Array<() => void> }>()
    const stats: MemoryStats = { bytes_moved: 0, points_moved: 0, moves_completed: 0, points_synced: 0, hedged_searches: 0, replicas: 0 }
    let lastVersion = 0
    let lastFullSync = Date.now()
    /** when this node's memory started: its own join waits `joinStableMs` from here */
    let startedAt = Date.now()
    const timers: Array<ReturnType<typeof setInterval>> = []
    let stopped = false
    let ticking: Promise<void> | undefined
    let gossiping: Promise<void> | undefined

    const nextVersion = (): Version => {
      lastVersion = Math.max(Date.now(), lastVersion + 1)
      return { ts: lastVersion, writer: self }
    }

    // ---------------------------------------------------------------------------------------------
    // the DHT view: epochs, collections, assignments

    const readView = async (at: number): Promise<View> => {
      const [epochs, collections] = await Promise.all([client.epochs(), client.listCollections()])
      const byNumber = new Map<number, EpochView>()
      for (const e of epochs) {
        // several proposals of one number: the lowest action hash wins, the order `epochs()` gives
        if (!byNumber.has(e.epoch)) byNumber.set(e.epoch, { epoch: e.epoch, members: byNode(e.members.map(m => ({ node: encodeHash(m.node), weight: m.weight }))) })
      }
      const colls = new Map(collections.map(e => [e.name, toCollection(e)]))
      const assignments = new Map<string, AssignmentView[]>()
      await Promise.all([...colls.values()].map(async coll => {
        const uid = collectionUid(coll)
        const list = await client.assignments(uid)
        assignments.set(uid, list.map(a => ({ shard: a.shard, epoch: a.epoch, host: encodeHash(a.host), state: a.state })))
      }))
      return { at: Date.now(), gen: at, epochs: [...byNumber.values()].sort((a, b) => a.epoch - b.epoch), collections: colls, assignments }
    }

    /** The view, read again when older than `maxAgeMs` (concurrent readers share one read). */
    const currentView = async (maxAgeMs = 1000): Promise<View> => {
      if (view !== undefined && view.gen === gen && Date.now() - view.at <= maxAgeMs) return view
      // a read under way is shared, unless this node wrote since it began
      if (viewing === undefined || viewing.gen !== gen) {
        const started = { gen, read: readView(gen) }
        viewing = started
        void started.read.then(v => { if (v.gen === gen) view = v }, () => {}).finally(() => { if (viewing === started) viewing = undefined })
      }
      return await viewing.read
    }

    const collectionOf = async (name: string, fresh = false): Promise<Collection> => {
      let v = await currentView(fresh ? 0 : 1000)
      let coll = v.collections.get(name)
      if (coll === undefined && !fresh) {
        v = await currentView(0)
        coll = v.collections.get(name)
      }
      if (coll === undefined) throw new UnknownCollectionError(name)
      return coll
    }

    /** routes computed once per view and collection (placing every epoch's ring is not free) */
    const routed = new WeakMap<View, Map<string, ShardRoute[]>>()
    const routesOf = (v: View, coll: Collection): ShardRoute[] => {
      const uid = collectionUid(coll)
      let byUid = routed.get(v)
      if (byUid === undefined) routed.set(v, byUid = new Map())
      let routes = byUid.get(uid)
      if (routes === undefined) byUid.set(uid, routes = routeCollection({ uid, shard_count: coll.shard_count, replication_factor: coll.replication_factor, created_epoch: coll.created_epoch }, v.epochs, v.assignments.get(uid) ?? []))
      return routes
    }

    // ---------------------------------------------------------------------------------------------
    // talking to shard hosts

    const connected = (): Set<string> => new Set(c.mesh.peers())
    /** the libp2p peer id of each agent key seen */
    const peerIds = new Map<string, string>()
    const peerOf = (node: string): string => {
      let id = peerIds.get(node)
      if (id === undefined) peerIds.set(node, id = peerIdFromAgentPubKey(decodeHash(node, 'Agent')))
      return id
    }
    const isLive = (node: string, peers = connected()): boolean => node === self ? !stopped : peers.has(peerOf(node))

    const ask = async (node: string, m: WireRequest, signal?: AbortSignal): Promise<unknown> => {
      if (node === self) return await serve.local(m)
      const load = peerLoad.get(node) ?? { ewma: 20, inFlight: 0, waiting: [] }
      peerLoad.set(node, load)
      // the mesh serves a few streams per peer at once: more wait their turn here
      if (load.inFlight >= MAX_OUTBOUND_PER_PEER) await new Promise<void>(resolve => { load.waiting.push(resolve) })
      load.inFlight++
      const started = performance.now()
      try {
        const answer = decode(await c.mesh.request(peerOf(node), MEMORY_PROTOCOL, encode(m), { signal, timeoutMs: HOST_TIMEOUT_MS, maxResponseBytes: MAX_MEMORY_WIRE_BYTES }))
        load.ewma = 0.8 * load.ewma + 0.2 * (performance.now() - started)
        return answer
      } finally {
        load.inFlight--
        load.waiting.shift()?.()
      }
    }

    /** Serves the memory protocol: this node's shard replicas, for the mesh and for itself. */
    const serve = memoryProtocol({
      host,
      /** may this node hold `key`? Placed here by its own view (read again once when not) */
      accepts: async (coll: WireCollection, shard: number): Promise<boolean> => {
        const key = { collection: coll.uid, shard }
        if (host.has(key)) return true
        for (const maxAge of [1000, 0]) {
          const v = await currentView(maxAge)
          const known = [...v.collections.values()].find(x => collectionUid(x) === coll.uid)
          const routes = routeCollection(known === undefined ? coll : { uid: coll.uid, shard_count: known.shard_count, replication_factor: known.replication_factor, created_epoch: known.created_epoch }, v.epochs, v.assignments.get(coll.uid) ?? [])
          if (routes[shard]?.writeTo.includes(self) === true) return true
        }
        return false
      }
    })

    // ---------------------------------------------------------------------------------------------
    // collections

    const ensureEpoch = async (): Promise<number> => {
      let v = await currentView(0)
      if (v.epochs.length === 0) {
        // the first epoch: every live node offering capacity (no flap damping: nothing moves yet)
        const members = await desiredMembers(v, true)
        if (members.length === 0) throw new InvalidInputError('no ring yet: no node offering shard capacity has joined the mesh (this node offers none)')
        await client.proposeEpoch({ epoch: 1, members: entryMembers(members), at: Date.now() })
        invalidate()
        log.info({ epoch: 1, members: members.length }, 'started the ring')
        v = await currentView(0)
      }
      return v.epochs[v.epochs.length - 1]!.epoch
    }

    const createCollection = async (config: CollectionConfig): Promise<Collection> => {
      const valid = validateCollectionConfig(config)
      const existing = (await currentView(0)).collections.get(valid.name)
      if (existing !== undefined) throw new CollectionExistsError(valid.name)
      const epoch = await ensureEpoch()
      const entry: CollectionEntry = {
        name: valid.name,
        dimensions: valid.dimensions,
        distance: valid.distance,
        shard_count: valid.shard_count,
        replication_factor: valid.replication_factor,
        embedding_model: valid.embedding_model ?? null,
        created_epoch: epoch,
        created_at: Date.now()
      }
      try {
        await client.createCollection(entry)
      } catch (err) {
        if (/exists/i.test(errorMessage(err))) throw new CollectionExistsError(valid.name)
        throw err
      }
      invalidate()
      const coll = await collectionOf(valid.name, true)
      log.info({ collection: coll.name, shards: coll.shard_count, rf: coll.replication_factor, epoch }, 'collection created')
      return coll
    }

    const describeCollection = async (name: string): Promise<CollectionInfo> => {
      const coll = await collectionOf(name)
      const v = await currentView()
      const routes = routesOf(v, coll)
      const peers = connected()
      const wire = wireOf(coll)
      // each host's counts, one request per host
      const nodes = [...new Set(routes.flatMap(r => r.writeTo))]
      const counts = new Map<string, Map<number, number>>()
      await Promise.all(nodes.filter(n => isLive(n, peers)).map(async node => {
        const shards = routes.filter(r => r.writeTo.includes(node)).map(r => r.shard)
        try {
          const answer = await ask(node, { op: 'stats', c: wire, shards }) as Array<number | null>
          counts.set(node, new Map(shards.flatMap((s, i) => answer[i] === null ? [] : [[s, answer[i]!]])))
        } catch (err) {
          log.debug({ node, err: errorMessage(err) }, 'a shard host did not give its counts')
        }
      }))
      let count = 0
      const shards = routes.map(r => {
        const replicas: ReplicaInfo[] = r.writeTo.map(node => ({
          node_id: node,
          state: r.copying.includes(node) ? 'copying' : r.retiring.includes(node) ? 'retiring' : 'serving',
          live: isLive(node, peers),
          ...(counts.get(node)?.has(r.shard) === true ? { count: counts.get(node)!.get(r.shard)! } : {})
        }))
        count += Math.max(0, ...replicas.filter(x => x.state !== 'copying').map(x => x.count ?? 0))
        return { shard: r.shard, replicas, under_replicated: r.hosts.length < coll.replication_factor }
      })
      const epoch = v.epochs.at(-1)?.epoch ?? 0
      return { ...coll, epoch, shards, count, under_replicated: shards.some(s => s.under_replicated) }
    }

    const deleteCollection = async (name: string): Promise<void> => {
      const coll = await collectionOf(name)
      await client.deleteCollection(coll.name)
      invalidate()
      log.info({ collection: name }, 'collection deleted')
      // this node's replicas go now; the other hosts drop theirs when their view shows it gone
      const uid = collectionUid(coll)
      for (const spec of host.hosted()) if (spec.collection === uid) await host.drop(spec)
    }

    // ---------------------------------------------------------------------------------------------
    // writes

    const embedTexts = async (coll: Collection, texts: string[], signal?: AbortSignal): Promise<number[][]> => {
      if (coll.embedding_model === undefined) throw new NoEmbeddingModelError(coll.name)
      if (c.embed === undefined) throw new NoEmbeddingModelError(coll.name)
      return await c.embed(coll.embedding_model, texts, { signal })
    }

    /** The batch checked whole (a bad point rejects it before anything is written), its texts embedded with the collection's model. */
    const resolvePoints = async (coll: Collection, points: PointInput[], signal?: AbortSignal): Promise<Array<{ id: string, vector: Float32Array, metadata: Metadata }>> => {
      const valid = validatePoints(points, coll.dimensions)
      const texts = valid.flatMap((p, i) => p.vector === undefined ? [i] : [])
      const vectors = texts.length === 0 ? [] : await embedTexts(coll, texts.map(i => valid[i]!.text!), signal)
      texts.forEach((i, j) => { valid[i]!.vector = validateVector(vectors[j], coll.dimensions, `points[${i}].vector (embedded by ${coll.embedding_model ?? ''})`) })
      return valid.map(p => ({ id: p.id, vector: p.vector!, metadata: p.metadata }))
    }

    /**
     * Sends a write to every replica of every shard it touches, one request per host (all its
     * shards' parts in it), and checks each shard got `write_consistency` acknowledgements. An ack
     * of a replica still copying counts: it serves the write once switched over.
     */
    const writeParts = async <P extends { shard: number }>(coll: Collection, parts: P[], message: (c: WireCollection, parts: P[]) => WireRequest, consistency: WriteConsistency, signal?: AbortSignal): Promise<number> => {
      const routes = routesOf(await currentView(), coll)
      const peers = connected()
      const wire = wireOf(coll)
      const byNode = new Map<string, P[]>()
      for (const part of parts) {
        const route = routes[part.shard]!
        const need = needed(consistency, Math.max(1, route.hosts.length))
        const targets = route.writeTo.filter(n => isLive(n, peers))
        if (targets.length < need) throw new WriteConsistencyError(part.shard, need, 0, `${targets.length} of its ${route.writeTo.length} replicas are reachable`)
        for (const node of targets) byNode.set(node, [...(byNode.get(node) ?? []), part])
      }
      const acks = new Map<number, number>()
      const failures = new Map<number, string[]>()
      await Promise.all([...byNode].map(async ([node, list]) => {
        try {
          const answer = await ask(node, message(wire, list), signal) as Array<string | null>
          list.forEach((part, i) => {
            const refused = answer[i]
            if (refused === null || refused === undefined) acks.set(part.shard, (acks.get(part.shard) ?? 0) + 1)
            else failures.set(part.shard, [...(failures.get(part.shard) ?? []), `${node.slice(0, 12)}…: ${refused}`])
          })
        } catch (err) {
          for (const part of list) failures.set(part.shard, [...(failures.get(part.shard) ?? []), `${node.slice(0, 12)}…: ${errorMessage(err)}`])
        }
      }))
      let acknowledged = 0
      for (const part of parts) {
        const need = needed(consistency, Math.max(1, routes[part.shard]!.hosts.length))
        const got = acks.get(part.shard) ?? 0
        if (got < need) throw new WriteConsistencyError(part.shard, need, got, (failures.get(part.shard) ?? []).join('; '))
        acknowledged += got
      }
      return acknowledged
    }

    const upsert: VectorMemory['upsert'] = async (name, points, options = {}) => {
      const coll = await collectionOf(name)
      const valid = await resolvePoints(coll, points, options.signal)
      const version = nextVersion()
      const byShard = new Map<number, typeof valid>()
      for (const p of valid) {
        const s = shardOfId(p.id, coll.shard_count)
        byShard.set(s, [...(byShard.get(s) ?? []), p])
      }
      const parts = [...byShard].map(([shard, pts]) => ({ shard, ...packPoints(pts, coll.dimensions) }))
      const acknowledged = await writeParts(coll, parts, (c, list) => ({ op: 'write', c, parts: list, ts: version.ts, writer: version.writer }), options.write_consistency ?? 'quorum', options.signal)
      return { written: valid.length, acknowledged }
    }

    const remove: VectorMemory['delete'] = async (name, ids, options = {}) => {
      const coll = await collectionOf(name)
      validateIds(ids)
      const version = nextVersion()
      const byShard = new Map<number, string[]>()
      for (const id of ids) {
        const s = shardOfId(id, coll.shard_count)
        byShard.set(s, [...(byShard.get(s) ?? []), id])
      }
      const parts = [...byShard].map(([shard, list]) => ({ shard, ids: list }))
      const acknowledged = await writeParts(coll, parts, (c, list) => ({ op: 'remove', c, parts: list, ts: version.ts, writer: version.writer }), options.write_consistency ?? 'quorum', options.signal)
      return { written: ids.length, acknowledged }
    }

    // ---------------------------------------------------------------------------------------------
    // reads

    /** The serving replicas of a shard worth asking, best first: this node, then the least loaded live ones. */
    const candidates = (route: ShardRoute, peers: Set<string>): string[] => {
      const live = route.serving.filter(n => isLive(n, peers))
      const cost = (n: string): number => n === self ? -1 : (peerLoad.get(n)?.inFlight ?? 0) * 1000 + (peerLoad.get(n)?.ewma ?? 20)
      return live.sort((a, b) => cost(a) - cost(b))
    }

    const get: VectorMemory['get'] = async (name, ids, options = {}) => {
      const coll = await collectionOf(name)
      validateIds(ids)
      const routes = routesOf(await currentView(), coll)
      const byShard = new Map<number, string[]>()
      for (const id of new Set(ids)) {
        const s = shardOfId(id, coll.shard_count)
        byShard.set(s, [...(byShard.get(s) ?? []), id])
      }
      const found = new Map<string, Point>()
      await Promise.all([...byShard].map(async ([shard, list]) => {
        const tried = new Set<string>()
        // the replicas of the cached view, then (none answered: a move may have ended since) of a fresh one
        for (const fresh of [false, true]) {
          if (fresh && options.signal?.aborted === true) return
          const route = fresh ? routesOf(await currentView(0), coll)[shard]! : routes[shard]!
          for (const node of candidates(route, connected()).filter(n => !tried.has(n))) {
            tried.add(node)
            try {
              const answer = await ask(node, { op: 'get', c: wireOf(coll), shard, ids: list }, options.signal) as WireSyncItem
              for (const p of unpackPoints(answer, coll.dimensions)) if (p.vector !== null) found.set(p.id, { id: p.id, vector: [...p.vector], metadata: p.metadata })
              return
            } catch (err) {
              log.debug({ node, shard, err: errorMessage(err) }, 'a replica did not answer a get; asking the next')
            }
          }
        }
      }))
      return ids.flatMap(id => found.has(id) ? [found.get(id)!] : [])
    }

    const search: VectorMemory['search'] = async (name, query, options = {}) => {
      const started = performance.now()
      const found = await searchMesh(name, query, options)
      c.onEvent?.({ kind: 'search', seconds: (performance.now() - started) / 1000 })
      return found
    }

    const searchMesh: VectorMemory['search'] = async (name, query, options = {}) => {
      const coll = await collectionOf(name)
      const q = validateQuery(query, coll.dimensions)
      const vector = q.vector ?? validateVector((await embedTexts(coll, [q.text!], options.signal))[0], coll.dimensions, `vector (embedded by ${coll.embedding_model ?? ''})`)
      let routes = routesOf(await currentView(), coll)
      let peers = connected()
      const wire = wireOf(coll)
      const answered = new Map<number, Array<{ id: string, distance: number, metadata: Record<string, unknown> }>>()
      const tried = new Map<number, Set<string>>()
      const pending = new Set(routes.map(r => r.shard))
      const ask1 = async (node: string, shards: number[]): Promise<void> => {
        for (const s of shards) tried.set(s, new Set([...(tried.get(s) ?? []), node]))
        try {
          const answer = await ask(node, { op: 'search', c: wire, shards, vector: new Uint8Array(vector!.buffer, vector!.byteOffset, vector!.byteLength), k: q.k, ef: q.ef, filter: q.filter ?? null }, options.signal) as WireSearchAnswer
          shards.forEach((s, i) => {
            const r = answer[i]
            if (r !== null && r !== undefined && !answered.has(s)) {
              answered.set(s, r.map(([id, distance, metadata]) => ({ id, distance, metadata })))
              pending.delete(s)
            }
          })
        } catch (err) {
          log.debug({ node, err: errorMessage(err) }, 'a shard host did not answer a search')
        }
      }
      const done = Promise.withResolvers<void>()
      const work: Array<Promise<void>> = []
      let hedged = false
      /** groups shards by the next replica to ask (skipping those tried) and asks each host once; a slow host's shards are hedged to their other replica */
      const round = (shards: number[]): void => {
        const plan = new Map<string, number[]>()
        for (const s of shards) {
          const node = candidates(routes[s]!, peers).find(n => tried.get(s)?.has(n) !== true)
          if (node !== undefined) plan.set(node, [...(plan.get(node) ?? []), s])
        }
        for (const [node, list] of plan) {
          work.push((async () => {
            const hedgeAfter = Math.max(HEDGE_MIN_MS, HEDGE_LATENCY_FACTOR * (peerLoad.get(node)?.ewma ?? 20))
            const timer = node === self
              ? undefined
              : setTimeout(() => {
                const late = list.filter(s => pending.has(s))
                if (late.length === 0) return
                if (!hedged) stats.hedged_searches++
                hedged = true
                round(late)
              }, hedgeAfter)
            await ask1(node, list)
            clearTimeout(timer)
            if (pending.size === 0) done.resolve()
            // shards this host could not answer: their next replica
            const failed = list.filter(s => pending.has(s))
            if (failed.length > 0) round(failed)
          })())
        }
      }
      /** until every shard answered, or every request made so far (hedges included) ended */
      const settle = async (): Promise<void> => {
        const all = (async () => { for (let i = 0; i < work.length; i++) await work[i] })()
        if (pending.size > 0) await Promise.race([done.promise, all])
      }
      round([...pending])
      await settle()
      // shards no replica of the cached view answered: the view may predate a move's end (a new
      // copy serving, the old one retired); a fresh view's replicas not asked yet get one round
      if (pending.size > 0 && options.signal?.aborted !== true) {
        routes = routesOf(await currentView(0), coll)
        peers = connected()
        round([...pending])
        await settle()
      }
      const merged = [...answered.values()].flat().sort((a, b) => a.distance - b.distance).slice(0, q.k)
      const results: SearchHit[] = merged.map(h => ({ id: h.id, score: scoreOf(coll.distance, h.distance), metadata: h.metadata as SearchHit['metadata'] }))
      results.sort(compareHits(coll.distance))
      return { results, partial: answered.size < routes.length, shards_answered: answered.size, shards_total: routes.length }
    }

    // ---------------------------------------------------------------------------------------------
    // the ring: membership and epochs

    const desiredMembers = async (v: View, first = false): Promise<RingMember[]> => {
      const now = Date.now()
      const current = new Set(v.epochs.at(-1)?.members.map(m => m.node) ?? [])
      const caps = await c.capabilities()
      const members: RingMember[] = []
      const seen = new Set<string>()
      for (const cap of caps) {
        const weight = cap.capabilities.memory.vector_shards
        if (cap.node_id === self) continue
        const live = cap.availability !== 'offline' && cap.availability !== 'draining'
        if (!live || weight <= 0) { liveSince.delete(cap.node_id); continue }
        seen.add(cap.node_id)
        const since = liveSince.get(cap.node_id) ?? now
        liveSince.set(cap.node_id, since)
        // a newcomer must stay live a while (flap damping); a member stays while live
        if (first || current.has(cap.node_id) || now - since >= joinStableMs) members.push({ node: cap.node_id, weight })
      }
      for (const n of [...liveSince.keys()]) if (!seen.has(n)) liveSince.delete(n)
      // this node by its own clock (its NodeCapability may not be readable yet): a node that just
      // started waits like any newcomer before it proposes itself into the ring
      if (capacity > 0 && (first || current.has(self) || now - startedAt >= joinStableMs)) members.push({ node: self, weight: capacity })
      return byNode(members)
    }

    const sameMembers = (a: RingMember[], b: RingMember[]): boolean => a.length === b.length && a.every((m, i) => m.node === b[i]?.node && m.weight === b[i]?.weight)

    const ring = async (): Promise<RingInfo> => {
      const v = await currentView()
      const current = v.epochs.at(-1)
      const desired = await desiredMembers(v)
      const members = current?.members ?? []
      const pending = [...desired.filter(d => !members.some(m => m.node === d.node)).map(d => d.node), ...members.filter(m => !desired.some(d => d.node === m.node)).map(m => m.node)]
      return { epoch: current?.epoch ?? 0, members, pending }
    }

    const maybePropose = async (v: View): Promise<void> => {
      const current = v.epochs.at(-1)
      const desired = await desiredMembers(v)
      if (desired.length === 0) return
      if (current !== undefined && sameMembers(current.members, desired)) { disagreeSince = undefined; return }
      const now = Date.now()
      disagreeSince ??= now
      const entries = await client.epochs()
      const lastAt = entries.length === 0 ? 0 : Math.max(...entries.map(e => e.at))
      if (now - lastAt < epochIntervalMs) return
      // the ring's live members decide who joins (a newcomer never adds itself: how long it has been
      // live is for the others to see); with none of them left, the nodes that want in do
      const members = current?.members.filter(m => desired.some(d => d.node === m.node)) ?? []
      const deciders = members.length > 0 ? members : desired
      if (!deciders.some(m => m.node === self)) return
      // the smallest of them proposes; any of them once the disagreement outlasts two intervals (it may be gone)
      const proposer = deciders[0]!.node === self || now - disagreeSince > 2 * epochIntervalMs + ringCheckMs
      if (!proposer) return
      const epoch = (current?.epoch ?? 0) + 1
      await client.proposeEpoch({ epoch, members: entryMembers(desired), at: now })
      disagreeSince = undefined
      invalidate()
      log.info({ epoch, members: desired.length }, 'proposed a new ring epoch')
    }

    // ---------------------------------------------------------------------------------------------
    // hosting: open what is placed here, copy it, drop what moved away

    const keyOf = (k: ShardKey): string => `${k.collection}/${k.shard}`

    const reconcile = async (): Promise<void> => {
      if (stopped) return
      let v = await currentView(0)
      // the ring is kept only once there is something to place (an idle mesh writes nothing)
      if (capacity > 0 && v.collections.size > 0 && v.epochs.length > 0) {
        await maybePropose(v)
        v = await currentView(0)
      }
      const now = Date.now()
      const placedHere = new Set<string>()
      const uids = new Set<string>()
      for (const coll of v.collections.values()) {
        const uid = collectionUid(coll)
        uids.add(uid)
        const routes = routesOf(v, coll)
        if (routes.some(r => r.hosts.length < coll.replication_factor) && !warned.has(uid)) {
          warned.add(uid)
          log.warn({ collection: coll.name, replication_factor: coll.replication_factor, nodes: v.epochs.at(-1)?.members.length ?? 0 }, 'collection under-replicated: fewer shard hosts than its replication factor (it reaches full replication when nodes join)')
        }
        for (const r of routes) {
          if (!r.writeTo.includes(self)) continue
          placedHere.add(`${uid}/${r.shard}`)
          const spec: ShardSpec = { collection: uid, shard: r.shard, dimensions: coll.dimensions, distance: coll.distance }
          if (!host.has(spec)) await host.open(spec)
        }
      }
      // replicas no longer placed here, or of collections gone from the DHT, leave after a grace
      for (const spec of host.hosted()) {
        const k = keyOf(spec)
        if (!uids.has(spec.collection)) {
          const created = Number.parseInt(spec.collection.slice(spec.collection.lastIndexOf('.') + 1), 36)
          const since = orphanSince.get(spec.collection) ?? now
          orphanSince.set(spec.collection, since)
          if (now - since >= ORPHAN_GRACE_MS && now - created >= ORPHAN_GRACE_MS) {
            await host.drop(spec)
            log.info({ replica: k }, 'dropped a replica of a collection that is gone')
          }
          continue
        }
        orphanSince.delete(spec.collection)
        if (placedHere.has(k)) { unplacedSince.delete(k); continue }
        const since = unplacedSince.get(k) ?? now
        unplacedSince.set(k, since)
        if (now - since >= retireGraceMs) {
          await host.drop(spec)
          unplacedSince.delete(k)
          for (const ck of [...cursors.keys()]) if (ck.startsWith(`${k}>`)) cursors.delete(ck)
          log.info({ replica: k }, 'dropped a replica the ring moved away')
        }
      }
      stats.replicas = host.hosted().length
    }

    // ---------------------------------------------------------------------------------------------
    // replica sync and shard copies

    /**
     * One round: every replica held here pulls from each live co-replica what it wrote since this
     * node's cursor on it (one request per peer). A replica still copying pulls from its serving
     * replicas until a pass completes, then says so with a `ShardAssignment`.
     */
    const gossip = async (): Promise<void> => {
      // a node that holds no replica has nothing to sync (and reads nothing from the DHT for it)
      if (stopped || host.hosted().length === 0) return
      const v = await currentView()
      const peers = connected()
      const fullSync = Date.now() - lastFullSync >= fullSyncMs
      if (fullSync) lastFullSync = Date.now()
      const plan = new Map<string, Array<{ coll: Collection, route: ShardRoute, copy: boolean }>>()
      let moves = 0
      for (const coll of v.collections.values()) {
        const uid = collectionUid(coll)
        for (const route of routesOf(v, coll)) {
          if (!route.writeTo.includes(self) || !host.has({ collection: uid, shard: route.shard })) continue
          const epoch = v.epochs.at(-1)?.epoch ?? 0
          const copy = route.copying.includes(self) && copied.get(`${uid}/${route.shard}`) !== epoch
          if (copy && !copying.has(`${uid}/${route.shard}`)) {
            if (copying.size + moves >= maxMoves) continue
            moves++
          }
          // a copy pulls from one serving replica (the best placed); a replica from every co-replica
          const sources = copy ? candidates(route, peers).filter(n => n !== self).slice(0, 1) : route.writeTo.filter(n => n !== self && isLive(n, peers))
          for (const node of sources) plan.set(node, [...(plan.get(node) ?? []), { coll, route, copy }])
        }
      }
      if (fullSync) await compareDigests(plan)
      await Promise.all([...plan].map(async ([node, items]) => { await pullFrom(node, items) }))
    }

    const cursorKey = (uid: string, shard: number, node: string): string => `${uid}/${shard}>${node}`

    /** Pulls pages from `node` until every listed replica is caught up on it (or it fails). */
    const pullFrom = async (node: string, items: Array<{ coll: Collection, route: ShardRoute, copy: boolean }>): Promise<void> => {
      let open = items
      while (open.length > 0 && !stopped) {
        const request: WireRequest = {
          op: 'sync',
          // a copy takes whole pages; a replica in sync asks for ids and versions, then fetches only what it lacks
          items: open.map(({ coll, route, copy }) => {
            const cur = cursors.get(cursorKey(collectionUid(coll), route.shard, node))
            return { c: wireOf(coll), shard: route.shard, since: cur?.seq ?? 0, instance: cur?.instance ?? null, light: !copy }
          }),
          limit: SYNC_PAGE_POINTS
        }
        for (const { coll, route, copy } of open) if (copy) copying.add(`${collectionUid(coll)}/${route.shard}`)
        let answer: WireSyncAnswer
        try {
          answer = await ask(node, request) as WireSyncAnswer
        } catch (err) {
          log.debug({ node, err: errorMessage(err) }, 'a co-replica did not answer a sync')
          for (const { coll, route } of open) copying.delete(`${collectionUid(coll)}/${route.shard}`)
          return
        }
        const next: typeof open = []
        for (let i = 0; i < open.length; i++) {
          const { coll, route, copy } = open[i]!
          const uid = collectionUid(coll)
          const page = answer[i]
          if (page === undefined) continue
          const ck = cursorKey(uid, route.shard, node)
          if (page === null) { copying.delete(`${uid}/${route.shard}`); continue }
          const prev = cursors.get(ck)
          // the co-replica was re-created (new instance): read it again from the start
          if (prev !== undefined && prev.instance !== page.instance && (request as { items: Array<{ since: number }> }).items[i]!.since > 0) {
            cursors.set(ck, { instance: page.instance, seq: 0 })
            next.push(open[i]!)
            continue
          }
          const key = { collection: uid, shard: route.shard }
          if (copy) {
            const full = page as WireSyncItem
            const points = unpackPoints(full, coll.dimensions)
            if (points.length > 0) await host.apply(key, points)
            stats.points_moved += points.length
            stats.bytes_moved += full.vectors.byteLength + full.ids.reduce((a, id) => a + id.length, 0) + JSON.stringify(full.metadata).length
          } else {
            const want = await host.newer(key, unpackVersions(page as WireVersionsItem))
            if (want.length > 0) {
              const fetched = unpackPoints(await ask(node, { op: 'fetch', c: wireOf(coll), shard: route.shard, ids: want }) as WireSyncItem, coll.dimensions)
              await host.apply(key, fetched)
              stats.points_synced += fetched.length
            }
          }
          cursors.set(ck, { instance: page.instance, seq: page.next })
          if (!page.done) { next.push(open[i]!); continue }
          if (copy) {
            copying.delete(`${uid}/${route.shard}`)
            const epoch = (await currentView()).epochs.at(-1)?.epoch ?? 0
            await client.commitAssignment({ collection: uid, shard: route.shard, epoch, state: 'serving', at: Date.now() })
            // what the copy holds, for operators tracing a move (seq and count of the new replica)
            const held = await host.stats(key)
            await client.recordCheckpoint({ collection: uid, shard: route.shard, epoch, seq: held.seq, count: held.count, at: Date.now() })
            copied.set(`${uid}/${route.shard}`, epoch)
            invalidate()
            stats.moves_completed++
            log.info({ replica: `${uid}/${route.shard}`, epoch, from: node.slice(0, 12) }, 'shard copy complete: serving')
          }
        }
        open = next
      }
    }

    /** Full sync: a co-replica whose digest differs from ours is pulled again from the start. */
    const compareDigests = async (plan: Map<string, Array<{ coll: Collection, route: ShardRoute, copy: boolean }>>): Promise<void> => {
      for (const [node, items] of plan) {
        for (const { coll, route, copy } of items) {
          if (copy) continue
          const uid = collectionUid(coll)
          try {
            const theirs = await ask(node, { op: 'digest', c: wireOf(coll), shard: route.shard }) as { buckets: string[] } | null
            const ours = await host.digest({ collection: uid, shard: route.shard })
            if (theirs !== null && theirs.buckets.some((b, i) => b !== ours.buckets[i])) {
              cursors.delete(cursorKey(uid, route.shard, node))
              log.info({ replica: `${uid}/${route.shard}`, peer: node.slice(0, 12) }, 'replica digests differ: pulling everything again')
            }
          } catch (err) {
            log.debug({ node, err: errorMessage(err) }, 'a co-replica did not give its digest')
          }
        }
      }
    }

    const loop = (ms: number, fn: () => Promise<void>, name: string, running: () => Promise<void> | undefined, set: (p: Promise<void> | undefined) => void): void => {
      timers.push(setInterval(() => {
        if (running() !== undefined || stopped) return
        const p = fn().catch((err: unknown) => { if (!stopped) log.warn({ err: errorMessage(err) }, `${name} failed; trying again`) }).finally(() => { set(undefined) })
        set(p)
      }, ms))
    }

    const svc = service({
      start: async () => {
        startedAt = Date.now()
        await host.start()
        await c.mesh.handle(MEMORY_PROTOCOL, serve.remote, { maxRequestBytes: MAX_MEMORY_WIRE_BYTES, timeoutMs: HOST_TIMEOUT_MS })
        loop(ringCheckMs, reconcile, 'the ring check', () => ticking, p => { ticking = p })
        loop(gossipMs, gossip, 'replica sync', () => gossiping, p => { gossiping = p })
      },
      stop: async () => {
        stopped = true
        for (const t of timers) clearInterval(t)
        await c.mesh.unhandle(MEMORY_PROTOCOL)
        await Promise.allSettled([ticking, gossiping])
        await host.stop()
      }
    })

    return Object.assign(svc, {
      host,
      capacity,
      createCollection,
      listCollections: async () => [...(await currentView(0)).collections.values()].sort((a, b) => a.name < b.name ? -1 : 1),
      describeCollection,
      deleteCollection,
      upsert,
      delete: remove,
      get,
      search,
      ring,
      stats: () => ({ ...stats }),
      vectors: async () => (await Promise.all(host.hosted().map(async spec => await host.stats(spec).then(s => s.count, () => 0)))).reduce((a, b) => a + b, 0),
      reconcile: async () => {
        await ticking
        const p = reconcile()
        ticking = p
        try { await p } finally { if (ticking === p) ticking = undefined }
        await gossiping
        const g = gossip()
        gossiping = g
        try { await g } finally { if (gossiping === g) gossiping = undefined }
      },
      routes: async (name: string) => routesOf(await currentView(), await collectionOf(name))
    })
  }
}

export const memoryDir = (dataDir: string): string => join(dataDir, 'memory')
