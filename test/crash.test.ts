/**
 * The crash suite: an engine process runs several loops (plain with side-effect
 * tools, sectioned with a dirty final audit, one in backoff, one stalling) on
 * scripted scenarios; the test SIGKILLs it at many instants, restarts it on the
 * same data dir, and checks that every loop ends exactly as an uninterrupted run
 * of the same scenarios does. Timed chains kill at instants spread over the run;
 * the coverage test kills when the saved records show each state it must cover
 * (a phase, backoff, a stall, a side-effect tool running), so that what it covers
 * does not depend on the machine's speed or on which tests ran before it.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { JsonStore } from '../adapters/json-store.ts'
import type { LoopRecord } from '../adapters/snapshot-store.ts'
import type { LoopContext } from '../machines/loop.types.ts'
import { stateString } from '../services/views.ts'
import type { CrashLoopSpec } from './crash/child.ts'

const CHILD = fileURLToPath(new URL('./crash/child.ts', import.meta.url))
const DELAY = 60

const usage = { usage: { input: 100, output: 20 } }
const say = (text: string, delayMs = DELAY) => ({ type: 'text', text, delayMs, ...usage })
const tool = (name: string, args: Record<string, unknown>, delayMs = DELAY) => ({
  type: 'tool_calls',
  calls: [{ name, arguments: args }],
  delayMs,
  ...usage,
})
const step = (label: string) =>
  tool('run_command', { command: `node -e "require('fs').appendFileSync('ran.log', '${label}\\n')"` })
const summary = (what: string) =>
  say(`ok\n<!-- summary -->\n### Done\n${what}\n### Deviations\nnone\n### Follow-ups\nnone\n<!-- /summary -->`)

const SCENARIOS: Record<string, unknown> = {
  plain: {
    coder: [
      tool('write_file', { path: 'a.txt', content: 'helo' }),
      step('plain-1'),
      say('wrote a.txt'),
      tool('edit_file', { path: 'a.txt', search: 'helo', replace: 'hello' }),
      step('plain-2'),
      say('fixed the typo'),
    ],
    auditor: [
      tool('report_finding', { file: 'a.txt', line: 1, severity: 'bug', message: 'typo' }),
      say('found a typo'),
      tool('resolve_finding', { id: 'F1' }),
      say('clean'),
    ],
  },
  sections: {
    coder: [
      tool('write_file', { path: 's1.txt', content: '1' }),
      say('one'),
      tool('write_file', { path: 's2.txt', content: '2' }),
      step('sections-2'),
      say('two'),
      tool('write_file', { path: 's3.txt', content: '3' }),
      say('three'),
      tool('write_file', { path: 'fix.txt', content: 'fix' }),
      say('fixed'),
    ],
    auditor: [
      summary('one'),
      summary('two'),
      summary('three'),
      tool('report_finding', { file: 's3.txt', line: 1, severity: 'bug', message: 'does not fit with s1' }),
      say('integration bug'),
      tool('resolve_finding', { id: 'F1' }),
      say('all clean'),
    ],
  },
  backoff: {
    coder: [
      { type: 'error', error: 'ECONNREFUSED', delayMs: 30 },
      { type: 'error', error: 'ECONNRESET', delayMs: 30 },
      tool('write_file', { path: 'b.txt', content: 'b' }),
      say('done after retries'),
    ],
    auditor: [say('ok')],
  },
  stall: {
    coder: [{ type: 'hang' }, tool('write_file', { path: 'c.txt', content: 'c' }), say('back')],
    auditor: [{ type: 'hang' }, say('ok')],
  },
}

const SECTIONED_PLAN = ['# Three parts', 'shared', '<!-- section -->', '## One', 'a', '<!-- section -->', '## Two', 'b', '<!-- section -->', '## Three', 'c'].join('\n')

/** Scenario files are shared by every run: model specs (and so usage keys) are the same. */
async function writeScenarios(root: string): Promise<void> {
  await mkdir(join(root, 'scenarios'), { recursive: true })
  for (const [name, scenario] of Object.entries(SCENARIOS)) {
    await writeFile(join(root, 'scenarios', `${name}.json`), JSON.stringify(scenario))
  }
}

