/**
 * The one exchange primitive: protocols come and go (`unhandle`, stop), errors keep their kind
 * across the mesh, and backpressure holds end to end: a slow reader slows the writer, and a
 * reader that never reads neither grows the writer's memory without bound nor keeps the node
 * from serving others.
 */
import { describe, expect, it } from 'vitest'
import { peerIdFromString } from '@libp2p/peer-id'
import { FlexnodeError, InvalidInputError } from '../../errors.ts'
import { MESH_MAX_SEND_BUFFER_BYTES, MESH_MAX_STREAM_WINDOW_BYTES } from '../constants.ts'
import { MeshProtocolError } from '../types.ts'
import { waitUntil } from '../../../../fixtures/wait.ts'
import { addr, makeNode, pair } from './mesh-nodes.ts'

const enc = new TextEncoder()
const dec = new TextDecoder()

async function rejection (p: Promise<unknown>): Promise<Error> {
  try {
    await p
  } catch (err) {
    return err as Error
  }
  throw new Error('expected a rejection')
}

class QuotaExceededError extends FlexnodeError {
  static override readonly name = 'QuotaExceededError'
  readonly limit: number
  readonly resource: string

  constructor (message: string, fields: { limit: number, resource: string }) {
    super(message)
    this.limit = fields.limit
    this.resource = fields.resource
  }
}

describe('protocols come and go', () => {
  it('unhandle removes a protocol; a new handler can take its place', async () => {
    const [a, b] = await pair()
    await b.handle('echo', async req => req)
    await b.handleStream('count', async (_req, _from, r) => { await r.send(Uint8Array.of(1)); return enc.encode('done') })
    expect(b.libp2p.getProtocols()).toEqual(expect.arrayContaining([b.protocolId('echo'), b.protocolId('count')]))
    expect(await a.request(b.peerId, 'echo', enc.encode('hi'))).toEqual(enc.encode('hi'))

    await b.unhandle('echo')
    await b.unhandle('count')
    await b.unhandle('never-registered')
    expect(b.libp2p.getProtocols()).not.toContain(b.protocolId('echo'))
    expect(b.libp2p.getProtocols()).not.toContain(b.protocolId('count'))
    expect((await rejection(a.request(b.peerId, 'echo', enc.encode('hi')))).name).toBe('MeshProtocolError')
    expect((await rejection(a.requestStream(b.peerId, 'count', new Uint8Array(0), { onChunk: () => {} }))).name).toBe('MeshProtocolError')

    await b.handle('echo', async req => enc.encode(`again:${dec.decode(req)}`))
    expect(dec.decode(await a.request(b.peerId, 'echo', enc.encode('hi')))).toBe('again:hi')
  })

  it('stop removes every protocol the node registered', async () => {
    const b = await makeNode()
    await b.handle('sync', async req => req)
    await b.handleStream('inference', async () => new Uint8Array(0))
    const mine = [b.protocolId('sync'), b.protocolId('inference')]
    expect(b.libp2p.getProtocols()).toEqual(expect.arrayContaining(mine))
    await b.stop()
    expect(b.libp2p.getProtocols().filter(p => mine.includes(p))).toEqual([])
  })
})

describe('errors crossing the mesh', () => {
  it('keep their name and fields, on request/response and on streams', async () => {
    const [a, b] = await pair()
    await b.handle('strict', async () => { throw new InvalidInputError('field x must be a number', { field: 'x' }) })
    await b.handleStream('quota', async (_req, _from, r) => {
      await r.send(enc.encode('partial'))
      throw new QuotaExceededError('no more than 3 per minute', { limit: 3, resource: 'inference' })
    })

    const strict = await rejection(a.request(b.peerId, 'strict', new Uint8Array(1)))
    expect(strict.name).toBe('InvalidInputError')
    expect(strict).toBeInstanceOf(MeshProtocolError)
    expect(strict).toMatchObject({ remoteName: 'InvalidInputError', fields: { field: 'x' }, peerId: b.peerId, protocol: b.protocolId('strict') })

    const chunks: string[] = []
    const quota = await rejection(a.requestStream(b.peerId, 'quota', new Uint8Array(0), { onChunk: c => { chunks.push(dec.decode(c)) } }))
    expect(quota.name).toBe('QuotaExceededError')
    expect(quota).toMatchObject({ remoteName: 'QuotaExceededError', fields: { limit: 3, resource: 'inference' } })
    expect(chunks).toEqual(['partial'])
  })

  it('refuses a malformed error frame as a MeshProtocolError, and keeps serving', async () => {
    const [a, b] = await pair()
    // a provider speaking the wire format by hand: an error frame whose body is not {name, message, fields}
    await b.libp2p.handle(b.protocolId('liar'), async (stream) => {
      stream.send(Uint8Array.of(4, 1, 0xc1, 0xc1, 0xc1))
      await stream.close()
    })
    const err = await rejection(a.request(b.peerId, 'liar', new Uint8Array(1)))
    expect(err.name).toBe('MeshProtocolError')
    expect(err.message).toMatch(/malformed error frame/)
    await b.handle('echo', async req => req)
    expect(await a.request(b.peerId, 'echo', enc.encode('ok'))).toEqual(enc.encode('ok'))
  })
})

