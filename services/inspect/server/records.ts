/**
 * Records and history entries as the viewer handles them: a record made from an
 * inspector's snapshot, history entries without their sessions' journals (with the
 * section each happened in, and the event when it was seen live), entries as the
 * page lists them, events' payloads as the page gets them, and an inspector's cut
 * texts made whole again from the store.
 */
import { SCHEMA_VERSION, type HistoryEntry, type LoopRecord } from '../../../adapters/snapshot-store.ts'
import type { LoopContext } from '../../../machines/loop.types.ts'
import type { ActorStatus, PersistedLoop } from '../../../machines/persisted.ts'
import { sanitize } from '../sanitize.ts'
import type { PageHistoryEntry } from './types.ts'

/** A loop actor's snapshot as an inspector sends it (or a history entry holds it). */
export interface Snap {
  status?: ActorStatus
  value: unknown
  context: LoopContext
}

/** The record a snapshot stands for (one seen by an inspector, or saved in the history). */
export function syntheticRecord(name: string, snap: Snap, createdAt: string, updatedAt: string): LoopRecord {
  const c = snap.context
  return {
    schemaVersion: SCHEMA_VERSION,
    name,
    status: c.status,
    reason: c.reason,
    phase: c.phase,
    iteration: c.iteration,
    createdAt,
    updatedAt,
    snapshot: { status: snap.status ?? 'active', value: snap.value, context: c },
  }
}

/**
 * A history entry as the viewer keeps it: the section it happened in (sectioned
 * loops, `withSections`) and, for transitions seen by inspection events, the event.
 */
export type ViewerEntry = HistoryEntry & { section?: number | null; payload?: unknown }

/** History entries keep what the viewer shows: the journal (the session's transcript) is dropped. */
export function slim(entry: HistoryEntry): ViewerEntry {
  const snap = entry.snapshot as Snap | undefined
  if (!snap?.context) return entry
  const snapshot: PersistedLoop = { status: snap.status ?? 'active', value: snap.value, context: { ...snap.context, journal: null } }
  return { ...entry, snapshot }
}

export function pageEntry(h: ViewerEntry): PageHistoryEntry {
  const { snapshot, ...rest } = h
  return { ...rest, snapshot: snapshot !== undefined }
}

/** The 1-based section a context is in, or null for a loop that is not sectioned. */
export function sectionOf(context: LoopContext | undefined): number | null {
  return context?.task?.kind === 'sectioned' && typeof context.sectionIndex === 'number' ? context.sectionIndex + 1 : null
}

/**
 * Sets each entry's section: the one of its snapshot, else the one of the last
 * snapshot before it (a transition without a snapshot stays in its phase, so in its
 * section); `before` is the section of the entry before the first (null: unknown).
 */
export function withSections(entries: ViewerEntry[], before: number | null): ViewerEntry[] {
  let section = before
  for (const e of entries) {
    const snap = e.snapshot as Snap | undefined
    if (snap?.context) section = sectionOf(snap.context)
    e.section = section
  }
  return entries
}

/** What an event of the inspector stream keeps of the event it saw: sanitized, capped. */
const PAYLOAD_LIMITS = { maxString: 2000, maxItems: 50, maxDepth: 8, keepMessages: 3 }
const PAYLOAD_MAX_CHARS = 16_000

export function eventPayload(event: unknown): unknown {
  if (event === undefined || event === null) return null
  let clean: unknown
  try {
    clean = sanitize(event, PAYLOAD_LIMITS)
  } catch {
    return null
  }
  const text = JSON.stringify(clean) ?? 'null'
  return text.length <= PAYLOAD_MAX_CHARS ? clean : { preview: `${text.slice(0, PAYLOAD_MAX_CHARS)}…`, chars: text.length }
}

/** A string an inspector cut (`…(N chars)`: N was its length), or an array it cut (`…(N more)` last). */
const CUT_STRING = /…\((\d+) chars\)$/
const CUT_ARRAY = /^…\((\d+) more\)$/

/**
 * `cut` (data from an inspector's snapshot, whose long strings and arrays its
 * sanitize cut) with the whole values of `whole` (the same data from the store)
 * where they are the same: a cut string is taken from `whole` when the string there
 * has the original's length and starts alike; a cut array when it has the original's
 * length. Anything else stays as it is.
 */
export function uncut<T>(cut: T, whole: unknown): T {
  if (typeof cut === 'string') {
    const m = CUT_STRING.exec(cut)
    if (!m || typeof whole !== 'string' || whole.length !== Number(m[1])) return cut
    const head = cut.slice(0, Math.min(16, m.index))
    return (whole.startsWith(head) ? whole : cut) as T
  }
  if (Array.isArray(cut)) {
    if (!Array.isArray(whole)) return cut
    const last = cut.at(-1)
    const m = typeof last === 'string' ? CUT_ARRAY.exec(last) : null
    if (m && whole.length === cut.length - 1 + Number(m[1])) return whole as T
    return cut.map((v, i) => uncut(v, whole[i])) as T
  }
  if (cut !== null && typeof cut === 'object' && whole !== null && typeof whole === 'object' && !Array.isArray(whole)) {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(cut)) out[k] = uncut(v, (whole as Record<string, unknown>)[k])
    return out as T
  }
  return cut
}
