/**
 * A cell: one agent running one DNA. It owns that agent's source chain and runs zome calls.
 *
 * A zome call runs against a workspace (scratch space): HDK writes append signed actions to
 * the scratch and HDK reads see the scratch over the store. When the function returns, every
 * new action is sys- and app-validated, then all of them, their entries, their DHT ops and the
 * integrated records are written in one SQLite transaction. A throw, a timeout or an invalid
 * op discards the scratch: nothing half-written reaches the chain.
 *
 * Calls of one cell run concurrently until they write: a call takes the cell's write lock at its
 * first write (or commit) and keeps it until its commit, so writers run one at a time while
 * reads, and calls waiting on the network for a local miss, never hold the writers up. A call
 * that takes the lock before it has written anything moves its scratch onto the chain head of
 * that moment (as Holochain's relaxed chain-top ordering does), so it never fails because an
 * earlier writer moved the head.
 */
import type {
  Action, ActionData, ActionHash, AgentInfo, AgentPresence, DnaInfo, Entry, EntryType, GetLinksInput, HolochainRecord,
  Link, QueryFilter, RecordDetails, SignedActionHashed, ZomeCallCapGrant
} from '../../../zomes-ts/hdk/index.ts'
import { encodeHash, hashEquals, hashFromContent, hashType, isHash, retype, sameKey, type HoloHash } from '../holo/hash.ts'
import type { Keystore } from '../identity/keystore.ts'
import type { ComponentLogger } from '../logger.ts'
import { decode, encode, isPlainObject } from './codec.ts'
import { DEFAULT_ZOME_CALL_TIMEOUT_MS } from './constants.ts'
import type { HostHdk, LoadedCoordinatorZome, LoadedDna, LoadedIntegrityZome, SandboxedFunction } from './dna.ts'
import { InvalidInputError } from '../errors.ts'
import { HdkCallError, InvalidCommitError, ZomeInitFailedError, ribosomeError } from './errors.ts'
import { ZomeSandboxError } from './sandbox/errors.ts'
import { entryOf, hdkDecodeHash, hdkEncodeHash, hdkRandomBytes, hdkVerifySignature, pathEntryHash, sysTime } from './hdk-local.ts'
import { dhtOpWire, produceOps, type ProducedOp, type SignedAction } from './ops.ts'
import { decodeAction, decodeEntry, recordOf, signedActionHashed } from './records.ts'
import type { ConductorStore, DhtActionRow } from './store.ts'
import { actionHashOf, cachedLookup, checkActionIntegrity, checkChainLink, entryHashOf, validateOps, type Lookup } from './validation.ts'

export type CellId = [HoloHash, HoloHash]

/** What a cell asks authorities for on a local miss. */
export type CascadeQuery = { hashes: Uint8Array[] } | { base: Uint8Array, zome_index: number, link_type: number }

export interface CellComponents {
  store: ConductorStore
  keystore: Pick<Keystore, 'sign' | 'has' | 'verify'>
  logger: ComponentLogger
  emitSignal: (cellId: CellId, zomeName: string, payload: unknown) => void
  /** on a local miss, ask authorities for these hashes and integrate what they send (the cascade) */
  cascade?: (dna: Uint8Array, query: CascadeQuery) => Promise<void>
  /** the live presence of these agents (null: offline), as the network holds it */
  presence?: (agents: HoloHash[]) => Array<AgentPresence | null>
  /** called after each commit with the new records, in chain order */
  onCommitted?: (cell: Cell, records: Array<{ sa: SignedAction, entry: Entry | null, entryPublic: boolean, ops: ProducedOp[] }>) => void
  /**
   * Called INSIDE each commit's transaction, after its writes, with what is being committed and
   * why: what it writes joins the commit (the audit outbox), and a throw rolls the commit back.
   */
  onCommitting?: (cell: Cell, origin: CommitOrigin, records: Array<{ sa: SignedAction, entry: Entry | null, entryTypeKey: string | null }>) => void
}

/** Why a cell commits: a zome call (with who called it), its genesis, its zomes' init, or a capability grant. */
export type CommitOrigin =
  | { type: 'call', zome: string, fn: string, provenance: HoloHash }
  | { type: 'genesis' | 'init' | 'grant' }

export interface CellInit {
  /** @default 30000 */
  zomeCallTimeoutMs?: number
}

interface Pending {
  sa: SignedAction
  entry: Entry | null
  /** the entry's hash, as the action names it (hashed once, when the action was built) */
  entryHash: Uint8Array | null
  entryPublic: boolean
  entryTypeKey: string | null
}

interface Head { hash: Uint8Array, action: Action }

const nowMicros = (): number => Date.now() * 1000
/** agents one `agent_presence` call may ask for */
const MAX_PRESENCE_LOOKUP = 4096

/** `zome:index` for app entries, the variant name otherwise: the chain's entry_type column. */
function entryTypeKey (et: EntryType): string {
  return typeof et === 'string' ? et : `${et.App.zome_index}:${et.App.entry_index}`
}