interface Run {
  dataDir: string
  specFile: string
  workRoot: string
  /** The scripted providers' call log of every process of the run (LOOPSTATE_SCRIPTED_LOG). */
  callLog: string
}

async function setupRun(root: string, label: string): Promise<Run> {
  const base = join(root, label)
  const workRoot = join(base, 'work')
  const dataDir = join(base, 'data')
  await mkdir(workRoot, { recursive: true })
  const specs: CrashLoopSpec[] = []
  for (const name of Object.keys(SCENARIOS)) {
    const file = join(root, 'scenarios', `${name}.json`)
    const workspace = join(workRoot, name)
    await mkdir(workspace)
    specs.push({
      name,
      ...(name === 'sections' ? { plan: SECTIONED_PLAN } : { goal: `the ${name} loop` }),
      options: {
        models: [`scripted:${file}`],
        workspace,
        retryBackoff: { baseMs: 300, jitter: 0 },
        stallTimeoutMs: 400,
        // Downtime past a deadline counts as a stall; the limit stays above what the kills of a chain can add.
        maxConsecutiveStalls: 10,
        // the steps append to ran.log with `node -e`: inline code, allowed here
        runCommand: { enabled: true, allow: ['node'], timeoutMs: 10_000, allowInlineCode: true },
      },
    })
  }
  const specFile = join(base, 'specs.json')
  await writeFile(specFile, JSON.stringify(specs))
  return { dataDir, specFile, workRoot, callLog: join(base, 'calls.jsonl') }
}

interface ChildRun {
  child: ChildProcess
  ready: Promise<void>
  exited: Promise<number | null>
  stderr: () => string
}

function startChild(run: Run): ChildRun {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, run.dataDir, run.specFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOOPSTATE_SCRIPTED_LOG: run.callLog },
  })
  let out = ''
  let err = ''
  child.stderr!.on('data', (d) => (err += d))
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d
      if (out.includes('"ready":true')) resolve()
    })
    child.on('exit', () => reject(new Error(`child exited before ready: ${err}`)))
  })
  ready.catch(() => {})
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, ready, exited, stderr: () => err }
}

async function readRecords(dataDir: string): Promise<LoopRecord[]> {
  const dir = join(dataDir, 'loops')
  if (!existsSync(dir)) return []
  const files = (await readdir(dir)).filter((f) => f.endsWith('.json'))
  // JSON.parse throws on a torn file: the store must parse after every kill
  for (const f of files) JSON.parse(await readFile(join(dir, f), 'utf8'))
  // read as the store reads them: the running session's messages come back from its journal file
  const store = new JsonStore(dataDir)
  return (await Promise.all(files.map((f) => store.get(f.slice(0, -'.json'.length))))).filter((r) => r !== null)
}

/** What must be equal between the crashed and the uninterrupted run. */
function outcome(record: LoopRecord) {
  const c = (record.snapshot as { context: LoopContext }).context
  return {
    status: record.status,
    reason: record.reason,
    iteration: c.iteration,
    rework: c.rework,
    audits: c.audits,
    findings: c.findings,
    sections: c.sectionStates.map((s) => [s.status, s.attempts, s.summary]),
    usage: c.usage,
    calls: c.calls,
  }
}

/**
 * Answered model calls that a later process asked again: a call (loop, role, index) that
 * one process asked and then went past (it asked a later call of that loop and role), and
 * another process asked again. The journal keeps every answer on disk before the session
 * acts on it, so after a kill only the call in flight is asked again. Hung calls (ended by
 * a nudge, never answered) and failed ones are not answers.
 */
