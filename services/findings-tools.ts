/**
 * The auditor's findings tools (`report_finding`, `resolve_finding`, `list_findings`)
 * and the session's findings ledger they work through.
 */
import type { Finding, Severity } from '../machines/loop.types.ts'
import { ToolError, type FindingsLedger, type Tool, type ToolContext } from './tool-types.ts'
import { optionalBoolArg, optionalIntArg, optionalStringArg, stringArg } from './workspace-tools.ts'

/** Options of {@link createFindingsLedger}. */
export interface FindingsLedgerOptions {
  /** The loop's findings; the ledger works on a copy. */
  findings: Finding[]
  /** Number of the next new finding's id (`F<nextId>`). */
  nextId: number
  /** Section index new findings belong to; null for plain/goal loops and final audits. */
  section: number | null
  /** Number of the audit this session runs (1-based). */
  audit: number
  /** Called with each new finding (not with a duplicate of an open one). */
  onReport: (finding: Finding) => void
  /** Called with the id of each finding that goes from open to resolved. */
  onResolve: (id: string) => void
}

/**
 * A session's findings ledger: a working copy of the loop's findings that assigns
 * ids `F<nextId>`, `F<nextId + 1>`, …, returns the open finding at the same file and
 * line with the same severity instead of a new one (a small model rewords the same
 * problem every audit; docs/architecture.md "Findings"), unless the report is marked
 * distinct, and reports each change through the callbacks.
 */
export function createFindingsLedger(opts: FindingsLedgerOptions): FindingsLedger {
  const findings = structuredClone(opts.findings)
  let nextId = opts.nextId
  return {
    list: () => structuredClone(findings),
    report(input) {
      const same = input.distinct
        ? findings.find((f) => f.status === 'open' && f.check === undefined && sameSpot(f, input) && f.message === input.message)
        : findings.find((f) => f.status === 'open' && f.check === undefined && sameSpot(f, input) && f.severity === input.severity)
      if (same) return structuredClone(same)
      const finding: Finding = {
        id: `F${nextId++}`,
        file: input.file,
        line: input.line,
        severity: input.severity,
        message: input.message,
        status: 'open',
        section: opts.section,
        reportedInAudit: opts.audit,
        openAudits: 0,
        recurring: false,
      }
      findings.push(finding)
      opts.onReport(structuredClone(finding))
      return structuredClone(finding)
    },
    resolve(id) {
      const finding = findings.find((f) => f.id === id)
      if (!finding) {
        const open = findings.filter((f) => f.status === 'open').map((f) => f.id)
        throw new ToolError(`unknown finding '${id}' (open: ${open.length ? open.join(', ') : 'none'})`)
      }
      if (finding.check !== undefined && finding.status === 'open') {
        throw new ToolError(
          `${id} is the check '${finding.check}' failing: loopstate resolves it when the check passes, not by hand`,
        )
      }
      if (finding.status === 'open') {
        finding.status = 'resolved'
        opts.onResolve(id)
      }
      return structuredClone(finding)
    },
  }
}

const SEVERITIES: readonly Severity[] = ['bug', 'warning']

function sameSpot(a: Pick<Finding, 'file' | 'line'>, b: Pick<Finding, 'file' | 'line'>): boolean {
  return a.file === b.file && a.line === b.line
}

/** A path as the model gives it, as findings keep it: trimmed, without a leading `./`. */
function findingPath(raw: string): string {
  return raw.trim().replace(/^(\.\/)+/, '')
}

/** `src/a.ts:12`, or `src/a.ts` without a line. */
function location(f: Pick<Finding, 'file' | 'line'>): string {
  return f.line === null ? f.file : `${f.file}:${f.line}`
}

/** One line per finding, e.g. `F3 bug open (recurring) src/a.ts:12 — message`. */
export function formatFinding(f: Finding): string {
  const recurring = f.recurring ? ' (recurring)' : ''
  return `${f.id} ${f.severity} ${f.status}${recurring} ${location(f)} — ${f.message}`
}

/** Accepts `F3`, `f3` and `3`. */
function normalizeId(raw: string): string {
  const id = raw.trim().toUpperCase()
  return /^\d+$/.test(id) ? `F${id}` : id
}

