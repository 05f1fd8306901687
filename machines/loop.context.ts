/**
 * The loop's context maths, pure (docs/architecture.md "The loop and its sessions"):
 * the initial context, usage and budgets, models and fallback, findings that block,
 * the audit verdict, backoff. The chart (loop.machine.ts) names the guards and
 * actions that use these; this file has no XState in it and is tested directly.
 */
import type { Role } from './chat.types.ts'
import { parseSummary } from './summary.ts'
import { SESSION_EXITS, type SessionExitCode } from './loop.types.ts'
import type {
  AuditRecord,
  AuditVerdict,
  Finding,
  LoopContext,
  LoopEvent,
  LoopInput,
  Phase,
  Usage,
  UsageTotals,
} from './loop.types.ts'

/** setTimeout's ceiling; a longer delay would fire at once. */
export const MAX_DELAY_MS = 2_147_483_647

export const emptyUsage = (): Usage => ({ inputTokens: 0, outputTokens: 0, durationMs: 0, costUsd: 0, calls: 0 })

export function initialContext(input: LoopInput, now: number): LoopContext {
  return {
    ...input,
    status: 'running',
    reason: null,
    phase: 'coding',
    iteration: 1,
    rework: 0,
    sectionIndex: 0,
    sectionStates: input.sections.map((s, i) => ({
      title: s.title,
      body: s.body,
      status: i === 0 ? 'active' : 'pending',
      attempts: 0,
      summary: null,
    })),
    findings: [],
    nextFindingId: 1,
    audits: 0,
    lastAudit: null,
    lastCoderReply: null,
    inbox: [],
    errorCount: 0,
    modelFailures: 0,
    modelIndex: { coder: 0, auditor: 0 },
    lastError: null,
    stalls: 0,
    note: null,
    usage: { total: emptyUsage(), byModel: {}, byRole: { coder: emptyUsage(), auditor: emptyUsage() } },
    wallMs: 0,
    runningSince: null,
    startedAt: now,
    endedAt: null,
    calls: {},
    journal: null,
    stallDeadline: null,
    retryDeadline: null,
    lastPass: null,
    passesWithoutProgress: 0,
    checksPending: false,
    lastChecks: null,
    toolErrors: {},
    forkedFrom: null,
    sessions: 0,
  }
}

/**
 * The kind of a tool call's error, for counting: the tool and the first clause of
 * its error (`write_file: path '../x' leads out of the workspace`), or null for a
 * result that is no error.
 */
