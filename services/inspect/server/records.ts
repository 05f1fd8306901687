/**
 * Records and history entries as the viewer handles them: a record made from an
 * inspector's snapshot, history entries without their sessions' journals, and
 * entries as the page lists them.
 */
import { SCHEMA_VERSION, type HistoryEntry, type LoopRecord } from '../../../adapters/snapshot-store.ts'
import type { LoopContext } from '../../../machines/loop.types.ts'
import type { ActorStatus, PersistedLoop } from '../../../machines/persisted.ts'
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

/** History entries keep what the viewer shows: the journal (the session's transcript) is dropped. */
export function slim(entry: HistoryEntry): HistoryEntry {
  const snap = entry.snapshot as Snap | undefined
  if (!snap?.context) return entry
  const snapshot: PersistedLoop = { status: snap.status ?? 'active', value: snap.value, context: { ...snap.context, journal: null } }
  return { ...entry, snapshot }
}

export function pageEntry(h: HistoryEntry): PageHistoryEntry {
  const { snapshot, ...rest } = h
  return { ...rest, snapshot: snapshot !== undefined }
}
