/**
 * A flexnode: wires the keystore, the embedded conductor, the flexstack app and the registry
 * service together. This is the one place components are built.
 *
 * ```ts
 * const node = await FlexNode.start({ dataDir: '/tmp/n1', network: 'local' })
 * node.info  // { agent_pub_key, network, admin_port, app_port, installed_app_id, data_dir }
 * await node.stop()
 * ```
 */
import { mkdir, open, readdir, readFile, rm, stat, writeFile, rename } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { EmbeddedConductor } from './conductor/conductor.ts'
import { InProcessAppClient } from './conductor/in-process-client.ts'
import { INSTALLED_APP_ID, LOCK_FILE, RUNTIME_FILE, DEFAULT_HEARTBEAT_INTERVAL_SECONDS, type NetworkName } from './constants.ts'
import { AbortError, FlexnodeError, InvalidInputError, errorMessage } from './errors.ts'
import { decodeHash, encodeHash } from './holo/hash.ts'
import { decode, isPlainObject } from './conductor/codec.ts'
import { KEYSTORE_FILE, Keystore } from './identity/keystore.ts'
import { DB_FILE } from './conductor/constants.ts'
import { createLogger, type ComponentLogger } from './logger.ts'
import { createLoadSampler, probeMachine, type LoadSample } from './probe/probe.ts'
import { registryService, type RegistryService } from './registry/registry-service.ts'
import { createMeshNode } from './mesh/libp2p-node.ts'
import { DhtNetwork } from './mesh/dht-network.ts'
import type { MeshNode } from './mesh/types.ts'
import { createInferenceEngine } from './inference/engine.ts'
import type { InferenceEngine } from './inference/types.ts'
import { createHttpServer, type HttpServer } from './http/server.ts'
import { PeerInference, startInferenceProvider, type ProviderPolicy } from './inference/peer.ts'
import { sharedPolicies } from './inference/shared-policies.ts'
import { createInferenceRouter } from './inference/router.ts'
import { DEFAULT_MOE_POLICY, parseMoePolicy, type MoePolicy } from '../../scheduler/index.ts'
import { parse as parseYaml } from 'yaml'
import type { NodeCapability } from '../../zomes-ts/agent_registry/types.ts'
import { ensureDemoModel } from './inference/gguf/generate.ts'
import { pidAlive } from './process.ts'

const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const DEFAULT_HAPP = join(PACKAGE_ROOT, 'dnas', 'happ.yaml')
const NETWORKS_FILE = join(PACKAGE_ROOT, 'dnas', 'networks.json')

