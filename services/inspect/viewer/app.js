// loopstate inspector page: plain JS, no build step, no external requests.
// Data: GET /api/chart, /api/loops/<name>[/history[/<seq>]]; live pushes on ws /ws/page.
'use strict'

const state = {
  chart: null,
  loops: [],
  selected: null,
  loop: null, // LoopPayload of the selected loop
  history: [], // page history entries of the selected loop
  stream: [],
  at: null, // history seq the slider shows; null = live
  snapshots: new Map(), // seq -> { state, summary, detail }
  tab: 'log',
  ws: null,
  connected: false,
}

const $ = (sel) => document.querySelector(sel)

/** Creates an element; children are nodes or text (never HTML). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue
    if (k === 'class') el.className = v
    else if (k === 'text') el.textContent = v
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v)
    else el.setAttribute(k, v === true ? '' : String(v))
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue
    el.append(c instanceof Node ? c : document.createTextNode(String(c)))
  }
  return el
}

const fmtTokens = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : String(n))
const fmtCost = (usd) => (usd > 0 ? `$${usd < 0.01 ? usd.toFixed(4) : usd.toFixed(2)}` : '$0')
const fmtMs = (ms) => {
  if (ms < 1000) return `${Math.round(ms)}ms`
  const s = ms / 1000
  if (s < 60) return `${s.toFixed(1)}s`
  const m = Math.floor(s / 60)
  return m < 60 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`
}
const fmtTime = (iso) => {
  const d = new Date(iso)
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`
}
/** `running.coding.watching` → `coding`; `completed` stays. */
const shortState = (s) => (s || '—').replace(/^running\./, '').replace(/\.watching$/, '')

async function getJson(path) {
  const res = await fetch(path, { cache: 'no-store' })
  if (!res.ok) throw new Error(`${path}: ${res.status}`)
  return res.json()
}

// ---------- statechart ----------

const stateEls = new Map() // path -> element
const trEls = [] // { el, from: state path, t }

function renderChart() {
  const root = state.chart
  const box = $('#chart')
  box.textContent = ''
  stateEls.clear()
  trEls.length = 0
  box.append(
    h(
      'div',
      { class: 'chart-legend' },
      h('span', {}, h('b', {}, '▸'), ' initial'),
      h('span', {}, h('b', {}, 'double border'), ' final'),
      h('span', {}, h('b', { class: 'ev' }, 'event'), ' ', h('span', { class: 'guard' }, '[guard]'), ' → target'),
      h('span', {}, h('b', {}, '⟲'), ' re-enters itself'),
      h('span', {}, h('span', { class: 'reason' }, 'reason'), ' the final reason it sets'),
    ),
  )
  box.append(renderState(root, null))
}

function targetLabel(from, target) {
  if (target === from) return '⟲'
  if (target === '') return 'loop'
  const parts = target.split('.')
  const last = parts[parts.length - 1]
  return last === 'watching' ? parts.slice(-2).join('.') : last
}

/** A state whose transitions are all eventless is a choice: the first matching guard wins. */
const isChoice = (s) => s.transitions.length > 1 && s.transitions.every((t) => t.kind === 'always')

function renderTransitions(s) {
  const rows = []
  const ctxOnly = []
  const choice = isChoice(s)
  for (const t of s.transitions) {
    if (t.targets.length === 0) {
      ctxOnly.push(t.label)
      continue
    }
    const title = `${t.label}${t.guard ? ` [${t.guard}]` : ''} → ${t.targets.join(', ')}${t.reenter ? ' (re-enters)' : ''}${t.actions.length ? `\nactions: ${t.actions.join(', ')}` : ''}`
    const el = h(
      'div',
      { class: `tr k-${t.kind}`, title },
      choice ? null : h('span', { class: 'ev' }, t.label),
      t.guard ? h('span', { class: 'guard' }, `[${t.guard}]`) : choice ? h('span', { class: 'guard' }, '[else]') : null,
      h(
        'span',
        { class: 'to' },
        h('span', { class: 'arrow' }, '→ '),
        h('span', { class: 'tgt' }, t.targets.map((x) => targetLabel(s.path, x)).join(', ')),
        t.reason ? h('span', { class: 'reason' }, t.reason) : null,
      ),
    )
    trEls.push({ el, from: s.path, t })
    rows.push(el)
  }
  if (ctxOnly.length) {
    rows.push(
      h(
        'div',
        { class: 'tr ctx-only', title: 'events handled here without leaving the state (they update the context)' },
        'context only: ',
        h('span', { class: 'ev' }, ctxOnly.join(' · ')),
      ),
    )
  }
  return rows.length ? h('div', { class: 'trs' }, rows) : null
}

