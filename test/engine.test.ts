import { existsSync } from 'node:fs'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { processStart } from '../adapters/claims.ts'
import { JsonStore } from '../adapters/json-store.ts'
import { MemoryStore } from '../adapters/memory-store.ts'
import type { LoopRecord } from '../adapters/snapshot-store.ts'
import { createEngine, type Engine } from '../services/engine.ts'
import { calls, text } from './helpers/loop-harness.ts'

let dir: string
let engine: Engine | null = null

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loopstate-engine-'))
})

afterEach(async () => {
  await engine?.close()
  engine = null
  await rm(dir, { recursive: true, force: true })
})

async function scenarioFile(name: string, json: unknown): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, JSON.stringify(json))
  return path
}

/** A MemoryStore that keeps every record written, in order. */
class TracingStore extends MemoryStore {
  readonly writes: LoopRecord[] = []
  override async put(record: LoopRecord): Promise<void> {
    this.writes.push(structuredClone(record))
    await super.put(record)
  }
}

const quick = { coder: [text('done')], auditor: [text('ok')] }

describe('engine', () => {
  it('writes every state change of a loop to the store', async () => {
    const store = new TracingStore()
    const s = await scenarioFile('s.json', {
      coder: [calls([['write_file', { path: 'a.txt', content: 'x' }]]), text('done')],
      auditor: [text('ok')],
    })
    engine = await createEngine({ store })
    const handle = await engine.start({ plan: '# Write a file\n\nDo it.' }, { models: [`scripted:${s}`], workspace: dir })
    const output = await handle.done
    expect(output).toMatchObject({ name: 'write-a-file', status: 'completed', reason: 'completed', iteration: 1 })
    const states = store.writes.map((w) => (w.snapshot as { value: unknown }).value)
    expect(states[0]).toEqual({ running: { coding: 'watching' } })
    expect(states).toContainEqual({ running: { auditing: 'watching' } })
    expect(states[states.length - 1]).toBe('completed')
    // every model turn's usage landed in a saved snapshot
    const calls_ = store.writes.map((w) => w.snapshot as { context: { usage: { total: { calls: number } } } })
    expect(new Set(calls_.map((c) => c.context.usage.total.calls))).toEqual(new Set([0, 1, 2, 3]))
    const saved = await store.get('write-a-file')
    expect(saved).toMatchObject({ status: 'completed', reason: 'completed', phase: 'auditing', iteration: 1 })
  })

  it('names loops after the plan title, with -2, -3 on collision', async () => {
    const s = await scenarioFile('s.json', quick)
    engine = await createEngine({ store: new MemoryStore() })
    const names = []
    for (let i = 0; i < 3; i++) {
      const h = await engine.start({ plan: '# Fix the Parser!\n\nx' }, { models: [`scripted:${s}`], workspace: dir })
      names.push(h.name)
    }
    expect(names).toEqual(['fix-the-parser', 'fix-the-parser-2', 'fix-the-parser-3'])
    await expect(
      engine.start({ plan: '# Other\n\nx' }, { name: 'fix-the-parser', models: [`scripted:${s}`], workspace: dir }),
    ).rejects.toThrow("name: a loop named 'fix-the-parser' already exists")
  })

  it('queues loops beyond maxConcurrentLoops and runs them as others finish', async () => {
    const slow = await scenarioFile('slow.json', {
      coder: [text('done', 150)],
      auditor: [text('ok', 150)],
    })
    const store = new TracingStore()
    engine = await createEngine({ store, maxConcurrentLoops: 2 })
    const handles = []
    for (let i = 0; i < 4; i++) {
      handles.push(await engine.start({ goal: `goal ${i}` }, { models: [`scripted:${slow}`], workspace: dir }))
    }
    const views = await engine.list()
    expect(views.map((v) => v.status)).toEqual(['running', 'running', 'queued', 'queued'])
    let maxRunning = 0
    const running = new Set<string>()
    for (const h of handles) {
      h.subscribe((v) => {
        if (v.status === 'running') running.add(v.name)
        else running.delete(v.name)
        maxRunning = Math.max(maxRunning, running.size)
      })
    }
    const outputs = await Promise.all(handles.map((h) => h.done))
    expect(outputs.map((o) => o.status)).toEqual(['completed', 'completed', 'completed', 'completed'])
    expect(maxRunning).toBeLessThanOrEqual(2)
    expect((await engine.list()).every((v) => v.status === 'completed')).toBe(true)
  })

  it('cancels a queued loop without running it', async () => {
    const slow = await scenarioFile('slow.json', { coder: [text('done', 100)], auditor: [text('ok')] })
    engine = await createEngine({ store: new MemoryStore(), maxConcurrentLoops: 1 })
    const first = await engine.start({ goal: 'one' }, { models: [`scripted:${slow}`], workspace: dir })
    const second = await engine.start({ goal: 'two' }, { models: [`scripted:${slow}`], workspace: dir })
    second.cancel()
    expect(await second.done).toMatchObject({ status: 'cancelled', reason: 'user_cancelled' })
    expect((await second.done).usage.total.calls).toBe(0)
    expect(await first.done).toMatchObject({ status: 'completed' })
  })

  it('rejects bad input with a clear error and saves nothing', async () => {
    const dataDir = join(dir, 'data')
    engine = await createEngine({ dataDir })
    const s = await scenarioFile('s.json', quick)
    const bad = await scenarioFile('bad.json', { coder: [{ type: 'txt', text: 'x' }] })
    const m = [`scripted:${s}`]
    await expect(engine.start({ plan: '' }, { models: m, workspace: dir })).rejects.toThrow('plan: plan is empty')
    await expect(engine.start({ planFile: join(dir, 'nope.md') }, { models: m, workspace: dir })).rejects.toThrow(
      /plan: .*nope\.md: file not found/,
    )
    await expect(engine.start({ goal: 'x' }, { models: ['gpt:4'], workspace: dir })).rejects.toThrow(
      "model: unknown scheme 'gpt' in 'gpt:4'",
    )
    await expect(engine.start({ goal: 'x' }, { models: ['noscheme'], workspace: dir })).rejects.toThrow(
      'config: models.0: expected <scheme>:<model>',
    )
    await expect(engine.start({ goal: 'x' }, { models: [`scripted:${bad}`], workspace: dir })).rejects.toThrow(
      /scenario: .*bad\.json: coder\[0\]\.type: expected one of/,
    )
    await expect(
      engine.start({ goal: 'x' }, { models: m, workspace: dir, maxIterations: -1 }),
    ).rejects.toThrow('config: maxIterations:')
    await expect(engine.start({ goal: 'x' }, { models: m, workspace: join(dir, 'missing') })).rejects.toThrow(
      /workspace: .*missing does not exist/,
    )
    await expect(engine.start({ goal: 'x' }, { models: m, workspace: dir, name: 'Bad Name' })).rejects.toThrow(
      "name: 'Bad Name' is not a valid loop name",
    )
    expect(existsSync(dataDir)).toBe(false)
    expect(await engine.list()).toEqual([])
  })

  it('keeps loops running in the JSON store when the engine closes', async () => {
    const dataDir = join(dir, 'data')
    const s = await scenarioFile('hang.json', { coder: [{ type: 'hang' }] })
    engine = await createEngine({ dataDir })
    const h = await engine.start({ goal: 'wait forever' }, { models: [`scripted:${s}`], workspace: dir })
    await new Promise((r) => setTimeout(r, 50))
    await engine.close()
    engine = null
    const record = JSON.parse(await readFile(join(dataDir, 'loops', `${h.name}.json`), 'utf8'))
    expect(record).toMatchObject({ name: 'wait-forever', status: 'running', reason: null, phase: 'coding' })
    expect(record.snapshot.value).toEqual({ running: { coding: 'watching' } })
    // saved without the session child (and the copy of the context that is its input): a restore invokes a fresh one
    expect(record.snapshot.children).toEqual({})
    expect(await readdir(join(dataDir, 'claims'))).toEqual([]) // the claim was given up with the engine
    const reopened = await new JsonStore(dataDir).list()
    expect(reopened.map((r) => r.name)).toEqual(['wait-forever'])
    // and it carries on from that record: a fresh session asks the cut call again (now answered) and the loop ends
    await writeFile(s, JSON.stringify({ coder: [text('waited')], auditor: [text('ok')] }))
    engine = await createEngine({ dataDir })
    const again = engine.handle('wait-forever')
    expect(again, 'restored by createEngine').toBeDefined()
    expect(await again!.done).toMatchObject({ status: 'completed', reason: 'completed', iteration: 1 })
  })

  it('claims every loop it runs (pid and process start time), and gives a claim up when its loop ends or the engine closes', async () => {
    const dataDir = join(dir, 'data')
    const s = await scenarioFile('hang.json', { coder: [{ type: 'hang' }] })
    engine = await createEngine({ dataDir, maxConcurrentLoops: 20 })
    const names: string[] = []
    for (let i = 0; i < 20; i++) {
      names.push((await engine.start({ goal: `loop ${i}` }, { models: [`scripted:${s}`], workspace: dir, stallTimeoutMs: 600_000 })).name)
    }
    expect((await readdir(join(dataDir, 'claims'))).sort()).toEqual([...names].sort())
    const claim = JSON.parse(await readFile(join(dataDir, 'claims', names[0]!, '1.json'), 'utf8'))
    expect(claim).toMatchObject({ pid: process.pid, started: processStart(process.pid), id: engine.owner.id })
    engine.handle(names[0]!)!.cancel()
    await engine.handle(names[0]!)!.done
    expect(await readdir(join(dataDir, 'claims'))).not.toContain(names[0])
    expect(await readdir(join(dataDir, 'claims'))).toHaveLength(19)
    await engine.close()
    expect(await readdir(join(dataDir, 'claims'))).toEqual([])
  })

  it('applies commands that another process leaves in the data dir', async () => {
    const dataDir = join(dir, 'data')
    const s = await scenarioFile('hang.json', { coder: [{ type: 'hang' }] })
    engine = await createEngine({ dataDir, commandPollMs: 20 })
    const h = await engine.start({ goal: 'wait' }, { models: [`scripted:${s}`], workspace: dir, stallTimeoutMs: 600_000 })
    const { JsonInbox } = await import('../adapters/inbox.ts')
    const inbox = new JsonInbox(dataDir)
    expect((await engine.claims.holder(h.name))?.pid).toBe(process.pid)
    await inbox.send(h.name, { type: 'loop.say', text: 'hello from afar' })
    await inbox.send(h.name, { type: 'loop.cancel' })
    const out = await h.done
    expect(out).toMatchObject({ status: 'cancelled', reason: 'user_cancelled' })
    const detail = await engine.get(h.name)
    expect(detail?.inbox).toEqual(['hello from afar'])
    expect(await engine.claims.holder(h.name)).toBeNull()
  })

  it('reports status details: findings, sections and usage per model and role', async () => {
    const s = await scenarioFile('s.json', {
      coder: [text('a'), text('b')],
      auditor: [
        calls([['report_finding', { file: 'a', line: 2, severity: 'warning', message: 'meh' }]]),
        text('<!-- summary -->\n### Done\nA\n<!-- /summary -->'),
        text('<!-- summary -->\n### Done\nB\n<!-- /summary -->'),
        text('all good'),
      ],
    })
    engine = await createEngine({ store: new MemoryStore() })
    const plan = '# P\n\npre\n<!-- section -->\n## One\nx\n<!-- section -->\n## Two\ny'
    const h = await engine.start({ plan }, { models: [`scripted:${s}`], workspace: dir })
    await h.done
    const d = await engine.get(h.name)
    expect(d).toMatchObject({
      status: 'completed',
      kind: 'sectioned',
      section: { index: 2, count: 2 },
      sections: [
        { title: 'One', status: 'done', summary: '### Done\nA' },
        { title: 'Two', status: 'done', summary: '### Done\nB' },
      ],
      findings: [{ id: 'F1', severity: 'warning', status: 'open', file: 'a', line: 2 }],
      openFindings: 1,
    })
    expect(d!.usage.byRole.coder.calls).toBe(2)
    expect(d!.usage.byRole.auditor.calls).toBe(4)
    expect(d!.usage.byModel[`scripted:${s}`]!.calls).toBe(6)
    expect(d!.tokens).toBe(d!.usage.total.inputTokens + d!.usage.total.outputTokens)
    expect(await engine.get('nope')).toBeNull()
  })
})
