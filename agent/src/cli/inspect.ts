/**
 * `flexnode peers` and `flexnode status`: inspect the node running on a data dir.
 *
 * Both read `<data-dir>/node.json` (written by `flexnode start` once the node is ready, removed
 * when it stops), then talk to that node through its Conductor APIs with the real
 * `@holochain/client`, as any Holochain client would:
 *
 * - Admin API: `agent_info` (connected mesh peers), `list_apps`, `dump_full_state`;
 * - App API: `agent_registry/discovery/query_peers`, signed with fresh signing credentials
 *   (an app authentication token, then `authorizeSigningCredentials` for that one function).
 *
 * ```
 * flexnode peers --data-dir ~/.flexnode          # a table
 * flexnode status --json                          # one JSON document
 * ```
 */
import { AdminWebsocket, AppWebsocket, CellType, encodeHashToBase64, type AppInfo, type CellId } from '@holochain/client'
import { AVAILABILITY as AVAILABILITIES, type Availability, type GpuCapability, type NodeCapability, type NodeLoad } from '../../../zomes-ts/agent_registry/types.ts'
import { AgentRegistryClient } from '../../../zomes-ts/agent_registry/client.ts'
import type { InspectOptions } from '../config.ts'
import { FlexnodeError, errorMessage } from '../errors.ts'
import { NodeNotRunningError, readRuntimeInfo, renderTable, shortId, type RuntimeInfo } from './runtime.ts'

export { NodeNotRunningError, readRuntimeInfo, renderTable, shortId, type RuntimeInfo }

/** The Origin header the CLI sends to the node's Conductor API interfaces. */
export const CLI_ORIGIN = 'flexnode-cli'
/** Every Conductor API exchange (and the whole connect) gives up after this. */
const REQUEST_TIMEOUT_MS = 15_000
const REGISTRY_ROLE = 'agent_registry'

async function withTimeout<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new FlexnodeError(`${what} timed out after ${ms} ms`)) }, ms)
    })])
  } finally {
    clearTimeout(timer)
  }
}

// ---------------------------------------------------------------------------------------------
// talking to the node

export interface ConnectedPeer { agent_pub_key: string, peer_id: string }

/** A connection to the running node's Conductor APIs. */
class NodeSession {
  readonly info: RuntimeInfo
  readonly admin: AdminWebsocket
  private app: AppWebsocket | undefined

  private constructor (info: RuntimeInfo, admin: AdminWebsocket) {
    this.info = info
    this.admin = admin
  }

  static async open (dataDir: string): Promise<NodeSession> {
    const info = await readRuntimeInfo(dataDir)
    let admin: AdminWebsocket
    try {
      admin = await withTimeout(AdminWebsocket.connect({
        url: new URL(`ws://127.0.0.1:${info.admin_port}`),
        wsClientOptions: { origin: CLI_ORIGIN },
        defaultTimeout: REQUEST_TIMEOUT_MS
      }), REQUEST_TIMEOUT_MS, `connecting to the admin port ${info.admin_port}`)
    } catch (err) {
      throw new NodeNotRunningError(dataDir, `pid ${info.pid} is alive but its admin port ${info.admin_port} does not answer: ${errorMessage(err)}`)
    }
    return new NodeSession(info, admin)
  }

  /** Mesh peers the node is connected to (the conductor's `agent_info`). */
  async connectedPeers (): Promise<ConnectedPeer[]> {
    const infos = await this.admin.agentInfo({ dna_hashes: null })
    const out: ConnectedPeer[] = []
    for (const s of infos) {
      try {
        const p = JSON.parse(s) as Partial<ConnectedPeer>
        if (typeof p.agent_pub_key === 'string' && typeof p.peer_id === 'string') out.push({ agent_pub_key: p.agent_pub_key, peer_id: p.peer_id })
      } catch { /* an agent info this CLI does not understand is skipped */ }
    }
    return out
  }

  async listApps (): Promise<AppInfo[]> {
    return await this.admin.listApps({})
  }

