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
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Role } from '../../adapters/model-provider.ts'
import { parseScenario, type Scenario, type ScenarioEntry } from '../../adapters/scenario.ts'
import { splitText } from '../../adapters/scripted-provider.ts'

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

interface ModelState {
  script: ModelScript
  scenario: Scenario
  cursor: Record<Role, number>
}

const MAX_TEXT_CHUNKS = 4

export async function startOllamaServer(script: OllamaServerScript): Promise<OllamaTestServer> {
  const models = new Map<string, ModelState>()
  for (const [name, s] of Object.entries(script.models)) {
    const raw = s.scenario ?? {}
    const scenario = 'source' in raw ? (raw as Scenario) : parseScenario(raw, `ollama-server:${name}`)
    models.set(name, { script: s, scenario, cursor: { coder: 0, auditor: 0 } })
  }
  const requests: RecordedRequest[] = []
  const sockets = new Set<Socket>()
  const timers = new Set<NodeJS.Timeout>()
  let current: { fault: ServerFault; left: number } | null = null
  let closed = false

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (ms <= 0 || closed) return resolve()
      const timer = setTimeout(() => {
        timers.delete(timer)
        resolve()
      }, ms)
      timers.add(timer)
    })

  /** The active fault if it applies to this request (and counts it as used). */
  const takeFault = (path: string, stream: boolean): ServerFault | null => {
    if (!current) return null
    const f = current.fault
    const applies =
      f.kind === 'reset' ||
      ((f.kind === 'status' || f.kind === 'hang') && ((f.on ?? 'chat') === 'any' || path === `/api/${f.on ?? 'chat'}`)) ||
      (f.kind !== 'status' && f.kind !== 'hang' && path === '/api/chat' && stream)
    if (!applies) return null
    if (--current.left <= 0) current = null
    return f
  }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!
    const text = await readBody(req)
    let body: any = null
    try {
      body = text ? JSON.parse(text) : null
    } catch {
      body = null
    }
    const record: RecordedRequest = { method: req.method ?? 'GET', path, body, outcome: 'ok', chunks: 0, closedEarly: false }
    requests.push(record)
    res.on('close', () => {
      if (!res.writableFinished) record.closedEarly = true
    })
    const stream = path === '/api/chat' && body?.stream !== false
    const fault = takeFault(path, stream)
    if (fault?.kind === 'reset') {
      record.outcome = 'fault:reset'
      req.socket.destroy()
      return
    }
    if (fault?.kind === 'hang') {
      record.outcome = 'fault:hang'
      return
    }
    if (fault?.kind === 'status') {
      record.outcome = `fault:status:${fault.status}`
      return json(res, fault.status, { error: fault.error ?? `test fault ${fault.status}` })
    }

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
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('404 page not found')
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
    const used = state.cursor[role]
    const entry = state.scenario[role][used]
    if (!entry) {
      record.outcome = 'exhausted'
      return json(res, 400, { error: `ollama-test-server: no more ${role} turns for model '${name}' (used ${used})` })
    }
    // A failed answer does not use up the entry: the retry gets it again (a slow one is an answer).
    if (!fault || fault.kind === 'slow') state.cursor[role] = used + 1
    const started = Date.now()

    if (entry.type === 'hang') {
      record.outcome = 'hang'
      return
    }
    await sleep(entry.delayMs ?? 0)
    if (closed || res.destroyed) return
    if (entry.type === 'error') {
      record.outcome = `error:${entry.error}`
      switch (entry.error) {
        case 'ECONNREFUSED':
        case 'ECONNRESET':
        case 'ETIMEDOUT':
          res.socket?.destroy()
          return
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
    res.writeHead(200, { 'Content-Type': 'application/x-ndjson' })
    res.flushHeaders()
    const faultAt = fault && 'afterChunks' in fault ? Math.min(fault.afterChunks, lines.length) : -1
    record.outcome = fault ? `fault:${fault.kind}` : 'ok'
    for (let i = 0; i <= lines.length; i++) {
      if (i === faultAt && fault) {
        switch (fault.kind) {
          case 'cut':
            res.socket?.destroy()
            return
          case 'end':
            res.end()
            return
          case 'stall':
            return
          case 'stream_error':
            res.end(`${JSON.stringify({ error: fault.error })}\n`)
            return
          case 'malformed':
            res.write('{"model": "broken", "message": {\n')
            break
        }
      }
      if (fault?.kind === 'slow') await sleep(fault.delayMs)
      if (closed || res.destroyed) return
      const line = i < lines.length ? lines[i] : finalOf()
      res.write(`${JSON.stringify(line)}\n`)
      record.chunks++
    }
    res.end()
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) json(res, 500, { error: `ollama-test-server: ${(err as Error).message}` })
      else res.destroy()
    })
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })

  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
  const stopListening = () =>
    new Promise<void>((resolve) => {
      if (!server.listening) return resolve()
      server.close(() => resolve())
      for (const socket of sockets) socket.destroy()
    })

  await listen(0)
  const port = (server.address() as { port: number }).port

  return {
    host: `http://127.0.0.1:${port}`,
    port,
    requests,
    chats: (model) => requests.filter((r) => r.path === '/api/chat' && (model === undefined || r.body?.model === model)),
    fault(fault, options = {}) {
      current = fault ? { fault, left: options.times ?? Infinity } : null
    },
    async refuse() {
      await stopListening()
      // Lets clients see their pooled connections close, so the next request connects anew (and is refused).
      await new Promise((resolve) => setTimeout(resolve, 20))
    },
    accept: () => listen(port),
    consumed: (model, role) => models.get(model)?.cursor[role] ?? 0,
    async close() {
      closed = true
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      await stopListening()
      for (const socket of sockets) socket.destroy()
    },
  }
}

function showResponse({ script, scenario }: ModelState) {
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

/** Role by the system prompt: "You are the auditor …" is the auditor's, anything else the coder's. */
function roleOf(messages: { role: string; content: string }[]): Role {
  const system = messages.find((m) => m.role === 'system')?.content ?? ''
  return /\byou are the auditor\b/i.test(system) ? 'auditor' : 'coder'
}

function answerOf(entry: Exclude<ScenarioEntry, { type: 'hang' | 'error' }>, messages: { content: string }[]) {
  const text = entry.text ?? ''
  const toolCalls = entry.type === 'tool_calls' ? entry.calls : []
  const inputChars = messages.reduce((n, m) => n + String(m.content ?? '').length, 0)
  const outputChars = text.length + toolCalls.reduce((n, c) => n + JSON.stringify(c).length, 0)
  return {
    text,
    toolCalls,
    input: entry.usage?.input ?? Math.max(1, Math.ceil(inputChars / 4)),
    output: entry.usage?.output ?? Math.max(1, Math.ceil(outputChars / 4)),
  }
}

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' }).end(JSON.stringify(value))
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    req.on('data', (part: Buffer) => parts.push(part))
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')))
    req.on('error', reject)
  })
}

