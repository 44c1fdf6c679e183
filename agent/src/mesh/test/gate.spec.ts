/**
 * The network gate covers every inbound protocol, and reading a request has its own deadline:
 * a peer that has not passed the network check gets no answer on any protocol, and a peer that
 * sends half a request loses its stream (and its per-peer slot) after the request deadline, not
 * after the protocol's long idle timeout.
 */
import { describe, expect, it, afterEach } from 'vitest'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import type { Libp2p, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { Uint8ArrayList } from 'uint8arraylist'
import { waitUntil } from '../../../../fixtures/wait.ts'
import { MESH_MAX_STREAMS_INFLIGHT_PER_PEER, MESH_REQUEST_READ_TIMEOUT_MS } from '../constants.ts'
import { addr, LOOPBACK, makeNode, pair } from './mesh-nodes.ts'

const enc = new TextEncoder()
const dec = new TextDecoder()

const raws: Libp2p[] = []
afterEach(async () => {
  await Promise.all(raws.splice(0).map(async n => { await n.stop() }))
})

/** A plain libp2p node that does not serve the network's hello sentinel (with or without identify). */
async function rawNode (withIdentify: boolean): Promise<Libp2p> {
  const base = { addresses: { listen: [LOOPBACK] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] }
  const node: Libp2p = withIdentify ? await createLibp2p({ ...base, services: { identify: identify() } }) : await createLibp2p(base)
  raws.push(node)
  return node
}

/** `varint(n) ‖ bytes`, one request frame (n < 128 here). */
function frame (bytes: Uint8Array): Uint8Array {
  if (bytes.length >= 128) throw new Error('short frames only')
  return Uint8Array.of(bytes.length, ...bytes)
}

/** Everything the remote sends on `stream` until it closes or resets it. */
async function drain (stream: Stream): Promise<{ bytes: number, status: string }> {
  const got = new Uint8ArrayList()
  stream.addEventListener('message', (evt) => { got.append(evt.data) })
  await waitUntil(() => stream.status !== 'open' || stream.readStatus !== 'readable', { what: 'the remote to end the stream' })
  return { bytes: got.byteLength, status: stream.status }
}

describe('the network gate', () => {
  for (const withIdentify of [true, false]) {
    it(`refuses sync (request/response) and stream protocols to a node without the sentinel (${withIdentify ? 'with' : 'without'} identify)`, async () => {
      const node = await makeNode({ network: 'local' })
      let served = 0
      await node.handle('sync', async (req) => { served++; return req })
      await node.handleStream('inference', async (req, _from, responder) => { served++; await responder.send(req); return req })
      const raw = await rawNode(withIdentify)
      const target = multiaddr(addr(node))
      for (const protocol of [node.protocolId('sync'), node.protocolId('inference')]) {
        let stream: Stream
        try {
          stream = await raw.dialProtocol(target, protocol)
        } catch {
          // hung up on before the stream even opened: refused too
          continue
        }
        const answer = drain(stream)
        try {
          stream.send(frame(enc.encode('{"op":"digest"}')))
          await stream.close()
        } catch {
          // reset before the request went out: refused too
        }
        const { bytes } = await answer
        expect({ protocol, bytes }).toEqual({ protocol, bytes: 0 })
      }
      expect(served).toBe(0)
      // the raw node is never reported as a peer
      expect(node.peers()).toEqual([])
    })
  }

  it('serves a mesh peer whose request arrives while identify is still running on the fresh connection', async () => {
    const [a, b] = await Promise.all([makeNode(), makeNode()])
    let served = 0
    await b.handle('echo', async (req) => { served++; return req })
    for (let round = 0; round < 5; round++) {
      // a raw dial and an at-once stream: neither side has identified the other yet
      const conn = await a.libp2p.dial(multiaddr(addr(b)))
      const stream = await conn.newStream(b.protocolId('echo'))
      const answer = drain(stream)
      stream.send(frame(enc.encode(`hi ${round}`)))
      await stream.close()
      const { bytes } = await answer
      // varint(n) + status 0 + the echoed request
      expect({ round, bytes }).toEqual({ round, bytes: 2 + `hi ${round}`.length })
      await a.libp2p.hangUp(peerIdFromString(b.peerId))
      await waitUntil(() => !b.peers().includes(a.peerId), { what: 'the hang-up to reach b' })
    }
    expect(served).toBe(5)
  })

  it('serves a mesh peer whose first request arrives before the network check finished on the serving side', async () => {
    const [a, b] = await Promise.all([makeNode(), makeNode()])
    await b.handle('echo', async req => req)
    // a's dial resolves once a has checked b; b may not have checked a yet: b waits, not refuses
    const peer = await a.dial(addr(b))
    expect(dec.decode(await a.request(peer, 'echo', enc.encode('first')))).toBe('first')
  })
})

describe('the request deadline', () => {
  it('is a short constant by default', () => {
    expect(MESH_REQUEST_READ_TIMEOUT_MS).toBeGreaterThan(0)
    expect(MESH_REQUEST_READ_TIMEOUT_MS).toBeLessThanOrEqual(30_000)
  })

  it('resets a request/response stream whose request stops halfway, long before the exchange timeout', async () => {
    const [a, b] = await pair()
    let served = 0
    await b.handle('slow', async req => { served++; return req }, { timeoutMs: 10 * 60_000, requestTimeoutMs: 200 })
    const raw = await a.libp2p.dialProtocol(peerIdFromString(b.peerId), b.protocolId('slow'))
    raw.send(Uint8Array.of(100, 1, 2, 3)) // announces 100 bytes, sends 3
    await waitUntil(() => raw.status !== 'open', { what: 'the server to reset the half request' })
    expect(raw.status).toBe('reset')
    expect(served).toBe(0)
    expect(await a.request(b.peerId, 'slow', enc.encode('ok'))).toEqual(enc.encode('ok'))
  })

  it('resets half stream requests after the request deadline and frees their per-peer slots', async () => {
    const [a, b] = await pair()
    let active = 0
    let served = 0
    // like the inference protocol: long idle and overall timeouts, a short request deadline
    await b.handleStream('infer', async (req, _from, responder) => {
      active++
      try {
        served++
        await responder.send(req)
        return enc.encode('done')
      } finally {
        active--
      }
    }, { timeoutMs: 10 * 60_000, idleTimeoutMs: 10 * 60_000, requestTimeoutMs: 200, maxInboundStreams: 32 })
    // take every stream slot a peer has with a request that never completes
    const halves = await Promise.all(Array.from({ length: MESH_MAX_STREAMS_INFLIGHT_PER_PEER }, async () => {
      const s = await a.libp2p.dialProtocol(peerIdFromString(b.peerId), b.protocolId('infer'))
      s.send(Uint8Array.of(100, 1, 2, 3))
      return s
    }))
    await waitUntil(() => halves.every(s => s.status !== 'open'), { what: 'every half request to be reset' })
    expect(halves.map(s => s.status)).toEqual(halves.map(() => 'reset'))
    expect(served).toBe(0)
    // the slots are free again: as many whole requests as there are slots are served side by side
    const chunks: string[] = []
    const finals = await Promise.all(Array.from({ length: MESH_MAX_STREAMS_INFLIGHT_PER_PEER }, async (_, i) =>
      dec.decode(await a.requestStream(b.peerId, 'infer', enc.encode(`r${i}`), { idleTimeoutMs: 5_000, onChunk: c => { chunks.push(dec.decode(c)) } }))))
    expect(finals).toEqual(finals.map(() => 'done'))
    expect(chunks.sort()).toEqual(Array.from({ length: MESH_MAX_STREAMS_INFLIGHT_PER_PEER }, (_, i) => `r${i}`).sort())
    expect(active).toBe(0)
  })
})
