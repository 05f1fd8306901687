/**
 * What changes in the store, into the loops model (server/model.ts): loops run by
 * any process (with or without --inspect) and loops that ended. Polled: the record
 * files' stamps tell which records changed (adapters/json-store-feed.ts); those are read
 * through LoopClient (services/client.ts), and so are their owners (the live holder
 * of the claim, docs/architecture.md "Ownership") and whole histories. Read only:
 * the viewer never claims a loop and never writes to the data dir.
 */
import type { LoopRecord, TranscriptSession } from '../../../adapters/snapshot-store.ts'
import { ClientError, type LoopClient } from '../../client.ts'
import { loopDiff } from '../../workspace-diff.ts'
import { sanitize } from '../sanitize.ts'
import type { DiffReport } from './types.ts'
import type { LoopsModel } from './model.ts'
import { slim } from './records.ts'
import type { HistoryCursor, StoreFiles } from '../../../adapters/json-store-feed.ts'

/** The owners of loops whose record did not change are checked every this many polls. */
const OWNER_EVERY = 6
/** Transcripts are redacted like the loop's detail; texts are cut longer (a tool's output, a prompt), nothing else is dropped. */
const TRANSCRIPT_LIMITS = { maxString: 20_000, maxItems: 5_000, maxDepth: 12, keepMessages: Number.MAX_SAFE_INTEGER }
/** A diff is redacted too; a file's patch is cut past this many characters. */
const DIFF_LIMITS = { maxString: 200_000, maxItems: 2_000, maxDepth: 6 }

interface Followed {
  cursor: HistoryCursor | null
  /** The chain of reads of its history (one at a time). */
  reads: Promise<void>
}

export class StoreWatcher {
  /** The stamp of each record as last read. */
  readonly #stamps = new Map<string, string>()
  /** Loops whose history is followed (someone looked at it). */
  readonly #followed = new Map<string, Followed>()
  #polls = 0
  #timer: NodeJS.Timeout | null = null

  constructor(
    private readonly client: LoopClient,
    private readonly files: StoreFiles,
    private readonly model: LoopsModel,
    /** A problem with a file of the store (told once per message). */
    private readonly problem: (message: string) => void,
  ) {}

  /** Polls every `ms` until `stop()`; `onError` is told of a poll that failed. */
  start(ms: number, onError: (err: unknown) => void): void {
    let polling = false
    this.#timer = setInterval(() => {
      if (polling) return
      polling = true
      void this.poll()
        .catch(onError)
        .finally(() => (polling = false))
    }, ms)
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
  }

  async poll(): Promise<void> {
    this.#polls++
    const names = new Set(await this.files.names())
    const checkOwners = this.#polls % OWNER_EVERY === 1
    await Promise.all(
      [...names].map(async (name) => {
        const stamp = await this.files.recordStamp(name)
        if (stamp === null) return
        const known = this.model.get(name)?.store
        if (!known || this.#stamps.get(name) !== stamp) {
          const record = await this.#record(name)
          if (record) {
            this.#stamps.set(name, stamp)
            this.model.setStore(name, record, await this.#owner(name))
          }
        } else if (checkOwners && known.status !== 'completed') {
          this.model.setOwner(name, await this.#owner(name))
        }
        if (this.#followed.has(name)) await this.#followHistory(name)
      }),
    )
    for (const name of this.model.storeNames()) {
      if (names.has(name)) continue
      this.#stamps.delete(name)
      const followed = this.#followed.get(name)
      if (followed) followed.cursor = null
      this.model.dropStore(name)
    }
  }

  /**
   * Starts following the loop's history (read in full the first time). Only the
   * histories someone looked at are read: a data dir of many long-lived loops costs
   * a stat per loop and poll, not every log.
   */
  watchHistory(name: string): Promise<void> {
    const followed = this.#followed.get(name)
    if (followed) return followed.reads
    this.#followed.set(name, { cursor: null, reads: Promise.resolve() })
    return this.#followHistory(name)
  }

  /** Reads what was appended to the loop's history since the last read (one read at a time per loop). */
  #followHistory(name: string): Promise<void> {
    const followed = this.#followed.get(name)!
    followed.reads = followed.reads
      .then(() => this.#readHistory(name, followed))
      .catch((err: unknown) => this.problem(`inspect: history of ${name}: ${err instanceof Error ? err.message : err}`))
    return followed.reads
  }

  async #readHistory(name: string, followed: Followed): Promise<void> {
    if (!this.model.has(name)) return
    const tail = await this.files.historySince(name, followed.cursor)
    if (tail === null) return
    if (!tail.whole) {
      const last = this.model.lastSeq(name)
      const fresh = tail.entries.filter((e) => e.seq > last)
      // The entries continue the history as read: only they are new. A gap (a line cut
      // where a read began) and a rewritten log are read again whole.
      if (fresh.length === 0 || fresh[0]!.seq === last + 1) {
        followed.cursor = tail.cursor
        this.model.storeHistory(name, fresh.map(slim), false)
        return
      }
    }
    // where the next read starts, taken before this one: what lands meanwhile is read twice, never missed
    const end = tail.whole ? tail.end : await this.#end(name)
    const entries = await this.client.history(name).catch((err: unknown) => {
      if (err instanceof ClientError && err.code === 'not_found') return []
      throw err
    })
    followed.cursor = end
    this.model.storeHistory(name, entries.map(slim), true)
  }

  /**
   * The sessions' transcripts the store keeps for the loop (its journal, as `loopstate
   * log` reads it), those numbered `from` or later, sanitized; null when the store
   * has no record of it.
   */
  async transcript(name: string, from = 0): Promise<TranscriptSession[] | null> {
    let sessions: TranscriptSession[]
    try {
      sessions = await this.client.transcript(name)
    } catch (err) {
      if (err instanceof ClientError && err.code === 'not_found') return null
      throw err
    }
    return sanitize(
      sessions.filter((s) => s.id >= from),
      TRANSCRIPT_LIMITS,
    )
  }

  /**
   * What the loop changed in its workspace (services/workspace-diff.ts: a git diff,
   * or a plain directory's changes from its transcripts), sanitized; the notes of its
   * text's header say what kind of diff it is and what it leaves out. Null when the
   * store has no record of the loop.
   */
  async diff(name: string): Promise<DiffReport | null> {
    const record = await this.#record(name)
    if (record === null) return null
    const journal = await this.client.transcript(name).catch(() => undefined)
    const { text, ...diff } = await loopDiff(record, { journal })
    const notes: string[] = []
    for (const line of text.split('\n')) {
      if (!line.startsWith('# ')) break
      notes.push(line.slice(2))
    }
    return sanitize({ ...diff, notes }, DIFF_LIMITS)
  }

  /** A cursor at the end of the loop's history now. */
  async #end(name: string): Promise<HistoryCursor | null> {
    const tail = await this.files.historySince(name, null)
    return tail?.whole ? tail.end : null
  }

  /** The loop's record, or null (gone, or a file the store cannot read: told once). */
  async #record(name: string): Promise<LoopRecord | null> {
    try {
      return await this.client.record(name)
    } catch (err) {
      this.problem(`inspect: ${err instanceof Error ? err.message : err}; skipped`)
      return null
    }
  }

  async #owner(name: string): Promise<number | null> {
    return (await this.client.owner(name))?.pid ?? null
  }
}
