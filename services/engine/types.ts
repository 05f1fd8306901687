/** The engine's types: its options, what a loop works on, a loop's handle, and the live loop it tracks. */
import type { Actor, InspectionEvent } from 'xstate'
import type { Claim } from '../../adapters/claims.ts'
import type { ProviderFactory } from '../../adapters/model-provider.ts'
import type { LoopRecord, SnapshotStore } from '../../adapters/snapshot-store.ts'
import type { loopMachine } from '../../machines/loop.machine.ts'
import type { ControlEvent, LoopOutput } from '../../machines/loop.types.ts'
import type { LoopOptions } from '../config.ts'
import type { LoopView } from '../views.ts'

export interface EngineOptions {
  /** Directory of the JSON store. @default 'data' (relative to the working directory) */
  dataDir?: string
  /** A store other than the JSON store of `dataDir` (e.g. MemoryStore in tests). */
  store?: SnapshotStore
  /** Model providers by scheme. @default { scripted } */
  providers?: Record<string, ProviderFactory>
  /** Loops running at once (a paused loop keeps its place); more wait in a queue. @default 3 */
  maxConcurrentLoops?: number
  /**
   * Restore every unfinished loop of the store (running, paused, queued) when the
   * engine is created. Loops that another live process runs are left to it.
   * @default true
   */
  resume?: boolean
  /** History entries kept per loop (older ones are dropped). @default 500 */
  historyLimit?: number
  /** Sessions whose transcripts each loop's journal file keeps (JSON store; `loopstate log`). @default 40 */
  keepSessions?: number
  /**
   * Apply commands (cancel, pause, say) that other processes leave in the data dir.
   * @default true when the store is the JSON store of `dataDir`
   */
  acceptCommands?: boolean
  /** How often the data dir is checked for commands, ms. @default 200 */
  commandPollMs?: number
  /** One-line reports of problems that do not stop the engine (an unwritable record, a bad store file). */
  onProblem?: (message: string) => void
  /** Receives every XState inspection event of every loop actor and its children. */
  inspect?: (event: InspectionEvent) => void
}

/** What a loop works on: a plan (markdown text or a file) or a goal. */
export type LoopTaskSpec = { plan: string; source?: string } | { planFile: string } | { goal: string }

export interface StartOptions extends LoopOptions {
  /** Loop name. @default the slug of the plan title, made unique with -2, -3 … */
  name?: string
  /**
   * Directory the coder works in. In a git repository the loop works in a new
   * worktree on branch `loop/<name>` instead (see `inPlace`).
   * @default the working directory
   */
  workspace?: string
  /** Work in the workspace directory itself even when it is in a git repository. @default false */
  inPlace?: boolean
}

/** Overrides of `engine.continue` (docs/architecture.md "Limits, retries, stalls, termination"). */
export interface ContinueOverrides {
  /** Rework passes added (and dirty audits, for a section that ran out of them). @default 5 */
  more?: number
  /** A message for the next prompt; required to continue a completed loop. */
  say?: string
  /** Coder models instead of the loop's (the auditor's too when they were the same). */
  models?: string[]
  /** Checks added to the loop's (LoopOptions form). */
  checks?: LoopOptions['checks']
  /** Budget limits raised (a loop that ended budget_exhausted needs the one that ended it raised). */
  budget?: LoopOptions['budget']
}

export interface ForkOptions extends Omit<ContinueOverrides, 'more'> {
  /** History entry to start from: its snapshot, or the nearest earlier one that has a snapshot. */
  at: number
  /** Name of the new loop. @default `<name>-fork`, made unique */
  name?: string
  /** Where the copy of the workspace goes. @default beside the original: `<workspace>.<new name>` */
  workspace?: string
}

export interface LoopHandle {
  readonly name: string
  /** Called with the loop's view on every saved state change; returns an unsubscribe function. */
  subscribe(listener: (view: LoopView) => void): () => void
  view(): LoopView
  send(event: ControlEvent): void
  cancel(): void
  pause(): void
  resume(): void
  say(text: string): void
  /** Settles when the loop reaches a final state and its last snapshot is saved. */
  readonly done: Promise<LoopOutput>
}

export class EngineError extends Error {
  override readonly name = 'EngineError'
}

export type LoopActor = Actor<typeof loopMachine>

/** A loop this engine runs or queues. */
export interface LiveLoop {
  name: string
  /** This engine's claim of the loop: held from before its record is read or made until it ends or the engine closes. */
  claim: Claim
  createdAt: string
  actor: LoopActor
  /** Restored from a snapshot: told `loop.restored` when started. */
  restored: boolean
  /** Why the loop's workspace cannot be had (told `loop.workspaceFailed` when started). */
  workspaceProblem?: string | null
  started: boolean
  record: LoopRecord
  listeners: Set<(view: LoopView) => void>
  unsubscribe: (() => void) | null
  lastContext: unknown
  lastState: string
  /** The latest write of the loop's record. */
  lastWrite: Promise<void>
  /** The store's promise behind `lastWrite`. */
  lastPut: Promise<void> | null
  settle: { resolve: (o: LoopOutput) => void; reject: (e: unknown) => void }
  handle: LoopHandle
  /** The inspection callback its actors report to (kept for an actor rebuilt while queued). */
  inspect: (event: InspectionEvent) => void
  /** Commands to the loop while it waits for a slot, applied one after another. */
  queuedCommands: Promise<void>
  /** Why its last save failed (it is stopped, paused at its last good record), or null. */
  storageFailed: string | null
}

export const FINAL = new Set(['completed', 'cancelled', 'errored', 'stalled'])
/** The loop name under which a new loop's models are built once, to check them, before it has a name. */
export const PROBE = '\u0000probe'
