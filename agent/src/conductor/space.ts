/**
 * A DHT space: this node's view of one DNA's DHT, shared by every local cell of that DNA.
 *
 * Records (a signed action and its public entry) arrive from other agents by gossip or sync.
 * Each goes through the checks of Holochain's incoming-op workflow: hash and signature, system
 * validation (chain integrity: sequence, previous action, no fork), then app validation by the
 * integrity zome, then integration of the ops it produces for this node's arc. A record whose
 * previous action or dependencies are missing waits in limbo and is retried as data arrives.
 *
 * The wire unit is the record rather than each op: every op of an action is derived from the
 * action itself, so authorities derive them locally instead of receiving 3–5 copies of it.
 *
 * Anti-entropy compares what two nodes hold by DHT location (`sectors.ts`): per-sector sums of
 * the valid ops held, kept incrementally, and per-leaf sums of one sector computed on demand from
 * an index range scan, so only the sectors two nodes share are compared and listed.
 *
 * A space with a horizon (`maxAgeMs`, a network that prunes: see `retention.ts`) summarizes only
 * what a pruning pass keeps; it drops (and counts) records past the horizon that arrive and
 * would not be kept, remembers what it pruned so sync does not fetch it again, and takes a
 * record past the horizon whose previous action is missing as the start of what the mesh still
 * holds of that chain (its predecessors were pruned everywhere) instead of waiting for it.
 */
import type { Action, Entry, EntryType, ValidateResult } from '../../../zomes-ts/hdk/index.ts'
import { dhtLocation, encodeHash, hashEquals, hashFromContent, isHash, retype, sameKey, type HoloHash } from '../holo/hash.ts'
import type { Keystore } from '../identity/keystore.ts'
import type { ComponentLogger } from '../logger.ts'
import { dhtActionRow } from './cell.ts'
import { decode, encode, isPlainObject } from './codec.ts'
import type { LoadedDna } from './dna.ts'
import { produceOps, type ProducedOp, type SignedAction } from './ops.ts'
import { decodeAction, decodeEntry, signedActionHashed } from './records.ts'
import type { ConductorStore, DhtActionRow } from './store.ts'
import { actionHashOf, checkActionIntegrity, checkChainLink, entryHashOf, validateOps, type Lookup, type SignatureCheck } from './validation.ts'
import { FlexnodeError } from '../errors.ts'
import { ZomeSandboxError } from './sandbox/errors.ts'
import { leafOf, leafSums, locationRange, SectorSummary, type BucketSum, type SectorSet } from './sectors.ts'

export interface NetRecord {
  action: Action
  signature: Uint8Array
  /** the entry of a Create/Update with a public entry type; null otherwise */
  entry: Entry | null
}

export type WarrantKind = 'ChainIntegrity' | 'ChainFork'

export interface Warrant {
  kind: WarrantKind
  warrantee: HoloHash
  /** ChainIntegrity: the invalid record; ChainFork: two records with one author and seq */
  evidence: NetRecord[]
  issuer: HoloHash
  timestamp: number
  signature: Uint8Array
  reason: string
}

export interface Receipt { action_hash: HoloHash, validator: HoloHash, signature: Uint8Array }

/** What one pruning call did: records deleted, own records that left the summary, and whether work is left. */
export interface SpacePruneResult { deleted: number, excluded: number, more: boolean }

type Verdict =
  | { kind: 'valid', ops: ProducedOp[] }
  | { kind: 'invalid', reason: string }
  | { kind: 'fork', other: DhtActionRow }
  | { kind: 'pending', waitingFor: Uint8Array }
  | { kind: 'dropped', reason: string }

export interface ReceiveOutcome {
  integrated: SignedAction[]
  rejected: Array<{ hash: HoloHash, reason: string }>
  pending: number
  dropped: number
  /** records none of whose ops fall in this node's arc, left alone */
  notAuthority: number
  warrants: Warrant[]
}

export interface ReceiveOptions {
  /** keep records this node is no authority for (what a local miss fetched for a zome call) */
  cache?: boolean
}

const emptyOutcome = (): ReceiveOutcome => ({ integrated: [], rejected: [], pending: 0, dropped: 0, notAuthority: 0, warrants: [] })

export class DhtWireError extends FlexnodeError {
  static override readonly name = 'DhtWireError'
}

