// The section track of a sectioned plan: one numbered chip per section (its status
// and dirty audits), wrapping so that a long plan fits above the graph; hovering a
// chip tells its title and summary, selecting it shows them below the track. Live
// updates change the chips in place (a chip under the pointer or with the focus stays).
import { $, h } from './dom.js'
import { state } from './state.js'

let selected = null // { loop, index } of the section shown in detail
let built = null // { loop, count, chips, head, detail } of the chips drawn
let drawnKey = ''
let last = { detail: null, past: false }

const STATUS_WORD = { done: 'done', active: 'in progress', pending: 'pending' }
const audits = (n) => (n === 1 ? '1 dirty audit' : `${n} dirty audits`)

/** Shows the sections of `detail` (a loop's, or a past snapshot's when `past`); hides the track without. */
export function renderSections(detail, past) {
  last = { detail, past }
  const box = $('#section-track')
  if (!box) return
  const sections = detail?.sections ?? []
  if (sections.length === 0) {
    box.hidden = true
    box.textContent = ''
    built = null
    drawnKey = ''
    return
  }
  if (selected && (selected.loop !== state.selected || selected.index >= sections.length)) selected = null
  const sel = selected ? selected.index : null
  const key = JSON.stringify([state.selected, past, sel, sections])
  if (key === drawnKey) return
  drawnKey = key
  box.hidden = false
  if (!built || built.loop !== state.selected || built.count !== sections.length) build(box, sections.length)

  const done = sections.filter((s) => s.status === 'done').length
  const active = sections.findIndex((s) => s.status === 'active')
  built.progress.textContent = `${done}/${sections.length} done${active >= 0 ? ` · section ${active + 1} in progress` : ''}${past ? ' · at this snapshot' : ''}`
  sections.forEach((s, i) => updateChip(built.chips[i], s, i, sel === i))
  renderDetail(built.detail, sections, sel)
}

function build(box, count) {
  box.textContent = ''
  const progress = h('span', { class: 'muted', id: 'sec-progress' })
  const list = h('ol', { class: 'sec-chips', 'aria-label': `${count} sections` })
  const chips = []
  for (let i = 0; i < count; i++) {
    const chip = h(
      'button',
      { type: 'button', class: 'sec-chip', 'data-index': i + 1, onclick: () => choose(i) },
      h('span', { class: 'sec-n' }, i + 1),
      h('span', { class: 'sec-att', hidden: true }),
    )
    chips.push(chip)
    list.append(h('li', {}, chip))
  }
  const detail = h('div', { class: 'sec-detail', id: 'sec-detail', hidden: true })
  box.append(h('div', { class: 'sec-head' }, h('b', {}, 'Sections'), progress, h('span', { class: 'sec-hint muted' }, 'select a section for its summary')), list, detail)
  built = { loop: state.selected, count, chips, progress, detail }
}

function choose(i) {
  selected = selected && selected.index === i ? null : { loop: state.selected, index: i }
  renderSections(last.detail, last.past)
}

function updateChip(chip, s, i, pressed) {
  const status = STATUS_WORD[s.status] ?? s.status
  const summary = s.summary ? `\n\n${s.summary.length > 600 ? `${s.summary.slice(0, 600)}…` : s.summary}` : ''
  chip.className = `sec-chip sec-${s.status}`
  chip.dataset.status = s.status
  chip.dataset.attempts = String(s.attempts)
  chip.setAttribute('aria-pressed', String(pressed))
  chip.setAttribute('aria-label', `Section ${i + 1}: ${s.title}, ${status}${s.attempts ? `, ${audits(s.attempts)}` : ''}`)
  chip.title = `${i + 1}. ${s.title}\n${status}${s.attempts ? ` · ${audits(s.attempts)}` : ''}${summary}`
  const att = chip.querySelector('.sec-att')
  att.hidden = !s.attempts
  att.textContent = s.attempts ? String(s.attempts) : ''
}

function renderDetail(box, sections, sel) {
  box.textContent = ''
  box.hidden = sel === null
  if (sel === null) {
    delete box.dataset.index
    return
  }
  const s = sections[sel]
  box.dataset.index = String(sel + 1)
  box.append(
    h(
      'div',
      { class: 'sec-detail-head' },
      h('b', {}, `${sel + 1}/${sections.length} · ${s.title}`),
      h('span', { class: `badge sec-badge-${s.status}` }, STATUS_WORD[s.status] ?? s.status),
      h('span', { class: 'sec-attempts' }, s.attempts ? audits(s.attempts) : 'no dirty audit'),
    ),
    s.summary ? h('pre', { class: 'text sec-summary' }, s.summary) : h('p', { class: 'empty' }, s.status === 'done' ? 'No summary.' : 'No summary yet: the auditor writes one when the section is clean.'),
  )
}
