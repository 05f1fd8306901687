import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { REPEATED_CALL_NOTICE } from '../services/session.ts'
import {
  advanceUntil,
  calls,
  error,
  hang,
  report,
  resolveF,
  runToEnd,
  startLoop,
  summary,
  text,
  type Harness,
} from './helpers/loop-harness.ts'

const SECTIONED = [
  '# Two parts',
  'Shared preamble.',
  '<!-- section -->',
  '## Part A',
  'Write a.txt',
  '<!-- section -->',
  '## Part B',
  'Write b.txt',
].join('\n')

let h: Harness | null = null

beforeEach(() => {
  vi.useFakeTimers()
})

afterEach(async () => {
  await h?.cleanup()
  h = null
  vi.useRealTimers()
})

describe('loop: plain plans', () => {
  it('completes after a clean first audit', async () => {
    h = await startLoop({
      scenario: {
        coder: [calls([['write_file', { path: 'a.txt', content: 'hi' }]]), text('wrote a.txt')],
        auditor: [text('All good.')],
      },
    })
    const ctx = await runToEnd(h)
    expect(h.state()).toBe('completed')
    expect(ctx.status).toBe('completed')
    expect(ctx.reason).toBe('completed')
    expect(ctx.iteration).toBe(1)
    expect(ctx.rework).toBe(0)
    expect(readFileSync(join(h.workspace, 'a.txt'), 'utf8')).toBe('hi')
    expect(h.states).toEqual(
      expect.arrayContaining(['running.coding.watching', 'running.auditing.watching', 'completed']),
    )
    expect(h.actor.getSnapshot().output).toMatchObject({ status: 'completed', reason: 'completed', iteration: 1 })
  })

  it('reworks after a dirty audit and completes when the next audit is clean', async () => {
    h = await startLoop({
      scenario: {
        coder: [
          calls([['write_file', { path: 'a.txt', content: 'helo' }]]),
          text('wrote a.txt'),
          calls([['edit_file', { path: 'a.txt', search: 'helo', replace: 'hello' }]]),
          text('fixed the typo'),
        ],
        auditor: [report('a.txt', 'typo: helo'), text('Found a typo.'), resolveF('F1'), text('Fixed now.')],
      },
    })
    const ctx = await runToEnd(h)
    expect(ctx.reason).toBe('completed')
    expect(ctx.iteration).toBe(2)
    expect(ctx.rework).toBe(1)
    expect(ctx.findings).toEqual([expect.objectContaining({ id: 'F1', status: 'resolved', severity: 'bug' })])
    expect(readFileSync(join(h.workspace, 'a.txt'), 'utf8')).toBe('hello')
    const coderPrompts = h.prompts('coder')
    // the rework session starts with the audit text and the open finding
    expect(coderPrompts[2]).toContain('Found a typo.')
    expect(coderPrompts[2]).toContain('F1 [bug] a.txt:1: typo: helo')
    expect(ctx.audits).toBe(2)
  })

  it('flags a finding open in three consecutive audits as recurring in both prompts', async () => {
    h = await startLoop({
      // passes that change nothing are not what this is about (test/convergence.test.ts)
      options: { maxPassesWithoutProgress: 0 },
      scenario: {
        coder: [text('try 1'), text('try 2'), text('try 3'), text('try 4')],
        // audits 2 and 3 keep F1 by reporting it again (in other words: the same finding)
        auditor: [
          report('a.ts', 'off by one'),
          text('bug'),
          report('a.ts', 'still off by one'),
          text('still'),
          report('a.ts', 'the bound is still wrong'),
          text('still'),
          resolveF('F1'),
          text('ok'),
        ],
      },
    })
    const ctx = await runToEnd(h)
    expect(ctx.reason).toBe('completed')
    expect(ctx.findings[0]).toMatchObject({ recurring: true, openAudits: 3, status: 'resolved' })
    const coder = h.prompts('coder')
    expect(coder[2]).not.toContain('RECURRING') // open through 2 audits
    expect(coder[3]).toContain('F1 [bug] a.ts:1: off by one RECURRING')
    const auditor = h.prompts('auditor')
    // the auditor's 4th audit session (requests 7 and 8) sees the flag
    expect(auditor[6]).toContain('RECURRING')
    expect(auditor[4]).not.toContain('RECURRING')
    expect(ctx.findings).toHaveLength(1)
  })

  it('runs a goal loop like a plain plan', async () => {
    h = await startLoop({
      goal: 'Make the tests pass',
      scenario: { coder: [text('done')], auditor: [text('fine')] },
    })
    const ctx = await runToEnd(h)
    expect(ctx.task).toMatchObject({ kind: 'goal', title: 'Make the tests pass' })
    expect(ctx.reason).toBe('completed')
    expect(h.prompts('coder')[0]).toContain('# Goal\n\nMake the tests pass')
  })

  it('ends with max_iterations when rework passes run out', async () => {
    h = await startLoop({
      options: { maxIterations: 2 },
      scenario: {
        coder: [text('1'), text('2'), text('3')],
        auditor: [report('x', 'bad'), text('bad'), report('x', 'bad'), text('bad'), report('x', 'bad'), text('bad')],
      },
    })
    const ctx = await runToEnd(h)
    expect(h.state()).toBe('errored')
    expect(ctx.status).toBe('errored')
    expect(ctx.reason).toBe('max_iterations')
    expect(ctx.iteration).toBe(3)
    expect(ctx.rework).toBe(2)
  })

  it('treats warnings as non-blocking unless blockOn includes them', async () => {
    const scenario = {
      coder: [text('1'), text('2')],
      auditor: [report('x', 'style', 'warning'), text('a warning'), resolveF('F1'), text('ok')],
    }
    h = await startLoop({ scenario })
    expect((await runToEnd(h)).iteration).toBe(1)
    await h.cleanup()
    h = await startLoop({ scenario, options: { blockOn: ['bug', 'warning'] } })
    const ctx = await runToEnd(h)
    expect(ctx.iteration).toBe(2)
    expect(ctx.reason).toBe('completed')
  })
})