function renderState(s, parent) {
  const isRoot = parent === null
  const classes = ['state', s.type]
  if (isRoot) classes.push('root')
  if (parent && parent.initial === s.path) classes.push('initial')
  if (s.type === 'final') classes.push(`end-${s.key}`)
  const inner = parent && parent.path !== '' && s.states.length === 0 && parent.states.length === 1
  if (inner) classes.push('inner')
  if (s.transitions.length > 8) classes.push('wide')
  const meta = []
  if (s.invoke.length) meta.push(`invokes ${s.invoke.join(', ')}`)
  if (s.type === 'final') meta.push('final')
  if (isChoice(s)) meta.push('choice')
  const el = h(
    'div',
    { class: classes.join(' '), 'data-path': s.path },
    h('div', { class: 'sh' }, h('span', { class: 'sk' }, s.key), h('span', { class: 'now' }, '● now'), meta.length ? h('span', { class: 'meta' }, meta.join(' · ')) : null),
    renderTransitions(s),
  )
  if (s.states.length) {
    if (isRoot) {
      // the small top-level states (paused and the final ones) in a row above the big one
      const big = s.states.filter((c) => c.states.length > 3)
      const small = s.states.filter((c) => c.states.length <= 3)
      el.append(h('div', { class: 'children' }, h('div', { class: 'top-row' }, small.map((c) => renderState(c, s))), big.map((c) => renderState(c, s))))
    } else if (s.states.length > 4) {
      el.append(h('div', { class: 'children flow' }, s.states.map((c) => renderState(c, s))))
    } else if (s.states.length === 1 && s.states[0].states.length === 0) {
      el.append(renderState(s.states[0], s))
    } else {
      el.append(h('div', { class: 'children' }, s.states.map((c) => renderState(c, s))))
    }
  }
  stateEls.set(s.path, el)
  return el
}

/** Highlights `current` (a state path) and its ancestors; marks the transition of `last` entry. */
function highlight(current, last) {
  for (const el of stateEls.values()) el.classList.remove('active', 'current')
  for (const { el } of trEls) el.classList.remove('taken')
  if (!current) return
  const parts = current.split('.')
  for (let i = 1; i <= parts.length; i++) {
    const el = stateEls.get(parts.slice(0, i).join('.'))
    if (el) el.classList.add(i === parts.length ? 'current' : 'active')
  }
  if (last && last.from) {
    const from = last.from.split('.')
    outer: for (let i = from.length; i >= 1; i--) {
      const p = from.slice(0, i).join('.')
      for (const tr of trEls) {
        if (tr.from !== p || tr.t.eventType !== last.event) continue
        if (tr.t.targets.some((x) => last.to === x || last.to.startsWith(`${x}.`))) {
          tr.el.classList.add('taken')
          break outer
        }
      }
    }
  }
  const cur = stateEls.get(current)
  if (cur) scrollIntoViewIfNeeded(cur, $('#chart'))
}

function scrollIntoViewIfNeeded(el, container) {
  const r = el.getBoundingClientRect()
  const c = container.getBoundingClientRect()
  if (r.top < c.top || r.bottom > c.bottom || r.left < c.left || r.right > c.right) {
    el.scrollIntoView({ block: 'nearest', inline: 'nearest' })
  }
}

// ---------- loop list ----------

