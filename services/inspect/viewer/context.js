// The context panel: a loop's detail (live, or of a past snapshot), as text. It is
// drawn from one detail object (the payload the header shows too); the sections a
// user opened or closed stay so across updates.
import { $, h } from './dom.js'
import { fmtCost, fmtMs, fmtTime, fmtTokens, statusOf } from './format.js'

/** Sections the user folded or unfolded: `loop|index` -> open. */
const folded = new Map()
let foldedLoop = null

export function renderContext(d, past, entry) {
  const box = $('#context')
  const keep = box.scrollTop
  box.textContent = ''
  if (d && d.name !== foldedLoop) {
    folded.clear()
    foldedLoop = d.name
  }
  if (!d) {
    box.append(h('p', { class: 'empty' }, 'The loop\u2019s context shows here.'))
    return
  }
  if (past) box.append(h('div', { class: 'past-note' }, `Snapshot #${entry.seq} at ${fmtTime(entry.at)} — not the current state`))

  box.append(h('h3', {}, 'Loop'))
  const kv = h('dl', { class: 'kv' })
  const row = (k, v) => kv.append(h('dt', {}, k), h('dd', {}, v))
  row('state', h('code', {}, d.state))
  // the status the list and the header show (a snapshot's is the one it had)
  const status = past ? d.status : statusOf(d).label
  row('status', `${status}${d.reason && d.reason !== d.status ? ` (${d.reason})` : ''}`)
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
    box.append(h('h3', {}, 'Usage', h('span', { id: 'usage-tokens' }, `${fmtTokens(d.usage.total.inputTokens + d.usage.total.outputTokens)} tokens · ${fmtCost(d.usage.total.costUsd)}`)))
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
      const byDefault = s.status === 'active'
      const open = folded.has(i) ? folded.get(i) : byDefault
      const details = h('details', { open: open ? true : null }, head, body)
      // (a details made open fires a toggle too: only a change from the default is kept)
      details.addEventListener('toggle', () => (details.open === byDefault ? folded.delete(i) : folded.set(i, details.open)))
      ul.append(h('li', { class: s.status }, details))
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