describe('backpressure', () => {
  it('a slow reader slows the writer: the provider waits while the requester holds a chunk', async () => {
    const [a, b] = await pair()
    const CHUNK = 32 * 1024
    const COUNT = 200 // 6.4 MiB, far more than any stream window
    let sent = 0
    let blocked = false
    await b.handleStream('flood', async (_req, _from, r) => {
      for (let i = 0; i < COUNT; i++) {
        await r.send(new Uint8Array(CHUNK).fill(i % 251))
        sent++
      }
      return enc.encode('flood done')
    })
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    const fills: number[] = []
    const done = a.requestStream(b.peerId, 'flood', new Uint8Array(0), {
      onChunk: async c => {
        fills.push(c[0] ?? -1)
        if (fills.length === 1) await held
      }
    })
    await waitUntil(() => fills.length === 1, { what: 'the first chunk' })
    // the provider's stream stops draining while the requester holds the first chunk
    await waitUntil(() => {
      const s = b.libp2p.getConnections().flatMap(c => c.streams).find(x => x.protocol === b.protocolId('flood') && x.direction === 'inbound')
      blocked = s?.writableNeedsDrain === true
      return blocked
    }, { what: 'the provider to wait for the requester' })
    const sentWhileHeld = sent
    // it got no further than the stream's window allows, far from all it wanted to send
    expect(sentWhileHeld).toBeLessThan(COUNT)
    expect(sentWhileHeld * CHUNK).toBeLessThanOrEqual(MESH_MAX_STREAM_WINDOW_BYTES + MESH_MAX_SEND_BUFFER_BYTES)
    expect(fills.length).toBe(1)
    release()
    expect(dec.decode(await done)).toBe('flood done')
    expect(sent).toBe(COUNT)
    expect(fills).toEqual(Array.from({ length: COUNT }, (_, i) => i % 251))
  })

  it('a reader that never reads: bounded send buffer, a typed error, and the node serves others meanwhile', async () => {
    const [a, b] = await pair()
    const c = await makeNode()
    await c.dial(addr(b))
    const CHUNK = 1024
    const outcomes: string[] = []
    let pendingBytes = 0
    let maxPendingBytes = 0
    await b.handleStream('firehose', async (_req, _from, r) => {
      // a provider that does not await its sends: what waits for the transport is bounded
      const all = Array.from({ length: 10_000 }, async () => {
        pendingBytes += CHUNK
        maxPendingBytes = Math.max(maxPendingBytes, pendingBytes)
        try {
          await r.send(new Uint8Array(CHUNK))
          outcomes.push('sent')
        } catch (err) {
          outcomes.push((err as Error).name)
        } finally {
          pendingBytes -= CHUNK
        }
      })
      await Promise.all(all)
      return new Uint8Array(0)
    }, { idleTimeoutMs: 60_000, maxInboundStreams: 16 })
    await b.handle('echo', async req => req)

    const silent = async (mode: string): Promise<void> => {
      const raw = await a.libp2p.dialProtocol(peerIdFromString(b.peerId), b.protocolId('firehose'))
      raw.pause() // never read: yamux grants the provider no more window
      raw.send(Uint8Array.of(mode.length, ...enc.encode(mode)))
      await raw.close()
    }

    await silent('fire')
    await waitUntil(() => outcomes.includes('MeshBackpressureError'), { what: 'the provider to be refused further sends' })
    // what waited for the transport never exceeded the send buffer (plus the chunk that found it full)
    const accepted = outcomes.filter(o => o === 'sent').length
    expect(accepted * CHUNK).toBeLessThanOrEqual(1 << 20)
    await waitUntil(() => outcomes.length === 10_000, { what: 'every send to settle' })
    expect(outcomes.filter(o => o !== 'sent' && o !== 'MeshBackpressureError')).toEqual([])
    expect(maxPendingBytes).toBeGreaterThan(MESH_MAX_SEND_BUFFER_BYTES)

    // meanwhile others are served, on both kinds of protocol
    expect(await c.request(b.peerId, 'echo', enc.encode('still here'))).toEqual(enc.encode('still here'))
    expect(await a.request(b.peerId, 'echo', enc.encode('me too'))).toEqual(enc.encode('me too'))
  })

  it('a stalled send ends with MeshTimeoutError after the idle deadline', async () => {
    const [a, b] = await pair()
    let failure: Error | undefined
    let sent = 0
    await b.handleStream('drip', async (_req, _from, r) => {
      try {
        for (;;) {
          await r.send(new Uint8Array(4096))
          sent++
        }
      } catch (err) {
        failure = err as Error
        throw err
      }
    }, { idleTimeoutMs: 300 })
    const raw = await a.libp2p.dialProtocol(peerIdFromString(b.peerId), b.protocolId('drip'))
    raw.pause()
    raw.send(Uint8Array.of(0))
    await raw.close()
    await waitUntil(() => failure, { what: 'the stalled provider to fail' })
    expect(failure?.name).toBe('MeshTimeoutError')
    // it stalled at the stream's window, not after sending everything it wanted
    expect(sent * 4096).toBeLessThanOrEqual(MESH_MAX_STREAM_WINDOW_BYTES + MESH_MAX_SEND_BUFFER_BYTES)
    await waitUntil(() => raw.status !== 'open', { what: 'the provider to reset the stream' })
    await b.handle('echo', async req => req)
    expect(await a.request(b.peerId, 'echo', enc.encode('ok'))).toEqual(enc.encode('ok'))
  })
})
