/**
 * tryorama: multi-node scenarios for flexnode, in the style of Holochain's tryorama.
 *
 * Each player is a real flexnode agent (its own data dir, embedded conductor and libp2p node on
 * 127.0.0.1) driven through the real `@holochain/client`. Players find each other by explicit
 * loopback bootstrap addresses, never by mDNS.
 *
 * ```ts
 * await runScenario(async scenario => {
 *   const [alice, bob] = await scenario.addPlayers(2)
 *   await dhtSync([alice, bob], alice.cells.agent_registry.cell_id[0])
 *   const cap = await bob.cells.agent_registry.callZome('capabilities', 'get_capability', alice.agentPubKey)
 * })
 * ```
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AdminWebsocket, AppWebsocket, CellType, type AppInfo, type CellId } from '@holochain/client'
import type { NetworkName } from '../../agent/src/constants.ts'
import { encodeHash } from '../../agent/src/holo/hash.ts'
import { EmbeddedConductor } from '../../agent/src/conductor/conductor.ts'
import { Keystore } from '../../agent/src/identity/keystore.ts'
import { silentLogger, type ComponentLogger } from '../../agent/src/logger.ts'
import { FlexNode, type FlexNodeInit } from '../../agent/src/node.ts'
import { waitUntil as waitFor } from '../../fixtures/wait.ts'

/** the Origin tryorama's clients send: a non-browser client's own string (browser origins are refused) */
export const TEST_ORIGIN = 'flexnode-tryorama'
const LOOPBACK = '/ip4/127.0.0.1/tcp/0'
const SCRYPT_N = 2 ** 12

export interface PlayerOptions {
  /** @default 'local' */
  network?: NetworkName
  /** @default 3600: scenarios that watch liveness pass a short one */
  heartbeatIntervalSeconds?: number
  /** @default 500 ms: fast anti-entropy for tests */
  syncIntervalMs?: number
  /** @default 2000 ms */
  republishIntervalMs?: number
  /** directories of `.gguf` models this player serves (read in place). @default none */
  modelsDirs?: string[]
  /** who may use this player's models. @default everyone in the mesh */
  inferencePolicy?: FlexNodeInit['inferencePolicy']
  /** reconcile with each newly connected peer at once. @default true */
  syncOnConnect?: boolean
  /**
   * DHT authorities wanted per location. @default 32: scenarios keep full arcs (so `dhtSync`,
   * which waits for equal op sets, holds) unless they ask for sharding with a smaller target
   */
  targetRedundancy?: number
  /** ms between two resizes of the storage arc. @default 30000 */
  arcResizeIntervalMs?: number
  /** dial these players at start. @default every live player of the scenario on the same network */
  bootstrapFrom?: Player[]
  /** policy admins of the player's mesh (the policy_store DNA property). @default none */
  policyAdmins?: string[]
  /** a data dir made by `scenario.prepareAgent()`, so its key is known before the player starts */
  dataDir?: string
  logger?: ComponentLogger
}

export interface PlayerCell {
  cell_id: CellId
  callZome: <T = unknown>(zome: string, fn: string, payload?: unknown) => Promise<T>
}

export interface Player {
  readonly name: string
  readonly dataDir: string
  readonly options: PlayerOptions
  node: FlexNode
  admin: AdminWebsocket
  app: AppWebsocket
  cells: Record<string, PlayerCell>
  readonly agentPubKey: Uint8Array
  readonly peerId: string
  alive: boolean
}