function processLine(l) {
  if (l.live) return h('span', { class: 'dot-live', title: 'inspection events arrive from its engine' }, '● live')
  if (l.owner) return `run by pid ${l.owner}`
  if (['completed', 'cancelled', 'errored', 'stalled'].includes(l.status)) return 'ended'
  if (!l.sources.store) return 'inspector only'
  return 'no process (resumable)'
}

function renderLoops() {
  const list = $('#loop-list')
  list.textContent = ''
  $('#loop-count').textContent = state.loops.length ? `(${state.loops.length})` : ''
  $('#no-loops').hidden = state.loops.length > 0
  for (const l of state.loops) {
    const section = l.section ? ` · §${l.section.index}/${l.section.count}` : ''
    list.append(
      h(
        'li',
        {
          class: l.name === state.selected ? 'selected' : '',
          'data-name': l.name,
          'data-status': l.status,
          title: l.title,
          onclick: () => select(l.name),
        },
        h('div', { class: 'loop-name' }, h('span', {}, l.name), h('span', { class: `badge st-${l.status}` }, l.status)),
        h('div', { class: 'loop-line' }, `${l.phase} · it ${l.iteration}${section} · ${shortState(l.state)}`),
        h('div', { class: 'loop-line' }, `${fmtTokens(l.tokens)} tokens · ${fmtCost(l.costUsd)} · ${fmtMs(l.elapsedMs)} · `, processLine(l)),
      ),
    )
  }
}

// ---------- selected loop ----------

function select(name) {
  if (state.selected === name) return
  state.selected = name
  state.loop = null
  state.history = []
  state.stream = []
  state.at = null
  state.snapshots.clear()
  history.replaceState(null, '', name ? `#loop=${encodeURIComponent(name)}` : '#')
  renderLoops()
  renderAll()
  if (state.ws && state.connected) state.ws.send(JSON.stringify({ type: 'select', name }))
  else if (name) loadSelected(name)
}

/** Without a live connection: plain fetches. */
async function loadSelected(name) {
  try {
    const [loop, hist] = await Promise.all([getJson(`/api/loops/${name}`), getJson(`/api/loops/${name}/history`)])
    if (state.selected !== name) return
    state.loop = loop
    state.history = hist
    renderAll()
  } catch {
    // the live connection will bring it
  }
}

function snapEntries() {
  return state.history.filter((e) => e.snapshot)
}

function renderAll() {
  renderHead()
  renderSlider()
  renderLog()
  renderStream()
  void renderContextAndChart()
}

function renderHead() {
  const head = $('#loop-head')
  head.textContent = ''
  const l = state.loop?.summary
  if (!l) {
    head.append(h('p', { class: 'empty' }, state.selected ? `Loading ${state.selected}…` : 'Select a loop.'))
    return
  }
  const section = l.section ? `section ${l.section.index}/${l.section.count}` : null
  head.append(
    h(
      'h2',
      {},
      h('span', { id: 'loop-title' }, l.name),
      h('span', { class: `badge st-${l.status}`, id: 'loop-status' }, l.status),
      l.reason && l.reason !== l.status ? h('span', { class: 'badge' }, l.reason) : null,
      h('span', { class: 'state-now', id: 'state-now', title: 'the statechart state' }, l.state),
    ),
    h(
      'div',
      { class: 'sub' },
      h('span', {}, l.title),
      h('span', {}, `${l.kind} · phase ${l.phase} · iteration ${l.iteration}${section ? ` · ${section}` : ''}`),
      h('span', {}, `${fmtTokens(l.tokens)} tokens · ${fmtCost(l.costUsd)} · ${fmtMs(l.elapsedMs)}`),
      h('span', {}, processLine(l)),
    ),
  )
}

