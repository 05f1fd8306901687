/** Records as saved and the views shown to users (progress line, `list --json`, `status --json`). */
import type { Snapshot } from 'xstate'
import { SCHEMA_VERSION, type LoopRecord } from '../adapters/snapshot-store.ts'
import type { PersistedLoop } from '../machines/persisted.ts'
import type { Role } from '../machines/chat.types.ts'
import { currentModel, roleOfPhase } from '../machines/loop.context.ts'
import type {
  AuditRecord,
  Finding,
  LoopContext,
  LoopReason,
  LoopStatus,
  Phase,
  Severity,
  UsageTotals,
} from '../machines/loop.types.ts'

export type { PersistedLoop }

/**
 * A loop actor's persisted snapshot as it is saved: without its invoked children (the
 * session, a commit). A restore never uses them: `loop.restored` re-enters `running`,
 * which invokes fresh ones from the current context (services/engine.ts). XState
 * saves each child's input, a copy of the whole context at the time it was invoked:
 * about half of every record, written on every state change.
 */
export function savedSnapshot(actor: { getPersistedSnapshot(): Snapshot<unknown> }): PersistedLoop {
  const saved: PersistedLoop = { ...(actor.getPersistedSnapshot() as unknown as PersistedLoop) }
  saved.children = {}
  return saved
}

/**
 * A saved snapshot made ready to restore: without children (see `savedSnapshot`), and
 * its context copied with a spread: V8 keeps an object from JSON.parse with this many
 * keys in dictionary mode, and so would every context XState's `assign` copies from
 * it (Object.assign), for the rest of the loop; a spread copy has a fast shape.
 */
export function restorable(saved: PersistedLoop): PersistedLoop {
  return { ...saved, children: {}, context: { ...saved.context } }
}

/** The one cast between our typed record and XState's snapshot union. */
export function actorSnapshot(saved: PersistedLoop): Snapshot<unknown> {
  return saved as Snapshot<unknown>
}

/** One loop in `list --json` (stable: fields are only ever added). */
export interface LoopView {
  name: string
  status: LoopStatus | 'queued'
  reason: LoopReason | null
  phase: Phase
  iteration: number
  /** Kind of task: plain, sectioned or goal. */
  kind: LoopContext['task']['kind']
  title: string
  /** 1-based section in progress and the number of sections; null for plain and goal loops. */
  section: { index: number; count: number } | null
  /** The statechart state, e.g. `running.coding.watching`. */
  state: string
  openFindings: number
  tokens: number
  costUsd: number
  /** Running time, ms (paused time excluded). */
  elapsedMs: number
  createdAt: string
  updatedAt: string
  /**
   * While the loop waits to retry a failed model call: when it tries again (ISO),
   * which attempt that is of how many (`attempt` of `of`, the first call counting),
   * on which model, after which failure (its code; `status --json` has the message
   * in `error`). Null otherwise.
   */
  retry: { at: string; attempt: number; of: number; model: string; code: string } | null
  /**
   * The pid of the live process that runs the loop (its claim's owner), or null when
   * none does: set by `list` (null for ended loops); absent where nobody asked.
   */
  owner?: number | null
}

/** `status --json`: the view plus findings, sections and usage. */
export interface LoopDetail extends LoopView {
  workspace: string
  models: { coder: string[]; auditor: string[] }
  findings: Finding[]
  sections: { title: string; status: 'pending' | 'active' | 'done'; attempts: number; summary: string | null }[]
  usage: UsageTotals
  lastAudit: AuditRecord | null
  error: { name: string; message: string; code: string } | null
  inbox: string[]
  /** Tool calls refused or failed over the loop, by kind, most first. */
  toolErrors: { kind: string; count: number }[]
  /** The loop and history entry it was forked from, or null. */
  forkedFrom: { name: string; seq: number } | null
  /** The model each role uses now: a later one of its chain once it fell back. */
  activeModels?: { coder: string; auditor: string }
  /** Model calls that ended without an answer (failed, or cut off by the watchdog), by model and role. */
  failedCalls?: { total: number; byModel: Record<string, number>; byRole: Record<Role, number> }
  /** The models a price is set for (the others cost nothing: their cost is unknown, not zero). */
  pricedModels?: string[]
  /** Severities that block completion (what made an audit dirty). */
  blockOn?: Severity[]
  /** The git branch and worktree of a loop on a repository; null for a plain directory. */
  git?: { branch: string; repo: string; worktree: string; base: string } | null
}

export function stateString(value: unknown): string {
  if (typeof value === 'string') return value
  if (value && typeof value === 'object') {
    const [k, v] = Object.entries(value as Record<string, unknown>)[0] ?? []
    if (k === undefined) return ''
    const rest = stateString(v)
    return rest === '' ? k : `${k}.${rest}`
  }
  return ''
}

