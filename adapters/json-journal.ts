/**
 * The JSON store's session journals (docs/architecture.md "Persistence"): the
 * transcript of a running session (its messages) goes to an append-only file per
 * loop, `journal/<name>.jsonl`, instead of into the record on every state change. A
 * record keeps its journal's bookkeeping and `onDisk`, the number of its messages
 * on file; reading the record puts the messages back. A turn costs the size of the
 * turn, not of the whole transcript, and the transcripts stay after their session
 * (`loopstate log`), the oldest sessions dropped past `keepSessions`.
 *
 * Lines: `{"s":3,"h":{role,phase,iteration,section,at}}` opens session 3,
 * `{"s":3,"i":5,"m":{…}}` is its message 5. A message written again (a shortened
 * transcript, a process that did not know what was on file) is the later line. The
 * file is appended before the record that counts its lines is written, so the
 * messages a record counts are on disk; a line torn by a crash is skipped (and the
 * next append starts on a new line).
 */
import { closeSync, openSync, readFileSync, readSync, fstatSync } from 'node:fs'
import { appendFile, mkdir, rename, rm, writeFile } from 'node:fs/promises'
import type { ChatMessage } from '../machines/chat.types.ts'
import type { CheckResult, SessionJournal } from '../machines/loop.types.ts'
import type { DataDirLayout } from './data-dir.ts'
import type { LoopRecord, TranscriptSession } from './snapshot-store.ts'

export type { TranscriptSession }

/** A record's journal as saved: its messages are on file. */
type SavedJournal = SessionJournal & { onDisk?: number }


/** A line of a journal file: a session's head, one of its messages, or a run of the checks after it. */
interface JournalLine {
  s: number
  h?: TranscriptSession['head']
  i?: number
  m?: ChatMessage
  checks?: CheckResult[]
  at?: string
}

/** Sessions a journal file keeps (the running one included): older ones are dropped as new ones start. */
export const KEEP_SESSIONS = 40

interface Written {
  id: number
  /** Messages of session `id` on file (or on their way). */
  count: number
  /** The last of them, by identity: a transcript rebuilt (shortened) is written whole again. */
  last: ChatMessage | null
}

export class JournalFiles {
  readonly #written = new Map<string, Written>()
  readonly #appends = new Map<string, Promise<void>>()
  /** The last run of each loop's checks written (by identity; what a record read had counts as written). */
  readonly #checks = new Map<string, unknown>()
  /** Each loop's append waiting for the one in flight (lines join it). */
  readonly #batches = new Map<string, { lines: string; trimFrom: number | null; done: Promise<void> }>()
  /** Loops whose file may end in a torn line (not appended to by this process yet). */
  readonly #checked = new Set<string>()
  #dirReady: Promise<unknown> | null = null

  constructor(
    private readonly layout: DataDirLayout,
    private readonly keepSessions = KEEP_SESSIONS,
  ) {}

