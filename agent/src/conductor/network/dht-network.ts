/**
 * The DHT over the mesh: what a conductor's network layer does for every DNA it runs.
 *
 * - arcs: each node is an authority for the ops whose DHT location falls in its storage arc,
 *   sized so every location keeps `targetRedundancy` authorities (`authorities.ts`); a mesh
 *   smaller than that keeps full arcs. A node integrates only the ops in its arc.
 * - publish: every record a local cell commits goes out at once: on the DNA's gossip topic
 *   (`/flexstack/<network>/ops/<dna>`) while every arc is full, else straight to the
 *   authorities of each of its ops' bases.
 * - receive: gossip and sync deliver records to the conductor's DHT space, which validates and
 *   integrates them; each integrated record earns its author a signed validation receipt.
 * - republish: authors publish again the actions holding fewer receipts than they want.
 * - limbo lookups: what a record in limbo waits for (a previous action, a record its validation
 *   needs) is asked of that hash's authorities, as a local miss is; sync covers only the arc.
 * - anti-entropy: gossip is best effort, so nodes also reconcile over `/flexstack/<network>/sync/1`
 *   (on connect and every interval), over the sectors their arcs share (`../sectors.ts`): every
 *   DNA's digest first, in one request (one round trip when in sync; a node from before that
 *   request is asked per DNA), then sparse per-sector sums, answered with the hashes of
 *   small differing sectors and leaf sums of large ones, then the missing records. A node syncs
 *   one DNA with one peer at a time and fetches each missing record once, whoever lists it.
 * - warrants: invalid or forked chains produce warrants, gossiped on `warrants/<dna>`; every node
 *   checks the evidence itself and then blocks the warranted agent, its PeerId included.
 */
import { periodic, type Periodic } from '../../background.ts'
import { DisposedError, errorMessage } from '../../errors.ts'
import { decodeHash, dhtLocation, encodeHash, hashEquals, isHash, type HoloHash } from '../../holo/hash.ts'
import type { ComponentLogger } from '../../logger.ts'
import { agentPubKeyFromPeerId, peerIdFromAgentPubKey } from '../../identity/peer-id.ts'
import type { CascadeQuery } from '../cell.ts'
import { decode, encode, isPlainObject } from '../codec.ts'
import { checkNetRecord, DhtWireError, type DhtSpace, type NetRecord, type ReceiveOptions, type ReceiveOutcome } from '../space.ts'
import { differing, fromRuns, hasSector, intersect, LEAVES, packSums, SECTORS, sectorsOf, toRuns, unpackSums, type SectorSet } from '../sectors.ts'
import { produceOps } from '../ops.ts'
import { actionHashOf } from '../validation.ts'
import { ArcKeeper, type ArcStatus } from './authorities.ts'
import { PerPeerRateLimit } from './rate-limit.ts'
import type { Keystore } from '../../identity/keystore.ts'
import { meshPresence, type Presence } from './presence.ts'
import { RemoteError } from '../../mesh/types.ts'
import type { CascadeEvent, CascadeOptions, DhtHost, DhtMesh, DhtNetwork, OpStats, SyncStats } from './types.ts'

export type { SyncStats } from './types.ts'

/** ms between anti-entropy rounds unless configured */
export const DEFAULT_SYNC_INTERVAL_MS = 5000

export interface DhtNetworkInit {
  /** ms between anti-entropy rounds. @default 5000 */
  syncIntervalMs?: number
  /** ms between republish rounds. @default 15000 */
  republishIntervalMs?: number
  /** ms between lookups of what records in limbo wait for and this node lacks. @default syncIntervalMs */
  limboLookupIntervalMs?: number
  /** receipts an author wants per action (capped by the peers it has). @default 5 */
  receiptTarget?: number
  /** reconcile with every newly connected peer at once. @default true */
  syncOnConnect?: boolean
  /** ms a local miss waits for one authority before it also asks the next. @default 150 */
  hedgeDelayMs?: number
  /** authorities wanted per DHT location; a mesh with fewer nodes keeps full arcs. @default 5 */
  targetRedundancy?: number
  /** ms between two resizes of this node's storage arc. @default 30000 */
  arcResizeIntervalMs?: number
  /** ms between re-signs of this node's presence (its heartbeat interval; the expiry follows it). @default 10000 */
  presenceIntervalMs?: number
}

export interface DhtNetworkComponents {
  /** the conductor side: running DNAs, their spaces, locally authored records */
  host: DhtHost
  mesh: DhtMesh
  logger: ComponentLogger
  /** signs this node's presence, verifies everyone's */
  keystore: Pick<Keystore, 'sign' | 'verify'>
}

export const SYNC = {
  /** differing sectors answered per `sectors` request (the rest follow from its `next`) */
  maxSectors: 64,
  /** a differing sector holding at most this many ops is answered with its hashes, a larger one with its leaf sums */
  listUpTo: 32,
  /** [sector, leaf] pairs asked per `leaves` request */
  maxLeaves: 1024,
  /** hashes answered per hashes request */
  maxHashes: 4096,
  /** DNAs one `digests` request may name */
  maxDigestDnas: 64,
  /** hashes asked per fetch */
  maxFetch: 256,
  /** bytes of records answered per fetch */
  maxFetchBytes: 2 * 1024 * 1024,
  /** records per gossip message */
  maxGossipRecords: 64,
  /** gossip messages per second accepted from one sender (a token bucket); the rest are dropped */
  gossipPerPeerPerSecond: 50,
  /** burst size of that bucket */
  gossipPerPeerBurst: 200
} as const

const PROTOCOL_SYNC = 'sync'
/** authorities asked on a cascade miss */
const CASCADE_PEERS = 3
const CASCADE_TIMEOUT_MS = 2000
/** ms a cascade waits for an authority before it also asks the next one */
const CASCADE_HEDGE_MS = 150
/**
 * authorities whose "nothing here" settles a lookup: once this many answered empty and no one is
 * left to ask, the ones still silent get one more hedge delay, not their whole timeout
 */
