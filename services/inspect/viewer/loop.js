// The selected loop: its header, the history slider, the transition log, the
// inspector stream, and the chart and context at the live state or a past snapshot.
import { highlight } from './chart.js'
import { renderContext } from './context.js'
import { $, getJson, h, scrollIntoViewIfNeeded } from './dom.js'
import { fmtCost, fmtMs, fmtTime, fmtTokens, processLine, shortState } from './format.js'
import { state } from './state.js'

export function snapEntries() {
  return state.history.filter((e) => e.snapshot)
}

export function renderAll() {
  renderHead()
  renderSlider()
  renderLog()
  renderStream()
  void renderContextAndChart()
}

export function renderHead() {
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

export function renderSlider() {
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

export function renderLog() {
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

export function renderStream() {
  const body = $('#stream-log tbody')
  body.textContent = ''
  $('#stream-count').textContent = state.stream.length ? `(${state.stream.length})` : ''
  $('#stream-empty').hidden = state.stream.length > 0
  for (let i = state.stream.length - 1; i >= 0; i--) {
    const e = state.stream[i]
    body.append(h('tr', {}, h('td', {}, fmtTime(new Date(e.at).toISOString())), h('td', {}, e.type), h('td', {}, `${e.source ? `${e.source} → ` : ''}${e.target}`)))
  }
}

export async function showAt(seq) {
  state.at = seq
  renderSlider()
  renderLog()
  await renderContextAndChart()
}

export async function renderContextAndChart() {
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

