/**
 * `loopstate inspect`: a local web viewer of the loops of a data dir. It serves a
 * static page (services/inspect/viewer/, no external requests) and JSON, and pushes
 * live changes to the page over a WebSocket. Changes come from two sources:
 *
 * - the store, polled every ~300 ms and read through LoopClient
 *   (services/client.ts): loops run by any process, with or without --inspect,
 *   and loops that ended (post-mortem);
 * - inspection events: engines started with `--inspect ws://host:port` connect
 *   here as stately-compatible WebSocket inspector clients (the frames
 *   `createWebSocketInspector` sends). Any WebSocket path but `/ws/page` is that
 *   endpoint; like stately's relay (`@statelyai/inspect/server`), what one such
 *   client sends is relayed to the others.
 *
 * Read-only: nothing in the data dir is created, moved or written, and no loop is
 * claimed. Reachable only by the user (services/inspect/viewer-access.ts): it
 * listens on 127.0.0.1 and serves its own origin only (exact scheme, host and
 * port); a non-loopback `--host` also requires a random token on every request and
 * WebSocket. Frames, the relay's replay buffer and what a slow client may leave
 * queued are capped.
 *
 * This module is the facade; the parts are in services/inspect/server/: start.ts
 * (putting them together), http.ts, sockets.ts, store-watcher.ts (over the JSON
 * store's change feed, adapters/json-store-feed.ts), model.ts, inspection.ts,
 * panels.ts (a loop's transcript, diff and findings: findings.ts), records.ts.
 */
export { checkBindHost, isLoopback } from './viewer-access.ts'
export { startViewer } from './server/start.ts'
export { VIEWER_LIMITS } from './server/sockets.ts'
export {
  DEFAULT_VIEWER_PORT,
  type DiffReport,
  type FindingsReport,
  type LoopPayload,
  type LoopSummary,
  type PageHistoryEntry,
  type StreamEvent,
  type TranscriptReport,
  type Viewer,
  type ViewerOptions,
  type ViewerStats,
} from './server/types.ts'
