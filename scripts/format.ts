/** Text formatting for the CLI and the demo: durations, token counts, tables, progress lines. */
import { relative } from 'node:path'
import type { HistoryEntry, TranscriptSession } from '../adapters/snapshot-store.ts'
import type { LoopDetail, LoopView } from '../services/views.ts'

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

/** Columns padded to their widest cell; columns named in `right` are right-aligned. */
export function table(header: string[], rows: string[][], right: number[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.includes(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [line(header), ...rows.map(line)].join('\n')
}

/** What the loop is doing: the phase while it runs (and whether it is retrying), else its status. */
export function activity(view: LoopView): string {
  if (view.status !== 'running') return view.status
  if (view.state.endsWith('backingOff')) return `${view.phase} (retrying)`
  return view.phase
}

export function sectionText(view: LoopView): string {
  return view.section ? `${view.section.index}/${view.section.count}` : '-'
}

/** One progress line: loop, phase, iteration, section k/n, tokens, elapsed. */
export function progressLine(view: LoopView, nameWidth = 0): string {
  const parts = [view.name.padEnd(nameWidth), activity(view).padEnd(18), `iteration ${view.iteration}`]
  if (view.section) parts.push(`section ${sectionText(view)}`)
  parts.push(`${formatTokens(view.tokens)} tokens`, formatDuration(view.elapsedMs))
  return parts.join('  ')
}

/** Changes that a non-TTY progress log prints a line for (not tokens or time). */
export function progressKey(view: LoopView): string {
  return [view.status, view.phase, view.state, view.iteration, view.section?.index ?? ''].join('|')
}

/** The closing line of a run: status, reason, iterations, tokens, time (and the error of a failed loop). */
export function resultLine(view: LoopView, error?: { message: string } | null): string {
  const why = view.status !== 'completed' && error ? ` — ${oneLine(error.message)}` : ''
  return (
    `loop ${view.name} ${view.status} (${view.reason ?? 'no reason'}): ` +
    `${plural(view.iteration, 'iteration')}, ${formatTokens(view.tokens)} tokens, ${formatDuration(view.elapsedMs)}${why}`
  )
}

/** The `list` table. */
export function listTable(views: LoopView[]): string {
  return table(
    ['NAME', 'STATUS', 'REASON', 'PHASE', 'ITER', 'SECTION', 'TOKENS', 'ELAPSED'],
    views.map((v) => [
      v.name,
      v.status,
      v.reason ?? '-',
      v.phase,
      String(v.iteration),
      sectionText(v),
      formatTokens(v.tokens),
      formatDuration(v.elapsedMs),
    ]),
    [4, 6, 7],
  )
}

/** The closing table of several loops (`demo`, `resume --all`); a null view is a loop whose actor crashed. */
export function resultTable(rows: { name: string; view: LoopView | null }[]): string {
  return table(
    ['LOOP', 'STATUS', 'REASON', 'ITERATIONS', 'TOKENS', 'TIME'],
    rows.map(({ name, view: v }) =>
      v === null
        ? [name, 'crashed', '-', '-', '-', '-']
        : [v.name, v.status, v.reason ?? '-', String(v.iteration), formatTokens(v.tokens), formatDuration(v.elapsedMs)],
    ),
    [3, 4, 5],
  )
}

/** A history entry as `history --json` prints it: the snapshot itself is left out, `hasSnapshot` says whether there is one. */
export type HistoryLine = Omit<HistoryEntry, 'snapshot'> & { hasSnapshot: boolean }

export function historyLine({ snapshot, ...entry }: HistoryEntry): HistoryLine {
  return { ...entry, hasSnapshot: snapshot !== undefined }
}

/** The `history` table: one row per transition; `*` marks the entries that keep a snapshot (fork points). */
export function historyTable(lines: HistoryLine[]): string {
  return table(
    ['SEQ', 'TIME', 'EVENT', 'FROM → TO', 'ITER', 'FORK'],
    lines.map((e) => [
      String(e.seq),
      e.at,
      e.event,
      `${e.from || '(start)'} → ${e.to}`,
      String(e.iteration),
      e.hasSnapshot ? '*' : '',
    ]),
    [0, 4],
  )
}

/** The human `status` summary. */
export function detailText(d: LoopDetail, lastAuditLines = 6): string {
  const out: string[] = []
  const row = (key: string, value: string) => out.push(`${key.padEnd(11)}${value}`)
  out.push(`${d.name} — ${d.title} (${d.kind})`)
  row('status', `${d.status}${d.reason ? ` (${d.reason})` : ''}`)
  row('phase', `${d.phase}, iteration ${d.iteration}${d.section ? `, section ${sectionText(d)}` : ''} [${d.state}]`)
  row('elapsed', `${formatDuration(d.elapsedMs)}, ${formatTokens(d.tokens)} tokens${d.costUsd > 0 ? `, $${d.costUsd.toFixed(4)}` : ''}`)
  row('workspace', d.workspace)
  row('coder', d.models.coder.join(' → '))
  row('auditor', d.models.auditor.join(' → '))
  if (d.error && d.status !== 'completed') row('error', `${d.error.code}: ${oneLine(d.error.message)}`)
  const open = d.findings.filter((f) => f.status === 'open').length
  row('findings', d.findings.length === 0 ? 'none' : `${d.findings.length} (${open} open)`)
  for (const f of d.findings) {
    const where = f.line === null ? f.file : `${f.file}:${f.line}`
    out.push(`  ${f.id} ${f.severity} ${f.status}${f.recurring ? ' (recurring)' : ''} ${where} — ${oneLine(f.message)}`)
  }
  if (d.sections.length > 0) {
    row('sections', `${d.sections.filter((s) => s.status === 'done').length}/${d.sections.length} done`)
    d.sections.forEach((s, i) => {
      const attempts = s.attempts > 0 ? `, ${plural(s.attempts, 'dirty audit')}` : ''
      out.push(`  ${i + 1}. ${s.title} — ${s.status}${attempts}`)
    })
  }
  if (d.forkedFrom) row('forked', `from ${d.forkedFrom.name} #${d.forkedFrom.seq}`)
  if (d.toolErrors.length > 0) {
    const total = d.toolErrors.reduce((n, e) => n + e.count, 0)
    row('tools', `${plural(total, 'call')} refused or failed: ${d.toolErrors.map((e) => `${oneLine(e.kind)} (${e.count})`).join(', ')}`)
  }
  if (d.inbox.length > 0) {
    row('inbox', `${plural(d.inbox.length, 'message')} for the next prompt`)
    for (const m of d.inbox) out.push(`  - ${oneLine(m)}`)
  }
  out.push('usage')
  const usageRows = [
    ...Object.entries(d.usage.byRole).map(([role, u]) => [`role ${role}`, u] as const),
    ...Object.entries(d.usage.byModel).map(([model, u]) => [`model ${model}`, u] as const),
    ['total', d.usage.total] as const,
  ]
  const usageTable = table(
    ['', 'CALLS', 'IN', 'OUT', 'MODEL TIME', 'COST'],
    usageRows.map(([label, u]) => [
      label,
      String(u.calls),
      formatTokens(u.inputTokens),
      formatTokens(u.outputTokens),
      formatDuration(u.durationMs),
      `$${u.costUsd.toFixed(4)}`,
    ]),
    [1, 2, 3, 4, 5],
  )
  out.push(...usageTable.split('\n').map((l) => `  ${l}`))
  if (d.lastAudit) {
    const a = d.lastAudit
    const where = a.section === null ? '' : `, section ${a.section + 1}`
    out.push(`last audit #${a.n} (${a.phase}${where}): ${a.clean ? 'clean' : `dirty, ${plural(a.blocking, 'blocking finding')}`}`)
    const lines = a.text.trim().split('\n')
    for (const l of lines.slice(0, lastAuditLines)) out.push(`  | ${l}`)
    if (lines.length > lastAuditLines) out.push(`  | … (${lines.length - lastAuditLines} more lines)`)
  } else {
    row('last audit', 'none yet')
  }
  return out.join('\n')
}

export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}

/** Cuts a line to the terminal width so that `\r` redraws stay on one row. */
export function fit(line: string, columns: number | undefined): string {
  if (!columns || line.length < columns) return line
  return `${line.slice(0, Math.max(0, columns - 2))}…`
}

/** A directory as the user would type it from here: relative below the working directory, else absolute. */
export function shortPath(dir: string): string {
  const rel = relative(process.cwd(), dir)
  return rel === '' ? '.' : rel.startsWith('..') ? dir : rel
}

/** Lines of a tool result or a reply shown by `log`; the rest is counted. */
const LOG_LINES = 12

/** One session of `loopstate log` as a readable chat log. */
export function transcriptText(s: TranscriptSession): string {
  const h = s.head
  const out = [`── session ${s.id}${h ? ` · ${h.role} · ${h.phase} · iteration ${h.iteration} · ${h.at}` : ''}`]
  const clip = (text: string) => {
    const lines = text.trimEnd().split('\n')
    return lines.length > LOG_LINES ? [...lines.slice(0, LOG_LINES), `… ${lines.length - LOG_LINES} more lines`] : lines
  }
  const block = (label: string, text: string) => {
    const [first = '', ...rest] = clip(text)
    out.push(`${label} ${first}`, ...rest.map((l) => `    ${l}`))
  }
  for (const m of s.messages) {
    if (m.role === 'system') out.push(`[system] (${m.content.length} characters)`)
    else if (m.role === 'user') block('[user]', m.content)
    else if (m.role === 'tool') block(`[tool ${m.toolName}]`, m.content)
    else {
      if (m.content.trim() !== '' && !m.fromText) block('[assistant]', m.content)
      for (const call of m.toolCalls ?? []) {
        out.push(`[assistant] → ${call.name} ${oneLine(JSON.stringify(call.arguments))}${m.fromText ? ' (written as text)' : ''}`)
      }
      if (m.content.trim() === '' && (m.toolCalls ?? []).length === 0) out.push('[assistant] (empty reply)')
    }
  }
  for (const run of s.checks ?? []) {
    for (const c of run.results) block(`[check ${c.name}]`, c.passed ? c.outcome : `FAILS (${c.outcome})${c.tail.trim() ? `\n${c.tail}` : ''}`)
  }
  return out.join('\n')
}