  /** Every NodeCapability the node's agent_registry knows (`discovery/query_peers`). */
  async queryPeers (): Promise<NodeCapability[]> {
    if (this.app === undefined) {
      const { token } = await this.admin.issueAppAuthenticationToken({ installed_app_id: this.info.installed_app_id, single_use: true, expiry_seconds: 60 })
      this.app = await withTimeout(AppWebsocket.connect({
        url: new URL(`ws://127.0.0.1:${this.info.app_port}`),
        token,
        wsClientOptions: { origin: CLI_ORIGIN },
        defaultTimeout: REQUEST_TIMEOUT_MS
      }), REQUEST_TIMEOUT_MS, `connecting to the app port ${this.info.app_port}`)
    }
    const cellId = provisionedCell(await this.app.appInfo(), REGISTRY_ROLE)
    if (cellId === undefined) throw new FlexnodeError(`app ${this.info.installed_app_id} has no ${REGISTRY_ROLE} cell`)
    // least privilege: the signing key may call this one function only
    await this.admin.authorizeSigningCredentials(cellId, { type: 'listed', value: [['discovery', 'query_peers']] })
    const caps: unknown = await new AgentRegistryClient(this.app, { cell_id: cellId }).queryPeers(null)
    if (!Array.isArray(caps)) throw new FlexnodeError('query_peers returned something other than a list')
    return caps as NodeCapability[]
  }

  async close (): Promise<void> {
    await Promise.allSettled([this.app?.client.close(), this.admin.client.close()])
  }
}

function provisionedCell (info: AppInfo | null, role: string): CellId | undefined {
  const cell = info?.cell_info[role]?.find(c => c.type === CellType.Provisioned)
  return cell?.type === CellType.Provisioned ? cell.value.cell_id : undefined
}

async function withSession<T> (dataDir: string, fn: (s: NodeSession) => Promise<T>): Promise<T> {
  const session = await NodeSession.open(dataDir)
  try {
    return await fn(session)
  } finally {
    await session.close()
  }
}

// ---------------------------------------------------------------------------------------------
// peers

export interface PeerRow {
  agent_name: string | null
  /** the agent's AgentPubKey (`uhCAk…`) */
  node_id: string
  /** libp2p PeerId, when connected (or this node's own) */
  peer_id: string | null
  /** this is the node being inspected */
  self: boolean
  /** a mesh peer the node is connected to right now */
  connected: boolean
  /** null: connected, but its NodeCapability has not reached this node yet */
  availability: Availability | null
  cpu_cores: number | null
  cpu_arch: string | null
  ram_gb: number | null
  gpu: GpuCapability | null
  load: NodeLoad | null
  last_heartbeat: string | null
  /** seconds since last_heartbeat, at the time of the query */
  last_heartbeat_age_seconds: number | null
}

export interface PeersReport {
  data_dir: string
  agent_pub_key: string
  peer_id: string
  connected_peers: number
  peers: PeerRow[]
}

/** Merge the registry's NodeCapabilities with the connected mesh peers: one row per agent. */
export function mergePeers (caps: NodeCapability[], connected: ConnectedPeer[], self: { agent_pub_key: string, peer_id: string }, nowMs = Date.now()): PeerRow[] {
  const byAgent = new Map(connected.map(p => [p.agent_pub_key, p]))
  const rows: PeerRow[] = []
  const seen = new Set<string>()
  for (const cap of caps) {
    if (seen.has(cap.node_id)) continue
    seen.add(cap.node_id)
    const isSelf = cap.node_id === self.agent_pub_key
    const peer = byAgent.get(cap.node_id)
    const c = cap.capabilities?.compute
    const beat = Date.parse(cap.last_heartbeat)
    rows.push({
      agent_name: cap.agent_name,
      node_id: cap.node_id,
      peer_id: isSelf ? self.peer_id : peer?.peer_id ?? null,
      self: isSelf,
      connected: peer !== undefined,
      availability: cap.availability,
      cpu_cores: c?.cpu_cores ?? null,
      cpu_arch: c?.cpu_arch ?? null,
      ram_gb: c?.ram_gb ?? null,
      gpu: c?.gpu ?? null,
      load: cap.load ?? null,
      last_heartbeat: cap.last_heartbeat,
      last_heartbeat_age_seconds: Number.isFinite(beat) ? Math.max(0, Math.round((nowMs - beat) / 1000)) : null
    })
  }
  for (const p of connected) {
    if (seen.has(p.agent_pub_key)) continue
    seen.add(p.agent_pub_key)
    rows.push({ agent_name: null, node_id: p.agent_pub_key, peer_id: p.peer_id, self: false, connected: true, availability: null, cpu_cores: null, cpu_arch: null, ram_gb: null, gpu: null, load: null, last_heartbeat: null, last_heartbeat_age_seconds: null })
  }
  return rows
}

export async function collectPeers (dataDir: string): Promise<PeersReport> {
  return await withSession(dataDir, async s => {
    const [connected, caps] = await Promise.all([s.connectedPeers(), s.queryPeers()])
    return {
      data_dir: s.info.data_dir,
      agent_pub_key: s.info.agent_pub_key,
      peer_id: s.info.peer_id,
      connected_peers: connected.length,
      peers: mergePeers(caps, connected, s.info)
    }
  })
}

