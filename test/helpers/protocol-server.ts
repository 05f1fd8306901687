/**
 * The plumbing the protocol test servers (ollama-server.ts, openai-server.ts) share:
 * a `node:http` server on 127.0.0.1 whose sockets and timers are tracked, so
 * `close()` leaves nothing behind; the `refuse()` / `accept()` / `close()`
 * lifecycle; the server-fault bookkeeping (`fault()`, used up after `times`
 * requests); the per-model, per-role scenario queues; and the parts of an answer
 * both protocols play alike: a scenario entry's hang, delay and dropped
 * connections, a stream's faults, the usage estimate (characters / 4).
 *
 * What is a protocol's own stays in its file: endpoints, bodies, chunk formats,
 * which endpoints a fault's `on` names, the faults only it knows.
 */
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Role } from '../../adapters/model-provider.ts'
import { parseScenario, type Scenario, type ScenarioEntry, type ScenarioErrorCode } from '../../adapters/scenario.ts'

/** The faults as the shared code reads them; each server's fault type is a narrower union (its `status` bodies, its `on` endpoints). */
export type CommonFault =
  | { kind: 'reset' }
  | { kind: 'status'; status: number; on?: string }
  | { kind: 'hang'; on?: string }
  | { kind: 'cut' | 'end' | 'malformed' | 'stall'; afterChunks: number }
  | { kind: 'stream_error'; afterChunks: number; error: unknown }
  | { kind: 'slow'; delayMs: number }

/** The fields of a recorded request the shared code writes. */
export interface Recorded {
  outcome: string
  chunks: number
  closedEarly: boolean
}

/** A model's script and scenario; its next entry of `role` is `scenario[role][cursor[role]]`. */
export interface ModelState<S> {
  script: S
  scenario: Scenario
  cursor: Record<Role, number>
}

/** An entry that is answered (text or tool calls). */
export type AnswerEntry = Exclude<ScenarioEntry, { type: 'hang' | 'error' }>

/** An `error` entry answered with an HTTP status (not a dropped connection). */
export type HttpErrorEntry = Extract<ScenarioEntry, { type: 'error' }> & {
  error: Exclude<ScenarioErrorCode, 'ECONNREFUSED' | 'ECONNRESET' | 'ETIMEDOUT'>
}

/** How a protocol puts a stream on the wire. */
export interface StreamFormat {
  /** The headers of the 200. */
  headers(): OutgoingHttpHeaders
  /** One event (or line) as written. */
  frame(value: unknown): string
  /** What a `malformed` fault writes. */
  broken: string
  /** How long a `cut` fault waits before it destroys the socket. @default 0 */
  cutDelayMs?: number
}

export interface ProtocolServer<F extends CommonFault> {
  /** Serves with `handle` on a free port of 127.0.0.1; a handler that throws gets `internalError` (before headers) or a destroyed response. */
  start(handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>, internalError: (res: ServerResponse, err: Error) => void): Promise<number>
  /** Sets (or clears, with null) the server fault; `times` limits it to that many requests. */
  fault(fault: F | null, options?: { times?: number }): void
  /**
   * The active fault if it applies to this request (and counts it as used): `reset` always, `status` and `hang` when
   * their `on` (@default 'chat') is 'any' or `onPath(on)`, the others when the request is a `streamed` chat.
   */
  takeFault(onPath: (on: string) => boolean, streamed: boolean): F | null
  /**
   * Answers a `reset` (destroys the connection), `hang` (never answers) or `status` fault (with `status(fault)`),
   * setting the outcome; false for any other fault (or none).
   */
  answerFault(fault: F | null, req: IncomingMessage, record: Recorded, status: (fault: Extract<F, { kind: 'status' }>) => void): boolean
  /**
   * What both protocols do alike before answering `entry`: a `hang` never answers, `delayMs` waits, an `error` entry
   * sets the outcome and ECONNREFUSED / ECONNRESET / ETIMEDOUT drop the connection. The entry left to answer, or null
   * when the request is done with (also when the server closed or the client left during the wait).
   */
  prelude(entry: ScenarioEntry, record: Recorded, res: ServerResponse): Promise<AnswerEntry | HttpErrorEntry | null>
  /**
   * Streams `events` then `tail` (each called when written) in `format`, counting `record.chunks`. A stream fault
   * strikes after `afterChunks` events (at most all of `events`, so before the tail); `slow` waits before every one.
   */
  stream(res: ServerResponse, record: Recorded, fault: CommonFault | null, format: StreamFormat, events: readonly unknown[], tail: readonly (() => unknown)[]): Promise<void>
  /** Stops listening and drops every connection: clients get ECONNREFUSED until `accept()`. */
  refuse(): Promise<void>
  /** Listens again on the same port. */
  accept(): Promise<void>
  /** Clears every timer, destroys every socket and stops listening. */
  close(): Promise<void>
}

