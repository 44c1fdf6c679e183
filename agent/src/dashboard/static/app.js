// flexnode dashboard: draws the node's /v1/dashboard/events stream (hand-written, no build step, no CDN).
// A token in the URL fragment (#token=…) is kept in sessionStorage, removed from the address bar, and
// sent as a bearer header on the data requests; the stream is read with fetch, since EventSource
// cannot send headers.

const TOKEN_KEY = 'flexnode-dashboard-token'
const SVG = 'http://www.w3.org/2000/svg'
/** no event for this long (the server sends one at least every 15 s): the stream is dead, reconnect */
const STALL_MS = 40_000

// ---- the token -----------------------------------------------------------------------------------
const fragment = new URLSearchParams(location.hash.slice(1))
if (fragment.has('token')) {
  const t = fragment.get('token') ?? ''
  if (t.length > 0) sessionStorage.setItem(TOKEN_KEY, t)
  fragment.delete('token')
  const rest = fragment.toString()
  history.replaceState(null, '', location.pathname + location.search + (rest.length > 0 ? `#${rest}` : ''))
}
const token = () => sessionStorage.getItem(TOKEN_KEY)
const authHeaders = () => {
  const t = token()
  return t === null ? {} : { authorization: `Bearer ${t}` }
}

// ---- small DOM helpers ------------------------------------------------------------------------------
const $ = (id) => document.getElementById(id)
function el (tag, attrs = {}, ...children) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue
    if (k === 'class') e.className = v
    else if (k === 'text') e.textContent = v
    else e.setAttribute(k, String(v))
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c)
  return e
}
function svg (tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, String(v))
  if (text !== undefined) e.textContent = text
  return e
}
const pct = (x) => `${Math.round(x)}%`
const short = (id) => (typeof id === 'string' && id.length > 14 ? `${id.slice(5, 13)}…` : String(id))
function ago (iso) {
  if (iso === null || iso === undefined || iso === '') return 'not yet'
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))
  if (s < 60) return `${s}s ago`
  if (s < 3600) return `${Math.floor(s / 60)}m ago`
  return `${Math.floor(s / 3600)}h ago`
}
function until (iso) {
  const s = Math.round((Date.parse(iso) - Date.now()) / 1000)
  if (s <= 0) return 'now'
  if (s < 120) return `in ${s}s`
  if (s < 7200) return `in ${Math.round(s / 60)}m`
  return `in ${Math.round(s / 3600)}h`
}
const HW = { 'gpu-server': 'GPU server', 'arm-board': 'ARM board', server: 'server', desktop: 'desktop' }

// ---- rendering ---------------------------------------------------------------------------------------
let current = null
let names = new Map()

function render (snap) {
  current = snap
  names = new Map(snap.nodes.map(n => [n.node_id, n.name]))
  $('network').textContent = snap.network
  const online = snap.nodes.filter(n => n.status !== 'offline').length
  $('summary').textContent = `${snap.nodes.length} nodes · ${online} online · ${snap.links.length} links`
  renderMesh(snap)
  renderCards(snap)
  renderAllocations(snap)
  renderMoe(snap)
  const problems = snap.problems ?? []
  if (problems.length > 0) notice(`Some parts could not be read: ${problems.join('; ')}`)
  else if (connState === 'live') notice(null)
  tick()
}

