/**
 * The auditor's findings tools (`report_finding`, `resolve_finding`, `list_findings`)
 * and the session's findings ledger they work through.
 */
import type { Finding, Severity } from '../machines/loop.types.ts'
import { ToolError, type FindingsLedger, type Tool } from './tool-types.ts'
import { optionalIntArg, optionalStringArg, stringArg } from './workspace-tools.ts'

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
 * ids `F<nextId>`, `F<nextId + 1>`, …, returns the open finding with the same
 * file, line and message instead of a duplicate, and reports each change through
 * the callbacks.
 */
export function createFindingsLedger(opts: FindingsLedgerOptions): FindingsLedger {
  const findings = structuredClone(opts.findings)
  let nextId = opts.nextId
  return {
    list: () => structuredClone(findings),
    report(input) {
      const same = findings.find(
        (f) => f.status === 'open' && f.file === input.file && f.line === input.line && f.message === input.message,
      )
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
      if (finding.status === 'open') {
        finding.status = 'resolved'
        opts.onResolve(id)
      }
      return structuredClone(finding)
    },
  }
}

const SEVERITIES: readonly Severity[] = ['bug', 'warning']

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
      'Reporting the same file, line and message as an open finding returns that finding.',
    parameters: {
      type: 'object',
      properties: {
        file: { type: 'string', description: 'Path relative to the workspace' },
        line: { type: 'integer', minimum: 1, description: 'Line number, if the problem has one' },
        severity: { type: 'string', enum: [...SEVERITIES], description: 'bug or warning' },
        message: { type: 'string', description: 'What is wrong and why, in one or two sentences' },
      },
      required: ['file', 'severity', 'message'],
    },
  },
  sideEffects: false,
  async run(args, ctx) {
    const file = stringArg(args, 'file').trim().replace(/^\.\//, '')
    const line = optionalIntArg(args, 'line', 1) ?? null
    const severity = stringArg(args, 'severity').trim().toLowerCase()
    if (!SEVERITIES.includes(severity as Severity)) {
      throw new ToolError(`severity must be 'bug' or 'warning', got '${severity}'`)
    }
    const message = stringArg(args, 'message').trim()
    if (!file) throw new ToolError(`argument 'file' must not be empty`)
    if (!message) throw new ToolError(`argument 'message' must not be empty`)

    const known = new Set(ctx.findings.list().map((f) => f.id))
    const f = ctx.findings.report({ file, line, severity: severity as Severity, message })
    if (known.has(f.id)) return `already open as ${f.id} (${f.severity}) ${location(f)}; not recorded again`
    return `recorded ${f.id} (${f.severity}) ${location(f)}`
  },
}

/** `resolve_finding`: marks a finding fixed. */
export const resolveFindingTool: Tool = {
  spec: {
    name: 'resolve_finding',
    description: 'Mark a finding resolved once you have checked that the code no longer has the problem.',
    parameters: {
      type: 'object',
      properties: { id: { type: 'string', description: 'The finding id, e.g. F3' } },
      required: ['id'],
    },
  },
  sideEffects: false,
  async run(args, ctx) {
    const id = normalizeId(stringArg(args, 'id'))
    const wasOpen = ctx.findings.list().some((f) => f.id === id && f.status === 'open')
    const f = ctx.findings.resolve(id)
    return wasOpen ? `resolved ${f.id} ${location(f)}` : `${f.id} was already resolved`
  },
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
