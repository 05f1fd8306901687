/**
 * An OpenAI-compatible (chat completions) HTTP server for tests, the sibling of
 * ollama-server.ts: real sockets on 127.0.0.1, so the real `openai` client (with
 * `baseURL: server.baseURL`) and Node's fetch are exercised. It serves GET /v1/models
 * (shaped like OpenAI, vLLM, llama.cpp or OpenRouter: `listing`), GET /v1/models/<id>
 * and POST /v1/chat/completions (SSE when `stream` is true, one `chat.completion`
 * otherwise) from a script, and can be told to fail in the ways a real server does
 * (see `OpenAIServerFault`; `OPENAI_ERROR_BODIES` holds the bodies real servers send).
 *
 * The script gives each model a scenario (adapters/scenario.ts). A chat request is
 * answered with the next entry of its role, per model. The role comes from the
 * request's system prompt, which opens with "You are the coder …" or "You are the
 * auditor …" (services/prompts.ts); a request with neither is a coder's. One queue
 * per model and role, so a loop whose coder and auditor share a model replays like
 * the scripted provider.
 *
 * A streamed answer is `chat.completion.chunk` events: one with `role: 'assistant'`,
 * the model's `reasoning` in up to 4 deltas, the text in up to 4, each tool call as a
 * delta with id and name followed by its JSON arguments in `argumentChunks` pieces,
 * one with an empty delta and the finish_reason, the usage chunk (`choices: []`, when
 * asked for with `stream_options.include_usage`; the entry's `usage`, else characters
 * / 4), then `data: [DONE]`. `delayMs` waits before answering. `hang` never answers
 * (no headers). `error` entries: ECONNREFUSED / ECONNRESET / ETIMEDOUT drop the
 * connection without an answer, rate_limited → 429 (Retry-After: `retryAfter`),
 * server_error → 500, model_not_found → 404, unauthorized → 401, with OpenAI's bodies.
 * A role with no entries left gets a 400 naming the model and role.
 *
 * Server faults (`fault()`) other than `slow` never consume a scenario entry: the
 * request after the fault gets the entry the faulty one would have had.
 */
import { randomBytes } from 'node:crypto'
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { Role } from '../../adapters/model-provider.ts'
import type { Scenario } from '../../adapters/scenario.ts'
import { splitText } from '../../adapters/scripted-provider.ts'
import { answerOf, json as sendJson, loadModels, nextEntry, notFound, protocolServer, readRequest, roleOf, track, type ModelState, type StreamFormat } from './protocol-server.ts'

export interface OpenAIModelScript {
  /** The model's answers: a parsed scenario or scenario JSON. @default no entries */
  scenario?: Scenario | { coder?: unknown[]; auditor?: unknown[]; contextLength?: number }
  /** Context window in GET /v1/models (in the field of the `listing` style); null leaves it out. @default the scenario's contextLength, else 32768 */
  contextLength?: number | null
  /** Send the usage chunk when asked for with `stream_options.include_usage` (and usage in non-streamed answers); false = a server that never does. @default true */
  usage?: boolean
  /** Reasoning streamed as deltas before the content (thinking models on DeepSeek, vLLM, llama.cpp). @default none */
  reasoning?: string
  /** The delta field of `reasoning`. @default 'reasoning_content' */
  reasoningField?: 'reasoning_content' | 'reasoning'
  /** Pieces (non-empty, so fewer for short ones) each tool call's JSON `arguments` is split into, one delta each. @default 3 */
  argumentChunks?: number
  /** Interleave the deltas of several tool calls (call 0 piece 1, call 1 piece 1, …): clients must assemble by `index`. @default false */
  interleaveToolCalls?: boolean
  /** No tool support: a request with `tools` gets 400 with `OPENAI_ERROR_BODIES.noToolsVllm`. @default false */
  noTools?: boolean
}