function renderMesh (snap) {
  const root = $('mesh')
  root.replaceChildren()
  const W = 600
  const H = 420
  const cx = W / 2
  const cy = H / 2 - 6
  // a few nodes on an ellipse, this node at the top (three make a triangle); a larger mesh as a
  // ring around this node, drawn smaller and named only
  const pos = new Map()
  const count = snap.nodes.length
  const large = count > 8
  const ring = large ? snap.nodes.filter(n => !n.self) : snap.nodes
  const rx = large ? W / 2 - 55 : W / 2 - 90
  const ry = large ? H / 2 - 40 : H / 2 - 70
  ring.forEach((node, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(1, ring.length)
    pos.set(node.node_id, count === 1 ? [cx, cy] : [cx + rx * Math.cos(a), cy + ry * Math.sin(a)])
  })
  if (large) for (const n of snap.nodes) if (n.self) pos.set(n.node_id, [cx, cy])
  const byId = new Map(snap.nodes.map(n => [n.node_id, n]))
  const gLinks = svg('g', { class: 'links' })
  for (const l of snap.links) {
    const a = pos.get(l.from)
    const b = pos.get(l.to)
    if (!a || !b) continue
    const offline = byId.get(l.to)?.status === 'offline'
    gLinks.append(svg('line', { class: `link${offline ? ' to-offline' : ''}`, x1: a[0], y1: a[1], x2: b[0], y2: b[1], 'data-from': l.from, 'data-to': l.to }))
  }
  root.append(gLinks)
  const r = large ? 10 : 22
  for (const n of snap.nodes) {
    const [x, y] = pos.get(n.node_id)
    const g = svg('g', { class: `node-g ${n.status}${n.self ? ' self' : ''}`, 'data-node-id': n.node_id, 'data-node-name': n.name, 'data-status': n.status, transform: `translate(${x.toFixed(1)},${y.toFixed(1)})` })
    g.append(svg('title', {}, `${n.name} — ${n.status}${n.self ? ' (this node)' : ''}`))
    // outer arc: the share of the DHT ring it stores
    if (n.arc_coverage !== null && n.arc_coverage > 0) {
      const ar = r + 9
      const c = 2 * Math.PI * ar
      g.append(svg('circle', { class: 'arc-ring', r: ar, 'stroke-dasharray': `${(c * n.arc_coverage).toFixed(1)} ${c.toFixed(1)}`, transform: 'rotate(-90)' }))
    }
    // ring: CPU load
    const lr = r + 4
    const lc = 2 * Math.PI * lr
    g.append(svg('circle', { class: 'load-track', r: lr }))
    if (n.load && n.status !== 'offline') g.append(svg('circle', { class: 'load-ring', r: lr, 'stroke-dasharray': `${(lc * Math.min(100, n.load.cpu_percent) / 100).toFixed(1)} ${lc.toFixed(1)}`, transform: 'rotate(-90)' }))
    g.append(svg('circle', { class: `node-circle ${n.status}`, r }))
    if (large) {
      g.append(svg('text', { class: 'node-label small', y: r + 18 }, n.name))
      root.append(g)
      continue
    }
    g.append(svg('text', { class: 'node-badge' }, n.load && n.status !== 'offline' ? pct(n.load.cpu_percent) : ''))
    g.append(svg('text', { class: 'node-label', y: r + 26 }, n.name))
    g.append(svg('text', { class: 'node-sub', y: r + 40 }, [n.status, n.hardware ? HW[n.hardware.class] ?? n.hardware.class : null].filter(Boolean).join(' · ')))
    const plural = (k, word) => `${k} ${word}${k === 1 ? '' : 's'}`
    const shards = n.shards === null ? null : plural(n.shards.length, 'shard')
    if (count <= 6) g.append(svg('text', { class: 'node-sub', y: r + 53 }, [plural(n.models.length, 'model'), shards, n.arc_coverage !== null ? `arc ${Math.round(n.arc_coverage * 100)}%` : null].filter(Boolean).join(' · ')))
    root.append(g)
  }
}

function bar (value) {
  const b = el('span', { class: `bar${value >= 80 ? ' hot' : ''}` })
  const i = el('i')
  i.style.width = `${Math.max(0, Math.min(100, value))}%`
  b.append(i)
  return b
}

function row (label, ...items) {
  return el('div', { class: 'row' }, el('span', { class: 'k', text: label }), el('span', { class: 'v' }, ...items))
}