describe('loop: sectioned plans', () => {
  it('advances section by section with summaries, then passes the final audit', async () => {
    h = await startLoop({
      plan: SECTIONED,
      scenario: {
        coder: [text('did A'), text('did B')],
        auditor: [summary('A is done'), summary('B is done'), text('The whole plan holds.')],
      },
    })
    const ctx = await runToEnd(h)
    expect(ctx.reason).toBe('completed')
    expect(ctx.sectionStates.map((s) => [s.title, s.status])).toEqual([
      ['Part A', 'done'],
      ['Part B', 'done'],
    ])
    expect(ctx.sectionStates[0]!.summary).toContain('A is done')
    expect(ctx.iteration).toBe(2)
    expect(ctx.rework).toBe(0)
    expect(h.states).toContain('running.finalAuditing.watching')
    const coder = h.prompts('coder')
    expect(coder[0]).toContain('Shared preamble.')
    expect(coder[0]).toContain('## Section 1 of 2')
    expect(coder[1]).toContain('Section 2 of 2')
    expect(coder[1]).toContain('A is done') // earlier summaries carried forward
    expect(h.prompts('auditor')[2]).toContain('# Final audit of the whole plan')
  })

  it('audits again when the section summary is missing, without recoding', async () => {
    h = await startLoop({
      plan: SECTIONED,
      scenario: {
        coder: [text('did A'), text('did B')],
        auditor: [text('fine but no block'), summary('A'), summary('B'), text('all good')],
      },
    })
    const ctx = await runToEnd(h)
    expect(ctx.reason).toBe('completed')
    expect(ctx.sectionStates[0]!.attempts).toBe(1)
    expect(h.prompts('coder')).toHaveLength(2)
    expect(h.prompts('auditor')[1]).toContain('had no summary block')
  })

  it('fixes a dirty final audit in finalAuditFix and audits again', async () => {
    h = await startLoop({
      plan: SECTIONED,
      scenario: {
        coder: [text('did A'), text('did B'), text('fixed the integration')],
        auditor: [
          summary('A'),
          summary('B'),
          report('b.txt', 'A and B disagree'),
          text('integration bug'),
          resolveF('F1'),
          text('clean'),
        ],
      },
    })
    const ctx = await runToEnd(h)
    expect(ctx.reason).toBe('completed')
    expect(h.states).toContain('running.finalAuditFix.watching')
    expect(ctx.iteration).toBe(3)
    expect(ctx.rework).toBe(1)
    expect(h.prompts('coder')[2]).toContain('A and B disagree')
    expect(ctx.findings[0]).toMatchObject({ section: null, status: 'resolved' })
  })

  it('ends with max_section_attempts when a section stays dirty', async () => {
    h = await startLoop({
      plan: SECTIONED,
      options: { maxSectionAttempts: 2 },
      scenario: {
        coder: [text('1'), text('2'), text('3')],
        auditor: [report('a.txt', 'wrong'), text('dirty'), report('a.txt', 'wrong'), text('dirty'), report('a.txt', 'wrong'), text('dirty')],
      },
    })
    const ctx = await runToEnd(h)
    expect(ctx.reason).toBe('max_section_attempts')
    expect(ctx.status).toBe('errored')
    expect(ctx.sectionStates[0]!.attempts).toBe(3)
    expect(ctx.findings[0]!.section).toBe(0)
  })
})

