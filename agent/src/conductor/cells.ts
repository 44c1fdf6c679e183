/**
 * The running cells of a conductor and what they share per DNA: the loaded DNA (its zomes in the
 * zome runtime) and its DHT space. Records a local cell commits are announced to `onAuthored`
 * listeners (the DHT network publishes them).
 *
 * ```ts
 * const cells = new CellRegistry({ zomeCallTimeoutMs: 30_000 }, { store, keystore, loader, logger, emitSignal, cascade })
 * await cells.start([dnaHash], agent)
 * cells.cell([dnaHash, agent])?.call('zome', 'fn', payload, agent)
 * ```
 */
import type { HoloHash } from '../holo/hash.ts'
import { encodeHash } from '../holo/hash.ts'
import type { Keystore } from '../identity/keystore.ts'
import type { ComponentLogger } from '../logger.ts'
import { Cell, type CascadeQuery, type CellComponents, type CellId } from './cell.ts'
import { decodeDnaDef, type DnaDef, type LoadedDna, type ZomeLoader } from './dna.ts'
import { deserializationError, internalError, requestHash } from './errors.ts'
import type { AuthoredListener } from './network/types.ts'
import type { ProducedOp } from './ops.ts'
import { CommitHooks } from './commit-hooks.ts'
import { DhtSpace, type NetRecord, type ReceiveOptions, type ReceiveOutcome, type Warrant } from './space.ts'
import type { ConductorStore } from './store.ts'

export interface CellRegistryInit {
  /** @default 30000 */
  zomeCallTimeoutMs?: number
  /** the DHT spaces' pruning horizon (see `DhtSpaceInit`). @default none: kept forever */
  maxAgeMs?: number
}

export interface CellRegistryComponents {
  store: ConductorStore
  keystore: Keystore
  loader: ZomeLoader
  logger: ComponentLogger
  /** a zome emitted a signal */
  emitSignal: (cellId: CellId, zomeName: string, payload: unknown) => void
  /** a local miss: ask the network's authorities */
  cascade: (dna: HoloHash, query: CascadeQuery) => Promise<void>
  /** the live presence of agents, as the network holds it */
  presence?: CellComponents['presence']
  /** ms since the epoch, for the spaces' pruning horizon. @default Date.now */
  clock?: () => number
}

/** A DNA's code, from the store or (during an install) from the bundle. */
export interface DnaSource { def: DnaDef, code: (wasm: HoloHash) => Uint8Array | undefined }

type CommittedRecord = { sa: { action: NetRecord['action'], hash: HoloHash, signature: Uint8Array }, entry: NetRecord['entry'], entryPublic: boolean, ops: ProducedOp[] }

const cellKey = (dna: Uint8Array, agent: Uint8Array): string => encodeHash(dna) + encodeHash(agent).slice(0, 48)

export class CellRegistry {
  private readonly init: CellRegistryInit
  private readonly c: CellRegistryComponents
  private readonly cells = new Map<string, Cell>()
  private readonly dnas = new Map<string, Promise<LoadedDna>>()
  private readonly spaces = new Map<string, DhtSpace>()
  private readonly authoredListeners = new Set<AuthoredListener>()
  /** listeners of commits (inside their transaction) and of warrants issued here */
  readonly hooks: CommitHooks

  constructor (init: CellRegistryInit, components: CellRegistryComponents) {
    this.init = init
    this.c = components
    this.hooks = new CommitHooks({ store: components.store, logger: components.logger })
  }

  /** The loaded DNA: its definition and code from the store, or from `source` (an install in progress). */
  async loadDna (hash: HoloHash, source?: () => DnaSource): Promise<LoadedDna> {
    const key = encodeHash(hash)
    let p = this.dnas.get(key)
    if (p === undefined) {
      let from = source?.()
      if (from === undefined) {
        const defBytes = this.c.store.getDnaDef(hash)
        if (defBytes === undefined) throw internalError(`DNA ${key} is not registered`)
        from = { def: decodeDnaDef(defBytes), code: (wasm) => this.c.store.getZomeCode(wasm) }
      }
      p = this.c.loader.load(hash, from.def, from.code)
      p.catch(() => this.dnas.delete(key))
      this.dnas.set(key, p)
    }
    return p
  }

