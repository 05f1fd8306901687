/** The access rules of `loopstate inspect` (services/inspect/viewer-access.ts), as a pure function. */
import { describe, expect, it } from 'vitest'
import {
  checkAccess,
  checkBindHost,
  checkToken,
  isLoopback,
  newToken,
  sameToken,
  tokenCookie,
  tokenCookieName,
  withToken,
  type AccessPolicy,
} from '../services/inspect/viewer-access.ts'

const PORT = 4747
const loopback: AccessPolicy = { port: PORT, loopback: true, token: null }
const TOKEN = newToken()
const tokened: AccessPolicy = { port: PORT, loopback: false, token: TOKEN }

const req = (headers: Record<string, string>, url = '/api/loops') => ({ url, headers })
const verdict = (policy: AccessPolicy, headers: Record<string, string>, url?: string) => checkAccess(policy, req(headers, url))

describe('viewer access: loopback bind', () => {
  it('answers only to a loopback Host name with its own port', () => {
    for (const host of [`127.0.0.1:${PORT}`, `localhost:${PORT}`, `LOCALHOST:${PORT}`, `[::1]:${PORT}`, `127.8.9.10:${PORT}`]) {
      expect(verdict(loopback, { host }), host).toEqual({ ok: true, token: null })
    }
    const refused: [string | undefined, string][] = [
      [`127.0.0.1:${PORT + 1}`, `inspect: Host 127.0.0.1:${PORT + 1} is not this viewer (a loopback name with port ${PORT}, e.g. 127.0.0.1:${PORT})`],
      ['127.0.0.1', `inspect: Host 127.0.0.1 is not this viewer (a loopback name with port ${PORT}, e.g. 127.0.0.1:${PORT})`],
      [`attacker.example:${PORT}`, `inspect: Host attacker.example:${PORT} is not this viewer (a loopback name with port ${PORT}, e.g. 127.0.0.1:${PORT})`],
      [`127.0.0.1.nip.io:${PORT}`, `inspect: Host 127.0.0.1.nip.io:${PORT} is not this viewer (a loopback name with port ${PORT}, e.g. 127.0.0.1:${PORT})`],
      [`192.0.2.2:${PORT}`, `inspect: Host 192.0.2.2:${PORT} is not this viewer (a loopback name with port ${PORT}, e.g. 127.0.0.1:${PORT})`],
      [`127.0.0.1:${PORT}@attacker.example`, `inspect: missing or malformed Host header 127.0.0.1:${PORT}@attacker.example`],
      [undefined, 'inspect: missing or malformed Host header'],
    ]
    for (const [host, error] of refused) {
      expect(verdict(loopback, host === undefined ? {} : { host }), host).toEqual({ ok: false, status: 403, error })
    }
  })

  it('takes an Origin only when it is exactly http://<Host> (scheme, host and port)', () => {
    const host = `127.0.0.1:${PORT}`
    expect(verdict(loopback, { host, origin: `http://127.0.0.1:${PORT}` }).ok).toBe(true)
    expect(verdict(loopback, { host: `localhost:${PORT}`, origin: `http://localhost:${PORT}` }).ok).toBe(true)
    for (const origin of [
      'http://127.0.0.1:5555',
      `http://127.0.0.1:${PORT + 1}`,
      `http://localhost:${PORT}`, // a loopback name, but another origin than the page's
      `https://127.0.0.1:${PORT}`,
      `ws://127.0.0.1:${PORT}`,
      `http://127.0.0.1:${PORT}/`,
      `http://attacker.example:${PORT}`,
      'http://127.0.0.1',
      'null',
    ]) {
      expect(verdict(loopback, { host, origin }), origin).toEqual({
        ok: false,
        status: 403,
        error: `inspect: origin ${origin} is not this viewer (http://127.0.0.1:${PORT})`,
      })
    }
  })

  it('refuses requests another site or port made (Sec-Fetch-Site), even without an Origin', () => {
    const host = `127.0.0.1:${PORT}`
    for (const site of ['same-origin', 'none']) expect(verdict(loopback, { host, 'sec-fetch-site': site }).ok, site).toBe(true)
    for (const site of ['same-site', 'cross-site', 'SAME-ORIGIN', 'bogus']) {
      expect(verdict(loopback, { host, 'sec-fetch-site': site }), site).toEqual({
        ok: false,
        status: 403,
        error: `inspect: a ${site} request (Sec-Fetch-Site) is refused; only this viewer's own page (http://127.0.0.1:${PORT}) may use it`,
      })
    }
  })

  it('lets a client that sends no Origin (an engine, curl) through, and ignores a token nobody asked for', () => {
    expect(verdict(loopback, { host: `127.0.0.1:${PORT}` }, '/?token=whatever')).toEqual({ ok: true, token: null })
    expect(verdict({ ...loopback, port: 9 }, { host: '127.0.0.1:9' })).toEqual({ ok: true, token: null })
    expect(verdict({ ...loopback, port: 80 }, { host: 'localhost' })).toEqual({ ok: true, token: null })
  })
})