/** Largest record accepted from the network (action + entry, msgpack). */
export const MAX_NET_RECORD_BYTES = 4_200_000
/** Records that wait longer than this in limbo are dropped; sync brings them back if they matter. */
export const LIMBO_TTL_MS = 10 * 60 * 1000
/** Records one author may have waiting in limbo, and all authors together; more are dropped. */
export const LIMBO_MAX_PER_AUTHOR = 512
export const LIMBO_MAX = 20_000
/** Hashes a pruning space remembers having pruned or dropped past its horizon (the oldest are forgotten first). */
export const MAX_REMEMBERED_PRUNED = 100_000
/**
 * A record this much newer than the horizon whose previous action is missing is still taken as
 * where the mesh's copy of its chain starts: nodes prune at different times and clocks differ.
 */
export const HORIZON_SLACK_MS = 60 * 60 * 1000

const nowMicros = (): number => Date.now() * 1000

function isU8 (v: unknown, len?: number): v is Uint8Array {
  return v instanceof Uint8Array && (len === undefined || v.length === len)
}

/** Shape-check a record from the network; hashes and signatures are checked later. */
export function checkNetRecord (value: unknown): NetRecord {
  if (!isPlainObject(value)) throw new DhtWireError('a record must be a map {action, signature, entry}')
  const { action, signature, entry } = value
  if (!isU8(signature, 64)) throw new DhtWireError('record.signature must be 64 bytes')
  if (!isPlainObject(action) || !isPlainObject(action.header) || !isPlainObject(action.data)) throw new DhtWireError('record.action must be {header, data}')
  const h = action.header
  if (!isHash(h.author, 'Agent')) throw new DhtWireError('action.header.author must be an AgentPubKey')
  if (typeof h.timestamp !== 'number' || !Number.isSafeInteger(h.timestamp) || h.timestamp < 0) throw new DhtWireError('action.header.timestamp must be a non-negative integer')
  if (typeof h.action_seq !== 'number' || !Number.isSafeInteger(h.action_seq) || h.action_seq < 0) throw new DhtWireError('action.header.action_seq must be a non-negative integer')
  if (h.prev_action !== null && !isHash(h.prev_action, 'Action')) throw new DhtWireError('action.header.prev_action must be an ActionHash or null')
  const d = action.data
  const need = (field: string, ok: (v: unknown) => boolean): void => { if (!ok(d[field])) throw new DhtWireError(`action.data.${field} is malformed`) }
  const anyHash = (v: unknown): boolean => isU8(v, 39)
  const entryType = (v: unknown): boolean => v === 'Agent' || v === 'CapGrant' || v === 'CapClaim' ||
    (isPlainObject(v) && isPlainObject(v.App) && Number.isInteger(v.App.entry_index) && Number.isInteger(v.App.zome_index) && (v.App.visibility === 'Public' || v.App.visibility === 'Private'))
  switch (d.type) {
    case 'Dna': need('hash', v => isHash(v, 'Dna')); break
    case 'AgentValidationPkg': need('membrane_proof', v => v === null || isU8(v)); break
    case 'InitZomesComplete': break
    case 'Create': need('entry_type', entryType); need('entry_hash', v => isHash(v, 'Entry')); break
    case 'Update': need('entry_type', entryType); need('entry_hash', v => isHash(v, 'Entry')); need('original_action_address', v => isHash(v, 'Action')); need('original_entry_address', v => isHash(v, 'Entry')); break
    case 'Delete': need('deletes_address', v => isHash(v, 'Action')); need('deletes_entry_address', v => isHash(v, 'Entry')); break
    case 'CreateLink': need('base_address', anyHash); need('target_address', anyHash); need('zome_index', Number.isInteger); need('link_type', Number.isInteger); need('tag', isU8); need('weight', isPlainObject); break
    case 'DeleteLink': need('base_address', anyHash); need('link_add_address', v => isHash(v, 'Action')); break
    default: throw new DhtWireError(`unknown action type ${String(d.type).slice(0, 32)}`)
  }
  let e: Entry | null = null
  if (entry !== null && entry !== undefined) {
    if (!isPlainObject(entry)) throw new DhtWireError('record.entry must be a map or null')
    if (entry.entry_type === 'App' && isU8(entry.entry)) e = { entry_type: 'App', entry: entry.entry }
    else if (entry.entry_type === 'Agent' && isHash(entry.entry, 'Agent')) e = { entry_type: 'Agent', entry: entry.entry }
    else throw new DhtWireError('record.entry must be an App or Agent entry')
  }
  return { action: action as unknown as Action, signature, entry: e }
}

function isPublic (et: EntryType): boolean {
  return et === 'Agent' || (typeof et === 'object' && et.App.visibility === 'Public')
}

