/**
 * Checks gate completion (docs/architecture.md "Checks"): real commands the engine
 * runs in the workspace after every coder pass, through the real engine on
 * scripted models.
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { JsonStore } from '../adapters/json-store.ts'
import type { ChatRequest, ModelProvider } from '../adapters/model-provider.ts'
import { parseScenario } from '../adapters/scenario.ts'
import { ScriptedProvider } from '../adapters/scripted-provider.ts'
import { createEngine, type Engine } from '../services/engine.ts'
import { calls, text } from './helpers/loop-harness.ts'
import { waitFor } from './helpers/wait-for.ts'

let dir: string
let ws: string
let data: string
const engines: Engine[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loopstate-checks-'))
  ws = join(dir, 'ws')
  data = join(dir, 'data')
  await mkdir(ws)
})

afterEach(async () => {
  for (const e of engines.splice(0)) await e.close()
  await rm(dir, { recursive: true, force: true })
})

async function engine(): Promise<Engine> {
  const e = await createEngine({ dataDir: data, onProblem: () => {} })
  engines.push(e)
  return e
}

async function model(json: unknown): Promise<string> {
  const file = join(dir, `m${Math.random().toString(36).slice(2)}.json`)
  await writeFile(file, JSON.stringify(json))
  return `scripted:${file}`
}

/** A check script: passes when a.js says `ok`, prints what it found either way. */
const CHECK_JS = `const fs = require('fs')
const got = fs.existsSync('a.js') ? fs.readFileSync('a.js', 'utf8').trim() : '(missing)'
console.log('a.js says: ' + got)
if (got !== 'ok') { console.error('expected ok'); process.exit(3) }
`
const node = process.execPath

