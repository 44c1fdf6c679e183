/**
 * Zome calls as the conductor authorizes them: the signed call (signature over SHA-512 of the
 * bytes by `provenance`, then nonce and expiry, then the app of the connection, then the cap
 * grant), and the capability grants that admit other agents.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { ZomeCallCapGrant } from '../../../zomes-ts/hdk/index.ts'
import { encodeHash, sameKey, type HoloHash } from '../holo/hash.ts'
import type { Keystore } from '../identity/keystore.ts'
import type { AppRegistry } from './apps.ts'
import { checkCapGrant, type Cell, type CellId } from './cell.ts'
import type { CellRegistry } from './cells.ts'
import { decode, encode, isPlainObject } from './codec.ts'
import { NONCE_MAX_FUTURE_MS } from './constants.ts'
import { authenticationFailed, deserializationError, internalError, requestHash, ribosomeError, unauthorized } from './errors.ts'
import type { ConductorStore } from './store.ts'

export interface ZomeCallsComponents {
  store: ConductorStore
  keystore: Pick<Keystore, 'verify'>
  cells: Pick<CellRegistry, 'require'>
  apps: Pick<AppRegistry, 'get' | 'require' | 'holds' | 'cellIds'>
}

export class ZomeCalls {
  private readonly c: ZomeCallsComponents
  private nonceCalls = 0

  constructor (components: ZomeCallsComponents) {
    this.c = components
  }

  /**
   * Authorize and run a signed zome call, as the conductor does: signature over SHA-512 of the
   * bytes by `provenance`, then nonce and expiry, then the cap grant. Returns msgpack of the result.
   */
  async callZomeSigned (appId: string | null, req: unknown): Promise<Uint8Array> {
    if (!isPlainObject(req) || !(req.bytes instanceof Uint8Array) || !(req.signature instanceof Uint8Array)) {
      throw deserializationError('call_zome takes {bytes, signature} (both binary)')
    }
    let params: unknown
    try {
      params = decode(req.bytes)
    } catch (err) {
      throw deserializationError(`call_zome bytes are not msgpack: ${err instanceof Error ? err.message : String(err)}`)
    }
    if (!isPlainObject(params)) throw deserializationError('call_zome bytes must hold a map of zome call params')
    const { cell_id: cellId, zome_name: zome, fn_name: fn, provenance, payload, nonce, expires_at: expiresAt, cap_secret: capSecret } = params
    if (!Array.isArray(cellId) || cellId.length !== 2) throw deserializationError('cell_id must be [DnaHash, AgentPubKey]')
    if (typeof zome !== 'string' || typeof fn !== 'string') throw deserializationError('zome_name and fn_name must be strings')
    if (!(payload instanceof Uint8Array)) throw deserializationError('payload must be msgpack bytes')
    if (!(nonce instanceof Uint8Array) || nonce.length !== 32) throw deserializationError('nonce must be 32 bytes')
    if (typeof expiresAt !== 'number' && typeof expiresAt !== 'bigint') throw deserializationError('expires_at must be a timestamp in microseconds')
    if (capSecret != null && (!(capSecret instanceof Uint8Array) || capSecret.length !== 64)) throw deserializationError('cap_secret must be 64 bytes')
    const prov = requestHash(provenance, 'Agent', 'provenance')
    const digest = createHash('sha512').update(req.bytes).digest()
    if (req.signature.length !== 64 || !this.c.keystore.verify(prov.subarray(3, 35), digest, req.signature)) {
      throw authenticationFailed(`signature does not verify for provenance ${encodeHash(prov)}`)
    }
    const nowMs = Date.now()
    const expMs = Number(expiresAt) / 1000
    if (expMs <= nowMs) throw unauthorized('NonceExpired: the zome call has expired')
    if (expMs > nowMs + NONCE_MAX_FUTURE_MS) throw unauthorized('NonceTooFarInFuture: expires_at is too far in the future')
    if (!this.c.store.useNonce(prov, nonce, Math.ceil(expMs))) throw unauthorized('NonceAlreadyUsed: this nonce was seen before')
    if (++this.nonceCalls % 1000 === 0) this.c.store.pruneNonces(nowMs)
    const cell = this.c.cells.require(cellId)
    if (appId !== null) {
      const app = this.c.apps.get(appId)
      if (app === undefined || !this.c.apps.holds(app, cell)) {
        throw unauthorized('this cell does not belong to the app of this connection')
      }
      if (app.status.type !== 'enabled') throw internalError(`app ${appId} is not enabled`)
    }
    if (!sameKey(prov, cell.agentPubKey) && !this.capAllows(cell, prov, capSecret instanceof Uint8Array ? capSecret : null, zome, fn)) {
      throw unauthorized(`no capability grant allows ${encodeHash(prov)} to call ${zome}/${fn}`)
    }
    let input: unknown
    try {
      input = decode(payload)
    } catch (err) {
      throw deserializationError(`payload is not msgpack: ${err instanceof Error ? err.message : String(err)}`)
    }
    const result = await cell.call(zome, fn, input, prov)
    try {
      return encode(result)
    } catch (err) {
      throw ribosomeError(`${zome}/${fn} returned a value that cannot be serialized: ${err instanceof Error ? err.message : String(err)}`)
    }
  }

  private capAllows (cell: Cell, provenance: HoloHash, secret: Uint8Array | null, zome: string, fn: string): boolean {
    for (const g of this.c.store.capGrantsFor(cell.id[0], cell.agentPubKey, secret)) {
      if (g.access !== 'unrestricted') {
        if (secret === null || g.secret === null || g.secret.length !== secret.length || !timingSafeEqual(g.secret, secret)) continue
        if (g.access === 'assigned') {
          const assignees = decode(g.assignees ?? encode([])) as Uint8Array[]
          if (!assignees.some(a => sameKey(a, provenance))) continue
        }
      }
      const functions = decode(g.functions) as ZomeCallCapGrant['functions']
      if (functions.type === 'all' || functions.value.some(([z, f]) => z === zome && f === fn)) return true
    }
    return false
  }

  async grantZomeCallCapability (req: { cell_id: CellId, cap_grant: ZomeCallCapGrant }): Promise<HoloHash> {
    if (!isPlainObject(req)) throw deserializationError('grant_zome_call_capability takes a map')
    const cell = this.c.cells.require(req.cell_id)
    try {
      checkCapGrant(req.cap_grant)
    } catch (err) {
      throw deserializationError(err instanceof Error ? err.message : String(err))
    }
    return cell.grantCapability(req.cap_grant)
  }

  revokeZomeCallCapability (req: { cell_id: CellId, action_hash: HoloHash }): null {
    const cell = this.c.cells.require(req?.cell_id)
    const hash = requestHash(req.action_hash, 'Action', 'action_hash')
    if (!this.c.store.revokeCapGrant(cell.id[0], hash, Date.now() * 1000)) throw internalError('no live capability grant with that action hash')
    return null
  }

  listCapabilityGrants (req: { installed_app_id: string, include_revoked: boolean }): unknown[] {
    const app = this.c.apps.require(req?.installed_app_id)
    return this.c.apps.cellIds(app).map(([dna, agent]) => [[dna, agent], this.c.store.listCapGrants(dna, agent, req.include_revoked === true).map(g => ({
      cap_grant: { tag: g.tag, access: g.access === 'unrestricted' ? { type: 'unrestricted' } : g.access === 'transferable' ? { type: 'transferable', value: { secret: g.secret } } : { type: 'assigned', value: { secret: g.secret, assignees: g.assignees === null ? [] : decode(g.assignees) } }, functions: decode(g.functions) },
      action_hash: g.action_hash,
      created_at: g.created_at,
      ...(g.revoked_at !== null ? { revoked_at: g.revoked_at } : {})
    }))])
  }

}
