/**
 * The JSON store's change feed, read only: what a watcher (the viewer) needs to
 * follow a data dir cheaply and neither LoopClient (services/client.ts) nor the
 * store port (adapters/snapshot-store.ts) offers. Records, history and owners are
 * read through the client; paths come from adapters/data-dir.ts, history lines are
 * parsed as the store parses them.
 *
 * - `names()`: the loops of the store without reading their records (the port's
 *   `list()` reads every record on each call and moves a bad one aside: a write);
 * - `recordStamp(name)`: what changes when a record is rewritten, so that only
 *   changed records are read again;
 * - `historySince(name, cursor)`: the entries appended to a loop's history log
 *   since the last read (the port's `history()` reads the whole log every time).
 */
import { open, readdir, stat } from 'node:fs/promises'
import { basename } from 'node:path'
import { dataDirLayout, type DataDirLayout } from './data-dir.ts'
import { LOOP_NAME } from './memory-store.ts'
import { parseHistoryLine } from './json-store.ts'
import type { HistoryEntry } from './snapshot-store.ts'

/** Where a read of a history log stopped: its file, the end of its last complete line, and its size then. */
export interface HistoryCursor {
  ino: number
  offset: number
  size: number
}

export type HistoryTail =
  /** There is no log. */
  | null
  /** The log is new to the cursor or was rewritten (compacted): read it whole; `end` is a cursor at its end now. */
  | { whole: true; end: HistoryCursor }
  /** What was appended since the cursor. */
  | { whole: false; entries: HistoryEntry[]; cursor: HistoryCursor }

export class StoreFiles {
  readonly #layout: DataDirLayout

  constructor(dataDir: string) {
    this.#layout = dataDirLayout(dataDir)
  }

  /** The names of the loops that have a record file. */
  async names(): Promise<string[]> {
    let files: string[]
    try {
      files = await readdir(this.#layout.loopsDir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    return files.flatMap((file) => {
      const dot = file.lastIndexOf('.')
      const name = dot > 0 ? file.slice(0, dot) : ''
      return LOOP_NAME.test(name) && basename(this.#layout.record(name)) === file ? [name] : []
    })
  }

  /** Inode, mtime and size of the loop's record file, or null when there is none. */
  async recordStamp(name: string): Promise<string | null> {
    const st = await stat(this.#layout.record(name)).catch(() => null)
    return st ? `${st.ino}:${st.mtimeMs}:${st.size}` : null
  }

  /** The entries appended to the loop's history since `cursor` (null: none read yet). */
  async historySince(name: string, cursor: HistoryCursor | null): Promise<HistoryTail> {
    let fh
    try {
      fh = await open(this.#layout.history(name), 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw err
    }
    try {
      // the same open file throughout: a compaction renames a new file over the path
      const st = await fh.stat()
      if (cursor === null || st.ino !== cursor.ino || st.size < cursor.size) {
        return { whole: true, end: { ino: st.ino, offset: st.size, size: st.size } }
      }
      if (st.size === cursor.size) return { whole: false, entries: [], cursor }
      const buf = Buffer.alloc(st.size - cursor.offset)
      const { bytesRead } = await fh.read(buf, 0, buf.length, cursor.offset)
      // complete lines only: a line being appended (or torn) is read again next time
      const end = buf.subarray(0, bytesRead).lastIndexOf(0x0a) + 1
      const lines = buf.subarray(0, end).toString('utf8').split('\n')
      const next = { ino: st.ino, offset: cursor.offset + end, size: cursor.offset + bytesRead }
      return { whole: false, entries: lines.flatMap((l) => parseHistoryLine(l) ?? []), cursor: next }
    } finally {
      await fh.close()
    }
  }
}
