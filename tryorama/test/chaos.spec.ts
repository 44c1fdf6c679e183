/**
 * Chaos: two providers of one model, as real `flexnode start` processes, and a requester node in
 * this process. Concurrent requests spread over both; the busy provider is killed (SIGKILL) or
 * frozen (SIGSTOP) mid-answer. Every non-streaming request is answered; every streaming one either
 * completes as one answer with no repeated text (continued on the other holder) or, with no holder
 * left, ends with a clear `provider_failed` error.
 */
import { describe, expect, it } from 'vitest'
import { mkdir } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { Writable } from 'node:stream'
import { ensureModel } from '../../fixtures/gguf/index.ts'
import { createTestAgent, tempDir, TEST_NODE_FLAGS, waitUntil } from '../../fixtures/index.ts'
import { spawnFlexnode, type SpawnedNode } from '../../fixtures/spawn-node.ts'
import { agentPubKeyFromPeerId } from '../../agent/src/identity/peer-id.ts'
import { encodeHash } from '../../agent/src/holo/hash.ts'
import { createLogger } from '../../agent/src/logger.ts'
import { PeerInference, type RemoteResult } from '../../agent/src/inference/peer.ts'
import type { ModelInfo } from '../../agent/src/inference/types.ts'
import type { NodeCapability } from '../../zomes-ts/agent_registry/types.ts'

const MAX_TOKENS = 1500
const USER = [{ role: 'user' as const, content: 'Tell me a long story.' }]

interface Provider { proc: SpawnedNode, peerId: string, httpPort: number, nodeId: string }