export interface DhtSpaceComponents {
  store: ConductorStore
  keystore: Pick<Keystore, 'sign' | 'verify'>
  logger: ComponentLogger
  /** ms since the epoch, for the pruning horizon. @default Date.now */
  clock?: () => number
  /** a warrant this node issued was stored (inside the transaction that stored it, when there is one) */
  onWarrant?: (warrant: Warrant) => void
}

export interface DhtSpaceInit {
  /** records older than this (by action timestamp) are pruned unless kept (`retention.ts`). @default none: kept forever */
  maxAgeMs?: number
}

export class DhtSpace {
  readonly dna: LoadedDna
  /** the local agent that signs receipts and warrants for this space */
  readonly agent: HoloHash
  private readonly c: DhtSpaceComponents
  private readonly log: ComponentLogger
  /** per-sector sums of the valid ops held */
  private readonly sectors = new SectorSummary()
  /**
   * Whether this node is an authority for a DHT location (its arc holds it): only those ops are
   * integrated, and only there does it check chains. @default every location (a full arc)
   */
  authority: (location: number) => boolean = () => true
  private readonly blocked = new Set<string>()
  private readonly maxAgeMs: number | undefined
  private readonly now: () => number
  /** hashes pruned here or dropped past the horizon (insertion order: the oldest go first) */
  private readonly pruned = new Set<string>()
  /** records past the horizon that arrived and were dropped because no pass would keep them */
  droppedBeyondHorizon = 0
  /** a pruning pass is planned and not yet carried out to its end */
  private pruning = false

  /** signature checks through the keystore's key cache */
  private readonly verify: SignatureCheck
  constructor (dna: LoadedDna, agent: HoloHash, components: DhtSpaceComponents, init: DhtSpaceInit = {}) {
    this.dna = dna
    this.agent = agent
    this.c = components
    this.maxAgeMs = init.maxAgeMs
    this.now = components.clock ?? Date.now
    this.verify = (publicKey32, data, signature) => components.keystore.verify(publicKey32, data, signature)
    this.log = components.logger.forComponent(`flexnode:dht:${dna.def.name}`)
    this.rebuildSummary()
    for (const w of components.store.warrants(dna.hash)) this.blocked.add(encodeHash(retype(w.warrantee, 'Agent')))
  }

  private get store (): ConductorStore { return this.c.store }

  /** Count newly integrated valid ops in the sector summary (ops committed locally, too). */
  noteOps (ops: Iterable<{ location: number, hash: Uint8Array }>): void {
    for (const op of ops) this.sectors.add(op.location, op.hash)
  }

  /** Recount the sector summary from the store (after data was removed underneath it). */
  rebuildSummary (): void {
    this.sectors.clear()
    for (const op of this.store.validOps(this.dna.hash)) this.sectors.add(op.location, op.hash)
  }

  /** The pruning horizon now, in µs (action timestamps), or null when this space keeps everything. */
  horizon (): number | null {
    return this.maxAgeMs === undefined ? null : (this.now() - this.maxAgeMs) * 1000
  }

  private remember (hash: Uint8Array): void {
    const key = encodeHash(hash)
    this.pruned.delete(key)
    this.pruned.add(key)
    if (this.pruned.size > MAX_REMEMBERED_PRUNED) this.pruned.delete(this.pruned.values().next().value!)
  }

  /** The hashes among these that this space pruned or dropped past its horizon (and still remembers). */
  prunedAmong (hashes: Uint8Array[]): Uint8Array[] {
    return this.pruned.size === 0 ? [] : hashes.filter(h => this.pruned.has(encodeHash(h)))
  }

  /**
   * One step of a pruning pass: the first step plans the pass at the current horizon
   * (`ConductorStore.planPrune`), each step then takes at most `limit` records out of the
   * summary in one transaction; `more` says whether the pass has steps left.
   */
  prune (limit: number): SpacePruneResult {
    const horizon = this.horizon()
    if (horizon === null) return { deleted: 0, excluded: 0, more: false }
    if (!this.pruning) {
      this.store.planPrune(this.dna.hash, horizon)
      this.pruning = true
    }
    const r = this.store.applyPrune(this.dna.hash, limit)
    if (!r.more) this.pruning = false
    for (const h of r.deleted) this.remember(h)
    // the ops of deleted records, and of own records that left the summary, leave the sector sums
    for (const op of r.removedOps) this.sectors.remove(op.location, op.hash)
    return { deleted: r.deleted.length, excluded: r.excluded.length, more: r.more }
  }

