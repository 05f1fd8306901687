/**
 * `openai:<model>` (and the presets `openrouter:`, `llamacpp:` … of
 * adapters/openai-config.ts): chat with any OpenAI-compatible server through the
 * official `openai` client. Always streams (every chunk, thinking included, is
 * watchdog activity), assembles the streamed tool-call deltas by index, reads the
 * usage from the final usage chunk (`stream_options.include_usage`; estimated when
 * the server sends none) and classifies every failure once (adapters/openai-errors.ts).
 * The client's own retries are off: the loop's backoff retries, once, with the
 * loop's accounting.
 */
import OpenAI from 'openai'
import type {
  ChatCompletionChunk,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionMessageParam,
  ChatCompletionTool,
} from 'openai/resources/chat/completions'
import {
  abortedError,
  ProviderError,
  raceAbort,
  type ChatMessage,
  type ChatRequest,
  type ChatResponse,
  type ModelProvider,
  type ProviderFactory,
  type Role,
  type ToolCall,
} from './model-provider.ts'
import { displayURL, normalizeBaseURL, type ResolvedOpenAI } from './openai-config.ts'
import { classifyOpenAIError, StreamCutError, type OpenAIFailureContext } from './openai-errors.ts'
import { count, isAbortError, oneLine, parseToolArguments, stripThinking } from './provider-errors.ts'

/** The context window assumed when neither the config nor the server's model listing says (docs/models.md). */
export const DEFAULT_OPENAI_CONTEXT_LENGTH = 32_768

export interface OpenAIProviderOptions {
  /** The scheme the provider answers to (`openai`, or a preset's). @default 'openai' */
  scheme?: string
  /** The server's base URL, usually ending in `/v1`. */
  baseURL: string
  /** The API key; none sends no `Authorization` header (local servers need none). */
  apiKey?: string
  /** Where the key comes from, for messages (`OPENAI_API_KEY`). */
  keyEnv?: string
  /** Fail before sending a request without a key (hosted APIs). @default false */
  requiresKey?: boolean
  /** Extra headers on every request. Their values are kept out of every message, like the key. */
  headers?: Record<string, string>
  /** The model's context window in tokens. @default the server's model listing, else 32768 */
  contextLength?: number
  /** The fetch to send requests with (tests, proxies). @default globalThis.fetch */
  fetch?: typeof fetch
  /** How long the model listing may take before `contextLength` answers the default. @default 30000 */
  listTimeoutMs?: number
  /** The client's request timeout; the loop's stall watchdog usually acts first. @default 600000 */
  timeoutMs?: number
}

/**
 * A `ModelProvider` on an OpenAI-compatible server. One instance per loop and model
 * (the engine's factory contract); it caches the model listing's context window.
 */
export class OpenAIProvider implements ModelProvider {
  readonly scheme: string
  /** The normalized base URL, e.g. `http://127.0.0.1:8080/v1`. */
  readonly baseURL: string
  readonly #options: OpenAIProviderOptions
  readonly #client: OpenAI
  readonly #secrets: string[]
  readonly #windows = new Map<string, Promise<number | null>>()
  /** Calls made per role, for tool call ids when the request has no callIndex. */
  readonly #made: Record<Role, number> = { coder: 0, auditor: 0 }
  /** The server rejected `stream_options`: ask without it (and estimate the usage). */
  #noStreamOptions = false

