/**
 * Loops on models that behave like small local ones (docs/architecture.md
 * "Findings"): an auditor that checks a fix and says "all good" without resolving
 * the finding, one that resolves by location, one that rewords the same finding
 * every audit, and a coder that writes its tool call as text. The real machine and
 * session runner, on scripted scenarios.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { DECIDE_NOTICE } from '../services/audit-decide.ts'
import { calls, report, runToEnd, startLoop, text, type Harness } from './helpers/loop-harness.ts'

let h: Harness | null = null

beforeEach(() => {
  vi.useFakeTimers()
})

afterEach(async () => {
  await h?.cleanup()
  h = null
  vi.useRealTimers()
})

const writeA = (content: string) => calls([['write_file', { path: 'a.js', content }]])
/** The auditor's requests that ask the decide prompt (it is their last message). */
const decideAsks = (x: Harness) =>
  x.requests.filter((r) => {
    const last = r.messages.at(-1)
    return r.role === 'auditor' && last?.role === 'user' && last.content.startsWith(DECIDE_NOTICE)
  })

describe('convergence: the auditor decides what it would leave open', () => {
  it('an auditor that checks the fix and says "All good" without resolving is asked once, resolves, and the loop completes in 2 iterations', async () => {
    h = await startLoop({
      scenario: {
        coder: [writeA('return x + 1'), text('wrote a.js'), writeA('return x'), text('fixed F1')],
        auditor: [
          report('a.js', 'adds one too many'),
          text('One bug (F1).'),
          // audit 2: reads the fix and says so, but forgets resolve_finding
          calls([['read_file', { path: 'a.js' }]]),
          text('All good, no issues remain.'),
          // asked to decide F1: resolves it
          calls([['resolve_finding', { id: 'F1' }]]),
          text('F1 is fixed. All good.'),
        ],
      },
    })
    const ctx = await runToEnd(h)
    expect(ctx).toMatchObject({ status: 'completed', reason: 'completed', iteration: 2, audits: 2 })
    expect(ctx.findings).toEqual([expect.objectContaining({ id: 'F1', status: 'resolved' })])
    const asks = decideAsks(h)
    expect(asks).toHaveLength(1)
    expect(asks[0]!.messages.at(-1)!.content).toContain('F1 bug open a.js:1 — adds one too many')
    // the session's final reply is the one after deciding
    expect(ctx.lastAudit?.text).toBe('F1 is fixed. All good.')
    // every scripted answer was asked for, none twice
    expect(h.providers.get('scripted:main')!.consumed('auditor')).toBe(6)
  })

  it('an auditor that reports a new bug and never looks at the old one is asked about the old one only', async () => {
    h = await startLoop({
      options: { maxIterations: 2 },
      scenario: {
        coder: [writeA('v1'), text('v1'), writeA('v2'), text('v2'), writeA('v3'), text('v3')],
        auditor: [
          report('a.js', 'old bug'),
          text('One bug.'),
          calls([['report_finding', { file: 'b.js', line: 7, severity: 'bug', message: 'new bug' }]]),
          text('Found another bug (F2).'),
          // asked about F1 (not F2, reported in this audit): keeps it by reporting it again
          calls([['report_finding', { file: 'a.js', line: 1, severity: 'bug', message: 'the old bug is still there' }]]),
          text('F1 is still there, and F2.'),
          // audit 3: both were decided in audit 2; it resolves F2 and keeps F1 by reporting it again
          calls([
            ['resolve_finding', { id: 'F2' }],
            ['report_finding', { file: 'a.js', line: 1, severity: 'bug', message: 'still broken' }],
          ]),
          text('F1 remains.'),
        ],
      },
    })
    const ctx = await runToEnd(h)
    expect(ctx.reason).toBe('max_iterations')
    const asks = decideAsks(h)
    expect(asks).toHaveLength(1)
    const asked = asks[0]!.messages.at(-1)!.content
    expect(asked).toContain('F1 bug open a.js:1 — old bug')
    expect(asked).not.toContain('F2')
    // re-reported at the same place and severity: one finding, not three
    expect(ctx.findings.map((f) => [f.id, f.status])).toEqual([
      ['F1', 'open'],
      ['F2', 'resolved'],
    ])
    expect(h.providers.get('scripted:main')!.consumed('auditor')).toBe(8)
  })

  it('asks once per session: an auditor that ignores the question leaves the finding open, and the loop goes on', async () => {
    h = await startLoop({
      options: { maxIterations: 1 },
      scenario: {
        coder: [writeA('v1'), text('v1'), writeA('v2'), text('v2')],
        auditor: [report('a.js', 'bug'), text('One bug.'), text('All good.'), text('Really, all good.')],
      },
    })
    const ctx = await runToEnd(h)
    // not completed on a "clean" reply while F1 is open
    expect(ctx).toMatchObject({ status: 'errored', reason: 'max_iterations' })
    expect(ctx.findings).toEqual([expect.objectContaining({ id: 'F1', status: 'open' })])
    expect(decideAsks(h)).toHaveLength(1)
    expect(ctx.lastAudit?.text).toBe('Really, all good.')
  })

  it('resolves by location: resolve_finding { file, line } on the one open finding there', async () => {
    h = await startLoop({
      scenario: {
        coder: [writeA('v1'), text('v1'), writeA('v2'), text('v2')],
        auditor: [
          report('a.js', 'bug'),
          text('One bug.'),
          calls([['resolve_finding', { file: 'a.js', line: 1 }]]),
          text('Fixed.'),
        ],
      },
    })
    const ctx = await runToEnd(h)
    expect(ctx).toMatchObject({ status: 'completed', iteration: 2 })
    expect(ctx.findings).toEqual([expect.objectContaining({ id: 'F1', status: 'resolved' })])
    expect(decideAsks(h)).toHaveLength(0)
  })
})