  /** Run a cell of each DNA for `agent` (those already running stay as they are). */
  async start (dnas: HoloHash[], agent: HoloHash): Promise<void> {
    for (const hash of dnas) {
      const key = cellKey(hash, agent)
      if (this.cells.has(key)) continue
      const dna = await this.loadDna(hash)
      this.cells.set(key, this.newCell(dna, agent))
    }
  }

  /** Stop the cell of `dna` for `agent`. */
  stop (dna: HoloHash, agent: HoloHash): void {
    this.cells.delete(cellKey(dna, agent))
  }

  /** A cell of a loaded DNA that is not registered as running (an install's genesis); its DNA's space is made on first use. */
  newCell (dna: LoadedDna, agent: HoloHash): Cell {
    const { store, keystore, logger, clock } = this.c
    const key = encodeHash(dna.hash)
    const onWarrant = (w: Warrant): void => { this.hooks.warrantIssued(dna, w) }
    if (!this.spaces.has(key)) this.spaces.set(key, new DhtSpace(dna, agent, { store, keystore, logger, clock, onWarrant }, { maxAgeMs: this.init.maxAgeMs }))
    return new Cell(dna, agent, {
      store,
      keystore,
      logger,
      emitSignal: this.c.emitSignal,
      onCommitted: (cell, records) => { this.committed(cell, records) },
      onCommitting: (cell, origin, records) => { this.hooks.commit(cell, origin, records) },
      cascade: this.c.cascade,
      presence: this.c.presence
    }, { zomeCallTimeoutMs: this.init.zomeCallTimeoutMs })
  }

  private committed (cell: Cell, records: CommittedRecord[]): void {
    const space = this.spaces.get(encodeHash(cell.id[0]))
    for (const r of records) space?.noteOps(r.ops)
    if (this.authoredListeners.size === 0) return
    const net: NetRecord[] = records.map(r => ({ action: r.sa.action, signature: r.sa.signature, entry: r.entryPublic ? r.entry : null }))
    for (const l of this.authoredListeners) {
      try {
        l(cell.id[0], net)
      } catch (err) {
        this.c.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'authored listener threw')
      }
    }
  }

  /** The DHT space of a DNA this node runs, or null. */
  space (dna: Uint8Array): DhtSpace | null {
    return this.spaces.get(encodeHash(dna)) ?? null
  }

  /** Every DHT space made so far (one per DNA a cell ran). */
  allSpaces (): DhtSpace[] {
    return [...this.spaces.values()]
  }

  /** DNAs with a running cell. */
  runningDnas (): HoloHash[] {
    const out = new Map<string, HoloHash>()
    for (const c of this.cells.values()) out.set(encodeHash(c.id[0]), c.id[0])
    return [...out.values()]
  }

  /** Be told of every record committed by a local cell (to publish it). */
  onAuthored (fn: AuthoredListener): () => void {
    this.authoredListeners.add(fn)
    return () => { this.authoredListeners.delete(fn) }
  }

  /** Validate and integrate records of another agent from the network. */
  receiveRecords (dna: Uint8Array, records: NetRecord[], options?: ReceiveOptions): ReceiveOutcome {
    const space = this.space(dna)
    if (space === null) throw internalError(`DnaMissing: this node does not run ${encodeHash(dna)}`)
    return space.receive(records, options)
  }

  /** The running cell, or null. */
  cell (cellId: CellId): Cell | null {
    return this.cells.get(cellKey(cellId[0], cellId[1])) ?? null
  }

  /** The running cell of a `cell_id` from an API request, or the API's error. */
  require (cellId: unknown): Cell {
    if (!Array.isArray(cellId) || cellId.length !== 2) throw deserializationError('cell_id must be [DnaHash, AgentPubKey]')
    const dna = requestHash(cellId[0], 'Dna', 'cell_id[0]')
    const agent = requestHash(cellId[1], 'Agent', 'cell_id[1]')
    const cell = this.cells.get(cellKey(dna, agent))
    if (cell === undefined) throw internalError(`CellMissing: ${encodeHash(dna)} / ${encodeHash(agent)}`)
    return cell
  }

  ids (): CellId[] {
    return [...this.cells.values()].map(c => c.id)
  }

  /** Forget every cell, space and listener (the conductor is stopping). */
  clear (): void {
    this.authoredListeners.clear()
    this.hooks.clear()
    this.cells.clear()
    this.spaces.clear()
  }
}
