/**
 * Giving an ended loop more room (`loopstate continue`, docs/architecture.md
 * "Limits, retries, stalls, termination"). The engine reopens the ended loop as
 * paused; the chart's `loop.continue` takes it on from there with the overrides:
 * more rework passes, a message, other models, more checks, a larger budget. Its
 * findings, sections, usage and journal stay. Pure: which endings can go on, and
 * the context they go on with.
 */
import type { Budget, LoopConfig, LoopContext, LoopReason } from './loop.types.ts'

export interface ContinueOptions {
  /** Rework passes (and, for a section that ran out of attempts, dirty audits) added. @default 5 */
  more?: number
  /** A message the next prompt carries (a completed loop continues only with one). */
  say?: string
  /** The loop's config with the overrides applied, checked by the engine (models, checks, budget). */
  config?: LoopConfig
}

/** Endings a loop can be continued from. */
export const CONTINUABLE: readonly LoopReason[] = [
  'max_iterations',
  'max_section_attempts',
  'no_progress',
  'error_max_retries',
  'provider_fatal',
  'stall_timeout',
  'budget_exhausted',
  'completed',
]

/** Endings after which the loop works again (a rework pass), not the step that failed. */
const REWORK_AFTER: readonly LoopReason[] = ['max_iterations', 'max_section_attempts', 'no_progress', 'completed']

/** Why the ended loop cannot be continued with `options`, or null. */
export function continueProblem(context: LoopContext, options: ContinueOptions): string | null {
  const reason = context.reason
  if (reason === null || !CONTINUABLE.includes(reason)) {
    return `it ended with ${reason ?? 'no reason'}, which cannot be continued (only ${CONTINUABLE.join(', ')})`
  }
  if (reason === 'completed' && !options.say?.trim()) return 'it completed: continue it with a follow-up message (say)'
  if (reason === 'budget_exhausted' && stillOverBudget(context, options.config?.budget ?? context.config.budget)) {
    return 'its budget is spent: raise the limit that ended it (maxTokens, maxCostUsd or maxWallMs)'
  }
  return null
}

/** The context the loop goes on with (the chart's `loop.continue`, from `paused`). */
export function continuedContext(context: LoopContext, options: ContinueOptions): Partial<LoopContext> {
  const reason = context.reason ?? 'completed'
  const more = options.more ?? 5
  const base = options.config ?? context.config
  const attempts = context.sectionStates[context.sectionIndex]?.attempts ?? 0
  const config: LoopConfig = {
    ...base,
    maxIterations: Math.max(base.maxIterations, context.rework) + (REWORK_AFTER.includes(reason) ? more : 0),
    maxSectionAttempts:
      reason === 'max_section_attempts' ? Math.max(base.maxSectionAttempts, attempts) + more : base.maxSectionAttempts,
  }
  const modelsChanged = options.config !== undefined && options.config.models.join() !== context.config.models.join()
  const rework = REWORK_AFTER.includes(reason)
  const inFinal = context.phase === 'finalAuditing' || context.phase === 'finalAuditFix'
  return {
    config,
    reason: null,
    endedAt: null,
    lastError: null,
    errorCount: 0,
    modelFailures: 0,
    stalls: 0,
    stallDeadline: null,
    retryDeadline: null,
    passesWithoutProgress: 0,
    inbox: options.say?.trim() ? [...context.inbox, options.say.trim()] : context.inbox,
    ...(modelsChanged ? { modelIndex: { coder: 0, auditor: 0 } } : {}),
    // a rework pass after an ending at an audit (or a completed loop's follow-up); else the failed step again
    ...(rework
      ? {
          phase: inFinal ? ('finalAuditFix' as const) : ('coding' as const),
          iteration: context.iteration + 1,
          rework: context.rework + 1,
          journal: null,
          checksPending: false,
        }
      : {}),
  }
}

function stillOverBudget(context: LoopContext, budget: Budget): boolean {
  const u = context.usage.total
  return (
    (budget.maxTokens !== undefined && u.inputTokens + u.outputTokens >= budget.maxTokens) ||
    (budget.maxCostUsd !== undefined && u.costUsd >= budget.maxCostUsd) ||
    (budget.maxWallMs !== undefined && context.wallMs >= budget.maxWallMs)
  )
}
