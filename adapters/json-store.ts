/**
 * lowdb `SnapshotStore`: one JSON file per loop at `<dir>/loops/<name>.json`.
 * Writing one loop touches only its own file (O(1) in the number of loops), and
 * lowdb's steno writer makes each write atomic (temp file + rename) and serializes
 * the writes of one file, keeping only the latest pending one.
 */
import { mkdir, readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Low } from 'lowdb'
import { JSONFile } from 'lowdb/node'
import { assertLoopName, byCreatedAt } from './memory-store.ts'
import { SCHEMA_VERSION, type LoopRecord, type SnapshotStore } from './snapshot-store.ts'

/** Loop files; steno's temp files (`.<name>.json.tmp`) and anything else do not match. */
const LOOP_FILE = /^([a-z0-9][a-z0-9-]{0,79})\.json$/

export interface JsonStoreOptions {
  /** Told (one line naming the file) about each file `list()` skips: unparseable, too new, not a record. */
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

  constructor(dir: string, options: JsonStoreOptions = {}) {
    this.loopsDir = join(dir, 'loops')
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
    for (const result of results) {
      if ('problem' in result) this.#onProblem(result.problem)
      else if (result.record) records.push(result.record)
    }
    return records.sort(byCreatedAt)
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
    await Promise.allSettled([...this.#pending.values()])
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
    const problem = checkRecord(json, name)
    return problem ? { problem: `snapshot-store: ${path}: ${problem}` } : { record: json as LoopRecord }
  }
}

/** What is wrong with a parsed loop file, or null. */
function checkRecord(json: unknown, name: string): string | null {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return 'not a loop record'
  const r = json as Partial<Record<keyof LoopRecord, unknown>>
  if (typeof r.schemaVersion !== 'number' || typeof r.name !== 'string' || typeof r.createdAt !== 'string') {
    return 'not a loop record'
  }
  if (r.schemaVersion > SCHEMA_VERSION) {
    return `schema version ${r.schemaVersion} is newer than this loopstate supports (${SCHEMA_VERSION}); upgrade loopstate`
  }
  if (r.schemaVersion < SCHEMA_VERSION) {
    return `schema version ${r.schemaVersion} is older than ${SCHEMA_VERSION} and no migration exists`
  }
  if (r.name !== name) return `record name '${r.name}' does not match the file name`
  return null
}
