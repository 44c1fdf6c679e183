/**
 * The composition root: a node is an ordered list of services, each built `x(init)(components)`
 * from the components of the ones before it, started in order and stopped in reverse. Adding a
 * capability is one entry in `nodeServices` plus its own folder; nothing else wires components.
 *
 * ```ts
 * const node = await FlexNode.start({ dataDir: '/tmp/n1', network: 'local' })
 * node.info  // { agent_pub_key, network, admin_port, app_port, installed_app_id, data_dir, peer_id, … }
 * await node.stop()
 * ```
 */
import { mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { EmbeddedConductor } from './conductor/conductor.ts'
import { InProcessAppClient, type InProcessConductor } from './conductor/in-process-client.ts'
import { INSTALLED_APP_ID, DEFAULT_HEARTBEAT_INTERVAL_SECONDS, type NetworkName } from './constants.ts'
import { dataDirService, type DataDir } from './data-dir.ts'
import { encodeHash } from './holo/hash.ts'
import type { Keystore } from './identity/keystore.ts'
import { keystoreService, type KeystoreService } from './identity/keystore-service.ts'
import { createLogger, type ComponentLogger } from './logger.ts'
import { createLoadSampler, probeMachine, type LoadSample } from './probe/probe.ts'
import { registryService, type RegistryService } from './registry/registry-service.ts'
import { peerCapabilities } from './registry/peer-capabilities.ts'
import { createMeshNode, type Libp2pMeshNode } from './mesh/libp2p-node.ts'
import { dhtNetwork } from './conductor/network/dht-network.ts'
import type { DhtNetwork } from './conductor/network/types.ts'
import type { MeshNode } from './mesh/types.ts'
import { inferenceEngine, type InferenceService } from './inference/engine.ts'
import type { InferenceAudit, InferenceEngine } from './inference/types.ts'
import { httpServer, type HttpServer } from './http/server.ts'
import { API_TOKEN_FILE, ISSUED_TOKENS_FILE } from './http/tokens.ts'
import { modelAdminRoutes } from './http/routes/models-admin.ts'
import { openaiRoutes, type HttpRouter } from './http/routes/openai.ts'
import { PeerInference, startInferenceProvider, type ProviderPolicy } from './inference/peer.ts'
import { createInferenceRouter } from './inference/router.ts'
import type { MoePolicy } from '../../scheduler/index.ts'
import { AgentRegistryClient } from '../../zomes-ts/agent_registry/client.ts'
import { PolicyStoreClient } from '../../zomes-ts/policy_store/client.ts'
import { ensureDemoModel } from './inference/gguf/generate.ts'
import { ensureFlexstackApp, initializeCells, networkProfile, nodeRetention } from './flexstack-app.ts'
import { normalizePolicyAdmins } from './policy/admins.ts'
import { loadPolicyFile } from './policy/file.ts'
import { publishDefaultMoePolicy, sharedPolicies, type SharedPolicies } from './policy/shared.ts'
import { components, service, startServices, type RunningServices, type ServiceEntry } from './service.ts'
import { AbortError, errorMessage } from './errors.ts'
import { nodeBackupRoutes } from './audit/backup-routes.ts'
import { resources, type ResourcesService, type LeaseResources } from './resources/index.ts'
import type { NodeCapability } from '../../zomes-ts/agent_registry/types.ts'
import { resourceRoutes } from './resources/routes.ts'
import { memory, memoryDir, type MemoryInit, type MemoryService } from './memory/index.ts'
import { memoryRoutes } from './memory/routes.ts'
import { audit, type AuditInit, type AuditService } from './audit/index.ts'
import type { AuditEvent } from './audit/types.ts'
import { auditRoutes } from './audit/routes.ts'
import { nodePromptCache, type PromptCacheInit, type PromptCacheService } from './memory/prompt-cache.ts'
import { artifacts, type ArtifactService, type ArtifactsInit } from './artifacts/index.ts'
import { modelArtifacts, type ModelArtifacts } from './artifacts/models.ts'
import { artifactRoutes } from './artifacts/routes.ts'
import { mcpRoutes } from './mcp/routes.ts'
import { readModule } from './artifacts/read.ts'
import { dashboard, dashboardRoutes, moeLog } from './dashboard/index.ts'
import type { AnyOperation } from './api/operation.ts'
import { nodeOperations } from './api/operations.ts'
import { operationRoutes } from './api/routes.ts'
import { metrics, type MetricsService } from './metrics/index.ts'
import { metricsRoutes } from './metrics/routes.ts'

export { DEFAULT_HAPP, NetworkMismatchError, networkProfile, type NetworkProfile } from './flexstack-app.ts'
export { DataDirInUseError, DatabaseMissingError } from './data-dir.ts'
export { normalizePolicyAdmins, PolicyAdminsMismatchError } from './policy/admins.ts'
export { PolicyFileError } from './policy/file.ts'

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
  /** seconds between heartbeats: presence refreshes, no chain write (a node is offline 2.5 intervals after its last). @default 10 */
  heartbeatIntervalSeconds?: number
  /** seconds after which an unchanged NodeCapability is advertised again (a changed offer goes out at once). @default 86400 */
  advertiseIntervalSeconds?: number
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
  /** ms between lookups of what records in limbo wait for. @default syncIntervalMs */
  limboLookupIntervalMs?: number
  /** reconcile with every newly connected peer at once. @default true */
  syncOnConnect?: boolean
  /** DHT authorities wanted per location; a mesh with more nodes shards storage. @default 5 */
  targetRedundancy?: number
  /** ms between two resizes of the storage arc. @default 30000 */
  arcResizeIntervalMs?: number
  /**
   * days of DHT data a network that prunes (testnet) keeps (`--prune-after-days`); refused on
   * mainnet (permanent) and local (session-only). @default the network profile's: 30 on testnet
   */
  pruneAfterDays?: number
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
  /**
   * bearer tokens of the HTTP API, one a line (`--api-token-file`); used when it is bound to a
   * non-loopback address, besides `flexnode keys token`'s and the local `<data-dir>/api-token`. @default none
   */
  apiTokenFile?: string
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
  /**
   * what this node offers for leases (`resources.allocate`); a dimension left out is its probed
   * machine's (cores, RAM in GB, GPUs, free disk in GB), for `model_slots` its loaded models ×
   * `sequences`, and 0 `vectors` (vector capacity, for memory leases). @default every dimension so
   */
  resourceCapacity?: Partial<LeaseResources>
  /** the longest lease this node grants, seconds. @default 86400 */
  maxLeaseSeconds?: number
  /**
   * the HTTP API's prompt cache (the memory policy's `prompt_cache`): answers to deterministic
   * chat/completion requests served again without the model (`memory/prompt-cache.ts`); `false`
   * disables it (`--no-prompt-cache`). @default enabled: ttl 3600 s, 100000 entries
   */
  promptCache?: boolean | PromptCacheInit
  /** threads running WASM compute tasks. @default the number of cores */
  wasmThreads?: number
  /** let WASM tasks that ask for it (`allow_clock`) read a clock. @default false */
  wasmClock?: boolean
  /**
   * the vector memory (`memory/index.ts`): `shardCapacity` is how many shard replicas this node
   * offers to host (its weight on the shard ring; 0 hosts none), `threads` the HNSW worker
   * threads, and the sync and ring intervals. @default 4 shard replicas per GB of RAM, 1 thread, design §10.7's intervals
   */
  memory?: Omit<MemoryInit, 'dir'>
  /**
   * the artifact store (`artifacts/index.ts`): the embedded Helia store under
   * `<data-dir>/artifacts` on the mesh's libp2p node, or a Kubo daemon (`kuboApi`); the default
   * `{min, max}` providers of an artifact and the replication pass's timing. `maxUploadBytes` is the
   * largest `POST /v1/artifacts` body. @default Helia; {min: 3, max: 5}; a pass every 30 s; a 60 s grace; 10 GiB uploads
   */
  artifacts?: Omit<ArtifactsInit, 'dir'> & { maxUploadBytes?: number }
  /** the audit log (`audit/index.ts`); with `url` (`--audit-db`) it is shipped to Postgres. @default the outbox only */
  audit?: AuditInit
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

/** Everything a node is made of; each field is filled by the service that provides it. */
export interface NodeComponents {
  logger: ComponentLogger
  dataDir: DataDir
  keys: KeystoreService
  conductor: EmbeddedConductor
  /** the in-process client of the flexstack app */
  client: InProcessAppClient
  /** the bound Admin and App interface ports */
  interfaces: { admin: number, app: number }
  mesh: Libp2pMeshNode
  dht: DhtNetwork
  inference: InferenceService
  policies: SharedPolicies
  /** MOE policies from `--moe-policy`, by name (they override policy_store's) */
  localPolicies: Record<string, MoePolicy>
  /** the mesh's NodeCapabilities with liveness, one cached reader shared by routing and placement */
  capabilities: () => Promise<NodeCapability[]>
  /** the mesh-wide inference routes the HTTP API serves (single, MOE, remote models) */
  router: HttpRouter
  /** this node's live load, sampled at most once a second (heartbeat and router share it) */
  liveLoad: () => Promise<LoadSample>
  /** answers of deterministic generation requests (undefined: disabled) */
  promptCache: PromptCacheService | undefined
  /** the HTTP API: the OpenAI-compatible routes (and those of later capabilities) */
  http: HttpServer
  registry: RegistryService
  resources: ResourcesService
  memory: MemoryService
  artifacts: ArtifactService
  /** models published to and pulled from the artifact store */
  models: ModelArtifacts
  audit: AuditService
  /** every operation of the node (the MCP tools), described once */
  operations: AnyOperation[]
  /** the Prometheus metrics (`GET /metrics`) */
  metrics: MetricsService
}

/** Who embeds with `model`: this node's engine when it has the model, else the mesh (a peer that has it). */
const embedder = (c: NodeComponents) => (model: string): Pick<InferenceEngine, 'embed'> =>
  c.inference.engine.listModels().some(m => m.id === model) || c.router.remote === undefined ? c.inference.engine : c.router.remote

/** The inference plane's events into the audit log: a record that cannot be appended is logged, and never fails the request. */
const inferenceAudit = (c: NodeComponents): InferenceAudit => (event) => {
  c.metrics.inference(event)
  try {
    c.audit.append(event as AuditEvent)
  } catch (err) {
    c.logger.forComponent('flexnode:audit').warn({ kind: event.kind, trace_id: event.trace_id, err: errorMessage(err) }, 'an inference audit record was not appended')
  }
}

/** The conductor as the in-process client sees it, each zome call timed into the metrics. */
const timedZomeCalls = (conductor: EmbeddedConductor, m: Pick<MetricsService, 'zomeCall'>): InProcessConductor => ({
  appInfo: (id) => conductor.appInfo(id),
  onAppSignal: (id, fn) => conductor.onAppSignal(id, fn),
  get keystore () { return conductor.keystore },
  callZomeSigned: async (appId, req) => {
    const started = performance.now()
    let ok = false
    try {
      const out = await conductor.callZomeSigned(appId, req)
      ok = true
      return out
    } finally {
      m.zomeCall((performance.now() - started) / 1000, ok)
    }
  }
})

/** The node's services, in start order (stopped in reverse). */
function nodeServices (init: FlexNodeInit, network: NetworkName): Array<ServiceEntry<NodeComponents>> {
  const policyAdmins = normalizePolicyAdmins(init.policyAdmins)
  // the dashboard's recent MOE results: the router reports each finished query
  const moeResults = moeLog()
  return [
    { name: 'data dir', provides: 'dataDir', create: (c) => dataDirService({ dataDir: init.dataDir, newChain: init.newChain })(c) },
    // first: every later service may count into it
    { name: 'metrics', provides: 'metrics', create: () => metrics()({}) },
    { name: 'keystore', provides: 'keys', create: (c) => keystoreService({ passphrase: init.passphrase, scryptN: init.scryptN })(c) },
    {
      name: 'mesh',
      create: (c) => {
        let mesh: Libp2pMeshNode | undefined
        return service({
          start: async () => {
            const bootstrap = init.bootstrap ?? (await networkProfile(network)).bootstrap
            c.mesh = mesh = await createMeshNode({ network, seed: c.keys.keystore.exportSeed(c.keys.keystore.primary.agentPubKey), listen: init.listen, bootstrap, mdns: init.mdns, gossipColocationWhitelist: init.gossipColocationWhitelist }, { logger: c.logger })
            await mesh.start()
          },
          stop: async () => { await mesh?.stop() }
        })
      }
    },
    {
      name: 'conductor',
      create: (c) => {
        let conductor: EmbeddedConductor | undefined
        return service({
          start: async () => {
            // the conductor builds its DHT network over the mesh (the next service starts it)
            const dht = dhtNetwork({
              syncIntervalMs: init.syncIntervalMs,
              republishIntervalMs: init.republishIntervalMs,
              limboLookupIntervalMs: init.limboLookupIntervalMs,
              syncOnConnect: init.syncOnConnect,
              targetRedundancy: init.targetRedundancy,
              arcResizeIntervalMs: init.arcResizeIntervalMs,
              presenceIntervalMs: (init.heartbeatIntervalSeconds ?? DEFAULT_HEARTBEAT_INTERVAL_SECONDS) * 1000
            })
            const profile = await networkProfile(network)
            const retention = nodeRetention(network, profile, init.pruneAfterDays)
            c.conductor = conductor = await EmbeddedConductor.open({ dataDir: c.dataDir.path, host: init.host, retention }, { keystore: c.keys.keystore, logger: c.logger, network: (host) => dht({ host, mesh: c.mesh, logger: c.logger, keystore: c.keys.keystore }), transport: c.mesh })
            await ensureFlexstackApp(conductor, { dataDir: c.dataDir.path, network, profile, agent: c.keys.keystore.primary.agentPubKey, policyAdmins, happPath: init.happPath }, c.logger.forComponent('flexnode:node'))
            // only now is the data dir known to be this network's: prune it, or forget the last session
            await conductor.retention.start()
            // '*' admits every non-browser client and no web page; browser origins only when listed
            const admin = await conductor.startAdminInterface({ port: init.adminPort ?? 0, allowedOrigins: ['*', ...init.adminAllowedOrigins ?? []].join(',') })
            const app = await conductor.attachAppInterface({ port: init.appPort ?? 0, allowed_origins: ['*', ...init.appAllowedOrigins ?? []].join(','), installed_app_id: INSTALLED_APP_ID })
            c.interfaces = { admin: admin.port, app: app.port }
            c.client = await InProcessAppClient.connect(timedZomeCalls(conductor, c.metrics), INSTALLED_APP_ID)
          },
          stop: async () => { await conductor?.stop() }
        })
      }
    },
    // right after the conductor, so its hook sees every zome call's commit
    { name: 'audit', provides: 'audit', create: (c) => audit(init.audit)({ conductor: c.conductor, keystore: c.keys.keystore, logger: c.logger }) },
    {
      name: 'dht network',
      create: (c) => {
        const dht = c.dht = c.conductor.network!
        return service({ start: async () => { await dht.start() }, stop: async () => { await dht.stop() } })
      }
    },
    {
      // each cell's init runs now, not at whatever moment a service first reads its DNA
      name: 'cell init',
      create: (c) => service({ start: async ({ signal } = {}) => { await initializeCells(c.client, { signal }) }, stop: () => {} })
    },
    {
      name: 'models dir',
      create: (c) => service({
        start: async ({ signal } = {}) => {
          const modelsDir = join(c.dataDir.path, 'models')
          await mkdir(modelsDir, { recursive: true, mode: 0o700 })
          if (init.generateDefaultModel !== false && (await readdir(modelsDir)).filter(f => f.endsWith('.gguf')).length === 0) {
            const path = await ensureDemoModel(modelsDir, { signal })
            c.logger.forComponent('flexnode:node').info({ path }, 'generated the random-weight demo model (drop real .gguf files into the models dir; --no-demo-model skips it)')
          }
        },
        stop: () => {}
      })
    },
    {
      name: 'inference engine',
      provides: 'inference',
      create: (c) => inferenceEngine({ modelsDirs: [join(c.dataDir.path, 'models'), ...(init.modelsDirs ?? [])], gpu: init.gpu, threads: init.threads, maxQueue: init.maxQueue, sequences: init.sequences })({ logger: c.logger, onGeneration: c.metrics.generation })
    },
    {
      name: 'model preload',
      create: (c) => service({
        start: async ({ signal } = {}) => {
          // many or large models take long to load: a stop request must not wait for all of them
          if (init.preloadModels !== false) c.logger.forComponent('flexnode:node').info({ models: await c.inference.engine.preload({ signal }) }, 'models loaded')
        },
        stop: () => {}
      })
    },
    {
      name: 'policies',
      create: (c) => service({
        start: async ({ signal } = {}) => {
          // mesh-wide policies count only when an admin named in the DNA published them
          c.policies = sharedPolicies({ admins: policyAdmins }, { client: c.client, logger: c.logger })
          if (c.policies.isAdmin(encodeHash(c.keys.keystore.primary.agentPubKey))) await publishDefaultMoePolicy(new PolicyStoreClient(c.client), c.logger.forComponent('flexnode:policy'), { signal })
          if (init.moePolicyFile !== undefined) {
            const p = await loadPolicyFile(init.moePolicyFile, { signal })
            c.localPolicies = { [p.name]: p }
            c.logger.forComponent('flexnode:policy').info({ policy: p.name, file: init.moePolicyFile }, 'local MOE policy override')
          } else {
            c.localPolicies = {}
          }
        },
        stop: () => {}
      })
    },
    {
      name: 'inference protocol',
      create: (c) => {
        let unregister: (() => Promise<void>) | undefined
        return service({
          start: async () => {
            unregister = await startInferenceProvider(init.inferencePolicy ?? {}, {
              engine: c.inference.engine,
              mesh: c.mesh,
              logger: c.logger,
              sharedPolicy: c.policies.access,
              // the resources service starts later: its leases are looked up when a request names one
              leases: { check: (id, from) => { c.resources.inferenceLeases.check(id, from) }, record: (id, usage) => { c.resources.inferenceLeases.record(id, usage) } },
              audit: inferenceAudit(c)
            })
          },
          stop: async () => { await unregister?.() }
        })
      }
    },
    {
      name: 'inference router',
      create: (c) => {
        const sampler = createLoadSampler()
        let last: { at: number, sample: Promise<LoadSample> } | undefined
        c.liveLoad = async () => {
          if (last === undefined || Date.now() - last.at >= 1000) last = { at: Date.now(), sample: sampler.sample() }
          return await last.sample
        }
        const capabilities = c.capabilities = peerCapabilities()({ registry: new AgentRegistryClient(c.client) })
        const peers = new PeerInference({ mesh: c.mesh, capabilities, logger: c.logger }, { region: init.region })
        const router = createInferenceRouter({ region: init.region, policies: c.localPolicies }, { engine: c.inference.engine, peers, capabilities, selfNodeId: encodeHash(c.keys.keystore.primary.agentPubKey), sharedPolicy: c.policies.moe, selfLoad: c.liveLoad, audit: inferenceAudit(c), onMoeResult: moeResults.record, logger: c.logger })
        c.router = {
          ...router,
          remote: peers,
          // generation under an inference lease this node holds: on the lease's provider, counted against it
          leased: (id) => c.resources.leasedInference(id, { local: c.inference.engine, remote: peers })
        }
        return service({ start: async () => {}, stop: () => {} })
      }
    },
    {
      // before the HTTP API, which mounts its routes, and before resources, whose tasks name modules by CID
      name: 'artifacts',
      provides: 'artifacts',
      create: (c) => {
        const svc = artifacts({ ...init.artifacts, dir: join(c.dataDir.path, 'artifacts') })({
          client: c.client, libp2p: c.mesh.libp2p, agent: c.keys.keystore.primary.agentPubKey, capabilities: c.capabilities, logger: c.logger
        })
        c.models = modelArtifacts({ modelsDir: join(c.dataDir.path, 'models') })({ artifacts: svc, engine: c.inference.engine })
        return svc
      }
    },
    {
      // before the HTTP API, which mounts its routes: started before the API serves them, stopped after
      name: 'resources',
      provides: 'resources',
      create: (c) => resources({ capacity: init.resourceCapacity, maxLeaseSeconds: init.maxLeaseSeconds, region: init.region, wasmThreads: init.wasmThreads, wasmClock: init.wasmClock })({
        client: c.client,
        mesh: c.mesh,
        agent: c.keys.keystore.primary.agentPubKey,
        capabilities: c.capabilities,
        sharedPolicy: c.policies.compute,
        inferenceSlots: () => c.inference.engine.listModels().filter(m => m.loaded).length * (init.sequences ?? 2),
        modules: async (cid) => await readModule(c.artifacts, cid),
        onEvent: c.metrics.resources,
        machine: async () => {
          const m = await probeMachine({ dataDir: c.dataDir.path })
          return { cpu_cores: m.cpu_cores, memory_gb: m.ram_gb, gpu_count: m.gpu === null ? 0 : 1, storage_gb: m.local_ssd_gb }
        },
        logger: c.logger
      })
    },
    {
      // before the HTTP API, which mounts its routes
      name: 'memory',
      provides: 'memory',
      create: (c) => memory({ ...init.memory, dir: memoryDir(c.dataDir.path) })({
        client: c.client,
        mesh: c.mesh,
        agent: c.keys.keystore.primary.agentPubKey,
        capabilities: c.capabilities,
        // a collection's embedding model: this node's, else a peer's
        embed: async (model, texts, options) => (await embedder(c)(model).embed(model, texts, options)).embeddings,
        onEvent: c.metrics.memory,
        logger: c.logger
      })
    },
    {
      name: 'prompt cache',
      create: (c) => {
        if (init.promptCache === false) {
          c.promptCache = undefined
          return service({ start: async () => {}, stop: () => {} })
        }
        return c.promptCache = nodePromptCache({ ...(init.promptCache === true ? {} : init.promptCache), dir: join(c.dataDir.path, 'prompt-cache') })({
          logger: c.logger,
          // a semantic lookup embeds with the requested model: this node's, else the mesh's
          embed: async (model, input, options) => await embedder(c)(model).embed(model, input, options)
        })
      }
    },
    {
      // before the HTTP API, which serves them; the registry starts later (read when an operation runs)
      name: 'operations',
      create: (c) => {
        c.operations = nodeOperations({
          network,
          agent: c.keys.keystore.primary.agentPubKey,
          interfaces: () => c.interfaces,
          conductor: c.conductor,
          mesh: c.mesh,
          registry: { advertise: async (o) => await c.registry.advertise(o), get advertised () { return c.registry.advertised } },
          capabilities: c.capabilities,
          resources: c.resources,
          router: c.router,
          engine: c.inference.engine,
          memory: c.memory,
          artifacts: c.artifacts,
          models: c.models
        })
        return service({ start: async () => {}, stop: () => {} })
      }
    },
    {
      // each capability mounts its routes here
      name: 'HTTP API',
      provides: 'http',
      create: (c) => httpServer({
        host: init.httpHost,
        port: init.httpPort ?? 0,
        allowedHosts: init.httpAllowedHosts,
        auth: { tokenFile: init.apiTokenFile, issuedTokensFile: join(c.dataDir.path, ISSUED_TOKENS_FILE), localTokenFile: join(c.dataDir.path, API_TOKEN_FILE) }
      })({
        logger: c.logger,
        onRequest: c.metrics.httpRequest,
        routes: [
          metricsRoutes({ metrics: c.metrics }),
          modelAdminRoutes({ engine: c.inference.engine }),
          openaiRoutes({ engine: c.inference.engine, router: c.router, promptCache: c.promptCache }),
          resourceRoutes({ resources: c.resources }),
          memoryRoutes({ memory: c.memory }),
          artifactRoutes({ maxUploadBytes: init.artifacts?.maxUploadBytes }, { artifacts: c.artifacts, models: c.models }),
          auditRoutes({ audit: c.audit }),
          // POST /v1/holochain/<verb>: the holochain.* operations (the other groups have their own routes)
          operationRoutes({ operations: c.operations.filter(o => o.name.startsWith('holochain.')) }),
          // POST /mcp: the operations as MCP tools (streamable HTTP); `flexnode mcp` forwards to it
          mcpRoutes({ operations: c.operations, logger: c.logger }),
          // POST /v1/backup (`flexnode backup`): the chains, the keystore as it is, this node's pins
          nodeBackupRoutes({ dataDir: c.dataDir.path, agent: c.keys.keystore.primary.agentPubKey, conductor: c.conductor, pins: async () => await c.artifacts.pins() }),
          // GET / (the mesh picture) and /v1/dashboard/{snapshot,events}
          dashboardRoutes()({ dashboard: dashboard()({ network, selfNodeId: encodeHash(c.keys.keystore.primary.agentPubKey), registry: new AgentRegistryClient(c.client), mesh: c.mesh, dht: c.dht, engine: c.inference.engine, resources: c.resources, memory: c.memory, moe: moeResults, logger: c.logger }) })
        ]
      })
    },
    {
      name: 'registry',
      provides: 'registry',
      create: (c) => registryService({
        agentName: init.agentName,
        heartbeatIntervalMs: (init.heartbeatIntervalSeconds ?? DEFAULT_HEARTBEAT_INTERVAL_SECONDS) * 1000,
        advertiseIntervalMs: init.advertiseIntervalSeconds === undefined ? undefined : init.advertiseIntervalSeconds * 1000,
        region: init.region,
        bandwidthMbps: init.bandwidthMbps,
        vectorShards: c.memory.capacity
      })({
        client: c.client,
        logger: c.logger,
        presence: c.dht.presence,
        probe: { machine: async () => await probeMachine({ dataDir: c.dataDir.path }), load: c.liveLoad },
        inference: () => {
          const loaded = c.inference.engine.listModels().filter(m => m.loaded)
          return {
            models_loaded: loaded.map(m => m.id),
            max_batch_size: loaded.length > 0 ? (init.sequences ?? 2) : 0,
            tokens_per_second: loaded.reduce((t, m) => Math.max(t, m.tokens_per_second ?? 0), 0),
            queue_depth: loaded.reduce((q, m) => q + m.queue_depth, 0),
            in_flight: loaded.reduce((q, m) => q + m.in_flight, 0),
            demo_models: loaded.filter(m => m.demo === true).map(m => m.id),
            queue: Object.fromEntries(loaded.map(m => [m.id, m.queue_depth + m.in_flight]))
          }
        }
      })
    },
    {
      // what /metrics reads when scraped: the stats getters of the services above
      name: 'metrics sources',
      create: (c) => service({
        start: async () => {
          c.metrics.observe({
            connectedPeers: () => c.dht.peerInfo().length,
            livePeers: () => c.dht.presence.live().length,
            presence: () => c.dht.presence.stats,
            dht: () => c.dht.totals,
            ops: () => c.dht.ops,
            pruned: () => c.conductor.retention.pruned,
            arc: () => c.dht.arcStatus(),
            droppedGossip: () => c.dht.droppedGossip,
            models: () => c.inference.engine.listModels(),
            allocations: async () => await c.resources.allocations(),
            memory: () => ({ ...c.memory.stats(), capacity: c.memory.capacity }),
            vectors: async () => await c.memory.vectors(),
            promptCache: () => c.promptCache?.stats(),
            artifacts: () => c.artifacts.stats(),
            pins: async () => await c.artifacts.pins(),
            audit: () => c.audit.stats()
          })
        },
        stop: () => {}
      })
    }
  ]
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
  readonly resources: ResourcesService
  readonly memory: MemoryService
  readonly artifacts: ArtifactService
  readonly models: ModelArtifacts
  readonly audit: AuditService
  /** every operation of the node (the MCP tools), described once */
  readonly operations: AnyOperation[]
  readonly #services: RunningServices
  readonly #log: ComponentLogger
  #stopping: Promise<void> | undefined

  private constructor (info: ReadyInfo, c: NodeComponents, services: RunningServices, log: ComponentLogger) {
    this.info = info
    this.conductor = c.conductor
    this.keystore = c.keys.keystore
    this.client = c.client
    this.registry = c.registry
    this.mesh = c.mesh
    this.dht = c.dht
    this.inference = c.inference.engine
    this.http = c.http
    this.resources = c.resources
    this.memory = c.memory
    this.artifacts = c.artifacts
    this.models = c.models
    this.audit = c.audit
    this.operations = c.operations
    this.#services = services
    this.#log = log
  }

  /**
   * Starts every service in order. On a failure (or `init.signal` aborting) what started is
   * stopped in reverse and the error is thrown.
   */
  static async start (init: FlexNodeInit): Promise<FlexNode> {
    const logger = init.logger ?? createLogger()
    const log = logger.forComponent('flexnode:node')
    const network = init.network ?? 'local'
    const c = components<NodeComponents>({ logger })
    const services = await startServices(nodeServices(init, network), c, { signal: init.signal, log })
    try {
      const info: ReadyInfo = {
        agent_pub_key: encodeHash(c.keys.keystore.primary.agentPubKey),
        network,
        admin_port: c.interfaces.admin,
        app_port: c.interfaces.app,
        installed_app_id: INSTALLED_APP_ID,
        data_dir: c.dataDir.path,
        peer_id: c.mesh.peerId,
        multiaddrs: c.mesh.multiaddrs(),
        http_port: c.http.port
      }
      if (init.signal?.aborted === true) throw new AbortError('start-up was aborted')
      await c.dataDir.writeRuntime(info)
      log.info(info, 'flexnode ready')
      return new FlexNode(info, c, services, log)
    } catch (err) {
      await services.stop()
      throw err
    }
  }

  /** Stops every service in reverse start order and releases the data dir. Idempotent. */
  async stop (): Promise<void> {
    this.#stopping ??= (async () => {
      await this.#services.stop()
      this.#log.info('flexnode stopped')
    })()
    await this.#stopping
  }

  async [Symbol.asyncDispose] (): Promise<void> {
    await this.stop()
  }
}
