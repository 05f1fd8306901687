/**
 * The statechart drawn as a graph, in a real browser (Debian's chromium through
 * playwright-core): ELK lays it out in the page (its bundle served by the viewer), the
 * current state and the path the loop took are marked on it and follow the history
 * slider, the machine's internals wait behind a toggle, and a 24-section plan's track
 * fits a 1280×800 window. Loops run in child processes, as `loopstate run` would.
 * Screenshots land in test-artifacts/viewer/ (git-ignored).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { PageHistoryEntry } from '../services/inspect/server/types.ts'
import { startViewer, type Viewer } from '../services/inspect/viewer-server.ts'
import { launchChromium, runLoopChild, waitUntil, type LoopChild } from './helpers/viewer-graph.ts'
import { sectionedFixture } from './helpers/viewer-fixtures.ts'

const ARTIFACTS = resolve('test-artifacts/viewer')

/** What the page's graph shows: the current state, visited states, edges with how often each was taken. */
interface Drawn {
  value: string | null
  current: string[]
  visited: string[]
  taken: Record<string, number>
  last: string[]
  edges: number
  arrows: number
  choices: number
  labels: string[]
}
const DRAWN = `(() => {
  const g = document.querySelector('#graph')
  if (!g) return null
  const edges = [...g.querySelectorAll('.g-edge')]
  const taken = {}
  for (const e of edges) if (e.dataset.taken !== '0') taken[e.dataset.from + ' > ' + e.dataset.to] = Number(e.dataset.taken)
  return {
    value: g.dataset.value || null,
    current: [...g.querySelectorAll('.g-node[data-current="true"]')].map((n) => n.dataset.state),
    visited: [...g.querySelectorAll('.g-node[data-visited="true"]')].map((n) => n.dataset.state).sort(),
    taken,
    last: edges.filter((e) => e.dataset.last === 'true').map((e) => e.dataset.from + ' > ' + e.dataset.to),
    edges: edges.length,
    arrows: edges.filter((e) => /^url\\(#g-arrow-/.test(e.querySelector('path').getAttribute('marker-end') || '')).length,
    choices: g.querySelectorAll('.g-node[data-kind="choice"]').length,
    labels: [...g.querySelectorAll('.g-edge-label tspan')].map((t) => t.textContent),
  }
})()`

/**
 * The user view's path for a history, worked out here from the entries alone: a
 * session phase is drawn without its `watching` child, an end other than `completed`
 * is reached from `running`, the first entry comes from the initial marker, and
 * `backingOff` and the phase it retries share one edge.
 */
function expectedPath(history: PageHistoryEntry[]) {
  const drawn = (s: string) => (s === '' ? '(start)' : s.replace(/\.watching$/, ''))
  const taken: Record<string, number> = {}
  const visited = new Set<string>()
  for (const h of history) {
    let from = drawn(h.from)
    const to = drawn(h.to)
    if (['errored', 'stalled', 'cancelled'].includes(to) && from.startsWith('running.')) from = 'running'
    // a waiting state and the state it returns to share one edge, drawn from the waiting state
    const key = to === 'running.backingOff' ? `${to} > ${from}` : `${from} > ${to}`
    taken[key] = (taken[key] ?? 0) + 1
    for (const s of [from, to]) {
      visited.add(s)
      if (s.startsWith('running.')) visited.add('running')
    }
  }
  return { taken, visited: [...visited].sort() }
}