export interface FlexNodeInit {
  dataDir: string
  /** @default 'local' */
  network?: NetworkName
  /** @default 0 (a free port) */
  adminPort?: number
  /** @default 0 (a free port) */
  appPort?: number
  /** @default '127.0.0.1' */
  host?: string
  /** browser origins the Admin API admits (every non-browser client is admitted). @default none */
  adminAllowedOrigins?: string[]
  /** browser origins the App API admits (every non-browser client is admitted). @default none */
  appAllowedOrigins?: string[]
  passphrase?: string
  agentName?: string
  /** @default 10 */
  heartbeatIntervalSeconds?: number
  region?: string
  bandwidthMbps?: number
  /** the hApp to install on first start. @default dnas/happ.yaml */
  happPath?: string
  logger?: ComponentLogger
  /**
   * When the data dir has a keystore but its database is missing or empty, start a new source
   * chain under a new agent key (the old keystore is kept as `keystore.<time>.json.bak`). Without
   * it such a start is refused (`DatabaseMissingError`). No effect on a data dir with a database.
   * @default false
   */
  newChain?: boolean
  /** scrypt cost for a new encrypted keystore (tests lower it). */
  scryptN?: number
  /** libp2p listen multiaddrs. @default ['/ip4/0.0.0.0/tcp/0'] */
  listen?: string[]
  /** peers to dial at start. @default the network profile's bootstrap list (dnas/networks.json) */
  bootstrap?: string[]
  /** discover peers by mDNS. @default true on `local` when no bootstrap peers are given */
  mdns?: boolean
  /** IPs exempt from gossipsub's IP-colocation penalty (tests: many nodes on loopback). @default [] */
  gossipColocationWhitelist?: string[]
  /** ms between anti-entropy rounds. @default 5000 */
  syncIntervalMs?: number
  /** ms between republish rounds. @default 15000 */
  republishIntervalMs?: number
  /** reconcile with every newly connected peer at once. @default true */
  syncOnConnect?: boolean
  /** more directories of `.gguf` models besides `<data-dir>/models` */
  modelsDirs?: string[]
  /** false forces CPU inference. @default 'auto' */
  gpu?: boolean | 'auto'
  /** threads per model. @default half the cores */
  threads?: number
  /** waiting requests per model before BusyError. @default 16 */
  maxQueue?: number
  /** concurrent requests per model. @default 2 */
  sequences?: number
  /**
   * generate the random-weight demo model (marked `flexnode.demo`) into an empty models dir, so
   * inference works out of the box. @default true (false with --no-demo-model)
   */
  generateDefaultModel?: boolean
  /** load models that fit in half the free memory at start. @default true */
  preloadModels?: boolean
  /** OpenAI-compatible HTTP API port; 0 picks a free port. @default 0 */
  httpPort?: number
  /** address the HTTP API binds to. @default '127.0.0.1' */
  httpHost?: string
  /** host names the HTTP API answers to besides loopback names and its bound address. @default [] */
  httpAllowedHosts?: string[]
  /** who may use this node's models over the mesh. @default every peer of the mesh, 120 requests/min each */
  inferencePolicy?: ProviderPolicy
  /** a local MOE policy file (YAML or JSON, the inference_policy format), overriding policy_store's */
  moePolicyFile?: string
  /**
   * Aborts start-up (SIGTERM before READY): `start` stops waiting for the step in progress, stops
   * what already started, disposes what that step makes if it finishes later, and rejects with
   * `AbortError`. No effect once started: use `stop()`.
   */
  signal?: AbortSignal
  /**
   * agent keys (uhCAk…) whose policy_store publications the mesh applies: the policy_store DNA
   * property `policy_admins`, so a different set is a different mesh (DNA hash). Sorted and
   * deduplicated before install. @default none: shared policies are ignored, local ones apply
   */
  policyAdmins?: string[]
}

export interface ReadyInfo {
  agent_pub_key: string
  network: NetworkName
  admin_port: number
  app_port: number
  installed_app_id: string
  data_dir: string
  peer_id: string
  multiaddrs: string[]
  http_port: number
}

export class DataDirInUseError extends FlexnodeError {
  static override readonly name = 'DataDirInUseError'
  override name = 'DataDirInUseError'
  readonly dataDir: string
  readonly pid: number

  constructor (dataDir: string, pid: number) {
    super(`data dir ${dataDir} is in use by a running flexnode (pid ${pid})`)
    this.dataDir = dataDir
    this.pid = pid
  }
}

export class NetworkMismatchError extends FlexnodeError {
  static override readonly name = 'NetworkMismatchError'
  override name = 'NetworkMismatchError'

  constructor (dataDir: string, installed: string, requested: string) {
    super(`data dir ${dataDir} belongs to the network with seed ${installed}; use another --data-dir for ${requested}`)
  }
}

/** The data dir's policy_store was installed with other policy admins: a different DNA, a different mesh. */
export class PolicyAdminsMismatchError extends FlexnodeError {
  static override readonly name = 'PolicyAdminsMismatchError'
  override name = 'PolicyAdminsMismatchError'
  readonly installed: string[]
  readonly requested: string[]

  constructor (dataDir: string, installed: string[], requested: string[]) {
    const list = (a: string[]): string => a.length === 0 ? 'none' : a.join(', ')
    super(`data dir ${dataDir} was installed with policy admins [${list(installed)}], but this start asks for [${list(requested)}]; ` +
      'the policy admins are part of the policy_store DNA, so another set is another mesh: start with the same --policy-admin flags, or use another --data-dir')
    this.installed = installed
    this.requested = requested
  }
}

/** `--policy-admin` keys, validated, sorted and deduplicated (the order of flags must not change the DNA). */
export function normalizePolicyAdmins (keys: readonly string[] | undefined): string[] {
  const out = new Set<string>()
  for (const key of keys ?? []) {
    try {
      decodeHash(key, 'Agent')
    } catch {
      throw new InvalidInputError(`policy admin ${JSON.stringify(key)} is not an agent key (uhCAk…)`, { field: 'policyAdmins' })
    }
    out.add(key)
  }
  return [...out].sort()
}

