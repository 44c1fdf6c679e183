/**
 * PeerId <-> AgentPubKey: the agent's ed25519 key is its libp2p PeerId and its Holochain
 * AgentPubKey at once, so the two convert into each other without a lookup.
 *
 * ```ts
 * const peerId = await peerIdFromSeed(seed)          // 12D3KooW…
 * const agent = agentPubKeyFromPeerId(peerId)        // 39-byte uhCAk… key
 * peerIdFromAgentPubKey(agent) === peerId            // true
 * ```
 */
import { generateKeyPairFromSeed, publicKeyFromRaw } from '@libp2p/crypto/keys'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'
import { InvalidInputError, errorMessage } from '../errors.ts'
import { assertHash, core32, hashFrom32 } from '../holo/hash.ts'

/** The PeerId string of a 32-byte ed25519 seed. */
export async function peerIdFromSeed (seed: Uint8Array): Promise<string> {
  return peerIdFromPublicKey((await privateKeyFromSeed(seed)).publicKey).toString()
}

/** The PeerId string of an agent (its 39-byte AgentPubKey). */
export function peerIdFromAgentPubKey (agentPubKey39: Uint8Array): string {
  const key = assertHash(agentPubKey39, 'Agent', 'agentPubKey')
  return peerIdFromPublicKey(publicKeyFromRaw(core32(key))).toString()
}

/** The 39-byte AgentPubKey of an ed25519 PeerId string. */
export function agentPubKeyFromPeerId (peerId: string): Uint8Array {
  const id = parsePeerId(peerId)
  if (id.type !== 'Ed25519') throw new InvalidInputError(`peerId ${peerId} is not an ed25519 key`, { field: 'peerId' })
  return hashFrom32(id.publicKey.raw, 'Agent')
}

/** The libp2p private key of a 32-byte ed25519 seed. */
export async function privateKeyFromSeed (seed: Uint8Array): Promise<PrivateKey> {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) {
    throw new InvalidInputError('seed must be the 32-byte ed25519 seed of the node key', { field: 'seed' })
  }
  return await generateKeyPairFromSeed('Ed25519', seed)
}

/** A PeerId string, validated: `InvalidInputError` for anything else. */
export function parsePeerId (peerId: string): PeerId {
  if (typeof peerId !== 'string' || peerId === '') throw new InvalidInputError('peerId must be a non-empty string', { field: 'peerId' })
  try {
    return peerIdFromString(peerId)
  } catch (err) {
    throw new InvalidInputError(`not a PeerId: ${JSON.stringify(peerId.slice(0, 80))} (${errorMessage(err)})`, { field: 'peerId' })
  }
}
