/**
 * The `flexnode` program: `config show` and its sources, a bad config file, unknown commands and
 * flags — exit 2, a one-line reason, never a stack trace. It runs in-process (`fixtures/cli.ts`):
 * none of these needs a process of its own (cli.spec.ts checks the real binary's exit codes).
 */
import { writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../../../../fixtures/index.ts'
import { runInProcess } from '../../../../fixtures/cli.ts'

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
  const { port } = server.address() as { port: number }
  await new Promise(resolve => { server.close(resolve) })
  return port
}

/** A stack trace's frame line. */
const STACK = /^\s+at /m

describe('flexnode config show', () => {
  it('prints the effective configuration and each value\'s source: file < env < flag', async () => {
    await using dir = await tempDir()
    await writeFile(join(dir.path, 'flexnode.yaml'), 'network: testnet\nhttp-port: 8001\nadmin-port: 8101\napp-port: 8201\n')
    const r = await runInProcess(['config', 'show', '--data-dir', dir.path, '--http-port', '8003', '--json'], { FLEXNODE_HTTP_PORT: '8002', FLEXNODE_ADMIN_PORT: '8102' })
    expect(r.code, r.stderr).toBe(0)
    const shown = JSON.parse(r.stdout) as { file: string, options: Record<string, { value: unknown, source: string }> }
    expect(shown.file).toBe(join(dir.path, 'flexnode.yaml'))
    expect(shown.options['http-port']).toEqual({ value: 8003, source: 'flag' })
    expect(shown.options['admin-port']).toEqual({ value: 8102, source: 'env' })
    expect(shown.options['app-port']).toEqual({ value: 8201, source: 'file' })
    expect(shown.options.network).toEqual({ value: 'testnet', source: 'file' })
    expect(shown.options.region).toMatchObject({ source: 'default' })
    const table = await runInProcess(['config', 'show', '--data-dir', dir.path])
    expect(table.code, table.stderr).toBe(0)
    expect(table.stdout).toMatch(/^network\s+testnet\s+file$/m)
    expect(table.stdout).toMatch(/^region\s+local\s+default$/m)
  })

  it('a config file with an unknown key or malformed YAML: exit 2 naming the key and line, no stack', async () => {
    await using dir = await tempDir()
    const file = join(dir.path, 'flexnode.yaml')
    await writeFile(file, 'network: testnet\nhttp-prot: 8080\n')
    for (const args of [['config', 'show', '--data-dir', dir.path], ['start', '--data-dir', dir.path]]) {
      const r = await runInProcess(args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr.split('\n')[0]).toBe(`flexnode: ${file}:2: unknown key "http-prot"`)
      expect(r.stderr).not.toMatch(STACK)
    }
    await writeFile(file, 'network: testnet\nlisten: [a\n')
    const malformed = await runInProcess(['start', '--data-dir', dir.path])
    expect(malformed.code).toBe(2)
    expect(malformed.stderr).toMatch(new RegExp(`^flexnode: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: malformed YAML`))
    expect(malformed.stderr).not.toMatch(STACK)
    const missing = await runInProcess(['start', '--config', join(dir.path, 'nope.yaml')], { FLEXNODE_DATA_DIR: join(dir.path, 'empty') })
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('nope.yaml')
  })
})

describe('usage errors', () => {
  it('an unknown command or flag exits 2 with a one-line reason and no stack', async () => {
    // an empty data dir, never the real default one
    await using dir = await tempDir()
    const env = { FLEXNODE_DATA_DIR: dir.path }
    const unknown = await runInProcess(['frobnicate'], env)
    expect(unknown.code).toBe(2)
    expect(unknown.stderr.split('\n')[0]).toBe("flexnode: unknown command 'frobnicate'")
    expect(unknown.stderr).not.toMatch(STACK)
    for (const args of [['start', '--bogus'], ['config', 'show', '--bogus'], ['status', '--bogus'], ['infer', 'hi', '--bogus'], ['audit', '--bogus'], ['backup', '--bogus']]) {
      const r = await runInProcess(args, env)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr.split('\n')[0], args.join(' ')).toMatch(/^flexnode: .*--bogus/)
      expect(r.stderr).not.toMatch(STACK)
    }
  })

  it('every command has --help (exit 0)', async () => {
    await using dir = await tempDir()
    for (const args of [['--help'], ['start', '--help'], ['config', 'show', '--help'], ['help', 'start'], ['infer', '--help'], ['memory', '--help'], ['keys', 'token', '--help'], ['mcp', '--help']]) {
      const r = await runInProcess(args, { FLEXNODE_DATA_DIR: dir.path })
      expect(r.code, args.join(' ')).toBe(0)
      expect(r.stdout, args.join(' ')).toContain('Usage: flexnode')
    }
  })
})

describe('--node', () => {
  it('an unreachable node: exit 1, one line naming it, no stack', async () => {
    await using dir = await tempDir()
    const url = `http://127.0.0.1:${await closedPort()}`
    for (const args of [['--node', url, 'infer', 'hi', '--data-dir', dir.path], ['models', '--node', url, '--json', '--data-dir', dir.path], ['allocations', '--data-dir', dir.path]]) {
      const r = await runInProcess(args, { FLEXNODE_NODE: url })
      expect(r.code, args.join(' ')).toBe(1)
      expect(r.stderr.trimEnd().split('\n'), args.join(' ')).toHaveLength(1)
      expect(r.stderr).toContain(`NodeNotRunningError: no flexnode is running on ${url}`)
    }
    const bad = await runInProcess(['infer', 'hi', '--node', 'ftp://x'], { FLEXNODE_DATA_DIR: dir.path })
    expect(bad.code).toBe(2)
    expect(bad.stderr.split('\n')[0]).toContain('--node')
  })
})
