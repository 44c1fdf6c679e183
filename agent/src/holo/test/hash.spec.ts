import { describe, expect, it } from 'vitest'
import { decodeHashFromBase64, dhtLocationFrom32, encodeHashToBase64, fakeAgentPubKey, fakeDnaHash, hashFrom32AndType, HoloHashType } from '@holochain/client'
import { randomBytes } from 'node:crypto'
import { agentPubKeyFromEd25519, assertHash, decodeHash, dhtLocation, dhtLocationBytes, encodeHash, hashFrom32, hashType, retype, sameKey } from '../hash.ts'

describe('HoloHash (oracle: @holochain/client)', () => {
  it('computes the DHT location like the client', () => {
    for (let i = 0; i < 50; i++) {
      const core = new Uint8Array(randomBytes(32))
      expect(dhtLocationBytes(core)).toEqual(dhtLocationFrom32(core))
    }
  })

  it('builds hashes of every type like the client', () => {
    const pairs = [['Agent', HoloHashType.Agent], ['Entry', HoloHashType.Entry], ['Action', HoloHashType.Action], ['Dna', HoloHashType.Dna], ['DhtOp', HoloHashType.DhtOp], ['External', HoloHashType.External]] as const
    for (const [ours, theirs] of pairs) {
      const core = new Uint8Array(randomBytes(32))
      const h = hashFrom32(core, ours)
      expect(h).toEqual(hashFrom32AndType(core, theirs))
      expect(hashType(h)).toBe(ours)
    }
  })

  it('round-trips the u-base64url string form and agrees with the client', async () => {
    const agent = await fakeAgentPubKey()
    const s = encodeHash(agent)
    expect(s).toBe(encodeHashToBase64(agent))
    expect(s.startsWith('uhCAk')).toBe(true)
    expect(decodeHash(s)).toEqual(decodeHashFromBase64(s))
    expect(encodeHash(await fakeDnaHash()).startsWith('uhC0k')).toBe(true)
  })

  it('verifies the checksum when parsing strings', async () => {
    const agent = await fakeAgentPubKey()
    const bad = Uint8Array.from(agent)
    bad[38] = bad[38]! ^ 0xff
    expect(() => decodeHash(encodeHash(bad))).toThrow(expect.objectContaining({ name: 'InvalidHashError' }))
    expect(() => decodeHash('uhCAk')).toThrow(expect.objectContaining({ name: 'InvalidHashError' }))
    expect(() => decodeHash('not a hash at all, not a hash at all, not a hash at all')).toThrow(expect.objectContaining({ name: 'InvalidHashError' }))
    expect(() => decodeHash(encodeHash(agent), 'Dna')).toThrow(expect.objectContaining({ name: 'InvalidHashError' }))
  })

  it('accepts binary keys with zeroed location bytes, as signing keys carry them', () => {
    const pub = new Uint8Array(randomBytes(32))
    const agent = agentPubKeyFromEd25519(pub)
    const signingKey = Uint8Array.from([0x84, 0x20, 0x24, ...pub, 0, 0, 0, 0])
    expect(assertHash(signingKey, 'Agent')).toBe(signingKey)
    expect(sameKey(agent, signingKey)).toBe(true)
    expect(() => assertHash(signingKey.subarray(0, 38), 'Agent')).toThrow(expect.objectContaining({ name: 'InvalidHashError' }))
    expect(() => assertHash(retype(agent, 'Entry'), 'Agent')).toThrow(expect.objectContaining({ name: 'InvalidHashError' }))
  })

  it('reads the location as a little-endian u32', () => {
    const h = hashFrom32(new Uint8Array(32), 'Entry')
    const loc = h.subarray(35)
    expect(dhtLocation(h)).toBe((loc[0]! | (loc[1]! << 8) | (loc[2]! << 16) | (loc[3]! << 24)) >>> 0)
  })
})
