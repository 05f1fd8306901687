/**
 * The snapshot store contract. One record per loop; writing one loop never
 * rewrites another. Implementations: lowdb JSON files (adapters/json-store.ts)
 * and memory (adapters/memory-store.ts).
 */
import type { LoopReason, LoopStatus, Phase } from '../machines/loop.types.ts'
import type { PersistedLoop } from '../machines/persisted.ts'
import type { ClaimStore } from './claims.ts'
import type { CommandInbox } from './inbox.ts'
import type { ChatMessage } from '../machines/chat.types.ts'
import type { CheckResult } from '../machines/loop.types.ts'

export type { PersistedLoop }

/** Current version of the record layout (and of the snapshot inside it). */
export const SCHEMA_VERSION = 4

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
  /**
   * The actor's persisted snapshot (a queued loop's is its initial snapshot). A store
   * returns only records whose snapshot passes `snapshotProblem` (machines/persisted.ts).
   */
  snapshot: PersistedLoop
}

/** One line of a loop's append-only history: a transition, and at phase boundaries the snapshot after it. */
export interface HistoryEntry {
  /** 1-based, increasing per loop, given by the store; kept across restarts and compaction. */
  seq: number
  /** ISO time. */
  at: string
  /** Type of the event that moved the loop (`session.done`, `loop.pause`, `xstate.init` …). */
  event: string
  from: string
  to: string
  iteration: number
  phase: Phase
  /**
   * The persisted snapshot after the transition, at phase boundaries only (what `fork
   * --at` starts from). A store leaves out a saved snapshot that fails `snapshotProblem`.
   */
  snapshot?: PersistedLoop
}

/** One session's transcript, as a store keeps it after the session (`loopstate log`). */
export interface TranscriptSession {
  /** The session's number in the loop. */
  id: number
  head: { role: string; phase: string; iteration: number; section: number; at: string } | null
  messages: ChatMessage[]
  /** The runs of the loop's checks after this (coder) session's pass. */
  checks?: { at: string; results: CheckResult[] }[]
}

/** What `remove` found of a loop, and removed. */
export interface RemovedLoop {
  record: boolean
  history: boolean
  /** Its sessions' transcripts. */
  journal: boolean
  /** Commands that were waiting for its owner. */
  commands: number
  /** Claims left by owners that are gone (a live owner's claim is its own to release). */
  claims: number
}

/** An entry before the store numbers it. */
export type NewHistoryEntry = Omit<HistoryEntry, 'seq'>

export interface SnapshotStore {
  /** The record, or null when there is none. */
  get(name: string): Promise<LoopRecord | null>
  /** Writes one record (atomically where the medium allows). */
  put(record: LoopRecord): Promise<void>
  /** Every record, oldest first (by createdAt, then name). */
  list(): Promise<LoopRecord[]>
  /** Names in use (for unique naming). */
  has(name: string): Promise<boolean>
  /**
   * Appends to the loop's history (O(1) in the history's size), numbering the
   * entries after the last one, and keeping about the
   * last `keep` entries: older ones are dropped once the log grows well past it.
   */
  appendHistory(name: string, entries: NewHistoryEntry[], keep: number): Promise<void>
  /** The loop's history, oldest first (empty when there is none). */
  history(name: string): Promise<HistoryEntry[]>
  /** Waits for pending writes to land. */
  flush(): Promise<void>
  /**
   * Who owns each loop (adapters/claims.ts): a loop is claimed before anything acts
   * on it, and every write of its owner is fenced by `claims.held`.
   */
  readonly claims: ClaimStore
  /** Commands on their way to a loop's owner (adapters/inbox.ts). */
  readonly inbox: CommandInbox
  /** The sessions' transcripts the store keeps, oldest first (`loopstate log`); [] when it keeps none. */
  transcript(name: string): Promise<TranscriptSession[]>
  /**
   * Removes everything the store keeps of the loop: its record, history, transcripts,
   * waiting commands and the claims of owners that are gone; nothing of another loop.
   * A name removed is free again (a new loop of it starts with an empty history). The
   * caller makes sure no live process runs the loop (`LoopClient.remove` holds its
   * claim, or its owner is done with it).
   */
  remove(name: string): Promise<RemovedLoop>
}
