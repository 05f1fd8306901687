/**
 * Findings an audit leaves undecided (docs/architecture.md "Findings"). Small models
 * check a fix and say "all good" without resolving the finding, or never look at an
 * earlier finding again: it would stay open for ever. When an audit session is about
 * to end while blocking findings of earlier audits are open that it neither resolved
 * nor reported again, or its reply reads as clean while blocking findings are open,
 * the session asks the auditor once, in the same session, to decide each one.
 */
import type { ChatMessage } from '../machines/chat.types.ts'
import type { Finding, Severity } from '../machines/loop.types.ts'
import { formatFinding } from './findings-tools.ts'

/** Start of the prompt (one per session: the transcript shows whether it was asked). */
export const DECIDE_NOTICE = 'Before you finish, decide these open findings.'

export interface DecideInput {
  /** The findings as they stand in this session. */
  findings: Finding[]
  /** The audit this session runs (1-based). */
  audit: number
  /** The section this audit is of (null: plain, goal and final audits see every finding). */
  section: number | null
  blockOn: Severity[]
  /** The session's transcript so far. */
  messages: ChatMessage[]
  /** The reply the auditor is about to end with. */
  reply: string
}

/** The prompt that asks the auditor to decide, or null when nothing is left undecided (or it was asked already). */
export function decidePrompt(input: DecideInput): string | null {
  if (input.messages.some((m) => m.role === 'user' && m.content.startsWith(DECIDE_NOTICE))) return null
  const undecided = undecidedFindings(input)
  if (undecided.length === 0) return null
  return [
    DECIDE_NOTICE,
    'These blocking findings are still open and this audit has not decided them:',
    ...undecided.map((f) => `- ${formatFinding(f)}`),
    'For each one, look at the code now: call resolve_finding with its id if the problem is gone, or ' +
      'report_finding again at the same file and line if it is still there. Then give your final reply again, ' +
      'in full (with the summary block if one was asked for).',
  ].join('\n')
}

/** The open blocking findings the audit has to decide (see the header). */
export function undecidedFindings(input: DecideInput): Finding[] {
  const open = input.findings.filter(
    // a check's finding is the check's to decide, not the auditor's
    (f) =>
      f.status === 'open' &&
      f.check === undefined &&
      input.blockOn.includes(f.severity) &&
      (input.section === null || f.section === input.section),
  )
  if (readsClean(input.reply)) return open
  const decided = decidedIds(input.messages)
  return open.filter((f) => f.reportedInAudit < input.audit && !decided.has(f.id))
}

/** Ids the session's findings tools named in their results (resolved, reported again). */
function decidedIds(messages: ChatMessage[]): Set<string> {
  const ids = new Set<string>()
  for (const m of messages) {
    if (m.role !== 'tool' || (m.toolName !== 'resolve_finding' && m.toolName !== 'report_finding')) continue
    if (m.content.startsWith('error')) continue
    for (const id of m.content.match(/\bF\d+\b/g) ?? []) ids.add(id)
  }
  return ids
}

const CLEAN = [
  /\ball (is )?(good|fine|clean|correct|done)\b/i,
  /\blooks? (all )?(good|fine|correct|clean)\b/i,
  /\blgtm\b/i,
  /\bno (remaining |more |open |other |further |outstanding |blocking )?(issues|problems|bugs|findings|defects)\b/i,
  /\bnothing (else |more )?(to fix|remains|left)\b/i,
  /\b(everything|all issues|all findings|all bugs) (is |are |has been |have been )?(now )?(fixed|resolved|addressed|correct)\b/i,
]

/** Whether a reply says the work is clean (a small model's "All good, no issues remain"). */
export function readsClean(reply: string): boolean {
  return CLEAN.some((re) => re.test(reply))
}
