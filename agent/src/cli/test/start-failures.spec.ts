/**
 * `flexnode start` when something is wrong before it is ready: a port already in use, a damaged
 * or missing database, a SIGTERM during start-up. Each ends with a clear, typed, one-line error
 * (or a clean stop) and an exit status, never a stack trace or a half-started node.
 */
import { createHash } from 'node:crypto'
import { access, link, mkdir, readdir, readFile, rm, truncate } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createTestAgent, tempDir, TEST_NODE_FLAGS } from '../../../../fixtures/index.ts'
import { spawnFlexnode, type SpawnedNode } from '../../../../fixtures/spawn-node.ts'
import { overwriteRootPage } from '../../../../fixtures/sqlite-damage.ts'
import { ensureModel } from '../../../../fixtures/gguf/index.ts'
import { waitUntil } from '../../../../fixtures/wait.ts'
import { occupy } from '../../../../fixtures/occupy.ts'

/** The CLI's own error lines (`flexnode: …`), apart from the log lines. */
const errorLines = (node: SpawnedNode): string[] => node.stderr().split('\n').filter(l => l.startsWith('flexnode: '))
/** Lines of a printed stack trace. */
const stackLines = (node: SpawnedNode): string[] => node.stderr().split('\n').filter(l => /^\s+at /.test(l))

/** How a start that must fail ended: its exit code, or 'ready' (then the node is stopped). */
async function refusal (node: SpawnedNode): Promise<number | string> {
  const outcome = await Promise.race([node.exit, node.ready.then(() => 'ready', () => 'exited')])
  if (outcome === 'ready') {
    await node.stop()
    return 'ready'
  }
  return await node.exit
}

describe('flexnode start on a port already in use', () => {
  it('exits 1 with one ListenError line for --admin-port, --app-port, --http-port and --listen', async () => {
    const { server, port } = await occupy()
    try {
      // one node per flag, side by side: each must fail on its own port and nothing else
      await Promise.all(['--admin-port', '--app-port', '--http-port', '--listen'].map(async (flag) => {
        await using dir = await tempDir()
        const value = flag === '--listen' ? `/ip4/127.0.0.1/tcp/${port}` : String(port)
        const node = spawnFlexnode(['start', '--data-dir', dir.path, '--heartbeat-interval', '3600', ...TEST_NODE_FLAGS, flag, value])
        const code = await refusal(node)
        expect({ flag, code }).toEqual({ flag, code: 1 })
        expect(node.stdout()).not.toContain('FLEXNODE_READY')
        const lines = errorLines(node)
        expect({ flag, lines: lines.length }).toEqual({ flag, lines: 1 })
        expect(lines[0]).toContain('ListenError')
        expect(lines[0]).toContain(String(port))
        expect(lines[0]).toContain('EADDRINUSE')
        expect({ flag, stack: stackLines(node) }).toEqual({ flag, stack: [] })
      }))
    } finally {
      server.close()
    }
  }, 120_000)
})

/** A data dir a node ran on and stopped: keystore, database, installed app. Returns its agent key. */
async function usedDataDir (dataDir: string): Promise<string> {
  await using agent = await createTestAgent({ dataDir })
  return agent.node.info.agent_pub_key
}

const sha256 = async (path: string): Promise<string> => createHash('sha256').update(await readFile(path)).digest('hex')