describe('loop: failures, retries and fallback', () => {
  it('backs off then retries after transient failures', async () => {
    h = await startLoop({
      scenario: { coder: [error('ECONNREFUSED'), error('ECONNRESET'), text('done')], auditor: [text('ok')] },
      options: { retryBackoff: { baseMs: 1000, jitter: 0 } },
    })
    const harness = h
    await advanceUntil(harness, () => harness.state() === 'running.backingOff')
    expect(harness.ctx().errorCount).toBe(1)
    expect(harness.ctx().lastError).toMatchObject({ code: 'ECONNREFUSED', retryable: true })
    // first backoff: 1000 ms
    await vi.advanceTimersByTimeAsync(990)
    expect(harness.state()).toBe('running.backingOff')
    await vi.advanceTimersByTimeAsync(20)
    expect(harness.requests).toHaveLength(2)
    await advanceUntil(harness, () => harness.ctx().errorCount === 2 && harness.state() === 'running.backingOff')
    // second backoff: 2000 ms from the second failure (which came at once, at t = 1000)
    await vi.advanceTimersByTimeAsync(1900)
    expect(harness.requests).toHaveLength(2)
    await vi.advanceTimersByTimeAsync(200)
    expect(harness.requests.length).toBeGreaterThanOrEqual(3)
    const ctx = await runToEnd(harness)
    expect(ctx.reason).toBe('completed')
    expect(ctx.errorCount).toBe(0)
  })

  it('ends with provider_fatal on a fatal provider error, without retrying', async () => {
    h = await startLoop({ scenario: { coder: [error('model_not_found'), text('never')] } })
    const ctx = await runToEnd(h)
    expect(ctx.reason).toBe('provider_fatal')
    expect(ctx.status).toBe('errored')
    expect(ctx.lastError).toMatchObject({ code: 'model_not_found', retryable: false })
    expect(h.requests).toHaveLength(1)
  })

  it('ends with error_max_retries after maxRetries retries fail', async () => {
    h = await startLoop({
      options: { maxRetries: 2 },
      scenario: { coder: [error('ECONNREFUSED'), error('ECONNREFUSED'), error('ECONNREFUSED'), text('late')] },
    })
    const ctx = await runToEnd(h)
    expect(ctx.reason).toBe('error_max_retries')
    expect(h.requests).toHaveLength(3)
  })

  it('falls back to the next model after two failures on one', async () => {
    h = await startLoop({
      options: { models: ['scripted:flaky', 'scripted:steady'], auditorModels: ['scripted:steady'] },
      scenarios: {
        flaky: { coder: [error('ECONNREFUSED'), error('ECONNREFUSED'), text('flaky never gets here')] },
        steady: { coder: [text('done on steady')], auditor: [text('ok')] },
      },
    })
    const ctx = await runToEnd(h)
    expect(ctx.reason).toBe('completed')
    expect(ctx.modelIndex.coder).toBe(1)
    expect(h.requests.map((r) => `${r.role}:${r.model}`)).toEqual([
      'coder:scripted:flaky',
      'coder:scripted:flaky',
      'coder:scripted:steady',
      'auditor:scripted:steady',
    ])
    expect(ctx.usage.byModel['scripted:steady']!.calls).toBe(2)
    expect(ctx.usage.byModel['scripted:flaky']).toBeUndefined()
    expect(ctx.lastCoderReply).toBe('done on steady')
  })

  it('ends with no_output when the model gives no reply even after being asked', async () => {
    h = await startLoop({ scenario: { coder: [text(''), text('  ')] } })
    const ctx = await runToEnd(h)
    expect(ctx.reason).toBe('no_output')
    expect(h.prompts('coder')[1]).toContain('without a reply')
  })
})

