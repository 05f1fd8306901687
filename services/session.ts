/**
 * The session runner: one model session is a chat with tools until the model
 * answers without a tool call. Streamed chunks and tool calls are activity for
 * the loop's watchdog; a nudge aborts the call in flight and re-prompts. Every
 * completed step is reported to an observer that journals it, and a session can
 * start from such a journal: it continues after the last completed turn, never
 * repeating a finished model call or re-running a side-effect tool.
 */
import {
  abortedError,
  ProviderError,
  type ChatMessage,
  type ChatUsage,
  type ModelProvider,
  type Role,
  type ToolCall,
} from '../adapters/model-provider.ts'
import { NUDGE_MESSAGE } from '../machines/loop.machine.ts'
import type { Tool, ToolContext } from './tool-types.ts'
import { runTool } from './tools.ts'

export const EMPTY_REPLY_MESSAGE =
  'You ended your turn without a reply. Reply now with a short account of what you did.'

export const INTERRUPTED_TOOL_RESULT =
  'error: interrupted: the engine stopped while this tool ran, so it may or may not have taken effect. ' +
  'Check the workspace before doing it again.'

/** Receives every step of the session as it completes (the loop journals them). */
export interface SessionObserver {
  /** A fresh session's opening messages. */
  started(messages: ChatMessage[]): void
  activity(): void
  turn(usage: ChatUsage, message: { content: string; toolCalls: ToolCall[] }): void
  toolStarted(callId: string): void
  toolFinished(callId: string, name: string, content: string): void
  /** A call was aborted by a nudge; `content` re-prompts. */
  nudged(content: string): void
  reprompted(content: string): void
}

export type SessionStart =
  | { kind: 'fresh'; system: string; user: string }
  | { kind: 'resume'; messages: ChatMessage[]; running: string[] }

export interface SessionOptions {
  provider: ModelProvider
  /** Model name as the provider knows it (no scheme). */
  model: string
  role: Role
  start: SessionStart
  /** Calls of this role on this model whose outcome the loop has recorded so far. */
  callIndex: number
  tools: Tool[]
  toolContext: Omit<ToolContext, 'signal'>
  /** Aborting it ends the session (cancel, pause, shutdown). */
  signal: AbortSignal
  maxTurns: number
  observer: SessionObserver
  /**
   * Resolves when the loop's record of the steps so far is on disk. A side-effect
   * tool waits for it after `toolStarted`, so that a crash can never leave a tool
   * run that the journal does not show as started (it would run again).
   */
  durable?: () => Promise<void>
}

export class ModelSession {
  private call: AbortController | null = null
  private nudged = false
  /** True when the session failed on a model call's own outcome (that call counts as made). */
  failedOnCall = false

  constructor(private readonly opts: SessionOptions) {}

  /** Aborts the model call in flight (if any); the session re-prompts the model to continue. */
  nudge(): void {
    if (this.call === null) return
    this.nudged = true
    this.call.abort()
  }

  /** Runs to the model's final reply. Throws ProviderError (code `aborted` when the session signal aborted). */
  async run(): Promise<string> {
    const o = this.opts
    const messages: ChatMessage[] = []
    const add = (m: ChatMessage) => messages.push(m)
    if (o.start.kind === 'fresh') {
      messages.push({ role: 'system', content: o.start.system }, { role: 'user', content: o.start.user })
      o.observer.started([...messages])
    } else {
      messages.push(...o.start.messages)
    }
    const toolContext: ToolContext = { ...o.toolContext, signal: o.signal }
    let callIndex = o.callIndex
    let turns = messages.filter((m) => m.role === 'assistant').length

    // A restored transcript may end inside a turn: finish its tool calls, or return its reply.
    const last = messages[messages.length - 1]
    if (last?.role === 'assistant') {
      if (last.toolCalls && last.toolCalls.length > 0) {
        const running = o.start.kind === 'resume' ? o.start.running : []
        await this.runTools(last.toolCalls, messages, toolContext, running)
      } else if (last.content.trim() !== '') {
        return last.content
      } else {
        this.askForReply(messages)
      }
    }

    for (;;) {
      if (o.signal.aborted) throw abortedError()
      if (turns >= o.maxTurns) {
        throw new ProviderError(`session: the ${o.role} made ${turns} model calls without finishing`, 'max_turns', true)
      }
      const call = new AbortController()
      const onAbort = () => call.abort()
      o.signal.addEventListener('abort', onAbort, { once: true })
      this.call = call
      let response
      try {
        response = await o.provider.chat({
          model: o.model,
          role: o.role,
          messages: [...messages],
          tools: o.tools.map((t) => t.spec),
          signal: call.signal,
          callIndex,
          onChunk: () => o.observer.activity(),
        })
      } catch (err) {
        if (o.signal.aborted) throw abortedError()
        if (this.nudged) {
          this.nudged = false
          callIndex++
          add({ role: 'user', content: NUDGE_MESSAGE })
          o.observer.nudged(NUDGE_MESSAGE)
          continue
        }
        this.failedOnCall = true
        throw err
      } finally {
        this.call = null
        o.signal.removeEventListener('abort', onAbort)
      }
      if (o.signal.aborted) throw abortedError()
      this.nudged = false
      turns++
      callIndex++
      const message = { content: response.content, toolCalls: response.toolCalls }
      add({ role: 'assistant', ...message })
      o.observer.turn(response.usage, message)
      if (response.toolCalls.length > 0) {
        await this.runTools(response.toolCalls, messages, toolContext, [])
        continue
      }
      if (response.content.trim() !== '') return response.content
      this.askForReply(messages)
    }
  }

  /** Runs the calls that have no result yet; a side-effect call that was interrupted is reported, not redone. */
  private async runTools(calls: ToolCall[], messages: ChatMessage[], ctx: ToolContext, interrupted: string[]) {
    const o = this.opts
    const done = new Set(messages.flatMap((m) => (m.role === 'tool' ? [m.toolCallId] : [])))
    for (const call of calls) {
      if (done.has(call.id)) continue
      if (o.signal.aborted) throw abortedError()
      const tool = o.tools.find((t) => t.spec.name === call.name)
      let content: string
      if (interrupted.includes(call.id) && (tool === undefined || tool.sideEffects)) {
        content = INTERRUPTED_TOOL_RESULT
      } else {
        o.observer.activity()
        o.observer.toolStarted(call.id)
        if (tool?.sideEffects) await o.durable?.()
        if (o.signal.aborted) throw abortedError()
        content = (await runTool(o.tools, call, ctx)).content
        if (o.signal.aborted) throw abortedError()
      }
      messages.push({ role: 'tool', content, toolCallId: call.id, toolName: call.name })
      o.observer.toolFinished(call.id, call.name, content)
      o.observer.activity()
    }
  }

  /** An empty final reply gets one request for a reply; a second one ends the session with no_output. */
  private askForReply(messages: ChatMessage[]): void {
    const previous = messages[messages.length - 2]
    if (previous?.role === 'user' && previous.content === EMPTY_REPLY_MESSAGE) {
      throw new ProviderError(`session: the ${this.opts.role} ended without a reply`, 'no_output', false)
    }
    messages.push({ role: 'user', content: EMPTY_REPLY_MESSAGE })
    this.opts.observer.reprompted(EMPTY_REPLY_MESSAGE)
  }
}