  /**
   * A record past `horizon` that no pruning pass would keep: dropped on arrival. `laterArriving`:
   * a later action of its author from before the horizon arrives in the same batch.
   */
  private beyondHorizon (r: NetRecord, hash: Uint8Array, horizon: number | null, laterArriving: boolean): boolean {
    if (horizon === null || r.action.header.timestamp >= horizon) return false
    return !this.store.keepsOld(this.dna.hash, dhtActionRow(this.dna.hash, { action: r.action, hash, signature: r.signature }, new Uint8Array(0), 'Valid'), horizon, laterArriving)
  }

  /** 32 bytes equal on two nodes holding the same valid ops in the sectors of `set`. */
  digest (set: SectorSet): Uint8Array {
    return this.sectors.digest(set)
  }

  /** Sums of the non-empty sectors of `set`. */
  sectorSums (set: SectorSet): Map<number, BucketSum> {
    return this.sectors.sums(set)
  }

  /** Valid ops held in one sector. */
  sectorCount (sector: number): number {
    return this.sectors.count(sector)
  }

  /** Valid ops held in the sectors of `set`. */
  opCount (set?: SectorSet): number {
    return this.sectors.total(set)
  }

  /** Sums of one sector's leaves, from the index. */
  leafSums (sector: number): Map<number, BucketSum> {
    const [lo, hi] = locationRange(sector)
    return leafSums(this.store.validOpsInRange(this.dna.hash, lo, hi, 1_000_000))
  }

  /** Action hashes behind the valid ops of whole sectors or of single leaves `[sector, leaf]`, de-duplicated, up to `limit`. */
  actionsIn (buckets: Array<number | [number, number]>, limit: number): Uint8Array[] {
    const seen = new Set<string>()
    const out: Uint8Array[] = []
    for (const b of buckets) {
      const [lo, hi] = typeof b === 'number' ? locationRange(b) : locationRange(b[0], b[1])
      for (const op of this.store.validOpsInRange(this.dna.hash, lo, hi, limit * 5)) {
        if (typeof b !== 'number' && leafOf(op.location) !== b[1]) continue
        const key = Buffer.from(op.action_hash).toString('base64')
        if (seen.has(key)) continue
        seen.add(key)
        out.push(op.action_hash)
        if (out.length >= limit) return out
      }
    }
    return out
  }

  /** Every valid action hash this node holds and offers to sync, up to `limit`. */
  validActions (limit = 100_000): Uint8Array[] {
    return this.store.allValidHashes(this.dna.hash, limit)
  }

  /** Held (valid or rejected), waiting in limbo, or pruned here: nothing to fetch. */
  knows (hash: Uint8Array): boolean {
    return this.store.knows(this.dna.hash, hash) || (this.pruned.size > 0 && this.pruned.has(encodeHash(hash)))
  }

  /** Valid records by action hash, public entries included, private ones withheld. */
  records (hashes: Uint8Array[], maxBytes: number): NetRecord[] {
    const out: NetRecord[] = []
    let bytes = 0
    for (const h of hashes) {
      const row = this.store.dhtAction(this.dna.hash, h)
      if (row === undefined || row.status !== 'Valid') continue
      const action = decodeAction(row.action)
      const d = action.data
      let entry: Entry | null = null
      if ((d.type === 'Create' || d.type === 'Update') && isPublic(d.entry_type)) {
        const e = this.store.getEntry(this.dna.hash, d.entry_hash)
        if (e === undefined || e.private === 1) continue
        entry = decodeEntry(e.blob)
      }
      bytes += row.action.length + 200 + (entry?.entry_type === 'App' ? entry.entry.length : 39)
      if (out.length > 0 && bytes > maxBytes) break
      out.push({ action, signature: row.signature, entry })
    }
    return out
  }

  /** Records an authority serves for a cascade miss: an action by its hash, or the live actions creating an entry. */
  recordsByBasis (hashes: Uint8Array[], maxBytes: number): NetRecord[] {
    const actions: Uint8Array[] = []
    for (const h of hashes) {
      if (h[1] === 0x29) actions.push(h)
      else if (h[1] === 0x21 || h[1] === 0x20) actions.push(...this.store.dhtActionsForEntry(this.dna.hash, retype(h, 'Entry')).slice(0, 8).map(r => r.hash))
    }
    return this.records(actions, maxBytes)
  }

  /** Live CreateLink records on a base, for a cascade miss on get_links. */
  linkRecords (base: Uint8Array, zomeIndex: number, linkType: number, limit: number, maxBytes: number): NetRecord[] {
    return this.records(this.store.dhtLinks(this.dna.hash, base, zomeIndex, linkType).slice(0, limit).map(r => r.hash), maxBytes)
  }

