/**
 * `loopstate inspect`: a local web viewer of the loops of a data dir. It serves a
 * static page (services/inspect/viewer/, no external requests) and JSON, and pushes
 * live changes to the page over a WebSocket. Changes come from two sources:
 *
 * - the store, polled every ~300 ms (mtime and size of data/loops/*.json and
 *   data/history/*.jsonl): loops run by any process, with or without --inspect,
 *   and loops that ended (post-mortem);
 * - inspection events: engines started with `--inspect ws://host:port` connect
 *   here as stately-compatible WebSocket inspector clients (the frames
 *   `createWebSocketInspector` sends). Any WebSocket path but `/ws/page` is that
 *   endpoint; like stately's relay (`@statelyai/inspect/server`), what one such
 *   client sends is relayed to the others.
 *
 * Read-only: nothing in the data dir is created, moved or written. Reachable
 * only by the user (services/inspect/viewer-access.ts): it listens on 127.0.0.1
 * and serves its own origin only (exact scheme, host and port); a non-loopback
 * `--host` also requires a random token on every request and WebSocket. Frames,
 * the relay's replay buffer and what a slow client may leave queued are capped.
 */
import { open, readdir, readFile, stat } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join, resolve } from 'node:path'
import type { Duplex } from 'node:stream'
import { WebSocket, WebSocketServer } from 'ws'
import { migrateRecord } from '../../adapters/migrations.ts'
import { SCHEMA_VERSION, type HistoryEntry, type LoopRecord } from '../../adapters/snapshot-store.ts'
import { emptyUsage } from '../../machines/loop.machine.ts'
import type { LoopContext } from '../../machines/loop.types.ts'
import type { ActorStatus } from '../../machines/persisted.ts'
import { JsonClaims } from '../../adapters/claims.ts'
import { packagePath } from '../paths.ts'
import { detailOf, stateString, viewOf, type LoopDetail, type LoopView } from '../views.ts'
import { serializeChart } from './chart.ts'
import { sanitize } from './sanitize.ts'
import { checkAccess, checkBindHost, checkToken, isLoopback, newToken, tokenCookie, withToken, type AccessPolicy } from './viewer-access.ts'

export { checkBindHost, isLoopback } from './viewer-access.ts'

export interface ViewerOptions {
  /** The store to show. @default 'data' */
  dataDir?: string
  /** 0 picks a free port. @default 4747 */
  port?: number
  /** Address to listen on. @default '127.0.0.1' */
  host?: string
  /**
   * Whether the user chose `host` (`--host`). A non-loopback address is refused
   * unless it was. @default true when `host` is given
   */
  explicitHost?: boolean
  /** One-line messages: warnings, store problems. @default console.error */
  log?: (line: string) => void
  /** How often the store is checked for changes, ms. @default 300 */
  pollMs?: number
  /**
   * The token every request must carry (base64url, 128 bits or more). Required on a
   * non-loopback `host`, where a random one is made when none is given; given
   * with a loopback host, it is required there too. @default a random one, or none on loopback
   */
  token?: string
}

export interface Viewer {
  /** The page, e.g. `http://127.0.0.1:4747/` (with `?token=…` when a token is required). */
  readonly url: string
  /** Where engines send inspection events (`--inspect`), e.g. `ws://127.0.0.1:4747/` (with `?token=…` when required). */
  readonly inspectUrl: string
  readonly port: number
  /** The token every request must carry, or null when none is required (a loopback bind). */
  readonly token: string | null
  /** What the viewer holds now (for tests and diagnostics). */
  stats(): ViewerStats
  close(): Promise<void>
}

export interface ViewerStats {
  /** Connected page sockets. */
  pages: number
  /** Connected relay (inspector) sockets. */
  relays: number
  /** Frames and bytes in the relay's replay buffer (what a relay client gets when it connects). */
  replayFrames: number
  replayBytes: number
}

/** The default port of `loopstate inspect`. */
export const DEFAULT_VIEWER_PORT = 4747

/** A loop as the page lists it. */
export interface LoopSummary extends LoopView {
  /** Where the viewer knows it from: the store, inspection events, or both. */
  sources: { store: boolean; inspector: boolean }
  /** The pid of the process that runs it (its lock), or null. */
  owner: number | null
  /** Inspection events arrived for it from a connected engine. */
  live: boolean
}

