/** The session actor the loop machine invokes by name, and the services bundle to `.provide()`. */
import { fromCallback, fromPromise } from 'xstate'
import { ProviderError, type ModelProvider } from '../adapters/model-provider.ts'
import { auditSection, callKey } from '../machines/loop.machine.ts'
import { DEFAULT_CONFIG, type LoopContext, type LoopError, type LoopEvent, type Phase, type SessionCommand, type SessionInput } from '../machines/loop.types.ts'
import { decidePrompt } from './audit-decide.ts'
import { runChecksLogic } from './checks.ts'
import { createFindingsLedger } from './findings-tools.ts'
import { commitAll } from './git-workspace.ts'
import { buildPrompt } from './prompts.ts'
import { ModelSession, type SessionStart } from './session.ts'
import { toolsFor } from './tools.ts'
import { workspaceDigest } from './workspace-digest.ts'

export interface LoopServiceDeps {
  /** The provider of a model spec for a loop, and the model name it takes. Throws for an unknown scheme. */
  provider(loopName: string, spec: string): { provider: ModelProvider; model: string }
  /** Resolves when the loop's latest snapshot is saved (write-ahead for side-effect tools). */
  durable?(loopName: string): Promise<void>
  /** The engine's data dir, which no tool may reach (see ToolContext.dataDir). */
  dataDir?: string | null
}

/** Plain, serializable error for the loop's context. */
export function toLoopError(err: unknown): LoopError {
  if (err instanceof ProviderError) {
    return {
      name: err.name,
      message: err.message,
      code: err.code,
      retryable: err.retryable,
      ...(err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {}),
    }
  }
  const e = err instanceof Error ? err : new Error(String(err))
  return { name: e.name, message: e.message, code: 'internal', retryable: false }
}

/** The journal to continue, if the saved one belongs to this phase; else a fresh prompt. */
function sessionStart(context: LoopContext, input: SessionInput): { start: SessionStart; delivered: number } {
  const j = context.journal
  if (j && j.phase === input.phase && j.iteration === context.iteration && j.sectionIndex === context.sectionIndex) {
    return { start: { kind: 'resume', messages: j.messages, running: j.running }, delivered: j.delivered }
  }
  const prompt = buildPrompt(context, input.role, input.phase as Phase)
  return { start: { kind: 'fresh', system: prompt.system, user: prompt.user }, delivered: prompt.delivered }
}

/**
 * The abort reason of a stopped session (the phase ended, pause, shutdown): one shared
 * AbortError, since `abort()` without a reason builds a new DOMException with a stack
 * trace for every session that ends.
 */
const STOPPED = new DOMException('the loop stopped this session', 'AbortError')

/** At most one `session.activity` per this long (or a twentieth of the stall timeout, if shorter). */
export const ACTIVITY_INTERVAL_MS = 1000

/**
 * Activity for the watchdog, coalesced: the first one after a quiet spell goes out at
 * once, later ones within `intervalMs` as one at the end of it. Each one that goes out
 * re-arms the stall deadline (a state change, saved), so a model streaming 50 tokens a
 * second would otherwise cost 50 snapshots a second. A stall is still never reported
 * early; at most `intervalMs` late (a twentieth of the stall timeout).
 */
export function coalescedActivity(emit: () => void, intervalMs: number) {
  let last = -Infinity
  let trailing: NodeJS.Timeout | null = null
  const fire = () => {
    trailing = null
    last = Date.now()
    emit()
  }
  return {
    activity(): void {
      if (trailing !== null) return // one is already due at the end of this interval
      const wait = last + intervalMs - Date.now()
      if (wait <= 0) fire()
      else trailing = setTimeout(fire, wait)
    },
    stop(): void {
      if (trailing !== null) clearTimeout(trailing)
      trailing = null
    },
  }
}

