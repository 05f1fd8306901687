/**
 * The viewer in a real browser: Debian's chromium driven by playwright-core.
 * Loops run in child processes (as `loopstate run` would), one watched through the
 * store only, one streaming inspection events to the viewer. Screenshots land in
 * test-artifacts/ (git-ignored).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { networkInterfaces, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { startViewer, type LoopSummary, type Viewer } from '../services/inspect/viewer-server.ts'
import { sectionedFixture } from './helpers/viewer-fixtures.ts'

const CHROMIUM = '/usr/bin/chromium'
const ARTIFACTS = resolve('test-artifacts')
const CHILD = resolve('test/helpers/viewer-child.ts')
const TSX = resolve('node_modules/tsx/dist/cli.mjs')

/** Fails (never skips) without the browser: CI installs it in .ci/run. */
async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`viewer.browser: ${CHROMIUM} is missing; install it with 'apt-get install -y chromium' (.ci/run does)`)
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  })
}

/** The machine's first non-loopback IPv4 address, if it has one. */
function lanAddress(): string | null {
  for (const a of Object.values(networkInterfaces()).flat()) if (a && !a.internal && a.family === 'IPv4') return a.address
  return null
}

/**
 * An attacker's page on another port (a second real HTTP server). Against the viewer at `target`
 * (`http://host:port`) it tries: (a) its page socket, reading what it pushes; (b) its relay,
 * sending `fake` (an `@xstate.actor` frame); (c) fetch of /api/loops, cors and no-cors; (d) the
 * API as a `<script src>`. It records what happened in `window.results`; `window.attackDone`
 * once every attempt has settled.
 */
