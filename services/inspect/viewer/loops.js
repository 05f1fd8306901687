// The loop list and the selection of a loop.
import { $, getJson, h } from './dom.js'
import { fmtCost, fmtMs, fmtTokens, processLine, shortState } from './format.js'
import { renderAll } from './loop.js'
import { state } from './state.js'

export function renderLoops() {
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

export function select(name) {
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