/** A loop in detail (sanitized: long texts are cut). */
export interface LoopPayload {
  summary: LoopSummary
  detail: LoopDetail
  /** The actors the inspector saw under the loop (its sessions), newest last. */
  children: { id: string; name: string; status: string }[]
}

/** A transition as the page lists it; the snapshot is fetched on demand. */
export type PageHistoryEntry = Omit<HistoryEntry, 'snapshot'> & { snapshot: boolean }

interface Snap {
  status?: ActorStatus
  value: unknown
  context: LoopContext
}

interface LiveLoop {
  sessionId: string
  record: LoopRecord
  lastState: string
  history: HistoryEntry[]
  children: Map<string, { name: string; status: string }>
  stream: StreamEvent[]
  connected: boolean
}

interface StreamEvent {
  at: number
  type: string
  target: string
  source: string | null
}

interface LoopEntry {
  name: string
  store: { record: LoopRecord; mtimeMs: number; size: number } | null
  owner: number | null
  live: LiveLoop | null
  history: { entries: HistoryEntry[]; offset: number; ino: number; rest: string }
}

const LOOP_FILE = /^([a-z0-9][a-z0-9-]{0,79})\.json$/
const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
}
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
const DETAIL_LIMITS = { maxString: 4000, maxItems: 1000 }
const STREAM_KEEP = 300
const LIVE_HISTORY_KEEP = 500
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

