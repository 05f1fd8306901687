/** The human `status` of one loop. */
import { parseSummary } from '../../machines/summary.ts'
import type { Finding, Usage } from '../../machines/loop.types.ts'
import type { LoopDetail } from '../../services/views.ts'
import { plain, type Style } from '../term.ts'
import { phaseLabel, retryText, sectionText } from './progress.ts'
import { fitTable } from './table.ts'
import { formatDuration, formatTokens, localTime, oneLine, plural, relativeTime } from './text.ts'

export interface DetailTextOptions {
  style?: Style
  /** The width the usage table fits (the rest is prose, left to wrap). */
  width?: number
  /** Lines of the last audit's text shown. @default 6 */
  lastAuditLines?: number
  /**
   * Who runs the loop: the pid of its live owner, or null when no process does;
   * undefined when not asked. An unfinished loop nobody runs gets the command that
   * resumes it (`resume`: that command, e.g. `loopstate resume x --data d`).
   */
  owner?: number | null
  resume?: string
  now?: number
}

const FINAL = new Set(['completed', 'cancelled', 'errored', 'stalled'])

/** `$0.0123`, or `–` when no price is set (the cost is unknown, not zero). */
function costText(usd: number, priced: boolean): string {
  return priced ? `$${usd.toFixed(4)}` : '–'
}

function findingText(f: Finding): string {
  const where = f.line === null ? f.file : `${f.file}:${f.line}`
  return `${f.id} ${f.severity} ${f.status}${f.recurring ? ' (recurring)' : ''} ${where} — ${oneLine(f.message)}`
}

