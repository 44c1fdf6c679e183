/**
 * The `holochain.*` operations (CONTRACTS §11.3) on a node that is already running: its conductor
 * and mesh exist from start, so `init_conductor` reports them (idempotent), `join_mesh` checks the
 * network, dials a bootstrap peer when given one and advertises the name and capabilities,
 * `register_node` advertises the NodeCapability (given fields merged over the probed ones; the
 * agent_registry DNA validates the result), `query_peers` lists the mesh's nodes with their
 * state, and `install_dna` installs a hApp bundle through the conductor's admin API (the bundled
 * DNAs are the flexstack app's, installed at first start: reported, idempotent).
 *
 * ```ts
 * const ops = holochainOperations({ network: 'local', agent, conductor, interfaces, mesh, registry, capabilities })
 * const joined = await ops.find(o => o.name === 'holochain.join_mesh')!.run({ network: 'local', agent_name: 'gpu-box-01', capabilities: {} }, ctx)
 * ```
 */
import { basename, extname } from 'node:path'
import { z } from 'zod'
import type { NodeCapability } from '../../../zomes-ts/agent_registry/types.ts'
import type { EmbeddedConductor } from '../conductor/conductor.ts'
import { INSTALLED_APP_ID, NETWORKS, type NetworkName } from '../constants.ts'
import { errorMessage, FlexnodeError, InvalidInputError } from '../errors.ts'
import { networkProfile } from '../flexstack-app.ts'
import { encodeHash } from '../holo/hash.ts'
import type { MeshNode } from '../mesh/types.ts'
import { parseMultiaddr } from '../mesh/util.ts'
import type { CapabilityOverrides, RegistryService } from '../registry/registry-service.ts'
import { defineOperation, type AnyOperation } from './operation.ts'

/** `holochain.join_mesh` named another network than the one this node runs on. */
export class WrongNetworkError extends FlexnodeError {
  static override readonly name = 'WrongNetworkError'
  readonly network: string
  readonly requested: string

  constructor (network: string, requested: string) {
    super(`this node runs on the ${network} network; to join ${requested}, start a node with --network ${requested} and its own --data-dir`)
    this.network = network
    this.requested = requested
  }
}

/** `bootstrap_override` could not be dialled. */
export class BootstrapDialError extends FlexnodeError {
  static override readonly name = 'BootstrapDialError'
  readonly multiaddr: string

  constructor (multiaddr: string, options?: ErrorOptions) {
    super(`cannot reach the bootstrap peer ${multiaddr}: ${errorMessage(options?.cause)}`, options)
    this.multiaddr = multiaddr
  }
}

export interface HolochainComponents {
  network: NetworkName
  /** this node's agent key */
  agent: Uint8Array
  /** the Admin and App interface ports (read when asked: bound at start) */
  interfaces: () => { admin: number, app: number }
  conductor: Pick<EmbeddedConductor, 'listApps' | 'installApp' | 'enableApp'>
  mesh: Pick<MeshNode, 'peerId' | 'peers' | 'dial'>
  registry: Pick<RegistryService, 'advertise' | 'advertised'>
  /** the mesh's NodeCapabilities with liveness */
  capabilities: () => Promise<NodeCapability[]>
}

// ---------------------------------------------------------------------------------------------
// schemas

const gpu = z.strictObject({ vendor: z.string(), model: z.string(), vram_gb: z.number() })
/** NodeCapability fields an operator may set over the probed ones (CONTRACTS §10.3) */
export const capabilityOverrides = z.strictObject({
  compute: z.strictObject({ cpu_cores: z.number(), cpu_arch: z.string(), ram_gb: z.number(), gpu: gpu.nullable() }).partial().optional(),
  storage: z.strictObject({ local_ssd_gb: z.number(), ipfs_pinned_gb: z.number(), s3_available_gb: z.number() }).partial().optional(),
  inference: z.strictObject({ max_batch_size: z.number(), tokens_per_second: z.number() }).partial().optional(),
  memory: z.strictObject({ vector_shards: z.number(), redis_memory_gb: z.number() }).partial().optional()
}).describe('Node capability advertisement (compute, storage, inference, memory), merged over the probed one')

const networkOverrides = z.strictObject({ bandwidth_mbps: z.number(), latency_region: z.string() }).partial()
const agentName = z.string().min(1).max(64).describe('Human-readable name for this node')

const cell = z.object({
  installed_app_id: z.string(),
  role: z.string(),
  dna_hash: z.string().describe('uhC0k…'),
  cell_id: z.string().describe('<dna hash>:<agent key>')
})

