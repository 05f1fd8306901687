/** Types shared by the loop statechart, the services that run it and the stores that save it. */
import type { ChatMessage, Role, ToolCall } from './chat.types.ts'
import type { ContinueOptions } from './continue.ts'
import type { PassRecord } from './progress.ts'

export type Phase = 'coding' | 'auditing' | 'finalAuditing' | 'finalAuditFix'
export type LoopKind = 'plain' | 'sectioned' | 'goal'
export type LoopStatus = 'running' | 'paused' | 'completed' | 'cancelled' | 'errored' | 'stalled'
export type FinalStatus = Exclude<LoopStatus, 'running' | 'paused'>
export type LoopReason =
  | 'completed'
  | 'user_cancelled'
  | 'max_iterations'
  | 'max_section_attempts'
  | 'error_max_retries'
  | 'provider_fatal'
  | 'no_output'
  | 'stall_timeout'
  | 'budget_exhausted'
  | 'workspace_failed'
  | 'no_progress'

/** The status each final reason ends in. */
export const STATUS_OF_REASON: Record<LoopReason, FinalStatus> = {
  completed: 'completed',
  user_cancelled: 'cancelled',
  stall_timeout: 'stalled',
  max_iterations: 'errored',
  max_section_attempts: 'errored',
  error_max_retries: 'errored',
  provider_fatal: 'errored',
  no_output: 'errored',
  budget_exhausted: 'errored',
  workspace_failed: 'errored',
  no_progress: 'errored',
}

export type Severity = 'bug' | 'warning'

export interface Finding {
  /** `F1`, `F2`, … unique within the loop. */
  id: string
  file: string
  line: number | null
  severity: Severity
  message: string
  status: 'open' | 'resolved'
  /** Section index (0-based) the finding was reported in; null for plain/goal loops and final audits. */
  section: number | null
  /** Audit number (1-based) that reported it. */
  reportedInAudit: number
  /** How many consecutive finished audits it has been open through (counting the reporting one). */
  openAudits: number
  /** Open in 3 consecutive audits: flagged in the next prompts. */
  recurring: boolean
  /** The check that owns it (opened and resolved by its result, never by the auditor); absent for the auditor's. */
  check?: string
}

/** A command the engine runs in the workspace after every coder pass (docs/architecture.md "Checks"). */
export interface CheckConfig {
  /** Shown in findings and prompts. @default the command line */
  name: string
  /** argv, run without a shell. */
  run: string[]
  /** @default 300000 */
  timeoutMs: number
}

/** What one run of a check gave. */
export interface CheckResult {
  name: string
  passed: boolean
  /** `exit code 1`, `timed out after 300000 ms`, `could not start: …`. */
  outcome: string
  /** The end of its output (stdout then stderr), for the prompts. */
  tail: string
  ms: number
}

export interface SectionState {
  title: string
  body: string
  status: 'pending' | 'active' | 'done'
  /** Dirty (or summary-less) audits of this section. */
  attempts: number
  summary: string | null
}

export interface Usage {
  inputTokens: number
  outputTokens: number
  /** Model time (from the provider), ms. */
  durationMs: number
  costUsd: number
  /** Completed model calls. */
  calls: number
}

export interface UsageTotals {
  total: Usage
  byModel: Record<string, Usage>
  byRole: Record<Role, Usage>
}

/** Price of a model, US dollars per 1,000 tokens. */
export interface ModelPrice {
  inputPer1k: number
  outputPer1k: number
}

export interface Budget {
  /** Input + output tokens across every call of the loop. */
  maxTokens?: number
  maxCostUsd?: number
  /** Running time (paused time excluded), counted across restarts. */
  maxWallMs?: number
}

export interface RunCommandConfig {
  /** @default false */
  enabled: boolean
  /** Executables the coder may run (first word of the command), e.g. `['npm', 'node']`. */
  allow: string[]
  /** @default 60000 */
  timeoutMs: number
  /**
   * Variables of the engine's environment passed to the command, beside PATH, HOME
   * and LANG (the command gets nothing else of it). @default []
   */
  env: string[]
  /**
   * Let allow-listed interpreters run code given inline (`node -e`, `python -c`,
   * `sh -c` …); refused by default. @default false
   */
  allowInlineCode: boolean
}

