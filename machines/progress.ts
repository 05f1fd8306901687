/**
 * Progress of the coder's passes (docs/architecture.md "Limits, retries, stalls,
 * termination"): after each pass the engine records a digest of the workspace's
 * content and the blocking findings open at its end. A rework pass that leaves the
 * workspace as it was made no progress, whatever the audits said meanwhile;
 * `maxPassesWithoutProgress` such passes in a row end the loop with `no_progress`
 * instead of spending every iteration. Pure: the digest is computed by the session
 * (services/workspace-digest.ts).
 */
import type { Finding, LoopContext, LoopError } from './loop.types.ts'

/** What the last coder pass left. */
export interface PassRecord {
  /** Digest of the workspace's content after the pass; null when it could not be taken (counts as changed). */
  digest: string | null
  /** Ids of the blocking findings open at the pass's end, sorted. */
  openBlocking: string[]
}

/** Ids of the open findings of a blocking severity, sorted. */
export function openBlockingIds(findings: Finding[], blockOn: readonly string[]): string[] {
  return findings
    .filter((f) => f.status === 'open' && blockOn.includes(f.severity))
    .map((f) => f.id)
    .sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))
}

/**
 * The pass that just ended (`digest` of the workspace now) against the one before:
 * the new record, and the passes in a row without progress. The first pass of a
 * section is the baseline: only rework passes count.
 */
export function passOutcome(context: LoopContext, digest: string | null): { lastPass: PassRecord; passesWithoutProgress: number } {
  const lastPass = { digest, openBlocking: openBlockingIds(context.findings, context.config.blockOn) }
  const before = context.lastPass ?? null
  const unchanged = before !== null && digest !== null && digest === before.digest
  return { lastPass, passesWithoutProgress: unchanged ? (context.passesWithoutProgress ?? 0) + 1 : 0 }
}

/** Whether the pass that ended with `digest` reaches the limit (0 turns the stop off). */
export function progressLimitReached(context: LoopContext, digest: string | null): boolean {
  const limit = context.config.maxPassesWithoutProgress ?? 0
  return limit > 0 && passOutcome(context, digest).passesWithoutProgress >= limit
}

/** The error a `no_progress` end carries: the passes and the findings still open. */
export function noProgressError(context: LoopContext, passes: number): LoopError {
  const open = context.findings.filter((f) => context.lastPass?.openBlocking.includes(f.id))
  const list = open.map((f) => `${f.id} ${f.line === null ? f.file : `${f.file}:${f.line}`} (${f.message})`).join('; ')
  const first = context.iteration - passes + 1
  return {
    name: 'NoProgress',
    message:
      `no progress: ${passes} rework passes in a row (iterations ${first}–${context.iteration}) left the workspace ` +
      `as it was${open.length > 0 ? ` and these blocking findings open: ${list}` : ''}`,
    code: 'no_progress',
    retryable: false,
  }
}
