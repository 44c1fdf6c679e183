/**
 * The embedded conductor: installs hApps, runs their cells, authorizes signed zome calls and
 * serves the Holochain Conductor Admin and App APIs (see `ws-server.ts`), so the unmodified
 * `@holochain/client` talks to it as to `holochain`.
 *
 * ```ts
 * const conductor = await EmbeddedConductor.open({ dataDir }, { keystore, logger })
 * const admin = await conductor.startAdminInterface({ port: 0 })
 * const app = await conductor.installApp({ source: { type: 'path', value: 'dnas/happ.yaml' }, agent_key, installed_app_id: 'flexstack', network_seed: 'ripple-local' })
 * await conductor.enableApp({ installed_app_id: 'flexstack' })
 * ```
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ZomeCallCapGrant } from '../../../zomes-ts/hdk/index.ts'
import { DisposedError, InvalidInputError } from '../errors.ts'
import { assertHash, encodeHash, hashEquals, sameKey, type HoloHash, type HoloHashType } from '../holo/hash.ts'
import { bytesEqual } from '../../../zomes-ts/hdk/index.ts'
import type { Keystore } from '../identity/keystore.ts'
import { verifySignature } from '../identity/keystore.ts'
import type { ComponentLogger } from '../logger.ts'
import { readHappBundle, loadHappYaml, type AppManifest, type HappBundle } from './bundle.ts'
import { Cell, checkCapGrant, type CellId } from './cell.ts'
import { decode, encode, isPlainObject } from './codec.ts'
import { DB_FILE, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_TOKEN_EXPIRY_SECONDS, NONCE_MAX_FUTURE_MS } from './constants.ts'
import { decodeDnaDef, encodeDnaDef, resolveDna, ZomeLoader, type DnaDef, type LoadedDna, type ModifiersOverride, type ZomeRuntime } from './dna.ts'
import { ConductorApiError, authenticationFailed, deserializationError, internalError, ribosomeError, unauthorized } from './errors.ts'
import { parseAllowedOrigins } from './origins.ts'
import { ConductorStore } from './store.ts'
import { ZomeSandbox, type ZomeSandboxInit } from './sandbox/host.ts'
import { DhtSpace, type NetRecord, type ReceiveOutcome } from './space.ts'
import { ConductorWsServer } from './ws-server.ts'
import type { AuthoredListener, DhtNetwork, DhtNetworkFactory } from './network/types.ts'

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
}

export type AppStatus = { type: 'enabled' } | { type: 'disabled', value: { type: 'never_started' } | { type: 'user' } | { type: 'error', value: string } }

interface RoleCell {
  name: string
  dna_hash: HoloHash
  dna_name: string
  network_seed: string
  properties: Uint8Array
}

interface AppDef {
  manifest: AppManifest
  roles: RoleCell[]
}

interface InstalledApp {
  id: string
  agent: HoloHash
  def: AppDef
  status: AppStatus
  installedAt: number
}

export interface AppSignalEvent { cell_id: CellId, zome_name: string, payload: unknown }
export type AppSignalListener = (signal: AppSignalEvent) => void
export type { AuthoredListener } from './network/types.ts'

interface TokenInfo { appId: string, expiresAt: number | null, singleUse: boolean }

export interface InstallAppRequest {
  source: { type: 'path', value: string } | { type: 'bytes', value: Uint8Array }
  agent_key?: HoloHash | null
  installed_app_id?: string | null
  network_seed?: string | null
  roles_settings?: Record<string, { type: 'provisioned', value?: { modifiers?: ModifiersOverride, membrane_proof?: Uint8Array } } | { type: 'use_existing', value: unknown }> | null
  ignore_genesis_failure?: boolean
}

const APP_ID_RE = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$/

/** A hash from an API request: a malformed one is the caller's `deserialization` error, not ours. */
function requestHash (value: unknown, type: HoloHashType, field: string): HoloHash {
  try {
    return assertHash(value, type, field)
  } catch (err) {
    throw deserializationError(err instanceof Error ? err.message : String(err))
  }
}

