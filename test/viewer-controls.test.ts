/**
 * The viewer's controls over HTTP (services/inspect/server/commands.ts): who may send a
 * command (services/inspect/viewer-access.ts `checkCommandAccess`), what a body may be,
 * and what reaches a loop that another process runs.
 */
import { readFile, mkdtemp, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LoopClient } from '../services/client.ts'
import { COMMAND_LIMITS, parseCommand, withCommandToken } from '../services/inspect/server/commands.ts'
import { checkCommandAccess, newToken, tokenCookieName, type AccessPolicy } from '../services/inspect/viewer-access.ts'
import { startViewer, type Viewer } from '../services/inspect/viewer-server.ts'
import { startOwner, waitRunning, waitStatus, type OwnerProcess } from './helpers/control-owner.ts'
import { waitFor } from './helpers/wait-for.ts'

interface Answer {
  status: number
  headers: Record<string, unknown>
  body: string
  json: Record<string, unknown> | null
}

/** One request to the viewer; `chunked` sends the body without a Content-Length. */
function call(
  viewer: Viewer,
  path: string,
  { method = 'POST', headers = {}, body, chunked = false }: { method?: string; headers?: Record<string, string>; body?: string; chunked?: boolean } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const all = { ...headers }
    if (body !== undefined && !chunked) all['content-length'] = String(Buffer.byteLength(body))
    const req = request({ host: '127.0.0.1', port: viewer.port, path, method, headers: all }, (res) => {
      let text = ''
      res.on('data', (c) => (text += c))
      res.on('end', () => {
        let json: Record<string, unknown> | null = null
        try {
          json = JSON.parse(text) as Record<string, unknown>
        } catch {
          // not JSON: the page
        }
        resolve({ status: res.statusCode!, headers: res.headers, body: text, json })
      })
    })
    req.on('error', reject)
    if (body !== undefined && chunked) {
      // in pieces: the limit holds for a body whose size is not declared
      for (let i = 0; i < body.length; i += 4096) req.write(body.slice(i, i + 4096))
      req.end()
    } else req.end(body)
  })
}

/** The command token the viewer put in its page. */
async function pageToken(viewer: Viewer, headers: Record<string, string> = {}): Promise<string> {
  const page = await call(viewer, '/', { method: 'GET', headers })
  expect(page.status).toBe(200)
  const token = /<meta name="loopstate-token" content="([^"]*)">/.exec(page.body)?.[1]
  expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
  return token!
}

const NAME = 'ctl-loop'