export const initConductorInput = z.strictObject({})
export const initConductorOutput = z.object({
  status: z.literal('running'),
  agent_pubkey: z.string(),
  network: z.enum(NETWORKS),
  admin_port: z.number(),
  app_port: z.number(),
  installed_app_id: z.string(),
  peer_id: z.string().describe('the mesh (libp2p) peer id'),
  cells: z.array(cell)
})

export const joinMeshInput = z.strictObject({
  network: z.enum(NETWORKS).describe('mainnet, testnet or local: must be the node\'s'),
  agent_name: agentName,
  capabilities: capabilityOverrides,
  bootstrap_override: z.string().describe('a bootstrap peer to dial (a multiaddr, /ip4/…/tcp/…/p2p/…)').optional()
})
export const joinMeshOutput = z.object({
  agent_pubkey: z.string(),
  cell_ids: z.array(z.string()),
  peer_count: z.number(),
  mesh_status: z.enum(['connected', 'syncing', 'isolated'])
})

export const registerNodeInput = z.strictObject({
  agent_name: agentName.optional(),
  capabilities: capabilityOverrides.optional(),
  network: networkOverrides.optional()
})
export const registerNodeOutput = z.object({
  node_id: z.string(),
  agent_name: z.string(),
  action_hash: z.string().describe('the NodeCapability\'s action hash'),
  capability: z.unknown().describe('the NodeCapability advertised')
})

export const queryPeersInput = z.strictObject({
  include_offline: z.boolean().describe('list offline nodes too. Default true').optional()
})
export const queryPeersOutput = z.object({
  peers: z.array(z.object({
    node_id: z.string(),
    agent_name: z.string(),
    state: z.string().describe('online, busy, draining or offline'),
    self: z.boolean(),
    last_heartbeat: z.string(),
    models_loaded: z.array(z.string()),
    cpu_cores: z.number(),
    ram_gb: z.number(),
    latency_region: z.string()
  })),
  connected: z.number().describe('mesh connections (libp2p peers) now')
})

export const installDnaInput = z.strictObject({
  dna: z.string().min(1).describe('a bundled DNA (agent_registry, resource_mesh, policy_store, artifact_index, memory_shards, or flexstack for all of them) or the path on the node of a .happ bundle or happ.yaml'),
  installed_app_id: z.string().min(1).max(128).describe('the app id. Default the bundle\'s file name').optional()
})
export const installDnaOutput = z.object({
  installed_app_id: z.string(),
  already_installed: z.boolean(),
  cell_ids: z.array(z.string()),
  cells: z.array(cell)
})

// ---------------------------------------------------------------------------------------------

interface InstalledApp {
  installed_app_id: string
  cell_info: Record<string, Array<{ type: string, value: { cell_id?: [Uint8Array, Uint8Array] } }>>
}

/** Every cell of the installed apps (of one app with `appId`). */
function cellsOf (conductor: HolochainComponents['conductor'], appId?: string): Array<z.input<typeof cell>> {
  const out: Array<z.input<typeof cell>> = []
  for (const app of conductor.listApps() as InstalledApp[]) {
    if (appId !== undefined && app.installed_app_id !== appId) continue
    for (const [role, cells] of Object.entries(app.cell_info)) {
      for (const c of cells) {
        const id = c.value.cell_id
        if (id === undefined) continue
        const dna = encodeHash(id[0])
        out.push({ installed_app_id: app.installed_app_id, role, dna_hash: dna, cell_id: `${dna}:${encodeHash(id[1])}` })
      }
    }
  }
  return out
}

const isInstalled = (conductor: HolochainComponents['conductor'], appId: string): boolean =>
  (conductor.listApps() as InstalledApp[]).some(a => a.installed_app_id === appId)

const APP_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