/** Everything that shapes a loop's behaviour. Defaults in DEFAULT_CONFIG. */
export interface LoopConfig {
  /** Coder models in fallback order, `scheme:model`. */
  models: string[]
  /** Auditor models in fallback order. @default the coder models */
  auditorModels: string[]
  /** Rework passes (coding after a dirty audit) allowed. @default 15 */
  maxIterations: number
  /** Dirty audits allowed per section. @default 5 */
  maxSectionAttempts: number
  /** Retries allowed after consecutive failed model calls. @default 3 */
  maxRetries: number
  /** Failed attempts on one model before the next in its chain. @default 2 */
  failuresBeforeFallback: number
  /** Backoff between retries: baseMs × 2^n, ± jitter fraction, capped. */
  retryBackoff: { baseMs: number; maxMs: number; jitter: number }
  /** No activity for this long is a stall. @default 60000 */
  stallTimeoutMs: number
  /** Consecutive stalls that end the loop (the earlier ones nudge). @default 5 */
  maxConsecutiveStalls: number
  /** Model calls one session may make before it is cut off. @default 50 */
  maxTurnsPerSession: number
  /** Severities that block completion. @default ['bug'] */
  blockOn: Severity[]
  budget: Budget
  /** Prices per model spec; models without one cost 0. */
  prices: Record<string, ModelPrice>
  runCommand: RunCommandConfig
  /** Largest file `read_file` (and `edit_file`) will open, bytes. @default 1048576 (1 MB) */
  maxReadBytes: number
  /** Rework passes in a row that leave the workspace as it was before the loop ends `no_progress` (0: never). */
  maxPassesWithoutProgress: number
  /** Commands run after every coder pass; a failing one blocks completion. */
  checks: CheckConfig[]
}

export const DEFAULT_CONFIG: Omit<LoopConfig, 'models' | 'auditorModels'> = {
  maxIterations: 15,
  maxSectionAttempts: 5,
  maxRetries: 3,
  failuresBeforeFallback: 2,
  retryBackoff: { baseMs: 2_000, maxMs: 60_000, jitter: 0.2 },
  stallTimeoutMs: 60_000,
  maxConsecutiveStalls: 5,
  maxTurnsPerSession: 50,
  blockOn: ['bug'],
  budget: {},
  prices: {},
  runCommand: { enabled: false, allow: [], timeoutMs: 60_000, env: [], allowInlineCode: false },
  maxReadBytes: 1024 * 1024,
  maxPassesWithoutProgress: 3,
  checks: [],
}

/** What a loop works on. */
export type LoopTask =
  | { kind: 'plain'; title: string; text: string }
  | { kind: 'sectioned'; title: string; text: string; preamble: string }
  | { kind: 'goal'; title: string; text: string }

/** A loop that works in a git worktree of the user's repository. */
export interface GitWorkspace {
  /** Top of the user's repository. */
  repo: string
  /** `loop/<name>`. */
  branch: string
  /** Absolute path of the loop's worktree. */
  worktree: string
  /** Commit the branch started from. */
  base: string
  /** Where in the repository the loop works ('' for its top). */
  subdir: string
  /**
   * The repository's git dir (its common dir, for a linked worktree), found when
   * the loop was made: every git command is pinned to it or to the worktree's git
   * dir inside it. Absent in older records (found again from the repository).
   */
  commonDir?: string
}

export interface LoopInput {
  name: string
  task: LoopTask
  /** Sections of a sectioned plan (empty otherwise). */
  sections: { title: string; body: string }[]
  /** Absolute path of the workspace directory (inside the worktree for git loops). */
  workspace: string
  config: LoopConfig
  /** Set when the loop works in a git worktree; null (or absent) for a plain directory. */
  git?: GitWorkspace | null
}

