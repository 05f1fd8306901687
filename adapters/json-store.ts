/**
 * lowdb `SnapshotStore`: one JSON file per loop at `<dir>/loops/<name>.json`.
 * Writing one loop touches only its own file (O(1) in the number of loops), and
 * lowdb's steno writer makes each write atomic (temp file + rename).
 *
 * The writes of one loop are serialized here, and at most MAX_WRITES files are
 * written at once: a put waits for its loop's write in flight and for a turn, and
 * a later put of the same loop meanwhile replaces its record (the replaced record is
 * never serialized). Every put settles when its record or a later one of the same
 * loop has landed. History appends take turns the same way, and the entries that
 * queue meanwhile go out in one append.
 */
import { readFileSync } from 'node:fs'
import { appendFile, mkdir, readdir, readFile, rename, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Low } from 'lowdb'
import { DataFile } from 'lowdb/node'
import { JsonClaims, ownerAlive, type Owner } from './claims.ts'
import { dataDirLayout, type DataDirLayout } from './data-dir.ts'
import { JsonInbox } from './inbox.ts'
import { JournalFiles, type TranscriptSession } from './json-journal.ts'
import { assertLoopName, byCreatedAt } from './memory-store.ts'
import { snapshotProblem } from '../machines/persisted.ts'
import { migrateRecord } from './migrations.ts'
import type { HistoryEntry, LoopRecord, NewHistoryEntry, RemovedLoop, SnapshotStore } from './snapshot-store.ts'

/**
 * Files written at once (record writes and history appends). libuv runs file
 * operations on 4 threads: more writes in flight only queue there, holding their
 * serialized records, where here they wait unserialized and coalesce.
 */
const MAX_WRITES = 16
/** Record files `list()` reads per turn of the event loop. */
const LIST_BATCH = 64

/** Loop files; steno's temp files (`.<name>.json.tmp`) and anything else do not match. */
const LOOP_FILE = /^([a-z0-9][a-z0-9-]{0,79})\.json$/

/**
 * lowdb's `JSONFile` with compact JSON: `JSONFile` indents (`JSON.stringify(obj, null, 2)`),
 * which takes longer to write and ~40% more bytes for a record nobody reads by hand
 * (`loopstate status NAME --json` prints one). Same steno writer: temp file + rename.
 */
const recordFile = (path: string) =>
  new DataFile<LoopRecord | null>(path, { parse: JSON.parse, stringify: (record) => JSON.stringify(record) })

export interface JsonStoreOptions {
  /**
   * Told (one line naming the file) about each file `list()` skips: unparseable,
   * of an unknown schema version, not a record. Such a file is moved aside
   * (renamed `<name>.json.quarantined-<time>`) and never overwritten.
   */
  onProblem?: (message: string) => void
  /** Sessions a loop's journal file keeps. @default 40 */
  keepSessions?: number
}

type ReadResult = { record: LoopRecord | null } | { problem: string }

/** A put waiting for its turn; a later put replaces its record and shares its promise. */
interface Waiting {
  record: LoopRecord
  /** Its journal's messages on file (adapters/json-journal.ts): the record lands after them. */
  written: Promise<void>
  done: Promise<void>
  settle: { resolve: () => void; reject: (err: unknown) => void }
}

interface LoopWriter {
  db: Low<LoopRecord | null>
  /** The loop's writes are being worked off (one in flight or waiting for a turn). */
  busy: boolean
  /** The record to write next. */
  next: Waiting | null
}