  /**
   * The record to write (its journal's messages left out) and, in the background,
   * the append of the messages that are not on file yet. `written` resolves when
   * they are: the record must not land before.
   */
  split(record: LoopRecord): { record: LoopRecord; written: Promise<void> } {
    const name = record.name
    const context = record.snapshot.context
    const journal = context.journal as SavedJournal | null
    // A new run of the checks (after the pass of session `sessions`) goes to the transcript too.
    const checks = context.lastChecks ?? null
    let checkLine = ''
    if (checks !== null && checks !== this.#checks.get(name)) {
      checkLine = `${JSON.stringify({ s: context.sessions ?? 0, checks, at: new Date().toISOString() })}\n`
    }
    this.#checks.set(name, checks)
    // no session (or one of an older loopstate, kept whole in the record): nothing to wait for
    if (journal === null || typeof journal.id !== 'number') {
      return { record, written: checkLine === '' ? Promise.resolve() : this.#append(name, checkLine, null).catch(() => {}) }
    }
    const messages = journal.messages
    const before = this.#written.get(name)
    const fresh = before === undefined || before.id !== journal.id
    const appendOnly =
      !fresh && before.count <= messages.length && (before.count === 0 || messages[before.count - 1] === before.last)
    const from = appendOnly ? before.count : 0
    let lines = checkLine
    if (fresh) {
      const head = { role: journal.role, phase: journal.phase, iteration: journal.iteration, section: journal.sectionIndex, at: new Date().toISOString() }
      lines += `${JSON.stringify({ s: journal.id, h: head })}\n`
    }
    for (let i = from; i < messages.length; i++) lines += `${JSON.stringify({ s: journal.id, i, m: messages[i] })}\n`
    this.#written.set(name, { id: journal.id, count: messages.length, last: messages.at(-1) ?? null })
    const written = lines === '' ? this.settled(name) : this.#append(name, lines, fresh ? journal.id : null)
    const saved: SavedJournal = { ...journal, messages: [], onDisk: messages.length }
    return { record: { ...record, snapshot: { ...record.snapshot, context: { ...context, journal: saved } } }, written }
  }

  /** Resolves when the loop's appends so far are on disk (or failed). */
  settled(name: string): Promise<void> {
    return this.#appends.get(name) ?? Promise.resolve()
  }

  /**
   * The record as the engine saved it: its journal's messages read back from the file.
   * A journal whose messages are not all on file (the file was removed or cut) is
   * dropped: the session starts over. `onProblem` hears of it.
   */
  hydrate(record: LoopRecord, onProblem: (message: string) => void): LoopRecord {
    const context = record.snapshot.context
    // the checks as saved are on file already: only a later run is written (what this store
    // wrote itself it knows better: a read of a loop it is writing changes nothing)
    if (!this.#checks.has(record.name)) this.#checks.set(record.name, context.lastChecks ?? null)
    const journal = context.journal as SavedJournal | null
    if (journal === null || typeof journal.id !== 'number' || journal.onDisk === undefined) return record
    const { onDisk, ...rest } = journal
    const found = onDisk === 0 ? [] : this.#messagesOf(record.name, journal.id, onDisk)
    const usable = found !== null && found.length === onDisk
    if (!usable) {
      onProblem(
        `snapshot-store: ${this.layout.journal(record.name)}: session ${journal.id} has ${found?.length ?? 0} of its ${onDisk} messages; ` +
          'its session starts over',
      )
    }
    if (this.#written.get(record.name)?.id !== journal.id) {
      this.#written.set(record.name, usable ? { id: journal.id, count: onDisk, last: found.at(-1) ?? null } : { id: -1, count: 0, last: null })
    }
    const restored = usable ? { ...rest, messages: found } : null
    return { ...record, snapshot: { ...record.snapshot, context: { ...context, journal: restored } } }
  }

  /** Every session on file, oldest first (`loopstate log`). */
  sessions(name: string): TranscriptSession[] {
    const sessions = new Map<number, TranscriptSession>()
    for (const line of this.#lines(name)) {
      let s = sessions.get(line.s)
      if (!s) sessions.set(line.s, (s = { id: line.s, head: null, messages: [] }))
      if (line.h) s.head = line.h
      else if (line.checks) s.checks = [...(s.checks ?? []), { at: line.at ?? '', results: line.checks }]
      else if (typeof line.i === 'number' && line.m) s.messages[line.i] = line.m
    }
    return [...sessions.values()].sort((a, b) => a.id - b.id).map((s) => ({ ...s, messages: s.messages.filter(Boolean) }))
  }

  /** Removes the loop's journal file (its appends in flight land first); true when there was one. */
  async remove(name: string): Promise<boolean> {
    await this.settled(name).catch(() => {})
    for (const state of [this.#written, this.#appends, this.#checks, this.#batches]) state.delete(name)
    this.#checked.delete(name)
    const path = this.layout.journal(name)
    await rm(`${path}.tmp`, { force: true })
    return rm(path).then(
      () => true,
      (err: unknown) => {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
        throw err
      },
    )
  }

  /** Moves the loop's journal aside with its quarantined record. */
  async quarantine(name: string, stamp: string): Promise<string> {
    this.#written.delete(name)
    const path = this.layout.journal(name)
    return rename(path, `${path}.quarantined-${stamp}`).then(
      () => ` (its journal to ${path}.quarantined-${stamp})`,
      () => '',
    )
  }

  #append(name: string, lines: string, newSession: number | null): Promise<void> {
    // Lines that come while the loop's append waits for the one in flight join it: one write.
    const waiting = this.#batches.get(name)
    if (waiting) {
      waiting.lines += lines
      if (newSession !== null) waiting.trimFrom = newSession
      return waiting.done
    }
    const path = this.layout.journal(name)
    const batch = { lines, trimFrom: newSession, done: null as unknown as Promise<void> }
    const previous = this.#appends.get(name) ?? Promise.resolve()
    batch.done = previous
      .catch(() => {})
      .then(async () => {
        this.#batches.delete(name)
        this.#dirReady ??= mkdir(this.layout.journalDir, { recursive: true }).catch((err) => {
          this.#dirReady = null
          throw err
        })
        await this.#dirReady
        let text = batch.lines
        if (!this.#checked.has(name)) {
          // A crash may have torn the last line: this append starts on a line of its own.
          if (!endsWithNewline(path)) text = `\n${text}`
          this.#checked.add(name)
        }
        await appendFile(path, text)
        const session = batch.trimFrom
        if (session !== null && session > this.keepSessions) await this.#trim(name, session - this.keepSessions + 1)
      })
      .catch((err: unknown) => {
        // Not on file: the next save writes the session whole again.
        this.#written.delete(name)
        throw err
      })
    this.#batches.set(name, batch)
    this.#appends.set(name, batch.done)
    return batch.done
  }

  /** Drops the sessions before `first` (a temp file renamed over the journal). */
  async #trim(name: string, first: number): Promise<void> {
    const path = this.layout.journal(name)
    const text = readFileSync(path, 'utf8')
    const kept = text.split('\n').filter((l) => {
      const s = /^\{"s":(\d+),/.exec(l)
      return s !== null && Number(s[1]) >= first
    })
    const tmp = `${path}.tmp`
    await writeFile(tmp, kept.length > 0 ? `${kept.join('\n')}\n` : '')
    await rename(tmp, path)
  }

  /** Messages 0..count-1 of session `id`, or null when the file cannot be read. */
  #messagesOf(name: string, id: number, count: number): ChatMessage[] | null {
    const found: ChatMessage[] = []
    let any = false
    for (const line of this.#lines(name)) {
      any = true
      if (line.s === id && typeof line.i === 'number' && line.i < count && line.m) found[line.i] = line.m
    }
    if (!any) return null
    for (let i = 0; i < count; i++) if (found[i] === undefined) return found.slice(0, i)
    return found
  }

  #lines(name: string): JournalLine[] {
    let text: string
    try {
      text = readFileSync(this.layout.journal(name), 'utf8')
    } catch {
      return []
    }
    const out: JournalLine[] = []
    for (const l of text.split('\n')) {
      if (l === '') continue
      try {
        const v = JSON.parse(l) as { s?: unknown }
        if (typeof v === 'object' && v !== null && typeof v.s === 'number') out.push(v as JournalLine)
      } catch {
        // torn by a crash
      }
    }
    return out
  }
}

function endsWithNewline(path: string): boolean {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch {
    return true // no file yet
  }
  try {
    const size = fstatSync(fd).size
    if (size === 0) return true
    const last = Buffer.alloc(1)
    readSync(fd, last, 0, 1, size - 1)
    return last[0] === 0x0a
  } finally {
    closeSync(fd)
  }
}
