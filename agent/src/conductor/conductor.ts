/**
 * The embedded conductor: installs hApps, runs their cells, authorizes signed zome calls and
 * serves the Holochain Conductor Admin and App APIs (see `api/`), so the unmodified
 * `@holochain/client` talks to it as to `holochain`. This file composes its parts:
 * `apps.ts` (installed apps), `cells.ts` (running cells and their DHT spaces), `zome-calls.ts`
 * (authorization and capability grants), `api/interfaces.ts` (listeners and tokens) and, when
 * given, its DHT network (`network/`).
 *
 * ```ts
 * const conductor = await EmbeddedConductor.open({ dataDir }, { keystore, logger })
 * const admin = await conductor.startAdminInterface({ port: 0 })
 * const app = await conductor.installApp({ source: { type: 'path', value: 'dnas/happ.yaml' }, agent_key, installed_app_id: 'flexstack', network_seed: 'ripple-local' })
 * await conductor.enableApp({ installed_app_id: 'flexstack' })
 * ```
 */
import { join } from 'node:path'
import type { Database } from 'better-sqlite3'
import type { ZomeCallCapGrant } from '../../../zomes-ts/hdk/index.ts'
import { DisposedError } from '../errors.ts'
import { encodeHash, hashEquals, type HoloHash } from '../holo/hash.ts'
import type { Keystore } from '../identity/keystore.ts'
import type { ComponentLogger } from '../logger.ts'
import { ConductorInterfaces } from './api/interfaces.ts'
import { PeerAdmin, type PeerTransport } from './api/peer-admin.ts'
import type { PeerConnected, PeersBlocked, PeersListed, PeersUnblocked } from './api/peer-admin-types.ts'
import type { AppInterfaceInfo, AppSignalListener, AttachAppInterfaceRequest, ConductorApi, InstallAppRequest, IssuedToken, IssueTokenRequest } from './api/types.ts'
import { AppRegistry } from './apps.ts'
import { ZomeBundler } from './bundle.ts'
import type { Cell, CellId } from './cell.ts'
import { CellRegistry } from './cells.ts'
import type { CommitListener, WarrantListener } from './commit-hooks.ts'
import { DB_FILE } from './constants.ts'
import { decodeDnaDef, ZomeLoader, type ZomeRuntime } from './dna.ts'
import { deserializationError, internalError, requestHash } from './errors.ts'
import type { AuthoredListener, DhtHost, DhtNetwork, DhtNetworkFactory } from './network/types.ts'
import { FULL_ARC } from './network/arc.ts'
import { ZomeSandbox, type ZomeSandboxInit } from './sandbox/host.ts'
import { checkRetention, dhtRetention, PERMANENT, type DhtRetention, type RetentionPolicy } from './retention.ts'
import type { DhtSpace, NetRecord, ReceiveOptions, ReceiveOutcome } from './space.ts'
import { ConductorStore } from './store.ts'
import { ZomeCalls } from './zome-calls.ts'

export type { AppSignalEvent, AppSignalListener, AppStatus, InstallAppRequest } from './api/types.ts'
export type { AuthoredListener } from './network/types.ts'
export type { CommitEvent, CommitListener, CommittedAction, WarrantEvent, WarrantListener } from './commit-hooks.ts'

export interface ConductorInit {
  dataDir: string
  /** Largest WebSocket message accepted. @default 16 MiB */
  maxMessageBytes?: number
  /** @default 30000 */
  zomeCallTimeoutMs?: number
  /** Interface to bind WebSocket listeners to. @default '127.0.0.1' */
  host?: string
  /** Limits of the zome sandbox (memory per DNA, CPU time per call). @default 64 MiB, 5000 ms */
  sandbox?: ZomeSandboxInit
  /**
   * What this node keeps of the DHT it holds for others (`retention.ts`; a node takes it from its
   * network profile). It applies once `retention.start()` is called. @default { mode: 'permanent' }
   */
  retention?: RetentionPolicy
}

export interface ConductorComponents {
  keystore: Keystore
  logger: ComponentLogger
  /** what runs zome code. @default a ZomeSandbox with `init.sandbox`'s limits */
  zomeRuntime?: ZomeRuntime
  /**
   * How this conductor reaches other nodes: built at construction with the conductor as its
   * host (see `network/types.ts`). @default none: the conductor runs alone (no cascade, no peers)
   */
  network?: DhtNetworkFactory
  /** reads happ.yaml sources and keeps their bundled zomes. @default one per conductor */
  bundler?: ZomeBundler
  /**
   * The node's mesh, which the Admin API's peer requests list and gate (`list_peers`,
   * `block_peers`, `unblock_peers`, `connect_peer`). @default none: they answer `internal_error`
   */
  transport?: PeerTransport
  /** ms since the epoch, for the pruning horizon (tests pass a fake clock). @default Date.now */
  clock?: () => number
}

