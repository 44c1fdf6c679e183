/**
 * Artifacts across a mesh (issue 12): real nodes on 127.0.0.1, each with its embedded Helia store
 * on its own libp2p node (bitswap over the mesh), records and provider records in artifact_index.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runScenario, waitUntil, type Player } from '../src/index.ts'
import { encodeHash } from '../../agent/src/holo/hash.ts'
import type { FlexNodeInit } from '../../agent/src/node.ts'
import { ensureModel } from '../../fixtures/gguf/index.ts'
import { buildWasmFixtures, type WasmFixtures } from '../../fixtures/wasm.ts'

/** Fast replication for tests: a pass every 300 ms, a provider gone 3 s after its last heartbeat. */
const ARTIFACTS: NonNullable<FlexNodeInit['artifacts']> = { replicationIntervalMs: 300, graceMs: 3000, fetchTimeoutMs: 10_000 }
const nodeId = (p: Player): string => encodeHash(p.agentPubKey)

async function collect (source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const c of source) chunks.push(c)
  return Buffer.concat(chunks)
}

/** Every player sees `n` live nodes. */
async function liveMesh (players: Player[], n = players.length): Promise<void> {
  for (const p of players) {
    await waitUntil(async () => (await p.cells.agent_registry!.callZome<Array<{ availability: string }>>('discovery', 'query_peers', null))
      .filter(c => c.availability !== 'offline').length === n, { what: `${n} live nodes seen`, timeoutMs: 30_000 })
  }
}

