import { describe, expect, it } from 'vitest'
import type { ChatMessage } from '../machines/chat.types.ts'
import type { Finding } from '../machines/loop.types.ts'
import { DECIDE_NOTICE, decidePrompt, readsClean, undecidedFindings, type DecideInput } from '../services/audit-decide.ts'

const finding = (id: string, over: Partial<Finding> = {}): Finding => ({
  id,
  file: 'a.js',
  line: 1,
  severity: 'bug',
  message: `problem ${id}`,
  status: 'open',
  section: null,
  reportedInAudit: 1,
  openAudits: 1,
  recurring: false,
  ...over,
})
const tool = (toolName: string, content: string): ChatMessage => ({ role: 'tool', toolName, toolCallId: 'c', content })
const input = (over: Partial<DecideInput>): DecideInput => ({
  findings: [],
  audit: 2,
  section: null,
  blockOn: ['bug'],
  messages: [],
  reply: 'Reviewed the change.',
  ...over,
})

describe('findings an audit leaves undecided', () => {
  it('are the open blocking findings of earlier audits it neither resolved nor reported again', () => {
    const findings = [
      finding('F1'),
      finding('F2'),
      finding('F3'),
      finding('F4', { severity: 'warning' }),
      finding('F5', { status: 'resolved' }),
      finding('F6', { reportedInAudit: 2 }),
    ]
    const messages = [tool('resolve_finding', 'resolved F2 a.js:1'), tool('report_finding', 'already open as F3 (bug) a.js:1: "x". It stays open')]
    expect(undecidedFindings(input({ findings, messages })).map((f) => f.id)).toEqual(['F1'])
    // a refused call decided nothing
    expect(undecidedFindings(input({ findings, messages: [tool('resolve_finding', "error: unknown finding 'F1'")] })).map((f) => f.id)).toEqual([
      'F1',
      'F2',
      'F3',
    ])
    // blockOn decides what blocks
    expect(undecidedFindings(input({ findings, messages, blockOn: ['bug', 'warning'] })).map((f) => f.id)).toEqual(['F1', 'F4'])
  })

  it('are every open blocking finding when the reply reads as clean', () => {
    const findings = [finding('F1'), finding('F6', { reportedInAudit: 2 })]
    const messages = [tool('report_finding', 'already open as F1 (bug) a.js:1')]
    expect(undecidedFindings(input({ findings, messages, reply: 'All good, no issues remain.' })).map((f) => f.id)).toEqual(['F1', 'F6'])
  })

  it('a section audit decides its own section only', () => {
    const findings = [finding('F1', { section: 0 }), finding('F2', { section: 1 })]
    expect(undecidedFindings(input({ findings, section: 1 })).map((f) => f.id)).toEqual(['F2'])
    expect(undecidedFindings(input({ findings, section: null })).map((f) => f.id)).toEqual(['F1', 'F2'])
  })

  it('asks once: a transcript that holds the question gets no second one', () => {
    const findings = [finding('F1')]
    const asked = decidePrompt(input({ findings }))
    expect(asked).toMatch(new RegExp(`^${DECIDE_NOTICE}`))
    expect(asked).toContain('- F1 bug open a.js:1 — problem F1')
    expect(decidePrompt(input({ findings, messages: [{ role: 'user', content: asked! }] }))).toBeNull()
    expect(decidePrompt(input({ findings: [] }))).toBeNull()
  })

  it('reads the clean replies of small models, and not the dirty ones', () => {
    for (const clean of ['All good, no issues remain.', 'LGTM', 'Looks good to me.', 'Everything is fixed now.', 'No remaining bugs.', 'Nothing else to fix.']) {
      expect(readsClean(clean), clean).toBe(true)
    }
    for (const dirty of ['F1 is still broken.', 'Found a bug in a.js.', 'The fix is incomplete: the bound is wrong.']) {
      expect(readsClean(dirty), dirty).toBe(false)
    }
  })
})
