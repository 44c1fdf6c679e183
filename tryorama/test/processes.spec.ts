/**
 * Players as child processes: real `flexnode start` nodes driven through their Admin, App and
 * HTTP interfaces only, with the same scenario API as in-process players. One scenario body runs
 * both ways; the process run adds what only a process can do: freeze it (SIGSTOP) and crash it
 * (SIGKILL).
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { encodeHash } from '../../agent/src/holo/hash.ts'
import type { NodeCapability } from '../../zomes-ts/agent_registry/types.ts'
import { connectedPeers, dhtSync, httpUrl, runScenario, sourceChain, waitUntil, type AnyPlayer, type Scenario } from '../src/index.ts'

const registry = (p: AnyPlayer): Uint8Array => p.cells.agent_registry!.cell_id[0]
const names = async (p: AnyPlayer): Promise<string[]> =>
  (await p.cells.agent_registry!.callZome<NodeCapability[]>('discovery', 'query_peers', null)).map(c => c.agent_name).sort()
const rename = async (p: AnyPlayer, name: string): Promise<void> => {
  const cap = await p.cells.agent_registry!.callZome<NodeCapability>('capabilities', 'get_capability', p.agentPubKey)
  await p.cells.agent_registry!.callZome('capabilities', 'advertise', { ...cap, agent_name: name, last_heartbeat: new Date().toISOString() })
}
/** every player connected to every other one, as each of them reports it */
const meshed = async (players: AnyPlayer[]): Promise<boolean> => {
  for (const p of players) {
    const peers = await connectedPeers(p)
    if (!players.every(q => q === p || peers.includes(q.peerId))) return false
  }
  return true
}
/** no connection between the two groups, as either side reports it */
const apart = async (left: AnyPlayer[], right: AnyPlayer[]): Promise<boolean> => {
  for (const [side, other] of [[left, right], [right, left]] as const) {
    for (const p of side) {
      const peers = await connectedPeers(p)
      if (other.some(q => peers.includes(q.peerId))) return false
    }
  }
  return true
}

/**
 * What any player does, in process or not: three players joined by explicit loopback bootstrap
 * addresses; a record written on one is seen on the others; a partition stops it and heal brings
 * it across; a stopped and restarted player keeps its agent key and its chain.
 */
async function meshScenario<P extends AnyPlayer> (scenario: Scenario<P>): Promise<[P, P, P]> {
  const [a, b, c] = await scenario.addPlayers(3) as [P, P, P]
  const players = [a, b, c]
  for (const p of players) expect(p.info.multiaddrs[0]).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW/)
  await waitUntil(async () => await meshed(players), { what: 'three players meshed' })

  await rename(a, 'written-on-a')
  await dhtSync(players, registry(a))
  for (const p of [b, c]) expect(await names(p)).toContain('written-on-a')

  // a | b c: each side keeps writing and syncing, nothing crosses
  await scenario.partition([a], [b, c])
  await waitUntil(async () => await apart([a], [b, c]), { what: 'the partition' })
  await rename(a, 'a-alone')
  await rename(b, 'b-side')
  await dhtSync([b, c], registry(b))
  expect(await names(c)).toContain('b-side')
  expect(await names(c)).not.toContain('a-alone')
  expect(await names(a)).not.toContain('b-side')
  await scenario.heal()
  await waitUntil(async () => await meshed(players), { what: 'the heal' })
  await dhtSync(players, registry(a))
  for (const p of players) expect(await names(p)).toEqual(['a-alone', 'b-side', c.name])

  // a clean stop and a restart on the same data dir: same agent key, same chain, back in the mesh
  const key = encodeHash(b.agentPubKey)
  const chain = await sourceChain(b, registry(b))
  await scenario.kill(b)
  expect(b.alive).toBe(false)
  await waitUntil(async () => !(await connectedPeers(a)).includes(b.peerId) && !(await connectedPeers(c)).includes(b.peerId), { what: 'b gone' })
  await scenario.restart(b)
  expect(b.alive).toBe(true)
  expect(b.info.agent_pub_key).toBe(key)
  expect((await sourceChain(b, registry(b))).slice(0, chain.length)).toEqual(chain)
  await rename(b, 'b-restarted')
  await waitUntil(async () => await meshed(players), { what: 'b back in the mesh' })
  await dhtSync(players, registry(a))
  for (const p of players) expect(await names(p)).toEqual(['a-alone', 'b-restarted', c.name])
  return [a, b, c]
}