describe('artifacts on a mesh', () => {
  it('an artifact added on A is fetched on C, reaches min providers, and after a provider dies is pinned again once, without a storm', async () => {
    await runScenario(async (scenario) => {
      const players = await scenario.addPlayers(3, { artifacts: ARTIFACTS, heartbeatIntervalSeconds: 1 })
      const [a, , c] = players as [Player, Player, Player]
      await liveMesh(players)
      const bytes = randomBytes(3 * 1024 * 1024 + 17)
      const added = await a.node.artifacts.add(bytes, { name: 'build.bin', replication: { min: 2, max: 2 }, cidVersion: 1 })

      // C fetches it from A over bitswap, verified; getting it does not make C a provider
      await waitUntil(async () => (await c.node.artifacts.record(added.cid)) !== undefined, { what: 'C sees the record' })
      expect((await collect(c.node.artifacts.get(added.cid))).equals(bytes)).toBe(true)

      // replication: exactly one more node pins it
      const liveProviders = async (p: Player): Promise<string[]> => (await p.node.artifacts.providers(added.cid)).filter(x => x.live).map(x => x.node).sort()
      await waitUntil(async () => (await liveProviders(a)).length === 2, { what: '2 providers', timeoutMs: 30_000 })
      const pinsOf = (ps: Player[]): number => ps.reduce((n, p) => n + p.node.artifacts.stats().pins_completed, 0)
      // a few more passes: nobody else pins (min reached)
      for (const p of players) await p.node.artifacts.replicate()
      expect(pinsOf(players)).toBe(1)
      const second = (await liveProviders(a)).find(n => n !== nodeId(a))!
      const victim = players.find(p => nodeId(p) === second)!
      const survivor = players.find(p => p !== a && p !== victim)!
      expect(await victim.node.artifacts.store.has(added.cid)).toBe(true)

      // the provider dies: after its grace period exactly one node (the survivor) pins it again
      await scenario.kill(victim)
      await waitUntil(async () => (await liveProviders(a)).length === 2 && (await liveProviders(a)).includes(nodeId(survivor)), { what: 'the count restored', timeoutMs: 60_000 })
      for (const p of [a, survivor]) await p.node.artifacts.replicate()
      expect(survivor.node.artifacts.stats().pins_completed).toBe(1)
      expect(a.node.artifacts.stats().pins_completed).toBe(0)
      // every provider record ever made: A, the victim, the survivor — one repin, no storm
      expect((await a.node.artifacts.providers(added.cid)).map(p => p.node).sort()).toEqual([nodeId(a), nodeId(victim), nodeId(survivor)].sort())
      expect((await collect(survivor.node.artifacts.store.get(added.cid))).equals(bytes)).toBe(true)
    })
  })

  describe('models and WASM modules by CID', () => {
    let modelDir: string
    let wasm: WasmFixtures
    beforeAll(async () => {
      modelDir = await mkdtemp(join(tmpdir(), 'flexnode-model-'))
      await ensureModel(modelDir, 'tiny', 7)
      wasm = await buildWasmFixtures()
    })
    afterAll(async () => { await rm(modelDir, { recursive: true, force: true }) })

    it('a model published on A is pulled and loaded on C and answers; a truncated GGUF is refused and nothing is kept', async () => {
      await runScenario(async (scenario) => {
        const a = await scenario.addPlayer({ artifacts: ARTIFACTS, modelsDirs: [modelDir] })
        const c = await scenario.addPlayer({ artifacts: ARTIFACTS })
        const id = basename((await readdir(modelDir)).find(f => f.endsWith('.gguf'))!, '.gguf')
        const published = await a.node.models.publish(id)
        expect(published.model).toBe(id)
        await waitUntil(async () => (await c.node.artifacts.record(published.cid)) !== undefined, { what: 'C sees the model record' })
        const progress: number[] = []
        const pulled = await c.node.models.pull(published.cid, { load: true, onProgress: (p) => { progress.push(p.bytes) } })
        expect(pulled.model).toMatchObject({ id, loaded: true })
        expect(progress.at(-1)).toBe(published.size)
        expect((await readFile(join(c.node.info.data_dir, 'models', `${id}.gguf`))).equals(await readFile(join(modelDir, `${id}.gguf`)))).toBe(true)
        const answer = await c.node.inference.chat(id, [{ role: 'user', content: 'hi' }], { max_tokens: 4, temperature: 0 })
        expect(answer.usage.completion_tokens).toBeGreaterThan(0)
        // C is a provider of the model now
        expect((await c.node.artifacts.providers(published.cid)).map(p => p.node)).toContain(nodeId(c!))
        // pulling again finds it in place
        expect((await c.node.models.pull(published.cid)).already_present).toBe(true)

        // an inference through the mesh is in both nodes' audit trails under one trace id: C asked, A served
        await c.node.inference.unloadModel(id)
        await waitUntil(async () => (await c.cells.agent_registry!.callZome<Array<{ node_id: string, capabilities: { inference: { models_loaded: string[] } } }>>('discovery', 'query_peers', null))
          .some(n => n.node_id === nodeId(a) && n.capabilities.inference.models_loaded.includes(id)), { what: 'C sees A serve the model' })
        const res = await fetch(`http://127.0.0.1:${c.node.info.http_port}/v1/inference/single`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'hi', model: id, max_tokens: 4 }) })
        const single = await res.json() as { trace_id: string, node: string }
        expect(res.status, JSON.stringify(single)).toBe(200)
        expect(single.node).toBe(nodeId(a))
        const asked = c.node.audit.log.list({ kind: 'inference' }).find(r => r.trace_id === single.trace_id)
        expect(asked).toMatchObject({ actor: nodeId(c), subject: id, detail: { op: 'single_query', node: nodeId(a) } })
        const served = a.node.audit.log.list({ kind: 'inference' }).find(r => r.trace_id === single.trace_id)
        expect(served).toMatchObject({ actor: nodeId(c), subject: id, detail: { op: 'chat', served: true } })
        expect((served!.detail as { completion_tokens: number }).completion_tokens).toBeGreaterThan(0)
        // the pull pinned the model: a 'pin' record in C's trail, written with its provider record
        expect(c.node.audit.log.list({ kind: 'pin' }).map(r => r.subject)).toContain(published.cid)

        // a GGUF cut short: its bytes match its CID and record, but it is no model
        const whole = await readFile(join(modelDir, `${id}.gguf`))
        const broken = await a.node.artifacts.add(whole.subarray(0, Math.floor(whole.byteLength / 3)), { name: 'broken.gguf', media_type: 'application/x-gguf', cidVersion: 1 })
        await waitUntil(async () => (await c.node.artifacts.record(broken.cid)) !== undefined, { what: 'C sees the broken record' })
        await expect(c.node.models.pull(broken.cid)).rejects.toMatchObject({ name: 'InvalidModelArtifactError' })
        expect((await readdir(join(c.node.info.data_dir, 'models'))).filter(f => f.startsWith('broken'))).toEqual([])
        expect(c.node.inference.listModels().map(m => m.id)).not.toContain('broken')
      })
    })

    it('a WASM task names its module by CID: the node that runs it fetches the module from the mesh', async () => {
      await runScenario(async (scenario) => {
        const capacity = { cpu_cores: 2, memory_gb: 4, gpu_count: 0, storage_gb: 10, model_slots: 0, vectors: 0 }
        // a fetch of a module nobody has gives up after 4 s
        const [a, b, c] = await scenario.addPlayers(3, { artifacts: { ...ARTIFACTS, fetchTimeoutMs: 4000 }, resourceCapacity: capacity, heartbeatIntervalSeconds: 1 }) as [Player, Player, Player]
        await liveMesh([a, b, c])
        // a module of several blocks: its CID is a UnixFS DAG, not the raw hash of its bytes
        const { cid } = await a.node.artifacts.add(wasm.echo, { name: 'echo.wasm', media_type: 'application/wasm', chunker: 'size-64' })
        expect(cid.startsWith('Qm')).toBe(true)
        // the node that will run it knows where the module is (its fetch asks that provider first)
        await waitUntil(async () => (await b.node.artifacts.providers(cid)).length > 0, { what: 'B sees the module provider' })
        const done = await c.node.resources.scheduleTask({ wasm_cid: cid, input: new TextEncoder().encode('by cid'), node_id: nodeId(b) })
        expect(new TextDecoder().decode(done.output)).toBe('BY CID')
        expect(done.node_id).toBe(nodeId(b))
        // a CID nobody has: the task fails with WasmModuleNotFoundError once the fetch gives up
        await expect(c.node.resources.scheduleTask({ wasm_cid: 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku', node_id: nodeId(b) })).rejects.toMatchObject({ name: 'WasmModuleNotFoundError' })
      })
    })
  })
})