/** The human `status` summary. */
export function detailText(d: LoopDetail, options: DetailTextOptions = {}): string {
  const { style = plain, width = Infinity, lastAuditLines = 6, owner, resume, now = Date.now() } = options
  const out: string[] = []
  const row = (key: string, value: string) => out.push(`${key.padEnd(11)}${value}`)
  const more = (line: string) => out.push(`${' '.repeat(11)}${line}`)
  out.push(`${style.bold(d.name)} — ${d.title} (${d.kind})`)
  row('status', `${style.status(d.status)}${d.reason && d.reason !== d.status ? ` (${d.reason})` : ''}`)
  if (!FINAL.has(d.status) && owner !== undefined) {
    if (owner !== null) row('process', `run by process ${owner}`)
    else row('process', `${style.yellow('none')}: no process runs it${resume ? `; ${style.bold(`\`${resume}\``)} carries it on` : ''}`)
  }
  row(
    'phase',
    `${phaseLabel(d.phase)}, iteration ${d.iteration}${d.section ? `, section ${sectionText(d)}` : ''} ${style.dim(`[${d.state}]`)}`,
  )
  if (d.retry) row('retry', style.yellow(retryText(d.retry, d.error?.message, { now, model: true })))
  const priced = (d.pricedModels ?? []).length > 0 || d.costUsd > 0
  row('elapsed', `${formatDuration(d.elapsedMs)}, ${formatTokens(d.tokens)} tokens, cost ${costText(d.costUsd, priced)}`)
  row('created', `${relativeTime(d.createdAt, now)} ${style.dim(`(${localTime(d.createdAt)}; updated ${relativeTime(d.updatedAt, now)})`)}`)
  row('workspace', d.workspace)
  if (d.git) row('branch', `${d.git.branch} ${style.dim(`(worktree of ${d.git.repo}, from ${d.git.base.slice(0, 12)})`)}`)
  const failed = d.failedCalls
  for (const role of ['coder', 'auditor'] as const) {
    const chain = d.models[role]
    const active = d.activeModels?.[role] ?? chain[0]
    row(role, chain.map((m) => (chain.length > 1 && m === active ? `${m} ${style.dim('(in use)')}` : m)).join(' → '))
    const before = chain.slice(0, Math.max(0, chain.indexOf(active ?? '')))
    if (before.length > 0) {
      const why = before.map((m) => `${plural(failed?.byModel[m] ?? 0, 'failed call')} on ${m}`).join(', ')
      more(style.yellow(`fell back to ${active} after ${why}`))
    }
  }
  if (failed && failed.total > 0) {
    const where = Object.entries(failed.byModel)
      .map(([m, n]) => `${m} ${n}`)
      .join(', ')
    row('failed', `${plural(failed.total, 'model call')} without an answer (${where})`)
  }
  if (d.error && d.status !== 'completed') row('error', style.red(`${d.error.code}: ${oneLine(d.error.message)}`))
  const open = d.findings.filter((f) => f.status === 'open').length
  row('findings', d.findings.length === 0 ? 'none' : `${d.findings.length} (${open} open)`)
  for (const f of d.findings) out.push(`  ${findingText(f)}`)
  if (d.sections.length > 0) {
    row('sections', `${d.sections.filter((s) => s.status === 'done').length}/${d.sections.length} done`)
    d.sections.forEach((s, i) => {
      const attempts = s.attempts > 0 ? `, ${plural(s.attempts, 'dirty audit')}` : ''
      const status = s.status === 'done' ? style.green(s.status) : s.status === 'active' ? style.cyan(s.status) : style.dim(s.status)
      out.push(`  ${i + 1}. ${s.title} — ${status}${attempts}`)
      for (const line of summaryLines(s.summary)) out.push(`     ${style.dim(line)}`)
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
  out.push(...usageTable(d, priced, style, width - 2).split('\n').map((l) => `  ${l}`))
  out.push(...lastAuditText(d, style, lastAuditLines))
  return out.join('\n')
}

/** A section's summary in a few lines: what was done, and deviations and follow-ups when there are any. */
function summaryLines(summary: string | null): string[] {
  if (summary === null) return []
  const block = parseSummary(`<!-- summary -->\n${summary}\n<!-- /summary -->`)
  if (block === null) return [oneLine(summary).slice(0, 200)]
  const lines: string[] = []
  const nothing = (text: string) => /^(none|n\/a|-)?\.?$/i.test(text.trim())
  const part = (label: string, text: string) => {
    if (nothing(text)) return
    const items = text.split('\n').map((l) => l.replace(/^\s*[-*]\s*/, '').trim()).filter((l) => l !== '')
    const shown = items.slice(0, 3)
    lines.push(`${label}: ${shown.join('; ')}${items.length > 3 ? ` (+${items.length - 3})` : ''}`)
  }
  part('done', block.done)
  part('deviations', block.deviations)
  part('follow-ups', block.followUps)
  return lines
}

function usageTable(d: LoopDetail, priced: boolean, style: Style, width: number): string {
  const failed = d.failedCalls
  const pricedModels = new Set(d.pricedModels ?? [])
  type Row = [label: string, u: Usage, failed: number, priced: boolean]
  const rows: Row[] = [
    ...Object.entries(d.usage.byRole).map(([role, u]): Row => [`role ${role}`, u, failed?.byRole[role as 'coder'] ?? 0, priced]),
    ...[...new Set([...Object.keys(d.usage.byModel), ...Object.keys(failed?.byModel ?? {})])].map(
      (model): Row => [
          `model ${model}`,
          d.usage.byModel[model] ?? { inputTokens: 0, outputTokens: 0, durationMs: 0, costUsd: 0, calls: 0 },
          failed?.byModel[model] ?? 0,
        pricedModels.has(model) || (d.usage.byModel[model]?.costUsd ?? 0) > 0,
      ],
    ),
    ['total', d.usage.total, failed?.total ?? 0, priced],
  ]
  return fitTable(
    [
      { header: '' },
      { header: 'CALLS', right: true },
      { header: 'FAILED', right: true, paint: (c) => (c !== '0' ? style.yellow(c) : style.dim(c)) },
      { header: 'IN', right: true },
      { header: 'OUT', right: true },
      { header: 'MODEL TIME', right: true },
      { header: 'COST', right: true },
    ],
    rows.map(([label, u, f, p]) => [
      label,
      String(u.calls),
      String(f),
      formatTokens(u.inputTokens),
      formatTokens(u.outputTokens),
      formatDuration(u.durationMs),
      costText(u.costUsd, p),
    ]),
    { width, fit: [{ shrink: 0, min: 16, elide: 'middle' }] },
  )
}

/** The last audit: its verdict, and when it was not clean, why (the findings that blocked it, the failing checks). */
function lastAuditText(d: LoopDetail, style: Style, lastAuditLines: number): string[] {
  const a = d.lastAudit
  if (!a) return [`${'last audit'.padEnd(11)}none yet`]
  const out: string[] = []
  const where = a.section === null ? '' : `, section ${a.section + 1}`
  const verdict = a.verdict ?? (a.clean ? 'clean' : 'dirty')
  const blockOn = d.blockOn ?? ['bug']
  const blockers = d.findings.filter(
    (f) => f.status === 'open' && blockOn.includes(f.severity) && (a.section === null || f.section === a.section),
  )
  const head = `last audit #${a.n} (${a.phase}${where}): `
  if (verdict === 'clean') out.push(head + style.green('clean'))
  else if (verdict === 'summaryMissing') {
    out.push(head + style.yellow('not accepted: the reply had no summary block (a section audit must end with one)'))
  } else {
    const checks = [...new Set(blockers.filter((f) => f.check !== undefined).map((f) => f.check!))]
    const what = verdict === 'checksFailing' ? `dirty, ${plural(checks.length || a.blocking, 'failing check')}` : `dirty, ${plural(a.blocking, 'blocking finding')}`
    out.push(head + style.red(what))
    if (blockers.length > 0) {
      out.push(`  blocked by (${blockOn.join(', ')} findings open in its scope):`)
      for (const f of blockers) out.push(`    ${findingText(f)}`)
    } else if (a.blocking > 0) {
      out.push(`  its ${plural(a.blocking, 'blocking finding')} ${a.blocking === 1 ? 'has' : 'have'} been resolved since`)
    }
  }
  const lines = a.text.trim().split('\n')
  for (const l of lines.slice(0, lastAuditLines)) out.push(`  ${style.dim('|')} ${l}`)
  if (lines.length > lastAuditLines) out.push(`  ${style.dim('|')} … (${lines.length - lastAuditLines} more lines)`)
  return out
}