function rowToSah (row: { hash: Uint8Array, action: Uint8Array, signature: Uint8Array }): SignedActionHashed {
  return signedActionHashed(row.hash, decodeAction(row.action), row.signature)
}

class Workspace {
  closed = false
  readonly pending: Pending[] = []
  head: Head | null
  /** releases the cell's write lock, while this workspace holds it */
  release: (() => void) | null = null

  constructor (head: Head | null) {
    this.head = head
  }

  last (): Head | null {
    const p = this.pending[this.pending.length - 1]
    return p !== undefined ? { hash: p.sa.hash, action: p.sa.action } : this.head
  }

  findAction (hash: Uint8Array): Pending | undefined {
    return this.pending.find(p => hashEquals(p.sa.hash, hash))
  }
}

export class Cell {
  readonly id: CellId
  readonly dna: LoadedDna
  private readonly agent: HoloHash
  private readonly components: CellComponents
  private readonly log: ComponentLogger
  private readonly timeoutMs: number
  /** the write lock: each holder's release settles the promise the next one waits for */
  private lockTail: Promise<void> = Promise.resolve()
  private initializing: Promise<void> | undefined
  /** the head last read or committed (head() checks its hash against the store) */
  private lastHead: Head | null = null

  constructor (dna: LoadedDna, agent: HoloHash, components: CellComponents, init: CellInit = {}) {
    this.dna = dna
    this.agent = agent
    this.id = [dna.hash, agent]
    this.components = components
    this.log = components.logger.forComponent(`flexnode:cell:${dna.def.name}`)
    this.timeoutMs = init.zomeCallTimeoutMs ?? DEFAULT_ZOME_CALL_TIMEOUT_MS
  }

  get agentPubKey (): HoloHash { return this.agent }

  private get store (): ConductorStore { return this.components.store }

  /** The chain's head; its action is decoded again only when the head's hash changed. */
  private head (): Head | null {
    const hash = this.store.chainHeadHash(this.dna.hash, this.agent)
    if (hash === undefined) return null
    if (this.lastHead !== null && hashEquals(this.lastHead.hash, hash)) return this.lastHead
    const row = this.store.chainHead(this.dna.hash, this.agent)
    this.lastHead = row === undefined ? null : { hash: row.hash, action: decodeAction(row.action) }
    return this.lastHead
  }

  /** Write the genesis actions (Dna, AgentValidationPkg, Create(Agent)) if the chain is empty. */
  genesis (membraneProof: Uint8Array | null = null): void {
    if (this.head() !== null) return
    const ws = new Workspace(null)
    this.append(ws, { type: 'Dna', hash: this.dna.hash }, null, false)
    this.append(ws, { type: 'AgentValidationPkg', membrane_proof: membraneProof }, null, false)
    this.append(ws, { type: 'Create', entry_type: 'Agent', entry_hash: retype(this.agent, 'Entry') }, { entry_type: 'Agent', entry: this.agent }, true)
    this.flush(ws, { type: 'genesis' })
  }

  /** Wait for the write lock; resolves with its release. */
  private async lock (): Promise<() => void> {
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    const before = this.lockTail
    this.lockTail = before.then(async () => { await held })
    await before
    return release
  }

  /** Take the write lock for `ws` (once); a workspace with nothing written yet moves onto the current head. */
  private async hold (ws: Workspace): Promise<void> {
    if (ws.release !== null) return
    const release = await this.lock()
    if (ws.closed) {
      // the call returned (a timeout) while its abandoned code waited here
      release()
      throw new HdkCallError('this zome call has already returned; its HDK can no longer be used')
    }
    ws.release = release
    if (ws.pending.length === 0) ws.head = this.head()
  }

  private static done (ws: Workspace): void {
    ws.closed = true
    const release = ws.release
    ws.release = null
    release?.()
  }

  /** Run the zomes' `init` once, before the first call (concurrent first calls share it). */
  private async ensureInit (): Promise<void> {
    this.initializing ??= this.runInit().catch((err: unknown) => {
      this.initializing = undefined
      throw err
    })
    await this.initializing
  }

  private async runInit (): Promise<void> {
    const ws = new Workspace(null)
    await this.hold(ws)
    try {
      if (this.store.chainActions(this.dna.hash, this.agent, { type: 'InitZomesComplete' }).length > 0) return
      for (const coord of this.dna.coordinators.values()) {
        if (coord.init === undefined) continue
        const hdk = this.hdk(ws, coord)
        try {
          const init = coord.init
          const result = await this.withTimeout(async (signal) => await init(hdk, null, { signal }), `${coord.name}/init`)
          if (isPlainObject(result) && result.type === 'Fail') throw new ZomeInitFailedError(String(result.reason ?? 'no reason given'))
        } catch (err) {
          throw ribosomeError(`init of zome ${coord.name} failed: ${err instanceof Error ? err.message : String(err)}`, err)
        }
      }
      this.append(ws, { type: 'InitZomesComplete' }, null, false)
      ws.closed = true
      this.flushOrThrow(ws, { type: 'init' })
    } finally {
      Cell.done(ws)
    }
  }