describe('viewer controls: a loop another process runs', { timeout: 90_000 }, () => {
  let dir: string
  let data: string
  let viewer: Viewer | null = null
  let owner: OwnerProcess | null = null
  let client: LoopClient
  let token: string
  let logs: string[]

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loopstate-controls-'))
    data = join(dir, 'data')
    logs = []
    owner = await startOwner(dir, data, NAME)
    client = new LoopClient({ dataDir: data })
    await waitRunning(client, NAME, owner)
    viewer = await startViewer({ dataDir: data, port: 0, pollMs: 50, log: (l) => logs.push(l) })
    token = await pageToken(viewer)
  })
  afterEach(async () => {
    await owner?.kill()
    owner = null
    await viewer?.close()
    viewer = null
    await rm(dir, { recursive: true, force: true })
  })

  const good = (): Record<string, string> => ({
    origin: `http://127.0.0.1:${viewer!.port}`,
    'sec-fetch-site': 'same-origin',
    'content-type': 'application/json',
    'x-loopstate-token': token,
  })
  const command = (body: unknown, headers: Record<string, string> = good(), path = `/api/loops/${NAME}/commands`) =>
    call(viewer!, path, { headers, body: typeof body === 'string' ? body : JSON.stringify(body) })
  const without = (name: string): Record<string, string> => Object.fromEntries(Object.entries(good()).filter(([k]) => k !== name))

  it('refuses every request that is not a valid command from its own page, and the loop is untouched', async () => {
    const port = viewer!.port
    const self = `http://127.0.0.1:${port}`
    const cases: { what: string; headers?: Record<string, string>; body?: unknown; path?: string; status: number; error: RegExp | string }[] = [
      // the command token
      { what: 'no token', headers: without('x-loopstate-token'), status: 403, error: "inspect: a command must carry the viewer's command token (X-Loopstate-Token), which only its page has" },
      { what: 'empty token', headers: { ...good(), 'x-loopstate-token': '' }, status: 403, error: /must carry the viewer's command token/ },
      { what: 'wrong token', headers: { ...good(), 'x-loopstate-token': newToken() }, status: 403, error: 'inspect: wrong command token (X-Loopstate-Token)' },
      { what: 'token a character short', headers: { ...good(), 'x-loopstate-token': token.slice(0, -1) }, status: 403, error: /wrong command token/ },
      { what: 'token as a bearer', headers: { ...without('x-loopstate-token'), authorization: `Bearer ${token}` }, status: 403, error: /must carry/ },
      { what: 'token in the query', headers: without('x-loopstate-token'), path: `/api/loops/${NAME}/commands?token=${token}`, status: 403, error: /must carry/ },
      // the origin
      { what: 'another port', headers: { ...good(), origin: `http://127.0.0.1:${port + 1}` }, status: 403, error: `inspect: origin http://127.0.0.1:${port + 1} is not this viewer (${self})` },
      { what: 'another loopback name', headers: { ...good(), origin: `http://localhost:${port}` }, status: 403, error: /is not this viewer/ },
      { what: 'a null origin', headers: { ...good(), origin: 'null' }, status: 403, error: /origin null is not this viewer/ },
      { what: 'no Origin', headers: without('origin'), status: 403, error: `inspect: a command must come from this viewer's own page (${self}): it has no Origin` },
      { what: 'no Origin, no Sec-Fetch-Site', headers: Object.fromEntries(Object.entries(without('origin')).filter(([k]) => k !== 'sec-fetch-site')), status: 403, error: /it has no Origin/ },
      { what: 'cross-site', headers: { ...good(), 'sec-fetch-site': 'cross-site' }, status: 403, error: /a cross-site request \(Sec-Fetch-Site\) is refused/ },
      { what: 'same-site', headers: { ...good(), 'sec-fetch-site': 'same-site' }, status: 403, error: /a same-site request/ },
      { what: 'typed in (none)', headers: { ...good(), 'sec-fetch-site': 'none' }, status: 403, error: `inspect: a command must come from this viewer's own page (${self}), not a none request (Sec-Fetch-Site)` },
      { what: 'another Host', headers: { ...good(), host: `attacker.example:${port}` }, status: 403, error: /Host attacker.example/ },
      // the content type: what a form or a no-cors fetch of another site can send is refused
      { what: 'text/plain', headers: { ...good(), 'content-type': 'text/plain' }, status: 415, error: 'inspect: a command is a JSON body (Content-Type: application/json), not text/plain' },
      { what: 'form', headers: { ...good(), 'content-type': 'application/x-www-form-urlencoded' }, status: 415, error: /not application\/x-www-form-urlencoded/ },
      { what: 'multipart', headers: { ...good(), 'content-type': 'multipart/form-data; boundary=x' }, status: 415, error: /not multipart\/form-data/ },
      { what: 'no type', headers: without('content-type'), status: 415, error: /not an untyped one/ },
      // the body
      { what: 'oversized', body: { type: 'say', text: 'x'.repeat(COMMAND_LIMITS.bodyBytes) }, status: 413, error: `inspect: a command body is at most ${COMMAND_LIMITS.bodyBytes} bytes` },
      { what: 'not JSON', body: 'pause', status: 400, error: /^inspect: a command is JSON/ },
      { what: 'an array', body: ['pause'], status: 400, error: 'inspect: a command is a JSON object {type, text?}' },
      { what: 'unknown command', body: { type: 'delete' }, status: 400, error: 'inspect: unknown command "delete": pause, resume, cancel or say' },
      { what: 'an event type', body: { type: 'loop.pause' }, status: 400, error: /unknown command "loop.pause"/ },
      { what: 'no type', body: {}, status: 400, error: /unknown command undefined/ },
      { what: 'an extra field', body: { type: 'pause', force: true }, status: 400, error: 'inspect: a command has no field "force"' },
      { what: 'text on pause', body: { type: 'pause', text: 'now' }, status: 400, error: 'inspect: pause takes no text' },
      { what: 'empty say', body: { type: 'say', text: '' }, status: 400, error: 'inspect: say: the message is empty' },
      { what: 'blank say', body: { type: 'say', text: ' \n\t ' }, status: 400, error: 'inspect: say: the message is empty' },
      { what: 'say without text', body: { type: 'say' }, status: 400, error: 'inspect: say: the text is missing' },
      { what: 'say of a number', body: { type: 'say', text: 42 }, status: 400, error: 'inspect: say: the text is missing' },
      { what: 'say too long', body: { type: 'say', text: 'y'.repeat(COMMAND_LIMITS.sayChars + 1) }, status: 400, error: `inspect: say: the message is ${COMMAND_LIMITS.sayChars + 1} characters, over ${COMMAND_LIMITS.sayChars}` },
      // the loop
      { what: 'no such loop', path: '/api/loops/no-such-loop/commands', body: { type: 'pause' }, status: 404, error: "cannot pause: no loop named 'no-such-loop'" },
    ]
    for (const c of cases) {
      const answer = await command(c.body ?? { type: 'pause' }, c.headers ?? good(), c.path)
      expect(answer.status, c.what).toBe(c.status)
      expect(answer.headers['content-type'], c.what).toBe('application/json; charset=utf-8')
      expect(answer.headers['access-control-allow-origin'], c.what).toBeUndefined()
      // refused by the viewer's general rules ({ error }) or by the command's ({ ok: false, code, error })
      expect(answer.json?.ok ?? false, c.what).toBe(false)
      if (typeof c.error === 'string') expect(answer.json?.error, c.what).toBe(c.error)
      else expect(answer.json?.error, c.what).toMatch(c.error)
    }

    // a body over the limit that does not declare its size
    const chunked = await call(viewer!, `/api/loops/${NAME}/commands`, {
      headers: good(),
      body: JSON.stringify({ type: 'say', text: 'z'.repeat(3 * COMMAND_LIMITS.bodyBytes) }),
      chunked: true,
    })
    expect(chunked.status).toBe(413)
    // a cross-origin fetch's preflight gets no CORS answer; other methods and GET are as they were
    expect((await call(viewer!, `/api/loops/${NAME}/commands`, { method: 'OPTIONS', headers: { origin: self } })).status).toBe(405)
    expect((await call(viewer!, `/api/loops/${NAME}/commands`, { method: 'PUT', headers: good(), body: '{"type":"pause"}' })).status).toBe(405)
    expect((await call(viewer!, `/api/loops/${NAME}`, { headers: good(), body: '{"type":"pause"}' })).json).toEqual({ error: 'GET only' })
    expect((await call(viewer!, `/api/loops/${NAME}/commands`, { method: 'GET' })).status).toBe(404)

    // untouched: still running in its owner, no message, nothing left in the inbox
    const record = await client.record(NAME)
    expect(record?.status).toBe('running')
    expect((await client.get(NAME))?.inbox).toEqual([])
    expect(await client.store.inbox.waiting()).toEqual([])
    expect(owner!.child.exitCode).toBeNull()
    expect(logs.filter((l) => l.includes(`of loop ${NAME}`))).toEqual([])
  })

  it('pause, say, resume and cancel reach the loop in its owner process, and are answered with what became of them', async () => {
    const pid = owner!.child.pid
    const pause = await command({ type: 'pause' })
    expect(pause.status).toBe(200)
    expect(pause.json).toEqual({ ok: true, result: 'owner', message: `loop ${NAME} paused`, status: 'paused' })
    expect((await client.record(NAME))?.status).toBe('paused')
    expect(await client.owner(NAME)).toMatchObject({ pid })

    expect((await command({ type: 'pause' })).json).toEqual({ ok: true, result: 'unchanged', message: `loop ${NAME} is already paused`, status: 'paused' })

    const say = await command({ type: 'say', text: '  also write a test  ' })
    expect(say.status).toBe(200)
    expect(say.json).toMatchObject({ ok: true, result: 'owner', message: `message delivered to loop ${NAME} (process ${pid}): its next prompt includes it` })
    await waitFor(async () => (await client.get(NAME))?.inbox.includes('also write a test'), 'the message in the inbox')

    const resume = await command({ type: 'resume' })
    expect(resume.json).toEqual({ ok: true, result: 'owner', message: `loop ${NAME} running`, status: 'running' })
    expect((await client.record(NAME))?.status).toBe('running')

    const again = await command({ type: 'resume' })
    expect(again.status).toBe(409)
    expect(again.json).toEqual({
      ok: false,
      code: 'not_paused',
      error: `cannot resume: loop ${NAME} is not paused (running in process ${pid})`,
    })

    const cancel = await command({ type: 'cancel' })
    expect(cancel.json).toMatchObject({ ok: true, result: 'owner', status: 'cancelled' })
    expect(cancel.json?.message).toMatch(new RegExp(`^loop ${NAME} cancelled`))
    expect((await owner!.exited).output).toContain(`${NAME} cancelled`)

    const late = await command({ type: 'pause' })
    expect(late.status).toBe(409)
    expect(late.json).toEqual({ ok: false, code: 'ended', error: `cannot pause: loop ${NAME} already ended (cancelled)` })
    // each command taken is logged once, never the token
    expect(logs.filter((l) => l.includes(`of loop ${NAME}`))).toHaveLength(7)
    expect(logs.join('\n')).not.toContain(token)
  })

  it('says how to resume a loop no process runs instead of running it; say and cancel apply to its record', async () => {
    expect((await command({ type: 'pause' })).json).toMatchObject({ ok: true, status: 'paused' })
    await owner!.kill()
    await waitFor(async () => (await client.owner(NAME)) === null, 'no owner')

    const resume = await command({ type: 'resume' })
    expect(resume.status).toBe(409)
    const line = `loopstate resume ${NAME} --data ${data}`
    expect(resume.json).toEqual({
      ok: false,
      code: 'unowned',
      error: `cannot resume here: no process runs loop ${NAME} (paused) and the viewer runs no loops; resume it with: ${line}`,
      command: line,
    })
    expect((await client.record(NAME))?.status).toBe('paused')
    expect(await client.owner(NAME)).toBeNull()

    const say = await command({ type: 'say', text: 'after the restart' })
    expect(say.json).toEqual({
      ok: true,
      result: 'store',
      message: `message queued for loop ${NAME} (no process runs it; paused): its next prompt includes it`,
      status: 'paused',
    })
    expect((await client.get(NAME))?.inbox).toEqual(['after the restart'])
    const cancel = await command({ type: 'cancel' })
    expect(cancel.json).toMatchObject({ ok: true, result: 'store', status: 'cancelled' })
    await waitStatus(client, NAME, 'cancelled')
  })
})