describe('convergence: reworded findings', () => {
  it('the same bug in other words every audit stays one finding, and is flagged recurring after 3 audits', async () => {
    const wordings = ['off by one', 'the loop bound is wrong', 'iterates one time too many', 'still off by one']
    h = await startLoop({
      options: { maxIterations: 3 },
      scenario: {
        coder: wordings.flatMap((_, i) => [writeA(`v${i}`), text(`pass ${i}`)]),
        auditor: wordings.flatMap((w) => [
          calls([['report_finding', { file: 'a.js', line: 4, severity: 'bug', message: w }]]),
          text(`Bug: ${w}.`),
        ]),
      },
    })
    const ctx = await runToEnd(h)
    expect(ctx.reason).toBe('max_iterations')
    expect(ctx.findings).toHaveLength(1)
    expect(ctx.findings[0]).toMatchObject({ id: 'F1', message: 'off by one', status: 'open', recurring: true })
    expect(ctx.findings[0]!.openAudits).toBeGreaterThanOrEqual(3)
    // the last coder prompt flags it
    expect(h.prompts('coder').at(-1)).toContain('F1 [bug] a.js:4: off by one RECURRING (open in 3 audits in a row)')
    // re-reporting told the auditor it is the same finding
    const toolResults = h.requests.flatMap((r) => r.messages).filter((m) => m.role === 'tool' && m.content.startsWith('already open as F1'))
    expect(toolResults.length).toBeGreaterThan(0)
    // reporting it again decided it: never asked
    expect(decideAsks(h)).toHaveLength(0)
  })
})

describe('convergence: tool calls written as text', () => {
  it('a coder reply that is a fenced JSON tool call runs as that call, and the journal marks the turn', async () => {
    const asText = '```json\n{"name": "write_file", "arguments": {"path": "a.js", "content": "module.exports = 1\\n"}}\n```'
    h = await startLoop({
      scenario: {
        coder: [text(asText), text('wrote a.js')],
        auditor: [text('All good.')],
      },
    })
    let sawMarked = false
    h.actor.subscribe((s) => {
      if (s.context.journal?.messages.some((m) => m.role === 'assistant' && m.fromText === true)) sawMarked = true
    })
    const ctx = await runToEnd(h)
    expect(ctx).toMatchObject({ status: 'completed', iteration: 1 })
    expect(readFileSync(join(h.workspace, 'a.js'), 'utf8')).toBe('module.exports = 1\n')
    expect(sawMarked).toBe(true)
    // the model got the tool's result back
    const second = h.requests.filter((r) => r.role === 'coder')[1]!
    expect(second.messages.at(-1)).toMatchObject({ role: 'tool', toolName: 'write_file' })
  })

  it('a reply with prose around the JSON, or naming a tool the session does not have, stays a reply', async () => {
    h = await startLoop({
      scenario: {
        coder: [text('Here is the call: {"name": "write_file", "arguments": {"path": "a.js", "content": "x"}}')],
        auditor: [text('{"name": "write_file", "arguments": {"path": "b.js", "content": "x"}}'), text('Nothing to fix.')],
      },
    })
    const ctx = await runToEnd(h)
    expect(ctx.status).toBe('completed')
    expect(() => readFileSync(join(h!.workspace, 'a.js'))).toThrow()
    expect(() => readFileSync(join(h!.workspace, 'b.js'))).toThrow()
  })
})

