/**
 * Where a node's retention comes from: the network profile (`dnas/networks.json`: mainnet
 * permanent, testnet 30-day prune, local session-only), `--prune-after-days` for a network that
 * prunes, and the conductor the node builds with it.
 */
import { describe, expect, it } from 'vitest'
import { createTestAgent } from '../../../fixtures/index.ts'
import { parseStartArgs } from '../config.ts'
import { networkProfile } from '../node.ts'

const DAY_MS = 24 * 60 * 60 * 1000

describe('retention per network', () => {
  it('comes from the network profile', async () => {
    expect((await networkProfile('mainnet')).retention).toEqual({ mode: 'permanent' })
    expect((await networkProfile('testnet')).retention).toEqual({ mode: 'prune', maxAgeMs: 30 * DAY_MS })
    expect((await networkProfile('local')).retention).toEqual({ mode: 'session' })
  })

  it('--prune-after-days takes a whole number of days', async () => {
    const opts = await parseStartArgs(['--network', 'testnet', '--prune-after-days', '7'], {})
    expect(opts).toMatchObject({ network: 'testnet', pruneAfterDays: 7 })
    expect(await parseStartArgs([], {})).not.toHaveProperty('pruneAfterDays')
    for (const bad of ['0', '-1', '1.5', 'x', '', '100000']) {
      await expect(parseStartArgs(['--network', 'testnet', `--prune-after-days=${bad}`], {})).rejects.toMatchObject({ name: 'UsageError', flag: '--prune-after-days' })
    }
  })

  it('the node builds its conductor with it, and refuses --prune-after-days on a network that does not prune', async () => {
    {
      await using t = await createTestAgent({ network: 'testnet', pruneAfterDays: 7 })
      expect(t.node.conductor.retention.policy).toMatchObject({ mode: 'prune', maxAgeMs: 7 * DAY_MS })
    }
    {
      await using t = await createTestAgent({ network: 'mainnet' })
      expect(t.node.conductor.retention.policy).toEqual({ mode: 'permanent' })
    }
    await expect(createTestAgent({ network: 'local', pruneAfterDays: 7 })).rejects.toMatchObject({ name: 'InvalidInputError', field: 'pruneAfterDays' })
  }, 60_000)
})
