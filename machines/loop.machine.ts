/**
 * The loop statechart (docs/architecture.md "The loop and its sessions", "Plans" and
 * "Limits, retries, stalls, termination").
 * Pure: the session and commitWork actors are placeholders that services replace
 * with `.provide()`; every action, guard and delay is named here.
 */
import { and, assertEvent, assign, fromCallback, fromPromise, sendTo, setup } from 'xstate'
import type { Role } from './chat.types.ts'
import { checkFindings, hasChecks, type ChecksInput } from './checks.ts'
import { continuedContext } from './continue.ts'
import { compacted, journaled, journalStarted, nudged, reprompted, toolFinished, toolStarted, turnMessage } from './journal.ts'
import { noProgressError, passOutcome, progressLimitReached } from './progress.ts'
import { parseSummary } from './summary.ts'
import {
  bump,
  clampDelay,
  currentModel,
  FRESH_START_ERRORS,
  initialContext,
  inSession,
  judgeAudit,
  MAX_DELAY_MS,
  overBudget,
  retryDelayMs,
  roleOfPhase,
  stallPassedWhileDown,
  usageAfterTurn,
  wallNow,
} from './loop.context.ts'
import {
  SESSION_EXITS,
  STATUS_OF_REASON,
  type CheckResult,
  type LoopContext,
  type LoopEvent,
  type LoopInput,
  type LoopOutput,
  type LoopReason,
  type SessionCommand,
  type SessionInput,
} from './loop.types.ts'

// The names other modules take from the chart's module (the maths lives in loop.context.ts).
export {
  auditSection,
  backoffMs,
  blockingFindings,
  callKey,
  currentModel,
  emptyUsage,
  initialContext,
  NUDGE_MESSAGE,
  roleOfPhase,
  toolErrorKind,
} from './loop.context.ts'

type UpdateArgs = { context: LoopContext; event: LoopEvent }

/** At a session's end: the inbox messages its prompt delivered are consumed, and the note is cleared. */
const deliveryConsumed = {
  inbox: ({ context, event }: UpdateArgs) =>
    event.type === 'session.done' ? context.inbox.slice(event.delivered) : context.inbox,
  note: null,
}

/** At a session's end: its watchdog goes, and wallMs is brought up to date (a crash loses little running time). */
const sessionClocksStopped = {
  stallDeadline: null,
  wallMs: ({ context }: UpdateArgs) => wallNow(context),
  runningSince: () => Date.now(),
}

/**
 * The coder's reply at the end of its session: the inbox messages its prompt delivered
 * are consumed, the note is cleared, the reply is kept and the loop moves on to `next`.
 */
function takeCoderReply(next: 'auditing' | 'finalAuditing') {
  return assign<LoopContext, LoopEvent, undefined, LoopEvent, never>(({ context, event }) => {
    assertEvent(event, 'session.done')
    return {
      inbox: context.inbox.slice(event.delivered),
      note: null,
      lastCoderReply: event.text,
      phase: next,
      ...passOutcome(context, event.digest ?? null),
      checksPending: hasChecks(context),
    }
  })
}

