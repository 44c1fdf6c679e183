/**
 * Validation of an action and its ops: system checks (hashes, chain links, authorship, entry
 * sizes, the targets of updates and deletes) and then app validation by the integrity zome
 * that owns the entry or link type.
 */
import type { Action, Entry, HolochainRecord, Op, OpType, SignedActionHashed, ValidateContext, ValidateResult } from '../../../zomes-ts/hdk/index.ts'
import { decodeHash, encodeHash, hashEquals, hashFromContent, isHash, retype, sameKey } from '../holo/hash.ts'
import { verifySignature } from '../identity/keystore.ts'
import { decode } from './codec.ts'
import type { LoadedDna, LoadedIntegrityZome } from './dna.ts'
import { UnresolvedDependenciesError } from './errors.ts'
import { hdkVerifySignature } from './hdk-local.ts'
import { ZomeSandboxError } from './sandbox/errors.ts'
import type { SignedAction } from './ops.ts'

/** Largest app entry accepted, in bytes of its msgpack form (Holochain's limit is 4 MB). */
export const MAX_ENTRY_BYTES = 4_000_000

export interface Lookup {
  action: (hash: Uint8Array) => SignedActionHashed | undefined
  entry: (hash: Uint8Array) => Entry | undefined
}

/**
 * A lookup that remembers what it found (and what it did not) by hash: for a stretch of work in
 * which nothing is awaited (one flush), so the store cannot change under it.
 */
export function cachedLookup (inner: Lookup): Lookup {
  const actions = new Map<string, SignedActionHashed | undefined>()
  const entries = new Map<string, Entry | undefined>()
  const key = (h: Uint8Array): string => Buffer.from(h.buffer, h.byteOffset, h.byteLength).toString('latin1')
  return {
    action: (hash) => {
      const k = key(hash)
      if (actions.has(k)) return actions.get(k)
      const a = inner.action(hash)
      actions.set(k, a)
      return a
    },
    entry: (hash) => {
      const k = key(hash)
      if (entries.has(k)) return entries.get(k)
      const e = inner.entry(hash)
      entries.set(k, e)
      return e
    }
  }
}

export function entryHashOf (entry: Entry): Uint8Array {
  if (entry.entry_type === 'Agent') return retype(entry.entry, 'Entry')
  return hashFromContent(entry, 'Entry')
}

export function actionHashOf (action: Action): Uint8Array {
  return hashFromContent(action, 'Action')
}

/** Checks a detached ed25519 signature by a 32-byte public key. */
export type SignatureCheck = (publicKey32: Uint8Array, data: Uint8Array, signature: Uint8Array) => boolean

function fail (reason: string): ValidateResult {
  return { type: 'Invalid', reason }
}

/**
 * Checks that need nothing but the action, its signature and its entry. `signedHere` skips the
 * hash and signature checks for actions this process has just hashed and signed itself;
 * `entryHashedHere` skips hashing the entry again for an action built here from that same entry;
 * `verify` checks a signature (a keystore's, with its key cache). @default verifySignature, uncached
 */
export function checkActionIntegrity (sa: SignedAction, entry: Entry | null, opts: { signedHere?: boolean, entryHashedHere?: boolean, verify?: SignatureCheck } = {}): ValidateResult {
  const { action } = sa
  const author = action.header.author
  if (!isHash(author, 'Agent')) return fail('action author is not an agent key')
  if (opts.signedHere !== true) {
    if (!hashEquals(actionHashOf(action), sa.hash)) return fail('action hash does not match the action')
    if (!(opts.verify ?? verifySignature)(author.subarray(3, 35), sa.hash, sa.signature)) return fail('action signature does not verify')
  }
  const d = action.data
  if (d.type === 'Create' || d.type === 'Update') {
    if (entry !== null) {
      if (opts.entryHashedHere !== true && !hashEquals(entryHashOf(entry), d.entry_hash)) return fail('entry hash does not match the entry')
      if (entry.entry_type === 'App' && entry.entry.length > MAX_ENTRY_BYTES) return fail(`entry is larger than ${MAX_ENTRY_BYTES} bytes`)
    }
  }
  if (d.type === 'CreateLink' && d.tag.length > 1000) return fail('link tag is larger than 1000 bytes')
  if (action.header.action_seq === 0 ? d.type !== 'Dna' || action.header.prev_action !== null : d.type === 'Dna' || action.header.prev_action === null) {
    return fail('only the first action of a chain is Dna, and only it has no previous action')
  }
  return { type: 'Valid' }
}