  /** What records waiting in limbo need and this node does not hold. */
  missingPrevs (limit: number): Uint8Array[] {
    return this.store.limboNeeds(this.dna.hash, limit * 2).filter(h => !this.knows(h)).slice(0, limit)
  }

  /** Records waiting in limbo. */
  pendingCount (): number {
    return this.store.limboCount(this.dna.hash)
  }

  isBlocked (agent: Uint8Array): boolean {
    return this.blocked.has(encodeHash(retype(agent, 'Agent')))
  }

  blockedAgents (): string[] {
    return [...this.blocked]
  }

  private lookup (): Lookup {
    return {
      action: (hash) => {
        const row = this.store.dhtAction(this.dna.hash, hash)
        return row === undefined || row.status !== 'Valid' ? undefined : signedActionHashed(row.hash, decodeAction(row.action), row.signature)
      },
      entry: (hash) => {
        const row = this.store.getEntry(this.dna.hash, hash)
        return row === undefined ? undefined : decodeEntry(row.blob)
      }
    }
  }

  /**
   * Validate and integrate records from the network. Each is checked on its own; a bad one
   * never stops the others. Records in limbo that waited for an integrated one are retried
   * right away (and only those: limbo is indexed by what each record waits for).
   */
  receive (records: NetRecord[], options: ReceiveOptions = {}): ReceiveOutcome {
    const out = emptyOutcome()
    const sorted = records.map(r => ({ r, author: encodeHash(r.action.header.author) })).sort((a, b) => {
      const c = a.author.localeCompare(b.author)
      return c !== 0 ? c : a.r.action.header.action_seq - b.r.action.header.action_seq
    })
    // one horizon for the whole batch; each author's highest action_seq from before it (sorted, so the last one seen)
    const horizon = this.horizon()
    const newestOld = new Map<string, number>()
    if (horizon !== null) {
      for (const { r, author } of sorted) if (r.action.header.timestamp < horizon) newestOld.set(author, r.action.header.action_seq)
    }
    // the batch is one transaction: a commit (a WAL append) per record was the largest single
    // cost of taking in a peer's records
    try {
      this.store.transaction(() => {
        for (const { r, author } of sorted) {
          const hash = actionHashOf(r.action)
          if (this.knows(hash)) continue
          if (this.beyondHorizon(r, hash, horizon, (newestOld.get(author) ?? -1) > r.action.header.action_seq)) {
            // pruned here already, or would be at the next pass: not taken back from a peer that holds more
            out.dropped++
            this.droppedBeyondHorizon++
            this.remember(hash)
            continue
          }
          this.process(r, hash, out, false, options.cache === true)
        }
      })
    } catch (err) {
      // nothing of the batch was written: the sector sums must not count it
      this.rebuildSummary()
      throw err
    }
    out.pending = this.store.limboCount(this.dna.hash)
    return out
  }

  /**
   * A valid record this node holds, listed by a peer for sectors this node now holds too (its arc
   * grew): integrate the record's ops that fall in the arc and are missing. Returns how many.
   */
  adopt (hash: Uint8Array): number {
    const row = this.store.dhtAction(this.dna.hash, hash)
    if (row === undefined || row.status !== 'Valid') return 0
    const action = decodeAction(row.action)
    const d = action.data
    const ops = produceOps({ action, hash, signature: row.signature }, (d.type === 'Create' || d.type === 'Update') && isPublic(d.entry_type)).filter(o => this.authority(o.location))
    const now = nowMicros()
    const added: ProducedOp[] = []
    this.store.transaction(() => {
      for (const op of ops) {
        if (this.store.insertOp({ dna: this.dna.hash, hash: op.hash, type: op.type, basis: op.basis, location: op.location, action_hash: hash, author: action.header.author, stage: 'integrated', validation_status: 'Valid', when_integrated: now, authored: 0 })) added.push(op)
      }
    })
    this.noteOps(added)
    return added.length
  }

  /** Retry everything in limbo once (a periodic safety net) and drop what waited too long. */
  retryLimbo (out: ReceiveOutcome = emptyOutcome()): ReceiveOutcome {
    this.store.pruneLimbo(Date.now() - LIMBO_TTL_MS)
    for (const row of this.store.limbo(this.dna.hash)) {
      let r: NetRecord
      try {
        r = checkNetRecord(decode(row.record))
      } catch {
        this.store.deleteLimbo(this.dna.hash, row.hash)
        continue
      }
      if (this.store.dhtAction(this.dna.hash, row.hash) !== undefined) { this.store.deleteLimbo(this.dna.hash, row.hash); continue }
      this.process(r, row.hash, out, true)
    }
    out.pending = this.store.limboCount(this.dna.hash)
    return out
  }

