/**
 * Inference across the mesh: players serve generated tiny models; requests are routed through
 * one node's OpenAI-compatible API to the nodes that hold the model.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdir } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { ensureModel } from '../../fixtures/gguf/index.ts'
import { tempDir, type TempDir } from '../../fixtures/index.ts'
import { encodeHash } from '../../agent/src/holo/hash.ts'
import { encode as encodeWire } from '../../agent/src/conductor/codec.ts'
import { silentLogger } from '../../agent/src/logger.ts'
import { runScenario, waitUntil, type Player } from '../src/index.ts'
import type { NodeCapability } from '../../zomes-ts/agent_registry/types.ts'
import { SHARED_POLICY_TTL_MS } from '../../agent/src/inference/constants.ts'

let root: TempDir
const dirs: Record<string, string> = {}
const ids: Record<string, string> = {}

beforeAll(async () => {
  root = await tempDir('flexnode-mesh-models-')
  for (const [name, seed] of [['x', 1], ['y', 2], ['w', 3], ['z', 4]] as const) {
    dirs[name] = join(root.path, name)
    await mkdir(dirs[name]!)
    ids[name] = basename(await ensureModel(dirs[name]!, 'tiny', seed), '.gguf')
  }
}, 60_000)
afterAll(async () => { await root?.[Symbol.asyncDispose]() })

const api = (p: Player, path: string): string => `http://127.0.0.1:${p.node.info.http_port}${path}`
const post = async (p: Player, path: string, body: unknown): Promise<Response> =>
  await fetch(api(p, path), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
const nodeId = (p: Player): string => encodeHash(p.agentPubKey)

/** Wait until `viewer` sees every listed player advertising its models. */
async function seesModels (viewer: Player, players: Player[]): Promise<void> {
  await waitUntil(async () => {
    const caps = await viewer.cells.agent_registry!.callZome<NodeCapability[]>('discovery', 'query_peers', { availability: ['online', 'busy'] })
    return players.every(p => {
      const cap = caps.find(c => c.node_id === nodeId(p))
      const want = p.node.inference.listModels().filter(m => m.loaded).map(m => m.id)
      return cap !== undefined && want.every(m => cap.capabilities.inference.models_loaded.includes(m)) && viewer.node.mesh.peers().includes(p.peerId)
    })
  }, { what: 'advertised models', timeoutMs: 30_000 })
}

