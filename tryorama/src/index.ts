/**
 * tryorama: multi-node scenarios for flexnode, in the style of Holochain's tryorama.
 *
 * Each player is a real flexnode agent (its own data dir, embedded conductor and libp2p node on
 * 127.0.0.1) driven through the real `@holochain/client`. A player runs in this process (a
 * `FlexNode`, the default) or as a real `flexnode start` child process, the way users run nodes;
 * scenarios written against `AnyPlayer` run unchanged either way. Players find each other by
 * explicit loopback bootstrap addresses, never by mDNS; partitions are connection gating through
 * the Admin API's `block_peers` / `unblock_peers`.
 *
 * ```ts
 * await runScenario(async scenario => {
 *   const [alice, bob] = await scenario.addPlayers(2)
 *   await dhtSync([alice, bob], alice.cells.agent_registry.cell_id[0])
 *   const cap = await bob.cells.agent_registry.callZome('capabilities', 'get_capability', alice.agentPubKey)
 * }, { kind: 'process' })   // without it: in-process players
 * ```
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeHash, encodeHash } from '../../agent/src/holo/hash.ts'
import { EmbeddedConductor } from '../../agent/src/conductor/conductor.ts'
import { Keystore } from '../../agent/src/identity/keystore.ts'
import { silentLogger } from '../../agent/src/logger.ts'
import { waitUntil as waitFor } from '../../fixtures/wait.ts'
import {
  connect, disconnect, PlayerOperationError, SCRYPT_N, startInProcess, startProcess, stopProcess,
  type AnyPlayer, type NodeStart, type Player, type PlayerCell, type PlayerKind, type PlayerOf, type PlayerOptions, type ProcessPlayer
} from './players.ts'

export { PlayerOperationError, TEST_ORIGIN, type AnyPlayer, type Player, type PlayerCell, type PlayerKind, type PlayerOptions, type ProcessPlayer } from './players.ts'

export interface ScenarioOptions<K extends PlayerKind = PlayerKind> {
  /** how `addPlayer` runs players unless told otherwise. @default 'in-process' */
  kind?: K
}

export interface KillOptions {
  /**
   * SIGTERM stops the node cleanly; SIGKILL crashes it (process players only: an in-process
   * player cannot be crashed without its test). @default 'SIGTERM'
   */
  signal?: 'SIGTERM' | 'SIGKILL'
}

export class Scenario<P extends AnyPlayer = Player> {
  readonly kind: PlayerKind
  readonly players: AnyPlayer[] = []
  private readonly dirs: string[] = []
  /** gated pairs: the first blocks the second (both directions are listed) */
  private readonly blocked: Array<[AnyPlayer, AnyPlayer]> = []
  /** the exit of each process player's current run */
  private readonly exits = new Map<ProcessPlayer, Promise<number | string>>()
  /** should the test's process end without cleanUp, its children do not outlive it */
  private readonly onExit = (): void => { for (const p of this.exits.keys()) p.process.kill('SIGKILL') }

  constructor (options: ScenarioOptions = {}) {
    this.kind = options.kind ?? 'in-process'
  }

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
  async addPlayer (options?: PlayerOptions & { kind?: undefined }): Promise<P>
  async addPlayer<K extends PlayerKind> (options: PlayerOptions & { kind: K }): Promise<PlayerOf<K>>
  async addPlayer (options: PlayerOptions = {}): Promise<AnyPlayer> {
    let dataDir = options.dataDir
    if (dataDir === undefined) {
      dataDir = await mkdtemp(join(tmpdir(), 'tryorama-'))
      this.dirs.push(dataDir)
    }
    const name = `player${this.players.length}`
    const network = options.network ?? 'local'
    const peers = options.bootstrapFrom ?? this.players.filter(p => p.alive && (p.options.network ?? 'local') === network)
    const start: NodeStart = { dataDir, name, options, bootstrap: peers.flatMap(p => p.info.multiaddrs.slice(0, 1)) }
    const player = (options.kind ?? this.kind) === 'process' ? await this.startProcessPlayer(start) : await this.startInProcessPlayer(start)
    this.players.push(player)
    return player
  }

  async addPlayers (n: number, options?: PlayerOptions & { kind?: undefined }): Promise<P[]>
  async addPlayers<K extends PlayerKind> (n: number, options: PlayerOptions & { kind: K }): Promise<Array<PlayerOf<K>>>
  async addPlayers (n: number, options: PlayerOptions = {}): Promise<AnyPlayer[]> {
    const out: AnyPlayer[] = []
    for (let i = 0; i < n; i++) out.push(await this.addPlayer(options as PlayerOptions & { kind: PlayerKind }))
    return out
  }

