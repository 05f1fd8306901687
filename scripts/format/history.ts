/**
 * The `history` table: by default in the user's words (what happened, in which
 * state, how long ago); `--raw` gives the statechart's own event and state names
 * and local times.
 */
import type { HistoryEntry } from '../../adapters/snapshot-store.ts'
import { plain, type Style } from '../term.ts'
import { fitTable, type FitStep } from './table.ts'
import { localTime, relativeTime } from './text.ts'

/** A history entry as `history --json` prints it: the snapshot itself is left out, `hasSnapshot` says whether there is one. */
export type HistoryLine = Omit<HistoryEntry, 'snapshot'> & { hasSnapshot: boolean }

export function historyLine({ snapshot, ...entry }: HistoryEntry): HistoryLine {
  return { ...entry, hasSnapshot: snapshot !== undefined }
}

const RUNNING_STATES: Record<string, string> = {
  dispatching: 'starting',
  coding: 'coding',
  checking: 'running checks',
  auditing: 'auditing',
  judgingAudit: 'judging the audit',
  finalAuditing: 'final audit',
  judgingFinalAudit: 'judging the audit',
  finalAuditFix: 'final fix',
  failed: 'call failed',
  committing: 'committing',
  backingOff: 'waiting to retry',
}

/** A statechart state as people say it: `running.coding.watching` → `coding`, `running.backingOff` → `waiting to retry`. */
export function stateLabel(state: string): string {
  if (state === '') return '(start)'
  const [top, sub] = state.split('.')
  if (top !== 'running') return state
  return sub === undefined ? 'running' : (RUNNING_STATES[sub] ?? sub)
}

const EVENTS: Record<string, string> = {
  'xstate.init': 'started',
  'loop.pause': 'paused',
  'loop.resume': 'resumed',
  'loop.cancel': 'cancelled',
  'loop.restored': 'restored',
  'loop.continue': 'continued',
  'loop.say': 'message',
  'loop.workspaceFailed': 'workspace failed',
  'session.failed': 'model call failed',
  'session.turn': 'budget spent',
}

const DELAYS: Record<string, string> = {
  retryBackoff: 'retry',
  stallTimeout: 'stall timeout',
  wallBudget: 'time budget spent',
}

/** Invoked actors: `xstate.done.actor.<id>` and `xstate.error.actor.<id>`. */
const ACTORS: Record<string, { done: string; error: string }> = {
  commit: { done: 'committed', error: 'commit failed' },
  checks: { done: 'checks ran', error: 'checks could not run' },
  session: { done: 'session ended', error: 'session failed' },
}

/**
 * What moved the loop, in the user's words: `started`, `coder finished`, `audit
 * dirty (1 blocking)`, `model call failed (ECONNREFUSED)`, `retry`, `stall timeout`,
 * `paused` …; the saved snapshot of the entry, when there is one, tells the audit's
 * verdict and the failure's code.
 */
export function eventLabel(entry: Pick<HistoryEntry, 'event' | 'from' | 'snapshot'>): string {
  const { event, from } = entry
  const c = entry.snapshot?.context
  if (event === 'session.done') {
    const auditor = /^running\.(auditing|finalAuditing)\b/.test(from)
    if (!auditor) return 'coder finished'
    const a = c?.lastAudit
    if (!a) return 'audit finished'
    if (a.verdict === 'clean' || (a.verdict === undefined && a.clean)) return 'audit clean'
    if (a.verdict === 'checksFailing') return 'audit: checks fail'
    if (a.verdict === 'summaryMissing') return 'audit: no summary'
    return `audit dirty (${a.blocking} blocking)`
  }
  if (event === 'session.failed') return c?.lastError ? `model call failed (${c.lastError.code})` : EVENTS[event]!
  if (EVENTS[event]) return EVENTS[event]
  const after = /^xstate\.after\.([^.]+)/.exec(event)
  if (after) return DELAYS[after[1]!] ?? `after ${after[1]}`
  const actor = /^xstate\.(done|error)\.actor\.(.+)$/.exec(event)
  if (actor) {
    const id = actor[2]!
    const kind = ACTORS[Object.keys(ACTORS).find((k) => id.includes(k)) ?? 'session']!
    return actor[1] === 'done' ? kind.done : kind.error
  }
  return event
}

export interface HistoryTableOptions {
  style?: Style
  width?: number
  /** The statechart's names and local times instead of the user's words and times ago. */
  raw?: boolean
  now?: number
}

/** The `history` table: one row per transition; `*` marks the entries that keep a snapshot (fork points). */
export function historyTable(entries: (HistoryEntry | HistoryLine)[], { style = plain, width = Infinity, raw = false, now = Date.now() }: HistoryTableOptions = {}): string {
  const kept = (e: HistoryEntry | HistoryLine) => ('hasSnapshot' in e ? e.hasSnapshot : e.snapshot !== undefined)
  const rows = entries.map((e) => [
    String(e.seq),
    raw ? localTime(e.at) : relativeTime(e.at, now),
    raw ? e.event : eventLabel(e as HistoryEntry),
    raw ? `${e.from || '(start)'} → ${e.to}` : `${stateLabel(e.from)} → ${stateLabel(e.to)}`,
    String(e.iteration),
    kept(e) ? '*' : '',
  ])
  // --raw is for the exact names: they are never cut (a narrow terminal wraps them)
  const fit: FitStep[] = raw ? [] : [{ shrink: 3, min: 24 }, { shrink: 2, min: 16 }]
  return fitTable(
    [
      { header: 'SEQ', right: true, paint: (c) => style.dim(c) },
      { header: 'TIME', paint: (c) => style.dim(c) },
      { header: 'EVENT', paint: (c) => (/fail|timeout|dirty|spent/.test(c) ? style.yellow(c) : c) },
      { header: 'FROM → TO' },
      { header: 'ITER', right: true },
      { header: 'FORK' },
    ],
    rows,
    { width, fit },
  )
}
