/**
 * The CLI's output end to end (the real bin, `node scripts/loopstate.js`, in a fresh
 * temporary directory with its own data dir): colour by NO_COLOR / FORCE_COLOR /
 * TERM / a terminal, tables that fit COLUMNS, `list` (newest first, times ago,
 * --status, --limit, the loops no process runs), `history` in the user's words and
 * `--raw`, `status` (cost, failed calls and fallback, section summaries, branch,
 * why the audit was dirty) and the retrying line of `run`.
 */
import { execFile, execFileSync } from 'node:child_process'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it, type TestContext } from 'vitest'
import { main, type CliIo } from '../scripts/cli/main.ts'
import type { LoopDetail, LoopView } from '../services/views.ts'
import { BIN, cliSandbox, fixture, scripted, type Env, type Sandbox } from './helpers/cli-sandbox.ts'
import { startOllamaServer } from './helpers/ollama-server.ts'

const DEMO = fileURLToPath(new URL('../scripts/demo/', import.meta.url)).replace(/\/$/, '')

/** Any escape sequence (colour, cursor movement, erasing). */
const ESCAPE = /\x1b/
/** A time ago as `list` and `history` print it (a loaded machine may take minutes over a test). */
const AGO = '(just now|\\d+ s ago|\\d+ min ago)'
/** What log-update draws with: erase a line, move up. */
const REDRAW = /\x1b\[2K|\x1b\[1A/

/** The environment of the bin: the sources, and none of the runner's output settings. */
const BASE_ENV: Env = {
  ...process.env,
  LOOPSTATE_DATA: undefined,
  LOOPSTATE_FROM_SOURCE: '1',
  NO_COLOR: undefined,
  FORCE_COLOR: undefined,
  COLUMNS: undefined,
  TERM: 'xterm',
}

function sandbox(t: TestContext): Promise<Sandbox> {
  return cliSandbox(t, { prefix: 'loopstate-out-', env: BASE_ENV, timeoutMs: 120_000 })
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, polls = 300): Promise<T> {
  for (let i = 0; i < polls; i++) {
    const value = await probe()
    if (value !== undefined) return value
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`not reached: ${what}`)
}

async function ok(s: Sandbox, args: string[], env: Env = {}): Promise<string> {
  const r = await s.cli(args, env)
  expect(r.code, r.stderr + r.stdout).toBe(0)
  return r.stdout
}

/** Runs the plain fixture plan on ok.json to completion (loop `add-a-greeting`, or `name`). */
async function runOk(s: Sandbox, extra: string[] = []): Promise<string> {
  return ok(s, ['run', fixture('plain.md'), '--model', scripted('ok.json'), '--workspace', s.workspace, '--data', s.data, ...extra])
}

const widthOf = (line: string) => [...line].length

/** Tests that start several processes: generous, a loaded machine runs them slowly (one run took 30 s on a busy 2-core one). */
const SLOW = { timeout: 300_000 }

describe.concurrent('CLI output', () => {
  it('is coloured only when it may be: FORCE_COLOR on a pipe, never with NO_COLOR, never in --json', SLOW, async (t) => {
    const s = await sandbox(t)
    const run = await runOk(s)
    expect(run).not.toMatch(ESCAPE) // a pipe: plain lines
    const forced = await s.cli(['run', '--goal', 'say hi', '--name', 'forced', '--model', scripted('ok.json'), '--workspace', s.workspace, '--data', s.data], {
      FORCE_COLOR: '1',
    })
    expect(forced.code, forced.stderr).toBe(0)
    // coloured, and still one plain line per change: no cursor movement on a pipe
    expect(forced.stdout).toContain('\x1b[32mcompleted\x1b[39m')
    expect(forced.stdout).not.toMatch(REDRAW)

    const d = ['--data', s.data]
    // (the reads are independent: run together)
    const [piped, forcedList, noColor, forceZero] = await Promise.all([
      ok(s, ['list', ...d]),
      ok(s, ['list', ...d], { FORCE_COLOR: '1' }),
      ok(s, ['list', ...d], { FORCE_COLOR: '1', NO_COLOR: '1' }),
      ok(s, ['list', ...d], { FORCE_COLOR: '0' }),
    ])
    expect(piped).not.toMatch(ESCAPE)
    expect(forcedList).toMatch(/\x1b\[32mcompleted\x1b\[39m/)
    expect(noColor).not.toMatch(ESCAPE)
    expect(forceZero).not.toMatch(ESCAPE)
    const commands = [['status', 'add-a-greeting'], ['history', 'add-a-greeting'], ['log', 'add-a-greeting']]
    const coloured = await Promise.all(commands.map((cmd) => ok(s, [...cmd, ...d], { FORCE_COLOR: '1' })))
    const uncoloured = await Promise.all(commands.map((cmd) => ok(s, [...cmd, ...d], { FORCE_COLOR: '1', NO_COLOR: '1' })))
    for (const out of coloured) expect(out).toMatch(ESCAPE)
    for (const out of uncoloured) expect(out).not.toMatch(ESCAPE)
    const json = await Promise.all([['list'], ...commands].map((cmd) => ok(s, [...cmd, '--json', ...d], { FORCE_COLOR: '1' })))
    for (const out of json) {
      expect(out).not.toMatch(ESCAPE)
      expect(() => JSON.parse(out)).not.toThrow()
    }

    // in process: the CliIo says whether stdout is a terminal; TERM=dumb and NO_COLOR win over it
    const lines: string[] = []
    const io = (stdout: CliIo['stdout'], env: Env): CliIo => ({ out: (l) => lines.push(l), err: (l) => lines.push(l), stdout, env })
    const listed = async (stdout: CliIo['stdout'], env: Env) => {
      lines.length = 0
      expect(await main(['node', 'loopstate', 'list', ...d], io(stdout, env))).toBe(0)
      return lines.join('\n')
    }
    const terminal = { isTTY: true, columns: 100 }
    expect(await listed(terminal, { TERM: 'xterm' })).toMatch(/\x1b\[32mcompleted/)
    expect(await listed(terminal, { TERM: 'dumb' })).not.toMatch(ESCAPE)
    expect(await listed(terminal, { TERM: 'xterm', NO_COLOR: '1' })).not.toMatch(ESCAPE)
    expect(await listed(undefined, { TERM: 'xterm' })).not.toMatch(ESCAPE)
    expect(await listed(undefined, { FORCE_COLOR: '1' })).toMatch(ESCAPE)
  })

  const script = (() => {
    try {
      execFileSync('script', ['--version'], { stdio: 'ignore' })
      return true
    } catch {
      return false
    }
  })()
  it.skipIf(!script)('on a real terminal: redraws with log-update, but TERM=dumb gets plain lines and no escape code', SLOW, async (t) => {
    const s = await sandbox(t)
    // script(1) gives the bin a pseudo-terminal; its output is what the terminal got
    const onTerminal = (term: string, name: string) => {
      const cmd =
        `stty cols 80 rows 24; env TERM=${term} LOOPSTATE_FROM_SOURCE=1 ${process.execPath} ${BIN} run ${fixture('plain.md')} ` +
        `--model ${scripted('ok.json')} --workspace ${s.workspace} --data ${s.data} --name ${name}`
      return new Promise<string>((resolve, reject) => {
        execFile('script', ['-qfec', cmd, '/dev/null'], { cwd: s.dir, env: { ...BASE_ENV, TERM: term }, timeout: 120_000 }, (err, stdout) =>
          err ? reject(err) : resolve(stdout),
        )
      })
    }
    const dumb = await onTerminal('dumb', 'dumb')
    expect(dumb).not.toMatch(ESCAPE)
    expect(dumb).toMatch(/^dumb +coding +iteration 1 {2}\d+ tokens {2}\S+\r?$/m)
    expect(dumb).toContain('loop dumb completed (completed)')
    const live = await onTerminal('xterm', 'live')
    expect(live).toMatch(REDRAW)
    expect(live).toContain('\x1b[32mcompleted\x1b[39m')
  })

  it('fits tables to COLUMNS=80 and keeps status, phase, tokens and time whole', SLOW, async (t) => {
    const s = await sandbox(t)
    const long = 'a-loop-name-long-enough-to-crowd-an-eighty-column-terminal'
    await runOk(s, ['--name', long])
    await ok(s, ['run', '--goal', `a goal whose title is long: ${'and longer '.repeat(6)}`, '--name', 'short', '--model', scripted('ok.json'), '--workspace', s.workspace, '--data', s.data])
    const views = JSON.parse(await ok(s, ['list', '--json', '--data', s.data])) as LoopView[]
    const at80 = await ok(s, ['list', '--data', s.data], { COLUMNS: '80' })
    const lines = at80.trimEnd().split('\n')
    for (const l of lines) expect(widthOf(l), l).toBeLessThanOrEqual(80)
    expect(lines[0]).toMatch(/^NAME +STATUS +PHASE +ITER +TOKENS +ELAPSED +CREATED$/)
    for (const v of views) {
      const row = lines.find((l) => l.startsWith(v.name.slice(0, 6)))!
      expect(row, at80).toMatch(new RegExp(` completed +auditing +1 +${v.tokens < 1000 ? v.tokens : '[\\d.]+k'} +\\S+ +${AGO}$`))
    }
    expect(at80).toContain('…') // the long name gave way
    // wide: whole names, and the titles
    const wide = await ok(s, ['list', '--data', s.data], { COLUMNS: '250' })
    expect(wide).toContain(long)
    expect(wide.split('\n')[0]).toMatch(/ TITLE$/)

    const status = await ok(s, ['status', long, '--data', s.data], { COLUMNS: '80' })
    const usage = status.split('\nusage\n')[1]!.split('\nlast audit')[0]!.split('\n')
    for (const l of usage) expect(widthOf(l), l).toBeLessThanOrEqual(80)
    expect(usage.at(-1)).toMatch(/^ {2}total +4 +0 /)
    const history = await ok(s, ['history', long, '--data', s.data], { COLUMNS: '80' })
    // the table (the note under it is prose)
    for (const l of history.trimEnd().split('\n').filter((l) => !l.startsWith('*'))) expect(widthOf(l), l).toBeLessThanOrEqual(80)
  })

  it('lists newest first with times ago, filters by --status, cuts to --limit, and marks a loop no process runs', SLOW, async (t) => {
    const s = await sandbox(t)
    await runOk(s, ['--name', 'first'])
    await runOk(s, ['--name', 'second'])
    const slow = s.spawn(['run', fixture('plain.md'), '--model', scripted('slow.json'), '--workspace', s.workspace, '--data', s.data, '--name', 'third'])
    const listJson = async (...args: string[]) => JSON.parse(await ok(s, ['list', '--json', ...args, '--data', s.data])) as LoopView[]
    const running = await until('third to run', async () => (await listJson()).find((v) => v.name === 'third' && v.status === 'running'))
    expect(running.owner).toBe(slow.child.pid)
    expect(await ok(s, ['list', '--data', s.data])).not.toContain('⚠')

    // killed: its record says running, and no process holds it
    slow.child.kill('SIGKILL')
    await slow.exit
    const table = await ok(s, ['list', '--data', s.data])
    const rows = table.split('\n')
    expect(rows.slice(1, 4).map((l) => l.split(/ +/)[0])).toEqual(['third', 'second', 'first'])
    expect(rows[1]).toMatch(new RegExp(`^third +running ⚠ +coding +1 +0 +\\S+ +${AGO} +Add a greeting$`))
    expect(rows[2]).toMatch(new RegExp(`^second +completed +auditing +1 .* ${AGO} +Add a greeting$`))
    expect(table).toContain('\n⚠ no process runs third (stopped mid-run): `loopstate resume third` carries it on\n')
    expect((await listJson()).map((v) => [v.name, v.owner])).toEqual([
      ['first', null],
      ['second', null],
      ['third', null],
    ])
    const status = await ok(s, ['status', 'third', '--data', s.data])
    expect(status).toContain('\nprocess    none: no process runs it; `loopstate resume third` carries it on\n')

    // the table's rows: up to the first line that is not one
    const names = (text: string) => text.split('\n\n')[0]!.trimEnd().split('\n').slice(1).filter((l) => !l.startsWith('the ')).map((l) => l.split(/ +/)[0])
    // (the reads are independent: run together)
    const [running3, completedOrCancelled, repeated, errored, limited, both, json2, bad] = await Promise.all([
      ok(s, ['list', '--status', 'running', '--data', s.data]),
      ok(s, ['list', '--status', 'completed,cancelled', '--data', s.data]),
      ok(s, ['list', '--status', 'paused', '--status', 'completed', '--data', s.data]),
      ok(s, ['list', '--status', 'errored', '--data', s.data]),
      ok(s, ['list', '--limit', '2', '--data', s.data]),
      ok(s, ['list', '--status', 'completed', '--limit', '1', '--data', s.data]),
      listJson('--limit', '2'),
      s.cli(['list', '--status', 'done', '--data', s.data]),
    ])
    expect(names(running3)).toEqual(['third'])
    expect(names(completedOrCancelled)).toEqual(['second', 'first'])
    expect(names(repeated)).toEqual(['second', 'first'])
    expect(errored).toBe(`no errored loops in ${s.data} (3 loops in all)\n`)
    expect(names(limited)).toEqual(['third', 'second'])
    expect(limited).toContain('the 2 newest of 3 loops; without --limit, all of them')
    expect(names(both)).toEqual(['second'])
    // --json keeps its order (oldest first) and takes the same filters
    expect(json2.map((v) => v.name)).toEqual(['second', 'third'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/^loopstate: .*'done' is not a status \(running, queued, paused, completed, errored, stalled, cancelled\)\.\n$/)
  })

  it('prints the history in the user\'s words and times ago; --raw gives the statechart\'s names and local times', SLOW, async (t) => {
    const s = await sandbox(t)
    await runOk(s)
    const readable = await ok(s, ['history', 'add-a-greeting', '--data', s.data])
    expect(readable).toMatch(/^SEQ +TIME +EVENT +FROM → TO +ITER +FORK$/m)
    expect(readable).toMatch(new RegExp(`^ +1 +${AGO} +started +\\(start\\) → coding +1 +\\*$`, 'm'))
    expect(readable).toMatch(new RegExp(`^ +\\d+ +${AGO} +coder finished +coding → auditing +1 +\\*$`, 'm'))
    expect(readable).toMatch(new RegExp(`^ +\\d+ +${AGO} +audit clean +auditing → completed +1 +\\*$`, 'm'))
    expect(readable).not.toMatch(/xstate|running\.|session\.done/)
    const raw = await ok(s, ['history', 'add-a-greeting', '--raw', '--data', s.data])
    expect(raw).toMatch(/^ +1 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +xstate\.init +\(start\) → running\.coding\.watching +1 +\*$/m)
    expect(raw).toMatch(/^ +\d+ +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +session\.done +running\.coding\.watching → running\.auditing\.watching +1 +\*$/m)
  })

  it('shows – for the cost without prices, the cost with them, and why the last audit was dirty', SLOW, async (t) => {
    const s = await sandbox(t)
    await runOk(s)
    const free = await ok(s, ['status', 'add-a-greeting', '--data', s.data])
    expect(free).toMatch(/\nelapsed +\S+, \d+ tokens, cost –\n/)
    expect(free).toMatch(/^ {2}total +4 +0 +\S+ +\S+ +\S+ +–$/m)
    expect(free).not.toContain('$0.0000')
    const config = join(s.dir, 'prices.json')
    await writeFile(config, JSON.stringify({ prices: { [scripted('ok.json')]: { inputPer1k: 1, outputPer1k: 2 } } }))
    await runOk(s, ['--name', 'priced', '--config', config])
    const priced = await ok(s, ['status', 'priced', '--data', s.data], { COLUMNS: '200' })
    expect(priced).toMatch(/\nelapsed +\S+, \d+ tokens, cost \$\d+\.\d{4}\n/)
    expect(priced).toMatch(/^ {2}total +4 +0 +\S+ +\S+ +\S+ +\$\d+\.\d{4}$/m)

    const bug = { type: 'tool_calls', calls: [{ name: 'report_finding', arguments: { file: 'a.js', line: 1, severity: 'bug', message: 'wrong answer' } }] }
    const scenario = join(s.dir, 'dirty.json')
    await writeFile(scenario, JSON.stringify({ coder: [{ type: 'text', text: 'first' }], auditor: [bug, { type: 'text', text: 'Wrong.' }] }))
    const run = await s.cli(['run', '--goal', 'fix a.js', '--name', 'dirty', '--model', `scripted:${scenario}`, '--max-iterations', '0', '--workspace', s.workspace, '--data', s.data])
    expect(run.code, run.stderr).toBe(1)
    const dirty = await ok(s, ['status', 'dirty', '--data', s.data])
    expect(dirty).toContain(
      '\nlast audit #1 (auditing): dirty, 1 blocking finding\n  blocked by (bug findings open in its scope):\n    F1 bug open a.js:1 — wrong answer\n  | Wrong.',
    )
  })

  it('shows the demo\'s failed calls and fallback, and its section summaries', SLOW, async (t) => {
    const s = await sandbox(t)
    const demo = await s.cli(['demo', '--data', s.data])
    t.onTestFinished(async () => {
      for (const m of demo.stdout.matchAll(/workspace (\/\S+loopstate-demo-\S+):/g)) await rm(m[1]!, { recursive: true, force: true })
    })
    expect(demo.code, demo.stderr).toBe(0)
    const flaky = `scripted:${DEMO}/flaky.json`
    const steady = `scripted:${DEMO}/steady.json`
    const status = await ok(s, ['status', 'greet-the-user', '--data', s.data], { COLUMNS: '250' })
    expect(status).toContain(`\ncoder      ${flaky} → ${steady} (in use)\n`)
    expect(status).toContain(`\n           fell back to ${steady} after 2 failed calls on ${flaky}\n`)
    expect(status).toContain(`\nfailed     2 model calls without an answer (${flaky} 2)\n`)
    expect(status).toMatch(new RegExp(`^ {2}model ${flaky.replace(/[.]/g, '\\.')} +0 +2 +0 +0 +0ms +–$`, 'm'))
    expect(status).toMatch(/^ {2}role coder +2 +2 /m)
    const json = JSON.parse(await ok(s, ['status', 'greet-the-user', '--json', '--data', s.data])) as LoopDetail
    expect(json.failedCalls).toEqual({ total: 2, byModel: { [flaky]: 2 }, byRole: { coder: 2, auditor: 0 } })
    expect(json.activeModels).toEqual({ coder: steady, auditor: steady })

    const sections = await ok(s, ['status', 'a-tiny-string-toolkit', '--data', s.data])
    expect(sections).toContain(
      '\nsections   3/3 done\n' +
        '  1. slugify — done\n     done: slugify.js written as specified\n' +
        '  2. truncate — done\n     done: truncate.js written as specified\n' +
        '  3. index — done\n     done: index.js written as specified\n',
    )
  })

  it('shows the git branch of a loop on a repository', SLOW, async (t) => {
    const s = await sandbox(t)
    const repo = join(s.dir, 'repo')
    await mkdir(repo)
    const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@localhost', ...args], { cwd: repo, encoding: 'utf8' }).trim()
    git('init', '-q', '-b', 'main')
    await writeFile(join(repo, 'README.md'), 'x\n')
    git('add', '-A')
    git('commit', '-q', '-m', 'initial')
    const base = git('rev-parse', 'HEAD')
    await ok(s, ['run', '--goal', 'make out', '--model', scripted('ok.json'), '--workspace', repo, '--data', s.data])
    const status = await ok(s, ['status', 'make-out', '--data', s.data])
    expect(status).toContain(`\nbranch     loop/make-out (worktree of ${repo}, from ${base.slice(0, 12)})\n`)
    const json = JSON.parse(await ok(s, ['status', 'make-out', '--json', '--data', s.data])) as LoopDetail
    expect(json.git).toMatchObject({ branch: 'loop/make-out', repo, base })
    expect(json.git?.worktree).toMatch(/repo\.loops\/make-out$/)
  })

  it('says why a retrying loop waits and when it tries again (scripted ECONNREFUSED, Ollama down)', SLOW, async (t) => {
    const s = await sandbox(t)
    const scenario = join(s.dir, 'refused.json')
    await writeFile(
      scenario,
      JSON.stringify({
        coder: [
          // failing a while after the start: the run follows the loop by then
          { type: 'error', error: 'ECONNREFUSED', delayMs: 2_000 },
          { type: 'tool_calls', calls: [{ name: 'write_file', arguments: { path: 'a.txt', content: 'a' } }] },
          { type: 'text', text: 'done' },
        ],
        auditor: [{ type: 'text', text: 'Clean.' }],
      }),
    )
    const config = join(s.dir, 'backoff.json')
    await writeFile(config, JSON.stringify({ retryBackoff: { baseMs: 300, jitter: 0 } }))
    const run = await ok(s, ['run', '--goal', 'write a', '--name', 'refused', '--model', `scripted:${scenario}`, '--config', config, '--workspace', s.workspace, '--data', s.data])
    expect(run).toMatch(/^refused +coding +iteration 1 {2}0 tokens {2}\S+ {2}retrying (in \S+|now) \(attempt 2\/4\): connect ECONNREFUSED 127\.0\.0\.1:11434$/m)
    expect(run).toContain('loop refused completed (completed)')

    // Ollama goes away in the middle of a call: the call fails, and so do the retries
    const server = await startOllamaServer({ models: { m: { scenario: { coder: [{ type: 'hang' }], auditor: [] } } } })
    t.onTestFinished(() => server.close())
    const limits = join(s.dir, 'limits.json')
    await writeFile(limits, JSON.stringify({ maxRetries: 2, retryBackoff: { baseMs: 200, jitter: 0 } }))
    const started = s.spawn(['run', '--goal', 'x', '--name', 'down', '--model', 'ollama:m', '--ollama-host', server.host, '--config', limits, '--workspace', s.workspace, '--data', s.data])
    await until('the first call', async () => (server.chats('m').length > 0 ? true : undefined))
    await server.refuse()
    const down = await started.exit
    expect(down.code, down.stderr).toBe(1)
    expect(down.stdout).toMatch(
      new RegExp(`^down +coding +iteration 1 {2}0 tokens {2}\\S+ {2}retrying (in \\S+|now) \\(attempt 3/3\\): ollama: cannot reach ${server.host.replace(/[.]/g, '\\.')}: connection refused`, 'm'),
    )
    expect(down.stdout).toContain('loop down errored (error_max_retries)')
  })
})