  constructor(options: OpenAIProviderOptions) {
    this.scheme = options.scheme ?? 'openai'
    this.baseURL = normalizeBaseURL(options.baseURL, this.scheme)
    if (options.contextLength !== undefined && (!Number.isInteger(options.contextLength) || options.contextLength < 1)) {
      throw new Error(`${this.scheme}: contextLength must be a positive integer (got ${options.contextLength})`)
    }
    this.#options = options
    this.#secrets = [options.apiKey ?? '', ...Object.values(options.headers ?? {})].filter((s) => s !== '')
    this.#client = new OpenAI({
      baseURL: this.baseURL,
      // The client insists on a key; a local server that takes none gets no Authorization header at all.
      apiKey: options.apiKey ?? 'none',
      organization: null,
      project: null,
      defaultHeaders: { ...options.headers, ...(options.apiKey === undefined ? { Authorization: null } : {}) },
      maxRetries: 0,
      timeout: options.timeoutMs ?? 600_000,
      fetch: errorBodies(options.fetch ?? globalThis.fetch),
      logLevel: 'off',
    })
  }

  /**
   * The context window for the session's shortening of old tool outputs: the
   * configured one, else what the server's model listing says, else the default.
   * Rejects with `abortedError()` when `signal` aborts.
   */
  async contextLength(model: string, signal: AbortSignal): Promise<number> {
    if (signal.aborted) throw abortedError()
    if (this.#options.contextLength !== undefined) return this.#options.contextLength
    let pending = this.#windows.get(model)
    if (!pending) {
      pending = this.#listedWindow(model, AbortSignal.timeout(this.#options.listTimeoutMs ?? 30_000)).catch(() => null)
      this.#windows.set(model, pending)
    }
    const listed = await raceAbort(signal, () => pending)
    return listed ?? DEFAULT_OPENAI_CONTEXT_LENGTH
  }

  async chat(request: ChatRequest): Promise<ChatResponse> {
    const { signal, model } = request
    if (signal.aborted) throw abortedError()
    try {
      return await raceAbort(signal, () => this.#chat(request))
    } catch (err) {
      if (signal.aborted || isAbortError(err)) throw abortedError()
      throw classifyOpenAIError(err, this.#failureContext(model))
    }
  }

  async #chat(request: ChatRequest): Promise<ChatResponse> {
    const { model, role, signal } = request
    const o = this.#options
    if (o.requiresKey && o.apiKey === undefined) {
      throw new ProviderError(
        `${this.scheme}: no API key for ${displayURL(this.baseURL)}: set ${o.keyEnv ?? 'OPENAI_API_KEY'} in the environment`,
        'unauthorized',
        false,
      )
    }
    const callNumber = request.callIndex !== undefined ? request.callIndex + 1 : this.#made[role] + 1
    this.#made[role] = callNumber
    const started = Date.now()
    const body: ChatCompletionCreateParamsStreaming = {
      model,
      messages: request.messages.map(toOpenAIMessage),
      ...(request.tools.length > 0 ? { tools: request.tools.map(toOpenAITool) } : {}),
      stream: true,
      ...(this.#noStreamOptions ? {} : { stream_options: { include_usage: true } }),
    }
    let stream
    try {
      stream = await this.#client.chat.completions.create(body, { signal })
    } catch (err) {
      // Some servers refuse the usage option: ask again without it, once, and estimate the usage.
      if (this.#noStreamOptions || !(err instanceof OpenAI.APIError) || err.status !== 400 || !/stream_options/i.test(err.message)) throw err
      this.#noStreamOptions = true
      const { stream_options: _, ...plain } = body
      stream = await this.#client.chat.completions.create(plain, { signal })
    }

    const assembly = new ToolCallAssembly(role, callNumber, request.messages)
    let content = ''
    let reasoning = 0
    let finished = false
    let usage: ChatCompletionChunk['usage'] = null
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage
      for (const choice of chunk.choices ?? []) {
        const delta = (choice.delta ?? {}) as ChatCompletionChunk.Choice.Delta & { reasoning_content?: unknown; reasoning?: unknown }
        const text = (typeof delta.content === 'string' ? delta.content : '') + (typeof delta.refusal === 'string' ? delta.refusal : '')
        if (text !== '') {
          content += text
          request.onChunk?.({ text })
        } else {
          // Thinking, tool-call deltas, the finish and usage chunks, keep-alives: activity all the same.
          request.onChunk?.({})
        }
        for (const field of [delta.reasoning_content, delta.reasoning]) if (typeof field === 'string') reasoning += field.length
        for (const part of delta.tool_calls ?? []) assembly.add(part)
        if (choice.finish_reason) finished = true
      }
      if ((chunk.choices ?? []).length === 0) request.onChunk?.({})
    }
    // The client ends its iteration quietly when the request is aborted.
    if (signal.aborted) throw abortedError()
    if (!finished) throw new StreamCutError('the response stream ended before its finish_reason')
    const toolCalls = assembly.calls()
    for (const toolCall of toolCalls) request.onChunk?.({ toolCall })
    const reply = stripThinking(content)
    return {
      content: reply,
      toolCalls,
      usage: {
        inputTokens: count(usage?.prompt_tokens) || estimate(request.messages.map((m) => m.content).join('') + JSON.stringify(body.tools ?? [])),
        outputTokens: count(usage?.completion_tokens) || estimate(content + JSON.stringify(toolCalls.map((c) => c.arguments))) + Math.ceil(reasoning / 4),
        durationMs: Date.now() - started,
      },
    }
  }

  /**
   * Checks, with one `GET /models`, that the server answers and serves `model` (what
   * `loopstate run` asks before a loop is saved). Rejects with the classified failure:
   * unreachable, no key or a refused one, or `model_not_found` when the listing lacks
   * the model. Resolves when it is listed, when the server has no listing (404: it
   * cannot tell) and for llama.cpp's server (it answers any model name with its own).
   */
  async checkModel(model: string, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw abortedError()
    const o = this.#options
    const fail = (text: string, code: string) => new ProviderError(`${this.scheme}: ${text}`, code, false)
    if (o.requiresKey && o.apiKey === undefined) {
      throw fail(`no API key for ${displayURL(this.baseURL)}: set ${o.keyEnv ?? 'OPENAI_API_KEY'} in the environment`, 'unauthorized')
    }
    let listed: Record<string, unknown>[]
    try {
      const page = await raceAbort(signal, () => this.#client.models.list({ signal }))
      listed = (page.data ?? []) as unknown as Record<string, unknown>[]
    } catch (err) {
      if (signal.aborted || isAbortError(err)) throw abortedError()
      const failure = classifyOpenAIError(err, this.#failureContext(model))
      if (failure.code === 'not_found') return // no listing to go by
      throw failure
    }
    if (listed.some((m) => m.id === model) || listed.some(isLlamaCpp)) return
    const ids = listed.map((m) => String(m.id))
    const shown = ids.length > 8 ? `${ids.slice(0, 8).join(', ')}, … (${ids.length})` : ids.join(', ') || 'none'
    throw fail(`model ${model} is not served by ${displayURL(this.baseURL)} (it lists: ${shown})`, 'model_not_found')
  }

  /** The context window the model listing (`GET /models`) gives `model`, or null. */
  async #listedWindow(model: string, signal: AbortSignal): Promise<number | null> {
    const page = await this.#client.models.list({ signal })
    const entry = (page.data as unknown as Record<string, unknown>[]).find((m) => m.id === model)
    if (!entry) return null
    const window = listedContextLength(entry)
    if (window !== null || !isLlamaCpp(entry)) return window
    return this.#llamaCppWindow(entry, signal)
  }

  /** llama.cpp lists the model's training context; the server's own (`--ctx-size`) is in `/props`. */
  async #llamaCppWindow(entry: Record<string, unknown>, signal: AbortSignal): Promise<number | null> {
    const trained = count((entry.meta as Record<string, unknown>).n_ctx_train) || null
    try {
      const headers: Record<string, string> = { ...this.#options.headers }
      if (this.#options.apiKey !== undefined) headers.Authorization = `Bearer ${this.#options.apiKey}`
      const response = await (this.#options.fetch ?? globalThis.fetch)(new URL('../props', `${this.baseURL}/`), { headers, signal })
      if (!response.ok) return trained
      const props = (await response.json()) as { default_generation_settings?: { n_ctx?: unknown }; n_ctx?: unknown }
      const serving = count(props.default_generation_settings?.n_ctx) || count(props.n_ctx)
      return serving > 0 ? serving : trained
    } catch {
      return trained
    }
  }

  #failureContext(model: string): OpenAIFailureContext {
    const o = this.#options
    return {
      scheme: this.scheme,
      model,
      server: displayURL(this.baseURL),
      ...(o.keyEnv !== undefined ? { keyEnv: o.keyEnv } : {}),
      hasKey: o.apiKey !== undefined,
      secrets: this.#secrets,
    }
  }
}

/** The factory of one OpenAI-compatible scheme: a provider per loop and model, all on one server. */
export function openaiFactory(options: OpenAIProviderOptions | ResolvedOpenAI): ProviderFactory {
  // Built once here so that a bad base URL or context length fails when the engine is created, not mid-loop.
  new OpenAIProvider(options)
  return () => new OpenAIProvider(options)
}

/** Tool calls streamed as deltas, put together by their index. */
class ToolCallAssembly {
  readonly #parts = new Map<number, { id: string; name: string; args: string }>()
  readonly #taken: Set<string>

  constructor(
    private readonly role: Role,
    private readonly callNumber: number,
    history: ChatMessage[],
  ) {
    // A server that reuses ids (or sends none) gets ids of ours: within a session, ids must be unique.
    this.#taken = new Set(history.flatMap((m) => (m.role === 'assistant' ? (m.toolCalls ?? []).map((c) => c.id) : [])))
  }

  add(part: ChatCompletionChunk.Choice.Delta.ToolCall): void {
    const index = typeof part.index === 'number' ? part.index : this.#indexWithoutOne(part.id)
    let call = this.#parts.get(index)
    if (!call) {
      call = { id: '', name: '', args: '' }
      this.#parts.set(index, call)
    }
    if (typeof part.id === 'string' && part.id !== '' && call.id === '') call.id = part.id
    const name = part.function?.name
    // The name comes whole in the first delta; a server that repeats it must not double it.
    if (typeof name === 'string' && name !== call.name) call.name += name
    const args: unknown = part.function?.arguments
    if (typeof args === 'string') call.args += args
    else if (args !== null && typeof args === 'object') call.args += JSON.stringify(args)
  }

  calls(): ToolCall[] {
    const out: ToolCall[] = []
    for (const [, part] of [...this.#parts].sort(([a], [b]) => a - b)) {
      const id = part.id !== '' && !this.#taken.has(part.id) ? part.id : `${this.role}-${this.callNumber}-${out.length + 1}`
      this.#taken.add(id)
      const parsed = parseToolArguments(part.args)
      out.push({ id, name: part.name, arguments: parsed.arguments, ...(parsed.error !== undefined ? { argumentsError: parsed.error } : {}) })
    }
    return out
  }

  /** A delta without an index: a new call when it brings a new id, else the latest call. */
  #indexWithoutOne(id: string | undefined): number {
    const latest = this.#parts.size === 0 ? -1 : Math.max(...this.#parts.keys())
    if (latest < 0) return 0
    if (typeof id === 'string' && id !== '' && ![...this.#parts.values()].some((p) => p.id === id)) return latest + 1
    return latest
  }
}

function toOpenAIMessage(message: ChatMessage): ChatCompletionMessageParam {
  switch (message.role) {
    case 'assistant':
      return {
        role: 'assistant',
        content: message.content,
        ...(message.toolCalls && message.toolCalls.length > 0
          ? {
              tool_calls: message.toolCalls.map((c) => ({
                id: c.id,
                type: 'function' as const,
                function: { name: c.name, arguments: JSON.stringify(c.arguments) },
              })),
            }
          : {}),
      }
    case 'tool':
      return { role: 'tool', content: message.content, tool_call_id: message.toolCallId }
    default:
      return { role: message.role, content: message.content }
  }
}

function toOpenAITool(spec: ChatRequest['tools'][number]): ChatCompletionTool {
  return { type: 'function', function: { name: spec.name, description: spec.description, parameters: spec.parameters } }
}

/** The context window a model listing entry states, in the field its server uses. */
export function listedContextLength(entry: Record<string, unknown>): number | null {
  const meta = (entry.meta ?? {}) as Record<string, unknown>
  const topProvider = (entry.top_provider ?? {}) as Record<string, unknown>
  for (const value of [
    entry.context_length, // OpenRouter, Together
    entry.max_model_len, // vLLM
    entry.context_window, // Groq
    entry.max_context_length, // Mistral, LM Studio
    entry.loaded_context_length,
    topProvider.context_length,
    meta.n_ctx,
  ]) {
    if (typeof value === 'number' && Number.isInteger(value) && value > 0) return value
  }
  return null
}

function isLlamaCpp(entry: Record<string, unknown>): boolean {
  return entry.meta !== null && typeof entry.meta === 'object' && 'n_ctx_train' in (entry.meta as object)
}

/**
 * A fetch whose error responses all read `{"error": {"message": …}}`, the shape the
 * client takes its message from: vLLM's top-level `message`, a plain `{"error": "…"}`,
 * FastAPI's `detail` and a proxy's HTML would otherwise reach us as "400 status code (no body)".
 */
function errorBodies(base: typeof fetch): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const response = await base(input, init)
    if (response.ok) return response
    const text = await response.text().catch(() => '')
    let error: Record<string, unknown> = { message: oneLine(text).slice(0, 300) || `${response.status} ${response.statusText}`.trim() }
    try {
      const parsed = JSON.parse(text) as Record<string, unknown>
      if (parsed.error !== null && typeof parsed.error === 'object') error = parsed.error as Record<string, unknown>
      else if (typeof parsed.error === 'string') error = { message: parsed.error }
      else if (typeof parsed.message === 'string') error = { ...parsed, message: parsed.message }
      else if (parsed.detail !== undefined) error = { message: typeof parsed.detail === 'string' ? parsed.detail : JSON.stringify(parsed.detail) }
    } catch {
      // not JSON: the text itself is the message
    }
    const headers = new Headers(response.headers)
    headers.set('content-type', 'application/json')
    headers.delete('content-length')
    return new Response(JSON.stringify({ error }), { status: response.status, statusText: response.statusText, headers })
  }) as typeof fetch
}

/** A rough token count (4 characters a token) for servers that report no usage. */
function estimate(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4))
}

