/**
 * The DHT over the mesh: what a conductor's network layer does for every DNA it runs.
 *
 * - publish: every record a local cell commits goes out at once on the DNA's gossip topic
 *   (`/flexstack/<network>/ops/<dna>`); with full arcs every node is an authority for every op.
 * - receive: gossip and sync deliver records to the conductor's DHT space, which validates and
 *   integrates them; each integrated record earns its author a signed validation receipt.
 * - republish: authors publish again the actions holding fewer receipts than they want.
 * - anti-entropy: gossip is best effort, so nodes also reconcile over `/flexstack/<network>/sync/1`
 *   (on connect and every interval): summaries first, then the hashes of differing leaves, then
 *   the missing records, each step bounded.
 * - warrants: invalid or forked chains produce warrants, gossiped on `warrants/<dna>`; every node
 *   checks the evidence itself and then blocks the warranted agent, its PeerId included.
 */
import { periodic, type Periodic } from '../../background.ts'
import { DisposedError, errorMessage } from '../../errors.ts'
import { decodeHash, encodeHash, hashEquals, isHash, type HoloHash } from '../../holo/hash.ts'
import type { ComponentLogger } from '../../logger.ts'
import { agentPubKeyFromPeerId, peerIdFromAgentPubKey } from '../../identity/peer-id.ts'
import type { CascadeQuery } from '../cell.ts'
import { decode, encode, isPlainObject } from '../codec.ts'
import { checkNetRecord, checkSummary, diffBuckets, DhtWireError, type DhtSpace, type NetRecord, type ReceiveOutcome, type Summary } from '../space.ts'
import type { CascadeOptions, DhtHost, DhtMesh, DhtNetwork, SyncStats } from './types.ts'

export type { SyncStats } from './types.ts'

export interface DhtNetworkInit {
  /** ms between anti-entropy rounds. @default 5000 */
  syncIntervalMs?: number
  /** ms between republish rounds. @default 15000 */
  republishIntervalMs?: number
  /** receipts an author wants per action (capped by the peers it has). @default 5 */
  receiptTarget?: number
  /** reconcile with every newly connected peer at once. @default true */
  syncOnConnect?: boolean
}

export interface DhtNetworkComponents {
  /** the conductor side: running DNAs, their spaces, locally authored records */
  host: DhtHost
  mesh: DhtMesh
  logger: ComponentLogger
}

