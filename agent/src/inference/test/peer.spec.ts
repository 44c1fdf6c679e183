/**
 * Peer inference between in-process nodes: real libp2p on 127.0.0.1, real engines on generated
 * tiny models. Each provider serves `/flexstack/testnet/inference/1`; the requester routes with
 * `PeerInference` over NodeCapability entries built the way the registry builds them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { ensureModel } from '../../../../fixtures/gguf/index.ts'
import { LOOPBACK, tempDir, waitUntil, type TempDir } from '../../../../fixtures/index.ts'
import type { NodeCapability } from '../../../../zomes-ts/agent_registry/types.ts'
import { encode } from '../../conductor/codec.ts'
import { silentLogger } from '../../logger.ts'
import { agentPubKeyFromPeerId } from '../../identity/peer-id.ts'
import { createMeshNode, type Libp2pMeshNode } from '../../mesh/libp2p-node.ts'
import type { MachineProfile } from '../../probe/probe.ts'
import { buildCapability } from '../../registry/registry-service.ts'
import { createInferenceEngine } from '../engine.ts'
import { PeerInference, startInferenceProvider } from '../peer.ts'

type Engine = Awaited<ReturnType<typeof createInferenceEngine>>

const MACHINE: MachineProfile = { cpu_cores: 2, cpu_arch: 'x86_64', ram_gb: 8, gpu: null, local_ssd_gb: 100, hostname: 'test', platform: 'linux' }
const IDLE = { cpu_percent: 0, gpu_percent: 0, memory_percent: 10 }
const USER = [{ role: 'user' as const, content: 'Tell me a long story.' }]

interface Provider { mesh: Libp2pMeshNode, engine: Engine, name: string }

describe('peer inference', () => {
  let dir: TempDir
  let model: string
  const providers: Provider[] = []
  let requester: Libp2pMeshNode
  /** the registry's view the requester routes on; tests change it */
  let caps: NodeCapability[] = []

  const capabilityOf = (p: Provider, extra: { demo_models?: string[], queue_depth?: number } = {}): NodeCapability =>
    buildCapability(agentPubKeyFromPeerId(p.mesh.peerId), p.name, MACHINE, IDLE, { region: 'local' }, { models_loaded: [model], max_batch_size: 2, tokens_per_second: 100, ...extra })

  beforeAll(async () => {
    dir = await tempDir('flexnode-peer-')
    const models = join(dir.path, 'models')
    await mkdir(models)
    model = basename(await ensureModel(models, 'tiny', 7), '.gguf')
    requester = await createMeshNode({ network: 'testnet', seed: randomBytes(32), listen: [LOOPBACK], mdns: false }, { logger: silentLogger() })
    await requester.start()
    for (const name of ['alpha', 'beta']) {
      // one sequence each: a second request on the same provider has to wait in its queue
      const engine = await createInferenceEngine({ modelsDirs: [models], gpu: false, threads: 1, contextSize: 2048, sequences: 1 }, { logger: silentLogger() })
      await engine.loadModel(model)
      const mesh = await createMeshNode({ network: 'testnet', seed: randomBytes(32), listen: [LOOPBACK], mdns: false }, { logger: silentLogger() })
      await mesh.start()
      await startInferenceProvider({}, { engine, mesh, logger: silentLogger() }, { keepaliveIntervalMs: 100 })
      providers.push({ mesh, engine, name })
      await requester.dial(mesh.multiaddrs().find(a => a.startsWith('/ip4/127.0.0.1/'))!)
    }
    await waitUntil(() => providers.every(p => requester.peers().includes(p.mesh.peerId)), { what: 'the requester to see both providers' })
  }, 60_000)

  afterAll(async () => {
    await requester?.stop()
    for (const p of providers) {
      await p.mesh.stop()
      await p.engine.dispose()
    }
    await dir?.[Symbol.asyncDispose]()
  })

  const peers = (init: { progressTimeoutMs?: number } = {}): PeerInference =>
    new PeerInference({ mesh: requester, capabilities: async () => caps, logger: silentLogger() }, init)

  it('spreads concurrent requests for one model over both holders', async () => {
    caps = providers.map(p => capabilityOf(p))
    const remote = peers()
    const results = await Promise.all(Array.from({ length: 4 }, async () => await remote.chat(model, USER, { max_tokens: 200, temperature: 0, seed: 1 })))
    const byNode = new Map<string, number>()
    for (const r of results) byNode.set(r.node_id, (byNode.get(r.node_id) ?? 0) + 1)
    expect([...byNode.values()].sort()).toEqual([2, 2])
    expect(remote.inFlight(providers[0]!.mesh.peerId) + remote.inFlight(providers[1]!.mesh.peerId)).toBe(0)
  })

  it('uses the advertised queue depth and passes over a demo copy while a real one is reachable', async () => {
    const [alpha, beta] = providers as [Provider, Provider]
    caps = [capabilityOf(alpha, { queue_depth: 5 }), capabilityOf(beta)]
    expect((await peers().candidates(model)).map(c => c.peer_id)).toEqual([beta.mesh.peerId, alpha.mesh.peerId])
    caps = [capabilityOf(alpha), capabilityOf(beta, { demo_models: [model], queue_depth: 0 })]
    const r = await peers().chat(model, USER, { max_tokens: 4 })
    expect(r.peer_id).toBe(alpha.mesh.peerId)
  })

  it('waits for a busy provider that keeps sending keep-alives, well past the progress deadline', async () => {
    const [alpha] = providers as [Provider, Provider]
    caps = [capabilityOf(alpha)]
    const remote = peers({ progressTimeoutMs: 500 })
    // the first request holds alpha's only sequence for a while; the second waits in its queue
    const long = remote.chat(model, USER, { max_tokens: 1500, temperature: 0, seed: 1 })
    await waitUntil(() => alpha.engine.listModels()[0]!.in_flight === 1, { what: 'the first request to generate' })
    const queued = remote.chat(model, [{ role: 'user', content: 'Hi' }], { max_tokens: 4, temperature: 0 })
    await waitUntil(() => alpha.engine.listModels()[0]!.queue_depth === 1, { what: 'the second request to queue' })
    const [a, b] = await Promise.all([long, queued])
    expect(a.usage.completion_tokens).toBeGreaterThan(0)
    expect(b.node_id).toBe(a.node_id)
  })

  it('leaves a provider that stops making progress mid-stream and continues the answer on another holder', async () => {
    const [alpha] = providers as [Provider, Provider]
    // a provider that sends one token, then nothing at all (no keep-alive): frozen mid-answer
    const frozen = await createMeshNode({ network: 'testnet', seed: randomBytes(32), listen: [LOOPBACK], mdns: false }, { logger: silentLogger() })
    try {
      await frozen.start()
      await frozen.handleStream('inference', async (_raw, _from, responder) => {
        await responder.send(encode({ t: 'Once' }))
        await new Promise((resolve) => { responder.signal.addEventListener('abort', resolve, { once: true }) })
        return encode({ ok: false, error: { name: 'InferenceError', message: 'aborted' } })
      })
      await requester.dial(frozen.multiaddrs().find(a => a.startsWith('/ip4/127.0.0.1/'))!)
      await waitUntil(() => requester.peers().includes(frozen.peerId), { what: 'the requester to see the frozen provider' })
      const frozenCap = buildCapability(agentPubKeyFromPeerId(frozen.peerId), 'frozen', MACHINE, IDLE, { region: 'local' }, { models_loaded: [model], max_batch_size: 2, tokens_per_second: 1000 })
      caps = [frozenCap, capabilityOf(alpha, { queue_depth: 3 })]
      const chunks: string[] = []
      const r = await peers({ progressTimeoutMs: 500 }).chat(model, USER, { max_tokens: 20, temperature: 0, onToken: (t) => { chunks.push(t) } })
      expect(chunks[0]).toBe('Once')
      expect(chunks.join('')).toBe(r.text)
      expect(r.text.startsWith('Once')).toBe(true)
      expect(r.continued).toEqual([{ node_id: frozenCap.node_id, at_chars: 4 }])
      expect(r.peer_id).toBe(alpha.mesh.peerId)
      // a non-streaming request to the frozen provider is answered afresh by the other holder
      const whole = await peers({ progressTimeoutMs: 500 }).chat(model, USER, { max_tokens: 8, temperature: 0 })
      expect(whole.peer_id).toBe(alpha.mesh.peerId)
      expect(whole.continued).toBeUndefined()
      // and with no other holder, the stream ends with a typed error
      caps = [frozenCap]
      await expect(peers({ progressTimeoutMs: 500 }).chat(model, USER, { max_tokens: 8, onToken: () => {} })).rejects.toMatchObject({ name: 'ProviderFailedError' })
    } finally {
      await frozen.stop()
    }
  })
})
