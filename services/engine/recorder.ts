/**
 * The recorder: every state change of a live loop becomes its record in the store
 * (a fenced write: a loop whose claim another process took is not saved any more)
 * and, when its state changed, a line of its history, with the snapshot at phase
 * boundaries (what `fork --at` starts from). Checkpoints bring the running time up
 * to date before a stop (docs/architecture.md "Persistence").
 */
import type { Claim } from '../../adapters/claims.ts'
import type { NewHistoryEntry, SnapshotStore } from '../../adapters/snapshot-store.ts'
import type { PersistedLoop } from '../../machines/persisted.ts'
import { phaseState, recordOf, savedSnapshot, stateString } from '../views.ts'
import type { LiveLoop } from './types.ts'

export interface RecorderEvents {
  /** Another process took the loop's claim: it must stop here, unsaved. */
  lost(loop: LiveLoop): void
  /** A save failed (ENOSPC, EIO …): no progress without durability. */
  failed(loop: LiveLoop, name: string, err: unknown): void
}

export class Recorder {
  /** Writes and appends in flight. */
  readonly #pending = new Set<Promise<void>>()

  constructor(
    private readonly store: SnapshotStore,
    private readonly held: (claim: Claim) => boolean,
    private readonly historyLimit: number,
    private readonly onProblem: (message: string) => void,
    private readonly on: RecorderEvents,
  ) {}

  /**
   * The loop's actor emitted a snapshot: when its state or context changed (or it
   * ended) the record is rebuilt and saved and a transition logged. Returns the
   * write, or null when nothing changed.
   */
  changed(loop: LiveLoop, eventType: string): Promise<void> | null {
    const actorSnapshot = loop.actor.getSnapshot()
    const state = stateString(actorSnapshot.value)
    if (actorSnapshot.context === loop.lastContext && state === loop.lastState && actorSnapshot.status !== 'done') return null
    const from = loop.lastState
    loop.lastContext = actorSnapshot.context
    loop.lastState = state
    const snapshot = savedSnapshot(loop.actor)
    loop.record = recordOf(snapshot, loop.createdAt)
    const written = this.save(loop)
    if (state !== from || eventType === 'loop.restored') this.#logTransition(loop, eventType, from, state, snapshot)
    return written
  }

  /** Saves the loop as it stands, its running time brought up to now (before its actor stops). */
  checkpoint(loop: LiveLoop): Promise<void> {
    loop.record = recordOf(checkpointWall(savedSnapshot(loop.actor)), loop.createdAt)
    return this.save(loop)
  }

  /** Saves the loop's current record; resolves when it (or a later one) is on disk. */
  save(loop: LiveLoop): Promise<void> {
    // Fencing: a loop whose claim another process took is not this engine's to save any more.
    if (!this.held(loop.claim)) {
      this.on.lost(loop)
      return loop.lastWrite
    }
    // The handler keeps only the name: a record held until its put settles would keep every
    // intermediate snapshot of a busy loop alive while its writes queue.
    const name = loop.record.name
    const put = this.store.put(loop.record)
    // The store gives a put that joins a write already waiting that write's promise: it has its handlers.
    if (put === loop.lastPut) return loop.lastWrite
    loop.lastPut = put
    const p = put.then(
      () => {},
      (err: unknown) => this.on.failed(loop, name, err),
    )
    this.#keep(p)
    loop.lastWrite = p
    return p
  }

  /** Waits for every write and append in flight. */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending])
  }

  #logTransition(loop: LiveLoop, event: string, from: string, to: string, snapshot: PersistedLoop): void {
    if (!this.held(loop.claim)) return // fenced like the record: the new owner writes its history
    const c = snapshot.context
    const entry: NewHistoryEntry = { at: new Date().toISOString(), event, from, to, iteration: c.iteration, phase: c.phase }
    // Snapshots at phase boundaries: where the top-level phase state changes (coding → auditing, → paused …).
    if (phaseState(from) !== phaseState(to)) entry.snapshot = snapshot
    const p = this.store.appendHistory(loop.name, [entry], this.historyLimit).catch((err: unknown) => {
      this.onProblem(`engine: could not log history of ${loop.name}: ${err instanceof Error ? err.message : err}`)
    })
    this.#keep(p)
  }

  #keep(p: Promise<void>): void {
    this.#pending.add(p)
    void p.finally(() => this.#pending.delete(p))
  }
}

/** The snapshot with its running time brought up to now (a restore does not count the time it was stopped). */
export function checkpointWall(snapshot: PersistedLoop): PersistedLoop {
  const c = snapshot.context
  if (c.runningSince === null) return snapshot
  const now = Date.now()
  return { ...snapshot, context: { ...c, wallMs: c.wallMs + Math.max(0, now - c.runningSince), runningSince: now } }
}
