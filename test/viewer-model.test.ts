/**
 * The viewer's loops model on its own (services/inspect/server/model.ts, records.ts,
 * findings.ts, inspection.ts): the list's order, one answer to who runs a loop, one
 * record per payload, sections and payloads of events, and each finding's story.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { SCHEMA_VERSION, type HistoryEntry, type LoopRecord } from '../adapters/snapshot-store.ts'
import { initialContext } from '../machines/loop.context.ts'
import type { Finding, LoopContext } from '../machines/loop.types.ts'
import { resolveConfig } from '../services/config.ts'
import { findingsReport } from '../services/inspect/server/findings.ts'
import { InspectionEvents } from '../services/inspect/server/inspection.ts'
import { LoopsModel } from '../services/inspect/server/model.ts'
import { eventPayload, uncut, withSections, type ViewerEntry } from '../services/inspect/server/records.ts'
import { REDACTED, sanitize } from '../services/inspect/sanitize.ts'
import { createEngine } from '../services/engine.ts'
import { startViewer } from '../services/inspect/viewer-server.ts'
import { parsePlan } from '../services/plan.ts'
import { sectionedFixture } from './helpers/viewer-fixtures.ts'
import { pieces, random } from './helpers/secret-values.ts'

const PLAN = '# P\n\n<!-- section -->\n## A\na\n<!-- section -->\n## B\nb'

function context(name: string, over: Partial<LoopContext> = {}): LoopContext {
  const c = initialContext({ name, ...parsePlan(PLAN, 'p.md'), workspace: '/w', config: resolveConfig({ models: ['s:m'] }) }, 0)
  return { ...c, status: 'running', phase: 'coding', iteration: 1, ...over }
}

function record(name: string, createdAt: string, over: Partial<LoopContext> = {}, updatedAt = createdAt, value: unknown = { running: { coding: 'watching' } }): LoopRecord {
  const c = context(name, over)
  return {
    schemaVersion: SCHEMA_VERSION,
    name,
    status: c.status,
    reason: c.reason,
    phase: c.phase,
    iteration: c.iteration,
    createdAt,
    updatedAt,
    snapshot: { status: c.status === 'running' ? 'active' : 'done', value, context: c },
  }
}

const usage = (inputTokens: number, outputTokens: number) => ({
  total: { inputTokens, outputTokens, durationMs: 0, costUsd: 0, calls: 1 },
  byModel: {},
  byRole: { coder: { inputTokens, outputTokens, durationMs: 0, costUsd: 0, calls: 1 }, auditor: { inputTokens: 0, outputTokens: 0, durationMs: 0, costUsd: 0, calls: 0 } },
})

const finding = (id: string, over: Partial<Finding> = {}): Finding => ({
  id,
  file: 'a.js',
  line: 1,
  severity: 'bug',
  message: `${id} is wrong`,
  status: 'open',
  section: 0,
  reportedInAudit: 1,
  openAudits: 1,
  recurring: false,
  ...over,
})

const T = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString()

/** An inspector's frame registering (or moving) the loop actor `name` with `c`. */
function frame(type: '@xstate.actor' | '@xstate.snapshot', name: string, c: LoopContext, at: number, value: unknown, event?: { type: string; [k: string]: unknown }) {
  return { type, sessionId: `s-${name}`, name: 'loop', createdAt: String(at), snapshot: { status: 'active', value, context: c }, event }
}