  /** Run `fn` with a signal that aborts it (the sandboxed call is abandoned) after the call timeout. */
  private async withTimeout<T> (fn: (signal: AbortSignal) => Promise<T>, what: string): Promise<T> {
    const controller = new AbortController()
    const timer = setTimeout(() => { controller.abort(new Error(`${what} did not return within ${this.timeoutMs} ms`)) }, this.timeoutMs)
    try {
      return await fn(controller.signal)
    } finally {
      clearTimeout(timer)
    }
  }

  /** Call a coordinator function. Authorization is the conductor's job; this runs the call. */
  async call (zomeName: string, fnName: string, payload: unknown, provenance: HoloHash): Promise<unknown> {
    const coord = this.dna.coordinators.get(zomeName)
    if (coord === undefined) throw ribosomeError(`zome ${JSON.stringify(zomeName)} not found in DNA ${this.dna.def.name}`)
    const fn: SandboxedFunction | undefined = coord.functions.get(fnName)
    if (fn === undefined) throw ribosomeError(`function ${JSON.stringify(fnName)} not found in zome ${zomeName}`)
    await this.ensureInit()
    const ws = new Workspace(this.head())
    try {
      const hdk = this.hdk(ws, coord, provenance)
      let result: unknown
      try {
        result = await this.withTimeout(async (signal) => await fn(hdk, payload, { signal }), `${zomeName}/${fnName}`)
      } catch (err) {
        if (err instanceof Error && 'kind' in err) throw err
        throw ribosomeError(`${zomeName}/${fnName}: ${err instanceof Error ? err.message : String(err)}`, err)
      } finally {
        ws.closed = true
      }
      this.flushOrThrow(ws, { type: 'call', zome: zomeName, fn: fnName, provenance })
      return result
    } finally {
      Cell.done(ws)
    }
  }

  /** Commit a capability grant to this agent's chain (the admin API's grant_zome_call_capability). */
  async grantCapability (grant: ZomeCallCapGrant): Promise<ActionHash> {
    checkCapGrant(grant)
    const ws = new Workspace(null)
    await this.hold(ws)
    try {
      const hash = this.append(ws, { type: 'Create', entry_type: 'CapGrant', entry_hash: hashFromContent({ entry_type: 'CapGrant', entry: grant }, 'Entry') }, { entry_type: 'CapGrant', entry: grant }, false)
      ws.closed = true
      this.flushOrThrow(ws, { type: 'grant' })
      return hash
    } finally {
      Cell.done(ws)
    }
  }

  // -- writing -----------------------------------------------------------------------------

  private append (ws: Workspace, data: ActionData, entry: Entry | null, entryPublic: boolean): ActionHash {
    const prev = ws.last()
    const timestamp = prev === null ? nowMicros() : Math.max(nowMicros(), prev.action.header.timestamp + 1)
    const action: Action = {
      header: { author: this.agent, timestamp, action_seq: prev === null ? 0 : prev.action.header.action_seq + 1, prev_action: prev?.hash ?? null },
      data
    }
    const hash = actionHashOf(action)
    const signature = this.components.keystore.sign(this.agent, hash)
    const etKey = data.type === 'Create' || data.type === 'Update' ? entryTypeKey(data.entry_type) : null
    const entryHash = entry === null ? null : data.type === 'Create' || data.type === 'Update' ? data.entry_hash : entryHashOf(entry)
    ws.pending.push({ sa: { action, hash, signature }, entry, entryHash, entryPublic, entryTypeKey: etKey })
    return hash
  }

  private lookup (ws: Workspace | null): Lookup {
    return {
      action: (hash) => {
        const p = ws?.findAction(hash)
        if (p !== undefined) return signedActionHashed(p.sa.hash, p.sa.action, p.sa.signature)
        const row = this.store.dhtAction(this.dna.hash, hash)
        return row === undefined || row.status !== 'Valid' ? undefined : rowToSah(row)
      },
      entry: (hash) => {
        const p = ws?.pending.find(x => x.entryHash !== null && hashEquals(x.entryHash, hash))
        if (p?.entry != null) return p.entry
        const row = this.store.getEntry(this.dna.hash, hash)
        return row === undefined ? undefined : decodeEntry(row.blob)
      }
    }
  }

  private flushOrThrow (ws: Workspace, origin: CommitOrigin): void {
    try {
      this.flush(ws, origin)
    } catch (err) {
      if (err instanceof InvalidCommitError || err instanceof ZomeSandboxError) throw ribosomeError(err.message, err)
      throw err
    }
  }

