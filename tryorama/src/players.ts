/**
 * tryorama's two kinds of player and how each is started: a whole `FlexNode` in this process, or
 * a real `flexnode start` child process. Both are reached the same way afterwards: the Admin and
 * App WebSockets through the unmodified `@holochain/client`, the Admin API's peer requests and
 * the HTTP API, at the ports the node reported when it was ready.
 */
import type { ChildProcess } from 'node:child_process'
import { AdminWebsocket, AppWebsocket, CellType, type AppInfo, type CellId } from '@holochain/client'
import { readRuntimeInfo } from '../../agent/src/cli/runtime.ts'
import { PeerAdminClient } from '../../agent/src/conductor/api/peer-admin-types.ts'
import type { NetworkName } from '../../agent/src/constants.ts'
import { FlexnodeError } from '../../agent/src/errors.ts'
import { silentLogger, type ComponentLogger } from '../../agent/src/logger.ts'
import { FlexNode, type FlexNodeInit, type ReadyInfo } from '../../agent/src/node.ts'
import { TEST_GOSSIP_WHITELIST, TEST_NODE_FLAGS } from '../../fixtures/index.ts'
import { spawnFlexnode, type SpawnedNode } from '../../fixtures/spawn-node.ts'

/** the Origin tryorama's clients send: a non-browser client's own string (browser origins are refused) */
export const TEST_ORIGIN = 'flexnode-tryorama'
const LOOPBACK = '/ip4/127.0.0.1/tcp/0'
export const SCRYPT_N = 2 ** 12
/** a `flexnode start` child must print READY within this, or it is killed and the start fails */
const PROCESS_START_TIMEOUT_MS = 120_000
/** a child asked to stop (SIGTERM) must exit within this, or it is killed and the stop fails */
const PROCESS_STOP_TIMEOUT_MS = 60_000

/** `in-process`: a `FlexNode` in the test's own process; `process`: a `flexnode start` child. */
export type PlayerKind = 'in-process' | 'process'

export interface PlayerOptions {
  /** how this player runs. @default the scenario's kind */
  kind?: PlayerKind
  /** @default 'local' */
  network?: NetworkName
  /** @default 3600: scenarios that watch liveness pass a short one */
  heartbeatIntervalSeconds?: number
  /** @default 500 ms: fast anti-entropy for tests (in-process only; a process runs the node's default) */
  syncIntervalMs?: number
  /** @default 2000 ms (in-process only; a process runs the node's default) */
  republishIntervalMs?: number
  /** @default syncIntervalMs (in-process only; a process runs the node's default) */
  limboLookupIntervalMs?: number
  /** directories of `.gguf` models this player serves (read in place). @default none */
  modelsDirs?: string[]
  /** who may use this player's models (in-process only). @default everyone in the mesh */
  inferencePolicy?: FlexNodeInit['inferencePolicy']
  /** reconcile with each newly connected peer at once (in-process only). @default true */
  syncOnConnect?: boolean
  /**
   * DHT authorities wanted per location. @default 32: scenarios keep full arcs (so `dhtSync`,
   * which waits for equal op sets, holds) unless they ask for sharding with a smaller target
   */
  targetRedundancy?: number
  /** ms between two resizes of the storage arc (in-process only). @default 30000 */
  arcResizeIntervalMs?: number
  /** dial these players at start. @default every live player of the scenario on the same network */
  bootstrapFrom?: AnyPlayer[]
  /** policy admins of the player's mesh (the policy_store DNA property). @default none */
  policyAdmins?: string[]
  /** what the player offers for leases (in-process only). @default its probed machine */
  resourceCapacity?: FlexNodeInit['resourceCapacity']
  /** the vector memory's options (in-process only): shard capacity, sync and ring intervals. @default the node's */
  memory?: FlexNodeInit['memory']
  /** the artifact store's options (in-process only): replication timing, default {min, max}. @default the node's */
  artifacts?: FlexNodeInit['artifacts']
  /** a data dir made by `scenario.prepareAgent()`, so its key is known before the player starts */
  dataDir?: string
  /** the node's logger (in-process only; a process logs warnings on its stderr, see `stderr()`) */
  logger?: ComponentLogger
}

/** Options a `flexnode start` process has no flag for: giving one to a process player is refused. */
const IN_PROCESS_ONLY = ['syncIntervalMs', 'republishIntervalMs', 'limboLookupIntervalMs', 'inferencePolicy', 'syncOnConnect', 'arcResizeIntervalMs', 'logger', 'resourceCapacity', 'memory', 'artifacts'] as const
/** the default target redundancy of a scenario: high enough that arcs stay full */
const FULL_ARCS_TARGET = 32

