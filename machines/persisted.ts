/**
 * The loop actor's persisted snapshot: what a record holds and a restore starts
 * from (docs/architecture.md "Persistence"). Every reader of a record gets this
 * type from the store, which checks each record with `snapshotProblem` as it reads
 * it: a record that fails is quarantined like any bad file, never half-used.
 */
import type { LoopContext } from './loop.types.ts'

/** The statuses of an XState actor snapshot. */
export type ActorStatus = 'active' | 'done' | 'error' | 'stopped'

/** `actor.getPersistedSnapshot()` of a loop actor, as saved (without its children). */
export interface PersistedLoop {
  status: ActorStatus
  /** The state value, e.g. `{ running: 'coding' }`. */
  value: unknown
  context: LoopContext
  /** The machine's output, once `status` is `done`. */
  output?: unknown
  error?: unknown
  /** Saved empty: a restore invokes fresh children (docs/architecture.md "Persistence"). */
  children?: Record<string, unknown>
  historyValue?: unknown
}

const STATUSES = new Set(['active', 'done', 'error', 'stopped'])
const NUMBERS = ['iteration', 'rework', 'sectionIndex', 'audits', 'nextFindingId', 'errorCount', 'stalls', 'wallMs', 'startedAt'] as const
const STRINGS = ['name', 'status', 'phase', 'workspace'] as const
const ARRAYS = ['findings', 'sectionStates', 'inbox', 'sections'] as const
const OBJECTS = ['calls', 'usage', 'modelIndex', 'task', 'config'] as const

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * Why `value` cannot be a loop's persisted snapshot (one phrase), or null when it
 * can. Checks the shape every reader relies on (the fields views, restores and
 * commands read without looking), not every field's meaning: the machine's own
 * guards and the migrations keep those.
 */
export function snapshotProblem(value: unknown): string | null {
  if (!isObject(value)) return value === null || value === undefined ? 'it has no snapshot' : 'its snapshot is not an object'
  if (typeof value.status !== 'string' || !STATUSES.has(value.status)) return 'its snapshot has no actor status'
  if (typeof value.value !== 'string' && !isObject(value.value)) return 'its snapshot has no state value'
  const c = value.context
  if (!isObject(c)) return 'its snapshot has no context'
  for (const key of STRINGS) if (typeof c[key] !== 'string') return `its snapshot's context.${key} is not a string`
  for (const key of NUMBERS) if (typeof c[key] !== 'number' || !Number.isFinite(c[key])) return `its snapshot's context.${key} is not a number`
  for (const key of ARRAYS) if (!Array.isArray(c[key])) return `its snapshot's context.${key} is not a list`
  for (const key of OBJECTS) if (!isObject(c[key])) return `its snapshot's context.${key} is not an object`
  const task = c.task as Record<string, unknown>
  if (task.kind !== 'plain' && task.kind !== 'sectioned' && task.kind !== 'goal') return "its snapshot's task has no known kind"
  if (typeof task.title !== 'string' || typeof task.text !== 'string') return "its snapshot's task has no title or text"
  const config = c.config as Record<string, unknown>
  if (!Array.isArray(config.models) || !Array.isArray(config.auditorModels)) return "its snapshot's config has no models"
  const usage = c.usage as Record<string, unknown>
  if (!isObject(usage.total) || !isObject(usage.byModel) || !isObject(usage.byRole)) return "its snapshot's usage is not totals"
  for (const [i, f] of (c.findings as unknown[]).entries()) {
    if (!isObject(f) || typeof f.id !== 'string' || (f.status !== 'open' && f.status !== 'resolved')) {
      return `its snapshot's finding ${i + 1} has no id or status`
    }
  }
  for (const [i, m] of (c.inbox as unknown[]).entries()) {
    if (typeof m !== 'string') return `its snapshot's inbox message ${i + 1} is not text`
  }
  return null
}
