/**
 * The model provider contract: one streaming chat call with tools, abortable.
 * Implementations: `scripted` (adapters/scripted-provider.ts), `ollama`
 * (adapters/ollama-provider.ts) and `openai` with its presets
 * (adapters/openai-provider.ts); a user's own is loaded by adapters/provider-module.ts. The message types live with the machine
 * (machines/chat.types.ts), which journals them.
 */
import type { ChatMessage, Role, ToolCall } from '../machines/chat.types.ts'

export type { ChatMessage, Role, ToolCall }

/** A tool the model may call. `parameters` is a JSON Schema object. */
export interface ToolSpec {
  name: string
  description: string
  parameters: {
    type: 'object'
    properties: Record<string, unknown>
    required?: string[]
  }
}

export interface ChatRequest {
  /** The model name without its scheme (`scripted:demo.json` → `demo.json`). */
  model: string
  role: Role
  messages: ChatMessage[]
  tools: ToolSpec[]
  /** Aborting it ends the call promptly with a `ProviderError` of code `aborted`. */
  signal: AbortSignal
  /**
   * How many earlier calls of this role on this model reached the loop (their
   * outcome was recorded). Replaying providers (scripted) answer by it, so a
   * call whose answer was lost in a crash is answered the same way again.
   */
  callIndex?: number
  /** Called for every streamed chunk (text or tool call): watchdog activity. */
  onChunk?: (chunk: { text?: string; toolCall?: ToolCall }) => void
}

export interface ChatUsage {
  inputTokens: number
  outputTokens: number
  durationMs: number
}

export interface ChatResponse {
  content: string
  toolCalls: ToolCall[]
  usage: ChatUsage
}

export interface ModelProvider {
  /** The scheme this provider answers to, e.g. `scripted` or `ollama`. */
  readonly scheme: string
  chat(request: ChatRequest): Promise<ChatResponse>
  /**
   * The context window the provider gives the model, in tokens (e.g. Ollama's
   * num_ctx), or null when unknown. Sessions shorten old tool outputs near it.
   */
  contextLength?(model: string, signal: AbortSignal): Promise<number | null>
}

/**
 * Classified provider failure. `retryable` errors go through the loop's backoff;
 * the others end the loop with `provider_fatal` (or `aborted`, which is not a failure).
 */
export class ProviderError extends Error {
  override readonly name = 'ProviderError'
  /** How long the server asked to wait before the next try (a 429's `Retry-After`), in ms. */
  readonly retryAfterMs?: number
  constructor(
    message: string,
    readonly code: string,
    readonly retryable: boolean,
    options: { retryAfterMs?: number } = {},
  ) {
    super(message)
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs
  }
}

export function abortedError(): ProviderError {
  return new ProviderError('model call aborted', 'aborted', false)
}

/**
 * Runs `work` raced against `signal`: rejects with `abortedError()` the moment it
 * aborts (or at once, if it has), whatever `work` (an HTTP stack, a user's provider)
 * does with the signal.
 */
export async function raceAbort<T>(signal: AbortSignal, work: () => T | PromiseLike<T>): Promise<T> {
  if (signal.aborted) throw abortedError()
  let onAbort = () => {}
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(abortedError())
    signal.addEventListener('abort', onAbort, { once: true })
  })
  let pending: Promise<T>
  try {
    pending = Promise.resolve(work())
  } catch (err) {
    pending = Promise.reject(err)
  }
  // Its failure after an abort won the race is nobody's to handle.
  pending.catch(() => {})
  try {
    return await Promise.race([pending, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

/**
 * Creates the provider for one loop and one model spec (the part after the
 * scheme). A factory is called once per loop and model, so providers may keep
 * per-loop state (the scripted provider keeps its position in the scenario); it
 * is also called once before a loop is started, with the loop name `'\u0000probe'`,
 * so that a bad spec (a scenario file that does not load) fails before anything
 * is saved: throw there, and do nothing costly.
 */
export type ProviderFactory = (model: string, loopName: string) => ModelProvider

/** Splits `scheme:rest`. Throws a one-line error naming the spec if it has no scheme. */
export function parseModelSpec(spec: string): { scheme: string; model: string } {
  const i = spec.indexOf(':')
  if (i <= 0 || i === spec.length - 1) {
    throw new Error(`model: '${spec}' is not of the form <scheme>:<model> (e.g. scripted:scenario.json, ollama:qwen3)`)
  }
  return { scheme: spec.slice(0, i), model: spec.slice(i + 1) }
}
