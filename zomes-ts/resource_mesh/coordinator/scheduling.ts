/**
 * scheduling: the requester's side of leases. The requester signs what it asks a provider for (a
 * lease request, a renewal or a release) with its agent key, so the provider can carry that
 * consent into its ledger and every authority can check it.
 */
import type { Hdk, Signature } from '../../hdk/index.ts'
import { bytesEqual } from '../../hdk/index.ts'
import { ZomeInputError } from '../../hdk/errors.ts'
import { isMap } from '../../hdk/values.ts'
import type { LeaseChange, LeaseRequest } from '../types.ts'


/** Signs a lease request whose requester is this agent. */
export async function sign_request (hdk: Hdk, request: LeaseRequest): Promise<Signature> {
  if (!isMap(request) || !(request.requester instanceof Uint8Array)) throw new ZomeInputError('sign_request takes a LeaseRequest')
  const me = (await hdk.agent_info()).agent_initial_pubkey
  if (!bytesEqual(request.requester, me)) throw new ZomeInputError('a lease request is signed by its requester', 'requester')
  return await hdk.sign(me, request)
}

/** Signs a renewal or release of a lease this agent holds (the provider checks that it does). */
export async function sign_change (hdk: Hdk, change: LeaseChange): Promise<Signature> {
  if (!isMap(change) || (change.kind !== 'renew' && change.kind !== 'release')) throw new ZomeInputError('sign_change takes a LeaseChange')
  const me = (await hdk.agent_info()).agent_initial_pubkey
  return await hdk.sign(me, change)
}