  /** Validate every pending action, then write them all in one transaction. */
  private flush (ws: Workspace, origin: CommitOrigin): void {
    if (ws.pending.length === 0) return
    // nothing is awaited until the commit: what one lookup found holds for the whole flush
    const lookup = cachedLookup(this.lookup(ws))
    let prev: Head | null = ws.head
    const produced = ws.pending.map(p => {
      const integrity = checkActionIntegrity(p.sa, p.entry, { signedHere: true, entryHashedHere: true })
      if (integrity.type !== 'Valid') throw new InvalidCommitError(integrity.type === 'Invalid' ? integrity.reason : 'unresolved dependencies')
      const link = checkChainLink(p.sa.action, prev)
      if (link.type !== 'Valid') throw new InvalidCommitError(link.type === 'Invalid' ? link.reason : 'unresolved dependencies')
      const ops = produceOps(p.sa, p.entryPublic)
      const result = validateOps(this.dna, p.sa, p.entry, ops.map(o => o.type), lookup)
      if (result.type === 'Invalid') throw new InvalidCommitError(result.reason)
      if (result.type === 'UnresolvedDependencies') throw new InvalidCommitError(`unresolved dependencies: ${result.hashes.map(h => encodeHash(h)).join(', ')}`)
      prev = { hash: p.sa.hash, action: p.sa.action }
      return { p, ops }
    })
    const now = nowMicros()
    const dna = this.dna.hash
    this.store.transaction(() => {
      const head = this.store.chainHeadHash(dna, this.agent)
      if (!hashEquals(head ?? null, ws.head?.hash ?? null) && !(head === undefined && ws.head === null)) {
        throw new InvalidCommitError('the chain head moved during the call')
      }
      for (const { p, ops } of produced) {
        const { action, hash, signature } = p.sa
        const actionBytes = encode(action)
        this.store.insertChainAction({
          dna, author: this.agent, seq: action.header.action_seq, hash, type: action.data.type, timestamp: action.header.timestamp,
          entry_hash: 'entry_hash' in action.data ? action.data.entry_hash : null, entry_type: p.entryTypeKey, action: actionBytes, signature
        })
        if (p.entry !== null) this.store.putEntry(dna, p.entryHash ?? entryHashOf(p.entry), encode(p.entry), !p.entryPublic)
        for (const op of ops) {
          this.store.insertOp({ dna, hash: op.hash, type: op.type, basis: op.basis, location: op.location, action_hash: hash, author: this.agent, stage: 'integrated', validation_status: 'Valid', when_integrated: now, authored: 1 })
        }
        this.store.insertDhtAction(dhtActionRow(dna, p.sa, actionBytes, 'Valid'))
        if (p.entry?.entry_type === 'CapGrant') {
          const g = p.entry.entry
          this.store.insertCapGrant({
            dna, author: this.agent, action_hash: hash, tag: g.tag, access: g.access.type,
            secret: g.access.type === 'unrestricted' ? null : g.access.value.secret,
            assignees: g.access.type === 'assigned' ? encode(g.access.value.assignees) : null,
            functions: encode(g.functions), created_at: action.header.timestamp, revoked_at: null
          })
        }
      }
      this.components.onCommitting?.(this, origin, produced.map(({ p }) => ({ sa: p.sa, entry: p.entry, entryTypeKey: p.entryTypeKey })))
    })
    this.log.trace({ actions: produced.length }, 'committed')
    const last = produced[produced.length - 1]!.p.sa
    this.lastHead = { hash: last.hash, action: last.action }
    this.components.onCommitted?.(this, produced.map(({ p, ops }) => ({ sa: p.sa, entry: p.entry, entryPublic: p.entryPublic, ops })))
  }

  // -- the HDK -----------------------------------------------------------------------------

  private resolveEntryType (coord: LoadedCoordinatorZome, name: string): { zome: LoadedIntegrityZome, index: number, visibility: 'Public' | 'Private' } {
    for (const zi of coord.dependencies) {
      const zome = this.dna.integrity[zi]
      const et = zome?.entryTypes.get(name)
      if (zome !== undefined && et !== undefined) return { zome, index: et.index, visibility: et.def.visibility === 'private' ? 'Private' : 'Public' }
    }
    throw new HdkCallError(`unknown entry type ${JSON.stringify(name)}`)
  }

  private resolveLinkType (coord: LoadedCoordinatorZome, name: string): { zomeIndex: number, linkType: number } {
    for (const zi of coord.dependencies) {
      const lt = this.dna.integrity[zi]?.linkTypes.get(name)
      if (lt !== undefined) return { zomeIndex: zi, linkType: lt }
    }
    throw new HdkCallError(`unknown link type ${JSON.stringify(name)}`)
  }

  private record (ws: Workspace, sah: SignedActionHashed): HolochainRecord {
    const d = sah.hashed.content.data
    if (d.type !== 'Create' && d.type !== 'Update') return recordOf(sah, null)
    const entry = this.lookup(ws).entry(d.entry_hash)
    const isPrivate = typeof d.entry_type === 'object' ? d.entry_type.App.visibility === 'Private' : d.entry_type !== 'Agent'
    const mine = sameKey(sah.hashed.content.header.author, this.agent)
    return recordOf(sah, entry, isPrivate && !mine)
  }

