/**
 * `flexnode start` when something is wrong before it is ready: a port already in use, a damaged
 * or missing database, a SIGTERM during start-up. Each ends with a clear, typed, one-line error
 * (or a clean stop) and an exit status, never a stack trace or a half-started node.
 */
import { createServer, type Server } from 'node:net'
import { describe, expect, it } from 'vitest'
import { tempDir, TEST_NODE_FLAGS } from '../../../../fixtures/index.ts'
import { spawnFlexnode, type SpawnedNode } from '../../../../fixtures/spawn-node.ts'

/** A TCP port on 127.0.0.1 held by a plain node:net server. */
async function occupy (): Promise<{ server: Server, port: number }> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => { resolve() })
  })
  const addr = server.address()
  if (addr === null || typeof addr !== 'object') throw new Error('no address')
  return { server, port: addr.port }
}

/** The CLI's own error lines (`flexnode: …`), apart from the log lines. */
const errorLines = (node: SpawnedNode): string[] => node.stderr().split('\n').filter(l => l.startsWith('flexnode: '))
/** Lines of a printed stack trace. */
const stackLines = (node: SpawnedNode): string[] => node.stderr().split('\n').filter(l => /^\s+at /.test(l))

describe('flexnode start on a port already in use', () => {
  it('exits 1 with one ListenError line for --admin-port, --app-port, --http-port and --listen', async () => {
    const { server, port } = await occupy()
    try {
      // one node per flag, side by side: each must fail on its own port and nothing else
      await Promise.all(['--admin-port', '--app-port', '--http-port', '--listen'].map(async (flag) => {
        await using dir = await tempDir()
        const value = flag === '--listen' ? `/ip4/127.0.0.1/tcp/${port}` : String(port)
        const node = spawnFlexnode(['start', '--data-dir', dir.path, '--heartbeat-interval', '3600', ...TEST_NODE_FLAGS, flag, value])
        const code = await node.exit
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