describe('loop: watchdog', () => {
  it('nudges a stalled session and recovers', async () => {
    h = await startLoop({
      options: { stallTimeoutMs: 5000 },
      scenario: { coder: [hang(), text('back again')], auditor: [text('ok')] },
    })
    const harness = h
    await vi.advanceTimersByTimeAsync(4990)
    expect(harness.ctx().stalls).toBe(0)
    await vi.advanceTimersByTimeAsync(20)
    expect(harness.requests[1]!.role).toBe('coder')
    const last = harness.requests[1]!.messages
    expect(last[last.length - 1]).toMatchObject({ role: 'user', content: expect.stringContaining('Continue where you left off') })
    const ctx = await runToEnd(harness)
    expect(ctx.reason).toBe('completed')
    expect(ctx.stalls).toBe(0) // a completed call resets the count
    expect(ctx.lastCoderReply).toBe('back again')
  })

  it('treats streamed chunks and tool calls as activity', async () => {
    // The timed part uses the findings tools, which do no file I/O: fake time must not run ahead of real I/O.
    const warn = (m: string, line: number) => calls([['report_finding', { file: 'a', line, severity: 'warning', message: m }]], 800)
    h = await startLoop({
      options: { stallTimeoutMs: 1000 },
      scenario: {
        coder: [text('done', 800)],
        auditor: [warn('one', 1), warn('two', 2), warn('three', 3), text('fine', 800)],
      },
    })
    const ctx = await runToEnd(h, 60_000, 50)
    expect(ctx.reason).toBe('completed')
    expect(ctx.stalls).toBe(0)
    expect(h.requests).toHaveLength(5) // no nudge ever happened
    expect(ctx.findings).toHaveLength(3)
  })

  it('ends with stall_timeout at the stall limit', async () => {
    h = await startLoop({
      options: { stallTimeoutMs: 1000, maxConsecutiveStalls: 3 },
      scenario: { coder: [hang(), hang(), hang(), text('too late')] },
    })
    const ctx = await runToEnd(h)
    expect(h.state()).toBe('stalled')
    expect(ctx.status).toBe('stalled')
    expect(ctx.reason).toBe('stall_timeout')
    expect(ctx.stalls).toBe(3)
    expect(h.requests).toHaveLength(3)
  })
})