/** A `SnapshotStore` on a directory; nothing is created on disk until the first `put`. */
export class JsonStore implements SnapshotStore {
  /** Directory of the loop files. */
  readonly loopsDir: string
  readonly #onProblem: (message: string) => void
  /** One writer per loop: its Low (and steno writer) and the record waiting to be written next. */
  readonly #writers = new Map<string, LoopWriter>()
  /** The latest put of each loop still in flight. */
  readonly #pending = new Map<string, Promise<void>>()
  #dirReady: Promise<unknown> | null = null
  #historyDirReady: Promise<unknown> | null = null
  /** Writes in flight, and the writes waiting for a turn (first come, first served). */
  #writing = 0
  readonly #turns: (() => void)[] = []
  /** Directory of the history logs (`<name>.jsonl`). */
  readonly historyDir: string
  /** Lines and last seq of each history log this process knows of (read once, then counted). */
  readonly #historyState = new Map<string, { lines: number; seq: number; torn: boolean }>()
  /** Appends per loop, chained so that lines land in order. */
  readonly #historyWrites = new Map<string, Promise<void>>()
  /** Entries of each loop waiting for their append (behind the loop's append in flight, or for a turn): they go out together. */
  readonly #historyBatches = new Map<string, { entries: NewHistoryEntry[]; keep: number; done: Promise<void> }>()

  /** The sessions' transcripts, out of the records (adapters/json-journal.ts). */
  readonly #journals: JournalFiles
  /** Where everything of this store lies (adapters/data-dir.ts). */
  readonly layout: DataDirLayout
  readonly claims: JsonClaims
  readonly inbox: JsonInbox

  constructor(dir: string, options: JsonStoreOptions = {}) {
    this.layout = dataDirLayout(dir)
    this.loopsDir = this.layout.loopsDir
    this.historyDir = this.layout.historyDir
    this.claims = new JsonClaims(this.layout)
    this.inbox = new JsonInbox(this.layout)
    this.#journals = new JournalFiles(this.layout, options.keepSessions)
    this.#onProblem = options.onProblem ?? (() => {})
  }

  /** Path of a loop's file. */
  pathOf(name: string): string {
    return this.layout.record(name)
  }

  async get(name: string): Promise<LoopRecord | null> {
    assertLoopName(name)
    await this.#pending.get(name)?.catch(() => {})
    const result = await this.#read(name)
    if ('problem' in result) throw new Error(result.problem)
    return result.record
  }

