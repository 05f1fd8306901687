// A table body kept in step with a list of items, row by row: rows are keyed
// (a transition's seq, a stream event's seq), made once, updated only when what they
// show changed, and moved only when the order changed. A row clicked is selected and
// shows its details in a row under it; the selection stays while items arrive.
import { h } from './dom.js'

export class KeyedRows {
  /**
   * @param {HTMLElement} tbody
   * @param {{
   *   key: (item) => string,
   *   cells: (item) => Node[],        the row's cells (made again when `sig` changes)
   *   sig: (item) => string,          what the row shows, as a string
   *   classes?: (item) => string[],   classes besides `selected` and `fresh`
   *   title?: (item) => string,
   *   detail: (item) => Node,         the details of a selected row
   *   columns: () => number,
   *   onSelect?: (item | null) => void,
   * }} spec
   */
  constructor(tbody, spec) {
    this.tbody = tbody
    this.spec = spec
    this.rows = new Map() // key -> { tr, sig, cls, item, detail: tr | null, detailSig }
    this.selected = null
    this.filled = false
  }

  /** Shows `items` (in display order): new rows are added, changed ones updated, gone ones removed. */
  sync(items) {
    const { key, sig, classes, title } = this.spec
    const wanted = new Set()
    let ref = this.tbody.firstChild
    for (const item of items) {
      const k = String(key(item))
      wanted.add(k)
      let row = this.rows.get(k)
      if (!row) {
        const tr = h('tr', { 'data-key': k, tabindex: 0 })
        tr.addEventListener('click', (ev) => {
          if (ev.target.closest('button, a, summary, input')) return
          this.select(this.selected === k ? null : k)
        })
        tr.addEventListener('keydown', (ev) => {
          if (ev.target !== tr || (ev.key !== 'Enter' && ev.key !== ' ')) return
          ev.preventDefault()
          this.select(this.selected === k ? null : k)
        })
        row = { tr, sig: null, cls: null, item, detail: null, detailSig: null }
        this.rows.set(k, row)
        if (this.filled) {
          row.tr.classList.add('fresh')
          row.tr.addEventListener('animationend', () => row.tr.classList.remove('fresh'), { once: true })
        }
      }
      row.item = item
      const s = sig(item)
      if (s !== row.sig) {
        row.sig = s
        row.tr.replaceChildren(...this.spec.cells(item))
        if (title) row.tr.title = title(item)
      }
      const cls = [...(classes ? classes(item) : []), k === this.selected ? 'selected' : ''].filter(Boolean).join(' ')
      if (cls !== row.cls) {
        for (const c of (row.cls ?? '').split(' ')) if (c) row.tr.classList.remove(c)
        for (const c of cls.split(' ')) if (c) row.tr.classList.add(c)
        row.cls = cls
      }
      if (row.tr !== ref) this.tbody.insertBefore(row.tr, ref)
      else ref = ref.nextSibling
      if (k === this.selected) this.#showDetail(row)
      else if (row.detail) {
        row.detail.remove()
        row.detail = null
      }
      if (row.detail) {
        if (row.detail !== ref) this.tbody.insertBefore(row.detail, ref)
        else ref = ref.nextSibling
      }
    }
    for (const [k, row] of this.rows) {
      if (wanted.has(k)) continue
      row.tr.remove()
      row.detail?.remove()
      this.rows.delete(k)
      if (this.selected === k) this.selected = null
    }
    this.filled = items.length > 0
  }

  /** Selects the row of key `k` (null: none), showing its details. */
  select(k) {
    const before = this.selected !== null ? this.rows.get(this.selected) : null
    if (before) {
      before.tr.classList.remove('selected')
      before.cls = (before.cls ?? '').replace(/\bselected\b/, '').trim()
      before.detail?.remove()
      before.detail = null
    }
    this.selected = k !== null && this.rows.has(k) ? k : null
    const row = this.selected !== null ? this.rows.get(this.selected) : null
    if (row) {
      row.tr.classList.add('selected')
      row.cls = `${row.cls ?? ''} selected`.trim()
      this.#showDetail(row)
      if (row.tr.nextSibling !== row.detail) row.tr.after(row.detail)
    }
    this.spec.onSelect?.(row ? row.item : null)
  }

  /** Forgets every row (another loop). */
  clear() {
    this.tbody.textContent = ''
    this.rows.clear()
    this.selected = null
    this.filled = false
  }

  #showDetail(row) {
    // made again only when the row's content changed (an open <details> inside stays open otherwise)
    if (row.detail && row.detailSig === row.sig) return
    const td = h('td', { colspan: this.spec.columns() }, this.spec.detail(row.item))
    const tr = h('tr', { class: 'row-detail', 'data-detail-of': row.tr.dataset.key }, td)
    if (row.detail) row.detail.replaceWith(tr)
    row.detail = tr
    row.detailSig = row.sig
  }
}

/** `value` as indented JSON, in a <pre> (text only). */
export function jsonBlock(value, cls = 'payload') {
  let text
  try {
    text = JSON.stringify(value, null, 2)
  } catch {
    text = String(value)
  }
  return h('pre', { class: cls }, text ?? 'null')
}
