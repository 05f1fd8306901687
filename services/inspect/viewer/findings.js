// The Findings tab: each finding of the selected loop with its story as far as the
// history tells (GET /api/loops/<name>/findings, server/findings.ts): reported in
// which audit, resolved or reopened when, flagged recurring; what the history does
// not tell is said. Findings are kept by id: one that changed is redrawn alone, an
// open one stays open.
import { $, getJson, h } from './dom.js'
import { fmtTime } from './format.js'
import { state } from './state.js'

let shown = { name: null, items: new Map() } // id -> { el, sig }

export function resetFindings() {
  shown = { name: null, items: new Map() }
  const b = $('#findings-wrap')
  if (b) b.replaceChildren(h('p', { class: 'empty' }, 'Loading the findings…'))
}

export async function refreshFindings() {
  const name = state.selected
  if (!name) return
  const report = await getJson(`/api/loops/${encodeURIComponent(name)}/findings`)
  if (state.selected !== name) return
  if (shown.name !== name) resetFindings()
  shown.name = name
  const b = $('#findings-wrap')
  const open = report.findings.filter((s) => s.finding.status === 'open').length
  $('#findings-count').textContent = report.findings.length ? `(${open}/${report.findings.length})` : ''
  let note = b.querySelector(':scope > .findings-note')
  if (!note) {
    b.replaceChildren()
    note = h('p', { class: 'findings-note note' })
    b.append(note, h('ul', { class: 'finding-stories' }))
  }
  note.textContent =
    report.findings.length === 0
      ? 'No findings reported.'
      : `${open} open of ${report.findings.length}. ${
          report.since
            ? `Their story is read from the snapshots the history keeps (since #${report.since.seq}, ${fmtTime(report.since.at)}): a change is dated by the first snapshot that shows it.`
            : 'The history keeps no snapshot: only where they stand now is known.'
        }`
  const ul = b.querySelector(':scope > ul.finding-stories')
  const wanted = new Set()
  let ref = ul.firstChild
  for (const story of report.findings) {
    const id = story.finding.id
    wanted.add(id)
    const sig = JSON.stringify(story)
    let item = shown.items.get(id)
    if (!item || item.sig !== sig) {
      // open at first; then as the user left it
      const el = storyEl(story, item ? item.el.querySelector('details')?.open : true)
      if (item) item.el.replaceWith(el)
      item = { el, sig }
      shown.items.set(id, item)
    }
    if (item.el !== ref) ul.insertBefore(item.el, ref)
    else ref = ref.nextSibling
  }
  for (const [id, item] of shown.items) {
    if (wanted.has(id)) continue
    item.el.remove()
    shown.items.delete(id)
  }
}

const WHAT = {
  reported: 'reported',
  resolved: 'resolved',
  reopened: 'reopened',
  recurring: 'flagged recurring',
  gone: 'no longer listed',
}

function eventText(e, f) {
  const when = e.seq === null ? `by the current record (${fmtTime(e.at)})` : `seen at #${e.seq} (${fmtTime(e.at)})`
  const audit =
    e.what === 'reported'
      ? e.audit !== null
        ? `in audit ${e.audit}`
        : ''
      : f.check && (e.what === 'resolved' || e.what === 'reopened')
        ? `by check ${f.check}`
        : e.audit !== null
          ? `after audit ${e.audit}`
          : 'before any audit'
  return [WHAT[e.what], audit, when, `iteration ${e.iteration}`].filter(Boolean).join(' · ')
}

function storyEl(story, open) {
  const f = story.finding
  const where = `${f.file}${f.line ? `:${f.line}` : ''}`
  const section = f.section !== null && f.section !== undefined ? `section ${f.section + 1}` : null
  return h(
    'li',
    { class: `story ${f.status}`, 'data-id': f.id },
    h(
      'details',
      { open: open ? true : null },
      h(
        'summary',
        {},
        h('span', { class: `badge sev-${f.severity}` }, `${f.id} ${f.severity}`),
        ' ',
        h('span', { class: `badge ${f.status === 'open' ? 'st-running' : 'st-completed'}` }, f.status),
        f.recurring ? h('span', { class: 'badge st-errored' }, 'recurring') : null,
        ' ',
        h('span', { class: 'where' }, where),
        h('div', { class: 'msg-line' }, f.message),
      ),
      h(
        'ul',
        { class: 'story-events' },
        h(
          'li',
          { class: 'muted' },
          [`reported in audit ${f.reportedInAudit}`, section, f.check ? `owned by check ${f.check}` : 'by the auditor', `open through ${f.openAudits} audit${f.openAudits === 1 ? '' : 's'}`]
            .filter(Boolean)
            .join(' · '),
        ),
        story.events.map((e) => h('li', { class: `ev-${e.what}` }, eventText(e, f))),
        story.unknown.map((u) => h('li', { class: 'unknown' }, u)),
      ),
    ),
  )
}