  /**
   * Writes the record; it is serialized when its write starts, so it must not be
   * changed after `put` (the engine builds a fresh record for every state change).
   * Puts that wait behind the same write share its promise.
   */
  put(record: LoopRecord): Promise<void> {
    try {
      assertLoopName(record.name)
    } catch (err) {
      return Promise.reject(err)
    }
    const name = record.name
    // The running session's messages go to the journal file; the record counts them.
    const { record: saved, written } = this.#journals.split(record)
    record = saved
    let writer = this.#writers.get(name)
    if (!writer) {
      writer = { db: new Low(recordFile(this.pathOf(name)), null), busy: false, next: null }
      this.#writers.set(name, writer)
    }
    if (writer.next) {
      // Replaces the record waiting for its turn (never serialized); lands with the same write.
      writer.next.record = record
      writer.next.written = written
      return writer.next.done
    }
    let settle!: Waiting['settle']
    const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }))
    writer.next = { record, written, done, settle }
    this.#pending.set(name, done)
    const forget = () => {
      if (this.#pending.get(name) === done) this.#pending.delete(name)
    }
    done.then(forget, forget)
    if (!writer.busy) void this.#drain(writer)
    return done
  }

  async list(): Promise<LoopRecord[]> {
    await this.flush()
    let files: string[]
    try {
      files = await readdir(this.loopsDir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    const names = files.flatMap((file) => LOOP_FILE.exec(file)?.[1] ?? [])
    // Read synchronously, LIST_BATCH files per turn of the event loop: a small file's
    // round trip through libuv's thread pool costs more than reading it (1,000 records:
    // ~50 ms this way, ~150 ms with a readFile each).
    const results: ReadResult[] = []
    for (let i = 0; i < names.length; i++) {
      if (i > 0 && i % LIST_BATCH === 0) await new Promise((resolve) => setImmediate(resolve))
      results.push(this.#readSync(names[i]!))
    }
    const records: LoopRecord[] = []
    for (const [i, result] of results.entries()) {
      if ('problem' in result) this.#onProblem(await this.#quarantine(names[i]!, result.problem))
      else if (result.record) records.push(result.record)
    }
    return records.sort(byCreatedAt)
  }

  async appendHistory(name: string, entries: NewHistoryEntry[], keep: number): Promise<void> {
    assertLoopName(name)
    // Entries that arrive while this loop's next append waits join it.
    const waiting = this.#historyBatches.get(name)
    if (waiting) {
      waiting.entries.push(...entries)
      waiting.keep = keep
      return waiting.done
    }
    const batch = { entries: [...entries], keep, done: null as unknown as Promise<void> }
    const previous = this.#historyWrites.get(name) ?? Promise.resolve()
    batch.done = previous
      .catch(() => {})
      .then(() => this.#turn())
      .then(() => {
        this.#historyBatches.delete(name)
        return this.#append(name, batch.entries, batch.keep).finally(() => this.#endTurn())
      })
    this.#historyBatches.set(name, batch)
    this.#historyWrites.set(name, batch.done)
    return batch.done
  }

  async history(name: string): Promise<HistoryEntry[]> {
    assertLoopName(name)
    await this.#historyWrites.get(name)?.catch(() => {})
    return readHistory(this.#historyPath(name))
  }

  async has(name: string): Promise<boolean> {
    assertLoopName(name)
    if (this.#pending.has(name)) return true
    try {
      await stat(this.pathOf(name))
      return true
    } catch {
      return false
    }
  }

  async flush(): Promise<void> {
    await Promise.allSettled([...this.#pending.values(), ...this.#historyWrites.values()])
  }

  #historyPath(name: string): string {
    return this.layout.history(name)
  }

  async #append(name: string, fresh: NewHistoryEntry[], keep: number): Promise<void> {
    if (fresh.length === 0) return
    const path = this.#historyPath(name)
    let state = this.#historyState.get(name)
    if (state === undefined) {
      // Made once per store (a failure is retried by the next append).
      this.#historyDirReady ??= mkdir(this.historyDir, { recursive: true }).catch((err) => {
        this.#historyDirReady = null
        throw err
      })
      await this.#historyDirReady
      state = await historyState(path)
    }
    let seq = state.seq
    const entries: HistoryEntry[] = fresh.map((e) => ({ seq: ++seq, ...e }))
    // After a torn last line (a crash mid-append) the entries start on a line of their own.
    const lead = state.torn ? '\n' : ''
    await appendFile(path, lead + entries.map((e) => `${JSON.stringify(e)}\n`).join(''))
    let lines = state.lines + entries.length
    // Compact only when the log is half again past the limit: appends stay O(1) amortized.
    if (lines > keep + Math.max(16, keep >> 1)) {
      const kept = (await readHistory(path)).slice(-keep)
      const tmp = join(this.historyDir, `.${name}.jsonl.tmp`)
      await writeFile(tmp, kept.map((e) => `${JSON.stringify(e)}\n`).join(''))
      await rename(tmp, path)
      lines = kept.length
    }
    this.#historyState.set(name, { lines, seq, torn: false })
  }

  /**
   * Moves a bad loop file aside, and its history with it (a new loop of that name
   * starts with none); returns the problem with where the file went.
   */
  async #quarantine(name: string, problem: string): Promise<string> {
    const stamp = new Date().toISOString().replace(/[:.]/g, '-')
    const aside = `${this.pathOf(name)}.quarantined-${stamp}`
    try {
      await rename(this.pathOf(name), aside)
    } catch (err) {
      return `${problem}; could not move it aside (${(err as Error).message})`
    }
    await this.#historyWrites.get(name)?.catch(() => {})
    this.#historyState.delete(name)
    const history = this.#historyPath(name)
    const historyAside = `${history}.quarantined-${stamp}`
    const movedHistory = await rename(history, historyAside).then(
      () => ` (its history to ${historyAside})`,
      () => '',
    )
    const movedJournal = await this.#journals.quarantine(name, stamp)
    return `${problem}; moved aside to ${aside}${movedHistory}${movedJournal}`
  }

  /** Writes the loop's latest record, in its turn, until no put waits. */
  async #drain(writer: LoopWriter): Promise<void> {
    writer.busy = true
    try {
      while (writer.next) {
        await this.#turn()
        // The latest record put while the loop waited for its turn.
        const job = writer.next
        writer.next = null
        try {
          this.#dirReady ??= mkdir(this.loopsDir, { recursive: true }).catch((err) => {
            this.#dirReady = null
            throw err
          })
          await this.#dirReady
          await job.written
          writer.db.data = job.record
          await writer.db.write()
          job.settle.resolve()
        } catch (err) {
          job.settle.reject(err)
        } finally {
          writer.db.data = null
          this.#endTurn()
        }
      }
    } finally {
      writer.busy = false
    }
  }

  /** Resolves when a write may start (at once while fewer than MAX_WRITES are in flight). */
  #turn(): Promise<void> {
    if (this.#writing < MAX_WRITES) {
      this.#writing++
      return Promise.resolve()
    }
    return new Promise((resolve) => this.#turns.push(resolve))
  }

  /** Hands the turn of a finished write to the first one waiting. */
  #endTurn(): void {
    const next = this.#turns.shift()
    if (next) next()
    else this.#writing--
  }

  async #read(name: string): Promise<ReadResult> {
    const path = this.pathOf(name)
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      return readFailure(path, err)
    }
    return this.#hydrated(parseRecord(path, name, text))
  }

  #readSync(name: string): ReadResult {
    const path = this.pathOf(name)
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (err) {
      return readFailure(path, err)
    }
    return this.#hydrated(parseRecord(path, name, text))
  }

  /** A record read: its running session's messages back from the journal file. */
  #hydrated(result: ReadResult): ReadResult {
    if ('problem' in result || result.record === null) return result
    return { record: this.#journals.hydrate(result.record, this.#onProblem) }
  }

  /**
   * Removes the loop's files (adapters/data-dir.ts): its record, history, journal and
   * inbox, and the claim generations of owners that are gone (a live owner's, the
   * caller's own included, stays for its release). Its writes in flight land first.
   */
  async remove(name: string): Promise<RemovedLoop> {
    assertLoopName(name)
    await this.#pending.get(name)?.catch(() => {})
    await this.#historyWrites.get(name)?.catch(() => {})
    this.#writers.delete(name)
    this.#historyState.delete(name)
    this.#historyWrites.delete(name)
    const record = await removed(this.pathOf(name))
    await rm(join(this.loopsDir, `.${name}.json.tmp`), { force: true })
    const history = await removed(this.#historyPath(name))
    await rm(join(this.historyDir, `.${name}.jsonl.tmp`), { force: true })
    const journal = await this.#journals.remove(name)
    const inbox = this.layout.inbox(name)
    const commands = (await readdir(inbox).catch(() => [] as string[])).filter((f) => f.endsWith('.json')).length
    await rm(inbox, { recursive: true, force: true })
    return { record, history, journal, commands, claims: await this.#removeDeadClaims(name) }
  }

  /** Unlinks the loop's claim generations whose owner is gone; the directory goes when empty. */
  async #removeDeadClaims(name: string): Promise<number> {
    const dir = this.layout.claims(name)
    let count = 0
    for (const file of await readdir(dir).catch(() => [] as string[])) {
      if (!/^\d+\.json$/.test(file)) continue
      const path = join(dir, file)
      let owner: Owner | null = null
      try {
        owner = JSON.parse(await readFile(path, 'utf8')) as Owner
      } catch {
        // empty while its claimer writes it (keep it a while), or torn
        const s = await stat(path).catch(() => null)
        if (s !== null && Date.now() - s.mtimeMs < CLAIM_BUSY_MS) continue
      }
      if (owner !== null && typeof owner === 'object' && typeof owner.pid === 'number' && ownerAlive(owner)) continue
      if (await unlink(path).then(() => true, () => false)) count++
    }
    await rmdir(dir).catch(() => {})
    return count
  }

  /** The sessions' transcripts kept in the loop's journal file, oldest first (`loopstate log`). */
  async transcript(name: string): Promise<TranscriptSession[]> {
    assertLoopName(name)
    await this.#journals.settled(name).catch(() => {})
    return this.#journals.sessions(name)
  }
}

