/** The live progress line of a loop (run, resume, fork, demo) and the closing line and table of a run. */
import type { LoopView } from '../../services/views.ts'
import { elide, plain, visibleWidth, type Style } from '../term.ts'
import { fitTable } from './table.ts'
import { formatDuration, formatTokens, modelName, oneLine, plural, untilText } from './text.ts'

const PHASES: Record<string, string> = { coding: 'coding', auditing: 'auditing', finalAuditing: 'final audit', finalAuditFix: 'final fix' }

/** A phase as people say it: `coding`, `auditing`, `final audit`, `final fix`. */
export function phaseLabel(phase: string): string {
  return PHASES[phase] ?? phase
}

/** What the loop is doing: its phase while it runs, else its status. */
export function activity(view: LoopView): string {
  return view.status === 'running' ? phaseLabel(view.phase) : view.status
}

export function sectionText(view: LoopView): string {
  return view.section ? `${view.section.index}/${view.section.count}` : '-'
}

/**
 * Why and when a loop waiting to retry a failed model call tries again:
 * `retrying in 4.0s (attempt 2/4): ollama: cannot reach …` (with `model`: `… in
 * 4.0s on qwen3:8b (attempt …`). `why` is the failure's message when the caller
 * has it, else the view's error code.
 */
export function retryText(retry: NonNullable<LoopView['retry']>, why?: string | null, { now = Date.now(), model = false } = {}): string {
  const on = model ? ` on ${modelName(retry.model)}` : ''
  return `retrying ${untilText(retry.at, now)}${on} (attempt ${retry.attempt}/${retry.of}): ${oneLine(why || retry.code)}`
}

export interface ProgressLineOptions {
  style?: Style
  /**
   * Fit this width: a retry note too long for the line goes on a line of its own
   * (cut there), the loop's name is cut; the changing fields never are.
   */
  width?: number
  /** The message of the failure a retrying loop waits after (else its code is shown). */
  why?: string | null
  now?: number
}

/** Width of the activity column: the longest phase or status. */
const ACTIVITY_WIDTH = 11

/**
 * One progress line: loop, phase (or status), iteration, section k/n, tokens,
 * elapsed, and why and until when it waits to retry (with a `width`, maybe on a
 * second line).
 */
export function progressLine(view: LoopView, nameWidth = 0, { style = plain, width = Infinity, why, now }: ProgressLineOptions = {}): string {
  const what = activity(view)
  const fields = [`iteration ${view.iteration}`]
  if (view.section) fields.push(`section ${sectionText(view)}`)
  fields.push(`${formatTokens(view.tokens)} tokens`, formatDuration(view.elapsedMs))
  const fixed = fields.join('  ')
  const retrying = view.status === 'running' && view.retry !== null && view.retry !== undefined
  let note = retrying ? retryText(view.retry!, why, { now }) : ''
  let name = view.name
  let nameCol = Math.max(nameWidth, visibleWidth(name))
  const used = () => nameCol + 2 + Math.max(ACTIVITY_WIDTH, what.length) + 2 + visibleWidth(fixed)
  if (used() > width) {
    // the changing fields stay whole: the loop's name gives way (to 8 columns at least)
    nameCol = Math.max(8, nameCol - (used() - width))
    name = elide(name, nameCol, 'middle')
  }
  // a note that does not fit after the fields gets a line of its own below them, cut to the width there
  let below = ''
  if (note !== '' && used() + 2 + visibleWidth(note) > width) {
    below = `${' '.repeat(NOTE_INDENT)}${style.yellow(elide(note, Math.max(1, width - NOTE_INDENT)))}`
    note = ''
  }
  const line =
    `${style.bold(name)}${' '.repeat(Math.max(0, nameCol - visibleWidth(name)))}  ` +
    `${style.status(view.status, what)}${' '.repeat(Math.max(0, ACTIVITY_WIDTH - what.length))}  ${fixed}` +
    (note === '' ? '' : `  ${style.yellow(note)}`)
  return below === '' ? line.trimEnd() : `${line.trimEnd()}\n${below}`
}

/** Indent of a note on a line of its own. */
const NOTE_INDENT = 4

/** Changes that a non-TTY progress log prints a line for (not tokens or time). */
export function progressKey(view: LoopView): string {
  return [view.status, view.phase, view.state, view.iteration, view.section?.index ?? ''].join('|')
}

/** The closing line of a run: status, reason, iterations, tokens, time (and the error of a failed loop). */
export function resultLine(view: LoopView, error?: { message: string } | null, style: Style = plain): string {
  const why = view.status !== 'completed' && error ? ` — ${oneLine(error.message)}` : ''
  return (
    `loop ${view.name} ${style.status(view.status)} (${view.reason ?? 'no reason'}): ` +
    `${plural(view.iteration, 'iteration')}, ${formatTokens(view.tokens)} tokens, ${formatDuration(view.elapsedMs)}${why}`
  )
}

/** The closing table of several loops (`demo`, `resume --all`); a null view is a loop whose actor crashed. */
export function resultTable(rows: { name: string; view: LoopView | null }[], style: Style = plain, width = Infinity): string {
  const cells = rows.map(({ name, view: v }) =>
    v === null
      ? [name, 'crashed', '-', '-', '-', '-']
      : [v.name, v.status, v.reason ?? '-', String(v.iteration), formatTokens(v.tokens), formatDuration(v.elapsedMs)],
  )
  return fitTable(
    [
      { header: 'LOOP' },
      { header: 'STATUS', paint: (c) => style.status(c === 'crashed' ? 'errored' : c, c) },
      { header: 'REASON' },
      { header: 'ITERATIONS', right: true },
      { header: 'TOKENS', right: true },
      { header: 'TIME', right: true },
    ],
    cells,
    { width, fit: [{ shrink: 0, min: 12, elide: 'middle' }, { shrink: 2, min: 8 }] },
  )
}