/** The policy admins an installed app's policy_store cell was created with. */
function installedPolicyAdmins (app: { cell_info: Record<string, Array<{ value: { dna_modifiers: { properties?: unknown } } }>> }): string[] {
  const raw = app.cell_info.policy_store?.[0]?.value.dna_modifiers.properties
  const props = raw instanceof Uint8Array ? decode(raw) : raw
  const list = isPlainObject(props) ? props.policy_admins : undefined
  return Array.isArray(list) ? list.filter((a): a is string => typeof a === 'string').sort() : []
}

/**
 * The data dir has a keystore but no database (missing or empty): the agent's source chain is
 * not here. Running genesis again would make a second chain under the same key, a fork.
 */
export class DatabaseMissingError extends FlexnodeError {
  static override readonly name = 'DatabaseMissingError'
  override name = 'DatabaseMissingError'
  readonly dataDir: string
  readonly path: string

  constructor (dataDir: string, path: string, state: 'missing' | 'empty') {
    super(`the data dir ${dataDir} has a keystore but its database ${path} is ${state}: this agent's source chain is not here. ` +
      'Restore the database from a backup, or start with --new-chain to begin a new source chain under a new agent key ' +
      '(a second chain under the old key would be a fork, which the mesh warrants)')
    this.dataDir = dataDir
    this.path = path
  }
}

async function sizeOf (path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/**
 * Refuse a keystore without its database, or with `newChain`, set the old keystore (and any
 * leftover WAL) aside so a new agent key and a new chain start. Nothing is deleted that holds data.
 */
async function guardLostDatabase (dataDir: string, newChain: boolean, log: ComponentLogger): Promise<void> {
  const keystore = join(dataDir, KEYSTORE_FILE)
  const db = join(dataDir, DB_FILE)
  if (await sizeOf(keystore) === undefined) return
  const size = await sizeOf(db)
  if (size !== undefined && size > 0) return
  if (!newChain) throw new DatabaseMissingError(dataDir, db, size === undefined ? 'missing' : 'empty')
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  const kept = join(dataDir, `keystore.${stamp}.json.bak`)
  await rename(keystore, kept)
  if ((await sizeOf(`${db}-wal`) ?? 0) > 0) await rename(`${db}-wal`, `${db}-wal.${stamp}.bak`)
  await rm(`${db}-wal`, { force: true })
  await rm(`${db}-shm`, { force: true })
  await rm(db, { force: true })
  log.warn({ kept }, '--new-chain: the database was missing; starting a new source chain under a new agent key (the old keystore is kept)')
}

export interface NetworkProfile { network_seed: string, bootstrap: string[] }

export async function networkProfile (network: NetworkName): Promise<NetworkProfile> {
  const profiles = JSON.parse(await readFile(NETWORKS_FILE, 'utf8')) as Record<string, { network_seed?: unknown, bootstrap?: unknown }>
  const p = profiles[network]
  const seed = p?.network_seed
  if (typeof seed !== 'string' || seed.length === 0) throw new FlexnodeError(`dnas/networks.json has no network_seed for ${network}`)
  const bootstrap = Array.isArray(p?.bootstrap) ? p.bootstrap.filter((a): a is string => typeof a === 'string') : []
  return { network_seed: seed, bootstrap }
}


/** Take the data dir's lock file, replacing a stale one left by a dead process. */
async function lockDataDir (dataDir: string): Promise<() => Promise<void>> {
  const path = join(dataDir, LOCK_FILE)
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o600)
      await fh.writeFile(String(process.pid))
      await fh.close()
      return async () => { await rm(path, { force: true }) }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim())
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) throw new DataDirInUseError(dataDir, pid)
      await rm(path, { force: true })
    }
  }
  throw new DataDirInUseError(dataDir, -1)
}

export class PolicyFileError extends FlexnodeError {
  static override readonly name = 'PolicyFileError'
  override name = 'PolicyFileError'
}

/** Read a MOE policy file (YAML or JSON; `{inference_policy: …}` or the bare policy) and validate it. */
async function loadPolicyFile (path: string): Promise<MoePolicy> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new PolicyFileError(`cannot read the MOE policy ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`)
  }
  try {
    return parseMoePolicy(parseYaml(text))
  } catch (err) {
    throw new PolicyFileError(`${path}: ${errorMessage(err)}`, { cause: err })
  }
}

