// The event tables of the selected loop: its transitions (the history) and its
// inspector stream, newest first. Both are kept row by row (table.js): a row clicked
// shows the event's payload, and stays selected while live updates arrive.
import { $, h } from './dom.js'
import { fmtTime, shortState } from './format.js'
import { showAt } from './loop.js'
import { state } from './state.js'
import { jsonBlock, KeyedRows } from './table.js'

const sectioned = () => state.loop?.summary.kind === 'sectioned'
const sectionText = (section, phase) => (phase === 'finalAuditing' ? 'final' : section === null || section === undefined ? '' : String(section))

let log = null
let stream = null
/** The snapshot whose row was last brought into view. */
let shownAt = null

function logTable() {
  log ??= new KeyedRows($('#event-log tbody'), {
    key: (e) => e.seq,
    sig: (e) => `${e.seq}|${e.at}|${e.event}|${e.from}|${e.to}|${e.iteration}|${e.section ?? ''}|${e.phase}|${e.snapshot}`,
    cells: (e) => [
      h('td', {}, e.seq),
      h('td', { title: fmtTime(e.at) }, fmtTime(e.at).slice(0, 8)),
      h('td', { title: e.event }, e.event),
      h('td', {}, `${e.from ? shortState(e.from) : '∅'} → ${shortState(e.to)}`),
      h('td', {}, e.iteration),
      h('td', { class: 'col-section' }, sectionText(e.section, e.phase)),
    ],
    classes: (e) => {
      const c = []
      if (e.snapshot) c.push('snap')
      if (state.at !== null && e.seq === state.at) c.push('at')
      if (state.at !== null && e.seq > state.at) c.push('future')
      return c
    },
    title: (e) => `${e.from || '(start)'} → ${e.to}\nclick: the event's details${e.snapshot ? ' and its snapshot' : ''}`,
    columns: () => 6,
    detail: (e) => {
      const { payload, ...entry } = e
      const box = h('div', { class: 'event-detail' })
      if (e.snapshot) {
        box.append(
          h('button', { type: 'button', class: 'show-snap', onclick: () => void showAt(e.seq) }, `Show snapshot #${e.seq}`),
        )
      }
      box.append(h('div', { class: 'detail-label' }, 'transition'), jsonBlock(entry))
      if (payload !== undefined && payload !== null) box.append(h('div', { class: 'detail-label' }, 'event'), jsonBlock(payload))
      else {
        box.append(
          h(
            'p',
            { class: 'note' },
            "The store's history keeps the event's type, not its payload. Run the loop with --inspect pointed at this viewer to see every event with its payload (Inspector stream).",
          ),
        )
      }
      return box
    },
  })
  return log
}

function streamTable() {
  stream ??= new KeyedRows($('#stream-log tbody'), {
    key: (e) => e.seq,
    sig: (e) => `${e.seq}`,
    cells: (e) => [
      h('td', {}, fmtTime(new Date(e.at).toISOString())),
      h('td', { title: e.type }, e.type),
      h('td', {}, `${e.source ? `${e.source} → ` : ''}${e.target}`),
      h('td', { class: 'col-section' }, e.section === null || e.section === undefined ? '' : String(e.section)),
    ],
    title: () => "click: the event's payload",
    columns: () => 4,
    detail: (e) =>
      h(
        'div',
        { class: 'event-detail' },
        h('div', { class: 'detail-label' }, `${e.type} · ${e.source ? `from ${e.source} ` : ''}to ${e.target}`),
        e.payload === null || e.payload === undefined ? h('p', { class: 'note' }, 'No payload.') : jsonBlock(e.payload),
      ),
  })
  return stream
}

/** The transitions table, in step with `state.history` (newest first). */
export function renderTransitions() {
  $('#event-log').classList.toggle('sectioned', sectioned())
  $('#log-count').textContent = state.history.length ? `(${state.history.length})` : ''
  logTable().sync([...state.history].reverse())
  // the row of the snapshot shown is brought into view when the slider moves (not on every update)
  if (state.at === shownAt) return
  shownAt = state.at
  const at = $('#event-log tbody tr.at')
  if (at) {
    const wrap = $('#log-wrap')
    const r = at.getBoundingClientRect()
    const c = wrap.getBoundingClientRect()
    if (r.top < c.top || r.bottom > c.bottom) at.scrollIntoView({ block: 'nearest' })
  }
}

/** The inspector stream table, in step with `state.stream` (newest first). */
export function renderStreamEvents() {
  $('#stream-log').classList.toggle('sectioned', sectioned())
  $('#stream-count').textContent = state.stream.length ? `(${state.stream.length})` : ''
  $('#stream-empty').hidden = state.stream.length > 0
  streamTable().sync([...state.stream].reverse())
}

/** Another loop: the tables start over. */
export function resetEvents() {
  shownAt = null
  log?.clear()
  stream?.clear()
}