const CASCADE_EMPTY_QUORUM = 2
/** rounds of predecessor fetching per cascade miss */
const CASCADE_ROUNDS = 32
/** what records in limbo wait for, looked up per DNA per round */
const LIMBO_LOOKUPS_PER_ROUND = 8
/** ms before a limbo dependency no authority gave is looked up again */
const LIMBO_LOOKUP_RETRY_MS = 10_000
const PROTOCOL_RECEIPT = 'receipt'

function opsTopic (dna: HoloHash): string { return `ops/${encodeHash(dna)}` }
function warrantTopic (dna: HoloHash): string { return `warrants/${encodeHash(dna)}` }

function isU8 (v: unknown): v is Uint8Array { return v instanceof Uint8Array }

/** A peer's digest of one DNA and its arc, as a `digest` or `digests` answer gives them. */
interface DigestProbe { digest: Uint8Array, arc: SectorSet }

function checkArc (v: unknown): SectorSet {
  const set = fromRuns(v)
  if (set === null) throw new DhtWireError('arc must be runs of sectors [first, count, ...] within 0..511')
  return set
}

/**
 * The DHT network over the mesh, in the service shape: `dhtNetwork(init)(components)`. The
 * conductor builds it through its `network` component (a `DhtNetworkFactory`), so `host` is the
 * conductor itself.
 */
export function dhtNetwork (init: DhtNetworkInit = {}): (components: DhtNetworkComponents) => DhtNetwork {
  return (components) => new MeshDhtNetwork(init, components)
}

class MeshDhtNetwork implements DhtNetwork {
  private readonly init: DhtNetworkInit
  private readonly c: DhtNetworkComponents
  private readonly log: ComponentLogger
  private readonly unsubscribe: Array<() => void> = []
  private readonly tasks: Periodic[] = []
  private readonly syncing = new Map<string, Promise<SyncStats>>()
  /** per DNA, the tail of its queue of syncs (one peer at a time) */
  private readonly dnaSyncs = new Map<string, Promise<unknown>>()
  /** action hashes some sync is fetching now */
  private readonly inflight = new Set<string>()
  /** limbo dependencies looked up, by hash: when they may be looked up again */
  private readonly limboLookups = new Map<string, number>()
  private running = false
  private stopped = false
  private readonly limit = new PerPeerRateLimit({ perSecond: SYNC.gossipPerPeerPerSecond, burst: SYNC.gossipPerPeerBurst })
  private readonly cascadeListeners = new Set<(event: CascadeEvent) => void>()
  /** this node's arc and the arcs its peers claim */
  readonly arcs: ArcKeeper
  /** gossip messages dropped by the per-peer rate limit */
  droppedGossip = 0
  /** totals since start, for benchmarks and status */
  readonly totals: SyncStats = { requests: 0, bytesSent: 0, bytesReceived: 0, records: 0 }
  /** records published and rejected since start */
  readonly ops: OpStats = { published: 0, rejected: 0 }
  readonly presence: Presence

  constructor (init: DhtNetworkInit, components: DhtNetworkComponents) {
    this.init = init
    this.c = components
    this.log = components.logger.forComponent('flexnode:dht-net')
    this.presence = meshPresence({ refreshIntervalMs: init.presenceIntervalMs })(components)
    const locationOf = (peer: string): number => dhtLocation(agentPubKeyFromPeerId(peer))
    this.arcs = new ArcKeeper({ targetRedundancy: init.targetRedundancy ?? init.receiptTarget, resizeIntervalMs: init.arcResizeIntervalMs }, {
      self: { peer: components.mesh.peerId, location: locationOf(components.mesh.peerId) },
      connected: () => components.mesh.peers(),
      locationOf,
      logger: components.logger
    })
  }

  /** This node's storage arc and what it knows of its peers'. */
  arcStatus (): ArcStatus {
    return this.arcs.status()
  }

  private space (dna: Uint8Array): DhtSpace | null {
    return this.c.host.space(dna)
  }

  async start (): Promise<void> {
    if (this.stopped) throw new DisposedError('DhtNetwork')
    if (this.running) return
    this.running = true
    const { mesh, host } = this.c
    await mesh.handle(PROTOCOL_SYNC, async (req, from) => this.serveSync(req, from), { maxRequestBytes: 1024 * 1024, timeoutMs: 15_000 })
    await mesh.handle(PROTOCOL_RECEIPT, async (req, from) => this.serveReceipts(req, from), { maxRequestBytes: 1024 * 1024 })
    for (const dna of host.runningDnas()) {
      const space = this.space(dna)
      if (space !== null) space.authority = (location) => this.arcs.holds(location)
      this.unsubscribe.push(mesh.subscribe(opsTopic(dna), (data, from) => { this.onGossip(dna, data, from) }))
      this.unsubscribe.push(mesh.subscribe(warrantTopic(dna), (data, from) => { this.onWarrant(dna, data, from) }))
      if (space !== null) this.blockAgents(space.blockedAgents().map(s => decodeHash(s)))
    }
    this.unsubscribe.push(host.onAuthored((dna, records) => { void this.publish(dna, records) }))
    if (this.init.syncOnConnect !== false) this.unsubscribe.push(mesh.onPeer('connect', (peer) => { this.syncInBackground(peer) }))
    // the rounds touch the database and the network: a failure (a damaged table, a closed store)
    // is logged and backed off, never thrown out of a timer
    this.tasks.push(
      periodic({ name: 'dht sync round', intervalMs: this.init.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS }, async () => { await this.syncRound() }, this.log),
      periodic({ name: 'dht republish round', intervalMs: this.init.republishIntervalMs ?? 15_000 }, async () => { await this.republishRound() }, this.log),
      periodic({ name: 'dht limbo lookups', intervalMs: this.init.limboLookupIntervalMs ?? this.init.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS }, async () => { await this.lookUpLimboDependencies() }, this.log)
    )
    if (this.init.syncOnConnect !== false) for (const peer of mesh.peers()) this.syncInBackground(peer)
    await this.presence.start()
  }

