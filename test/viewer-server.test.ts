import { appendFile, mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { networkInterfaces, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createWebSocketInspector } from '@statelyai/inspect'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { WebSocket, type ClientOptions } from 'ws'
import { JsonStore } from '../adapters/json-store.ts'
import { MemoryStore } from '../adapters/memory-store.ts'
import { createEngine, type Engine } from '../services/engine.ts'
import { serializeChart, type ChartState } from '../services/inspect/chart.ts'
import { StoreFiles } from '../adapters/json-store-feed.ts'
import { createStatelyInspect } from '../services/inspect/stately.ts'
import {
  checkBindHost,
  startViewer,
  VIEWER_LIMITS,
  type LoopPayload,
  type LoopSummary,
  type Viewer,
} from '../services/inspect/viewer-server.ts'
import { sectionedFixture } from './helpers/viewer-fixtures.ts'

const find = (s: ChartState, path: string): ChartState | undefined =>
  s.path === path ? s : s.states.map((c) => find(c, path)).find((x) => x !== undefined)

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = ''
      res.on('data', (c) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** `/ws/page` of the viewer (with its token, if it has one). */
function pageUrl(viewer: Viewer): string {
  const u = new URL(viewer.inspectUrl)
  u.pathname = '/ws/page'
  return u.toString()
}

/** A page client of the viewer: collects what the server pushes. */
async function pageClient(viewer: Viewer) {
  const ws = new WebSocket(pageUrl(viewer))
  const messages: { type: string; [k: string]: unknown }[] = []
  ws.on('message', (d) => messages.push(JSON.parse(d.toString())))
  await new Promise((r) => ws.once('open', r))
  return {
    messages,
    select: (name: string) => ws.send(JSON.stringify({ type: 'select', name })),
    loops: (): LoopSummary[] => ((messages.filter((m) => m.type === 'loops').at(-1)?.loops as LoopSummary[]) ?? []),
    close: () => ws.close(),
  }
}

type Connected = { ws: WebSocket; messages: string[] }
type Refused = { status: number; body: string }

/** A `ws` client: open (collecting messages from the first), or the HTTP answer that refused the upgrade. */
function connect(url: string, options: ClientOptions = {}): Promise<Connected | Refused> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options)
    const messages: string[] = []
    ws.on('message', (d) => messages.push(d.toString()))
    ws.once('open', () => resolve({ ws, messages }))
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (c) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode!, body }))
    })
    ws.once('error', reject)
  })
}

async function opened(url: string, options: ClientOptions = {}): Promise<Connected> {
  const c = await connect(url, options)
  if (!('ws' in c)) throw new Error(`${url}: refused ${c.status} ${c.body}`)
  return c
}

async function refused(url: string, options: ClientOptions = {}): Promise<Refused> {
  const c = await connect(url, options)
  if ('ws' in c) {
    c.ws.terminate()
    throw new Error(`${url}: opened; expected a refusal`)
  }
  return c
}

const sendFrame = (ws: WebSocket, text: string) => new Promise<void>((r, j) => ws.send(text, (e) => (e ? j(e) : r())))

/** The machine's first non-loopback IPv4 address, if it has one. */
function lanAddress(): string | null {
  for (const a of Object.values(networkInterfaces()).flat()) if (a && !a.internal && a.family === 'IPv4') return a.address
  return null
}

/** Runs a one-section loop to its end in the store `data`; returns its history (the seq of a snapshot included). */
async function storeLoop(dir: string, data: string, name: string): Promise<{ snapshotSeq: number }> {
  const ws = join(dir, `ws-${name}`)
  await mkdir(ws)
  const f = sectionedFixture({ sections: 1 })
  const scenario = join(dir, `${name}.json`)
  await writeFile(scenario, JSON.stringify(f.scenario))
  const engine = await createEngine({ dataDir: data, resume: false })
  try {
    await (await engine.start({ plan: f.plan }, { name, models: [`scripted:${scenario}`], workspace: ws })).done
    const seq = (await engine.history(name)).find((e) => e.snapshot !== undefined)?.seq
    if (seq === undefined) throw new Error('no snapshot in the history')
    return { snapshotSeq: seq }
  } finally {
    await engine.close()
  }
}

type Maybe<T> = T | undefined | null | false

