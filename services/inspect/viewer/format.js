// How the page writes numbers, times, states and who runs a loop.
import { h } from './dom.js'

export const fmtTokens = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : String(n))
export const fmtCost = (usd) => (usd > 0 ? `$${usd < 0.01 ? usd.toFixed(4) : usd.toFixed(2)}` : '$0')
export const fmtMs = (ms) => {
  if (ms < 1000) return `${Math.round(ms)}ms`
  const s = ms / 1000
  if (s < 60) return `${s.toFixed(1)}s`
  const m = Math.floor(s / 60)
  return m < 60 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`
}
export const fmtTime = (iso) => {
  const d = new Date(iso)
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`
}
/** `running.coding.watching` → `coding`; `completed` stays. */
export const shortState = (s) => (s || '—').replace(/^running\./, '').replace(/\.watching$/, '')

/** Who runs the loop (a LoopSummary), for the list and the header. */
export function processLine(l) {
  if (l.live) return h('span', { class: 'dot-live', title: 'inspection events arrive from its engine' }, '● live')
  if (l.owner) return `run by pid ${l.owner}`
  if (['completed', 'cancelled', 'errored', 'stalled'].includes(l.status)) return 'ended'
  if (!l.sources.store) return 'inspector only'
  return 'no process (resumable)'
}