/** A policy admin publishes the built-in ripple-moe policy to policy_store when the mesh has none yet. */
async function publishDefaultPolicy (client: InProcessAppClient, log: ComponentLogger): Promise<void> {
  try {
    const existing = await client.callZome({ role_name: 'policy_store', zome_name: 'policies', fn_name: 'get_policy', payload: DEFAULT_MOE_POLICY.name })
    if (existing === null) await client.callZome({ role_name: 'policy_store', zome_name: 'policies', fn_name: 'set_policy', payload: { name: DEFAULT_MOE_POLICY.name, kind: 'moe', document: DEFAULT_MOE_POLICY } })
  } catch (err) {
    log.warn({ err: errorMessage(err) }, 'could not publish the default MOE policy')
  }
}

export class FlexNode {
  readonly info: ReadyInfo
  readonly conductor: EmbeddedConductor
  readonly keystore: Keystore
  readonly client: InProcessAppClient
  readonly registry: RegistryService
  readonly mesh: MeshNode
  readonly dht: DhtNetwork
  readonly inference: InferenceEngine
  readonly http: HttpServer
  private readonly log: ComponentLogger
  private readonly unlock: () => Promise<void>
  private stopping: Promise<void> | undefined

  private constructor (parts: { info: ReadyInfo, conductor: EmbeddedConductor, keystore: Keystore, client: InProcessAppClient, registry: RegistryService, mesh: MeshNode, dht: DhtNetwork, inference: InferenceEngine, http: HttpServer, log: ComponentLogger, unlock: () => Promise<void> }) {
    this.info = parts.info
    this.inference = parts.inference
    this.http = parts.http
    this.mesh = parts.mesh
    this.dht = parts.dht
    this.conductor = parts.conductor
    this.keystore = parts.keystore
    this.client = parts.client
    this.registry = parts.registry
    this.log = parts.log
    this.unlock = parts.unlock
  }

