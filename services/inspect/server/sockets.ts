/**
 * The viewer's WebSockets: the page's (`/ws/page`: the loops model, pushed as it
 * changes) and the relay (any other path: stately-compatible inspector clients,
 * i.e. engines started with `--inspect`; like `@statelyai/inspect/server`, what one
 * sends is relayed to the others). Frames, the relay's replay buffer and what a
 * slow client may leave queued are capped (`VIEWER_LIMITS`).
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocket, WebSocketServer } from 'ws'
import type { Inspection, InspectionEvents } from './inspection.ts'
import type { LoopsModel } from './model.ts'

/**
 * Size caps. The largest frame an engine sends is a snapshot of the loop actor (its
 * sanitized context) or the `@xstate.actor` registration (the machine definition
 * and a snapshot): measured at ~11 KB for the loop actor of a 2-section plan and
 * ~82 KB for the snapshots of a 100-section plan (sanitize keeps 100 items of an
 * array and 200 characters of a string), so 1 MB leaves more than 10x room.
 */
export const VIEWER_LIMITS = {
  /** A frame from a page (it sends only `select`). */
  pageFrame: 64 * 1024,
  /** A frame from a relay client; a larger one closes that client (1009). */
  relayFrame: 1024 * 1024,
  /** The relay's replay buffer: at most this many frames and bytes, the oldest dropped first. */
  replayFrames: 200,
  replayBytes: 8 * 1024 * 1024,
  /** A client whose outbound queue (`bufferedAmount`) would pass this is dropped (more than a full replay). */
  maxBuffered: 16 * 1024 * 1024,
} as const

export interface SocketsDeps {
  model: LoopsModel
  inspection: InspectionEvents
  /** Starts following a loop's history (server/store-watcher.ts). */
  watchHistory(name: string): Promise<void>
  /** What the page's header shows of the server. */
  info(): { dataDir: string; inspectUrl: string }
}

export class ViewerSockets {
  readonly #pages = new Map<WebSocket, { selected: string | null }>()
  readonly #relays = new Set<WebSocket>()
  readonly #replay: { text: string; bytes: number }[] = []
  #replayBytes = 0
  readonly #pageWss = new WebSocketServer({ noServer: true, maxPayload: VIEWER_LIMITS.pageFrame })
  readonly #relayWss = new WebSocketServer({ noServer: true, maxPayload: VIEWER_LIMITS.relayFrame })

  constructor(private readonly deps: SocketsDeps) {}

  /** Takes an upgrade that passed the access checks: `/ws/page` is a page, any other path a relay client. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = new URL(req.url ?? '/', 'http://viewer').pathname
    if (path === '/ws/page') this.#pageWss.handleUpgrade(req, socket, head, (ws) => this.#onPage(ws))
    else this.#relayWss.handleUpgrade(req, socket, head, (ws) => this.#onRelay(ws))
  }

  stats() {
    return { pages: this.#pages.size, relays: this.#relays.size, replayFrames: this.#replay.length, replayBytes: this.#replayBytes }
  }

  /** Pushes what changed in the model to the pages (each gets the list, and its selected loop's changes). */
  push(): void {
    const { model } = this.deps
    const changes = model.takeChanges()
    if (changes === null) return
    const list = changes.list ? JSON.stringify({ type: 'loops', loops: model.summaries() }) : null
    for (const [ws, page] of this.#pages) {
      if (ws.readyState !== WebSocket.OPEN) continue
      if (list) deliver(ws, list)
      const name = page.selected
      if (name === null || !model.has(name)) continue
      if (changes.loops.has(name)) deliver(ws, JSON.stringify({ type: 'loop', loop: model.payload(name) }))
      const h = changes.history.get(name)
      if (h) deliver(ws, JSON.stringify({ type: 'history', name, ...h }))
      const s = changes.stream.get(name)
      if (s) deliver(ws, JSON.stringify({ type: 'stream', name, reset: false, events: s }))
    }
  }

  async close(): Promise<void> {
    for (const ws of [...this.#pages.keys(), ...this.#relays]) ws.terminate()
    await new Promise<void>((r) => this.#pageWss.close(() => r()))
    await new Promise<void>((r) => this.#relayWss.close(() => r()))
  }

  #serverInfo(): string {
    return JSON.stringify({ type: 'server', ...this.deps.info(), engines: this.#relays.size })
  }

  #tellPages(): void {
    const text = this.#serverInfo()
    for (const ws of this.#pages.keys()) deliver(ws, text)
  }

  #onPage(ws: WebSocket): void {
    const { model } = this.deps
    const state = { selected: null as string | null }
    this.#pages.set(ws, state)
    deliver(ws, this.#serverInfo())
    deliver(ws, JSON.stringify({ type: 'loops', loops: model.summaries() }))
    ws.on('message', (data) => {
      let msg: { type?: unknown; name?: unknown }
      try {
        msg = JSON.parse(data.toString()) as typeof msg
      } catch {
        return
      }
      if (msg.type === 'select' && (typeof msg.name === 'string' || msg.name === null)) {
        state.selected = msg.name
        const name = msg.name
        if (name !== null && model.has(name)) {
          deliver(ws, JSON.stringify({ type: 'loop', loop: model.payload(name) }))
          deliver(ws, JSON.stringify({ type: 'stream', name, reset: true, events: model.stream(name) }))
          void this.deps.watchHistory(name).then(() => {
            if (state.selected === name) deliver(ws, JSON.stringify({ type: 'history', name, reset: true, entries: model.pageHistory(name) }))
          })
        }
      }
    })
    ws.on('close', () => this.#pages.delete(ws))
    ws.on('error', () => this.#pages.delete(ws))
  }

  #onRelay(ws: WebSocket): void {
    this.#relays.add(ws)
    this.#tellPages()
    for (const frame of this.#replay) deliver(ws, frame.text)
    const sessions = new Set<string>()
    ws.on('message', (data) => {
      const text = data.toString()
      const bytes = Buffer.byteLength(text)
      this.#replay.push({ text, bytes })
      this.#replayBytes += bytes
      while (this.#replay.length > VIEWER_LIMITS.replayFrames || this.#replayBytes > VIEWER_LIMITS.replayBytes) {
        this.#replayBytes -= this.#replay.shift()!.bytes
      }
      for (const other of this.#relays) if (other !== ws) deliver(other, text)
      try {
        this.deps.inspection.inspection(JSON.parse(text) as Inspection, sessions)
      } catch {
        // not an inspection event: relayed, otherwise ignored
      }
    })
    const gone = () => {
      if (!this.#relays.delete(ws)) return
      this.deps.inspection.disconnected(sessions)
      this.#tellPages()
    }
    ws.on('close', gone)
    ws.on('error', gone)
  }
}

/**
 * Sends `text` unless the socket is closed; a client that does not read what it is
 * sent (its queue would pass `VIEWER_LIMITS.maxBuffered`) is dropped instead.
 */
function deliver(ws: WebSocket, text: string): void {
  if (ws.readyState !== WebSocket.OPEN) return
  if (ws.bufferedAmount + Buffer.byteLength(text) > VIEWER_LIMITS.maxBuffered) {
    ws.terminate()
    return
  }
  ws.send(text)
}