  private async startInProcessPlayer (s: NodeStart): Promise<Player> {
    const node = await startInProcess(s)
    const info = node.info
    const clients = await connect(info).catch(async (err: unknown) => { await node.stop(); throw err })
    return { kind: 'in-process', name: s.name, dataDir: s.dataDir, options: s.options, node, info, ...clients, agentPubKey: node.keystore.primary.agentPubKey, peerId: info.peer_id, alive: true }
  }

  private async startProcessPlayer (s: NodeStart): Promise<ProcessPlayer> {
    const { spawned, info } = await startProcess(s)
    const clients = await connect(info).catch(async (err: unknown) => { spawned.proc.kill('SIGKILL'); await spawned.exit; throw err })
    if (this.exits.size === 0) process.once('exit', this.onExit)
    const player: ProcessPlayer = {
      kind: 'process',
      name: s.name,
      dataDir: s.dataDir,
      options: s.options,
      info,
      ...clients,
      agentPubKey: decodeHash(info.agent_pub_key, 'Agent'),
      peerId: info.peer_id,
      alive: true,
      process: spawned.proc,
      frozen: false,
      stderr: spawned.stderr
    }
    this.exits.set(player, spawned.exit)
    return player
  }

  /** The player answers its interfaces: alive and not frozen. */
  private reachable (player: AnyPlayer, operation: string): void {
    if (!player.alive) throw new PlayerOperationError(operation, player.name, 'it is not running')
    if (player.kind === 'process' && (player as ProcessPlayer).frozen) throw new PlayerOperationError(operation, player.name, 'it is frozen: thaw it first')
  }

  /**
   * Cut every connection between the two groups: each player's node blocks the other group
   * (connection gating through the Admin API's `block_peers`; no network tricks).
   */
  async partition (a: AnyPlayer[], b: AnyPlayer[]): Promise<void> {
    for (const p of [...a, ...b]) this.reachable(p, 'partition')
    const gate = async (side: AnyPlayer[], other: AnyPlayer[]): Promise<void> => {
      await Promise.all(side.map(async x => { await x.peerAdmin.blockPeers(other.map(y => y.peerId)) }))
      for (const x of side) for (const y of other) this.blocked.push([x, y])
    }
    await gate(a, b)
    await gate(b, a)
  }

  /** Lift every partition (`unblock_peers`) and re-dial across it (`connect_peer`). */
  async heal (): Promise<void> {
    const pairs = this.blocked.filter(([x, y]) => x.alive && y.alive)
    const byPlayer = new Map<AnyPlayer, string[]>()
    for (const [x, y] of pairs) byPlayer.set(x, [...byPlayer.get(x) ?? [], y.peerId])
    for (const x of byPlayer.keys()) this.reachable(x, 'heal')
    this.blocked.length = 0
    await Promise.all([...byPlayer].map(async ([x, ids]) => { await x.peerAdmin.unblockPeers(ids) }))
    await Promise.allSettled(pairs.map(async ([x, y]) => await x.peerAdmin.connectPeer(y.info.multiaddrs[0]!)))
  }

  /** Freeze a process player (SIGSTOP): its connections stay open, it answers nothing. */
  async freeze (player: AnyPlayer): Promise<void> {
    const p = this.processPlayer(player, 'freeze')
    this.reachable(p, 'freeze')
    p.process.kill('SIGSTOP')
    p.frozen = true
  }

  /** Continue a frozen process player (SIGCONT). */
  async thaw (player: AnyPlayer): Promise<void> {
    const p = this.processPlayer(player, 'thaw')
    if (!p.frozen) return
    p.process.kill('SIGCONT')
    p.frozen = false
  }

  private processPlayer (player: AnyPlayer, operation: string): ProcessPlayer {
    if (player.kind !== 'process') throw new PlayerOperationError(operation, player.name, 'only a process player can be frozen or crashed: this one runs in the test\'s own process')
    return player as ProcessPlayer
  }

  /** Stop a player's node (its data dir stays): cleanly, or for a process player a crash (SIGKILL). */
  async kill (player: AnyPlayer, options: KillOptions = {}): Promise<void> {
    const signal = options.signal ?? 'SIGTERM'
    if (signal === 'SIGKILL') this.processPlayer(player, 'kill')
    if (!player.alive) return
    player.alive = false
    await disconnect(player)
    if (player.kind === 'process') {
      const p = player as ProcessPlayer
      await stopProcess(p, this.exits.get(p)!, signal)
      this.exits.delete(p)
      if (this.exits.size === 0) process.off('exit', this.onExit)
    } else {
      await (player as Player).node.stop()
    }
  }

