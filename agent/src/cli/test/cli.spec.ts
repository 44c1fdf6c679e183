/**
 * `flexnode start` as a user runs it: the README's `npm start`, the READY line, clean stops,
 * restarts on the same data dir, the encrypted keystore and bad flags.
 */
import { describe, expect, it } from 'vitest'
import { access, mkdir, readFile } from 'node:fs/promises'
import { request } from 'node:http'
import { basename, join } from 'node:path'
import { AdminWebsocket } from '@holochain/client'
import { ensureModel } from '../../../../fixtures/gguf/index.ts'
import { DAMAGED_MODELS, writeDamagedModels } from '../../../../fixtures/gguf/damaged.ts'
import { REPO_ROOT, tempDir, TEST_NODE_FLAGS, TEST_ORIGIN, waitUntil } from '../../../../fixtures/index.ts'
import { runInProcess } from '../../../../fixtures/cli.ts'
import { spawnFlexnode, spawnNode } from '../../../../fixtures/spawn-node.ts'
import { DEMO, modelFileName } from '../../inference/gguf/generate.ts'

const PACKAGE_VERSION = (JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version

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
      const models = await (await fetch(`${base}/v1/models`)).json() as { data: Array<{ id: string, loaded: boolean, demo: boolean }> }
      expect(models.data.length).toBe(1)
      expect(models.data[0]!.loaded).toBe(true)
      // it is the self-generated random-weight model, and says so
      expect(models.data[0]!.demo).toBe(true)
      expect(models.data[0]!.id).toMatch(/^flexnode-demo-seed1-/)
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
    // it names the demo model, the only model here: a demo model votes only when a policy names it
    await writeFile(good, `inference_policy:\n  name: local-moe\n  local_tier:\n    min_parallel: 1\n    max_parallel: 1\n    models:\n      - name: ${modelFileName(DEMO).replace(/\.gguf$/, '')}\n        weight: 1\n        specialization: general\n  reducer:\n    strategy: weighted_consensus\n    min_agreement: 0.9\n    conflict_resolution: highest_weight_wins\n`)
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

  it('generates no demo model with --no-demo-model, and answers the hosts of --http-allowed-hosts', async () => {
    await using dir = await tempDir()
    const node = spawnFlexnode(['start', '--data-dir', dir.path, '--heartbeat-interval', '3600', '--no-demo-model', '--http-allowed-hosts', 'flexnode.test,other.test', ...TEST_NODE_FLAGS])
    try {
      const info = await node.ready
      const models = await (await fetch(`http://127.0.0.1:${String(info.http_port)}/v1/models`)).json() as { data: unknown[] }
      expect(models.data).toEqual([])
      const status = async (host: string): Promise<number> => await new Promise((resolve, reject) => {
        request({ host: '127.0.0.1', port: Number(info.http_port), path: '/v1/models', headers: { host } }, (r) => { r.resume(); resolve(r.statusCode ?? 0) }).on('error', reject).end()
      })
      expect(await status('flexnode.test')).toBe(200)
      expect(await status(`other.test:${String(info.http_port)}`)).toBe(200)
      expect(await status('attacker.test')).toBe(403)
    } finally {
      expect(await node.stop()).toBe(0)
    }
  })

  it('starts with damaged model files in its models dir, lists them with their errors and serves the good model', async () => {
    await using dir = await tempDir()
    const models = join(dir.path, 'models')
    await mkdir(models, { recursive: true })
    const good = await ensureModel(models, 'tiny', 1)
    await writeDamagedModels(models, good)
    const node = spawnFlexnode(['start', '--data-dir', dir.path, '--heartbeat-interval', '3600', '--json', ...TEST_NODE_FLAGS])
    try {
      const info = await node.ready
      const base = `http://127.0.0.1:${String(info.http_port)}`
      const list = await (await fetch(`${base}/v1/node/models`)).json() as { data: Array<{ id: string, loaded: boolean, error?: { name: string } }> }
      for (const id of DAMAGED_MODELS) {
        expect(list.data.find(m => m.id === id), id).toMatchObject({ loaded: false, error: { name: 'InvalidGgufError' } })
        // a warn names each skipped file
        expect(node.stderr(), id).toMatch(new RegExp(`"level":40[^\n]*${id}\.gguf`))
      }
      const id = basename(good, '.gguf')
      expect(list.data.find(m => m.id === id)).toMatchObject({ loaded: true })
      expect(list.data.find(m => m.id === id)!.error).toBeUndefined()
      const res = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: id, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4 }) })
      expect(res.status).toBe(200)
      const load = await fetch(`${base}/v1/models/cut-1-byte/load`, { method: 'POST' })
      expect(load.status).toBe(422)
      expect((await load.json() as { error: { code: string } }).error.code).toBe('model_load_failed')
    } finally {
      expect(await node.stop()).toBe(0)
    }
  })

  it('stops on SIGTERM during start-up, even with damaged model files to check', async () => {
    await using dir = await tempDir()
    const models = join(dir.path, 'models')
    await mkdir(models, { recursive: true })
    await writeDamagedModels(models, await ensureModel(models, 'tiny', 1))
    const node = spawnFlexnode(['start', '--data-dir', dir.path, '--heartbeat-interval', '3600', '--json', ...TEST_NODE_FLAGS])
    // start-up is under way: the conductor has installed the app
    await waitUntil(() => node.stderr().includes('first start: installing the flexstack app'), { timeoutMs: 30_000 })
    node.proc.kill('SIGTERM')
    expect(await node.exit).toBe(0)
    expect(await exists(join(dir.path, 'flexnode.lock'))).toBe(false)
  })

  it('rejects bad flags with a usage error (exit 2), and prints its version', async () => {
    // the real binary, end to end: its exit code, the usage on stderr, no stack trace (the rest of the table runs in-process below)
    for (const args of [['--listen', 'not-a-multiaddr'], ['--admin-port', '99999'], ['--bogus']]) {
      const p = spawnFlexnode(['start', ...args])
      expect(await p.exit, args.join(' ')).toBe(2)
      expect(p.stderr()).toContain('Usage: flexnode start')
      expect(p.stderr()).not.toMatch(/\n\s+at /)
    }
    const unknown = spawnFlexnode(['frobnicate'])
    expect(await unknown.exit).toBe(2)
    const version = spawnFlexnode(['--version'])
    expect(await version.exit).toBe(0)
    expect(version.stdout()).toBe(`${PACKAGE_VERSION}\n`)
  })

  it('checks start\'s flags in-process: exit 2, the usage, no stack trace', async () => {
    // an empty data dir: no config file is read, and never the real default one
    await using dir = await tempDir()
    const env = { FLEXNODE_DATA_DIR: dir.path }
    for (const args of [['--bootstrap', 'http://example.com'], ['--network', 'moon'], ['--app-port', 'http'], ['--heartbeat-interval', '-1'], ['--advertise-interval', '0'], ['--agent-name', '!!'], ['--no-demo-model=yes'], ['--http-allowed-hosts', 'not a host'], ['--policy-admin', 'alice']]) {
      const r = await runInProcess(['start', ...args], env)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr, args.join(' ')).toContain('Usage: flexnode start')
      expect(r.stderr, args.join(' ')).not.toMatch(/\n\s+at /)
    }
    expect((await runInProcess(['frobnicate'], env)).code).toBe(2)
    for (const flag of ['--version', '-V']) expect(await runInProcess([flag], env)).toEqual({ code: 0, stdout: `${PACKAGE_VERSION}\n`, stderr: '' })
  })
})
