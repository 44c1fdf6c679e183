/**
 * Presence: each node's liveness and live load as a signed, expiring record, gossiped over the
 * mesh and held in memory, never written to a chain (kitsune2's `AgentInfoSigned` in spirit,
 * plus load). The expiry travels in each record and follows the sender's own interval, so a node
 * heartbeating every 45 s never looks offline and one heartbeating every 2 s is offline within
 * 3 intervals of its death.
 *
 * - Record: `{agent, created_at, expires_at (µs), is_tombstone, arc, availability?, load?, queue?}`
 *   (`arc`: the declared storage arc on the u32 ring, inclusive, may wrap; null = empty). Unknown
 *   fields are ignored. Wire form: msgpack `{info: <canonical msgpack of the record>, signature}`,
 *   the signature by the agent's key over exactly those bytes.
 * - Spread: every refresh interval (and at once, at most once a second, when availability or arc
 *   changes) on the gossip topic `presence`; a signed tombstone on stop. On each new connection
 *   both sides trade records over `/flexstack/<net>/presence/1` (the request carries the
 *   requester's own record, the answer the responder's live ones), so a joiner does not wait an
 *   interval to see the mesh.
 * - Verification at the boundary: size cap, shape, author = the gossip's publisher (gossipsub's
 *   signed `from`; the requester for a direct request), created_at at most 3 min ahead of our
 *   clock (and, for a record its author sends, at most 3 min behind), 0 < lifetime ≤ 30 min, not
 *   expired, newer than the record held (else a replay), then the signature. A per-sender token
 *   bucket stops a flood. Each drop is counted by reason; nothing throws out of a handler.
 * - Held: newest `created_at` per agent wins; a record counts until
 *   `min(expires_at, received + lifetime)`, so a sender whose clock runs ahead is not kept alive
 *   longer than its own lifetime after we last heard from it; expired records are pruned lazily.
 *
 * ```ts
 * const presence = meshPresence({ refreshIntervalMs: 10_000 })({ mesh, keystore, logger })
 * await presence.start()
 * presence.update({ availability: 'busy', queue: { 'qwen3-4b': 3 } })
 * presence.get(agentPubKey)   // the live record, or null (offline)
 * ```
 */
import { DisposedError, FlexnodeError, errorMessage } from '../../errors.ts'
import { core32, hashFrom32, isHash, sameKey, type HoloHash } from '../../holo/hash.ts'
import type { Keystore } from '../../identity/keystore.ts'
import { agentPubKeyFromPeerId } from '../../identity/peer-id.ts'
import type { ComponentLogger } from '../../logger.ts'
import type { GossipVerdict, MeshNode } from '../../mesh/types.ts'
import { decode, encode, encodeCanonical, isPlainObject } from '../codec.ts'
import { PerPeerRateLimit } from './rate-limit.ts'

export const PRESENCE = {
  /** gossip topic (the mesh prefixes `/flexstack/<network>/`) */
  topic: 'presence',
  /** request/response protocol trading records on connect */
  protocol: 'presence',
  /** largest presence message accepted, bytes */
  maxRecordBytes: 4096,
  /** how far a record's created_at may be from our clock */
  maxSkewMs: 3 * 60_000,
  /** longest lifetime (expires_at - created_at) accepted, and the most a sender gives */
  maxLifetimeMs: 30 * 60_000,
  /** lifetime = this × the refresh interval (then capped; the interval shrinks to fit the cap) */
  lifetimeFactor: 2.5,
  /**
   * a node's record goes out at most this often (a shorter heartbeat coalesces into it), and a
   * change of availability or arc goes out at once but no sooner than this after the last
   */
  minRepublishMs: 1000,
  /**
   * without a heartbeat calling `refresh`, the record is re-signed this many refresh intervals
   * after the last one (a little later than the heartbeat would, so the two do not both send)
   */
  fallbackFactor: 1.25,
  /** presence messages per second accepted from one sender (a token bucket); the rest are dropped */
  perPeerPerSecond: 5,
  /** burst size of that bucket */
  perPeerBurst: 20,
  /** expired records are pruned at most this often */
  pruneIntervalMs: 10_000,
  /** agents held at most; a record of a new agent beyond it is dropped (`capacity`) */
  maxAgents: 50_000,
  /** bytes of records answered per trade */
  maxTradeBytes: 1024 * 1024,
  /** records answered per trade */
  maxTradeRecords: 4096,
  /** agents one `lookup` answers */
  maxLookup: 4096,
  /** models a record's queue names */
  maxQueueModels: 256
} as const

