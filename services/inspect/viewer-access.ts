/**
 * Who may use `loopstate inspect` (services/inspect/viewer-server.ts): the rules
 * every HTTP request and every WebSocket upgrade (page and relay) pass, pure.
 *
 * - Exact origin. A request that carries `Origin` must come from the very origin
 *   the viewer serves, `http://<its Host header>` (scheme, host and port: another
 *   port of localhost is another origin). `Sec-Fetch-Site`, when present, must be
 *   `same-origin` or `none` (a user typing the address): that refuses the no-cors
 *   loads (`<script src>`, `<img>`) that send no Origin. A client that sends
 *   neither (an engine's `ws` client, curl) passes this rule.
 * - Loopback bind: the Host header must be a loopback name (127.x, localhost,
 *   [::1]) with the viewer's own port, against DNS rebinding.
 * - Token (a non-loopback bind, or one given explicitly): every request and
 *   WebSocket carries it as `?token=`, `Authorization: Bearer`, or the cookie the
 *   server sets when its page is loaded with a valid `?token=`. Cookies are shared
 *   by every port of a host and are sent with no-cors loads, which over plain
 *   http to a non-loopback address carry neither Origin nor Sec-Fetch-Site: so the
 *   cookie counts only on a request that shows it comes from the viewer's own
 *   page (an Origin or Sec-Fetch-Site, checked above, or a Referer of its origin;
 *   the page is served with `Referrer-Policy: same-origin`).
 * - Commands (`checkCommandAccess`: a POST that changes a loop) pass all of the
 *   above and more, on loopback too: an `Origin` is required and must be the
 *   viewer's; `Sec-Fetch-Site`, when present, must be `same-origin`; the request
 *   carries the viewer's command token (random per run, given to the page only
 *   inside the page itself) in `X-Loopstate-Token`; and its body is
 *   `Content-Type: application/json`. A form or a no-cors fetch of another site
 *   can set neither the header nor that type, and a cross-origin fetch that sets
 *   them is stopped at its preflight (no CORS is ever answered).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'

export interface AccessPolicy {
  /** The port the viewer listens on. */
  port: number
  /** The viewer listens on a loopback address: the Host must then be a loopback name with `port`. */
  loopback: boolean
  /** The token every request must carry, or null (none required). */
  token: string | null
}

export interface AccessRequest {
  /** The request target, e.g. `/api/loops?token=…`. */
  url: string
  headers: IncomingHttpHeaders
}

/** Where an accepted request carried the token (null: none is required). */
export type TokenSource = 'query' | 'header' | 'cookie' | null

export type Access = { ok: true; token: TokenSource } | { ok: false; status: 401 | 403; error: string }

const LOOPBACK = /^(127(?:\.\d{1,3}){3}|localhost|::1|\[::1\])$/i
/** A Host header: a name, an IPv4 address or a bracketed IPv6 address, and an optional port. */
const HOST_HEADER = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?$/i
/** Tokens are URL- and cookie-safe: base64url. 22 characters hold 128 bits. */
const TOKEN_FORMAT = /^[A-Za-z0-9_-]{22,256}$/

/** Whether `host` is a loopback address (127.0.0.0/8, localhost, ::1). */
export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host)
}

/**
 * Throws unless `host` is a loopback address or was chosen explicitly; returns
 * the note to print for an explicit non-loopback host (else null).
 */
export function checkBindHost(host: string, explicit: boolean): string | null {
  if (isLoopback(host)) return null
  if (!explicit) throw new Error(`inspect: refusing to listen on ${host} without --host; it is not a loopback address`)
  return (
    `inspect: listening on ${host}, not a loopback address: a token is required on every request and WebSocket; ` +
    `it is in the viewer's addresses (?token=…), which only whoever started it sees`
  )
}

/** A fresh random token: 256 bits, base64url. */
export function newToken(): string {
  return randomBytes(32).toString('base64url')
}

/** Throws unless `token` can be a viewer's token (base64url, at least 22 characters: 128 bits). */
export function checkToken(token: string): string {
  if (!TOKEN_FORMAT.test(token)) throw new Error('inspect: a token is 22 to 256 characters of A-Z a-z 0-9 _ - (128 bits or more)')
  return token
}

/** The name of the token cookie: per port, as cookies are shared by every port of a host. */
export function tokenCookieName(port: number): string {
  return `loopstate-inspect-${port}`
}

/** The `Set-Cookie` value that lets the page's own requests and its WebSocket carry the token. */
export function tokenCookie(policy: AccessPolicy): string {
  if (policy.token === null) throw new Error('inspect: no token to set')
  return `${tokenCookieName(policy.port)}=${policy.token}; HttpOnly; SameSite=Strict; Path=/`
}

/** `url` with `?token=` added. */
export function withToken(url: string, token: string | null): string {
  if (token === null) return url
  const u = new URL(url)
  u.searchParams.set('token', token)
  return u.toString()
}

