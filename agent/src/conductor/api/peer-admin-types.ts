/**
 * The Admin API's peer requests: flexnode extensions of Holochain's `AdminRequest` that let the
 * operator see and gate the node's mesh connections (Holochain has no such requests; its
 * conductor blocks peers only for warrants). Like every Admin API call they are answered only on
 * the admin interface, which binds to `--host` (127.0.0.1 by default) and refuses browser origins.
 *
 * | request (`type`)  | `value`                  | response (`type`)  | response `value`                 |
 * |-------------------|--------------------------|--------------------|----------------------------------|
 * | `list_peers`      | none                     | `peers_listed`     | `PeersListed`                    |
 * | `block_peers`     | `{ peer_ids: string[] }` | `peers_blocked`    | `PeersBlocked`                   |
 * | `unblock_peers`   | `{ peer_ids: string[] }` | `peers_unblocked`  | `PeersUnblocked`                 |
 * | `connect_peer`    | `{ multiaddr: string }`  | `peer_connected`   | `{ peer_id: string }`            |
 *
 * ```ts
 * const peers = new PeerAdminClient(admin)          // admin: an AdminWebsocket of @holochain/client
 * await peers.blockPeers([bob])                      // bob's connections are dropped and refused
 * await peers.unblockPeers([bob])
 * await peers.connectPeer('/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW…')
 * ```
 */
import type { AdminWebsocket } from '@holochain/client'

/** What `list_peers` answers. */
export interface PeersListed {
  /** this node's PeerId */
  peer_id: string
  /** the addresses this node listens on */
  multiaddrs: string[]
  /** connected peers of this mesh network (PeerId strings) */
  connected: string[]
  /** peers blocked through `block_peers` (warranted agents are blocked by the DHT, not listed here) */
  blocked: string[]
}

export interface PeersRequest {
  /** ed25519 PeerId strings (`12D3KooW…`): the agent keys of flexnode nodes. 1 to 1024 of them */
  peer_ids: string[]
}

export interface PeersBlocked {
  /** every peer now blocked through `block_peers` */
  blocked: string[]
}

export interface PeersUnblocked {
  /** the requested peers this node no longer blocks */
  unblocked: string[]
  /** requested peers that stay blocked, and why: a warranted agent stays cut off */
  still_blocked: Array<{ peer_id: string, reason: 'warranted' }>
}

export interface ConnectPeerRequest {
  /** a multiaddr to dial, such as `/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW…` */
  multiaddr: string
}

export interface PeerConnected {
  /** the PeerId that answered and passed the network check */
  peer_id: string
}

/** The peer requests of one Admin API connection, through the unmodified `@holochain/client`. */
export class PeerAdminClient {
  readonly listPeers: () => Promise<PeersListed>
  readonly #block: (req: PeersRequest) => Promise<PeersBlocked>
  readonly #unblock: (req: PeersRequest) => Promise<PeersUnblocked>
  readonly #connect: (req: ConnectPeerRequest) => Promise<PeerConnected>

  constructor (admin: Pick<AdminWebsocket, '_requester'>) {
    const list = admin._requester<null, null, PeersListed, PeersListed>('list_peers')
    this.listPeers = async () => await list(null)
    this.#block = admin._requester('block_peers')
    this.#unblock = admin._requester('unblock_peers')
    this.#connect = admin._requester('connect_peer')
  }

  async blockPeers (peerIds: string[]): Promise<PeersBlocked> {
    return await this.#block({ peer_ids: peerIds })
  }

  async unblockPeers (peerIds: string[]): Promise<PeersUnblocked> {
    return await this.#unblock({ peer_ids: peerIds })
  }

  async connectPeer (multiaddr: string): Promise<PeerConnected> {
    return await this.#connect({ multiaddr })
  }
}