describe('viewer controls: the command token', { timeout: 30_000 }, () => {
  let dir: string
  const viewers: Viewer[] = []
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loopstate-controls-token-'))
  })
  afterEach(async () => {
    for (const v of viewers.splice(0)) await v.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('is random per run and reaches the page only inside the page', async () => {
    const logs: string[] = []
    const a = await startViewer({ dataDir: join(dir, 'data'), port: 0, log: (l) => logs.push(l) })
    const b = await startViewer({ dataDir: join(dir, 'data'), port: 0, log: (l) => logs.push(l) })
    viewers.push(a, b)
    const ta = await pageToken(a)
    expect(await pageToken(b)).not.toBe(ta)
    expect(await pageToken(a)).toBe(ta) // the same for the run
    for (const shown of [a.url, a.inspectUrl, logs.join('\n')]) expect(shown).not.toContain(ta)
    for (const path of ['/app.js', '/controls.js', '/style.css', '/api/loops', '/api/chart']) {
      expect((await call(a, path, { method: 'GET' })).body, path).not.toContain(ta)
    }
    const page = await call(a, '/', { method: 'GET' })
    expect(page.headers['cache-control']).toBe('no-store')
    // refused pages do not carry it
    const refused = await call(a, '/', { method: 'GET', headers: { origin: 'http://127.0.0.1:1' } })
    expect(refused.status).toBe(403)
    expect(refused.body).not.toContain(ta)
    // the file on disk holds only the empty placeholder
    const html = await readFile(join('services', 'inspect', 'viewer', 'index.html'), 'utf8')
    expect(html).toContain('<meta name="loopstate-token" content="">')
    expect(withCommandToken(html, ta)).toContain(`<meta name="loopstate-token" content="${ta}">`)
    expect(withCommandToken('<html><head></head></html>', ta)).toBe(`<html><head><meta name="loopstate-token" content="${ta}">\n</head></html>`)
  })

  it('goes with the viewer token of a viewer that has one: a command needs both', async () => {
    const viewerToken = newToken()
    const v = await startViewer({ dataDir: join(dir, 'data'), port: 0, token: viewerToken, log: () => {} })
    viewers.push(v)
    const token = await pageToken(v, { authorization: `Bearer ${viewerToken}` })
    const headers = { origin: `http://127.0.0.1:${v.port}`, 'content-type': 'application/json', 'x-loopstate-token': token }
    const body = '{"type":"pause"}'
    const noViewerToken = await call(v, '/api/loops/x/commands', { headers, body })
    expect(noViewerToken.status).toBe(401)
    expect(noViewerToken.json?.error).toMatch(/^inspect: this viewer requires its token/)
    // with both, it reaches the client (which knows no such loop)
    const cookie = `${tokenCookieName(v.port)}=${viewerToken}`
    const both = await call(v, '/api/loops/x/commands', { headers: { ...headers, cookie }, body })
    expect(both.status).toBe(404)
    expect(both.json).toEqual({ ok: false, code: 'not_found', error: "cannot pause: no loop named 'x'" })
    // the viewer token is no command token
    const swapped = await call(v, '/api/loops/x/commands', { headers: { ...headers, cookie, 'x-loopstate-token': viewerToken }, body })
    expect(swapped.status).toBe(403)
  })
})

