/**
 * The loops model the page is fed from: what the viewer knows of each loop, from
 * the store (record, owner, history: server/store-watcher.ts) and from inspection
 * events (a live record, its transitions, children and event stream:
 * server/inspection.ts), and what changed since the pages were last pushed to.
 * It decides, once, each loop's status and who runs it (`LoopSummary.run`), and
 * builds each payload from one record, so that no two parts of the page disagree.
 */
import type { LoopRecord } from '../../../adapters/snapshot-store.ts'
import { emptyUsage } from '../../../machines/loop.machine.ts'
import { FINAL } from '../../engine/types.ts'
import { detailOf, stateString, viewOf, type LoopDetail, type LoopView } from '../../views.ts'
import { sanitize } from '../sanitize.ts'
import { findingsReport } from './findings.ts'
import { pageEntry, sectionOf, syntheticRecord, uncut, withSections, type Snap, type ViewerEntry } from './records.ts'
import type { FindingsReport, LoopPayload, LoopSummary, PageHistoryEntry, StreamEvent } from './types.ts'

const DETAIL_LIMITS = { maxString: 4000, maxItems: 1000 }
const STREAM_KEEP = 300

/** A loop as inspection events show it. */
export interface LiveLoop {
  sessionId: string
  record: LoopRecord
  lastState: string
  history: ViewerEntry[]
  children: Map<string, { name: string; status: string }>
  stream: StreamEvent[]
  connected: boolean
}

export interface LoopEntry {
  name: string
  /** Its record in the store, or null. */
  store: LoopRecord | null
  /** The pid of its claim's live owner, or null. */
  owner: number | null
  live: LiveLoop | null
  /** Its history in the store (once someone looked at it). */
  history: ViewerEntry[]
}

/** What changed since the last push. */
export interface Changes {
  /** The list of loops. */
  list: boolean
  /** Loops whose payload changed. */
  loops: Set<string>
  history: Map<string, { reset: boolean; entries: PageHistoryEntry[] }>
  stream: Map<string, StreamEvent[]>
}

export class LoopsModel {
  readonly #loops = new Map<string, LoopEntry>()
  #changes: Changes = freshChanges()
  /** The seq of the last stream event (over every loop). */
  #streamSeq = 0

  has(name: string): boolean {
    return this.#loops.has(name)
  }

  get(name: string): LoopEntry | undefined {
    return this.#loops.get(name)
  }

  /** The entry of `name`, made when there is none. */
  entry(name: string): LoopEntry {
    let e = this.#loops.get(name)
    if (!e) {
      e = { name, store: null, owner: null, live: null, history: [] }
      this.#loops.set(name, e)
      this.#changes.list = true
    }
    return e
  }

  takeChanges(): Changes | null {
    const c = this.#changes
    if (!c.list && c.loops.size === 0 && c.history.size === 0 && c.stream.size === 0) return null
    this.#changes = freshChanges()
    return c
  }

  /** The loop's summary and payload changed. */
  touched(name: string): void {
    this.#changes.list = true
    this.#changes.loops.add(name)
  }

  /** Only its payload changed (not the list). */
  changed(name: string): void {
    this.#changes.loops.add(name)
  }

  // --- what the page is sent ---