describe('loop: talking to a running loop', () => {
  it('pauses (aborting the call) and resumes in the same phase, asking the aborted call again', async () => {
    h = await startLoop({
      scenario: { coder: [text('answer', 5000), text('never asked')], auditor: [text('ok')] },
    })
    const harness = h
    await vi.advanceTimersByTimeAsync(100)
    harness.actor.send({ type: 'loop.pause' })
    expect(harness.state()).toBe('paused')
    expect(harness.ctx().status).toBe('paused')
    await vi.advanceTimersByTimeAsync(10_000)
    expect(harness.state()).toBe('paused')
    expect(harness.ctx().lastCoderReply).toBeNull() // the aborted call never landed
    harness.actor.send({ type: 'loop.resume' })
    expect(harness.state()).toBe('running.coding.watching')
    const ctx = await runToEnd(harness)
    expect(ctx.reason).toBe('completed')
    // the aborted call's outcome never reached the loop: it is made again and answered the same
    expect(ctx.lastCoderReply).toBe('answer')
    expect(ctx.calls).toEqual({ 'coder:scripted:main': 1, 'auditor:scripted:main': 1 })
  })

  const phases: [string, string, Parameters<typeof startLoop>[0]][] = [
    ['coding', 'running.coding.watching', { scenario: { coder: [hang()] } }],
    ['auditing', 'running.auditing.watching', { scenario: { coder: [text('x')], auditor: [hang()] } }],
    [
      'finalAuditing',
      'running.finalAuditing.watching',
      { plan: SECTIONED, scenario: { coder: [text('a'), text('b')], auditor: [summary(), summary(), hang()] } },
    ],
    [
      'finalAuditFix',
      'running.finalAuditFix.watching',
      {
        plan: SECTIONED,
        scenario: { coder: [text('a'), text('b'), hang()], auditor: [summary(), summary(), report('f', 'm'), text('dirty')] },
      },
    ],
    ['backingOff', 'running.backingOff', { scenario: { coder: [error('ECONNREFUSED')] } }],
    ['paused', 'paused', { scenario: { coder: [hang()] } }],
  ]
  for (const [label, state, opts] of phases) {
    it(`cancels in ${label}`, async () => {
      h = await startLoop({ ...opts, options: { stallTimeoutMs: 600_000, ...opts.options } })
      const harness = h
      if (label === 'paused') harness.actor.send({ type: 'loop.pause' })
      await advanceUntil(harness, () => harness.state() === state)
      harness.actor.send({ type: 'loop.cancel' })
      expect(harness.state()).toBe('cancelled')
      expect(harness.ctx()).toMatchObject({ status: 'cancelled', reason: 'user_cancelled' })
      expect(harness.ctx().endedAt).not.toBeNull()
    })
  }

  it('delivers a say message with the next prompt, once', async () => {
    h = await startLoop({
      scenario: { coder: [text('slow', 1000), text('second')], auditor: [report('a', 'b'), text('dirty'), resolveF('F1'), text('ok')] },
    })
    const harness = h
    await vi.advanceTimersByTimeAsync(100)
    harness.actor.send({ type: 'loop.say', text: 'please use tabs' })
    expect(harness.ctx().inbox).toEqual(['please use tabs'])
    expect(harness.prompts('coder')[0]).not.toContain('please use tabs')
    const ctx = await runToEnd(harness)
    expect(ctx.reason).toBe('completed')
    const auditor = harness.prompts('auditor')
    expect(auditor[0]).toContain('## Messages from the user\n\n- please use tabs')
    expect(harness.prompts('coder')[1]).not.toContain('please use tabs')
    expect(ctx.inbox).toEqual([])
  })
})

describe('loop: budgets', () => {
  it('ends with budget_exhausted when the token cap is passed', async () => {
    h = await startLoop({
      options: { budget: { maxTokens: 150 } },
      scenario: {
        coder: [{ type: 'text', text: 'a', usage: { input: 100, output: 20 } }, text('b')],
        auditor: [{ type: 'tool_calls', calls: [{ name: 'list_files', arguments: {} }], usage: { input: 40, output: 5 } }],
      },
    })
    const ctx = await runToEnd(h)
    expect(ctx.reason).toBe('budget_exhausted')
    expect(ctx.usage.total).toMatchObject({ inputTokens: 140, outputTokens: 25, calls: 2 })
  })

  it('prices tokens per model and stops at the cost cap', async () => {
    h = await startLoop({
      options: {
        budget: { maxCostUsd: 0.5 },
        prices: { 'scripted:main': { inputPer1k: 1, outputPer1k: 2 } },
      },
      scenario: {
        coder: [{ type: 'text', text: 'a', usage: { input: 200, output: 100 } }, text('b')],
        auditor: [report('x', 'y'), { type: 'text', text: 'dirty', usage: { input: 100, output: 50 } }],
      },
    })
    const ctx = await runToEnd(h)
    expect(ctx.reason).toBe('budget_exhausted')
    expect(ctx.usage.byRole.coder.costUsd).toBeCloseTo(0.4)
    expect(ctx.usage.total.costUsd).toBeGreaterThan(0.5)
  })

  it('stops at the wall-time cap, not counting paused time', async () => {
    h = await startLoop({
      options: { budget: { maxWallMs: 3000 }, stallTimeoutMs: 600_000 },
      scenario: { coder: [hang(), hang()] }, // the pause aborts the first call
    })
    const harness = h
    await vi.advanceTimersByTimeAsync(2000)
    harness.actor.send({ type: 'loop.pause' })
    await vi.advanceTimersByTimeAsync(10_000)
    expect(harness.state()).toBe('paused')
    harness.actor.send({ type: 'loop.resume' })
    await vi.advanceTimersByTimeAsync(900)
    expect(harness.ctx().reason).toBe(null)
    expect(harness.state()).toBe('running.coding.watching')
    await vi.advanceTimersByTimeAsync(200)
    expect(harness.ctx().reason).toBe('budget_exhausted')
    expect(harness.ctx().wallMs).toBeGreaterThanOrEqual(3000)
    expect(harness.ctx().wallMs).toBeLessThan(3300)
  })
})

