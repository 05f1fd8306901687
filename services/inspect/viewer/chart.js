// The statechart panel: the machine's states and transitions (GET /api/chart), and
// the highlight of the current state and of the transition just taken.
import { $, h, scrollIntoViewIfNeeded } from './dom.js'
import { state } from './state.js'

const stateEls = new Map() // path -> element
const trEls = [] // { el, from: state path, t }

export function renderChart() {
  const root = state.chart
  const box = $('#chart')
  box.textContent = ''
  stateEls.clear()
  trEls.length = 0
  box.append(
    h(
      'div',
      { class: 'chart-legend' },
      h('span', {}, h('b', {}, '▸'), ' initial'),
      h('span', {}, h('b', {}, 'double border'), ' final'),
      h('span', {}, h('b', { class: 'ev' }, 'event'), ' ', h('span', { class: 'guard' }, '[guard]'), ' → target'),
      h('span', {}, h('b', {}, '⟲'), ' re-enters itself'),
      h('span', {}, h('span', { class: 'reason' }, 'reason'), ' the final reason it sets'),
    ),
  )
  box.append(renderState(root, null))
}

function targetLabel(from, target) {
  if (target === from) return '⟲'
  if (target === '') return 'loop'
  const parts = target.split('.')
  const last = parts[parts.length - 1]
  return last === 'watching' ? parts.slice(-2).join('.') : last
}

/** A state whose transitions are all eventless is a choice: the first matching guard wins. */
const isChoice = (s) => s.transitions.length > 1 && s.transitions.every((t) => t.kind === 'always')

function renderTransitions(s) {
  const rows = []
  const ctxOnly = []
  const choice = isChoice(s)
  for (const t of s.transitions) {
    if (t.targets.length === 0) {
      ctxOnly.push(t.label)
      continue
    }
    const title = `${t.label}${t.guard ? ` [${t.guard}]` : ''} → ${t.targets.join(', ')}${t.reenter ? ' (re-enters)' : ''}${t.actions.length ? `\nactions: ${t.actions.join(', ')}` : ''}`
    const el = h(
      'div',
      { class: `tr k-${t.kind}`, title },
      choice ? null : h('span', { class: 'ev' }, t.label),
      t.guard ? h('span', { class: 'guard' }, `[${t.guard}]`) : choice ? h('span', { class: 'guard' }, '[else]') : null,
      h(
        'span',
        { class: 'to' },
        h('span', { class: 'arrow' }, '→ '),
        h('span', { class: 'tgt' }, t.targets.map((x) => targetLabel(s.path, x)).join(', ')),
        t.reason ? h('span', { class: 'reason' }, t.reason) : null,
      ),
    )
    trEls.push({ el, from: s.path, t })
    rows.push(el)
  }
  if (ctxOnly.length) {
    rows.push(
      h(
        'div',
        { class: 'tr ctx-only', title: 'events handled here without leaving the state (they update the context)' },
        'context only: ',
        h('span', { class: 'ev' }, ctxOnly.join(' · ')),
      ),
    )
  }
  return rows.length ? h('div', { class: 'trs' }, rows) : null
}

function renderState(s, parent) {
  const isRoot = parent === null
  const classes = ['state', s.type]
  if (isRoot) classes.push('root')
  if (parent && parent.initial === s.path) classes.push('initial')
  if (s.type === 'final') classes.push(`end-${s.key}`)
  const inner = parent && parent.path !== '' && s.states.length === 0 && parent.states.length === 1
  if (inner) classes.push('inner')
  if (s.transitions.length > 8) classes.push('wide')
  const meta = []
  if (s.invoke.length) meta.push(`invokes ${s.invoke.join(', ')}`)
  if (s.type === 'final') meta.push('final')
  if (isChoice(s)) meta.push('choice')
  const el = h(
    'div',
    { class: classes.join(' '), 'data-path': s.path },
    h('div', { class: 'sh' }, h('span', { class: 'sk' }, s.key), h('span', { class: 'now' }, '● now'), meta.length ? h('span', { class: 'meta' }, meta.join(' · ')) : null),
    renderTransitions(s),
  )
  if (s.states.length) {
    if (isRoot) {
      // the small top-level states (paused and the final ones) in a row above the big one
      const big = s.states.filter((c) => c.states.length > 3)
      const small = s.states.filter((c) => c.states.length <= 3)
      el.append(h('div', { class: 'children' }, h('div', { class: 'top-row' }, small.map((c) => renderState(c, s))), big.map((c) => renderState(c, s))))
    } else if (s.states.length > 4) {
      el.append(h('div', { class: 'children flow' }, s.states.map((c) => renderState(c, s))))
    } else if (s.states.length === 1 && s.states[0].states.length === 0) {
      el.append(renderState(s.states[0], s))
    } else {
      el.append(h('div', { class: 'children' }, s.states.map((c) => renderState(c, s))))
    }
  }
  stateEls.set(s.path, el)
  return el
}

/** Highlights `current` (a state path) and its ancestors; marks the transition of `last` entry. */
export function highlight(current, last) {
  for (const el of stateEls.values()) el.classList.remove('active', 'current')
  for (const { el } of trEls) el.classList.remove('taken')
  if (!current) return
  const parts = current.split('.')
  for (let i = 1; i <= parts.length; i++) {
    const el = stateEls.get(parts.slice(0, i).join('.'))
    if (el) el.classList.add(i === parts.length ? 'current' : 'active')
  }
  if (last && last.from) {
    const from = last.from.split('.')
    outer: for (let i = from.length; i >= 1; i--) {
      const p = from.slice(0, i).join('.')
      for (const tr of trEls) {
        if (tr.from !== p || tr.t.eventType !== last.event) continue
        if (tr.t.targets.some((x) => last.to === x || last.to.startsWith(`${x}.`))) {
          tr.el.classList.add('taken')
          break outer
        }
      }
    }
  }
  const cur = stateEls.get(current)
  if (cur) scrollIntoViewIfNeeded(cur, $('#chart'))
}

