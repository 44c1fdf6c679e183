/**
 * `flexnode start` as a user runs it: the README's `npm start`, the READY line, clean stops,
 * restarts on the same data dir, the encrypted keystore and bad flags.
 */
import { describe, expect, it } from 'vitest'
import { access, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { AdminWebsocket } from '@holochain/client'
import { tempDir, TEST_NODE_FLAGS, TEST_ORIGIN } from '../../../../fixtures/index.ts'
import { spawnFlexnode, spawnNode } from '../../../../fixtures/spawn-node.ts'

const exists = async (p: string): Promise<boolean> => await access(p).then(() => true, () => false)

describe('flexnode start', () => {
  it('runs from `npm start` and prints exactly one READY line', async () => {
    await using dir = await tempDir()
    const node = spawnNode('npm', ['start', '--', '--data-dir', dir.path, '--heartbeat-interval', '3600', ...TEST_NODE_FLAGS], { group: true })
    try {
      const info = await node.ready
      expect(Object.keys(info).sort()).toEqual(['admin_port', 'agent_pub_key', 'app_port', 'data_dir', 'http_port', 'installed_app_id', 'multiaddrs', 'network', 'peer_id'])
      expect((info.multiaddrs as string[]).every(a => a.startsWith('/ip4/127.0.0.1/tcp/'))).toBe(true)
      expect(info.network).toBe('local')
      expect(info.installed_app_id).toBe('flexstack')
      expect(info.data_dir).toBe(dir.path)
      expect(String(info.agent_pub_key)).toMatch(/^uhCAk[A-Za-z0-9_-]{48}$/)
      expect(node.stdout().split('\n').filter(l => l.startsWith('FLEXNODE_READY')).length).toBe(1)
      const admin = await AdminWebsocket.connect({ url: new URL(`ws://127.0.0.1:${String(info.admin_port)}`), wsClientOptions: { origin: TEST_ORIGIN } })
      expect((await admin.listApps({})).map(a => a.installed_app_id)).toEqual(['flexstack'])
      await admin.client.close()
      // inference works out of the box: the generated tiny model is loaded and answers
      const base = `http://127.0.0.1:${String(info.http_port)}`
      const models = await (await fetch(`${base}/v1/models`)).json() as { data: Array<{ id: string, loaded: boolean }> }
      expect(models.data.length).toBe(1)
      expect(models.data[0]!.loaded).toBe(true)
      const res = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: models.data[0]!.id, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 8, seed: 1 }) })
      expect(res.status).toBe(200)
      const body = await res.json() as { choices: Array<{ message: { content: string } }> }
      expect(typeof body.choices[0]!.message.content).toBe('string')
    } finally {
      await node.stop()
    }
  })

  it('stops cleanly on SIGTERM and restarts with the same agent key and chain', async () => {
    await using dir = await tempDir()
    const args = ['start', '--data-dir', dir.path, '--heartbeat-interval', '3600', '--json', ...TEST_NODE_FLAGS]
    const first = spawnFlexnode(args)
    const a = await first.ready
    expect(await exists(join(dir.path, 'flexnode.lock'))).toBe(true)
    expect(await first.stop()).toBe(0)
    expect(await exists(join(dir.path, 'flexnode.lock'))).toBe(false)
    expect(first.stderr()).toContain('"msg":"flexnode stopped"')

    const second = spawnFlexnode(args)
    try {
      const b = await second.ready
      expect(b.agent_pub_key).toBe(a.agent_pub_key)
      expect(second.stderr()).not.toContain('first start')
    } finally {
      expect(await second.stop()).toBe(0)
    }
  })

  it('refuses a second node on the same data dir and another network on it', async () => {
    await using dir = await tempDir()
    const first = spawnFlexnode(['start', '--data-dir', dir.path, '--heartbeat-interval', '3600', ...TEST_NODE_FLAGS])
    try {
      await first.ready
      const second = spawnFlexnode(['start', '--data-dir', dir.path, ...TEST_NODE_FLAGS])
      expect(await second.exit).toBe(1)
      expect(second.stderr()).toContain('DataDirInUseError')
    } finally {
      await first.stop()
    }
    const testnet = spawnFlexnode(['start', '--data-dir', dir.path, '--network', 'testnet', ...TEST_NODE_FLAGS])
    expect(await testnet.exit).toBe(1)
    expect(testnet.stderr()).toContain('NetworkMismatchError')
  })

  it('encrypts the keystore with FLEXNODE_PASSPHRASE and refuses a wrong or missing one', async () => {
    await using dir = await tempDir()
    const args = ['start', '--data-dir', dir.path, '--heartbeat-interval', '3600', ...TEST_NODE_FLAGS]
    const first = spawnFlexnode(args, { env: { FLEXNODE_PASSPHRASE: 'correct horse' } })
    const a = await first.ready
    expect(await first.stop()).toBe(0)
    const keystore = await readFile(join(dir.path, 'keystore.json'), 'utf8')
    expect(JSON.parse(keystore)).toHaveProperty('encrypted')

    const wrong = spawnFlexnode(args, { env: { FLEXNODE_PASSPHRASE: 'wrong horse' } })
    expect(await wrong.exit).toBe(1)
    expect(wrong.stderr()).toContain('WrongPassphraseError')
    const missing = spawnFlexnode(args)
    expect(await missing.exit).toBe(1)
    expect(missing.stderr()).toContain('KeystoreLockedError')
    expect(await readFile(join(dir.path, 'keystore.json'), 'utf8')).toBe(keystore)

    await using pf = await tempDir()
    const passFile = join(pf.path, 'pass')
    await (await import('node:fs/promises')).writeFile(passFile, 'correct horse\n', { mode: 0o600 })
    const again = spawnFlexnode([...args, '--passphrase-file', passFile])
    try {
      expect((await again.ready).agent_pub_key).toBe(a.agent_pub_key)
    } finally {
      await again.stop()
    }
  })

  it('takes a local MOE policy file and refuses a malformed one', async () => {
    await using dir = await tempDir()
    const { writeFile } = await import('node:fs/promises')
    const bad = join(dir.path, 'bad-policy.yaml')
    await writeFile(bad, 'inference_policy:\n  name: ripple-moe\n  local_tier:\n    min_parallel: 9\n    max_parallel: 2\n')
    const refused = spawnFlexnode(['start', '--data-dir', join(dir.path, 'n1'), '--moe-policy', bad, ...TEST_NODE_FLAGS])
    expect(await refused.exit).toBe(1)
    expect(refused.stderr()).toContain('PolicyFileError')
    const good = join(dir.path, 'policy.yaml')
    await writeFile(good, 'inference_policy:\n  name: local-moe\n  reducer:\n    strategy: weighted_consensus\n    min_agreement: 0.9\n    conflict_resolution: highest_weight_wins\n')
    const node = spawnFlexnode(['start', '--data-dir', join(dir.path, 'n2'), '--moe-policy', good, '--heartbeat-interval', '3600', ...TEST_NODE_FLAGS])
    try {
      const info = await node.ready
      const res = await fetch(`http://127.0.0.1:${String(info.http_port)}/v1/moe/query`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Hi', task_type: 'general', max_tokens: 4, policy_override: 'local-moe' }) })
      expect(res.status).toBe(200)
      expect(node.stderr()).toContain('local MOE policy override')
    } finally {
      await node.stop()
    }
  })

  it('rejects bad flags with a usage error (exit 2)', async () => {
    for (const args of [['--listen', 'not-a-multiaddr'], ['--bootstrap', 'http://example.com'], ['--network', 'moon'], ['--admin-port', '99999'], ['--app-port', 'http'], ['--heartbeat-interval', '-1'], ['--bogus'], ['--agent-name', '!!'], ['--policy-admin', 'alice']]) {
      const p = spawnFlexnode(['start', ...args])
      expect(await p.exit).toBe(2)
      expect(p.stderr()).toContain('Usage: flexnode start')
    }
    const unknown = spawnFlexnode(['frobnicate'])
    expect(await unknown.exit).toBe(2)
  })
})
