/**
 * The viewer's per-loop panels, its loop list and its layout in a real browser
 * (Debian's chromium through playwright-core): the transcript, diff and findings
 * tabs, the event tables' payloads and selection under live updates, the list's
 * order and filter, one status per loop, one snapshot per render (header = usage;
 * a past snapshot never says "now"), and the layout at 1280 and 900 px wide.
 * Screenshots land in test-artifacts/viewer/ (git-ignored).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { LoopClient } from '../services/client.ts'
import { startViewer, type Viewer } from '../services/inspect/viewer-server.ts'
import { launchBrowser, runLoop, storeReplay, waitUntil, type ChildLoop } from './helpers/viewer-browser.ts'
import { sectionedFixture } from './helpers/viewer-fixtures.ts'

const ARTIFACTS = resolve('test-artifacts', 'viewer')

/** What the page shows of each loop in its list, top to bottom. */
const listed = (page: Page) =>
  page.evaluate(`[...document.querySelectorAll('#loop-list li')].map((li) => ({
    name: li.dataset.name,
    status: li.dataset.status,
    run: li.dataset.run,
    badges: li.querySelectorAll('.badge.status').length,
    badge: li.querySelector('.badge.status')?.textContent,
    text: li.textContent,
  }))`) as Promise<{ name: string; status: string; run: string; badges: number; badge: string; text: string }[]>

/** The tokens of the header and of the usage panel, read in one go (one frame). */
const tokenCounts = (page: Page) =>
  page.evaluate(`({
    head: document.querySelector('#head-usage')?.textContent.split(' tokens')[0] ?? null,
    usage: document.querySelector('#usage-tokens')?.textContent.split(' tokens')[0] ?? null,
  })`) as Promise<{ head: string | null; usage: string | null }>

const FINAL = ['completed', 'cancelled', 'errored', 'stalled']

/** Every loop shows one status, and one that ended is neither live nor run by a process. */
async function expectNoContradiction(page: Page): Promise<void> {
  for (const l of await listed(page)) {
    expect(l.badges, l.name).toBe(1)
    expect(l.badge, l.name).toBe(l.status)
    if (FINAL.includes(l.status)) {
      expect(l.run, l.name).toBe('ended')
      expect(l.text, l.name).not.toContain('● live')
      expect(l.text, l.name).not.toContain('run by pid')
    }
    if (l.text.includes('● live')) expect(l.run, l.name).toBe('live')
  }
}

/** The layout holds: nothing of the header, list, timeline or tabs is cut off or out of its box. */
async function expectLayoutHolds(page: Page, width: number): Promise<void> {
  const problems = (await page.evaluate(`(() => {
    const out = []
    const vw = document.documentElement.clientWidth, vh = document.documentElement.clientHeight
    const box = (el) => el.getBoundingClientRect()
    const inside = (a, b, what) => {
      const r = box(a), c = box(b)
      if (r.left < c.left - 0.5 || r.right > c.right + 0.5 || r.top < c.top - 0.5 || r.bottom > c.bottom + 0.5) out.push(what + ' ' + JSON.stringify([r.left, r.top, r.right, r.bottom]) + ' outside ' + JSON.stringify([c.left, c.top, c.right, c.bottom]))
    }
    const live = document.querySelector('#live-btn')
    const lr = box(live)
    if (lr.width < 20 || lr.left < 0 || lr.right > vw || lr.bottom > vh) out.push('live button ' + JSON.stringify([lr.left, lr.right, vw]))
    inside(live, document.querySelector('#timeline'), 'live button in the timeline')
    if (live.scrollWidth > live.clientWidth + 1) out.push('live button text clipped')
    for (const li of document.querySelectorAll('#loop-list li')) for (const b of li.querySelectorAll('.badge')) inside(b, li, 'badge ' + b.textContent + ' in ' + li.dataset.name)
    for (const b of document.querySelectorAll('#loop-head .badge')) inside(b, document.querySelector('#loop-head'), 'header badge ' + b.textContent)
    for (const t of document.querySelectorAll('#events .tab')) inside(t, document.querySelector('#events'), 'tab ' + t.dataset.tab)
    for (const el of document.querySelectorAll('#loops, #center, #side, #top')) {
      const r = box(el)
      if (r.left < 0 || r.right > vw + 0.5) out.push(el.id + ' beyond the viewport ' + JSON.stringify([r.left, r.right, vw]))
    }
    const filter = document.querySelector('#loop-filter')
    inside(filter, document.querySelector('#loops'), 'filter box')
    return out
  })()`)) as string[]
  expect(problems, `at ${width} px`).toEqual([])
}