/** The full ring: what every node declares until arcs are sharded. */
export const FULL_ARC: readonly [number, number] = [0, 0xffffffff]

export type PresenceAvailability = 'online' | 'busy' | 'draining'
export const PRESENCE_AVAILABILITY: readonly PresenceAvailability[] = ['online', 'busy', 'draining']

export interface PresenceLoad { cpu_percent: number, gpu_percent: number, memory_percent: number }

/** A node's presence record (what is signed). */
export interface PresenceInfo {
  agent: HoloHash
  /** µs since the epoch, by the author's clock */
  created_at: number
  /** µs since the epoch, by the author's clock */
  expires_at: number
  /** the node left (signed on stop) */
  is_tombstone: boolean
  /** declared storage arc on the u32 ring, inclusive, may wrap; null = empty */
  arc: [number, number] | null
  availability?: PresenceAvailability
  load?: PresenceLoad
  /** requests generating or waiting, per model */
  queue?: Record<string, number>
}

/** The live fields a node sets on its own record. */
export interface PresenceFields {
  arc?: [number, number] | null
  availability?: PresenceAvailability
  load?: PresenceLoad
  queue?: Record<string, number>
}

/** The wire form: the record's exact bytes and the agent's signature over them. */
export interface SignedPresence { info: Uint8Array, signature: Uint8Array }

export const DROP_REASONS = ['forged', 'replayed', 'expired', 'future', 'oversized', 'malformed', 'rate_limited', 'capacity'] as const
export type DropReason = typeof DROP_REASONS[number]
/** drops that prove the sender wrong (gossipsub then lowers its score), not merely late or over a limit */
const MALICIOUS: ReadonlySet<DropReason> = new Set(['forged', 'oversized', 'malformed'])

/** A presence record refused at the boundary; `reason` is what the drop is counted under. */
export class PresenceRejectedError extends FlexnodeError {
  static override readonly name = 'PresenceRejectedError'
  readonly reason: DropReason
  readonly peerId?: string

  constructor (reason: DropReason, message: string, options?: ErrorOptions & { peerId?: string }) {
    super(message, options)
    this.reason = reason
    this.peerId = options?.peerId
  }
}

/**
 * How often a node with this heartbeat interval re-signs its record and how long each record lives:
 * every interval (at least `minRepublishMs`, at most what the 30 min cap allows), living 2.5
 * intervals. A 45 s interval gives 112.5 s, a 2 s one 5 s, an hour 12 min / 30 min.
 */
export function presenceTiming (intervalMs: number): { refreshMs: number, lifetimeMs: number } {
  if (!(intervalMs > 0) || !Number.isFinite(intervalMs)) throw new FlexnodeError(`presence: the refresh interval must be a positive number of ms, got ${String(intervalMs)}`)
  const refreshMs = Math.min(Math.max(intervalMs, PRESENCE.minRepublishMs), Math.floor(PRESENCE.maxLifetimeMs / PRESENCE.lifetimeFactor))
  return { refreshMs, lifetimeMs: Math.ceil(refreshMs * PRESENCE.lifetimeFactor) }
}

const agentKey = (agent: Uint8Array): string => Buffer.from(agent.buffer, agent.byteOffset + 3, 32).toString('base64')
const isU32 = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff
const isMicros = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0
const isPercent = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 100

