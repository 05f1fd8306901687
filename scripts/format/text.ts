/** The CLI's small text measures: durations, token counts, plurals, relative and local times, model names. */

/** `850ms`, `3.2s`, `1m05s`, `2h03m`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) ms = 0
  if (ms < 1_000) return `${Math.round(ms)}ms`
  if (ms < 60_000) return `${(Math.floor(ms / 100) / 10).toFixed(1)}s`
  const s = Math.floor(ms / 1_000)
  if (s < 3_600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3_600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`
}

/** `950`, `12.3k`, `4.5M`. */
export function formatTokens(n: number): string {
  if (n < 1_000) return String(n)
  if (n < 999_950) return `${(n / 1_000).toFixed(1)}k`
  return `${(n / 1_000_000).toFixed(1)}M`
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}

/** A time as `Date.parse` reads it (ISO), or epoch ms. */
export type Instant = string | number

const msOf = (t: Instant) => (typeof t === 'number' ? t : Date.parse(t))

/**
 * How long ago `at` was, as people say it: `just now`, `12 s ago`, `3 min ago`,
 * `5 h ago`, `2 days ago`; a week or more ago, the local date (`2025-03-01`).
 */
export function relativeTime(at: Instant, now = Date.now()): string {
  const t = msOf(at)
  if (!Number.isFinite(t)) return '-'
  const s = Math.floor((now - t) / 1_000)
  if (s < 1) return 'just now'
  if (s < 60) return `${s} s ago`
  if (s < 3_600) return `${Math.floor(s / 60)} min ago`
  if (s < 86_400) return `${Math.floor(s / 3_600)} h ago`
  const days = Math.floor(s / 86_400)
  if (days < 7) return `${plural(days, 'day')} ago`
  return localTime(t).slice(0, 10)
}

/** The local time `2025-03-01 14:03:05`. */
export function localTime(at: Instant): string {
  const d = new Date(msOf(at))
  if (!Number.isFinite(d.getTime())) return '-'
  const two = (n: number) => String(n).padStart(2, '0')
  return (
    `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ` +
    `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`
  )
}

/** How long until `at`: `in 4.0s`, `in 1m05s`, or `now` once it has passed. */
export function untilText(at: Instant, now = Date.now()): string {
  const left = msOf(at) - now
  if (!Number.isFinite(left) || left <= 0) return 'now'
  return `in ${formatDuration(left)}`
}

/** A model spec as people read it: `scripted:/a/b/flaky.json` → `flaky.json`; other specs as they are. */
export function modelName(spec: string): string {
  const m = /^scripted:(.*)$/.exec(spec)
  if (!m) return spec
  const file = m[1]!
  return file.slice(file.lastIndexOf('/') + 1) || spec
}
