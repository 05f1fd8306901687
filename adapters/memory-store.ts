/** In-memory `SnapshotStore`: for tests and throwaway runs. Records are copied in and out. */
import { MemoryClaims } from './claims.ts'
import { MemoryInbox } from './inbox.ts'
import type { HistoryEntry, LoopRecord, NewHistoryEntry, RemovedLoop, SnapshotStore, TranscriptSession } from './snapshot-store.ts'

/** Loop names: lowercase letters, digits and dashes, 1–80 characters, not starting with a dash. */
export const LOOP_NAME = /^[a-z0-9][a-z0-9-]{0,79}$/

/** Throws `snapshot-store: invalid loop name '<name>'` unless `name` matches `LOOP_NAME`. */
export function assertLoopName(name: string): void {
  if (typeof name !== 'string' || !LOOP_NAME.test(name)) {
    throw new Error(`snapshot-store: invalid loop name '${String(name)}'`)
  }
}

/** Orders records oldest first: by createdAt, then name. */
export function byCreatedAt(a: LoopRecord, b: LoopRecord): number {
  return a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0
}

/** A `SnapshotStore` kept in a Map; `structuredClone` on the way in and out. */
export class MemoryStore implements SnapshotStore {
  readonly #records = new Map<string, LoopRecord>()
  readonly #history = new Map<string, HistoryEntry[]>()
  /** Every session's latest transcript, by loop and session number. */
  readonly #transcripts = new Map<string, Map<number, TranscriptSession>>()
  /** Claims of this process's owners only: one store object, one process. */
  readonly claims = new MemoryClaims()
  readonly inbox = new MemoryInbox()

  async get(name: string): Promise<LoopRecord | null> {
    assertLoopName(name)
    const record = this.#records.get(name)
    return record ? structuredClone(record) : null
  }

  async put(record: LoopRecord): Promise<void> {
    assertLoopName(record.name)
    this.#records.set(record.name, structuredClone(record))
    const j = record.snapshot.context.journal
    if (j && typeof j.id === 'number') {
      let sessions = this.#transcripts.get(record.name)
      if (!sessions) this.#transcripts.set(record.name, (sessions = new Map()))
      const head = sessions.get(j.id)?.head ?? { role: j.role, phase: j.phase, iteration: j.iteration, section: j.sectionIndex, at: new Date().toISOString() }
      sessions.set(j.id, { id: j.id, head, messages: structuredClone(j.messages) })
    }
  }

  async transcript(name: string): Promise<TranscriptSession[]> {
    assertLoopName(name)
    return structuredClone([...(this.#transcripts.get(name)?.values() ?? [])].sort((a, b) => a.id - b.id))
  }

  async list(): Promise<LoopRecord[]> {
    return [...this.#records.values()].map((r) => structuredClone(r)).sort(byCreatedAt)
  }

  async appendHistory(name: string, entries: NewHistoryEntry[], keep: number): Promise<void> {
    assertLoopName(name)
    const old = this.#history.get(name) ?? []
    let seq = old[old.length - 1]?.seq ?? 0
    const log = old.concat(entries.map((e) => ({ seq: ++seq, ...structuredClone(e) })))
    this.#history.set(name, log.length > keep ? log.slice(log.length - keep) : log)
  }

  async history(name: string): Promise<HistoryEntry[]> {
    assertLoopName(name)
    return structuredClone(this.#history.get(name) ?? [])
  }

  async has(name: string): Promise<boolean> {
    assertLoopName(name)
    return this.#records.has(name)
  }

  async flush(): Promise<void> {}

  /** Drops the loop's record, history, transcripts and waiting commands (claims here are their owners' to release). */
  async remove(name: string): Promise<RemovedLoop> {
    assertLoopName(name)
    const removed: RemovedLoop = {
      record: this.#records.delete(name),
      history: this.#history.delete(name),
      journal: this.#transcripts.delete(name),
      commands: (await this.inbox.take(name)).length,
      claims: 0,
    }
    return removed
  }
}