/** Starts the viewer; resolves once it listens. */
export async function startViewer(options: ViewerOptions = {}): Promise<Viewer> {
  const host = options.host ?? '127.0.0.1'
  const note = checkBindHost(host, options.explicitHost ?? options.host !== undefined)
  const loopback = isLoopback(host)
  const token = options.token !== undefined ? checkToken(options.token) : loopback ? null : newToken()
  const log = options.log ?? ((line: string) => console.error(line))
  if (note) log(note)
  const dataDir = resolve(options.dataDir ?? 'data')
  const pages = new Map<WebSocket, { selected: string | null }>()
  const relays = new Set<WebSocket>()
  const relayReplay: { text: string; bytes: number }[] = []
  let replayBytes = 0
  const model = new Model(dataDir, log)
  const staticDir = packagePath('services', 'inspect', 'viewer')
  const chartJson = JSON.stringify(serializeChart())

  const http = createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { error: err instanceof Error ? err.message : String(err) })
    })
  })

  let inspectUrl = ''
  // The port is known once the server listens (before any request arrives).
  const policy: AccessPolicy = { port: 0, loopback, token }
  const access = (req: IncomingMessage) => checkAccess(policy, { url: req.url ?? '/', headers: req.headers })

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const verdict = access(req)
    if (!verdict.ok) {
      if (verdict.status === 401) res.setHeader('www-authenticate', 'Bearer')
      return send(res, verdict.status, { error: verdict.error })
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'GET only' })
    const url = new URL(req.url ?? '/', 'http://viewer')
    const path = url.pathname
    const asset = STATIC[path]
    if (asset) {
      const body = await readFile(join(staticDir, asset.file))
      const headers: Record<string, string> = {
        'content-type': asset.type,
        'cache-control': 'no-store',
        'content-security-policy': CSP,
        'x-content-type-options': 'nosniff',
        // the page's own requests tell where they come from (see viewer-access.ts); no other site learns its address
        'referrer-policy': 'same-origin',
      }
      // The page loaded with ?token=: its own fetches and its /ws/page socket then carry the token as a cookie.
      if (verdict.token === 'query' && asset.file === 'index.html') headers['set-cookie'] = tokenCookie(policy)
      res.writeHead(200, headers)
      res.end(body)
      return
    }
    if (path === '/api/chart') return sendRaw(res, chartJson)
    if (path === '/api/loops') return send(res, model.summaries())
    const m = /^\/api\/loops\/([a-z0-9][a-z0-9-]{0,79})(?:\/history(?:\/(\d+))?)?$/.exec(path)
    if (m) {
      const name = m[1]!
      if (!model.has(name)) return send(res, 404, { error: `inspect: no loop named '${name}'` })
      await model.watchHistory(name)
      if (path.endsWith('/history')) return send(res, model.pageHistory(name))
      if (m[2] !== undefined) {
        const at = model.snapshotAt(name, Number(m[2]))
        return at ? send(res, at) : send(res, 404, { error: `inspect: no snapshot at #${m[2]} of ${name}` })
      }
      return send(res, model.payload(name))
    }
    send(res, 404, { error: 'not found' })
  }

  const pageWss = new WebSocketServer({ noServer: true, maxPayload: VIEWER_LIMITS.pageFrame })
  const relayWss = new WebSocketServer({ noServer: true, maxPayload: VIEWER_LIMITS.relayFrame })
  http.on('upgrade', (req, socket, head) => {
    const verdict = access(req)
    if (!verdict.ok) return refuseUpgrade(socket, verdict.status, verdict.error)
    const path = new URL(req.url ?? '/', 'http://viewer').pathname
    if (path === '/ws/page') pageWss.handleUpgrade(req, socket, head, onPage)
    else relayWss.handleUpgrade(req, socket, head, onRelay)
  })

  const serverInfo = () => JSON.stringify({ type: 'server', dataDir, inspectUrl, engines: relays.size })
  const tellPages = () => {
    const text = serverInfo()
    for (const ws of pages.keys()) deliver(ws, text)
  }

  function onPage(ws: WebSocket): void {
    const state = { selected: null as string | null }
    pages.set(ws, state)
    deliver(ws, serverInfo())
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
          void model.watchHistory(name).then(() => {
            if (state.selected === name) deliver(ws, JSON.stringify({ type: 'history', name, reset: true, entries: model.pageHistory(name) }))
          })
        }
      }
    })
    ws.on('close', () => pages.delete(ws))
    ws.on('error', () => pages.delete(ws))
  }

  function onRelay(ws: WebSocket): void {
    relays.add(ws)
    tellPages()
    for (const frame of relayReplay) deliver(ws, frame.text)
    const sessions = new Set<string>()
    ws.on('message', (data) => {
      const text = data.toString()
      const bytes = Buffer.byteLength(text)
      relayReplay.push({ text, bytes })
      replayBytes += bytes
      while (relayReplay.length > VIEWER_LIMITS.replayFrames || replayBytes > VIEWER_LIMITS.replayBytes) {
        replayBytes -= relayReplay.shift()!.bytes
      }
      for (const other of relays) if (other !== ws) deliver(other, text)
      try {
        model.inspection(JSON.parse(text) as Inspection, sessions)
      } catch {
        // not an inspection event: relayed, otherwise ignored
      }
    })
    const gone = () => {
      if (!relays.delete(ws)) return
      model.disconnected(sessions)
      tellPages()
    }
    ws.on('close', gone)
    ws.on('error', gone)
  }

  // Pushes: coalesced, at most every 100 ms.
  const push = setInterval(() => {
    const changes = model.takeChanges()
    if (changes === null) return
    const list = changes.list ? JSON.stringify({ type: 'loops', loops: model.summaries() }) : null
    for (const [ws, page] of pages) {
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
  }, 100)

  let polling = false
  const poller = setInterval(() => {
    if (polling) return
    polling = true
    void model
      .poll()
      .catch((err: unknown) => log(`inspect: reading ${dataDir}: ${err instanceof Error ? err.message : err}`))
      .finally(() => (polling = false))
  }, options.pollMs ?? 300)

  await model.poll()
  await new Promise<void>((resolveListen, reject) => {
    http.once('error', reject)
    http.listen(options.port ?? DEFAULT_VIEWER_PORT, host, () => {
      http.off('error', reject)
      resolveListen()
    })
  })
  const port = (http.address() as AddressInfo).port
  policy.port = port
  const shown = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
  const display = shown === '0.0.0.0' || shown === '[::]' ? '127.0.0.1' : shown
  inspectUrl = withToken(`ws://${display}:${port}/`, token)

  return {
    url: withToken(`http://${display}:${port}/`, token),
    inspectUrl,
    port,
    token,
    stats: () => ({ pages: pages.size, relays: relays.size, replayFrames: relayReplay.length, replayBytes }),
    close: async () => {
      clearInterval(push)
      clearInterval(poller)
      for (const ws of [...pages.keys(), ...relays]) ws.terminate()
      await new Promise<void>((r) => pageWss.close(() => r()))
      await new Promise<void>((r) => relayWss.close(() => r()))
      http.closeAllConnections()
      await new Promise<void>((r) => http.close(() => r()))
    },
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

/** Answers a refused upgrade with its status and JSON message, and closes the socket. */
function refuseUpgrade(socket: Duplex, status: 401 | 403, error: string): void {
  const body = JSON.stringify({ error })
  const reason = status === 401 ? 'Unauthorized' : 'Forbidden'
  const auth = status === 401 ? 'WWW-Authenticate: Bearer\r\n' : ''
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n${auth}` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  )
}

function send(res: ServerResponse, statusOrBody: number | unknown, body?: unknown): void {
  const status = typeof statusOrBody === 'number' && body !== undefined ? statusOrBody : 200
  sendRaw(res, JSON.stringify(body !== undefined ? body : statusOrBody), status)
}

function sendRaw(res: ServerResponse, text: string, status = 200): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' })
  res.end(text)
}

/** The frames of a stately WebSocket inspector (only the fields used here). */
interface Inspection {
  type: string
  sessionId: string
  parentId?: string
  sourceId?: string
  name?: string
  createdAt?: string
  snapshot?: { status?: string; value?: unknown; context?: unknown }
  event?: { type?: string }
}

interface Changes {
  list: boolean
  loops: Set<string>
  history: Map<string, { reset: boolean; entries: PageHistoryEntry[] }>
  stream: Map<string, StreamEvent[]>
}

/** What the viewer knows of each loop: the store's record and history, and what inspectors said. */
class Model {
  private readonly loops = new Map<string, LoopEntry>()
  /** Inspector actor session ids → loop name (loop actors) or parent loop session (children). */
  private readonly loopOf = new Map<string, string>()
  private readonly actorNames = new Map<string, string>()
  private changes: Changes = freshChanges()
  private polls = 0
  private readonly problems = new Set<string>()
  /** Loops whose history log is followed; the chain of reads of each. */
  private readonly watched = new Set<string>()
  private readonly historyReads = new Map<string, Promise<void>>()
  /** Who runs each loop: the live holder of its claim (read only: the viewer never claims). */
  private readonly claims: JsonClaims

  constructor(
    private readonly dataDir: string,
    private readonly log: (line: string) => void,
  ) {
    this.claims = new JsonClaims(dataDir)
  }

  has(name: string): boolean {
    return this.loops.has(name)
  }

  takeChanges(): Changes | null {
    const c = this.changes
    if (!c.list && c.loops.size === 0 && c.history.size === 0 && c.stream.size === 0) return null
    this.changes = freshChanges()
    return c
  }

  summaries(): LoopSummary[] {
    return [...this.loops.values()]
      .map((e) => this.summary(e))
      .filter((s): s is LoopSummary => s !== null)
      .sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.name < b.name ? -1 : 1))
  }

  payload(name: string): LoopPayload | null {
    const e = this.loops.get(name)
    if (!e) return null
    const summary = this.summary(e)
    if (summary === null) return null
    // The store has the full texts; the inspector's context is cut. Detail from the store when there is one.
    const record = e.store?.record ?? e.live!.record
    let detail: LoopDetail
    try {
      detail = { ...sanitize(detailOf(record), DETAIL_LIMITS), ...summary }
    } catch {
      // a context the viewer cannot read (an inspector's, cut too deep): the summary alone
      detail = {
        ...summary,
        workspace: '',
        models: { coder: [], auditor: [] },
        findings: [],
        sections: [],
        usage: { total: emptyUsage(), byModel: {}, byRole: { coder: emptyUsage(), auditor: emptyUsage() } },
        lastAudit: null,
        error: null,
        inbox: [],
      }
    }
    const children = e.live ? [...e.live.children].map(([id, c]) => ({ id, ...c })) : []
    return { summary, detail, children }
  }

  pageHistory(name: string): PageHistoryEntry[] {
    return this.historyOf(name).map(pageEntry)
  }

  stream(name: string): StreamEvent[] {
    return this.loops.get(name)?.live?.stream ?? []
  }

  /** The state and context saved with history entry `seq`. */
  snapshotAt(name: string, seq: number): { seq: number; state: string; summary: LoopView; detail: LoopDetail } | null {
    const entry = this.historyOf(name).find((h) => h.seq === seq)
    if (!entry?.snapshot) return null
    const snap = entry.snapshot as Snap
    const createdAt = this.loops.get(name)?.store?.record.createdAt ?? entry.at
    const record = syntheticRecord(name, snap, createdAt, entry.at)
    const view = viewOf(record, Date.parse(entry.at))
    return { seq, state: stateString(snap.value), summary: view, detail: { ...sanitize(detailOf(record), DETAIL_LIMITS), ...view } }
  }

  private historyOf(name: string): HistoryEntry[] {
    const e = this.loops.get(name)
    if (!e) return []
    return e.store || e.history.entries.length > 0 ? e.history.entries : (e.live?.history ?? [])
  }

  private summary(e: LoopEntry): LoopSummary | null {
    const store = e.store?.record ?? null
    const live = e.live?.record ?? null
    // The newer of the two (same clock: the engine stamps both).
    const record = store && live ? (Date.parse(live.updatedAt) >= Date.parse(store.updatedAt) ? live : store) : (store ?? live)
    if (!record) return null
    let view: LoopView
    try {
      view = viewOf(record)
    } catch {
      return null
    }
    if (store && record === live && store.status === 'queued' && live.status === 'running') view.status = 'running'
    return {
      ...view,
      sources: { store: store !== null, inspector: live !== null },
      owner: e.owner,
      live: e.live?.connected === true,
    }
  }

  private entry(name: string): LoopEntry {
    let e = this.loops.get(name)
    if (!e) {
      e = { name, store: null, owner: null, live: null, history: { entries: [], offset: 0, ino: 0, rest: '' } }
      this.loops.set(name, e)
      this.changes.list = true
    }
    return e
  }

  private touched(name: string): void {
    this.changes.list = true
    this.changes.loops.add(name)
  }

  // --- the store ---

  async poll(): Promise<void> {
    this.polls++
    const loopsDir = join(this.dataDir, 'loops')
    let files: string[] = []
    try {
      files = await readdir(loopsDir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    const names = new Set(files.flatMap((f) => LOOP_FILE.exec(f)?.[1] ?? []))
    const checkOwners = this.polls % 6 === 1
    await Promise.all(
      [...names].map(async (name) => {
        const path = join(loopsDir, `${name}.json`)
        const st = await stat(path).catch(() => null)
        if (!st) return
        const known = this.loops.get(name)?.store
        if (!known || known.mtimeMs !== st.mtimeMs || known.size !== st.size) {
          const record = await this.readRecord(path, name)
          if (record) {
            const e = this.entry(name)
            e.store = { record, mtimeMs: st.mtimeMs, size: st.size }
            e.owner = (await this.claims.holder(name))?.pid ?? null
            this.touched(name)
          }
        } else if (checkOwners && known.record.status !== 'completed') {
          const e = this.loops.get(name)!
          const owner = (await this.claims.holder(name))?.pid ?? null
          if (owner !== e.owner) {
            e.owner = owner
            this.touched(name)
          }
        }
        if (this.watched.has(name)) await this.pollHistory(name)
      }),
    )
    for (const [name, e] of this.loops) {
      if (e.store && !names.has(name)) {
        e.store = null
        e.history = { entries: [], offset: 0, ino: 0, rest: '' }
        if (!e.live) this.loops.delete(name)
        this.touched(name)
      }
    }
  }

  private async readRecord(path: string, name: string): Promise<LoopRecord | null> {
    let json: unknown
    try {
      json = JSON.parse(await readFile(path, 'utf8'))
    } catch (err) {
      this.problem(`inspect: ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'gone' : 'not valid JSON'}; skipped`)
      return null
    }
    const r = json as Partial<LoopRecord> | null
    if (typeof r !== 'object' || r === null || r.name !== name || !Number.isInteger(r.schemaVersion)) {
      this.problem(`inspect: ${path}: not a loop record; skipped`)
      return null
    }
    const migrated = migrateRecord(json as Record<string, unknown>)
    if ('problem' in migrated) {
      this.problem(`inspect: ${path}: ${migrated.problem}; skipped`)
      return null
    }
    return migrated.record
  }

  private problem(message: string): void {
    if (this.problems.has(message)) return
    this.problems.add(message)
    this.log(message)
  }

  /**
   * Starts following the loop's history log (read in full the first time). Only
   * the histories someone looked at are read: a data dir of many long-lived loops
   * costs a stat per loop and poll, not every log.
   */
  async watchHistory(name: string): Promise<void> {
    if (this.watched.has(name)) return this.historyReads.get(name)
    this.watched.add(name)
    return this.pollHistory(name)
  }

  /** Reads what was appended to the loop's history log since the last read (one read at a time per loop). */
  private pollHistory(name: string): Promise<void> {
    const previous = this.historyReads.get(name) ?? Promise.resolve()
    const next = previous.then(() => this.readHistoryTail(name)).catch((err: unknown) => {
      this.problem(`inspect: history of ${name}: ${err instanceof Error ? err.message : err}`)
    })
    this.historyReads.set(name, next)
    return next
  }

  private async readHistoryTail(name: string): Promise<void> {
    const path = join(this.dataDir, 'history', `${name}.jsonl`)
    const st = await stat(path).catch(() => null)
    const e = this.loops.get(name)
    if (!e || !st) return
    const h = e.history
    let reset = false
    if (st.ino !== h.ino || st.size < h.offset) {
      // compacted (rewritten by rename) or new: read it all again
      reset = true
      e.history = { entries: [], offset: 0, ino: st.ino, rest: '' }
    }
    const cur = e.history
    if (st.size === cur.offset) return
    const fh = await open(path, 'r')
    let text: string
    try {
      const buf = Buffer.alloc(st.size - cur.offset)
      const { bytesRead } = await fh.read(buf, 0, buf.length, cur.offset)
      text = buf.subarray(0, bytesRead).toString('utf8')
      cur.offset += bytesRead
    } finally {
      await fh.close()
    }
    const lines = (cur.rest + text).split('\n')
    cur.rest = lines.pop() ?? ''
    const fresh: HistoryEntry[] = []
    for (const line of lines) {
      if (line === '') continue
      try {
        fresh.push(slim(JSON.parse(line) as HistoryEntry))
      } catch {
        // a torn line
      }
    }
    cur.entries.push(...fresh)
    if (fresh.length === 0 && !reset) return
    this.queueHistory(name, reset, fresh)
  }

  private queueHistory(name: string, reset: boolean, fresh: HistoryEntry[]): void {
    const pending = this.changes.history.get(name)
    if (reset || !pending) {
      this.changes.history.set(name, {
        reset: reset || (pending?.reset ?? false),
        entries: reset ? this.historyOf(name).map(pageEntry) : fresh.map(pageEntry),
      })
    } else if (pending.reset) {
      pending.entries = this.historyOf(name).map(pageEntry)
    } else {
      pending.entries.push(...fresh.map(pageEntry))
    }
  }

  // --- inspection events ---

  /** One frame from an inspector client; `sessions` collects the loop actors that client reported. */
  inspection(msg: Inspection, sessions: Set<string>): void {
    if (typeof msg !== 'object' || msg === null || typeof msg.sessionId !== 'string') return
    const at = Number(msg.createdAt) || Date.now()
    if (msg.type === '@xstate.actor') {
      this.actorNames.set(msg.sessionId, msg.name ?? msg.sessionId)
      const context = msg.snapshot?.context
      if (isLoopContext(context)) {
        this.loopOf.set(msg.sessionId, context.name)
        sessions.add(msg.sessionId)
        this.liveSnapshot(context.name, msg.sessionId, msg.snapshot as Snap, at, 'xstate.init')
      } else if (msg.parentId !== undefined && this.loopName(msg.parentId) !== null) {
        const name = this.loopName(msg.parentId)!
        this.loopOf.set(msg.sessionId, `child:${msg.parentId}`)
        const live = this.loops.get(name)?.live
        live?.children.set(msg.sessionId, { name: msg.name ?? 'actor', status: msg.snapshot?.status ?? 'active' })
        this.streamEvent(name, { at, type: `spawned ${msg.name ?? 'actor'}`, target: msg.name ?? 'actor', source: null })
        this.changes.loops.add(name)
      }
      return
    }
    if (msg.type === '@xstate.snapshot') {
      const context = msg.snapshot?.context
      if (isLoopContext(context)) {
        if (!this.loopOf.has(msg.sessionId)) {
          // an inspector that connected after the actor registered
          this.loopOf.set(msg.sessionId, context.name)
          sessions.add(msg.sessionId)
        }
        this.liveSnapshot(context.name, msg.sessionId, msg.snapshot as Snap, at, msg.event?.type ?? '')
        return
      }
      const parent = this.parentLoop(msg.sessionId)
      const live = parent ? this.loops.get(parent)?.live : undefined
      const child = live?.children.get(msg.sessionId)
      if (child && msg.snapshot?.status) {
        child.status = msg.snapshot.status
        this.changes.loops.add(parent!)
      }
      return
    }
    if (msg.type === '@xstate.event') {
      const type = msg.event?.type
      if (typeof type !== 'string') return
      const direct = this.loopName(msg.sessionId)
      const name = direct ?? this.parentLoop(msg.sessionId)
      if (name === null) return
      const source = msg.sourceId ? (this.actorNames.get(msg.sourceId) ?? null) : null
      this.streamEvent(name, { at, type, target: direct !== null ? 'loop' : (this.actorNames.get(msg.sessionId) ?? 'child'), source })
    }
  }

  /** The client that reported these loop actors went away. */
  disconnected(sessions: Set<string>): void {
    for (const id of sessions) {
      const name = this.loopOf.get(id)
      const live = name ? this.loops.get(name)?.live : undefined
      if (live && live.sessionId === id) {
        live.connected = false
        this.touched(name!)
      }
    }
  }

  private loopName(sessionId: string): string | null {
    const v = this.loopOf.get(sessionId)
    return v === undefined || v.startsWith('child:') ? null : v
  }

  private parentLoop(sessionId: string): string | null {
    const v = this.loopOf.get(sessionId)
    return v?.startsWith('child:') ? this.loopName(v.slice('child:'.length)) : null
  }

  private liveSnapshot(name: string, sessionId: string, snap: Snap, at: number, event: string): void {
    const e = this.entry(name)
    const state = stateString(snap.value)
    const createdAt = e.store?.record.createdAt ?? new Date(snap.context.startedAt ?? at).toISOString()
    const record = syntheticRecord(name, snap, createdAt, new Date(at).toISOString())
    if (!e.live || e.live.sessionId !== sessionId) {
      e.live = { sessionId, record, lastState: '', history: [], children: new Map(), stream: [], connected: true }
    }
    const live = e.live
    live.record = record
    live.connected = true
    if (state !== live.lastState) {
      const from = live.lastState
      const entry: HistoryEntry = {
        seq: (live.history.at(-1)?.seq ?? 0) + 1,
        at: new Date(at).toISOString(),
        event,
        from,
        to: state,
        iteration: snap.context.iteration,
        phase: snap.context.phase,
      }
      if (phaseState(from) !== phaseState(state)) entry.snapshot = { status: snap.status ?? 'active', value: snap.value, context: snap.context }
      live.history.push(entry)
      if (live.history.length > LIVE_HISTORY_KEEP) live.history.shift()
      live.lastState = state
      if (!e.store && e.history.entries.length === 0) this.queueHistory(name, false, [entry])
    }
    this.touched(name)
  }

  private streamEvent(name: string, event: StreamEvent): void {
    const live = this.loops.get(name)?.live
    if (!live) return
    live.stream.push(event)
    if (live.stream.length > STREAM_KEEP) live.stream.shift()
    const pending = this.changes.stream.get(name) ?? []
    pending.push(event)
    this.changes.stream.set(name, pending)
  }
}

function freshChanges(): Changes {
  return { list: false, loops: new Set(), history: new Map(), stream: new Map() }
}

function isLoopContext(c: unknown): c is LoopContext {
  if (typeof c !== 'object' || c === null) return false
  const x = c as Partial<LoopContext>
  return typeof x.name === 'string' && typeof x.task === 'object' && Array.isArray(x.sectionStates) && typeof x.usage === 'object'
}

function syntheticRecord(name: string, snap: Snap, createdAt: string, updatedAt: string): LoopRecord {
  const c = snap.context
  return {
    schemaVersion: SCHEMA_VERSION,
    name,
    status: c.status,
    reason: c.reason,
    phase: c.phase,
    iteration: c.iteration,
    createdAt,
    updatedAt,
    snapshot: { status: snap.status ?? 'active', value: snap.value, context: c },
  }
}

/** History entries keep what the viewer shows: the journal (the session's transcript) is dropped. */
function slim(entry: HistoryEntry): HistoryEntry {
  const snap = entry.snapshot as Snap | undefined
  if (!snap?.context) return entry
  return { ...entry, snapshot: { status: snap.status ?? 'active', value: snap.value, context: { ...snap.context, journal: null } } }
}

function pageEntry(h: HistoryEntry): PageHistoryEntry {
  const { snapshot, ...rest } = h
  return { ...rest, snapshot: snapshot !== undefined }
}

/** `running.coding.watching` → `running.coding`. */
function phaseState(state: string): string {
  return state.split('.').slice(0, 2).join('.')
}
