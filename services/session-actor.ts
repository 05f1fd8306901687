/** The session actor the loop machine invokes by name, and the services bundle to `.provide()`. */
import { fromCallback } from 'xstate'
import { ProviderError, type ModelProvider } from '../adapters/model-provider.ts'
import { auditSection } from '../machines/loop.machine.ts'
import type { LoopError, LoopEvent, SessionCommand, SessionInput } from '../machines/loop.types.ts'
import { createFindingsLedger } from './findings-tools.ts'
import { buildPrompt } from './prompts.ts'
import { ModelSession } from './session.ts'
import { toolsFor } from './tools.ts'

export interface LoopServiceDeps {
  /** The provider of a model spec for a loop, and the model name it takes. Throws for an unknown scheme. */
  provider(loopName: string, spec: string): { provider: ModelProvider; model: string }
}

/** Plain, serializable error for the loop's context. */
export function toLoopError(err: unknown): LoopError {
  if (err instanceof ProviderError) {
    return { name: err.name, message: err.message, code: err.code, retryable: err.retryable }
  }
  const e = err instanceof Error ? err : new Error(String(err))
  return { name: e.name, message: e.message, code: 'internal', retryable: false }
}

export function createSessionLogic(deps: LoopServiceDeps) {
  return fromCallback<SessionCommand, SessionInput>(({ input, sendBack, receive }) => {
    const controller = new AbortController()
    const { context, role, phase } = input
    const send = (event: LoopEvent) => {
      if (!controller.signal.aborted) sendBack(event)
    }
    const findings = createFindingsLedger({
      findings: context.findings,
      nextId: context.nextFindingId,
      section: auditSection(context),
      audit: context.audits + 1,
      onReport: (finding) => send({ type: 'session.finding.reported', finding }),
      onResolve: (id) => send({ type: 'session.finding.resolved', id }),
    })
    let session: ModelSession | null = null
    receive((command) => {
      if (command.type === 'session.nudge') session?.nudge()
    })
    const run = async () => {
      const { provider, model } = deps.provider(context.name, input.model)
      const prompt = buildPrompt(context, role, phase)
      session = new ModelSession({
        provider,
        model,
        role,
        system: prompt.system,
        user: prompt.user,
        tools: toolsFor(role, context.config.runCommand),
        toolContext: { workspace: context.workspace, role, findings, runCommand: context.config.runCommand },
        signal: controller.signal,
        maxTurns: context.config.maxTurnsPerSession,
        onActivity: () => send({ type: 'session.activity' }),
        onTurn: (usage) => send({ type: 'session.turn', role, model: input.model, ...usage }),
      })
      const text = await session.run()
      send({ type: 'session.done', text, delivered: prompt.delivered })
    }
    // Started on a later tick so that nothing is sent back while the parent is still entering the state.
    const started = Promise.resolve().then(run)
    started.catch((err: unknown) => send({ type: 'session.failed', error: toLoopError(err) }))
    return () => controller.abort()
  })
}

/** What services provide to the loop machine (`loopMachine.provide(createLoopServices(deps))`). */
export function createLoopServices(deps: LoopServiceDeps) {
  return { actors: { session: createSessionLogic(deps) } }
}