describe('the loops model', () => {
  it('lists the loops some process runs first, then newest first', () => {
    const m = new LoopsModel()
    m.setStore('a-old-done', record('a-old-done', T(1), { status: 'completed' }), null)
    m.setStore('b-running-owned', record('b-running-owned', T(2)), 4242)
    m.setStore('c-new-done', record('c-new-done', T(3), { status: 'completed' }), null)
    m.setStore('d-interrupted', record('d-interrupted', T(4)), null)
    m.setStore('e-paused-owned', record('e-paused-owned', T(0), { status: 'paused' }), 77)
    expect(m.summaries().map((s) => [s.name, s.run])).toEqual([
      ['b-running-owned', 'owned'],
      ['e-paused-owned', 'owned'],
      ['d-interrupted', 'none'],
      ['c-new-done', 'ended'],
      ['a-old-done', 'ended'],
    ])
  })

  it('gives one answer to who runs a loop: an ended loop is ended, whatever still streams or holds it', () => {
    const m = new LoopsModel()
    const inspection = new InspectionEvents(m)
    const sessions = new Set<string>()
    const now = Date.now()
    inspection.inspection(frame('@xstate.actor', 'streamed', context('streamed'), now, { running: { coding: 'watching' } }), sessions)
    expect(m.summaries()[0]).toMatchObject({ name: 'streamed', run: 'live', live: true, status: 'running' })
    // it completes while its engine stays connected (and its claim is still held)
    m.setStore('streamed', record('streamed', T(1), { status: 'completed' }, new Date(now + 1).toISOString(), 'completed'), 999)
    inspection.inspection(frame('@xstate.snapshot', 'streamed', context('streamed', { status: 'completed' }), now + 2, 'completed'), sessions)
    expect(m.summaries()[0]).toMatchObject({ status: 'completed', run: 'ended', live: false, owner: 999 })
    // a record that says running with no process: its clock stopped at its last save
    m.setStore('stopped', record('stopped', T(1), { wallMs: 1000, runningSince: Date.parse(T(1)) }, T(3)), null)
    expect(m.summaries().find((s) => s.name === 'stopped')).toMatchObject({ run: 'none', elapsedMs: 3000 })
    // an inspector-only loop whose engine went away
    inspection.disconnected(sessions)
    m.dropStore('streamed')
    expect(m.summaries().find((s) => s.name === 'streamed')).toMatchObject({ run: 'ended', live: false })
  })

  it('builds a payload from one record: the summary and the detail agree, the store fills in what the inspector cut', () => {
    const m = new LoopsModel()
    const long = `${'x'.repeat(50)} the whole audit text ${'y'.repeat(400)}`
    const audit = { n: 1, phase: 'auditing' as const, section: 0, text: long, clean: true, summaryFound: true, blocking: 0 }
    m.setStore('one', record('one', T(1), { usage: usage(2600, 0), lastAudit: audit }, T(5)), 1)
    // the inspector saw a newer moment (more tokens), with its texts cut
    const cut = sanitize(context('one', { usage: usage(2900, 0), lastAudit: audit }))
    expect(cut.lastAudit!.text).toMatch(/…\(\d+ chars\)$/)
    new InspectionEvents(m).inspection(frame('@xstate.actor', 'one', cut, Date.parse(T(6)), { running: { coding: 'watching' } }), new Set())
    const p = m.payload('one')!
    expect(p.summary.tokens).toBe(2900)
    expect(p.detail.tokens).toBe(2900)
    expect(p.detail.usage.total.inputTokens + p.detail.usage.total.outputTokens).toBe(2900)
    expect(p.detail.lastAudit!.text).toBe(long)
    // a cut string is taken whole only where the store has the same one
    expect(uncut({ a: 'abcdefghijklmnopqrstuvwxyz…(999 chars)' }, { a: 'other text' })).toEqual({ a: 'abcdefghijklmnopqrstuvwxyz…(999 chars)' })
    expect(uncut(['a', 'b', '…(2 more)'], ['a', 'b', 'c', 'd'])).toEqual(['a', 'b', 'c', 'd'])
  })

  it("stamps each transition with its section (from the last snapshot) and each stream event with a seq, its section and its payload", () => {
    const snap = (sectionIndex: number, phase: LoopContext['phase'] = 'coding') => ({ status: 'active' as const, value: {}, context: context('s', { sectionIndex, phase }) })
    const e = (seq: number, over: Partial<HistoryEntry> = {}): ViewerEntry => ({ seq, at: T(seq), event: 'session.done', from: 'a', to: 'b', iteration: 1, phase: 'coding', ...over })
    const entries = withSections([e(3), e(4, { snapshot: snap(0) }), e(5), e(6, { snapshot: snap(1) }), e(7)], null)
    expect(entries.map((x) => x.section)).toEqual([null, 1, 1, 2, 2])
    expect(withSections([e(8)], 2)[0]!.section).toBe(2)

    const m = new LoopsModel()
    const inspection = new InspectionEvents(m)
    const sessions = new Set<string>()
    inspection.inspection(frame('@xstate.actor', 'streamed', context('streamed', { sectionIndex: 1 }), 1, { running: { coding: 'watching' } }), sessions)
    inspection.inspection({ type: '@xstate.event', sessionId: 's-streamed', createdAt: '2', event: { type: 'loop.say', text: 'hi' } }, sessions)
    inspection.inspection({ type: '@xstate.event', sessionId: 's-streamed', createdAt: '3', event: { type: 'loop.say', text: 'z'.repeat(50_000) } }, sessions)
    inspection.inspection(
      frame('@xstate.snapshot', 'streamed', context('streamed', { sectionIndex: 1, phase: 'auditing' }), 4, { running: { auditing: 'watching' } }, { type: 'session.done', text: 'ok' }),
      sessions,
    )
    const stream = m.stream('streamed')
    expect(stream.map((s) => s.seq)).toEqual([1, 2])
    expect(stream[0]).toMatchObject({ type: 'loop.say', section: 2, payload: { type: 'loop.say', text: 'hi' } })
    expect(JSON.stringify(stream[1]!.payload).length).toBeLessThan(20_000)
    const history = m.pageHistory('streamed')
    expect(history.map((h) => [h.seq, h.event, h.section])).toEqual([
      [1, 'xstate.init', 2],
      [2, 'session.done', 2],
    ])
    expect(history[1]!.payload).toEqual({ type: 'session.done', text: 'ok' })
    expect(eventPayload(undefined)).toBeNull()
  })
})