/** the process's run state as `ps` shows it (`T` = stopped by a signal) */
const psState = async (pid: number): Promise<string> => (await promisify(execFile)('ps', ['-o', 'stat=', '-p', String(pid)])).stdout.trim()

describe('tryorama players', () => {
  it('in process: the shared scenario; an in-process player cannot be frozen or crashed; a process player joins', async () => {
    await runScenario(async (scenario) => {
      const [a] = await meshScenario(scenario)
      expect(a.kind).toBe('in-process')
      await expect(scenario.freeze(a)).rejects.toMatchObject({ name: 'PlayerOperationError', operation: 'freeze' })
      await expect(scenario.kill(a, { signal: 'SIGKILL' })).rejects.toMatchObject({ name: 'PlayerOperationError', operation: 'kill' })
      expect(a.alive).toBe(true)

      // a process player joins the in-process mesh (a scenario may mix both kinds)
      const d = await scenario.addPlayer({ kind: 'process' })
      expect(d.kind).toBe('process')
      await dhtSync([...scenario.players], registry(a))
      expect(await names(d)).toContain('a-alone')
      // a process player cannot take an option `flexnode start` has no flag for
      await expect(scenario.addPlayer({ kind: 'process', syncIntervalMs: 100 })).rejects.toMatchObject({ name: 'PlayerOperationError', operation: 'start' })
      // a start that fails (d's data dir is in use) is a typed error carrying the node's own
      const failed = await scenario.addPlayer({ kind: 'process', dataDir: d.dataDir }).catch((err: unknown) => err)
      expect(failed).toMatchObject({ name: 'PlayerOperationError', operation: 'start' })
      expect((failed as Error).message).toContain('DataDirInUseError')
      // a frozen player answers nothing: operations that need its interfaces are refused
      await scenario.freeze(d)
      await expect(scenario.partition([a], [d])).rejects.toMatchObject({ name: 'PlayerOperationError', operation: 'partition' })
      await scenario.thaw(d)
      expect(scenario.players.length).toBe(4)
    })
  }, 240_000)

  it('as three real `flexnode start` processes: the shared scenario, then a frozen player and a crashed one', async () => {
    await runScenario(async (scenario) => {
      const [a, b, c] = await meshScenario(scenario)
      // b's restart in the shared part followed a clean stop: SIGTERM, exit code 0
      expect(b.lastExit).toBe(0)
      for (const p of [a, b, c]) {
        expect(p.kind).toBe('process')
        expect(p.process.pid).toBeGreaterThan(0)
        expect(p.process.pid).not.toBe(process.pid)
        // its HTTP API answers at the port it reported: no model (--no-demo-model)
        const models = await fetch(httpUrl(p, '/v1/node/models'))
        expect(models.status).toBe(200)
        expect(await models.json()).toEqual({ object: 'list', data: [] })
      }

      // c frozen (SIGSTOP, its connections stay open): a and b keep writing and syncing
      await scenario.freeze(c)
      expect(c.frozen).toBe(true)
      expect(await psState(c.process.pid!)).toMatch(/^T/)
      await rename(a, 'while-c-frozen')
      await dhtSync([a, b], registry(a))
      expect(await names(b)).toContain('while-c-frozen')
      // thawed (SIGCONT), it catches up
      await scenario.thaw(c)
      expect(c.frozen).toBe(false)
      await dhtSync([a, b, c], registry(a))
      expect(await names(c)).toContain('while-c-frozen')

      // c crashes (SIGKILL: no clean stop, its lock and runtime files left behind) and restarts
      const key = encodeHash(c.agentPubKey)
      const chain = await sourceChain(c, registry(c))
      const crashed = c.process
      await scenario.kill(c, { signal: 'SIGKILL' })
      expect(crashed.signalCode).toBe('SIGKILL')
      expect(c.lastExit).toBe('SIGKILL')
      await scenario.restart(c)
      expect(c.process).not.toBe(crashed)
      expect(c.info.agent_pub_key).toBe(key)
      expect((await sourceChain(c, registry(c))).slice(0, chain.length)).toEqual(chain)
      await rename(c, 'c-after-crash')
      await dhtSync([a, b, c], registry(a))
      expect(await names(a)).toEqual(['b-restarted', 'c-after-crash', 'while-c-frozen'])
    }, { kind: 'process' })
  }, 300_000)
})