export const loopMachine = setup({
  types: {
    context: {} as LoopContext,
    events: {} as LoopEvent,
    input: {} as LoopInput,
    output: {} as LoopOutput,
  },
  actors: {
    /** Runs one model session; services/session-actor.ts provides the real one. */
    session: fromCallback<SessionCommand, SessionInput>(({ sendBack }) => {
      sendBack({
        type: 'session.failed',
        error: { name: 'Error', message: 'loop: no session actor provided', code: 'no_session', retryable: false },
      })
    }),
    /** Commits the git worktree (services/git-workspace.ts); only invoked for git loops. */
    commitWork: fromPromise<string | null, { message: string; context: LoopContext }>(async () => {
      throw new Error('loop: no commitWork actor provided')
    }),
    /** Runs the loop's checks in its workspace (services/checks.ts). */
    runChecks: fromPromise<CheckResult[], ChecksInput>(async () => {
      throw new Error('loop: no runChecks actor provided')
    }),
  },
  delays: {
    stallTimeout: ({ context }) =>
      clampDelay((context.stallDeadline ?? Date.now() + context.config.stallTimeoutMs) - Date.now()),
    retryBackoff: ({ context }) => clampDelay((context.retryDeadline ?? Date.now()) - Date.now()),
    wallBudget: ({ context }) => clampDelay((context.config.budget.maxWallMs ?? MAX_DELAY_MS) - context.wallMs),
  },
  guards: {
    backoffPending: ({ context }) => context.retryDeadline !== null,
    commitPending: ({ context }) => (context.pendingCommit ?? null) !== null,
    checksPending: ({ context }) => context.checksPending === true,
    hasChecks: ({ context }) => hasChecks(context),
    usesGit: ({ context }) => (context.git ?? null) !== null,
    finalCommit: ({ context }) => context.pendingCommit?.kind === 'final',
    inCoding: ({ context }) => context.phase === 'coding',
    inAuditing: ({ context }) => context.phase === 'auditing',
    inFinalAuditing: ({ context }) => context.phase === 'finalAuditing',
    inFinalAuditFix: ({ context }) => context.phase === 'finalAuditFix',
    turnExceedsBudget: ({ context, event }) =>
      event.type === 'session.turn' && overBudget(context, usageAfterTurn(context, event)),
    wallBudgetSpent: ({ context }) =>
      context.config.budget.maxWallMs !== undefined && wallNow(context) >= context.config.budget.maxWallMs,
    stallLimitReached: ({ context }) => context.stalls + 1 >= context.config.maxConsecutiveStalls,
    restoredPastStallLimit: ({ context }) =>
      stallPassedWhileDown(context) && context.stalls + 1 >= context.config.maxConsecutiveStalls,
    /** The audit verdicts (loop.context.ts `judgeAudit`), as the judging states read them. */
    auditClean: ({ context }) => context.lastAudit?.verdict === 'clean',
    passMadeNoProgressAtLimit: ({ context, event }) =>
      event.type === 'session.done' && progressLimitReached(context, event.digest ?? null),
    isSectioned: ({ context }) => context.task.kind === 'sectioned',
    hasNextSection: ({ context }) => context.sectionIndex + 1 < context.sectionStates.length,
    sectionAttemptsExhausted: ({ context }) =>
      (context.sectionStates[context.sectionIndex]?.attempts ?? 0) > context.config.maxSectionAttempts,
    onlySummaryMissing: ({ context }) => context.lastAudit?.verdict === 'summaryMissing',
    reworkExhausted: ({ context }) => context.rework >= context.config.maxIterations,
    errorIsFatal: ({ context }) => context.lastError !== null && !context.lastError.retryable,
    errorIsNoOutput: ({ context }) => context.lastError?.code === SESSION_EXITS.noOutput,
    retriesExhausted: ({ context }) => context.errorCount > context.config.maxRetries,
  },
  actions: {
    markRunning: assign({ status: 'running', runningSince: () => Date.now() }),
    /** Adds the running stretch to wallMs. Not on restore: the time the engine was down is not running time. */
    accrueWall: assign({
      wallMs: ({ context, event }) => (event.type === 'loop.restored' ? context.wallMs : wallNow(context)),
      runningSince: null,
    }),
    armStall: assign({ stallDeadline: ({ context }) => Date.now() + context.config.stallTimeoutMs }),
    /** A new session's watchdog; a restored one keeps its saved deadline. */
    armStallIfUnset: assign({
      stallDeadline: ({ context }) => context.stallDeadline ?? Date.now() + context.config.stallTimeoutMs,
    }),
    clearStall: assign({ stallDeadline: null }),
    armRetry: assign({
      retryDeadline: ({ context }) => Date.now() + retryDelayMs(context),
    }),
    clearRetry: assign({ retryDeadline: null }),
    /**
     * Re-arms the clocks of a restored loop. A stall deadline that passed while the
     * engine was down counts as one stall (not one per timeout missed). Either way the
     * restored session asks its cut call again, and that call gets the whole stall
     * timeout (not what was left of the old deadline, which could stall it at once).
     */
    resumeClocks: assign(({ context }) => {
      const fresh = Date.now() + context.config.stallTimeoutMs
      if (stallPassedWhileDown(context)) return { stalls: context.stalls + 1, stallDeadline: fresh }
      return inSession(context) ? { stallDeadline: fresh } : {}
    }),
    startJournal: assign(({ context, event }) => {
      assertEvent(event, 'session.started')
      return journalStarted(context, event)
    }),
    journalToolStarted: assign(({ context, event }) => {
      assertEvent(event, 'session.tool.started')
      return toolStarted(context, event)
    }),
    journalToolFinished: assign(({ context, event }) => {
      assertEvent(event, 'session.tool.finished')
      return toolFinished(context, event)
    }),
    journalNudge: assign(({ context, event }) => {
      assertEvent(event, 'session.nudged')
      return nudged(context, event)
    }),
    journalReprompt: assign(({ context, event }) => {
      assertEvent(event, 'session.reprompted')
      return reprompted(context, event)
    }),
    journalCompaction: assign(({ context, event }) => {
      assertEvent(event, 'session.compacted')
      return compacted(context, event)
    }),
    /**
     * A session ended: its journal and its watchdog go, and wallMs is brought up to date
     * (so that a crash loses little running time). One assign: XState copies the whole
     * context for each.
     */
    endSession: assign({ journal: null, ...sessionClocksStopped }),
    /** A session failed: its watchdog goes, and wallMs is brought up to date. */
    stopSession: assign(sessionClocksStopped),
    planSectionCommit: assign({
      pendingCommit: ({ context }) => {
        const i = context.sectionIndex
        const s = context.sectionStates[i]!
        return {
          kind: 'section' as const,
          message: `loopstate: ${context.name} section ${i + 1}/${context.sectionStates.length} "${s.title}" clean (iteration ${context.iteration})`,
        }
      },
    }),
    planFinalCommit: assign({
      pendingCommit: ({ context }) => ({
        kind: 'final' as const,
        message: `loopstate: ${context.name} completed (iteration ${context.iteration}, ${context.audits} audits)`,
      }),
    }),
    clearCommit: assign({ pendingCommit: null }),
    recordWorkspaceFailure: assign({
      lastError: ({ event }) => {
        // loop.workspaceFailed from the engine, or the commit actor's error event
        const e = event as { message?: string; error?: unknown }
        const message = e.message ?? (e.error instanceof Error ? e.error.message : String(e.error))
        return { name: 'WorkspaceError', message, code: 'workspace_failed', retryable: false }
      },
    }),
    markPaused: assign({ status: 'paused' }),
    applyContinue: assign(({ context, event }) => {
      assertEvent(event, 'loop.continue')
      return continuedContext(context, event.options)
    }),
    finish: assign({
      status: ({ context }) => STATUS_OF_REASON[context.reason ?? 'completed'],
      reason: ({ context }) => context.reason ?? 'completed',
      endedAt: () => Date.now(),
    }),
    queueMessage: assign(({ context, event }) => {
      assertEvent(event, 'loop.say')
      return { inbox: [...context.inbox, event.text] }
    }),
    recordTurn: assign(({ context, event }) => {
      assertEvent(event, 'session.turn')
      return {
        usage: usageAfterTurn(context, event),
        calls: bump(context.calls, event.role, event.model),
        journal: journaled(context.journal, turnMessage(event)),
        errorCount: 0,
        modelFailures: 0,
        lastError: null,
        stalls: 0,
        wallMs: wallNow(context),
        runningSince: context.runningSince === null ? null : Date.now(),
      }
    }),
    addFinding: assign(({ context, event }) => {
      assertEvent(event, 'session.finding.reported')
      if (context.findings.some((f) => f.id === event.finding.id)) return {}
      const n = Number(event.finding.id.replace(/^F/, ''))
      return {
        findings: [...context.findings, event.finding],
        nextFindingId: Number.isFinite(n) ? Math.max(context.nextFindingId, n + 1) : context.nextFindingId,
      }
    }),
    resolveFinding: assign(({ context, event }) => {
      assertEvent(event, 'session.finding.resolved')
      return { findings: context.findings.map((f) => (f.id === event.id ? { ...f, status: 'resolved' as const } : f)) }
    }),
    /** The session ended normally: drop what its prompt delivered. */
    consumeDelivered: assign(deliveryConsumed),
    recordAudit: assign(({ context, event }) => {
      assertEvent(event, 'session.done')
      return judgeAudit(context, event.text)
    }),
    enterFinalAuditing: assign({ phase: 'finalAuditing' }),
    takeCoderReply: takeCoderReply('auditing'),
    takeFixReply: takeCoderReply('finalAuditing'),
    completeSection: assign({
      sectionStates: ({ context }) => {
        const summary = context.lastAudit ? parseSummary(context.lastAudit.text)?.raw ?? null : null
        return context.sectionStates.map((s, i) =>
          i === context.sectionIndex ? { ...s, status: 'done' as const, summary } : s,
        )
      },
    }),
    advanceSection: assign(({ context }) => {
      const next = context.sectionIndex + 1
      return {
        sectionIndex: next,
        sectionStates: context.sectionStates.map((s, i) => (i === next ? { ...s, status: 'active' as const } : s)),
        phase: 'coding' as const,
        iteration: context.iteration + 1,
        // a new section's first pass is its baseline
        lastPass: null,
        passesWithoutProgress: 0,
      }
    }),
    startRework: assign(({ context }) => ({
      rework: context.rework + 1,
      iteration: context.iteration + 1,
      phase: context.phase === 'finalAuditing' ? ('finalAuditFix' as const) : ('coding' as const),
    })),
    noteSummaryMissing: assign({
      note: 'Your previous audit reply had no summary block. Audit again and end your reply with the summary block.',
    }),
    recordFailure: assign(({ context, event }) => {
      assertEvent(event, 'session.failed')
      return {
        errorCount: context.errorCount + 1,
        modelFailures: context.modelFailures + 1,
        lastError: event.error,
        calls: event.call ? bump(context.calls, event.call.role, event.call.model) : context.calls,
        // A session stuck in its own transcript starts over; after other failures the retry continues it.
        journal: FRESH_START_ERRORS.has(event.error.code) ? null : context.journal,
      }
    }),
    /** After enough failures on one model, move the failing role to the next model of its chain. */
    maybeFallBack: assign(({ context }) => {
      const role = roleOfPhase(context.phase)
      const chain = role === 'coder' ? context.config.models : context.config.auditorModels
      if (context.modelFailures < context.config.failuresBeforeFallback || context.modelIndex[role] + 1 >= chain.length) {
        return {}
      }
      return { modelIndex: { ...context.modelIndex, [role]: context.modelIndex[role] + 1 }, modelFailures: 0 }
    }),
    recordChecks: assign(({ context, event }) => {
      const results = (event as { output?: CheckResult[] }).output ?? []
      return { ...checkFindings(context, results), lastChecks: results, checksPending: false }
    }),
    recordNoProgress: assign({ lastError: ({ context }) => noProgressError(context, context.passesWithoutProgress) }),
    countStall: assign({ stalls: ({ context }) => context.stalls + 1 }),
    nudgeSession: sendTo('session', { type: 'session.nudge' } satisfies SessionCommand),
    setReason: assign((_, params: { reason: LoopReason }) => ({ reason: params.reason })),
    setNoProgress: assign({ reason: 'no_progress' as const }),
  },
}).createMachine({
  id: 'loop',
  context: ({ input }) => initialContext(input, Date.now()),
  initial: 'running',
  output: ({ context }) => ({
    name: context.name,
    status: STATUS_OF_REASON[context.reason ?? 'completed'],
    reason: context.reason ?? 'completed',
    iteration: context.iteration,
    usage: context.usage,
    error: context.lastError,
  }),
  states: {
    running: {
      entry: 'markRunning',
      exit: 'accrueWall',
      after: {
        wallBudget: { guard: 'wallBudgetSpent', target: 'errored', actions: { type: 'setReason', params: { reason: 'budget_exhausted' } } },
      },
      on: {
        'loop.cancel': { target: 'cancelled', actions: { type: 'setReason', params: { reason: 'user_cancelled' } } },
        'loop.pause': { target: 'paused', actions: 'clearStall' },
        'loop.restored': [
          {
            guard: 'restoredPastStallLimit',
            target: 'stalled',
            actions: ['countStall', { type: 'setReason', params: { reason: 'stall_timeout' } }],
          },
          { target: '#loop.running', reenter: true, actions: 'resumeClocks' },
        ],
        'session.started': { actions: 'startJournal' },
        'session.tool.started': { actions: 'journalToolStarted' },
        'session.tool.finished': { actions: 'journalToolFinished' },
        'session.nudged': { actions: 'journalNudge' },
        'session.reprompted': { actions: 'journalReprompt' },
        'session.compacted': { actions: 'journalCompaction' },
        'loop.workspaceFailed': {
          target: 'errored',
          actions: ['recordWorkspaceFailure', { type: 'setReason', params: { reason: 'workspace_failed' } }],
        },
        'loop.say': { actions: 'queueMessage' },
        'session.turn': [
          { guard: 'turnExceedsBudget', target: 'errored', actions: ['recordTurn', { type: 'setReason', params: { reason: 'budget_exhausted' } }] },
          { actions: 'recordTurn' },
        ],
        'session.finding.reported': { actions: 'addFinding' },
        'session.finding.resolved': { actions: 'resolveFinding' },
      },
      initial: 'dispatching',
      states: {
        /** Routes to the state of the saved phase (start, resume, retry). */
        dispatching: {
          always: [
            { guard: 'commitPending', target: 'committing' },
            { guard: 'checksPending', target: 'checking' },
            { guard: 'backoffPending', target: 'backingOff' },
            { guard: 'inAuditing', target: 'auditing' },
            { guard: 'inFinalAuditing', target: 'finalAuditing' },
            { guard: 'inFinalAuditFix', target: 'finalAuditFix' },
            { target: 'coding' },
          ],
        },
        coding: sessionState('coder', [
          {
            guard: 'passMadeNoProgressAtLimit',
            target: '#loop.errored',
            actions: ['takeCoderReply', 'recordNoProgress', 'setNoProgress'],
          },
          { guard: 'hasChecks', target: 'checking', actions: ['takeCoderReply'] },
          { target: 'auditing', actions: ['takeCoderReply'] },
        ]),
        /** The engine's own checks after a coder pass: a failing one is a blocking finding it owns. */
        checking: {
          tags: ['checks'],
          invoke: {
            id: 'checks',
            src: 'runChecks',
            input: ({ context }) => ({ workspace: context.workspace, checks: context.config.checks, env: context.config.runCommand.env }),
            onDone: [
              { guard: 'inFinalAuditing', target: 'finalAuditing', actions: 'recordChecks' },
              { target: 'auditing', actions: 'recordChecks' },
            ],
            onError: {
              target: '#loop.errored',
              actions: ['recordWorkspaceFailure', { type: 'setReason', params: { reason: 'workspace_failed' } }],
            },
          },
        },
        auditing: sessionState('auditor', { target: 'judgingAudit', actions: ['consumeDelivered', 'recordAudit'] }),
        judgingAudit: {
          always: [
            {
              guard: and(['auditClean', 'isSectioned', 'usesGit']),
              target: 'committing',
              actions: ['completeSection', 'planSectionCommit'],
            },
            {
              guard: and(['auditClean', 'isSectioned', 'hasNextSection']),
              target: 'coding',
              actions: ['completeSection', 'advanceSection'],
            },
            {
              guard: and(['auditClean', 'isSectioned']),
              target: 'finalAuditing',
              actions: ['completeSection', 'enterFinalAuditing'],
            },
            { guard: and(['auditClean', 'usesGit']), target: 'committing', actions: 'planFinalCommit' },
            { guard: 'auditClean', target: '#loop.completed', actions: { type: 'setReason', params: { reason: 'completed' } } },
            { guard: 'sectionAttemptsExhausted', target: '#loop.errored', actions: { type: 'setReason', params: { reason: 'max_section_attempts' } } },
            {
              guard: and(['isSectioned', 'onlySummaryMissing']),
              target: 'auditing',
              actions: 'noteSummaryMissing',
            },
            { guard: 'reworkExhausted', target: '#loop.errored', actions: { type: 'setReason', params: { reason: 'max_iterations' } } },
            { target: 'coding', actions: 'startRework' },
          ],
        },
        finalAuditing: sessionState('auditor', {
          target: 'judgingFinalAudit',
          actions: ['consumeDelivered', 'recordAudit'],
        }),
        judgingFinalAudit: {
          always: [
            { guard: and(['auditClean', 'usesGit']), target: 'committing', actions: 'planFinalCommit' },
            { guard: 'auditClean', target: '#loop.completed', actions: { type: 'setReason', params: { reason: 'completed' } } },
            { guard: 'reworkExhausted', target: '#loop.errored', actions: { type: 'setReason', params: { reason: 'max_iterations' } } },
            { target: 'finalAuditFix', actions: 'startRework' },
          ],
        },
        finalAuditFix: sessionState('coder', [
          {
            guard: 'passMadeNoProgressAtLimit',
            target: '#loop.errored',
            actions: ['takeFixReply', 'recordNoProgress', 'setNoProgress'],
          },
          { guard: 'hasChecks', target: 'checking', actions: ['takeFixReply'] },
          { target: 'finalAuditing', actions: ['takeFixReply'] },
        ]),
        /** A model session failed: give up, or back off and retry (maybe on the next model). */
        failed: {
          always: [
            { guard: 'errorIsNoOutput', target: '#loop.errored', actions: { type: 'setReason', params: { reason: 'no_output' } } },
            { guard: 'errorIsFatal', target: '#loop.errored', actions: { type: 'setReason', params: { reason: 'provider_fatal' } } },
            { guard: 'retriesExhausted', target: '#loop.errored', actions: { type: 'setReason', params: { reason: 'error_max_retries' } } },
            { target: 'backingOff', actions: ['maybeFallBack', 'armRetry'] },
          ],
        },
        /** Git loops: commit the worktree after a clean section and when the loop completes. */
        committing: {
          invoke: {
            id: 'commit',
            src: 'commitWork',
            input: ({ context }) => ({ message: context.pendingCommit?.message ?? '', context }),
            onDone: [
              {
                guard: 'finalCommit',
                target: '#loop.completed',
                actions: ['clearCommit', { type: 'setReason', params: { reason: 'completed' } }],
              },
              { guard: 'hasNextSection', target: 'coding', actions: ['clearCommit', 'advanceSection'] },
              { target: 'finalAuditing', actions: ['clearCommit', 'enterFinalAuditing'] },
            ],
            onError: {
              target: '#loop.errored',
              actions: ['recordWorkspaceFailure', { type: 'setReason', params: { reason: 'workspace_failed' } }],
            },
          },
        },
        backingOff: {
          after: { retryBackoff: { target: 'dispatching', actions: 'clearRetry' } },
        },
      },
    },
    paused: {
      entry: 'markPaused',
      on: {
        'loop.workspaceFailed': {
          target: 'errored',
          actions: ['recordWorkspaceFailure', { type: 'setReason', params: { reason: 'workspace_failed' } }],
        },
        'loop.resume': 'running',
        /** An ended loop given more room (machines/continue.ts): the engine reopened it here. */
        'loop.continue': { target: 'running', actions: 'applyContinue' },
        'loop.cancel': { target: 'cancelled', actions: { type: 'setReason', params: { reason: 'user_cancelled' } } },
        'loop.say': { actions: 'queueMessage' },
      },
    },
    completed: { type: 'final', entry: 'finish' },
    cancelled: { type: 'final', entry: 'finish' },
    errored: { type: 'final', entry: 'finish' },
    stalled: { type: 'final', entry: 'finish' },
  },
})

