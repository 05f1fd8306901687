/**
 * `loopstate/inspector`: watching loops from Node. `startViewer` serves the loop
 * viewer of a data dir (what `loopstate inspect` runs); `createStatelyInspect`
 * streams an engine's inspection events (sanitized) to it or to any
 * stately-compatible WebSocket inspector:
 *
 *     const inspector = createStatelyInspect('ws://127.0.0.1:4747')
 *     const engine = await createEngine({ inspect: inspector.inspect })
 *
 * Re-exports only.
 */
// From the viewer's parts rather than its facade (inspect/viewer-server.ts): their
// declarations need no Node type definitions (@types/node) in the user's project.
export { startViewer } from './inspect/server/start.ts'
export { DEFAULT_VIEWER_PORT } from './inspect/server/types.ts'
export type { LoopPayload, LoopSummary, PageHistoryEntry, Viewer, ViewerOptions, ViewerStats } from './inspect/server/types.ts'
export { createStatelyInspect, inspectorUrl, sanitizeInspectionEvent } from './inspect/stately.ts'
export type { StatelyInspect, StatelyInspectOptions } from './inspect/stately.ts'
export type { Redactor, SanitizeOptions } from './inspect/sanitize.ts'
