/** Building Holochain-shaped records from stored rows. */
import type { Action, Entry, HolochainRecord, SignedActionHashed } from '../../../zomes-ts/hdk/index.ts'
import { decode } from './codec.ts'

export function signedActionHashed (hash: Uint8Array, action: Action, signature: Uint8Array): SignedActionHashed {
  return { hashed: { hash, content: action }, signature }
}

export function recordOf (sah: SignedActionHashed, entry: Entry | null | undefined, entryHidden = false): HolochainRecord {
  const d = sah.hashed.content.data
  const hasEntry = d.type === 'Create' || d.type === 'Update'
  let re: HolochainRecord['entry']
  if (!hasEntry) re = { NotApplicable: null }
  else if (entryHidden) re = { Hidden: null }
  else if (entry == null) re = { NotStored: null }
  else re = { Present: entry }
  return { signed_action: sah, entry: re }
}

export function decodeAction (bytes: Uint8Array): Action {
  return decode(bytes) as Action
}

export function decodeEntry (bytes: Uint8Array): Entry {
  return decode(bytes) as Entry
}