describe('the statechart graph in a browser', { timeout: 120_000 }, () => {
  let browser: Browser
  let dir: string
  let viewer: Viewer | null = null
  let child: LoopChild | null = null
  let requests: string[] = []

  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true })
    browser = await launchChromium()
  })
  afterAll(async () => {
    await browser?.close()
  })
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loopstate-graph-'))
    requests = []
  })
  afterEach(async () => {
    await child?.stop()
    child = null
    await viewer?.close()
    viewer = null
    await rm(dir, { recursive: true, force: true })
  })

  async function openPage(width: number, height = 800): Promise<Page> {
    const page = await browser.newPage({ viewport: { width, height } })
    page.on('request', (r) => requests.push(r.url()))
    page.on('websocket', (w) => requests.push(w.url()))
    await page.goto(viewer!.url)
    return page
  }
  const drawn = async (page: Page) => (await page.evaluate(DRAWN)) as Drawn
  const currentIs = (state: string, value: string) =>
    `(() => { const g = document.querySelector('#graph'); const c = g && g.querySelector('.g-node[data-current="true"]'); return c !== null && c.dataset.state === ${JSON.stringify(state)} && g.dataset.value === ${JSON.stringify(value)} })()`

  function expectOnlyTheViewer(): void {
    expect(requests.some((u) => u.endsWith('/vendor/elk.bundled.js'))).toBe(true)
    for (const url of requests) {
      const u = new URL(url)
      if (u.protocol === 'data:') continue
      expect(`${u.hostname}:${u.port}`, url).toBe(`127.0.0.1:${viewer!.port}`)
    }
  }

  it('draws the chart with arrows, marks the current state and the path taken, follows the slider, hides internals behind a toggle', async () => {
    const data = join(dir, 'data')
    viewer = await startViewer({ dataDir: data, port: 0, log: () => {} })
    // the layout engine comes from the viewer, as JavaScript, under the page's policy
    const elk = await fetch(new URL('/vendor/elk.bundled.js', viewer.url))
    expect(elk.status).toBe(200)
    expect(elk.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    expect(elk.headers.get('content-security-policy')).toContain("script-src 'self'")
    expect(await elk.text()).toContain('ELK')

    const page = await openPage(1280)
    // 2 sections, the first audit of section 1 dirty, the coder's first call refused (a retry); each model answer takes 300 ms
    const fixture = sectionedFixture({ sections: 2, dirtySection: 1, delayMs: 300 })
    fixture.scenario.coder.unshift({ type: 'error', error: 'ECONNREFUSED', delayMs: 100 })
    child = await runLoopChild(dir, 'graph-live', fixture, data)

    // live: the state the loop is in is the one marked, in the graph and in the header
    await waitUntil(page, currentIs('running.auditing', 'running.auditing.watching'))
    await waitUntil(page, `document.querySelector('#state-now')?.textContent === 'running.auditing.watching'`)
    // the path comes from the loop's history, which the page fetches beside the live state: wait for it too
    await waitUntil(
      page,
      `[...document.querySelectorAll('#graph .g-edge')].some((e) => e.dataset.from === 'running.coding' && e.dataset.to === 'running.auditing' && Number(e.dataset.taken) >= 1)`,
    )
    let g = await drawn(page)
    expect(g.current).toEqual(['running.auditing'])
    expect(await page.locator('#graph .g-node[data-state="running"]').getAttribute('data-active')).toBe('true')
    expect(g.taken['running.coding > running.auditing']).toBeGreaterThanOrEqual(1)
    await page.screenshot({ path: join(ARTIFACTS, 'graph-live-1280x800.png') })

    await waitUntil(page, currentIs('completed', 'completed'), { polls: 1200 })
    await child.exited
    const history = (await (await fetch(new URL('/api/loops/graph-live/history', viewer.url))).json()) as PageHistoryEntry[]
    const expected = expectedPath(history)
    expect(history.map((h) => h.to.replace(/\.watching$/, '').replace(/^running\./, ''))).toEqual([
      'coding', 'backingOff', 'coding', 'auditing', 'coding', 'auditing', 'coding', 'auditing', 'finalAuditing', 'completed',
    ])
    await waitUntil(page, `document.querySelectorAll('#graph .g-edge:not([data-taken="0"])').length === ${Object.keys(expected.taken).length}`)

    // the drawing: SVG paths with arrowheads, an accessible image, internals hidden
    g = await drawn(page)
    expect(await page.locator('#graph').getAttribute('role')).toBe('img')
    expect(await page.locator('#graph > title').textContent()).toContain('current state completed')
    expect(await page.locator('#graph marker').count()).toBe(3)
    expect(g.edges).toBeGreaterThan(20)
    expect(g.arrows).toBe(g.edges)
    expect(g.choices).toBe(0)
    expect(g.labels).toEqual(expect.arrayContaining(['done', 'next section', 'dirty audit', 'failed / retry', 'pause / resume / continue']))
    expect(await page.locator('#graph .g-edge[data-two-way="true"] path[marker-start]').count()).toBe(5)
    expect(g.labels.filter((l) => /\[|auditClean|session\.|xstate\./.test(l))).toEqual([])
    expect(await page.locator('#show-internals').isChecked()).toBe(false)
    expect(await page.locator('#show-internals').isVisible()).toBe(true)

    // the path taken is the history's: every entry on its edge, counted; the last one marked
    expect(g.current).toEqual(['completed'])
    expect(g.taken).toEqual(expected.taken)
    expect(g.taken).toEqual({
      '(start) > running.coding': 1,
      'running.backingOff > running.coding': 2,
      'running.coding > running.auditing': 3,
      'running.auditing > running.coding': 2,
      'running.auditing > running.finalAuditing': 1,
      'running.finalAuditing > completed': 1,
    })
    expect(g.visited).toEqual(expected.visited)
    expect(g.last).toEqual(['running.finalAuditing > completed'])
    const count = (from: string, to: string) => page.locator(`#graph .g-edge-label[data-edge="${from}→${to}"] .g-count text`).textContent()
    expect(await count('running.coding', 'running.auditing')).toBe('×3')
    expect(await count('running.auditing', 'running.coding')).toBe('×2')
    expect(await count('running.auditing', 'running.finalAuditing')).toBe('')
    await page.screenshot({ path: join(ARTIFACTS, 'graph-completed-1280x800.png') })

    // the slider: the marks follow the snapshot shown, the path drawn up to its entry
    const snapshots = history.filter((h) => h.snapshot)
    expect(snapshots.length).toBeGreaterThanOrEqual(4)
    await page.locator('#slider').focus()
    await page.keyboard.press('Home')
    for (let i = 0; i < 4; i++) {
      if (i > 0) await page.keyboard.press('ArrowRight')
      const at = snapshots[i]!
      const upTo = expectedPath(history.filter((h) => h.seq <= at.seq))
      await waitUntil(page, `document.body.classList.contains('past') && document.querySelector('#graph > title')?.textContent.includes('at snapshot #${at.seq},') && ${currentIs(at.to.replace(/\.watching$/, ''), at.to)}`)
      g = await drawn(page)
      expect(g.taken, `snapshot #${at.seq}`).toEqual(upTo.taken)
      expect(g.visited, `snapshot #${at.seq}`).toEqual(upTo.visited)
      expect(g.last, `snapshot #${at.seq}`).toHaveLength(1)
      if (i === 0) expect(g.taken).toEqual({ '(start) > running.coding': 1 })
    }
    await page.screenshot({ path: join(ARTIFACTS, 'graph-slider-1280x800.png') })
    await page.locator('#live-btn').click()
    await waitUntil(page, `!document.body.classList.contains('past') && ${currentIs('completed', 'completed')}`)
    expect((await drawn(page)).taken).toEqual(expected.taken)

    // "Show internals": the choices the loop went through, the guards, the same path through them
    await page.locator('#show-internals').check()
    await waitUntil(page, `document.querySelector('#graph-wrap')?.dataset.mode === 'internal' && document.querySelector('#graph .g-node[data-kind="choice"]') !== null`)
    g = await drawn(page)
    expect(g.current).toEqual(['completed'])
    expect(g.choices).toBe(4)
    expect(g.labels.some((l) => l.includes('[auditClean'))).toBe(true)
    expect(g.taken).toMatchObject({
      '(start) > running.dispatching': 1,
      'running.dispatching > running.coding': 2,
      'running.coding > running.failed': 1,
      'running.failed > running.backingOff': 1,
      'running.backingOff > running.dispatching': 1,
      'running.coding > running.auditing': 3,
      'running.auditing > running.judgingAudit': 3,
      'running.judgingAudit > running.coding': 2,
      'running.judgingAudit > running.finalAuditing': 1,
      'running.finalAuditing > running.judgingFinalAudit': 1,
      'running.judgingFinalAudit > completed': 1,
    })
    expect(g.last.sort()).toEqual(['running.finalAuditing > running.judgingFinalAudit', 'running.judgingFinalAudit > completed'])
    await page.screenshot({ path: join(ARTIFACTS, 'graph-internals-1280x800.png') })
    await page.locator('#show-internals').uncheck()
    await waitUntil(page, `document.querySelector('#graph-wrap')?.dataset.mode === 'user' && document.querySelector('#graph .g-node[data-kind="choice"]') === null`)
    expect((await drawn(page)).taken).toEqual(expected.taken)

    // Expand: the graph over the window, larger; Esc brings it back
    const fitted = Number(await page.locator('#graph').getAttribute('data-scale'))
    await page.locator('#graph-expand').click()
    await waitUntil(page, `document.body.classList.contains('graph-expanded') && Number(document.querySelector('#graph').dataset.scale) > ${fitted}`)
    const big = (await page.locator('#chart').boundingBox())!
    expect(big.width).toBeGreaterThan(1200)
    expect(big.y + big.height).toBeLessThanOrEqual(800)
    await page.screenshot({ path: join(ARTIFACTS, 'graph-expanded-1280x800.png') })
    await page.keyboard.press('Escape')
    await waitUntil(page, `!document.body.classList.contains('graph-expanded') && document.querySelector('#graph').dataset.scale === ${JSON.stringify(fitted.toFixed(3))}`)

    // 900 px wide: the graph still drawn, fitted or scrolling inside its panel
    await page.setViewportSize({ width: 900, height: 800 })
    await waitUntil(page, `(() => { const w = document.querySelector('#graph-wrap'); const s = document.querySelector('#graph'); return w && s && Number(s.getAttribute('width')) <= Math.max(w.clientWidth, Number(s.dataset.width) * 0.61) })()`)
    const wrap = await page.locator('#graph-wrap').boundingBox()
    expect(wrap!.x + wrap!.width).toBeLessThanOrEqual(900)
    expect(await page.locator('#graph .g-node[data-current="true"]').count()).toBe(1)
    await page.screenshot({ path: join(ARTIFACTS, 'graph-completed-900x800.png') })
    expectOnlyTheViewer()
    await page.close()
  })

  it('shows the section track of a 24-section plan within 1280×800: every section, its attempts, its summary on selection', async () => {
    const data = join(dir, 'data')
    viewer = await startViewer({ dataDir: data, port: 0, log: () => {} })
    const page = await openPage(1280)
    // section 3's first audit is dirty; the loop is still at work while the page is looked at
    child = await runLoopChild(dir, 'plan-24', sectionedFixture({ sections: 24, dirtySection: 3, delayMs: 150 }), data)
    await waitUntil(page, `document.querySelectorAll('#section-track .sec-chip').length === 24`)
    await waitUntil(page, `document.querySelectorAll('#section-track .sec-chip[data-status="done"]').length >= 4`, { polls: 1200 })

    const chips = page.locator('#section-track .sec-chip')
    expect(await chips.count()).toBe(24)
    expect(await page.locator('#section-track .sec-chips').getAttribute('aria-label')).toBe('24 sections')
    // all 24 on screen at once, inside the track (not scrolled away), and legible (read at once: the track is live)
    const boxes = (await page.evaluate(`(() => {
      const t = document.querySelector('#section-track').getBoundingClientRect()
      return [...document.querySelectorAll('#section-track .sec-chip')].map((c) => {
        const r = c.getBoundingClientRect()
        return { n: c.querySelector('.sec-n').textContent, left: r.left, top: r.top, right: r.right, bottom: r.bottom, height: r.height, trackBottom: t.bottom }
      })
    })()`)) as { n: string; left: number; top: number; right: number; bottom: number; height: number; trackBottom: number }[]
    expect(boxes.map((b) => b.n)).toEqual(Array.from({ length: 24 }, (_, i) => String(i + 1)))
    for (const b of boxes) {
      expect(b.left, `chip ${b.n}`).toBeGreaterThanOrEqual(0)
      expect(b.top, `chip ${b.n}`).toBeGreaterThanOrEqual(0)
      expect(b.right, `chip ${b.n}`).toBeLessThanOrEqual(1280)
      expect(b.bottom, `chip ${b.n}`).toBeLessThanOrEqual(800)
      expect(b.bottom, `chip ${b.n}`).toBeLessThanOrEqual(b.trackBottom)
      expect(b.height, `chip ${b.n}`).toBeGreaterThanOrEqual(20)
    }
    expect(await page.evaluate(`parseFloat(getComputedStyle(document.querySelector('#section-track .sec-chip')).fontSize)`)).toBeGreaterThanOrEqual(11)
    // done, in progress, pending; section 3 took a dirty audit
    const statuses = await page.evaluate(`[...document.querySelectorAll('#section-track .sec-chip')].map((c) => c.dataset.status)`)
    expect((statuses as string[]).slice(0, 4)).toEqual(['done', 'done', 'done', 'done'])
    expect((statuses as string[]).at(-1)).toBe('pending')
    const third = page.locator('#section-track .sec-chip[data-index="3"]')
    expect(await third.getAttribute('data-attempts')).toBe('1')
    expect(await third.locator('.sec-att').textContent()).toBe('1')
    expect(await third.getAttribute('title')).toMatch(/^3\. Part 3: pad a string\ndone · 1 dirty audit\n\n[\s\S]*wrote part3\.js/)
    expect(await page.locator('#section-track .sec-chip[data-index="2"] .sec-att').isVisible()).toBe(false)
    // the graph is there too, the loop's state marked
    await waitUntil(page, `document.querySelector('#graph .g-node[data-current="true"]') !== null`)
    await page.screenshot({ path: join(ARTIFACTS, 'graph-24-sections-1280x800.png') })

    // selecting a section: its title, status, attempts and summary below the track
    await third.click()
    await waitUntil(page, `document.querySelector('#sec-detail')?.dataset.index === '3'`)
    expect(await third.getAttribute('aria-pressed')).toBe('true')
    const detail = page.locator('#sec-detail')
    expect(await detail.isVisible()).toBe(true)
    expect(await detail.locator('.sec-detail-head').textContent()).toContain('3/24 · Part 3: pad a string')
    expect(await detail.locator('.sec-attempts').textContent()).toBe('1 dirty audit')
    expect(await detail.locator('.sec-summary').textContent()).toContain('wrote part3.js exporting part3()')
    const summaryBox = (await detail.locator('.sec-summary').boundingBox())!
    expect(summaryBox.y + summaryBox.height).toBeLessThanOrEqual(800)
    // it stays selected while the loop moves on
    const doneNow = await page.evaluate(`document.querySelectorAll('#section-track .sec-chip[data-status="done"]').length`)
    await waitUntil(page, `document.querySelectorAll('#section-track .sec-chip[data-status="done"]').length > ${doneNow} || document.querySelector('#loop-status')?.textContent === 'completed'`, { polls: 1200 })
    expect(await page.locator('#sec-detail').getAttribute('data-index')).toBe('3')
    await page.screenshot({ path: join(ARTIFACTS, 'graph-24-sections-selected-1280x800.png') })

    // 900×800: the track wraps, every section still on screen
    await page.setViewportSize({ width: 900, height: 800 })
    await waitUntil(page, `(() => { const cs = [...document.querySelectorAll('#section-track .sec-chip')]; return cs.length === 24 && cs.every((c) => { const r = c.getBoundingClientRect(); return r.right <= 900 && r.bottom <= 800 && r.top >= 0 }) })()`)
    await page.screenshot({ path: join(ARTIFACTS, 'graph-24-sections-900x800.png') })
    expectOnlyTheViewer()
    await page.close()
  })
})
