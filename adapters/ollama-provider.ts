/**
 * `ollama:<model>`: chat with a model served by Ollama through the `ollama` npm
 * client. Always streams (every chunk is watchdog activity, and Node's fetch gives
 * up on a response whose headers take over 300 s), sets `num_ctx` explicitly
 * (Ollama silently truncates a prompt beyond its default context) and classifies
 * every failure once into a `ProviderError` (see classifyOllamaError and docs/ollama.md).
 */
import { Ollama, type ChatResponse as OllamaChunk, type Message, type Tool } from 'ollama'
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
  type ToolSpec,
} from './model-provider.ts'
import { causeMessage, count, isAbortError, isTerminated, NETWORK_CODES, networkCode, oneLine, parseToolArguments, stripThinking } from './provider-errors.ts'

/** Where Ollama listens unless told otherwise. */
export const DEFAULT_OLLAMA_HOST = 'http://127.0.0.1:11434'

/** The default upper bound of `num_ctx`. */
export const DEFAULT_NUM_CTX_CAP = 32_768

const DEFAULT_PORT = '11434'

export interface OllamaProviderOptions {
  /**
   * Ollama's address: `http://host:port`, `host:port`, `host` or `:port`.
   * @default 'http://127.0.0.1:11434'
   */
  host?: string
  /**
   * Upper bound of the context window asked for (`num_ctx`). Every chat sends
   * `num_ctx = min(the model's context length, numCtxCap)`: a larger context costs
   * memory and time on the server.
   * @default 32768
   */
  numCtxCap?: number
  /** The fetch to send requests with (tests, proxies). @default globalThis.fetch */
  fetch?: typeof fetch
  /** Extra headers on every request (e.g. `Authorization` for a proxy in front of Ollama). */
  headers?: Record<string, string>
  /**
   * Passed as the chat's `think` field when set; unset leaves it to the server.
   * Thinking is activity for the watchdog but never part of the reply.
   */
  think?: boolean
  /**
   * How long `contextLength` waits for the model's `show` before answering null
   * (the chat that follows asks again, under the call's own signal).
   * @default 30000
   */
  showTimeoutMs?: number
}

/** What `show` told about a model, as far as the provider needs it. */
export interface OllamaModelInfo {
  /** `model_info['<arch>.context_length']`; null when the server does not say. */
  contextLength: number | null
  /** The model's capabilities; null when the server does not report them (older Ollama). */
  capabilities: string[] | null
  /** The `num_ctx` every chat of this model sends. */
  numCtx: number
}

/**
 * A `ModelProvider` on an Ollama server. One instance per loop and model (the
 * engine's factory contract); it caches the model's `show` answer. Each call uses
 * a client of its own, so aborting one call never touches another.
 */
export class OllamaProvider implements ModelProvider {
  readonly scheme = 'ollama'
  /** The normalized server address, e.g. `http://127.0.0.1:11434`. */
  readonly host: string
  readonly numCtxCap: number
  readonly #fetch: typeof fetch
  readonly #headers: Record<string, string> | undefined
  readonly #think: boolean | undefined
  readonly #showTimeoutMs: number
  readonly #shows = new Map<string, Promise<OllamaModelInfo>>()
  /** Calls made per role, for tool call ids when the request has no callIndex. */
  readonly #made: Record<Role, number> = { coder: 0, auditor: 0 }

  constructor(options: OllamaProviderOptions = {}) {
    this.host = normalizeOllamaHost(options.host ?? DEFAULT_OLLAMA_HOST)
    const cap = options.numCtxCap ?? DEFAULT_NUM_CTX_CAP
    if (!Number.isInteger(cap) || cap < 1) {
      throw new Error(`ollama: numCtxCap must be a positive integer (got ${options.numCtxCap})`)
    }
    this.numCtxCap = cap
    this.#fetch = options.fetch ?? globalThis.fetch
    this.#headers = options.headers
    this.#think = options.think
    this.#showTimeoutMs = options.showTimeoutMs ?? 30_000
  }