  /** Integrate, reject or park one record, then wake whatever waited for it. */
  private process (r: NetRecord, hash: Uint8Array, out: ReceiveOutcome, verified: boolean, cache = false): Verdict['kind'] {
    const v = this.judge(r, hash, verified)
    switch (v.kind) {
      case 'dropped':
        out.dropped++
        return v.kind
      case 'invalid':
        this.store.deleteLimbo(this.dna.hash, hash)
        this.reject(r, { action: r.action, hash, signature: r.signature }, v.reason, out)
        return v.kind
      case 'fork': {
        this.store.deleteLimbo(this.dna.hash, hash)
        const first: NetRecord = { action: decodeAction(v.other.action), signature: v.other.signature, entry: null }
        out.warrants.push(this.warrant('ChainFork', r.action.header.author, [first, { ...r, entry: null }], `two actions at seq ${r.action.header.action_seq}`))
        this.insertRejected({ action: r.action, hash, signature: r.signature })
        out.rejected.push({ hash, reason: 'chain fork' })
        return v.kind
      }
      case 'pending': {
        const author = r.action.header.author
        if (!verified && (this.store.limboCount(this.dna.hash, author) >= LIMBO_MAX_PER_AUTHOR || this.store.limboCount(this.dna.hash) >= LIMBO_MAX)) {
          out.dropped++
          return 'dropped'
        }
        this.store.putLimbo(this.dna.hash, hash, author, r.action.header.action_seq, v.waitingFor, encode(r), Date.now())
        return v.kind
      }
      case 'valid': {
        const held = v.ops.filter(o => this.authority(o.location))
        if (held.length === 0 && !cache) {
          out.notAuthority++
          return 'dropped'
        }
        this.integrate(r, hash, held, out)
        this.wake(hash, out)
        return v.kind
      }
    }
  }

  /** Retry the records that waited for `hash`, and transitively what waited for them. */
  private wake (hash: Uint8Array, out: ReceiveOutcome): void {
    const queue = [hash]
    while (queue.length > 0) {
      const h = queue.pop()!
      for (const row of this.store.limboWaitingFor(this.dna.hash, h)) {
        this.store.deleteLimbo(this.dna.hash, row.hash)
        let r: NetRecord
        try { r = checkNetRecord(decode(row.record)) } catch { continue }
        const before = out.integrated.length
        this.process(r, row.hash, out, true)
        if (out.integrated.length > before) queue.push(row.hash)
      }
    }
  }

  /**
   * The verdict on one record, without writing anything: hash and signature (skipped for
   * records already verified on their way into limbo), system validation, app validation.
   */
  private judge (r: NetRecord, hash: Uint8Array, verified: boolean): Verdict {
    const sa: SignedAction = { action: r.action, hash, signature: r.signature }
    const author = r.action.header.author
    if (this.isBlocked(author)) return { kind: 'dropped', reason: 'author is blocked' }
    // a record its author did not sign is dropped, never warranted
    const integrity = checkActionIntegrity(sa, r.entry, { signedHere: verified, verify: this.verify })
    if (integrity.type !== 'Valid') {
      const reason = integrity.type === 'Invalid' ? integrity.reason : 'unresolved'
      if (reason.includes('signature') || reason.includes('action hash')) return { kind: 'dropped', reason }
      return { kind: 'invalid', reason }
    }
    const d = r.action.data
    if ((d.type === 'Create' || d.type === 'Update')) {
      const pub = isPublic(d.entry_type)
      if (pub && r.entry === null) return { kind: 'dropped', reason: 'public entry missing' }
      if (!pub && r.entry !== null) return { kind: 'invalid', reason: 'a private entry was published' }
    }
    const seq = r.action.header.action_seq
    // the chain is checked by the authorities of its author's activity (as in Holochain); the
    // others judge the record on its own, since they keep no copy of the author's chain
    const chainAuthority = this.authority(dhtLocation(author))
    if (seq === 0) {
      if (d.type !== 'Dna' || !hashEquals(d.hash, this.dna.hash)) return { kind: 'invalid', reason: 'the first action must be Dna of this DNA' }
    } else {
      const prev = r.action.header.prev_action!
      const prevRow = this.store.dhtAction(this.dna.hash, prev)
      if (prevRow === undefined) {
        // past the horizon the previous action was pruned across the mesh: the chain is checked from here on
        const horizon = this.horizon()
        if (chainAuthority && (horizon === null || r.action.header.timestamp >= horizon + HORIZON_SLACK_MS * 1000)) return { kind: 'pending', waitingFor: prev }
      } else {
        if (prevRow.status !== 'Valid') return { kind: 'invalid', reason: 'builds on a rejected action' }
        const link = checkChainLink(r.action, { hash: prevRow.hash, action: decodeAction(prevRow.action) })
        if (link.type !== 'Valid') return { kind: 'invalid', reason: link.type === 'Invalid' ? link.reason : 'bad chain link' }
      }
      if (seq === 1 && d.type !== 'AgentValidationPkg') return { kind: 'invalid', reason: 'the second action must be AgentValidationPkg' }
      if (seq === 2 && !(d.type === 'Create' && d.entry_type === 'Agent' && hashEquals(d.entry_hash, retype(author, 'Entry')))) return { kind: 'invalid', reason: 'the third action must create the Agent entry' }
    }
    const other = this.store.dhtActionAt(this.dna.hash, author, seq)
    if (other !== undefined && !hashEquals(other.hash, hash)) return { kind: 'fork', other }
    const entryPublic = d.type === 'Create' || d.type === 'Update' ? isPublic(d.entry_type) : false
    const ops = produceOps(sa, entryPublic)
    let result: ValidateResult
    try {
      result = validateOps(this.dna, sa, r.entry, ops.map(o => o.type), this.lookup())
    } catch (err) {
      // validation could not run to its end (a sandbox limit): no verdict; sync offers it again later
      if (err instanceof ZomeSandboxError) return { kind: 'dropped', reason: err.message }
      throw err
    }
    if (result.type === 'UnresolvedDependencies') return { kind: 'pending', waitingFor: result.hashes[0] ?? hash }
    if (result.type === 'Invalid') return { kind: 'invalid', reason: result.reason }
    return { kind: 'valid', ops }
  }