const cellKey = (dna: Uint8Array, agent: Uint8Array): string => encodeHash(dna) + encodeHash(agent).slice(0, 48)

export class EmbeddedConductor {
  readonly dataDir: string
  readonly keystore: Keystore
  private readonly store: ConductorStore
  private readonly loader: ZomeLoader
  private readonly sandbox: ZomeRuntime
  /** the conductor made its zome runtime (and so disposes it) */
  private ownsRuntime = false
  private readonly log: ComponentLogger
  private readonly init: ConductorInit
  private readonly apps = new Map<string, InstalledApp>()
  private readonly cells = new Map<string, Cell>()
  private readonly dnas = new Map<string, Promise<LoadedDna>>()
  private readonly tokens = new Map<string, TokenInfo>()
  private readonly signalListeners = new Set<{ appId: string, fn: AppSignalListener }>()
  private readonly spaces = new Map<string, DhtSpace>()
  private readonly authoredListeners = new Set<AuthoredListener>()
  /** the network this conductor built from its `network` component, if any */
  readonly network: DhtNetwork | undefined
  private readonly servers: ConductorWsServer[] = []
  private readonly appInterfaces = new Map<number, ConductorWsServer>()
  private nonceCalls = 0
  private stopped = false

  private constructor (init: ConductorInit, components: ConductorComponents, sandbox: ZomeRuntime) {
    this.init = init
    this.dataDir = init.dataDir
    this.keystore = components.keystore
    this.log = components.logger.forComponent('flexnode:conductor')
    this.sandbox = sandbox
    this.store = new ConductorStore({ path: join(init.dataDir, DB_FILE) })
    this.loader = new ZomeLoader(sandbox)
    this.network = components.network?.(this)
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
      for (const row of c.store.listApps()) {
        const app: InstalledApp = { id: row.id, agent: row.agent, def: decode(row.def) as AppDef, status: decode(row.disabled_reason ?? encode({ type: 'enabled' })) as AppStatus, installedAt: row.installed_at }
        c.apps.set(app.id, app)
        if (app.status.type === 'enabled') await c.startCells(app)
      }
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

  // -- DNAs and cells ----------------------------------------------------------------------

  /** The loaded DNA: its definition and code from the store, or from `source` (an install in progress). */
  private async loadDna (hash: HoloHash, source?: () => { def: DnaDef, code: (wasm: HoloHash) => Uint8Array | undefined }): Promise<LoadedDna> {
    const key = encodeHash(hash)
    let p = this.dnas.get(key)
    if (p === undefined) {
      let from = source?.()
      if (from === undefined) {
        const defBytes = this.store.getDnaDef(hash)
        if (defBytes === undefined) throw internalError(`DNA ${key} is not registered`)
        from = { def: decodeDnaDef(defBytes), code: (wasm) => this.store.getZomeCode(wasm) }
      }
      p = this.loader.load(hash, from.def, from.code)
      p.catch(() => this.dnas.delete(key))
      this.dnas.set(key, p)
    }
    return p
  }

  private async startCells (app: InstalledApp): Promise<void> {
    for (const role of app.def.roles) {
      const key = cellKey(role.dna_hash, app.agent)
      if (this.cells.has(key)) continue
      const dna = await this.loadDna(role.dna_hash)
      this.cells.set(key, this.newCell(dna, app.agent))
    }
  }

  private newCell (dna: LoadedDna, agent: HoloHash): Cell {
    const key = encodeHash(dna.hash)
    if (!this.spaces.has(key)) this.spaces.set(key, new DhtSpace(dna, agent, { store: this.store, keystore: this.keystore, logger: this.log }))
    return new Cell(dna, agent, {
      store: this.store,
      keystore: this.keystore,
      logger: this.log,
      emitSignal: (cellId, zomeName, payload) => this.emitSignal(cellId, zomeName, payload),
      onCommitted: (cell, records) => this.committed(cell, records),
      cascade: async (dna, query) => { await this.network?.cascade(dna, query) }
    }, { zomeCallTimeoutMs: this.init.zomeCallTimeoutMs })
  }

  private committed (cell: Cell, records: Array<{ sa: { action: NetRecord['action'], hash: HoloHash, signature: Uint8Array }, entry: NetRecord['entry'], entryPublic: boolean }>): void {
    const space = this.spaces.get(encodeHash(cell.id[0]))
    for (const r of records) space?.noteValid(r.sa.hash)
    if (this.authoredListeners.size === 0) return
    const net: NetRecord[] = records.map(r => ({ action: r.sa.action, signature: r.sa.signature, entry: r.entryPublic ? r.entry : null }))
    for (const l of this.authoredListeners) {
      try {
        l(cell.id[0], net)
      } catch (err) {
        this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'authored listener threw')
      }
    }
  }

