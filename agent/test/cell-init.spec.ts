/**
 * A conductor runs a cell's `init` before the first zome call to it, and commits
 * InitZomesComplete. The node makes that first call to every cell at start, so the action is
 * written then, not later, at whatever moment a service first reads a DNA (the memory ring check
 * after its interval, a first MOE request's policy lookup). After start, a node's chains grow only
 * with what it publishes (the presence scenario counts chain actions across 60 heartbeats; CI saw
 * memory_shards' init land inside that window).
 */
import { describe, expect, it } from 'vitest'
import { createTestAgent, tempDir } from '../../fixtures/index.ts'
import type { FlexNode } from '../src/node.ts'

const ROLES = ['agent_registry', 'resource_mesh', 'policy_store', 'artifact_index', 'memory_shards']

/** each role's chain action types */
function chains (node: FlexNode): Record<string, string[]> {
  return Object.fromEntries(ROLES.map(role => [role, (node.conductor.cell(node.client.cellId(role))?.chain() ?? []).map(r => r.signed_action.hashed.content.data.type)]))
}

describe('cell init', () => {
  it('every cell has run its init once the node has started, and a restart does not run it again', async () => {
    await using dir = await tempDir('flexnode-cell-init-')
    // a node that offers no shards and publishes no policy reads memory_shards and policy_store only later, if ever
    const init = { dataDir: dir.path, memory: { shardCapacity: 0 } }
    {
      await using agent = await createTestAgent(init)
      for (const [role, types] of Object.entries(chains(agent.node))) {
        expect(types.filter(t => t === 'InitZomesComplete'), role).toHaveLength(1)
        expect(types.slice(0, 3), role).toEqual(['Dna', 'AgentValidationPkg', 'Create'])
      }
    }
    await using again = await createTestAgent(init)
    for (const [role, types] of Object.entries(chains(again.node))) expect(types.filter(t => t === 'InitZomesComplete'), role).toHaveLength(1)
  })
})