/** `running.coding.watching` → `running.coding`; `paused` → `paused`. */
export function phaseState(state: string): string {
  const first = state.indexOf('.')
  if (first < 0) return state
  const second = state.indexOf('.', first + 1)
  return second < 0 ? state : state.slice(0, second)
}

export function recordOf(snapshot: PersistedLoop, createdAt: string, queued = false): LoopRecord {
  const c = snapshot.context
  return {
    schemaVersion: SCHEMA_VERSION,
    name: c.name,
    status: queued ? 'queued' : c.status,
    reason: c.reason,
    phase: c.phase,
    iteration: c.iteration,
    createdAt,
    updatedAt: new Date().toISOString(),
    snapshot,
  }
}

export function viewOf(record: LoopRecord, now = Date.now()): LoopView {
  const c = record.snapshot.context
  const u = c.usage.total
  return {
    name: record.name,
    status: record.status,
    reason: record.reason,
    phase: c.phase,
    iteration: c.iteration,
    kind: c.task.kind,
    title: c.task.title,
    section: c.task.kind === 'sectioned' ? { index: c.sectionIndex + 1, count: c.sectionStates.length } : null,
    state: stateString(record.snapshot.value),
    openFindings: c.findings.filter((f) => f.status === 'open').length,
    tokens: u.inputTokens + u.outputTokens,
    costUsd: u.costUsd,
    elapsedMs: c.wallMs + (c.runningSince !== null && record.status === 'running' ? Math.max(0, now - c.runningSince) : 0),
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    retry: stateString(record.snapshot.value) === 'running.backingOff' ? retryOf(c) : null,
  }
}

/** The retry a loop backing off waits for (`LoopView.retry`). */
function retryOf(c: LoopContext): LoopView['retry'] {
  if (c.retryDeadline === null || c.retryDeadline === undefined) return null
  const role = roleOfPhase(c.phase)
  return {
    at: new Date(c.retryDeadline).toISOString(),
    attempt: c.errorCount + 1,
    of: c.config.maxRetries + 1,
    model: currentModel(c, role),
    code: c.lastError?.code ?? 'error',
  }
}

/** Calls per model and role that reached the loop without an answer: `calls` counts them all, usage the answered ones. */
function failedCallsOf(c: LoopContext): NonNullable<LoopDetail['failedCalls']> {
  const made = { byModel: {} as Record<string, number>, byRole: { coder: 0, auditor: 0 } as Record<Role, number> }
  for (const [key, n] of Object.entries(c.calls ?? {})) {
    const at = key.indexOf(':')
    const role = key.slice(0, at) as Role
    const model = key.slice(at + 1)
    made.byModel[model] = (made.byModel[model] ?? 0) + n
    if (role in made.byRole) made.byRole[role] += n
  }
  const byModel: Record<string, number> = {}
  for (const [model, n] of Object.entries(made.byModel)) {
    const failed = n - (c.usage.byModel[model]?.calls ?? 0)
    if (failed > 0) byModel[model] = failed
  }
  const byRole = {
    coder: Math.max(0, made.byRole.coder - c.usage.byRole.coder.calls),
    auditor: Math.max(0, made.byRole.auditor - c.usage.byRole.auditor.calls),
  }
  return { total: byRole.coder + byRole.auditor, byModel, byRole }
}

export function detailOf(record: LoopRecord): LoopDetail {
  const c = record.snapshot.context
  return {
    ...viewOf(record),
    workspace: c.workspace,
    models: { coder: c.config.models, auditor: c.config.auditorModels },
    findings: c.findings,
    sections: c.sectionStates.map(({ title, status, attempts, summary }) => ({ title, status, attempts, summary })),
    usage: c.usage,
    lastAudit: c.lastAudit,
    error: c.lastError && { name: c.lastError.name, message: c.lastError.message, code: c.lastError.code },
    inbox: c.inbox,
    forkedFrom: c.forkedFrom ?? null,
    toolErrors: Object.entries(c.toolErrors ?? {})
      .map(([kind, count]) => ({ kind, count }))
      .sort((a, b) => b.count - a.count || (a.kind < b.kind ? -1 : 1)),
    activeModels: { coder: currentModel(c, 'coder'), auditor: currentModel(c, 'auditor') },
    failedCalls: failedCallsOf(c),
    pricedModels: Object.keys(c.config.prices ?? {}),
    blockOn: c.config.blockOn,
    git: c.git ? { branch: c.git.branch, repo: c.git.repo, worktree: c.git.worktree, base: c.git.base } : null,
  }
}