  async stop (): Promise<void> {
    this.stopped = true
    if (!this.running) return
    await this.presence.stop()
    this.running = false
    await Promise.all(this.tasks.map(async t => { await t.stop() }))
    this.tasks.length = 0
    for (const u of this.unsubscribe) u()
    this.unsubscribe.length = 0
    await Promise.allSettled([this.c.mesh.unhandle(PROTOCOL_SYNC), this.c.mesh.unhandle(PROTOCOL_RECEIPT)])
    await Promise.allSettled([...this.syncing.values()])
  }

  async [Symbol.asyncDispose] (): Promise<void> {
    await this.stop()
  }

  /** One JSON record per connected peer while running; none otherwise. */
  peerInfo (): string[] {
    if (!this.running) return []
    return this.c.mesh.peers().map(p => JSON.stringify({ agent_pub_key: encodeHash(agentPubKeyFromPeerId(p)), peer_id: p }))
  }

  // -- publish and gossip ------------------------------------------------------------------

  private async publish (dna: HoloHash, records: NetRecord[]): Promise<void> {
    if (!this.arcs.allFull()) {
      await this.publishToAuthorities(dna, records)
      return
    }
    for (let i = 0; i < records.length; i += SYNC.maxGossipRecords) {
      try {
        const chunk = records.slice(i, i + SYNC.maxGossipRecords)
        await this.c.mesh.publish(opsTopic(dna), encode({ records: chunk }))
        this.ops.published += chunk.length
      } catch (err) {
        this.log.debug({ err: errorMessage(err) }, 'publish failed; sync will carry the records')
      }
    }
  }

  /**
   * Send each record to the authorities of its ops' bases (the nearest holders of each basis, as
   * many as the coverage band's top), one request per peer.
   */
  private async publishToAuthorities (dna: HoloHash, records: NetRecord[]): Promise<void> {
    const perPeer = new Map<string, NetRecord[]>()
    const cap = Math.ceil(this.arcs.targetRedundancy * 1.143) + 1
    for (const r of records) {
      const d = r.action.data
      const pub = (d.type === 'Create' || d.type === 'Update') && r.entry !== null
      const to = new Set<string>()
      for (const op of produceOps({ action: r.action, hash: actionHashOf(r.action), signature: r.signature }, pub)) {
        for (const peer of this.arcs.authorities(op.location, { max: cap })) to.add(peer)
      }
      for (const peer of to) perPeer.set(peer, [...(perPeer.get(peer) ?? []), r])
    }
    /** records that reached at least one authority */
    const delivered = new Set<NetRecord>()
    await Promise.allSettled([...perPeer].map(async ([peer, list]) => {
      for (let i = 0; i < list.length; i += SYNC.maxGossipRecords) {
        try {
          const chunk = list.slice(i, i + SYNC.maxGossipRecords)
          await this.c.mesh.request(peer, PROTOCOL_SYNC, encode({ op: 'publish', dna, records: chunk }), { timeoutMs: 5000 })
          for (const r of chunk) delivered.add(r)
        } catch (err) {
          this.log.debug({ peer, err: errorMessage(err) }, 'publish to an authority failed; republish and sync will carry the records')
          return
        }
      }
    }))
    this.ops.published += delivered.size
  }

  /** A token bucket per sender, so one flooding peer cannot monopolize validation. */
  private admit (from: string): boolean {
    if (this.limit.admit(from)) return true
    this.droppedGossip++
    return false
  }

  private onGossip (dna: HoloHash, data: Uint8Array, from: string): void {
    if (!this.running || !this.admit(from)) return
    let records: NetRecord[]
    try {
      const msg = decode(data)
      if (!isPlainObject(msg) || !Array.isArray(msg.records) || msg.records.length > SYNC.maxGossipRecords) throw new DhtWireError('expected {records: [...]} of at most 64 records')
      records = msg.records.map(checkNetRecord)
    } catch (err) {
      this.log.debug({ from, err: errorMessage(err) }, 'dropped a malformed gossip message')
      return
    }
    this.receive(dna, records)
  }

  /** Hand records to the conductor and act on the outcome: receipts, warrants, blocks. */
  private receive (dna: HoloHash, records: NetRecord[], options?: ReceiveOptions): ReceiveOutcome | null {
    let out: ReceiveOutcome
    try {
      out = this.c.host.receiveRecords(dna, records, options)
    } catch (err) {
      this.log.debug({ err: errorMessage(err) }, 'records refused')
      return null
    }
    this.ops.rejected += out.rejected.length
    for (const w of out.warrants) {
      this.blockAgents([w.warrantee])
      void this.c.mesh.publish(warrantTopic(dna), encode({ warrant: w })).catch(() => {})
    }
    if (out.integrated.length > 0) {
      this.sendReceipts(dna, out).catch((err: unknown) => { this.log.warn({ err: errorMessage(err) }, 'sending validation receipts failed') })
    }
    return out
  }

  private onWarrant (dna: HoloHash, data: Uint8Array, from: string): void {
    const space = this.space(dna)
    if (space === null || !this.admit(from)) return
    try {
      const msg = decode(data)
      if (!isPlainObject(msg)) return
      const verdict = space.receiveWarrant(msg.warrant)
      if (verdict.accepted && verdict.warrant !== undefined) this.blockAgents([verdict.warrant.warrantee])
      else this.log.debug({ from, reason: verdict.reason }, 'ignored a warrant')
    } catch (err) {
      this.log.debug({ from, err: errorMessage(err) }, 'dropped a malformed warrant')
    }
  }

