/**
 * lowdb `SnapshotStore`: one JSON file per loop at `<dir>/loops/<name>.json`.
 * Writing one loop touches only its own file (O(1) in the number of loops), and
 * lowdb's steno writer makes each write atomic (temp file + rename) and serializes
 * the writes of one file, keeping only the latest pending one.
 */
import { appendFile, mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Low } from 'lowdb'
import { JSONFile } from 'lowdb/node'
import { assertLoopName, byCreatedAt } from './memory-store.ts'
import { migrateRecord } from './migrations.ts'
import type { HistoryEntry, LoopRecord, NewHistoryEntry, SnapshotStore } from './snapshot-store.ts'

/** Loop files; steno's temp files (`.<name>.json.tmp`) and anything else do not match. */
const LOOP_FILE = /^([a-z0-9][a-z0-9-]{0,79})\.json$/

export interface JsonStoreOptions {
  /**
   * Told (one line naming the file) about each file `list()` skips: unparseable,
   * of an unknown schema version, not a record. Such a file is moved aside
   * (renamed `<name>.json.quarantined-<time>`) and never overwritten.
   */
  onProblem?: (message: string) => void
}

type ReadResult = { record: LoopRecord | null } | { problem: string }

/** A `SnapshotStore` on a directory; nothing is created on disk until the first `put`. */
export class JsonStore implements SnapshotStore {
  /** Directory of the loop files. */
  readonly loopsDir: string
  readonly #onProblem: (message: string) => void
  /** One Low per loop, so that one steno writer orders the writes of each file. */
  readonly #dbs = new Map<string, Low<LoopRecord | null>>()
  /** The latest write of each loop still in flight. */
  readonly #pending = new Map<string, Promise<void>>()
  #dirReady: Promise<unknown> | null = null
  /** Directory of the history logs (`<name>.jsonl`). */
  readonly historyDir: string
  /** Lines and last seq of each history log this process knows of (read once, then counted). */
  readonly #historyState = new Map<string, { lines: number; seq: number }>()
  /** Appends per loop, chained so that lines land in order. */
  readonly #historyWrites = new Map<string, Promise<void>>()

  constructor(dir: string, options: JsonStoreOptions = {}) {
    this.loopsDir = join(dir, 'loops')
    this.historyDir = join(dir, 'history')
    this.#onProblem = options.onProblem ?? (() => {})
  }

  /** Path of a loop's file. */
  pathOf(name: string): string {
    return join(this.loopsDir, `${name}.json`)
  }

  async get(name: string): Promise<LoopRecord | null> {
    assertLoopName(name)
    await this.#pending.get(name)?.catch(() => {})
    const result = await this.#read(name)
    if ('problem' in result) throw new Error(result.problem)
    return result.record
  }

  async put(record: LoopRecord): Promise<void> {
    assertLoopName(record.name)
    const write = this.#write(structuredClone(record))
    const name = record.name
    this.#pending.set(name, write)
    const forget = () => {
      if (this.#pending.get(name) === write) this.#pending.delete(name)
    }
    write.then(forget, forget)
    return write
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
    const results = await Promise.all(names.map((name) => this.#read(name)))
    const records: LoopRecord[] = []
    for (const [i, result] of results.entries()) {
      if ('problem' in result) this.#onProblem(await this.#quarantine(names[i]!, result.problem))
      else if (result.record) records.push(result.record)
    }
    return records.sort(byCreatedAt)
  }

  async appendHistory(name: string, entries: NewHistoryEntry[], keep: number): Promise<void> {
    assertLoopName(name)
    const previous = this.#historyWrites.get(name) ?? Promise.resolve()
    const next = previous.catch(() => {}).then(() => this.#append(name, entries, keep))
    this.#historyWrites.set(name, next)
    return next
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
    return join(this.historyDir, `${name}.jsonl`)
  }

  async #append(name: string, fresh: NewHistoryEntry[], keep: number): Promise<void> {
    if (fresh.length === 0) return
    const path = this.#historyPath(name)
    let state = this.#historyState.get(name)
    if (state === undefined) {
      await mkdir(this.historyDir, { recursive: true })
      const old = await readHistory(path)
      state = { lines: old.length, seq: old[old.length - 1]?.seq ?? 0 }
    }
    let seq = state.seq
    const entries: HistoryEntry[] = fresh.map((e) => ({ seq: ++seq, ...e }))
    await appendFile(path, entries.map((e) => `${JSON.stringify(e)}\n`).join(''))
    let lines = state.lines + entries.length
    // Compact only when the log is half again past the limit: appends stay O(1) amortized.
    if (lines > keep + Math.max(16, keep >> 1)) {
      const kept = (await readHistory(path)).slice(-keep)
      const tmp = join(this.historyDir, `.${name}.jsonl.tmp`)
      await writeFile(tmp, kept.map((e) => `${JSON.stringify(e)}\n`).join(''))
      await rename(tmp, path)
      lines = kept.length
    }
    this.#historyState.set(name, { lines, seq })
  }

  /** Moves a bad loop file aside; returns the problem with where the file went. */
  async #quarantine(name: string, problem: string): Promise<string> {
    const stamp = new Date().toISOString().replace(/[:.]/g, '-')
    const aside = `${this.pathOf(name)}.quarantined-${stamp}`
    try {
      await rename(this.pathOf(name), aside)
      return `${problem}; moved aside to ${aside}`
    } catch (err) {
      return `${problem}; could not move it aside (${(err as Error).message})`
    }
  }

  async #write(record: LoopRecord): Promise<void> {
    // Every put awaits the same promise, so the writes reach steno in call order.
    this.#dirReady ??= mkdir(this.loopsDir, { recursive: true }).catch((err) => {
      this.#dirReady = null
      throw err
    })
    await this.#dirReady
    let db = this.#dbs.get(record.name)
    if (!db) {
      db = new Low(new JSONFile<LoopRecord | null>(this.pathOf(record.name)), null)
      this.#dbs.set(record.name, db)
    }
    db.data = record
    await db.write()
  }

  async #read(name: string): Promise<ReadResult> {
    const path = this.pathOf(name)
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { record: null }
      return { problem: `snapshot-store: ${path}: cannot read (${(err as Error).message})` }
    }
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      return { problem: `snapshot-store: ${path}: not valid JSON` }
    }
    const checked = checkRecord(json, name)
    return 'problem' in checked ? { problem: `snapshot-store: ${path}: ${checked.problem}` } : checked
  }
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
  const entries: HistoryEntry[] = []
  for (const line of text.split('\n')) {
    if (line === '') continue
    try {
      entries.push(JSON.parse(line) as HistoryEntry)
    } catch {
      // torn line
    }
  }
  return entries
}

/** The record, migrated to the current schema, or what is wrong with the parsed file. */
function checkRecord(json: unknown, name: string): { record: LoopRecord } | { problem: string } {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return { problem: 'not a loop record' }
  const r = json as Partial<Record<keyof LoopRecord, unknown>>
  if (!Number.isInteger(r.schemaVersion) || typeof r.name !== 'string' || typeof r.createdAt !== 'string') {
    return { problem: 'not a loop record' }
  }
  if (r.name !== name) return { problem: `record name '${r.name}' does not match the file name` }
  return migrateRecord(json as Record<string, unknown>)
}