describe('checks', () => {
  it('a check that fails until the coder fixes it: a blocking finding it opens and resolves', async () => {
    await writeFile(join(ws, 'check.js'), CHECK_JS)
    const m = await model({
      coder: [
        calls([['write_file', { path: 'a.js', content: 'wrong' }]]),
        text('wrote a.js'),
        calls([['write_file', { path: 'a.js', content: 'ok' }]]),
        text('fixed a.js'),
      ],
      // the auditor tries to resolve the check's finding by hand: refused; then it passes by itself
      auditor: [calls([['resolve_finding', { id: 'F1' }]]), text('The check fails.'), text('All good.')],
    })
    const e = await engine()
    const h = await e.start({ goal: 'make the check pass' }, { name: 'gated', models: [m], workspace: ws, checks: [{ name: 'unit', run: [node, 'check.js'] }] })
    expect(await h.done).toMatchObject({ status: 'completed', reason: 'completed', iteration: 2 })
    const record = (await new JsonStore(data).get('gated'))!
    const c = record.snapshot.context
    expect(c.findings).toEqual([
      expect.objectContaining({ id: 'F1', check: 'unit', status: 'resolved', severity: 'bug', file: '(check unit)' }),
    ])
    expect(c.lastChecks).toEqual([expect.objectContaining({ name: 'unit', passed: true, outcome: 'exit code 0' })])
    const history = await e.history('gated')
    expect(history.filter((x) => x.to === 'running.checking')).toHaveLength(2)
    // the results are in the transcript, after the coder sessions whose passes they checked
    const sessions = await new JsonStore(data).transcript('gated')
    expect(sessions.map((x) => [x.head?.role, (x.checks ?? []).map((r) => r.results.map((c) => c.outcome))])).toEqual([
      ['coder', [['exit code 3']]],
      ['auditor', []],
      ['coder', [['exit code 0']]],
      ['auditor', []],
    ])
  })

  it('the prompts carry a failing check: exit code and the end of its output; the auditor cannot resolve it', async () => {
    await writeFile(join(ws, 'check.js'), CHECK_JS)
    const scripted = new ScriptedProvider(
      parseScenario(
        {
          coder: [text('did nothing'), calls([['write_file', { path: 'a.js', content: 'ok' }]]), text('fixed')],
          auditor: [calls([['resolve_finding', { id: 'F1' }]]), text('The check fails.'), text('All good.')],
        },
        'prompts.json',
      ),
    )
    const seen: ChatRequest[] = []
    const recording: ModelProvider = { scheme: 'rec', chat: (req) => (seen.push(req), scripted.chat(req)) }
    const e = await createEngine({ dataDir: data, onProblem: () => {}, providers: { rec: () => recording } })
    engines.push(e)
    const h = await e.start({ goal: 'g' }, { name: 'prompts', models: ['rec:x'], workspace: ws, checks: [{ name: 'unit', run: [node, 'check.js'] }] })
    expect(await h.done).toMatchObject({ status: 'completed', iteration: 2 })
    const lastOf = (role: string, n: number) => seen.filter((r) => r.role === role)[n]!.messages
    // the first audit's prompt: the check's outcome and output
    const audit = lastOf('auditor', 0).find((m) => m.role === 'user')!.content
    expect(audit).toContain('- unit: FAILS (exit code 3)')
    expect(audit).toContain('a.js says: (missing)')
    expect(audit).toContain('expected ok')
    // its resolve_finding was refused
    expect(lastOf('auditor', 1).at(-1)).toMatchObject({
      role: 'tool',
      content: "error: F1 is the check 'unit' failing: loopstate resolves it when the check passes, not by hand",
    })
    // the rework prompt of the coder: the failing check, and its finding among those to fix
    const rework = lastOf('coder', 1).find((m) => m.role === 'user')!.content
    expect(rework).toContain('## Checks that fail')
    expect(rework).toContain("F1 [bug] (check unit): the check 'unit' fails: exit code 3")
  })

  it('a check that hangs is killed at its timeout and counts as failing', async () => {
    const m = await model({ coder: [text('done')], auditor: [text('The check hangs.')] })
    const e = await engine()
    const hang = [node, '-e', "require('fs').writeFileSync('pid', String(process.pid)); setInterval(() => {}, 1000)"]
    const h = await e.start({ goal: 'g' }, { name: 'hangs', models: [m], workspace: ws, maxIterations: 0, checks: [{ name: 'hang', run: hang, timeoutMs: 1500 }] })
    expect(await h.done).toMatchObject({ status: 'errored', reason: 'max_iterations' })
    const c = (await new JsonStore(data).get('hangs'))!.snapshot.context
    expect(c.lastChecks).toEqual([expect.objectContaining({ name: 'hang', passed: false, outcome: 'timed out after 1500 ms (killed)' })])
    expect(c.findings).toEqual([expect.objectContaining({ check: 'hang', status: 'open', message: "the check 'hang' fails: timed out after 1500 ms (killed)" })])
    const pid = Number(await readFile(join(ws, 'pid'), 'utf8'))
    expect(() => process.kill(pid, 0)).toThrow() // killed with its tree
  })

  it('a check cut by a stop runs again when the loop is restored', async () => {
    // first run: notes itself and hangs; a later run passes
    const script = `const fs = require('fs'); fs.appendFileSync('runs', 'x'); if (fs.readFileSync('runs', 'utf8').length < 2) setInterval(() => {}, 1000)`
    const m = await model({ coder: [text('done')], auditor: [text('All good.')] })
    const a = await engine()
    await a.start({ goal: 'g' }, { name: 'cut', models: [m], workspace: ws, checks: [{ name: 'once', run: [node, '-e', script], timeoutMs: 600_000 }] })
    await waitFor(async () => existsSync(join(ws, 'runs')), 'the first run of the check')
    await a.close()
    engines.splice(engines.indexOf(a), 1)
    const saved = (await new JsonStore(data).get('cut'))!
    expect(saved.snapshot.value).toEqual({ running: 'checking' })
    expect(saved.snapshot.context.checksPending).toBe(true)
    const b = await engine()
    expect(await b.handle('cut')!.done).toMatchObject({ status: 'completed' })
    expect(await readFile(join(ws, 'runs'), 'utf8')).toBe('xx')
  })

  it('refuses checks that share a name, up front', async () => {
    const e = await engine()
    const m = await model({ coder: [text('x')], auditor: [text('ok')] })
    await expect(
      e.start({ goal: 'g' }, { models: [m], workspace: ws, checks: [{ run: ['npm', 'test'] }, { name: 'npm test', run: ['npm', 'run', 'test'] }] }),
    ).rejects.toThrow("config: checks.1.name: 'npm test' is the name of an earlier check; give each check its own name")
    expect(await e.list()).toEqual([])
  })
})