function renderSlider() {
  const snaps = snapEntries()
  const tl = $('#timeline')
  tl.hidden = !state.selected
  const slider = $('#slider')
  slider.max = String(snaps.length)
  const idx = state.at === null ? snaps.length : Math.max(0, snaps.findIndex((e) => e.seq === state.at))
  slider.value = String(idx)
  slider.disabled = snaps.length === 0
  const label = $('#slider-label')
  const btn = $('#live-btn')
  if (state.at === null) {
    label.textContent = snaps.length ? `live · ${snaps.length} snapshots in the history` : 'live · no snapshots yet'
    btn.classList.add('on')
  } else {
    const e = snaps[idx]
    label.textContent = `#${e.seq} · ${fmtTime(e.at)} · ${e.event} → ${shortState(e.to)} (snapshot ${idx + 1}/${snaps.length})`
    btn.classList.remove('on')
  }
  document.body.classList.toggle('past', state.at !== null)
}

function renderLog() {
  const body = $('#event-log tbody')
  const before = new Set([...body.querySelectorAll('tr')].map((tr) => tr.dataset.seq))
  body.textContent = ''
  $('#log-count').textContent = state.history.length ? `(${state.history.length})` : ''
  for (let i = state.history.length - 1; i >= 0; i--) {
    const e = state.history[i]
    const classes = []
    if (e.snapshot) classes.push('snap')
    if (state.at !== null && e.seq === state.at) classes.push('at')
    if (state.at !== null && e.seq > state.at) classes.push('future')
    if (before.size && !before.has(String(e.seq))) classes.push('fresh')
    body.append(
      h(
        'tr',
        {
          class: classes.join(' '),
          'data-seq': e.seq,
          title: `${e.from || '(start)'} → ${e.to}${e.snapshot ? '\nclick: show this snapshot' : ''}`,
          onclick: e.snapshot ? () => showAt(e.seq) : null,
        },
        h('td', {}, e.seq),
        h('td', { title: fmtTime(e.at) }, fmtTime(e.at).slice(0, 8)),
        h('td', {}, e.event),
        h('td', {}, `${e.from ? shortState(e.from) : '∅'} → ${shortState(e.to)}`),
        h('td', {}, e.iteration),
      ),
    )
  }
  const at = body.querySelector('tr.at')
  if (at) scrollIntoViewIfNeeded(at, $('#log-wrap'))
}

function renderStream() {
  const body = $('#stream-log tbody')
  body.textContent = ''
  $('#stream-count').textContent = state.stream.length ? `(${state.stream.length})` : ''
  $('#stream-empty').hidden = state.stream.length > 0
  for (let i = state.stream.length - 1; i >= 0; i--) {
    const e = state.stream[i]
    body.append(h('tr', {}, h('td', {}, fmtTime(new Date(e.at).toISOString())), h('td', {}, e.type), h('td', {}, `${e.source ? `${e.source} → ` : ''}${e.target}`)))
  }
}

async function showAt(seq) {
  state.at = seq
  renderSlider()
  renderLog()
  await renderContextAndChart()
}

async function renderContextAndChart() {
  const name = state.selected
  if (!state.chart || !name) {
    highlight(null)
    renderContext(null, false)
    return
  }
  document.body.classList.toggle('ended', ['completed', 'cancelled', 'errored', 'stalled'].includes(state.loop?.summary.status))
  if (state.at === null) {
    const cur = state.loop?.summary.state ?? null
    const last = state.history[state.history.length - 1]
    highlight(cur, last && last.to === cur ? last : null)
    renderContext(state.loop ? { ...state.loop.detail, children: state.loop.children } : null, false)
    return
  }
  const seq = state.at
  let snap = state.snapshots.get(seq)
  if (!snap) {
    try {
      snap = await getJson(`/api/loops/${name}/history/${seq}`)
      state.snapshots.set(seq, snap)
    } catch {
      return
    }
  }
  if (state.at !== seq || state.selected !== name) return
  const entry = state.history.find((e) => e.seq === seq)
  highlight(snap.state, entry)
  renderContext(snap.detail, true, entry)
}

