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
import { SESSION_EXITS } from '../machines/loop.types.ts'
import type { Tool, ToolContext } from './tool-types.ts'
import { toolCallsInText } from './text-tool-calls.ts'
import { runTool } from './tools.ts'

export const EMPTY_REPLY_MESSAGE =
  'You ended your turn without a reply. Reply now with a short account of what you did.'

/** Start of the tool result that refuses a call repeated too often. */
export const REPEATED_CALL_NOTICE = 'error: repeated call:'

/** The same call (name and arguments) this many times in a row is a strike; this many strikes end the session. */
export const REPEAT_LIMIT = 3
export const STRIKE_LIMIT = 3

/** Shorten the transcript when its estimate passes this share of the context window. */
const COMPACT_AT = 0.85
/** Tool outputs of the last turns are kept whole; older ones keep this much. */
const KEEP_LAST_TURNS = 2
const SHORTENED_KEEP_CHARS = 200

export const INTERRUPTED_TOOL_RESULT =
  'error: interrupted: the engine stopped while this tool ran, so it may or may not have taken effect. ' +
  'Check the workspace before doing it again.'

/** Receives every step of the session as it completes (the loop journals them). */
export interface SessionObserver {
  /** A fresh session's opening messages. */
  started(messages: ChatMessage[]): void
  activity(): void
  turn(usage: ChatUsage, message: { content: string; toolCalls: ToolCall[]; fromText?: true }): void
  toolStarted(callId: string): void
  toolFinished(callId: string, name: string, content: string): void
  /** A call was aborted by a nudge; `content` re-prompts. */
  nudged(content: string): void
  reprompted(content: string): void
  /** The transcript was shortened to fit the context window. */
  compacted(messages: ChatMessage[], note: string): void
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
   * Called with the final reply the model is about to end the session with: a
   * prompt to ask it first (the session goes on), or null to end.
   */
  beforeReply?: (reply: string, messages: ChatMessage[]) => string | null
  /**
   * Resolves when the loop's record of the steps so far is on disk. Each answer
   * waits for it before anything acts on it (a restore never asks it again), and a
   * side-effect tool after `toolStarted`, so that a crash can never leave a tool
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
    const toolNames = new Set(o.tools.map((t) => t.spec.name))
    let callIndex = o.callIndex
    let turns = messages.filter((m) => m.role === 'assistant').length

    // A restored transcript may end inside a turn: finish its tool calls, or return its reply.
    const last = messages[messages.length - 1]
    if (last?.role === 'assistant') {
      if (last.toolCalls && last.toolCalls.length > 0) {
        const running = o.start.kind === 'resume' ? o.start.running : []
        await this.runTools(last.toolCalls, messages, toolContext, running)
      } else if (last.content.trim() !== '') {
        if (!this.askBeforeReply(last.content, messages)) return last.content
      } else {
        this.askForReply(messages)
      }
    }

    for (;;) {
      if (o.signal.aborted) throw abortedError()
      if (turns >= o.maxTurns) {
        throw new ProviderError(`session: the ${o.role} made ${turns} model calls without finishing`, SESSION_EXITS.maxTurns, true)
      }
      await this.fitContext(messages)
      if (o.signal.aborted) throw abortedError()
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
      // A reply that is, as a whole, a tool call written as text is run as that call.
      const textCalls =
        response.toolCalls.length === 0 ? toolCallsInText(response.content, toolNames, `text-${turns}`) : null
      const message = textCalls
        ? { content: response.content, toolCalls: textCalls, fromText: true as const }
        : { content: response.content, toolCalls: response.toolCalls }
      add({ role: 'assistant', ...message })
      o.observer.turn(response.usage, message)
      // The answer is on disk before anything acts on it (any tool, read-only ones too, or the
      // next call): a restore continues after it and never asks it again.
      await o.durable?.()
      if (o.signal.aborted) throw abortedError()
      if (message.toolCalls.length > 0) {
        await this.runTools(message.toolCalls, messages, toolContext, [])
        continue
      }
      if (response.content.trim() === '') this.askForReply(messages)
      else if (!this.askBeforeReply(response.content, messages)) return response.content
    }
  }

  /** Asks what `beforeReply` wants asked before the session ends with `reply`; false when nothing. */
  private askBeforeReply(reply: string, messages: ChatMessage[]): boolean {
    const ask = this.opts.beforeReply?.(reply, messages) ?? null
    if (ask === null) return false
    messages.push({ role: 'user', content: ask })
    this.opts.observer.reprompted(ask)
    return true
  }