describe('loop: tools through the session', () => {
  it('refuses a path outside the workspace and tells the model', async () => {
    h = await startLoop({
      scenario: {
        coder: [calls([['write_file', { path: '../escaped.txt', content: 'x' }]]), text('tried')],
        auditor: [text('ok')],
      },
    })
    await runToEnd(h)
    expect(existsSync(join(h.workspace, '..', 'escaped.txt'))).toBe(false)
    const second = h.requests[1]!.messages
    expect(second[second.length - 1]).toMatchObject({
      role: 'tool',
      content: expect.stringMatching(/^error: path '\.\.\/escaped\.txt' is outside the workspace/),
    })
  })

  it('gives the auditor no write tools', async () => {
    h = await startLoop({
      scenario: {
        coder: [text('done')],
        auditor: [calls([['write_file', { path: 'audit.txt', content: 'x' }]]), text('could not write')],
      },
    })
    await runToEnd(h)
    expect(existsSync(join(h.workspace, 'audit.txt'))).toBe(false)
    const second = h.requests.filter((r) => r.role === 'auditor')[1]!.messages
    expect(second[second.length - 1]).toMatchObject({
      role: 'tool',
      content: expect.stringContaining("unknown tool 'write_file'"),
    })
  })
})

describe('loop: session hygiene', () => {
  it('refuses a tool call repeated three times in a row, and three strikes fail the attempt', async () => {
    const same = calls([['list_files', { path: '.' }]])
    h = await startLoop({
      options: { retryBackoff: { baseMs: 100, jitter: 0 } },
      scenario: { coder: [same, same, same, same, same, text('done differently')], auditor: [text('ok')] },
    })
    const ctx = await runToEnd(h)
    expect(ctx.reason).toBe('completed')
    expect(h.states).toContain('running.backingOff')
    const coder = h.requests.filter((r) => r.role === 'coder')
    const toolResults = coder[4]!.messages.filter((m) => m.role === 'tool').map((m) => m.content)
    expect(toolResults.slice(0, 2).every((c) => !c.startsWith(REPEATED_CALL_NOTICE))).toBe(true)
    expect(toolResults[2]).toMatch(/^error: repeated call: this is the same list_files call \(same arguments\) 3 times in a row/)
    expect(toolResults[3]).toContain('4 times in a row')
    // the fifth repetition was the third strike: the retry started a fresh session
    expect(coder[5]!.messages.map((m) => m.role)).toEqual(['system', 'user'])
    expect(ctx.lastCoderReply).toBe('done differently')
  })

  it('shortens older tool outputs near the context window, keeping the prompt and the last turns', async () => {
    const big = (c: string) => c.repeat(3000)
    h = await startLoop({
      files: { 'a.txt': big('a'), 'b.txt': big('b') },
      // real file reads under fake time: no stall nudge may come between them, however slow the machine
      options: { stallTimeoutMs: 24 * 3600_000 },
      scenario: {
        contextLength: 1000,
        coder: [
          calls([['read_file', { path: 'a.txt' }]]),
          calls([['read_file', { path: 'b.txt' }]]),
          calls([['list_files', {}]]),
          text('read both', 1000),
        ],
        auditor: [text('ok')],
      },
    })
    const harness = h
    await advanceUntil(harness, () => harness.requests.length === 4)
    expect(harness.ctx().journal!.notes).toEqual([
      expect.stringMatching(/^shortened 1 older tool output\(s\) by \d+ characters to fit a 1000-token context$/),
    ])
    const sent = harness.requests[3]!.messages.filter((m) => m.role === 'tool').map((m) => m.content)
    expect(sent[0]).toMatch(/^a{200}\n\[shortened by loopstate: 2800 more characters of this read_file output/)
    expect(sent[1]).toBe(big('b')) // within the last turns: whole
    expect(harness.requests[3]!.messages[1]!.content).toContain('# Test plan') // the prompt is kept
    expect((await runToEnd(harness)).reason).toBe('completed')
  })
})