async function attackerServer(host: string, target: string, fake: string): Promise<{ url: string; server: Server }> {
  const script = `
    const V = ${JSON.stringify(target)}
    const W = V.replace(/^http/, 'ws')
    const results = { page: [], relay: [], cors: null, noCors: null, script: null }
    window.results = results
    function sock(url, log, onOpen) {
      return new Promise((done) => {
        const ws = new WebSocket(url)
        ws.onopen = () => { log.push('open'); onOpen(ws) }
        ws.onmessage = (m) => { log.push('message:' + String(m.data).slice(0, 200)); ws.close() }
        ws.onerror = () => log.push('error')
        ws.onclose = (e) => { log.push('close:' + e.code); done() }
      })
    }
    Promise.all([
      sock(W + '/ws/page', results.page, () => {}),
      sock(W + '/', results.relay, (ws) => { ws.send(${JSON.stringify(fake)}); ws.close() }),
      fetch(V + '/api/loops?cors').then(async (r) => { results.cors = 'read:' + r.status + ':' + (await r.text()) }, (e) => { results.cors = 'rejected:' + e.name }),
      fetch(V + '/api/loops?no-cors', { mode: 'no-cors' }).then(async (r) => { results.noCors = r.type + ':' + r.status + ':' + (await r.text()) }, (e) => { results.noCors = 'rejected:' + e.name }),
      new Promise((done) => {
        const s = document.createElement('script')
        s.src = V + '/api/loops?script'
        s.onload = () => { results.script = 'load'; done() }
        s.onerror = () => { results.script = 'error'; done() }
        document.head.append(s)
      }),
    ]).then(() => { window.attackDone = true })
  `
  const server = createServer((req, res) => {
    if (req.url !== '/') {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    res.end(`<!doctype html><title>not the viewer</title><script>${script}</script>`)
  })
  await new Promise<void>((r) => server.listen(0, host, r))
  return { url: `http://${host}:${(server.address() as AddressInfo).port}/`, server }
}

/** An `@xstate.actor` frame that registers a loop `name`: the context of a real loop of the store, renamed. */
async function fakeLoopFrame(dataDir: string, from: string, name: string): Promise<string> {
  const record = JSON.parse(await readFile(join(dataDir, 'loops', `${from}.json`), 'utf8')) as { snapshot: { value: unknown; context: Record<string, unknown> } }
  return JSON.stringify({
    type: '@xstate.actor',
    sessionId: `x:${name}`,
    name: 'loop',
    createdAt: String(Date.now()),
    snapshot: { status: 'active', value: record.snapshot.value, context: { ...record.snapshot.context, name } },
  })
}

describe('viewer in a browser', { timeout: 60_000 }, () => {
  let browser: Browser
  let dir: string
  let viewer: Viewer | null = null
  let child: ChildProcess | null = null
  let requests: string[]
  let servers: Server[] = []
  let contexts: BrowserContext[] = []

  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true })
    browser = await launch()
  })
  afterAll(async () => {
    await browser?.close()
  })
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loopstate-browser-'))
    requests = []
  })
  afterEach(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL')
    child = null
    for (const c of contexts) await c.close()
    contexts = []
    for (const s of servers) {
      s.closeAllConnections()
      await new Promise((r) => s.close(r))
    }
    servers = []
    await viewer?.close()
    viewer = null
    await rm(dir, { recursive: true, force: true })
  })

  /** Writes a plan and scenario, and runs the loop in a child process. */
  async function runChild(name: string, fixture: { plan: string; scenario: unknown }, dataDir: string, inspect?: string) {
    const ws = join(dir, `ws-${name}`)
    await mkdir(ws)
    await writeFile(join(dir, `${name}.md`), fixture.plan)
    await writeFile(join(dir, `${name}.json`), JSON.stringify(fixture.scenario))
    const args = [TSX, CHILD, '--data', dataDir, '--plan', join(dir, `${name}.md`), '--scenario', join(dir, `${name}.json`), '--workspace', ws, '--name', name]
    if (inspect) args.push('--inspect', inspect)
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    proc.stdout!.on('data', (d) => (output += d))
    proc.stderr!.on('data', (d) => (output += d))
    child = proc
    const exited = new Promise<string>((res, rej) =>
      proc.on('exit', (code) => (code === 0 ? res(output) : rej(new Error(`child exited ${code}: ${output}`)))),
    )
    exited.catch(() => {}) // awaited by the test; a child killed in afterEach is not a failure
    return { exited }
  }

  async function openPage(): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
    page.on('request', (r) => requests.push(r.url()))
    page.on('websocket', (w) => requests.push(w.url()))
    await page.goto(viewer!.url)
    // the statechart graph is laid out (ELK, in the page) before a loop starts: a phase of a second is not missed meanwhile
    await waitUntil(page, `document.querySelector('#graph') !== null`, 30_000)
    return page
  }

  /** The state value the statechart graph shows, once it marks a drawn state current (viewer/graph.js). */
  const currentPath = (page: Page) =>
    page.evaluate('document.querySelector("#graph [data-current=\'true\']") ? document.querySelector("#graph").dataset.value : null')
  /**
   * Polls an expression in the page (page.evaluate goes through the DevTools protocol; the
   * page's CSP forbids the eval that waitForFunction's string form needs).
   */
  async function waitUntil(page: Page, expression: string, timeout = 15_000): Promise<void> {
    const deadline = Date.now() + timeout
    while (!(await page.evaluate(expression))) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${expression}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  const waitCurrent = (page: Page, path: string, timeout = 15_000) =>
    waitUntil(
      page,
      `(() => { const el = document.querySelector('#graph [data-current="true"]'); return el !== null && el.dataset.state === ${JSON.stringify(path.replace(/\.watching$/, ''))} && document.querySelector('#graph').dataset.value === ${JSON.stringify(path)} && document.querySelector('#state-now')?.textContent === ${JSON.stringify(path)} })()`,
      timeout,
    )
  const logRows = (page: Page) => page.locator('#event-log tbody tr').count()

  function expectOnlyLocalRequests(): void {
    expect(requests.length).toBeGreaterThan(3)
    for (const url of requests) {
      const u = new URL(url)
      if (u.protocol === 'data:') continue
      expect(['http:', 'ws:'], url).toContain(u.protocol)
      expect(u.hostname, url).toBe('127.0.0.1')
      expect(u.port, url).toBe(String(viewer!.port))
    }
  }

  it('follows a loop run in another process through the store: states, event log, slider, post-mortem', async () => {
    const data = join(dir, 'data')
    viewer = await startViewer({ dataDir: data, port: 0, log: () => {} })
    const page = await openPage()
    // 2 sections: coding = 2 answers, audits = 1 answer; each answer takes 800 ms
    const { exited: done } = await runChild('two-parts', sectionedFixture({ sections: 2, delayMs: 800 }), data)

    await page.locator('#loop-list li[data-name="two-parts"]').waitFor({ timeout: 15_000 })
    await waitCurrent(page, 'running.coding.watching')
    expect(await page.locator('#graph [data-state="running.coding"][data-current="true"]').count()).toBe(1)
    expect(await page.locator('#graph [data-state="running"][data-active="true"]').count()).toBe(1)
    await page.screenshot({ path: join(ARTIFACTS, 'viewer-coding.png') })
    const rowsAtStart = await logRows(page)

    await waitCurrent(page, 'running.auditing.watching')
    await page.screenshot({ path: join(ARTIFACTS, 'viewer-auditing.png') })
    // the log grows (the history log may land a poll after the record) and the transition just taken is marked
    await waitUntil(page, `document.querySelectorAll('#event-log tbody tr').length > ${rowsAtStart}`, 5000)
    await waitUntil(page, `document.querySelector('#graph .g-edge[data-from="running.coding"][data-to="running.auditing"]')?.dataset.last === 'true'`, 5000)

    await waitUntil(page, `document.querySelector('#context .sections li.active .stitle')?.textContent.startsWith('2.')`, 15_000)
    await waitCurrent(page, 'running.finalAuditing.watching')
    await waitCurrent(page, 'completed')
    await done
    expect(await page.locator('#loop-status').textContent()).toBe('completed')
    // init→coding, →auditing, →coding, →auditing, →finalAuditing, →completed
    const rowsAtEnd = 6
    await waitUntil(page, `document.querySelectorAll('#event-log tbody tr').length === ${rowsAtEnd}`, 5000)
    await waitUntil(page, `document.querySelectorAll('#context .sections li.done').length === 2`, 5000)
    await page.screenshot({ path: join(ARTIFACTS, 'viewer-completed.png') })

    // Step the slider back to the first snapshot, then one forward.
    await page.locator('#slider').focus()
    await page.keyboard.press('Home')
    await waitUntil(page, `document.body.classList.contains('past') && document.querySelector('#context .past-note') !== null`, 5000)
    expect(await currentPath(page)).toBe('running.coding.watching')
    expect(await page.locator('#context .past-note').textContent()).toMatch(/^Snapshot #1 /)
    await page.keyboard.press('ArrowRight')
    await waitUntil(page, `document.querySelector('#graph [data-current="true"]')?.dataset.state === 'running.auditing' && document.querySelector('#graph').dataset.value === 'running.auditing.watching'`, 5000)
    expect(await page.locator('#event-log tr.at td:first-child').textContent()).toBe('2')
    expect(await page.locator('#event-log tr.future').count()).toBe(rowsAtEnd - 2)
    await page.screenshot({ path: join(ARTIFACTS, 'viewer-slider-back.png') })
    await page.locator('#live-btn').click()
    await waitUntil(page, `!document.body.classList.contains('past') && document.querySelector('#graph [data-current="true"]')?.dataset.state === 'completed'`, 5000)

    // Post-mortem: a fresh page on a loop no process runs any more.
    await page.reload()
    await waitCurrent(page, 'completed')
    expect(await page.locator('#loop-list li[data-name="two-parts"] .loop-line').last().textContent()).toContain('ended')
    expectOnlyLocalRequests()
    await page.close()
  })

  it('follows a loop whose engine streams to the viewer with --inspect (no shared store)', async () => {
    viewer = await startViewer({ dataDir: join(dir, 'viewer-data'), port: 0, log: () => {} })
    const page = await openPage()
    const scenario = {
      coder: [
        { type: 'tool_calls', delayMs: 600, text: 'Writing.', calls: [{ name: 'write_file', arguments: { path: 'a.js', content: 'export const a = 1\n' } }] },
        { type: 'text', delayMs: 600, text: 'Done.' },
      ],
      auditor: [{ type: 'text', delayMs: 800, text: 'Clean.' }],
    }
    const { exited: done } = await runChild('streamed', { plan: '# Streamed\n\nWrite a.js.\n', scenario }, join(dir, 'engine-data'), viewer.inspectUrl)
    await page.locator('#loop-list li[data-name="streamed"] .dot-live').waitFor({ timeout: 15_000 })
    await waitCurrent(page, 'running.coding.watching')
    await waitCurrent(page, 'running.auditing.watching')
    await page.locator('.tab[data-tab="stream"]').click()
    await waitUntil(page, `document.querySelectorAll('#stream-log tr').length > 3`, 5000)
    expect(await page.locator('#stream-log').textContent()).toContain('session.turn')
    await page.screenshot({ path: join(ARTIFACTS, 'viewer-inspector-stream.png') })
    await waitCurrent(page, 'completed')
    await done
    // init→coding, →auditing, →completed
    await waitUntil(page, `document.querySelectorAll('#event-log tbody tr').length === 3`, 5000)
    expectOnlyLocalRequests()
    await page.close()
  })

  /**
   * Runs the attacker's page (served from `attacker`) in `context` against the viewer at `target`.
   * Returns what the page got, and the HTTP statuses the viewer answered to its requests (from
   * the DevTools protocol: a cors-blocked response is unreadable by the page, not by DevTools).
   */
  async function attack(context: BrowserContext, attacker: string, target: string) {
    const page = await context.newPage()
    const cdp = await context.newCDPSession(page)
    await cdp.send('Network.enable')
    const urls = new Map<string, string>()
    const statuses = new Map<string, number>()
    const sentCookies = new Map<string, string>()
    cdp.on('Network.requestWillBeSent', (e) => urls.set(e.requestId, e.request.url))
    cdp.on('Network.requestWillBeSentExtraInfo', (e) => {
      const cookie = Object.entries(e.headers).find(([k]) => k.toLowerCase() === 'cookie')?.[1]
      if (cookie !== undefined) sentCookies.set(e.requestId, String(cookie))
    })
    cdp.on('Network.responseReceivedExtraInfo', (e) => statuses.set(e.requestId, e.statusCode))
    await page.goto(attacker)
    await page.waitForFunction('window.attackDone === true', undefined, { timeout: 15_000 })
    const results = (await page.evaluate('window.results')) as {
      page: string[]
      relay: string[]
      cors: string
      noCors: string
      script: string
    }
    const answered = () => {
      const m = new Map<string, { status: number; cookie: string | undefined }>()
      for (const [id, url] of urls) {
        const u = new URL(url)
        if (u.origin === target && statuses.has(id)) m.set(u.search, { status: statuses.get(id)!, cookie: sentCookies.get(id) })
      }
      return m
    }
    const deadline = Date.now() + 10_000
    while (answered().size < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25))
    await page.close()
    return { results, answered: answered() }
  }

  /** `refusals`: the statuses the viewer may refuse with (401 where a token is required: a no-cors load may show no origin). */
  function expectNothingRead(r: Awaited<ReturnType<typeof attack>>, refusals: number[] = [403]): void {
    // (a), (b): the sockets never opened, so nothing was read and nothing sent
    for (const log of [r.results.page, r.results.relay]) {
      expect(log).not.toContain('open')
      expect(log.filter((l) => l.startsWith('message:'))).toEqual([])
      expect(log).toContain('error')
      expect(log.at(-1)).toBe('close:1006')
    }
    // (c), (d): nothing readable in the page ...
    expect(r.results.cors).toBe('rejected:TypeError')
    expect(r.results.noCors).toMatch(/^(opaque:0:|rejected:TypeError)$/)
    expect(r.results.script).toBe('error')
    // ... and the viewer refused them itself (it did not serve the data and leave it to the browser to hide)
    expect([...r.answered.keys()].sort()).toEqual(['?cors', '?no-cors', '?script'])
    for (const [what, { status }] of r.answered) expect(refusals, what).toContain(status)
    expect(r.answered.get('?cors')!.status).toBe(403) // it shows its Origin
  }

  const listed = async (viewerUrl: string, headers: Record<string, string> = {}) => {
    const u = new URL(viewerUrl)
    u.pathname = '/api/loops'
    const res = await fetch(u, { headers })
    expect(res.status).toBe(200)
    return ((await res.json()) as LoopSummary[]).map((l) => l.name)
  }

  /** The same frame from a client the viewer admits (an engine's ws client: no Origin) registers the loop. */
  async function injectAsEngine(inspectUrl: string, frame: string): Promise<void> {
    const ws = new WebSocket(inspectUrl)
    await new Promise((r, j) => {
      ws.once('open', r)
      ws.once('error', j)
    })
    await new Promise<void>((r, j) => ws.send(frame, (e) => (e ? j(e) : r())))
    ws.close()
  }

  it("refuses a page of another localhost port: it reads nothing and injects no loop; the viewer's own page works", async () => {
    const data = join(dir, 'data')
    await (await runChild('real', sectionedFixture({ sections: 1 }), data)).exited
    viewer = await startViewer({ dataDir: data, port: 0, log: () => {} })
    const target = `http://127.0.0.1:${viewer.port}`
    const fake = await fakeLoopFrame(data, 'real', 'injected')
    const evil = await attackerServer('127.0.0.1', target, fake)
    servers.push(evil.server)
    expect(new URL(evil.url).port).not.toBe(String(viewer.port))
    const context = await browser.newContext()
    contexts.push(context)

    expectNothingRead(await attack(context, evil.url, target))
    expect(viewer.stats()).toMatchObject({ relays: 0, replayFrames: 0 })
    expect(await listed(viewer.url)).toEqual(['real'])

    // the viewer's own page, in the same browser, lists the loop and not the fake one
    const page = await context.newPage()
    await page.goto(viewer.url)
    await page.locator('#loop-list li[data-name="real"]').waitFor({ timeout: 15_000 })
    await waitUntil(page, `document.querySelector('#conn').textContent === 'live'`)
    expect(await page.locator('#loop-list li[data-name="injected"]').count()).toBe(0)

    // control: the very frame the attacker sent does register a loop when an admitted client sends it
    await injectAsEngine(viewer.inspectUrl, fake)
    await page.locator('#loop-list li[data-name="injected"]').waitFor({ timeout: 15_000 })
    expect(await listed(viewer.url)).toEqual(expect.arrayContaining(['real', 'injected']))
    await page.close()
  })

  it('--host: the token is required; the page loaded with ?token= works through its cookie, which a page of another port cannot use', async () => {
    const data = join(dir, 'data')
    await (await runChild('real', sectionedFixture({ sections: 1 }), data)).exited
    const lan = lanAddress()
    const via = lan ?? '127.0.0.1'
    viewer = await startViewer({ dataDir: data, port: 0, host: lan ?? '0.0.0.0', log: () => {} })
    const token = viewer.token!
    const target = `http://${via}:${viewer.port}`
    expect(viewer.url).toBe(`${target}/?token=${token}`)
    const context = await browser.newContext()
    contexts.push(context)
    const page = await context.newPage()

    // without the token: 401, nothing of the viewer
    const bare = await page.goto(`${target}/`)
    expect(bare!.status()).toBe(401)
    expect(await page.locator('body').textContent()).toContain('inspect: this viewer requires its token')

    // with it: the page, its fetches (/api/chart, the loop) and its /ws/page socket, by the cookie
    expect((await page.goto(viewer.url))!.status()).toBe(200)
    await page.locator('#loop-list li[data-name="real"]').waitFor({ timeout: 15_000 })
    await waitUntil(page, `document.querySelector('#conn').textContent === 'live'`)
    await waitUntil(page, `document.querySelector('#graph [data-state="running.coding"]') !== null`)
    await waitUntil(page, `document.querySelector('#loop-status')?.textContent === 'completed'`)
    const cookies = await context.cookies(target)
    expect(cookies).toEqual([
      expect.objectContaining({ name: `loopstate-inspect-${viewer.port}`, value: token, httpOnly: true, sameSite: 'Strict', path: '/' }),
    ])
    expect(await page.evaluate('document.cookie')).toBe('')
    // a page of another port of the same host: the browser sends it the cookie, the viewer still refuses
    const fake = await fakeLoopFrame(data, 'real', 'injected')
    const evil = await attackerServer(via, target, fake)
    servers.push(evil.server)
    const r = await attack(context, evil.url, target)
    expectNothingRead(r, [401, 403])
    expect(r.answered.get('?script')?.cookie).toContain(`loopstate-inspect-${viewer.port}=${token}`)
    expect(viewer.stats()).toMatchObject({ relays: 0, replayFrames: 0 })
    expect(await listed(viewer.url)).toEqual(['real'])
    expect(await page.locator('#loop-list li[data-name="injected"]').count()).toBe(0)

    // control: with the token, the same frame registers the loop
    await injectAsEngine(viewer.inspectUrl, fake)
    await page.locator('#loop-list li[data-name="injected"]').waitFor({ timeout: 15_000 })
    await page.close()
  })
})