  /** Runs the calls that have no result yet; a side-effect call that was interrupted is reported, not redone. */
  private async runTools(calls: ToolCall[], messages: ChatMessage[], ctx: ToolContext, interrupted: string[]) {
    const o = this.opts
    const done = new Set(messages.flatMap((m) => (m.role === 'tool' ? [m.toolCallId] : [])))
    for (const call of calls) {
      if (done.has(call.id)) continue
      if (o.signal.aborted) throw abortedError()
      const tool = o.tools.find((t) => t.spec.name === call.name)
      const repeats = timesInARow(messages, call)
      let content: string
      if (interrupted.includes(call.id) && (tool === undefined || tool.sideEffects)) {
        content = INTERRUPTED_TOOL_RESULT
      } else if (repeats >= REPEAT_LIMIT) {
        content =
          `${REPEATED_CALL_NOTICE} this is the same ${call.name} call (same arguments) ${repeats} times in a row; ` +
          'its result will not change, so it was not run. Do something different.'
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
      const strikes = messages.filter((m) => m.role === 'tool' && m.content.startsWith(REPEATED_CALL_NOTICE)).length
      if (strikes >= STRIKE_LIMIT) {
        throw new ProviderError(
          `session: the ${o.role} kept repeating the same tool call (${call.name}) after ${strikes} warnings`,
          SESSION_EXITS.repetition,
          true,
        )
      }
    }
  }

  /**
   * Near the context window, shortens older tool outputs (the prompt, which holds
   * the plan and the latest findings, and the last turns stay whole) and notes it.
   */
  private async fitContext(messages: ChatMessage[]): Promise<void> {
    const o = this.opts
    const window = (await o.provider.contextLength?.(o.model, o.signal)) ?? null
    if (window === null) return
    const budget = window * COMPACT_AT
    const estimate = () => estimateTokens(messages) + estimateTokens(o.tools.map((t) => JSON.stringify(t.spec)))
    if (estimate() <= budget) return
    const assistantAt = messages.flatMap((m, i) => (m.role === 'assistant' ? [i] : []))
    const keepFrom = assistantAt[assistantAt.length - KEEP_LAST_TURNS] ?? messages.length
    let shortened = 0
    let removed = 0
    for (let i = 2; i < keepFrom && estimate() > budget; i++) {
      const m = messages[i]!
      if (m.role !== 'tool' || m.content.length <= SHORTENED_KEEP_CHARS * 2) continue
      const cut = m.content.length - SHORTENED_KEEP_CHARS
      messages[i] = {
        ...m,
        content: `${m.content.slice(0, SHORTENED_KEEP_CHARS)}\n[shortened by loopstate: ${cut} more characters of this ${m.toolName} output were removed to fit the model's context]`,
      }
      shortened++
      removed += cut
    }
    if (shortened > 0) {
      o.observer.compacted(
        [...messages],
        `shortened ${shortened} older tool output(s) by ${removed} characters to fit a ${window}-token context`,
      )
    }
  }

  /** An empty final reply gets one request for a reply; a second one ends the session with no_output. */
  private askForReply(messages: ChatMessage[]): void {
    const previous = messages[messages.length - 2]
    if (previous?.role === 'user' && previous.content === EMPTY_REPLY_MESSAGE) {
      throw new ProviderError(`session: the ${this.opts.role} ended without a reply`, SESSION_EXITS.noOutput, false)
    }
    messages.push({ role: 'user', content: EMPTY_REPLY_MESSAGE })
    this.opts.observer.reprompted(EMPTY_REPLY_MESSAGE)
  }
}

/** A rough token count (4 characters a token), enough to see the context filling up. */
function estimateTokens(parts: (ChatMessage | string)[]): number {
  let chars = 0
  for (const p of parts) {
    if (typeof p === 'string') chars += p.length
    else chars += p.content.length + (p.role === 'assistant' ? JSON.stringify(p.toolCalls ?? []).length : 0)
  }
  return Math.ceil(chars / 4)
}

/** How many times in a row, up to and including `call`, the transcript's tool calls were this same call. */
function timesInARow(messages: ChatMessage[], call: ToolCall): number {
  const calls = messages.flatMap((m) => (m.role === 'assistant' ? m.toolCalls ?? [] : []))
  const key = (c: ToolCall) => `${c.name}\u0000${stableJson(c.arguments)}`
  const at = calls.findIndex((c) => c.id === call.id)
  let n = 0
  for (let i = at; i >= 0 && key(calls[i]!) === key(call); i--) n++
  return n
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(value)
}
