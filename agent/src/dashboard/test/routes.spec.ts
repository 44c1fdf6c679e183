/**
 * The dashboard's routes on a real node: the page and its files (no data, strict CSP), the
 * snapshot as JSON, the event stream's first snapshot, and an MOE query answered through the
 * HTTP API showing up in the snapshot's recent votes (the router's `onMoeResult` hook).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdir } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { ensureModel } from '../../../../fixtures/gguf/index.ts'
import { createTestAgent, tempDir, waitUntil, type TempDir, type TestAgent } from '../../../../fixtures/index.ts'
import type { DashboardSnapshot } from '../index.ts'

let root: TempDir
let agent: TestAgent
let model: string
const url = (path: string): string => `http://127.0.0.1:${agent.node.info.http_port}${path}`

beforeAll(async () => {
  root = await tempDir('flexnode-dashboard-')
  const models = join(root.path, 'models')
  await mkdir(models)
  model = basename(await ensureModel(models, 'tiny', 5), '.gguf')
  agent = await createTestAgent({ agentName: 'dash-solo', modelsDirs: [models], preloadModels: true, heartbeatIntervalSeconds: 2 })
}, 120_000)
afterAll(async () => {
  await agent?.[Symbol.asyncDispose]()
  await root?.[Symbol.asyncDispose]()
})

/** The first `data:` event of an SSE response, then the stream is dropped. */
async function firstEvent (res: Response, controller: AbortController): Promise<unknown> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader()
  let buf = ''
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) throw new Error('the stream ended before its first event')
      buf += value
      const end = buf.indexOf('\n\n')
      if (end >= 0) return JSON.parse(buf.slice(0, end).replace(/^data: /, ''))
    }
  } finally {
    controller.abort()
  }
}

describe('dashboard routes', () => {
  it('serves the page and its files, which hold no data, with a CSP that allows only this origin', async () => {
    const page = await fetch(url('/'))
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'")
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'")
    const html = await page.text()
    expect(html).toContain('<svg id="mesh"')
    expect(html).toContain('src="/dashboard/app.js"')
    expect(html).not.toMatch(/https?:\/\//)
    expect(html).not.toContain(agent.node.info.agent_pub_key)

    const js = await fetch(url('/dashboard/app.js'))
    expect(js.status).toBe(200)
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    const script = await js.text()
    expect(script).toContain('/v1/dashboard/events')
    expect(script).toContain('sessionStorage')
    expect(script).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/)
    const css = await fetch(url('/dashboard/app.css'))
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8')
    expect((await css.text()).length).toBeGreaterThan(100)

    expect((await fetch(url('/'), { method: 'HEAD' })).status).toBe(200)
    const post = await fetch(url('/'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    expect(post.status).toBe(405)
    expect((await fetch(url('/dashboard/nope.js'))).status).toBe(404)
  })

  it('answers the snapshot as JSON and streams it, and lists an MOE query the node answered', async () => {
    const snap = await (await fetch(url('/v1/dashboard/snapshot'))).json() as DashboardSnapshot
    expect(snap.self).toBe(agent.node.info.agent_pub_key)
    expect(snap.network).toBe('local')
    const self = snap.nodes.find(n => n.self)
    expect(self).toMatchObject({ name: 'dash-solo', status: 'online', node_id: agent.node.info.agent_pub_key, peer_id: agent.node.info.peer_id })
    expect(self?.models.map(m => m.id)).toEqual([model])
    expect(self?.hardware?.cpu_cores).toBeGreaterThan(0)
    expect(self?.arc_coverage).toBe(1)
    expect(snap.problems).toEqual([])

    const res = await fetch(url('/v1/moe/query'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Say hi.', task_type: 'general', max_tokens: 6 }) })
    expect(res.status).toBe(200)
    const out = await res.json() as { trace_id: string, consensus_score: number }

    const controller = new AbortController()
    const events = await fetch(url('/v1/dashboard/events'), { signal: controller.signal })
    expect(events.status).toBe(200)
    expect(events.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
    // the snapshot may be up to a second old: the stream's first event carries the query once it is newer
    const streamed = await firstEvent(events, controller) as DashboardSnapshot
    expect(streamed.self).toBe(agent.node.info.agent_pub_key)
    const withMoe = streamed.moe.length > 0
      ? streamed
      : await waitUntil(async () => { const later = await (await fetch(url('/v1/dashboard/snapshot'))).json() as DashboardSnapshot; return later.moe.length > 0 ? later : undefined }, { what: 'the MOE query in the snapshot', timeoutMs: 10_000 })
    expect(withMoe.moe[0]).toMatchObject({ trace_id: out.trace_id, task_type: 'general', policy: 'ripple-moe', consensus_score: out.consensus_score })
    expect(withMoe.moe[0]!.votes).toEqual([expect.objectContaining({ model, node: agent.node.info.agent_pub_key, agreed: true })])
  })
})
