// The selected loop: its header, the history slider, the transition log, the
// inspector stream, and the chart and context at the live state or a past snapshot.
import { highlight } from './chart.js'
import { renderContext } from './context.js'
import { renderControls } from './controls.js'
import { $, getJson, h } from './dom.js'
import { renderStreamEvents, renderTransitions } from './events.js'
import { fmtCost, fmtMs, fmtTime, fmtTokens, processLine, shortState, statusBadge } from './format.js'
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
  renderControls(l ?? null)
  if (!l) {
    head.append(h('p', { class: 'empty' }, state.selected ? `Loading ${state.selected}…` : 'Select a loop.'))
    return
  }
  // One source per render: the live payload, or the snapshot the slider shows (never a mix).
  const snap = state.at !== null ? (state.snapshots.get(state.at) ?? null) : null
  head.classList.toggle('past', state.at !== null)
  if (state.at !== null && !snap) {
    head.append(h('p', { class: 'empty' }, `Loading snapshot #${state.at}…`))
    return
  }
  const v = snap ? { ...l, ...snap.summary, run: 'past' } : l
  const section = v.section ? `section ${v.section.index}/${v.section.count}` : null
  head.append(
    h(
      'h2',
      {},
      h('span', { id: 'loop-title' }, v.name),
      statusBadge(v, { id: 'loop-status' }),
      v.reason && v.reason !== v.status ? h('span', { class: 'reason-note', title: 'why it ended' }, v.reason) : null,
      h('span', { class: 'state-now', id: 'state-now', title: snap ? 'the statechart state at this snapshot' : 'the statechart state' }, v.state),
    ),
    h(
      'div',
      { class: 'sub' },
      h('span', {}, v.title),
      h('span', {}, `${v.kind} · phase ${v.phase} · iteration ${v.iteration}${section ? ` · ${section}` : ''}`),
      h('span', { id: 'head-usage' }, `${fmtTokens(v.tokens)} tokens · ${fmtCost(v.costUsd)} · ${fmtMs(v.elapsedMs)}`),
      snap
        ? h('span', { class: 'past-mark', id: 'head-past' }, `snapshot #${state.at} · ${fmtTime(v.updatedAt)}`)
        : h('span', { id: 'head-run' }, processLine(v)),
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
  renderTransitions()
}

export function renderStream() {
  renderStreamEvents()
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
    highlight(cur, state.loop?.detail ?? null, null)
    renderContext(state.loop ? { ...state.loop.detail, children: state.loop.children } : null, false)
    if ($('#loop-head').classList.contains('past')) renderHead() // back from a snapshot
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
  highlight(snap.state, snap.detail, seq)
  renderContext(snap.detail, true, entry)
  renderHead() // the header shows the snapshot too
}