async function connect (node: FlexNode): Promise<{ admin: AdminWebsocket, app: AppWebsocket, cells: Record<string, PlayerCell> }> {
  const admin = await AdminWebsocket.connect({ url: new URL(`ws://127.0.0.1:${node.info.admin_port}`), wsClientOptions: { origin: TEST_ORIGIN } })
  const { token } = await admin.issueAppAuthenticationToken({ installed_app_id: node.info.installed_app_id })
  const app = await AppWebsocket.connect({ url: new URL(`ws://127.0.0.1:${node.info.app_port}`), token, wsClientOptions: { origin: TEST_ORIGIN } })
  const info: AppInfo = await app.appInfo()
  const cells: Record<string, PlayerCell> = {}
  for (const [role, infos] of Object.entries(info.cell_info)) {
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
  return { admin, app, cells }
}

export class Scenario {
  readonly players: Player[] = []
  private readonly dirs: string[] = []
  private readonly blocked: Array<[Player, Player]> = []

  /**
   * A data dir holding a fresh agent key, for a player started later with `{ dataDir }`: its key
   * can then be named in the scenario's `policyAdmins` (the progenitor pattern).
   */
  async prepareAgent (): Promise<{ dataDir: string, agentPubKey: string }> {
    const dataDir = await mkdtemp(join(tmpdir(), 'tryorama-'))
    this.dirs.push(dataDir)
    const keystore = await Keystore.open({ dataDir, scryptN: SCRYPT_N })
    try {
      // a data dir holds its key and its (still empty) database together: a keystore alone would
      // look like a node whose database was lost, which a start refuses
      const conductor = await EmbeddedConductor.open({ dataDir }, { keystore, logger: silentLogger() })
      await conductor.stop()
      return { dataDir, agentPubKey: encodeHash(keystore.primary.agentPubKey) }
    } finally {
      keystore.dispose()
    }
  }

  /** A new player: a whole flexnode on its own temp data dir, joined to the others. */
  async addPlayer (options: PlayerOptions = {}): Promise<Player> {
    let dataDir = options.dataDir
    if (dataDir === undefined) {
      dataDir = await mkdtemp(join(tmpdir(), 'tryorama-'))
      this.dirs.push(dataDir)
    }
    const name = `player${this.players.length}`
    const node = await this.startNode(dataDir, name, options)
    const { admin, app, cells } = await connect(node)
    const player: Player = { name, dataDir, options, node, admin, app, cells, agentPubKey: node.keystore.primary.agentPubKey, peerId: node.info.peer_id, alive: true }
    this.players.push(player)
    return player
  }

  private async startNode (dataDir: string, name: string, options: PlayerOptions): Promise<FlexNode> {
    const network = options.network ?? 'local'
    const peers = options.bootstrapFrom ?? this.players.filter(p => p.alive && (p.options.network ?? 'local') === network)
    const init: FlexNodeInit = {
      dataDir,
      network,
      agentName: name,
      listen: [LOOPBACK],
      bootstrap: peers.flatMap(p => p.node.info.multiaddrs.slice(0, 1)),
      mdns: false,
      // many players on one loopback address: exempt it from gossipsub's IP-colocation penalty
      gossipColocationWhitelist: ['127.0.0.1', '::1'],
      heartbeatIntervalSeconds: options.heartbeatIntervalSeconds ?? 3600,
      syncIntervalMs: options.syncIntervalMs ?? 500,
      syncOnConnect: options.syncOnConnect,
      targetRedundancy: options.targetRedundancy ?? 32,
      arcResizeIntervalMs: options.arcResizeIntervalMs,
      republishIntervalMs: options.republishIntervalMs ?? 2000,
      scryptN: SCRYPT_N,
      policyAdmins: options.policyAdmins,
      modelsDirs: options.modelsDirs,
      inferencePolicy: options.inferencePolicy,
      generateDefaultModel: false,
      preloadModels: options.modelsDirs !== undefined,
      gpu: false,
      threads: 1,
      logger: options.logger ?? silentLogger()
    }
    return await FlexNode.start(init)
  }

  async addPlayers (n: number, options: PlayerOptions = {}): Promise<Player[]> {
    const out: Player[] = []
    for (let i = 0; i < n; i++) out.push(await this.addPlayer(options))
    return out
  }

  /** Cut every connection between the two groups (a connection gater; no network tricks). */
  partition (a: Player[], b: Player[]): void {
    for (const x of a) {
      for (const y of b) {
        x.node.mesh.block([y.peerId])
        y.node.mesh.block([x.peerId])
        this.blocked.push([x, y])
      }
    }
  }

  /** Lift every partition and re-dial across it. */
  async heal (): Promise<void> {
    const pairs = this.blocked.splice(0)
    for (const [x, y] of pairs) {
      x.node.mesh.unblock([y.peerId])
      y.node.mesh.unblock([x.peerId])
    }
    await Promise.allSettled(pairs.filter(([x, y]) => x.alive && y.alive).map(async ([x, y]) => await x.node.mesh.dial(y.node.info.multiaddrs[0]!)))
  }

  /** Stop a player's node (its data dir stays). */
  async kill (player: Player): Promise<void> {
    if (!player.alive) return
    player.alive = false
    await player.app.client.close().catch(() => {})
    await player.admin.client.close().catch(() => {})
    await player.node.stop()
  }

  /** Start a killed player again on its data dir: same agent key, same chain. */
  async restart (player: Player): Promise<void> {
    if (player.alive) return
    player.node = await this.startNode(player.dataDir, player.name, { ...player.options, bootstrapFrom: this.players.filter(p => p !== player && p.alive) })
    Object.assign(player, await connect(player.node))
    if (encodeHash(player.node.keystore.primary.agentPubKey) !== encodeHash(player.agentPubKey)) throw new Error('restarted player has another agent key')
    player.alive = true
  }

  async cleanUp (): Promise<void> {
    await Promise.allSettled(this.players.map(async p => await this.kill(p)))
    await Promise.allSettled(this.dirs.map(async d => await rm(d, { recursive: true, force: true })))
  }
}

/** Run a scenario and always clean up its players, however it ends. */
export async function runScenario (fn: (scenario: Scenario) => Promise<void>): Promise<void> {
  const scenario = new Scenario()
  try {
    await fn(scenario)
  } finally {
    await scenario.cleanUp()
  }
}

/** `waitUntil` with the harness's longer default timeout (multi-node convergence is slower). */
export async function waitUntil<T> (cond: () => T | Promise<T>, opts: { timeoutMs?: number, intervalMs?: number, what?: string } = {}): Promise<NonNullable<T>> {
  return await waitFor(cond, { timeoutMs: 30_000, intervalMs: 100, ...opts })
}

interface DumpedOps { integration_dump: { integrated: unknown[] } }

/** The identity of an op in a dump: its type and the signature it carries (unique per action). */
function opKeys (dump: DumpedOps): Set<string> {
  const keys = new Set<string>()
  for (const op of dump.integration_dump.integrated) {
    const o = op as { ChainOp?: Record<string, [Uint8Array, ...unknown[]]>, WarrantOp?: { signature: Uint8Array } }
    if (o.ChainOp !== undefined) {
      const [type, body] = Object.entries(o.ChainOp)[0]!
      keys.add(`${type}:${Buffer.from(body[0]).toString('base64')}`)
    } else if (o.WarrantOp !== undefined) {
      keys.add(`Warrant:${Buffer.from(o.WarrantOp.signature).toString('base64')}`)
    }
  }
  return keys
}

/** Integrated op sets of the players for one DNA, through `dump_full_state`. */
export async function integratedOps (players: Player[], dnaHash: Uint8Array): Promise<Array<Set<string>>> {
  return await Promise.all(players.map(async p => {
    const cell = Object.values(p.cells).find(c => encodeHash(c.cell_id[0]) === encodeHash(dnaHash))
    if (cell === undefined) throw new Error(`${p.name} runs no cell of ${encodeHash(dnaHash)}`)
    return opKeys(await p.admin.dumpFullState({ cell_id: cell.cell_id }) as unknown as DumpedOps)
  }))
}

export async function areDhtsSynced (players: Player[], dnaHash: Uint8Array): Promise<boolean> {
  const sets = await integratedOps(players, dnaHash)
  const first = sets[0]
  if (first === undefined) return true
  return sets.every(s => s.size === first.size && [...s].every(k => first.has(k)))
}

/** Wait until every player has integrated the same ops of a DNA. */
export async function dhtSync (players: Player[], dnaHash: Uint8Array, opts: { timeoutMs?: number } = {}): Promise<void> {
  await waitUntil(async () => await areDhtsSynced(players, dnaHash), { timeoutMs: opts.timeoutMs ?? 60_000, intervalMs: 200, what: `DHT sync of ${players.length} players` })
}