function renderContext(d, past, entry) {
  const box = $('#context')
  const keep = box.scrollTop
  box.textContent = ''
  if (!d) {
    box.append(h('p', { class: 'empty' }, 'The loop\u2019s context shows here.'))
    return
  }
  if (past) box.append(h('div', { class: 'past-note' }, `Snapshot #${entry.seq} at ${fmtTime(entry.at)} — not the current state`))

  box.append(h('h3', {}, 'Loop'))
  const kv = h('dl', { class: 'kv' })
  const row = (k, v) => kv.append(h('dt', {}, k), h('dd', {}, v))
  row('state', h('code', {}, d.state))
  row('status', `${d.status}${d.reason ? ` (${d.reason})` : ''}`)
  row('iteration', `${d.iteration}${d.section ? ` · section ${d.section.index}/${d.section.count}` : ''}`)
  if (d.models) row('models', `coder ${d.models.coder.join(', ')} · auditor ${d.models.auditor.join(', ')}`)
  if (d.workspace) row('workspace', h('code', {}, d.workspace))
  if (d.error) row('error', `${d.error.code}: ${d.error.message}`)
  if (d.inbox && d.inbox.length) row('inbox', d.inbox.join(' / '))
  if (d.children && d.children.length) {
    const last = d.children[d.children.length - 1]
    row('sessions', `${d.children.length} session actor(s) seen live; last: ${last.name} (${last.status})`)
  }
  box.append(kv)

  if (d.usage) {
    box.append(h('h3', {}, 'Usage', h('span', {}, `${fmtTokens(d.usage.total.inputTokens + d.usage.total.outputTokens)} tokens · ${fmtCost(d.usage.total.costUsd)}`)))
    const t = h('table', { class: 'usage' }, h('thead', {}, h('tr', {}, h('th', {}, ''), h('th', {}, 'in'), h('th', {}, 'out'), h('th', {}, 'calls'), h('th', {}, 'time'), h('th', {}, 'cost'))))
    const tb = h('tbody')
    const line = (label, u) =>
      tb.append(h('tr', {}, h('td', {}, label), h('td', {}, fmtTokens(u.inputTokens)), h('td', {}, fmtTokens(u.outputTokens)), h('td', {}, u.calls), h('td', {}, fmtMs(u.durationMs)), h('td', {}, fmtCost(u.costUsd))))
    for (const role of ['coder', 'auditor']) if (d.usage.byRole[role]) line(role, d.usage.byRole[role])
    for (const [model, u] of Object.entries(d.usage.byModel)) line(model, u)
    for (const td of tb.querySelectorAll('td:first-child')) td.title = td.textContent
    t.append(tb)
    box.append(t)
  }

  if (d.sections && d.sections.length) {
    const done = d.sections.filter((s) => s.status === 'done').length
    box.append(h('h3', {}, 'Sections', h('span', {}, `${done}/${d.sections.length} done`)))
    const ul = h('ul', { class: 'sections', id: 'sections' })
    d.sections.forEach((s, i) => {
      const icon = s.status === 'done' ? '✓' : s.status === 'active' ? '▶' : '·'
      const head = h(
        'summary',
        {},
        h('span', { class: 'si' }, icon),
        h('span', { class: 'stitle', title: s.title }, `${i + 1}. ${s.title}`),
        h('span', { class: 'satt' }, s.attempts ? `${s.attempts} dirty` : ''),
      )
      const body = s.summary ? h('pre', { class: 'text' }, s.summary) : h('p', { class: 'empty' }, s.status === 'done' ? 'no summary' : s.status)
      ul.append(h('li', { class: s.status }, h('details', { open: s.status === 'active' ? true : null }, head, body)))
    })
    box.append(ul)
  }

  const findings = d.findings || []
  const open = findings.filter((f) => f.status === 'open').length
  box.append(h('h3', {}, 'Findings', h('span', {}, findings.length ? `${open} open / ${findings.length}` : 'none')))
  if (findings.length) {
    const ul = h('ul', { class: 'findings' })
    for (const f of findings) {
      ul.append(
        h(
          'li',
          { class: f.status },
          h('span', { class: `badge sev-${f.severity}` }, `${f.id} ${f.severity}`),
          ' ',
          h('span', { class: 'where' }, `${f.file}${f.line ? `:${f.line}` : ''}`),
          ' ',
          f.status === 'resolved' ? h('span', { class: 'badge' }, 'resolved') : null,
          f.recurring ? h('span', { class: 'badge st-errored' }, 'recurring') : null,
          h('div', {}, f.message),
        ),
      )
    }
    box.append(ul)
  }

  const a = d.lastAudit
  box.append(h('h3', {}, 'Last audit', h('span', {}, a ? `#${a.n} · ${a.phase}${a.section !== null ? ` · section ${a.section + 1}` : ''} · ${a.clean ? 'clean' : `${a.blocking} blocking`}` : 'none yet')))
  if (a) box.append(h('div', { style: null }, h('pre', { class: 'text', style: null }, a.text)))
  box.scrollTop = keep
}

