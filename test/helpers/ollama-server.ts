/**
 * An Ollama-compatible HTTP server for tests: real sockets on 127.0.0.1, so the
 * real `ollama` client and Node's fetch are exercised. It serves GET /api/version,
 * GET /api/tags, POST /api/show and POST /api/chat (NDJSON when `stream` is true,
 * one JSON object otherwise) from a script, and can be told to fail in the ways a
 * real server does (see `ServerFault`).
 *
 * The script gives each model a scenario (adapters/scenario.ts). A chat request is
 * answered with the next entry of its role, per model. The role comes from the
 * request's system prompt, which opens with "You are the coder …" or "You are the
 * auditor …" (services/prompts.ts); a request with neither is a coder's. One
 * queue per model and role, so a loop whose coder and auditor share a model
 * replays like the scripted provider.
 *
 * Scenario entries over HTTP: `text` and `tool_calls` stream their text in up to
 * 4 chunks, then each tool call in a chunk of its own (or all in the final chunk,
 * `toolCallsInFinalChunk`), then the final `done: true` chunk with
 * prompt_eval_count / eval_count (the entry's `usage`, else characters / 4) and
 * total_duration. `delayMs` waits before answering. `hang` never answers (no
 * headers). `error` entries: ECONNREFUSED / ECONNRESET / ETIMEDOUT drop the
 * connection without an answer, rate_limited → 429, server_error → 500,
 * model_not_found → 404, unauthorized → 401. A role with no entries left gets a
 * 400 naming the model and role.
 *
 * Server faults (`fault()`) other than `slow` never consume a scenario entry: the
 * request after the fault gets the entry the faulty one would have had.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Role } from '../../adapters/model-provider.ts'
import type { Scenario } from '../../adapters/scenario.ts'
import { splitText } from '../../adapters/scripted-provider.ts'
import { answerOf, json, loadModels, nextEntry, notFound, protocolServer, readRequest, roleOf, track, type ModelState, type StreamFormat } from './protocol-server.ts'

export interface ModelScript {
  /** The model's answers: a parsed scenario or scenario JSON. @default no entries */
  scenario?: Scenario | { coder?: unknown[]; auditor?: unknown[]; contextLength?: number }
  /** `model_info['<arch>.context_length']`; null leaves the key out. @default the scenario's contextLength, else 40960 */
  contextLength?: number | null
  /** `capabilities` of /api/show; null leaves the field out (servers before 0.6.4). @default ['completion', 'tools'] */
  capabilities?: string[] | null
  /** `general.architecture`. @default 'llama' */
  architecture?: string
  /** `total_duration` of every answer (ms, sent in ns). @default the time the answer took */
  totalDurationMs?: number
  /** Put the tool calls into the final (`done: true`) chunk instead of chunks of their own. @default false */
  toolCallsInFinalChunk?: boolean
}

export interface OllamaServerScript {
  models: Record<string, ModelScript>
}

/** A failure of the server itself, for the requests that follow until cleared or used up. */
export type ServerFault =
  /** Destroys the connection of every request as it arrives (no response). */
  | { kind: 'reset' }
  /** Answers with `status` and `{"error": error}`. @default on 'chat' */
  | { kind: 'status'; status: number; error?: string; on?: 'chat' | 'show' | 'any' }
  /** Takes the request and never answers (no headers). @default on 'chat' */
  | { kind: 'hang'; on?: 'chat' | 'show' | 'any' }
  /** Streams `afterChunks` chunks, then destroys the socket (no final chunk). */
  | { kind: 'cut'; afterChunks: number }
  /** Streams `afterChunks` chunks, then ends the response cleanly without the final chunk. */
  | { kind: 'end'; afterChunks: number }
  /** Streams `afterChunks` chunks, then a line that is not JSON, then the rest. */
  | { kind: 'malformed'; afterChunks: number }
  /** Streams `afterChunks` chunks, then an `{"error": error}` line and ends (as Ollama does when a runner dies). */
  | { kind: 'stream_error'; afterChunks: number; error: string }
  /** Streams `afterChunks` chunks, then sends nothing more and keeps the socket open. */
  | { kind: 'stall'; afterChunks: number }
  /** Waits `delayMs` before every chunk. */
  | { kind: 'slow'; delayMs: number }