/** The chain link to the previous action: seq + 1, prev hash, same author, no time travel. */
export function checkChainLink (action: Action, prev: { hash: Uint8Array, action: Action } | null): ValidateResult {
  if (prev === null) return action.header.action_seq === 0 ? { type: 'Valid' } : fail('chain has a gap before this action')
  if (action.header.action_seq !== prev.action.header.action_seq + 1) return fail(`action_seq ${action.header.action_seq} does not follow ${prev.action.header.action_seq}`)
  if (!hashEquals(action.header.prev_action, prev.hash)) return fail('prev_action is not the previous action')
  if (!sameKey(action.header.author, prev.action.header.author)) return fail('author changed within the chain')
  if (action.header.timestamp < prev.action.header.timestamp) return fail('timestamp is before the previous action')
  return { type: 'Valid' }
}

function zomeOfEntryType (dna: LoadedDna, entryType: unknown): LoadedIntegrityZome | undefined {
  if (typeof entryType === 'object' && entryType !== null && 'App' in entryType) {
    const app = (entryType as { App: { zome_index: number } }).App
    return dna.integrity[app.zome_index]
  }
  return undefined
}

/** The integrity zomes that validate an action's ops: the owner of its app type, else all of them. */
function validatorsFor (dna: LoadedDna, action: Action, lookup: Lookup): LoadedIntegrityZome[] {
  const d = action.data
  let owner: LoadedIntegrityZome | undefined
  if (d.type === 'Create' || d.type === 'Update') owner = zomeOfEntryType(dna, d.entry_type)
  else if (d.type === 'CreateLink') owner = dna.integrity[d.zome_index]
  else if (d.type === 'Delete') {
    const orig = lookup.action(d.deletes_address)
    const od = orig?.hashed.content.data
    if (od !== undefined && (od.type === 'Create' || od.type === 'Update')) owner = zomeOfEntryType(dna, od.entry_type)
  } else if (d.type === 'DeleteLink') {
    const orig = lookup.action(d.link_add_address)
    const od = orig?.hashed.content.data
    if (od?.type === 'CreateLink') owner = dna.integrity[od.zome_index]
  }
  return owner !== undefined ? [owner] : dna.integrity
}

function contextFor (dna: LoadedDna, lookup: Lookup): ValidateContext {
  const mustAction = (hash: Uint8Array): SignedActionHashed => {
    const a = lookup.action(hash)
    if (a === undefined) throw new UnresolvedDependenciesError([hash])
    return a
  }
  const mustEntry = (hash: Uint8Array): Entry => {
    const e = lookup.entry(hash)
    if (e === undefined) throw new UnresolvedDependenciesError([hash])
    return e
  }
  return {
    must_get_action: mustAction,
    must_get_entry: mustEntry,
    must_get_valid_record: (hash): HolochainRecord => {
      const a = mustAction(hash)
      const d = a.hashed.content.data
      const entry = d.type === 'Create' || d.type === 'Update' ? lookup.entry(d.entry_hash) ?? null : null
      return { signed_action: a, entry: entry === null ? { NotApplicable: null } : { Present: entry } }
    },
    decode: <T>(entry: Entry): T => (entry.entry_type === 'App' ? decode(entry.entry) : entry.entry) as T,
    dna_info: () => ({ hash: dna.hash, name: dna.def.name, modifiers: { network_seed: dna.def.modifiers.network_seed, properties: dna.properties }, zome_names: [...dna.integrity.map(z => z.name), ...dna.coordinators.keys()] }),
    encode_hash: encodeHash,
    decode_hash: (s: string) => decodeHash(s),
    verify_signature: (key, signature, data) => hdkVerifySignature(key, signature, data)
  }
}

