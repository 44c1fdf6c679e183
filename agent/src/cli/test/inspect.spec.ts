/**
 * `flexnode peers` and `flexnode status` as a user runs them, against two real nodes started
 * as child processes; plus the pure table/merge helpers.
 */
import { describe, expect, it } from 'vitest'
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir, TEST_NODE_FLAGS, waitUntil } from '../../../../fixtures/index.ts'
import { runInProcess } from '../../../../fixtures/cli.ts'
import { runFlexnode, spawnFlexnode, type SpawnedNode } from '../../../../fixtures/spawn-node.ts'
import type { NodeCapability } from '../../../../zomes-ts/agent_registry/types.ts'
import { formatAge, mergePeers, renderPeers, renderTable, shortId, type PeersReport, type StatusReport } from '../inspect.ts'

const flexnode = runFlexnode

async function peersJson (dataDir: string): Promise<PeersReport | undefined> {
  const r = await flexnode(['peers', '--data-dir', dataDir, '--json'])
  if (r.code !== 0) return undefined
  return JSON.parse(r.stdout) as PeersReport
}

const startArgs = (dataDir: string, name: string): string[] => ['start', '--data-dir', dataDir, ...TEST_NODE_FLAGS, '--heartbeat-interval', '3600', '--agent-name', name]