  private blockAgents (agents: HoloHash[]): void {
    const peers = agents.map(a => peerIdFromAgentPubKey(a)).filter(p => p !== this.c.mesh.peerId)
    if (peers.length > 0) this.c.mesh.block(peers)
  }

  // -- receipts and republish --------------------------------------------------------------

  private async sendReceipts (dna: HoloHash, out: ReceiveOutcome): Promise<void> {
    const space = this.space(dna)
    if (space === null) return
    const byAuthor = new Map<string, HoloHash[]>()
    for (const sa of out.integrated) {
      const peer = peerIdFromAgentPubKey(sa.action.header.author)
      if (peer === this.c.mesh.peerId) continue
      byAuthor.set(peer, [...(byAuthor.get(peer) ?? []), sa.hash])
    }
    const connected = new Set(this.c.mesh.peers())
    await Promise.allSettled([...byAuthor].filter(([peer]) => connected.has(peer)).map(async ([peer, hashes]) => {
      await this.c.mesh.request(peer, PROTOCOL_RECEIPT, encode({ dna, receipts: hashes.map(h => space.makeReceipt(h)) }), { timeoutMs: 5000 })
    }))
  }

  private async serveReceipts (req: Uint8Array, _from: string): Promise<Uint8Array> {
    const msg = decode(req)
    if (!isPlainObject(msg) || !isHash(msg.dna, 'Dna') || !Array.isArray(msg.receipts) || msg.receipts.length > 4096) throw new DhtWireError('expected {dna, receipts: [...]}')
    const space = this.space(msg.dna)
    if (space === null) throw new DhtWireError('DnaMissing')
    let stored = 0
    for (const r of msg.receipts) if (space.receiveReceipt(r)) stored++
    return encode({ stored })
  }

  private async republishRound (): Promise<void> {
    const peers = this.c.mesh.peers().length
    if (!this.running || peers === 0) return
    const target = Math.min(this.init.receiptTarget ?? 5, peers)
    for (const dna of this.c.host.runningDnas()) {
      const space = this.space(dna)
      if (space === null) continue
      const hashes = space.underReceipted(target, 256)
      if (hashes.length > 0) await this.publish(dna, space.records(hashes, SYNC.maxFetchBytes))
    }
  }

  // -- the cascade -------------------------------------------------------------------------

  /**
   * A local miss: ask the authorities for the records behind `query`, integrate what comes back,
   * and return on the first answer that integrates something. Authorities are asked one after
   * another, each `hedgeDelayMs` after the last (or at once when one fails or has nothing), so
   * one frozen authority costs a hedge delay, not its timeout; the requests still running when
   * an answer wins are abandoned. What two authorities answer they do not hold is taken as
   * absent one hedge delay later, whoever is still silent. A record whose author's earlier
   * actions this node lacks waits in limbo, and its predecessors are pulled the same way
   * (bounded rounds).
   */
  async cascade (dna: HoloHash, query: CascadeQuery, opts: CascadeOptions = {}): Promise<number> {
    if (this.stopped) throw new DisposedError('DhtNetwork')
    if (!this.running) return 0
    opts.signal?.throwIfAborted()
    const space = this.space(dna)
    const basis = 'base' in query ? query.base : query.hashes[0]
    const peers = basis === undefined ? [] : this.candidates(dhtLocation(basis))
    if (space === null || peers.length === 0) return 0
    const started = performance.now()
    const report: CascadeEvent = { dna, asked: [], answeredBy: null, abandoned: [], integrated: 0, ms: 0 }
    let links = 'base' in query ? query : undefined
    let want = 'hashes' in query ? query.hashes.slice(0, SYNC.maxFetch) : []
    try {
      for (let round = 0; round < CASCADE_ROUNDS && (want.length > 0 || links !== undefined); round++) {
        opts.signal?.throwIfAborted()
        const req = links !== undefined ? encode({ op: 'links', dna, base: links.base, zome_index: links.zome_index, link_type: links.link_type }) : encode({ op: 'basis', dna, hashes: want })
        links = undefined
        const won = await this.firstAnswer(space, peers, req, opts, report)
        if (won === null) break
        // the next rounds ask the authority that answered first
        peers.sort((a, b) => Number(b === report.answeredBy) - Number(a === report.answeredBy))
        want = won.pending > 0 ? space.missingPrevs(SYNC.maxFetch) : []
      }
    } finally {
      report.ms = performance.now() - started
      for (const fn of this.cascadeListeners) fn(report)
    }
    return report.integrated
  }

  /**
   * Whom a local miss asks, in order: up to three authorities of the location in random order
   * (so no one authority takes every lookup), then other peers to make up three.
   */
  private candidates (location: number): string[] {
    const shuffle = (a: string[]): string[] => a.sort(() => Math.random() - 0.5)
    const holders = shuffle(this.arcs.authorities(location)).slice(0, CASCADE_PEERS)
    const others = shuffle(this.c.mesh.peers().filter(p => !holders.includes(p)))
    return [...holders, ...others].slice(0, Math.max(CASCADE_PEERS, holders.length))
  }

  /** Be told of every cascade: who was asked, who answered, which requests were abandoned. */
  onCascade (fn: (event: CascadeEvent) => void): () => void {
    this.cascadeListeners.add(fn)
    return () => { this.cascadeListeners.delete(fn) }
  }