/** The record inside a presence message, shape-checked; unknown fields are dropped. */
export function checkPresenceInfo (v: unknown): PresenceInfo {
  const bad = (what: string): PresenceRejectedError => new PresenceRejectedError('malformed', `presence record: ${what}`)
  if (!isPlainObject(v)) throw bad('not a map')
  if (!isHash(v.agent, 'Agent')) throw bad('agent must be an AgentPubKey')
  if (!isMicros(v.created_at) || !isMicros(v.expires_at)) throw bad('created_at and expires_at must be µs timestamps')
  if (typeof v.is_tombstone !== 'boolean') throw bad('is_tombstone must be a boolean')
  const arc = v.arc
  if (arc !== null && !(Array.isArray(arc) && arc.length === 2 && isU32(arc[0]) && isU32(arc[1]))) throw bad('arc must be null or [start, end] on the u32 ring')
  const out: PresenceInfo = { agent: hashFrom32(core32(v.agent), 'Agent'), created_at: v.created_at, expires_at: v.expires_at, is_tombstone: v.is_tombstone, arc: arc === null ? null : [arc[0] as number, arc[1] as number] }
  if (v.availability !== undefined) {
    if (!PRESENCE_AVAILABILITY.includes(v.availability as PresenceAvailability)) throw bad(`availability must be one of ${PRESENCE_AVAILABILITY.join(', ')}`)
    out.availability = v.availability as PresenceAvailability
  }
  if (v.load !== undefined) {
    const l = v.load
    if (!isPlainObject(l) || !isPercent(l.cpu_percent) || !isPercent(l.gpu_percent) || !isPercent(l.memory_percent)) throw bad('load must be {cpu_percent, gpu_percent, memory_percent}, each 0..100')
    out.load = { cpu_percent: l.cpu_percent, gpu_percent: l.gpu_percent, memory_percent: l.memory_percent }
  }
  if (v.queue !== undefined) {
    const q = v.queue
    if (!isPlainObject(q)) throw bad('queue must be a map of model name to depth')
    const entries = Object.entries(q)
    if (entries.length > PRESENCE.maxQueueModels) throw bad(`queue names at most ${PRESENCE.maxQueueModels} models`)
    const queue: Record<string, number> = {}
    for (const [model, depth] of entries) {
      if (model.length === 0 || model.length > 256 || !Number.isSafeInteger(depth) || (depth as number) < 0 || (depth as number) > 1_000_000) throw bad('queue depths must be integers 0..1000000 under model names of 1..256 characters')
      Object.defineProperty(queue, model, { value: depth, enumerable: true, writable: true, configurable: true })
    }
    out.queue = queue
  }
  return out
}

/** A presence message's two parts, size- and shape-checked (the signature is not checked here). */
export function decodePresence (bytes: Uint8Array): { signed: SignedPresence, info: PresenceInfo } {
  if (!(bytes instanceof Uint8Array)) throw new PresenceRejectedError('malformed', 'a presence message must be bytes')
  if (bytes.length > PRESENCE.maxRecordBytes) throw new PresenceRejectedError('oversized', `a presence message is at most ${PRESENCE.maxRecordBytes} bytes, got ${bytes.length}`)
  let msg: unknown
  let info: unknown
  try {
    msg = decode(bytes)
    if (isPlainObject(msg) && msg.info instanceof Uint8Array) info = decode(msg.info)
  } catch (err) {
    throw new PresenceRejectedError('malformed', `a presence message must be msgpack: ${errorMessage(err)}`)
  }
  if (!isPlainObject(msg) || !(msg.info instanceof Uint8Array) || !(msg.signature instanceof Uint8Array) || msg.signature.length !== 64) {
    throw new PresenceRejectedError('malformed', 'a presence message is {info: bytes, signature: 64 bytes}')
  }
  return { signed: { info: msg.info, signature: msg.signature }, info: checkPresenceInfo(info) }
}

