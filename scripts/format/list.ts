/** The `list` table (newest first, times ago) and its note on the loops no process runs. */
import type { LoopView } from '../../services/views.ts'
import { plain, type Style } from '../term.ts'
import { phaseLabel, sectionText } from './progress.ts'
import { fitTable, type Column, type FitStep } from './table.ts'
import { formatDuration, formatTokens, plural, relativeTime } from './text.ts'

/** The mark of a loop that is unfinished and that no process runs (`list`'s STATUS column). */
export const ORPHAN_MARK = '⚠'

/** Newest first (by creation, then name). */
export function newestFirst(views: LoopView[]): LoopView[] {
  return [...views].sort((a, b) => (a.createdAt === b.createdAt ? (a.name < b.name ? -1 : 1) : a.createdAt < b.createdAt ? 1 : -1))
}

/** Whether the view is of an unfinished loop that no process runs (`owner` as `list` sets it). */
export function orphaned(view: LoopView): boolean {
  return (view.status === 'running' || view.status === 'queued' || view.status === 'paused') && view.owner === null
}

export interface ListTableOptions {
  style?: Style
  width?: number
  now?: number
}

type Key = 'name' | 'status' | 'reason' | 'phase' | 'iter' | 'section' | 'tokens' | 'elapsed' | 'created' | 'title'

/**
 * The `list` table: name, status (marked when no process runs the loop), reason
 * (when it says more than the status), phase, iteration, section (of sectioned
 * loops), tokens, running time, when it was created, title. Too wide, it drops the
 * title, cuts long names and reasons, and drops the reason and section; status,
 * phase, iteration, tokens, time and creation are never cut.
 */
export function listTable(views: LoopView[], { style = plain, width = Infinity, now = Date.now() }: ListTableOptions = {}): string {
  const reasonOf = (v: LoopView) => (v.reason === null || v.reason === v.status ? '-' : v.reason)
  const all: { key: Key; column: Column; cell: (v: LoopView) => string }[] = [
    { key: 'name', column: { header: 'NAME', paint: (c) => style.bold(c) }, cell: (v) => v.name },
    {
      key: 'status',
      column: {
        header: 'STATUS',
        paint: (c, i) => {
          const v = views[i]!
          const mark = c.endsWith(` ${ORPHAN_MARK}`) ? ` ${style.yellow(ORPHAN_MARK)}` : ''
          return style.status(v.status, mark ? c.slice(0, -2) : c) + mark
        },
      },
      cell: (v) => (orphaned(v) ? `${v.status} ${ORPHAN_MARK}` : v.status),
    },
    { key: 'reason', column: { header: 'REASON' }, cell: reasonOf },
    { key: 'phase', column: { header: 'PHASE' }, cell: (v) => phaseLabel(v.phase) },
    { key: 'iter', column: { header: 'ITER', right: true }, cell: (v) => String(v.iteration) },
    { key: 'section', column: { header: 'SECTION', right: true }, cell: sectionText },
    { key: 'tokens', column: { header: 'TOKENS', right: true }, cell: (v) => formatTokens(v.tokens) },
    { key: 'elapsed', column: { header: 'ELAPSED', right: true }, cell: (v) => formatDuration(v.elapsedMs) },
    { key: 'created', column: { header: 'CREATED', paint: (c) => style.dim(c) }, cell: (v) => relativeTime(v.createdAt, now) },
    { key: 'title', column: { header: 'TITLE', paint: (c) => style.dim(c) }, cell: (v) => v.title },
  ]
  // a column that would say nothing for every loop is left out
  const used = all.filter(({ key, cell }) => !((key === 'reason' || key === 'section') && views.every((v) => cell(v) === '-')))
  const at = (key: Key) => used.findIndex((c) => c.key === key)
  const steps: FitStep[] = [
    { shrink: at('title'), min: 16 },
    { drop: at('title') },
    { shrink: at('name'), min: 12, elide: 'middle' },
    { shrink: at('reason'), min: 10 },
    { drop: at('reason') },
    { drop: at('section') },
  ]
  return fitTable(
    used.map((c) => c.column),
    views.map((v) => used.map((c) => c.cell(v))),
    { width, fit: steps.filter((s) => ('drop' in s ? s.drop : s.shrink) >= 0) },
  )
}

/**
 * The lines under the table about the loops no process runs, with the command
 * that carries them on (`dataFlag`: ` --data DIR` when it is not the default).
 */
export function orphanNotes(views: LoopView[], dataFlag = '', style: Style = plain): string[] {
  const mark = style.yellow(ORPHAN_MARK)
  const cmd = (text: string) => style.bold(`\`loopstate ${text}${dataFlag}\``)
  const stopped = views.filter((v) => orphaned(v) && v.status !== 'paused').map((v) => v.name)
  const paused = views.filter((v) => orphaned(v) && v.status === 'paused').map((v) => v.name)
  const notes: string[] = []
  if (stopped.length === 1) {
    notes.push(`${mark} no process runs ${stopped[0]} (stopped mid-run): ${cmd(`resume ${stopped[0]}`)} carries it on`)
  } else if (stopped.length > 1) {
    notes.push(`${mark} no process runs ${plural(stopped.length, 'loop')} (${stopped.join(', ')}): ${cmd('resume --all')} carries them on`)
  }
  if (paused.length === 1) {
    notes.push(`${mark} ${paused[0]} is paused and no process holds it: ${cmd(`resume ${paused[0]}`)} resumes it here`)
  } else if (paused.length > 1) {
    notes.push(`${mark} ${plural(paused.length, 'paused loop')} no process holds (${paused.join(', ')}): ${cmd('resume <name>')} resumes one here`)
  }
  return notes
}
