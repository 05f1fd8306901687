/**
 * `--inspect URL`: streams the inspection events of every loop actor (and its
 * session children) to a WebSocket inspector, sanitized on the way out: every
 * string of every event is redacted (the values of the engine's environment, keys,
 * tokens, URL credentials: services/inspect/sanitize.ts) before it is cut.
 *
 * The events are made by `@statelyai/inspect`'s `createInspector` (the same
 * conversion `createWebSocketInspector` uses), and the wire format is the same:
 * one JSON text frame per `@xstate.actor` / `@xstate.event` / `@xstate.snapshot`
 * event. So URL can be stately's local relay (`@statelyai/inspect/server`,
 * bridged to stately.ai/inspect) or our own viewer (services/inspect/viewer-server.ts).
 *
 * The socket is ours, not the package's `WebSocketAdapter`, because that one
 * keeps retrying every 5 s after `stop()` when the server was unreachable (the
 * process never exits), cannot flush the last events before exit, and drops the
 * actor registrations first when it buffers while the server is down.
 */
import { createInspector, type StatelyInspectionEvent } from '@statelyai/inspect'
import WebSocket from 'ws'
import type { InspectionEvent } from 'xstate'
import { createRedactor, defaultRedactor, sanitize, type Redactor, type SanitizeOptions } from './sanitize.ts'

export interface StatelyInspectOptions extends SanitizeOptions {
  /**
   * The environment whose (non-public) values are redacted wherever they occur in
   * the stream. Ignored when `redactor` is given. @default process.env, as it is when the inspector is created
   */
  env?: Readonly<Record<string, string | undefined>>
  /** Told (one line) when the inspector cannot be reached and when it is reached again. */
  onProblem?: (message: string) => void
  /** Events kept while the socket is not open (actor registrations are always kept). @default 1000 */
  maxBuffered?: number
  /** Wait between reconnection attempts, ms. @default 1000 */
  reconnectMs?: number
}

export interface StatelyInspect {
  /** Pass as `EngineOptions.inspect`. */
  readonly inspect: (event: InspectionEvent) => void
  /** The inspector's WebSocket URL. */
  readonly url: string
  /** Whether the socket is open. */
  connected(): boolean
  /** Sends what is still pending (for up to `timeoutMs`), then closes the socket and stops reconnecting. */
  close(timeoutMs?: number): Promise<void>
}

/** `ws://` or `wss://` URL of an inspector; `http(s)://` (the viewer's page address) is taken as its ws twin. */
export function inspectorUrl(url: string): string {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new Error(`inspect: '${url}' is not a URL (expected ws://host:port)`)
  }
  if (u.protocol === 'http:') u.protocol = 'ws:'
  else if (u.protocol === 'https:') u.protocol = 'wss:'
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
    throw new Error(`inspect: '${url}' is not a WebSocket URL (expected ws://host:port)`)
  }
  return u.toString()
}

/**
 * The event with its snapshot (context, input, output, error) and its XState
 * event sanitized; ids, names and the machine definition are only redacted (not cut).
 */
export function sanitizeInspectionEvent(event: StatelyInspectionEvent, options: SanitizeOptions = {}): StatelyInspectionEvent {
  const redactor = options.redactor ?? defaultRedactor()
  const out = { ...event } as StatelyInspectionEvent & Record<string, unknown>
  for (const [k, v] of Object.entries(out)) {
    if (k === 'snapshot' || k === 'event') {
      if (v !== undefined) out[k] = sanitize(v, { ...options, redactor })
    } else if (k === 'definition' && typeof v === 'string') out[k] = redactJson(v, redactor)
    else if (typeof v === 'string' && k !== 'type') out[k] = redactor.redact(v)
  }
  return out
}

/** A JSON text (the machine definition) redacted and still JSON: its strings one by one if redacting the text would break it. */
function redactJson(text: string, redactor: Redactor): string {
  const redacted = redactor.redact(text)
  if (redacted === text) return text
  try {
    JSON.parse(redacted)
    return redacted
  } catch {
    const each = (v: unknown): unknown =>
      typeof v === 'string'
        ? redactor.redact(v)
        : Array.isArray(v)
          ? v.map(each)
          : v !== null && typeof v === 'object'
            ? Object.fromEntries(Object.entries(v).map(([k, x]) => [redactor.redact(k), each(x)]))
            : v
    try {
      return JSON.stringify(each(JSON.parse(text)))
    } catch {
      return redacted
    }
  }
}

