/**
 * `flexnode models`, `flexnode infer` and `flexnode moe` as a user runs them, against one real
 * node started as a child process (it generates and loads the tiny model at start); plus the
 * argument parsing and the pure renderers.
 */
import { describe, expect, it } from 'vitest'
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir, TEST_NODE_FLAGS } from '../../../../fixtures/index.ts'
import { runInProcess } from '../../../../fixtures/cli.ts'
import { runFlexnode, spawnFlexnode } from '../../../../fixtures/spawn-node.ts'
import type { ModelInfo } from '../../inference/types.ts'
import { DEMO, modelFileName } from '../../inference/gguf/generate.ts'
import { formatBytes, LoadProgress, renderModels, renderMoe } from '../inference.ts'

const flexnode = runFlexnode

describe('flexnode models / infer / moe', () => {
  it('list, unload and load models, infer (whole and streamed) and run an MOE query on a running node', async () => {
    await using dir = await tempDir()
    // the demo model votes in MOE only when a policy names it: a local ripple-moe that does
    const policy = join(dir.path, 'moe.yaml')
    await writeFile(policy, `inference_policy:\n  name: ripple-moe\n  local_tier:\n    min_parallel: 1\n    max_parallel: 1\n    models:\n      - name: ${modelFileName(DEMO).replace(/\.gguf$/, '')}\n        weight: 1\n        specialization: general\n`)
    const node = spawnFlexnode(['start', '--data-dir', join(dir.path, 'node'), '--moe-policy', policy, ...TEST_NODE_FLAGS, '--heartbeat-interval', '3600'])
    try {
      await node.ready
      const d = ['--data-dir', join(dir.path, 'node')]

      // models --json: the generated demo model, loaded at start
      const listed = await flexnode(['models', ...d, '--json'])
      expect(listed.code, listed.stderr).toBe(0)
      const { models } = JSON.parse(listed.stdout) as { models: ModelInfo[] }
      expect(models).toHaveLength(1)
      const model = models[0]!
      expect(model).toMatchObject({ loaded: true, context_length: 2048, demo: true })
      expect(model.id).toMatch(/^flexnode-demo-seed1-/)
      expect(model.size_bytes).toBeGreaterThan(0)

      // the table, with the data dir from FLEXNODE_DATA_DIR
      const table = await flexnode(['models'], { FLEXNODE_DATA_DIR: join(dir.path, 'node') })
      expect(table.code, table.stderr).toBe(0)
      expect(table.stdout).toMatch(/^ID\s+LOADED\s+SIZE\s+CONTEXT\s+TOKENS\/S$/m)
      expect(table.stdout).toMatch(new RegExp(`^${model.id}\\s+yes\\s+\\d+\\.\\d KiB\\s+2048\\s+\\S+$`, 'm'))

      // unload, then load again with progress milestones on stderr (not a TTY here)
      const unload = await flexnode(['models', 'unload', model.id, ...d])
      expect(unload.code, unload.stderr).toBe(0)
      expect(unload.stdout).toBe(`unloaded ${model.id}\n`)
      const after = JSON.parse((await flexnode(['models', ...d, '--json'])).stdout) as { models: ModelInfo[] }
      expect(after.models[0]!.loaded).toBe(false)
      const load = await flexnode(['models', 'load', model.id, ...d])
      expect(load.code, load.stderr).toBe(0)
      expect(load.stdout).toBe(`loaded ${model.id}\n`)
      expect(load.stderr).toContain(`loading ${model.id}:`)
      expect(load.stderr).toContain('100%')
      expect(load.stderr).not.toContain('\r')
      const reloaded = JSON.parse((await flexnode(['models', ...d, '--json'])).stdout) as { models: ModelInfo[] }
      expect(reloaded.models[0]!.loaded).toBe(true)

      // infer on the model, whole then streamed: the same seed gives the same text
      const whole = await flexnode(['infer', 'Hello', '--model', model.id, '--max-tokens', '4', '--seed', '1', '--temperature', '0', ...d])
      expect(whole.code, whole.stderr).toBe(0)
      expect(whole.stdout.trim().length).toBeGreaterThan(0)
      const streamed = await flexnode(['infer', 'Hello', '--model', model.id, '--max-tokens', '4', '--seed', '1', '--temperature', '0', '--stream', ...d])
      expect(streamed.code, streamed.stderr).toBe(0)
      expect(streamed.stdout).toBe(whole.stdout)
      const json = await flexnode(['infer', 'Hello', '--model', model.id, '--max-tokens', '4', '--seed', '1', ...d, '--json'])
      expect(json.code, json.stderr).toBe(0)
      const completion = JSON.parse(json.stdout) as { object: string, model: string, choices: Array<{ message: { content: string } }>, usage: { completion_tokens: number } }
      expect(completion).toMatchObject({ object: 'chat.completion', model: model.id })
      expect(completion.usage.completion_tokens).toBeLessThanOrEqual(4)

      // infer without --model: the mesh's pick (this node's only model)
      const single = await flexnode(['infer', 'Hello', '--max-tokens', '4', ...d, '--json'])
      expect(single.code, single.stderr).toBe(0)
      expect(JSON.parse(single.stdout)).toMatchObject({ model: model.id, response: expect.any(String) as unknown })

      // moe with one node and one model: assert the shape only
      const moe = await flexnode(['moe', 'Hi', '--task-type', 'general', '--max-tokens', '4', ...d, '--json'])
      expect(moe.code, moe.stderr).toBe(0)
      const answer = JSON.parse(moe.stdout) as { response: unknown, consensus_score: unknown, model_votes: Array<Record<string, unknown>>, trace_id: unknown }
      expect(typeof answer.response).toBe('string')
      expect(typeof answer.consensus_score).toBe('number')
      expect(typeof answer.trace_id).toBe('string')
      expect(Array.isArray(answer.model_votes)).toBe(true)
      expect(answer.model_votes.length).toBeGreaterThanOrEqual(1)
      for (const v of answer.model_votes) {
        expect(v).toMatchObject({ model: expect.any(String) as unknown, weight: expect.any(Number) as unknown, latency_ms: expect.any(Number) as unknown })
      }
      const moeText = await flexnode(['moe', 'Hi', '--task-type', 'general', '--max-tokens', '4', '--no-consensus', ...d])
      expect(moeText.code, moeText.stderr).toBe(0)
      expect(moeText.stdout).toMatch(/^consensus: (yes|no) \(score \d\.\d\d\)$/m)
      expect(moeText.stdout).toMatch(/^MODEL\s+NODE\s+WEIGHT\s+LATENCY\s+HASH/m)

      // HTTP errors: exit 1 with the node's message
      const unknown = await flexnode(['models', 'load', 'no-such-model', ...d])
      expect(unknown.code).toBe(1)
      expect(unknown.stderr).toContain('"no-such-model"')
      expect(unknown.stderr).toContain('404 model_not_found')
      expect(unknown.stdout).toBe('')
      const policy = await flexnode(['moe', 'Hi', '--task-type', 'general', '--policy', 'no-such-policy', ...d])
      expect(policy.code).toBe(1)
      expect(policy.stderr).toContain('no-such-policy')
    } finally {
      await node.stop()
    }
  }, 180_000)

  it('exits 1 with a clear message when no node runs on the data dir', async () => {
    await using dir = await tempDir()
    for (const args of [['models'], ['models', 'load', 'x'], ['infer', 'Hello'], ['moe', 'Hi', '--task-type', 'general']]) {
      const r = await runInProcess([...args, '--data-dir', dir.path])
      expect(r.code, args.join(' ')).toBe(1)
      expect(r.stderr).toContain(`no flexnode is running on ${dir.path}`)
      expect(r.stdout).toBe('')
    }
    // a node.json left by a process that is gone
    const dead = await new Promise<number>(resolve => {
      const p = execFile(process.execPath, ['-e', ''], () => { resolve(p.pid!) })
    })
    await writeFile(join(dir.path, 'node.json'), JSON.stringify({ pid: dead, http_port: 1 }))
    const stale = await runInProcess(['models', '--data-dir', dir.path])
    expect(stale.code).toBe(1)
    expect(stale.stderr).toContain(`no flexnode is running on ${dir.path}`)
    expect(stale.stderr).toContain(`pid ${dead}`)
  })

  it('rejects bad command lines with a usage error (exit 2)', async () => {
    const cases = [
      ['infer'], ['infer', ''], ['infer', 'a', 'b'], ['infer', 'x', '--max-tokens', '0'], ['infer', 'x', '--max-tokens', 'ten'],
      ['infer', 'x', '--model', 'm', '--temperature', '3'], ['infer', 'x', '--model', 'm', '--seed', '-1'], ['infer', 'x', '--stream'],
      ['infer', 'x', '--bogus'], ['moe', 'x'], ['moe', 'x', '--task-type', 'poetry'], ['moe', '--task-type', 'general'],
      ['models', 'load'], ['models', 'frobnicate'], ['models', 'load', 'a', 'b'], ['models', '--json=yes']
    ]
    // an empty data dir, never the real default one
    await using dir = await tempDir()
    const env = { FLEXNODE_DATA_DIR: dir.path }
    for (const args of cases) {
      const r = await runInProcess(args, env)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr).toContain(`Usage: flexnode ${args[0]!}`)
      expect(r.stderr, args.join(' ')).not.toMatch(/\n\s+at /)
    }
    const help = await runInProcess(['moe', '--help'], env)
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('--task-type <type>')
    const usage = await runInProcess(['help'], env)
    for (const command of ['models', 'infer', 'moe']) expect(usage.stdout).toMatch(new RegExp(`^ {2}${command} `, 'm'))
  })
})

