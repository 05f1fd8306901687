import { describe, expect, it } from 'vitest'
import { parseSummary } from '../machines/summary.ts'
import { resolveConfig } from '../services/config.ts'
import { goalTask, parsePlan, slugify } from '../services/plan.ts'
import { DEFAULT_CONFIG } from '../machines/loop.types.ts'

describe('plan', () => {
  it('reads a plan without markers as a plain plan titled by its first heading', () => {
    const p = parsePlan('intro\n\n# Fix the parser\n\nsteps', 'p.md')
    expect(p.task).toEqual({ kind: 'plain', title: 'Fix the parser', text: 'intro\n\n# Fix the parser\n\nsteps' })
    expect(p.sections).toEqual([])
  })

  it('splits sections at exact marker lines outside fenced code', () => {
    const md = [
      '# Plan',
      'preamble',
      '<!-- section -->',
      '## One',
      '```md',
      '<!-- section -->',
      '```',
      '<!-- section --> ',
      'tail',
      '<!-- section -->',
      'no heading here',
    ].join('\n')
    const p = parsePlan(md, 'p.md')
    expect(p.task).toMatchObject({ kind: 'sectioned', title: 'Plan', preamble: '# Plan\npreamble' })
    expect(p.sections.map((s) => s.title)).toEqual(['One', 'Section 2'])
    expect(p.sections[0]!.body).toContain('```md\n<!-- section -->\n```\n<!-- section --> \ntail')
  })

  it('names the plan file when there is no heading, and rejects empty plans and sections', () => {
    expect(parsePlan('just text', 'dir/my-plan.md').task.title).toBe('my-plan')
    expect(() => parsePlan('  \n', 'x.md')).toThrow('plan: x.md is empty')
    expect(() => parsePlan('# A\n<!-- section -->\n\n<!-- section -->\nb', 'x.md')).toThrow(
      'plan: x.md: section 1 is empty',
    )
    expect(() => goalTask(' ')).toThrow('goal: the goal text is empty')
  })

  it('slugs titles into loop names', () => {
    expect(slugify('Fix the Parser!')).toBe('fix-the-parser')
    expect(slugify('Éclair — crème')).toBe('eclair-creme')
    expect(slugify('***')).toBe('loop')
    expect(slugify('a'.repeat(60)).length).toBe(40)
  })
})

describe('summary block', () => {
  it('parses the markers and headings', () => {
    const s = parseSummary('text\n<!-- summary -->\n### Done\n- a\n### Deviations\nnone\n### Follow-ups\n- b\n<!-- /summary -->\n')
    expect(s).toEqual({ done: '- a', deviations: 'none', followUps: '- b', raw: '### Done\n- a\n### Deviations\nnone\n### Follow-ups\n- b' })
  })

  it('is null when a marker is missing, inline, or the block has no Done heading', () => {
    expect(parseSummary('no block')).toBeNull()
    expect(parseSummary('<!-- summary -->\n### Done\nx')).toBeNull()
    expect(parseSummary('see <!-- summary --> ### Done x <!-- /summary -->')).toBeNull()
    expect(parseSummary('<!-- summary -->\nonly text\n<!-- /summary -->')).toBeNull()
  })
})

describe('config', () => {
  it('fills in the defaults of DEFAULT_CONFIG', () => {
    const c = resolveConfig({ models: ['scripted:a.json'] })
    expect(c).toMatchObject({
      models: ['scripted:a.json'],
      auditorModels: ['scripted:a.json'],
      maxIterations: 15,
      maxSectionAttempts: 5,
      maxRetries: 3,
      stallTimeoutMs: 60_000,
      maxConsecutiveStalls: 5,
      retryBackoff: { baseMs: 2000, maxMs: 60_000, jitter: 0.2 },
      blockOn: ['bug'],
    })
    expect(c.runCommand).toEqual(DEFAULT_CONFIG.runCommand)
  })

  it('names the bad field', () => {
    expect(() => resolveConfig({ models: [] })).toThrow('config: models:')
    expect(() => resolveConfig({ models: ['a:b'], maxRetries: 1.5 })).toThrow('config: maxRetries:')
    expect(() => resolveConfig({ models: ['a:b'], budget: { maxTokens: 0 } })).toThrow('config: budget.maxTokens:')
    expect(() => resolveConfig({ models: ['a:b'], colour: 'red' })).toThrow(/config: options: .*colour/)
  })
})
