/**
 * The conductor's network seam: what the embedded conductor needs from the network (the cascade
 * on a local miss, the peers `agent_info` reports) and what the network needs from the conductor
 * (its running DNAs, their DHT spaces, records authored locally). The conductor takes a
 * `DhtNetworkFactory` among its components and builds its network at construction, handing it
 * the `DhtHost` side; without one it runs alone (no cascade, no peers).
 *
 * ```ts
 * const conductor = await EmbeddedConductor.open({ dataDir }, {
 *   keystore, logger,
 *   network: (host) => dhtNetwork({ syncIntervalMs: 5000 })({ host, mesh, logger })
 * })
 * await conductor.network?.start()
 * ```
 */
import type { HoloHash } from '../../holo/hash.ts'
import type { MeshNode } from '../../mesh/types.ts'
import type { CascadeQuery } from '../cell.ts'
import type { DhtSpace, NetRecord, ReceiveOptions, ReceiveOutcome } from '../space.ts'
import type { ArcStatus } from './authorities.ts'
import type { Presence } from './presence.ts'

export type AuthoredListener = (dna: HoloHash, records: NetRecord[]) => void

/** The conductor as the network sees it. */
export interface DhtHost {
  /** DNAs with a running cell */
  runningDnas: () => HoloHash[]
  /** the DHT space of a DNA this node runs, or null */
  space: (dna: Uint8Array) => DhtSpace | null
  /** validate and integrate records of another agent */
  receiveRecords: (dna: Uint8Array, records: NetRecord[], options?: ReceiveOptions) => ReceiveOutcome
  /** be told of every record a local cell commits; returns the unsubscribe */
  onAuthored: (fn: AuthoredListener) => () => void
}

/** The slice of the mesh the DHT network uses; its protocols are removed when it stops. */
export type DhtMesh = Pick<MeshNode, 'peerId' | 'request' | 'handle' | 'unhandle' | 'publish' | 'subscribe' | 'peers' | 'block' | 'onPeer'>

export interface SyncStats { requests: number, bytesSent: number, bytesReceived: number, records: number }

/** DHT records (ops) since start, beyond what sync fetched (`SyncStats.records`). */
export interface OpStats {
  /** records of local commits sent out: on gossip, or reaching at least one authority (republishes included) */
  published: number
  /** records received (gossip, publish, sync) that failed validation */
  rejected: number
}

export interface CascadeOptions {
  signal?: AbortSignal
  /** ms to wait for each authority. @default 2000 */
  timeoutMs?: number
}

/** One local miss, as `onCascade` listeners see it when it is over. */
export interface CascadeEvent {
  dna: HoloHash
  /** PeerIds asked, in the order they were asked */
  asked: string[]
  /** the first authority whose answer integrated something, or null */
  answeredBy: string | null
  /** requests still running when an answer won, aborted */
  abandoned: string[]
  /** records integrated */
  integrated: number
  ms: number
}

/** The DHT over the mesh, as the conductor and the node use it. */
export interface DhtNetwork {
  start: () => Promise<void>
  /** idempotent */
  stop: () => Promise<void>
  [Symbol.asyncDispose]: () => Promise<void>
  /**
   * A local miss: ask authorities for the records behind `query` and integrate what comes back.
   * Resolves with how many records integrated (0 when nobody answered).
   */
  cascade: (dna: HoloHash, query: CascadeQuery, options?: CascadeOptions) => Promise<number>
  /** this node's storage arc, the authorities seen for it and the arcs its peers claim */
  arcStatus: () => ArcStatus
  /** be told of every cascade when it is over; returns the unsubscribe */
  onCascade: (fn: (event: CascadeEvent) => void) => () => void
  /** what `agent_info` answers: one JSON record per connected peer */
  peerInfo: () => string[]
  /** pull from one peer, for every DNA, whatever it holds that we lack */
  syncWithPeer: (peer: string, options?: { signal?: AbortSignal }) => Promise<SyncStats>
  /** pull one DNA from one peer */
  syncDna: (peer: string, dna: HoloHash, options?: { signal?: AbortSignal }) => Promise<SyncStats>
  /** totals since start, for benchmarks and status */
  readonly totals: SyncStats
  /** gossip messages dropped by the per-peer rate limit */
  readonly droppedGossip: number
  /** records published and rejected since start */
  readonly ops: Readonly<OpStats>
  /** every node's signed, expiring liveness and load (ours included), gossiped, never on a chain */
  readonly presence: Presence
}

/** How the conductor builds its network: it hands over its own `DhtHost` side. */
export type DhtNetworkFactory = (host: DhtHost) => DhtNetwork
