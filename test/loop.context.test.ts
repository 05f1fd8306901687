/** The loop's context maths on their own (machines/loop.context.ts). */
import { describe, expect, it } from 'vitest'
import { backoffMs, initialContext, judgeAudit, MAX_RETRY_AFTER_MS, overBudget, retryDelayMs, toolErrorKind } from '../machines/loop.context.ts'
import type { Finding, LoopContext } from '../machines/loop.types.ts'
import { resolveConfig } from '../services/config.ts'
import { goalTask, parsePlan } from '../services/plan.ts'

const SUMMARY = '<!-- summary -->\n### Done\nx\n### Deviations\nnone\n### Follow-ups\nnone\n<!-- /summary -->'
const bug = (id: string, over: Partial<Finding> = {}): Finding => ({
  id, file: 'a.js', line: 1, severity: 'bug', message: 'm', status: 'open', section: null, reportedInAudit: 1, openAudits: 0, recurring: false, ...over,
})

function context(over: Partial<LoopContext> = {}, sectioned = false): LoopContext {
  const task = sectioned ? parsePlan('# P\n\n<!-- section -->\n## A\na\n<!-- section -->\n## B\nb', 'p.md') : goalTask('g')
  const c = initialContext({ name: 'x', ...task, workspace: '/w', config: resolveConfig({ models: ['s:m'] }) }, 0)
  return { ...c, phase: 'auditing', ...over }
}

describe('the audit verdict', () => {
  it('is clean, dirty, checksFailing or summaryMissing', () => {
    expect(judgeAudit(context(), 'ok').lastAudit).toMatchObject({ verdict: 'clean', clean: true, blocking: 0, n: 1 })
    expect(judgeAudit(context({ findings: [bug('F1')] }), 'no').lastAudit).toMatchObject({ verdict: 'dirty', clean: false, blocking: 1 })
    expect(judgeAudit(context({ findings: [bug('F1', { check: 'unit' })] }), 'ok').lastAudit?.verdict).toBe('checksFailing')
    expect(judgeAudit(context({ findings: [bug('F1', { check: 'unit' }), bug('F2')] }), 'no').lastAudit?.verdict).toBe('dirty')
    // warnings do not block unless blockOn says so
    expect(judgeAudit(context({ findings: [bug('F1', { severity: 'warning' })] }), 'ok').lastAudit?.verdict).toBe('clean')
    // a section audit needs its summary; a finding of another section does not block it
    const sectioned = (over: Partial<LoopContext>) => context(over, true)
    expect(judgeAudit(sectioned({}), 'no summary').lastAudit?.verdict).toBe('summaryMissing')
    expect(judgeAudit(sectioned({}), SUMMARY).lastAudit?.verdict).toBe('clean')
    expect(judgeAudit(sectioned({ findings: [bug('F1', { section: 1 })] }), SUMMARY).lastAudit?.verdict).toBe('clean')
    expect(judgeAudit(sectioned({ findings: [bug('F1', { section: 0 })] }), SUMMARY).lastAudit?.verdict).toBe('dirty')
  })

  it('ages the open findings and counts a dirty section audit as an attempt', () => {
    const after = judgeAudit(context({ findings: [bug('F1', { openAudits: 2 }), bug('F2', { status: 'resolved' })] }), 'no')
    expect(after.findings.map((f) => [f.id, f.openAudits, f.recurring])).toEqual([
      ['F1', 3, true],
      ['F2', 0, false],
    ])
    const s = judgeAudit(context({ findings: [bug('F1', { section: 0 })] }, true), 'no')
    expect(s.sectionStates.map((x) => x.attempts)).toEqual([1, 0])
  })
})

describe('budgets, backoff, tool errors', () => {
  it('overBudget compares the usage after a turn with each limit', () => {
    const c = context({ config: resolveConfig({ models: ['s:m'], budget: { maxTokens: 100 } }) })
    const usage = (tokens: number) => ({ ...c.usage, total: { ...c.usage.total, inputTokens: tokens, outputTokens: 0 } })
    expect(overBudget(c, usage(100))).toBe(false)
    expect(overBudget(c, usage(101))).toBe(true)
  })

  it('backoffMs doubles from the base, within the jitter, capped', () => {
    const cfg = { baseMs: 1000, maxMs: 5000, jitter: 0.2 }
    expect([1, 2, 3, 4].map((n) => backoffMs(cfg, n, () => 0.5))).toEqual([1000, 2000, 4000, 5000])
    expect(backoffMs(cfg, 1, () => 0)).toBe(800)
    expect(backoffMs(cfg, 1, () => 1)).toBe(1200)
  })

  it("retryDelayMs waits at least a failure's retryAfterMs (capped at an hour), else the backoff", () => {
    const config = resolveConfig({ models: ['s:m'], retryBackoff: { baseMs: 1000, maxMs: 5000, jitter: 0 } })
    const error = (retryAfterMs?: number) => ({ name: 'ProviderError', message: 'm', code: 'rate_limited', retryable: true, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) })
    const at = (lastError: LoopContext['lastError'], errorCount = 1) => retryDelayMs({ config, errorCount, lastError }, () => 0.5)
    expect(at(null)).toBe(1000)
    expect(at(error())).toBe(1000)
    expect(at(error(30_000))).toBe(30_000)
    expect(at(error(500), 3)).toBe(4000) // the backoff is longer than the server asked
    expect(at(error(86_400_000))).toBe(MAX_RETRY_AFTER_MS)
    expect(at(error(Number.NaN))).toBe(1000)
  })

  it('toolErrorKind names the tool and the first clause of its error', () => {
    expect(toolErrorKind('create_file', "error: unknown tool 'create_file' for the coder (available: read_file)")).toBe("unknown tool 'create_file'")
    expect(toolErrorKind('read_file', "error: path '../x' is outside the workspace")).toBe("read_file: path '../x' is outside the workspace")
    expect(toolErrorKind('read_file', 'line 1: hello')).toBeNull()
    expect(toolErrorKind('write_file', 'error: invalid arguments: not valid JSON (Unterminated string): {"path')).toBe('write_file: invalid arguments')
  })
})
