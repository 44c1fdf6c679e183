/**
 * The installed apps of a conductor: installing a hApp bundle (its DNAs loaded and checked, then
 * genesis, nothing written if a step fails), enabling, disabling and uninstalling it, and the
 * `AppInfo` the APIs answer.
 *
 * ```ts
 * const apps = new AppRegistry({ store, keystore, cells, logger })
 * await apps.load()
 * await apps.installApp({ source: { type: 'path', value: 'dnas/happ.yaml' }, installed_app_id: 'flexstack' })
 * ```
 */
import { readFile } from 'node:fs/promises'
import { bytesEqual } from '../../../zomes-ts/hdk/index.ts'
import { encodeHash, hashEquals, type HoloHash } from '../holo/hash.ts'
import type { Keystore } from '../identity/keystore.ts'
import type { ComponentLogger } from '../logger.ts'
import type { AppStatus, InstallAppRequest } from './api/types.ts'
import { readHappBundle, type AppManifest, type HappBundle, type ZomeBundler } from './bundle.ts'
import type { Cell, CellId } from './cell.ts'
import type { CellRegistry } from './cells.ts'
import { decode, encode, isPlainObject } from './codec.ts'
import { decodeDnaDef, encodeDnaDef, resolveDna, type LoadedDna } from './dna.ts'
import { ConductorApiError, deserializationError, internalError, requestHash } from './errors.ts'
import type { ConductorStore } from './store.ts'

export interface AppRegistryComponents {
  store: ConductorStore
  keystore: Pick<Keystore, 'generate' | 'has'>
  cells: Pick<CellRegistry, 'loadDna' | 'newCell' | 'start' | 'stop'>
  /** reads happ.yaml sources (bundled zomes kept per conductor) */
  bundler: Pick<ZomeBundler, 'loadHappYaml'>
  logger: ComponentLogger
}

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

export interface InstalledApp {
  id: string
  agent: HoloHash
  def: AppDef
  status: AppStatus
  installedAt: number
}

const APP_ID_RE = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$/

export class AppRegistry {
  private readonly c: AppRegistryComponents
  private readonly apps = new Map<string, InstalledApp>()

  constructor (components: AppRegistryComponents) {
    this.c = components
  }

  /** Load the installed apps from the store and start the cells of the enabled ones. */
  async load (): Promise<void> {
    for (const row of this.c.store.listApps()) {
      const app: InstalledApp = { id: row.id, agent: row.agent, def: decode(row.def) as AppDef, status: decode(row.disabled_reason ?? encode({ type: 'enabled' })) as AppStatus, installedAt: row.installed_at }
      this.apps.set(app.id, app)
      if (app.status.type === 'enabled') await this.startCells(app)
    }
  }

