/**
 * SSE backpressure with a real HTTP client that stops reading: a Python socket (4 KiB receive
 * buffer) sends one request and never reads, against a real node:http server writing through
 * `EventStream`. Events are large (64 KiB) so the kernel's buffers (the sender's autotunes to
 * megabytes on loopback) fill and `res.write` returns false; token streams of the test models
 * are far smaller than that. Nothing is written past a false write until 'drain', the unread
 * bytes stay bounded, and a reader that stalls is dropped (by its bound or by the drain deadline)
 * with `SlowReaderError`. A slow reader that does read gets every event.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer, request, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createInterface } from 'node:readline'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { waitUntil } from '../../../../fixtures/wait.ts'
import type { SlowReaderError } from '../openai.ts'
import { EventStream, type EventStreamInit } from '../sse.ts'

const STALLED_CLIENT = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'GET /events HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n')
print('sent', flush=True)
sys.stdin.read()
`
const EVENT = 'x'.repeat(64 * 1024)

interface Served {
  server: Server
  port: number
  /** the stream of each request, with the peak of its unread bytes and its stall */
  streams: Array<{ events: EventStream, peak: number, sent: number, stall?: SlowReaderError, ended: boolean }>
}

/** A server that writes `count` large events to each client through EventStream, as fast as it lets it. */
async function serve (count: number, init: Partial<EventStreamInit>): Promise<Served> {
  const streams: Served['streams'] = []
  const server = createServer((_req, res) => {
    const s: Served['streams'][number] = { events: undefined as unknown as EventStream, peak: 0, sent: 0, ended: false }
    s.events = new EventStream(res, { ...init, onStall: (err) => { s.stall = err } })
    streams.push(s)
    s.events.open()
    void (async () => {
      for (let i = 0; i < count && s.stall === undefined; i++) {
        s.events.send({ i, data: EVENT })
        s.sent++
        s.peak = Math.max(s.peak, s.events.bufferedBytes)
        // one event per turn of the event loop, as tokens arrive
        await new Promise(resolve => setImmediate(resolve))
      }
      s.events.send('[DONE]')
      await s.events.end()
      s.ended = true
    })()
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  return { server, port: (server.address() as AddressInfo).port, streams }
}

async function stalledClient (port: number): Promise<ChildProcess> {
  const client = spawn('python3', ['-c', STALLED_CLIENT, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] })
  clients.push(client)
  await new Promise<void>((resolve) => { createInterface({ input: client.stdout! }).once('line', () => { resolve() }) })
  return client
}

const clients: ChildProcess[] = []
const servers: Server[] = []

describe('SSE backpressure (EventStream)', () => {
  afterEach(async () => {
    for (const s of servers.splice(0)) { s.closeAllConnections(); await new Promise(resolve => s.close(resolve)) }
  })
  afterAll(() => { for (const c of clients) c.kill() })

  it('keeps a reader that never reads within its bound, then drops it with SlowReaderError', async () => {
    const bound = 512 * 1024
    const s = await serve(400, { maxBufferedBytes: bound, drainTimeoutMs: 600_000 })
    servers.push(s.server)
    const client = await stalledClient(s.port)
    const stream = await waitUntil(() => s.streams[0]?.stall !== undefined ? s.streams[0] : undefined, { timeoutMs: 60_000 })
    expect(stream.stall).toMatchObject({ name: 'SlowReaderError', code: 'slow_reader', status: 408 })
    // it stopped the writer: far fewer than the 400 events (25 MiB) were produced
    expect(stream.sent).toBeLessThan(400)
    // the unread bytes never went past the bound by more than one event
    expect(stream.peak).toBeLessThanOrEqual(bound + EVENT.length + 64)
    await waitUntil(() => stream.ended)
    expect(client.exitCode).toBeNull()
  })

  it('drops a reader that reads nothing before the drain deadline', async () => {
    const s = await serve(400, { drainTimeoutMs: 300 })
    servers.push(s.server)
    await stalledClient(s.port)
    const stream = await waitUntil(() => s.streams[0]?.stall !== undefined ? s.streams[0] : undefined, { timeoutMs: 60_000 })
    expect(stream.stall).toMatchObject({ name: 'SlowReaderError' })
    expect(stream.sent).toBeLessThan(400)
  })

  it('gives a slow reader that does read every event, in order, and ends after it has taken them', async () => {
    const s = await serve(120, { maxBufferedBytes: 64 * 1024 * 1024, drainTimeoutMs: 600_000 })
    servers.push(s.server)
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      request({ host: '127.0.0.1', port: s.port, path: '/events' }, resolve).on('error', reject).end()
    })
    res.pause()
    // the writer is held back: the client has not read, and the server's queue holds events
    await waitUntil(() => (s.streams[0]?.events.bufferedBytes ?? 0) > 0 && s.streams[0]!.peak > 4 * EVENT.length, { timeoutMs: 60_000 })
    expect(s.streams[0]!.ended).toBe(false)
    let text = ''
    res.setEncoding('utf8')
    res.on('data', (chunk: string) => { text += chunk })
    res.resume()
    await new Promise(resolve => res.on('end', resolve))
    const events = text.split('\n\n').filter(e => e.length > 0).map(e => e.slice('data: '.length))
    expect(events).toHaveLength(121)
    expect(events.slice(0, -1).map(e => (JSON.parse(e) as { i: number }).i)).toEqual([...Array(120).keys()])
    expect(events.at(-1)).toBe('[DONE]')
    expect(s.streams[0]!.stall).toBeUndefined()
    await waitUntil(() => s.streams[0]!.ended)
  })
})