describe("a finding's story", () => {
  const entry = (seq: number, c: Partial<LoopContext> | null, from = 'x'): ViewerEntry => ({
    seq,
    at: T(seq),
    event: 'session.done',
    from,
    to: 'y',
    iteration: c?.iteration ?? 1,
    phase: 'coding',
    ...(c ? { snapshot: { status: 'active' as const, value: {}, context: context('f', c) } } : {}),
  })
  const audit = (n: number) => ({ n, phase: 'auditing' as const, section: 0, text: '', clean: false, summaryFound: false, blocking: 1 })

  it('is read from the snapshots: reported, resolved, reopened, flagged recurring, with the audit last finished', () => {
    const history = [
      entry(1, {}, ''),
      entry(2, { findings: [] }),
      entry(3, { findings: [finding('F1')], lastAudit: audit(1), iteration: 1 }),
      entry(4, { findings: [finding('F1', { status: 'resolved' })], lastAudit: audit(2), iteration: 2 }),
      entry(5, { findings: [finding('F1', { recurring: true })], lastAudit: audit(3), iteration: 3 }),
    ]
    const now = context('f', { findings: [finding('F1', { recurring: true }), finding('F2', { reportedInAudit: 4, status: 'resolved' })], lastAudit: audit(4), iteration: 4 })
    const r = findingsReport(history, now, T(9))
    expect(r.since).toEqual({ seq: 1, at: T(1) })
    expect(r.findings.map((s) => s.finding.id)).toEqual(['F1', 'F2'])
    expect(r.findings[0]!.events.map((e) => [e.what, e.seq, e.audit])).toEqual([
      ['reported', 3, 1],
      ['resolved', 4, 2],
      ['reopened', 5, 3],
      ['recurring', 5, 3],
    ])
    expect(r.findings[0]!.unknown).toEqual([])
    // reported and resolved after the last snapshot: the current record shows both
    expect(r.findings[1]!.events.map((e) => [e.what, e.seq, e.audit])).toEqual([
      ['reported', null, 4],
      ['resolved', null, 4],
    ])
  })

  it('says what the history does not tell: before its first kept snapshot, without snapshots, before a fork', () => {
    const kept = [entry(40, { findings: [finding('F1', { reportedInAudit: 2, status: 'resolved' })], lastAudit: audit(3) })]
    const r = findingsReport(kept, context('f', { findings: [finding('F1', { reportedInAudit: 2, status: 'resolved' })] }), T(50))
    expect(r.findings[0]!.events).toEqual([])
    expect(r.findings[0]!.unknown).toEqual([
      'reported in audit 2, before the first snapshot the history keeps (#40): when is not known',
      'already resolved when first seen: when it was resolved is not known',
    ])
    const none = findingsReport([], context('f', { findings: [finding('F1')] }), T(50))
    expect(none.since).toBeNull()
    expect(none.findings[0]!.unknown[0]).toContain('the history keeps no snapshot')
    const fork = findingsReport(
      [entry(1, { findings: [finding('F1')] }, '')],
      context('f', { findings: [finding('F1')], forkedFrom: { name: 'parent', seq: 7 } }),
      T(50),
    )
    expect(fork.findings[0]!.unknown[0]).toBe('reported in audit 1 of parent, before this loop was forked from it (at its #7): when is not known')
  })
})