  /** The loops, those some process runs (`run` live or owned) first, then newest first (createdAt, then name). */
  summaries(): LoopSummary[] {
    const active = (s: LoopSummary) => (s.run === 'live' || s.run === 'owned' ? 0 : 1)
    return [...this.#loops.values()]
      .map((e) => summary(e))
      .filter((s): s is LoopSummary => s !== null)
      .sort((a, b) => active(a) - active(b) || (a.createdAt > b.createdAt ? -1 : a.createdAt < b.createdAt ? 1 : a.name < b.name ? -1 : 1))
  }

  /**
   * The loop's summary and detail, both from one record (the newer of the store's
   * and the inspector's): the header, the usage and every panel of the page show
   * the same moment. The inspector's context has its long texts cut; those the store
   * has whole are taken from it.
   */
  payload(name: string): LoopPayload | null {
    const e = this.#loops.get(name)
    if (!e) return null
    const s = summary(e)
    if (s === null) return null
    const record = currentRecord(e)!
    let detail: LoopDetail
    try {
      let full = detailOf(record)
      if (e.store && record !== e.store) full = uncut(full, detailOf(e.store))
      detail = { ...sanitize(full, DETAIL_LIMITS), ...s }
    } catch {
      // a context the viewer cannot read (an inspector's, cut too deep): the summary alone
      detail = {
        ...s,
        workspace: '',
        models: { coder: [], auditor: [] },
        findings: [],
        sections: [],
        usage: { total: emptyUsage(), byModel: {}, byRole: { coder: emptyUsage(), auditor: emptyUsage() } },
        lastAudit: null,
        error: null,
        inbox: [],
        toolErrors: [],
        forkedFrom: null,
      }
    }
    const children = e.live ? [...e.live.children].map(([id, c]) => ({ id, ...c })) : []
    return { summary: s, detail, children }
  }

  pageHistory(name: string): PageHistoryEntry[] {
    return this.#historyOf(name).map(pageEntry)
  }

  stream(name: string): StreamEvent[] {
    return this.#loops.get(name)?.live?.stream ?? []
  }

  /** What the history tells of each finding of the loop (server/findings.ts), or null when it is not known. */
  findings(name: string): FindingsReport | null {
    const e = this.#loops.get(name)
    const record = e ? currentRecord(e) : null
    if (!record) return null
    try {
      return sanitize(findingsReport(this.#historyOf(name), record.snapshot.context, record.updatedAt), DETAIL_LIMITS)
    } catch {
      // a context the viewer cannot read (an inspector's, cut too deep)
      return null
    }
  }

  /** The state and context saved with history entry `seq`. */
  snapshotAt(name: string, seq: number): { seq: number; state: string; summary: LoopView; detail: LoopDetail } | null {
    const entry = this.#historyOf(name).find((h) => h.seq === seq)
    if (!entry?.snapshot) return null
    const snap = entry.snapshot as Snap
    const createdAt = this.#loops.get(name)?.store?.createdAt ?? entry.at
    const record = syntheticRecord(name, snap, createdAt, entry.at)
    const view = viewOf(record, Date.parse(entry.at))
    return { seq, state: stateString(snap.value), summary: view, detail: { ...sanitize(detailOf(record), DETAIL_LIMITS), ...view } }
  }

  // --- the store's side ---

  /** The loops the store has a record of. */
  storeNames(): string[] {
    return [...this.#loops.values()].filter((e) => e.store !== null).map((e) => e.name)
  }

  setStore(name: string, record: LoopRecord, owner: number | null): void {
    const e = this.entry(name)
    e.store = record
    e.owner = owner
    this.touched(name)
  }

  setOwner(name: string, owner: number | null): void {
    const e = this.#loops.get(name)
    if (!e || e.owner === owner) return
    e.owner = owner
    this.touched(name)
  }

  /** The store has no record of it any more. */
  dropStore(name: string): void {
    const e = this.#loops.get(name)
    if (!e?.store) return
    e.store = null
    e.history = []
    if (!e.live) this.#loops.delete(name)
    this.touched(name)
  }

  /** The seq of the last entry of its store history (0: none). */
  lastSeq(name: string): number {
    return this.#loops.get(name)?.history.at(-1)?.seq ?? 0
  }

  /** Its store history read in full (`reset`), or the entries appended to it. */
  storeHistory(name: string, entries: ViewerEntry[], reset: boolean): void {
    const e = this.#loops.get(name)
    if (!e) return
    withSections(entries, reset ? null : (e.history.at(-1)?.section ?? null))
    if (reset) e.history = entries
    else e.history.push(...entries)
    if (entries.length > 0 || reset) this.queueHistory(name, reset, entries)
  }

  // --- the inspector's side ---

  queueHistory(name: string, reset: boolean, fresh: ViewerEntry[]): void {
    const pending = this.#changes.history.get(name)
    if (reset || !pending) {
      this.#changes.history.set(name, {
        reset: reset || (pending?.reset ?? false),
        entries: reset ? this.pageHistory(name) : fresh.map(pageEntry),
      })
    } else if (pending.reset) {
      pending.entries = this.pageHistory(name)
    } else {
      pending.entries.push(...fresh.map(pageEntry))
    }
  }

  /** An event of the loop's inspector stream (numbered here, and stamped with the loop's section). */
  streamEvent(name: string, seen: Omit<StreamEvent, 'seq' | 'section'>): void {
    const live = this.#loops.get(name)?.live
    if (!live) return
    const event: StreamEvent = { seq: ++this.#streamSeq, ...seen, section: sectionOf(live.record.snapshot.context) }
    live.stream.push(event)
    if (live.stream.length > STREAM_KEEP) live.stream.shift()
    const pending = this.#changes.stream.get(name) ?? []
    pending.push(event)
    this.#changes.stream.set(name, pending)
  }

  #historyOf(name: string): ViewerEntry[] {
    const e = this.#loops.get(name)
    if (!e) return []
    return e.store || e.history.length > 0 ? e.history : (e.live?.history ?? [])
  }
}

/** The newer of its store's and its inspector's record (same clock: the engine stamps both). */
function currentRecord(e: LoopEntry): LoopRecord | null {
  const store = e.store
  const live = e.live?.record ?? null
  return store && live ? (Date.parse(live.updatedAt) >= Date.parse(store.updatedAt) ? live : store) : (store ?? live)
}

function summary(e: LoopEntry): LoopSummary | null {
  const store = e.store
  const live = e.live?.record ?? null
  const record = currentRecord(e)
  if (!record) return null
  const status = store && record === live && store.status === 'queued' && live.status === 'running' ? 'running' : record.status
  // One answer to who runs it: an ended loop is ended, whatever still streams or holds it.
  const run: LoopSummary['run'] = FINAL.has(status) ? 'ended' : e.live?.connected ? 'live' : e.owner !== null ? 'owned' : 'none'
  let view: LoopView
  try {
    // a loop no process runs stopped at its last save: its clock stopped there too
    view = viewOf(record, run === 'none' ? Date.parse(record.updatedAt) : Date.now())
  } catch {
    return null
  }
  view.status = status
  return {
    ...view,
    sources: { store: store !== null, inspector: live !== null },
    owner: e.owner,
    live: run === 'live',
    run,
  }
}

function freshChanges(): Changes {
  return { list: false, loops: new Set(), history: new Map(), stream: new Map() }
}
