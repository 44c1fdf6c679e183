/**
 * The dashboard in a real browser: a running 3-node mesh (two players in this process serving a
 * tiny model, one a real `flexnode start` child heartbeating every 2 s), headless Chromium
 * (Debian's `chromium`, driven by playwright-core) on the first node's `/` at laptop size.
 *
 * - every node's name is drawn, in the SVG picture and on its card, each `online`;
 * - the page took its token from `#token=`: gone from the address bar, kept in sessionStorage,
 *   sent as `Authorization: Bearer` on the event stream;
 * - a live lease and an MOE query show up;
 * - a screenshot goes to `bench/results/dashboard.png` (git-ignored; CI keeps it as an artifact);
 * - the child is killed (SIGKILL) and its card and picture turn `offline` without a reload
 *   (`bench/results/dashboard-offline.png`).
 *
 * And a node bound to a non-loopback address (auth on): the shell loads without a token, the data
 * does not (the page says a token is needed); opened with `#token=<token>` it draws the node.
 */
import { describe, expect, it } from 'vitest'
import { mkdir, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { ensureModel } from '../../fixtures/gguf/index.ts'
import { createTestAgent, REPO_ROOT, tempDir } from '../../fixtures/index.ts'
import { encodeHash } from '../../agent/src/holo/hash.ts'
import type { DashboardSnapshot } from '../../agent/src/dashboard/index.ts'
import { httpUrl, runScenario, waitUntil, type AnyPlayer } from '../src/index.ts'

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const RESULTS = join(REPO_ROOT, 'bench', 'results')
const TOKEN = 'dashboard-test-token'
/** what the page set on its window before the kill: a reload would lose it */
const MARKER = 'flexnodeDashboardTestMarker'

const nodeId = (p: AnyPlayer): string => encodeHash(p.agentPubKey)

describe('dashboard in headless Chromium', () => {
  it('draws each node of a 3-node mesh, and a node killed during the test turns offline on the page without reload', async () => {
    await using root = await tempDir('flexnode-dashboard-mesh-')
    const models = join(root.path, 'models')
    await mkdir(models)
    const model = basename(await ensureModel(models, 'tiny', 11), '.gguf')
    await runScenario(async (scenario) => {
      const a = await scenario.addPlayer({ heartbeatIntervalSeconds: 1, modelsDirs: [models] })
      const b = await scenario.addPlayer({ heartbeatIntervalSeconds: 1, modelsDirs: [models] })
      const c = await scenario.addPlayer({ kind: 'process', heartbeatIntervalSeconds: 2 })
      const players = [a, b, c]
      const snapshot = async (): Promise<DashboardSnapshot> => await (await fetch(httpUrl(a, '/v1/dashboard/snapshot'))).json() as DashboardSnapshot
      await waitUntil(async () => {
        const snap = await snapshot()
        return players.every(p => snap.nodes.some(n => n.node_id === nodeId(p) && n.name === p.name && n.status === 'online')) &&
          [b, c].every(p => snap.links.some(l => l.to === nodeId(p))) &&
          snap.nodes.find(n => n.node_id === nodeId(b))?.models.some(m => m.id === model)
      }, { what: 'the first node to see all three online, linked, and b\'s model', timeoutMs: 90_000, intervalMs: 250 })

      // live state to draw: a lease a holds on b, an MOE query a answered
      await a.node.resources.allocate({ resource_type: 'compute', requirements: { cpu_cores: 1 }, node_id: nodeId(b), duration_seconds: 600 })
      const moe = await fetch(httpUrl(a, '/v1/moe/query'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Say hi.', task_type: 'general', max_tokens: 6 }) })
      expect(moe.status).toBe(200)

      let browser: Browser | undefined
      try {
        browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true })
        const page = await browser.newPage({ viewport: { width: 1366, height: 768 } })
        const bearers: Array<string | undefined> = []
        page.on('request', (r) => { if (new URL(r.url()).pathname.startsWith('/v1/dashboard/')) bearers.push(r.headers().authorization) })
        let navigations = 0
        page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations++ })
        await page.goto(httpUrl(a, `/#token=${TOKEN}`))

        for (const p of players) {
          await page.locator(`.card[data-node-name="${p.name}"][data-status="online"]`).waitFor({ timeout: 30_000 })
          expect(await page.locator(`.card[data-node-name="${p.name}"] .name`).textContent()).toBe(p.name)
          expect(await page.locator(`#mesh [data-node-name="${p.name}"] .node-label`).textContent()).toBe(p.name)
        }
        await page.locator('#allocations tbody tr[data-allocation-id]').first().waitFor({ timeout: 30_000 })
        await page.locator('#moe .moe').first().waitFor({ timeout: 30_000 })
        expect(await page.locator('#conn').getAttribute('data-state')).toBe('live')
        // the token: out of the address bar, kept for the tab, sent as a bearer on the data requests
        expect(page.url()).not.toContain(TOKEN)
        // (page code as strings: the test is type-checked without the DOM library)
        expect(await page.evaluate('sessionStorage.getItem("flexnode-dashboard-token")')).toBe(TOKEN)
        expect(bearers.length).toBeGreaterThan(0)
        expect(bearers.every(h => h === `Bearer ${TOKEN}`)).toBe(true)
        // the picture fits a laptop screen: the page does not scroll
        expect(await page.evaluate('document.documentElement.scrollHeight <= innerHeight && document.documentElement.scrollWidth <= innerWidth')).toBe(true)

        await mkdir(RESULTS, { recursive: true })
        await page.screenshot({ path: join(RESULTS, 'dashboard.png') })

        await page.evaluate((key) => { (globalThis as unknown as Record<string, unknown>)[key] = true }, MARKER)
        const before = navigations
        await scenario.kill(c, { signal: 'SIGKILL' })
        await page.locator(`.card[data-node-name="${c.name}"][data-status="offline"]`).waitFor({ timeout: 60_000 })
        await page.locator(`#mesh [data-node-name="${c.name}"][data-status="offline"]`).waitFor({ timeout: 10_000 })
        for (const p of [a, b]) expect(await page.locator(`.card[data-node-name="${p.name}"]`).getAttribute('data-status')).toBe('online')
        // when it was last alive stays on its card
        expect(await page.locator(`.card[data-node-name="${c.name}"] [data-seen]`).textContent()).toMatch(/seen \d+[smh] ago/)
        // the same document all along: no navigation, the marker still set
        expect(navigations).toBe(before)
        expect(await page.evaluate((key) => (globalThis as unknown as Record<string, unknown>)[key], MARKER)).toBe(true)
        await page.screenshot({ path: join(RESULTS, 'dashboard-offline.png') })
      } finally {
        await browser?.close()
      }
    })
  }, 300_000)

  it('works on a node that requires a token: the shell without one, the data with #token=', async () => {
    await using root = await tempDir('flexnode-dashboard-auth-')
    const tokenFile = join(root.path, 'tokens')
    const token = 'dashboard-auth-token-0123456789'
    await writeFile(tokenFile, `${token}\n`)
    // bound to every address (auth on), reached over 127.0.0.1
    await using agent = await createTestAgent({ agentName: 'guarded', httpHost: '0.0.0.0', apiTokenFile: tokenFile, heartbeatIntervalSeconds: 2 })
    const base = `http://127.0.0.1:${agent.node.info.http_port}`
    expect((await fetch(`${base}/`)).status).toBe(200)
    expect((await fetch(`${base}/dashboard/app.js`)).status).toBe(200)
    expect((await fetch(`${base}/v1/dashboard/snapshot`)).status).toBe(401)
    expect((await fetch(`${base}/v1/dashboard/events`)).status).toBe(401)
    expect((await fetch(`${base}/v1/dashboard/snapshot`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200)

    let browser: Browser | undefined
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true })
      const page = await browser.newPage({ viewport: { width: 1366, height: 768 } })
      // no token: the page loads and says one is needed
      await page.goto(`${base}/`)
      await page.locator('#conn[data-state="unauthorized"]').waitFor({ timeout: 30_000 })
      expect(await page.locator('#notice').textContent()).toContain('#token=')
      expect(await page.locator('.card').count()).toBe(0)
      // a wrong token: refused
      await page.goto(`${base}/#token=wrong-token`)
      await page.reload()
      await page.locator('#conn[data-state="unauthorized"]').waitFor({ timeout: 30_000 })
      expect(await page.locator('#notice').textContent()).toContain('refused')
      // the right one: the node is drawn, and the token stays for the tab, out of the address bar
      await page.goto(`${base}/#token=${encodeURIComponent(token)}`)
      await page.reload()
      await page.locator('.card[data-node-name="guarded"][data-status="online"]').waitFor({ timeout: 30_000 })
      expect(await page.locator('#conn').getAttribute('data-state')).toBe('live')
      expect(page.url()).not.toContain(token)
    } finally {
      await browser?.close()
    }
  }, 120_000)
})
