/**
 * The conversation as the loop keeps it: messages, tool calls and the two roles.
 * These live with the machine (its context journals them); the model provider
 * contract (adapters/model-provider.ts) speaks the same types.
 */

/** One tool call asked for by the model. */
export interface ToolCall {
  /** Unique within the session; providers that have no ids make them up. */
  id: string
  name: string
  arguments: Record<string, unknown>
  /**
   * Set when the model's arguments could not be read as a JSON object (`arguments`
   * is then `{}`): the tool is not run, and the model is told why.
   */
  argumentsError?: string
}

export type ChatMessage =
  | { role: 'system'; content: string }
  | { role: 'user'; content: string }
  /** `fromText`: the model wrote its tool calls as text, which the session ran as calls (services/text-tool-calls.ts). */
  | { role: 'assistant'; content: string; toolCalls?: ToolCall[]; fromText?: true }
  | { role: 'tool'; content: string; toolCallId: string; toolName: string }

export type Role = 'coder' | 'auditor'