export interface OpenAIServerScript {
  models: Record<string, OpenAIModelScript>
  /** When set, every request must carry `Authorization: Bearer <apiKey>`, else 401 invalid_api_key. */
  apiKey?: string
  /** Shape of GET /v1/models: 'openai' (no context field), 'vllm' (max_model_len), 'llamacpp' (meta.n_ctx_train), 'openrouter' (context_length), 'none' (404). @default 'vllm' */
  listing?: 'openai' | 'vllm' | 'llamacpp' | 'openrouter' | 'none'
  /** Seconds in the Retry-After header of the 429 of a `rate_limited` entry. @default no header */
  retryAfter?: number
}

/** A failure of the server itself, for the requests that follow until cleared or used up. */
export type OpenAIServerFault =
  /** Destroys the connection of every request as it arrives (no response). */
  | { kind: 'reset' }
  /** Answers with `status`, `body` as JSON (@default `{"error":{"message":"test fault <status>","type":"server_error"}}`) and `headers`. @default on 'chat' */
  | { kind: 'status'; status: number; body?: unknown; headers?: Record<string, string>; on?: 'chat' | 'models' | 'any' }
  /** Takes the request and never answers (no headers). @default on 'chat' */
  | { kind: 'hang'; on?: 'chat' | 'models' | 'any' }
  /** Streams `afterChunks` events, waits 20 ms (so the client has read them), then destroys the socket. */
  | { kind: 'cut'; afterChunks: number }
  /** Streams `afterChunks` events, then ends the response cleanly without finish_reason and [DONE]. */
  | { kind: 'end'; afterChunks: number }
  /** Streams `afterChunks` events, then a `data: {"broken` event that is not JSON, then the rest. */
  | { kind: 'malformed'; afterChunks: number }
  /** Streams `afterChunks` events, then `data: {"error": error}` and ends (as servers do when generation fails). */
  | { kind: 'stream_error'; afterChunks: number; error: unknown }
  /** Streams `afterChunks` events, then sends nothing more and keeps the socket open. */
  | { kind: 'stall'; afterChunks: number }
  /** Waits `delayMs` before every event. */
  | { kind: 'slow'; delayMs: number }

export interface OpenAIRecordedRequest {
  method: string
  path: string
  /** The request headers, lowercased (`authorization` included). */
  headers: Record<string, string>
  /** The parsed JSON body (null for GET or a body that is not JSON). */
  body: any
  /** For chat completions: the role the request was answered as. */
  role?: Role
  /** How it was answered: 'ok', 'hang', 'error:<code>' (also 'error:no_tools'), 'fault:<kind>' ('fault:status:<status>'), 'not_found', 'exhausted', 'unauthorized'. */
  outcome: string
  /** SSE data events written (stream) before the response ended or stopped. */
  chunks: number
  /** The client closed the connection before the response was complete. */
  closedEarly: boolean
}

export type { OpenAIServerFault as ServerFault, OpenAIRecordedRequest as RecordedRequest }

export interface OpenAITestServer {
  /** `http://127.0.0.1:<port>/v1`, the `baseURL` of the openai client. */
  readonly baseURL: string
  /** `http://127.0.0.1:<port>` */
  readonly origin: string
  readonly port: number
  /** Every request, in arrival order. */
  readonly requests: OpenAIRecordedRequest[]
  /** The chat completion requests (optionally of one model). */
  chats(model?: string): OpenAIRecordedRequest[]
  /** Sets (or clears, with null) the server fault; `times` limits it to that many requests. */
  fault(fault: OpenAIServerFault | null, options?: { times?: number }): void
  /** Stops listening and drops every connection: clients get ECONNREFUSED until `accept()`. */
  refuse(): Promise<void>
  /** Listens again on the same port. */
  accept(): Promise<void>
  /** Entries of `role` served so far for `model`. */
  consumed(model: string, role: Role): number
  /** Destroys every socket and stops listening. */
  close(): Promise<void>
}

const modelNotFound = (model: string) =>
  openAIError(404, `The model \`${model}\` does not exist or you do not have access to it.`, 'invalid_request_error', 'model_not_found')
const invalidKey = (message: string) => openAIError(401, message, 'invalid_request_error', 'invalid_api_key')
const KEYS_URL = 'https://platform.openai.com/account/api-keys'