  // -- the DHT, for the mesh ---------------------------------------------------------------

  /** The DHT space of a DNA this node runs, or null. */
  space (dna: Uint8Array): DhtSpace | null {
    return this.spaces.get(encodeHash(dna)) ?? null
  }

  /** DNAs with a running cell. */
  runningDnas (): HoloHash[] {
    const out = new Map<string, HoloHash>()
    for (const c of this.cells.values()) out.set(encodeHash(c.id[0]), c.id[0])
    return [...out.values()]
  }

  /** Be told of every record committed by a local cell (to publish it). */
  onAuthored (fn: AuthoredListener): () => void {
    this.authoredListeners.add(fn)
    return () => { this.authoredListeners.delete(fn) }
  }

  /** Validate and integrate records of another agent from the network. */
  receiveRecords (dna: Uint8Array, records: NetRecord[]): ReceiveOutcome {
    this.assertOpen()
    const space = this.space(dna)
    if (space === null) throw internalError(`DnaMissing: this node does not run ${encodeHash(dna)}`)
    return space.receive(records)
  }

  private stopCells (app: InstalledApp): void {
    for (const role of app.def.roles) {
      const key = cellKey(role.dna_hash, app.agent)
      const stillUsed = [...this.apps.values()].some(a => a !== app && a.status.type === 'enabled' && hashEquals(a.agent, app.agent) && a.def.roles.some(r => hashEquals(r.dna_hash, role.dna_hash)))
      if (!stillUsed) this.cells.delete(key)
    }
  }

  /** The running cell, or null. */
  cell (cellId: CellId): Cell | null {
    return this.cells.get(cellKey(cellId[0], cellId[1])) ?? null
  }

  // -- admin operations --------------------------------------------------------------------

  async generateAgentPubKey (): Promise<HoloHash> {
    this.assertOpen()
    return (await this.keystore.generate()).agentPubKey
  }

