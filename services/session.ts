/**
 * The session runner: one model session is a chat with tools until the model
 * answers without a tool call. Streamed chunks and tool calls are activity for
 * the loop's watchdog; a nudge aborts the call in flight and re-prompts.
 */
import {
  abortedError,
  ProviderError,
  type ChatMessage,
  type ChatUsage,
  type ModelProvider,
  type Role,
} from '../adapters/model-provider.ts'
import type { Tool, ToolContext } from './tool-types.ts'
import { runTool } from './tools.ts'
import { EMPTY_REPLY_MESSAGE, NUDGE_MESSAGE } from './prompts.ts'

export interface SessionOptions {
  provider: ModelProvider
  /** Model name as the provider knows it (no scheme). */
  model: string
  role: Role
  system: string
  user: string
  tools: Tool[]
  toolContext: Omit<ToolContext, 'signal'>
  /** Aborting it ends the session (cancel, pause, shutdown). */
  signal: AbortSignal
  maxTurns: number
  onActivity: () => void
  /** After each completed model call. */
  onTurn: (usage: ChatUsage) => void
}

export class ModelSession {
  private call: AbortController | null = null
  private nudged = false

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
    const messages: ChatMessage[] = [
      { role: 'system', content: o.system },
      { role: 'user', content: o.user },
    ]
    const specs = o.tools.map((t) => t.spec)
    const toolContext: ToolContext = { ...o.toolContext, signal: o.signal }
    let turns = 0
    let askedForReply = false
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
          tools: specs,
          signal: call.signal,
          onChunk: () => o.onActivity(),
        })
      } catch (err) {
        if (o.signal.aborted) throw abortedError()
        if (this.nudged) {
          this.nudged = false
          messages.push({ role: 'user', content: NUDGE_MESSAGE })
          continue
        }
        throw err
      } finally {
        this.call = null
        o.signal.removeEventListener('abort', onAbort)
      }
      if (o.signal.aborted) throw abortedError()
      this.nudged = false
      turns++
      o.onTurn(response.usage)
      messages.push({ role: 'assistant', content: response.content, toolCalls: response.toolCalls })
      if (response.toolCalls.length > 0) {
        for (const call of response.toolCalls) {
          if (o.signal.aborted) throw abortedError()
          o.onActivity()
          const result = await runTool(o.tools, call, toolContext)
          messages.push({ role: 'tool', content: result.content, toolCallId: call.id, toolName: call.name })
          o.onActivity()
        }
        continue
      }
      if (response.content.trim() !== '') return response.content
      if (askedForReply) {
        throw new ProviderError(`session: the ${o.role} ended without a reply`, 'no_output', false)
      }
      askedForReply = true
      messages.push({ role: 'user', content: EMPTY_REPLY_MESSAGE })
    }
  }
}