describe('convergence: the no-progress stop', () => {
  const sameBug = () => calls([['report_finding', { file: 'a.js', line: 2, severity: 'bug', message: 'returns the wrong value' }]])

  it('a coder that rewrites the same wrong file every pass ends no_progress after 3 rework passes, told so before', async () => {
    h = await startLoop({
      scenario: {
        // the same bytes every time (new timestamps): no change
        coder: Array.from({ length: 6 }, () => [writeA('wrong'), text('rewrote a.js')]).flat(),
        auditor: Array.from({ length: 6 }, () => [sameBug(), text('Still wrong.')]).flat(),
      },
    })
    const ctx = await runToEnd(h)
    expect(ctx).toMatchObject({ status: 'errored', reason: 'no_progress', iteration: 4, rework: 3, passesWithoutProgress: 3 })
    expect(ctx.lastError).toMatchObject({ code: 'no_progress', name: 'NoProgress' })
    expect(ctx.lastError!.message).toBe(
      'no progress: 3 rework passes in a row (iterations 2–4) left the workspace as it was and these blocking findings open: ' +
        'F1 a.js:2 (returns the wrong value)',
    )
    // stopped right after the pass: no audit of an unchanged workspace
    expect(ctx.audits).toBe(3)
    expect(h.actor.getSnapshot().output).toMatchObject({ status: 'errored', reason: 'no_progress' })
    // the coder was told plainly before the stop
    const prompts = h.prompts('coder')
    expect(prompts[2]).not.toContain('changed nothing') // pass 2 (its first request)
    expect(prompts[4]).toContain('## Your last pass changed nothing') // pass 3
    expect(prompts[4]).toContain('The loop stops (no progress) after 2 more such passes.')
    expect(prompts[6]).toContain('## Your last 2 passes changed nothing') // pass 4
    expect(prompts[6]).toContain('F1 [bug] a.js:2: returns the wrong value')
    expect(h.requests.filter((r) => r.role === 'coder')).toHaveLength(8)
  })

  it('a pass that changes the workspace resets the count; the limit is configurable and 0 turns it off', async () => {
    const coder = [writeA('v1'), text('1'), text('nothing'), writeA('v2'), text('2'), text('nothing'), text('nothing')]
    const auditor = Array.from({ length: 5 }, () => [sameBug(), text('Still wrong.')]).flat()
    h = await startLoop({ options: { maxPassesWithoutProgress: 2, maxIterations: 10 }, scenario: { coder, auditor } })
    let ctx = await runToEnd(h)
    // passes: 1 (baseline), 2 no change (1), 3 changed (0), 4 no change (1), 5 no change (2): stop
    expect(ctx).toMatchObject({ reason: 'no_progress', iteration: 5, passesWithoutProgress: 2 })
    await h.cleanup()
    h = await startLoop({ options: { maxPassesWithoutProgress: 0, maxIterations: 4 }, scenario: { coder, auditor } })
    ctx = await runToEnd(h)
    expect(ctx).toMatchObject({ reason: 'max_iterations', iteration: 5 })
  })

  it('the count survives a restart', async () => {
    h = await startLoop({
      scenario: {
        coder: Array.from({ length: 6 }, () => [text('did nothing')]).flat(),
        auditor: Array.from({ length: 6 }, () => [sameBug(), text('Still wrong.')]).flat(),
      },
    })
    // until the third pass has counted two passes without progress
    for (let i = 0; i < 10_000 && h.ctx().passesWithoutProgress < 2; i++) await vi.advanceTimersByTimeAsync(10)
    expect(h.ctx().passesWithoutProgress).toBe(2)
    await h.restart()
    const ctx = await runToEnd(h)
    expect(ctx).toMatchObject({ reason: 'no_progress', iteration: 4, passesWithoutProgress: 3 })
  })
})

describe('convergence: refused tool calls are counted', () => {
  it('by kind, over the whole loop, for status to show', async () => {
    h = await startLoop({
      scenario: {
        coder: [
          calls([['create_file', { path: 'a.js', content: 'x' }]]),
          calls([['create_file', { path: 'a.js', content: 'x' }], ['write_file', { path: '../out.js', content: 'x' }]]),
          writeA('x'),
          text('done'),
        ],
        auditor: [text('All good.')],
      },
    })
    const ctx = await runToEnd(h)
    expect(ctx.status).toBe('completed')
    expect(ctx.toolErrors).toEqual({
      "unknown tool 'create_file'": 2,
      "write_file: path '../out.js' is outside the workspace": 1,
    })
    const { detailOf } = await import('../services/views.ts')
    const { detailText } = await import('../scripts/format.ts')
    const detail = detailOf({ schemaVersion: 4, name: 'test-loop', status: 'completed', reason: 'completed', phase: 'auditing', iteration: 1, createdAt: 'x', updatedAt: 'x', snapshot: h.actor.getPersistedSnapshot() as never })
    expect(detail.toolErrors[0]).toEqual({ kind: "unknown tool 'create_file'", count: 2 })
    expect(detailText(detail)).toContain("\ntools      3 calls refused or failed: unknown tool 'create_file' (2), write_file: path '../out.js' is outside the workspace (1)\n")
  })
})