/** `uhCAkAbCdEfGh…WxYz12`: enough to tell keys apart in a table. */

/** `42s`, `5m`, `3h`, `2d`. */
export function formatAge (seconds: number | null): string {
  if (seconds === null) return '-'
  if (seconds < 60) return `${seconds}s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`
  return `${Math.floor(seconds / 86400)}d`
}

const num = (n: number | null, digits = 1): string => n === null ? '-' : String(Number(n.toFixed(digits)))

/** Left-aligned columns separated by two spaces; trailing spaces trimmed. */

export function renderPeers (report: PeersReport): string {
  const rows = report.peers.map(p => [
    p.agent_name ?? '?',
    shortId(p.node_id),
    p.availability ?? 'unknown',
    p.self ? 'self' : p.connected ? 'yes' : 'no',
    p.cpu_cores === null ? '-' : `${p.cpu_cores}/${p.cpu_arch ?? '?'}`,
    num(p.ram_gb),
    p.gpu === null ? '-' : `${p.gpu.vendor} ${p.gpu.model} ${num(p.gpu.vram_gb)}GB`,
    p.load === null ? '-' : `${Math.round(p.load.cpu_percent)}%`,
    p.last_heartbeat_age_seconds === null ? '-' : `${formatAge(p.last_heartbeat_age_seconds)} ago`
  ])
  const table = renderTable(['AGENT', 'NODE ID', 'AVAILABILITY', 'CONNECTED', 'CPU', 'RAM GB', 'GPU', 'LOAD CPU', 'LAST HEARTBEAT'], rows)
  const known = report.peers.filter(p => p.availability !== null).length
  return `${table}\n${known} known node${known === 1 ? '' : 's'}, ${report.connected_peers} connected peer${report.connected_peers === 1 ? '' : 's'}\n`
}

export async function peersCommand (opts: InspectOptions): Promise<number> {
  const report = await collectPeers(opts.dataDir)
  process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : renderPeers(report))
  return 0
}

// ---------------------------------------------------------------------------------------------
// status

export interface DnaStatus {
  app: string
  role: string
  dna_hash: string
  integrated_ops: number | null
  validation_limbo: number | null
  error?: string
}

export interface StatusReport {
  network: string
  agent_pub_key: string
  peer_id: string
  multiaddrs: string[]
  admin_port: number
  app_port: number
  /** the HTTP API's port (the OpenAI-compatible API, MCP, /metrics, the dashboard); null from a node that wrote none */
  http_port: number | null
  pid: number
  started_at: string | null
  data_dir: string
  installed_app_id: string
  apps: Array<{ installed_app_id: string, status: string }>
  connected_peers: number
  connected: ConnectedPeer[]
  /** NodeCapabilities the registry knows, by availability (this node included); null if the query failed */
  known_nodes: ({ total: number } & Record<Availability, number>) | null
  known_nodes_error?: string
  /** this node's DHT storage arc (the same for every DNA), from the Admin API's dump_network_metrics; null if that failed */
  storage_arc: { arc: [number, number] | null, sectors: number, authorities_seen: number, target_redundancy: number } | null
  dnas: DnaStatus[]
}

function appStatus (s: AppInfo['status']): string {
  const st = s as { type: string, value?: { type?: string, value?: unknown } }
  if (st.type !== 'disabled' || st.value?.type === undefined) return st.type
  return st.value.value === undefined ? `disabled (${st.value.type})` : `disabled (${st.value.type}: ${String(st.value.value)})`
}

interface DumpedState { integration_dump?: { integrated?: unknown[], validation_limbo?: unknown[] } }