type PhaseEndAction = 'takeCoderReply' | 'takeFixReply' | 'consumeDelivered' | 'recordAudit' | 'recordNoProgress' | 'setNoProgress'
type PhaseEnd = { guard?: 'passMadeNoProgressAtLimit' | 'hasChecks'; target: string; actions: PhaseEndAction[] }

/**
 * A phase that runs one session with a watchdog child: activity re-enters
 * `watching` (restarting its timer) without restarting the session.
 */
function sessionState(role: Role, onDone: PhaseEnd | PhaseEnd[]) {
  const ends = (Array.isArray(onDone) ? onDone : [onDone]).map((t) => ({ ...t, actions: [...t.actions, 'endSession' as const] }))
  return {
    invoke: {
      id: 'session',
      src: 'session' as const,
      input: ({ context }: { context: LoopContext }): SessionInput => ({
        role,
        phase: context.phase,
        model: currentModel(context, role),
        context,
      }),
    },
    /** The states that run a model session (the viewer and the engine read this, not state names). */
    tags: ['session'] as const,
    entry: 'armStallIfUnset' as const,
    initial: 'watching' as const,
    states: {
      watching: {
        on: { 'session.activity': { target: 'watching', reenter: true, actions: 'armStall' } },
        after: {
          stallTimeout: [
            {
              guard: 'stallLimitReached',
              target: '#loop.stalled',
              actions: ['countStall', { type: 'setReason', params: { reason: 'stall_timeout' } }],
            },
            { target: 'watching', reenter: true, actions: ['countStall', 'armStall', 'nudgeSession'] },
          ],
        },
      },
    },
    on: {
      'session.done': ends,
      'session.failed': { target: 'failed', actions: ['recordFailure', 'stopSession'] },
    },
  } as const
}