/** Connects to the inspector at `url` and returns the `inspect` callback for the engine. */
export function createStatelyInspect(url: string, options: StatelyInspectOptions = {}): StatelyInspect {
  const socket = new InspectorSocket(inspectorUrl(url), options)
  // compiled once: every event of every actor goes through it
  const redactor = options.redactor ?? createRedactor({ env: options.env ?? process.env })
  const sanitizeOptions: SanitizeOptions = { ...options, redactor }
  const inspector = createInspector(socket, {
    serialize: (event) => sanitizeInspectionEvent(event, sanitizeOptions),
  })
  inspector.start()
  return {
    url: socket.url,
    inspect: (event) => {
      // A streaming model reports activity per token: its snapshots (only the watchdog's deadline moves) are
      // not worth their serialization; the events themselves still go out.
      if (event.type === '@xstate.snapshot' && event.event.type === 'session.activity') return
      inspector.inspect.next?.(event)
    },
    connected: () => socket.isOpen(),
    close: (timeoutMs = 2000) => socket.close(timeoutMs),
  }
}

/** A reconnecting WebSocket that buffers while it is down (the `Adapter` of `createInspector`). */
class InspectorSocket {
  readonly url: string
  private ws: WebSocket | null = null
  private stopped = false
  private retry: NodeJS.Timeout | null = null
  private reported = false
  private readonly buffer: string[] = []
  private readonly actors: string[] = []
  private readonly maxBuffered: number
  private readonly reconnectMs: number
  private readonly onProblem: (message: string) => void

  constructor(url: string, options: StatelyInspectOptions) {
    this.url = url
    this.maxBuffered = options.maxBuffered ?? 1000
    this.reconnectMs = options.reconnectMs ?? 1000
    this.onProblem = options.onProblem ?? (() => {})
  }

  isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN
  }

  start(): void {
    if (this.stopped || this.ws) return
    const ws = new WebSocket(this.url)
    this.ws = ws
    ws.on('open', () => {
      if (this.reported) this.onProblem(`inspect: connected to ${this.url}`)
      this.reported = false
      // Registrations first, so that a late inspector still learns every actor.
      for (const text of this.actors.splice(0)) ws.send(text)
      for (const text of this.buffer.splice(0)) ws.send(text)
    })
    ws.on('error', (err) => {
      if (!this.reported && !this.stopped) {
        this.reported = true
        this.onProblem(`inspect: cannot reach ${this.url} (${err.message}); retrying, events are kept meanwhile`)
      }
    })
    ws.on('close', () => {
      this.ws = null
      if (this.stopped) return
      this.retry = setTimeout(() => {
        this.retry = null
        this.start()
      }, this.reconnectMs)
      this.retry.unref()
    })
    ws.on('message', () => {}) // a relay may echo other clients' events: not ours to handle
  }

  stop(): void {
    this.stopped = true
    if (this.retry) clearTimeout(this.retry)
    this.ws?.close()
  }

  send(event: StatelyInspectionEvent): void {
    const text = JSON.stringify(event)
    if (this.isOpen() && this.actors.length === 0 && this.buffer.length === 0) {
      this.ws!.send(text)
      return
    }
    if (event.type === '@xstate.actor') this.actors.push(text)
    else {
      this.buffer.push(text)
      if (this.buffer.length > this.maxBuffered) this.buffer.shift()
    }
  }

  async close(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    // createInspector converts each event on a later tick (setTimeout 0): let those land first.
    await sleep(5)
    while (Date.now() < deadline && this.ws !== null && !this.stopped) {
      const pending = this.actors.length + this.buffer.length
      if (this.isOpen() && pending === 0 && this.ws.bufferedAmount === 0) break
      await sleep(10)
    }
    this.stopped = true
    if (this.retry) clearTimeout(this.retry)
    const ws = this.ws
    if (ws === null) return
    if (ws.readyState === WebSocket.CONNECTING) {
      ws.terminate()
      return
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        ws.terminate()
        resolve()
      }, Math.max(50, deadline - Date.now()))
      ws.once('close', () => {
        clearTimeout(t)
        resolve()
      })
      ws.close()
    })
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
