import { existsSync, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createActor } from 'xstate'
import { processStart } from '../adapters/claims.ts'
import { JsonStore } from '../adapters/json-store.ts'
import { MemoryStore } from '../adapters/memory-store.ts'
import { scriptedFactory } from '../adapters/scripted-provider.ts'
import { SCHEMA_VERSION } from '../adapters/snapshot-store.ts'
import { NUDGE_MESSAGE } from '../machines/loop.machine.ts'
import { createEngine, type Engine } from '../services/engine.ts'
import { INTERRUPTED_TOOL_RESULT } from '../services/session.ts'
import { advanceUntil, calls, error, hang, report, resolveF, runToEnd, startLoop, text, type Harness } from './helpers/loop-harness.ts'

describe('restore: timers and the session journal (controlled time)', () => {
  let h: Harness | null = null
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(async () => {
    await h?.cleanup()
    h = null
    vi.useRealTimers()
  })

  it('resumes a backoff for its remaining time', async () => {
    h = await startLoop({
      options: { retryBackoff: { baseMs: 10_000, jitter: 0 } },
      scenario: { coder: [error('ECONNREFUSED'), text('done')], auditor: [text('ok')] },
    })
    const harness = h
    await advanceUntil(harness, () => harness.state() === 'running.backingOff')
    const deadline = harness.ctx().retryDeadline!
    expect(deadline - Date.now()).toBeGreaterThan(9980)
    await vi.advanceTimersByTimeAsync(3000)
    await harness.restart(2000) // saved 7 s before the retry, down for 2 s: 5 s left
    expect(harness.state()).toBe('running.backingOff')
    expect(harness.ctx().retryDeadline).toBe(deadline)
    await vi.advanceTimersByTimeAsync(deadline - Date.now() - 10)
    expect(harness.requests).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(20)
    expect(harness.requests[1]).toMatchObject({ role: 'coder' }) // the retry, right on time
    const ctx = await runToEnd(harness)
    expect(ctx.reason).toBe('completed')
    expect(ctx.errorCount).toBe(0)
  })

  it('re-arms the watchdog with the whole stall timeout for the call the restored session asks again', async () => {
    h = await startLoop({
      options: { stallTimeoutMs: 10_000 },
      scenario: { coder: [hang(), text('back')], auditor: [text('ok')] },
    })
    const harness = h
    await vi.advanceTimersByTimeAsync(8000)
    await harness.restart(1000) // 1 s of the old deadline left: the call asked again must not stall at once
    expect(harness.ctx().stallDeadline! - Date.now()).toBe(10_000)
    expect(harness.requests).toHaveLength(2) // the hung call, asked again after the restore
    await vi.advanceTimersByTimeAsync(10_000 - 10) // well past the old deadline
    expect(harness.requests).toHaveLength(2)
    await vi.advanceTimersByTimeAsync(20)
    // the stall nudged: the next call carries the nudge
    expect(harness.requests[2]!.messages.at(-1)).toEqual({ role: 'user', content: NUDGE_MESSAGE })
    const ctx = await runToEnd(harness)
    expect(ctx.reason).toBe('completed')
    expect(ctx.lastCoderReply).toBe('back')
  })

  it('counts a stall deadline that passed while the engine was down as one stall', async () => {
    h = await startLoop({
      options: { stallTimeoutMs: 1000, maxConsecutiveStalls: 3 },
      scenario: { coder: [hang(), text('back')], auditor: [text('ok')] },
    })
    const harness = h
    await vi.advanceTimersByTimeAsync(500)
    await harness.restart(60_000) // sixty timeouts' worth of downtime
    expect(harness.ctx().stalls).toBe(1)
    expect(harness.ctx().stallDeadline! - Date.now()).toBe(1000) // a fresh deadline for the call asked again
    expect(harness.ctx().calls).toEqual({}) // the cut call's outcome never reached the loop
    expect(harness.requests[1]!.messages).toEqual(harness.requests[0]!.messages)
    await vi.advanceTimersByTimeAsync(1010) // the call asked again hangs too: a real stall, and its nudge
    expect(harness.requests[2]!.messages.at(-1)).toEqual({ role: 'user', content: NUDGE_MESSAGE })
    const ctx = await runToEnd(harness)
    expect(ctx.reason).toBe('completed')
    expect(ctx.lastCoderReply).toBe('back')
  })

  it('ends stalled when the stall that passed while down reaches the limit', async () => {
    h = await startLoop({
      options: { stallTimeoutMs: 1000, maxConsecutiveStalls: 2 },
      scenario: { coder: [hang(), hang(), text('never')] },
    })
    const harness = h
    await advanceUntil(harness, () => harness.ctx().stalls === 1)
    await vi.advanceTimersByTimeAsync(300)
    await harness.restart(5000)
    expect(harness.state()).toBe('stalled')
    expect(harness.ctx()).toMatchObject({ reason: 'stall_timeout', stalls: 2 })
  })

  it('continues a session after its last completed turn: no model call made twice', async () => {
    h = await startLoop({
      scenario: {
        coder: [
          calls([['write_file', { path: 'a.txt', content: 'one' }]]),
          calls([['write_file', { path: 'b.txt', content: 'two' }]], 5000),
          text('wrote both'),
        ],
        auditor: [text('ok')],
      },
    })
    const harness = h
    await advanceUntil(harness, () => harness.requests.length === 2)
    await vi.advanceTimersByTimeAsync(1000) // inside the second call
    const usageBefore = harness.ctx().usage.total
    expect(usageBefore.calls).toBe(1)
    await harness.restart()
    const ctx = await runToEnd(harness)
    expect(ctx.reason).toBe('completed')
    // the first turn came from the journal; only the interrupted second call was made again
    const coderCalls = harness.requests.filter((r) => r.role === 'coder')
    expect(coderCalls).toHaveLength(4)
    expect(coderCalls[2]!.messages).toEqual(coderCalls[1]!.messages)
    expect(ctx.usage.byRole.coder.calls).toBe(3)
    expect(readFileSync(join(harness.workspace, 'b.txt'), 'utf8')).toBe('two')
  })

  it('reports a side-effect tool call that was interrupted instead of running it again', async () => {
    h = await startLoop({
      scenario: {
        coder: [calls([['write_file', { path: 'a.txt', content: 'x' }], ['list_files', {}]]), text('done')],
        auditor: [text('ok')],
      },
    })
    const harness = h
    await advanceUntil(harness, () => harness.ctx().journal?.messages.some((m) => m.role === 'tool') === true)
    // Pretend the engine died while both tools ran: neither finish was recorded.
    const snap = harness.actor.getPersistedSnapshot() as unknown as { context: { journal: { messages: unknown[]; running: string[] } } }
    const journal = snap.context.journal
    const started = journal.messages.slice(0, 3) // system, user, assistant with the two calls
    const ids = (started[2] as { toolCalls: { id: string }[] }).toolCalls.map((c) => c.id)
    harness.actor.stop()
    await rm(join(harness.workspace, 'a.txt'))
    snap.context.journal = { ...journal, messages: started, running: ids }
    harness.actor = restoreFrom(harness, snap)
    const ctx = await runToEnd(harness)
    expect(ctx.reason).toBe('completed')
    expect(existsSync(join(harness.workspace, 'a.txt'))).toBe(false) // the write was not redone
    const last = harness.requests.filter((r) => r.role === 'coder').pop()!.messages
    const tools = last.filter((m) => m.role === 'tool')
    expect(tools[0]).toMatchObject({ content: INTERRUPTED_TOOL_RESULT, toolName: 'write_file' })
    expect(tools[1]).toMatchObject({ toolName: 'list_files', content: expect.not.stringContaining('interrupted') })
  })
})