  private isDeleted (ws: Workspace, hash: Uint8Array): boolean {
    if (ws.pending.some(p => p.sa.action.data.type === 'Delete' && hashEquals(p.sa.action.data.deletes_address, hash))) return true
    return this.store.dhtDeletes(this.dna.hash, hash).length > 0
  }

  private hdk (ws: Workspace, coord: LoadedCoordinatorZome, provenance?: HoloHash): HostHdk {
    const open = (): void => {
      if (ws.closed) throw new HdkCallError('this zome call has already returned; its HDK can no longer be used')
    }
    /**
     * Every write first takes the cell's write lock (and the chain head of that moment): at once
     * when the call holds it already, else after the writers before it.
     */
    const writing = <T>(write: () => T): T | Promise<T> => {
      open()
      if (ws.release !== null) return write()
      return this.hold(ws).then(() => {
        open()
        return write()
      })
    }
    const lookup = this.lookup(ws)
    /** Local store first; on a miss, the authorities (then the local store again). */
    const cascade = async (query: Uint8Array | CascadeQuery, local: () => boolean): Promise<void> => {
      if (local() || this.components.cascade === undefined) return
      try {
        await this.components.cascade(this.dna.hash, query instanceof Uint8Array ? { hashes: [query] } : query)
      } catch (err) {
        this.log.debug({ err: err instanceof Error ? err.message : String(err) }, 'cascade fetch failed')
      }
    }
    /** `then()` at once when the local store has it (no promise), else after the cascade. */
    const local = <T>(query: Uint8Array | CascadeQuery, has: () => boolean, then: () => T): T | Promise<T> =>
      has() || this.components.cascade === undefined ? then() : cascade(query, () => false).then(then)
    const mustAction = (hash: unknown, what: string): SignedActionHashed => {
      if (!isHash(hash, 'Action')) throw new HdkCallError(`${what} must be an ActionHash`)
      const a = lookup.action(hash)
      if (a === undefined) throw new HdkCallError(`${what} ${encodeHash(hash)} not found`)
      return a
    }
    const cellId = this.id
    const dnaInfo = (): DnaInfo => ({
      hash: this.dna.hash,
      name: this.dna.def.name,
      modifiers: { network_seed: this.dna.def.modifiers.network_seed, properties: this.dna.properties },
      zome_names: [...this.dna.integrity.map(z => z.name), ...this.dna.coordinators.keys()]
    })
    const toLink = (a: Action, hash: Uint8Array): Link => {
      const d = a.data as Extract<ActionData, { type: 'CreateLink' }>
      return { author: a.header.author, base: d.base_address, target: d.target_address, timestamp: a.header.timestamp, zome_index: d.zome_index, link_type: d.link_type, tag: d.tag, create_link_hash: hash }
    }
    const hdk: HostHdk = {
      create_entry: ({ entry_type: name, entry }) => {
        return writing(() => {
          const { zome, index, visibility } = this.resolveEntryType(coord, name)
          const e: Entry = { entry_type: 'App', entry: encode(entry) }
          return this.append(ws, { type: 'Create', entry_type: { App: { entry_index: index, zome_index: zome.index, visibility } }, entry_hash: entryHashOf(e) }, e, visibility === 'Public')
        })
      },
      update_entry: ({ original_action_hash: orig, entry }) => {
        return writing(() => {
          const o = mustAction(orig, 'original_action_hash').hashed.content.data
          if (o.type !== 'Create' && o.type !== 'Update') throw new HdkCallError('only a Create or Update can be updated')
          if (typeof o.entry_type !== 'object') throw new HdkCallError('only app entries can be updated')
          const e: Entry = { entry_type: 'App', entry: encode(entry) }
          return this.append(ws, { type: 'Update', original_action_address: orig, original_entry_address: o.entry_hash, entry_type: o.entry_type, entry_hash: entryHashOf(e) }, e, o.entry_type.App.visibility === 'Public')
        })
      },
      delete_entry: (hash) => {
        return writing(() => {
          const o = mustAction(hash, 'deleted action').hashed.content.data
          if (o.type !== 'Create' && o.type !== 'Update') throw new HdkCallError('only a Create or Update can be deleted')
          return this.append(ws, { type: 'Delete', deletes_address: hash, deletes_entry_address: o.entry_hash }, null, false)
        })
      },
      create_link: ({ base, target, link_type: name, tag }) => {
        return writing(() => {
          if (!isHash(base)) throw new HdkCallError('link base must be a HoloHash')
          if (!isHash(target)) throw new HdkCallError('link target must be a HoloHash')
          if (tag !== undefined && !(tag instanceof Uint8Array)) throw new HdkCallError('link tag must be bytes')
          const { zomeIndex, linkType } = this.resolveLinkType(coord, name)
          return this.append(ws, { type: 'CreateLink', base_address: base, target_address: target, zome_index: zomeIndex, link_type: linkType, tag: tag ?? new Uint8Array(0), weight: { bucket_id: 0, units: 0 } }, null, false)
        })
      },
      delete_link: (hash) => {
        return writing(() => {
          const o = mustAction(hash, 'create_link_hash').hashed.content.data
          if (o.type !== 'CreateLink') throw new HdkCallError('delete_link needs the hash of a CreateLink')
          return this.append(ws, { type: 'DeleteLink', base_address: o.base_address, link_add_address: hash }, null, false)
        })
      },
      get: (hash) => {
        open()
        const t = hashType(hash)
        if (t === 'Action') {
          let a: SignedActionHashed | undefined
          return local(hash, () => (a = lookup.action(hash)) !== undefined, () => {
            a ??= lookup.action(hash)
            return a === undefined ? null : this.record(ws, a)
          })
        }
        if (t === 'Entry' || t === 'Agent') {
          const eh = retype(hash, 'Entry')
          return local(eh, () => this.store.dhtActionsForEntry(this.dna.hash, eh).length > 0 || ws.pending.some(p => 'entry_hash' in p.sa.action.data && hashEquals(p.sa.action.data.entry_hash, eh)), () => {
            const pend = ws.pending.find(p => (p.sa.action.data.type === 'Create' || p.sa.action.data.type === 'Update') && hashEquals(p.sa.action.data.entry_hash, eh))
            if (pend !== undefined) return this.record(ws, signedActionHashed(pend.sa.hash, pend.sa.action, pend.sa.signature))
            for (const row of this.store.dhtActionsForEntry(this.dna.hash, eh)) {
              if (!this.isDeleted(ws, row.hash)) return this.record(ws, rowToSah(row))
            }
            return null
          })
        }
        throw new HdkCallError('get needs an ActionHash or EntryHash')
      },
      get_details: (hash) => {
        open()
        if (!isHash(hash, 'Action')) throw new HdkCallError('get_details needs an ActionHash')
        let found: SignedActionHashed | undefined
        return local(hash, () => (found = lookup.action(hash)) !== undefined, (): RecordDetails | null => {
          const a = found ?? lookup.action(hash)
          if (a === undefined) return null
          const pendingOf = (pred: (d: ActionData) => boolean): SignedActionHashed[] =>
            ws.pending.filter(p => pred(p.sa.action.data)).map(p => signedActionHashed(p.sa.hash, p.sa.action, p.sa.signature))
          return {
            record: this.record(ws, a),
            validation_status: 'Valid',
            updates: [...this.store.dhtUpdates(this.dna.hash, hash).map(rowToSah), ...pendingOf(d => d.type === 'Update' && hashEquals(d.original_action_address, hash))],
            deletes: [...this.store.dhtDeletes(this.dna.hash, hash).map(rowToSah), ...pendingOf(d => d.type === 'Delete' && hashEquals(d.deletes_address, hash))]
          }
        })
      },
      get_latest: (orig) => {
        open()
        if (!isHash(orig, 'Action')) throw new HdkCallError('get_latest needs an ActionHash')
        let found: SignedActionHashed | undefined
        return local(orig, () => (found = lookup.action(orig)) !== undefined, () => {
          const original = found ?? lookup.action(orig)
          if (original === undefined || this.isDeleted(ws, orig)) return null
          let best: SignedActionHashed = original
          const row = this.store.dhtLatestUpdate(this.dna.hash, orig)
          if (row !== undefined) best = rowToSah(row)
          for (const p of ws.pending) {
            const d = p.sa.action.data
            if (d.type !== 'Update' || !hashEquals(d.original_action_address, orig) || this.isDeleted(ws, p.sa.hash)) continue
            const cur = best.hashed.content.header.timestamp
            if (p.sa.action.header.timestamp >= cur) best = signedActionHashed(p.sa.hash, p.sa.action, p.sa.signature)
          }
          return this.record(ws, best)
        })
      },
      get_links: ({ base, link_type: name, tag_prefix: prefix }: GetLinksInput) => {
        open()
        if (!isHash(base)) throw new HdkCallError('get_links base must be a HoloHash')
        const { zomeIndex, linkType } = this.resolveLinkType(coord, name)
        let rows: DhtActionRow[] | undefined
        return local({ base, zome_index: zomeIndex, link_type: linkType }, () => (rows = this.store.dhtLinks(this.dna.hash, base, zomeIndex, linkType)).length > 0 ||
          ws.pending.some(p => p.sa.action.data.type === 'CreateLink' && hashEquals(p.sa.action.data.base_address, base)), () => {
          const links: Link[] = (rows !== undefined && rows.length > 0 ? rows : this.store.dhtLinks(this.dna.hash, base, zomeIndex, linkType)).map(r => toLink(decodeAction(r.action), r.hash))
          for (const p of ws.pending) {
            const d = p.sa.action.data
            if (d.type === 'CreateLink' && hashEquals(d.base_address, base) && d.zome_index === zomeIndex && d.link_type === linkType) links.push(toLink(p.sa.action, p.sa.hash))
          }
          const removed = ws.pending.flatMap(p => p.sa.action.data.type === 'DeleteLink' ? [p.sa.action.data.link_add_address] : [])
          return links.filter(l => !removed.some(r => hashEquals(r, l.create_link_hash)) &&
            (prefix === undefined || (l.tag.length >= prefix.length && prefix.every((b, i) => l.tag[i] === b))))
        })
      },
      query: (filter: QueryFilter = {}) => {
        open()
        let etKey: string | undefined
        if (filter.entry_type !== undefined) {
          const { zome, index } = this.resolveEntryType(coord, filter.entry_type)
          etKey = `${zome.index}:${index}`
        }
        const rows = this.store.chainActions(this.dna.hash, this.agent, { start: filter.sequence_range?.start, end: filter.sequence_range?.end, type: filter.action_type, entryType: etKey })
        const sahs = rows.map(rowToSah)
        for (const p of ws.pending) {
          const seq = p.sa.action.header.action_seq
          if (filter.action_type !== undefined && p.sa.action.data.type !== filter.action_type) continue
          if (etKey !== undefined && p.entryTypeKey !== etKey) continue
          if (filter.sequence_range !== undefined && (seq < filter.sequence_range.start || seq > filter.sequence_range.end)) continue
          sahs.push(signedActionHashed(p.sa.hash, p.sa.action, p.sa.signature))
        }
        if (filter.descending === true) sahs.reverse()
        return sahs.map(s => filter.include_entries === true ? this.record(ws, s) : recordOf(s, null, true))
      },
      agent_info: (): AgentInfo => {
        open()
        const head = ws.last()
        if (head === null) throw new HdkCallError('the chain is empty')
        return { agent_initial_pubkey: this.agent, agent_latest_pubkey: this.agent, chain_head: { action: head.hash, seq: head.action.header.action_seq, timestamp: head.action.header.timestamp } }
      },
      agent_presence: async (agents): Promise<Array<AgentPresence | null>> => {
        open()
        if (!Array.isArray(agents) || agents.length > MAX_PRESENCE_LOOKUP || !agents.every(a => isHash(a, 'Agent'))) throw new HdkCallError(`agent_presence takes a list of at most ${MAX_PRESENCE_LOOKUP} AgentPubKeys`)
        return this.components.presence?.(agents) ?? agents.map(() => null)
      },
      dna_info: dnaInfo,
      emit_signal: (payload) => {
        open()
        this.components.emitSignal(cellId, coord.name, payload)
      },
      sys_time: sysTime,
      random_bytes: hdkRandomBytes,
      sign: (key, data) => {
        open()
        if (!isHash(key, 'Agent')) throw new HdkCallError('sign needs an AgentPubKey')
        return this.components.keystore.sign(key, encode(data))
      },
      verify_signature: (key, signature, data) => hdkVerifySignature(key, signature, data, this.components.keystore.verify.bind(this.components.keystore)),
      create_cap_grant: (grant: ZomeCallCapGrant) => {
        return writing(() => {
          checkCapGrant(grant)
          return this.append(ws, { type: 'Create', entry_type: 'CapGrant', entry_hash: hashFromContent({ entry_type: 'CapGrant', entry: grant }, 'Entry') }, { entry_type: 'CapGrant', entry: grant }, false)
        })
      },
      path_entry_hash: pathEntryHash,
      entry_of: entryOf,
      encode_hash: hdkEncodeHash,
      decode_hash: hdkDecodeHash
    }
    void provenance
    return hdk
  }

