// The statechart panel: the chart (GET /api/chart) drawn as a graph (graph.js), the
// current state and the path the loop took marked on it (path.js), a toggle that
// shows the machine's internals (its choices, guards and internal events), and the
// section track of sectioned plans (sections.js). Each view is laid out and drawn
// once; an update only re-marks it.
import { $, h, scrollIntoViewIfNeeded } from './dom.js'
import { draw, layout, mark } from './graph.js'
import { indexView, marks } from './path.js'
import { renderSections } from './sections.js'
import { state } from './state.js'

/** Scale bounds of the fitted graph: below MIN_SCALE it scrolls instead. */
const MIN_SCALE = 0.6
const MAX_SCALE = 1.2

const views = new Map() // 'user' | 'internal' → { ix, drawn, pending }
let mode = 'user'
let fit = true
let shown = { current: null, detail: null, seq: null }
let lastCurrent = null
let resizeObserver = null
let keysWired = false

export function renderChart() {
  const box = $('#chart')
  box.textContent = ''
  views.clear()
  const toggle = h('input', { type: 'checkbox', id: 'show-internals', onchange: (e) => setMode(e.target.checked ? 'internal' : 'user') })
  toggle.checked = mode === 'internal'
  const zoom = h('button', { type: 'button', id: 'graph-zoom', class: 'graph-btn', title: 'Fit the graph to the panel, or show it at full size', onclick: () => setFit(!fit) }, fit ? '1:1' : 'Fit')
  const expand = h(
    'button',
    { type: 'button', id: 'graph-expand', class: 'graph-btn', 'aria-pressed': 'false', title: 'Show the graph over the whole window (Esc: back)', onclick: () => setExpanded(!document.body.classList.contains('graph-expanded')) },
    'Expand',
  )
  box.append(
    h(
      'div',
      { class: 'graph-bar' },
      h('label', { class: 'graph-toggle', title: 'Also draw the choices the machine passes through, every guard and the internal events' }, toggle, ' Show internals'),
      h(
        'span',
        { class: 'graph-legend' },
        h('span', { class: 'lg lg-current' }, 'current'),
        h('span', { class: 'lg lg-visited' }, 'visited'),
        h('span', { class: 'lg lg-taken' }, 'path taken (×n)'),
        h('span', { class: 'lg lg-last' }, 'last step'),
      ),
      zoom,
      expand,
    ),
    h('div', { id: 'graph-wrap', class: 'graph-wrap' }, h('p', { class: 'empty' }, 'Laying out the statechart…')),
  )
  if (!resizeObserver && typeof ResizeObserver === 'function') {
    resizeObserver = new ResizeObserver(() => fitGraph())
  }
  resizeObserver?.observe($('#graph-wrap'))
  if (!keysWired) {
    keysWired = true
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && document.body.classList.contains('graph-expanded')) setExpanded(false)
    })
  }
  void showView()
}

function setExpanded(on) {
  document.body.classList.toggle('graph-expanded', on)
  const b = $('#graph-expand')
  if (b) {
    b.textContent = on ? 'Close' : 'Expand'
    b.setAttribute('aria-pressed', String(on))
  }
  fitGraph()
}

function setMode(m) {
  mode = m
  void showView()
}

function setFit(on) {
  fit = on
  const b = $('#graph-zoom')
  if (b) b.textContent = fit ? '1:1' : 'Fit'
  fitGraph()
}

/** The view of the current mode: laid out and drawn on first use, then kept. */
async function showView() {
  const want = mode
  let v = views.get(want)
  if (!v) {
    v = { ix: indexView(state.chart.views[want]), drawn: null, pending: null }
    views.set(want, v)
  }
  const wrap = $('#graph-wrap')
  if (!v.drawn) {
    v.pending ??= layout(state.chart.views[want], want).then((laid) => draw(state.chart.views[want], laid, { title: 'Statechart', mode: want }))
    try {
      v.drawn = await v.pending
    } catch (err) {
      v.pending = null
      if (mode === want && wrap) {
        wrap.textContent = ''
        wrap.append(h('p', { class: 'empty' }, `Could not draw the statechart: ${err.message}`))
      }
      return
    }
  }
  if (mode !== want || !wrap) return
  wrap.textContent = ''
  wrap.append(v.drawn.svg)
  wrap.dataset.mode = want
  lastCurrent = null
  fitGraph()
  applyMarks()
}

function fitGraph() {
  const wrap = $('#graph-wrap')
  const svg = wrap?.querySelector('svg')
  if (!svg) return
  const w = Number(svg.dataset.width)
  const hgt = Number(svg.dataset.height)
  let scale = 1
  if (fit) {
    const availW = wrap.clientWidth - 4
    const availH = wrap.clientHeight - 4
    if (availW > 0 && availH > 0) scale = Math.max(MIN_SCALE, Math.min(MAX_SCALE, availW / w, availH / hgt))
  }
  svg.setAttribute('width', String(Math.round(w * scale)))
  svg.setAttribute('height', String(Math.round(hgt * scale)))
  svg.dataset.scale = scale.toFixed(3)
}

/**
 * Shows `current` (a state value) and the path taken up to history entry `seq` (null:
 * the live state, the whole history), and the sections of `detail`.
 */
export function highlight(current, detail = null, seq = null) {
  shown = { current: current ?? null, detail, seq }
  applyMarks()
  renderSections(current ? detail : null, seq !== null)
}

function applyMarks() {
  const v = views.get(mode)
  if (!v?.drawn) return
  const history = shown.current ? state.history : []
  const m = marks(v.ix, shown.current, history, shown.seq)
  const steps = [...m.taken.values()].reduce((a, b) => a + b, 0)
  const title = shown.current
    ? `Statechart of ${state.selected ?? 'the loop'}: ${shown.seq !== null ? `at snapshot #${shown.seq}, ` : ''}current state ${shown.current}; ${m.visited.size} states visited, ${steps} steps drawn on the path taken`
    : 'Statechart of the loop machine'
  mark(v.drawn, m, title, shown.current)
  if (m.current !== lastCurrent) {
    lastCurrent = m.current
    const el = m.current ? v.drawn.nodes.get(m.current) : null
    const wrap = $('#graph-wrap')
    // a graph larger than its panel: bring the current state into view
    if (el && wrap && (wrap.scrollHeight > wrap.clientHeight + 1 || wrap.scrollWidth > wrap.clientWidth + 1)) scrollIntoViewIfNeeded(el, wrap)
  }
}
