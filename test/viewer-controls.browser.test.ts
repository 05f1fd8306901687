/**
 * The viewer's controls in a real browser (Debian's chromium through playwright-core):
 * a loop runs in another process (test/helpers/control-owner.ts), the viewer in this
 * one; the page's Pause, Say, Resume and Cancel reach the loop, and requests without
 * the command token, or from a page of another origin, do not.
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { LoopClient } from '../services/client.ts'
import { startViewer, type Viewer } from '../services/inspect/viewer-server.ts'
import { startOwner, waitRunning, type OwnerProcess } from './helpers/control-owner.ts'

const CHROMIUM = '/usr/bin/chromium'
const ARTIFACTS = resolve('test-artifacts')
const NAME = 'ctl-browser'

/** Fails (never skips) without the browser: CI installs it. */
async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`viewer-controls.browser: ${CHROMIUM} is missing; install it with 'apt-get install -y chromium'`)
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  })
}

/**
 * A page of another origin (a second HTTP server on another port) that tries to command
 * the loop: a cors fetch with the command token itself (as if it had leaked) and JSON,
 * and a no-cors fetch (what a form can send). `window.results` holds what each got,
 * `window.attackDone` is set once both settled.
 */
async function attackerServer(target: string, token: string): Promise<{ url: string; server: Server }> {
  const script = `
    const url = ${JSON.stringify(`${target}/api/loops/${NAME}/commands`)}
    const results = { cors: null, noCors: null }
    window.results = results
    Promise.all([
      fetch(url + '?cors', { method: 'POST', headers: { 'content-type': 'application/json', 'x-loopstate-token': ${JSON.stringify(token)} }, body: '{"type":"cancel"}' })
        .then((r) => { results.cors = 'read:' + r.status }, (e) => { results.cors = 'rejected:' + e.name }),
      fetch(url + '?no-cors', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: '{"type":"say","text":"from the attacker"}' })
        .then((r) => { results.noCors = r.type + ':' + r.status }, (e) => { results.noCors = 'rejected:' + e.name }),
    ]).then(() => { window.attackDone = true })
  `
  const server = createServer((req, res) => {
    if (req.url !== '/') return void res.writeHead(404).end()
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    res.end(`<!doctype html><title>not the viewer</title><script>${script}</script>`)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server }
}

describe('viewer controls in a browser', { timeout: 120_000 }, () => {
  let browser: Browser
  let dir: string
  let viewer: Viewer | null = null
  let owner: OwnerProcess | null = null
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
    dir = await mkdtemp(join(tmpdir(), 'loopstate-controls-browser-'))
  })
  afterEach(async () => {
    await owner?.kill()
    owner = null
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

  /**
   * Polls an expression in the page (page.evaluate goes through the DevTools protocol; the
   * page's CSP forbids the eval that waitForFunction's string form needs).
   */
  async function waitUntil(page: Page, expression: string, timeout = 20_000): Promise<void> {
    const deadline = Date.now() + timeout
    while (!(await page.evaluate(expression))) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${expression}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  const text = (sel: string) => `document.querySelector(${JSON.stringify(sel)})?.textContent`
  const status = (page: Page, s: string) => waitUntil(page, `${text('#loop-status')} === ${JSON.stringify(s)}`)
  const answered = (page: Page, re: RegExp) => waitUntil(page, `${re}.test(${text('#ctl-result.ctl-ok, #ctl-result.ctl-err')} ?? '')`)
  /** Which controls the page shows. */
  const shown = (page: Page) =>
    page.evaluate(() =>
      ['#ctl-pause', '#ctl-resume', '#ctl-cancel', '#ctl-confirm', '#ctl-say-text'].filter((s) => {
        const el = document.querySelector(s) as HTMLElement | null
        return el !== null && el.offsetParent !== null
      }),
    )
  /** A command from the page's own context, with the given headers. */
  const fetchFromPage = (page: Page, headers: Record<string, string>, body = '{"type":"pause"}') =>
    page.evaluate(
      async ([url, headers, body]) => {
        const r = await fetch(url, { method: 'POST', headers, body })
        return { status: r.status, body: await r.json() }
      },
      [`/api/loops/${NAME}/commands`, headers, body] as const,
    )

  it('pause, say, resume and cancel a loop of another process from the page; refused without the token or from another origin', async () => {
    const data = join(dir, 'data')
    owner = await startOwner(dir, data, NAME)
    const client = new LoopClient({ dataDir: data })
    await waitRunning(client, NAME, owner)
    const logs: string[] = []
    viewer = await startViewer({ dataDir: data, port: 0, pollMs: 100, log: (l) => logs.push(l) })
    const target = `http://127.0.0.1:${viewer.port}`
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
    contexts.push(context)
    const page = await context.newPage()
    const requests: string[] = []
    page.on('request', (r) => requests.push(r.url()))
    await page.goto(`${viewer.url}#loop=${NAME}`)
    await status(page, 'running')
    await waitUntil(page, `document.querySelector('#ctl-pause')?.offsetParent !== null`)
    expect(await shown(page)).toEqual(['#ctl-pause', '#ctl-cancel', '#ctl-say-text'])
    const token = (await page.evaluate(`document.querySelector('meta[name="loopstate-token"]').content`)) as string
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)

    // From the page itself, without the token or with a wrong one: refused, the loop untouched.
    const json = { 'content-type': 'application/json' }
    expect(await fetchFromPage(page, json)).toEqual({
      status: 403,
      body: { ok: false, code: 'refused', error: "inspect: a command must carry the viewer's command token (X-Loopstate-Token), which only its page has" },
    })
    expect(await fetchFromPage(page, { ...json, 'x-loopstate-token': token.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) })).toMatchObject({ status: 403 })
    expect(await fetchFromPage(page, { 'content-type': 'text/plain', 'x-loopstate-token': token })).toMatchObject({ status: 415 })
    expect((await client.record(NAME))?.status).toBe('running')

    // Pause: held on its way, the controls wait (disabled) and say so.
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    await page.route('**/commands', async (route) => {
      await held
      await route.continue()
    })
    await page.locator('#ctl-pause').click()
    await waitUntil(page, `document.querySelector('#ctl-result').classList.contains('ctl-pending')`)
    expect(await page.evaluate(`['#ctl-pause', '#ctl-cancel', '#ctl-say-text'].map((s) => document.querySelector(s).disabled)`)).toEqual([true, true, true])
    expect((await client.record(NAME))?.status).toBe('running')
    release()
    await answered(page, new RegExp(`^loop ${NAME} paused$`))
    await page.unroute('**/commands')
    expect(await page.locator('#ctl-result').getAttribute('class')).toBe('ctl-result ctl-ok')
    expect((await client.record(NAME))?.status).toBe('paused')
    expect((await client.owner(NAME))?.pid).toBe(owner.child.pid)
    // the page's state comes from the live feed
    await status(page, 'paused')
    await waitUntil(page, `document.querySelector('#ctl-resume')?.offsetParent !== null`)
    expect(await shown(page)).toEqual(['#ctl-resume', '#ctl-cancel', '#ctl-say-text'])

    // Say: the message is in the loop's inbox (its next prompt).
    expect(await page.locator('#ctl-say-send').isDisabled()).toBe(true) // nothing to say yet
    await page.locator('#ctl-say-text').fill('Please also add a test for the empty case.')
    await page.locator('#ctl-say-send').click()
    await answered(page, new RegExp(`^message delivered to loop ${NAME} \\(process ${owner.child.pid}\\)`))
    expect((await client.get(NAME))?.inbox).toEqual(['Please also add a test for the empty case.'])
    expect(await page.locator('#ctl-say-text').inputValue()).toBe('')

    // Resume: running again in its owner.
    await page.locator('#ctl-resume').click()
    await answered(page, new RegExp(`^loop ${NAME} running$`))
    expect((await client.record(NAME))?.status).toBe('running')
    await status(page, 'running')
    await waitUntil(page, `document.querySelector('#ctl-pause')?.offsetParent !== null`)
    await page.screenshot({ path: join(ARTIFACTS, 'viewer-controls.png') })

    // A page of another origin, even holding the token, commands nothing.
    const evil = await attackerServer(target, token)
    servers.push(evil.server)
    const attacker = await context.newPage()
    const cdp = await context.newCDPSession(attacker)
    await cdp.send('Network.enable')
    const urls = new Map<string, string>()
    const statuses = new Map<string, number>()
    cdp.on('Network.requestWillBeSent', (e) => urls.set(e.requestId, e.request.url))
    cdp.on('Network.responseReceivedExtraInfo', (e) => statuses.set(e.requestId, e.statusCode))
    await attacker.goto(evil.url)
    await attacker.waitForFunction('window.attackDone === true', undefined, { timeout: 15_000 })
    expect(await attacker.evaluate('window.results')).toEqual({ cors: 'rejected:TypeError', noCors: 'opaque:0' })
    // the viewer refused the no-cors post itself (it carries the attacker's Origin)
    const noCorsId = () => [...urls].find(([, u]) => u.endsWith('?no-cors'))?.[0]
    const deadline = Date.now() + 10_000
    while (!(noCorsId() && statuses.has(noCorsId()!)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25))
    expect(statuses.get(noCorsId()!)).toBe(403)
    for (const [id, u] of urls) if (u.startsWith(target) && statuses.has(id)) expect(statuses.get(id), u).not.toBe(200)
    await attacker.close()
    expect((await client.record(NAME))?.status).toBe('running')
    expect((await client.get(NAME))?.inbox).toEqual(['Please also add a test for the empty case.'])

    // Cancel asks first; "No" keeps the loop.
    await page.locator('#ctl-cancel').click()
    expect(await shown(page)).toEqual(['#ctl-pause', '#ctl-confirm', '#ctl-say-text'])
    expect(await page.locator('#ctl-confirm-text').textContent()).toBe(`Cancel loop ${NAME}? It ends for good.`)
    await page.locator('#ctl-cancel-no').click()
    expect(await shown(page)).toEqual(['#ctl-pause', '#ctl-cancel', '#ctl-say-text'])
    expect((await client.record(NAME))?.status).toBe('running')
    await page.locator('#ctl-cancel').click()
    await page.locator('#ctl-cancel-yes').click()
    await answered(page, new RegExp(`^loop ${NAME} cancelled`))
    expect((await client.record(NAME))?.status).toBe('cancelled')
    expect((await owner.exited).output).toContain(`${NAME} cancelled`)
    await status(page, 'cancelled')
    // an ended loop has no controls; the answer stays
    await waitUntil(page, `document.querySelector('#ctl-pause').offsetParent === null`)
    expect(await shown(page)).toEqual([])
    expect(await page.locator('#ctl-result').isVisible()).toBe(true)

    // every request of the page went to the viewer; the token is in no address and no log line
    for (const url of requests) {
      const u = new URL(url)
      if (u.protocol === 'data:') continue
      expect(u.origin, url).toBe(target)
      expect(url).not.toContain(token)
    }
    expect(logs.join('\n')).not.toContain(token)
    expect(logs.filter((l) => l.includes(`of loop ${NAME} from the page`))).toHaveLength(4)
  })
})