/** Serializable error as kept in context. */
/**
 * How a session can end other than with a reply, as the chart reads it (services/
 * session.ts throws them): `max_turns` (it used its model calls) and `repetition`
 * (the same tool call again and again) retry with a fresh session; `no_output`
 * (no reply even when asked again) ends the loop.
 */
export const SESSION_EXITS = { maxTurns: 'max_turns', repetition: 'repetition', noOutput: 'no_output' } as const
export type SessionExitCode = (typeof SESSION_EXITS)[keyof typeof SESSION_EXITS]

export interface LoopError {
  name: string
  message: string
  /** A `SessionExitCode`, a provider's code (`model_not_found`, `rate_limited`, `ECONNREFUSED` …), or `internal`. */
  code: SessionExitCode | (string & {})
  retryable: boolean
  /** The wait the server asked for (a 429's `Retry-After`), in ms: the backoff is at least this. */
  retryAfterMs?: number
}

export interface AuditRecord {
  /** Audit number, 1-based. */
  n: number
  phase: Phase
  section: number | null
  text: string
  clean: boolean
  summaryFound: boolean
  blocking: number
  /**
   * What the audit decided (loop.context.ts `judgeAudit`): `clean`; `dirty` (blocking
   * findings of the auditor's open); `checksFailing` (only checks' findings block);
   * `summaryMissing` (a section audit with nothing blocking but no summary block).
   * Absent in records older than schema 4.
   */
  verdict?: AuditVerdict
}

export type AuditVerdict = 'clean' | 'dirty' | 'checksFailing' | 'summaryMissing'

/**
 * The running session's journal: its transcript as far as it got. A session
 * restored (after a restart, a pause or a retry in the same phase) continues
 * after its last completed turn instead of starting over.
 */
export interface SessionJournal {
  /**
   * The session's number in the loop (1, 2, …). The JSON store keeps the messages of
   * a numbered session in the loop's journal file, not in the record
   * (adapters/json-journal.ts); absent in journals older than schema 4.
   */
  id?: number
  phase: Phase
  iteration: number
  sectionIndex: number
  role: Role
  /** System and user prompt, then every completed assistant turn, tool result and re-prompt. */
  messages: ChatMessage[]
  /** Inbox messages the prompt carried. */
  delivered: number
  /** Tool calls started and not recorded as finished. */
  running: string[]
  /** What the session did to its own transcript (e.g. shortened old tool outputs to fit the context). */
  notes?: string[]
}

export interface LoopContext extends LoopInput {
  status: LoopStatus
  reason: LoopReason | null
  phase: Phase
  /** Coding passes started (1-based once the loop starts). */
  iteration: number
  /** Coding passes that followed a dirty audit. */
  rework: number
  sectionIndex: number
  sectionStates: SectionState[]
  findings: Finding[]
  nextFindingId: number
  audits: number
  lastAudit: AuditRecord | null
  /** The last reply of the coder (shown to the auditor). */
  lastCoderReply: string | null
  /** Messages from `say`, delivered with the next session's prompt. */
  inbox: string[]
  /** Consecutive failed model calls. */
  errorCount: number
  /** Failed calls on the current model of the failing role. */
  modelFailures: number
  modelIndex: Record<Role, number>
  lastError: LoopError | null
  /** Consecutive stalls. */
  stalls: number
  /** A note to add to the next prompt (why a session is re-run). */
  note: string | null
  usage: UsageTotals
  /** Running time so far (excludes paused time), ms. */
  wallMs: number
  /** Epoch ms when the current running stretch started; null while not running. */
  runningSince: number | null
  startedAt: number
  endedAt: number | null
  /** Model calls whose outcome reached the loop, per `role:modelSpec` (replaying providers answer by it). */
  calls: Record<string, number>
  journal: SessionJournal | null
  /** Epoch ms at which the watchdog fires unless there is activity; null outside sessions. */
  stallDeadline: number | null
  /** Epoch ms at which the retry in backoff starts; null when not backing off. */
  retryDeadline: number | null
  /** A commit of the git worktree in progress (a clean section, or the completed loop). */
  pendingCommit?: { kind: 'section' | 'final'; message: string } | null
  /** What the last coder pass left (machines/progress.ts); null before the first pass of a section. */
  lastPass: PassRecord | null
  /** Rework passes in a row that made no progress. */
  passesWithoutProgress: number
  /** A coder pass ended and its checks have not given their results yet (a restore runs them again). */
  checksPending: boolean
  /** The results of the last run of the checks; null before the first. */
  lastChecks: CheckResult[] | null
  /** Tool calls refused or failed, by kind (`toolErrorKind`), over the whole loop: what `status` shows. */
  toolErrors: Record<string, number>
  /** The loop and history entry this one was forked from; null for a loop that was started. */
  forkedFrom: { name: string; seq: number } | null
  /** Sessions started so far (the last one's number). */
  sessions: number
}