describe('viewer access: token', () => {
  const host = `192.0.2.2:${PORT}`
  const cookie = `${tokenCookieName(PORT)}=${TOKEN}`

  it('refuses every request without the token (401) and names where it is', () => {
    for (const url of ['/', '/index.html', '/app.js', '/api/chart', '/api/loops', '/api/loops/a/history/3', '/ws/page', '/?token=']) {
      const v = verdict(tokened, { host }, url)
      expect(v.ok, url).toBe(false)
      if (v.ok) continue
      expect(v.status).toBe(401)
      expect(v.error).toMatch(url === '/?token=' ? /^inspect: wrong token \(in the query\)/ : /^inspect: this viewer requires its token/)
    }
    expect(verdict(tokened, { host })).toMatchObject({ error: expect.stringContaining(`open http://${host}/?token=…`) })
  })

  it('takes it as ?token=, Authorization: Bearer or its cookie, and nothing close to it', () => {
    expect(verdict(tokened, { host }, `/api/loops?token=${TOKEN}`)).toEqual({ ok: true, token: 'query' })
    expect(verdict(tokened, { host, authorization: `Bearer ${TOKEN}` })).toEqual({ ok: true, token: 'header' })
    expect(verdict(tokened, { host, authorization: `bearer  ${TOKEN}` })).toEqual({ ok: true, token: 'header' })
    // the page's own fetches carry a Referer of its origin; over https or to localhost, Sec-Fetch-Site too
    const page = { referer: `http://${host}/?token=${TOKEN}` }
    expect(verdict(tokened, { host, cookie, ...page })).toEqual({ ok: true, token: 'cookie' })
    expect(verdict(tokened, { host, cookie: `theme=dark; ${cookie}; x=1`, ...page })).toEqual({ ok: true, token: 'cookie' })
    expect(verdict(tokened, { host, cookie, 'sec-fetch-site': 'same-origin' })).toEqual({ ok: true, token: 'cookie' })
    expect(verdict(tokened, { host, cookie, origin: `http://${host}` })).toEqual({ ok: true, token: 'cookie' })
    const wrong: { url: string; headers: Record<string, string>; from: string }[] = [
      { url: `/?token=${TOKEN.slice(0, -1)}`, headers: {}, from: 'query' },
      { url: `/?token=${TOKEN}x`, headers: {}, from: 'query' },
      { url: `/?token=${TOKEN.toUpperCase() === TOKEN ? TOKEN.toLowerCase() : TOKEN.toUpperCase()}`, headers: {}, from: 'query' },
      { url: '/', headers: { authorization: `Basic ${TOKEN}` }, from: 'header' },
      { url: '/', headers: { authorization: TOKEN }, from: 'header' },
      { url: '/', headers: { authorization: `Bearer ${newToken()}` }, from: 'header' },
      { url: '/', headers: { cookie: `${tokenCookieName(PORT)}=${newToken()}` }, from: 'cookie' },
      // the query decides when it is there: a right cookie does not mend a wrong query
      { url: `/?token=${newToken()}`, headers: { cookie }, from: 'query' },
    ]
    for (const w of wrong) {
      expect(verdict(tokened, { host, ...w.headers }, w.url), JSON.stringify(w)).toEqual({
        ok: false,
        status: 401,
        error: `inspect: wrong token (in the ${w.from}); use the one loopstate inspect printed at start`,
      })
    }
    // the cookie of a viewer on another port of the same host is not this one's
    expect(verdict(tokened, { host, cookie: `${tokenCookieName(PORT + 1)}=${TOKEN}`, ...page })).toMatchObject({ ok: false, status: 401 })
  })

  it("takes the cookie only from the viewer's own page: a no-cors load of another port carries it with neither Origin nor Sec-Fetch-Site", () => {
    // what Chrome sends for <script src> from http://192.0.2.2:5555 (plain http to a non-loopback address: no Sec-Fetch-*)
    const error = `inspect: the token cookie counts only on requests of this viewer's own page (http://${host}); send ?token= or Authorization: Bearer`
    const loose: Record<string, string>[] = [
      { host, cookie },
      { host, cookie, referer: 'http://192.0.2.2:5555/' },
      { host, cookie, referer: `https://${host}/` },
      { host, cookie, referer: 'not a url' },
    ]
    for (const headers of loose) {
      expect(verdict(tokened, headers), JSON.stringify(headers)).toEqual({ ok: false, status: 401, error })
    }
    // the explicit forms need no such proof (whoever has them has the token)
    expect(verdict(tokened, { host, referer: 'http://192.0.2.2:5555/' }, `/?token=${TOKEN}`)).toEqual({ ok: true, token: 'query' })
    expect(verdict(tokened, { host, authorization: `Bearer ${TOKEN}` })).toEqual({ ok: true, token: 'header' })
  })

  it('still applies the exact-origin rule with a valid token (cookies are shared by every port of a host)', () => {
    expect(verdict(tokened, { host, cookie, origin: 'http://192.0.2.2:5555' })).toEqual({
      ok: false,
      status: 403,
      error: `inspect: origin http://192.0.2.2:5555 is not this viewer (http://${host})`,
    })
    expect(verdict(tokened, { host, cookie, 'sec-fetch-site': 'same-site' })).toMatchObject({ ok: false, status: 403 })
    // any Host name: behind the token (a proxy or another address of the machine may be in front)
    expect(verdict(tokened, { host: 'viewer.lan:8080', origin: 'http://viewer.lan:8080' }, `/?token=${TOKEN}`)).toEqual({ ok: true, token: 'query' })
    expect(verdict(tokened, {}, `/?token=${TOKEN}`)).toMatchObject({ ok: false, status: 403 })
  })

  it('also binds a loopback viewer that was given a token', () => {
    const both: AccessPolicy = { port: PORT, loopback: true, token: TOKEN }
    expect(verdict(both, { host: `127.0.0.1:${PORT}` })).toMatchObject({ ok: false, status: 401 })
    expect(verdict(both, { host: `127.0.0.1:${PORT}` }, `/?token=${TOKEN}`)).toEqual({ ok: true, token: 'query' })
    expect(verdict(both, { host: `attacker.example:${PORT}` }, `/?token=${TOKEN}`)).toMatchObject({ ok: false, status: 403 })
  })
})

