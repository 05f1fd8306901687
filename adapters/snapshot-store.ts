/**
 * The snapshot store contract. One record per loop; writing one loop never
 * rewrites another. Implementations: lowdb JSON files (adapters/json-store.ts)
 * and memory (adapters/memory-store.ts).
 */
import type { LoopReason, LoopStatus, Phase } from '../machines/loop.types.ts'

/** Current version of the record layout (and of the snapshot inside it). */
export const SCHEMA_VERSION = 1

/** A loop as saved: summary fields for listing plus the actor's persisted snapshot. */
export interface LoopRecord {
  schemaVersion: number
  name: string
  /** `queued` until the spawner starts the actor. */
  status: LoopStatus | 'queued'
  reason: LoopReason | null
  phase: Phase
  iteration: number
  /** ISO timestamps. */
  createdAt: string
  updatedAt: string
  /** `actor.getPersistedSnapshot()`; null while queued. */
  snapshot: unknown
}

export interface SnapshotStore {
  /** The record, or null when there is none. */
  get(name: string): Promise<LoopRecord | null>
  /** Writes one record (atomically where the medium allows). */
  put(record: LoopRecord): Promise<void>
  /** Every record, oldest first (by createdAt, then name). */
  list(): Promise<LoopRecord[]>
  /** Names in use (for unique naming). */
  has(name: string): Promise<boolean>
  /** Waits for pending writes to land. */
  flush(): Promise<void>
}