export function protocolServer<F extends CommonFault>(): ProtocolServer<F> {
  const server: Server = createServer()
  const sockets = new Set<Socket>()
  const timers = new Set<NodeJS.Timeout>()
  let current: { fault: F; left: number } | null = null
  let closed = false
  let port = 0

  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (ms <= 0 || closed) return resolve()
      const timer = setTimeout(() => {
        timers.delete(timer)
        resolve()
      }, ms)
      timers.add(timer)
    })
  const gone = (res: ServerResponse) => closed || res.destroyed

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

  return {
    async start(handle, internalError) {
      server.on('request', (req: IncomingMessage, res: ServerResponse) => {
        handle(req, res).catch((err: unknown) => {
          if (!res.headersSent) internalError(res, err as Error)
          else res.destroy()
        })
      })
      await listen(0)
      port = (server.address() as { port: number }).port
      return port
    },
    fault(fault, options = {}) {
      current = fault ? { fault, left: options.times ?? Infinity } : null
    },
    takeFault(onPath, streamed) {
      if (!current) return null
      const f: CommonFault = current.fault
      const on = f.kind === 'status' || f.kind === 'hang' ? (f.on ?? 'chat') : null
      const applies = f.kind === 'reset' || on === 'any' || (on === null ? streamed : onPath(on))
      if (!applies) return null
      const taken = current.fault
      if (--current.left <= 0) current = null
      return taken
    },
    answerFault(fault, req, record, status) {
      const f: CommonFault | null = fault
      if (f?.kind === 'reset') {
        record.outcome = 'fault:reset'
        req.socket.destroy()
        return true
      }
      if (f?.kind === 'hang') {
        record.outcome = 'fault:hang'
        return true
      }
      if (f?.kind === 'status') {
        record.outcome = `fault:status:${f.status}`
        status(fault as Extract<F, { kind: 'status' }>)
        return true
      }
      return false
    },
    async prelude(entry, record, res) {
      if (entry.type === 'hang') {
        record.outcome = 'hang'
        return null
      }
      await sleep(entry.delayMs ?? 0)
      if (gone(res)) return null
      if (entry.type !== 'error') return entry
      record.outcome = `error:${entry.error}`
      switch (entry.error) {
        case 'ECONNREFUSED':
        case 'ECONNRESET':
        case 'ETIMEDOUT':
          res.socket?.destroy()
          return null
        default:
          return entry as HttpErrorEntry
      }
    },
    async stream(res, record, fault, format, events, tail) {
      res.writeHead(200, format.headers())
      res.flushHeaders()
      const faultAt = fault && 'afterChunks' in fault ? Math.min(fault.afterChunks, events.length) : -1
      record.outcome = fault ? `fault:${fault.kind}` : 'ok'
      const total = events.length + tail.length
      for (let i = 0; i < total; i++) {
        if (i === faultAt && fault) {
          switch (fault.kind) {
            case 'cut':
              if (format.cutDelayMs) await sleep(format.cutDelayMs)
              res.socket?.destroy()
              return
            case 'end':
              res.end()
              return
            case 'stall':
              return
            case 'stream_error':
              res.end(format.frame({ error: fault.error }))
              return
            case 'malformed':
              res.write(format.broken)
              break
          }
        }
        if (fault?.kind === 'slow') await sleep(fault.delayMs)
        if (gone(res)) return
        res.write(format.frame(i < events.length ? events[i] : tail[i - events.length]!()))
        record.chunks++
      }
      res.end()
    },
    async refuse() {
      await stopListening()
      // Lets clients see their pooled connections close, so the next request connects anew (and is refused).
      await new Promise((resolve) => setTimeout(resolve, 20))
    },
    accept: () => listen(port),
    async close() {
      closed = true
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      await stopListening()
      for (const socket of sockets) socket.destroy()
    },
  }
}

