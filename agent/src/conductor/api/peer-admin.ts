/**
 * The conductor's side of the Admin API's peer requests (see `peer-admin-types.ts` for the wire
 * shapes): list, block, unblock and connect the node's mesh peers. A block is connection gating
 * (the mesh drops the peer's connections and refuses new ones both ways), the same gate the DHT
 * uses for warranted agents; unblocking never lifts a warrant's block.
 *
 * ```ts
 * const peers = new PeerAdmin({ transport: mesh, warranted: (agent) => space.isBlocked(agent) })
 * peers.block({ peer_ids: ['12D3KooW…'] })   // { blocked: ['12D3KooW…'] }
 * ```
 */
import { AbortError, errorMessage, InvalidInputError } from '../../errors.ts'
import { agentPubKeyFromPeerId } from '../../identity/peer-id.ts'
import { MESH_DIAL_TIMEOUT_MS } from '../../mesh/constants.ts'
import type { MeshNode } from '../../mesh/types.ts'
import { parseMultiaddr } from '../../mesh/util.ts'
import { isPlainObject } from '../codec.ts'
import { MAX_OPERATOR_BLOCKED_PEERS, MAX_PEERS_PER_REQUEST } from '../constants.ts'
import { deserializationError, internalError } from '../errors.ts'
import type { PeerConnected, PeersBlocked, PeersListed, PeersUnblocked } from './peer-admin-types.ts'

/** The slice of the node's mesh the peer requests use. */
export type PeerTransport = Pick<MeshNode, 'peerId' | 'multiaddrs' | 'peers' | 'block' | 'unblock' | 'dial'>

export interface PeerAdminComponents {
  /** the node's mesh. @default none: every peer request is an `internal_error` */
  transport?: PeerTransport
  /** whether an agent (39-byte key) is warranted in a DNA this node runs: its block stays */
  warranted: (agent: Uint8Array) => boolean
}

export class PeerAdmin {
  readonly #c: PeerAdminComponents
  /** peers blocked through the API, in the order they were blocked */
  readonly #blocked = new Set<string>()

  constructor (components: PeerAdminComponents) {
    this.#c = components
  }

  #transport (): PeerTransport {
    if (this.#c.transport === undefined) throw internalError('this conductor runs without a network: it has no peers to list, block or connect')
    return this.#c.transport
  }

  /** `{ peer_ids }`, each an ed25519 PeerId other than this node's, 1 to MAX_PEERS_PER_REQUEST of them. */
  #peerIds (req: unknown, transport: PeerTransport): string[] {
    if (!isPlainObject(req) || !Array.isArray(req.peer_ids)) throw deserializationError('expected { peer_ids: string[] }')
    const ids = req.peer_ids as unknown[]
    if (ids.length === 0 || ids.length > MAX_PEERS_PER_REQUEST) throw deserializationError(`peer_ids must list 1 to ${MAX_PEERS_PER_REQUEST} peers, got ${ids.length}`)
    const out: string[] = []
    for (const id of ids) {
      if (typeof id !== 'string') throw deserializationError('peer_ids must be PeerId strings')
      try {
        agentPubKeyFromPeerId(id)
      } catch (err) {
        throw deserializationError(`peer_ids: ${errorMessage(err)}`)
      }
      if (id === transport.peerId) throw deserializationError('peer_ids names this node itself')
      if (!out.includes(id)) out.push(id)
    }
    return out
  }

  list (): PeersListed {
    const t = this.#transport()
    return { peer_id: t.peerId, multiaddrs: t.multiaddrs(), connected: t.peers(), blocked: [...this.#blocked] }
  }

  block (req: unknown): PeersBlocked {
    const t = this.#transport()
    const ids = this.#peerIds(req, t)
    const added = ids.filter(id => !this.#blocked.has(id))
    if (this.#blocked.size + added.length > MAX_OPERATOR_BLOCKED_PEERS) throw deserializationError(`at most ${MAX_OPERATOR_BLOCKED_PEERS} peers can be blocked at once`)
    for (const id of added) this.#blocked.add(id)
    t.block(ids)
    return { blocked: [...this.#blocked] }
  }

  unblock (req: unknown): PeersUnblocked {
    const t = this.#transport()
    const out: PeersUnblocked = { unblocked: [], still_blocked: [] }
    for (const id of this.#peerIds(req, t)) {
      this.#blocked.delete(id)
      if (this.#c.warranted(agentPubKeyFromPeerId(id))) {
        out.still_blocked.push({ peer_id: id, reason: 'warranted' })
      } else {
        out.unblocked.push(id)
      }
    }
    if (out.unblocked.length > 0) t.unblock(out.unblocked)
    return out
  }

  /** Dial a peer now (a blocked one is refused); resolves once it passed the network check. */
  async connect (req: unknown): Promise<PeerConnected> {
    const t = this.#transport()
    if (!isPlainObject(req) || typeof req.multiaddr !== 'string') throw deserializationError('expected { multiaddr: string }')
    const addr = req.multiaddr
    try {
      if (addr.length > 512) throw new InvalidInputError('multiaddr is longer than 512 characters', { field: 'multiaddr' })
      parseMultiaddr(addr, 'multiaddr')
    } catch (err) {
      throw deserializationError(errorMessage(err))
    }
    try {
      return { peer_id: await t.dial(addr, { signal: AbortSignal.timeout(MESH_DIAL_TIMEOUT_MS) }) }
    } catch (err) {
      if (err instanceof AbortError) throw internalError(`no answer from ${addr} within ${MESH_DIAL_TIMEOUT_MS} ms`, err)
      throw err
    }
  }
}
