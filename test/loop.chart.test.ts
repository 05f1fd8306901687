/**
 * The chart on its own (machines/loop.machine.ts): a stub session that answers
 * with `session.*` events, a stub for the checks, no model, no file. What is
 * decided here is the chart's: the no-progress stop from digests, checks that gate
 * completion, and `loop.continue` from a reopened end.
 */
import { describe, expect, it } from 'vitest'
import { createActor, fromCallback, fromPromise, waitFor, type Snapshot } from 'xstate'
import { loopMachine } from '../machines/loop.machine.ts'
import type { CheckResult, Finding, LoopEvent, SessionCommand, SessionInput } from '../machines/loop.types.ts'
import type { ChecksInput } from '../machines/checks.ts'
import { resolveConfig, type LoopOptions } from '../services/config.ts'
import { goalTask } from '../services/plan.ts'

type Answer = LoopEvent[]
const done = (text: string, digest?: string): LoopEvent => ({ type: 'session.done', text, delivered: 0, ...(digest !== undefined ? { digest } : {}) })
const finding = (id: string, audit: number): Finding => ({
  id, file: 'a.js', line: 1, severity: 'bug', message: 'wrong', status: 'open', section: null, reportedInAudit: audit, openAudits: 0, recurring: false,
})

/** A machine whose sessions answer from per-role lists of event batches, and whose checks answer from a list. */
function chart(answers: { coder: Answer[]; auditor: Answer[] }, checks: CheckResult[][] = []) {
  const sessions: SessionInput[] = []
  const machine = loopMachine.provide({
    actors: {
      session: fromCallback<SessionCommand, SessionInput>(({ input, sendBack }) => {
        sessions.push(input)
        const batch = answers[input.role].shift()
        if (!batch) throw new Error(`stub: no ${input.role} answer left`)
        const t = setTimeout(() => batch.forEach((e) => sendBack(e)), 0)
        return () => clearTimeout(t)
      }),
      runChecks: fromPromise<CheckResult[], ChecksInput>(async () => {
        const next = checks.shift()
        if (!next) throw new Error('stub: no check results left')
        return next
      }),
    },
  })
  return { machine, sessions }
}

function input(options: Omit<LoopOptions, 'models'> = {}) {
  return { name: 'chart', ...goalTask('g'), workspace: '/nonexistent', config: resolveConfig({ models: ['stub:m'], ...options }) }
}

const ended = (snapshot: { status: string }) => snapshot.status === 'done'

describe('the chart with a stub session', () => {
  it('ends no_progress when the coder passes leave the same digest', async () => {
    const { machine, sessions } = chart({
      coder: [[done('1', 'd1')], [done('2', 'd1')], [done('3', 'd1')], [done('4', 'd1')]],
      auditor: Array.from({ length: 4 }, (_, i) => [{ type: 'session.finding.reported', finding: finding('F1', 1) } as LoopEvent, done(`dirty ${i}`)]),
    })
    const actor = createActor(machine, { input: input() }).start()
    const end = await waitFor(actor, ended)
    expect(end.context).toMatchObject({ reason: 'no_progress', iteration: 4, passesWithoutProgress: 3, audits: 3 })
    expect(sessions.map((s) => s.role)).toEqual(['coder', 'auditor', 'coder', 'auditor', 'coder', 'auditor', 'coder'])
    actor.stop()
  })

  it('a session state carries the session tag; the checks state the checks tag', async () => {
    const { machine } = chart({ coder: [[done('1', 'd1')]], auditor: [[done('ok')]] }, [[{ name: 'c', passed: true, outcome: 'exit code 0', tail: '', ms: 1 }]])
    const actor = createActor(machine, { input: input({ checks: [{ run: ['true'] }] }) })
    const tags: string[][] = []
    actor.subscribe((s) => tags.push([...s.tags].sort()))
    actor.start()
    await waitFor(actor, ended)
    expect(tags).toContainEqual(['session'])
    expect(tags).toContainEqual(['checks'])
  })

  it('a failing check keeps an audit that reads clean from completing; a passing one resolves it', async () => {
    const fail: CheckResult = { name: 'unit', passed: false, outcome: 'exit code 1', tail: 'boom', ms: 1 }
    const pass: CheckResult = { ...fail, passed: true, outcome: 'exit code 0', tail: '' }
    const { machine } = chart({ coder: [[done('1', 'd1')], [done('2', 'd2')]], auditor: [[done('All good.')], [done('All good.')]] }, [[fail], [pass]])
    const actor = createActor(machine, { input: input({ checks: [{ name: 'unit', run: ['npm', 'test'] }] }) }).start()
    const end = await waitFor(actor, ended)
    expect(end.context).toMatchObject({ reason: 'completed', iteration: 2, audits: 2 })
    expect(end.context.findings).toEqual([expect.objectContaining({ id: 'F1', check: 'unit', status: 'resolved' })])
    expect(end.context.lastAudit).toMatchObject({ n: 2, clean: true })
  })

  it('loop.continue takes a reopened end on with its overrides', async () => {
    const { machine } = chart({
      coder: [[done('1', 'd1')], [done('2', 'd2')]],
      auditor: [[{ type: 'session.finding.reported', finding: finding('F1', 1) } as LoopEvent, done('dirty')], [{ type: 'session.finding.resolved', id: 'F1' } as LoopEvent, done('fixed')]],
    })
    const first = createActor(machine, { input: input({ maxIterations: 0 }) }).start()
    const end = await waitFor(first, ended)
    expect(end.context.reason).toBe('max_iterations')
    const saved = first.getPersistedSnapshot() as Snapshot<unknown> & { context: typeof end.context }
    first.stop()
    const reopened = { ...saved, status: 'active', value: 'paused', output: undefined, context: { ...saved.context, status: 'paused' } }
    const again = createActor(machine, { snapshot: reopened as Snapshot<unknown>, input: input() }).start()
    again.send({ type: 'loop.continue', options: { more: 1, say: 'try harder' } })
    const final = await waitFor(again, ended)
    expect(final.context).toMatchObject({ reason: 'completed', iteration: 2, rework: 1 })
    expect(final.context.config.maxIterations).toBe(1)
  })
})