describe('flexnode peers / status', () => {
  it('list both nodes of a two-node mesh and report the node\'s status', async () => {
    await using dirA = await tempDir()
    await using dirB = await tempDir()
    const nodes: SpawnedNode[] = []
    try {
      const a = spawnFlexnode(startArgs(dirA.path, 'inspect-alpha'))
      nodes.push(a)
      const infoA = await a.ready
      const b = spawnFlexnode([...startArgs(dirB.path, 'inspect-beta'), '--bootstrap', (infoA.multiaddrs as string[])[0]!])
      nodes.push(b)
      const infoB = await b.ready

      // poll until A knows both NodeCapabilities and is connected to B (a connected peer whose
      // capability has not reached A yet is listed too, with nulls: see mergePeers below)
      const known = (r: PeersReport, agent: unknown): boolean => r.peers.some(p => p.node_id === agent && p.connected && p.availability !== null)
      const report = await waitUntil(async () => {
        const r = await peersJson(dirA.path)
        return r !== undefined && r.peers.length === 2 && r.peers.every(p => p.availability !== null) && known(r, infoB.agent_pub_key) ? r : undefined
      }, { timeoutMs: 60_000, intervalMs: 250, what: 'peers to list both nodes' })
      expect(report.agent_pub_key).toBe(infoA.agent_pub_key)
      expect(report.peer_id).toBe(infoA.peer_id)
      expect(report.connected_peers).toBe(1)
      const self = report.peers.find(p => p.self)!
      const other = report.peers.find(p => !p.self)!
      expect(self).toMatchObject({ agent_name: 'inspect-alpha', node_id: infoA.agent_pub_key, peer_id: infoA.peer_id, connected: false })
      expect(other).toMatchObject({ agent_name: 'inspect-beta', node_id: infoB.agent_pub_key, peer_id: infoB.peer_id, connected: true })
      for (const p of report.peers) {
        // heartbeats every hour, a 30 s TTL: a node reads as offline 30 s after its advertise
        expect(['online', 'offline']).toContain(p.availability)
        expect(Object.keys(p).sort()).toEqual(['agent_name', 'availability', 'connected', 'cpu_arch', 'cpu_cores', 'gpu', 'last_heartbeat', 'last_heartbeat_age_seconds', 'load', 'node_id', 'peer_id', 'ram_gb', 'self'])
        expect(p.cpu_cores).toBeGreaterThanOrEqual(1)
        expect(p.cpu_arch).toMatch(/^[a-z0-9_]+$/)
        expect(p.ram_gb).toBeGreaterThan(0)
        expect(p.load?.cpu_percent).toBeGreaterThanOrEqual(0)
        expect(Date.parse(p.last_heartbeat!)).toBeLessThanOrEqual(Date.now())
        expect(p.last_heartbeat_age_seconds).toBeGreaterThanOrEqual(0)
        expect(p.last_heartbeat_age_seconds).toBeLessThan(600)
      }

      // B sees the same two nodes from its side
      const fromB = await waitUntil(async () => {
        const r = await peersJson(dirB.path)
        return r !== undefined && r.peers.length === 2 && known(r, infoA.agent_pub_key) ? r : undefined
      }, { timeoutMs: 60_000, intervalMs: 250, what: 'B to list both nodes' })
      expect(fromB.peers.find(p => p.self)?.node_id).toBe(infoB.agent_pub_key)
      expect(fromB.peers.find(p => !p.self)).toMatchObject({ node_id: infoA.agent_pub_key, connected: true })

      // the human table: aligned columns, both agent names, shortened node ids
      const table = await flexnode(['peers', '--data-dir', dirA.path])
      expect(table.code).toBe(0)
      const lines = table.stdout.split('\n')
      expect(lines[0]).toMatch(/^AGENT\s+NODE ID\s+AVAILABILITY\s+CONNECTED\s+CPU\s+RAM GB\s+GPU\s+LOAD CPU\s+LAST HEARTBEAT$/)
      expect(table.stdout).toContain('inspect-alpha')
      expect(table.stdout).toContain('inspect-beta')
      expect(table.stdout).toContain(shortId(String(infoB.agent_pub_key)))
      expect(table.stdout).not.toContain(String(infoB.agent_pub_key))
      const rows = lines.filter(l => l.startsWith('inspect-'))
      expect(rows).toHaveLength(2)
      const col = lines[0]!.indexOf('CONNECTED')
      expect(rows.map(r => r.slice(col).split(/\s+/)[0]).sort()).toEqual(['self', 'yes'])
      expect(table.stdout).toContain('2 known nodes, 1 connected peer')

      // status --json, with the data dir from FLEXNODE_DATA_DIR this time
      const st = await flexnode(['status', '--json'], { FLEXNODE_DATA_DIR: dirA.path })
      expect(st.code, st.stderr).toBe(0)
      const status = JSON.parse(st.stdout) as StatusReport
      expect(status).toMatchObject({
        network: 'local',
        agent_pub_key: infoA.agent_pub_key,
        peer_id: infoA.peer_id,
        multiaddrs: infoA.multiaddrs,
        admin_port: infoA.admin_port,
        app_port: infoA.app_port,
        pid: a.proc.pid,
        data_dir: dirA.path,
        installed_app_id: 'flexstack',
        apps: [{ installed_app_id: 'flexstack', status: 'enabled' }],
        connected_peers: 1,
        connected: [{ agent_pub_key: infoB.agent_pub_key, peer_id: infoB.peer_id }]
      })
      expect(status.known_nodes).toMatchObject({ total: 2, busy: 0, draining: 0 })
      expect(status.known_nodes!.online + status.known_nodes!.offline).toBe(2)
      // two nodes are fewer than the target redundancy: both keep full arcs
      expect(status.storage_arc).toMatchObject({ arc: [0, 0xffffffff], sectors: 512, target_redundancy: 5 })
      expect(status.storage_arc!.authorities_seen).toBeGreaterThanOrEqual(1)
      expect(status.storage_arc!.authorities_seen).toBeLessThanOrEqual(2)
      expect(status.dnas.map(d => d.role)).toEqual(['agent_registry', 'resource_mesh', 'policy_store', 'artifact_index', 'memory_shards'])
      for (const d of status.dnas) {
        expect(d.dna_hash).toMatch(/^uhC0k[A-Za-z0-9_-]{48}$/)
        expect(d.error).toBeUndefined()
        // genesis of both agents at least: 3 actions each, several ops per action
        expect(d.integrated_ops).toBeGreaterThanOrEqual(6)
        expect(d.validation_limbo).toBe(0)
      }
      // A integrated B's advertise too: more ops in agent_registry than in a DNA nobody writes to
      expect(status.dnas[0]!.integrated_ops!).toBeGreaterThan(status.dnas[1]!.integrated_ops!)

      const human = await flexnode(['status', '--data-dir', dirA.path])
      expect(human.code).toBe(0)
      expect(human.stdout).toMatch(/^network\s+local$/m)
      expect(human.stdout).toContain(String(infoA.agent_pub_key))
      expect(human.stdout).toMatch(/^apps\s+flexstack {2}enabled$/m)
      expect(human.stdout).toMatch(/^peers\s+1 connected$/m)
      expect(human.stdout).toMatch(/^known nodes\s+2 \(online \d, busy 0, draining 0, offline \d\)$/m)
      expect(human.stdout).toMatch(/^storage arc\s+512\/512 sectors \[0, 4294967295\], [12] authorities seen for it \(target 5\)$/m)
      expect(human.stdout).toMatch(/^DNA\s+HASH\s+INTEGRATED OPS\s+VALIDATION LIMBO$/m)
      expect(human.stdout).toMatch(/^agent_registry\s+uhC0k\S+\s+\d+\s+0$/m)
    } finally {
      await Promise.all(nodes.map(async n => await n.stop()))
    }
    // a stopped node removes node.json: the data dir has no running node any more
    const after = await flexnode(['status', '--data-dir', dirA.path])
    expect(after.code).toBe(1)
    expect(after.stderr).toContain(`no flexnode is running on ${dirA.path}`)
  }, 180_000)

  it('exits 1 with a clear message when no node runs on the data dir', async () => {
    await using dir = await tempDir()
    for (const command of ['peers', 'status']) {
      const r = await runInProcess([command, '--data-dir', dir.path])
      expect(r.code).toBe(1)
      expect(r.stderr).toContain(`no flexnode is running on ${dir.path}`)
      expect(r.stdout).toBe('')
    }
    // a node.json left by a process that is gone
    const dead = await new Promise<number>(resolve => {
      const p = execFile(process.execPath, ['-e', ''], () => { resolve(p.pid!) })
    })
    await writeFile(join(dir.path, 'node.json'), JSON.stringify({ agent_pub_key: 'uhCAk', network: 'local', admin_port: 1, app_port: 2, installed_app_id: 'flexstack', data_dir: dir.path, peer_id: 'x', multiaddrs: [], pid: dead }))
    const stale = await runInProcess(['peers', '--data-dir', dir.path, '--json'])
    expect(stale.code).toBe(1)
    expect(stale.stderr).toContain(`no flexnode is running on ${dir.path}`)
    expect(stale.stderr).toContain(`pid ${dead}`)
  })

  it('rejects bad flags with a usage error (exit 2)', async () => {
    // an empty data dir, never the real default one
    await using dir = await tempDir()
    const env = { FLEXNODE_DATA_DIR: dir.path }
    for (const args of [['peers', '--bogus'], ['status', '--data-dir'], ['peers', 'extra'], ['status', '--json=yes'], ['peers', '--data-dir', '']]) {
      const r = await runInProcess(args, env)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr).toContain(`Usage: flexnode ${args[0]!}`)
      expect(r.stderr, args.join(' ')).not.toMatch(/\n\s+at /)
    }
    const help = await runInProcess(['peers', '--help'], env)
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('Usage: flexnode peers')
    const usage = await runInProcess(['help'], env)
    expect(usage.stdout).toMatch(/^ {2}peers /m)
    expect(usage.stdout).toMatch(/^ {2}status /m)
  })
})