// ---------- live connection ----------

function connect() {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/page`)
  state.ws = ws
  ws.onopen = () => {
    state.connected = true
    setConn(true)
    if (state.selected) ws.send(JSON.stringify({ type: 'select', name: state.selected }))
  }
  ws.onclose = () => {
    state.connected = false
    setConn(false)
    setTimeout(connect, 1000)
  }
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data)
    if (msg.type === 'server') {
      const engines = msg.engines === 1 ? '1 engine streaming' : `${msg.engines} engines streaming`
      $('#top-note').textContent = `data: ${msg.dataDir} · ${engines} · run loops with --inspect ${msg.inspectUrl}`
    } else if (msg.type === 'loops') {
      state.loops = msg.loops
      if (!state.selected && state.loops.length) {
        const want = decodeURIComponent((location.hash.match(/loop=([^&]+)/) || [])[1] || '')
        const pick = state.loops.find((l) => l.name === want) || state.loops.find((l) => l.status === 'running') || state.loops[state.loops.length - 1]
        select(pick.name)
        return
      }
      renderLoops()
    } else if (msg.type === 'loop' && msg.loop && msg.loop.summary.name === state.selected) {
      state.loop = msg.loop
      renderHead()
      if (state.at === null) void renderContextAndChart()
    } else if (msg.type === 'history' && msg.name === state.selected) {
      const lastSeq = state.history.length ? state.history[state.history.length - 1].seq : 0
      // a reset sent on selection may already hold entries that a later push repeats
      state.history = msg.reset ? msg.entries : state.history.concat(msg.entries.filter((e) => e.seq > lastSeq))
      if (msg.reset) state.snapshots.clear()
      renderSlider()
      renderLog()
      if (state.at === null) void renderContextAndChart()
    } else if (msg.type === 'stream' && msg.name === state.selected) {
      state.stream = msg.reset ? msg.events : state.stream.concat(msg.events).slice(-300)
      renderStream()
    }
  }
}

function setConn(on) {
  const el = $('#conn')
  el.textContent = on ? 'live' : 'disconnected: retrying'
  el.className = `conn ${on ? 'conn-on' : 'conn-off'}`
}

// ---------- controls ----------

function wire() {
  $('#slider').addEventListener('input', (e) => {
    const snaps = snapEntries()
    const i = Number(e.target.value)
    if (i >= snaps.length) {
      state.at = null
      $('#log-wrap').scrollTop = 0
      renderSlider()
      renderLog()
      void renderContextAndChart()
    } else void showAt(snaps[i].seq)
  })
  $('#live-btn').addEventListener('click', () => {
    state.at = null
    $('#log-wrap').scrollTop = 0 // the newest entries are on top
    renderSlider()
    renderLog()
    void renderContextAndChart()
  })
  for (const tab of document.querySelectorAll('.tab')) {
    tab.addEventListener('click', () => {
      state.tab = tab.dataset.tab
      for (const t of document.querySelectorAll('.tab')) t.classList.toggle('tab-on', t === tab)
      $('#log-wrap').hidden = state.tab !== 'log'
      $('#stream-wrap').hidden = state.tab !== 'stream'
    })
  }
}

async function main() {
  wire()
  renderAll()
  try {
    state.chart = await getJson('/api/chart')
    renderChart()
    void renderContextAndChart()
  } catch (err) {
    $('#chart').textContent = `Could not load the statechart: ${err.message}`
  }
  connect()
}

main()