/** Sign a record with the agent's key: the wire bytes. */
export function signPresence (info: PresenceInfo, keystore: Pick<Keystore, 'sign'>): Uint8Array {
  const bytes = encodeCanonical(info)
  return encode({ info: bytes, signature: keystore.sign(info.agent, bytes) })
}

/** A record as held: the decoded record, its wire bytes (to pass on) and our local deadline (µs). */
export interface HeldPresence { info: PresenceInfo, wire: Uint8Array, deadline: number }

export interface PresenceCheck {
  /** our clock, µs */
  now: number
  /** the peer that authored this message (gossip's publisher, a direct requester); undefined for records relayed in a trade */
  author?: string
  /** the record held for an agent, if any */
  held?: (agent: Uint8Array) => HeldPresence | undefined
  /**
   * asked once the cheap checks passed, before the signature is verified: false drops the record
   * as `rate_limited` (so a replayed or junk message costs its sender's bucket nothing)
   */
  admit?: () => boolean
  verify: Keystore['verify']
}

/**
 * Verify one presence message: size, shape, author, clock, lifetime, replay, rate, signature (the
 * cheap checks first, the signature last). Returns
 * the record as it is to be held; throws `PresenceRejectedError` (its `reason` says which check).
 * A record not newer than `held` is `replayed`.
 */
export function openPresence (bytes: Uint8Array, check: PresenceCheck): HeldPresence {
  const { signed, info } = decodePresence(bytes)
  const { now } = check
  if (check.author !== undefined) {
    let sender: Uint8Array
    try {
      sender = agentPubKeyFromPeerId(check.author)
    } catch {
      throw new PresenceRejectedError('forged', 'the sender is not an ed25519 agent', { peerId: check.author })
    }
    if (!sameKey(sender, info.agent)) throw new PresenceRejectedError('forged', 'a presence record must be sent by its own agent', { peerId: check.author })
  }
  const lifetime = info.expires_at - info.created_at
  if (lifetime <= 0 || lifetime > PRESENCE.maxLifetimeMs * 1000) throw new PresenceRejectedError('malformed', `a presence record lives more than 0 and at most ${PRESENCE.maxLifetimeMs / 60_000} min`)
  const skew = PRESENCE.maxSkewMs * 1000
  if (info.created_at > now + skew) throw new PresenceRejectedError('future', 'the presence record was created more than 3 min in the future')
  if (info.expires_at <= now) throw new PresenceRejectedError('expired', 'the presence record has expired')
  // what its author sends now was signed now: an older one is an old record sent again
  if (check.author !== undefined && info.created_at < now - skew) throw new PresenceRejectedError('replayed', 'the presence record was created more than 3 min ago')
  const held = check.held?.(info.agent)
  if (held !== undefined && info.created_at <= held.info.created_at) throw new PresenceRejectedError('replayed', 'a presence record as new or newer is held')
  if (check.admit?.() === false) throw new PresenceRejectedError('rate_limited', 'the sender sent more presence records than its rate allows', { peerId: check.author })
  if (!check.verify(core32(info.agent), signed.info, signed.signature)) throw new PresenceRejectedError('forged', 'the signature does not verify')
  return { info, wire: bytes, deadline: Math.min(info.expires_at, now + lifetime) }
}

export interface PresenceStoreInit {
  /** µs. @default Date.now() * 1000 */
  now?: () => number
  /** @default PRESENCE.pruneIntervalMs */
  pruneIntervalMs?: number
  /** @default PRESENCE.maxAgents */
  maxAgents?: number
}

/** Presence records in memory: the newest per agent wins; expired ones are pruned lazily. */
export class PresenceStore {
  private readonly held = new Map<string, HeldPresence>()
  private readonly now: () => number
  private readonly pruneEveryUs: number
  private readonly maxAgents: number
  private prunedAt = 0

  constructor (init: PresenceStoreInit = {}) {
    this.now = init.now ?? ((): number => Date.now() * 1000)
    this.pruneEveryUs = (init.pruneIntervalMs ?? PRESENCE.pruneIntervalMs) * 1000
    this.maxAgents = init.maxAgents ?? PRESENCE.maxAgents
  }