/** Whether the request may be served (see the module's comment), and if not the status and message. */
export function checkAccess(policy: AccessPolicy, req: AccessRequest): Access {
  const host = first(req.headers.host)
  const parsed = host === undefined ? null : HOST_HEADER.exec(host)
  if (host === undefined || parsed === null) return refuse(403, `inspect: missing or malformed Host header${host ? ` ${host}` : ''}`)
  const self = `http://${host.toLowerCase()}`
  if (policy.loopback) {
    const port = parsed[2] === undefined ? 80 : Number(parsed[2])
    if (!isLoopback(parsed[1]!) || port !== policy.port) {
      return refuse(403, `inspect: Host ${host} is not this viewer (a loopback name with port ${policy.port}, e.g. 127.0.0.1:${policy.port})`)
    }
  }
  const origin = first(req.headers.origin)
  if (origin !== undefined && origin.toLowerCase() !== self) {
    return refuse(403, `inspect: origin ${origin} is not this viewer (${self})`)
  }
  const site = first(req.headers['sec-fetch-site'])
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    return refuse(403, `inspect: a ${site} request (Sec-Fetch-Site) is refused; only this viewer's own page (${self}) may use it`)
  }
  if (policy.token === null) return { ok: true, token: null }
  const given = presentedToken(req, policy.port)
  if (given === null) {
    return refuse(
      401,
      `inspect: this viewer requires its token (printed by loopstate inspect at start): open ${self}/?token=…, ` +
        'send Authorization: Bearer …, or stream with --inspect ws://…/?token=…',
    )
  }
  if (!sameToken(given.value, policy.token)) return refuse(401, `inspect: wrong token (in the ${given.from}); use the one loopstate inspect printed at start`)
  if (given.from === 'cookie' && origin === undefined && site === undefined && refererOrigin(req) !== self) {
    return refuse(401, `inspect: the token cookie counts only on requests of this viewer's own page (${self}); send ?token= or Authorization: Bearer`)
  }
  return { ok: true, token: given.from }
}

function refererOrigin(req: AccessRequest): string | null {
  const referer = first(req.headers.referer)
  if (referer === undefined) return null
  try {
    return new URL(referer).origin.toLowerCase()
  } catch {
    return null
  }
}

/** The token the request carries: the query's, else the Authorization header's, else the cookie's. */
function presentedToken(req: AccessRequest, port: number): { value: string; from: Exclude<TokenSource, null> } | null {
  const query = new URL(req.url, 'http://viewer').searchParams.get('token')
  if (query !== null) return { value: query, from: 'query' }
  const auth = first(req.headers.authorization)
  if (auth !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth)
    return { value: m?.[1] ?? '', from: 'header' }
  }
  const name = tokenCookieName(port)
  for (const part of (first(req.headers.cookie) ?? '').split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return { value: part.slice(eq + 1).trim(), from: 'cookie' }
  }
  return null
}

/** Constant-time comparison (of digests, so that lengths do not matter either). */
export function sameToken(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest()
  return timingSafeEqual(digest(given), digest(expected))
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v
}

function refuse(status: 401 | 403, error: string): Access {
  return { ok: false, status, error }
}

/** The header a command carries the command token in. */
export const COMMAND_TOKEN_HEADER = 'x-loopstate-token'

export type CommandAccess = { ok: true } | { ok: false; status: 401 | 403 | 415; error: string }

/**
 * Whether a command (a state-changing POST) may go on: `checkAccess`, then the
 * command's own rules (see the module's comment). `commandToken` is the viewer's
 * command token, required whatever `policy.token` is.
 */
export function checkCommandAccess(policy: AccessPolicy, commandToken: string, req: AccessRequest): CommandAccess {
  const base = checkAccess(policy, req)
  if (!base.ok) return base
  const self = `http://${first(req.headers.host)!.toLowerCase()}`
  const origin = first(req.headers.origin)
  if (origin === undefined) return { ok: false, status: 403, error: `inspect: a command must come from this viewer's own page (${self}): it has no Origin` }
  const site = first(req.headers['sec-fetch-site'])
  if (site !== undefined && site !== 'same-origin') {
    return { ok: false, status: 403, error: `inspect: a command must come from this viewer's own page (${self}), not a ${site} request (Sec-Fetch-Site)` }
  }
  const given = first(req.headers[COMMAND_TOKEN_HEADER])
  if (given === undefined || given === '') {
    return { ok: false, status: 403, error: "inspect: a command must carry the viewer's command token (X-Loopstate-Token), which only its page has" }
  }
  if (!sameToken(given, commandToken)) return { ok: false, status: 403, error: 'inspect: wrong command token (X-Loopstate-Token)' }
  const type = first(req.headers['content-type'])?.split(';')[0]!.trim().toLowerCase()
  if (type !== 'application/json') {
    return { ok: false, status: 415, error: `inspect: a command is a JSON body (Content-Type: application/json), not ${type ? type : 'an untyped one'}` }
  }
  return { ok: true }
}