  /**
   * Ask `peers` in turn (hedged) until one answer integrates something or parks something in
   * limbo (its predecessors are then pulled by the next round); abort the rest. Resolves
   * with that answer's outcome, or null when every peer failed, timed out or had nothing new.
   */
  private async firstAnswer (space: DhtSpace, peers: string[], req: Uint8Array, opts: CascadeOptions, report: CascadeEvent): Promise<{ pending: number } | null> {
    const hedgeMs = this.init.hedgeDelayMs ?? CASCADE_HEDGE_MS
    const running = new Map<string, AbortController>()
    let next = 0
    let outstanding = 0
    /** answers from authorities that hold nothing of what was asked */
    let empties = 0
    const askedAt = new Map<string, number>()
    let hedge: ReturnType<typeof setTimeout> | undefined
    return await new Promise<{ pending: number } | null>((resolve) => {
      let settled = false
      const finish = (value: { pending: number } | null): void => {
        if (settled) return
        settled = true
        clearTimeout(hedge)
        for (const [peer, controller] of running) {
          if (!report.abandoned.includes(peer)) report.abandoned.push(peer)
          controller.abort(new DisposedError('cascade: another authority answered first'))
        }
        running.clear()
        opts.signal?.removeEventListener('abort', onAbort)
        resolve(value)
      }
      const onAbort = (): void => { finish(null) }
      opts.signal?.addEventListener('abort', onAbort, { once: true })
      const launch = (): void => {
        clearTimeout(hedge)
        if (settled) return
        if (next >= peers.length) {
          if (outstanding === 0) finish(null)
          // absent, as far as enough authorities know: the silent ones get a hedge delay each, from
          // when they were asked, and are not waited out
          else if (empties >= CASCADE_EMPTY_QUORUM) {
            const youngest = Math.max(...[...running.keys()].map(p => askedAt.get(p) ?? 0))
            hedge = setTimeout(() => { finish(null) }, Math.max(0, youngest + hedgeMs - performance.now()))
          }
          return
        }
        const peer = peers[next++]!
        const controller = new AbortController()
        const signal = opts.signal === undefined ? controller.signal : AbortSignal.any([opts.signal, controller.signal])
        running.set(peer, controller)
        askedAt.set(peer, performance.now())
        outstanding++
        if (!report.asked.includes(peer)) report.asked.push(peer)
        hedge = setTimeout(launch, hedgeMs)
        this.c.mesh.request(peer, PROTOCOL_SYNC, req, { signal, timeoutMs: opts.timeoutMs ?? CASCADE_TIMEOUT_MS, maxResponseBytes: SYNC.maxFetchBytes + 1024 * 1024 })
          .then((bytes) => {
            if (settled) return
            const before = space.pendingCount()
            // a node that is no authority may name the ones it knows: ask those too
            const { notAuthority, hints } = this.hints(bytes)
            for (const hint of hints) if (!peers.includes(hint)) peers.push(hint)
            const out = this.receive(space.dna.hash, this.answerRecords(bytes), { cache: true })
            if (out !== null && (out.integrated.length > 0 || out.pending > before)) {
              running.delete(peer)
              report.answeredBy ??= peer
              report.integrated += out.integrated.length
              finish({ pending: out.pending })
            } else if (!notAuthority) {
              empties++
            }
          }, () => { /* failed, timed out or abandoned: the others may still answer */ })
          .finally(() => {
            running.delete(peer)
            outstanding--
            // an authority that failed or had nothing: ask the next one now rather than after the hedge delay
            if (!settled) launch()
          })
      }
      launch()
    })
  }

  /** Whether an answer says "not an authority", and the connected peers it names instead. */
  private hints (bytes: Uint8Array): { notAuthority: boolean, hints: string[] } {
    try {
      const msg = decode(bytes)
      if (!isPlainObject(msg) || msg.not_authority !== true) return { notAuthority: false, hints: [] }
      if (!Array.isArray(msg.authorities)) return { notAuthority: true, hints: [] }
      const connected = new Set(this.c.mesh.peers())
      return { notAuthority: true, hints: msg.authorities.slice(0, 8).filter((p): p is string => typeof p === 'string' && connected.has(p)) }
    } catch {
      return { notAuthority: false, hints: [] }
    }
  }

  /** The well-formed records of a cascade answer (a malformed answer or record counts as none). */
  private answerRecords (bytes: Uint8Array): NetRecord[] {
    const records: NetRecord[] = []
    try {
      const msg = decode(bytes)
      if (!isPlainObject(msg) || !Array.isArray(msg.records)) return records
      for (const r of msg.records) {
        try { records.push(checkNetRecord(r)) } catch { /* skip a malformed record */ }
      }
    } catch { /* not msgpack */ }
    return records
  }

  // -- anti-entropy ------------------------------------------------------------------------

  /** A sync started by an event (a new peer): its failure is logged, never left unhandled. */
  private syncInBackground (peer: string): void {
    this.syncWithPeer(peer).catch((err: unknown) => { this.log.warn({ peer, err: errorMessage(err) }, 'sync with a new peer failed') })
  }

  private async syncRound (): Promise<void> {
    if (!this.running) return
    this.arcs.resize()
    // one DNA's limbo failing (a damaged table) does not stop the others, nor the sync itself;
    // the round still fails afterwards, so it is logged and backed off
    let limboError: unknown
    for (const dna of this.c.host.runningDnas()) {
      try {
        this.space(dna)?.retryLimbo()
      } catch (err) {
        limboError ??= err
      }
    }
    const peers = this.c.mesh.peers()
    if (peers.length > 0) {
      // two random peers per round: every pair meets often, the cost stays flat as the mesh grows
      const picks = new Set<string>()
      while (picks.size < Math.min(2, peers.length)) picks.add(peers[Math.floor(Math.random() * peers.length)]!)
      await Promise.allSettled([...picks].map(async p => await this.syncWithPeer(p)))
    }
    if (limboError !== undefined) throw limboError
  }