describe('models / infer / moe helpers', () => {
  it('parses command lines in commander: accepted ones look for the node (exit 1), bad ones exit 2 naming the mistake', async () => {
    const env = { FLEXNODE_DATA_DIR: '/nonexistent/flexnode' }
    const accepted = [
      ['models'], ['models', 'list', '--json'], ['models', 'load', 'tiny', '--json'], ['models', 'unload', 'tiny'],
      ['infer', '--model', 'x', '--', '-hi-'], ['infer', 'hi', '--model', 'm', '--max-tokens', '4', '--temperature', '0.5', '--seed', '7', '--stream'], ['infer', 'hi'],
      ['moe', 'hi', '--task-type', 'review', '--no-consensus', '--policy', 'p']
    ]
    const refused: Array<[string[], RegExp]> = [
      [['moe', 'hi'], /required option '--task-type <type>' not specified/],
      [['infer', 'hi', '--seed', '1'], /--seed needs --model/],
      [['infer', 'x', '--model', 'm', '--temperature', '3'], /--temperature <t>' argument '3' is invalid\. must be a number from 0 to 2/],
      // past the flags' own checks, inference.single_query's schema refuses it as the HTTP API and MCP do
      [['infer', 'x', '--max-tokens', '1048577'], /^flexnode: max_tokens: Too big: expected number to be <=1048576/]
    ]
    // in-process, one after another (each replaces stdout and stderr while it runs)
    const results = []
    for (const args of [...accepted, ...refused.map(([args]) => args)]) results.push(await runInProcess(args, env))
    for (const [i, args] of accepted.entries()) {
      expect(results[i]!.code, `${args.join(' ')}: ${results[i]!.stderr}`).toBe(1)
      expect(results[i]!.stderr).toContain('NodeNotRunningError')
    }
    for (const [i, [args, reason]] of refused.entries()) {
      const r = results[accepted.length + i]!
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2)
      expect(r.stderr.split('\n')[0]).toMatch(reason)
      expect(r.stderr, args.join(' ')).not.toMatch(/\n\s+at /)
    }
  })

  it('renders models, MOE answers and load progress', () => {
    expect([0, 1023, 1024, 654432, 3 * 2 ** 30].map(formatBytes)).toEqual(['0 B', '1023 B', '1.0 KiB', '639.1 KiB', '3.0 GiB'])
    const info: ModelInfo = { id: 'tiny', file: 'tiny.gguf', size_bytes: 2048, architecture: 'llama', context_length: 512, embedding_length: 64, loaded: false, tokens_per_second: 12.345, queue_depth: 0, in_flight: 0, demo: false }
    expect(renderModels([info])).toBe('ID    LOADED  SIZE     CONTEXT  TOKENS/S\ntiny  no      2.0 KiB  512      12.3\n')
    const moe = renderMoe({
      response: 'an answer',
      consensus: false,
      consensus_score: 0.5,
      model_votes: [
        { model: 'a', node: `uhCAk${'x'.repeat(48)}`, response_hash: 'f'.repeat(64), weight: 0.5, latency_ms: 12.4 },
        { model: 'b', node: 'n2', response_hash: null, weight: 0, latency_ms: 30, error: 'busy' }
      ],
      trace_id: 't'
    })
    expect(moe).toContain('an answer\n\nconsensus: no (score 0.50)\n')
    expect(moe).toMatch(/^a\s+uhCAkxxxxxxx…xxxxxx\s+0\.50\s+12 ms\s+ffffffffffff$/m)
    expect(moe).toMatch(/^b\s+n2\s+0\.00\s+30 ms\s+-\s+busy$/m)

    let out = ''
    const plain = new LoadProgress('m', { tty: false, write: (s) => { out += s } })
    for (const p of [0.1, 0.3, 0.3, 0.8, 1]) plain.update(p)
    plain.finish()
    expect(out).toBe('loading m: 25% 50% 75% 100%\n')
    out = ''
    const tty = new LoadProgress('m', { tty: true, write: (s) => { out += s } })
    tty.update(0.5)
    tty.update(1)
    tty.finish()
    expect(out.split('\r').filter(Boolean)).toEqual([`loading m [${'#'.repeat(15)}${'-'.repeat(15)}]  50%`, `loading m [${'#'.repeat(30)}] 100%\n`])
  })
})
