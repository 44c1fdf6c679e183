/**
 * A real node bound to 0.0.0.0 with `apiTokenFile` (reached over 127.0.0.1): the CLI's `NodeApi`
 * finds the node's local token, `--api-token` and `--node` work, `flexnode keys token` issues a
 * token the running node accepts at once and revokes it, and `flexnode keys show` reports the
 * node's identity. The command functions run in-process (their output captured from stdout).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createTestAgent, tempDir, type TempDir, type TestAgent } from '../../../../fixtures/index.ts'
import { runInProcess } from '../../../../fixtures/cli.ts'
import { API_TOKEN_FILE } from '../../http/tokens.ts'
import { NodeApi } from '../inference.ts'
import { keysShowCommand, keysTokenCommand, type KeysReport } from '../keys.ts'

const FILE_TOKEN = 'operator-token-0123456789'

/** Run a command function, returning its exit code and what it wrote to stdout. */
async function capture (run: () => Promise<number>): Promise<{ code: number, stdout: string }> {
  let stdout = ''
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => { stdout += String(chunk); return true })
  const quiet = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
  try {
    return { code: await run(), stdout }
  } finally {
    spy.mockRestore()
    quiet.mockRestore()
  }
}

describe('flexnode keys and the CLI against a node that requires tokens', () => {
  let dir: TempDir
  let agent: TestAgent
  let dataDir: string
  let port: number

  beforeAll(async () => {
    dir = await tempDir('flexnode-keys-')
    const tokenFile = join(dir.path, 'tokens')
    await writeFile(tokenFile, `${FILE_TOKEN}\n`)
    dataDir = join(dir.path, 'node')
    agent = await createTestAgent({ dataDir, httpHost: '0.0.0.0', apiTokenFile: tokenFile })
    port = agent.node.info.http_port
  }, 120_000)

  afterAll(async () => {
    await agent?.[Symbol.asyncDispose]()
    await dir?.[Symbol.asyncDispose]()
  })

  it('NodeApi: the local token of the data dir, --api-token, --node', async () => {
    expect((await fetch(`http://127.0.0.1:${port}/v1/models`)).status).toBe(401)
    expect((await stat(join(dataDir, API_TOKEN_FILE))).mode & 0o777).toBe(0o600)

    const local = await NodeApi.connect({ dataDir })
    expect((await local.json<{ data: unknown[] }>('GET', '/v1/models')).data).toBeInstanceOf(Array)
    // the older entry point finds the local token too
    expect((await (await NodeApi.open(dataDir)).request('GET', '/v1/models')).status).toBe(200)

    const wrong = await NodeApi.connect({ dataDir, token: 'wrong-token-wrong-token' })
    await expect(wrong.request('GET', '/v1/models')).rejects.toMatchObject({ name: 'AuthenticationError', status: 401, code: 'invalid_api_key' })

    // --node with a token from the token file, from a data dir that runs no node
    const remote = await NodeApi.connect({ dataDir: join(dir.path, 'elsewhere'), node: `http://127.0.0.1:${port}`, token: FILE_TOKEN })
    expect((await remote.request('GET', '/v1/models')).status).toBe(200)
    // --node on loopback without a token: the data dir's local token
    expect((await (await NodeApi.connect({ dataDir, node: `http://localhost:${port}/` })).request('GET', '/v1/models')).status).toBe(200)
    // a node that does not answer names the URL
    await expect((await NodeApi.connect({ dataDir, node: 'http://127.0.0.1:9' })).request('GET', '/v1/models')).rejects.toMatchObject({ name: 'NodeNotRunningError', message: expect.stringContaining('http://127.0.0.1:9') as unknown })

    for (const node of ['127.0.0.1:8080', 'ftp://host', 'http://user:pw@host:1', 'http://host:1/v1', 'http://host:1/?x=1', 'not a url']) {
      await expect(NodeApi.connect({ dataDir, node }), node).rejects.toMatchObject({ name: 'InvalidInputError', field: 'node' })
    }
    await expect(NodeApi.connect({ dataDir, token: 'has space' })).rejects.toMatchObject({ name: 'InvalidInputError', field: 'token' })
  })

  it('keys token: issued, listed without the secret, accepted at once, revoked at once', async () => {
    const issued = await capture(async () => await keysTokenCommand({ dataDir, json: true, name: 'ci' }))
    expect(issued.code).toBe(0)
    const { token, id, name } = JSON.parse(issued.stdout) as { token: string, id: string, name: string }
    expect(name).toBe('ci')
    expect(token).toMatch(/^fxn_/)
    const plain = await capture(async () => await keysTokenCommand({ dataDir, json: false }))
    expect(plain.stdout).toMatch(/^fxn_[A-Za-z0-9_-]{43}\n$/)

    const withToken = async (t: string): Promise<number> => (await fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { authorization: `Bearer ${t}` } })).status
    expect(await withToken(token)).toBe(200)
    expect(await withToken(plain.stdout.trim())).toBe(200)

    const list = await capture(async () => await keysTokenCommand({ dataDir, json: true, list: true }))
    const { tokens } = JSON.parse(list.stdout) as { tokens: Array<Record<string, unknown>> }
    expect(tokens).toHaveLength(2)
    expect(tokens[0]).toEqual({ id, name: 'ci', created_at: expect.any(String) as unknown })
    expect(list.stdout).not.toContain(token)
    const table = await capture(async () => await keysTokenCommand({ dataDir, json: false, list: true }))
    expect(table.stdout).toMatch(new RegExp(`^ID\\s+NAME\\s+CREATED\\n${id}\\s+ci\\s+\\S+\\n`))

    const revoked = await capture(async () => await keysTokenCommand({ dataDir, json: false, revoke: 'ci' }))
    expect(revoked.stdout).toBe(`revoked ${id} (ci)\n`)
    expect(await withToken(token)).toBe(401)
    expect(await withToken(plain.stdout.trim())).toBe(200)

    await expect(keysTokenCommand({ dataDir, json: false, revoke: 'ci' })).rejects.toMatchObject({ name: 'UnknownTokenError' })
    await expect(keysTokenCommand({ dataDir, json: false, name: 'bad name!' })).rejects.toMatchObject({ name: 'InvalidInputError' })
    await expect(keysTokenCommand({ dataDir, json: false, name: 'x', list: true })).rejects.toMatchObject({ name: 'InvalidInputError' })
    // a data dir no node was started on gets no tokens (a typo in --data-dir)
    await expect(keysTokenCommand({ dataDir: join(dir.path, 'typo'), json: false })).rejects.toMatchObject({ name: 'NoKeystoreError' })
  })

  it('keys show: the agent key, peer id and keystore of the data dir', async () => {
    const shown = await capture(async () => await keysShowCommand({ dataDir, json: true }))
    expect(shown.code).toBe(0)
    const report = JSON.parse(shown.stdout) as KeysReport
    expect(report).toMatchObject({
      agent_pub_key: agent.node.info.agent_pub_key,
      peer_id: agent.node.info.peer_id,
      keystore: { path: join(dataDir, 'keystore.json'), encrypted: false, keys: 1 },
      running_pid: process.pid
    })
    const text = await capture(async () => await keysShowCommand({ dataDir, json: false }))
    expect(text.stdout).toContain(`agent key   ${agent.node.info.agent_pub_key}\n`)
    expect(text.stdout).toContain(`peer id     ${agent.node.info.peer_id}\n`)
    await expect(keysShowCommand({ dataDir: join(dir.path, 'empty'), json: false })).rejects.toMatchObject({ name: 'NoKeystoreError' })
  })
})