describe('flexnode start on a damaged or missing database', () => {
  it('refuses a database with a damaged table before READY, naming the file, and leaves it as it was', async () => {
    await using dir = await tempDir()
    await usedDataDir(dir.path)
    const db = join(dir.path, 'conductor.sqlite3')
    // limbo: a table start-up itself never reads, so only a check at start can catch it
    await overwriteRootPage(db, 'limbo')
    const before = await sha256(db)
    const node = spawnFlexnode(['start', '--data-dir', dir.path, '--heartbeat-interval', '3600', ...TEST_NODE_FLAGS])
    expect(await refusal(node)).toBe(1)
    expect(node.stdout()).not.toContain('FLEXNODE_READY')
    const lines = errorLines(node)
    expect(lines.length).toBe(1)
    expect(lines[0]).toContain('DatabaseCorruptError')
    expect(lines[0]).toContain(db)
    expect(stackLines(node)).toEqual([])
    expect(await sha256(db)).toBe(before)
  })

  it('refuses a keystore whose database is empty or gone, and starts a new chain under a new key with --new-chain', async () => {
    await using dir = await tempDir()
    const oldKey = await usedDataDir(dir.path)
    const db = join(dir.path, 'conductor.sqlite3')
    const keystore = await readFile(join(dir.path, 'keystore.json'), 'utf8')
    const args = ['start', '--data-dir', dir.path, '--heartbeat-interval', '3600', ...TEST_NODE_FLAGS]
    for (const damage of ['truncate', 'delete'] as const) {
      if (damage === 'truncate') await truncate(db, 0)
      else await rm(db)
      const refused = spawnFlexnode(args)
      expect({ damage, code: await refusal(refused) }).toEqual({ damage, code: 1 })
      expect(refused.stdout()).not.toContain('FLEXNODE_READY')
      const lines = errorLines(refused)
      expect(lines.length).toBe(1)
      expect(lines[0]).toContain('DatabaseMissingError')
      expect(lines[0]).toContain('--new-chain')
      expect(stackLines(refused)).toEqual([])
      // nothing was created or changed: no genesis ran, the keystore is as it was
      expect(await readFile(join(dir.path, 'keystore.json'), 'utf8')).toBe(keystore)
      expect(await readdir(dir.path)).not.toContain('node.json')
    }
    const fresh = spawnFlexnode([...args, '--new-chain'])
    try {
      const info = await fresh.ready
      expect(info.agent_pub_key).not.toBe(oldKey)
      // the old key is kept beside the new keystore, never deleted
      const kept = (await readdir(dir.path)).filter(f => f.startsWith('keystore.') && f.endsWith('.bak'))
      expect(kept.length).toBe(1)
      expect(await readFile(join(dir.path, kept[0]!), 'utf8')).toBe(keystore)
      expect(fresh.stderr()).toContain('new source chain')
    } finally {
      expect(await fresh.stop()).toBe(0)
    }
    // the new chain is now the node's chain: a plain restart keeps it
    const again = spawnFlexnode(args)
    try {
      expect((await again.ready).agent_pub_key).not.toBe(oldKey)
    } finally {
      expect(await again.stop()).toBe(0)
    }
  }, 180_000)
})

describe('flexnode start interrupted', () => {
  // What makes start-up slow here is real: a models dir with many models, each loaded at start
  // (preload loads every model that fits in half the free memory, one after another, each in its
  // own worker). 40 copies of the tiny model take far longer to load than a stop may take.
  const MODELS = 40

  it('exits promptly on SIGTERM before READY, stopping what had started', async () => {
    await using dir = await tempDir()
    const models = join(dir.path, 'many-models')
    await mkdir(models)
    const one = await ensureModel(join(dir.path, 'src'), 'tiny', 7)
    await Promise.all(Array.from({ length: MODELS }, async (_, i) => { await link(one, join(models, `model-${String(i).padStart(2, '0')}.gguf`)) }))
    const node = spawnFlexnode(['start', '--data-dir', join(dir.path, 'node'), '--models-dir', models, '--threads', '1', '--heartbeat-interval', '3600', ...TEST_NODE_FLAGS])
    const loaded = (): number => node.stderr().split('\n').filter(l => l.includes('model loaded')).length
    try {
      // start-up is busy loading models: the first one is in
      await waitUntil(() => loaded() >= 1 || node.proc.exitCode !== null, { timeoutMs: 60_000, what: 'the first model to load' })
      expect(node.proc.exitCode).toBe(null)
      node.proc.kill('SIGTERM')
      expect(await refusal(node)).toBe(0)
    } finally {
      // never leave a node behind, whatever failed above
      if (node.proc.exitCode === null && node.proc.signalCode === null) node.proc.kill('SIGKILL')
    }
    expect(node.stdout()).not.toContain('FLEXNODE_READY')
    expect(errorLines(node).some(l => l.includes('start-up interrupted by SIGTERM'))).toBe(true)
    expect(stackLines(node)).toEqual([])
    // it did not load everything first, and it released the data dir: a stop, not a kill
    expect(loaded()).toBeLessThan(MODELS)
    expect(node.stderr()).not.toContain('did not stop within')
    await expect(access(join(dir.path, 'node', 'flexnode.lock'))).rejects.toThrow()
    await expect(access(join(dir.path, 'node', 'node.json'))).rejects.toThrow()
  }, 180_000)
})
