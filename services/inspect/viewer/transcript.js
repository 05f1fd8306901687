// The Transcript tab: each session of the selected loop, from the journal the store
// keeps (GET /api/loops/<name>/transcript): its role, phase, iteration and section,
// its messages with their tool calls and results, and the checks run after it.
// Sessions and long messages fold; what arrives is appended, nothing is redrawn.
import { $, getJson, h } from './dom.js'
import { fmtTime } from './format.js'
import { state } from './state.js'

let shown = { name: null, sessions: new Map() } // id -> { el, body, msgs: [{ el, sig }], checksEl, checksSig, headSig }

function box() {
  return $('#transcript-wrap')
}

/** Forgets what is shown (another loop). */
export function resetTranscript() {
  shown = { name: null, sessions: new Map() }
  const b = box()
  if (b) b.replaceChildren(h('p', { class: 'empty' }, 'Loading the transcript…'))
}

/** Fetches the sessions of the selected loop from the last one shown (it may have grown) and shows them. */
export async function refreshTranscript() {
  const name = state.selected
  if (!name) return
  const ids = [...shown.sessions.keys()]
  const from = shown.name === name && ids.length ? Math.max(...ids) : 0
  const report = await getJson(`/api/loops/${encodeURIComponent(name)}/transcript${from ? `?from=${from}` : ''}`)
  if (state.selected !== name) return
  if (shown.name !== name) resetTranscript()
  shown.name = name
  const b = box()
  b.querySelector(':scope > .empty')?.remove()
  if (report.source === 'none') {
    b.replaceChildren(
      h(
        'p',
        { class: 'empty' },
        'No transcripts: this loop is known only from inspection events (the store of this viewer has no record of it). Its sessions show as events in the Inspector stream.',
      ),
    )
    return
  }
  if (report.sessions.length === 0 && shown.sessions.size === 0) {
    b.replaceChildren(h('p', { class: 'empty' }, 'No session transcripts on file yet.'))
    return
  }
  b.querySelector(':scope > .empty')?.remove()
  const newest = report.sessions.length ? report.sessions[report.sessions.length - 1].id : null
  for (const s of report.sessions) showSession(b, s, s.id === newest && shown.sessions.size === 0)
  $('#transcript-count').textContent = shown.sessions.size ? `(${shown.sessions.size})` : ''
}

function sectionOf(head) {
  return state.loop?.summary.kind === 'sectioned' && head.phase !== 'finalAuditing' ? ` · section ${head.section + 1}` : ''
}

function headText(s) {
  const hd = s.head
  const where = hd ? `${hd.role} · ${hd.phase} · iteration ${hd.iteration}${sectionOf(hd)} · ${fmtTime(hd.at)}` : 'no head on file'
  return { where, count: `${s.messages.length} message${s.messages.length === 1 ? '' : 's'}` }
}

function showSession(b, s, openIt) {
  let rec = shown.sessions.get(s.id)
  if (!rec) {
    const body = h('ol', { class: 'messages' })
    const el = h('details', { class: `session role-${s.head?.role ?? 'none'}`, 'data-session': s.id, open: openIt ? true : null }, h('summary'), body)
    rec = { el, body, msgs: [], checksEl: null, checksSig: null, headSig: null }
    shown.sessions.set(s.id, rec)
    // sessions in order of their number
    const after = [...b.querySelectorAll(':scope > details.session')].find((d) => Number(d.dataset.session) > s.id)
    b.insertBefore(el, after ?? null)
  }
  const { where, count } = headText(s)
  const headSig = `${where}|${count}`
  if (headSig !== rec.headSig) {
    rec.headSig = headSig
    rec.el.querySelector(':scope > summary').replaceChildren(
      h('b', {}, `#${s.id}`),
      ' ',
      h('span', { class: `badge role role-${s.head?.role ?? 'none'}` }, s.head?.role ?? '?'),
      ' ',
      h('span', { class: 'where' }, where),
      ' ',
      h('span', { class: 'muted' }, count),
    )
  }
  s.messages.forEach((m, i) => {
    const sig = JSON.stringify(m)
    const had = rec.msgs[i]
    if (had && had.sig === sig) return
    const el = messageEl(m, i)
    if (had) had.el.replaceWith(el)
    else rec.body.append(el)
    rec.msgs[i] = { el, sig }
  })
  // a shortened transcript has fewer messages
  while (rec.msgs.length > s.messages.length) rec.msgs.pop().el.remove()
  const checksSig = JSON.stringify(s.checks ?? [])
  if (checksSig !== rec.checksSig) {
    rec.checksSig = checksSig
    const el = checksEl(s.checks ?? [])
    if (rec.checksEl) rec.checksEl.replaceWith(el)
    else rec.el.append(el)
    rec.checksEl = el
  }
}

/** A text that folds when it is long: its first line shows. */
function foldable(label, text, open) {
  const first = (text.split('\n').find((l) => l.trim() !== '') ?? '').slice(0, 140)
  return h(
    'details',
    { class: 'fold', open: open ? true : null },
    h('summary', {}, h('span', { class: 'who' }, label), ' ', h('span', { class: 'first' }, first), h('span', { class: 'muted' }, ` · ${text.length} chars`)),
    h('pre', { class: 'text' }, text),
  )
}

function messageEl(m, i) {
  const li = h('li', { class: `msg msg-${m.role}`, 'data-index': i })
  if (m.role === 'system') li.append(foldable('system', m.content, false))
  else if (m.role === 'user') li.append(foldable('user', m.content, m.content.length <= 400))
  else if (m.role === 'tool') li.append(foldable(`← ${m.toolName}`, m.content, m.content.length <= 200))
  else {
    const calls = m.toolCalls ?? []
    if (m.content.trim() !== '' && !m.fromText) li.append(h('div', { class: 'who' }, 'assistant'), h('pre', { class: 'text' }, m.content))
    else if (calls.length === 0) li.append(h('div', { class: 'who' }, 'assistant'), h('p', { class: 'note' }, '(empty reply)'))
    for (const c of calls) {
      let args
      try {
        args = JSON.stringify(c.arguments, null, 2)
      } catch {
        args = String(c.arguments)
      }
      li.append(
        h(
          'div',
          { class: 'call' },
          h('div', { class: 'who' }, `→ ${c.name}`, m.fromText ? h('span', { class: 'muted' }, ' (written as text)') : null),
          c.argumentsError ? h('p', { class: 'note' }, `arguments not read: ${c.argumentsError}`) : null,
          args.length > 600 ? foldable('arguments', args, false) : h('pre', { class: 'text' }, args),
        ),
      )
    }
  }
  return li
}

function checksEl(runs) {
  const el = h('div', { class: 'checks' })
  for (const run of runs) {
    for (const c of run.results) {
      el.append(
        h(
          'div',
          { class: `check ${c.passed ? 'pass' : 'fail'}` },
          h('span', { class: `badge ${c.passed ? 'st-completed' : 'st-errored'}` }, c.passed ? 'passed' : 'fails'),
          ' ',
          h('b', {}, c.name),
          ' ',
          h('span', { class: 'muted' }, `${c.outcome}${run.at ? ` · ${fmtTime(run.at)}` : ''}`),
          !c.passed && c.tail.trim() ? h('pre', { class: 'text' }, c.tail) : null,
        ),
      )
    }
  }
  return el
}