describe('inspect helpers', () => {
  const cap = (name: string, id: string, extra: Partial<NodeCapability> = {}): NodeCapability => ({
    node_id: id,
    agent_name: name,
    capabilities: {
      compute: { cpu_cores: 8, cpu_arch: 'x86_64', ram_gb: 31.4159, gpu: name === 'gpu-box' ? { vendor: 'nvidia', model: 'A100', vram_gb: 80 } : null },
      storage: { local_ssd_gb: 100, ipfs_pinned_gb: 0, s3_available_gb: 0 },
      inference: { models_loaded: [], max_batch_size: 0, tokens_per_second: 0 },
      memory: { vector_shards: 0, redis_memory_gb: 0 }
    },
    network: { bandwidth_mbps: 1000, latency_region: 'local' },
    availability: 'online',
    load: { cpu_percent: 12.6, gpu_percent: 0, memory_percent: 40 },
    last_heartbeat: '2030-01-01T00:00:00.000Z',
    ...extra
  })
  const id = (c: string): string => `uhCAk${c.repeat(48)}`

  it('merges capabilities with connected peers, one row per agent', () => {
    const now = Date.parse('2030-01-01T00:01:30.000Z')
    const rows = mergePeers(
      [cap('me', id('a')), cap('gpu-box', id('b')), cap('far', id('c'), { availability: 'offline' }), cap('me-again', id('a'))],
      [{ agent_pub_key: id('b'), peer_id: 'peer-b' }, { agent_pub_key: id('d'), peer_id: 'peer-d' }],
      { agent_pub_key: id('a'), peer_id: 'peer-a' },
      now
    )
    expect(rows.map(r => [r.agent_name, r.self, r.connected, r.peer_id, r.availability])).toEqual([
      ['me', true, false, 'peer-a', 'online'],
      ['gpu-box', false, true, 'peer-b', 'online'],
      ['far', false, false, null, 'offline'],
      [null, false, true, 'peer-d', null]
    ])
    expect(rows[0]!.last_heartbeat_age_seconds).toBe(90)
    expect(rows[3]!.last_heartbeat_age_seconds).toBeNull()

    const out = renderPeers({ data_dir: '/x', agent_pub_key: id('a'), peer_id: 'peer-a', connected_peers: 2, peers: rows })
    const lines = out.split('\n')
    expect(lines[1]).toMatch(/^me\s+uhCAkaaaaaaa…aaaaaa\s+online\s+self\s+8\/x86_64\s+31\.4\s+-\s+13%\s+1m ago$/)
    expect(lines[2]).toContain('nvidia A100 80GB')
    expect(lines[4]).toMatch(/^\?\s+uhCAkddddddd…dddddd\s+unknown\s+yes\s+-\s+-\s+-\s+-\s+-$/)
    expect(out).toContain('3 known nodes, 2 connected peers')
    // every row starts its columns where the header does
    const starts = (l: string): number[] => [...l.matchAll(/(?<=\s{2})\S/g)].map(m => m.index)
    expect(starts(lines[1]!)).toEqual(starts(lines[0]!).slice(0, starts(lines[1]!).length))
  })

  it('formats ages, ids and tables', () => {
    expect([0, 59, 60, 3599, 3600, 86399, 86400 * 3].map(formatAge)).toEqual(['0s', '59s', '1m', '59m', '1h', '23h', '3d'])
    expect(formatAge(null)).toBe('-')
    expect(shortId('short')).toBe('short')
    expect(shortId(id('z'))).toBe('uhCAkzzzzzzz…zzzzzz')
    expect(renderTable(['A', 'BB'], [['xxx', 'y'], ['z', '']])).toBe('A    BB\nxxx  y\nz\n')
  })
})
