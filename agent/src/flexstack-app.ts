/**
 * The flexstack hApp on this node: the network profile (`dnas/networks.json`) picks its network
 * seed and bootstrap peers; the first start installs the app with that seed (and the policy
 * admins as policy_store's DNA property), every later start checks that the data dir belongs to
 * the same mesh, then enables the app.
 */
import { readFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { EmbeddedConductor } from './conductor/conductor.ts'
import { INSTALLED_APP_ID, MAX_PRUNE_AFTER_DAYS, type NetworkName } from './constants.ts'
import { DAY_MS, type RetentionPolicy } from './conductor/retention.ts'
import { FlexnodeError, InvalidInputError } from './errors.ts'
import type { ComponentLogger } from './logger.ts'
import { installedPolicyAdmins, policyAdminsProperties, PolicyAdminsMismatchError } from './policy/admins.ts'
import type { ZomeCaller, ZomeCallOptions } from '../../zomes-ts/client.ts'
import { AgentRegistryClient } from '../../zomes-ts/agent_registry/client.ts'
import { ResourceMeshClient } from '../../zomes-ts/resource_mesh/client.ts'
import { PolicyStoreClient } from '../../zomes-ts/policy_store/client.ts'
import { ArtifactIndexClient } from '../../zomes-ts/artifact_index/client.ts'
import { MemoryShardsClient } from '../../zomes-ts/memory_shards/client.ts'

const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const DEFAULT_HAPP = join(PACKAGE_ROOT, 'dnas', 'happ.yaml')
const NETWORKS_FILE = join(PACKAGE_ROOT, 'dnas', 'networks.json')

export class NetworkMismatchError extends FlexnodeError {
  static override readonly name = 'NetworkMismatchError'
  readonly dataDir: string
  readonly installed: string
  readonly requested: string

  constructor (dataDir: string, installed: string, requested: string) {
    super(`data dir ${dataDir} belongs to the network with seed ${installed}; use another --data-dir for ${requested}`)
    this.dataDir = dataDir
    this.installed = installed
    this.requested = requested
  }
}

/** `dnas/networks.json` has no usable profile for a network. */
export class NetworkProfileError extends FlexnodeError {
  static override readonly name = 'NetworkProfileError'
  readonly network: string

  constructor (network: string, message: string) {
    super(message)
    this.network = network
  }
}

export interface NetworkProfile {
  network_seed: string
  bootstrap: string[]
  /** from `persistence`: `permanent`, `prune-<days>d` or `session` (design §9.4). @default permanent */
  retention: RetentionPolicy
}

function retentionOf (network: string, persistence: unknown): RetentionPolicy {
  if (persistence === undefined || persistence === 'permanent') return { mode: 'permanent' }
  if (persistence === 'session') return { mode: 'session' }
  const days = typeof persistence === 'string' ? /^prune-(\d{1,5})d$/.exec(persistence)?.[1] : undefined
  if (days === undefined || Number(days) < 1 || Number(days) > MAX_PRUNE_AFTER_DAYS) {
    throw new NetworkProfileError(network, `dnas/networks.json: ${network}.persistence must be permanent, session or prune-<days>d, got ${JSON.stringify(persistence)}`)
  }
  return { mode: 'prune', maxAgeMs: Number(days) * DAY_MS }
}

export async function networkProfile (network: NetworkName): Promise<NetworkProfile> {
  const profiles = JSON.parse(await readFile(NETWORKS_FILE, 'utf8')) as Record<string, { network_seed?: unknown, bootstrap?: unknown, persistence?: unknown }>
  const p = profiles[network]
  const seed = p?.network_seed
  if (typeof seed !== 'string' || seed.length === 0) throw new NetworkProfileError(network, `dnas/networks.json has no network_seed for ${network}`)
  const bootstrap = Array.isArray(p?.bootstrap) ? p.bootstrap.filter((a): a is string => typeof a === 'string') : []
  return { network_seed: seed, bootstrap, retention: retentionOf(network, p?.persistence) }
}

/**
 * The node's retention: its network profile's, with `pruneAfterDays` (a whole number of days)
 * replacing the age on a network that prunes. Elsewhere it is an `InvalidInputError`: mainnet
 * keeps everything and local keeps other agents' data for one session only.
 */
export function nodeRetention (network: NetworkName, profile: NetworkProfile, pruneAfterDays?: number): RetentionPolicy {
  if (pruneAfterDays === undefined) return profile.retention
  if (!Number.isSafeInteger(pruneAfterDays) || pruneAfterDays < 1 || pruneAfterDays > MAX_PRUNE_AFTER_DAYS) {
    throw new InvalidInputError(`pruneAfterDays must be a whole number of days from 1 to ${MAX_PRUNE_AFTER_DAYS}`, { field: 'pruneAfterDays' })
  }
  if (profile.retention.mode !== 'prune') {
    throw new InvalidInputError(`pruneAfterDays applies to a network that prunes (testnet); ${network} is ${profile.retention.mode === 'session' ? 'session-only' : 'permanent'}`, { field: 'pruneAfterDays' })
  }
  return { ...profile.retention, maxAgeMs: pruneAfterDays * DAY_MS }
}

interface InstalledApp {
  installed_app_id: string
  cell_info: Record<string, Array<{ value: { dna_modifiers: { network_seed: string, properties?: unknown } } }>>
}

export interface FlexstackAppOptions {
  dataDir: string
  network: NetworkName
  profile: NetworkProfile
  agent: Uint8Array
  /** normalized (sorted, deduplicated) policy admins */
  policyAdmins: string[]
  /** @default dnas/happ.yaml */
  happPath?: string
}

/** Installs the app on first start or checks it is this mesh's, then enables it. */
export async function ensureFlexstackApp (conductor: Pick<EmbeddedConductor, 'listApps' | 'installApp' | 'enableApp'>, opts: FlexstackAppOptions, log: ComponentLogger): Promise<void> {
  const seed = opts.profile.network_seed
  const existing = (conductor.listApps() as InstalledApp[]).find((a) => a.installed_app_id === INSTALLED_APP_ID)
  if (existing === undefined) {
    log.info({ network: opts.network, seed, policy_admins: opts.policyAdmins }, 'first start: installing the flexstack app')
    const properties = policyAdminsProperties(opts.policyAdmins)
    const rolesSettings = properties === undefined ? undefined : { policy_store: { type: 'provisioned' as const, value: { modifiers: { properties } } } }
    await conductor.installApp({ source: { type: 'path', value: opts.happPath ?? DEFAULT_HAPP }, agent_key: opts.agent, installed_app_id: INSTALLED_APP_ID, network_seed: seed, roles_settings: rolesSettings })
  } else {
    const installedSeed = Object.values(existing.cell_info)[0]?.[0]?.value.dna_modifiers.network_seed ?? ''
    if (installedSeed !== seed) throw new NetworkMismatchError(opts.dataDir, installedSeed, opts.network)
    const installedAdmins = installedPolicyAdmins(existing.cell_info.policy_store?.[0]?.value.dna_modifiers.properties)
    if (installedAdmins.join('\n') !== opts.policyAdmins.join('\n')) throw new PolicyAdminsMismatchError(opts.dataDir, installedAdmins, opts.policyAdmins)
  }
  await conductor.enableApp({ installed_app_id: INSTALLED_APP_ID })
}

/**
 * Makes a first zome call to each of the app's cells, a read, so that the conductor runs each
 * cell's `init` (and commits its InitZomesComplete) now. Holochain runs it lazily, before a cell's
 * first call, which for this node could be any time: the memory ring check after its interval, the
 * first MOE request's policy lookup. After start, a chain then grows only with what the node
 * publishes, and a failing init fails the start instead of some later request. The calls work
 * against the embedded conductor and a real one alike.
 */
export async function initializeCells (client: ZomeCaller, options?: ZomeCallOptions): Promise<void> {
  await Promise.all([
    new AgentRegistryClient(client).myCapabilityHash(options),
    new ResourceMeshClient(client).ledgerHead(options),
    new PolicyStoreClient(client).getPolicy('flexnode-init', options),
    new ArtifactIndexClient(client).provided(options),
    new MemoryShardsClient(client).currentEpoch(options)
  ])
}