async function answeredCallsAskedAgain(callLog: string): Promise<string[]> {
  if (!existsSync(callLog)) return []
  const calls = (await readFile(callLog, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { loop: string; role: 'coder' | 'auditor'; call: number; pid: number })
  const repeated: string[] = []
  calls.forEach((c, i) => {
    const mine = calls.slice(0, i).filter((d) => d.loop === c.loop && d.role === c.role)
    const earlier = mine.find((d) => d.call === c.call && d.pid !== c.pid)
    if (!earlier) return
    const entry = (SCENARIOS[c.loop] as Record<string, { type: string }[]>)[c.role]![c.call]!
    if (entry.type === 'hang' || entry.type === 'error') return
    if (mine.some((d) => d.pid === earlier.pid && d.call > c.call)) repeated.push(`${c.loop} ${c.role} call ${c.call}`)
  })
  return repeated
}

async function ranLog(workRoot: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {}
  for (const name of Object.keys(SCENARIOS)) {
    const path = join(workRoot, name, 'ran.log')
    out[name] = existsSync(path) ? (await readFile(path, 'utf8')).split('\n').filter(Boolean) : []
  }
  return out
}

describe('crash suite', () => {
  let root: string
  let reference: Record<string, ReturnType<typeof outcome>>
  let referenceRan: Record<string, string[]>
  let referenceMs = 0

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'loopstate-crash-'))
    await writeScenarios(root)
    const run = await setupRun(root, 'reference')
    const child = startChild(run)
    await child.ready
    const readyAt = Date.now()
    expect(await child.exited, child.stderr()).toBe(0)
    referenceMs = Date.now() - readyAt
    reference = Object.fromEntries((await readRecords(run.dataDir)).map((r) => [r.name, outcome(r)]))
    referenceRan = await ranLog(run.workRoot)
  }, 60_000)

  afterAll(async () => {
    await rm(root, { recursive: true, force: true })
  })

  it('the uninterrupted run ends as the scenarios say', () => {
    expect(Object.fromEntries(Object.entries(reference).map(([k, v]) => [k, [v.status, v.reason, v.iteration]]))).toEqual({
      plain: ['completed', 'completed', 2],
      sections: ['completed', 'completed', 4],
      backoff: ['completed', 'completed', 1],
      stall: ['completed', 'completed', 1],
    })
    expect(reference.stall!.usage.byRole.coder.calls).toBe(2)
    expect(referenceRan).toEqual({ plain: ['plain-1', 'plain-2'], sections: ['sections-2'], backoff: [], stall: [] })
  })

  // 9 chains of 6 kills = 54 kills, at instants spread over the whole run.
  const CHAINS = 9
  const KILLS_PER_CHAIN = 6
  for (let chain = 0; chain < CHAINS; chain++) {
    it(`chain ${chain + 1}: ${KILLS_PER_CHAIN} kills, then the loops end as uninterrupted`, async () => {
      const run = await setupRun(root, `chain-${chain}`)
      const seen: string[] = []
      for (let k = 0; k < KILLS_PER_CHAIN; k++) {
        const child = startChild(run)
        await child.ready
        // Spread the kill instants: each chain takes a different offset through the run.
        const span = Math.max(400, referenceMs)
        const at = Math.round(((chain * KILLS_PER_CHAIN + k) * 0.618034 % 1) * span * 0.5) + 5
        await new Promise((r) => setTimeout(r, at))
        child.child.kill('SIGKILL')
        await child.exited
        for (const r of await readRecords(run.dataDir)) {
          const c = (r.snapshot as { context: LoopContext; value: unknown }).context
          const tools = c.journal?.running.length ? '+tool' : ''
          seen.push(`${r.name}:${stateString((r.snapshot as { value: unknown }).value)}${tools}`)
        }
      }
      await finishAndCheck(run, seen)
    }, 120_000)
  }

  /** Runs the loops of a killed chain to their end and checks they ended as the uninterrupted run. */
  async function finishAndCheck(run: Run, seen: string[]) {
    const last = startChild(run)
    await last.ready
    expect(await last.exited, last.stderr()).toBe(0)
    const records = await readRecords(run.dataDir)
    expect(records.map((r) => r.name).sort()).toEqual(Object.keys(SCENARIOS).sort())
    for (const r of records) expect(outcome(r), `${r.name} (kills landed in: ${seen.join(' ')})`).toEqual(reference[r.name])
    // no side-effect command ran twice; an interrupted one may be missing, never repeated
    const ran = await ranLog(run.workRoot)
    for (const [name, lines] of Object.entries(ran)) {
      expect(new Set(lines).size, `${name}: ${lines.join(',')}`).toBe(lines.length)
      for (const line of lines) expect(referenceRan[name]).toContain(line)
    }
    // no model call that had answered was asked again
    expect(await answeredCallsAskedAgain(run.callLog)).toEqual([])
  }

  it('the kills land in every phase, in backoff, in stalls and during tool calls, and the loops still end as uninterrupted', async () => {
    // Each target is hit by a kill whose saved record shows it: the child is killed as soon as
    // a poll of the records sees a missing target, and the target counts when the record left
    // by the kill still shows it. A chain runs to the end (and is checked) before the next.
    const pending = new Map(TARGETS.map((t) => [t.label, t]))
    const landed: string[] = []
    for (let chain = 0; chain < 6 && pending.size > 0; chain++) {
      const run = await setupRun(root, `coverage-${chain}`)
      const seen: string[] = []
      for (let k = 0; k < 16 && pending.size > 0; k++) {
        const child = startChild(run)
        await child.ready
        let exited = false
        void child.exited.then(() => (exited = true))
        while (!exited && !(await readRecords(run.dataDir).catch(() => [])).some((r) => hits(r, [...pending.values()]).length > 0)) {
          await new Promise((r) => setTimeout(r, 2))
        }
        if (exited) break // the loops ended before a missing target came up: on to the next chain
        child.child.kill('SIGKILL')
        await child.exited
        for (const r of await readRecords(run.dataDir)) {
          seen.push(`${r.name}:${stateString((r.snapshot as { value: unknown }).value)}`)
          for (const label of hits(r, [...pending.values()])) {
            pending.delete(label)
            landed.push(label)
          }
        }
      }
      await finishAndCheck(run, seen)
    }
    expect([...pending.keys()], `no kill landed in these (landed: ${landed.join(', ')})`).toEqual([])
  }, 600_000)
})

