// DOM helpers of the page: element lookup and creation (text only, never HTML), fetches.

export const $ = (sel) => document.querySelector(sel)

/** Creates an element; children are nodes or text (never HTML). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue
    if (k === 'class') el.className = v
    else if (k === 'text') el.textContent = v
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v)
    else el.setAttribute(k, v === true ? '' : String(v))
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue
    el.append(c instanceof Node ? c : document.createTextNode(String(c)))
  }
  return el
}

export async function getJson(path) {
  const res = await fetch(path, { cache: 'no-store' })
  if (!res.ok) throw new Error(`${path}: ${res.status}`)
  return res.json()
}

export function scrollIntoViewIfNeeded(el, container) {
  const r = el.getBoundingClientRect()
  const c = container.getBoundingClientRect()
  if (r.top < c.top || r.bottom > c.bottom || r.left < c.left || r.right > c.right) {
    el.scrollIntoView({ block: 'nearest', inline: 'nearest' })
  }
}