export class EmbeddedConductor implements ConductorApi, DhtHost {
  readonly dataDir: string
  readonly keystore: Keystore
  /** the network this conductor built from its `network` component, if any */
  readonly network: DhtNetwork | undefined
  /** what it keeps of the DHT; started by its owner once the data dir is known to be the network's */
  readonly retention: DhtRetention
  private readonly store: ConductorStore
  private readonly loader: ZomeLoader
  private readonly sandbox: ZomeRuntime
  /** the conductor made its zome runtime (and so disposes it) */
  private ownsRuntime = false
  private readonly log: ComponentLogger
  private readonly cells: CellRegistry
  private readonly apps: AppRegistry
  private readonly calls: ZomeCalls
  private readonly interfaces: ConductorInterfaces
  private readonly peers: PeerAdmin
  private readonly signalListeners = new Set<{ appId: string, fn: AppSignalListener }>()
  private stopped = false

  private constructor (init: ConductorInit, components: ConductorComponents, sandbox: ZomeRuntime) {
    // a bad policy is refused before the database is opened
    const retention = checkRetention(init.retention ?? PERMANENT)
    this.dataDir = init.dataDir
    this.keystore = components.keystore
    const logger = this.log = components.logger.forComponent('flexnode:conductor')
    this.sandbox = sandbox
    const store = this.store = new ConductorStore({ path: join(init.dataDir, DB_FILE) })
    this.loader = new ZomeLoader(sandbox)
    const keystore = components.keystore
    this.cells = new CellRegistry({ zomeCallTimeoutMs: init.zomeCallTimeoutMs, maxAgeMs: retention.mode === 'prune' ? retention.maxAgeMs : undefined }, {
      store,
      keystore,
      loader: this.loader,
      logger,
      emitSignal: (cellId, zomeName, payload) => { this.emitSignal(cellId, zomeName, payload) },
      cascade: async (dna, query) => { await this.network?.cascade(dna, query) },
      presence: (agents) => this.network?.presence.lookup(agents) ?? agents.map(() => null),
      clock: components.clock
    })
    this.retention = dhtRetention(retention)({ store, spaces: () => this.cells.allSpaces(), logger })
    this.apps = new AppRegistry({ store, keystore, cells: this.cells, bundler: components.bundler ?? new ZomeBundler(), logger })
    this.calls = new ZomeCalls({ store, keystore, cells: this.cells, apps: this.apps })
    this.interfaces = new ConductorInterfaces({ host: init.host, maxMessageBytes: init.maxMessageBytes }, { api: this, store, apps: this.apps, logger })
    this.network = components.network?.(this)
    const cells = this.cells
    this.peers = new PeerAdmin({ transport: components.transport, warranted: (agent) => cells.runningDnas().some(dna => cells.space(dna)?.isBlocked(agent) === true) })
  }

  /** Open the conductor on a data dir: loads installed apps and starts the enabled ones. */
  static async open (init: ConductorInit, components: ConductorComponents): Promise<EmbeddedConductor> {
    const owns = components.zomeRuntime === undefined
    const sandbox = components.zomeRuntime ?? await ZomeSandbox.create(init.sandbox ?? {}, components)
    let c: EmbeddedConductor
    try {
      c = new EmbeddedConductor(init, components, sandbox)
      c.ownsRuntime = owns
    } catch (err) {
      if (owns) sandbox.dispose()
      throw err
    }
    try {
      await c.apps.load()
    } catch (err) {
      c.loader.dispose()
      if (owns) sandbox.dispose()
      c.store.dispose()
      throw err
    }
    return c
  }

  private assertOpen (): void {
    if (this.stopped) throw new DisposedError('EmbeddedConductor')
  }

  /** A consistent snapshot of the database (every source chain) in the file `destination`, while running. */
  async backupDatabase (destination: string): Promise<void> {
    this.assertOpen()
    await this.store.backup(destination)
  }

  // -- the DHT, for the network (DhtHost) --------------------------------------------------

  /** The DHT space of a DNA this node runs, or null. */
  space (dna: Uint8Array): DhtSpace | null {
    return this.cells.space(dna)
  }

  /** DNAs with a running cell. */
  runningDnas (): HoloHash[] {
    return this.cells.runningDnas()
  }

  /** Be told of every record committed by a local cell (to publish it). */
  onAuthored (fn: AuthoredListener): () => void {
    return this.cells.onAuthored(fn)
  }