  // -- inspection --------------------------------------------------------------------------

  /** Every record of this agent's chain, oldest first. */
  chain (): HolochainRecord[] {
    const ws = new Workspace(null)
    ws.closed = true
    return this.store.chainActions(this.dna.hash, this.agent).map(r => this.record(ws, rowToSah(r)))
  }

  /** `dump_full_state`: the chain, and the DHT ops this node holds for the DNA by stage. */
  dumpFullState (cursor = 0): unknown {
    const dna = this.dna.hash
    const entryFor = (action: Action): Entry | null => {
      const d = action.data
      if (d.type !== 'Create' && d.type !== 'Update') return null
      const row = this.store.getEntry(dna, d.entry_hash)
      return row === undefined || row.private === 1 ? null : decodeEntry(row.blob)
    }
    const wire = (rows: Array<{ type: string, action_hash: Uint8Array, seq: number }>): { ops: unknown[], last: number } => {
      const ops: unknown[] = []
      let last = cursor
      for (const r of rows) {
        const a = this.store.dhtAction(dna, r.action_hash)
        if (a === undefined) continue
        const action = decodeAction(a.action)
        ops.push(dhtOpWire(r.type as never, { action, hash: a.hash, signature: a.signature }, entryFor(action)))
        last = Math.max(last, r.seq)
      }
      return { ops, last }
    }
    const integrated = wire(this.store.opsByStage(dna, 'integrated', cursor))
    const limbo = this.store.limbo(dna).flatMap(row => {
      const r = decode(row.record) as { action: Action, signature: Uint8Array, entry: Entry | null }
      const hash = actionHashOf(r.action)
      const d = r.action.data
      const pub = (d.type === 'Create' || d.type === 'Update') && (d.entry_type === 'Agent' || (typeof d.entry_type === 'object' && d.entry_type.App.visibility === 'Public'))
      return produceOps({ action: r.action, hash, signature: r.signature }, pub).map(op => dhtOpWire(op.type, { action: r.action, hash, signature: r.signature }, r.entry))
    })
    const warrants = cursor > 0 ? [] : this.store.warrants(dna).map(w => ({ WarrantOp: decode(w.blob) }))
    const chain = this.store.chainActions(dna, this.agent)
    return {
      peer_dump: { this_agent_info: null, this_dna: null, this_agent: null, peers: [] },
      source_chain_dump: {
        records: chain.map(r => {
          const action = decodeAction(r.action)
          return { signature: r.signature, action_address: r.hash, action, entry: entryFor(action) }
        }),
        published_ops_count: integrated.ops.length
      },
      integration_dump: {
        validation_limbo: limbo,
        integration_limbo: [],
        integrated: [...integrated.ops, ...warrants],
        dht_ops_cursor: integrated.last
      }
    }
  }
}

