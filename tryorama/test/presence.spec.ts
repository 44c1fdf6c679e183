/**
 * Liveness follows each node's own interval, and heartbeats write no chain (issue 9, "presence,
 * not entries"). One observer in this process watches, through its own `discovery.query_peers`:
 *
 * - `slow`: a node heartbeating every 45 s, never reported `offline` while it runs (watched for
 *   longer than the old fixed 30 s TTL and past one of its refreshes);
 * - `beating`: a node heartbeating every second for 60 s: no chain action while its offer is
 *   unchanged, exactly one (the NodeCapability Update) when a model is loaded;
 * - `fast`: a real `flexnode start` child with a 2 s interval: `offline` while frozen (SIGSTOP),
 *   `online` again after SIGCONT, and `offline` within 3 intervals of its death (SIGKILL).
 *
 * The three run at once, so the suite pays for the 60 s observation once. Nothing asserts a
 * duration: "within 3 intervals of its death" is a query made once the clock has passed that
 * point (a slow machine only makes the query later).
 */
import { describe, expect, it } from 'vitest'
import { mkdir } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { createTestAgent, tempDir, TEST_NODE_FLAGS, waitUntil } from '../../fixtures/index.ts'
import { ensureModel } from '../../fixtures/gguf/index.ts'
import { spawnFlexnode, type SpawnedNode } from '../../fixtures/spawn-node.ts'
import type { FlexNode } from '../../agent/src/node.ts'
import type { NodeCapability } from '../../zomes-ts/agent_registry/types.ts'

const ROLES = ['agent_registry', 'resource_mesh', 'policy_store', 'artifact_index', 'memory_shards']

/** every action on every chain of the node */
function chainActions (node: FlexNode): number {
  return ROLES.reduce((n, role) => n + (node.conductor.cell(node.client.cellId(role))?.chain().length ?? 0), 0)
}

describe('presence: liveness from signed, expiring records', () => {
  it('follows each node\'s own interval, and a node heartbeating every second writes no chain until its offer changes', async () => {
    await using root = await tempDir('flexnode-presence-')
    const models = join(root.path, 'models')
    await mkdir(models)
    const model = basename(await ensureModel(models, 'tiny', 21), '.gguf')
    // no node offers vector shards: a ring epoch proposed as nodes come and go would be a chain action of memory_shards, not of presence
    await using observer = await createTestAgent({ heartbeatIntervalSeconds: 3600, agentName: 'observer', memory: { shardCapacity: 0 } })
    const addr = observer.node.info.multiaddrs[0]!
    // the child starts while the two in-process nodes do
    const fast: SpawnedNode = spawnFlexnode(['start', '--data-dir', join(root.path, 'fast'), '--bootstrap', addr, '--heartbeat-interval', '2', '--advertise-interval', '86400', '--agent-name', 'fast', '--memory-shards', '0', '--no-demo-model', '--log-level', 'warn', ...TEST_NODE_FLAGS])
    try {
      await using slow = await createTestAgent({ heartbeatIntervalSeconds: 45, agentName: 'slow', bootstrap: [addr], memory: { shardCapacity: 0 } })
      await using beating = await createTestAgent({ heartbeatIntervalSeconds: 1, agentName: 'beating', bootstrap: [addr], modelsDirs: [models], preloadModels: false, memory: { shardCapacity: 0 } })
      const fastId = String((await fast.ready).agent_pub_key)
      const ids = { slow: slow.node.info.agent_pub_key, beating: beating.node.info.agent_pub_key, fast: fastId }
      const statuses = async (): Promise<Map<string, NodeCapability>> => {
        const caps = await observer.node.client.callZome({ role_name: 'agent_registry', zome_name: 'discovery', fn_name: 'query_peers', payload: null }) as NodeCapability[]
        return new Map(caps.map(c => [c.node_id, c]))
      }
      const statusOf = async (id: string): Promise<string | undefined> => (await statuses()).get(id)?.availability
      await waitUntil(async () => {
        const s = await statuses()
        return Object.values(ids).every(id => s.get(id)?.availability === 'online')
      }, { what: 'the observer to see slow, beating and fast online', timeoutMs: 90_000, intervalMs: 250 })

      // slow: watched until it has been up longer than the old 30 s TTL and past one 45 s refresh,
      // which is as long as `beating` needs anyway
      const slowSeen: string[] = []
      let watching = true
      const watchSlow = (async () => {
        while (watching) {
          slowSeen.push((await statusOf(ids.slow)) ?? 'missing')
          await new Promise(resolve => setTimeout(resolve, 500))
        }
      })()

      // beating: 60 one-second heartbeats, no chain action; then a model load, exactly one
      const checkBeating = (async () => {
        const before = chainActions(beating.node)
        const beats = beating.node.registry.beats
        await waitUntil(() => beating.node.registry.beats >= beats + 60, { what: '60 heartbeats', timeoutMs: 180_000, intervalMs: 250 })
        expect(chainActions(beating.node)).toBe(before)
        await beating.node.inference.loadModel(model)
        await waitUntil(() => chainActions(beating.node) > before, { what: 'the changed offer to be advertised', timeoutMs: 30_000, intervalMs: 100 })
        const afterLoad = beating.node.registry.beats
        await waitUntil(() => beating.node.registry.beats >= afterLoad + 3, { what: '3 more heartbeats', timeoutMs: 30_000, intervalMs: 100 })
        expect(chainActions(beating.node)).toBe(before + 1)
        await waitUntil(async () => (await statuses()).get(ids.beating)?.capabilities.inference.models_loaded.includes(model), { what: 'the observer to see the loaded model', timeoutMs: 30_000, intervalMs: 250 })
      })()

      // fast: frozen, thawed, killed
      const checkFast = (async () => {
        fast.proc.kill('SIGSTOP')
        await waitUntil(async () => (await statusOf(ids.fast)) === 'offline', { what: 'the frozen node to read offline', timeoutMs: 60_000, intervalMs: 250 })
        fast.proc.kill('SIGCONT')
        await waitUntil(async () => (await statusOf(ids.fast)) === 'online', { what: 'the thawed node to read online again', timeoutMs: 60_000, intervalMs: 250 })
        fast.proc.kill('SIGKILL')
        await fast.exit
        const died = Date.now()
        await waitUntil(() => Date.now() >= died + 3 * 2000, { what: '3 intervals since the death', intervalMs: 100 })
        expect(await statusOf(ids.fast)).toBe('offline')
      })()

      const outcomes = await Promise.allSettled([checkBeating, checkFast])
      watching = false
      await watchSlow
      const failures: unknown[] = outcomes.flatMap(o => o.status === 'rejected' ? [o.reason] : [])
      try {
        expect(slowSeen.length).toBeGreaterThan(60)
        expect(slowSeen.filter(s => s !== 'online')).toEqual([])
      } catch (err) {
        failures.unshift(err)
      }
      if (failures.length > 1) throw new AggregateError(failures, failures.map(f => f instanceof Error ? f.message : String(f)).join('\n'))
      if (failures.length === 1) throw failures[0]
    } finally {
      if (fast.proc.exitCode === null && fast.proc.signalCode === null) {
        fast.proc.kill('SIGCONT')
        fast.proc.kill('SIGKILL')
      }
      await fast.exit
    }
  }, 420_000)
})