  /** The record held for an agent, expired or tombstoned ones included (for replay checks). */
  heldFor (agent: Uint8Array): HeldPresence | undefined {
    return this.held.get(agentKey(agent))
  }

  /**
   * Hold a record unless one as new or newer is held. Returns false when it was not taken;
   * throws `PresenceRejectedError('capacity')` for a new agent when the store is full.
   */
  put (record: HeldPresence): boolean {
    this.prune()
    const key = agentKey(record.info.agent)
    const cur = this.held.get(key)
    if (cur !== undefined && cur.info.created_at >= record.info.created_at) return false
    if (cur === undefined && this.held.size >= this.maxAgents) {
      this.prune(true)
      if (this.held.size >= this.maxAgents) throw new PresenceRejectedError('capacity', `presence of at most ${this.maxAgents} agents is held`)
    }
    this.held.set(key, record)
    return true
  }

  /** The agent's live record (not expired, not a tombstone), or null. */
  get (agent: Uint8Array): PresenceInfo | null {
    const h = this.held.get(agentKey(agent))
    return h === undefined || h.info.is_tombstone || h.deadline <= this.now() ? null : h.info
  }

  /** Every live record. */
  live (): PresenceInfo[] {
    this.prune()
    const now = this.now()
    return [...this.held.values()].filter(h => !h.info.is_tombstone && h.deadline > now).map(h => h.info)
  }

  /** Wire bytes of every unexpired record (tombstones too, so a leave travels), `first` first. */
  wires (first?: Uint8Array): Uint8Array[] {
    this.prune()
    const now = this.now()
    const own = first === undefined ? undefined : this.held.get(agentKey(first))
    const rest = [...this.held.values()].filter(h => h !== own && h.deadline > now)
    return (own !== undefined && own.deadline > now ? [own, ...rest] : rest).map(h => h.wire)
  }

  get size (): number { return this.held.size }

  /** Drop expired records, at most once per prune interval unless forced. */
  prune (force = false): void {
    const now = this.now()
    if (!force && now - this.prunedAt < this.pruneEveryUs) return
    this.prunedAt = now
    for (const [k, h] of this.held) if (h.deadline <= now) this.held.delete(k)
  }
}

export interface PresenceInit {
  /** ms between re-signs of this node's record (its heartbeat interval). @default 10000 */
  refreshIntervalMs?: number
  /** this node's arc until `update` says otherwise. @default the full ring */
  arc?: [number, number] | null
  /**
   * our clock, µs: record times, expiry, rate limits and send spacing all follow it (a simulation
   * passes its own; the refresh timer itself is a real `setTimeout`). @default Date.now() * 1000
   */
  now?: () => number
}

export interface PresenceComponents {
  mesh: Pick<MeshNode, 'peerId' | 'publish' | 'subscribe' | 'handle' | 'unhandle' | 'request' | 'peers' | 'onPeer'>
  keystore: Pick<Keystore, 'sign' | 'verify'>
  logger: ComponentLogger
}

export interface PresenceStats {
  /** presence messages taken in (gossip, direct, traded) */
  received: number
  /** records held because of them */
  accepted: number
  /** records this node signed and sent */
  published: number
  /** drops by reason */
  drops: Record<DropReason, number>
}

