// How the page writes numbers, times, states, a loop's status and who runs it.
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

const FINAL = ['completed', 'cancelled', 'errored', 'stalled']

/** Who runs the loop, as the server decided it (a LoopSummary's `run`; derived for an older server). */
export function runOf(l) {
  if (l.run) return l.run
  if (FINAL.includes(l.status)) return 'ended'
  return l.live ? 'live' : l.owner ? 'owned' : 'none'
}

/**
 * The one status a loop shows (the list and the header alike): its record's, except a
 * loop whose record says running while no process runs it, which is `interrupted`.
 */
export function statusOf(l) {
  if (l.status === 'running' && runOf(l) === 'none') {
    return {
      label: 'interrupted',
      cls: 'st-interrupted',
      title: l.sources?.store === false ? 'its engine went away while it ran' : 'its record says running, but no process runs it: it resumes where it stopped',
    }
  }
  return { label: l.status, cls: `st-${l.status}`, title: l.reason && l.reason !== l.status ? `${l.status} (${l.reason})` : l.status }
}

/** The status badge of a loop. */
export function statusBadge(l, attrs = {}) {
  const s = statusOf(l)
  return h('span', { class: `badge status ${s.cls}`, title: s.title, 'data-status': s.label, ...attrs }, s.label)
}

/** Who runs the loop (a LoopSummary), for the list and the header. */
export function processLine(l) {
  const run = runOf(l)
  if (run === 'live') return h('span', { class: 'dot-live', title: 'inspection events arrive from its engine' }, '● live')
  if (run === 'owned') return `run by pid ${l.owner}`
  if (run === 'ended') return 'ended'
  if (l.sources && !l.sources.store) return 'engine disconnected'
  return 'no process (resumable)'
}
