/**
 * The loops model the page is fed from: what the viewer knows of each loop, from
 * the store (record, owner, history: server/store-watcher.ts) and from inspection
 * events (a live record, its transitions, children and event stream:
 * server/inspection.ts), and what changed since the pages were last pushed to.
 */
import type { HistoryEntry, LoopRecord } from '../../../adapters/snapshot-store.ts'
import { emptyUsage } from '../../../machines/loop.machine.ts'
import { detailOf, stateString, viewOf, type LoopDetail, type LoopView } from '../../views.ts'
import { sanitize } from '../sanitize.ts'
import { pageEntry, syntheticRecord, type Snap } from './records.ts'
import type { LoopPayload, LoopSummary, PageHistoryEntry, StreamEvent } from './types.ts'

const DETAIL_LIMITS = { maxString: 4000, maxItems: 1000 }
const STREAM_KEEP = 300

/** A loop as inspection events show it. */
export interface LiveLoop {
  sessionId: string
  record: LoopRecord
  lastState: string
  history: HistoryEntry[]
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
  history: HistoryEntry[]
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

  summaries(): LoopSummary[] {
    return [...this.#loops.values()]
      .map((e) => summary(e))
      .filter((s): s is LoopSummary => s !== null)
      .sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.name < b.name ? -1 : 1))
  }

  payload(name: string): LoopPayload | null {
    const e = this.#loops.get(name)
    if (!e) return null
    const s = summary(e)
    if (s === null) return null
    // The store has the full texts; the inspector's context is cut. Detail from the store when there is one.
    const record = e.store ?? e.live!.record
    let detail: LoopDetail
    try {
      detail = { ...sanitize(detailOf(record), DETAIL_LIMITS), ...s }
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
  storeHistory(name: string, entries: HistoryEntry[], reset: boolean): void {
    const e = this.#loops.get(name)
    if (!e) return
    if (reset) e.history = entries
    else e.history.push(...entries)
    if (entries.length > 0 || reset) this.queueHistory(name, reset, entries)
  }

  // --- the inspector's side ---

  queueHistory(name: string, reset: boolean, fresh: HistoryEntry[]): void {
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

  streamEvent(name: string, event: StreamEvent): void {
    const live = this.#loops.get(name)?.live
    if (!live) return
    live.stream.push(event)
    if (live.stream.length > STREAM_KEEP) live.stream.shift()
    const pending = this.#changes.stream.get(name) ?? []
    pending.push(event)
    this.#changes.stream.set(name, pending)
  }

  #historyOf(name: string): HistoryEntry[] {
    const e = this.#loops.get(name)
    if (!e) return []
    return e.store || e.history.length > 0 ? e.history : (e.live?.history ?? [])
  }
}

function summary(e: LoopEntry): LoopSummary | null {
  const store = e.store
  const live = e.live?.record ?? null
  // The newer of the two (same clock: the engine stamps both).
  const record = store && live ? (Date.parse(live.updatedAt) >= Date.parse(store.updatedAt) ? live : store) : (store ?? live)
  if (!record) return null
  let view: LoopView
  try {
    view = viewOf(record)
  } catch {
    return null
  }
  if (store && record === live && store.status === 'queued' && live.status === 'running') view.status = 'running'
  return {
    ...view,
    sources: { store: store !== null, inspector: live !== null },
    owner: e.owner,
    live: e.live?.connected === true,
  }
}

function freshChanges(): Changes {
  return { list: false, loops: new Set(), history: new Map(), stream: new Map() }
}