export interface RecordedRequest {
  method: string
  path: string
  /** The parsed JSON body (null for GET or a body that is not JSON). */
  body: any
  /** For /api/chat: the role the request was answered as. */
  role?: Role
  /** How it was answered: 'ok', 'hang', 'error:<code>', 'fault:<kind>', 'not_found', 'exhausted'. */
  outcome: string
  /** Chunks written (stream) before the response ended or stopped. */
  chunks: number
  /** The client closed the connection before the response was complete. */
  closedEarly: boolean
}

export interface OllamaTestServer {
  /** `http://127.0.0.1:<port>` */
  readonly host: string
  readonly port: number
  /** Every request, in arrival order. */
  readonly requests: RecordedRequest[]
  /** The /api/chat requests (optionally of one model). */
  chats(model?: string): RecordedRequest[]
  /** Sets (or clears, with null) the server fault; `times` limits it to that many requests. */
  fault(fault: ServerFault | null, options?: { times?: number }): void
  /** Stops listening and drops every connection: clients get ECONNREFUSED until `accept()`. */
  refuse(): Promise<void>
  /** Listens again on the same port. */
  accept(): Promise<void>
  /** Entries of `role` served so far for `model`. */
  consumed(model: string, role: Role): number
  /** Destroys every socket and stops listening. */
  close(): Promise<void>
}

const MAX_TEXT_CHUNKS = 4
const NDJSON: StreamFormat = {
  headers: () => ({ 'Content-Type': 'application/x-ndjson' }),
  frame: (line) => `${JSON.stringify(line)}\n`,
  broken: '{"model": "broken", "message": {\n',
}