  private integrate (r: NetRecord, hash: Uint8Array, ops: ProducedOp[], out: ReceiveOutcome): void {
    const sa: SignedAction = { action: r.action, hash, signature: r.signature }
    const now = nowMicros()
    const actionBytes = encode(r.action)
    this.store.transaction(() => {
      if (r.entry !== null) this.store.putEntry(this.dna.hash, entryHashOf(r.entry), encode(r.entry), false)
      for (const op of ops) {
        this.store.insertOp({ dna: this.dna.hash, hash: op.hash, type: op.type, basis: op.basis, location: op.location, action_hash: hash, author: r.action.header.author, stage: 'integrated', validation_status: 'Valid', when_integrated: now, authored: 0 })
      }
      this.store.insertDhtAction(dhtActionRow(this.dna.hash, sa, actionBytes, 'Valid'))
      this.store.deleteLimbo(this.dna.hash, hash)
    })
    this.noteOps(ops)
    out.integrated.push(sa)
  }

  private insertRejected (sa: SignedAction): void {
    this.store.insertDhtAction({ ...dhtActionRow(this.dna.hash, sa, encode(sa.action), 'Rejected') })
  }

  private reject (r: NetRecord, sa: SignedAction, reason: string, out: ReceiveOutcome): void {
    this.log.info({ author: encodeHash(sa.action.header.author), action: encodeHash(sa.hash), reason }, 'rejected an invalid record; warranting its author')
    this.insertRejected(sa)
    out.rejected.push({ hash: sa.hash, reason })
    out.warrants.push(this.warrant('ChainIntegrity', sa.action.header.author, [r], reason))
  }

  // -- warrants ----------------------------------------------------------------------------

  private warrantBody (w: Omit<Warrant, 'signature'>): Uint8Array {
    return hashFromContent({ kind: w.kind, warrantee: w.warrantee, evidence: w.evidence.map(e => actionHashOf(e.action)), issuer: w.issuer, timestamp: w.timestamp, reason: w.reason }, 'Warrant')
  }

  private warrant (kind: WarrantKind, warrantee: HoloHash, evidence: NetRecord[], reason: string): Warrant {
    const body: Omit<Warrant, 'signature'> = { kind, warrantee, evidence, issuer: this.agent, timestamp: nowMicros(), reason }
    const w: Warrant = { ...body, signature: this.c.keystore.sign(this.agent, this.warrantBody(body)) }
    if (this.accept(w)) this.c.onWarrant?.(w)
    return w
  }

  private accept (w: Warrant): boolean {
    const hash = this.warrantBody(w)
    const fresh = this.store.putWarrant(this.dna.hash, hash, w.warrantee, w.kind, encode(w), Date.now())
    const key = encodeHash(retype(w.warrantee, 'Agent'))
    if (!this.blocked.has(key)) {
      this.blocked.add(key)
      this.log.warn({ warrantee: key, kind: w.kind, reason: w.reason }, 'agent warranted and blocked')
    }
    return fresh
  }

