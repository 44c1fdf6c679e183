/**
 * Where a node's retention comes from: the network profile (`dnas/networks.json`: mainnet
 * permanent, testnet 30-day prune, local session-only), `--prune-after-days` for a network that
 * prunes, and the conductor the node builds with it.
 */
import { describe, expect, it } from 'vitest'
import { createTestAgent } from '../../../fixtures/index.ts'
import { parseStartArgs } from '../config.ts'
import { nodeRetention } from '../flexstack-app.ts'
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

  it('--prune-after-days changes the age on a network that prunes, and is refused elsewhere', async () => {
    const testnet = await networkProfile('testnet')
    expect(nodeRetention('testnet', testnet)).toEqual({ mode: 'prune', maxAgeMs: 30 * DAY_MS })
    expect(nodeRetention('testnet', testnet, 7)).toEqual({ mode: 'prune', maxAgeMs: 7 * DAY_MS })
    for (const network of ['mainnet', 'local'] as const) {
      const profile = await networkProfile(network)
      expect(nodeRetention(network, profile)).toEqual(profile.retention)
      expect(() => nodeRetention(network, profile, 7)).toThrow(expect.objectContaining({ name: 'InvalidInputError', field: 'pruneAfterDays' }))
    }
    for (const bad of [0, -1, 1.5, Number.NaN, 36_501]) {
      expect(() => nodeRetention('testnet', testnet, bad)).toThrow(expect.objectContaining({ name: 'InvalidInputError', field: 'pruneAfterDays' }))
    }
  })

  it('the node builds its conductor with it, and a start with --prune-after-days on local is refused', async () => {
    {
      await using t = await createTestAgent({ network: 'testnet', pruneAfterDays: 7 })
      expect(t.node.conductor.retention.policy).toEqual({ mode: 'prune', maxAgeMs: 7 * DAY_MS })
    }
    await expect(createTestAgent({ network: 'local', pruneAfterDays: 7 })).rejects.toMatchObject({ name: 'InvalidInputError', field: 'pruneAfterDays' })
  }, 180_000)
})