export async function collectStatus (dataDir: string): Promise<StatusReport> {
  return await withSession(dataDir, async s => {
    const [apps, connected] = await Promise.all([s.listApps(), s.connectedPeers()])
    let knownNodes: StatusReport['known_nodes'] = null
    let knownNodesError: string | undefined
    try {
      const caps = await s.queryPeers()
      knownNodes = { total: caps.length, online: 0, busy: 0, draining: 0, offline: 0 }
      for (const c of caps) if (AVAILABILITIES.includes(c.availability)) knownNodes[c.availability]++
    } catch (err) {
      knownNodesError = errorMessage(err)
    }
    let storageArc: StatusReport['storage_arc'] = null
    try {
      const metrics = Object.values(await s.admin.dumpNetworkMetrics({ include_dht_summary: false }) as unknown as Record<string, { local_agents: Array<{ storage_arc: [number, number] | null }>, flexnode?: { arc_sectors: number, authorities_seen: number, target_redundancy: number } }>)[0]
      if (metrics?.flexnode !== undefined) {
        storageArc = { arc: metrics.local_agents[0]?.storage_arc ?? null, sectors: metrics.flexnode.arc_sectors, authorities_seen: metrics.flexnode.authorities_seen, target_redundancy: metrics.flexnode.target_redundancy }
      }
    } catch { /* a node without network metrics: no arc line */ }
    const dnas: DnaStatus[] = []
    for (const app of apps) {
      for (const [role, cells] of Object.entries(app.cell_info)) {
        for (const cell of cells) {
          if (cell.type !== CellType.Provisioned) continue
          const cellId = cell.value.cell_id
          const row: DnaStatus = { app: app.installed_app_id, role, dna_hash: encodeHashToBase64(cellId[0]), integrated_ops: null, validation_limbo: null }
          try {
            const dump = await s.admin.dumpFullState({ cell_id: cellId }) as unknown as DumpedState
            row.integrated_ops = dump.integration_dump?.integrated?.length ?? 0
            row.validation_limbo = dump.integration_dump?.validation_limbo?.length ?? 0
          } catch (err) {
            row.error = errorMessage(err)
          }
          dnas.push(row)
        }
      }
    }
    const i = s.info
    return {
      network: i.network,
      agent_pub_key: i.agent_pub_key,
      peer_id: i.peer_id,
      multiaddrs: i.multiaddrs,
      admin_port: i.admin_port,
      app_port: i.app_port,
      http_port: typeof i.http_port === 'number' ? i.http_port : null,
      pid: i.pid,
      started_at: i.started_at ?? null,
      data_dir: i.data_dir,
      installed_app_id: i.installed_app_id,
      apps: apps.map(a => ({ installed_app_id: a.installed_app_id, status: appStatus(a.status) })),
      connected_peers: connected.length,
      connected,
      known_nodes: knownNodes,
      ...(knownNodesError !== undefined ? { known_nodes_error: knownNodesError } : {}),
      storage_arc: storageArc,
      dnas
    }
  })
}

export function renderStatus (r: StatusReport): string {
  const fields: Array<[string, string[]]> = [
    ['network', [r.network]],
    ['agent', [r.agent_pub_key]],
    ['peer id', [r.peer_id]],
    ['multiaddrs', r.multiaddrs.length > 0 ? r.multiaddrs : ['-']],
    ['admin port', [String(r.admin_port)]],
    ['app port', [String(r.app_port)]],
    ['http port', [r.http_port === null ? '-' : String(r.http_port)]],
    ['pid', [r.started_at === null ? String(r.pid) : `${r.pid} (started ${r.started_at})`]],
    ['data dir', [r.data_dir]],
    ['apps', r.apps.length > 0 ? r.apps.map(a => `${a.installed_app_id}  ${a.status}`) : ['-']],
    ['peers', [`${r.connected_peers} connected`]],
    ['known nodes', [r.known_nodes === null
      ? `unavailable (${r.known_nodes_error ?? 'unknown error'})`
      : `${r.known_nodes.total} (${AVAILABILITIES.map(a => `${a} ${r.known_nodes![a]}`).join(', ')})`]],
    ['storage arc', [r.storage_arc === null
      ? 'unavailable'
      : `${r.storage_arc.sectors}/512 sectors${r.storage_arc.arc === null ? '' : ` [${r.storage_arc.arc[0]}, ${r.storage_arc.arc[1]}]`}, ` +
        `${r.storage_arc.authorities_seen} authorities seen for it (target ${r.storage_arc.target_redundancy})`]]
  ]
  const width = Math.max(...fields.map(([k]) => k.length))
  const lines = fields.flatMap(([k, vs]) => vs.map((v, i) => `${(i === 0 ? k : '').padEnd(width)}  ${v}`))
  const dnaTable = renderTable(['DNA', 'HASH', 'INTEGRATED OPS', 'VALIDATION LIMBO'], r.dnas.map(d => [
    r.apps.length > 1 ? `${d.app}/${d.role}` : d.role,
    shortId(d.dna_hash),
    d.error === undefined ? String(d.integrated_ops) : `error: ${d.error}`,
    d.error === undefined ? String(d.validation_limbo) : '-'
  ]))
  return `${lines.join('\n')}\n\n${dnaTable}`
}

export async function statusCommand (opts: InspectOptions): Promise<number> {
  const report = await collectStatus(opts.dataDir)
  process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : renderStatus(report))
  return 0
}
