/**
 * CIDs as text: parsing (`Qm…` CIDv0 in base58btc, CIDv1 in base32 `b…`, base58btc `z…` or
 * base36 `k…`) into `multiformats` CIDs, with a typed error.
 *
 * ```ts
 * const cid = parseCid('QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o') // CID
 * parseCid('nope') // throws InvalidCidError
 * ```
 */
import { base36 } from 'multiformats/bases/base36'
import { CID } from 'multiformats/cid'
import { InvalidCidError } from './types.ts'

/** Longest CID text accepted (a CIDv1 of a 64-byte digest in base32 is ~115 characters). */
const MAX_CID_TEXT = 256

export function parseCid (text: string): CID {
  if (typeof text !== 'string' || text === '' || text.length > MAX_CID_TEXT || text.trim() !== text) throw new InvalidCidError(text)
  try {
    return text.startsWith('k') ? CID.parse(text, base36) : CID.parse(text)
  } catch (err) {
    throw new InvalidCidError(text, { cause: err })
  }
}
