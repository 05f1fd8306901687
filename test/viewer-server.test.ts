import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createWebSocketInspector } from '@statelyai/inspect'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { MemoryStore } from '../adapters/memory-store.ts'
import { createEngine, type Engine } from '../services/engine.ts'
import { serializeChart, type ChartState } from '../services/inspect/chart.ts'
import { createStatelyInspect } from '../services/inspect/stately.ts'
import { checkBindHost, startViewer, type LoopPayload, type LoopSummary, type Viewer } from '../services/inspect/viewer-server.ts'
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

/** A page client of the viewer: collects what the server pushes. */
async function pageClient(viewer: Viewer) {
  const ws = new WebSocket(`${viewer.inspectUrl}ws/page`)
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

async function until<T>(what: string, fn: () => T | undefined | null | false, ms = 8000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = fn()
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
    expect(() => checkBindHost('0.0.0.0', false)).toThrow(
      'inspect: refusing to listen on 0.0.0.0 without --host; the viewer has no authentication',
    )
    expect(checkBindHost('0.0.0.0', true)).toMatch(/^inspect: warning: listening on 0\.0\.0\.0 without authentication/)
    await expect(startViewer({ dataDir: dir, port: 0, host: '0.0.0.0', explicitHost: false })).rejects.toThrow(
      'inspect: refusing to listen on 0.0.0.0 without --host; the viewer has no authentication',
    )
  })

  it('serves the page with a no-external-requests policy, the chart, and only to loopback Host names', async () => {
    viewer = await startViewer({ dataDir: join(dir, 'data'), port: 0 })
    expect(viewer.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    const page = await get(viewer.url)
    expect(page.status).toBe(200)
    expect(page.body).toContain('<script src="/app.js" defer></script>')
    expect(page.body).not.toMatch(/https?:\/\/(?!127\.0\.0\.1)/)
    expect(page.headers['content-security-policy']).toContain("default-src 'none'")
    expect(page.headers['content-security-policy']).toContain("connect-src 'self'")
    for (const asset of ['app.js', 'style.css']) {
      const r = await get(`${viewer.url}${asset}`)
      expect(r.status).toBe(200)
      expect(r.body).not.toMatch(/(?:https?:)?\/\/[a-z0-9.-]+\.(?:com|net|org|io|dev)\b/i)
    }
    const chart = JSON.parse((await get(`${viewer.url}api/chart`)).body) as ChartState
    expect(chart).toEqual(serializeChart())
    expect(find(chart, 'running.coding')!.transitions.map((t) => `${t.label}→${t.targets.join()}`)).toEqual([
      'session.done→running.auditing',
      'session.failed→running.failed',
    ])
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
})