export function holochainOperations (c: HolochainComponents): AnyOperation[] {
  const agent = encodeHash(c.agent)

  const meshStatus = async (): Promise<{ peer_count: number, mesh_status: 'connected' | 'syncing' | 'isolated' }> => {
    const peers = c.mesh.peers().length
    if (peers === 0) return { peer_count: 0, mesh_status: 'isolated' }
    // connected; syncing until another node's NodeCapability has arrived
    const others = (await c.capabilities()).filter(cap => cap.node_id !== agent).length
    return { peer_count: peers, mesh_status: others > 0 ? 'connected' : 'syncing' }
  }

  const advertise = async (overrides: CapabilityOverrides, signal: AbortSignal): Promise<z.input<typeof registerNodeOutput>> => {
    const hash = await c.registry.advertise({ overrides, signal })
    const cap = c.registry.advertised
    return { node_id: agent, agent_name: cap?.agent_name ?? '', action_hash: encodeHash(hash), capability: cap }
  }

  return [
    defineOperation({
      name: 'holochain.init_conductor',
      description: 'Initialize Holochain conductor: on a running node, reports its conductor (agent key, admin/app ports, installed app, cells)',
      input: initConductorInput,
      output: initConductorOutput,
      run: async () => {
        const ports = c.interfaces()
        return { status: 'running' as const, agent_pubkey: agent, network: c.network, admin_port: ports.admin, app_port: ports.app, installed_app_id: INSTALLED_APP_ID, peer_id: c.mesh.peerId, cells: cellsOf(c.conductor) }
      }
    }),
    defineOperation({
      name: 'holochain.join_mesh',
      description: 'Join FlexStack distributed agent mesh: checks the network, dials bootstrap_override when given, advertises agent_name and capabilities',
      input: joinMeshInput,
      output: joinMeshOutput,
      run: async (input, ctx) => {
        if (input.network !== c.network) throw new WrongNetworkError(c.network, input.network)
        if (input.bootstrap_override !== undefined) {
          parseMultiaddr(input.bootstrap_override, 'bootstrap_override')
          try {
            await c.mesh.dial(input.bootstrap_override, { signal: ctx.signal })
          } catch (err) {
            if (ctx.signal.aborted) throw err
            throw new BootstrapDialError(input.bootstrap_override, { cause: err })
          }
        }
        await advertise({ agent_name: input.agent_name, capabilities: input.capabilities }, ctx.signal)
        return { agent_pubkey: agent, cell_ids: cellsOf(c.conductor, INSTALLED_APP_ID).map(x => x.cell_id), ...await meshStatus() }
      }
    }),
    defineOperation({
      name: 'holochain.register_node',
      description: 'Advertise node capabilities: the probed NodeCapability with the given fields merged over it (kept for later advertisements)',
      input: registerNodeInput,
      output: registerNodeOutput,
      run: async (input, ctx) => await advertise(input, ctx.signal)
    }),
    defineOperation({
      name: 'holochain.query_peers',
      description: 'List mesh peers: every node of the agent registry with its state (online, busy, draining, offline)',
      input: queryPeersInput,
      output: queryPeersOutput,
      run: async (input) => {
        const caps = await c.capabilities()
        const peers = caps
          .filter(cap => input.include_offline !== false || cap.availability !== 'offline')
          .map(cap => ({
            node_id: cap.node_id,
            agent_name: cap.agent_name,
            state: cap.availability,
            self: cap.node_id === agent,
            last_heartbeat: cap.last_heartbeat,
            models_loaded: cap.capabilities.inference.models_loaded,
            cpu_cores: cap.capabilities.compute.cpu_cores,
            ram_gb: cap.capabilities.compute.ram_gb,
            latency_region: cap.network.latency_region
          }))
        return { peers, connected: c.mesh.peers().length }
      }
    }),
    defineOperation({
      name: 'holochain.install_dna',
      description: 'Install application DNA: a bundled DNA (already part of the flexstack app) or a .happ bundle / happ.yaml on the node; reports the cells (idempotent)',
      input: installDnaInput,
      output: installDnaOutput,
      run: async (input) => {
        const bundled = cellsOf(c.conductor, INSTALLED_APP_ID)
        if (input.dna === INSTALLED_APP_ID || bundled.some(x => x.role === input.dna)) {
          const cells = input.dna === INSTALLED_APP_ID ? bundled : bundled.filter(x => x.role === input.dna)
          return { installed_app_id: INSTALLED_APP_ID, already_installed: true, cell_ids: cells.map(x => x.cell_id), cells }
        }
        const path = input.dna
        const ext = extname(path)
        if (!['.happ', '.yaml', '.yml'].includes(ext)) {
          throw new InvalidInputError(`dna must be a bundled DNA (${[INSTALLED_APP_ID, ...bundled.map(x => x.role)].join(', ')}) or the path of a .happ bundle or happ.yaml`, { field: 'dna' })
        }
        const appId = input.installed_app_id ?? (ext === '.happ' ? basename(path, ext) : basename(path.slice(0, -ext.length).replace(/[/\\]happ$/, '')))
        if (!APP_ID_RE.test(appId)) throw new InvalidInputError('installed_app_id must be 1-128 letters, digits, dots, dashes or underscores', { field: 'installed_app_id' })
        let already = true
        if (!isInstalled(c.conductor, appId)) {
          already = false
          const { network_seed: seed } = await networkProfile(c.network)
          await c.conductor.installApp({ source: { type: 'path', value: path }, agent_key: c.agent, installed_app_id: appId, network_seed: seed })
        }
        await c.conductor.enableApp({ installed_app_id: appId })
        const cells = cellsOf(c.conductor, appId)
        return { installed_app_id: appId, already_installed: already, cell_ids: cells.map(x => x.cell_id), cells }
      }
    })
  ]
}