  private async startCells (app: InstalledApp): Promise<void> {
    await this.c.cells.start(app.def.roles.map(r => r.dna_hash), app.agent)
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
      if (path.endsWith('.yaml') || path.endsWith('.yml')) return this.bundle(async () => await this.c.bundler.loadHappYaml(path))
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
    if (!isPlainObject(req)) throw deserializationError('install_app takes a map')
    const happ = await this.readSource(req.source)
    const appId = req.installed_app_id ?? happ.manifest.name
    if (typeof appId !== 'string' || !APP_ID_RE.test(appId)) throw deserializationError('installed_app_id must be 1-128 characters of letters, digits, _ . : -')
    if (this.apps.has(appId)) throw internalError(`AppAlreadyInstalled: ${appId}`)
    if (req.network_seed != null && (typeof req.network_seed !== 'string' || req.network_seed.length > 256)) throw deserializationError('network_seed must be a string of at most 256 characters')
    let agent: HoloHash
    if (req.agent_key == null) {
      agent = (await this.c.keystore.generate()).agentPubKey
    } else {
      agent = requestHash(req.agent_key, 'Agent', 'agent_key')
      if (!this.c.keystore.has(agent)) throw internalError(`agent_key ${encodeHash(agent)} is not held by this conductor's keystore`)
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
      const known = this.c.store.getDnaDef(r.role.dna_hash)
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
        dna = await this.c.cells.loadDna(r.role.dna_hash, () => ({ def: decodeDnaDef(r.defBytes), code: (wasm) => r.code.get(encodeHash(wasm)) }))
      } catch (err) {
        throw new ConductorApiError('dna_read_error', `role ${r.role.name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
      }
      cells.push(this.c.cells.newCell(dna, agent))
    }
    this.c.store.transaction(() => {
      for (const r of resolved) {
        for (const [hashStr, bytes] of r.code) this.c.store.putZomeCode(Buffer.from(hashStr.slice(1), 'base64url'), bytes)
        this.c.store.putDnaDef(r.role.dna_hash, r.defBytes)
      }
    })
    try {
      this.c.store.transaction(() => {
        for (const [i, cell] of cells.entries()) cell.genesis(resolved[i]?.membrane ?? null)
      })
    } catch (err) {
      throw internalError(`genesis failed: ${err instanceof Error ? err.message : String(err)}`, err)
    }
    const app: InstalledApp = { id: appId, agent, def: { manifest: happ.manifest, roles }, status: { type: 'disabled', value: { type: 'never_started' } }, installedAt: Date.now() * 1000 }
    this.persistApp(app)
    this.apps.set(appId, app)
    this.c.logger.info({ app: appId, agent: encodeHash(agent), roles: roles.map(r => r.name) }, 'app installed')
    return this.appInfoOf(app)
  }

  private persistApp (app: InstalledApp): void {
    this.c.store.putApp({ id: app.id, agent: app.agent, def: encode(app.def), status: app.status.type, disabled_reason: encode(app.status), installed_at: app.installedAt })
  }

  /** The installed app with this id, or the API's error. */
  require (id: unknown): InstalledApp {
    if (typeof id !== 'string') throw deserializationError('installed_app_id must be a string')
    const app = this.apps.get(id)
    if (app === undefined) throw internalError(`AppNotInstalled: ${id}`)
    return app
  }

  async enableApp (req: { installed_app_id: string }): Promise<unknown> {
    const app = this.require(req?.installed_app_id)
    await this.startCells(app)
    app.status = { type: 'enabled' }
    this.persistApp(app)
    return this.appInfoOf(app)
  }

  async disableApp (req: { installed_app_id: string }): Promise<null> {
    const app = this.require(req?.installed_app_id)
    app.status = { type: 'disabled', value: { type: 'user' } }
    this.stopCells(app)
    this.persistApp(app)
    return null
  }

  async uninstallApp (req: { installed_app_id: string, force?: boolean }): Promise<null> {
    const app = this.require(req?.installed_app_id)
    app.status = { type: 'disabled', value: { type: 'user' } }
    this.stopCells(app)
    this.apps.delete(app.id)
    this.c.store.deleteApp(app.id)
    return null
  }

  listApps (req?: { status_filter?: 'enabled' | 'disabled' | null } | null): unknown[] {
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

  private stopCells (app: InstalledApp): void {
    for (const role of app.def.roles) {
      const stillUsed = [...this.apps.values()].some(a => a !== app && a.status.type === 'enabled' && hashEquals(a.agent, app.agent) && a.def.roles.some(r => hashEquals(r.dna_hash, role.dna_hash)))
      if (!stillUsed) this.c.cells.stop(role.dna_hash, app.agent)
    }
  }

  has (id: string): boolean {
    return this.apps.has(id)
  }

  get (id: string): InstalledApp | undefined {
    return this.apps.get(id)
  }

  /** The installed apps that hold this cell (to route its signals). */
  appsOfCell (cellId: CellId): string[] {
    return [...this.apps.values()].filter(app => hashEquals(app.agent, cellId[1]) && app.def.roles.some(r => hashEquals(r.dna_hash, cellId[0]))).map(app => app.id)
  }

  /** Whether this cell belongs to the app. */
  holds (app: InstalledApp, cell: Cell): boolean {
    return hashEquals(app.agent, cell.agentPubKey) && app.def.roles.some(r => hashEquals(r.dna_hash, cell.id[0]))
  }

  /** The cell ids of each role of the app. */
  cellIds (app: InstalledApp): CellId[] {
    return app.def.roles.map(r => [r.dna_hash, app.agent])
  }
}