  /**
   * Be told of every local commit INSIDE its transaction (`commit-hooks.ts`): what the listener
   * writes through {@link database} commits with it; a throw rolls the commit back.
   */
  onCommitting (fn: CommitListener): () => void {
    return this.cells.hooks.onCommitting(fn)
  }

  /** Be told of every warrant this node issues, as it is stored. */
  onWarrantIssued (fn: WarrantListener): () => void {
    return this.cells.hooks.onWarrantIssued(fn)
  }

  /** The conductor's SQLite database, for components that write in its transactions (the audit outbox). */
  get database (): Database {
    this.assertOpen()
    return this.store.db
  }

  /** Validate and integrate records of another agent from the network. */
  receiveRecords (dna: Uint8Array, records: NetRecord[], options?: ReceiveOptions): ReceiveOutcome {
    this.assertOpen()
    return this.cells.receiveRecords(dna, records, options)
  }

  /** The running cell, or null. */
  cell (cellId: CellId): Cell | null {
    return this.cells.cell(cellId)
  }

  // -- admin operations --------------------------------------------------------------------

  async generateAgentPubKey (): Promise<HoloHash> {
    this.assertOpen()
    return (await this.keystore.generate()).agentPubKey
  }

  async installApp (req: InstallAppRequest): Promise<unknown> {
    this.assertOpen()
    return await this.apps.installApp(req)
  }

  async enableApp (req: { installed_app_id: string }): Promise<unknown> {
    this.assertOpen()
    return await this.apps.enableApp(req)
  }

  async disableApp (req: { installed_app_id: string }): Promise<null> {
    this.assertOpen()
    return await this.apps.disableApp(req)
  }

  async uninstallApp (req: { installed_app_id: string, force?: boolean }): Promise<null> {
    this.assertOpen()
    const out = await this.apps.uninstallApp(req)
    this.interfaces.forgetApp(req.installed_app_id)
    return out
  }

  listApps (req?: { status_filter?: 'enabled' | 'disabled' | null } | null): unknown[] {
    this.assertOpen()
    return this.apps.listApps(req)
  }

  appInfo (appId: string): unknown {
    return this.apps.appInfo(appId)
  }

  /**
   * Listen for App API clients of one app (or any). `allowed_origins` as for the admin
   * interface: `*` admits every non-browser client and no browser; browser origins must be listed.
   * A port in use is a `ListenError`.
   */
  async attachAppInterface (req: AttachAppInterfaceRequest): Promise<{ port: number }> {
    this.assertOpen()
    return await this.interfaces.attachAppInterface(req)
  }

  listAppInterfaces (): AppInterfaceInfo[] {
    return this.interfaces.listAppInterfaces()
  }

  /** Re-attach the app interfaces of an earlier run on the same ports, as the real conductor does. */
  async restoreAppInterfaces (): Promise<Array<{ port: number }>> {
    return await this.interfaces.restoreAppInterfaces()
  }

  /**
   * Listen for Admin API clients. `allowedOrigins` is `*` (every non-browser client) or a
   * comma-separated list of origins (see `origins.ts`); a browser origin must be listed.
   * @default allowedOrigins '*'
   */
  async startAdminInterface (opts: { port?: number, allowedOrigins?: string } = {}): Promise<{ port: number }> {
    this.assertOpen()
    return await this.interfaces.startAdminInterface(opts)
  }

  issueAppAuthenticationToken (req: IssueTokenRequest): IssuedToken {
    this.assertOpen()
    return this.interfaces.issueAppAuthenticationToken(req)
  }

  /** Check an app authentication token; returns the app it is for or throws. */
  authenticateToken (token: unknown, interfaceAppId: string | null): string {
    return this.interfaces.authenticateToken(token, interfaceAppId)
  }

  async grantZomeCallCapability (req: { cell_id: CellId, cap_grant: ZomeCallCapGrant }): Promise<HoloHash> {
    this.assertOpen()
    return await this.calls.grantZomeCallCapability(req)
  }

  revokeZomeCallCapability (req: { cell_id: CellId, action_hash: HoloHash }): null {
    return this.calls.revokeZomeCallCapability(req)
  }

  listCapabilityGrants (req: { installed_app_id: string, include_revoked: boolean }): unknown[] {
    return this.calls.listCapabilityGrants(req)
  }

  dumpFullState (req: { cell_id: CellId, dht_ops_cursor?: number | null }): unknown {
    const cell = this.cells.require(req?.cell_id)
    const cursor = req.dht_ops_cursor ?? 0
    if (!Number.isInteger(cursor) || cursor < 0) throw deserializationError('dht_ops_cursor must be a non-negative integer')
    return cell.dumpFullState(cursor)
  }