describe('viewer access: tokens, cookie, URLs, bind hosts', () => {
  it('makes random base64url tokens of 256 bits and checks given ones', () => {
    const tokens = new Set(Array.from({ length: 50 }, newToken))
    expect(tokens.size).toBe(50)
    for (const t of tokens) {
      expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(Buffer.from(t, 'base64url')).toHaveLength(32)
    }
    expect(checkToken(TOKEN)).toBe(TOKEN)
    for (const bad of ['', 'short', 'a'.repeat(21), `${'a'.repeat(30)}!`, `${'a'.repeat(30)} b`]) {
      expect(() => checkToken(bad), bad).toThrow('inspect: a token is 22 to 256 characters')
    }
    expect(sameToken(TOKEN, TOKEN)).toBe(true)
    expect(sameToken(TOKEN, `${TOKEN}x`)).toBe(false)
    expect(sameToken('', TOKEN)).toBe(false)
  })

  it('sets an HttpOnly, SameSite=Strict cookie per port', () => {
    expect(tokenCookie(tokened)).toBe(`loopstate-inspect-${PORT}=${TOKEN}; HttpOnly; SameSite=Strict; Path=/`)
    expect(() => tokenCookie(loopback)).toThrow()
  })

  it('adds the token to addresses', () => {
    expect(withToken('http://127.0.0.1:4747/', null)).toBe('http://127.0.0.1:4747/')
    expect(withToken('http://127.0.0.1:4747/', TOKEN)).toBe(`http://127.0.0.1:4747/?token=${TOKEN}`)
    expect(withToken('ws://[::1]:4747/', TOKEN)).toBe(`ws://[::1]:4747/?token=${TOKEN}`)
  })

  it('stays on loopback unless the host was given, and then says a token is required', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) {
      expect(isLoopback(h), h).toBe(true)
      expect(checkBindHost(h, false)).toBeNull()
    }
    for (const h of ['0.0.0.0', '::', '192.0.2.2', 'example.com', '127.0.0.1.example.com']) expect(isLoopback(h), h).toBe(false)
    expect(() => checkBindHost('0.0.0.0', false)).toThrow('inspect: refusing to listen on 0.0.0.0 without --host; it is not a loopback address')
    expect(checkBindHost('0.0.0.0', true)).toBe(
      "inspect: listening on 0.0.0.0, not a loopback address: a token is required on every request and WebSocket; it is in the viewer's addresses (?token=…), which only whoever started it sees",
    )
  })
})
