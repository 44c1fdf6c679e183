/**
 * W3C traceparent across the mesh: an inference and an MOE query sent to node A with a
 * `traceparent`, served by node B (the only holder of the model), are in both nodes' audit trails
 * under that trace id; A's answer echoes a child span of the same trace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdir } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { ensureModel } from '../../fixtures/gguf/index.ts'
import { tempDir, type TempDir } from '../../fixtures/index.ts'
import { encodeHash } from '../../agent/src/holo/hash.ts'
import { parseTraceparent } from '../../agent/src/trace.ts'
import { DEFAULT_MOE_POLICY } from '../../scheduler/index.ts'
import type { NodeCapability } from '../../zomes-ts/agent_registry/types.ts'
import { runScenario, waitUntil, type Player } from '../src/index.ts'

let root: TempDir
let modelsDir: string
let model: string

beforeAll(async () => {
  root = await tempDir('flexnode-trace-')
  modelsDir = join(root.path, 'models')
  await mkdir(modelsDir)
  model = basename(await ensureModel(modelsDir, 'tiny', 5), '.gguf')
}, 60_000)
afterAll(async () => { await root?.[Symbol.asyncDispose]() })

const nodeId = (p: Player): string => encodeHash(p.agentPubKey)

describe('traceparent across the mesh', () => {
  it('one inference and one MOE query, asked on A and served by B, are in both audit trails under the caller\'s trace id', async () => {
    await runScenario(async (scenario) => {
      // A is the mesh's policy admin: it publishes an MOE policy that one vote (B's one model) satisfies
      const admin = await scenario.prepareAgent()
      const policyAdmins = [admin.agentPubKey]
      const a = await scenario.addPlayer({ policyAdmins, dataDir: admin.dataDir })
      const b = await scenario.addPlayer({ modelsDirs: [modelsDir], policyAdmins })
      const policy = { ...DEFAULT_MOE_POLICY, name: 'trace-moe', local_tier: { ...DEFAULT_MOE_POLICY.local_tier, min_parallel: 1, max_parallel: 1, models: [{ name: model, weight: 1, specialization: 'general' }] } }
      await a.cells.policy_store!.callZome('policies', 'set_policy', { name: 'trace-moe', kind: 'moe', document: policy })
      await waitUntil(async () => (await a.cells.agent_registry!.callZome<NodeCapability[]>('discovery', 'query_peers', null))
        .some(n => n.node_id === nodeId(b) && n.capabilities.inference.models_loaded.includes(model)) && a.node.mesh.peers().includes(b.peerId), { what: 'A sees B serve the model', timeoutMs: 30_000 })

      const post = async (path: string, body: unknown, traceparent: string): Promise<Response> =>
        await fetch(`http://127.0.0.1:${a.node.info.http_port}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', traceparent }, body: JSON.stringify(body) })

      // a single query
      const singleTrace = '4bf92f3577b34da6a3ce929d0e0e4736'
      const res = await post('/v1/inference/single', { prompt: 'hi', model, max_tokens: 4 }, `00-${singleTrace}-00f067aa0ba902b7-01`)
      const single = await res.json() as { trace_id: string, node: string }
      expect(res.status, JSON.stringify(single)).toBe(200)
      expect(single).toMatchObject({ trace_id: singleTrace, node: nodeId(b) })
      // the answer's traceparent: the same trace, A's own span
      const echoed = parseTraceparent(res.headers.get('traceparent') ?? undefined)
      expect(echoed).toMatchObject({ traceId: singleTrace, flags: 1 })
      expect(echoed!.spanId).not.toBe('00f067aa0ba902b7')
      expect(a.node.audit.log.list({ kind: 'inference' }).find(r => r.trace_id === singleTrace)).toMatchObject({ actor: nodeId(a), subject: model, detail: { op: 'single_query', node: nodeId(b) } })
      expect(b.node.audit.log.list({ kind: 'inference' }).find(r => r.trace_id === singleTrace)).toMatchObject({ actor: nodeId(a), subject: model, detail: { served: true } })

      // an MOE query
      const moeTrace = 'a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5'
      const moeRes = await post('/v1/moe/query', { prompt: 'hi', task_type: 'general', max_tokens: 4, policy_override: 'trace-moe' }, `00-${moeTrace}-1122334455667788-01`)
      const moe = await moeRes.json() as { trace_id: string, model_votes: Array<{ node: string, error?: string }> }
      expect(moeRes.status, JSON.stringify(moe)).toBe(200)
      expect(moe.trace_id).toBe(moeTrace)
      expect(moe.model_votes).toEqual([expect.objectContaining({ node: nodeId(b) })])
      expect(a.node.audit.log.list({ kind: 'moe' }).find(r => r.trace_id === moeTrace)).toMatchObject({ actor: nodeId(a), subject: 'general' })
      expect(b.node.audit.log.list({ kind: 'inference' }).find(r => r.trace_id === moeTrace)).toMatchObject({ actor: nodeId(a), subject: model, detail: { served: true } })

      // no traceparent, or an invalid one: a new trace, still followed on both nodes
      for (const header of [undefined, '00-00000000000000000000000000000000-00f067aa0ba902b7-01', 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'garbage']) {
        const r = await fetch(`http://127.0.0.1:${a.node.info.http_port}/v1/inference/single`, { method: 'POST', headers: { 'content-type': 'application/json', ...(header === undefined ? {} : { traceparent: header }) }, body: JSON.stringify({ prompt: 'hi', model, max_tokens: 2 }) })
        const out = await r.json() as { trace_id: string }
        expect(r.status).toBe(200)
        expect(out.trace_id, String(header)).toMatch(/^(?!0{32})[0-9a-f]{32}$/)
        expect(out.trace_id).not.toBe(singleTrace)
        expect(parseTraceparent(r.headers.get('traceparent') ?? undefined)?.traceId).toBe(out.trace_id)
        expect(b.node.audit.log.list({ kind: 'inference' }).some(rec => rec.trace_id === out.trace_id)).toBe(true)
      }
    })
  }, 180_000)
})