export async function startOllamaServer(script: OllamaServerScript): Promise<OllamaTestServer> {
  const models = loadModels(script.models, 'ollama-server')
  const requests: RecordedRequest[] = []
  const base = protocolServer<ServerFault>()

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const { path, body } = await readRequest(req)
    const record = track(requests, { method: req.method ?? 'GET', path, body, outcome: 'ok', chunks: 0, closedEarly: false }, res)
    const stream = path === '/api/chat' && body?.stream !== false
    const fault = base.takeFault((on) => path === `/api/${on}`, stream)
    if (base.answerFault(fault, req, record, (f) => json(res, f.status, { error: f.error ?? `test fault ${f.status}` }))) return

    if (req.method === 'GET' && path === '/api/version') return json(res, 200, { version: '0.12.6' })
    if (req.method === 'GET' && path === '/api/tags') {
      return json(res, 200, {
        models: [...models.keys()].map((name) => ({
          name,
          model: name,
          modified_at: new Date(0).toISOString(),
          size: 1,
          digest: 'sha256:0',
          details: { family: 'llama', format: 'gguf', parameter_size: '1B', quantization_level: 'Q4_0' },
        })),
      })
    }
    if (req.method === 'POST' && path === '/api/show') {
      const name = String(body?.model ?? body?.name ?? '')
      const state = models.get(name)
      if (!state) {
        record.outcome = 'not_found'
        return json(res, 404, { error: `model '${name}' not found` })
      }
      return json(res, 200, showResponse(state))
    }
    if (req.method === 'POST' && path === '/api/chat') return chat(body, record, res, fault, stream)
    record.outcome = 'not_found'
    notFound(res)
  }

  const chat = async (body: any, record: RecordedRequest, res: ServerResponse, fault: ServerFault | null, stream: boolean) => {
    const name = String(body?.model ?? '')
    const state = models.get(name)
    if (!state) {
      record.outcome = 'not_found'
      return json(res, 404, { error: `model '${name}' not found` })
    }
    const messages: { role: string; content: string }[] = Array.isArray(body?.messages) ? body.messages : []
    const role = roleOf(messages)
    record.role = role
    const queued = nextEntry(state, role, fault)
    if (!queued) {
      record.outcome = 'exhausted'
      return json(res, 400, { error: `ollama-test-server: no more ${role} turns for model '${name}' (used ${state.cursor[role]})` })
    }
    const started = Date.now()
    const entry = await base.prelude(queued, record, res)
    if (!entry) return
    if (entry.type === 'error') {
      switch (entry.error) {
        case 'rate_limited':
          return json(res, 429, { error: entry.message ?? 'too many requests' })
        case 'server_error':
          return json(res, 500, { error: entry.message ?? 'internal server error' })
        case 'model_not_found':
          return json(res, 404, { error: entry.message ?? `model '${name}' not found` })
        case 'unauthorized':
          return json(res, 401, { error: entry.message ?? 'unauthorized' })
      }
    }

    const answer = answerOf(entry, messages)
    const created_at = new Date().toISOString()
    const toolCalls = answer.toolCalls.map((c) => ({ function: { name: c.name, arguments: c.arguments } }))
    const finalOf = () => ({
      model: name,
      created_at,
      message: {
        role: 'assistant',
        content: '',
        ...(state.script.toolCallsInFinalChunk && toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
      },
      done: true,
      done_reason: 'stop',
      total_duration: (state.script.totalDurationMs ?? Date.now() - started) * 1e6,
      load_duration: 1_000,
      prompt_eval_count: answer.input,
      prompt_eval_duration: 1_000,
      eval_count: answer.output,
      eval_duration: 1_000,
    })

    if (!stream) {
      const final = finalOf()
      return json(res, 200, {
        ...final,
        message: { role: 'assistant', content: answer.text, ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}) },
      })
    }

    const lines: unknown[] = splitText(answer.text, MAX_TEXT_CHUNKS).map((piece) => ({
      model: name,
      created_at,
      message: { role: 'assistant', content: piece },
      done: false,
    }))
    if (!state.script.toolCallsInFinalChunk) {
      for (const call of toolCalls) lines.push({ model: name, created_at, message: { role: 'assistant', content: '', tool_calls: [call] }, done: false })
    }
    return base.stream(res, record, fault, NDJSON, lines, [finalOf])
  }

  const port = await base.start(handle, (res, err) => json(res, 500, { error: `ollama-test-server: ${err.message}` }))

  return {
    host: `http://127.0.0.1:${port}`,
    port,
    requests,
    chats: (model) => requests.filter((r) => r.path === '/api/chat' && (model === undefined || r.body?.model === model)),
    fault: base.fault,
    refuse: base.refuse,
    accept: base.accept,
    consumed: (model, role) => models.get(model)?.cursor[role] ?? 0,
    close: base.close,
  }
}

function showResponse({ script, scenario }: ModelState<ModelScript>) {
  const arch = script.architecture ?? 'llama'
  const contextLength = script.contextLength === undefined ? (scenario.contextLength ?? 40_960) : script.contextLength
  return {
    license: '',
    modelfile: '',
    parameters: '',
    template: '{{ .Prompt }}',
    details: { parent_model: '', format: 'gguf', family: arch, families: [arch], parameter_size: '1B', quantization_level: 'Q4_0' },
    model_info: {
      'general.architecture': arch,
      'general.parameter_count': 1_000_000_000,
      ...(contextLength === null ? {} : { [`${arch}.context_length`]: contextLength }),
      [`${arch}.embedding_length`]: 2048,
    },
    ...(script.capabilities === null ? {} : { capabilities: script.capabilities ?? ['completion', 'tools'] }),
    modified_at: new Date(0).toISOString(),
  }
}
