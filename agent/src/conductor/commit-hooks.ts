/**
 * Listeners that see each local commit INSIDE its SQLite transaction (`onCommitting`), and each
 * warrant this node issues as it stores it (`onWarrantIssued`): what a listener writes to the
 * conductor's database joins that transaction, and a listener that throws rolls the commit back
 * (the zome call fails). The audit outbox (`agent/src/audit/`) is the reason they exist.
 *
 * ```ts
 * const off = conductor.onCommitting(event => {
 *   if (event.origin.type === 'call') outbox.append(describe(event))
 * })
 * ```
 */
import type { Action, Entry } from '../../../zomes-ts/hdk/index.ts'
import { hashEquals, type HoloHash } from '../holo/hash.ts'
import type { ComponentLogger } from '../logger.ts'
import type { Cell, CommitOrigin } from './cell.ts'
import type { LoadedDna } from './dna.ts'
import { decodeAction } from './records.ts'
import type { SignedAction } from './ops.ts'
import type { Warrant } from './space.ts'
import type { ConductorStore } from './store.ts'

export type { CommitOrigin } from './cell.ts'

/** An app entry type, by its integrity zome's name and its own. */
export interface EntryTypeName { zome: string, name: string }

export interface CommittedAction {
  hash: HoloHash
  action: Action
  /** the app entry type a Create/Update writes; null for other actions and system entries */
  entryType: EntryTypeName | null
  /** the entry a Create/Update writes (an app entry's msgpack bytes in `entry.entry`) */
  entry: Entry | null
  /** a Delete: the app entry type of the action it deletes, when that is known here */
  deletes: EntryTypeName | null
}

/** One commit of a local cell, as `onCommitting` listeners see it (inside its transaction). */
export interface CommitEvent {
  dna: HoloHash
  /** the DNA's name (`resource_mesh`, `artifact_index`…) */
  dnaName: string
  agent: HoloHash
  origin: CommitOrigin
  /** in chain order */
  actions: CommittedAction[]
}

/** A warrant this node issued against another agent, as `onWarrantIssued` listeners see it. */
export interface WarrantEvent {
  dna: HoloHash
  dnaName: string
  warrant: Warrant
}

export type CommitListener = (event: CommitEvent) => void
export type WarrantListener = (event: WarrantEvent) => void

/** The app entry type named by a chain row's `zome:index` key. */
function entryTypeName (dna: LoadedDna, key: string | null): EntryTypeName | null {
  if (key === null) return null
  const m = /^(\d+):(\d+)$/.exec(key)
  if (m === null) return null
  const zome = dna.integrity[Number(m[1])]
  if (zome === undefined) return null
  for (const [name, et] of zome.entryTypes) if (et.index === Number(m[2])) return { zome: zome.name, name }
  return null
}

function keyOf (action: Action): string | null {
  const d = action.data
  return (d.type === 'Create' || d.type === 'Update') && typeof d.entry_type === 'object' ? `${d.entry_type.App.zome_index}:${d.entry_type.App.entry_index}` : null
}

export class CommitHooks {
  private readonly committing = new Set<CommitListener>()
  private readonly warrants = new Set<WarrantListener>()
  private readonly store: ConductorStore
  private readonly log: ComponentLogger

  constructor (components: { store: ConductorStore, logger: ComponentLogger }) {
    this.store = components.store
    this.log = components.logger
  }

  onCommitting (fn: CommitListener): () => void {
    this.committing.add(fn)
    return () => { this.committing.delete(fn) }
  }

  onWarrantIssued (fn: WarrantListener): () => void {
    this.warrants.add(fn)
    return () => { this.warrants.delete(fn) }
  }

  /** From inside a cell's commit transaction: a listener's throw propagates (the commit rolls back). */
  commit (cell: Cell, origin: CommitOrigin, records: Array<{ sa: SignedAction, entry: Entry | null, entryTypeKey: string | null }>): void {
    if (this.committing.size === 0) return
    const dna = cell.dna
    const actions: CommittedAction[] = records.map(r => {
      const d = r.sa.action.data
      let deletes: EntryTypeName | null = null
      if (d.type === 'Delete') {
        const inCommit = records.find(x => hashEquals(x.sa.hash, d.deletes_address))
        if (inCommit !== undefined) {
          deletes = entryTypeName(dna, inCommit.entryTypeKey)
        } else {
          const own = this.store.chainActionByHash(d.deletes_address)
          if (own !== undefined) {
            deletes = entryTypeName(dna, own.entry_type)
          } else {
            const held = this.store.dhtAction(dna.hash, d.deletes_address)
            if (held !== undefined) deletes = entryTypeName(dna, keyOf(decodeAction(held.action)))
          }
        }
      }
      return { hash: r.sa.hash, action: r.sa.action, entryType: entryTypeName(dna, r.entryTypeKey), entry: r.entry, deletes }
    })
    const event: CommitEvent = { dna: dna.hash, dnaName: dna.def.name, agent: cell.agentPubKey, origin, actions }
    for (const fn of this.committing) fn(event)
  }

  /** A warrant was issued and stored (maybe inside a transaction: a listener's write joins it). */
  warrantIssued (dna: LoadedDna, warrant: Warrant): void {
    for (const fn of this.warrants) {
      try {
        fn({ dna: dna.hash, dnaName: dna.def.name, warrant })
      } catch (err) {
        // the warrant stands: the network's safety does not wait on a listener
        this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'a warrant listener threw')
      }
    }
  }

  clear (): void {
    this.committing.clear()
    this.warrants.clear()
  }
}
