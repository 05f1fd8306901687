// The Diff tab: what the selected loop changed in its workspace (GET
// /api/loops/<name>/diff, services/workspace-diff.ts): the files, then each file's
// unified diff with added and removed lines marked. Text only, never HTML. Files are
// kept by path: one whose diff changed is redrawn alone, a folded one stays folded.
import { $, getJson, h } from './dom.js'
import { state } from './state.js'

let shown = { name: null, files: new Map() } // path -> { el, sig, listEl }

export function resetDiff() {
  shown = { name: null, files: new Map() }
  const b = $('#diff-wrap')
  if (b) b.replaceChildren(h('p', { class: 'empty' }, 'Loading the diff…'))
}

export async function refreshDiff() {
  const name = state.selected
  if (!name) return
  let diff
  try {
    diff = await getJson(`/api/loops/${encodeURIComponent(name)}/diff`)
  } catch (err) {
    if (state.selected !== name) return
    resetDiff()
    $('#diff-wrap').replaceChildren(h('p', { class: 'empty' }, `No diff: ${err.message === `/api/loops/${name}/diff: 404` ? 'the store of this viewer has no record of this loop, so its workspace is not known' : err.message}`))
    return
  }
  if (state.selected !== name) return
  if (shown.name !== name) resetDiff()
  shown.name = name
  const b = $('#diff-wrap')
  let head = b.querySelector(':scope > .diff-head')
  if (!head) {
    b.replaceChildren()
    head = h('div', { class: 'diff-head' })
    b.append(head, h('ul', { class: 'diff-files' }), h('div', { class: 'diff-patches' }))
  }
  const counts = { added: 0, modified: 0, deleted: 0, written: 0 }
  for (const f of diff.files) counts[f.status] = (counts[f.status] ?? 0) + 1
  const what = Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${k}`)
    .join(', ')
  head.replaceChildren(
    h(
      'div',
      { class: 'diff-title' },
      h('span', { class: 'badge', id: 'diff-kind' }, diff.kind === 'git' ? 'git' : 'files'),
      ' ',
      h('span', {}, diff.files.length ? what : 'no changes'),
    ),
    // what kind of diff it is and what it leaves out (services/workspace-diff.ts)
    diff.notes && diff.notes.length ? h('ul', { class: 'diff-notes' }, diff.notes.map((n) => h('li', {}, n))) : null,
  )
  $('#diff-count').textContent = diff.files.length ? `(${diff.files.length})` : ''
  const list = b.querySelector(':scope > .diff-files')
  const patches = b.querySelector(':scope > .diff-patches')
  const wanted = new Set()
  let ref = patches.firstChild
  let listRef = list.firstChild
  for (const f of diff.files) {
    wanted.add(f.path)
    const sig = `${f.status}\n${f.patch}`
    let item = shown.files.get(f.path)
    if (!item || item.sig !== sig) {
      const el = fileEl(f, item ? item.el.open : true)
      const listEl = h(
        'li',
        { class: `df-${f.status}` },
        h('span', { class: `badge df-badge df-${f.status}` }, f.status),
        ' ',
        h('a', { href: '#', 'data-path': f.path, onclick: (ev) => (ev.preventDefault(), el.scrollIntoView({ block: 'start' })) }, f.path),
      )
      if (item) {
        item.el.replaceWith(el)
        item.listEl.replaceWith(listEl)
      }
      item = { el, sig, listEl }
      shown.files.set(f.path, item)
    }
    if (item.el !== ref) patches.insertBefore(item.el, ref)
    else ref = ref.nextSibling
    if (item.listEl !== listRef) list.insertBefore(item.listEl, listRef)
    else listRef = listRef.nextSibling
  }
  for (const [path, item] of shown.files) {
    if (wanted.has(path)) continue
    item.el.remove()
    item.listEl.remove()
    shown.files.delete(path)
  }
}

/** One file's diff: its lines, each marked as added, removed, a hunk head or context. */
function fileEl(f, open) {
  const pre = h('pre', { class: 'diff' })
  for (const line of f.patch.split('\n')) {
    const cls = line.startsWith('+++') || line.startsWith('---') || line.startsWith('diff ') || line.startsWith('index ')
      ? 'dl-meta'
      : line.startsWith('@@')
        ? 'dl-hunk'
        : line.startsWith('+')
          ? 'dl-add'
          : line.startsWith('-')
            ? 'dl-del'
            : 'dl-ctx'
    pre.append(h('span', { class: `dl ${cls}` }, line), '\n')
  }
  return h(
    'details',
    { class: `diff-file df-${f.status}`, 'data-path': f.path, open: open ? true : null },
    h('summary', {}, h('span', { class: `badge df-badge df-${f.status}` }, f.status), ' ', h('code', {}, f.path)),
    f.patch ? pre : h('p', { class: 'note' }, 'No textual diff (binary, or empty).'),
  )
}