/** How long a claim file may stay empty while its claimer writes it (as adapters/claims.ts waits). */
const CLAIM_BUSY_MS = 5_000

/** Removes a file: true when it was there. */
function removed(path: string): Promise<boolean> {
  return unlink(path).then(
    () => true,
    (err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw err
    },
  )
}

function readFailure(path: string, err: unknown): ReadResult {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { record: null }
  return { problem: `snapshot-store: ${path}: cannot read (${(err as Error).message})` }
}

function parseRecord(path: string, name: string, text: string): ReadResult {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return { problem: `snapshot-store: ${path}: not valid JSON` }
  }
  const checked = checkRecord(json, name)
  return 'problem' in checked ? { problem: `snapshot-store: ${path}: ${checked.problem}` } : checked
}

/** The entries of a history log; a torn last line (a crash mid-append) is skipped. */
async function readHistory(path: string): Promise<HistoryEntry[]> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
  return text.split('\n').flatMap((line) => {
    const entry = parseHistoryLine(line)
    return entry === null ? [] : [entry]
  })
}

/**
 * One line of a history log, or null for an empty or torn one (a crash mid-append).
 * A snapshot that is not a loop's saved state is no fork point: the entry stays, without it.
 */
export function parseHistoryLine(line: string): HistoryEntry | null {
  if (line === '') return null
  let entry: HistoryEntry
  try {
    entry = JSON.parse(line) as HistoryEntry
  } catch {
    return null
  }
  if (typeof entry !== 'object' || entry === null || typeof entry.seq !== 'number') return null
  if (entry.snapshot !== undefined && snapshotProblem(entry.snapshot) !== null) delete entry.snapshot
  return entry
}