  static async start (init: FlexNodeInit): Promise<FlexNode> {
    const logger = init.logger ?? createLogger()
    const log = logger.forComponent('flexnode:node')
    const network = init.network ?? 'local'
    const dataDir = resolve(init.dataDir)
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    const signal = init.signal
    /**
     * One start-up step: its result, or AbortError as soon as `signal` aborts (the step may be
     * stuck: a slow disk, a model load). Whatever the step makes after that is disposed by `late`.
     */
    const step = async <T>(work: Promise<T>, late?: (made: T) => unknown): Promise<T> => {
      if (signal === undefined) return await work
      return await new Promise<T>((resolve, reject) => {
        const onAbort = (): void => {
          reject(new AbortError('start-up was aborted'))
          work.then(async made => { await late?.(made) }).catch((err: unknown) => { log.debug({ err: errorMessage(err) }, 'a start-up step failed after the abort') })
        }
        if (signal.aborted) { onAbort(); return }
        signal.addEventListener('abort', onAbort, { once: true })
        work.then(
          made => { signal.removeEventListener('abort', onAbort); resolve(made) },
          (err: unknown) => { signal.removeEventListener('abort', onAbort); reject(err) }
        )
      })
    }
    const unlock = await lockDataDir(dataDir)
    const cleanup: Array<() => Promise<void> | void> = [unlock]
    try {
      await step(guardLostDatabase(dataDir, init.newChain === true, log))
      const keystore = await step(Keystore.open({ dataDir, passphrase: init.passphrase, scryptN: init.scryptN }), (k) => { k.dispose() })
      cleanup.push(() => { keystore.dispose() })
      const conductor = await step(EmbeddedConductor.open({ dataDir, host: init.host }, { keystore, logger }), async (c) => { await c.stop() })
      cleanup.push(async () => { await conductor.stop() })
      const agent = keystore.primary.agentPubKey
      const profile = await networkProfile(network)
      const seed = profile.network_seed
      const policyAdmins = normalizePolicyAdmins(init.policyAdmins)
      const existing = conductor.listApps().find((a) => (a as { installed_app_id: string }).installed_app_id === INSTALLED_APP_ID) as { cell_info: Record<string, Array<{ value: { dna_modifiers: { network_seed: string, properties?: unknown } } }>> } | undefined
      if (existing === undefined) {
        log.info({ network, seed, policy_admins: policyAdmins }, 'first start: installing the flexstack app')
        // no admins: no property at all, so the default mesh keeps its DNA hash
        const rolesSettings = policyAdmins.length === 0 ? undefined : { policy_store: { type: 'provisioned' as const, value: { modifiers: { properties: { policy_admins: policyAdmins } } } } }
        await step(conductor.installApp({ source: { type: 'path', value: init.happPath ?? DEFAULT_HAPP }, agent_key: agent, installed_app_id: INSTALLED_APP_ID, network_seed: seed, roles_settings: rolesSettings }))
      } else {
        const installedSeed = Object.values(existing.cell_info)[0]?.[0]?.value.dna_modifiers.network_seed ?? ''
        if (installedSeed !== seed) throw new NetworkMismatchError(dataDir, installedSeed, network)
        const installedAdmins = installedPolicyAdmins(existing)
        if (installedAdmins.join('\n') !== policyAdmins.join('\n')) throw new PolicyAdminsMismatchError(dataDir, installedAdmins, policyAdmins)
      }
      await step(conductor.enableApp({ installed_app_id: INSTALLED_APP_ID }))
      // '*' admits every non-browser client and no web page; browser origins only when listed
      const admin = await conductor.startAdminInterface({ port: init.adminPort ?? 0, allowedOrigins: ['*', ...init.adminAllowedOrigins ?? []].join(',') })
      const app = await conductor.attachAppInterface({ port: init.appPort ?? 0, allowed_origins: ['*', ...init.appAllowedOrigins ?? []].join(','), installed_app_id: INSTALLED_APP_ID })
      const client = await InProcessAppClient.connect(conductor, INSTALLED_APP_ID)
      const bootstrap = init.bootstrap ?? profile.bootstrap
      const mesh = await createMeshNode({ network, seed: keystore.exportSeed(agent), listen: init.listen, bootstrap, mdns: init.mdns, gossipColocationWhitelist: init.gossipColocationWhitelist }, { logger })
      // stop() waits for a start in progress, so it goes on the list first
      cleanup.push(async () => { await mesh.stop() })
      await step(mesh.start())
      const dht = new DhtNetwork({ syncIntervalMs: init.syncIntervalMs, republishIntervalMs: init.republishIntervalMs, syncOnConnect: init.syncOnConnect }, { conductor, mesh, logger })
      await dht.start()
      cleanup.push(async () => { await dht.stop() })
      init.signal?.throwIfAborted()
      const modelsDir = join(dataDir, 'models')
      await mkdir(modelsDir, { recursive: true, mode: 0o700 })
      if (init.generateDefaultModel !== false && (await readdir(modelsDir)).filter(f => f.endsWith('.gguf')).length === 0) {
        const path = await step(ensureDemoModel(modelsDir, { signal }))
        log.info({ path }, 'generated the random-weight demo model (drop real .gguf files into the models dir; --no-demo-model skips it)')
      }
      const inference = await step(createInferenceEngine({ modelsDirs: [modelsDir, ...(init.modelsDirs ?? [])], gpu: init.gpu, threads: init.threads, maxQueue: init.maxQueue, sequences: init.sequences }, { logger }), async (e) => { await e.dispose() })
      cleanup.push(async () => { await inference.dispose() })
      if (init.preloadModels !== false) {
        // many or large models take long to load: a stop request must not wait for all of them
        const preloaded = await step(inference.preload({ signal }))
        log.info({ models: preloaded }, 'models loaded')
      }
      // mesh-wide policies count only when an admin named in the DNA published them
      const shared = sharedPolicies({ admins: policyAdmins }, { client, logger })
      await step(startInferenceProvider(init.inferencePolicy ?? {}, { engine: inference, mesh, logger, sharedPolicy: shared.access }))
      // every node, stale heartbeats included: routing only picks connected peers, and a live
      // connection is fresher than a heartbeat past the TTL; draining nodes are left out
      const capabilities = async (): Promise<NodeCapability[]> => await client.callZome({ role_name: 'agent_registry', zome_name: 'discovery', fn_name: 'query_peers', payload: { availability: ['online', 'busy', 'offline'] } }) as NodeCapability[]
      const peers = new PeerInference({ mesh, capabilities, logger }, { region: init.region })
      if (shared.isAdmin(encodeHash(agent))) await step(publishDefaultPolicy(client, log))
      const localPolicies: Record<string, MoePolicy> = {}
      if (init.moePolicyFile !== undefined) {
        const p = await loadPolicyFile(init.moePolicyFile)
        localPolicies[p.name] = p
        log.info({ policy: p.name, file: init.moePolicyFile }, 'local MOE policy override')
      }
      // this node's live load: one sampler shared by the heartbeat and the router, sampled at most once a second
      const sampler = createLoadSampler()
      let lastLoad: { at: number, sample: Promise<LoadSample> } | undefined
      const liveLoad = async (): Promise<LoadSample> => {
        if (lastLoad === undefined || Date.now() - lastLoad.at >= 1000) lastLoad = { at: Date.now(), sample: sampler.sample() }
        return await lastLoad.sample
      }
      const router = createInferenceRouter({ region: init.region, policies: localPolicies }, { engine: inference, peers, capabilities, selfNodeId: encodeHash(agent), sharedPolicy: shared.moe, selfLoad: liveLoad, logger })
      const http = createHttpServer({ host: init.httpHost, port: init.httpPort ?? 0, allowedHosts: init.httpAllowedHosts }, { engine: inference, logger, router: { ...router, remote: peers } })
      const { port: httpPort } = await step(http.start(), async () => { await http.stop() })
      cleanup.push(async () => { await http.stop() })
      const registry = registryService({
        agentName: init.agentName,
        heartbeatIntervalMs: (init.heartbeatIntervalSeconds ?? DEFAULT_HEARTBEAT_INTERVAL_SECONDS) * 1000,
        region: init.region,
        bandwidthMbps: init.bandwidthMbps
      })({
        client,
        logger,
        probe: { machine: async () => await probeMachine({ dataDir }), load: liveLoad },
        inference: () => {
          const loaded = inference.listModels().filter(m => m.loaded)
          return {
            models_loaded: loaded.map(m => m.id),
            max_batch_size: loaded.length > 0 ? (init.sequences ?? 2) : 0,
            tokens_per_second: loaded.reduce((t, m) => Math.max(t, m.tokens_per_second ?? 0), 0),
            queue_depth: loaded.reduce((q, m) => q + m.queue_depth, 0),
            in_flight: loaded.reduce((q, m) => q + m.in_flight, 0),
            demo_models: loaded.filter(m => m.demo === true).map(m => m.id)
          }
        }
      })
      cleanup.push(async () => { await registry.stop() })
      await step(registry.start())
      const info: ReadyInfo = {
        agent_pub_key: encodeHash(agent),
        network,
        admin_port: admin.port,
        app_port: app.port,
        installed_app_id: INSTALLED_APP_ID,
        data_dir: dataDir,
        peer_id: mesh.peerId,
        multiaddrs: mesh.multiaddrs(),
        http_port: httpPort
      }
      if (signal?.aborted === true) throw new AbortError('start-up was aborted')
      const runtime = join(dataDir, RUNTIME_FILE)
      await writeFile(`${runtime}.tmp`, JSON.stringify({ ...info, pid: process.pid, started_at: new Date().toISOString() }, null, 2), { mode: 0o600 })
      await rename(`${runtime}.tmp`, runtime)
      log.info(info, 'flexnode ready')
      return new FlexNode({ info, conductor, keystore, client, registry, mesh, dht, inference, http, log, unlock })
    } catch (err) {
      for (const fn of cleanup.reverse()) {
        try { await fn() } catch (e) { log.warn({ err: errorMessage(e) }, 'cleanup after a failed start failed') }
      }
      throw err
    }
  }

  /** Stop heartbeats, close interfaces and the database, release the data dir. Idempotent. */
  async stop (): Promise<void> {
    this.stopping ??= (async () => {
      await this.registry.stop()
      await this.http.stop()
      await this.inference.dispose()
      await this.dht.stop()
      await this.mesh.stop()
      await this.conductor.stop()
      this.keystore.dispose()
      await rm(join(this.info.data_dir, RUNTIME_FILE), { force: true })
      await this.unlock()
      this.log.info('flexnode stopped')
    })()
    return this.stopping
  }

  async [Symbol.asyncDispose] (): Promise<void> {
    await this.stop()
  }
}