/** This node's presence: its own record going out, everyone's coming in. */
export interface Presence {
  start: () => Promise<void>
  /** sends a tombstone, then leaves the topic; idempotent */
  stop: () => Promise<void>
  /** the live record of an agent (ours included), or null: offline */
  get: (agent: Uint8Array) => PresenceInfo | null
  /** `get` for many agents at once (at most `PRESENCE.maxLookup`) */
  lookup: (agents: readonly Uint8Array[]) => Array<PresenceInfo | null>
  /** every live record */
  live: () => PresenceInfo[]
  /**
   * Set live fields of our record. A change of availability or arc is sent at once (at most once
   * per `PRESENCE.minRepublishMs`); load and queue ride on the next refresh.
   */
  update: (fields: PresenceFields) => void
  /**
   * sign and send our record now (the heartbeat; at most once per `PRESENCE.minRepublishMs`, a
   * faster call is folded into the next send); without another call the record is re-signed
   * `PRESENCE.fallbackFactor` intervals later
   */
  refresh: () => Promise<void>
  /** our last signed record, or null before start */
  readonly own: PresenceInfo | null
  readonly refreshMs: number
  readonly lifetimeMs: number
  readonly stats: Readonly<PresenceStats>
}

/** Presence over the mesh, in the service shape: `meshPresence(init)(components)`. */
export function meshPresence (init: PresenceInit = {}): (components: PresenceComponents) => Presence {
  return (components) => new MeshPresence(init, components)
}

class MeshPresence implements Presence {
  readonly refreshMs: number
  readonly lifetimeMs: number
  readonly stats: PresenceStats = { received: 0, accepted: 0, published: 0, drops: Object.fromEntries(DROP_REASONS.map(r => [r, 0])) as Record<DropReason, number> }
  private readonly c: PresenceComponents
  private readonly log: ComponentLogger
  private readonly now: () => number
  private readonly store: PresenceStore
  private readonly agent: HoloHash
  private readonly verify: Keystore['verify']
  private readonly limit = new PerPeerRateLimit({ perSecond: PRESENCE.perPeerPerSecond, burst: PRESENCE.perPeerBurst, now: () => this.nowMs() })
  private readonly unsubscribe: Array<() => void> = []
  private fields: PresenceFields
  private ownRecord: PresenceInfo | null = null
  private ownWire: Uint8Array | null = null
  private lastSentAt = 0
  private timer: NodeJS.Timeout | undefined
  private sending: Promise<void> = Promise.resolve()
  private running = false
  private stopped = false

  constructor (init: PresenceInit, components: PresenceComponents) {
    const timing = presenceTiming(init.refreshIntervalMs ?? 10_000)
    this.refreshMs = timing.refreshMs
    this.lifetimeMs = timing.lifetimeMs
    this.c = components
    this.log = components.logger.forComponent('flexnode:presence')
    this.now = init.now ?? ((): number => Date.now() * 1000)
    this.store = new PresenceStore({ now: this.now })
    this.agent = agentPubKeyFromPeerId(components.mesh.peerId)
    this.verify = components.keystore.verify.bind(components.keystore)
    this.fields = { arc: init.arc === undefined ? [...FULL_ARC] : init.arc, availability: 'online' }
  }

  get own (): PresenceInfo | null { return this.ownRecord }

  /** our clock in ms (rate limits, send spacing): the injected one, so a simulation controls it all */
  private nowMs (): number { return this.now() / 1000 }

  async start (): Promise<void> {
    if (this.stopped) throw new DisposedError('Presence')
    if (this.running) return
    this.running = true
    const { mesh } = this.c
    await mesh.handle(PRESENCE.protocol, async (req, from) => this.serveTrade(req, from), { maxRequestBytes: PRESENCE.maxRecordBytes + 64, timeoutMs: 10_000 })
    // judged before gossipsub relays it: a record this node drops goes no further through it
    this.unsubscribe.push(mesh.subscribe(PRESENCE.topic, undefined, { judge: (data, from) => this.onGossip(data, from) }))
    this.unsubscribe.push(mesh.onPeer('connect', (peer) => { this.tradeInBackground(peer) }))
    await this.refresh()
    for (const peer of mesh.peers()) this.tradeInBackground(peer)
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (!this.running) return
    clearTimeout(this.timer)
    await this.sending
    // a signed leave: the mesh sees us offline at once instead of after the lifetime
    try {
      await this.send(this.sign({ ...this.fields, arc: null }, true))
    } catch (err) {
      this.log.debug({ err: errorMessage(err) }, 'sending the presence tombstone failed')
    }
    this.running = false
    for (const u of this.unsubscribe) u()
    this.unsubscribe.length = 0
    await this.c.mesh.unhandle(PRESENCE.protocol).catch(() => {})
  }