describe('inference across the mesh', () => {
  it('routes to the only holder, streams, fails over when the chosen node dies, and obeys provider policy', async () => {
    await runScenario(async (scenario) => {
      // c is the mesh's policy admin
      const admin = await scenario.prepareAgent()
      const policyAdmins = [admin.agentPubKey]
      const a = await scenario.addPlayer({ modelsDirs: [dirs.x!], policyAdmins })
      const b = await scenario.addPlayer({ modelsDirs: [dirs.w!], policyAdmins })
      // c serves only a and b: anyone else is denied by its policy
      const c = await scenario.addPlayer({ modelsDirs: [dirs.w!, dirs.z!], inferencePolicy: { allow: [a.peerId, b.peerId] }, policyAdmins, dataDir: admin.dataDir })
      await seesModels(a, [b, c])

      // a model only c holds, asked through a's OpenAI API
      const res = await post(a, '/v1/chat/completions', { model: ids.z, messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 8, seed: 3 })
      expect(res.status).toBe(200)
      const body = await res.json() as { model: string, choices: Array<{ message: { content: string } }>, usage: { completion_tokens: number } }
      expect(body.usage.completion_tokens).toBeGreaterThan(0)
      const local = await c.node.inference.chat(ids.z!, [{ role: 'user', content: 'Hello there' }], { max_tokens: 8, seed: 3 })
      expect(body.choices[0]!.message.content).toBe(local.text)

      // streamed over the mesh and over SSE
      const sse = await post(a, '/v1/chat/completions', { model: ids.z, messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 8, seed: 3, stream: true })
      expect(sse.status).toBe(200)
      const events = (await sse.text()).split('\n').filter(l => l.startsWith('data: '))
      expect(events[events.length - 1]).toBe('data: [DONE]')
      const streamed = events.slice(0, -1).map(e => (JSON.parse(e.slice(6)) as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? '').join('')
      expect(streamed).toBe(local.text)

      // single_query names the serving node; kill it and the other holder of the model answers
      const first = await (await post(a, '/v1/inference/single', { prompt: 'Hi', model: ids.w, max_tokens: 4 })).json() as { node: string }
      expect([nodeId(b), nodeId(c)]).toContain(first.node)
      const chosen = first.node === nodeId(b) ? b : c
      const other = chosen === b ? c : b
      await scenario.kill(chosen)
      const second = await post(a, '/v1/inference/single', { prompt: 'Hi', model: ids.w, max_tokens: 4 })
      expect(second.status).toBe(200)
      expect((await second.json() as { node: string }).node).toBe(nodeId(other))
      await scenario.restart(chosen)

      // a newcomer that c's policy does not allow is refused with 403
      const d = await scenario.addPlayer({ policyAdmins })
      await seesModels(d, [c])
      const denied = await post(d, '/v1/chat/completions', { model: ids.z, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 })
      expect(denied.status).toBe(403)
      expect((await denied.json() as { error: { type: string } }).error.type).toBe('permission_error')

      // the mesh-wide access policy in policy_store: c, the admin, publishes a deny of b, and b is refused
      await waitUntil(async () => (await post(b, '/v1/chat/completions', { model: ids.z, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 })).status === 200, { what: 'b served by c', timeoutMs: 30_000, intervalMs: 500 })
      await c.cells.policy_store!.callZome('policies', 'set_policy', { name: 'inference-access', kind: 'access', document: { deny: [nodeId(b)] } })
      await waitUntil(async () => (await post(b, '/v1/chat/completions', { model: ids.z, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 })).status === 403, { what: 'the shared deny to apply', timeoutMs: 20_000, intervalMs: 500 })
    })
  }, 180_000)

  it('MOE over 5 instances on 4 nodes: identical models agree and a different one is outvoted', async () => {
    await runScenario(async (scenario) => {
      const admin = await scenario.prepareAgent()
      const policyAdmins = [admin.agentPubKey]
      const a = await scenario.addPlayer({ modelsDirs: [dirs.x!, dirs.y!], policyAdmins, dataDir: admin.dataDir })
      const others = [
        await scenario.addPlayer({ modelsDirs: [dirs.x!], policyAdmins }),
        await scenario.addPlayer({ modelsDirs: [dirs.x!], policyAdmins }),
        await scenario.addPlayer({ modelsDirs: [dirs.x!], policyAdmins })
      ]
      await seesModels(a, others)
      const res = await post(a, '/v1/moe/query', { prompt: 'Write one short line.', task_type: 'general', max_tokens: 12 })
      expect(res.status).toBe(200)
      const out = await res.json() as { response: string, consensus: boolean, consensus_score: number, trace_id: string, model_votes: Array<{ model: string, node: string, response_hash: string, weight: number, error?: string }> }
      expect(out.model_votes).toHaveLength(5)
      expect(out.model_votes.filter(v => v.error !== undefined)).toEqual([])
      expect(new Set(out.model_votes.map(v => v.node)).size).toBe(4)
      const xVotes = out.model_votes.filter(v => v.model === ids.x)
      const yVotes = out.model_votes.filter(v => v.model === ids.y)
      expect(xVotes).toHaveLength(4)
      expect(yVotes).toHaveLength(1)
      // the four identical models gave one answer; the different model's answer lost
      expect(new Set(xVotes.map(v => v.response_hash)).size).toBe(1)
      expect(yVotes[0]!.response_hash).not.toBe(xVotes[0]!.response_hash)
      expect(out.consensus).toBe(true)
      expect(out.consensus_score).toBeCloseTo(0.8, 5)
      const expected = await a.node.inference.chat(ids.x!, [{ role: 'user', content: 'Write one short line.' }], { max_tokens: 12, temperature: 0, seed: 0 })
      expect(out.response).toBe(expected.text)
      expect(out.trace_id).toMatch(/^[0-9a-f]{32}$/)

      // a stricter policy published to policy_store by the admin: same answer, but below its min_agreement
      const { DEFAULT_MOE_POLICY } = await import('../../scheduler/index.ts')
      const strict = { ...DEFAULT_MOE_POLICY, name: 'strict-moe', reducer: { ...DEFAULT_MOE_POLICY.reducer, min_agreement: 0.9 } }
      await a.cells.policy_store!.callZome('policies', 'set_policy', { name: 'strict-moe', kind: 'moe', document: strict })
      const strictRes = await (await post(a, '/v1/moe/query', { prompt: 'Write one short line.', task_type: 'general', max_tokens: 12, policy_override: 'strict-moe' })).json() as { response: string, consensus: boolean, consensus_score: number }
      expect(strictRes.consensus).toBe(false)
      expect(strictRes.consensus_score).toBeCloseTo(0.8, 5)
      expect(strictRes.response).toBe(expected.text)
      const unknown = await post(a, '/v1/moe/query', { prompt: 'x', task_type: 'general', policy_override: 'no-such-policy' })
      expect(unknown.status).toBe(400)
    })
  }, 180_000)
})

describe('mesh-wide policies and a hostile peer', () => {
  it('without policy admins, a peer\'s deny-everyone inference-access policy changes nothing: providers keep serving', async () => {
    await runScenario(async (scenario) => {
      // the providers' own rate is far above what the loop below sends, so any refusal would be
      // the hostile policy's 1/min taking effect
      const inferencePolicy = { perPeerPerMinute: 1_000_000 }
      const p1 = await scenario.addPlayer({ modelsDirs: [dirs.x!], inferencePolicy })
      const p2 = await scenario.addPlayer({ modelsDirs: [dirs.y!], inferencePolicy })
      const hostile = await scenario.addPlayer()
      await seesModels(hostile, [p1, p2])
      await seesModels(p1, [p2])
      const ask = async (from: Player, model: string): Promise<number> =>
        (await post(from, '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 })).status
      expect(await ask(hostile, ids.x!)).toBe(200)

      // the hostile peer publishes a deny list of every node, itself included
      const everyone = [p1, p2, hostile].map(nodeId)
      await hostile.cells.policy_store!.callZome('policies', 'set_policy', { name: 'inference-access', kind: 'access', document: { deny: everyone, per_peer_per_minute: 1 } })
      // the entry reaches both providers' DHT replicas
      for (const p of [p1, p2]) {
        await waitUntil(async () => (await p.cells.policy_store!.callZome<{ author: string } | null>('policies', 'get_policy', 'inference-access'))?.author === nodeId(hostile), { what: `the hostile policy on ${p.name}` })
      }
      // well past the providers' policy cache, everyone is still served, and above the hostile rate
      const until = Date.now() + 2 * SHARED_POLICY_TTL_MS + 1000
      let served = 0
      while (Date.now() < until) {
        for (const [from, model] of [[hostile, ids.x!], [hostile, ids.y!], [p1, ids.y!], [p2, ids.x!]] as const) {
          expect(await ask(from, model)).toBe(200)
          served++
        }
      }
      expect(served).toBeGreaterThan(4)
    })
  }, 180_000)

  it('with a policy admin, only the admin\'s policies apply: a hostile peer\'s are refused, and a data dir keeps its admins', async () => {
    await runScenario(async (scenario) => {
      const admin = await scenario.prepareAgent()
      const policyAdmins = [admin.agentPubKey]
      const a = await scenario.addPlayer({ modelsDirs: [dirs.x!], policyAdmins, dataDir: admin.dataDir })
      const b = await scenario.addPlayer({ modelsDirs: [dirs.x!], policyAdmins })
      const hostile = await scenario.addPlayer({ policyAdmins })
      await seesModels(hostile, [a, b])
      const ask = async (from: Player): Promise<number> =>
        (await post(from, '/v1/chat/completions', { model: ids.x, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 })).status

      // the admin published the default MOE policy at start; nobody else may publish anything
      await waitUntil(async () => (await b.cells.policy_store!.callZome<{ author: string } | null>('policies', 'get_policy', 'ripple-moe'))?.author === admin.agentPubKey, { what: 'the admin\'s ripple-moe on b' })
      const denyAll = { name: 'inference-access', kind: 'access', document: { deny: [a, b, hostile].map(nodeId) } }
      await expect(hostile.cells.policy_store!.callZome('policies', 'set_policy', denyAll)).rejects.toMatchObject({ message: expect.stringContaining('policy_admins') as unknown })
      await expect(hostile.cells.policy_store!.callZome('policies', 'set_policy', { name: 'ripple-moe', kind: 'moe', document: { local_tier: { min_parallel: 1, max_parallel: 1 } } })).rejects.toThrow()
      expect(await ask(hostile)).toBe(200)

      // the admin's deny of the hostile peer applies on every provider; everyone else is served
      await a.cells.policy_store!.callZome('policies', 'set_policy', { name: 'inference-access', kind: 'access', document: { deny: [nodeId(hostile)] } })
      await waitUntil(async () => await ask(hostile) === 403, { what: 'the admin\'s deny to apply', timeoutMs: 30_000, intervalMs: 500 })
      expect(await ask(b)).toBe(200)

      // b's data dir belongs to the mesh of these admins: other flags are a clear error
      await scenario.kill(b)
      const { FlexNode } = await import('../../agent/src/node.ts')
      for (const other of [[], [nodeId(hostile)]]) {
        await expect(FlexNode.start({ dataDir: b.dataDir, scryptN: 2 ** 12, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, generateDefaultModel: false, preloadModels: false, gpu: false, threads: 1, logger: silentLogger(), policyAdmins: other }))
          .rejects.toMatchObject({ name: 'PolicyAdminsMismatchError' })
      }
      await scenario.restart(b)
      expect(b.alive).toBe(true)
    })
  }, 180_000)

  it('serves a request under an inference lease on the lease\'s provider, counts its tokens against it, and refuses it once the lease expired', async () => {
    await runScenario(async (scenario) => {
      const provider = await scenario.addPlayer({ modelsDirs: [dirs.y!], resourceCapacity: { cpu_cores: 4, memory_gb: 8, gpu_count: 0, storage_gb: 10 } })
      const requester = await scenario.addPlayer({ resourceCapacity: { cpu_cores: 0, memory_gb: 0, gpu_count: 0, storage_gb: 0 } })
      const stranger = await scenario.addPlayer({ resourceCapacity: { cpu_cores: 0, memory_gb: 0, gpu_count: 0, storage_gb: 0 } })
      await Promise.all([seesModels(requester, [provider]), seesModels(stranger, [provider])])
      // a short lease (10 s: long enough for the checks below on a busy machine), to see it expire
      const lease = await requester.node.resources.allocate({ resource_type: 'inference', requirements: { model_name: ids.y!, memory_gb: 1 }, duration_seconds: 10 })
      expect(lease.node_id).toBe(nodeId(provider))
      expect(lease.resources.model_slots).toBe(1)
      // the provider has one model loaded and serves 2 requests at once: 2 model slots
      const second = await requester.node.resources.allocate({ resource_type: 'inference', requirements: { model_name: ids.y! }, duration_seconds: 60 })
      await expect(requester.node.resources.allocate({ resource_type: 'inference', requirements: { model_name: ids.y! } })).rejects.toThrow(/not enough model_slots/)
      // another node's request under the requester's lease is refused by the provider
      const stolen = encodeWire({ op: 'chat', model: ids.y, messages: [{ role: 'user', content: 'Hi' }], options: { max_tokens: 2 }, allocation_id: second.allocation_id })
      await expect(stranger.node.mesh.requestStream(provider.peerId, 'inference', stolen, { onChunk: () => {} })).rejects.toMatchObject({ name: 'PolicyDeniedError', message: expect.stringMatching(/not held by the caller/) })
      await requester.node.resources.release(second)
      const ask = async (allocationId: string): Promise<Response> => await post(requester, '/v1/chat/completions', { model: ids.y, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, seed: 1, allocation_id: allocationId })
      const res = await ask(lease.allocation_id)
      expect(res.status).toBe(200)
      const body = await res.json() as { usage: { total_tokens: number } }
      await waitUntil(async () => (await provider.node.resources.usage({ allocation_id: lease.allocation_id })).tokens > 0, { what: 'the usage record' })
      const usage = await provider.node.resources.usage({ allocation_id: lease.allocation_id })
      expect(usage.tokens).toBe(body.usage.total_tokens)
      expect(usage.tasks).toBe(1)
      // an allocation this node does not hold, and a malformed one
      expect((await post(requester, '/v1/chat/completions', { model: ids.y, messages: [{ role: 'user', content: 'Hi' }], allocation_id: 'nope' })).status).toBe(400)
      // once the lease has expired the provider refuses it, with the reason
      await new Promise(resolve => setTimeout(resolve, Math.max(0, Date.parse(lease.expires_at) - Date.now()) + 500))
      const late = await ask(lease.allocation_id)
      expect(late.status).toBe(403)
      expect(JSON.stringify(await late.json())).toMatch(/expired/)
    })
  }, 120_000)
})