  private async readSource (source: InstallAppRequest['source']): Promise<HappBundle> {
    if (!isPlainObject(source)) throw deserializationError('install_app: source must be {type, value}')
    if (source.type === 'bytes') {
      if (!(source.value instanceof Uint8Array)) throw deserializationError('install_app: source.value must be bytes')
      return this.bundle(() => readHappBundle(source.value))
    }
    if (source.type === 'path') {
      if (typeof source.value !== 'string' || source.value.length === 0) throw deserializationError('install_app: source.value must be a path')
      const path = source.value
      if (path.endsWith('.yaml') || path.endsWith('.yml')) return this.bundle(async () => await loadHappYaml(path))
      let bytes: Uint8Array
      try {
        bytes = await readFile(path)
      } catch (err) {
        throw new ConductorApiError('dna_read_error', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
      }
      return this.bundle(() => readHappBundle(bytes))
    }
    throw deserializationError('install_app: source.type must be path or bytes')
  }

  private async bundle (fn: () => HappBundle | Promise<HappBundle>): Promise<HappBundle> {
    try {
      return await fn()
    } catch (err) {
      if (err instanceof ConductorApiError) throw err
      throw new ConductorApiError('dna_read_error', err instanceof Error ? err.message : String(err), { cause: err })
    }
  }

  async installApp (req: InstallAppRequest): Promise<unknown> {
    this.assertOpen()
    if (!isPlainObject(req)) throw deserializationError('install_app takes a map')
    const happ = await this.readSource(req.source)
    const appId = req.installed_app_id ?? happ.manifest.name
    if (typeof appId !== 'string' || !APP_ID_RE.test(appId)) throw deserializationError('installed_app_id must be 1-128 characters of letters, digits, _ . : -')
    if (this.apps.has(appId)) throw internalError(`AppAlreadyInstalled: ${appId}`)
    if (req.network_seed != null && (typeof req.network_seed !== 'string' || req.network_seed.length > 256)) throw deserializationError('network_seed must be a string of at most 256 characters')
    let agent: HoloHash
    if (req.agent_key == null) {
      agent = await this.generateAgentPubKey()
    } else {
      agent = requestHash(req.agent_key, 'Agent', 'agent_key')
      if (!this.keystore.has(agent)) throw internalError(`agent_key ${encodeHash(agent)} is not held by this conductor's keystore`)
    }
    const settings = req.roles_settings ?? {}
    if (!isPlainObject(settings)) throw deserializationError('roles_settings must be a map')
    const roles: RoleCell[] = []
    const resolved: Array<{ role: RoleCell, code: Map<string, Uint8Array>, defBytes: Uint8Array, membrane: Uint8Array | null }> = []
    for (const role of happ.manifest.roles) {
      const dna = happ.dnas.get(role.name)
      if (dna === undefined) throw new ConductorApiError('dna_read_error', `no DNA for role ${role.name}`)
      const rs = settings[role.name]
      if (rs !== undefined && rs.type !== 'provisioned') throw internalError(`role ${role.name}: only provisioned roles are supported`)
      const rsv = rs?.type === 'provisioned' ? rs.value : undefined
      const { def, hash, code } = resolveDna(dna, role.dna.modifiers ?? undefined, req.network_seed != null ? { network_seed: req.network_seed } : undefined, rsv?.modifiers)
      const rc: RoleCell = { name: role.name, dna_hash: hash, dna_name: def.name, network_seed: def.modifiers.network_seed, properties: def.modifiers.properties }
      roles.push(rc)
      resolved.push({ role: rc, code, defBytes: encodeDnaDef(def), membrane: rsv?.membrane_proof ?? null })
    }
    // a DNA this conductor already runs keeps its code: an install may not swap the coordinators
    // of a DNA (same integrity zomes, same modifiers) under another app
    for (const r of resolved) {
      const known = this.store.getDnaDef(r.role.dna_hash)
      if (known !== undefined && !bytesEqual(known, r.defBytes)) {
        throw new ConductorApiError('dna_read_error', `role ${r.role.name}: DNA ${encodeHash(r.role.dna_hash)} is already installed with other coordinator zomes`)
      }
    }
    // load every DNA from the bundle's own code before anything is written: a DNA whose zomes do
    // not load (or do not load within the sandbox's limits) leaves nothing behind
    const cells: Cell[] = []
    for (const r of resolved) {
      let dna: LoadedDna
      try {
        dna = await this.loadDna(r.role.dna_hash, () => ({ def: decodeDnaDef(r.defBytes), code: (wasm) => r.code.get(encodeHash(wasm)) }))
      } catch (err) {
        throw new ConductorApiError('dna_read_error', `role ${r.role.name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
      }
      cells.push(this.newCell(dna, agent))
    }
    this.store.transaction(() => {
      for (const r of resolved) {
        for (const [hashStr, bytes] of r.code) this.store.putZomeCode(Buffer.from(hashStr.slice(1), 'base64url'), bytes)
        this.store.putDnaDef(r.role.dna_hash, r.defBytes)
      }
    })
    try {
      this.store.transaction(() => {
        for (const [i, cell] of cells.entries()) cell.genesis(resolved[i]?.membrane ?? null)
      })
    } catch (err) {
      throw internalError(`genesis failed: ${err instanceof Error ? err.message : String(err)}`, err)
    }
    const app: InstalledApp = { id: appId, agent, def: { manifest: happ.manifest, roles }, status: { type: 'disabled', value: { type: 'never_started' } }, installedAt: Date.now() * 1000 }
    this.persistApp(app)
    this.apps.set(appId, app)
    this.log.info({ app: appId, agent: encodeHash(agent), roles: roles.map(r => r.name) }, 'app installed')
    return this.appInfoOf(app)
  }

  private persistApp (app: InstalledApp): void {
    this.store.putApp({ id: app.id, agent: app.agent, def: encode(app.def), status: app.status.type, disabled_reason: encode(app.status), installed_at: app.installedAt })
  }

  private app (id: unknown): InstalledApp {
    if (typeof id !== 'string') throw deserializationError('installed_app_id must be a string')
    const app = this.apps.get(id)
    if (app === undefined) throw internalError(`AppNotInstalled: ${id}`)
    return app
  }

  async enableApp (req: { installed_app_id: string }): Promise<unknown> {
    this.assertOpen()
    const app = this.app(req?.installed_app_id)
    await this.startCells(app)
    app.status = { type: 'enabled' }
    this.persistApp(app)
    return this.appInfoOf(app)
  }

  async disableApp (req: { installed_app_id: string }): Promise<null> {
    this.assertOpen()
    const app = this.app(req?.installed_app_id)
    app.status = { type: 'disabled', value: { type: 'user' } }
    this.stopCells(app)
    this.persistApp(app)
    return null
  }

  async uninstallApp (req: { installed_app_id: string, force?: boolean }): Promise<null> {
    this.assertOpen()
    const app = this.app(req?.installed_app_id)
    app.status = { type: 'disabled', value: { type: 'user' } }
    this.stopCells(app)
    this.apps.delete(app.id)
    this.store.deleteApp(app.id)
    for (const [k, t] of this.tokens) if (t.appId === app.id) this.tokens.delete(k)
    return null
  }

  listApps (req?: { status_filter?: 'enabled' | 'disabled' | null } | null): unknown[] {
    this.assertOpen()
    const filter = req?.status_filter ?? null
    if (filter !== null && filter !== 'enabled' && filter !== 'disabled') throw deserializationError('status_filter must be enabled or disabled')
    return [...this.apps.values()].filter(a => filter === null || a.status.type === filter).map(a => this.appInfoOf(a))
  }

  appInfo (appId: string): unknown {
    const app = this.apps.get(appId)
    return app === undefined ? null : this.appInfoOf(app)
  }

  private appInfoOf (app: InstalledApp): unknown {
    const cellInfo: Record<string, unknown[]> = {}
    for (const r of app.def.roles) {
      cellInfo[r.name] = [{ type: 'provisioned', value: { cell_id: [r.dna_hash, app.agent], dna_modifiers: { network_seed: r.network_seed, properties: r.properties }, name: r.dna_name } }]
    }
    return { installed_app_id: app.id, cell_info: cellInfo, status: app.status, agent_pub_key: app.agent, manifest: app.def.manifest, installed_at: app.installedAt }
  }

  /**
   * Listen for App API clients of one app (or any). `allowed_origins` as for the admin
   * interface: `*` admits every non-browser client and no browser; browser origins must be listed.
   * A port in use is a `ListenError`.
   */
  async attachAppInterface (req: { port?: number | null, allowed_origins: string, installed_app_id?: string | null }): Promise<{ port: number }> {
    this.assertOpen()
    if (!isPlainObject(req)) throw deserializationError('attach_app_interface takes a map')
    const port = req.port ?? 0
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw deserializationError('port must be an integer 0..65535')
    if (typeof req.allowed_origins !== 'string') throw deserializationError('allowed_origins must be "*" or a comma-separated list of origins')
    try {
      parseAllowedOrigins(req.allowed_origins)
    } catch (err) {
      throw deserializationError(err instanceof Error ? err.message : String(err))
    }
    const appId = req.installed_app_id ?? null
    if (appId !== null) this.app(appId)
    const server = await ConductorWsServer.listen({
      kind: 'app',
      port,
      host: this.init.host ?? '127.0.0.1',
      allowedOrigins: req.allowed_origins,
      installedAppId: appId,
      maxMessageBytes: this.init.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      conductor: this,
      logger: this.log
    })
    this.servers.push(server)
    this.appInterfaces.set(server.port, server)
    this.store.putAppInterface(server.port, req.allowed_origins, appId)
    return { port: server.port }
  }

  listAppInterfaces (): Array<{ port: number, allowed_origins: string, installed_app_id?: string }> {
    return [...this.appInterfaces.values()].map(s => ({ port: s.port, allowed_origins: s.allowedOrigins, ...(s.installedAppId !== null ? { installed_app_id: s.installedAppId } : {}) }))
  }

  /** Re-attach the app interfaces of an earlier run on the same ports, as the real conductor does. */
  async restoreAppInterfaces (): Promise<Array<{ port: number }>> {
    const out: Array<{ port: number }> = []
    for (const row of this.store.listAppInterfaces()) {
      if (this.appInterfaces.has(row.port)) continue
      try {
        out.push(await this.attachAppInterface({ port: row.port, allowed_origins: row.allowed_origins, installed_app_id: row.installed_app_id }))
      } catch (err) {
        this.log.warn({ port: row.port, err: err instanceof Error ? err.message : String(err) }, 'could not re-attach app interface; dropping it')
        this.store.deleteAppInterface(row.port)
      }
    }
    return out
  }

  /**
   * Listen for Admin API clients. `allowedOrigins` is `*` (every non-browser client) or a
   * comma-separated list of origins (see `origins.ts`); a browser origin must be listed.
   * @default allowedOrigins '*'
   */
  async startAdminInterface (opts: { port?: number, allowedOrigins?: string } = {}): Promise<{ port: number }> {
    this.assertOpen()
    try {
      parseAllowedOrigins(opts.allowedOrigins ?? '*')
    } catch (err) {
      throw new InvalidInputError(err instanceof Error ? err.message : String(err), { field: 'allowedOrigins' })
    }
    const server = await ConductorWsServer.listen({
      kind: 'admin',
      port: opts.port ?? 0,
      host: this.init.host ?? '127.0.0.1',
      allowedOrigins: opts.allowedOrigins ?? '*',
      installedAppId: null,
      maxMessageBytes: this.init.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      conductor: this,
      logger: this.log
    })
    this.servers.push(server)
    return { port: server.port }
  }

  issueAppAuthenticationToken (req: { installed_app_id: string, expiry_seconds?: number | null, single_use?: boolean | null }): { token: number[], expires_at: number | null } {
    this.assertOpen()
    if (!isPlainObject(req)) throw deserializationError('issue_app_authentication_token takes a map')
    this.app(req.installed_app_id)
    const expiry = req.expiry_seconds ?? DEFAULT_TOKEN_EXPIRY_SECONDS
    if (typeof expiry !== 'number' || !Number.isInteger(expiry) || expiry < 0) throw deserializationError('expiry_seconds must be a non-negative integer (0 = never)')
    if (req.single_use != null && typeof req.single_use !== 'boolean') throw deserializationError('single_use must be a boolean')
    const token = randomBytes(64)
    const expiresAt = expiry === 0 ? null : Date.now() + expiry * 1000
    this.tokens.set(token.toString('hex'), { appId: req.installed_app_id, expiresAt, singleUse: req.single_use ?? true })
    return { token: [...token], expires_at: expiresAt === null ? null : expiresAt * 1000 }
  }

  /** Check an app authentication token; returns the app it is for or throws. */
  authenticateToken (token: unknown, interfaceAppId: string | null): string {
    const bytes = Array.isArray(token) && token.length === 64 && token.every(b => Number.isInteger(b) && b >= 0 && b < 256)
      ? Buffer.from(token as number[])
      : token instanceof Uint8Array && token.length === 64 ? Buffer.from(token) : undefined
    if (bytes === undefined) throw unauthorized('malformed app authentication token')
    const key = bytes.toString('hex')
    const info = this.tokens.get(key)
    if (info === undefined) throw unauthorized('unknown or already used app authentication token')
    if (info.expiresAt !== null && Date.now() > info.expiresAt) {
      this.tokens.delete(key)
      throw unauthorized('app authentication token expired')
    }
    if (interfaceAppId !== null && info.appId !== interfaceAppId) throw unauthorized('token is for another app than this interface is bound to')
    if (info.singleUse) this.tokens.delete(key)
    if (!this.apps.has(info.appId)) throw unauthorized('the app of this token is no longer installed')
    return info.appId
  }

  async grantZomeCallCapability (req: { cell_id: CellId, cap_grant: ZomeCallCapGrant }): Promise<HoloHash> {
    this.assertOpen()
    if (!isPlainObject(req)) throw deserializationError('grant_zome_call_capability takes a map')
    const cell = this.cellOrThrow(req.cell_id)
    try {
      checkCapGrant(req.cap_grant)
    } catch (err) {
      throw deserializationError(err instanceof Error ? err.message : String(err))
    }
    return cell.grantCapability(req.cap_grant)
  }

  revokeZomeCallCapability (req: { cell_id: CellId, action_hash: HoloHash }): null {
    const cell = this.cellOrThrow(req?.cell_id)
    const hash = requestHash(req.action_hash, 'Action', 'action_hash')
    if (!this.store.revokeCapGrant(cell.id[0], hash, Date.now() * 1000)) throw internalError('no live capability grant with that action hash')
    return null
  }

  listCapabilityGrants (req: { installed_app_id: string, include_revoked: boolean }): unknown[] {
    const app = this.app(req?.installed_app_id)
    return app.def.roles.map(r => [[r.dna_hash, app.agent], this.store.listCapGrants(r.dna_hash, app.agent, req.include_revoked === true).map(g => ({
      cap_grant: { tag: g.tag, access: g.access === 'unrestricted' ? { type: 'unrestricted' } : g.access === 'transferable' ? { type: 'transferable', value: { secret: g.secret } } : { type: 'assigned', value: { secret: g.secret, assignees: g.assignees === null ? [] : decode(g.assignees) } }, functions: decode(g.functions) },
      action_hash: g.action_hash,
      created_at: g.created_at,
      ...(g.revoked_at !== null ? { revoked_at: g.revoked_at } : {})
    }))])
  }

  private cellOrThrow (cellId: unknown): Cell {
    if (!Array.isArray(cellId) || cellId.length !== 2) throw deserializationError('cell_id must be [DnaHash, AgentPubKey]')
    const dna = requestHash(cellId[0], 'Dna', 'cell_id[0]')
    const agent = requestHash(cellId[1], 'Agent', 'cell_id[1]')
    const cell = this.cells.get(cellKey(dna, agent))
    if (cell === undefined) throw internalError(`CellMissing: ${encodeHash(dna)} / ${encodeHash(agent)}`)
    return cell
  }

  dumpFullState (req: { cell_id: CellId, dht_ops_cursor?: number | null }): unknown {
    const cell = this.cellOrThrow(req?.cell_id)
    const cursor = req.dht_ops_cursor ?? 0
    if (!Number.isInteger(cursor) || cursor < 0) throw deserializationError('dht_ops_cursor must be a non-negative integer')
    return cell.dumpFullState(cursor)
  }

  dumpState (req: { cell_id: CellId }): string {
    const state = this.cellOrThrow(req?.cell_id).dumpFullState() as { source_chain_dump: unknown }
    return JSON.stringify([{ source_chain_dump: state.source_chain_dump }, ''], (_k, v: unknown) => v instanceof Uint8Array ? encodeHash(v as HoloHash) : v)
  }

  agentInfo (_req?: { dna_hashes?: HoloHash[] | null } | null): string[] {
    return this.network?.peerInfo() ?? []
  }

  listDnas (): HoloHash[] {
    return this.store.listDnaHashes()
  }

  listCellIds (): CellId[] {
    return [...this.cells.values()].map(c => c.id)
  }

  getDnaDefinition (req: unknown): unknown {
    const hash = requestHash(Array.isArray(req) ? req[0] : req, 'Dna', 'dna_hash')
    const bytes = this.store.getDnaDef(hash)
    if (bytes === undefined) throw internalError('DnaMissing')
    return decodeDnaDef(bytes)
  }

  // -- zome calls --------------------------------------------------------------------------

  /**
   * Authorize and run a signed zome call, as the conductor does: signature over SHA-512 of the
   * bytes by `provenance`, then nonce and expiry, then the cap grant. Returns msgpack of the result.
   */
  async callZomeSigned (appId: string | null, req: unknown): Promise<Uint8Array> {
    this.assertOpen()
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
    if (req.signature.length !== 64 || !verifySignature(prov.subarray(3, 35), digest, req.signature)) {
      throw authenticationFailed(`signature does not verify for provenance ${encodeHash(prov)}`)
    }
    const nowMs = Date.now()
    const expMs = Number(expiresAt) / 1000
    if (expMs <= nowMs) throw unauthorized('NonceExpired: the zome call has expired')
    if (expMs > nowMs + NONCE_MAX_FUTURE_MS) throw unauthorized('NonceTooFarInFuture: expires_at is too far in the future')
    if (!this.store.useNonce(prov, nonce, Math.ceil(expMs))) throw unauthorized('NonceAlreadyUsed: this nonce was seen before')
    if (++this.nonceCalls % 1000 === 0) this.store.pruneNonces(nowMs)
    const cell = this.cellOrThrow(cellId)
    if (appId !== null) {
      const app = this.apps.get(appId)
      if (app === undefined || !hashEquals(app.agent, cell.agentPubKey) || !app.def.roles.some(r => hashEquals(r.dna_hash, cell.id[0]))) {
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
    for (const g of this.store.capGrantsFor(cell.id[0], cell.agentPubKey, secret)) {
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

  // -- signals -----------------------------------------------------------------------------

  onAppSignal (appId: string, fn: AppSignalListener): () => void {
    const entry = { appId, fn }
    this.signalListeners.add(entry)
    return () => { this.signalListeners.delete(entry) }
  }

  private emitSignal (cellId: CellId, zomeName: string, payload: unknown): void {
    const appIds = new Set<string>()
    for (const app of this.apps.values()) {
      if (hashEquals(app.agent, cellId[1]) && app.def.roles.some(r => hashEquals(r.dna_hash, cellId[0]))) appIds.add(app.id)
    }
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
    await Promise.allSettled(this.servers.map(async s => { await s.close() }))
    this.servers.length = 0
    this.appInterfaces.clear()
    this.signalListeners.clear()
    this.authoredListeners.clear()
    this.cells.clear()
    this.spaces.clear()
    this.loader.dispose()
    if (this.ownsRuntime) this.sandbox.dispose()
    this.store.dispose()
  }

  async [Symbol.asyncDispose] (): Promise<void> {
    await this.stop()
  }
}
