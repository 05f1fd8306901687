/**
 * The public types of the viewer server (services/inspect/viewer-server.ts): its
 * options and handle, and what the page is sent (loops, details, history, stream).
 */
import type { HistoryEntry } from '../../../adapters/snapshot-store.ts'
import type { LoopDetail, LoopView } from '../../views.ts'

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
  /** Inspection events arrived for it from a connected engine. */
  live: boolean
}

/** A loop in detail (sanitized: long texts are cut). */
export interface LoopPayload {
  summary: LoopSummary
  detail: LoopDetail
  /** The actors the inspector saw under the loop (its sessions), newest last. */
  children: { id: string; name: string; status: string }[]
}

/** A transition as the page lists it; the snapshot is fetched on demand. */
export type PageHistoryEntry = Omit<HistoryEntry, 'snapshot'> & { snapshot: boolean }

/** An event of the inspector stream of a loop (its actor's and its children's). */
export interface StreamEvent {
  at: number
  type: string
  target: string
  source: string | null
}