  /**
   * The context window chats of `model` get (`num_ctx`), for the session's
   * shortening of old tool outputs. Null when `show` fails or takes longer than
   * `showTimeoutMs`: the chat that follows reports why, as a classified failure of
   * that call. Rejects with `abortedError()` when `signal` aborts.
   */
  async contextLength(model: string, signal: AbortSignal): Promise<number | null> {
    if (signal.aborted) throw abortedError()
    try {
      return (await this.modelInfo(model, AbortSignal.any([signal, AbortSignal.timeout(this.#showTimeoutMs)]))).numCtx
    } catch {
      if (signal.aborted) throw abortedError()
      return null
    }
  }

  async chat(request: ChatRequest): Promise<ChatResponse> {
    const { signal, model } = request
    try {
      // The abort wins the race at once, whatever the HTTP stack does with the cancelled request.
      return await raceAbort(signal, () => this.#chat(request))
    } catch (err) {
      if (signal.aborted) throw abortedError()
      throw classifyOllamaError(err, model, this.host)
    }
  }

  /** The model's `show` answer (cached). Throws `no_tools` for a model without tool calling. */
  async modelInfo(model: string, signal: AbortSignal = new AbortController().signal): Promise<OllamaModelInfo> {
    for (;;) {
      let pending = this.#shows.get(model)
      if (!pending) {
        const created = this.#show(model, signal)
        pending = created
        this.#shows.set(model, created)
        // A failed show is asked again next time (the server may be back, the model pulled).
        created.catch(() => {
          if (this.#shows.get(model) === created) this.#shows.delete(model)
        })
      }
      try {
        return await pending
      } catch (err) {
        // Another call's abort ended the shared show: ask again under this call's signal.
        if (isAbortError(err) && !signal.aborted) continue
        throw err
      }
    }
  }

  async #show(model: string, signal: AbortSignal): Promise<OllamaModelInfo> {
    const client = this.#client(signal, false)
    const shown = (await client.show({ model })) as unknown as {
      model_info?: Record<string, unknown> | null
      capabilities?: unknown
    }
    const info = shown.model_info ?? {}
    const key = Object.keys(info).find((k) => k.endsWith('.context_length'))
    const raw = key === undefined ? undefined : info[key]
    const contextLength = typeof raw === 'number' && raw > 0 ? raw : null
    const capabilities = Array.isArray(shown.capabilities) ? shown.capabilities.map(String) : null
    return {
      contextLength,
      capabilities,
      numCtx: contextLength === null ? this.numCtxCap : Math.min(contextLength, this.numCtxCap),
    }
  }

  async #chat(request: ChatRequest): Promise<ChatResponse> {
    const { model, role, signal } = request
    const info = await this.modelInfo(model, signal)
    // Servers that do not report capabilities predate the field: assume tools work.
    if (info.capabilities !== null && !info.capabilities.includes('tools')) throw noToolsError(model, this.host)

    const callNumber = request.callIndex !== undefined ? request.callIndex + 1 : this.#made[role] + 1
    this.#made[role] = callNumber
    const started = Date.now()
    const stream = await this.#client(signal, true).chat({
      model,
      messages: request.messages.map(toOllamaMessage),
      tools: request.tools.map(toOllamaTool),
      stream: true,
      options: { num_ctx: info.numCtx },
      ...(this.#think !== undefined ? { think: this.#think } : {}),
    })
    let content = ''
    const toolCalls: ToolCall[] = []
    let final: OllamaChunk | null = null
    try {
      for await (const chunk of stream) {
        const text = chunk.message?.content ?? ''
        const calls = chunk.message?.tool_calls ?? []
        if (text !== '') {
          content += text
          request.onChunk?.({ text })
        }
        for (const raw of calls) {
          // Ollama gives no ids (or ones of its own): ids name role, call and position, like the scripted provider's.
          const parsed = parseToolArguments(raw.function?.arguments)
          const toolCall: ToolCall = {
            id: `${role}-${callNumber}-${toolCalls.length + 1}`,
            name: raw.function?.name ?? '',
            arguments: parsed.arguments,
            ...(parsed.error !== undefined ? { argumentsError: parsed.error } : {}),
          }
          toolCalls.push(toolCall)
          request.onChunk?.({ toolCall })
        }
        // Thinking, the final chunk, empty keep-alive chunks: activity all the same.
        if (text === '' && calls.length === 0) request.onChunk?.({})
        if (chunk.done) final = chunk
      }
    } finally {
      // Ends the HTTP request when the loop above did not read the stream to its end.
      if (final === null) stream.abort()
    }
    if (final === null) throw new StreamCutError('ollama: the response stream ended without its final chunk')
    return {
      content: stripThinking(content),
      toolCalls,
      usage: {
        inputTokens: count(final.prompt_eval_count),
        outputTokens: count(final.eval_count),
        durationMs: count(final.total_duration) > 0 ? Math.round(final.total_duration / 1e6) : Date.now() - started,
      },
    }
  }

  /** A client for one call: its requests end when `signal` aborts; streamed NDJSON is checked line by line. */
  #client(signal: AbortSignal, checkNdjson: boolean): Ollama {
    const base = this.#fetch
    const callFetch = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
      const response = await base(input, { ...init, signal: init.signal ? AbortSignal.any([init.signal, signal]) : signal })
      if (!response.ok) return jsonError(response)
      if (!checkNdjson || response.body === null) return response
      return new Response(response.body.pipeThrough(ndjsonGuard()), {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
      })
    }
    return new Ollama({ host: this.host, fetch: callFetch as typeof fetch, ...(this.#headers ? { headers: this.#headers } : {}) })
  }
}

/** The factory for `ollama:<model>`: a provider per loop and model, all on one server. */
export function ollamaFactory(options: OllamaProviderOptions = {}): ProviderFactory {
  // Built once here so that a bad host or cap fails when the engine is created, not mid-loop.
  const host = normalizeOllamaHost(options.host ?? DEFAULT_OLLAMA_HOST)
  new OllamaProvider({ ...options, host })
  return () => new OllamaProvider({ ...options, host })
}

/**
 * The Ollama host to use: the `--ollama-host` flag, else the config file's host,
 * else `OLLAMA_HOST` (the `ollama` client does not read it itself), else
 * `http://127.0.0.1:11434`. Normalized like Ollama's own CLI reads OLLAMA_HOST.
 */
export function resolveOllamaHost(
  flag?: string,
  configHost?: string,
  env: Record<string, string | undefined> = process.env,
): string {
  const chosen = [flag, configHost, env.OLLAMA_HOST].find((h) => h !== undefined && h.trim() !== '')
  return normalizeOllamaHost(chosen ?? DEFAULT_OLLAMA_HOST)
}

/**
 * `http://host:port` without a trailing slash. Accepts `host:port`, `host` and
 * `:port` (no scheme: http, port 11434 unless given); `0.0.0.0` (a listen address,
 * often what OLLAMA_HOST holds on the server) becomes 127.0.0.1.
 */
export function normalizeOllamaHost(host: string): string {
  let text = host.trim()
  if (text.startsWith(':')) text = `127.0.0.1${text}`
  const explicit = /^[a-z][a-z0-9+.-]*:\/\//i.test(text)
  let url: URL
  try {
    url = new URL(explicit ? text : `http://${text}`)
  } catch {
    throw new Error(`ollama: host '${host}' is not a URL or host:port (e.g. http://127.0.0.1:11434)`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`ollama: host '${host}' must be http or https`)
  }
  if (url.hostname === '0.0.0.0') url.hostname = '127.0.0.1'
  if (url.hostname === '[::]') url.hostname = '[::1]'
  const port = url.port || (explicit ? (url.protocol === 'https:' ? '443' : '80') : DEFAULT_PORT)
  const auth = url.username ? `${url.username}${url.password ? `:${url.password}` : ''}@` : ''
  return `${url.protocol}//${auth}${url.hostname}:${port}${url.pathname}`.replace(/\/+$/, '')
}

/** Fatal failure for a model whose `show` lacks the `tools` capability. */
function noToolsError(model: string, host: string): ProviderError {
  return new ProviderError(
    `ollama: model ${model} on ${host} does not support tools; pick a model with tool calling (e.g. qwen3, llama3.1)`,
    'no_tools',
    false,
  )
}

/** The response stream stopped before its `done: true` chunk. */
class StreamCutError extends Error {
  override readonly name = 'StreamCutError'
}

/** A line of the response stream that is not JSON. */
class MalformedStreamError extends Error {
  override readonly name = 'MalformedStreamError'
}


/**
 * Classifies any failure of an Ollama call (HTTP status, network error, broken
 * stream, in-stream error) into a `ProviderError`. Retryable: connection refused or
 * reset, timeouts, a stream cut mid-message or not NDJSON, 429, 5xx, a model still
 * loading. Fatal: 404 model not found, 401/403, a model without tools, other 4xx.
 * An abort is `abortedError()`. A `ProviderError` passes through unchanged.
 */
export function classifyOllamaError(err: unknown, model: string, host: string): ProviderError {
  if (err instanceof ProviderError) return err
  if (isAbortError(err)) return abortedError()
  const message = err instanceof Error ? err.message : String(err)
  const fail = (code: string, text: string, retryable: boolean) => new ProviderError(`ollama: ${text}`, code, retryable)

  if (err instanceof MalformedStreamError) return fail('bad_response', `${host}: ${message.replace(/^ollama: /, '')}`, true)
  if (err instanceof StreamCutError || /did not receive done/i.test(message) || isTerminated(err)) {
    return fail('stream_cut', `${host} cut the response stream of ${model} mid-message`, true)
  }
  if (err instanceof SyntaxError) return fail('bad_response', `${host} sent a response that is not JSON (${oneLine(message)})`, true)

  const status = (err as { status_code?: unknown }).status_code
  if (typeof status === 'number') return classifyStatus(status, message, model, host)

  const code = networkCode(err)
  if (code !== undefined && NETWORK_CODES[code]) {
    const known = NETWORK_CODES[code]
    const hint = known.code === 'connection_refused' ? '; is Ollama running (ollama serve)?' : ''
    return fail(known.code, `cannot reach ${host}: ${known.what}${hint} (${code})`, true)
  }
  if (/socket hang up/i.test(message)) return fail('connection_reset', `cannot reach ${host}: socket hang up`, true)
  if (err instanceof TypeError && /fetch failed/i.test(message)) {
    return fail('connection_failed', `cannot reach ${host}: ${oneLine(causeMessage(err) ?? message)}`, true)
  }
  // `{"error": …}` inside a stream reaches us as a plain Error with the server's message.
  if (err instanceof Error && err.constructor === Error) return classifyServerMessage(message, model, host)
  return fail('internal', `${model} on ${host}: ${oneLine(message)}`, false)
}

function classifyStatus(status: number, message: string, model: string, host: string): ProviderError {
  const text = oneLine(message)
  const fail = (code: string, what: string, retryable: boolean) => new ProviderError(`ollama: ${what}`, code, retryable)
  if (/does not support tools/i.test(text)) return noToolsError(model, host)
  if (status === 404) {
    if (/model/i.test(text)) return modelNotFound(model, host)
    return fail('not_found', `${host} answered 404 (${text}); is it an Ollama server?`, false)
  }
  if (status === 401 || status === 403) {
    return fail('unauthorized', `${host} refused the request (${status}: ${text}); check the credentials of the proxy in front of Ollama`, false)
  }
  if (status === 429) return fail('rate_limited', `${host} is rate limiting (429: ${text})`, true)
  if (/loading model/i.test(text)) return fail('model_loading', `${host} is still loading ${model} (${status}: ${text})`, true)
  if (status >= 500) return fail('server_error', `${host} failed (${status}: ${text})`, true)
  return fail('bad_request', `${host} rejected the request for ${model} (${status}: ${text})`, false)
}

function classifyServerMessage(message: string, model: string, host: string): ProviderError {
  const text = oneLine(message)
  if (/does not support tools/i.test(text)) return noToolsError(model, host)
  if (/loading model/i.test(text)) return new ProviderError(`ollama: ${host} is still loading ${model} (${text})`, 'model_loading', true)
  if (/model .*not found/i.test(text)) return modelNotFound(model, host)
  return new ProviderError(`ollama: ${host} reported an error for ${model}: ${text}`, 'server_error', true)
}

function modelNotFound(model: string, host: string): ProviderError {
  return new ProviderError(`ollama: model ${model} is not available on ${host}; run \`ollama pull ${model}\``, 'model_not_found', false)
}




/**
 * An error response as `{"error": …}` JSON: the client console.logs while it reads
 * any other error body (a proxy's HTML or plain text), which would litter stdout.
 */
async function jsonError(response: Response): Promise<Response> {
  const text = await response.text().catch(() => '')
  let error = oneLine(text).slice(0, 300) || `${response.status} ${response.statusText}`.trim()
  try {
    const parsed = JSON.parse(text) as { error?: unknown }
    if (typeof parsed.error === 'string' && parsed.error !== '') error = parsed.error
  } catch {
    // not JSON: the text itself is the message
  }
  return new Response(JSON.stringify({ error }), {
    status: response.status,
    statusText: response.statusText,
    headers: { 'content-type': 'application/json' },
  })
}

/** Passes NDJSON through line by line and errors the stream on a line that is not JSON (the client only warns). */
function ndjsonGuard(): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder()
  const encoder = new TextEncoder()
  let buffer = ''
  const pass = (line: string, controller: TransformStreamDefaultController<Uint8Array>) => {
    if (line.trim() === '') return
    try {
      JSON.parse(line)
    } catch {
      throw new MalformedStreamError(`a line of the response stream is not JSON: ${JSON.stringify(line.slice(0, 80))}`)
    }
    controller.enqueue(encoder.encode(`${line}\n`))
  }
  return new TransformStream({
    transform(chunk, controller) {
      buffer += decoder.decode(chunk, { stream: true })
      const lines = buffer.split('\n')
      buffer = lines.pop() ?? ''
      for (const line of lines) pass(line, controller)
    },
    flush(controller) {
      buffer += decoder.decode()
      pass(buffer, controller)
    },
  })
}

function toOllamaMessage(message: ChatMessage): Message {
  switch (message.role) {
    case 'assistant':
      return {
        role: 'assistant',
        content: message.content,
        ...(message.toolCalls && message.toolCalls.length > 0
          ? { tool_calls: message.toolCalls.map((c) => ({ function: { name: c.name, arguments: c.arguments } })) }
          : {}),
      }
    case 'tool':
      return { role: 'tool', content: message.content, tool_name: message.toolName }
    default:
      return { role: message.role, content: message.content }
  }
}

function toOllamaTool(spec: ToolSpec): Tool {
  return {
    type: 'function',
    function: { name: spec.name, description: spec.description, parameters: spec.parameters as NonNullable<Tool['function']['parameters']> },
  }
}
