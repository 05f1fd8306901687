/**
 * Record migrations: every schema version loopstate has shipped is brought up to
 * SCHEMA_VERSION here, one step at a time. A version with no path is refused.
 */
import { SCHEMA_VERSION, type LoopRecord } from './snapshot-store.ts'

type Json = Record<string, unknown>

/** Step from version N to N + 1, keyed by N. Each step returns a new object. */
const STEPS: Record<number, (record: Json) => Json> = {
  /** 1 → 2: the session journal, per-model call counts and the durable deadlines joined the context. */
  1: (record) =>
    withContext(record, 2, (context) => ({ ...context, calls: {}, journal: null, stallDeadline: null, retryDeadline: null })),
  /** 2 → 3: the sandbox's settings joined the config (`maxReadBytes`, `runCommand.env`, `runCommand.allowInlineCode`). */
  2: (record) => withContext(record, 3, (context) => {
    const config = (context.config ?? {}) as Json
    const runCommand = (config.runCommand ?? {}) as Json
    return {
      ...context,
      config: {
        ...config,
        maxReadBytes: config.maxReadBytes ?? 1024 * 1024,
        runCommand: { env: [], allowInlineCode: false, ...runCommand },
      },
    }
  }),
  /** 3 → 4: the no-progress stop (what the last pass left, the count, its limit), checks, tool error counts, the session count. */
  3: (record) =>
    withContext(record, 4, (context) => ({
      ...context,
      lastPass: null,
      passesWithoutProgress: 0,
      checksPending: false,
      lastChecks: null,
      toolErrors: {},
      forkedFrom: null,
      sessions: 0,
      config: { maxPassesWithoutProgress: 3, checks: [], ...((context.config ?? {}) as Json) },
    })),
}

/** The record at `version` with its snapshot's context replaced by `change(context)` (a record without one as it is). */
function withContext(record: Json, version: number, change: (context: Json) => Json): Json {
  const snapshot = record.snapshot as Json | null
  if (!snapshot || typeof snapshot !== 'object' || typeof snapshot.context !== 'object' || snapshot.context === null) {
    return { ...record, schemaVersion: version }
  }
  return { ...record, schemaVersion: version, snapshot: { ...snapshot, context: change(snapshot.context as Json) } }
}

/**
 * Brings a parsed record to SCHEMA_VERSION. Returns a problem (one phrase) instead
 * when the version is unknown or newer than this loopstate.
 */
export function migrateRecord(json: Json): { record: LoopRecord } | { problem: string } {
  let record = json
  const from = record.schemaVersion as number
  if (from > SCHEMA_VERSION) {
    return { problem: `schema version ${from} is newer than this loopstate supports (${SCHEMA_VERSION}); upgrade loopstate` }
  }
  while ((record.schemaVersion as number) < SCHEMA_VERSION) {
    const step = STEPS[record.schemaVersion as number]
    if (!step) return { problem: `schema version ${record.schemaVersion} is unknown (no migration to ${SCHEMA_VERSION})` }
    record = step(record)
  }
  return { record: record as unknown as LoopRecord }
}
