/**
 * `flexnode allocate`, `available`, `allocations`, `release` and `task run` as a user runs them
 * (renew is the routes spec's), against one real node started as a child process; plus the argument parsing and
 * usage errors.
 */
import { describe, expect, it } from 'vitest'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir, TEST_NODE_FLAGS, waitUntil } from '../../../../fixtures/index.ts'
import { runInProcess } from '../../../../fixtures/cli.ts'
import { runFlexnode, spawnFlexnode } from '../../../../fixtures/spawn-node.ts'
import { buildWasmFixtures } from '../../../../fixtures/wasm.ts'
import { processExitCode } from '../resources.ts'

const flexnode = runFlexnode

describe('flexnode allocate / available / release / task run', () => {
  it('leases, lists and releases; runs a WASM task with an input file; names each typed error', async () => {
    await using dir = await tempDir()
    const wasm = await buildWasmFixtures()
    for (const name of ['echo', 'abi', 'loop'] as const) await writeFile(join(dir.path, `${name}.wasm`), wasm[name])
    await writeFile(join(dir.path, 'in.txt'), 'hello cli')
    await writeFile(join(dir.path, 'exit7.txt'), 'e')
    const node = spawnFlexnode(['start', '--data-dir', join(dir.path, 'node'), ...TEST_NODE_FLAGS, '--no-demo-model', '--heartbeat-interval', '3600'])
    try {
      const ready = await node.ready
      const self = ready.agent_pub_key as string
      const d = ['--data-dir', join(dir.path, 'node')]

      // the node offers its probed machine once its capability is advertised
      const offer = await waitUntil(async () => {
        const r = await flexnode(['available', '--type', 'compute', ...d, '--json'])
        expect(r.code, r.stderr).toBe(0)
        return (JSON.parse(r.stdout) as { nodes: Array<{ node_id: string, free: { cpu_cores: number } }> }).nodes.find(n => n.node_id === self)
      }, { what: 'the node to see its own offer', timeoutMs: 20_000 })
      expect(offer.free.cpu_cores).toBeGreaterThanOrEqual(1)

      // a lease, with --explain: every candidate and why, the pick marked
      const allocated = await flexnode(['allocate', '--type', 'compute', '--cpu-cores', '1', '--duration', '600', '--explain', ...d])
      expect(allocated.code, allocated.stderr).toBe(0)
      expect(allocated.stdout).toMatch(/^placement: locality_aware_binpack, locality nearest; picked uhCAk/m)
      expect(allocated.stdout).toMatch(/^\*\s+uhCAk\S+\s+\S/m)
      expect(allocated.stdout).toMatch(new RegExp(`^node_id\\s+${self}$`, 'm'))
      const lease = { allocation_id: /^allocation_id\s+(uhCkk\S+)$/m.exec(allocated.stdout)?.[1] ?? '' }
      expect(lease.allocation_id).toMatch(/^uhCkk/)

      const table = await flexnode(['available', ...d])
      expect(table.code, table.stderr).toBe(0)
      expect(table.stdout).toMatch(/^NODE\s+CPU FREE\/ALL\s+MEMORY GB\s+GPU\s+STORAGE GB$/m)
      expect(table.stdout).toMatch(/\(self\)/)
      expect(table.stdout).toMatch(/^total\s/m)

      const held = await flexnode(['allocations', ...d])
      expect(held.code, held.stderr).toBe(0)
      expect(held.stdout).toMatch(new RegExp(`^held\\s+${lease.allocation_id}\\s`, 'm'))
      expect(held.stdout).toMatch(new RegExp(`^provided\\s+${lease.allocation_id}\\s`, 'm'))

      const released = await flexnode(['release', lease.allocation_id, ...d])
      expect(released.code, released.stderr).toBe(0)
      expect(released.stdout).toBe(`released ${lease.allocation_id}\n`)
      // not live any more: one line naming the typed error, exit 1
      const stale = await flexnode(['release', lease.allocation_id, ...d])
      expect(stale.code).toBe(1)
      expect(stale.stderr.trim().split('\n')).toHaveLength(1)
      expect(stale.stderr).toMatch(/^flexnode: LeaseNotLiveError: .*\(HTTP 410 lease_not_live\)$/m)

      // a task: its output raw on stdout, its exit code as the process's
      const task = await flexnode(['task', 'run', join(dir.path, 'echo.wasm'), '--input', join(dir.path, 'in.txt'), '--cpu-ms', '5000', ...d])
      expect(task.code, task.stderr).toBe(0)
      expect(task.stdout).toBe('HELLO CLI')
      const json = await flexnode(['task', 'run', join(dir.path, 'echo.wasm'), '--input', join(dir.path, 'in.txt'), '--explain', ...d, '--json'])
      expect(json.code, json.stderr).toBe(0)
      const result = JSON.parse(json.stdout) as { output_base64: string, exit_code: number, usage: { wall_ms: number }, node_id: string, allocation_id: string, placement: { picked: string } }
      expect(Buffer.from(result.output_base64, 'base64').toString()).toBe('HELLO CLI')
      expect(result).toMatchObject({ exit_code: 0, node_id: self, placement: { picked: self } })
      const seven = await flexnode(['task', 'run', join(dir.path, 'abi.wasm'), '--input', join(dir.path, 'exit7.txt'), '--explain', ...d])
      expect(seven.code).toBe(7)
      expect(seven.stdout).toBe('bye')
      expect(seven.stderr).toMatch(/^placement: /m)
      const loop = await flexnode(['task', 'run', join(dir.path, 'loop.wasm'), '--cpu-ms', '200', ...d])
      expect(loop.code).toBe(1)
      expect(loop.stdout).toBe('')
      expect(loop.stderr).toMatch(/^flexnode: WasmCpuLimitError: .*\(HTTP 422 wasm_cpu_limit\)$/m)
    } finally {
      await node.stop()
    }
  }, 60_000)

  it('rejects bad command lines with a usage error (exit 2), and a missing file too', async () => {
    // the rest of the parsing is checked below
    const cases = [
      ['allocate'], ['allocate', '--type', 'compute', '--cpu-cores', '-1'], ['release'], ['renew', 'uhCkkX'],
      ['available', '--type', 'nope'], ['task', 'frob', 'x.wasm'], ['task', 'run', '/no/such/file.wasm']
    ]
    // an empty data dir, never the real default one
    await using dir = await tempDir()
    const env = { FLEXNODE_DATA_DIR: dir.path }
    for (const args of cases) {
      const r = await runInProcess(args, env)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr, args.join(' ')).toContain(`Usage: flexnode ${args[0]!}`)
      expect(r.stderr, args.join(' ')).not.toMatch(/\n\s+at /)
    }
    const usage = await runInProcess(['help'], env)
    for (const command of ['allocate', 'release', 'renew', 'available', 'allocations', 'task']) expect(usage.stdout).toMatch(new RegExp(`^ {2}${command}\\b`, 'm'))
  })

  it('checks each flag in commander and the input with the operation\'s schema, before it contacts a node', async () => {
    await using dir = await tempDir()
    await writeFile(join(dir.path, 'm.wasm'), 'not wasm, never sent')
    const d = ['--data-dir', join(dir.path, 'none')]
    // accepted: the command goes on to look for the node, which is not there (exit 1)
    const accepted = [
      ['allocate', '--type', 'inference', '--gpu', '--model', 'qwen', '--memory-gb', '0.5', '--locality', 'cheapest', '--node', 'uhCAkN', '--explain'],
      ['available', '--cpu-cores', '2'], ['release', 'uhCkkX'], ['renew', 'uhCkkX', '--duration', '600'], ['allocations', '--json'],
      ['task', 'run', join(dir.path, 'm.wasm'), '--wall-ms', '500', '--json']
    ]
    // refused: exit 2, one reason line naming the flag or field
    const refused: Array<[string[], string]> = [
      [['allocate', '--type', 'gpu-farm'], '--type'], [['allocate', '--type', 'compute', '--cpu-cores', 'NaN'], '--cpu-cores'],
      [['allocate', '--type', 'compute', '--memory-gb', '1e3'], '--memory-gb'], [['allocate', '--type', 'compute', '--duration', '0'], '--duration'],
      [['allocate', '--type', 'compute', '--duration', String(31 * 86400)], '--duration'], [['allocate', '--type', 'compute', '--locality', 'moon'], '--locality'],
      [['allocate', '--type', 'compute', 'extra'], 'too many arguments'], [['allocate', '--type', 'compute', '--bogus'], '--bogus'],
      [['release', 'a', 'b'], 'too many arguments'], [['release', ''], 'allocation_id'], [['renew', 'uhCkkX', '--duration', 'ten'], '--duration'],
      [['renew', '--duration', '60'], 'allocation_id'], [['available', '--memory-gb', '-2'], '--memory-gb'], [['allocations', 'x'], 'too many arguments'],
      [['task'], 'Usage: flexnode task'], [['task', 'run'], 'file.wasm'], [['task', 'run', 'a.wasm', 'b.wasm'], 'too many arguments'],
      [['task', 'run', 'x.wasm', '--cpu-ms', '0'], '--cpu-ms'], [['task', 'run', 'x.wasm', '--wall-ms', '1.5'], '--wall-ms'], [['task', 'run', '/m.wasm', '--input', ''], '--input'],
      // past the flags' own checks, resources.schedule_task's schema refuses it as the HTTP API and MCP do
      [['task', 'run', join(dir.path, 'm.wasm'), '--memory-mb', '999999'], 'limits.memory_mb: ']
    ]
    // in-process, one after another (each replaces stdout and stderr while it runs)
    const results = []
    for (const args of accepted) results.push({ args, want: 1, reason: 'NodeNotRunningError', r: await runInProcess([...args, ...d]) })
    for (const [args, reason] of refused) results.push({ args, want: 2, reason, r: await runInProcess([...args, ...d]) })
    for (const { args, want, reason, r } of results) {
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(want)
      expect(r.stderr, args.join(' ')).toContain(reason)
      expect(r.stderr, args.join(' ')).not.toMatch(/\n\s+at /)
    }
    expect([0, 7, 255, 256, -1].map(processExitCode)).toEqual([0, 7, 255, 255, 255])
  })
})