function renderCards (snap) {
  $('node-count').textContent = `${snap.nodes.length}`
  const cards = snap.nodes.map(n => {
    const hw = n.hardware
    const card = el('article', { class: 'card', 'data-node-id': n.node_id, 'data-node-name': n.name, 'data-status': n.status },
      el('div', { class: 'top' },
        el('span', { class: 'name', text: n.name, title: n.node_id }),
        n.self ? el('span', { class: 'chip', text: 'this node' }) : null,
        el('span', { class: `status ${n.status}`, text: n.status })))
    card.append(row('machine', el('span', { text: hw ? `${HW[hw.class] ?? hw.class} · ${hw.cpu_cores} × ${hw.cpu_arch} · ${hw.ram_gb} GB${hw.gpu ? ` · ${hw.gpu}` : ''}${n.region ? ` · ${n.region}` : ''}` : 'not advertised yet' })))
    if (n.capabilities.length > 0) card.append(row('offers', ...n.capabilities.map(c => el('span', { class: 'chip cap', text: c }))))
    if (n.load && n.status !== 'offline') {
      card.append(row('load', el('span', { class: 'gauge', title: 'CPU' }, 'cpu ', bar(n.load.cpu_percent), ` ${pct(n.load.cpu_percent)}`), el('span', { class: 'gauge', title: 'memory' }, 'mem ', bar(n.load.memory_percent), ` ${pct(n.load.memory_percent)}`)))
    }
    card.append(row('models', ...(n.models.length === 0
      ? [el('span', { class: 'muted', text: 'none' })]
      : n.models.map(m => el('span', { class: `chip model${m.demo ? ' demo' : ''}`, title: m.demo ? 'demo model (random weights)' : m.id, text: `${m.id}${m.queue > 0 ? ` ·${m.queue}` : ''}` }))), n.tokens_per_second > 0 ? el('span', { class: 'muted', text: `${n.tokens_per_second} tok/s` }) : null))
    const shards = n.shards === null ? `offers ${n.shard_capacity}` : `${n.shards.length} hosted of ${n.shard_capacity}${n.shards.length > 0 ? `: ${n.shards.slice(0, 6).join(', ')}${n.shards.length > 6 ? '…' : ''}` : ''}`
    card.append(row('shards', el('span', { text: shards })))
    card.append(row('arc', el('span', { text: n.arc === null ? (n.status === 'offline' ? '—' : 'empty') : `${(n.arc_coverage * 100).toFixed(1)}% of the ring` }), el('span', { class: 'muted', 'data-seen': n.last_seen ?? '', text: n.self ? '' : `· seen ${ago(n.last_seen)}` })))
    return card
  })
  $('cards').replaceChildren(...cards)
}

const UNITS = { cpu_cores: 'cpu', memory_gb: 'GB mem', gpu_count: 'gpu', storage_gb: 'GB disk', model_slots: 'model slots', vectors: 'vectors' }
const resourcesText = (r) => Object.entries(r).filter(([, v]) => v > 0).map(([k, v]) => `${v} ${UNITS[k] ?? k}`).join(' · ') || '—'

function renderAllocations (snap) {
  $('alloc-count').textContent = `${snap.allocations.length}`
  const body = $('allocations').tBodies[0]
  if (snap.allocations.length === 0) {
    body.replaceChildren(el('tr', {}, el('td', { class: 'empty', colspan: 5, text: 'no live allocations' })))
    return
  }
  body.replaceChildren(...snap.allocations.map(a => el('tr', { 'data-allocation-id': a.allocation_id },
    el('td', { text: a.resource_type }),
    el('td', { text: names.get(a.provider) ?? short(a.provider), title: a.provider }),
    el('td', { text: names.get(a.holder) ?? short(a.holder), title: a.holder }),
    el('td', { text: resourcesText(a.resources) }),
    el('td', { 'data-expires': a.expires_at, text: until(a.expires_at) }))))
}