/** `report_finding`: records a problem in the code under audit. */
export const reportFindingTool: Tool = {
  spec: {
    name: 'report_finding',
    description:
      'Record a problem you found. Severity `bug` blocks completion, `warning` does not. ' +
      'A problem at the same file and line with the same severity as an open finding is that finding: ' +
      'it stays open (set `distinct` if it really is another problem at the same place).',
    parameters: {
      type: 'object',
      properties: {
        file: { type: 'string', description: 'Path relative to the workspace' },
        line: { type: 'integer', minimum: 1, description: 'Line number, if the problem has one' },
        severity: { type: 'string', enum: [...SEVERITIES], description: 'bug or warning' },
        message: { type: 'string', description: 'What is wrong and why, in one or two sentences' },
        distinct: {
          type: 'boolean',
          description: 'true only when this is a different problem from the open finding at the same file and line',
        },
      },
      required: ['file', 'severity', 'message'],
    },
  },
  sideEffects: false,
  async run(args, ctx) {
    const file = findingPath(stringArg(args, 'file'))
    const line = optionalIntArg(args, 'line', 1) ?? null
    const severity = stringArg(args, 'severity').trim().toLowerCase()
    if (!SEVERITIES.includes(severity as Severity)) {
      throw new ToolError(`severity must be 'bug' or 'warning', got '${severity}'`)
    }
    const message = stringArg(args, 'message').trim()
    if (!file) throw new ToolError(`argument 'file' must not be empty`)
    if (!message) throw new ToolError(`argument 'message' must not be empty`)

    const distinct = optionalBoolArg(args, 'distinct') ?? false
    const known = new Set(ctx.findings.list().map((f) => f.id))
    const f = ctx.findings.report({ file, line, severity: severity as Severity, message, distinct })
    if (known.has(f.id)) {
      return (
        `already open as ${f.id} (${f.severity}) ${location(f)}: "${f.message}". It stays open; not recorded again ` +
        '(if this is another problem at the same place, report it with distinct: true)'
      )
    }
    return `recorded ${f.id} (${f.severity}) ${location(f)}`
  },
}

/** `resolve_finding`: marks a finding fixed, by id or by a location that names one open finding. */
export const resolveFindingTool: Tool = {
  spec: {
    name: 'resolve_finding',
    description:
      'Mark a finding resolved once you have checked that the code no longer has the problem. ' +
      'Give its id (e.g. F3), or its file (and line) when exactly one open finding is there.',
    parameters: {
      type: 'object',
      properties: {
        id: { type: 'string', description: 'The finding id, e.g. F3' },
        file: { type: 'string', description: 'Instead of id: the file of the finding' },
        line: { type: 'integer', minimum: 1, description: 'With file: the line of the finding' },
      },
    },
  },
  sideEffects: false,
  async run(args, ctx) {
    // an id as a number (3) is taken as F3
    const rawId = typeof args.id === 'number' ? String(args.id) : optionalStringArg(args, 'id')
    const id = rawId?.trim() ? normalizeId(rawId) : byLocation(args, ctx)
    const wasOpen = ctx.findings.list().some((f) => f.id === id && f.status === 'open')
    const f = ctx.findings.resolve(id)
    return wasOpen ? `resolved ${f.id} ${location(f)}` : `${f.id} was already resolved`
  },
}

/** The id of the one open finding at `file` (and `line`); a tool error naming the candidates otherwise. */
function byLocation(args: Record<string, unknown>, ctx: ToolContext): string {
  const rawFile = optionalStringArg(args, 'file')
  if (rawFile === undefined || rawFile.trim() === '') {
    throw new ToolError(`give the finding's id (e.g. F3), or its file (and line)`)
  }
  const file = findingPath(rawFile)
  const line = optionalIntArg(args, 'line', 1) ?? null
  const open = ctx.findings.list().filter((f) => f.status === 'open')
  const here = open.filter((f) => f.file === file && (line === null || f.line === line))
  if (here.length === 1) return here[0]!.id
  const at = line === null ? file : `${file}:${line}`
  if (here.length === 0) {
    const all = open.map((f) => `${f.id} ${location(f)}`).join(', ')
    throw new ToolError(`no open finding at ${at} (open: ${all || 'none'})`)
  }
  throw new ToolError(
    `${here.length} open findings at ${at}; resolve them by id:\n${here.map(formatFinding).join('\n')}`,
  )
}

/** `list_findings`: the loop's findings, one per line. */
export const listFindingsTool: Tool = {
  spec: {
    name: 'list_findings',
    description: 'List the findings of this loop, one per line: id, severity, status, location, message.',
    parameters: {
      type: 'object',
      properties: {
        status: { type: 'string', enum: ['open', 'resolved', 'all'], description: 'Which findings. Default open.' },
      },
    },
  },
  sideEffects: false,
  async run(args, ctx) {
    const status = optionalStringArg(args, 'status')?.trim().toLowerCase() || 'open'
    if (status !== 'open' && status !== 'resolved' && status !== 'all') {
      throw new ToolError(`status must be 'open', 'resolved' or 'all', got '${status}'`)
    }
    const shown = ctx.findings.list().filter((f) => status === 'all' || f.status === status)
    if (shown.length === 0) return status === 'all' ? 'no findings' : `no ${status} findings`
    return shown.map(formatFinding).join('\n')
  },
}

/** The auditor's findings tools, in the order offered to the model. */
export const findingsTools: readonly Tool[] = [reportFindingTool, resolveFindingTool, listFindingsTool]