async function until<T>(what: string, fn: () => Maybe<T> | Promise<Maybe<T>>, ms = 8000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

describe('viewer server', () => {
  let dir: string
  let viewer: Viewer | null = null
  let engine: Engine | null = null

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loopstate-viewer-'))
  })
  afterEach(async () => {
    await engine?.close()
    await viewer?.close()
    engine = null
    viewer = null
    await rm(dir, { recursive: true, force: true })
  })

  it('stays on loopback unless the host was given explicitly', async () => {
    expect(checkBindHost('127.0.0.1', false)).toBeNull()
    expect(checkBindHost('localhost', false)).toBeNull()
    expect(checkBindHost('::1', false)).toBeNull()
    expect(() => checkBindHost('0.0.0.0', false)).toThrow('inspect: refusing to listen on 0.0.0.0 without --host; it is not a loopback address')
    expect(checkBindHost('0.0.0.0', true)).toMatch(/^inspect: listening on 0\.0\.0\.0, not a loopback address: a token is required on every request/)
    await expect(startViewer({ dataDir: dir, port: 0, host: '0.0.0.0', explicitHost: false })).rejects.toThrow(
      'inspect: refusing to listen on 0.0.0.0 without --host; it is not a loopback address',
    )
  })

  it('serves the page with a no-external-requests policy, the chart, and only to loopback Host names', async () => {
    viewer = await startViewer({ dataDir: join(dir, 'data'), port: 0 })
    expect(viewer.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    const page = await get(viewer.url)
    expect(page.status).toBe(200)
    expect(page.body).toContain('<script type="module" src="/app.js"></script>')
    expect(page.body).not.toMatch(/https?:\/\/(?!127\.0\.0\.1)/)
    expect(page.headers['content-security-policy']).toContain("default-src 'none'")
    expect(page.headers['content-security-policy']).toContain("script-src 'self';")
    expect(page.headers['content-security-policy']).toContain("connect-src 'self'")
    // the page's modules: every import is one of its own files, served as JavaScript under the same policy
    const modules = new Set<string>()
    const pending = ['app.js']
    while (pending.length > 0) {
      const file = pending.pop()!
      if (modules.has(file)) continue
      modules.add(file)
      const r = await get(`${viewer.url}${file}`)
      expect(r.status, file).toBe(200)
      expect(r.headers['content-type'], file).toBe('text/javascript; charset=utf-8')
      expect(r.headers['content-security-policy'], file).toBe(page.headers['content-security-policy'])
      expect(r.headers['x-content-type-options'], file).toBe('nosniff')
      // (the SVG namespace graph.js creates its elements in is a name, not an address)
      expect(r.body.replaceAll('http://www.w3.org/2000/svg', ''), file).not.toMatch(/(?:https?:)?\/\/[a-z0-9.-]+\.(?:com|net|org|io|dev)\b/i)
      expect(r.body, file).not.toMatch(/\bimport\s*\(/) // no dynamic imports
      for (const [, spec] of r.body.matchAll(/^(?:import|export)\b[^'"\n]*\bfrom\s+'([^']+)'/gm)) {
        expect(spec, `${file} imports ${spec}`).toMatch(/^\.\/[a-z0-9-]+\.js$/)
        pending.push(spec!.slice(2))
      }
    }
    expect([...modules].sort()).toEqual(['app.js', 'chart.js', 'context.js', 'controls.js', 'diff.js', 'dom.js', 'events.js', 'findings.js', 'format.js', 'graph.js', 'live.js', 'loop.js', 'loops.js', 'panels.js', 'path.js', 'sections.js', 'state.js', 'table.js', 'transcript.js'])
    const css = await get(`${viewer.url}style.css`)
    expect(css.status).toBe(200)
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8')
    expect(css.body).not.toMatch(/(?:https?:)?\/\/[a-z0-9.-]+\.(?:com|net|org|io|dev)\b/i)
    // nothing but the page's files: not the server's sources, nothing outside the page's directory
    for (const path of ['/viewer-server.ts', '/server/http.ts', '/../viewer-server.ts', '/%2e%2e/viewer-server.ts', '/app', '/APP.JS', '/package.json']) {
      expect((await get(`${viewer.url.slice(0, -1)}${path}`)).status, path).toBe(404)
    }
    const chart = JSON.parse((await get(`${viewer.url}api/chart`)).body) as ChartState
    expect(chart).toEqual(serializeChart())
    // a coder pass ends: stopped for no progress, on to the checks, or to the audit
    expect(find(chart, 'running.coding')!.transitions.map((t) => `${t.label}→${t.targets.join()}`)).toEqual([
      'session.done→errored',
      'session.done→running.checking',
      'session.done→running.auditing',
      'session.failed→running.failed',
    ])
    expect(find(chart, 'running.coding')!.transitions.map((t) => t.guard ?? null)).toEqual(['passMadeNoProgressAtLimit', 'hasChecks', null, null])
    const judging = find(chart, 'running.judgingAudit')!
    expect(judging.transitions[0]).toMatchObject({ kind: 'always', guard: 'auditClean ∧ isSectioned ∧ usesGit', targets: ['running.committing'] })
    expect(judging.transitions.find((t) => t.reason === 'max_iterations')?.guard).toBe('reworkExhausted')
    expect(find(chart, 'running.backingOff')!.transitions[0]!.label).toBe('after retryBackoff')
    expect((await get(`${viewer.url}api/loops`, { host: 'attacker.example' })).status).toBe(403)
    expect(JSON.parse((await get(`${viewer.url}api/loops`)).body)).toEqual([])
    expect((await get(`${viewer.url}api/loops/nope`)).status).toBe(404)
    // read-only: an empty data dir is not even created
    await expect(stat(join(dir, 'data'))).rejects.toThrow()
  })

  it('shows loops of the store (run by any process, ended ones too) with their history and snapshots', async () => {
    const data = join(dir, 'data')
    const ws = join(dir, 'ws')
    await mkdir(ws)
    const f = sectionedFixture({ sections: 3 })
    const scenario = join(dir, 's.json')
    await writeFile(scenario, JSON.stringify(f.scenario))
    engine = await createEngine({ dataDir: data, resume: false })
    const h = await engine.start({ plan: f.plan }, { name: 'three', models: [`scripted:${scenario}`], workspace: ws })
    await h.done
    await engine.close()
    engine = null
    const before = await readdir(data, { recursive: true })

    viewer = await startViewer({ dataDir: data, port: 0, pollMs: 50 })
    const list = JSON.parse((await get(`${viewer.url}api/loops`)).body) as LoopSummary[]
    expect(list).toHaveLength(1)
    expect(list[0]).toMatchObject({ name: 'three', status: 'completed', state: 'completed', sources: { store: true, inspector: false }, owner: null, live: false })
    const payload = JSON.parse((await get(`${viewer.url}api/loops/three`)).body) as LoopPayload
    expect(payload.detail.sections.map((s) => s.status)).toEqual(['done', 'done', 'done'])
    expect(payload.detail.sections[0]!.summary).toContain('### Done')
    const history = JSON.parse((await get(`${viewer.url}api/loops/three/history`)).body) as { seq: number; to: string; snapshot: boolean }[]
    expect(history.map((e) => e.to)).toEqual([
      'running.coding.watching',
      'running.auditing.watching',
      'running.coding.watching',
      'running.auditing.watching',
      'running.coding.watching',
      'running.auditing.watching',
      'running.finalAuditing.watching',
      'completed',
    ])
    const second = history[1]!
    expect(second.snapshot).toBe(true)
    const at = JSON.parse((await get(`${viewer.url}api/loops/three/history/${second.seq}`)).body)
    expect(at.state).toBe('running.auditing.watching')
    expect(at.detail.sections.map((s: { status: string }) => s.status)).toEqual(['active', 'pending', 'pending'])
    expect(await readdir(data, { recursive: true })).toEqual(before)
  })

  it('follows a history log as it grows and after compaction; a bad record is reported, never moved or written', async () => {
    const data = join(dir, 'data')
    await storeLoop(dir, data, 'grows')
    await writeFile(join(data, 'loops', 'broken.json'), '{ not json')
    const before = await readdir(data, { recursive: true })
    const logs: string[] = []
    viewer = await startViewer({ dataDir: data, port: 0, pollMs: 30, log: (l) => logs.push(l) })
    const names = JSON.parse((await get(`${viewer.url}api/loops`)).body) as LoopSummary[]
    expect(names.map((l) => l.name)).toEqual(['grows'])
    expect(logs).toEqual([`inspect: snapshot-store: ${join(data, 'loops', 'broken.json')}: not valid JSON; skipped`])
    const page = await pageClient(viewer)
    page.select('grows')
    const history = async () => JSON.parse((await get(`${viewer!.url}api/loops/grows/history`)).body) as { seq: number; event: string }[]
    const seqs = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)
    /** The history as the page holds it (app.js folds the pushes the same way). */
    const shown = () => {
      let entries: { seq: number; event: string }[] = []
      for (const m of page.messages) {
        if (m.type !== 'history') continue
        const got = m.entries as typeof entries
        const lastSeq = entries.at(-1)?.seq ?? 0
        entries = m.reset ? got : entries.concat(got.filter((e) => e.seq > lastSeq))
      }
      return entries
    }
    const first = await history()
    const last = first.at(-1)!.seq
    expect(first.map((e) => e.seq)).toEqual(seqs(1, last))
    await until('the first history push', () => page.messages.find((m) => m.type === 'history' && m.reset === true))
    expect(await readdir(data, { recursive: true })).toEqual(before)

    // appends (by another process's store): read as they land (adapters/json-store-feed.ts) and pushed
    const store = new JsonStore(data)
    const entry = (i: number) => ({ at: new Date().toISOString(), event: `test.${i}`, from: 'completed', to: 'completed', iteration: 1, phase: 'coding' as const })
    await store.appendHistory('grows', [entry(1), entry(2)], 500)
    await until('the appended entries', async () => (await history()).length === last + 2)
    await until('their push', () => shown().map((e) => e.seq).join() === seqs(1, last + 2).join())
    expect(shown().slice(-2).map((e) => e.event)).toEqual(['test.1', 'test.2'])

    // compaction rewrites the log (a new file): read again whole, the page told to reset
    const resets = page.messages.filter((m) => m.type === 'history' && m.reset === true).length
    await store.appendHistory('grows', Array.from({ length: 20 }, (_, i) => entry(3 + i)), 4)
    const kept = seqs(last + 19, last + 22).join()
    await until('the compacted history', async () => (await history()).map((e) => e.seq).join() === kept)
    await until('the reset push', () => page.messages.filter((m) => m.type === 'history' && m.reset === true).length > resets && shown().map((e) => e.seq).join() === kept)
    expect(logs).toHaveLength(1)
    expect((await readdir(join(data, 'loops'))).sort()).toEqual(['broken.json', 'grows.json'])
    page.close()
  })

  it('reads a history log from where it stopped, complete lines only, and asks for a whole read once it is rewritten', async () => {
    const data = join(dir, 'data')
    await mkdir(join(data, 'history'), { recursive: true })
    const path = join(data, 'history', 'tail.jsonl')
    const line = (seq: number) => `${JSON.stringify({ seq, at: 'now', event: `e${seq}`, from: '', to: 'x', iteration: 0, phase: 'coding' })}\n`
    const files = new StoreFiles(data)
    expect(await files.historySince('tail', null)).toBeNull()
    await writeFile(path, line(1))
    const whole = await files.historySince('tail', null)
    if (whole?.whole !== true) throw new Error('expected a whole read')
    expect(whole.end.offset).toBe(line(1).length)
    expect(await files.historySince('tail', whole.end)).toEqual({ whole: false, entries: [], cursor: whole.end })
    // a line being appended is left for the next read
    await appendFile(path, line(2) + line(3).slice(0, 10))
    const a = await files.historySince('tail', whole.end)
    if (a?.whole !== false) throw new Error('expected a tail')
    expect(a.entries.map((e) => e.seq)).toEqual([2])
    await appendFile(path, line(3).slice(10) + '{"torn')
    const b = await files.historySince('tail', a.cursor)
    if (b?.whole !== false) throw new Error('expected a tail')
    expect(b.entries.map((e) => e.seq)).toEqual([3])
    // rewritten (a compaction renames a new file over it): whole again
    await writeFile(`${path}.tmp`, line(3))
    await rename(`${path}.tmp`, path)
    expect((await files.historySince('tail', b.cursor))?.whole).toBe(true)
    expect(await files.names()).toEqual([])
  })

  it('takes inspection events from a stock @statelyai/inspect WebSocket inspector and relays them', async () => {
    viewer = await startViewer({ dataDir: join(dir, 'data'), port: 0 })
    const page = await pageClient(viewer)
    const relayed: string[] = []
    const watcher = new WebSocket(viewer.inspectUrl)
    watcher.on('message', (d) => relayed.push(d.toString()))
    await new Promise((r) => watcher.once('open', r))

    const ws = join(dir, 'ws')
    await mkdir(ws)
    const f = sectionedFixture({ sections: 2, delayMs: 30 })
    const scenario = join(dir, 's.json')
    await writeFile(scenario, JSON.stringify(f.scenario))
    const inspector = createWebSocketInspector({ url: viewer.inspectUrl })
    engine = await createEngine({ store: new MemoryStore(), inspect: (e) => inspector.inspect.next?.(e) })
    const h = await engine.start({ plan: f.plan }, { name: 'only-live', models: [`scripted:${scenario}`], workspace: ws })
    const running = await until('the live loop', () => page.loops().find((l) => l.name === 'only-live'))
    expect(running.sources).toEqual({ store: false, inspector: true })
    expect(running.live).toBe(true)
    page.select('only-live')
    await h.done
    const done = await until('the completed loop', () => page.loops().find((l) => l.name === 'only-live' && l.status === 'completed'))
    expect(done.state).toBe('completed')
    const states = page.messages
      .filter((m) => m.type === 'history')
      .flatMap((m) => (m.entries as { to: string }[]).map((e) => e.to))
    expect(states).toEqual(expect.arrayContaining(['running.coding.watching', 'running.auditing.watching', 'running.finalAuditing.watching', 'completed']))
    const payload = await until('detail', () => page.messages.filter((m) => m.type === 'loop').at(-1)?.loop as LoopPayload | undefined)
    expect(payload.children.length).toBeGreaterThan(0)
    expect(page.messages.some((m) => m.type === 'stream' && (m.events as { type: string }[]).some((e) => e.type === 'session.done'))).toBe(true)
    expect(relayed.some((t) => JSON.parse(t).type === '@xstate.snapshot')).toBe(true)
    inspector.stop()
    watcher.close()
    page.close()
  })

  it('marks a loop as no longer live when its engine disconnects', async () => {
    viewer = await startViewer({ dataDir: join(dir, 'data'), port: 0 })
    const page = await pageClient(viewer)
    const ws = join(dir, 'ws')
    await mkdir(ws)
    const scenario = join(dir, 's.json')
    await writeFile(scenario, JSON.stringify({ coder: [{ type: 'hang' }] }))
    const inspect = createStatelyInspect(viewer.inspectUrl)
    engine = await createEngine({ store: new MemoryStore(), inspect: inspect.inspect })
    await engine.start({ goal: 'wait' }, { name: 'hanging', models: [`scripted:${scenario}`], workspace: ws })
    await until('live', () => page.loops().find((l) => l.name === 'hanging' && l.live && l.state === 'running.coding.watching'))
    await inspect.close()
    await until('not live', () => page.loops().find((l) => l.name === 'hanging' && !l.live))
    page.close()
  })

  it('serves its exact origin only: forged Host, Origin and Sec-Fetch-Site are refused on HTTP and on both WebSockets', async () => {
    viewer = await startViewer({ dataDir: join(dir, 'data'), port: 0 })
    const port = viewer.port
    const other = port === 65535 ? port - 1 : port + 1
    const api = `http://127.0.0.1:${port}/api/loops`
    const self = `http://127.0.0.1:${port}`
    expect(viewer.token).toBeNull()
    expect(viewer.url).toBe(`${self}/`)

    // HTTP: what a browser sends from the viewer's own page passes ...
    const allowed: Record<string, string>[] = [{}, { origin: self }, { 'sec-fetch-site': 'same-origin' }, { 'sec-fetch-site': 'none' }, { host: `localhost:${port}` }]
    for (const headers of allowed) {
      const r = await get(api, headers)
      expect(r.status, JSON.stringify(headers)).toBe(200)
      expect(JSON.parse(r.body)).toEqual([])
    }
    // ... what a page of another port, or a rebound name, sends does not
    const cases: [Record<string, string>, string][] = [
      [{ origin: 'http://127.0.0.1:5555' }, `inspect: origin http://127.0.0.1:5555 is not this viewer (${self})`],
      [{ origin: `http://127.0.0.1:${other}` }, `inspect: origin http://127.0.0.1:${other} is not this viewer (${self})`],
      [{ origin: `http://localhost:${port}` }, `inspect: origin http://localhost:${port} is not this viewer (${self})`],
      [{ origin: 'null' }, `inspect: origin null is not this viewer (${self})`],
      [{ 'sec-fetch-site': 'same-site' }, `inspect: a same-site request (Sec-Fetch-Site) is refused; only this viewer's own page (${self}) may use it`],
      [{ 'sec-fetch-site': 'cross-site' }, `inspect: a cross-site request (Sec-Fetch-Site) is refused; only this viewer's own page (${self}) may use it`],
      [{ host: `127.0.0.1:${other}` }, `inspect: Host 127.0.0.1:${other} is not this viewer (a loopback name with port ${port}, e.g. 127.0.0.1:${port})`],
      [{ host: `attacker.example:${port}` }, `inspect: Host attacker.example:${port} is not this viewer (a loopback name with port ${port}, e.g. 127.0.0.1:${port})`],
      [{ host: `attacker.example:${port}`, origin: `http://attacker.example:${port}` }, `inspect: Host attacker.example:${port} is not this viewer (a loopback name with port ${port}, e.g. 127.0.0.1:${port})`],
    ]
    for (const [headers, error] of cases) {
      for (const path of ['/', '/app.js', '/api/chart', '/api/loops']) {
        const r = await get(`${self}${path}`, headers)
        expect(r.status, `${path} ${JSON.stringify(headers)}`).toBe(403)
        expect(JSON.parse(r.body)).toEqual({ error })
      }
    }

    // WebSockets: the page's and the relay (any other path), same rules
    for (const path of ['/ws/page', '/', '/any/relay/path']) {
      const url = `ws://127.0.0.1:${port}${path}`
      for (const [headers, error] of cases) {
        const { origin, ...rest } = headers
        const r = await refused(url, { origin, headers: rest })
        expect(r.status, `${path} ${JSON.stringify(headers)}`).toBe(403)
        expect(JSON.parse(r.body)).toEqual({ error })
      }
      // an engine's ws client sends no Origin: allowed on loopback; so is the viewer's own page
      for (const options of [{}, { origin: self }, { origin: `http://localhost:${port}`, headers: { host: `localhost:${port}` } }]) {
        const c = await opened(url, options)
        c.ws.close()
      }
    }
    await until('no socket left', () => viewer!.stats().pages === 0 && viewer!.stats().relays === 0)
  })

  it('--host: a non-loopback bind requires the token on every endpoint, as ?token=, Bearer header or the cookie its page sets', async () => {
    const data = join(dir, 'data')
    const { snapshotSeq } = await storeLoop(dir, data, 'guarded')
    const lan = lanAddress()
    const logs: string[] = []
    // bound to the machine's address if it has one, else to every address (reached through 127.0.0.1): either is not loopback
    viewer = await startViewer({ dataDir: data, port: 0, host: lan ?? '0.0.0.0', log: (l) => logs.push(l) })
    const token = viewer.token!
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
    const base = `http://${lan ?? '127.0.0.1'}:${viewer.port}`
    expect(viewer.url).toBe(`${base}/?token=${token}`)
    expect(viewer.inspectUrl).toBe(`ws://${lan ?? '127.0.0.1'}:${viewer.port}/?token=${token}`)
    expect(logs).toEqual([expect.stringMatching(/^inspect: listening on .*, not a loopback address: a token is required on every request and WebSocket/)])

    // the page with ?token= sets the cookie (only the page does)
    const page = await get(`${base}/?token=${token}`)
    expect(page.status).toBe(200)
    expect(page.headers['set-cookie']).toEqual([`loopstate-inspect-${viewer.port}=${token}; HttpOnly; SameSite=Strict; Path=/`])
    const cookie = (page.headers['set-cookie'] as string[])[0]!.split(';')[0]!
    expect((await get(`${base}/api/loops?token=${token}`)).headers['set-cookie']).toBeUndefined()

    const endpoints: [string, number][] = [
      ['/', 200],
      ['/index.html', 200],
      ['/app.js', 200],
      ['/loop.js', 200],
      ['/style.css', 200],
      ['/api/chart', 200],
      ['/api/loops', 200],
      ['/api/loops/guarded', 200],
      ['/api/loops/guarded/history', 200],
      [`/api/loops/guarded/history/${snapshotSeq}`, 200],
      ['/api/loops/nope', 404],
      ['/nope', 404],
    ]
    const wrong = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')
    for (const [path, status] of endpoints) {
      const bare = await get(`${base}${path}`)
      expect(bare.status, path).toBe(401)
      expect(bare.headers['www-authenticate']).toBe('Bearer')
      expect(JSON.parse(bare.body).error).toMatch(/^inspect: this viewer requires its token \(printed by loopstate inspect at start\)/)
      expect(bare.body).not.toContain(token)
      for (const r of [await get(`${base}${path}?token=${wrong}`), await get(`${base}${path}`, { authorization: `Bearer ${wrong}` })]) {
        expect(r.status, path).toBe(401)
        expect(JSON.parse(r.body).error).toMatch(/^inspect: wrong token/)
      }
      const sep = path.includes('?') ? '&' : '?'
      for (const r of [
        await get(`${base}${path}${sep}token=${token}`),
        await get(`${base}${path}`, { authorization: `Bearer ${token}` }),
        // the cookie, as the page's own requests send it (with a Referer of the page)
        await get(`${base}${path}`, { cookie, referer: viewer.url }),
      ]) {
        expect(r.status, path).toBe(status)
      }
      // the cookie without a sign of the viewer's own page (what a no-cors load of another port sends)
      const loose = await get(`${base}${path}`, { cookie, referer: `http://${lan ?? '127.0.0.1'}:5555/` })
      expect(loose.status, path).toBe(401)
      expect(JSON.parse(loose.body).error).toMatch(/^inspect: the token cookie counts only on requests of this viewer's own page/)
    }
    const loops = JSON.parse((await get(`${base}/api/loops`, { cookie, referer: viewer.url })).body) as LoopSummary[]
    expect(loops.map((l) => l.name)).toEqual(['guarded'])
    // the token does not lift the exact-origin rule (a cookie is sent from every port of the host)
    const foreign = `http://${lan ?? '127.0.0.1'}:5555`
    const cross = await get(`${base}/api/loops`, { cookie, origin: foreign })
    expect(cross.status).toBe(403)
    expect(JSON.parse(cross.body)).toEqual({ error: `inspect: origin ${foreign} is not this viewer (${base})` })

    // both WebSockets
    const wsBase = `ws://${lan ?? '127.0.0.1'}:${viewer.port}`
    for (const path of ['/ws/page', '/']) {
      const bare = await refused(`${wsBase}${path}`)
      expect(bare.status, path).toBe(401)
      expect(JSON.parse(bare.body).error).toMatch(/^inspect: this viewer requires its token/)
      expect((await refused(`${wsBase}${path}?token=${wrong}`)).status).toBe(401)
      expect((await refused(`${wsBase}${path}?token=${token}`, { origin: foreign })).status).toBe(403)
      for (const c of [
        await opened(`${wsBase}${path}?token=${token}`),
        await opened(`${wsBase}${path}`, { headers: { authorization: `Bearer ${token}` } }),
        await opened(`${wsBase}${path}`, { headers: { cookie }, origin: base }),
      ]) {
        if (path === '/ws/page') {
          await until('the loops', () => c.messages.map((m) => JSON.parse(m)).find((m) => m.type === 'loops'))
          const list = c.messages.map((m) => JSON.parse(m)).find((m) => m.type === 'loops').loops as LoopSummary[]
          expect(list.map((l) => l.name)).toEqual(['guarded'])
        }
        c.ws.close()
      }
    }
  })

  it('--host: an engine streams to the tokened inspectUrl; without the token it is refused (401)', async () => {
    const lan = lanAddress()
    viewer = await startViewer({ dataDir: join(dir, 'data'), port: 0, host: lan ?? '0.0.0.0', log: () => {} })
    const problems: string[] = []
    const bare = createStatelyInspect(viewer.inspectUrl.replace(/\?.*$/, ''), { onProblem: (m) => problems.push(m), reconnectMs: 50 })
    await until('the refusal', () => problems.find((p) => p.includes('401')))
    expect(bare.connected()).toBe(false)
    await bare.close(100)
    expect(viewer.stats().relays).toBe(0)

    const ws = join(dir, 'ws')
    await mkdir(ws)
    const f = sectionedFixture({ sections: 1 })
    const scenario = join(dir, 's.json')
    await writeFile(scenario, JSON.stringify(f.scenario))
    const inspect = createStatelyInspect(viewer.inspectUrl)
    expect(inspect.url).toBe(viewer.inspectUrl) // the query (the token) is kept
    engine = await createEngine({ store: new MemoryStore(), inspect: inspect.inspect })
    const page = await pageClient(viewer)
    await (await engine.start({ plan: f.plan }, { name: 'tokened', models: [`scripted:${scenario}`], workspace: ws })).done
    const done = await until('the streamed loop', () => page.loops().find((l) => l.name === 'tokened' && l.status === 'completed'))
    expect(done.sources).toEqual({ store: false, inspector: true })
    await inspect.close()
    page.close()
  })

  it('caps frames (1009), the relay replay buffer by bytes, and drops a client that does not read', async () => {
    expect(VIEWER_LIMITS).toEqual({
      pageFrame: 64 * 1024,
      relayFrame: 1024 * 1024,
      replayFrames: 200,
      replayBytes: 8 * 1024 * 1024,
      maxBuffered: 16 * 1024 * 1024,
    })
    viewer = await startViewer({ dataDir: join(dir, 'data'), port: 0 })
    const closeCode = (c: Connected, text: string) =>
      new Promise<number>((r) => {
        c.ws.once('close', (code) => r(code))
        c.ws.send(text)
      })
    // one frame over the cap closes its sender, and nothing of it is kept
    expect(await closeCode(await opened(viewer.inspectUrl), 'x'.repeat(VIEWER_LIMITS.relayFrame + 1))).toBe(1009)
    expect(await closeCode(await opened(pageUrl(viewer)), 'x'.repeat(VIEWER_LIMITS.pageFrame + 1))).toBe(1009)
    expect(viewer.stats()).toMatchObject({ replayFrames: 0, replayBytes: 0 })

    // frames just under the cap pass and are relayed; the replay keeps the newest, at most replayBytes
    const sender = await opened(viewer.inspectUrl)
    const watcher = await opened(viewer.inspectUrl)
    const frame = (i: number) => JSON.stringify({ type: 'noise', sessionId: `n${String(i).padStart(3, '0')}`, pad: 'x'.repeat(VIEWER_LIMITS.relayFrame - 100) })
    const size = Buffer.byteLength(frame(0))
    expect(size).toBeLessThanOrEqual(VIEWER_LIMITS.relayFrame)
    const count = 3 * Math.ceil(VIEWER_LIMITS.replayBytes / size)
    for (let i = 0; i < count; i++) await sendFrame(sender.ws, frame(i))
    await until('every frame relayed', () => watcher.messages.length === count)
    const kept = Math.floor(VIEWER_LIMITS.replayBytes / size)
    expect(viewer.stats()).toMatchObject({ relays: 2, replayFrames: kept, replayBytes: kept * size })
    const late = await opened(viewer.inspectUrl)
    await until('the replay', () => late.messages.length === kept)
    expect(late.messages.map((m) => JSON.parse(m).sessionId)).toEqual(
      Array.from({ length: kept }, (_, k) => `n${String(count - kept + k).padStart(3, '0')}`),
    )
    expect(late.messages.reduce((n, m) => n + Buffer.byteLength(m), 0)).toBeLessThanOrEqual(VIEWER_LIMITS.replayBytes)
    late.ws.close()
    await until('late gone', () => viewer!.stats().relays === 2)

    // a client that stops reading: its queue grows until the server drops it (the others stay)
    const slow = await opened(viewer.inspectUrl)
    slow.ws.pause()
    await until('slow counted', () => viewer!.stats().relays === 3)
    // kernel socket buffers take a few MB before the server's queue grows
    const bound = 4 * Math.ceil(VIEWER_LIMITS.maxBuffered / size)
    let sent = 0
    while (viewer.stats().relays === 3 && sent < bound) {
      await sendFrame(sender.ws, frame(count + sent))
      sent++
      await until('relayed', () => watcher.messages.length === count + sent)
    }
    await until('the slow client dropped', () => viewer!.stats().relays === 2)
    expect(sender.ws.readyState).toBe(WebSocket.OPEN)
    expect(watcher.ws.readyState).toBe(WebSocket.OPEN)
    expect(viewer.stats().replayBytes).toBeLessThanOrEqual(VIEWER_LIMITS.replayBytes)
    // reading again, it finds its connection cut (terminated: no close frame)
    const cut = new Promise<number>((r) => slow.ws.once('close', (code) => r(code)))
    slow.ws.resume()
    expect(await cut).toBe(1006)
    sender.ws.close()
    watcher.ws.close()
  })
})