  /**
   * What records in limbo wait for and this node lacks (a previous action, a record app
   * validation needs) is asked of its authorities, as a local miss is (the cascade). Sync alone
   * never brings it when it lies outside this node's arc: a record whose Update's original the
   * node never held would wait out the limbo's lifetime. A few per DNA per round (its own
   * periodic task), each again only after LIMBO_LOOKUP_RETRY_MS when no authority gave it.
   */
  private async lookUpLimboDependencies (): Promise<void> {
    if (!this.running) return
    const now = Date.now()
    for (const [key, until] of this.limboLookups) if (until <= now) this.limboLookups.delete(key)
    const lookups: Array<Promise<number>> = []
    for (const dna of this.c.host.runningDnas()) {
      const space = this.space(dna)
      if (space === null || space.pendingCount() === 0) continue
      const due = space.missingPrevs(LIMBO_LOOKUPS_PER_ROUND * 4).filter(h => !this.limboLookups.has(encodeHash(h))).slice(0, LIMBO_LOOKUPS_PER_ROUND)
      for (const h of due) {
        this.limboLookups.set(encodeHash(h), now + LIMBO_LOOKUP_RETRY_MS)
        lookups.push(this.cascade(dna, { hashes: [h] }))
      }
    }
    for (const r of await Promise.allSettled(lookups)) {
      if (r.status === 'rejected') this.log.debug({ err: errorMessage(r.reason) }, 'looking up what a record in limbo waits for failed')
    }
  }

  /**
   * Pull from one peer, for every DNA, whatever it holds that we lack. A sync with that peer
   * already running is joined (and `signal` then only governs the one that started it).
   */
  async syncWithPeer (peer: string, options: { signal?: AbortSignal } = {}): Promise<SyncStats> {
    const running = this.syncing.get(peer)
    if (running !== undefined) return running
    const p = (async () => {
      const total: SyncStats = { requests: 0, bytesSent: 0, bytesReceived: 0, records: 0 }
      const dnas = this.c.host.runningDnas()
      // one round trip for every DNA's digest; only the DNAs that differ go on
      let probes: Map<string, DigestProbe | null> | undefined
      try {
        probes = await this.probeDigests(peer, dnas, total, options.signal)
      } catch (err) {
        // not answering (not started yet, gone, timed out) or answering junk: not this time
        this.log.debug({ peer, err: errorMessage(err) }, 'sync skipped: the peer did not answer for its digests')
        return total
      }
      for (const dna of dnas) {
        if (!this.running || options.signal?.aborted === true) break
        const probe = probes?.get(encodeHash(dna))
        if (probe === null) continue
        try {
          const s = await this.syncDna(peer, dna, { ...options, probe })
          total.requests += s.requests
          total.bytesSent += s.bytesSent
          total.bytesReceived += s.bytesReceived
          total.records += s.records
        } catch (err) {
          this.log.debug({ peer, dna: encodeHash(dna), err: errorMessage(err) }, 'sync failed')
        }
      }
      return total
    })().finally(() => { this.syncing.delete(peer) })
    this.syncing.set(peer, p)
    return p
  }

  /**
   * The peer's digests of `dnas` over the sectors both arcs share, in one request. Per DNA: its
   * digest and arc, or null when the DNA is in sync (its claim is then confirmed) or the peer does
   * not run it. Undefined when the peer refuses the request (an older node): each DNA then asks
   * alone. Throws when the peer does not answer, or answers junk.
   */
  private async probeDigests (peer: string, dnas: HoloHash[], stats: SyncStats, signal?: AbortSignal): Promise<Map<string, DigestProbe | null> | undefined> {
    if (dnas.length === 0 || dnas.length > SYNC.maxDigestDnas) return undefined
    const mine = this.myArc()
    let res: Record<string, unknown>
    try {
      res = await this.ask(peer, { op: 'digests', dnas, arc: toRuns(mine) }, stats, signal)
    } catch (err) {
      // an older node refuses the op: each DNA then asks alone
      if (!(err instanceof RemoteError)) throw err
      this.log.debug({ peer, err: errorMessage(err) }, 'digests refused; asking per DNA')
      return undefined
    }
    const digests = res.digests
    if (!Array.isArray(digests) || digests.length !== dnas.length || !digests.every(d => d === null || (d instanceof Uint8Array && d.length === 32))) {
      throw new DhtWireError('malformed digests response')
    }
    const theirArc = checkArc(res.arc)
    this.arcs.claim(peer, theirArc)
    const common = intersect(mine, theirArc)
    const out = new Map<string, DigestProbe | null>()
    for (const [i, dna] of dnas.entries()) {
      const digest = digests[i] as Uint8Array | null
      const space = this.space(dna)
      if (digest === null || space === null) { out.set(encodeHash(dna), null); continue }
      if (hashEquals(digest, space.digest(common))) {
        this.arcs.confirm(peer, theirArc)
        out.set(encodeHash(dna), null)
      } else {
        out.set(encodeHash(dna), { digest, arc: theirArc })
      }
    }
    return out
  }

  private async ask (peer: string, body: Record<string, unknown>, stats: SyncStats, signal?: AbortSignal): Promise<Record<string, unknown>> {
    const req = encode(body)
    const res = await this.c.mesh.request(peer, PROTOCOL_SYNC, req, { signal, timeoutMs: 15_000, maxResponseBytes: SYNC.maxFetchBytes + 1024 * 1024 })
    stats.requests++
    stats.bytesSent += req.length
    stats.bytesReceived += res.length
    this.totals.requests++
    this.totals.bytesSent += req.length
    this.totals.bytesReceived += res.length
    const msg = decode(res)
    if (!isPlainObject(msg)) throw new DhtWireError('malformed sync response')
    return msg
  }

  /** The sectors this node is an authority for. */
  private myArc (): SectorSet {
    return this.arcs.sectors
  }

