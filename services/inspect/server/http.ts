/**
 * The viewer's HTTP side: who may use it (services/inspect/viewer-access.ts, on
 * every request and WebSocket upgrade), the page's static files (the page's own
 * ES modules: no external requests, under a CSP of `'self'` only) and the JSON API:
 *
 *     GET /api/chart                     the statechart (services/inspect/chart.ts)
 *     GET /api/loops                     LoopSummary[]
 *     GET /api/loops/<name>              LoopPayload
 *     GET /api/loops/<name>/history      PageHistoryEntry[]
 *     GET /api/loops/<name>/history/<n>  the state and detail saved with entry n
 *     GET /vendor/elk.bundled.js         elkjs's browser bundle (the page's graph layout)
 *     GET /api/loops/<name>/transcript, /diff, /findings  the loop's panels (server/panels.ts)
 *     POST /api/loops/<name>/commands    pause, resume, cancel or say (server/commands.ts)
 */
import { readdir, readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { extname, join } from 'node:path'
import type { Duplex } from 'node:stream'
import { serializeChart } from '../chart.ts'
import { checkAccess, tokenCookie, type AccessPolicy } from '../viewer-access.ts'
import { handleCommand, withCommandToken, type CommandDeps } from './commands.ts'
import type { LoopsModel } from './model.ts'
import { panelAnswer, PANEL_ROUTE, type PanelDeps } from './panels.ts'

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
/** The static files served, by extension (anything else in the page's directory is not). */
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
}
const LOOP_ROUTE = /^\/api\/loops\/([a-z0-9][a-z0-9-]{0,79})(?:\/history(?:\/(\d+))?)?$/
const COMMAND_ROUTE = /^\/api\/loops\/([a-z0-9][a-z0-9-]{0,79})\/commands$/
/** elkjs's browser bundle: the page lays the statechart out with it (viewer/graph.js), from the viewer, no CDN. */
const ELK_ROUTE = '/vendor/elk.bundled.js'

export interface HttpDeps {
  /** Its `port` is set once the server listens (before any request arrives). */
  policy: AccessPolicy
  model: LoopsModel
  /** The page's directory (services/inspect/viewer/). */
  staticDir: string
  /** Starts following a loop's history (server/store-watcher.ts). */
  watchHistory(name: string): Promise<void>
  /** Takes a WebSocket upgrade that passed the access checks (server/sockets.ts). */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void
  /** The loop's transcript, diff and findings (server/panels.ts). */
  panels: Pick<PanelDeps, 'watcher'>
  /** The page's controls: its command token and the client commands go through. */
  commands: CommandDeps
}

/** The viewer's HTTP server (not yet listening). */
export async function createViewerHttp(deps: HttpDeps): Promise<Server> {
  const { policy, model } = deps
  const assets = await staticRoutes(deps.staticDir)
  const chartJson = JSON.stringify(serializeChart())
  const elkBundle = elkBundlePath()
  const access = (req: IncomingMessage) => checkAccess(policy, { url: req.url ?? '/', headers: req.headers })

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const verdict = access(req)
    if (!verdict.ok) {
      if (verdict.status === 401) res.setHeader('www-authenticate', 'Bearer')
      return send(res, verdict.status, { error: verdict.error })
    }
    const command = req.method === 'POST' ? COMMAND_ROUTE.exec(new URL(req.url ?? '/', 'http://viewer').pathname) : null
    if (command) {
      const answer = await handleCommand(deps.commands, command[1]!, req)
      return send(res, answer.status, answer.body)
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'GET only' })
    const path = new URL(req.url ?? '/', 'http://viewer').pathname
    const asset = assets.get(path)
    if (asset) {
      const file = await readFile(join(deps.staticDir, asset.file))
      // the page's command token reaches it only inside the page (server/commands.ts)
      const body = asset.file === 'index.html' ? withCommandToken(file.toString('utf8'), deps.commands.token) : file
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
    if (path === ELK_ROUTE && elkBundle !== null) {
      res.writeHead(200, {
        'content-type': TYPES['.js']!,
        'cache-control': 'no-store',
        'content-security-policy': CSP,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'same-origin',
      })
      res.end(await readFile(elkBundle))
      return
    }
    if (path === '/api/chart') return sendRaw(res, chartJson)
    if (path === '/api/loops') return send(res, model.summaries())
    const panel = PANEL_ROUTE.exec(path)
    if (panel) {
      const answer = await panelAnswer({ model, watcher: deps.panels.watcher, watchHistory: deps.watchHistory }, panel[1]!, panel[2]!, new URL(req.url ?? '/', 'http://viewer').searchParams)
      return send(res, answer.status, answer.body)
    }
    const m = LOOP_ROUTE.exec(path)
    if (m) {
      const name = m[1]!
      if (!model.has(name)) return send(res, 404, { error: `inspect: no loop named '${name}'` })
      await deps.watchHistory(name)
      if (path.endsWith('/history')) return send(res, model.pageHistory(name))
      if (m[2] !== undefined) {
        const at = model.snapshotAt(name, Number(m[2]))
        return at ? send(res, at) : send(res, 404, { error: `inspect: no snapshot at #${m[2]} of ${name}` })
      }
      return send(res, model.payload(name))
    }
    send(res, 404, { error: 'not found' })
  }

  const http = createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { error: err instanceof Error ? err.message : String(err) })
    })
  })
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const verdict = access(req)
    if (!verdict.ok) return refuseUpgrade(socket, verdict.status, verdict.error)
    deps.upgrade(req, socket, head)
  })
  return http
}

/** `/<file>` for each page file of a served type in `dir` (its modules, style, page), and `/` for the page. */
async function staticRoutes(dir: string): Promise<Map<string, { file: string; type: string }>> {
  const routes = new Map<string, { file: string; type: string }>()
  for (const file of (await readdir(dir)).sort()) {
    const type = TYPES[extname(file)]
    if (type !== undefined && /^[a-z0-9][a-z0-9-]*\.[a-z]+$/.test(file)) routes.set(`/${file}`, { file, type })
  }
  const index = routes.get('/index.html')
  if (index) routes.set('/', index)
  return routes
}

/**
 * Where elkjs's browser bundle is: resolved from this module, so it is found from the
 * sources, from the bundle in dist/ and from an installed package alike; null without elkjs.
 */
function elkBundlePath(): string | null {
  try {
    return createRequire(import.meta.url).resolve('elkjs/lib/elk.bundled.js')
  } catch {
    return null
  }
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