/** Restores the harness's loop (same machine and providers) from an edited persisted snapshot. */
function restoreFrom(h: Harness, snapshot: unknown): Harness['actor'] {
  const actor = createActor(h.actor.logic, { snapshot: snapshot as never, input: (snapshot as { context: never }).context })
  actor.subscribe({ error: () => {} })
  actor.start()
  actor.send({ type: 'loop.restored' })
  return actor
}

describe('engine resume', () => {
  let dir: string
  const engines: Engine[] = []
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loopstate-resume-'))
  })
  afterEach(async () => {
    for (const e of engines.splice(0)) await e.close()
    await rm(dir, { recursive: true, force: true })
  })
  const engine = async (opts: Parameters<typeof createEngine>[0] = {}) => {
    const e = await createEngine({ dataDir: join(dir, 'data'), onProblem: () => {}, ...opts })
    engines.push(e)
    return e
  }
  const scenario = async (name: string, json: unknown) => {
    const path = join(dir, name)
    await writeFile(path, JSON.stringify(json))
    return `scripted:${path}`
  }

  it('restores unfinished loops when an engine starts on the data dir; paused ones stay paused', async () => {
    const slow = await scenario('slow.json', {
      coder: [text('first', 300), text('second')],
      auditor: [report('a', 'bug'), text('dirty'), resolveF('F1'), text('clean')],
    })
    const a = await engine()
    const running = await a.start({ goal: 'keep going' }, { models: [slow], workspace: dir })
    const paused = await a.start({ goal: 'stay paused' }, { models: [slow], workspace: dir })
    paused.pause()
    await new Promise((r) => setTimeout(r, 100))
    await a.close()
    const saved = await new JsonStore(join(dir, 'data')).list()
    expect(saved.map((r) => [r.name, r.status])).toEqual([
      ['keep-going', 'running'],
      ['stay-paused', 'paused'],
    ])

    const b = await engine()
    const h = b.handle('keep-going')!
    expect(h).toBeDefined()
    const out = await h.done
    expect(out).toMatchObject({ status: 'completed', reason: 'completed', iteration: 2 })
    // the call cut by the shutdown was asked again; no completed call was counted twice
    expect(out.usage.byRole).toMatchObject({ coder: { calls: 2 }, auditor: { calls: 4 } })
    expect(b.handle('stay-paused')!.view().status).toBe('paused')
    const history = await b.history('keep-going')
    expect(history.map((e) => e.event)).toContain('loop.restored')
    expect(history.map((e) => e.seq)).toEqual(history.map((_, i) => i + 1))
  })

  it('keeps running time across a shutdown, without the time it was stopped', async () => {
    const hangs = await scenario('hang.json', { coder: [hang(), hang()] })
    const a = await engine()
    const h = await a.start({ goal: 'timed' }, { models: [hangs], workspace: dir, stallTimeoutMs: 600_000 })
    await new Promise((r) => setTimeout(r, 300))
    await a.close()
    const saved = await new JsonStore(join(dir, 'data')).get(h.name)
    const wallAtClose = (saved!.snapshot as { context: { wallMs: number } }).context.wallMs
    expect(wallAtClose).toBeGreaterThanOrEqual(280)
    await new Promise((r) => setTimeout(r, 500)) // stopped: not running time
    const b = await engine()
    await new Promise((r) => setTimeout(r, 100))
    b.handle(h.name)!.cancel()
    await b.handle(h.name)!.done
    const wall = (await b.get(h.name))!.elapsedMs
    expect(wall).toBeGreaterThanOrEqual(wallAtClose + 80)
    expect(wall).toBeLessThan(wallAtClose + 450)
  })

  it('leaves loops to a live process that runs them, and resume by name says so', async () => {
    const hangs = await scenario('hang.json', { coder: [hang()] })
    const a = await engine()
    const h = await a.start({ goal: 'owned' }, { models: [hangs], workspace: dir, stallTimeoutMs: 600_000 })
    await new Promise((r) => setTimeout(r, 50))
    expect(JSON.parse(await readFile(join(dir, 'data', 'claims', h.name, '1.json'), 'utf8'))).toMatchObject({
      pid: process.pid,
      id: a.owner.id,
    })
    await a.close()
    expect(await readdir(join(dir, 'data', 'claims'))).toEqual([]) // a closed engine holds no claim
    // another engine of this same process is another owner, but fake one of another live process
    await mkdir(join(dir, 'data', 'claims', h.name), { recursive: true })
    await writeFile(
      join(dir, 'data', 'claims', h.name, '1.json'),
      JSON.stringify({ id: 'other', pid: process.ppid, started: processStart(process.ppid), host: hostname() }),
    )
    const b = await engine()
    expect(b.handle(h.name)).toBeUndefined()
    await expect(b.resume(h.name)).rejects.toThrow(`resume: loop owned is running in process ${process.ppid}`)
    await expect(b.resume('nope')).rejects.toThrow("resume: no loop named 'nope'")
  })

  it('resumes the other loops when one store file is corrupt, and reports it in one line', async () => {
    const quick = await scenario('quick.json', { coder: [text('a', 200)], auditor: [text('ok')] })
    const a = await engine()
    await a.start({ goal: 'fine' }, { models: [quick], workspace: dir })
    await a.close()
    await writeFile(join(dir, 'data', 'loops', 'broken.json'), '{"schemaVersion": 2, "na')
    const problems: string[] = []
    const b = await engine({ onProblem: (m) => problems.push(m) })
    expect(await b.handle('fine')!.done).toMatchObject({ status: 'completed' })
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(/^snapshot-store: .*broken\.json: not valid JSON; moved aside to .*broken\.json\.quarantined-/)
    const files = await readdir(join(dir, 'data', 'loops'))
    expect(files.some((f) => f.startsWith('broken.json.quarantined-'))).toBe(true)
  })

  it('migrates and resumes a loop saved by schema version 1', async () => {
    const record = JSON.parse(await readFile(new URL('./fixtures/v1-record.json', import.meta.url), 'utf8'))
    expect(record.schemaVersion).toBe(1)
    const finish = await scenario('finish.json', { auditor: [resolveF('F1'), text('fixed now')] })
    const ctx = record.snapshot.context
    ctx.workspace = dir
    ctx.config.models = [finish]
    ctx.config.auditorModels = [finish]
    await mkdir(join(dir, 'data', 'loops'), { recursive: true })
    await writeFile(join(dir, 'data', 'loops', `${record.name}.json`), JSON.stringify(record))
    const e = await engine()
    const out = await e.handle(record.name)!.done
    expect(out).toMatchObject({ status: 'completed', reason: 'completed', iteration: 2 })
    const saved = JSON.parse(await readFile(join(dir, 'data', 'loops', `${record.name}.json`), 'utf8'))
    expect(saved.schemaVersion).toBe(SCHEMA_VERSION)
    expect(saved.snapshot.context.findings[0]).toMatchObject({ id: 'F1', status: 'resolved' })
  })

  it('forks a loop from a past snapshot: the fork replays to its own end, the original is unchanged', async () => {
    const s = await scenario('fork.json', {
      coder: [calls([['write_file', { path: 'a.txt', content: 'v1' }]]), text('v1'), calls([['write_file', { path: 'a.txt', content: 'v2' }]]), text('v2')],
      auditor: [report('a.txt', 'needs v2'), text('dirty'), resolveF('F1'), text('clean')],
    })
    const ws = join(dir, 'ws')
    await mkdir(ws)
    const e = await engine()
    const h = await e.start({ goal: 'make v2' }, { models: [s], workspace: ws })
    expect(await h.done).toMatchObject({ status: 'completed', iteration: 2 })
    const before = await readFile(join(dir, 'data', 'loops', 'make-v2.json'), 'utf8')
    const history = await e.history('make-v2')
    const firstAudit = history.find((x) => x.to === 'running.auditing.watching' && x.iteration === 1)!
    expect(firstAudit.snapshot).toBeDefined()
    const fork = await e.fork('make-v2', { at: firstAudit.seq, name: 'make-v2-again' })
    const out = await fork.done
    expect(out).toMatchObject({ name: 'make-v2-again', status: 'completed', reason: 'completed', iteration: 2 })
    // usage carries over from the snapshot (2 coder calls) plus the fork's own 2
    expect(out.usage.byRole.coder.calls).toBe(4)
    expect(await readFile(join(dir, 'data', 'loops', 'make-v2.json'), 'utf8')).toBe(before)
    const forkWs = (await e.get('make-v2-again'))!.workspace
    expect(forkWs).toBe(join(dir, 'ws.make-v2-again'))
    expect(await readFile(join(forkWs, 'a.txt'), 'utf8')).toBe('v2')
    await expect(e.fork('make-v2', { at: 0 })).rejects.toThrow('fork: no snapshot at or before #0 of make-v2')
    const end = history.at(-1)!
    expect(end.to).toBe('completed')
    await expect(e.fork('make-v2', { at: end.seq })).rejects.toThrow(`fork: #${end.seq} is where make-v2 ended (completed)`)
    expect(existsSync(join(dir, 'ws.make-v2-fork'))).toBe(false)
  })

  it('refuses a fork whose models are not available before copying anything', async () => {
    const path = join(dir, 'plain.json')
    await writeFile(path, JSON.stringify({ coder: [text('done')], auditor: [text('ok')] }))
    const ws = join(dir, 'ws')
    await mkdir(ws)
    // the original ran on a scheme of its own engine's (`custom:`, the scripted provider under another name)
    const first = await engine({ providers: { custom: scriptedFactory() } })
    const h = await first.start({ goal: 'say done' }, { models: [`custom:${path}`], workspace: ws })
    await h.done
    const audit = (await first.history('say-done')).find((x) => x.to === 'running.auditing.watching')!
    await first.close()
    const e = await engine() // without `custom`
    await expect(e.fork('say-done', { at: audit.seq, name: 'again' })).rejects.toThrow("model: unknown scheme 'custom'")
    expect(existsSync(join(dir, 'ws.again'))).toBe(false)
    expect((await e.list()).map((v) => v.name)).toEqual(['say-done'])
  })

  it('removes its workspace copy when a fork fails before it is saved, so that it can be tried again', async () => {
    const s = await scenario('plain.json', { coder: [text('done')], auditor: [text('ok')] })
    const ws = join(dir, 'ws')
    await mkdir(ws)
    await writeFile(join(ws, 'keep.txt'), 'original')
    let failPuts = false
    const store = new MemoryStore()
    const put = store.put.bind(store)
    store.put = (record) => (failPuts && record.name === 'again' ? Promise.reject(new Error('disk full')) : put(record))
    const e = await engine({ store })
    const h = await e.start({ goal: 'say done' }, { models: [s], workspace: ws })
    await h.done
    const audit = (await e.history('say-done')).find((x) => x.to === 'running.auditing.watching')!
    failPuts = true
    await expect(e.fork('say-done', { at: audit.seq, name: 'again' })).rejects.toThrow('disk full')
    expect(existsSync(join(dir, 'ws.again'))).toBe(false)
    expect(await readFile(join(ws, 'keep.txt'), 'utf8')).toBe('original')
    failPuts = false
    const fork = await e.fork('say-done', { at: audit.seq, name: 'again' })
    expect(await fork.done).toMatchObject({ name: 'again', status: 'completed' })
    expect(await readFile(join(dir, 'ws.again', 'keep.txt'), 'utf8')).toBe('original')
  })
})