export const SYNC = {
  /** top buckets answered per diff */
  maxTops: 16,
  /** leaves asked per hashes request */
  maxLeaves: 1024,
  /** hashes answered per hashes request */
  maxHashes: 4096,
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
/** rounds of predecessor fetching per cascade miss */
const CASCADE_ROUNDS = 32
const PROTOCOL_RECEIPT = 'receipt'

function opsTopic (dna: HoloHash): string { return `ops/${encodeHash(dna)}` }
function warrantTopic (dna: HoloHash): string { return `warrants/${encodeHash(dna)}` }

function isU8 (v: unknown): v is Uint8Array { return v instanceof Uint8Array }

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
  private running = false
  private stopped = false
  private readonly buckets = new Map<string, { tokens: number, at: number }>()
  /** gossip messages dropped by the per-peer rate limit */
  droppedGossip = 0
  /** totals since start, for benchmarks and status */
  readonly totals: SyncStats = { requests: 0, bytesSent: 0, bytesReceived: 0, records: 0 }

  constructor (init: DhtNetworkInit, components: DhtNetworkComponents) {
    this.init = init
    this.c = components
    this.log = components.logger.forComponent('flexnode:dht-net')
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
      this.unsubscribe.push(mesh.subscribe(opsTopic(dna), (data, from) => { this.onGossip(dna, data, from) }))
      this.unsubscribe.push(mesh.subscribe(warrantTopic(dna), (data, from) => { this.onWarrant(dna, data, from) }))
      const space = this.space(dna)
      if (space !== null) this.blockAgents(space.blockedAgents().map(s => decodeHash(s)))
    }
    this.unsubscribe.push(host.onAuthored((dna, records) => { void this.publish(dna, records) }))
    if (this.init.syncOnConnect !== false) this.unsubscribe.push(mesh.onPeer('connect', (peer) => { this.syncInBackground(peer) }))
    // the rounds touch the database and the network: a failure (a damaged table, a closed store)
    // is logged and backed off, never thrown out of a timer
    this.tasks.push(
      periodic({ name: 'dht sync round', intervalMs: this.init.syncIntervalMs ?? 5000 }, async () => { await this.syncRound() }, this.log),
      periodic({ name: 'dht republish round', intervalMs: this.init.republishIntervalMs ?? 15_000 }, async () => { await this.republishRound() }, this.log)
    )
    if (this.init.syncOnConnect !== false) for (const peer of mesh.peers()) this.syncInBackground(peer)
  }

  async stop (): Promise<void> {
    this.stopped = true
    if (!this.running) return
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
    for (let i = 0; i < records.length; i += SYNC.maxGossipRecords) {
      try {
        await this.c.mesh.publish(opsTopic(dna), encode({ records: records.slice(i, i + SYNC.maxGossipRecords) }))
      } catch (err) {
        this.log.debug({ err: errorMessage(err) }, 'publish failed; sync will carry the records')
      }
    }
  }

  /** A token bucket per sender, so one flooding peer cannot monopolize validation. */
  private admit (from: string): boolean {
    const now = Date.now()
    const b = this.buckets.get(from) ?? { tokens: SYNC.gossipPerPeerBurst, at: now }
    b.tokens = Math.min(SYNC.gossipPerPeerBurst, b.tokens + (now - b.at) * SYNC.gossipPerPeerPerSecond / 1000)
    b.at = now
    if (this.buckets.size > 10_000) this.buckets.clear()
    this.buckets.set(from, b)
    if (b.tokens < 1) {
      this.droppedGossip++
      return false
    }
    b.tokens -= 1
    return true
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
  private receive (dna: HoloHash, records: NetRecord[]): ReceiveOutcome | null {
    let out: ReceiveOutcome
    try {
      out = this.c.host.receiveRecords(dna, records)
    } catch (err) {
      this.log.debug({ err: errorMessage(err) }, 'records refused')
      return null
    }
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
   * A local miss: ask a few authorities (with full arcs, any connected peer) for the records
   * behind these hashes and integrate what comes back. Returns how many records integrated.
   */
  async cascade (dna: HoloHash, query: CascadeQuery, opts: CascadeOptions = {}): Promise<number> {
    if (this.stopped) throw new DisposedError('DhtNetwork')
    if (!this.running) return 0
    opts.signal?.throwIfAborted()
    const space = this.space(dna)
    const peers = this.c.mesh.peers().sort(() => Math.random() - 0.5).slice(0, CASCADE_PEERS)
    if (space === null || peers.length === 0) return 0
    let integrated = 0
    let links = 'base' in query ? query : undefined
    let want = 'hashes' in query ? query.hashes.slice(0, SYNC.maxFetch) : []
    // a record whose author's earlier actions we lack waits in limbo: pull those too (bounded),
    // since with full arcs this node is an authority for the whole chain anyway
    for (let round = 0; round < CASCADE_ROUNDS && (want.length > 0 || links !== undefined); round++) {
      opts.signal?.throwIfAborted()
      const req = links !== undefined ? encode({ op: 'links', dna, base: links.base, zome_index: links.zome_index, link_type: links.link_type }) : encode({ op: 'basis', dna, hashes: want })
      links = undefined
      const answers = await Promise.allSettled(peers.map(async p => await this.c.mesh.request(p, PROTOCOL_SYNC, req, { signal: opts.signal, timeoutMs: opts.timeoutMs ?? CASCADE_TIMEOUT_MS, maxResponseBytes: SYNC.maxFetchBytes + 1024 * 1024 })))
      let pending = 0
      for (const a of answers) {
        if (a.status !== 'fulfilled') continue
        try {
          const msg = decode(a.value)
          if (!isPlainObject(msg) || !Array.isArray(msg.records)) continue
          const records: NetRecord[] = []
          for (const r of msg.records) {
            try { records.push(checkNetRecord(r)) } catch { /* skip a malformed record */ }
          }
          const out = this.receive(dna, records)
          integrated += out?.integrated.length ?? 0
          pending = Math.max(pending, out?.pending ?? 0)
        } catch { /* a malformed answer counts as no answer */ }
      }
      want = pending > 0 ? space.missingPrevs(SYNC.maxFetch) : []
    }
    return integrated
  }

  // -- anti-entropy ------------------------------------------------------------------------

  /** A sync started by an event (a new peer): its failure is logged, never left unhandled. */
  private syncInBackground (peer: string): void {
    this.syncWithPeer(peer).catch((err: unknown) => { this.log.warn({ peer, err: errorMessage(err) }, 'sync with a new peer failed') })
  }

  private async syncRound (): Promise<void> {
    if (!this.running) return
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
   * Pull from one peer, for every DNA, whatever it holds that we lack. A sync with that peer
   * already running is joined (and `signal` then only governs the one that started it).
   */
  async syncWithPeer (peer: string, options: { signal?: AbortSignal } = {}): Promise<SyncStats> {
    const running = this.syncing.get(peer)
    if (running !== undefined) return running
    const p = (async () => {
      const total: SyncStats = { requests: 0, bytesSent: 0, bytesReceived: 0, records: 0 }
      for (const dna of this.c.host.runningDnas()) {
        if (!this.running || options.signal?.aborted === true) break
        try {
          const s = await this.syncDna(peer, dna, options)
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

  async syncDna (peer: string, dna: HoloHash, options: { signal?: AbortSignal } = {}): Promise<SyncStats> {
    const signal = options.signal
    const stats: SyncStats = { requests: 0, bytesSent: 0, bytesReceived: 0, records: 0 }
    const space = this.space(dna)
    if (space === null) return stats
    // equal digests: nothing to do (the common case once converged: a 32-byte answer)
    const probe = await this.ask(peer, { op: 'digest', dna }, stats, signal)
    if (probe.digest instanceof Uint8Array && hashEquals(probe.digest, space.digest())) return stats
    // walk the top buckets with a cursor, so differences the requester cannot resolve from this
    // peer (records it already holds in limbo, records only it has) never starve later buckets
    let fromTop = 0
    while (fromTop < 256 && this.running) {
      const diff = await this.ask(peer, { op: 'diff', dna, summary: space.summary(), from_top: fromTop }, stats, signal)
      const tops = diff.tops
      const theirLeaves = diff.leaves
      if (!Array.isArray(tops) || !Array.isArray(theirLeaves) || tops.length !== theirLeaves.length || tops.length > SYNC.maxTops) throw new DhtWireError('malformed diff response')
      if (tops.length === 0) break
      const leaves: Array<[number, number]> = []
      let last = fromTop
      tops.forEach((top: unknown, i: number) => {
        if (!Number.isInteger(top) || (top as number) < fromTop || (top as number) > 255) throw new DhtWireError('malformed diff response')
        last = Math.max(last, top as number)
        const theirs: Summary = checkSummary(theirLeaves[i])
        for (const leaf of diffBuckets(space.leafSummary(top as number), theirs)) if (theirs.counts[leaf]! > 0) leaves.push([top as number, leaf])
      })
      fromTop = last + 1
      for (let i = 0; i < leaves.length; i += SYNC.maxLeaves) {
        const res = await this.ask(peer, { op: 'hashes', dna, leaves: leaves.slice(i, i + SYNC.maxLeaves) }, stats, signal)
        if (!Array.isArray(res.hashes) || res.hashes.length > SYNC.maxHashes || !res.hashes.every(h => isHash(h, 'Action'))) throw new DhtWireError('malformed hashes response')
        const missing = (res.hashes as HoloHash[]).filter(h => !space.knows(h))
        for (let j = 0; j < missing.length; j += SYNC.maxFetch) {
          const got = await this.ask(peer, { op: 'fetch', dna, hashes: missing.slice(j, j + SYNC.maxFetch) }, stats, signal)
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
      }
    }
    return stats
  }

  private async serveSync (req: Uint8Array, _from: string): Promise<Uint8Array> {
    const msg = decode(req)
    if (!isPlainObject(msg) || typeof msg.op !== 'string' || !isHash(msg.dna, 'Dna')) throw new DhtWireError('expected {op, dna, ...}')
    const space = this.space(msg.dna)
    if (space === null) throw new DhtWireError(`DnaMissing: this node does not run ${encodeHash(msg.dna)}`)
    switch (msg.op) {
      case 'digest':
        return encode({ digest: space.digest() })
      case 'diff': {
        const theirs = checkSummary(msg.summary)
        const from = msg.from_top ?? 0
        if (!Number.isInteger(from) || (from as number) < 0 || (from as number) > 255) throw new DhtWireError('from_top must be 0..255')
        const mine = space.summary()
        const tops = diffBuckets(mine, theirs).filter(t => t >= (from as number) && mine.counts[t]! > 0).slice(0, SYNC.maxTops)
        return encode({ tops, leaves: tops.map(t => space.leafSummary(t)) })
      }
      case 'hashes': {
        const leaves = msg.leaves
        if (!Array.isArray(leaves) || leaves.length > SYNC.maxLeaves || !leaves.every(l => Array.isArray(l) && l.length === 2 && l.every(x => Number.isInteger(x) && x >= 0 && x <= 255))) {
          throw new DhtWireError(`leaves must be at most ${SYNC.maxLeaves} [top, leaf] byte pairs`)
        }
        return encode({ hashes: space.hashesInLeaves(leaves as Array<[number, number]>, SYNC.maxHashes) })
      }
      case 'basis': {
        const hashes = msg.hashes
        if (!Array.isArray(hashes) || hashes.length > SYNC.maxFetch || !hashes.every(h => isHash(h))) throw new DhtWireError(`hashes must be at most ${SYNC.maxFetch} HoloHashes`)
        return encode({ records: space.recordsByBasis(hashes as HoloHash[], SYNC.maxFetchBytes) })
      }
      case 'links': {
        const { base, zome_index: zi, link_type: lt } = msg
        if (!isHash(base) || !Number.isInteger(zi) || !Number.isInteger(lt) || (zi as number) < 0 || (lt as number) < 0 || (zi as number) > 255 || (lt as number) > 255) throw new DhtWireError('expected {base: HoloHash, zome_index, link_type}')
        return encode({ records: space.linkRecords(base, zi as number, lt as number, SYNC.maxFetch, SYNC.maxFetchBytes) })
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