  /**
   * Pull one DNA from one peer, over the sectors both hold. Syncs of one DNA run one at a time
   * (a late joiner's second peer then usually answers "in sync" in one round trip).
   */
  async syncDna (peer: string, dna: HoloHash, options: { signal?: AbortSignal, probe?: DigestProbe } = {}): Promise<SyncStats> {
    const key = encodeHash(dna)
    const before = this.dnaSyncs.get(key) ?? Promise.resolve()
    const run = before.then(async () => await this.syncDnaNow(peer, dna, options))
    const tail = run.catch(() => undefined)
    this.dnaSyncs.set(key, tail)
    void tail.then(() => { if (this.dnaSyncs.get(key) === tail) this.dnaSyncs.delete(key) })
    return await run
  }

  private async syncDnaNow (peer: string, dna: HoloHash, options: { signal?: AbortSignal, probe?: DigestProbe }): Promise<SyncStats> {
    const signal = options.signal
    const stats: SyncStats = { requests: 0, bytesSent: 0, bytesReceived: 0, records: 0 }
    const space = this.space(dna)
    if (space === null || !this.running) return stats
    const mine = this.myArc()
    // equal digests over the shared sectors: nothing to do (the common case once converged); a
    // digest fetched with the others' (`probe`) is not asked for again
    let probe: DigestProbe
    if (options.probe !== undefined) {
      probe = options.probe
    } else {
      const res = await this.ask(peer, { op: 'digest', dna, arc: toRuns(mine) }, stats, signal)
      if (!(res.digest instanceof Uint8Array)) throw new DhtWireError('malformed digest response')
      probe = { digest: res.digest, arc: checkArc(res.arc) }
      this.arcs.claim(peer, probe.arc)
    }
    const theirArc = probe.arc
    const common = intersect(mine, theirArc)
    if (hashEquals(probe.digest, space.digest(common))) {
      // the peer holds what this node holds where their arcs meet: its claim counts from now on
      // (a probe fetched with the other DNAs' may be older than the peer's latest claim)
      this.arcs.confirm(peer, theirArc)
      return stats
    }
    let from: number | null = 0
    while (from !== null && this.running) {
      const sums = packSums([...space.sectorSums(common)].filter(([s]) => s >= from!))
      const res = await this.ask(peer, { op: 'sectors', dna, arc: toRuns(mine), sums, from }, stats, signal)
      const { hashes, split, next } = res
      if (!Array.isArray(hashes) || hashes.length > SYNC.maxHashes || !hashes.every(h => isHash(h, 'Action')) || !Array.isArray(split) || split.length > SYNC.maxSectors ||
        !(next === null || (Number.isInteger(next) && (next as number) > from && (next as number) < SECTORS))) {
        throw new DhtWireError('malformed sectors response')
      }
      const want: HoloHash[] = []
      for (const h of hashes as HoloHash[]) {
        // a record held already, listed for sectors this node's arc has grown into: take its ops there
        if (space.knows(h)) space.adopt(h)
        else want.push(h)
      }
      const leaves: Array<[number, number]> = []
      for (const entry of split) {
        const theirs = Array.isArray(entry) && entry.length === 2 && Number.isInteger(entry[0]) && hasSector(common, entry[0] as number) ? unpackSums(entry[1], LEAVES) : null
        if (theirs === null) throw new DhtWireError('malformed sectors response')
        const sector = entry[0] as number
        for (const leaf of differing(space.leafSums(sector), theirs, theirs.keys())) leaves.push([sector, leaf])
      }
      for (let i = 0; i < leaves.length; i += SYNC.maxLeaves) {
        const got = await this.ask(peer, { op: 'leaves', dna, leaves: leaves.slice(i, i + SYNC.maxLeaves) }, stats, signal)
        if (!Array.isArray(got.hashes) || got.hashes.length > SYNC.maxHashes || !got.hashes.every(h => isHash(h, 'Action'))) throw new DhtWireError('malformed leaves response')
        for (const h of got.hashes as HoloHash[]) {
          if (space.knows(h)) space.adopt(h)
          else want.push(h)
        }
      }
      await this.fetchMissing(peer, space, want, stats, signal)
      from = next as number | null
    }
    return stats
  }

  /**
   * Fetch records this node lacks from `peer` and integrate them. A record another sync is
   * already fetching is left to it: each missing record is fetched once, whoever lists it.
   */
  private async fetchMissing (peer: string, space: DhtSpace, hashes: HoloHash[], stats: SyncStats, signal?: AbortSignal): Promise<void> {
    const dna = space.dna.hash
    const mine: string[] = []
    const want: HoloHash[] = []
    for (const h of hashes) {
      const key = encodeHash(h)
      if (this.inflight.has(key) || mine.includes(key)) continue
      this.inflight.add(key)
      mine.push(key)
      want.push(h)
    }
    try {
      for (let j = 0; j < want.length; j += SYNC.maxFetch) {
        const got = await this.ask(peer, { op: 'fetch', dna, hashes: want.slice(j, j + SYNC.maxFetch) }, stats, signal)
        if (!Array.isArray(got.records)) throw new DhtWireError('malformed fetch response')
        const records: NetRecord[] = []
        for (const r of got.records) {
          try { records.push(checkNetRecord(r)) } catch { /* a malformed record is skipped; the rest still count */ }
        }
        if (records.length === 0) break
        const out = this.receive(dna, records)
        stats.records += out?.integrated.length ?? 0
        this.totals.records += out?.integrated.length ?? 0
      }
    } finally {
      for (const key of mine) this.inflight.delete(key)
    }
  }

  /**
   * What a local miss gets back: the records held, or, from a node that holds none and is no
   * authority for the location, "not an authority" and the authorities it knows (never an error,
   * so the asker moves on at once).
   */
  private authorityAnswer (records: NetRecord[], location: number): Uint8Array {
    if (records.length > 0 || this.arcs.holds(location)) return encode({ records })
    return encode({ records, not_authority: true, authorities: this.arcs.authorities(location, { max: 8, claimedOnly: true }) })
  }