export function dhtActionRow (dna: Uint8Array, sa: SignedAction, actionBytes: Uint8Array, status: string): DhtActionRow {
  const { action, hash, signature } = sa
  const d = action.data
  return {
    dna,
    hash,
    author: action.header.author,
    seq: action.header.action_seq,
    timestamp: action.header.timestamp,
    type: d.type,
    entry_hash: d.type === 'Create' || d.type === 'Update' ? d.entry_hash : null,
    original_action: d.type === 'Update' ? d.original_action_address : null,
    deletes_action: d.type === 'Delete' ? d.deletes_address : null,
    base: d.type === 'CreateLink' || d.type === 'DeleteLink' ? d.base_address : null,
    target: d.type === 'CreateLink' ? d.target_address : null,
    link_add: d.type === 'DeleteLink' ? d.link_add_address : null,
    zome_index: d.type === 'CreateLink' ? d.zome_index : null,
    link_type: d.type === 'CreateLink' ? d.link_type : null,
    tag: d.type === 'CreateLink' ? d.tag : null,
    action: actionBytes,
    signature,
    status
  }
}

/** Shape-check a capability grant from a zome or the admin API. */
export function checkCapGrant (grant: unknown): asserts grant is ZomeCallCapGrant {
  if (!isPlainObject(grant)) throw new InvalidInputError('cap_grant must be a map {tag, access, functions}', { field: 'cap_grant' })
  if (typeof grant.tag !== 'string' || grant.tag.length > 256) throw new InvalidInputError('cap_grant.tag must be a string of at most 256 characters', { field: 'cap_grant' })
  const access = grant.access
  if (!isPlainObject(access)) throw new InvalidInputError('cap_grant.access must be a map', { field: 'cap_grant' })
  const secretOk = (v: unknown): boolean => isPlainObject(v) && v.secret instanceof Uint8Array && v.secret.length === 64
  if (access.type === 'unrestricted') {
    // nothing more
  } else if (access.type === 'transferable') {
    if (!secretOk(access.value)) throw new InvalidInputError('cap_grant.access.value.secret must be 64 bytes', { field: 'cap_grant' })
  } else if (access.type === 'assigned') {
    if (!secretOk(access.value)) throw new InvalidInputError('cap_grant.access.value.secret must be 64 bytes', { field: 'cap_grant' })
    const assignees = (access.value as Record<string, unknown>).assignees
    if (!Array.isArray(assignees) || assignees.length === 0 || assignees.length > 1000 || !assignees.every(a => a instanceof Uint8Array && a.length === 39 && hashType(a) === 'Agent')) {
      throw new InvalidInputError('cap_grant.access.value.assignees must be a non-empty list of AgentPubKeys', { field: 'cap_grant' })
    }
  } else {
    throw new InvalidInputError('cap_grant.access.type must be unrestricted, transferable or assigned', { field: 'cap_grant' })
  }
  const fns = grant.functions
  if (!isPlainObject(fns)) throw new InvalidInputError('cap_grant.functions must be a map', { field: 'cap_grant' })
  if (fns.type === 'listed') {
    if (!Array.isArray(fns.value) || !fns.value.every(p => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && typeof p[1] === 'string')) {
      throw new InvalidInputError('cap_grant.functions.value must be a list of [zome, function] pairs', { field: 'cap_grant' })
    }
  } else if (fns.type !== 'all') {
    throw new InvalidInputError('cap_grant.functions.type must be all or listed', { field: 'cap_grant' })
  }
}