  get (agent: Uint8Array): PresenceInfo | null {
    return this.store.get(agent)
  }

  lookup (agents: readonly Uint8Array[]): Array<PresenceInfo | null> {
    if (agents.length > PRESENCE.maxLookup) throw new FlexnodeError(`presence: at most ${PRESENCE.maxLookup} agents per lookup`)
    return agents.map(a => this.store.get(a))
  }

  live (): PresenceInfo[] {
    return this.store.live()
  }

  update (fields: PresenceFields): void {
    const before = this.fields
    this.fields = { ...before, ...fields }
    if (!this.running || this.stopped) return
    const changed = before.availability !== this.fields.availability || JSON.stringify(before.arc) !== JSON.stringify(this.fields.arc)
    if (changed) this.schedule(Math.max(0, this.lastSentAt + PRESENCE.minRepublishMs - this.nowMs()))
  }

  async refresh (): Promise<void> {
    if (!this.running || this.stopped) return
    // a heartbeat faster than the floor coalesces into the next send; the first load after start
    // goes at once (the record signed at start has none, and readers would see the entry's)
    const wait = this.lastSentAt + PRESENCE.minRepublishMs - this.nowMs()
    const firstLoad = this.ownRecord != null && this.ownRecord.load === undefined && this.fields.load !== undefined
    if (wait > 0 && !firstLoad) this.schedule(wait)
    else await this.publish()
  }

  // -- our record ---------------------------------------------------------------------------