/** System checks that need other data: the targets of updates, deletes and link deletes. */
function checkReferences (action: Action, lookup: Lookup): ValidateResult {
  const d = action.data
  const target = (hash: Uint8Array): SignedActionHashed => {
    const a = lookup.action(hash)
    if (a === undefined) throw new UnresolvedDependenciesError([hash])
    return a
  }
  if (d.type === 'Update') {
    const od = target(d.original_action_address).hashed.content.data
    if (od.type !== 'Create' && od.type !== 'Update') return fail('an update must point at a Create or Update')
    if (!hashEquals(od.entry_hash, d.original_entry_address)) return fail('original_entry_address is not the entry of the original action')
    if (JSON.stringify(od.entry_type) !== JSON.stringify(d.entry_type)) return fail('an update cannot change the entry type')
  } else if (d.type === 'Delete') {
    const od = target(d.deletes_address).hashed.content.data
    if (od.type !== 'Create' && od.type !== 'Update') return fail('a delete must point at a Create or Update')
    if (!hashEquals(od.entry_hash, d.deletes_entry_address)) return fail('deletes_entry_address is not the entry of the deleted action')
  } else if (d.type === 'DeleteLink') {
    const od = target(d.link_add_address).hashed.content.data
    if (od.type !== 'CreateLink') return fail('a link delete must point at a CreateLink')
    if (!hashEquals(od.base_address, d.base_address)) return fail('a link delete must name the base of its link')
  } else if (d.type === 'CreateLink') {
    // nothing to resolve: bases and targets may be any hash
  }
  return { type: 'Valid' }
}

/**
 * App-validate every op of one action with its owning integrity zome(s). Returns the first
 * non-Valid result. Thrown errors in a zome's `validate` are Invalid, not crashes; a sandbox limit
 * hit while validating throws `ZomeSandboxError` (no verdict either way).
 */
export function validateOps (dna: LoadedDna, sa: SignedAction, entry: Entry | null, opTypes: readonly OpType[], lookup: Lookup): ValidateResult {
  try {
    const refs = checkReferences(sa.action, lookup)
    if (refs.type !== 'Valid') return refs
    const ctx = contextFor(dna, lookup)
    const zomes = validatorsFor(dna, sa.action, lookup)
    const d = sa.action.data
    for (const zome of zomes) {
      let appEntry: Op['app_entry']
      if ((d.type === 'Create' || d.type === 'Update') && entry?.entry_type === 'App') {
        const et = (d.entry_type as { App: { zome_index: number, entry_index: number } }).App
        if (et.zome_index === zome.index) {
          const name = [...zome.entryTypes.entries()].find(([, v]) => v.index === et.entry_index)?.[0]
          if (name === undefined) return fail(`unknown entry type index ${et.entry_index} in zome ${zome.name}`)
          let value: unknown
          try { value = decode(entry.entry) } catch { return fail('entry is not valid msgpack') }
          appEntry = { entry_type: name, value }
        }
      }
      let linkType: string | undefined
      if (d.type === 'CreateLink' && d.zome_index === zome.index) {
        linkType = [...zome.linkTypes.entries()].find(([, v]) => v === d.link_type)?.[0]
        if (linkType === undefined) return fail(`unknown link type index ${d.link_type} in zome ${zome.name}`)
      }
      const result = zome.validate({ action: sa.action, action_hash: sa.hash, signature: sa.signature, entry, app_entry: appEntry, link_type: linkType }, opTypes, ctx)
      if (result.type !== 'Valid') return result
    }
    return { type: 'Valid' }
  } catch (err) {
    if (err instanceof UnresolvedDependenciesError) return { type: 'UnresolvedDependencies', hashes: err.hashes }
    // a sandbox limit (CPU time, memory) says nothing about the op itself: no verdict, no warrant
    if (err instanceof ZomeSandboxError) throw err
    return fail(`validation threw: ${err instanceof Error ? err.message : String(err)}`)
  }
}