export interface PlayerCell {
  cell_id: CellId
  callZome: <T = unknown>(zome: string, fn: string, payload?: unknown) => Promise<T>
}

/**
 * What every player offers, in process or as a child process: a scenario written against it
 * runs either way. Everything here goes through the node's real interfaces.
 */
export interface AnyPlayer {
  readonly kind: PlayerKind
  readonly name: string
  readonly dataDir: string
  readonly options: PlayerOptions
  /** what the running node reported when ready (ports, addresses, keys); renewed by a restart */
  info: ReadyInfo
  admin: AdminWebsocket
  app: AppWebsocket
  /** the Admin API's peer requests (`list_peers`, `block_peers`, …) over `admin` */
  peerAdmin: PeerAdminClient
  cells: Record<string, PlayerCell>
  readonly agentPubKey: Uint8Array
  readonly peerId: string
  alive: boolean
}

/** A player in this process: its `FlexNode` (and so the node's internals) is at hand. */
export interface Player extends AnyPlayer {
  readonly kind: 'in-process'
  node: FlexNode
}

/**
 * A player that is a real `flexnode start` child process, as users run nodes: loopback only, no
 * mDNS, no demo model, one thread per model, warnings on stderr. It runs the node's own sync and
 * republish intervals, and keeps gossipsub's IP-colocation penalty (there is no flag for either),
 * so keep process scenarios to about a dozen players on 127.0.0.1.
 */
export interface ProcessPlayer extends AnyPlayer {
  readonly kind: 'process'
  /** the child of the current run */
  process: ChildProcess
  /** stopped with SIGSTOP (`scenario.freeze`) and not yet continued */
  frozen: boolean
  /** how the previous run ended: its exit code (0 = a clean stop) or the signal that ended it */
  lastExit?: number | string
  /** what the current run wrote on stderr (its warnings and errors) */
  stderr: () => string
}

export type PlayerOf<K extends PlayerKind> = K extends 'process' ? ProcessPlayer : Player

/** A player cannot do what was asked: freeze an in-process player, start or stop a process. */
export class PlayerOperationError extends FlexnodeError {
  static override readonly name = 'PlayerOperationError'
  readonly operation: string
  readonly player: string

  constructor (operation: string, player: string, reason: string) {
    super(`${operation} ${player}: ${reason}`)
    this.operation = operation
    this.player = player
  }
}

/** The node's interfaces as a client sees them: admin and app sockets, the cells of its app. */
export async function connect (info: ReadyInfo): Promise<Pick<AnyPlayer, 'admin' | 'app' | 'cells' | 'peerAdmin'>> {
  const admin = await AdminWebsocket.connect({ url: new URL(`ws://127.0.0.1:${info.admin_port}`), wsClientOptions: { origin: TEST_ORIGIN } })
  const { token } = await admin.issueAppAuthenticationToken({ installed_app_id: info.installed_app_id })
  const app = await AppWebsocket.connect({ url: new URL(`ws://127.0.0.1:${info.app_port}`), token, wsClientOptions: { origin: TEST_ORIGIN } })
  const appInfo: AppInfo = await app.appInfo()
  const cells: Record<string, PlayerCell> = {}
  for (const [role, infos] of Object.entries(appInfo.cell_info)) {
    const cell = infos.find(c => c.type === CellType.Provisioned)
    if (cell === undefined || cell.type !== CellType.Provisioned) continue
    const cellId = cell.value.cell_id
    let authorized: Promise<void> | undefined
    cells[role] = {
      cell_id: cellId,
      callZome: async <T>(zome: string, fn: string, payload: unknown = null): Promise<T> => {
        authorized ??= admin.authorizeSigningCredentials(cellId)
        await authorized
        return await app.callZome({ cell_id: cellId, zome_name: zome, fn_name: fn, payload }) as T
      }
    }
  }
  return { admin, app, cells, peerAdmin: new PeerAdminClient(admin) }
}

/** Close a player's sockets (before its node stops). */
export async function disconnect (player: AnyPlayer): Promise<void> {
  await player.app.client.close().catch(() => {})
  await player.admin.client.close().catch(() => {})
}

export interface NodeStart {
  dataDir: string
  name: string
  options: PlayerOptions
  /** multiaddrs to dial at start */
  bootstrap: string[]
}

