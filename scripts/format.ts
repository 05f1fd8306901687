/**
 * Text formatting for the CLI and the demo. The pieces live in scripts/format/:
 * text.ts (durations, tokens, times), table.ts (tables that fit a width),
 * progress.ts (the live line, the closing line and table), list.ts, history.ts and
 * status.ts (their commands' output); colour and widths come from scripts/term.ts.
 */
import { relative } from 'node:path'
import type { TranscriptSession } from '../adapters/snapshot-store.ts'
import { plain, type Style } from './term.ts'
import { oneLine } from './format/text.ts'

export { formatDuration, formatTokens, localTime, modelName, oneLine, plural, relativeTime, untilText } from './format/text.ts'
export { fitTable, table, type Column, type FitStep, type TableOptions } from './format/table.ts'
export {
  activity,
  phaseLabel,
  progressKey,
  progressLine,
  resultLine,
  resultTable,
  retryText,
  sectionText,
  type ProgressLineOptions,
} from './format/progress.ts'
export { listTable, newestFirst, orphaned, orphanNotes, ORPHAN_MARK, type ListTableOptions } from './format/list.ts'
export { eventLabel, historyLine, historyTable, stateLabel, type HistoryLine, type HistoryTableOptions } from './format/history.ts'
export { detailText, type DetailTextOptions } from './format/status.ts'

/** A directory as the user would type it from here: relative below the working directory, else absolute. */
export function shortPath(dir: string): string {
  const rel = relative(process.cwd(), dir)
  return rel === '' ? '.' : rel.startsWith('..') ? dir : rel
}

/** Lines of a tool result or a reply shown by `log`; the rest is counted. */
const LOG_LINES = 12

/** One session of `loopstate log` as a readable chat log. */
export function transcriptText(s: TranscriptSession, style: Style = plain): string {
  const h = s.head
  const out = [style.bold(`── session ${s.id}${h ? ` · ${h.role} · ${h.phase} · iteration ${h.iteration} · ${h.at}` : ''}`)]
  const clip = (text: string) => {
    const lines = text.trimEnd().split('\n')
    return lines.length > LOG_LINES ? [...lines.slice(0, LOG_LINES), style.dim(`… ${lines.length - LOG_LINES} more lines`)] : lines
  }
  const block = (label: string, text: string) => {
    const [first = '', ...rest] = clip(text)
    out.push(`${label} ${first}`, ...rest.map((l) => `    ${l}`))
  }
  for (const m of s.messages) {
    if (m.role === 'system') out.push(style.dim(`[system] (${m.content.length} characters)`))
    else if (m.role === 'user') block(style.cyan('[user]'), m.content)
    else if (m.role === 'tool') block(style.yellow(`[tool ${m.toolName}]`), m.content)
    else {
      if (m.content.trim() !== '' && !m.fromText) block(style.green('[assistant]'), m.content)
      for (const call of m.toolCalls ?? []) {
        out.push(`${style.green('[assistant] →')} ${call.name} ${oneLine(JSON.stringify(call.arguments))}${m.fromText ? style.dim(' (written as text)') : ''}`)
      }
      if (m.content.trim() === '' && (m.toolCalls ?? []).length === 0) out.push(`${style.green('[assistant]')} ${style.dim('(empty reply)')}`)
    }
  }
  for (const run of s.checks ?? []) {
    for (const c of run.results) {
      const label = `[check ${c.name}]`
      block(c.passed ? style.green(label) : style.red(label), c.passed ? c.outcome : `FAILS (${c.outcome})${c.tail.trim() ? `\n${c.tail}` : ''}`)
    }
  }
  return out.join('\n')
}
