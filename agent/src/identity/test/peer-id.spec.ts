import { describe, expect, it } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { Keystore } from '../keystore.ts'
import { agentPubKeyFromPeerId, parsePeerId, peerIdFromAgentPubKey, peerIdFromSeed, privateKeyFromSeed } from '../peer-id.ts'

describe('PeerId <-> AgentPubKey', () => {
  it('the keystore key is the PeerId, both ways', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flexnode-peer-id-'))
    try {
      const ks = await Keystore.open({ dataDir: dir, scryptN: 2 ** 4 })
      const { agentPubKey, publicKey } = ks.primary
      const seed = ks.exportSeed(agentPubKey)
      const peerId = await peerIdFromSeed(seed)
      expect(peerIdFromString(peerId).publicKey?.raw).toEqual(publicKey)
      expect(peerIdFromAgentPubKey(agentPubKey)).toBe(peerId)
      expect(agentPubKeyFromPeerId(peerId)).toEqual(agentPubKey)
      ks.dispose()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('rejects a seed of the wrong length, a non-PeerId and a non-agent key', async () => {
    await expect(privateKeyFromSeed(new Uint8Array(31))).rejects.toMatchObject({ name: 'InvalidInputError', field: 'seed' })
    await expect(peerIdFromSeed(new Uint8Array(33))).rejects.toMatchObject({ name: 'InvalidInputError' })
    expect(() => agentPubKeyFromPeerId('not-a-peer-id')).toThrow(expect.objectContaining({ name: 'InvalidInputError' }))
    expect(() => parsePeerId('')).toThrow(expect.objectContaining({ name: 'InvalidInputError', field: 'peerId' }))
    expect(() => peerIdFromAgentPubKey(new Uint8Array(39))).toThrow()
  })
})