/**
 * Lines and last seq of a history log, without parsing every entry (entries at phase
 * boundaries hold a whole snapshot): the lines are counted (a torn one too, which at
 * worst compacts the log one line early) and the last line that parses gives the seq.
 */
async function historyState(path: string): Promise<{ lines: number; seq: number; torn: boolean }> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { lines: 0, seq: 0, torn: false }
    throw err
  }
  const torn = text !== '' && !text.endsWith('\n')
  const lines = text.split('\n').filter((line) => line !== '')
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      return { lines: lines.length, seq: (JSON.parse(lines[i]!) as HistoryEntry).seq, torn }
    } catch {
      // torn line
    }
  }
  return { lines: lines.length, seq: 0, torn }
}

/** The record, migrated to the current schema, or what is wrong with the parsed file. */
function checkRecord(json: unknown, name: string): { record: LoopRecord } | { problem: string } {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return { problem: 'not a loop record' }
  const r = json as Partial<Record<keyof LoopRecord, unknown>>
  if (!Number.isInteger(r.schemaVersion) || typeof r.name !== 'string' || typeof r.createdAt !== 'string') {
    return { problem: 'not a loop record' }
  }
  if (r.name !== name) return { problem: `record name '${r.name}' does not match the file name` }
  const migrated = migrateRecord(json as Record<string, unknown>)
  if ('problem' in migrated) return migrated
  const problem = snapshotProblem(migrated.record.snapshot)
  return problem === null ? migrated : { problem: `no usable snapshot (${problem})` }
}
