// The loop list and the selection of a loop. The server sends the loops in their
// order (those some process runs first, then newest first); the filter box keeps
// those whose name, status or title has every word typed. Items are kept by name
// and redrawn only when what they show changed (a click always lands). The selected
// loop's item shows the payload the header and panels show (one source).
import { $, getJson, h } from './dom.js'
import { fmtCost, fmtMs, fmtTokens, processLine, shortState, statusBadge, statusOf } from './format.js'
import { renderAll } from './loop.js'
import { resetEvents } from './events.js'
import { loopChanged, resetPanels } from './panels.js'
import { state } from './state.js'

const items = new Map() // name -> { li, sig }
let filter = ''

/** Wires the filter box. */
export function initLoops() {
  const box = $('#loop-filter')
  if (!box) return
  box.addEventListener('input', () => {
    filter = box.value
    renderLoops()
  })
}

/** Whether loop `l` matches every word of the filter (name, status as shown, record status, title). */
export function matches(l, text = filter) {
  const words = text.toLowerCase().split(/\s+/).filter(Boolean)
  if (words.length === 0) return true
  const hay = `${l.name} ${statusOf(l).label} ${l.status} ${l.title ?? ''}`.toLowerCase()
  return words.every((w) => hay.includes(w))
}

/** The loop as the page shows it: the selected one from its payload (what the header shows). */
function shownLoop(l) {
  const p = state.loop
  return p && l.name === state.selected && p.summary.name === l.name ? p.summary : l
}

export function renderLoops() {
  const list = $('#loop-list')
  const loops = state.loops.map(shownLoop)
  const visible = loops.filter((l) => matches(l))
  $('#loop-count').textContent = state.loops.length
    ? visible.length === loops.length
      ? `(${loops.length})`
      : `(${visible.length}/${loops.length})`
    : ''
  $('#no-loops').hidden = state.loops.length > 0
  const noMatch = $('#no-match')
  if (noMatch) noMatch.hidden = state.loops.length === 0 || visible.length > 0
  const wanted = new Set()
  let ref = list.firstChild
  for (const l of visible) {
    wanted.add(l.name)
    const section = l.section ? ` · §${l.section.index}/${l.section.count}` : ''
    const selected = l.name === state.selected
    const sig = JSON.stringify([l.status, l.run, l.live, l.owner, l.reason, l.phase, l.iteration, section, l.state, l.tokens, l.costUsd, l.elapsedMs, l.title, selected, l.sources])
    let item = items.get(l.name)
    if (!item) {
      const li = h('li', { 'data-name': l.name, onclick: () => select(l.name) })
      item = { li, sig: null }
      items.set(l.name, item)
    }
    if (item.sig !== sig) {
      item.sig = sig
      const li = item.li
      li.className = selected ? 'selected' : ''
      li.dataset.status = statusOf(l).label
      li.dataset.run = l.run ?? ''
      li.title = l.title
      li.replaceChildren(
        h('div', { class: 'loop-name' }, h('span', { class: 'name' }, l.name), statusBadge(l)),
        h('div', { class: 'loop-line' }, `${l.phase} · it ${l.iteration}${section} · ${shortState(l.state)}`),
        h('div', { class: 'loop-line' }, `${fmtTokens(l.tokens)} tokens · ${fmtCost(l.costUsd)} · ${fmtMs(l.elapsedMs)} · `, processLine(l)),
      )
    }
    if (item.li !== ref) list.insertBefore(item.li, ref)
    else ref = ref.nextSibling
  }
  for (const [name, item] of items) {
    if (wanted.has(name)) continue
    item.li.remove()
    items.delete(name)
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
  resetEvents()
  resetPanels()
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
    loopChanged()
  } catch {
    // the live connection will bring it
  }
}
