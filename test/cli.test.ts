/**
 * The `loopstate` CLI end to end: the tests run the real bin (`node scripts/loopstate.js`)
 * in a fresh temporary directory, with its own `--data` dir; the last one calls its
 * `main` (scripts/cli/main.ts) in process.
 */
import { existsSync, realpathSync } from 'node:fs'
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it, type TestContext } from 'vitest'
import { main } from '../scripts/cli/main.ts'
import type { HistoryLine } from '../scripts/format.ts'
import type { LoopDetail, LoopView } from '../services/views.ts'
import { cliSandbox, fixture, scripted, type Sandbox } from './helpers/cli-sandbox.ts'


function sandbox(t: TestContext): Promise<Sandbox> {
  return cliSandbox(t, { prefix: 'loopstate-cli-', env: { ...process.env, LOOPSTATE_DATA: undefined }, timeoutMs: 90_000 })
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, tries = 300): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const value = await probe()
    if (value !== undefined) return value
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`${what}: not reached after ${tries} tries`)
}

async function listJson(s: Sandbox): Promise<LoopView[]> {
  const r = await s.cli(['list', '--json', '--data', s.data])
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout) as LoopView[]
}

async function statusJson(s: Sandbox, name: string): Promise<LoopDetail> {
  const r = await s.cli(['status', name, '--json', '--data', s.data])
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout) as LoopDetail
}

/** Starts `run` on the slow scenario and waits until `list --json` shows the loop running. */
async function startSlowRun(s: Sandbox, name: string) {
  const run = s.spawn([
    'run', fixture('plain.md'), '--model', scripted('slow.json'),
    '--workspace', s.workspace, '--data', s.data, '--name', name,
  ])
  await until(`${name} to run`, async () =>
    (await listJson(s)).find((v) => v.name === name && v.status === 'running'),
  )
  return run
}

/** Tests that start several processes: generous, a loaded 2-core machine runs them slowly (34 s seen for one). */
const MANY_PROCESSES = { timeout: 180_000 }