describe('viewer controls: the rules, pure', () => {
  const PORT = 4747
  const policy: AccessPolicy = { port: PORT, loopback: true, token: null }
  const TOKEN = newToken()
  const host = `127.0.0.1:${PORT}`
  const page = { host, origin: `http://${host}`, 'sec-fetch-site': 'same-origin', 'content-type': 'application/json', 'x-loopstate-token': TOKEN }
  const check = (headers: Record<string, string>) => checkCommandAccess(policy, TOKEN, { url: '/api/loops/a/commands', headers })

  it('takes the page of its own origin with the token and a JSON type (any charset, any case)', () => {
    expect(check(page)).toEqual({ ok: true })
    expect(check({ ...page, 'content-type': 'Application/JSON; charset=utf-8' })).toEqual({ ok: true })
    // plain http to a non-loopback address: browsers send no Sec-Fetch-Site
    const { 'sec-fetch-site': _, ...noSite } = page
    expect(check(noSite)).toEqual({ ok: true })
    expect(check({ ...page, 'content-type': 'application/json-patch+json' })).toMatchObject({ ok: false, status: 415 })
    expect(check({ ...page, 'content-type': 'text/json' })).toMatchObject({ ok: false, status: 415 })
  })

  it('reads commands strictly', () => {
    expect(parseCommand('{"type":"pause"}')).toEqual({ kind: 'pause', event: { type: 'loop.pause' } })
    expect(parseCommand('{"type":"resume"}')).toEqual({ kind: 'resume', event: { type: 'loop.resume' } })
    expect(parseCommand('{"type":"cancel"}')).toEqual({ kind: 'cancel', event: { type: 'loop.cancel' } })
    expect(parseCommand('{"type":"say","text":" hi "}')).toEqual({ kind: 'say', event: { type: 'loop.say', text: 'hi' } })
    expect(parseCommand(JSON.stringify({ type: 'say', text: 'é'.repeat(COMMAND_LIMITS.sayChars) }))).toMatchObject({ kind: 'say' })
    for (const bad of ['', 'null', '1', '"pause"', '{"type":"PAUSE"}', '{"type":"say","text":null}', '{"type":"cancel","text":""}']) {
      expect(parseCommand(bad), bad).toHaveProperty('error')
    }
  })
})
