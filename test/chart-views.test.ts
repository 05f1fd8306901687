/**
 * The graphs the viewer draws of the statechart (services/inspect/chart-views.ts): what
 * the user view shows of the loop machine, what it hides behind "Show internals", and
 * that a machine it has no words for still draws, by the names of its events and guards.
 */
import { describe, expect, it } from 'vitest'
import { createMachine, setup } from 'xstate'
import { serializeChart, type ChartState, type ChartView } from '../services/inspect/chart.ts'
import { guardWords } from '../services/inspect/chart-views.ts'

const chart = serializeChart()
const { user, internal } = chart.views
const edge = (v: ChartView, from: string, to: string) => v.edges.find((e) => e.from === from && e.to === to)
const ids = (v: ChartView) => v.nodes.map((n) => n.id)

function allStates(s: ChartState): ChartState[] {
  return [s, ...s.states.flatMap(allStates)]
}

describe('the user view of the loop chart', () => {
  it('draws the phases and the ends, not the choices a loop passes through or the session watchdog', () => {
    expect(ids(user)).toEqual([
      'running',
      '(start)',
      'running.coding',
      'running.checking',
      'running.auditing',
      'running.finalAuditing',
      'running.finalAuditFix',
      'running.committing',
      'running.backingOff',
      'paused',
      'completed',
      'cancelled',
      'errored',
      'stalled',
    ])
    expect(user.nodes.find((n) => n.id === 'running')!.kind).toBe('container')
    expect(user.nodes.filter((n) => n.parent === 'running').map((n) => n.id)).not.toContain('paused')
    expect(user.nodes.filter((n) => n.kind === 'final').map((n) => n.id)).toEqual(['completed', 'cancelled', 'errored', 'stalled'])
    for (const e of user.edges) {
      expect(ids(user), e.id).toContain(e.from)
      expect(ids(user), e.id).toContain(e.to)
    }
  })

  it('words its edges as a person watching a loop would, without guards or internal events', () => {
    expect(edge(user, '(start)', 'running.coding')!.labels).toEqual([])
    expect(edge(user, 'running.coding', 'running.auditing')!.labels).toEqual(['done'])
    expect(edge(user, 'running.coding', 'running.checking')!.labels).toEqual(['checks'])
    // through judgingAudit: the audit's verdict
    expect(edge(user, 'running.auditing', 'running.coding')).toMatchObject({ labels: ['next section', 'dirty audit'], events: ['session.done'] })
    expect(edge(user, 'running.auditing', 'running.committing')!.labels).toEqual(['clean'])
    expect(edge(user, 'running.auditing', 'completed')!.labels).toEqual(['clean'])
    expect(edge(user, 'running.auditing', 'running.auditing')!.labels).toEqual(['summary missing'])
    expect(edge(user, 'running.finalAuditing', 'running.finalAuditFix')!.labels).toEqual(['dirty audit'])
    expect(edge(user, 'running.committing', 'running.coding')!.labels).toEqual(['next section'])
    for (const e of user.edges) {
      for (const l of e.labels) expect(l, e.id).not.toMatch(/\[|xstate\.|session\.|loop\.|∧/)
    }
    // the transitions an edge stands for are kept for its tooltip
    expect(edge(user, 'running.auditing', 'running.coding')!.transitions).toContain(
      'running.auditing: session.done → running.judgingAudit ⇒ running.judgingAudit: [else] → running.coding',
    )
  })

  it('draws the ways a loop fails once, from running; a wait and the state it returns to as one edge both ways', () => {
    const into = (to: string) => user.edges.filter((e) => e.to === to).map((e) => e.from)
    expect(into('errored').sort()).toEqual(['paused', 'running'])
    expect(into('stalled')).toEqual(['running'])
    expect(into('cancelled').sort()).toEqual(['paused', 'running'])
    expect(edge(user, 'running', 'errored')!.labels).toEqual(
      expect.arrayContaining(['max iterations', 'max section attempts', 'no progress', 'budget exhausted', 'workspace failed', 'provider fatal']),
    )
    // backingOff retries the phase that failed: one edge each way, not a retry into every phase
    const retries = user.edges.filter((e) => e.from === 'running.backingOff')
    expect(retries.map((e) => e.to).sort()).toEqual(['running.auditing', 'running.coding', 'running.finalAuditFix', 'running.finalAuditing'])
    for (const e of retries) expect(e).toMatchObject({ twoWay: true, labels: ['failed / retry'] })
    expect(retries[0]!.events).toEqual(expect.arrayContaining(['session.failed', expect.stringMatching(/^xstate\.after\.retryBackoff\./)]))
    expect(user.edges.filter((e) => e.to === 'running.backingOff')).toEqual([])
    expect(edge(user, 'paused', 'running')).toMatchObject({ twoWay: true, labels: ['pause / resume / continue'] })
    expect(edge(user, 'running', 'paused')).toBeUndefined()
    // no re-entries: a session's activity and the watchdog's nudge stay internal
    expect(user.edges.filter((e) => e.from === e.to).map((e) => e.id)).toEqual(['running.auditing→running.auditing'])
  })
})

describe('the internal view of the loop chart', () => {
  it('draws every state but the watchdog children, choices included, and every transition with its guard', () => {
    expect(ids(internal)).toEqual(expect.arrayContaining(['running.dispatching', 'running.judgingAudit', 'running.judgingFinalAudit', 'running.failed']))
    expect(internal.nodes.filter((n) => n.kind === 'choice').map((n) => n.id).sort()).toEqual([
      'running.dispatching',
      'running.failed',
      'running.judgingAudit',
      'running.judgingFinalAudit',
    ])
    expect(ids(internal).filter((id) => id.endsWith('.watching'))).toEqual([])
    expect(edge(internal, 'running.judgingAudit', 'running.committing')!.labels).toEqual(['[auditClean ∧ isSectioned ∧ usesGit]', '[auditClean ∧ usesGit]'])
    expect(edge(internal, 'running.coding', 'running.checking')!.labels).toEqual(['session.done\n[hasChecks]'])
    expect(edge(internal, 'running.coding', 'running.coding')!.labels).toEqual(['session.activity', 'after stallTimeout'])
    expect(edge(internal, '(start)', 'running.dispatching')).toBeDefined()
    // every transition that goes somewhere is on an edge
    const drawn = new Set(internal.edges.flatMap((e) => e.transitions))
    for (const s of allStates(chart)) {
      for (const t of s.transitions) {
        for (const target of t.targets) {
          const what = t.kind === 'always' ? `[${t.guard ?? 'else'}]` : t.label
          const line = [...drawn].find((d) => d.startsWith(`${s.path}: ${what}`) && d.includes(`→ ${target}`))
          expect(line, `${s.path} ${t.label} → ${target}`).toBeDefined()
        }
      }
    }
  })
})

describe('guardWords', () => {
  it('says what a guard means to the user; a guard it does not know by its name', () => {
    expect(guardWords('auditClean')).toBe('clean')
    expect(guardWords('auditClean ∧ isSectioned ∧ hasNextSection')).toBe('next section')
    expect(guardWords('auditClean ∧ isSectioned ∧ usesGit')).toBe('clean')
    expect(guardWords('isSectioned ∧ onlySummaryMissing')).toBe('summary missing')
    expect(guardWords('inAuditing')).toBe('')
    expect(guardWords('¬hasChecks')).toBe('not checks')
    expect(guardWords('isHuge ∨ isLate')).toBe('isHuge, isLate')
  })
})

describe('a machine the tables have no words for', () => {
  it('still draws: its states, a choice run through, its events and guards by name', () => {
    const machine = setup({ guards: { isHuge: () => false } }).createMachine({
      id: 'toy',
      initial: 'idle',
      states: {
        idle: { on: { 'toy.kick': 'deciding' } },
        deciding: { always: [{ guard: 'isHuge', target: 'big' }, { target: 'small' }] },
        big: { type: 'final' },
        small: { on: { 'toy.again': 'idle' } },
      },
    })
    const { user: u, internal: i } = serializeChart(machine).views
    expect(u.nodes.map((n) => `${n.id}:${n.kind}`)).toEqual(['(start):start', 'idle:phase', 'big:final', 'small:phase'])
    expect(u.edges.map((e) => `${e.from}→${e.to} ${e.labels.join('|')}`)).toEqual(['(start)→idle ', 'idle→big isHuge', 'idle→small toy kick', 'small→idle toy again'])
    expect(i.nodes.map((n) => n.id)).toContain('deciding')
    expect(serializeChart(createMachine({ id: 'flat', initial: 'a', states: { a: {} } })).views.user.edges).toEqual([
      expect.objectContaining({ from: '(start)', to: 'a' }),
    ])
  })
})
