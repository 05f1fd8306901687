/**
 * The public types of the viewer server (services/inspect/viewer-server.ts): its
 * options and handle, and what the page is sent (loops, details, history, stream).
 */
import type { HistoryEntry, TranscriptSession } from '../../../adapters/snapshot-store.ts'
import type { Finding } from '../../../machines/loop.types.ts'
import type { LoopDetail, LoopView } from '../../views.ts'
import type { WorkspaceDiff } from '../../workspace-diff.ts'

export interface ViewerOptions {
  /** The store to show. @default 'data' */
  dataDir?: string
  /** 0 picks a free port. @default 4747 */
  port?: number
  /** Address to listen on. @default '127.0.0.1' */
  host?: string
  /**
   * Whether the user chose `host` (`--host`). A non-loopback address is refused
   * unless it was. @default true when `host` is given
   */
  explicitHost?: boolean
  /** One-line messages: warnings, store problems. @default console.error */
  log?: (line: string) => void
  /** How often the store is checked for changes, ms. @default 300 */
  pollMs?: number
  /**
   * The token every request must carry (base64url, 128 bits or more). Required on a
   * non-loopback `host`, where a random one is made when none is given; given
   * with a loopback host, it is required there too. @default a random one, or none on loopback
   */
  token?: string
}

export interface Viewer {
  /** The page, e.g. `http://127.0.0.1:4747/` (with `?token=…` when a token is required). */
  readonly url: string
  /** Where engines send inspection events (`--inspect`), e.g. `ws://127.0.0.1:4747/` (with `?token=…` when required). */
  readonly inspectUrl: string
  readonly port: number
  /** The token every request must carry, or null when none is required (a loopback bind). */
  readonly token: string | null
  /** What the viewer holds now (for tests and diagnostics). */
  stats(): ViewerStats
  close(): Promise<void>
}

export interface ViewerStats {
  /** Connected page sockets. */
  pages: number
  /** Connected relay (inspector) sockets. */
  relays: number
  /** Frames and bytes in the relay's replay buffer (what a relay client gets when it connects). */
  replayFrames: number
  replayBytes: number
}

/** The default port of `loopstate inspect`. */
export const DEFAULT_VIEWER_PORT = 4747

/** A loop as the page lists it. */
export interface LoopSummary extends LoopView {
  /** Where the viewer knows it from: the store, inspection events, or both. */
  sources: { store: boolean; inspector: boolean }
  /** The pid of the process that runs it (its claim's owner), or null. */
  owner: number | null
  /** Inspection events arrive for it from a connected engine, and it has not ended (`run === 'live'`). */
  live: boolean
  /**
   * Who runs it, decided once (the list and the header show this, never a second
   * opinion): `live`, its engine streams to the viewer; `owned`, a live process holds
   * its claim; `ended`, its status is final (whatever still holds or streams it);
   * `none`, no process runs it (paused or stopped mid-run: resumable; or an
   * inspector-only loop whose engine went away).
   */
  run: 'live' | 'owned' | 'ended' | 'none'
}

/** A loop in detail (sanitized: long texts are cut). */
export interface LoopPayload {
  summary: LoopSummary
  detail: LoopDetail
  /** The actors the inspector saw under the loop (its sessions), newest last. */
  children: { id: string; name: string; status: string }[]
}

/**
 * A transition as the page lists it; the snapshot is fetched on demand. `section`:
 * the 1-based section it happened in (sectioned loops; null when not known, e.g.
 * before the first snapshot the history keeps). `payload`: the event, when it is
 * known (transitions seen by inspection events; the store keeps only its type).
 */
export type PageHistoryEntry = Omit<HistoryEntry, 'snapshot'> & { snapshot: boolean; section?: number | null; payload?: unknown }

/** An event of the inspector stream of a loop (its actor's and its children's). */
export interface StreamEvent {
  /** Increasing over every loop's stream of this viewer (the page keys its rows by it). */
  seq: number
  at: number
  type: string
  target: string
  source: string | null
  /** The 1-based section the loop was in (sectioned loops), else null. */
  section: number | null
  /** The event as sent (sanitized and capped), or null. */
  payload: unknown
}

/** What happened to one finding, as far as the loop's history tells. */
export interface FindingStory {
  /** The finding as it stands in the loop's current record. */
  finding: Finding
  /** Its changes seen in the history's snapshots, oldest first. */
  events: FindingEvent[]
  /** What the history does not tell about it (e.g. when it was reported, before the kept history). */
  unknown: string[]
}

export interface FindingEvent {
  what: 'reported' | 'resolved' | 'reopened' | 'recurring' | 'gone'
  /** The history entry whose snapshot first shows it; null: the current record (newer than the last snapshot). */
  seq: number | null
  at: string
  /** The audit it was reported in (`reported`), or the last audit finished when the change was seen. */
  audit: number | null
  iteration: number
}

/** `GET /api/loops/<name>/findings`. */
export interface FindingsReport {
  findings: FindingStory[]
  /** The first snapshot the history keeps (seq, time), or null when it keeps none. */
  since: { seq: number; at: string } | null
}

/** `GET /api/loops/<name>/diff`: a WorkspaceDiff (services/workspace-diff.ts) with its text's header lines as `notes`. */
export type DiffReport = Omit<WorkspaceDiff, 'text'> & { notes: string[] }

/** `GET /api/loops/<name>/transcript`. */
export interface TranscriptReport {
  /** `store`: the journal the store keeps; `none`: no store record (a loop seen only through inspection events). */
  source: 'store' | 'none'
  /** The sessions numbered `from` (a query parameter) or later, oldest first, sanitized like the loop's detail. */
  sessions: TranscriptSession[]
}
