/**
 * What the conductor's commits and warrants become in the audit log: one record per zome call
 * that writes, its kind derived from the entries written (`constants.ts`: an Allocation is
 * `allocation`, a deleted ProviderRecord `unpin`, anything in policy_store `policy`…), else
 * `zome_call`; one record per warrant this node issues (`warrant`).
 */
import type { CommitEvent, CommittedAction, WarrantEvent } from '../conductor/conductor.ts'
import { decode } from '../conductor/codec.ts'
import { actionHashOf } from '../conductor/validation.ts'
import { encodeHash } from '../holo/hash.ts'
import { KIND_OF_DELETE, KIND_OF_DNA, KIND_OF_ENTRY, MAX_LISTED_ACTIONS } from './constants.ts'
import type { AuditEvent, JsonObject } from './types.ts'

const typeName = (dna: string, a: CommittedAction): string | undefined => a.entryType === null ? undefined : `${dna}/${a.entryType.name}`

/** The kind of a commit, and the action it is about (the first that decided it). */
function kindOf (event: CommitEvent): { kind: string, about: CommittedAction | undefined } {
  for (const a of event.actions) {
    const t = a.action.data.type
    if (t === 'Create' || t === 'Update') {
      const name = typeName(event.dnaName, a)
      const kind = name === undefined ? undefined : KIND_OF_ENTRY[name]
      if (kind !== undefined) return { kind, about: a }
    } else if (t === 'Delete' && a.deletes !== null) {
      const kind = KIND_OF_DELETE[`${event.dnaName}/${a.deletes.name}`]
      if (kind !== undefined) return { kind, about: a }
    }
  }
  return { kind: KIND_OF_DNA[event.dnaName] ?? 'zome_call', about: undefined }
}

/** An app entry's `cid` field, when it has one (artifact and provider records). */
function cidOf (a: CommittedAction): string | undefined {
  if (a.entry?.entry_type !== 'App') return undefined
  try {
    const value = decode(a.entry.entry) as { cid?: unknown } | null
    return typeof value?.cid === 'string' && value.cid.length <= 256 ? value.cid : undefined
  } catch {
    return undefined
  }
}

/** The audit event of a zome call's commit; undefined for commits that are not zome calls (genesis, init, grants). */
export function commitEvent (event: CommitEvent): AuditEvent | undefined {
  if (event.origin.type !== 'call') return undefined
  const { kind, about } = kindOf(event)
  const actions = event.actions.slice(0, MAX_LISTED_ACTIONS).map(a => {
    const out: JsonObject = { type: a.action.data.type, hash: encodeHash(a.hash) }
    if (a.entryType !== null) out.entry_type = `${a.entryType.zome}/${a.entryType.name}`
    if (a.deletes !== null) out.deletes = `${a.deletes.zome}/${a.deletes.name}`
    return out
  })
  const last = event.actions[event.actions.length - 1]!
  const detail: JsonObject = {
    dna: event.dnaName,
    dna_hash: encodeHash(event.dna),
    zome: event.origin.zome,
    fn: event.origin.fn,
    agent: encodeHash(event.agent),
    chain_seq: last.action.header.action_seq,
    action_count: event.actions.length,
    actions
  }
  let subject: string | undefined
  if (about !== undefined) {
    const d = about.action.data
    subject = (kind === 'artifact' || kind === 'pin' ? cidOf(about) : undefined) ??
      (d.type === 'Delete' ? encodeHash(d.deletes_address) : encodeHash(about.hash))
  }
  return { kind, actor: encodeHash(event.origin.provenance), subject: subject ?? null, detail }
}

/** The audit event of a warrant this node issued. */
export function warrantEvent (event: WarrantEvent): AuditEvent {
  const w = event.warrant
  return {
    kind: 'warrant',
    actor: encodeHash(w.issuer),
    subject: encodeHash(w.warrantee),
    detail: {
      dna: event.dnaName,
      dna_hash: encodeHash(event.dna),
      warrant_kind: w.kind,
      reason: w.reason.slice(0, 500),
      evidence: w.evidence.map(e => encodeHash(actionHashOf(e.action))),
      timestamp: w.timestamp
    }
  }
}
