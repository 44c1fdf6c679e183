/**
 * The inference router (`inference.single_query`, `inference.moe_query`) on one node: a real
 * engine on generated tiny models behind the real HTTP API, a real mesh node with no peers.
 * Statuses are what a caller sees, so each case goes through HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { ensureModel } from '../../../../fixtures/gguf/index.ts'
import { LOOPBACK, tempDir, type TempDir } from '../../../../fixtures/index.ts'
import { DEFAULT_MOE_POLICY, parseMoePolicy } from '../../../../scheduler/index.ts'
import { encodeHash } from '../../holo/hash.ts'
import { createHttpServer, type HttpServer } from '../../http/server.ts'
import { silentLogger } from '../../logger.ts'
import { agentPubKeyFromPeerId } from '../../identity/peer-id.ts'
import { createMeshNode, type Libp2pMeshNode } from '../../mesh/libp2p-node.ts'
import { createInferenceEngine } from '../engine.ts'
import { PeerInference } from '../peer.ts'
import { createInferenceRouter } from '../router.ts'

type Engine = Awaited<ReturnType<typeof createInferenceEngine>>
type Json = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

/** The engine's context window in these tests: far below the MOE default max_tokens of 4096. */
const CONTEXT = 512

describe('inference router on one node', () => {
  let dir: TempDir
  let engine: Engine
  let mesh: Libp2pMeshNode
  let http: HttpServer
  let a: string
  let b: string

  const post = async (path: string, body: unknown): Promise<Response> =>
    await fetch(`http://127.0.0.1:${http.port}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

  beforeAll(async () => {
    dir = await tempDir('flexnode-router-')
    const models = join(dir.path, 'models')
    await mkdir(models)
    a = basename(await ensureModel(models, 'tiny', 1), '.gguf')
    b = basename(await ensureModel(models, 'tiny', 2), '.gguf')
    engine = await createInferenceEngine({ modelsDirs: [models], gpu: false, threads: 1, contextSize: CONTEXT, sequences: 2 }, { logger: silentLogger() })
    await engine.loadModel(a)
    await engine.loadModel(b)
    mesh = await createMeshNode({ network: 'testnet', seed: randomBytes(32), listen: [LOOPBACK], mdns: false }, { logger: silentLogger() })
    await mesh.start()
    const logger = silentLogger()
    const peers = new PeerInference({ mesh, capabilities: async () => [], logger })
    // a local policy whose votes cannot finish: every vote fails for a reason that is not the caller's
    const hasty = parseMoePolicy({ name: 'hasty', local_tier: { min_parallel: 1, max_parallel: 2, timeout_ms: 1 } })
    const router = createInferenceRouter({ policies: { hasty } }, { engine, peers, capabilities: async () => [], selfNodeId: encodeHash(agentPubKeyFromPeerId(mesh.peerId)), logger })
    http = createHttpServer({ port: 0 }, { engine, logger, router: { ...router, remote: peers } })
    await http.start()
  }, 60_000)

  afterAll(async () => {
    await http?.stop()
    await mesh?.stop()
    await engine?.dispose()
    await dir?.[Symbol.asyncDispose]()
  })

  it('answers "unknown policy" (400) for policy names that are Object.prototype members', async () => {
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
      const res = await post('/v1/moe/query', { prompt: 'Hi', task_type: 'general', max_tokens: 4, policy_override: name })
      const body = await res.json() as Json
      expect({ name, status: res.status, param: body.error?.param }).toEqual({ name, status: 400, param: 'policy_override' })
    }
    // a real local policy still resolves
    expect((await post('/v1/moe/query', { prompt: 'Hi', task_type: 'general', max_tokens: 4, policy_override: DEFAULT_MOE_POLICY.name })).status).toBe(200)
  })

  it('clamps the documented default max_tokens (4096) to each model\'s context instead of failing every vote', async () => {
    const res = await post('/v1/moe/query', { prompt: 'Write one short line.', task_type: 'general' })
    const body = await res.json() as Json
    expect(res.status).toBe(200)
    expect(body.model_votes).toHaveLength(2)
    expect(body.model_votes.filter((v: Json) => v.error !== undefined)).toEqual([])
  })

  it('answers 400 for max_tokens far beyond any context', async () => {
    for (const maxTokens of [1e15, Number.MAX_SAFE_INTEGER]) {
      const res = await post('/v1/moe/query', { prompt: 'Hi', task_type: 'general', max_tokens: maxTokens })
      const body = await res.json() as Json
      expect({ status: res.status, param: body.error?.param }).toEqual({ status: 400, param: 'max_tokens' })
    }
  })

  it('answers 400 when every vote refused the caller\'s input (a prompt longer than every context)', async () => {
    const res = await post('/v1/moe/query', { prompt: 'lorem ipsum dolor '.repeat(400), task_type: 'general', max_tokens: 4 })
    const body = await res.json() as Json
    expect(res.status).toBe(400)
    expect(body.error.code).toBe('context_length_exceeded')
  })

  it('answers 502 with every vote\'s error when every vote failed on the serving side', async () => {
    const res = await post('/v1/moe/query', { prompt: 'Write a long story.', task_type: 'general', max_tokens: 400, policy_override: 'hasty' })
    const body = await res.json() as Json
    expect(res.status).toBe(502)
    expect(body.error).toMatchObject({ type: 'server_error', code: 'moe_no_answers' })
    expect(body.error.model_votes).toHaveLength(2)
    for (const v of body.error.model_votes as Json[]) {
      expect(v).toMatchObject({ model: expect.any(String) as unknown, error: expect.any(String) as unknown })
      expect(v.error_name).toBe('DeadlineExceededError')
    }
  })

  it('passes over a demo model: single picks the real one, MOE never lets the demo vote', async () => {
    // the engine's own demo flag, as ModelInfo carries it for the generated random-weight model
    const marked = { ...engine, listModels: () => engine.listModels().map(m => m.id === a ? { ...m, demo: true } : m) }
    const logger = silentLogger()
    const peers = new PeerInference({ mesh, capabilities: async () => [], logger })
    const router = createInferenceRouter({}, { engine: marked, peers, capabilities: async () => [], selfNodeId: encodeHash(agentPubKeyFromPeerId(mesh.peerId)), logger })
    const signal = new AbortController().signal
    for (let i = 0; i < 3; i++) expect(await router.single({ prompt: 'Hi', max_tokens: 2 }, { signal })).toMatchObject({ model: b })
    const out = await router.moe({ prompt: 'Hi', task_type: 'general', max_tokens: 2, require_consensus: true }, { signal })
    expect(out.model_votes.map(v => v.model)).toEqual([b])

    // only demo models: no vote at all, a clear 404
    const onlyDemo = { ...engine, listModels: () => engine.listModels().map(m => ({ ...m, demo: true })) }
    const demoRouter = createInferenceRouter({}, { engine: onlyDemo, peers, capabilities: async () => [], selfNodeId: encodeHash(agentPubKeyFromPeerId(mesh.peerId)), logger })
    await expect(demoRouter.moe({ prompt: 'Hi', task_type: 'general', max_tokens: 2, require_consensus: true }, { signal })).rejects.toMatchObject({ name: 'ModelNotFoundError' })
    // single still answers with a demo model when there is nothing else
    expect(await demoRouter.single({ prompt: 'Hi', max_tokens: 2 }, { signal })).toMatchObject({ model: expect.any(String) as unknown })
  })

  it('records each query in the audit trail: the policy\'s audit section decides whether the answers are kept', async () => {
    const logger = silentLogger()
    const peers = new PeerInference({ mesh, capabilities: async () => [], logger })
    const self = encodeHash(agentPubKeyFromPeerId(mesh.peerId))
    const events: Array<{ kind: string, actor?: string, subject?: string, detail: Json, trace_id?: string }> = []
    const quiet = parseMoePolicy({ name: 'quiet', local_tier: { min_parallel: 2, max_parallel: 2 }, audit: { log_all_responses: false, store_disagreements: false } })
    const router = createInferenceRouter({ policies: { quiet } }, { engine, peers, capabilities: async () => [], selfNodeId: self, audit: (e) => { events.push(e) }, logger })
    const signal = new AbortController().signal
    const single = await router.single({ prompt: 'Hi', model: a, max_tokens: 2 }, { signal }) as { trace_id: string }
    expect(events.at(-1)).toMatchObject({ kind: 'inference', actor: self, subject: a, trace_id: single.trace_id, detail: { op: 'single_query', node: self } })
    // the default policy logs every response
    const moe = await router.moe({ prompt: 'Hi', task_type: 'general', max_tokens: 2, require_consensus: false }, { signal })
    const logged = events.at(-1)!
    expect(logged).toMatchObject({ kind: 'moe', actor: self, subject: 'general', trace_id: moe.trace_id, detail: { consensus: moe.consensus, consensus_score: moe.consensus_score } })
    expect((logged.detail.responses as unknown[]).length).toBe(moe.model_votes.length)
    // a policy that keeps neither all answers nor disagreements: the votes' hashes only
    await router.moe({ prompt: 'Hi', task_type: 'general', max_tokens: 2, require_consensus: false, policy_override: 'quiet' }, { signal })
    expect(events.at(-1)!.detail.policy).toBe('quiet')
    expect(events.at(-1)!.detail.responses).toBeUndefined()
    expect((events.at(-1)!.detail.votes as unknown[]).length).toBeGreaterThan(0)
  })
})