/**
 * Error bodies as real servers send them, for `fault({ kind: 'status', ...OPENAI_ERROR_BODIES.contextVllm })`.
 * The vLLM ones are in vLLM's older top-level style (newer vLLM wraps the same fields in `error`).
 */
export const OPENAI_ERROR_BODIES = {
  contextOpenAI: openAIError(400, "This model's maximum context length is 8192 tokens. However, your messages resulted in 9010 tokens. Please reduce the length of the messages.", 'invalid_request_error', 'context_length_exceeded', 'messages'),
  contextVllm: vllmError("This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion."),
  contextLlamacpp: { status: 400, body: { error: { code: 400, message: 'the request exceeds the available context size, try increasing it', type: 'exceed_context_size_error', n_prompt_tokens: 5000, n_ctx: 4096 } } },
  noToolsVllm: vllmError('"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'),
  noToolsLlamacpp: { status: 500, body: { error: { code: 500, message: 'tools param requires --jinja flag', type: 'server_error' } } },
  noToolsOllama: openAIError(400, 'registry.ollama.ai/library/gemma:2b does not support tools', 'api_error', null),
  noToolsOpenRouter: { status: 404, body: { error: { message: 'No endpoints found that support tool use. To learn more about provider routing, visit: https://openrouter.ai/docs/provider-routing', code: 404 } } },
  insufficientQuota: openAIError(429, 'You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.', 'insufficient_quota', 'insufficient_quota'),
  invalidKey: invalidKey(`Incorrect API key provided: sk-te****est. You can find your API key at ${KEYS_URL}.`),
  forbidden: openAIError(403, 'Country, region, or territory not supported', 'request_forbidden', 'unsupported_country_region_territory'),
  modelNotFound: modelNotFound('missing-model'),
} satisfies Record<string, { status: number; body: unknown }>

function openAIError(status: number, message: string, type: string, code: string | null, param: string | null = null) {
  return { status, body: { error: { message, type, param, code } } }
}

function vllmError(message: string) {
  return { status: 400, body: { object: 'error', message, type: 'BadRequestError', param: null, code: 400 } }
}