  /** Every named DNA's digest over the sectors both arcs share (null for a DNA not run here). */
  private serveDigests (msg: Record<string, unknown>, from: string): Uint8Array {
    const dnas = msg.dnas
    if (!Array.isArray(dnas) || dnas.length === 0 || dnas.length > SYNC.maxDigestDnas || !dnas.every(d => isHash(d, 'Dna'))) {
      throw new DhtWireError(`dnas must be 1 to ${SYNC.maxDigestDnas} DNA hashes`)
    }
    const mine = this.myArc()
    const theirs = checkArc(msg.arc)
    this.arcs.claim(from, theirs)
    const common = intersect(mine, theirs)
    return encode({ arc: toRuns(mine), digests: (dnas as HoloHash[]).map(d => this.space(d)?.digest(common) ?? null) })
  }

  private async serveSync (req: Uint8Array, from: string): Promise<Uint8Array> {
    const msg = decode(req)
    if (isPlainObject(msg) && msg.op === 'digests') return this.serveDigests(msg, from)
    if (!isPlainObject(msg) || typeof msg.op !== 'string' || !isHash(msg.dna, 'Dna')) throw new DhtWireError('expected {op, dna, ...}')
    const space = this.space(msg.dna)
    if (space === null) throw new DhtWireError(`DnaMissing: this node does not run ${encodeHash(msg.dna)}`)
    switch (msg.op) {
      case 'digest': {
        const mine = this.myArc()
        const theirs = checkArc(msg.arc)
        this.arcs.claim(from, theirs)
        return encode({ arc: toRuns(mine), digest: space.digest(intersect(mine, theirs)) })
      }
      case 'sectors': {
        const theirArc = checkArc(msg.arc)
        this.arcs.claim(from, theirArc)
        const common = intersect(this.myArc(), theirArc)
        const theirs = unpackSums(msg.sums, SECTORS)
        if (theirs === null) throw new DhtWireError('sums must be packed sector sums (13 bytes each, at most 512)')
        const start = msg.from ?? 0
        if (!Number.isInteger(start) || (start as number) < 0 || (start as number) >= SECTORS) throw new DhtWireError('from must be a sector, 0..511')
        const scope = sectorsOf(common).filter(s => s >= (start as number))
        const mine = space.sectorSums(common)
        const hashes: Uint8Array[] = []
        const listed = new Set<string>()
        const split: Array<[number, Uint8Array]> = []
        let next: number | null = null
        let answered = 0
        for (const sector of differing(mine, theirs, scope)) {
          const count = space.sectorCount(sector)
          if (count === 0) continue
          if (answered >= SYNC.maxSectors || hashes.length + Math.min(count, SYNC.listUpTo) > SYNC.maxHashes) {
            next = sector
            break
          }
          answered++
          if (count <= SYNC.listUpTo) {
            for (const h of space.actionsIn([sector], SYNC.listUpTo)) {
              const key = encodeHash(h)
              if (!listed.has(key)) { listed.add(key); hashes.push(h) }
            }
          } else {
            split.push([sector, packSums(space.leafSums(sector))])
          }
        }
        return encode({ hashes, split, next })
      }
      case 'leaves': {
        const leaves = msg.leaves
        if (!Array.isArray(leaves) || leaves.length > SYNC.maxLeaves || !leaves.every(l => Array.isArray(l) && l.length === 2 && Number.isInteger(l[0]) && Number.isInteger(l[1]) &&
          l[0] >= 0 && l[0] < SECTORS && l[1] >= 0 && l[1] < LEAVES)) {
          throw new DhtWireError(`leaves must be at most ${SYNC.maxLeaves} [sector, leaf] pairs`)
        }
        return encode({ hashes: space.actionsIn(leaves as Array<[number, number]>, SYNC.maxHashes) })
      }
      case 'basis': {
        const hashes = msg.hashes
        if (!Array.isArray(hashes) || hashes.length === 0 || hashes.length > SYNC.maxFetch || !hashes.every(h => isHash(h))) throw new DhtWireError(`hashes must be 1 to ${SYNC.maxFetch} HoloHashes`)
        return this.authorityAnswer(space.recordsByBasis(hashes as HoloHash[], SYNC.maxFetchBytes), dhtLocation(hashes[0] as HoloHash))
      }
      case 'links': {
        const { base, zome_index: zi, link_type: lt } = msg
        if (!isHash(base) || !Number.isInteger(zi) || !Number.isInteger(lt) || (zi as number) < 0 || (lt as number) < 0 || (zi as number) > 255 || (lt as number) > 255) throw new DhtWireError('expected {base: HoloHash, zome_index, link_type}')
        return this.authorityAnswer(space.linkRecords(base, zi as number, lt as number, SYNC.maxFetch, SYNC.maxFetchBytes), dhtLocation(base))
      }
      case 'publish': {
        if (!this.admit(from)) throw new DhtWireError('RateLimited: too many publishes from this peer')
        if (!Array.isArray(msg.records) || msg.records.length > SYNC.maxGossipRecords) throw new DhtWireError(`records must be at most ${SYNC.maxGossipRecords} records`)
        const out = this.receive(msg.dna, msg.records.map(checkNetRecord))
        return encode({ integrated: out?.integrated.length ?? 0, not_authority: out?.notAuthority ?? 0 })
      }
      case 'fetch': {
        const hashes = msg.hashes
        if (!Array.isArray(hashes) || hashes.length > SYNC.maxFetch || !hashes.every(isU8)) throw new DhtWireError(`hashes must be at most ${SYNC.maxFetch} ActionHashes`)
        // hashes pruned here are named, so the asker knows not to look for them here again
        return encode({ records: space.records(hashes, SYNC.maxFetchBytes), pruned: space.prunedAmong(hashes) })
      }
      default:
        throw new DhtWireError(`unknown sync op ${msg.op.slice(0, 32)}`)
    }
  }
}