/**
 * The transitions table's sticky header is on top when the table scrolls under it
 * (rows of a past snapshot are translucent: they must not paint over it).
 */
async function expectStickyHeaderOnTop(page: Page): Promise<void> {
  await page.evaluate(`document.querySelector('#log-wrap').scrollTop = 30`)
  const top = await page.evaluate(`(() => {
    const th = document.querySelector('#event-log thead th:nth-child(3)')
    const r = th.getBoundingClientRect()
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2)
    return { scrolled: document.querySelector('#log-wrap').scrollTop, onTop: hit === th || th.contains(hit), hit: hit && hit.outerHTML.slice(0, 80) }
  })()`)
  expect(top).toMatchObject({ onTop: true })
  expect((top as { scrolled: number }).scrolled).toBeGreaterThan(0)
  await page.evaluate(`document.querySelector('#log-wrap').scrollTop = 0`)
}

describe('viewer panels in a browser', { timeout: 120_000 }, () => {
  let browser: Browser
  let dir: string
  let viewer: Viewer | null = null
  let children: ChildLoop[] = []

  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true })
    browser = await launchBrowser()
  })
  afterAll(async () => {
    await browser?.close()
  })
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loopstate-panels-'))
  })
  afterEach(async () => {
    for (const c of children) if (c.proc.exitCode === null) c.proc.kill('SIGKILL')
    children = []
    await viewer?.close()
    viewer = null
    await rm(dir, { recursive: true, force: true })
  })

  async function run(data: string, name: string, fixture: { plan: string; scenario: unknown }, options: Parameters<typeof runLoop>[4] = {}) {
    const c = await runLoop(dir, data, name, fixture, options)
    children.push(c)
    return c
  }

  /** The page's script errors (a 404 the page asked for and handles is not one). */
  const errors = new WeakMap<Page, string[]>()

  async function openPage(width = 1280, hash = ''): Promise<Page> {
    const page = await browser.newPage({ viewport: { width, height: 800 } })
    const seen: string[] = []
    errors.set(page, seen)
    page.on('pageerror', (e) => seen.push(e.message))
    page.on('console', (m) => {
      if (m.type() === 'error' && !/the server responded with a status of 404/.test(m.text())) seen.push(m.text())
    })
    await page.goto(`${viewer!.url}${hash}`)
    return page
  }

  async function closePage(page: Page): Promise<void> {
    await page.close()
    expect(errors.get(page)).toEqual([])
  }

  const tab = (page: Page, name: string) => page.locator(`#events .tab[data-tab="${name}"]`).click()

  it('a finished loop: transitions with sections and payloads, transcript, findings with their history, git and plain diffs; one snapshot per render; layout at 1280 and 900 px', async () => {
    const data = join(dir, 'data')
    await (await run(data, 'dirty', sectionedFixture({ sections: 2, dirtySection: 1 }))).exited
    await (await run(data, 'gitty', sectionedFixture({ sections: 1 }), { git: true })).exited
    viewer = await startViewer({ dataDir: data, port: 0, log: () => {} })
    const page = await openPage(1280, '#loop=dirty')
    await waitUntil(page, `document.querySelector('#loop-status')?.textContent === 'completed' && document.querySelector('#loop-title')?.textContent === 'dirty'`)

    // Transitions: a section column for a sectioned loop (1, 2, then the final audit)
    await waitUntil(page, `document.querySelectorAll('#event-log tbody tr').length >= 8`)
    expect(await page.locator('#event-log').getAttribute('class')).toContain('sectioned')
    const sections = (await page.evaluate(`[...document.querySelectorAll('#event-log tbody tr:not(.row-detail) td.col-section')].map((td) => td.textContent).reverse()`)) as string[]
    expect(sections[0]).toBe('1')
    expect(sections).toContain('2')
    expect(sections.at(-1)).toBe('final')
    expect(await page.locator('#event-log th.col-section').isVisible()).toBe(true)
    // a row clicked shows its transition; the store keeps no payload, and says so
    await page.locator('#event-log tbody tr[data-key="2"]').click()
    await waitUntil(page, `document.querySelector('#event-log tr.selected')?.dataset.key === '2' && document.querySelector('#event-log tr.row-detail pre.payload') !== null`)
    const detail = await page.locator('#event-log tr.row-detail').textContent()
    expect(detail).toContain('"event": "session.done"')
    expect(detail).toContain('"section": 1')
    expect(detail).toContain("keeps the event's type, not its payload")
    expect(await page.locator('#event-log tr.row-detail .show-snap').textContent()).toBe('Show snapshot #2')

    // Transcript: every session from the journal, its role, phase, iteration and section, tool calls and results
    await tab(page, 'transcript')
    await waitUntil(page, `document.querySelectorAll('#transcript-wrap details.session').length >= 6`)
    const sessions = (await page.evaluate(`[...document.querySelectorAll('#transcript-wrap details.session')].map((d) => ({ id: d.dataset.session, head: d.querySelector(':scope > summary').textContent, open: d.open }))`)) as {
      id: string
      head: string
    }[]
    expect(sessions[0]!.head).toMatch(/^#1 coder coder · coding · iteration 1 · section 1 · /)
    expect(sessions[1]!.head).toMatch(/^#2 auditor auditor · auditing · iteration 1 · section 1 · /)
    expect(sessions.map((s) => Number(s.id))).toEqual(sessions.map((_, i) => i + 1))
    const first = page.locator('#transcript-wrap details.session[data-session="1"]')
    if (!(await first.evaluate((d: HTMLDetailsElement) => d.open))) await first.locator(':scope > summary').click()
    await waitUntil(page, `document.querySelector('#transcript-wrap details.session[data-session="1"]').open`)
    const coder = await first.textContent()
    expect(coder).toContain('Writing part1.js.')
    expect(coder).toContain('→ write_file')
    expect(coder).toContain('"path": "part1.js"')
    expect(coder).toContain('← write_file')
    expect(coder).toContain('system')
    // the auditor's report of F1, as a tool call
    const second = page.locator('#transcript-wrap details.session[data-session="2"]')
    await second.locator(':scope > summary').click()
    expect(await second.textContent()).toContain('→ report_finding')
    // sessions fold
    await first.locator(':scope > summary').click()
    await waitUntil(page, `!document.querySelector('#transcript-wrap details.session[data-session="1"]').open`)

    // Findings: F1's story (reported in audit 1, resolved after a later audit)
    await tab(page, 'findings')
    await waitUntil(page, `document.querySelector('#findings-wrap li.story[data-id="F1"]') !== null`)
    const story = await page.locator('#findings-wrap li.story[data-id="F1"]').textContent()
    expect(story).toContain('F1 bug')
    expect(story).toContain('resolved')
    expect(story).toMatch(/reported · in audit 1 · seen at #\d+/)
    expect(story).toMatch(/resolved · after audit 2 · seen at #\d+/)
    expect(await page.locator('#findings-count').textContent()).toBe('(0/1)')

    // Diff of a plain directory: the files the loop's tools wrote (their content before is not known)
    await tab(page, 'diff')
    await waitUntil(page, `document.querySelector('#diff-kind')?.textContent === 'files' && document.querySelectorAll('#diff-wrap details.diff-file').length === 2`)
    expect(await page.locator('#diff-wrap ul.diff-notes').textContent()).toContain('not a git diff')
    expect(await page.locator('#diff-wrap details.diff-file[data-path="part1.js"] .dl-add').allTextContents()).toContain('+  return 10')
    expect(await page.locator('#diff-wrap details.diff-file[data-path="part1.js"] .df-badge').textContent()).toBe('written')

    // One snapshot per render: the header's tokens are the usage panel's
    const live = await tokenCounts(page)
    expect(live.head).not.toBeNull()
    expect(live.head).toBe(live.usage)

    // Layout and screenshots at 1280 px, then 900 px
    await tab(page, 'log')
    await expectLayoutHolds(page, 1280)
    await page.screenshot({ path: join(ARTIFACTS, 'panels-1280x800.png') })
    await page.setViewportSize({ width: 900, height: 800 })
    await expectLayoutHolds(page, 900)
    await page.screenshot({ path: join(ARTIFACTS, 'panels-900x800.png') })
    await page.setViewportSize({ width: 1280, height: 800 })

    // A past snapshot: everything shows it (header, usage, chart), and nothing says "now" or "live"
    await page.locator('#slider').focus()
    await page.keyboard.press('Home')
    await page.keyboard.press('ArrowRight')
    await waitUntil(page, `document.querySelector('#head-past') !== null && document.querySelector('#context .past-note') !== null`)
    const seq = (await page.locator('#head-past').textContent())!.match(/^snapshot #(\d+)/)![1]
    expect(await page.locator('#context .past-note').textContent()).toMatch(new RegExp(`^Snapshot #${seq} `))
    const past = await tokenCounts(page)
    expect(past.head).toBe(past.usage)
    expect(past.head).not.toBe(live.head)
    const text = (await page.evaluate(`document.querySelector('#app').innerText`)) as string
    expect(text).not.toMatch(/\bnow\b/i)
    expect(await page.locator('#loop-head').textContent()).not.toMatch(/live|ended/)
    expect(await page.locator('#loop-status').textContent()).toBe('running')
    // the rows after the snapshot are translucent: the sticky header stays on top of them
    await expectStickyHeaderOnTop(page)
    await expectLayoutHolds(page, 1280)
    await page.screenshot({ path: join(ARTIFACTS, 'panels-past-1280x800.png') })
    await page.locator('#live-btn').click()
    await waitUntil(page, `document.querySelector('#head-run')?.textContent === 'ended' && document.querySelector('#loop-status')?.textContent === 'completed'`)

    // Diff of a git workspace: its branch against its base
    await page.locator('#loop-list li[data-name="gitty"]').click()
    await tab(page, 'diff')
    await waitUntil(page, `document.querySelector('#diff-kind')?.textContent === 'git' && document.querySelector('#diff-wrap details.diff-file[data-path="part1.js"]') !== null`)
    expect(await page.locator('#diff-wrap details.diff-file[data-path="part1.js"] .df-badge').textContent()).toBe('added')
    expect(await page.locator('#diff-wrap details.diff-file[data-path="part1.js"] .dl-add').allTextContents()).toContain('+export function part1() {')
    expect(await page.locator('#diff-wrap ul.diff-notes').textContent()).toContain('git diff of branch loop/gitty')
    await page.screenshot({ path: join(ARTIFACTS, 'panels-git-diff-1280x800.png') })
    await closePage(page)
  })

  it('the list: running loops on top, then newest first; the filter; one status per loop; selections stay while updates arrive', async () => {
    // 'slow' is owned by this process and moves on only when told (a real run replayed step by step)
    const data = join(dir, 'data')
    await (await run(join(dir, 'template-data'), 'template', sectionedFixture({ sections: 3 }))).exited
    await (await run(data, 'old-done', sectionedFixture({ sections: 1 }))).exited
    const slow = await storeReplay(join(dir, 'template-data'), 'template', data, 'slow')
    await slow.next()
    viewer = await startViewer({ dataDir: data, port: 0, log: () => {} })
    const page = await openPage(1280)
    await waitUntil(page, `document.querySelector('#loop-list li[data-name="slow"][data-run="owned"]') !== null`)
    await (await run(data, 'new-done', sectionedFixture({ sections: 1 }))).exited
    await waitUntil(page, `document.querySelector('#loop-list li[data-name="new-done"][data-status="completed"]') !== null`)

    // running first (though older), then newest first
    expect((await listed(page)).map((l) => l.name)).toEqual(['slow', 'new-done', 'old-done'])
    expect((await listed(page))[0]).toMatchObject({ status: 'running', run: 'owned' })
    expect((await listed(page))[0]!.text).toContain(`run by pid ${process.pid}`)
    await expectNoContradiction(page)

    // the filter: every word in the name, status or title
    const filter = page.locator('#loop-filter')
    await filter.fill('done')
    await waitUntil(page, `document.querySelectorAll('#loop-list li').length === 2`)
    expect((await listed(page)).map((l) => l.name)).toEqual(['new-done', 'old-done'])
    expect(await page.locator('#loop-count').textContent()).toBe('(2/3)')
    await filter.fill('running')
    await waitUntil(page, `document.querySelectorAll('#loop-list li').length === 1`)
    expect((await listed(page)).map((l) => l.name)).toEqual(['slow'])
    await filter.fill('3 parts toolkit')
    await waitUntil(page, `document.querySelectorAll('#loop-list li').length === 1 && document.querySelector('#loop-list li').dataset.name === 'slow'`)
    await filter.fill('completed new')
    await waitUntil(page, `document.querySelectorAll('#loop-list li').length === 1 && document.querySelector('#loop-list li').dataset.name === 'new-done'`)
    await filter.fill('nothing-like-it')
    await waitUntil(page, `document.querySelectorAll('#loop-list li').length === 0 && !document.querySelector('#no-match').hidden`)
    await filter.fill('')
    await waitUntil(page, `document.querySelectorAll('#loop-list li').length === 3`)

    // the transcript grows session by session; what was shown stays as it is
    await page.locator('#loop-list li[data-name="slow"]').click()
    await waitUntil(page, `document.querySelector('#loop-title')?.textContent === 'slow'`)
    await slow.next()
    await tab(page, 'transcript')
    await waitUntil(page, `document.querySelectorAll('#transcript-wrap details.session').length === 2`)
    await page.evaluate(`document.querySelector('#transcript-wrap details.session[data-session="1"]').dataset.mark = 'kept'`)
    await slow.next()
    await waitUntil(page, `document.querySelectorAll('#transcript-wrap details.session').length === 3`)
    expect(await page.locator('#transcript-wrap details.session[data-session="1"]').getAttribute('data-mark')).toBe('kept')
    expect(await page.locator('#transcript-wrap details.session[data-session="3"] > summary').textContent()).toMatch(/^#3 coder coder · coding · iteration 2 · section 2 · /)

    // select the first transition, then let the loop move on
    await tab(page, 'log')
    await waitUntil(page, `document.querySelectorAll('#event-log tbody tr:not(.row-detail)').length === 3`)
    await page.locator('#event-log tbody tr[data-key="1"]').click()
    await waitUntil(page, `document.querySelector('#event-log tr.selected')?.dataset.key === '1'`)
    // marks on the nodes: a rebuilt table or list would lose them
    await page.evaluate(`document.querySelector('#event-log tr[data-key="1"]').dataset.mark = 'kept';
      document.querySelector('#event-log tr.row-detail').dataset.mark = 'kept';
      document.querySelector('#loop-list li[data-name="slow"]').dataset.mark = 'kept'`)
    for (let step = 4; step < slow.steps; step++) {
      await slow.next()
      await waitUntil(page, `document.querySelectorAll('#event-log tbody tr:not(.row-detail)').length === ${step}`)
      // each update: the header and the usage panel show one record, and no loop two statuses
      const { state, iteration } = slow.after[step - 1]!
      await waitUntil(
        page,
        `document.querySelector('#state-now')?.textContent === ${JSON.stringify(state)} && document.querySelector('#loop-list li[data-name="slow"] .loop-line').textContent.includes(' · it ${iteration} ')`,
      )
      const t = await tokenCounts(page)
      expect(t.head).not.toBeNull()
      expect(t.head).toBe(t.usage)
      await expectNoContradiction(page)
    }
    const kept = (await page.evaluate(`(() => {
      const row = document.querySelector('#event-log tr[data-key="1"]')
      return {
        selected: row.classList.contains('selected'),
        row: row.dataset.mark,
        detail: row.nextElementSibling?.classList.contains('row-detail') ? row.nextElementSibling.dataset.mark : null,
        item: document.querySelector('#loop-list li[data-name="slow"]').dataset.mark,
        selectedRows: document.querySelectorAll('#event-log tr.selected').length,
        newest: document.querySelector('#event-log tbody tr').dataset.key,
      }
    })()`)) as Record<string, unknown>
    expect(kept).toEqual({ selected: true, row: 'kept', detail: 'kept', item: 'kept', selectedRows: 1, newest: String(slow.steps - 1) })

    // no process runs it now: its record still says running, so it shows as interrupted (and no loop is on top)
    await slow.release()
    await waitUntil(page, `document.querySelector('#loop-list li[data-name="slow"]')?.dataset.run === 'none'`, 30_000)
    await waitUntil(page, `document.querySelector('#loop-status')?.textContent === 'interrupted' && document.querySelector('#head-run')?.textContent === 'no process (resumable)'`)
    expect((await listed(page)).find((l) => l.name === 'slow')).toMatchObject({ status: 'interrupted', badge: 'interrupted' })
    expect(await page.locator('#event-log tr.selected').getAttribute('data-key')).toBe('1')
    await expectNoContradiction(page)
    expect((await listed(page)).map((l) => l.name)).toEqual(['new-done', 'slow', 'old-done'])
    await closePage(page)
  })

  it('a loop streamed with --inspect: stream events with payloads stay selected as events arrive; transitions carry their event; no transcript or diff without the store', async () => {
    viewer = await startViewer({ dataDir: join(dir, 'viewer-data'), port: 0, log: () => {} })
    const page = await openPage(1280)
    // it writes a file, then waits on its model: it moves on only by the commands sent to it
    const scenario = {
      coder: [{ type: 'tool_calls', text: 'Writing part1.js.', calls: [{ name: 'write_file', arguments: { path: 'part1.js', content: 'export const one = 1\n' } }] }, { type: 'hang' }, { type: 'hang' }],
      auditor: [],
    }
    const engineData = join(dir, 'engine-data')
    const streamed = await run(engineData, 'streamed', { plan: sectionedFixture({ sections: 1 }).plan, scenario }, { inspect: viewer.inspectUrl })
    const client = new LoopClient({ dataDir: engineData })
    await waitUntil(page, `document.querySelector('#loop-list li[data-name="streamed"][data-run="live"] .dot-live') !== null && document.querySelector('#loop-title')?.textContent === 'streamed'`)
    await expectNoContradiction(page)

    await tab(page, 'stream')
    await waitUntil(page, `[...document.querySelectorAll('#stream-log tbody tr')].some((tr) => tr.textContent.includes('session.tool.finished'))`)
    const turn = page.locator('#stream-log tbody tr', { hasText: 'session.turn' }).last()
    const key = await turn.getAttribute('data-key')
    await turn.click()
    await waitUntil(page, `document.querySelector('#stream-log tr.selected')?.dataset.key === ${JSON.stringify(key)}`)
    const payload = await page.locator('#stream-log tr.row-detail pre.payload').textContent()
    expect(payload).toContain('"type": "session.turn"')
    expect(payload).toContain('"name": "write_file"')
    await page.evaluate(`document.querySelector('#stream-log tr.selected').dataset.mark = 'kept'`)
    // events arrive: three messages said to the loop
    for (const text of ['first note', 'second note', 'third note']) await client.send('streamed', { type: 'loop.say', text })
    await waitUntil(page, `[...document.querySelectorAll('#stream-log tbody tr')].filter((tr) => tr.textContent.includes('loop.say')).length === 3`)
    expect(
      await page.evaluate(`(() => { const r = document.querySelector('#stream-log tr.selected'); return [r.dataset.key, r.dataset.mark, r.nextElementSibling.classList.contains('row-detail'), document.querySelectorAll('#stream-log tr.selected').length] })()`),
    ).toEqual([key, 'kept', true, 1])
    // the newest on top, with its payload when clicked
    const said = page.locator('#stream-log tbody tr', { hasText: 'loop.say' }).first()
    await said.click()
    await waitUntil(page, `document.querySelector('#stream-log tr.row-detail pre.payload')?.textContent.includes('third note')`)
    // the section column of a sectioned loop
    expect(await page.locator('#stream-log').getAttribute('class')).toContain('sectioned')
    expect(await said.locator('td.col-section').textContent()).toBe('1')
    await page.screenshot({ path: join(ARTIFACTS, 'panels-stream-1280x800.png') })

    // a transition seen live carries the event that made it
    await tab(page, 'log')
    await client.send('streamed', { type: 'loop.pause' })
    await waitUntil(page, `document.querySelector('#loop-status')?.textContent === 'paused'`)
    await expectNoContradiction(page)
    await client.send('streamed', { type: 'loop.resume' })
    await waitUntil(page, `document.querySelector('#loop-status')?.textContent === 'running' && [...document.querySelectorAll('#event-log tbody tr')].some((tr) => tr.textContent.includes('loop.resume'))`)
    await page.locator('#event-log tbody tr', { hasText: 'loop.pause' }).click()
    await waitUntil(page, `document.querySelector('#event-log tr.row-detail') !== null`)
    expect(await page.locator('#event-log tr.row-detail').textContent()).toContain('"type": "loop.pause"')

    // no store record: no transcript, no diff, and the page says why
    await tab(page, 'transcript')
    await waitUntil(page, `document.querySelector('#transcript-wrap')?.textContent.includes('known only from inspection events')`)
    await tab(page, 'diff')
    await waitUntil(page, `document.querySelector('#diff-wrap')?.textContent.includes('no record of this loop')`)

    // cancelled while its engine still streams: ended, never live
    await client.send('streamed', { type: 'loop.cancel' })
    await waitUntil(page, `document.querySelector('#loop-list li[data-name="streamed"]')?.dataset.status === 'cancelled'`, 30_000)
    await expectNoContradiction(page)
    expect(await page.locator('#head-run').textContent()).toBe('ended')
    await streamed.exited
    await closePage(page)
  })
})