function renderMoe (snap) {
  $('moe-count').textContent = `${snap.moe.length}`
  if (snap.moe.length === 0) {
    $('moe').replaceChildren(el('div', { class: 'empty', text: 'no MOE query answered by this node yet' }))
    return
  }
  $('moe').replaceChildren(...snap.moe.map(q => el('div', { class: 'moe', 'data-trace-id': q.trace_id },
    el('div', { class: 'head' },
      el('span', { class: `score ${q.consensus ? 'yes' : 'no'}`, text: `${Math.round(q.consensus_score * 100)}% ${q.consensus ? 'consensus' : 'no consensus'}` }),
      el('span', { class: 'chip', text: q.task_type }),
      el('span', { class: 'muted', text: q.policy }),
      el('span', { class: 'muted', 'data-at': q.at, text: ago(q.at) })),
    el('div', {}, ...q.votes.map(v => el('span', {
      class: `vote${v.error ? ' failed' : v.agreed ? ' agreed' : ''}`,
      title: v.error ?? `weight ${v.weight} · ${v.latency_ms} ms`,
      text: `${v.error ? '✗' : v.agreed ? '✓' : '○'} ${v.model} @ ${names.get(v.node) ?? short(v.node)}`
    }))))))
}

/** relative times move on between events */
function tick () {
  if (current) $('updated').textContent = `updated ${ago(current.generated_at)}`
  for (const e of document.querySelectorAll('[data-expires]')) e.textContent = until(e.getAttribute('data-expires'))
  for (const e of document.querySelectorAll('[data-at]')) e.textContent = ago(e.getAttribute('data-at'))
  for (const e of document.querySelectorAll('[data-seen]')) if (e.textContent !== '') e.textContent = `· seen ${ago(e.getAttribute('data-seen') || null)}`
}
setInterval(tick, 1000)

// ---- the stream ----------------------------------------------------------------------------------------
let connState = 'connecting'
function setConn (state, text) {
  connState = state
  const c = $('conn')
  c.dataset.state = state
  c.textContent = text
}
function notice (text) {
  const n = $('notice')
  if (text === null) { n.hidden = true; n.textContent = ''; return }
  n.hidden = false
  n.textContent = text
}

async function stream () {
  let backoff = 1000
  for (;;) {
    const controller = new AbortController()
    let stallTimer
    const armStall = () => { clearTimeout(stallTimer); stallTimer = setTimeout(() => controller.abort(), STALL_MS) }
    try {
      armStall()
      const res = await fetch('/v1/dashboard/events', { headers: { accept: 'text/event-stream', ...authHeaders() }, signal: controller.signal, cache: 'no-store' })
      if (res.status === 401 || res.status === 403) {
        clearTimeout(stallTimer)
        setConn('unauthorized', 'token needed')
        notice(token() === null
          ? 'This node needs an API token: open the page as /#token=<token> (flexnode keys token makes one).'
          : 'The API token was refused: open the page again as /#token=<token>.')
        return
      }
      if (!res.ok || res.body === null) throw new Error(`HTTP ${res.status}`)
      setConn('live', 'live')
      backoff = 1000
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
      let buf = ''
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        armStall()
        buf += value
        let end
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const event = buf.slice(0, end)
          buf = buf.slice(end + 2)
          const data = event.split('\n').filter(l => l.startsWith('data:')).map(l => l.slice(5).replace(/^ /, '')).join('\n')
          if (data.length > 0) render(JSON.parse(data))
        }
      }
      throw new Error('the stream ended')
    } catch (err) {
      clearTimeout(stallTimer)
      controller.abort()
      setConn('reconnecting', 'reconnecting…')
      notice(`Lost the node's event stream (${err instanceof Error ? err.message : String(err)}); retrying.`)
      await new Promise(resolve => setTimeout(resolve, backoff))
      backoff = Math.min(backoff * 2, 10_000)
    }
  }
}

void stream()
