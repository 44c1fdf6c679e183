/**
 * The libp2p configuration of a mesh node: TCP + noise + yamux + identify + ping + the network
 * gate + gossipsub (+ mDNS on the `local` network), and the validation of `MeshInit`.
 *
 * ```ts
 * const resolved = resolveMeshInit(init)
 * const libp2p = await createLibp2p(libp2pOptions(resolved, { privateKey, blocked, log, onMdnsPeer }))
 * ```
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub } from '@libp2p/gossipsub'
import type { GossipSub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import type { Identify } from '@libp2p/identify'
import type { ComponentLogger as Libp2pComponentLogger, Logger as Libp2pLogger, PeerId, PeerInfo, PrivateKey } from '@libp2p/interface'
import { mdns } from '@libp2p/mdns'
import { ping } from '@libp2p/ping'
import type { Ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import type { Libp2pOptions } from 'libp2p'
import { NETWORKS } from '../constants.ts'
import type { NetworkName } from '../constants.ts'
import { InvalidInputError } from '../errors.ts'
import type { ComponentLogger } from '../logger.ts'
import {
  MESH_DEFAULT_LISTEN,
  MESH_GOSSIP_HEARTBEAT_MS,
  MESH_HELLO_PROTOCOL_NAME,
  MESH_INBOUND_CONNECTION_THRESHOLD,
  MESH_MAX_STREAM_WINDOW_BYTES,
  MESH_PROTOCOL_PREFIX,
  MESH_PROTOCOL_VERSION
} from './constants.ts'
import { networkGate, type NetworkGate } from './gate.ts'
import type { MeshInit } from './types.ts'
import { parseMultiaddr } from './util.ts'

// a type alias, not an interface: libp2p's ServiceMap needs an index signature
export type MeshServices = {
  identify: Identify
  ping: Ping
  gate: NetworkGate
  pubsub: GossipSub
}

/** `MeshInit` validated, defaults applied. */
export interface ResolvedMeshInit {
  network: NetworkName
  listen: string[]
  bootstrap: string[]
  mdns: boolean
  gossipColocationWhitelist: string[]
}

export function resolveMeshInit (init: MeshInit): ResolvedMeshInit {
  if (init === null || typeof init !== 'object') throw new InvalidInputError('mesh init must be an object')
  if (!(NETWORKS as readonly string[]).includes(init.network)) {
    throw new InvalidInputError(`network must be one of ${NETWORKS.join(', ')}, got ${JSON.stringify(init.network)}`, { field: 'network' })
  }
  const listen = init.listen ?? [...MESH_DEFAULT_LISTEN]
  const bootstrap = init.bootstrap ?? []
  if (!Array.isArray(listen)) throw new InvalidInputError('listen must be an array of multiaddr strings', { field: 'listen' })
  if (!Array.isArray(bootstrap)) throw new InvalidInputError('bootstrap must be an array of multiaddr strings', { field: 'bootstrap' })
  listen.forEach(a => parseMultiaddr(a, 'listen'))
  bootstrap.forEach(a => parseMultiaddr(a, 'bootstrap'))
  if (init.mdns !== undefined && typeof init.mdns !== 'boolean') throw new InvalidInputError('mdns must be a boolean', { field: 'mdns' })
  const whitelist = init.gossipColocationWhitelist ?? []
  if (!Array.isArray(whitelist) || whitelist.some(ip => typeof ip !== 'string' || ip === '')) {
    throw new InvalidInputError('gossipColocationWhitelist must be an array of IP address strings', { field: 'gossipColocationWhitelist' })
  }
  return {
    network: init.network,
    listen: [...listen],
    bootstrap: [...new Set(bootstrap)],
    mdns: init.mdns ?? (init.network === 'local' && bootstrap.length === 0),
    gossipColocationWhitelist: [...whitelist]
  }
}

/** `/flexstack/<network>`: the prefix of every protocol id and gossip topic of a network. */
export function networkPrefix (network: NetworkName): string {
  return `${MESH_PROTOCOL_PREFIX}/${network}`
}

/** `/flexstack/<network>/<name>/1`. */
export function protocolIdOf (network: NetworkName, name: string): string {
  if (typeof name !== 'string' || name === '' || name.includes('/')) {
    throw new InvalidInputError(`a protocol name must be a non-empty string without '/', got ${JSON.stringify(name)}`, { field: 'name' })
  }
  return `${networkPrefix(network)}/${name}/${MESH_PROTOCOL_VERSION}`
}

export interface Libp2pParts {
  privateKey: PrivateKey
  /** peers refused by the connection gater and the network gate */
  blocked: ReadonlySet<string>
  log: ComponentLogger
  /** a peer found by mDNS (only with `mdns`) */
  onMdnsPeer: (info: PeerInfo) => void
}

/** The options `createLibp2p` builds a mesh node from (not started). */
const silentLibp2pLogger: Libp2pLogger = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false, newScope: () => silentLibp2pLogger })

/**
 * libp2p's own debug output. Its default logger builds a `debug` instance for every connection
 * and stream, each probing the terminal (an `isatty` call): about 2% of a busy mesh's CPU for
 * lines nobody reads. It is used only when `DEBUG` is set (`DEBUG=libp2p:*` still works);
 * otherwise a silent logger stands in.
 */
export function libp2pLogger (env: NodeJS.ProcessEnv = process.env): Libp2pComponentLogger | undefined {
  return env.DEBUG !== undefined && env.DEBUG !== '' ? undefined : { forComponent: () => silentLibp2pLogger }
}

export function libp2pOptions (init: ResolvedMeshInit, parts: Libp2pParts): Libp2pOptions<MeshServices> {
  const { blocked } = parts
  const denyPeer = (peerId: PeerId): boolean => blocked.has(peerId.toString())
  const logger = libp2pLogger()
  return {
    start: false,
    ...(logger !== undefined ? { logger } : {}),
    privateKey: parts.privateKey,
    addresses: { listen: init.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    // a paused (slow) reader holds at most one window of unread bytes, below libp2p's 4 MiB read buffer
    streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: MESH_MAX_STREAM_WINDOW_BYTES } })],
    connectionGater: {
      denyDialPeer: denyPeer,
      denyInboundEncryptedConnection: denyPeer,
      denyOutboundEncryptedConnection: denyPeer,
      denyInboundUpgradedConnection: denyPeer,
      denyOutboundUpgradedConnection: denyPeer
    },
    connectionManager: { inboundConnectionThreshold: MESH_INBOUND_CONNECTION_THRESHOLD },
    peerDiscovery: init.mdns
      ? [(c) => {
          const discovery = mdns({ serviceTag: `_flexstack-${init.network}._udp.local` })(c)
          discovery.addEventListener('peer', evt => { parts.onMdnsPeer(evt.detail) })
          return discovery
        }]
      : [],
    services: {
      identify: identify(),
      ping: ping({ maxOutboundStreams: 4 }),
      gate: networkGate({ network: init.network, hello: protocolIdOf(init.network, MESH_HELLO_PROTOCOL_NAME), blocked, log: parts.log }),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        heartbeatInterval: MESH_GOSSIP_HEARTBEAT_MS,
        ...(init.gossipColocationWhitelist.length > 0
          ? { scoreParams: { IPColocationFactorWhitelist: new Set(init.gossipColocationWhitelist) } }
          : {})
      })
    }
  }
}
