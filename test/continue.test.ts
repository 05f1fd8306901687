/**
 * `continue`: an ended loop given more room (machines/continue.ts), through the real
 * engine on scripted models. The findings, usage and calls stay; the scripted
 * scenario goes on from the call where the loop stopped.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { JsonStore } from '../adapters/json-store.ts'
import { createEngine, type Engine } from '../services/engine.ts'
import { calls, error, text } from './helpers/loop-harness.ts'

let dir: string
let ws: string
let data: string
let e: Engine

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loopstate-continue-'))
  ws = join(dir, 'ws')
  data = join(dir, 'data')
  await mkdir(ws)
  e = await createEngine({ dataDir: data, onProblem: () => {} })
})

afterEach(async () => {
  await e.close()
  await rm(dir, { recursive: true, force: true })
})

async function model(name: string, json: unknown): Promise<string> {
  const file = join(dir, `${name}.json`)
  await writeFile(file, JSON.stringify(json))
  return `scripted:${file}`
}

const bug = () => calls([['report_finding', { file: 'a.js', line: 1, severity: 'bug', message: 'wrong' }]])
const record = async (name: string) => (await new JsonStore(data).get(name))!

describe('continue', () => {
  it('after max_iterations: more rework passes, the findings kept, and the loop completes', async () => {
    const m = await model('m', {
      coder: [text('first'), text('second'), calls([['write_file', { path: 'a.js', content: 'right' }]]), text('fixed')],
      auditor: [bug(), text('Wrong.'), bug(), text('Still wrong.'), calls([['resolve_finding', { id: 'F1' }]]), text('Fixed.')],
    })
    const h = await e.start({ goal: 'g' }, { name: 'more', models: [m], workspace: ws, maxIterations: 1 })
    expect(await h.done).toMatchObject({ status: 'errored', reason: 'max_iterations', iteration: 2 })
    const usageBefore = (await record('more')).snapshot.context.usage.total.calls
    const again = await e.continue('more', { more: 2 })
    expect(await again.done).toMatchObject({ status: 'completed', reason: 'completed', iteration: 3 })
    const c = (await record('more')).snapshot.context
    expect(c.config.maxIterations).toBe(3)
    expect(c.findings).toEqual([expect.objectContaining({ id: 'F1', status: 'resolved' })])
    expect(c.usage.total.calls).toBe(usageBefore + 4)
    expect(await readFile(join(ws, 'a.js'), 'utf8')).toBe('right')
    // in history: reopened where it ended, then the chart's transition
    const history = await e.history('more')
    const i = history.findIndex((x) => x.event === 'loop.reopened')
    expect(history[i]).toMatchObject({ from: 'errored', to: 'paused' })
    expect(history[i + 1]).toMatchObject({ event: 'loop.continue', from: 'paused' })
  })

  it('after provider_fatal: on another model (the auditor too, when it was the same), the failed step again', async () => {
    const broken = await model('broken', { coder: [error('model_not_found')] })
    const h = await e.start({ goal: 'g' }, { name: 'switch', models: [broken], workspace: ws })
    expect(await h.done).toMatchObject({ reason: 'provider_fatal' })
    const working = await model('working', { coder: [text('done')], auditor: [text('All good.')] })
    const again = await e.continue('switch', { models: [working] })
    expect(await again.done).toMatchObject({ status: 'completed', iteration: 1 })
    const c = (await record('switch')).snapshot.context
    expect(c.config.models).toEqual([working])
    expect(c.config.auditorModels).toEqual([working])
    expect(c.lastError).toBeNull()
  })

  it('a completed loop goes on with a follow-up message, which the next coder prompt carries', async () => {
    const m = await model('m', { coder: [text('done'), text('added the docs')], auditor: [text('All good.'), text('All good.')] })
    const h = await e.start({ goal: 'g' }, { name: 'follow', models: [m], workspace: ws })
    expect(await h.done).toMatchObject({ status: 'completed', iteration: 1 })
    const again = await e.continue('follow', { say: 'now add the docs' })
    expect(await again.done).toMatchObject({ status: 'completed', iteration: 2 })
    const c = (await record('follow')).snapshot.context
    expect(c.lastCoderReply).toBe('added the docs')
    expect(c.inbox).toEqual([]) // delivered
    expect(c.usage.total.calls).toBe(4)
  })

  it('after budget_exhausted: only with the limit raised', async () => {
    const m = await model('m', {
      coder: [{ type: 'text', text: 'one', usage: { input: 60, output: 60 } }, text('two')],
      auditor: [text('All good.')],
    })
    const h = await e.start({ goal: 'g' }, { name: 'budget', models: [m], workspace: ws, budget: { maxTokens: 100 } })
    expect(await h.done).toMatchObject({ reason: 'budget_exhausted' })
    const saved = await readFile(new JsonStore(data).pathOf('budget'), 'utf8')
    await expect(e.continue('budget', { budget: { maxTokens: 110 } })).rejects.toThrow(
      'continue: loop budget: its budget is spent: raise the limit that ended it (maxTokens, maxCostUsd or maxWallMs)',
    )
    expect(await readFile(new JsonStore(data).pathOf('budget'), 'utf8')).toBe(saved) // refused: nothing saved
    const again = await e.continue('budget', { budget: { maxTokens: 10_000 } })
    expect(await again.done).toMatchObject({ status: 'completed' })
  })

  it('refuses what cannot go on, before anything is saved', async () => {
    const hang = await model('hang', { coder: [{ type: 'hang' }] })
    const h = await e.start({ goal: 'g' }, { name: 'stopped', models: [hang], workspace: ws, stallTimeoutMs: 600_000 })
    await expect(e.continue('stopped')).rejects.toThrow('continue: loop stopped has not ended')
    h.cancel()
    expect(await h.done).toMatchObject({ reason: 'user_cancelled' })
    const saved = await readFile(new JsonStore(data).pathOf('stopped'), 'utf8')
    await expect(e.continue('stopped')).rejects.toThrow(/^continue: loop stopped: it ended with user_cancelled, which cannot be continued/)
    await expect(e.continue('nobody')).rejects.toThrow("continue: no loop named 'nobody'")
    const ok = await model('ok', { coder: [text('done')], auditor: [text('All good.')] })
    const done = await e.start({ goal: 'g' }, { name: 'done', models: [ok], workspace: ws })
    await done.done
    await expect(e.continue('done')).rejects.toThrow('continue: loop done: it completed: continue it with a follow-up message (say)')
    await expect(e.continue('done', { say: 'x', models: ['nope:x'] })).rejects.toThrow(/unknown scheme 'nope'/)
    await expect(e.continue('done', { say: 'x', more: 0 })).rejects.toThrow('continue: more must be a positive integer (got 0)')
    expect(await readFile(new JsonStore(data).pathOf('stopped'), 'utf8')).toBe(saved)
    expect((await record('done')).status).toBe('completed')
    expect(await e.list()).toHaveLength(2)
  })

  it('fork takes the same overrides: a new model and a message, and records where it came from', async () => {
    const a = await model('a', { coder: [text('tried')], auditor: [bug(), text('Wrong.')] })
    const h = await e.start({ goal: 'g' }, { name: 'orig', models: [a], workspace: ws, maxIterations: 0 })
    expect(await h.done).toMatchObject({ reason: 'max_iterations' })
    const point = (await e.history('orig')).find((x) => x.snapshot !== undefined && x.to.startsWith('running.coding'))!
    const b = await model('b', {
      coder: [calls([['write_file', { path: 'a.js', content: 'right' }]]), text('wrote it')],
      // forked from before the first audit: no finding yet
      auditor: [text('All good.')],
    })
    const forked = await e.fork('orig', { at: point.seq, name: 'second-try', models: [b], say: 'use the other approach', workspace: join(dir, 'ws2') })
    expect(await forked.done).toMatchObject({ status: 'completed' })
    const c = (await record('second-try')).snapshot.context
    expect(c.forkedFrom).toEqual({ name: 'orig', seq: point.seq })
    expect(c.findings).toEqual([])
    expect(c.lastCoderReply).toBe('wrote it')
    expect(c.config.models).toEqual([b])
    expect(c.config.auditorModels).toEqual([b])
    expect((await e.get('second-try'))!.forkedFrom).toEqual({ name: 'orig', seq: point.seq })
    // the original is as it was
    expect((await record('orig')).snapshot.context).toMatchObject({ reason: 'max_iterations', forkedFrom: null })
    expect((await record('orig')).snapshot.context.config.models).toEqual([a])
  })

  it('after no_progress: a rework pass with the message, the count reset', async () => {
    const m = await model('m', {
      coder: [text('1'), text('2'), text('3'), text('4'), calls([['write_file', { path: 'a.js', content: 'right' }]]), text('did it')],
      auditor: [bug(), text('Wrong.'), bug(), text('Wrong.'), bug(), text('Wrong.'), calls([['resolve_finding', { id: 'F1' }]]), text('Fixed.')],
    })
    const h = await e.start({ goal: 'g' }, { name: 'stuck', models: [m], workspace: ws })
    expect(await h.done).toMatchObject({ reason: 'no_progress', iteration: 4 })
    const again = await e.continue('stuck', { say: 'write a.js this time' })
    expect(await again.done).toMatchObject({ status: 'completed', iteration: 5 })
    expect((await record('stuck')).snapshot.context).toMatchObject({ passesWithoutProgress: 0, rework: 4 })
  })

  it('after max_section_attempts: the section gets more dirty audits', async () => {
    const plan = '# Two\n\nShared.\n<!-- section -->\n## A\nWrite a.\n<!-- section -->\n## B\nWrite b.'
    const summary = '<!-- summary -->\n### Done\nit\n### Deviations\nnone\n### Follow-ups\nnone\n<!-- /summary -->'
    const m = await model('m', {
      coder: [text('a1'), calls([['write_file', { path: 'a.txt', content: 'a' }]]), text('a2'), text('b'), text('fix')],
      auditor: [bug(), text('Wrong.'), calls([['resolve_finding', { id: 'F1' }]]), text(`Fixed.\n${summary}`), text(`B fine.\n${summary}`), text('Whole plan fine.')],
    })
    const h = await e.start({ plan }, { name: 'sections', models: [m], workspace: ws, maxSectionAttempts: 0 })
    expect(await h.done).toMatchObject({ reason: 'max_section_attempts' })
    const again = await e.continue('sections', { more: 1 })
    expect(await again.done).toMatchObject({ status: 'completed' })
    const c = (await record('sections')).snapshot.context
    expect(c.config.maxSectionAttempts).toBe(2)
    expect(c.sectionStates.map((x) => x.status)).toEqual(['done', 'done'])
  })

  it('after error_max_retries and stall_timeout: the failed step again, its counts reset', async () => {
    const flaky = await model('flaky', { coder: [error('ECONNREFUSED'), text('done')], auditor: [text('All good.')] })
    const h = await e.start({ goal: 'g' }, { name: 'retries', models: [flaky], workspace: ws, maxRetries: 0 })
    expect(await h.done).toMatchObject({ reason: 'error_max_retries' })
    const again = await e.continue('retries')
    expect(await again.done).toMatchObject({ status: 'completed', iteration: 1 })
    expect((await record('retries')).snapshot.context).toMatchObject({ errorCount: 0, lastError: null })

    // a scripted hang answers the same call the same way: the stalled step goes on on another model
    const hang = await model('hang', { coder: [{ type: 'hang' }] })
    const s = await e.start({ goal: 'g' }, { name: 'stalls', models: [hang], workspace: ws, stallTimeoutMs: 300, maxConsecutiveStalls: 1 })
    expect(await s.done).toMatchObject({ status: 'stalled', reason: 'stall_timeout' })
    const answers = await model('answers', { coder: [text('done')], auditor: [text('All good.')] })
    const again2 = await e.continue('stalls', { models: [answers] })
    expect(await again2.done).toMatchObject({ status: 'completed', iteration: 1 })
    expect((await record('stalls')).snapshot.context.stalls).toBe(0)
  })
})