/** Each model's state, its scenario parsed (when given as JSON) under the name `<label>:<model>`. */
export function loadModels<S extends { scenario?: Scenario | { coder?: unknown[]; auditor?: unknown[]; contextLength?: number } }>(
  models: Record<string, S>,
  label: string,
): Map<string, ModelState<S>> {
  const states = new Map<string, ModelState<S>>()
  for (const [name, s] of Object.entries(models)) {
    const raw = s.scenario ?? {}
    const scenario = 'source' in raw ? (raw as Scenario) : parseScenario(raw, `${label}:${name}`)
    states.set(name, { script: s, scenario, cursor: { coder: 0, auditor: 0 } })
  }
  return states
}

/** The next entry of `role`, or undefined when there is none left. */
export function nextEntry(state: ModelState<unknown>, role: Role, fault: CommonFault | null): ScenarioEntry | undefined {
  const used = state.cursor[role]
  const entry = state.scenario[role][used]
  // A failed answer does not use up the entry: the retry gets it again (a slow one is an answer).
  if (entry && (!fault || fault.kind === 'slow')) state.cursor[role] = used + 1
  return entry
}

/** Role by the system prompt (a message of one of `systemRoles`): "You are the auditor …" is the auditor's, anything else the coder's. */
export function roleOf(messages: readonly { role: string; content: unknown }[], systemRoles: readonly string[] = ['system']): Role {
  const system = messages.find((m) => systemRoles.includes(m.role))
  return /\byou are the auditor\b/i.test(textOf(system?.content)) ? 'auditor' : 'coder'
}

/** The text of a message's content: a string, or an array of `{ type: 'text', text }` parts. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content
  if (Array.isArray(content)) return content.map((p: { text?: unknown }) => (typeof p?.text === 'string' ? p.text : '')).join('')
  return ''
}

/** What `entry` answers, with its usage: the entry's `usage`, else characters / 4 (input: the messages; output: reasoning, text and calls). */
export function answerOf(entry: AnswerEntry, messages: readonly { content: unknown }[], reasoning = '') {
  const text = entry.text ?? ''
  const toolCalls = entry.type === 'tool_calls' ? entry.calls : []
  const inputChars = messages.reduce((n, m) => n + textOf(m.content).length, 0)
  const outputChars = reasoning.length + text.length + toolCalls.reduce((n, c) => n + JSON.stringify(c).length, 0)
  const input = entry.usage?.input ?? Math.max(1, Math.ceil(inputChars / 4))
  return { text, reasoning, toolCalls, input, output: entry.usage?.output ?? Math.max(1, Math.ceil(outputChars / 4)) }
}

/** Reads a request: its path (without the query) and its JSON body (null for none, or one that is not JSON). */
export async function readRequest(req: IncomingMessage): Promise<{ path: string; body: any }> {
  const path = (req.url ?? '/').split('?')[0]!
  const text = await readBody(req)
  let body: any = null
  try {
    body = text ? JSON.parse(text) : null
  } catch {}
  return { path, body }
}

/** Adds `record` to `requests`, marking it `closedEarly` if the client leaves before the response is complete. */
export function track<R extends Recorded>(requests: R[], record: R, res: ServerResponse): R {
  requests.push(record)
  res.on('close', () => {
    if (!res.writableFinished) record.closedEarly = true
  })
  return record
}

/** `value` as a JSON response (`headers` added to the Content-Type). */
export function json(res: ServerResponse, status: number, value: unknown, headers: OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', ...headers }).end(JSON.stringify(value))
}

/** The 404 of a path the server does not serve (as Go's net/http sends it). */
export function notFound(res: ServerResponse): void {
  res.writeHead(404, { 'Content-Type': 'text/plain' }).end('404 page not found')
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    req.on('data', (part: Buffer) => parts.push(part))
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')))
    req.on('error', reject)
  })
}
