/**
 * `flexnode pin | get | artifacts` and `flexnode models publish | pull` as a user runs them,
 * against one real node started as a child process; plus the argument parsing and usage errors.
 */
import { describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir, TEST_NODE_FLAGS } from '../../../../fixtures/index.ts'
import { ensureModel } from '../../../../fixtures/gguf/index.ts'
import { runInProcess } from '../../../../fixtures/cli.ts'
import { runFlexnode, spawnFlexnode } from '../../../../fixtures/spawn-node.ts'

const flexnode = runFlexnode

describe('flexnode pin, get, artifacts, models publish/pull', () => {
  it('pins a file, gets it back by CID, lists records and providers, unpins; publishes a model and pulls it by CID', async () => {
    await using dir = await tempDir()
    const data = join(dir.path, 'node')
    const models = join(dir.path, 'models')
    await ensureModel(models, 'tiny', 3)
    const node = spawnFlexnode(['start', '--data-dir', data, ...TEST_NODE_FLAGS, '--no-demo-model', '--heartbeat-interval', '3600', '--models-dir', models])
    try {
      const ready = await node.ready
      const d = ['--data-dir', data]
      const file = join(dir.path, 'blob.bin')
      const bytes = randomBytes(600_000)
      await writeFile(file, bytes)
      await writeFile(join(dir.path, 'hello.txt'), 'hello world\n')

      const hello = await flexnode(['pin', join(dir.path, 'hello.txt'), ...d])
      expect(hello.code, hello.stderr).toBe(0)
      expect(hello.stdout).toBe('QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o\n')

      const pinned = await flexnode(['pin', file, '--cid-version', '1', '--json', ...d])
      expect(pinned.code, pinned.stderr).toBe(0)
      const { cid, size } = JSON.parse(pinned.stdout) as { cid: string, size: number }
      expect(size).toBe(bytes.byteLength)
      // progress goes to stderr, plain lines when it is not a terminal
      expect(pinned.stderr).toMatch(/adding blob\.bin: .*100%/)

      const out = join(dir.path, 'back.bin')
      const got = await flexnode(['get', cid, '-o', out, ...d])
      expect(got.code, got.stderr).toBe(0)
      expect((await readFile(out)).equals(bytes)).toBe(true)
      const toStdout = await flexnode(['get', 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', ...d])
      expect(toStdout.stdout).toBe('hello world\n')

      const list = await flexnode(['artifacts', ...d])
      expect(list.code, list.stderr).toBe(0)
      expect(list.stdout).toMatch(/^CID\s+NAME\s+SIZE\s+TYPE\s+PRODUCER\s+MIN\/MAX$/m)
      expect(list.stdout).toContain(cid)
      expect(list.stdout).toMatch(/hello\.txt\s+12 B/)
      const providers = await flexnode(['artifacts', 'providers', cid, '--json', ...d])
      expect(JSON.parse(providers.stdout)).toMatchObject({ cid, live: 1, providers: [{ node: ready.agent_pub_key, live: true }] })
      const unpin = await flexnode(['artifacts', 'unpin', cid, ...d])
      expect(unpin.stdout).toBe(`unpinned ${cid}\n`)

      // models: publish one, then pull it by its CID (the file is in place: nothing to fetch)
      const id = (await readdir(models)).find(f => f.endsWith('.gguf'))!.slice(0, -'.gguf'.length)
      const published = await flexnode(['models', 'publish', id, '--json', ...d])
      expect(published.code, published.stderr).toBe(0)
      const model = JSON.parse(published.stdout) as { cid: string, model: string }
      expect(model.model).toBe(id)
      const pulled = await flexnode(['models', 'pull', model.cid, ...d])
      expect(pulled.code, pulled.stderr).toBe(0)
      expect(pulled.stdout).toMatch(/^(already had|pulled) /)

      // errors: one line, exit 1, the typed name
      const bad = await flexnode(['get', 'not-a-cid', ...d])
      expect(bad.code).toBe(1)
      expect(bad.stderr).toMatch(/^flexnode: InvalidCidError: /)
    } finally {
      await node.stop()
    }
  }, 120_000)

  it('parses its arguments and refuses usage errors', async () => {
    await using dir = await tempDir()
    const file = join(dir.path, 'f.bin')
    await writeFile(file, 'x')
    const none = ['--data-dir', join(dir.path, 'none')]
    // accepted: the command looks for the node (exit 1); refused: exit 2 naming the mistake
    const accepted = [
      ['pin', file, '--cid-version', '1', '--raw-leaves', '--chunker', 'size-1024', '--min', '2', '--max', '4'],
      ['get', 'bafy', '-o', join(dir.path, 'x.bin')], ['artifacts'], ['artifacts', 'list', '--limit', '5'], ['artifacts', 'providers', 'Qm1'], ['artifacts', 'unpin', 'Qm1']
    ]
    const refused: Array<[string[], RegExp]> = [
      [['pin'], /missing required argument 'file'/], [['pin', 'a', 'b'], /too many arguments/],
      [['pin', 'f', '--cid-version', '2'], /'--cid-version <0\|1>' argument '2' is invalid/], [['pin', 'f', '--chunker', 'rabin'], /must be size-<bytes>/],
      [['pin', 'f', '--min', '0'], /'--min <n>' argument '0' is invalid/], [['get'], /missing required argument 'cid'/],
      [['artifacts', 'frobnicate'], /too many arguments for 'list'/], [['artifacts', 'pin'], /missing required argument 'cid'/]
    ]
    // in-process, one after another (each replaces stdout and stderr while it runs)
    const results = []
    for (const args of [...accepted, ...refused.map(([args]) => args)]) results.push(await runInProcess([...args, ...none]))
    for (const [i, args] of accepted.entries()) {
      expect(results[i]!.code, `${args.join(' ')}: ${results[i]!.stderr}`).toBe(1)
      expect(results[i]!.stderr, args.join(' ')).toMatch(/NodeNotRunningError|cannot read/)
    }
    for (const [i, [args, reason]] of refused.entries()) {
      const r = results[accepted.length + i]!
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2)
      expect(r.stderr.split('\n')[0], args.join(' ')).toMatch(reason)
      expect(r.stderr, args.join(' ')).not.toMatch(/\n\s+at /)
    }
    // models publish and pull are commander's (inference-command.ts): accepted ones look for the node (exit 1), bad ones exit 2
    const models = []
    for (const args of [['pull', 'bafy', '--load'], ['publish', 'tiny'], ['load', 'x', '--load'], ['pull']]) models.push(await runInProcess(['models', ...args, ...none]))
    expect(models.map(r => r.code)).toEqual([1, 1, 2, 2])
    expect(models[0]!.stderr).toContain('NodeNotRunningError')
    expect(models[2]!.stderr).toMatch(/^flexnode: unknown option '--load'/)
    expect(models[3]!.stderr).toMatch(/^flexnode: missing required argument 'cid'/)
    const usage = await runInProcess(['pin', '--cid-version', '7', 'f'], { FLEXNODE_DATA_DIR: join(dir.path, 'none') })
    expect(usage.code).toBe(2)
    expect(usage.stderr).toContain('Usage: flexnode pin [options] <file>')
  })
})