export function toolErrorKind(toolName: string, content: string): string | null {
  if (!content.startsWith('error:')) return null
  const text = content.slice('error:'.length).trim().split('\n')[0]!
  const clause = text.split(/ \(|: /)[0]!.slice(0, 80)
  return clause.startsWith('unknown tool') ? clause.replace(/ for the (coder|auditor)$/, '') : `${toolName}: ${clause}`
}

/** The re-prompt after the watchdog aborted a silent model call. */
export const NUDGE_MESSAGE = 'You have been silent for a while. Continue where you left off.'

/** Failures after which the retry starts a fresh session instead of continuing the journal. */
export const FRESH_START_ERRORS: ReadonlySet<string> = new Set<SessionExitCode>([SESSION_EXITS.repetition, SESSION_EXITS.maxTurns])

/** Key of `context.calls`. */
export const callKey = (role: Role, model: string) => `${role}:${model}`

export const bump = (calls: Record<string, number>, role: Role, model: string) => {
  const key = callKey(role, model)
  return { ...calls, [key]: (calls[key] ?? 0) + 1 }
}

/** Is the loop in a session phase (not backing off) — was a session running when it was saved? */
export const inSession = (context: LoopContext) => context.retryDeadline === null && context.stallDeadline !== null

/** On restore: did the watchdog's deadline pass while the engine was down? */
export const stallPassedWhileDown = (context: LoopContext) =>
  inSession(context) && context.stallDeadline !== null && context.stallDeadline <= Date.now()

export function roleOfPhase(phase: Phase): Role {
  return phase === 'auditing' || phase === 'finalAuditing' ? 'auditor' : 'coder'
}

/** The model spec the role uses now (its place in the fallback chain). */
export function currentModel(context: LoopContext, role: Role): string {
  const chain = role === 'coder' ? context.config.models : context.config.auditorModels
  return chain[Math.min(context.modelIndex[role], chain.length - 1)]!
}

/** Open findings that block the audit of `section` (null: every section). */
export function blockingFindings(context: LoopContext, section: number | null): Finding[] {
  return context.findings.filter(
    (f) =>
      f.status === 'open' &&
      context.config.blockOn.includes(f.severity) &&
      (section === null || f.section === section),
  )
}

function addUsage(u: Usage, d: Omit<Usage, 'calls'>): Usage {
  return {
    inputTokens: u.inputTokens + d.inputTokens,
    outputTokens: u.outputTokens + d.outputTokens,
    durationMs: u.durationMs + d.durationMs,
    costUsd: u.costUsd + d.costUsd,
    calls: u.calls + 1,
  }
}

export type TurnEvent = Extract<LoopEvent, { type: 'session.turn' }>

export function usageAfterTurn(context: LoopContext, e: TurnEvent): UsageTotals {
  const price = context.config.prices[e.model]
  const costUsd = price
    ? (e.inputTokens / 1000) * price.inputPer1k + (e.outputTokens / 1000) * price.outputPer1k
    : 0
  const d = { inputTokens: e.inputTokens, outputTokens: e.outputTokens, durationMs: e.durationMs, costUsd }
  const u = context.usage
  return {
    total: addUsage(u.total, d),
    byModel: { ...u.byModel, [e.model]: addUsage(u.byModel[e.model] ?? emptyUsage(), d) },
    byRole: { ...u.byRole, [e.role]: addUsage(u.byRole[e.role], d) },
  }
}

export function wallNow(context: LoopContext): number {
  return context.wallMs + (context.runningSince === null ? 0 : Date.now() - context.runningSince)
}

export function overBudget(context: LoopContext, usage: UsageTotals): boolean {
  const b = context.config.budget
  return (
    (b.maxTokens !== undefined && usage.total.inputTokens + usage.total.outputTokens > b.maxTokens) ||
    (b.maxCostUsd !== undefined && usage.total.costUsd > b.maxCostUsd) ||
    (b.maxWallMs !== undefined && wallNow(context) >= b.maxWallMs)
  )
}

/** Backoff before retry n (1-based): base × 2^(n-1), ± jitter, capped. */
export function backoffMs(config: LoopContext['config']['retryBackoff'], n: number, random = Math.random): number {
  const raw = Math.min(config.maxMs, config.baseMs * 2 ** Math.max(0, n - 1))
  const jittered = raw * (1 + config.jitter * (2 * random() - 1))
  return Math.max(0, Math.min(config.maxMs, Math.round(jittered)))
}

/**
 * The wait before the next retry: the backoff, or longer when the last failure
 * said how long to wait (a 429's `Retry-After`), up to `MAX_RETRY_AFTER_MS`.
 */
export function retryDelayMs(context: Pick<LoopContext, 'config' | 'errorCount' | 'lastError'>, random = Math.random): number {
  const backoff = backoffMs(context.config.retryBackoff, context.errorCount, random)
  const asked = context.lastError?.retryAfterMs
  if (asked === undefined || !Number.isFinite(asked) || asked <= backoff) return backoff
  return Math.min(asked, MAX_RETRY_AFTER_MS)
}

/** The longest `Retry-After` honoured (a server asking for a day is waited on for an hour, then asked again). */
export const MAX_RETRY_AFTER_MS = 3_600_000

export const clampDelay = (ms: number) => Math.min(MAX_DELAY_MS, Math.max(0, ms))

/** The section an audit in the current phase judges (null: the whole plan). */
export const auditSection = (context: LoopContext): number | null =>
  context.task.kind === 'sectioned' && context.phase === 'auditing' ? context.sectionIndex : null

/** Judges the audit that just ended and ages the open findings. */
export function judgeAudit(context: LoopContext, text: string): Pick<LoopContext, 'findings' | 'audits' | 'lastAudit' | 'sectionStates'> {
  const section = auditSection(context)
  const blockers = blockingFindings(context, section)
  const blocking = blockers.length
  const summaryFound = parseSummary(text) !== null
  const verdict: AuditVerdict =
    blocking > 0
      ? blockers.every((f) => f.check !== undefined)
        ? 'checksFailing'
        : 'dirty'
      : section !== null && !summaryFound
        ? 'summaryMissing'
        : 'clean'
  const clean = verdict === 'clean'
  const n = context.audits + 1
  const lastAudit: AuditRecord = { n, phase: context.phase, section, text, clean, summaryFound, blocking, verdict }
  const findings = context.findings.map((f) => {
    if (f.status !== 'open') return f
    const openAudits = f.openAudits + 1
    return { ...f, openAudits, recurring: f.recurring || openAudits >= 3 }
  })
  const sectionStates =
    section === null || clean
      ? context.sectionStates
      : context.sectionStates.map((s, i) => (i === section ? { ...s, attempts: s.attempts + 1 } : s))
  return { findings, audits: n, lastAudit, sectionStates }
}