const MAX_TEXT_CHUNKS = 4
const CHAT = '/v1/chat/completions'
const MODELS = '/v1/models'
const SSE: StreamFormat = {
  headers: () => ({ 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', 'x-request-id': `req_${randomId(16)}` }),
  frame: (event) => `data: ${typeof event === 'string' ? event : JSON.stringify(event)}\n\n`,
  broken: 'data: {"broken\n\n',
  // Gives the client time to read what was sent: undici drops chunks still queued when the socket errors.
  cutDelayMs: 20,
}

export async function startOpenAIServer(script: OpenAIServerScript): Promise<OpenAITestServer> {
  const models = loadModels(script.models, 'openai-server')
  const listing = script.listing ?? 'vllm'
  const requests: OpenAIRecordedRequest[] = []
  const base = protocolServer<OpenAIServerFault>()

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const { path, body } = await readRequest(req)
    const headers: Record<string, string> = {}
    for (const [key, value] of Object.entries(req.headers)) if (value !== undefined) headers[key] = String(value)
    const record = track(requests, { method: req.method ?? 'GET', path, headers, body, outcome: 'ok', chunks: 0, closedEarly: false }, res)
    const stream = path === CHAT && body?.stream === true
    // stream faults apply to streamed chats; status and hang ones to the chat or model endpoints named by `on`
    const fault = base.takeFault((on) => (on === 'models' ? isModels(path) : path === CHAT), stream)
    const status = (f: Extract<OpenAIServerFault, { kind: 'status' }>) =>
      json(res, f.status, f.body ?? { error: { message: `test fault ${f.status}`, type: 'server_error' } }, f.headers)
    if (base.answerFault(fault, req, record, status)) return
    if (script.apiKey !== undefined && headers.authorization !== `Bearer ${script.apiKey}`) {
      record.outcome = 'unauthorized'
      const given = /^Bearer (.*)$/.exec(headers.authorization ?? '')?.[1]
      const message =
        given === undefined
          ? `You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from ${KEYS_URL}.`
          : `Incorrect API key provided: ${maskKey(given)}. You can find your API key at ${KEYS_URL}.`
      return reply(res, invalidKey(message))
    }

    if (req.method === 'GET' && listing !== 'none' && isModels(path)) {
      const entries = [...models].map(([name, state]) => modelEntry(name, state, listing))
      if (path === MODELS) return json(res, 200, listing === 'openrouter' ? { data: entries } : { object: 'list', data: entries })
      const name = decodeURIComponent(path.slice(MODELS.length + 1))
      const state = models.get(name)
      if (state) return json(res, 200, modelEntry(name, state, listing))
      record.outcome = 'not_found'
      return reply(res, modelNotFound(name))
    }
    if (req.method === 'POST' && path === CHAT) return chat(body, record, res, fault, stream)
    record.outcome = 'not_found'
    notFound(res)
  }

  const chat = async (body: any, record: OpenAIRecordedRequest, res: ServerResponse, fault: OpenAIServerFault | null, stream: boolean) => {
    const name = String(body?.model ?? '')
    const state = models.get(name)
    if (!state) {
      record.outcome = 'not_found'
      return reply(res, modelNotFound(name))
    }
    const messages: { role: string; content: unknown }[] = Array.isArray(body?.messages) ? body.messages : []
    const role = roleOf(messages, ['system', 'developer'])
    record.role = role
    if (state.script.noTools && Array.isArray(body?.tools) && body.tools.length > 0) {
      record.outcome = 'error:no_tools'
      return reply(res, OPENAI_ERROR_BODIES.noToolsVllm)
    }
    const queued = nextEntry(state, role, fault)
    if (!queued) {
      record.outcome = 'exhausted'
      return reply(res, openAIError(400, `openai-test-server: no more ${role} turns for model '${name}' (used ${state.cursor[role]})`, 'invalid_request_error', null))
    }

    const entry = await base.prelude(queued, record, res)
    if (!entry) return
    if (entry.type === 'error') {
      const m = entry.message
      switch (entry.error) {
        case 'rate_limited': {
          const message = m ?? `Rate limit reached for ${name} on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.`
          return reply(res, openAIError(429, message, 'requests', 'rate_limit_exceeded'), script.retryAfter === undefined ? {} : { 'Retry-After': String(script.retryAfter) })
        }
        case 'server_error':
          return reply(res, openAIError(500, m ?? 'The server had an error while processing your request. Sorry about that!', 'server_error', null))
        case 'model_not_found':
          return reply(res, m ? openAIError(404, m, 'invalid_request_error', 'model_not_found') : modelNotFound(name))
        case 'unauthorized':
          return reply(res, m ? invalidKey(m) : OPENAI_ERROR_BODIES.invalidKey)
      }
    }

    const { script: ms } = state
    const answer = answerOf(entry, messages, ms.reasoning ?? '')
    const id = `chatcmpl-${randomId(24)}`
    const created = Math.floor(Date.now() / 1000)
    const calls = answer.toolCalls.map((c) => ({ id: `call_${randomId(24)}`, name: c.name, arguments: JSON.stringify(c.arguments) }))
    const finishReason = calls.length > 0 ? 'tool_calls' : 'stop'
    const withUsage = ms.usage !== false
    const usage = { prompt_tokens: answer.input, completion_tokens: answer.output, total_tokens: answer.input + answer.output }
    const reasoningField = ms.reasoningField ?? 'reasoning_content'

    if (!stream) {
      const toolCalls = calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }))
      const extra = { ...(answer.reasoning ? { [reasoningField]: answer.reasoning } : {}), ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}) }
      const message = { role: 'assistant', content: answer.text || (calls.length > 0 ? null : ''), ...extra, refusal: null }
      const choices = [{ index: 0, message, logprobs: null, finish_reason: finishReason }]
      return json(res, 200, { id, object: 'chat.completion', created, model: name, choices, ...(withUsage ? { usage } : {}) })
    }

    const includeUsage = withUsage && body?.stream_options?.include_usage === true
    const head = { id, object: 'chat.completion.chunk', created, model: name }
    const chunk = (delta: unknown, finish: string | null = null) =>
      ({ ...head, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...(includeUsage ? { usage: null } : {}) })
    const events: unknown[] = [chunk({ role: 'assistant', content: '' })]
    for (const piece of splitText(answer.reasoning, MAX_TEXT_CHUNKS)) events.push(chunk({ content: null, [reasoningField]: piece }))
    for (const piece of splitText(answer.text, MAX_TEXT_CHUNKS)) events.push(chunk({ content: piece }))
    const perCall = calls.map((c, index) => [
      chunk({ tool_calls: [{ index, id: c.id, type: 'function', function: { name: c.name, arguments: '' } }] }),
      ...splitEven(c.arguments, ms.argumentChunks ?? 3).map((piece) => chunk({ tool_calls: [{ index, function: { arguments: piece } }] })),
    ])
    if (ms.interleaveToolCalls) {
      for (let i = 0; perCall.some((list) => i < list.length); i++) for (const list of perCall) if (i < list.length) events.push(list[i])
    } else {
      for (const list of perCall) events.push(...list)
    }
    const tail = [() => chunk({}, finishReason), ...(includeUsage ? [() => ({ ...head, choices: [], usage })] : []), () => '[DONE]']
    return base.stream(res, record, fault, SSE, events, tail)
  }

  const port = await base.start(handle, (res, err) => json(res, 500, { error: { message: `openai-test-server: ${err.message}`, type: 'server_error' } }))

  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    origin: `http://127.0.0.1:${port}`,
    port,
    requests,
    chats: (model) => requests.filter((r) => r.path === CHAT && (model === undefined || r.body?.model === model)),
    fault: base.fault,
    refuse: base.refuse,
    accept: base.accept,
    consumed: (model, role) => models.get(model)?.cursor[role] ?? 0,
    close: base.close,
  }
}