describe('chaos: providers killed or frozen mid-answer', () => {
  it('answers every request through a kill and a freeze, and ends a stream clearly when no holder is left', async () => {
    await using root = await tempDir('flexnode-chaos-')
    const models = join(root.path, 'models')
    await mkdir(models)
    const model = basename(await ensureModel(models, 'tiny', 7), '.gguf')
    const logLines: string[] = []
    const logger = createLogger({ json: true, level: 'warn', destination: new Writable({ write (c: Buffer, _e, done) { logLines.push(c.toString()); done() } }) })
    await using requester = await createTestAgent({ heartbeatIntervalSeconds: 3600, syncIntervalMs: 500 })
    const node = requester.node
    const requesterAddr = node.info.multiaddrs[0]!
    const providers = new Map<string, Provider>()
    const spawned: SpawnedNode[] = []

    const spawnProvider = async (dataDir: string): Promise<Provider> => {
      const proc = spawnFlexnode(['start', '--data-dir', dataDir, '--models-dir', models, '--bootstrap', requesterAddr, '--threads', '1', '--heartbeat-interval', '2', '--log-level', 'warn', ...TEST_NODE_FLAGS])
      spawned.push(proc)
      const info = await proc.ready
      const p = { proc, peerId: String(info.peer_id), httpPort: Number(info.http_port), nodeId: String(info.agent_pub_key) }
      providers.set(p.peerId, p)
      return p
    }
    const capabilities = async (): Promise<NodeCapability[]> =>
      await node.client.callZome({ role_name: 'agent_registry', zome_name: 'discovery', fn_name: 'query_peers', payload: { availability: ['online', 'busy', 'offline'] } }) as NodeCapability[]
    const ready = async (ps: Provider[]): Promise<void> => {
      await waitUntil(async () => {
        const caps = await capabilities()
        return ps.every(p => node.mesh.peers().includes(p.peerId) && caps.some(c => c.node_id === p.nodeId && c.capabilities.inference.models_loaded.includes(model)))
      }, { what: 'the requester to see the providers and their model', timeoutMs: 90_000, intervalMs: 250 })
    }
    const modelInfo = async (p: Provider): Promise<ModelInfo | undefined> => {
      const body = await (await fetch(`http://127.0.0.1:${p.httpPort}/v1/node/models`)).json() as { data: ModelInfo[] }
      return body.data.find(m => m.id === model)
    }
    const busy = async (p: Provider): Promise<boolean> => ((await modelInfo(p))?.in_flight ?? 0) > 0
    const peers = new PeerInference({ mesh: node.mesh, capabilities, logger })
    const post = async (body: object): Promise<Response> =>
      await fetch(`http://127.0.0.1:${node.info.http_port}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

    try {
      const a = await spawnProvider(join(root.path, 'a'))
      const b = await spawnProvider(join(root.path, 'b'))
      await ready([a, b])

      // 1. four concurrent non-streaming requests through the requester's HTTP API spread over
      // both holders; one holder is killed mid-answer and every request is still answered
      const whole = Array.from({ length: 4 }, async () => await post({ model, messages: USER, max_tokens: MAX_TOKENS, temperature: 0, seed: 1 }))
      await waitUntil(async () => await busy(a) && await busy(b), { what: 'both providers generating at once', timeoutMs: 30_000, intervalMs: 20 })
      a.proc.proc.kill('SIGKILL')
      const answers = await Promise.all(whole)
      expect(answers.map(r => r.status)).toEqual([200, 200, 200, 200])
      for (const r of answers) expect((await r.json() as { usage: { completion_tokens: number } }).usage.completion_tokens).toBeGreaterThan(0)

      // 2. the killed holder comes back; four concurrent streams, the busy holder killed after the
      // first tokens: its streams continue on the other holder from the text already sent
      const a2 = await spawnProvider(join(root.path, 'a'))
      await ready([a2, b])
      const streams = Array.from({ length: 4 }, () => {
        const chunks: string[] = []
        return { chunks, done: peers.chat(model, USER, { max_tokens: MAX_TOKENS, temperature: 0, seed: 1, onToken: (t) => { chunks.push(t) } }) }
      })
      await waitUntil(() => peers.inFlight(a2.peerId) > 0 && peers.inFlight(b.peerId) > 0 && streams.every(s => s.chunks.length > 0), { what: 'every stream under way on both holders', timeoutMs: 30_000, intervalMs: 5 })
      expect(peers.inFlight(a2.peerId)).toBe(2)
      expect(peers.inFlight(b.peerId)).toBe(2)
      a2.proc.proc.kill('SIGKILL')
      const results = await Promise.all(streams.map(async s => ({ ...s, result: await s.done })))
      const continued = results.filter(r => r.result.continued !== undefined)
      expect(continued).toHaveLength(2)
      for (const { chunks, result } of results) {
        expect(result.node_id).toBe(b.nodeId)
        expect(chunks.join('')).toBe(result.text)
        expect(result.usage.completion_tokens).toBeLessThanOrEqual(MAX_TOKENS)
      }
      // b answered its own two streams from the start: that is what a replay would have sent again
      const fresh = results.find(r => r.result.continued === undefined)!.result.text
      for (const { result } of continued) checkContinuation(result, a2.nodeId, fresh)
      const warned = logLines.map(l => JSON.parse(l) as Record<string, unknown>).filter(l => l.level === 40 && l.peer === a2.peerId)
      expect(warned.length).toBeGreaterThanOrEqual(2)
      for (const w of warned) expect(w.trace_id).toMatch(/^[0-9a-f]{32}$/)

      // 3. a provider frozen mid-answer (SIGSTOP: its connection stays open) is noticed by the
      // progress deadline, and the stream continues on the other holder
      const a3 = await spawnProvider(join(root.path, 'a'))
      await ready([a3, b])
      const frozenChunks: string[] = []
      const frozen = peers.chat(model, USER, { max_tokens: MAX_TOKENS, temperature: 0, seed: 2, onToken: (t) => { frozenChunks.push(t) } })
      await waitUntil(() => frozenChunks.length > 0, { what: 'the first tokens', timeoutMs: 30_000, intervalMs: 5 })
      const serving = [a3, b].find(p => peers.inFlight(p.peerId) > 0)!
      const other = serving === a3 ? b : a3
      serving.proc.proc.kill('SIGSTOP')
      const thawed = await frozen
      serving.proc.proc.kill('SIGKILL')
      expect(thawed.node_id).toBe(other.nodeId)
      expect(thawed.continued?.[0]?.node_id).toBe(serving.nodeId)
      expect(frozenChunks.join('')).toBe(thawed.text)
      const freshFrozen = await peers.chat(model, USER, { max_tokens: MAX_TOKENS, temperature: 0, seed: 2 })
      expect(freshFrozen.node_id).toBe(other.nodeId)
      checkContinuation(thawed, serving.nodeId, freshFrozen.text)

      // 4. no holder left after a stream started: a clear error event, not a silent restart
      await waitUntil(() => !node.mesh.peers().includes(serving.peerId), { what: 'the killed provider to be gone', timeoutMs: 30_000 })
      // (not from the prompt cache: greedy requests of step 1 are cached, and this one must reach a provider)
      const last = await post({ model, messages: USER, max_tokens: MAX_TOKENS, temperature: 0, seed: 3, stream: true, cache: 'off' })
      expect(last.status).toBe(200)
      const reader = last.body!.getReader()
      const first = await reader.read()
      expect(new TextDecoder().decode(first.value)).toContain('data: ')
      other.proc.proc.kill('SIGKILL')
      let text = new TextDecoder().decode(first.value)
      for (let r = await reader.read(); !r.done; r = await reader.read()) text += new TextDecoder().decode(r.value)
      const events = text.split('\n').filter(l => l.startsWith('data: ')).map(l => l.slice(6))
      expect(events).not.toContain('[DONE]')
      expect(JSON.parse(events[events.length - 1]!)).toMatchObject({ error: { code: 'provider_failed', type: 'server_error' } })
      // the requester keeps serving: a request for a model nobody holds is a typed 404
      expect((await post({ model, messages: USER, max_tokens: 2 })).status).toBe(404)
    } finally {
      for (const p of spawned) {
        if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL')
        await p.exit
      }
    }
    expect(encodeHash(agentPubKeyFromPeerId(node.mesh.peerId))).toBe(node.info.agent_pub_key)
  }, 600_000)
})

/**
 * A continued answer: the text after the takeover is a continuation of the text before it, not a
 * replay of the answer from its start (`fresh`: the same request answered from scratch, which is
 * what a replay would have streamed again).
 */
function checkContinuation (result: RemoteResult, failedNode: string, fresh: string): void {
  const [first] = result.continued ?? []
  expect(first?.node_id).toBe(failedNode)
  const at = first!.at_chars
  expect(at).toBeGreaterThan(0)
  expect(at).toBeLessThan(result.text.length)
  const after = result.text.slice(at)
  expect(fresh.startsWith(after.slice(0, 40))).toBe(false)
  // mid-answer, the next word keeps its separating space
  expect(after).toMatch(/^\s\S/)
}