export async function startInProcess (s: NodeStart): Promise<FlexNode> {
  const { options } = s
  return await FlexNode.start({
    dataDir: s.dataDir,
    network: options.network ?? 'local',
    agentName: s.name,
    listen: [LOOPBACK],
    bootstrap: s.bootstrap,
    mdns: false,
    // many players on one loopback address: exempt it from gossipsub's IP-colocation penalty
    gossipColocationWhitelist: [...TEST_GOSSIP_WHITELIST],
    heartbeatIntervalSeconds: options.heartbeatIntervalSeconds ?? 3600,
    syncIntervalMs: options.syncIntervalMs ?? 500,
    syncOnConnect: options.syncOnConnect,
    targetRedundancy: options.targetRedundancy ?? FULL_ARCS_TARGET,
    arcResizeIntervalMs: options.arcResizeIntervalMs,
    republishIntervalMs: options.republishIntervalMs ?? 2000,
    limboLookupIntervalMs: options.limboLookupIntervalMs,
    scryptN: SCRYPT_N,
    policyAdmins: options.policyAdmins,
    modelsDirs: options.modelsDirs,
    inferencePolicy: options.inferencePolicy,
    resourceCapacity: options.resourceCapacity,
    memory: options.memory,
    artifacts: options.artifacts,
    wasmThreads: 1,
    generateDefaultModel: false,
    preloadModels: options.modelsDirs !== undefined,
    gpu: false,
    threads: 1,
    logger: options.logger ?? silentLogger()
  })
}

/** The `flexnode start` command line of a process player. */
function startArgs (s: NodeStart): string[] {
  const { options } = s
  const given = IN_PROCESS_ONLY.filter(k => options[k] !== undefined)
  if (given.length > 0) throw new PlayerOperationError('start', s.name, `a flexnode start process has no flag for ${given.join(', ')}`)
  return [
    'start',
    '--data-dir', s.dataDir,
    '--network', options.network ?? 'local',
    '--agent-name', s.name,
    ...TEST_NODE_FLAGS,
    ...s.bootstrap.flatMap(a => ['--bootstrap', a]),
    '--heartbeat-interval', String(options.heartbeatIntervalSeconds ?? 3600),
    '--target-redundancy', String(options.targetRedundancy ?? FULL_ARCS_TARGET),
    '--no-demo-model',
    '--gpu', 'false',
    '--threads', '1',
    ...(options.modelsDirs ?? []).flatMap(d => ['--models-dir', d]),
    ...(options.policyAdmins ?? []).flatMap(k => ['--policy-admin', k]),
    '--log-level', 'warn'
  ]
}

/** Resolves with `p`, or rejects with a PlayerOperationError after `ms`. */
async function within<T> (p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(onTimeout()) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

export interface StartedProcess {
  spawned: SpawnedNode
  info: ReadyInfo
}

/**
 * Run `flexnode start` and wait for its READY line; the ports come from the runtime file it
 * wrote into its data dir (checked against READY and the child's pid).
 */
export async function startProcess (s: NodeStart): Promise<StartedProcess> {
  const spawned = spawnFlexnode(startArgs(s))
  const failed = (reason: string): PlayerOperationError => new PlayerOperationError('start', s.name, `${reason}\n${spawned.stderr().slice(-4000)}`)
  try {
    const ready = await within(spawned.ready, PROCESS_START_TIMEOUT_MS, () => failed(`no READY line within ${PROCESS_START_TIMEOUT_MS} ms`))
    const info = await readRuntimeInfo(s.dataDir)
    if (info.pid !== spawned.proc.pid || info.agent_pub_key !== ready.agent_pub_key || info.admin_port !== ready.admin_port) {
      throw failed(`the runtime file of ${s.dataDir} does not match the READY line of pid ${String(spawned.proc.pid)}`)
    }
    return { spawned, info }
  } catch (err) {
    spawned.proc.kill('SIGKILL')
    await spawned.exit
    throw err instanceof PlayerOperationError ? err : failed(err instanceof Error ? err.message : String(err))
  }
}

/**
 * End a process player's run: SIGTERM (a clean stop, bounded by PROCESS_STOP_TIMEOUT_MS) or
 * SIGKILL (a crash). A frozen player is continued first, so it can stop cleanly.
 */
export async function stopProcess (player: ProcessPlayer, exit: Promise<number | string>, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  const proc = player.process
  if (proc.exitCode === null && proc.signalCode === null) {
    proc.kill(signal)
    if (player.frozen) proc.kill('SIGCONT')
  }
  player.frozen = false
  try {
    player.lastExit = await within(exit, PROCESS_STOP_TIMEOUT_MS, () => new PlayerOperationError('kill', player.name, `no exit within ${PROCESS_STOP_TIMEOUT_MS} ms of ${signal}; killed`))
  } catch (err) {
    proc.kill('SIGKILL')
    player.lastExit = await exit
    throw err
  }
}
