/**
 * What the Admin and App WebSocket APIs call on the conductor. `dispatch.ts` and `ws-server.ts`
 * see the conductor only through these interfaces (so the conductor can own its interfaces
 * without an import cycle); `EmbeddedConductor` implements them.
 */
import type { ZomeCallCapGrant } from '../../../../zomes-ts/hdk/index.ts'
import type { HoloHash } from '../../holo/hash.ts'
import type { CellId } from '../cell.ts'
import type { ModifiersOverride } from '../dna.ts'
import type { PeerConnected, PeersBlocked, PeersListed, PeersUnblocked } from './peer-admin-types.ts'

export type AppStatus = { type: 'enabled' } | { type: 'disabled', value: { type: 'never_started' } | { type: 'user' } | { type: 'error', value: string } }

export interface InstallAppRequest {
  source: { type: 'path', value: string } | { type: 'bytes', value: Uint8Array }
  agent_key?: HoloHash | null
  installed_app_id?: string | null
  network_seed?: string | null
  roles_settings?: Record<string, { type: 'provisioned', value?: { modifiers?: ModifiersOverride, membrane_proof?: Uint8Array } } | { type: 'use_existing', value: unknown }> | null
  ignore_genesis_failure?: boolean
}

export interface AttachAppInterfaceRequest { port?: number | null, allowed_origins: string, installed_app_id?: string | null }
export interface AppInterfaceInfo { port: number, allowed_origins: string, installed_app_id?: string }
export interface IssueTokenRequest { installed_app_id: string, expiry_seconds?: number | null, single_use?: boolean | null }
export interface IssuedToken { token: number[], expires_at: number | null }

export interface AppSignalEvent { cell_id: CellId, zome_name: string, payload: unknown }
export type AppSignalListener = (signal: AppSignalEvent) => void

/** The Admin API requests (`AdminRequest` of the Holochain Conductor API). */
export interface AdminApi {
  generateAgentPubKey: () => Promise<HoloHash>
  installApp: (req: InstallAppRequest) => Promise<unknown>
  enableApp: (req: { installed_app_id: string }) => Promise<unknown>
  disableApp: (req: { installed_app_id: string }) => Promise<null>
  uninstallApp: (req: { installed_app_id: string, force?: boolean }) => Promise<null>
  listApps: (req?: { status_filter?: 'enabled' | 'disabled' | null } | null) => unknown[]
  attachAppInterface: (req: AttachAppInterfaceRequest) => Promise<{ port: number }>
  listAppInterfaces: () => AppInterfaceInfo[]
  issueAppAuthenticationToken: (req: IssueTokenRequest) => IssuedToken
  grantZomeCallCapability: (req: { cell_id: CellId, cap_grant: ZomeCallCapGrant }) => Promise<HoloHash>
  revokeZomeCallCapability: (req: { cell_id: CellId, action_hash: HoloHash }) => null
  listCapabilityGrants: (req: { installed_app_id: string, include_revoked: boolean }) => unknown[]
  dumpFullState: (req: { cell_id: CellId, dht_ops_cursor?: number | null }) => unknown
  dumpState: (req: { cell_id: CellId }) => string
  agentInfo: (req?: { dna_hashes?: HoloHash[] | null } | null) => string[]
  dumpNetworkMetrics: (req?: { dna_hash?: HoloHash | null, include_dht_summary?: boolean } | null) => Record<string, unknown>
  listDnas: () => HoloHash[]
  listCellIds: () => CellId[]
  getDnaDefinition: (req: unknown) => unknown
  /** flexnode extensions: the node's mesh peers, listed and gated (see `peer-admin-types.ts`) */
  listPeers: () => PeersListed
  blockPeers: (req: unknown) => PeersBlocked
  unblockPeers: (req: unknown) => PeersUnblocked
  connectPeer: (req: unknown) => Promise<PeerConnected>
}

/** The App API requests (`AppRequest`), for a connection scoped to one app. */
export interface AppApi {
  appInfo: (appId: string) => unknown
  /** authorize and run a signed zome call; msgpack of the result */
  callZomeSigned: (appId: string | null, req: unknown) => Promise<Uint8Array>
  agentInfo: (req?: { dna_hashes?: HoloHash[] | null } | null) => string[]
}

/** What an app socket needs besides the requests: authentication and its app's signals. */
export interface AppSession {
  /** check an app authentication token; returns the app it is for or throws */
  authenticateToken: (token: unknown, interfaceAppId: string | null) => string
  onAppSignal: (appId: string, fn: AppSignalListener) => () => void
}

export type ConductorApi = AdminApi & AppApi & AppSession
