import { describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { peerIdFromSeed } from '../../identity/peer-id.ts'
import type { Libp2pMeshNode } from '../libp2p-node.ts'
import { MeshProtocolError, type StreamResponder } from '../types.ts'
import { waitUntil } from '../../../../fixtures/wait.ts'
import { addr, flood, makeNode, pair } from './mesh-nodes.ts'
import { MESH_MAX_STREAMS_INFLIGHT_PER_PEER, MESH_MAX_STREAMS_QUEUED_PER_PEER } from '../constants.ts'

const enc = new TextEncoder()
const dec = new TextDecoder()






/** Streams of this mesh's protocols still held by the nodes (leak check). */
function meshStreams (...ns: Libp2pMeshNode[]): string[] {
  return ns.flatMap(n => n.libp2p.getConnections().flatMap(c => c.streams))
    .filter(s => s.protocol.startsWith('/flexstack/'))
    .map(s => `${s.protocol} ${s.direction} ${s.status}`)
}

async function noStreamsLeft (...ns: Libp2pMeshNode[]): Promise<void> {
  await waitUntil(() => meshStreams(...ns).length === 0, { what: 'every stream to close' })
}

async function rejection (p: Promise<unknown>): Promise<Error> {
  try {
    await p
  } catch (err) {
    return err as Error
  }
  throw new Error('expected a rejection')
}

/** Resolves when `signal` aborts. */
async function aborted (signal: AbortSignal): Promise<void> {
  if (signal.aborted) return
  await new Promise<void>(resolve => { signal.addEventListener('abort', () => { resolve() }, { once: true }) })
}

describe('streamed responses', () => {
  it('delivers 200 chunks in order, then the final message', async () => {
    const [a, b] = await pair()
    let seenFrom = ''
    await b.handleStream('count', async (req, from, responder) => {
      seenFrom = from
      const n = Number(dec.decode(req))
      for (let i = 0; i < n; i++) await responder.send(enc.encode(`chunk-${i}`))
      return enc.encode(`done:${n}`)
    })
    const got: string[] = []
    const final = await a.requestStream(b.peerId, 'count', enc.encode('200'), { onChunk: c => { got.push(dec.decode(c)) } })
    expect(dec.decode(final)).toBe('done:200')
    expect(got).toEqual(Array.from({ length: 200 }, (_, i) => `chunk-${i}`))
    expect(seenFrom).toBe(a.peerId)

    // no chunks at all, and empty chunks, are fine too
    const none: Uint8Array[] = []
    expect(dec.decode(await a.requestStream(b.peerId, 'count', enc.encode('0'), { onChunk: c => { none.push(c) } }))).toBe('done:0')
    expect(none).toEqual([])
    await b.handleStream('empty', async (_req, _from, responder) => {
      await responder.send(new Uint8Array(0))
      return new Uint8Array(0)
    })
    const empties: Uint8Array[] = []
    expect(await a.requestStream(b.peerId, 'empty', new Uint8Array(0), { onChunk: c => { empties.push(c) } })).toEqual(new Uint8Array(0))
    expect(empties).toEqual([new Uint8Array(0)])
    await noStreamsLeft(a, b)
  })

  it('keeps order and respects backpressure with large chunks', async () => {
    const [a, b] = await pair()
    const CHUNK = 32 * 1024
    const COUNT = 100
    let drains = 0
    let maxQueued = 0
    let notAwaited = 0
    await b.handleStream('bulk', async (_req, from, responder) => {
      // the provider's end of this stream, to watch the transport
      const stream = b.libp2p.getConnections().flatMap(c => c.streams)
        .find(s => s.protocol === b.protocolId('bulk') && s.direction === 'inbound' && s.status === 'open')
      if (stream === undefined) throw new Error(`no inbound stream from ${from}`)
      stream.addEventListener('drain', () => { drains++ })
      for (let i = 0; i < COUNT; i++) {
        await responder.send(new Uint8Array(CHUNK).fill(i % 251))
        maxQueued = Math.max(maxQueued, stream.writeBufferLength)
      }
      // a handler that does not await its sends still gets them delivered in order
      const pending = [responder.send(Uint8Array.of(1)), responder.send(Uint8Array.of(2))]
      notAwaited = pending.length
      return enc.encode('bulk done')
    })
    const sizes: number[] = []
    const fills: number[] = []
    let uniform = true
    const final = await a.requestStream(b.peerId, 'bulk', new Uint8Array(0), {
      onChunk: c => {
        sizes.push(c.byteLength)
        fills.push(c[0] ?? -1)
        uniform &&= c.every(x => x === c[0])
      }
    })
    expect(dec.decode(final)).toBe('bulk done')
    expect(notAwaited).toBe(2)
    expect(uniform).toBe(true)
    expect(sizes).toEqual([...Array.from({ length: COUNT }, () => CHUNK), 1, 1])
    expect(fills).toEqual([...Array.from({ length: COUNT }, (_, i) => i % 251), 1, 2])
    // a resolved send means the transport took the chunk: the provider had to wait for the
    // requester's window at least once, and never piled chunks up in the stream's write buffer
    expect(drains).toBeGreaterThan(0)
    expect(maxQueued).toBeLessThanOrEqual(CHUNK + 16)
    await noStreamsLeft(a, b)
  })

  it('aborts the provider when the requester aborts mid-stream', async () => {
    const [a, b] = await pair()
    let responder: StreamResponder | undefined
    let lateSend: Error | undefined
    await b.handleStream('endless', async (_req, _from, r) => {
      responder = r
      for (let i = 0; i < 5; i++) await r.send(Uint8Array.of(i))
      await aborted(r.signal)
      lateSend = await rejection(r.send(Uint8Array.of(99)))
      return new Uint8Array(0)
    })
    const ac = new AbortController()
    const got: number[] = []
    const err = await rejection(a.requestStream(b.peerId, 'endless', new Uint8Array(0), {
      signal: ac.signal,
      onChunk: c => {
        got.push(c[0] ?? -1)
        if (got.length === 5) ac.abort()
      }
    }))
    expect(err.name).toBe('AbortError')
    expect(got).toEqual([0, 1, 2, 3, 4])
    await waitUntil(() => lateSend, { what: 'the provider\'s next send to reject' })
    expect(responder?.signal.aborted).toBe(true)
    expect(lateSend?.name).toBe('MeshProtocolError')
    await expect(responder?.send(Uint8Array.of(100))).rejects.toMatchObject({ name: 'MeshProtocolError' })
    await noStreamsLeft(a, b)
  })

  it('rejects with the provider\'s error, keeping the chunks sent before it', async () => {
    const [a, b] = await pair()
    await b.handleStream('crash', async (_req, _from, r) => {
      for (let i = 0; i < 3; i++) await r.send(enc.encode(`token${i}`))
      throw new Error('model crashed: out of memory')
    })
    const got: string[] = []
    const err = await rejection(a.requestStream(b.peerId, 'crash', new Uint8Array(0), { onChunk: c => { got.push(dec.decode(c)) } }))
    expect(err.name).toBe('MeshProtocolError')
    expect(err.message).toBe('model crashed: out of memory')
    expect(err).toMatchObject({ peerId: b.peerId, protocol: '/flexstack/testnet/crash/1' })
    expect(got).toEqual(['token0', 'token1', 'token2'])

    // a throwing onChunk resets the stream and surfaces as is
    const own = new Error('consumer gave up')
    expect(await rejection(a.requestStream(b.peerId, 'crash', new Uint8Array(0), { onChunk: () => { throw own } }))).toBe(own)
    await noStreamsLeft(a, b)
  })

  it('times out a stalled provider (idle) and a slow one (overall)', async () => {
    const [a, b] = await pair()
    const signals: AbortSignal[] = []
    await b.handleStream('stall', async (_req, _from, r) => {
      signals.push(r.signal)
      await r.send(enc.encode('first'))
      await aborted(r.signal)
      throw asError(r.signal.reason)
    })
    await b.handleStream('drip', async (_req, _from, r) => {
      signals.push(r.signal)
      while (!r.signal.aborted) {
        await r.send(enc.encode('.'))
        await Promise.race([aborted(r.signal), new Promise(resolve => setTimeout(resolve, 50))])
      }
      return new Uint8Array(0)
    })
    const got: string[] = []
    const started = Date.now()
    const idle = await rejection(a.requestStream(b.peerId, 'stall', new Uint8Array(0), { idleTimeoutMs: 300, onChunk: c => { got.push(dec.decode(c)) } }))
    expect(idle.name).toBe('MeshTimeoutError')
    expect(idle.message).toMatch(/idle/)
    expect(got).toEqual(['first'])
    expect(Date.now() - started).toBeGreaterThanOrEqual(250)

    let drips = 0
    const overall = await rejection(a.requestStream(b.peerId, 'drip', new Uint8Array(0), { timeoutMs: 400, idleTimeoutMs: 300, onChunk: () => { drips++ } }))
    expect(overall.name).toBe('MeshTimeoutError')
    expect(overall.message).toMatch(/within 400 ms/)
    expect(drips).toBeGreaterThan(1)

    await waitUntil(() => signals.length === 2 && signals.every(s => s.aborted), { what: 'the providers\' signals to abort' })
    await noStreamsLeft(a, b)
  })

  it('reports a provider-side timeout with an error frame', async () => {
    const [a, b] = await pair()
    await b.handleStream('slowpoke', async (_req, _from, r) => {
      await r.send(enc.encode('one'))
      await aborted(r.signal)
      return new Uint8Array(0)
    }, { idleTimeoutMs: 200 })
    const err = await rejection(a.requestStream(b.peerId, 'slowpoke', new Uint8Array(0), { onChunk: () => {} }))
    // the provider's error keeps its kind across the mesh
    expect(err.name).toBe('MeshTimeoutError')
    expect(err).toBeInstanceOf(MeshProtocolError)
    expect(err).toMatchObject({ remoteName: 'MeshTimeoutError', peerId: b.peerId })
    expect(err.message).toMatch(/idle for 200 ms/)
    await noStreamsLeft(a, b)
  })

  it('enforces chunk size, chunk count and request size', async () => {
    const [a, b] = await pair()
    const providerErrors: string[] = []
    await b.handleStream('sized', async (req, _from, r) => {
      const size = Number(dec.decode(req))
      await r.send(new Uint8Array(size))
      // the provider's own cap refuses locally
      providerErrors.push((await rejection(r.send(new Uint8Array(2048)))).name)
      for (let i = 0; i < 4; i++) await r.send(Uint8Array.of(i))
      return enc.encode('ok')
    }, { maxChunkBytes: 1024, maxRequestBytes: 16 })

    const tooBig = await rejection(a.requestStream(b.peerId, 'sized', enc.encode('1000'), { maxChunkBytes: 999, onChunk: () => {} }))
    expect(tooBig.name).toBe('MessageTooLargeError')
    expect(tooBig.message).toMatch(/chunk of 1000 bytes/)

    const tooMany = await rejection(a.requestStream(b.peerId, 'sized', enc.encode('1'), { maxChunks: 3, onChunk: () => {} }))
    expect(tooMany.name).toBe('MessageTooLargeError')

    const got: number[] = []
    expect(dec.decode(await a.requestStream(b.peerId, 'sized', enc.encode('1000'), { maxChunkBytes: 1000, maxChunks: 5, onChunk: c => { got.push(c.byteLength) } }))).toBe('ok')
    expect(got).toEqual([1000, 1, 1, 1, 1])
    await waitUntil(() => providerErrors.length === 3, { what: 'the provider-side chunk refusals' })
    expect(providerErrors).toEqual(['MessageTooLargeError', 'MessageTooLargeError', 'MessageTooLargeError'])

    await b.handleStream('small-final', async () => new Uint8Array(100))
    expect((await rejection(a.requestStream(b.peerId, 'small-final', new Uint8Array(0), { maxResponseBytes: 99, onChunk: () => {} }))).name).toBe('MessageTooLargeError')

    const bigRequest = await rejection(a.requestStream(b.peerId, 'sized', new Uint8Array(64 * 1024), { onChunk: () => {} }))
    expect(bigRequest.name).toBe('MeshResetError')
    await noStreamsLeft(a, b)
  })

  it('rejects promptly when the provider stops mid-stream, or is dead or unknown', async () => {
    const [a, b] = await pair()
    let providerSignal: AbortSignal | undefined
    await b.handleStream('forever', async (_req, _from, r) => {
      providerSignal = r.signal
      await r.send(enc.encode('hello'))
      await aborted(r.signal)
      return new Uint8Array(0)
    })
    const got: string[] = []
    let stopping: Promise<void> | undefined
    const err = await rejection(a.requestStream(b.peerId, 'forever', new Uint8Array(0), {
      // no timeout of ours could end this stream: only the provider's stop
      timeoutMs: 10 * 60_000,
      idleTimeoutMs: 10 * 60_000,
      onChunk: c => {
        got.push(dec.decode(c))
        stopping = b.stop()
      }
    }))
    expect(got).toEqual(['hello'])
    expect(err.name).toBe('MeshProtocolError')
    await stopping
    expect(providerSignal?.aborted).toBe(true)

    // the stopped node's address is known but refuses; a fresh PeerId has no address at all
    // (not our timeouts: those would be MeshTimeoutError)
    expect((await rejection(a.requestStream(b.peerId, 'forever', new Uint8Array(0), { onChunk: () => {} }))).name).toBe('MeshProtocolError')
    const stranger = await peerIdFromSeed(randomBytes(32))
    expect((await rejection(a.requestStream(stranger, 'forever', new Uint8Array(0), { onChunk: () => {} }))).name).toBe('MeshProtocolError')
    await noStreamsLeft(a)
  })

  it('rejects with DisposedError when the requester stops, and aborts the provider', async () => {
    const [a, b] = await pair()
    let providerSignal: AbortSignal | undefined
    await b.handleStream('forever', async (_req, _from, r) => {
      providerSignal = r.signal
      await r.send(enc.encode('hello'))
      await aborted(r.signal)
      return new Uint8Array(0)
    })
    let stopping: Promise<void> | undefined
    const err = await rejection(a.requestStream(b.peerId, 'forever', new Uint8Array(0), { onChunk: () => { stopping = a.stop() } }))
    expect(err.name).toBe('DisposedError')
    await stopping
    await waitUntil(() => providerSignal?.aborted, { what: 'the provider\'s signal to abort' })
    await noStreamsLeft(b)
  })

  it('serves a second peer while one peer floods streams', async () => {
    const [a, b] = await pair()
    const c = await makeNode()
    await c.dial(addr(b))
    const active = new Map<string, number>()
    const maxActive = new Map<string, number>()
    // the flooder's streams are held until the second peer was answered
    let releaseFlood!: () => void
    const floodHeld = new Promise<void>(resolve => { releaseFlood = resolve })
    await b.handleStream('gen', async (req, from, r) => {
      const n = (active.get(from) ?? 0) + 1
      active.set(from, n)
      maxActive.set(from, Math.max(maxActive.get(from) ?? 0, n))
      try {
        for (let i = 0; i < 5; i++) {
          await r.send(Uint8Array.of(i))
          if (from === a.peerId) await floodHeld
        }
        return req
      } finally {
        active.set(from, (active.get(from) ?? 1) - 1)
      }
    }, { maxInboundStreams: 64 })

    await b.handle('echo', async req => req)

    // the flooder opens raw streams, one request each (see floodRequest)
    const flooding = flood(a, b, 'gen', 50)
    const served = MESH_MAX_STREAMS_INFLIGHT_PER_PEER + MESH_MAX_STREAMS_QUEUED_PER_PEER
    await waitUntil(() => (active.get(a.peerId) ?? 0) > 0 && flooding.resets() === 50 - served, { what: 'the flood to fill the flooder\'s stream slots and queue' })
    // streams have their own per-peer slots: the flooder's plain requests still go through
    expect(await a.request(b.peerId, 'echo', enc.encode('plain'))).toEqual(enc.encode('plain'))
    let mine = 0
    expect(await c.requestStream(b.peerId, 'gen', enc.encode('mine'), { timeoutMs: 5_000, onChunk: () => { mine++ } })).toEqual(enc.encode('mine'))
    expect(mine).toBe(5)
    // answered while every one of the flooder's stream slots was still taken
    expect(active.get(a.peerId)).toBe(MESH_MAX_STREAMS_INFLIGHT_PER_PEER)
    releaseFlood()
    const results = await flooding.outcomes
    expect(maxActive.get(a.peerId)).toBe(MESH_MAX_STREAMS_INFLIGHT_PER_PEER)
    // the ones in its slots and its queue are answered (5 chunks and the final message), the rest were refused at once
    expect(results.filter(r => r === 6).length).toBe(served)
    // the flooder is served again once the flood is over
    expect(await a.requestStream(b.peerId, 'gen', Uint8Array.of(7), { onChunk: () => {} })).toEqual(Uint8Array.of(7))
    await noStreamsLeft(a, b, c)
  })
})

function asError (err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}
