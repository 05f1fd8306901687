/**
 * The crash suite: an engine process runs several loops (plain with side-effect
 * tools, sectioned with a dirty final audit, one in backoff, one stalling) on
 * scripted scenarios; the test SIGKILLs it at many instants, restarts it on the
 * same data dir, and checks that every loop ends exactly as an uninterrupted run
 * of the same scenarios does.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
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

async function setupRun(root: string, label: string): Promise<{ dataDir: string; specFile: string; workRoot: string }> {
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
  return { dataDir, specFile, workRoot }
}

interface ChildRun {
  child: ChildProcess
  ready: Promise<void>
  exited: Promise<number | null>
  stderr: () => string
}

function startChild(dataDir: string, specFile: string): ChildRun {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dataDir, specFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
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
  return Promise.all(files.map(async (f) => JSON.parse(await readFile(join(dir, f), 'utf8')) as LoopRecord))
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
    const child = startChild(run.dataDir, run.specFile)
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
        const child = startChild(run.dataDir, run.specFile)
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
      const last = startChild(run.dataDir, run.specFile)
      await last.ready
      expect(await last.exited, last.stderr()).toBe(0)
      const records = await readRecords(run.dataDir)
      expect(records.map((r) => r.name).sort()).toEqual(Object.keys(SCENARIOS).sort())
      for (const r of records) expect(outcome(r), r.name).toEqual(reference[r.name])
      // no side-effect command ran twice; an interrupted one may be missing, never repeated
      const ran = await ranLog(run.workRoot)
      for (const [name, lines] of Object.entries(ran)) {
        expect(new Set(lines).size, `${name}: ${lines.join(',')}`).toBe(lines.length)
        for (const line of lines) expect(referenceRan[name]).toContain(line)
      }
      coverage.push(...seen)
    }, 120_000)
  }

  const coverage: string[] = []
  it('the kills landed in every phase, in backoff, in stalls and during tool calls', () => {
    const states = new Set(coverage.map((s) => s.split(':')[1]!.replace('+tool', '')))
    for (const s of [
      'running.coding.watching',
      'running.auditing.watching',
      'running.finalAuditing.watching',
      'running.finalAuditFix.watching',
      'running.backingOff',
    ]) {
      expect(states, `no kill in ${s}: ${[...states].join(', ')}`).toContain(s)
    }
    expect(coverage.some((s) => s.endsWith('+tool'))).toBe(true)
  })
})