  dumpState (req: { cell_id: CellId }): string {
    const state = this.cells.require(req?.cell_id).dumpFullState() as { source_chain_dump: unknown }
    return JSON.stringify([{ source_chain_dump: state.source_chain_dump }, ''], (_k, v: unknown) => v instanceof Uint8Array ? encodeHash(v as HoloHash) : v)
  }

  agentInfo (_req?: { dna_hashes?: HoloHash[] | null } | null): string[] {
    return this.network?.peerInfo() ?? []
  }

  /**
   * Holochain's `dump_network_metrics` for each running DNA (or the one asked): the local agent's
   * storage arc, the peers' claimed arcs as peer meta, and, as a flexnode extension, the
   * authorities seen for the arc and the ops held. Fetch and gossip rounds are not tracked.
   */
  dumpNetworkMetrics (req?: { dna_hash?: HoloHash | null, include_dht_summary?: boolean } | null): Record<string, unknown> {
    this.assertOpen()
    const arc = this.network?.arcStatus() ?? { arc: FULL_ARC, sectors: 512, authoritiesSeen: 1, coverage: 0, targetRedundancy: 0, peers: [] }
    const out: Record<string, unknown> = {}
    for (const dna of this.cells.runningDnas()) {
      if (req?.dna_hash != null && !hashEquals(req.dna_hash, dna)) continue
      const space = this.cells.space(dna)
      out[encodeHash(dna)] = {
        fetch_state_summary: { pending_requests: {}, peers_on_backoff: {} },
        gossip_state_summary: {
          accepted_rounds: [],
          dht_summary: {},
          peer_meta: Object.fromEntries(arc.peers.map(p => [p.peer, { storage_arc: p.arc, flexnode_confirmed: p.confirmed }]))
        },
        local_agents: (space === null ? [] : [space.agent]).map(agent => ({ agent, storage_arc: arc.arc, target_arc: arc.arc })),
        flexnode: { arc_sectors: arc.sectors, authorities_seen: arc.authoritiesSeen, target_redundancy: arc.targetRedundancy, coverage: arc.coverage, ops_held: space?.opCount() ?? 0 }
      }
    }
    return out
  }

  listDnas (): HoloHash[] {
    return this.store.listDnaHashes()
  }

  listCellIds (): CellId[] {
    return this.cells.ids()
  }

  getDnaDefinition (req: unknown): unknown {
    const hash = requestHash(Array.isArray(req) ? req[0] : req, 'Dna', 'dna_hash')
    const bytes = this.store.getDnaDef(hash)
    if (bytes === undefined) throw internalError('DnaMissing')
    return decodeDnaDef(bytes)
  }

  // -- the node's mesh peers (flexnode extensions of the Admin API) ----------------------------

  listPeers (): PeersListed {
    this.assertOpen()
    return this.peers.list()
  }

  blockPeers (req: unknown): PeersBlocked {
    this.assertOpen()
    return this.peers.block(req)
  }

  unblockPeers (req: unknown): PeersUnblocked {
    this.assertOpen()
    return this.peers.unblock(req)
  }

  async connectPeer (req: unknown): Promise<PeerConnected> {
    this.assertOpen()
    return await this.peers.connect(req)
  }

  // -- zome calls --------------------------------------------------------------------------

  /**
   * Authorize and run a signed zome call, as the conductor does: signature over SHA-512 of the
   * bytes by `provenance`, then nonce and expiry, then the cap grant. Returns msgpack of the result.
   */
  async callZomeSigned (appId: string | null, req: unknown): Promise<Uint8Array> {
    this.assertOpen()
    return await this.calls.callZomeSigned(appId, req)
  }

  // -- signals -----------------------------------------------------------------------------

  onAppSignal (appId: string, fn: AppSignalListener): () => void {
    const entry = { appId, fn }
    this.signalListeners.add(entry)
    return () => { this.signalListeners.delete(entry) }
  }

  private emitSignal (cellId: CellId, zomeName: string, payload: unknown): void {
    const appIds = new Set(this.apps.appsOfCell(cellId))
    for (const l of this.signalListeners) {
      if (!appIds.has(l.appId)) continue
      try {
        l.fn({ cell_id: cellId, zome_name: zomeName, payload })
      } catch (err) {
        this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'signal listener threw')
      }
    }
  }

  // -- lifecycle ---------------------------------------------------------------------------

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    await this.network?.stop()
    await this.retention.stop()
    await this.interfaces.close()
    this.signalListeners.clear()
    this.cells.clear()
    this.loader.dispose()
    if (this.ownsRuntime) this.sandbox.dispose()
    this.store.dispose()
  }

  async [Symbol.asyncDispose] (): Promise<void> {
    await this.stop()
  }
}
