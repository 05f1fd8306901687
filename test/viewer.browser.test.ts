/**
 * The viewer in a real browser: Debian's chromium driven by playwright-core.
 * Loops run in child processes (as `loopstate run` would), one watched through the
 * store only, one streaming inspection events to the viewer. Screenshots land in
 * test-artifacts/ (git-ignored).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startViewer, type Viewer } from '../services/inspect/viewer-server.ts'
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

describe('viewer in a browser', { timeout: 60_000 }, () => {
  let browser: Browser
  let dir: string
  let viewer: Viewer | null = null
  let child: ChildProcess | null = null
  let requests: string[]

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
    return page
  }

  const currentPath = (page: Page) =>
    page.evaluate('document.querySelector(".state.current") && document.querySelector(".state.current").dataset.path')
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
      `(() => { const el = document.querySelector('.state.current'); return el !== null && el.dataset.path === ${JSON.stringify(path)} && document.querySelector('#state-now')?.textContent === ${JSON.stringify(path)} })()`,
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
    expect(await page.locator('.state.active[data-path="running.coding"]').count()).toBe(1)
    expect(await page.locator('.state.active[data-path="running"]').count()).toBe(1)
    await page.screenshot({ path: join(ARTIFACTS, 'viewer-coding.png') })
    const rowsAtStart = await logRows(page)

    await waitCurrent(page, 'running.auditing.watching')
    await page.screenshot({ path: join(ARTIFACTS, 'viewer-auditing.png') })
    // the log grows (the history log may land a poll after the record) and the transition just taken is marked
    await waitUntil(page, `document.querySelectorAll('#event-log tbody tr').length > ${rowsAtStart}`, 5000)
    await waitUntil(page, `document.querySelector('.state[data-path="running.coding"] > .trs .tr.taken')?.textContent.includes('session.done')`, 5000)

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
    await waitUntil(page, `document.querySelector('.state.current')?.dataset.path === 'running.auditing.watching'`, 5000)
    expect(await page.locator('#event-log tr.at td:first-child').textContent()).toBe('2')
    expect(await page.locator('#event-log tr.future').count()).toBe(rowsAtEnd - 2)
    await page.screenshot({ path: join(ARTIFACTS, 'viewer-slider-back.png') })
    await page.locator('#live-btn').click()
    await waitUntil(page, `!document.body.classList.contains('past') && document.querySelector('.state.current')?.dataset.path === 'completed'`, 5000)

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
})