describe('the panels routes', () => {
  it('serve the transcript (from a session on), the findings and the diff of a stored loop, redacted; 404 for a loop not there', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'loopstate-panels-api-'))
    try {
      const data = join(dir, 'data')
      const ws = join(dir, 'ws')
      await mkdir(ws)
      const secret = `ghp_${random(36)}`
      const f = sectionedFixture({ sections: 2, dirtySection: 2 })
      // the first write carries a token: the transcript and the diff show it redacted
      const first = f.scenario.coder[0] as { calls: { arguments: { content: string } }[] }
      first.calls[0]!.arguments.content += `// ${secret}\n`
      await writeFile(join(dir, 's.json'), JSON.stringify(f.scenario))
      const engine = await createEngine({ dataDir: data, resume: false })
      await (await engine.start({ plan: f.plan }, { name: 'kept', models: [`scripted:${join(dir, 's.json')}`], workspace: ws })).done
      await engine.close()
      const viewer = await startViewer({ dataDir: data, port: 0, log: () => {} })
      try {
        const get = async (path: string) => {
          const res = await fetch(new URL(path, viewer.url))
          return { status: res.status, text: await res.text() }
        }
        const all = await get('api/loops/kept/transcript')
        expect(all.status).toBe(200)
        expect(pieces(all.text, secret)).toEqual([])
        expect(all.text).toContain(REDACTED)
        const report = JSON.parse(all.text) as { source: string; sessions: { id: number; head: { role: string } }[] }
        expect(report.source).toBe('store')
        expect(report.sessions.map((x) => x.id)).toEqual(report.sessions.map((_, i) => i + 1))
        expect(report.sessions[0]!.head.role).toBe('coder')
        const later = JSON.parse((await get('api/loops/kept/transcript?from=3')).text) as typeof report
        expect(later.sessions.map((x) => x.id)).toEqual(report.sessions.slice(2).map((x) => x.id))

        const findings = JSON.parse((await get('api/loops/kept/findings')).text) as { findings: { finding: Finding; events: { what: string; audit: number }[] }[] }
        expect(findings.findings.map((x) => [x.finding.id, x.finding.status, x.events.map((e) => e.what)])).toEqual([['F1', 'resolved', ['reported', 'resolved']]])

        const diff = await get('api/loops/kept/diff')
        expect(diff.status).toBe(200)
        expect(pieces(diff.text, secret)).toEqual([])
        expect(diff.text).toContain(REDACTED)
        const d = JSON.parse(diff.text) as { kind: string; files: { path: string; status: string; patch: string }[]; notes: string[] }
        expect(d.kind).toBe('files')
        expect(d.files.map((x) => [x.path, x.status])).toEqual([
          ['part1.js', 'written'],
          ['part2.js', 'written'],
        ])
        expect(d.files[1]!.patch).toContain('+  return 20')
        expect(d.notes[0]).toContain('not a git diff')

        for (const panel of ['transcript', 'diff', 'findings']) expect((await get(`api/loops/nope/${panel}`)).status, panel).toBe(404)
      } finally {
        await viewer.close()
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
