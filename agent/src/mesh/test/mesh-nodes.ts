/**
 * Bare mesh nodes for the mesh specs: loopback only, no mDNS, random keys, all stopped after
 * each test. Dependency-light (no conductor), so these specs start fast.
 */
import { afterEach, expect } from 'vitest'
import { randomBytes } from 'node:crypto'
import { silentLogger } from '../../logger.ts'
import { peerIdFromString } from '@libp2p/peer-id'
import { createMeshNode, type Libp2pMeshNode } from '../libp2p-node.ts'
import { FRAME_CHUNK, FrameStream } from '../framing.ts'
import type { MeshInit } from '../types.ts'
import { waitUntil } from '../../../../fixtures/wait.ts'

export const LOOPBACK = '/ip4/127.0.0.1/tcp/0'

const nodes: Libp2pMeshNode[] = []

afterEach(async () => {
  await Promise.all(nodes.splice(0).map(async n => { await n.stop() }))
})

/** A node on 127.0.0.1 (started unless `start` is false), stopped after the test. */
export async function makeNode (init: Partial<MeshInit> = {}, start = true): Promise<Libp2pMeshNode> {
  const node = await createMeshNode({ network: 'testnet', seed: randomBytes(32), listen: [LOOPBACK], mdns: false, ...init }, { logger: silentLogger() })
  nodes.push(node)
  if (start) await node.start()
  return node
}

/** A node's loopback multiaddr. */
export function addr (node: Libp2pMeshNode): string {
  const a = node.multiaddrs().find(m => m.startsWith('/ip4/127.0.0.1/'))
  if (a === undefined) throw new Error('node has no loopback address')
  return a
}

/** Two started nodes, `a` dialled to `b`, both past the network check. */
export async function pair (): Promise<[Libp2pMeshNode, Libp2pMeshNode]> {
  const [a, b] = await Promise.all([makeNode(), makeNode()])
  expect(await a.dial(addr(b))).toBe(b.peerId)
  await waitUntil(() => a.peers().includes(b.peerId) && b.peers().includes(a.peerId), { what: 'both sides to see each other' })
  return [a, b]
}

/**
 * One request the way a flooding peer sends it: a raw stream of its own, outside the requester's
 * mesh node (none of its own limits or errors in the way, so a test counts exactly). Resolves
 * with the frames the peer answered (its chunks and the final one), or `'reset'` when the peer
 * refused the stream.
 */
export async function floodRequest (from: Libp2pMeshNode, to: Libp2pMeshNode, name: string, body: Uint8Array): Promise<number | 'reset'> {
  const signal = AbortSignal.timeout(20_000)
  const stream = await from.libp2p.dialProtocol(peerIdFromString(to.peerId), to.protocolId(name), { signal })
  const frames = new FrameStream(stream, 1 << 20)
  let n = 0
  try {
    await frames.write([body], signal)
    await stream.close({ signal })
    for (;;) {
      const frame = await frames.read(signal, () => new Error('a frame too large'))
      n++
      if (frame[0] !== FRAME_CHUNK) return n
    }
  } catch (err) {
    if (signal.aborted || n > 0) throw err
    return 'reset'
  } finally {
    frames.release()
  }
}

/**
 * `count` `floodRequest`s at once from `from` to `to`: `outcomes` settles with each one's, and
 * `resets()` counts those refused so far.
 */
export function flood (from: Libp2pMeshNode, to: Libp2pMeshNode, name: string, count: number): { outcomes: Promise<Array<number | 'reset'>>, resets: () => number } {
  let resets = 0
  const outcomes = Promise.all(Array.from({ length: count }, async (_, i) => {
    const outcome = await floodRequest(from, to, name, Uint8Array.of(i))
    if (outcome === 'reset') resets++
    return outcome
  }))
  return { outcomes, resets: () => resets }
}