describe.concurrent('loopstate CLI', () => {
  it('runs a plain plan to completion, then lists and shows it', MANY_PROCESSES, async (t) => {
    const s = await sandbox(t)
    const run = await s.cli(['run', fixture('plain.md'), '--model', scripted('ok.json'), '--workspace', s.workspace, '--data', s.data])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toContain('loop add-a-greeting completed (completed): 1 iteration')
    expect(existsSync(join(s.workspace, 'hello.txt'))).toBe(true)

    const [view, ...rest] = await listJson(s)
    expect(rest).toEqual([])
    expect(view).toMatchObject({ name: 'add-a-greeting', status: 'completed', reason: 'completed', phase: 'auditing', iteration: 1 })

    const detail = await statusJson(s, 'add-a-greeting')
    expect(detail.findings).toMatchObject([{ id: 'F1', severity: 'warning', status: 'open', file: 'hello.txt' }])
    expect(detail.sections).toEqual([])
    expect(detail.usage.total.calls).toBe(4)
    expect(Object.keys(detail.usage.byModel)).toEqual([scripted('ok.json')])
    expect(detail.workspace).toBe(s.workspace)

    const table = await s.cli(['list', '--data', s.data])
    // newest first, with times ago; the reason and section columns only when some loop has one to show
    expect(table.stdout).toMatch(/^NAME +STATUS +PHASE +ITER +TOKENS +ELAPSED +CREATED( +TITLE)?\nadd-a-greeting +completed +auditing +1 /)
    const human = await s.cli(['status', 'add-a-greeting', '--data', s.data])
    expect(human.code).toBe(0)
    expect(human.stdout).toContain('F1 warning open hello.txt:1')
    expect(human.stdout).toContain('last audit #1 (auditing): clean')
  })

  it('runs the --check commands after the coder pass in the workspace; refuses one with shell syntax', MANY_PROCESSES, async (t) => {
    const s = await sandbox(t)
    await writeFile(join(s.workspace, 'check.js'), "require('fs').appendFileSync('checked', process.cwd() + '\\n')\n")
    const run = await s.cli([
      'run', fixture('plain.md'), '--model', scripted('ok.json'), '--workspace', s.workspace, '--data', s.data,
      '--check', 'node check.js', '--check', `node -e "require('fs').appendFileSync('second', 'x')"`,
    ])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toContain('completed (completed): 1 iteration')
    // ran once, after the coder's pass, in the workspace; so did the second
    expect(await readFile(join(s.workspace, 'checked'), 'utf8')).toBe(`${realpathSync(s.workspace)}\n`)
    expect(await readFile(join(s.workspace, 'second'), 'utf8')).toBe('x')
    const bad = await s.cli(['run', '--goal', 'x', '--model', scripted('ok.json'), '--check', 'npm test | tee out', '--data', s.data])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/^loopstate: --check "npm test \| tee out": only plain commands run \(no shell\)/)
  })

  it('continue gives a loop that ran out of rework passes more room and drives it to its end; refusals exit 2', MANY_PROCESSES, async (t) => {
    const s = await sandbox(t)
    const bug = { type: 'tool_calls', calls: [{ name: 'report_finding', arguments: { file: 'a.js', line: 1, severity: 'bug', message: 'wrong' } }] }
    const scenario = join(s.dir, 'more.json')
    await writeFile(
      scenario,
      JSON.stringify({
        coder: [
          { type: 'text', text: 'first' },
          { type: 'tool_calls', calls: [{ name: 'write_file', arguments: { path: 'a.js', content: 'right' } }] },
          { type: 'text', text: 'fixed' },
        ],
        auditor: [bug, { type: 'text', text: 'Wrong.' }, { type: 'tool_calls', calls: [{ name: 'resolve_finding', arguments: { file: 'a.js' } }] }, { type: 'text', text: 'Fixed.' }],
      }),
    )
    const run = await s.cli(['run', '--goal', 'fix a.js', '--name', 'short', '--model', `scripted:${scenario}`, '--max-iterations', '0', '--workspace', s.workspace, '--data', s.data])
    expect(run.code, run.stderr).toBe(1)
    expect(run.stdout).toContain('loop short errored (max_iterations)')
    const again = await s.cli(['continue', 'short', '--more', '1', '--say', 'fix a.js for real', '--data', s.data])
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toContain('loop short continued: coding, iteration 2')
    expect(again.stdout).toContain('loop short completed (completed): 2 iterations')
    expect(await readFile(join(s.workspace, 'a.js'), 'utf8')).toBe('right')
    const refused = await s.cli(['continue', 'short', '--data', s.data])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toBe('loopstate: continue: loop short: it completed: continue it with a follow-up message (say)\n')
  })

  it('log prints each session as a chat log (also as JSON, one session, following an ended loop)', MANY_PROCESSES, async (t) => {
    const s = await sandbox(t)
    const run = await s.cli(['run', fixture('plain.md'), '--model', scripted('ok.json'), '--workspace', s.workspace, '--data', s.data])
    expect(run.code, run.stderr).toBe(0)
    const log = await s.cli(['log', 'add-a-greeting', '--data', s.data])
    expect(log.code, log.stderr).toBe(0)
    expect(log.stdout).toMatch(/^── session 1 · coder · coding · iteration 1 · /)
    expect(log.stdout).toMatch(/\n── session 2 · auditor · auditing · iteration 1 · /)
    expect(log.stdout).toContain('[assistant] → write_file {"path":"hello.txt"')
    expect(log.stdout).toMatch(/\[tool write_file\] wrote \d+ bytes to hello.txt/)
    const json = await s.cli(['log', 'add-a-greeting', '--json', '--data', s.data])
    const sessions = JSON.parse(json.stdout) as { id: number; head: { role: string }; messages: { role: string }[] }[]
    expect(sessions.map((x) => [x.id, x.head.role])).toEqual([
      [1, 'coder'],
      [2, 'auditor'],
    ])
    expect(sessions[0]!.messages[0]!.role).toBe('system')
    const one = await s.cli(['log', 'add-a-greeting', '--session', '2', '--data', s.data])
    expect(one.stdout).toMatch(/^── session 2 · auditor/)
    expect(one.stdout).not.toContain('session 1')
    const missing = await s.cli(['log', 'add-a-greeting', '--session', '9', '--data', s.data])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toBe('loopstate: log: loop add-a-greeting has no session 9 on file (sessions: 1, 2)\n')
    // the loop has ended: --follow prints what there is and returns
    const follow = await s.cli(['log', 'add-a-greeting', '--follow', '--data', s.data])
    expect(follow.code).toBe(0)
    expect(follow.stdout).toBe(log.stdout)
  })

  it('exits 1 when the model fails fatally', async (t) => {
    const s = await sandbox(t)
    const r = await s.cli(['run', fixture('plain.md'), '--model', scripted('fatal.json'), '--workspace', s.workspace, '--data', s.data])
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/errored \(provider_fatal\).*not found/)
    expect((await listJson(s))[0]).toMatchObject({ status: 'errored', reason: 'provider_fatal' })
  })

  it('exits 3 when the model stalls past the limit of a --config file', async (t) => {
    const s = await sandbox(t)
    const r = await s.cli([
      'run', '--goal', 'say hello', '--model', scripted('hang.json'), '--config', fixture('stall-config.json'),
      '--workspace', s.workspace, '--data', s.data, '--name', 'hangs',
    ])
    expect(r.code, r.stderr).toBe(3)
    expect(r.stdout).toContain('loop hangs stalled (stall_timeout)')
  })

  it('is cancelled from a second process: run exits 4', MANY_PROCESSES, async (t) => {
    const s = await sandbox(t)
    const run = await startSlowRun(s, 'slow')
    const cancel = await s.cli(['cancel', 'slow', '--data', s.data])
    expect(cancel.code, cancel.stderr).toBe(0)
    expect(cancel.stdout).toContain('loop slow cancelled (user_cancelled)')
    const exit = await run.exit
    expect(exit.code, exit.stderr).toBe(4)
    expect(exit.stdout).toContain('loop slow cancelled (user_cancelled)')
    expect((await listJson(s))[0]).toMatchObject({ status: 'cancelled', reason: 'user_cancelled' })

    const again = await s.cli(['cancel', 'slow', '--data', s.data])
    expect(again.code).toBe(2)
    expect(again.stderr).toBe('loopstate: loop slow already ended (cancelled)\n')
  })

  it('is paused, told things and resumed from other processes, also after its run was stopped', MANY_PROCESSES, async (t) => {
    const s = await sandbox(t)
    const run = await startSlowRun(s, 'slow')
    const say = await s.cli(['say', 'slow', 'use', 'tabs', '--data', s.data])
    expect(say.code, say.stderr).toBe(0)
    expect(say.stdout).toContain('message delivered to loop slow')
    const pause = await s.cli(['pause', 'slow', '--data', s.data])
    expect(pause.code, pause.stderr).toBe(0)
    expect(pause.stdout).toContain('loop slow paused')
    const detail = await statusJson(s, 'slow')
    expect(detail.status).toBe('paused')
    expect(detail.inbox).toEqual(['use tabs'])
    // run waits for a resume while the loop is paused; Ctrl-C saves it paused
    expect(run.child.exitCode).toBe(null)
    run.child.kill('SIGINT')
    expect((await run.exit).code).toBe(130)
    expect((await statusJson(s, 'slow')).status).toBe('paused')

    // no process runs it now: resume restores it and drives it in the foreground
    const resumed = s.spawn(['resume', 'slow', '--data', s.data])
    await until('the resumed loop to run', async () => (/loop slow resumed/.test(resumed.output()) ? true : undefined))
    expect((await statusJson(s, 'slow')).status).toBe('running')
    expect((await s.cli(['pause', 'slow', '--data', s.data])).stdout).toContain('loop slow paused')
    expect((await s.cli(['resume', 'slow', '--data', s.data])).stdout).toContain('loop slow running')
    const again = await s.cli(['resume', 'slow', '--data', s.data])
    expect(again.code).toBe(2)
    expect(again.stderr).toMatch(/^loopstate: loop slow is not paused \(running in process \d+\)\n$/)
    expect((await s.cli(['cancel', 'slow', '--data', s.data])).code).toBe(0)
    const exit = await resumed.exit
    expect(exit.code, exit.stderr).toBe(4)
    expect(exit.stdout).toContain('loop slow cancelled (user_cancelled)')
  })

  it('saves on SIGINT (exit 130, loop stays running), then takes say and cancel offline', MANY_PROCESSES, async (t) => {
    const s = await sandbox(t)
    const run = await startSlowRun(s, 'slow')
    const t0 = Date.now()
    run.child.kill('SIGINT')
    const exit = await run.exit
    expect(exit.code).toBe(130)
    expect(exit.stdout).toContain('saved; loop slow stays resumable')
    expect((await listJson(s))[0]).toMatchObject({ name: 'slow', status: 'running', reason: null })

    const say = await s.cli(['say', 'slow', 'hello from offline', '--data', s.data])
    expect(say.code, say.stderr).toBe(0)
    expect(say.stdout).toContain('message queued for loop slow')
    const detail = await statusJson(s, 'slow')
    expect(detail.inbox).toEqual(['hello from offline'])
    expect(detail.status).toBe('running')

    const cancel = await s.cli(['cancel', 'slow', '--data', s.data])
    expect(cancel.code, cancel.stderr).toBe(0)
    expect((await statusJson(s, 'slow')).status).toBe('cancelled')
    const pause = await s.cli(['pause', 'slow', '--data', s.data])
    expect(pause.code).toBe(2)
    expect(pause.stderr).toBe('loopstate: loop slow already ended (cancelled)\n')
  })

  it('saves on SIGTERM (exit 143), hints at the saved loops in run, and resume --all finishes them', { timeout: 90_000 }, async (t) => {
    const s = await sandbox(t)
    const workspaces = { a: s.workspace, b: join(s.dir, 'wb') }
    await mkdir(workspaces.b)
    // slow-ok.json: ok.json whose first coder call takes 6 s (even on a busy machine the loops are mid-call when
    // stopped); resumed, the cut call is asked again.
    const runs = Object.entries(workspaces).map(([name, ws]) => {
      const run = s.spawn(['run', fixture('plain.md'), '--model', scripted('slow-ok.json'), '--workspace', ws, '--data', s.data, '--name', name])
      return { name, run }
    })
    for (const { name, run } of runs) {
      await until(`${name} to start`, async () => (run.output().includes(`loop ${name} started`) ? true : undefined))
    }
    for (const { run } of runs) run.child.kill('SIGTERM')
    for (const { name, run } of runs) {
      const exit = await run.exit
      expect(exit.code, exit.stderr).toBe(143)
      expect(exit.stdout).toContain(`saved; loop ${name} stays resumable`)
    }
    expect((await listJson(s)).map((v) => [v.name, v.status]).sort()).toEqual([['a', 'running'], ['b', 'running']])

    const other = await s.cli(['run', fixture('plain.md'), '--model', scripted('ok.json'), '--workspace', s.workspace, '--data', s.data, '--name', 'c'])
    expect(other.code, other.stderr).toBe(0)
    expect(other.stderr).toMatch(
      /^loopstate: data\/ holds 2 unfinished loops \((a, b|b, a)\) that no process runs; `loopstate resume --all --data data` carries them on\n$/,
    )

    // one at a time: the other is restored queued and starts when the first has ended
    const resumed = await s.cli(['resume', '--all', '--max-concurrent', '1', '--data', s.data])
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.stdout).toContain('resuming 2 unfinished loops of data/:')
    // the older of the two (they were started at the same time) runs, the other waits
    const listed = /^ {2}([ab]) {2}coding, iteration 1\n {2}([ab]) {2}queued$/m.exec(resumed.stdout)
    expect(listed, resumed.stdout).not.toBeNull()
    expect([listed![1], listed![2]].sort()).toEqual(['a', 'b'])
    expect(resumed.stdout).toMatch(/^LOOP +STATUS +REASON +ITERATIONS +TOKENS +TIME$/m)
    // the same result as c, an uninterrupted run of the same entries: the cut call was asked again, nothing ran twice
    const views = new Map((await listJson(s)).map((v) => [v.name, v]))
    const result = (v: LoopView | undefined) => v && [v.status, v.reason, v.iteration, v.openFindings, v.tokens]
    expect(result(views.get('c'))).toEqual(['completed', 'completed', 1, 1, expect.any(Number)])
    for (const name of ['a', 'b'] as const) {
      expect(resumed.stdout).toMatch(new RegExp(`^${name} +completed +completed +1 `, 'm'))
      expect(result(views.get(name))).toEqual(result(views.get('c')))
      expect(await readFile(join(workspaces[name], 'hello.txt'), 'utf8')).toBe('hello\n')
    }
  })

  it('prints the history, and forks from the snapshot of the first audit leaving the original as it was', MANY_PROCESSES, async (t) => {
    const s = await sandbox(t)
    const run = await s.cli(['run', fixture('plain.md'), '--model', scripted('ok.json'), '--workspace', s.workspace, '--data', s.data])
    expect(run.code, run.stderr).toBe(0)

    const history = await s.cli(['history', 'add-a-greeting', '--json', '--data', s.data])
    expect(history.code, history.stderr).toBe(0)
    const entries = JSON.parse(history.stdout) as HistoryLine[]
    expect(entries.length).toBeGreaterThanOrEqual(3)
    entries.forEach((e, i) => {
      expect(Object.keys(e).sort()).toEqual(['at', 'event', 'from', 'hasSnapshot', 'iteration', 'phase', 'seq', 'to'])
      if (i > 0) expect(e.seq).toBeGreaterThan(entries[i - 1]!.seq)
    })
    expect(entries.map((e) => e.event)).toContain('session.done')
    expect(entries.at(-1)).toMatchObject({ event: 'session.done', to: 'completed', hasSnapshot: true })
    const audit = entries.find((e) => e.from.startsWith('running.coding') && e.to.startsWith('running.auditing'))
    expect(audit).toMatchObject({ event: 'session.done', iteration: 1, phase: 'auditing', hasSnapshot: true })

    // --raw: the statechart's names and local times (by default the history is in the user's words: test/cli-output.test.ts)
    const table = await s.cli(['history', 'add-a-greeting', '--raw', '--data', s.data])
    expect(table.stdout).toMatch(/^SEQ +TIME +EVENT +FROM → TO +ITER +FORK$/m)
    expect(table.stdout).toMatch(
      new RegExp(`^ *${audit!.seq}  \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d  session\\.done +running\\.coding\\.watching → running\\.auditing\\.watching +1  \\*$`, 'm'),
    )

    const files = [join(s.data, 'loops', 'add-a-greeting.json'), join(s.data, 'history', 'add-a-greeting.jsonl')]
    const before = await Promise.all(files.map((f) => readFile(f)))
    const fork = await s.cli(['fork', 'add-a-greeting', '--at', String(audit!.seq), '--name', 'again', '--data', s.data])
    expect(fork.code, fork.stderr).toBe(0)
    expect(fork.stdout).toContain(`loop again forked from add-a-greeting #${audit!.seq}`)
    expect(fork.stdout).toContain(`workspace ${s.workspace}.again,`)
    expect(fork.stdout).toContain('loop again completed (completed): 1 iteration')
    expect(await Promise.all(files.map((f) => readFile(f)))).toEqual(before)
    expect(existsSync(join(`${s.workspace}.again`, 'hello.txt'))).toBe(true)

    const taken = await s.cli(['fork', 'add-a-greeting', '--at', String(audit!.seq), '--workspace', s.workspace, '--data', s.data])
    expect(taken.code).toBe(2)
    expect(taken.stderr).toMatch(/^loopstate: fork: workspace .* already exists\n$/)
    const end = await s.cli(['fork', 'add-a-greeting', '--at', String(entries.at(-1)!.seq), '--data', s.data])
    expect(end.code).toBe(2)
    expect(end.stderr).toMatch(/^loopstate: fork: #\d+ is where add-a-greeting ended \(completed\); snapshots to fork from: #\d+/)
    // nothing written by the refused forks
    expect((await listJson(s)).map((v) => [v.name, v.status, v.openFindings])).toEqual([
      ['add-a-greeting', 'completed', 1],
      ['again', 'completed', 1],
    ])
  })

  const run = (s: Sandbox, ...args: string[]) => ['run', ...args, '--workspace', s.workspace, '--data', s.data]
  const badInput: [string, (s: Sandbox) => string[], RegExp][] = [
    ['an unknown flag', (s) => run(s, fixture('plain.md'), '--model', scripted('ok.json'), '--bogus'), /unknown option '--bogus'/],
    ['a missing plan file', (s) => run(s, join(s.dir, 'nope.md'), '--model', scripted('ok.json')), /plan: .*nope\.md: file not found/],
    ['an invalid scenario', (s) => run(s, fixture('plain.md'), '--model', scripted('bad-scenario.json')), /scenario: .*bad-scenario\.json: coder\[1\]\.type/],
    ['an unknown model scheme', (s) => run(s, fixture('plain.md'), '--model', 'nosuch:thing'), /model: unknown scheme 'nosuch'/],
    ['a bad number', (s) => run(s, fixture('plain.md'), '--model', scripted('ok.json'), '--max-iterations', 'lots'), /--max-iterations.*'lots' is invalid/],
    ['no model', (s) => run(s, fixture('plain.md')), /run: --model is required/],
    ['an unknown command', (s) => ['frobnicate', '--data', s.data], /unknown command 'frobnicate'/],
    ['an unknown loop', (s) => ['status', 'nope', '--data', s.data], /no loop named 'nope'/],
    ['resume without a name or --all', (s) => ['resume', '--data', s.data], /resume: a loop name or --all is required/],
    ['--max-concurrent without --all', (s) => ['resume', 'a', '--max-concurrent', '2', '--data', s.data], /resume: --max-concurrent goes with --all/],
    ['--max-concurrent 0', (s) => ['resume', '--all', '--max-concurrent', '0', '--data', s.data], /--max-concurrent.*'0' is invalid/],
    ['the history of an unknown loop', (s) => ['history', 'nope', '--json', '--data', s.data], /no loop named 'nope'/],
    ['a fork of an unknown loop', (s) => ['fork', 'nope', '--at', '2', '--data', s.data], /no loop named 'nope'/],
  ]
  for (const [what, args, message] of badInput) {
    it(`exits 2 with one line on stderr for ${what}, and leaves no data dir`, async (t) => {
      const s = await sandbox(t)
      const r = await s.cli(args(s))
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(/^loopstate: [^\n]+\n$/)
      expect(r.stderr).toMatch(message)
      expect(r.stdout).toBe('')
      expect(existsSync(s.data)).toBe(false)
    })
  }

  it('exits 0 for --help', async (t) => {
    const s = await sandbox(t)
    const r = await s.cli(['--help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('Usage: loopstate')
    expect((await s.cli(['run', '--help'])).code).toBe(0)
  })

  it('runs the demo: three loops complete', MANY_PROCESSES, async (t) => {
    const s = await sandbox(t)
    const r = await s.cli(['demo', '--data', s.data])
    t.onTestFinished(async () => {
      for (const m of r.stdout.matchAll(/workspace (\/\S+loopstate-demo-\S+):/g)) await rm(m[1]!, { recursive: true, force: true })
    })
    expect(r.code, r.stderr).toBe(0)
    const views = await listJson(s)
    expect(views.map((v) => [v.status, v.reason])).toEqual([
      ['completed', 'completed'],
      ['completed', 'completed'],
      ['completed', 'completed'],
    ])
    expect(views.map((v) => v.iteration)).toEqual([2, 3, 1])
    expect(await readdir(join(s.data, 'loops'))).toHaveLength(3)
    expect(r.stdout).toMatch(/F1 bug at clamp\.js:4 resolved/)
    expect(r.stdout).toMatch(/3\/3 sections done, 3 with summaries/)
    expect(r.stdout).toMatch(/2 failed calls \(ECONNREFUSED\); model calls: steady\.json/)
  })
})

describe('main (in process)', () => {
  it('writes its lines through the CliIo it is given and resolves to the exit code', async (t) => {
    const s = await sandbox(t)
    const lines = { out: [] as string[], err: [] as string[] }
    const io = { out: (l: string) => lines.out.push(l), err: (l: string) => lines.err.push(l) }
    const run = async (...args: string[]) => {
      lines.out = []
      lines.err = []
      return main(['node', 'loopstate', ...args], io)
    }
    expect(await run('--version')).toBe(0)
    expect(lines.out).toEqual([expect.stringMatching(/^\d+\.\d+\.\d+$/)])
    expect(await run('list', '--data', s.data)).toBe(0)
    expect(lines).toEqual({ out: [`no loops in ${s.data}`], err: [] })
    expect(await run('status', 'nope', '--data', s.data)).toBe(2)
    expect(lines).toEqual({ out: [], err: [`loopstate: no loop named 'nope' in ${s.data}`] })
    expect(await run('cancel', 'nope', '--data', s.data)).toBe(2)
    expect(lines.err).toEqual([`loopstate: no loop named 'nope' in ${s.data}`])
    expect(await run('frobnicate')).toBe(2)
    expect(lines.err).toEqual([expect.stringMatching(/^loopstate: unknown command 'frobnicate'/)])
    expect(existsSync(s.data)).toBe(false)
  })
})