  private sign (fields: PresenceFields, tombstone = false): { info: PresenceInfo, wire: Uint8Array } {
    const now = this.now()
    // created_at only grows, even if the clock steps back: a newer record must win everywhere
    const created = Math.max(Math.floor(now), (this.ownRecord?.created_at ?? 0) + 1)
    const info: PresenceInfo = { agent: this.agent, created_at: created, expires_at: created + this.lifetimeMs * 1000, is_tombstone: tombstone, arc: fields.arc ?? null }
    if (fields.availability !== undefined) info.availability = fields.availability
    if (fields.load !== undefined) info.load = fields.load
    let queue = fields.queue === undefined ? undefined : Object.entries(fields.queue).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, PRESENCE.maxQueueModels)
    for (;;) {
      if (queue !== undefined) info.queue = Object.fromEntries(queue)
      const wire = signPresence(info, this.c.keystore)
      // a queue too long for one message keeps its deepest models
      if (wire.length <= PRESENCE.maxRecordBytes || queue === undefined || queue.length === 0) return { info, wire }
      queue = queue.slice(0, Math.floor(queue.length / 2))
    }
  }

  private async send ({ info, wire }: { info: PresenceInfo, wire: Uint8Array }): Promise<void> {
    this.ownRecord = info
    this.ownWire = wire
    this.store.put({ info, wire, deadline: info.expires_at })
    this.lastSentAt = this.nowMs()
    this.stats.published++
    await this.c.mesh.publish(PRESENCE.topic, wire)
  }

  /** Sign and gossip our record now; the next timed refresh is one interval later. One at a time. */
  private async publish (): Promise<void> {
    clearTimeout(this.timer)
    const run = this.sending.then(async () => {
      if (!this.running || this.stopped) return
      try {
        await this.send(this.sign(this.fields))
      } catch (err) {
        this.log.debug({ err: errorMessage(err) }, 'presence publish failed; the next refresh retries')
      }
      this.schedule(this.refreshMs * PRESENCE.fallbackFactor)
    })
    this.sending = run
    await run
  }

  private schedule (ms: number): void {
    if (!this.running || this.stopped) return
    clearTimeout(this.timer)
    this.timer = setTimeout(() => { void this.publish() }, ms)
    this.timer.unref()
  }

  // -- theirs -------------------------------------------------------------------------------

  private drop (reason: DropReason, from: string | undefined, err?: unknown): void {
    this.stats.drops[reason]++
    this.log.debug({ from, reason, err: err === undefined ? undefined : errorMessage(err) }, 'dropped a presence record')
  }

  /** A token bucket per sender, so one flooding peer cannot make us verify its records without end. */
  private admit (from: string): boolean {
    return this.limit.admit(from)
  }

  /**
   * Take one presence message in. `author`: the peer that sent it as its own (gossip, a direct
   * request), which must be its agent; undefined for records relayed in a trade, where a record
   * not newer than ours is simply known, not a drop. Never throws.
   */
  private receive (bytes: unknown, from: string, asAuthor: boolean): GossipVerdict {
    this.stats.received++
    try {
      if (!(bytes instanceof Uint8Array)) throw new PresenceRejectedError('malformed', 'a presence record must be bytes')
      // what its author sends is rate-limited per author; records relayed in a trade are bounded
      // by the trade's size instead
      const record = openPresence(bytes, { now: this.now(), author: asAuthor ? from : undefined, held: (a) => this.store.heldFor(a), admit: asAuthor ? () => this.admit(from) : undefined, verify: this.verify })
      if (!this.store.put(record)) return 'ignore'
      this.stats.accepted++
      return 'accept'
    } catch (err) {
      const reason = err instanceof PresenceRejectedError ? err.reason : 'malformed'
      if (!(reason === 'replayed' && !asAuthor)) this.drop(reason, from, err)
      // stale, early or over a limit is not proof of malice; a bad signature or shape is
      return MALICIOUS.has(reason) ? 'reject' : 'ignore'
    }
  }

  /**
   * `from` is gossipsub's `msg.from`: the publisher, whose signature over the message gossipsub
   * verified (StrictSign), not the peer that relayed it to us. A record relayed through the mesh
   * thus still arrives with its author as `from`, and must name it.
   */
  private onGossip (data: Uint8Array, from: string): GossipVerdict {
    if (!this.running) return 'ignore'
    return this.receive(data, from, true)
  }

  // -- trading records with a new peer ------------------------------------------------------

  private tradeInBackground (peer: string): void {
    this.trade(peer).catch((err: unknown) => { this.log.debug({ peer, err: errorMessage(err) }, 'presence trade failed') })
  }

  /** Send a peer our record and take in its live ones. */
  private async trade (peer: string): Promise<void> {
    if (!this.running || this.ownWire === null) return
    const res = await this.c.mesh.request(peer, PRESENCE.protocol, encode({ record: this.ownWire }), { timeoutMs: 10_000, maxResponseBytes: PRESENCE.maxTradeBytes + 64 * 1024 })
    let msg: unknown
    try {
      msg = decode(res)
    } catch (err) {
      this.drop('malformed', peer, err)
      return
    }
    if (!isPlainObject(msg) || !Array.isArray(msg.records) || msg.records.length > PRESENCE.maxTradeRecords) {
      this.drop('malformed', peer)
      return
    }
    for (const r of msg.records) this.receive(r, peer, false)
  }

  private async serveTrade (req: Uint8Array, from: string): Promise<Uint8Array> {
    if (!this.running) throw new DisposedError('Presence')
    let msg: unknown
    try {
      msg = decode(req)
    } catch {
      msg = undefined
    }
    if (isPlainObject(msg) && msg.record !== undefined) {
      this.receive(msg.record, from, true)
    } else {
      this.drop('malformed', from)
    }
    const records: Uint8Array[] = []
    let bytes = 0
    for (const w of this.store.wires(this.agent)) {
      if (records.length >= PRESENCE.maxTradeRecords || bytes + w.length > PRESENCE.maxTradeBytes) break
      records.push(w)
      bytes += w.length
    }
    return encode({ records })
  }
}