describe('flexnode keys show on an encrypted keystore', () => {
  it('reports the key while the node runs, and that it is unknown once it stopped', async () => {
    await using dir = await tempDir('flexnode-keys-enc-')
    const agent = await createTestAgent({ dataDir: dir.path, passphrase: 'correct horse' })
    const info = agent.node.info
    try {
      const running = JSON.parse((await capture(async () => await keysShowCommand({ dataDir: dir.path, json: true }))).stdout) as KeysReport
      expect(running).toMatchObject({ agent_pub_key: info.agent_pub_key, peer_id: info.peer_id, keystore: { encrypted: true, kdf: { name: 'scrypt' } } })
      // loopback: the API is open and no local token is written
      await expect(stat(join(dir.path, API_TOKEN_FILE))).rejects.toMatchObject({ code: 'ENOENT' })
      expect((await fetch(`http://127.0.0.1:${info.http_port}/v1/models`)).status).toBe(200)
    } finally {
      await agent.node.stop()
    }
    const stopped = JSON.parse((await capture(async () => await keysShowCommand({ dataDir: dir.path, json: true }))).stdout) as KeysReport
    expect(stopped).toMatchObject({ agent_pub_key: null, peer_id: null, running_pid: null })
  }, 120_000)
})

describe('flexnode keys: usage mistakes', () => {
  it('a bad --name, conflicting or unknown flags, an extra argument: exit 2, one reason line, no stack', async () => {
    await using dir = await tempDir('flexnode-keys-usage-')
    const cases: Array<[string[], RegExp]> = [
      [['keys', 'token', '--name', 'bad name!'], /^flexnode: .*--name.* must be 1-64 letters/],
      [['keys', 'token', '--name', 'x', '--list'], /^flexnode: .*'--name <name>' cannot be used with option '--list'/],
      [['keys', 'token', '--list', '--revoke', 'ci'], /^flexnode: .*'--list' cannot be used with option '--revoke/],
      [['keys', 'token', '--bogus'], /^flexnode: unknown option '--bogus'/],
      [['keys', 'show', 'extra'], /^flexnode: too many arguments/]
    ]
    for (const [args, reason] of cases) {
      const r = await runInProcess([...args, '--data-dir', dir.path])
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr.split('\n')[0], args.join(' ')).toMatch(reason)
      expect(r.stderr, args.join(' ')).not.toMatch(/\n\s+at /)
    }
    // the help shown after the reason is the subcommand's
    expect((await runInProcess(['keys', 'token', '--name', 'bad name!'], { FLEXNODE_DATA_DIR: dir.path })).stderr).toContain('Usage: flexnode keys token ')
  })
})