  /**
   * Start a killed player again on its data dir: same agent key, same chain. Its partitions
   * still hold: the blocks it had set are set again.
   */
  async restart (player: AnyPlayer): Promise<void> {
    if (player.alive) return
    const bootstrap = this.players.filter(p => p !== player && p.alive).flatMap(p => p.info.multiaddrs.slice(0, 1))
    const s: NodeStart = { dataDir: player.dataDir, name: player.name, options: player.options, bootstrap }
    let fresh: AnyPlayer
    if (player.kind === 'process') {
      const p = player as ProcessPlayer
      fresh = await this.startProcessPlayer(s)
      this.exits.set(p, this.exits.get(fresh as ProcessPlayer)!)
      this.exits.delete(fresh as ProcessPlayer)
      Object.assign(p, { info: fresh.info, admin: fresh.admin, app: fresh.app, peerAdmin: fresh.peerAdmin, cells: fresh.cells, process: (fresh as ProcessPlayer).process, stderr: (fresh as ProcessPlayer).stderr, frozen: false })
    } else {
      fresh = await this.startInProcessPlayer(s)
      Object.assign(player, { info: fresh.info, admin: fresh.admin, app: fresh.app, peerAdmin: fresh.peerAdmin, cells: fresh.cells, node: (fresh as Player).node })
    }
    // running again (so cleanUp stops it) whatever the check below finds
    player.alive = true
    if (encodeHash(fresh.agentPubKey) !== encodeHash(player.agentPubKey)) throw new PlayerOperationError('restart', player.name, 'the restarted node has another agent key')
    const kept = this.blocked.filter(([x]) => x === player).map(([, y]) => y.peerId)
    if (kept.length > 0) await player.peerAdmin.blockPeers(kept)
  }

  async cleanUp (): Promise<void> {
    await Promise.allSettled(this.players.map(async p => await this.kill(p)))
    // a stop that failed killed its child: none is left behind
    for (const p of this.exits.keys()) p.process.kill('SIGKILL')
    await Promise.allSettled([...this.exits.values()])
    this.exits.clear()
    process.off('exit', this.onExit)
    await Promise.allSettled(this.dirs.map(async d => await rm(d, { recursive: true, force: true })))
  }
}

/** Run a scenario and always clean up its players, however it ends. */
export async function runScenario (fn: (scenario: Scenario) => Promise<void>): Promise<void>
export async function runScenario<K extends PlayerKind> (fn: (scenario: Scenario<PlayerOf<K>>) => Promise<void>, options: ScenarioOptions<K>): Promise<void>
export async function runScenario (fn: (scenario: never) => Promise<void>, options: ScenarioOptions = {}): Promise<void> {
  const scenario = new Scenario<AnyPlayer>(options)
  try {
    await fn(scenario as never)
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

/** The player's cell of a DNA. */
function cellOf (p: AnyPlayer, dnaHash: Uint8Array): PlayerCell {
  const cell = Object.values(p.cells).find(c => encodeHash(c.cell_id[0]) === encodeHash(dnaHash))
  if (cell === undefined) throw new Error(`${p.name} runs no cell of ${encodeHash(dnaHash)}`)
  return cell
}

/** Integrated op sets of the players for one DNA, through `dump_full_state`. */
export async function integratedOps (players: AnyPlayer[], dnaHash: Uint8Array): Promise<Array<Set<string>>> {
  return await Promise.all(players.map(async p => opKeys(await p.admin.dumpFullState({ cell_id: cellOf(p, dnaHash).cell_id }) as unknown as DumpedOps)))
}

/** The player's source chain in one DNA, oldest first, as action hashes (`uhCkk…`), through `dump_full_state`. */
export async function sourceChain (player: AnyPlayer, dnaHash: Uint8Array): Promise<string[]> {
  const dump = await player.admin.dumpFullState({ cell_id: cellOf(player, dnaHash).cell_id }) as unknown as { source_chain_dump: { records: Array<{ action_address: Uint8Array }> } }
  return dump.source_chain_dump.records.map(r => encodeHash(r.action_address))
}

/** The PeerIds the player's node is connected to, through the Admin API's `list_peers`. */
export async function connectedPeers (player: AnyPlayer): Promise<string[]> {
  return (await player.peerAdmin.listPeers()).connected
}

/** A URL of the player's HTTP API (the OpenAI-compatible routes and the node's own). */
export function httpUrl (player: AnyPlayer, path: string): string {
  return `http://127.0.0.1:${player.info.http_port}${path}`
}

export async function areDhtsSynced (players: AnyPlayer[], dnaHash: Uint8Array): Promise<boolean> {
  const sets = await integratedOps(players, dnaHash)
  const first = sets[0]
  if (first === undefined) return true
  return sets.every(s => s.size === first.size && [...s].every(k => first.has(k)))
}

/** Wait until every player has integrated the same ops of a DNA. */
export async function dhtSync (players: AnyPlayer[], dnaHash: Uint8Array, opts: { timeoutMs?: number } = {}): Promise<void> {
  await waitUntil(async () => await areDhtsSynced(players, dnaHash), { timeoutMs: opts.timeoutMs ?? 60_000, intervalMs: 200, what: `DHT sync of ${players.length} players` })
}
