/**
 * `loopstate/stores`: where loops are saved. The store contract (`SnapshotStore`)
 * with its record types, the JSON store on a data dir (what the engine uses by
 * default) and the in-memory store (`createEngine({ store: new MemoryStore() })`).
 * Re-exports only.
 */
export { SCHEMA_VERSION } from './snapshot-store.ts'
export type { HistoryEntry, LoopRecord, NewHistoryEntry, PersistedLoop, RemovedLoop, SnapshotStore, TranscriptSession } from './snapshot-store.ts'
export { JsonStore } from './json-store.ts'
export type { JsonStoreOptions } from './json-store.ts'
export { assertLoopName, LOOP_NAME, MemoryStore } from './memory-store.ts'
export type { Claim, ClaimResult, ClaimStore, Owner } from './claims.ts'
export type { CommandInbox, CommandTicket } from './inbox.ts'