/** Sent by the session actor to the loop. */
export type SessionEvent =
  | { type: 'session.activity' }
  /** A fresh session's prompt (the journal starts). */
  | { type: 'session.started'; messages: ChatMessage[]; delivered: number }
  /** A model call completed. */
  | {
      type: 'session.turn'
      role: Role
      model: string
      inputTokens: number
      outputTokens: number
      durationMs: number
      message: { content: string; toolCalls: ToolCall[]; fromText?: true }
    }
  | { type: 'session.tool.started'; callId: string }
  | { type: 'session.tool.finished'; callId: string; name: string; content: string }
  /** A model call was aborted by the watchdog's nudge; the session re-prompts with `content`. */
  | { type: 'session.nudged'; role: Role; model: string; content: string }
  /** The session added a user message of its own (e.g. asking for a missing reply). */
  | { type: 'session.reprompted'; content: string }
  /** The session shortened its transcript to fit the model's context; `messages` replace the journal's. */
  | { type: 'session.compacted'; messages: ChatMessage[]; note: string }
  | { type: 'session.finding.reported'; finding: Finding }
  | { type: 'session.finding.resolved'; id: string }
  /**
   * `delivered`: how many inbox messages the session's prompt carried (they are dropped from the inbox);
   * `digest`: a coder session's digest of the workspace's content at its end (machines/progress.ts).
   */
  | { type: 'session.done'; text: string; delivered: number; digest?: string | null }
  /** `call`: the failing model call, when the failure was a call's outcome (it counts as a call). */
  | { type: 'session.failed'; error: LoopError; call?: { role: Role; model: string } }

/** Sent by users (API, CLI) to the loop. */
export type ControlEvent =
  | { type: 'loop.cancel' }
  | { type: 'loop.pause' }
  | { type: 'loop.resume' }
  | { type: 'loop.say'; text: string }

/** What the engine delivers to a live loop: a user's command, or a continuation. */
export type LoopCommand = ControlEvent | Extract<EngineEvent, { type: 'loop.continue' }>

/** Sent by the engine: right after restoring an actor from a snapshot (re-arms timers, restarts the session), or when its workspace cannot be had. */
export type EngineEvent =
  | { type: 'loop.restored' }
  | { type: 'loop.workspaceFailed'; message: string }
  /** An ended loop, reopened as paused by the engine, goes on with these overrides (machines/continue.ts). */
  | { type: 'loop.continue'; options: ContinueOptions }

export type LoopEvent = SessionEvent | ControlEvent | EngineEvent

/** Input of the session actor. */
export interface SessionInput {
  role: Role
  phase: Phase
  /** Model spec in use (`scheme:model`). */
  model: string
  context: LoopContext
}

/** Sent by the loop to its session actor. */
export type SessionCommand = { type: 'session.nudge' }

export interface LoopOutput {
  name: string
  status: FinalStatus
  reason: LoopReason
  iteration: number
  usage: UsageTotals
  error: LoopError | null
}