/** Tools that change the workspace (a kill during one must not run it again). */
const SIDE_EFFECT_TOOLS = new Set(['write_file', 'edit_file', 'run_command'])

interface Target {
  label: string
  loop: string
  hit: (state: string, c: LoopContext) => boolean
}

const inState = (s: string) => (state: string) => state === s

/** Where the coverage test's kills must land. */
const TARGETS: Target[] = [
  { label: 'coding', loop: 'plain', hit: inState('running.coding.watching') },
  { label: 'auditing', loop: 'plain', hit: inState('running.auditing.watching') },
  { label: 'finalAuditing', loop: 'sections', hit: inState('running.finalAuditing.watching') },
  { label: 'finalAuditFix', loop: 'sections', hit: inState('running.finalAuditFix.watching') },
  { label: 'backoff', loop: 'backoff', hit: inState('running.backingOff') },
  // the first coder call hangs: no call of the loop has an outcome yet
  {
    label: 'a hung call',
    loop: 'stall',
    hit: (state, c) => state === 'running.coding.watching' && Object.keys(c.calls).length === 0,
  },
  // a stall was counted (the watchdog nudged, or a deadline passed while down) and no turn since
  { label: 'after a stall', loop: 'stall', hit: (state, c) => state.endsWith('.watching') && c.stalls > 0 },
  {
    label: 'a side-effect tool running',
    loop: 'plain',
    hit: (_state, c) => {
      const calls = (c.journal?.messages ?? []).flatMap((m) => (m.role === 'assistant' ? m.toolCalls ?? [] : []))
      return (c.journal?.running ?? []).some((id) => SIDE_EFFECT_TOOLS.has(calls.find((t) => t.id === id)?.name ?? ''))
    },
  },
]

/** The labels of the targets `record` is in. */
function hits(record: LoopRecord, targets: Target[]): string[] {
  const snapshot = record.snapshot as { context: LoopContext; value: unknown }
  const state = stateString(snapshot.value)
  return targets.filter((t) => t.loop === record.name && t.hit(state, snapshot.context)).map((t) => t.label)
}