export function createSessionLogic(deps: LoopServiceDeps) {
  return fromCallback<SessionCommand, SessionInput>(({ input, sendBack, receive }) => {
    const controller = new AbortController()
    const { context, role } = input
    const spec = input.model
    const send = (event: LoopEvent) => {
      if (!controller.signal.aborted) sendBack(event)
    }
    let session: ModelSession | null = null
    const activity = coalescedActivity(
      () => send({ type: 'session.activity' }),
      Math.max(1, Math.min(ACTIVITY_INTERVAL_MS, Math.floor(context.config.stallTimeoutMs / 20))),
    )
    receive((command) => {
      if (command.type === 'session.nudge') session?.nudge()
    })
    const run = async () => {
      // Stopped before it ran (a restored actor's session, replaced at once by loop.restored): nothing to do.
      if (controller.signal.aborted) return
      const { provider, model } = deps.provider(context.name, spec)
      // A snapshot of an older loopstate (a fork from its history) may lack the newer settings.
      const runCommand = { ...DEFAULT_CONFIG.runCommand, ...context.config.runCommand }
      const { start, delivered } = sessionStart(context, input)
      const findings = createFindingsLedger({
        findings: context.findings,
        nextId: context.nextFindingId,
        section: auditSection(context),
        audit: context.audits + 1,
        onReport: (finding) => send({ type: 'session.finding.reported', finding }),
        onResolve: (id) => send({ type: 'session.finding.resolved', id }),
      })
      session = new ModelSession({
        provider,
        model,
        role,
        start,
        callIndex: context.calls[callKey(role, spec)] ?? 0,
        tools: toolsFor(role, runCommand),
        toolContext: {
          workspace: context.workspace,
          dataDir: deps.dataDir ?? null,
          maxReadBytes: context.config.maxReadBytes ?? DEFAULT_CONFIG.maxReadBytes,
          role,
          findings,
          runCommand,
        },
        signal: controller.signal,
        maxTurns: context.config.maxTurnsPerSession,
        // The auditor decides the blocking findings it would leave undecided (asked once).
        beforeReply:
          role === 'auditor'
            ? (reply, messages) =>
                decidePrompt({
                  findings: findings.list(),
                  audit: context.audits + 1,
                  section: auditSection(context),
                  blockOn: context.config.blockOn,
                  messages,
                  reply,
                })
            : undefined,
        durable: deps.durable && (() => deps.durable!(context.name)),
        observer: {
          started: (messages) => send({ type: 'session.started', messages, delivered }),
          activity: () => activity.activity(),
          turn: (usage, message) => send({ type: 'session.turn', role, model: spec, ...usage, message }),
          toolStarted: (callId) => send({ type: 'session.tool.started', callId }),
          toolFinished: (callId, name, content) => send({ type: 'session.tool.finished', callId, name, content }),
          nudged: (content) => send({ type: 'session.nudged', role, model: spec, content }),
          reprompted: (content) => send({ type: 'session.reprompted', content }),
          compacted: (messages, note) => send({ type: 'session.compacted', messages, note }),
        },
      })
      const text = await session.run()
      // A coder pass ends with what it left in the workspace (the no-progress stop, machines/progress.ts).
      const digest = role === 'coder' ? await workspaceDigest(context.workspace, deps.dataDir ?? null) : undefined
      send({ type: 'session.done', text, delivered, ...(digest !== undefined ? { digest } : {}) })
    }
    // Started on a later tick so that nothing is sent back while the parent is still entering the state.
    Promise.resolve()
      .then(run)
      .catch((err: unknown) =>
        send({
          type: 'session.failed',
          error: toLoopError(err),
          ...(session?.failedOnCall ? { call: { role, model: spec } } : {}),
        }),
      )
    return () => {
      activity.stop()
      controller.abort(STOPPED)
    }
  })
}

/** Commits a git loop's worktree (nothing to commit is fine: the step may already be committed). */
export const commitWorkLogic = fromPromise<string | null, { message: string; context: LoopContext }>(async ({ input }) => {
  const git = input.context.git ?? null
  return git === null ? null : commitAll(git, input.message)
})

/** What services provide to the loop machine (`loopMachine.provide(createLoopServices(deps))`). */
export function createLoopServices(deps: LoopServiceDeps) {
  return { actors: { session: createSessionLogic(deps), commitWork: commitWorkLogic, runChecks: runChecksLogic } }
}