/** One model of GET /v1/models in the style of `listing`. */
function modelEntry(id: string, { script, scenario }: ModelState<OpenAIModelScript>, listing: OpenAIServerScript['listing']) {
  const context = script.contextLength === undefined ? (scenario.contextLength ?? 32_768) : script.contextLength
  const ctx = (key: string) => (context === null ? {} : { [key]: context })
  const base = { id, object: 'model', created: 1_700_000_000 }
  switch (listing) {
    case 'openai':
      return { ...base, owned_by: 'system' }
    case 'llamacpp':
      return { ...base, owned_by: 'llamacpp', meta: { vocab_type: 2, n_vocab: 151_936, ...ctx('n_ctx_train'), n_embd: 2048, n_params: 1e9, size: 1e9 } }
    case 'openrouter':
      return {
        ...{ id, canonical_slug: id, name: id, created: base.created, ...ctx('context_length') },
        pricing: { prompt: '0', completion: '0' },
        top_provider: { ...ctx('context_length'), max_completion_tokens: null, is_moderated: false },
        supported_parameters: ['max_tokens', 'temperature', 'stop', ...(script.noTools ? [] : ['tools', 'tool_choice'])],
      }
    default:
      return { ...base, owned_by: 'vllm', root: id, parent: null, ...ctx('max_model_len'), permission: [] }
  }
}

/** `text` in up to `pieces` non-empty pieces of (nearly) equal length. */
function splitEven(text: string, pieces: number): string[] {
  const size = Math.max(1, Math.ceil(text.length / Math.max(1, pieces)))
  const out: string[] = []
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size))
  return out
}

const isModels = (path: string) => path === MODELS || path.startsWith(`${MODELS}/`)

function maskKey(key: string): string {
  return key.length <= 8 ? `${key.slice(0, 2)}****` : `${key.slice(0, 5)}****${key.slice(-3)}`
}

function randomId(length: number): string {
  return randomBytes(length).toString('base64url').replace(/[-_]/g, 'x').slice(0, length)
}

function reply(res: ServerResponse, { status, body }: { status: number; body: unknown }, headers: Record<string, string> = {}): void {
  json(res, status, body, headers)
}

function json(res: ServerResponse, status: number, value: unknown, headers: OutgoingHttpHeaders = {}): void {
  sendJson(res, status, value, { 'x-request-id': `req_${randomId(16)}`, ...headers })
}
