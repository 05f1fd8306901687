/**
 * The running session's journal in the loop's context (docs/architecture.md "The
 * loop and its sessions"): each step the session reports, as the context update the
 * chart's journal actions make. Pure; the chart asserts the event and calls these.
 */
import type { ChatMessage } from './chat.types.ts'
import { bump, roleOfPhase, toolErrorKind } from './loop.context.ts'
import type { LoopContext, LoopEvent, SessionJournal } from './loop.types.ts'

type Ev<T extends LoopEvent['type']> = Extract<LoopEvent, { type: T }>

/** The journal with `message` appended (none when no session is journaled). */
export function journaled(journal: SessionJournal | null, message: ChatMessage): SessionJournal | null {
  return journal && { ...journal, messages: [...journal.messages, message] }
}

/** A fresh session's opening messages: journal number `sessions + 1`. */
export function journalStarted(context: LoopContext, event: Ev<'session.started'>): Partial<LoopContext> {
  const id = (context.sessions ?? 0) + 1
  return {
    sessions: id,
    journal: {
      id,
      phase: context.phase,
      iteration: context.iteration,
      sectionIndex: context.sectionIndex,
      role: roleOfPhase(context.phase),
      messages: event.messages,
      delivered: event.delivered,
      running: [],
    },
  }
}

export function toolStarted(context: LoopContext, event: Ev<'session.tool.started'>): Partial<LoopContext> {
  return { journal: context.journal && { ...context.journal, running: [...context.journal.running, event.callId] } }
}

/** A tool's result journaled (its call no longer running); a refusal or failure counted by kind. */
export function toolFinished(context: LoopContext, event: Ev<'session.tool.finished'>): Partial<LoopContext> {
  const kind = toolErrorKind(event.name, event.content)
  const journal = journaled(context.journal, { role: 'tool', content: event.content, toolCallId: event.callId, toolName: event.name })
  return {
    journal: journal && { ...journal, running: journal.running.filter((id) => id !== event.callId) },
    ...(kind !== null ? { toolErrors: { ...context.toolErrors, [kind]: (context.toolErrors?.[kind] ?? 0) + 1 } } : {}),
  }
}

/** A call aborted by the watchdog counts as made; its re-prompt is journaled. */
export function nudged(context: LoopContext, event: Ev<'session.nudged'>): Partial<LoopContext> {
  return { calls: bump(context.calls, event.role, event.model), journal: journaled(context.journal, { role: 'user', content: event.content }) }
}

export function reprompted(context: LoopContext, event: Ev<'session.reprompted'>): Partial<LoopContext> {
  return { journal: journaled(context.journal, { role: 'user', content: event.content }) }
}

/** The session shortened its own transcript: the journal takes it, with a note of why. */
export function compacted(context: LoopContext, event: Ev<'session.compacted'>): Partial<LoopContext> {
  const journal = context.journal
  return { journal: journal && { ...journal, messages: event.messages, notes: [...(journal.notes ?? []), event.note] } }
}

/** A model turn's answer, as the journal keeps it. */
export function turnMessage(event: Ev<'session.turn'>): ChatMessage {
  const { content, toolCalls, fromText } = event.message
  return { role: 'assistant', content, toolCalls, ...(fromText ? { fromText: true as const } : {}) }
}