  /** Check a warrant from the network and, when its evidence holds, block the warrantee. */
  receiveWarrant (value: unknown): { accepted: boolean, fresh: boolean, warrant?: Warrant, reason?: string } {
    if (!isPlainObject(value)) return { accepted: false, fresh: false, reason: 'not a map' }
    const { kind, warrantee, evidence, issuer, timestamp, signature, reason } = value
    if (kind !== 'ChainIntegrity' && kind !== 'ChainFork') return { accepted: false, fresh: false, reason: 'unknown warrant kind' }
    if (!isHash(warrantee, 'Agent') || !isHash(issuer, 'Agent') || !isU8(signature, 64) || typeof timestamp !== 'number' || typeof reason !== 'string' || !Array.isArray(evidence) || evidence.length === 0 || evidence.length > 2) {
      return { accepted: false, fresh: false, reason: 'malformed warrant' }
    }
    let records: NetRecord[]
    try {
      records = evidence.map(checkNetRecord)
    } catch (err) {
      return { accepted: false, fresh: false, reason: err instanceof Error ? err.message : String(err) }
    }
    const w: Warrant = { kind, warrantee, evidence: records, issuer, timestamp, signature, reason: reason.slice(0, 500) }
    if (!this.verify(issuer.subarray(3, 35), this.warrantBody(w), signature)) return { accepted: false, fresh: false, reason: 'bad issuer signature' }
    const signedBy = (r: NetRecord): boolean => sameKey(r.action.header.author, warrantee) &&
      checkActionIntegrity({ action: r.action, hash: actionHashOf(r.action), signature: r.signature }, null, { verify: this.verify }).type === 'Valid'
    if (!records.every(signedBy)) return { accepted: false, fresh: false, reason: 'evidence not signed by the warrantee' }
    if (kind === 'ChainFork') {
      const [a, b] = records
      if (a === undefined || b === undefined || a.action.header.action_seq !== b.action.header.action_seq || hashEquals(actionHashOf(a.action), actionHashOf(b.action))) {
        return { accepted: false, fresh: false, reason: 'evidence is not a fork' }
      }
    } else {
      const r = records[0]!
      const hash = actionHashOf(r.action)
      const known = this.store.dhtAction(this.dna.hash, hash)
      if (known?.status !== 'Rejected') {
        // judge the evidence ourselves, writing nothing: only our own validation may block an agent
        if (known !== undefined || this.judge(r, hash, false).kind !== 'invalid') return { accepted: false, fresh: false, reason: 'evidence does not fail validation here' }
      }
    }
    const fresh = this.accept(w)
    return { accepted: true, fresh, warrant: w }
  }

  warrants (): Warrant[] {
    return this.store.warrants(this.dna.hash).map(w => decode(w.blob) as Warrant)
  }

  /** Hashes of this space's local authors' actions holding fewer than `target` receipts. */
  underReceipted (target: number, limit: number): Uint8Array[] {
    const horizon = this.horizon()
    // past the horizon peers drop what is not kept: republishing it would only be dropped again
    const rows = horizon === null
      ? this.store.underReceipted(this.dna.hash, this.agent, target, limit)
      : this.store.underReceiptedSince(this.dna.hash, this.agent, target, horizon, limit)
    return rows.map(r => r.hash)
  }

  // -- receipts ----------------------------------------------------------------------------

  private receiptBody (actionHash: Uint8Array): Uint8Array {
    return encode({ dna: this.dna.hash, action_hash: actionHash, status: 'Valid' })
  }

  makeReceipt (actionHash: HoloHash): Receipt {
    return { action_hash: actionHash, validator: this.agent, signature: this.c.keystore.sign(this.agent, this.receiptBody(actionHash)) }
  }

  /** Store a validation receipt for one of our own actions; false if it does not verify. */
  receiveReceipt (value: unknown): boolean {
    if (!isPlainObject(value) || !isHash(value.action_hash, 'Action') || !isHash(value.validator, 'Agent') || !isU8(value.signature, 64)) return false
    if (sameKey(value.validator, this.agent)) return false
    const own = this.store.chainActionByHash(value.action_hash)
    if (own === undefined || !hashEquals(own.dna, this.dna.hash)) return false
    if (!this.verify(value.validator.subarray(3, 35), this.receiptBody(value.action_hash), value.signature)) return false
    this.store.putReceipt(this.dna.hash, value.action_hash, value.validator, value.signature)
    return true
  }
}
