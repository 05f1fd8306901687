/**
 * The CLI's rm, prune and diff, and what `run` does around a loop: the model check
 * before anything is saved (an unreachable server, a missing model), the resume
 * command printed on Ctrl-C, `--json`, a closed stdout (`| head -1`), short flags
 * and examples in `--help`. Each test runs the real bin in a temporary directory
 * with its own data dir, and the model servers of test/helpers on 127.0.0.1.
 */
import { execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, type TestContext } from 'vitest'
import { JsonStore } from '../adapters/json-store.ts'
import type { LoopStatus } from '../machines/loop.types.ts'
import type { RunResult } from '../scripts/cli/drive.ts'
import { worktreePath } from '../services/git-workspace.ts'
import type { LoopView } from '../services/views.ts'
import type { WorkspaceDiff } from '../services/workspace-diff.ts'
import { makeRecord } from './contracts/snapshot-store.contract.ts'
import { startOllamaServer } from './helpers/ollama-server.ts'
import { startOpenAIServer } from './helpers/openai-server.ts'
import { BIN, cliSandbox, fixture, scripted, type Sandbox } from './helpers/cli-sandbox.ts'

const ENV = { ...process.env, LOOPSTATE_DATA: undefined, LOOPSTATE_FROM_SOURCE: '1', OLLAMA_HOST: undefined, OPENAI_BASE_URL: undefined }

function sandbox(t: TestContext): Promise<Sandbox> {
  return cliSandbox(t, { prefix: 'loopstate-cmd-', env: ENV, timeoutMs: 120_000 })
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function listJson(s: Sandbox): Promise<LoopView[]> {
  const r = await s.cli(['list', '-j', '-d', s.data])
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout) as LoopView[]
}

/** The files the data dir keeps of loop `name`. */
const filesOf = (s: Sandbox, name: string) => [
  join(s.data, 'loops', `${name}.json`),
  join(s.data, 'history', `${name}.jsonl`),
  join(s.data, 'journal', `${name}.jsonl`),
]

/** A TCP port of 127.0.0.1 that nothing listens on (one was bound there, and closed). */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

const gitIn = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@localhost', ...args], { cwd, encoding: 'utf8' }).trim()

const text = (t: string) => ({ type: 'text', text: t })
const toolCall = (name: string, args: Record<string, unknown>) => ({ type: 'tool_calls', calls: [{ name, arguments: args }] })

const SLOW = { timeout: 300_000 }

describe.concurrent('loopstate rm and prune', () => {
  it("rm removes a loop's record, history, journal and leftover claims, and nothing of another loop", SLOW, async (t) => {
    const s = await sandbox(t)
    for (const name of ['gone', 'other']) {
      const r = await s.cli(['run', fixture('plain.md'), '-m', scripted('ok.json'), '-w', s.workspace, '-d', s.data, '-n', name])
      expect(r.code, r.stderr).toBe(0)
    }
    // a claim left by a process that is gone (a pid no process has): taken over and released, nothing stays
    await mkdir(join(s.data, 'claims', 'gone'), { recursive: true })
    await writeFile(join(s.data, 'claims', 'gone', '3.json'), JSON.stringify({ id: 'dead', pid: 999_999_999, started: null, host: hostname() }))
    const others = await Promise.all(filesOf(s, 'other').map((f) => readFile(f)))
    for (const f of filesOf(s, 'gone')) expect(existsSync(f), f).toBe(true)

    const r = await s.cli(['rm', 'gone', '-d', s.data])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('removed loop gone (completed): record, history, journal\n')
    for (const f of filesOf(s, 'gone')) expect(existsSync(f), f).toBe(false)
    expect(existsSync(join(s.data, 'claims', 'gone'))).toBe(false)
    expect(await Promise.all(filesOf(s, 'other').map((f) => readFile(f)))).toEqual(others)
    expect((await listJson(s)).map((v) => v.name)).toEqual(['other'])
    // the workspace is the user's: untouched
    expect(await readFile(join(s.workspace, 'hello.txt'), 'utf8')).toBe('hello\n')

    const again = await s.cli(['rm', 'gone', '-d', s.data])
    expect(again.code).toBe(2)
    expect(again.stderr).toBe(`loopstate: no loop named 'gone' in ${s.data}\n`)
  })

  it('rm refuses a loop a live process runs, and an unfinished one without --force', SLOW, async (t) => {
    const s = await sandbox(t)
    const run = s.spawn(['run', fixture('plain.md'), '-m', scripted('slow.json'), '-w', s.workspace, '-d', s.data, '-n', 'busy'])
    await until('busy to run', async () => ((await listJson(s)).some((v) => v.name === 'busy' && v.status === 'running') ? true : undefined))
    const owned = await s.cli(['rm', 'busy', '--force', '-d', s.data])
    expect(owned.code).toBe(2)
    expect(owned.stderr).toBe(
      `loopstate: rm: loop busy is running in process ${run.child.pid}; cancel it first (loopstate cancel busy), or stop that process\n`,
    )
    for (const f of filesOf(s, 'busy').slice(0, 2)) expect(existsSync(f), f).toBe(true)

    run.child.kill('SIGINT')
    expect((await run.exit).code).toBe(130)
    const unfinished = await s.cli(['rm', 'busy', '-d', s.data])
    expect(unfinished.code).toBe(2)
    expect(unfinished.stderr).toBe(
      'loopstate: rm: loop busy has not ended (running) and stays resumable; cancel it first (loopstate cancel busy), or force its removal (rm --force)\n',
    )
    expect(existsSync(filesOf(s, 'busy')[0]!)).toBe(true)
    const forced = await s.cli(['rm', 'busy', '-f', '-d', s.data])
    expect(forced.code, forced.stderr).toBe(0)
    expect(forced.stdout).toMatch(/^removed loop busy \(running\): record, history(, journal)?\n$/)
    expect(await listJson(s)).toEqual([])
  })

  it('prune removes the loops that ended longer ago than the duration, oldest first, and only those; --dry-run removes nothing', SLOW, async (t) => {
    const s = await sandbox(t)
    const store = new JsonStore(s.data)
    const now = Date.now()
    const ago = (ms: number) => new Date(now - ms).toISOString()
    const H = 3_600_000
    const loops: [string, LoopStatus, number][] = [
      ['done-long-ago', 'completed', 10 * 24 * H],
      ['cancelled-long-ago', 'cancelled', 8 * 24 * H],
      ['errored-long-ago', 'errored', 30 * 24 * H],
      ['stalled-yesterday', 'stalled', 26 * H],
      ['done-just-now', 'completed', H / 4],
      ['paused-long-ago', 'paused', 20 * 24 * H],
      ['running-long-ago', 'running', 20 * 24 * H],
    ]
    for (const [name, status, age] of loops) {
      await store.put(makeRecord(name, { status, reason: status === 'completed' ? 'completed' : null, updatedAt: ago(age) }))
      await store.appendHistory(name, [{ at: ago(age), event: 'e', from: 'a', to: 'b', iteration: 1, phase: 'coding' }], 100)
    }
    await store.flush()
    const names = async () => (await listJson(s)).map((v) => v.name).sort()

    const dry = await s.cli(['prune', '--older-than', '7d', '--dry-run', '-d', s.data])
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.stdout).toBe(
      [
        'would remove errored-long-ago (errored, ended 30d ago)',
        'would remove done-long-ago (completed, ended 10d ago)',
        'would remove cancelled-long-ago (cancelled, ended 8d ago)',
        'would prune 3 loops that ended more than 7d ago; 4 kept (dry run: nothing removed)',
        '',
      ].join('\n'),
    )
    expect(await names()).toHaveLength(7)

    const week = await s.cli(['prune', '--older-than', '7d', '-d', s.data])
    expect(week.code, week.stderr).toBe(0)
    expect(week.stdout).toBe(
      [
        'removed errored-long-ago (errored, ended 30d ago): record, history',
        'removed done-long-ago (completed, ended 10d ago): record, history',
        'removed cancelled-long-ago (cancelled, ended 8d ago): record, history',
        'pruned 3 loops that ended more than 7d ago; 4 kept',
        '',
      ].join('\n'),
    )
    expect(await names()).toEqual(['done-just-now', 'paused-long-ago', 'running-long-ago', 'stalled-yesterday'])
    expect(existsSync(join(s.data, 'history', 'done-long-ago.jsonl'))).toBe(false)
    expect(existsSync(join(s.data, 'history', 'stalled-yesterday.jsonl'))).toBe(true)

    expect((await s.cli(['prune', '--older-than', '12h', '-d', s.data])).stdout).toContain('removed stalled-yesterday (stalled, ended 1d ago)')
    const none = await s.cli(['prune', '--older-than', '30m', '-d', s.data])
    expect(none.stdout).toBe(`nothing to prune: no loop of data/ ended more than 30m ago\n`)
    // (15 minutes and the time this test took)
    expect((await s.cli(['prune', '--older-than', '10m', '-d', s.data])).stdout).toMatch(/^removed done-just-now \(completed, ended 1\dm ago\)/)
    // unfinished loops stay, however old
    expect(await names()).toEqual(['paused-long-ago', 'running-long-ago'])

    for (const bad of ['7', 'soon', '0d', '-1h']) {
      const r = await s.cli(['prune', '--older-than', bad, '-d', s.data])
      expect(r.code, bad).toBe(2)
      expect(r.stderr, bad).toMatch(/^loopstate: option '--older-than <duration>' argument '.*' is invalid\. expected a duration such as 30m, 12h or 7d\.\n$/)
    }
    const missing = await s.cli(['prune', '-d', s.data])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/required option '--older-than <duration>' not specified/)
  })
})

describe.concurrent('loopstate diff', () => {
  it("shows a git loop's branch and worktree against its base; rm --worktree removes the worktree, the branch stays", SLOW, async (t) => {
    const s = await sandbox(t)
    const repo = join(s.dir, 'repo')
    await mkdir(repo)
    gitIn(repo, 'init', '-q', '-b', 'main')
    await writeFile(join(repo, 'README.md'), 'old title\nbody\n')
    gitIn(repo, 'add', '-A')
    gitIn(repo, 'commit', '-q', '-m', 'initial')
    const base = gitIn(repo, 'rev-parse', 'HEAD')
    await writeFile(
      join(s.dir, 's.json'),
      JSON.stringify({
        coder: [toolCall('write_file', { path: 'out.txt', content: 'made\n' }), toolCall('edit_file', { path: 'README.md', search: 'old title', replace: 'new title' }), text('done')],
        auditor: [text('Clean.')],
      }),
    )
    const run = await s.cli(['run', '-g', 'make out', '-m', `scripted:${join(s.dir, 's.json')}`, '-w', 'repo', '-d', s.data])
    expect(run.code, run.stderr).toBe(0)
    const wt = worktreePath(repo, 'make-out')
    // and one change the loop did not commit
    await writeFile(join(wt, 'later.txt'), 'not committed\n')

    const diff = await s.cli(['diff', 'make-out', '-d', s.data])
    expect(diff.code, diff.stderr).toBe(0)
    expect(diff.stdout).toContain(`# git diff of branch loop/make-out against its base ${base.slice(0, 12)}: committed and uncommitted changes of the worktree ${wt}`)
    expect(diff.stdout).toContain('# 3 files: 1 modified, 2 added\n')
    expect(diff.stdout).toMatch(/diff --git a\/README\.md b\/README\.md\n(.*\n)*-old title\n\+new title\n body\n/)
    expect(diff.stdout).toMatch(/diff --git a\/out\.txt b\/out\.txt\nnew file mode 100644\n(.*\n)*\+made\n/)
    expect(diff.stdout).toContain('+++ b/later.txt\n@@ -0,0 +1 @@\n+not committed\n')
    const json = JSON.parse((await s.cli(['diff', 'make-out', '-j', '-d', s.data])).stdout) as WorkspaceDiff
    expect(json).toMatchObject({ kind: 'git', base, branch: 'loop/make-out' })
    expect(json.files.map((f) => [f.path, f.status])).toEqual([
      ['README.md', 'modified'],
      ['later.txt', 'added'],
      ['out.txt', 'added'],
    ])
    expect((await s.cli(['diff', 'make-out', '--stat', '-d', s.data])).stdout).toMatch(/\nmodified README\.md\nadded    later\.txt\nadded    out\.txt\n$/)
    // the user's checkout is as it was
    expect(gitIn(repo, 'status', '--porcelain')).toBe('')
    expect(await readFile(join(repo, 'README.md'), 'utf8')).toBe('old title\nbody\n')

    const removed = await s.cli(['rm', 'make-out', '--worktree', '-d', s.data])
    expect(removed.code, removed.stderr).toBe(0)
    expect(removed.stdout).toBe(`removed loop make-out (completed): record, history, journal\nremoved worktree ${wt}; branch loop/make-out stays\n`)
    expect(existsSync(wt)).toBe(false)
    expect(gitIn(repo, 'branch', '--list', 'loop/make-out')).toBe('loop/make-out')
  })

  it('shows the files a loop wrote in a plain directory, saying what kind of diff it is; rm leaves a worktree-less workspace alone', SLOW, async (t) => {
    const s = await sandbox(t)
    await writeFile(join(s.workspace, 'notes.txt'), 'a\nb\nc\n')
    await writeFile(
      join(s.dir, 's.json'),
      JSON.stringify({
        coder: [toolCall('write_file', { path: 'hello.txt', content: 'hello\n' }), toolCall('edit_file', { path: 'notes.txt', search: 'b\n', replace: 'B\n' }), text('done')],
        auditor: [text('Clean.')],
      }),
    )
    const run = await s.cli(['run', '-g', 'greet', '-m', `scripted:${join(s.dir, 's.json')}`, '-w', s.workspace, '-d', s.data])
    expect(run.code, run.stderr).toBe(0)
    const diff = await s.cli(['diff', 'greet', '-d', s.data])
    expect(diff.code, diff.stderr).toBe(0)
    expect(diff.stdout).toMatch(new RegExp(`^# not a git diff: ${s.workspace} is a plain directory .* the files the loop's write_file and edit_file calls changed`))
    expect(diff.stdout).toContain(
      '--- a/hello.txt (before the loop: not known)\n+++ b/hello.txt\n@@ written +1 @@\n+hello\n--- a/notes.txt\n+++ b/notes.txt\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n',
    )
    const json = JSON.parse((await s.cli(['diff', 'greet', '-j', '-d', s.data])).stdout) as WorkspaceDiff
    expect(json.kind).toBe('files')
    expect(json.files.map((f) => [f.path, f.status])).toEqual([
      ['hello.txt', 'written'],
      ['notes.txt', 'modified'],
    ])
    const missing = await s.cli(['diff', 'nope', '-d', s.data])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toBe(`loopstate: no loop named 'nope' in ${s.data}\n`)
    expect((await s.cli(['rm', 'greet', '--worktree', '-d', s.data])).stdout).toBe('removed loop greet (completed): record, history, journal\n')
    expect(await readFile(join(s.workspace, 'notes.txt'), 'utf8')).toBe('a\nB\nc\n')
  })
})

describe.concurrent('loopstate run: the model check before anything is saved', () => {
  it('an unreachable Ollama or OpenAI-compatible server: one line, exit 2, no data dir', SLOW, async (t) => {
    const s = await sandbox(t)
    const port = await closedPort()
    const ollama = await s.cli(['run', '-g', 'x', '-m', 'ollama:qwen3', '--ollama-host', `http://127.0.0.1:${port}`, '-w', s.workspace, '-d', s.data])
    expect(ollama.code).toBe(2)
    expect(ollama.stderr).toBe(
      `loopstate: run: cannot use ollama:qwen3: ollama: cannot reach http://127.0.0.1:${port}: connection refused; is Ollama running (ollama serve)? (ECONNREFUSED)\n`,
    )
    expect(ollama.stdout).toBe('')
    // a fallback or the auditor's model counts as much as the first
    const openai = await s.cli([
      'run', '-g', 'x', '-m', scripted('ok.json'), '--auditor-model', 'openai:gpt-x', '--openai-base-url', `http://127.0.0.1:${port}/v1`,
      '-w', s.workspace, '-d', s.data,
    ])
    expect(openai.code).toBe(2)
    expect(openai.stderr).toMatch(new RegExp(`^loopstate: run: cannot use openai:gpt-x: openai: cannot reach http://127\\.0\\.0\\.1:${port}/v1: connection refused[^\\n]*\\n$`))
    expect(existsSync(s.data)).toBe(false)
    expect(await readdir(s.workspace)).toEqual([])
  })

  it('a model the Ollama server lacks, or one without tools, is refused before the loop is saved; a served one runs', SLOW, async (t) => {
    const s = await sandbox(t)
    const server = await startOllamaServer({
      models: {
        'qwen3:test': { scenario: { coder: [toolCall('write_file', { path: 'a.txt', content: 'a' }), text('done')], auditor: [text('Clean.')] } },
        'plain:chat': { capabilities: ['completion'] },
      },
    })
    t.onTestFinished(() => server.close())
    const run = (...models: string[]) =>
      s.cli(['run', '-g', 'write a', ...models.flatMap((m) => ['-m', m]), '--ollama-host', server.host, '-w', s.workspace, '-d', s.data])
    const missing = await run('ollama:qwen3:test', 'ollama:nope')
    expect(missing.code).toBe(2)
    expect(missing.stderr).toBe(`loopstate: run: cannot use ollama:nope: ollama: model nope is not available on ${server.host}; run \`ollama pull nope\`\n`)
    const noTools = await run('ollama:plain:chat')
    expect(noTools.code).toBe(2)
    expect(noTools.stderr).toBe(`loopstate: run: cannot use ollama:plain:chat: ollama: model plain:chat on ${server.host} does not support tools; pick a model with tool calling (e.g. qwen3, llama3.1)\n`)
    expect(server.chats()).toEqual([])
    expect(existsSync(s.data)).toBe(false)

    const served = await run('ollama:qwen3:test')
    expect(served.code, served.stderr).toBe(0)
    expect(served.stdout).toContain('loop write-a completed (completed)')
  })

  it('a model the OpenAI-compatible server does not list is refused; continue and fork check their new models the same way', SLOW, async (t) => {
    const s = await sandbox(t)
    const server = await startOpenAIServer({ models: { 'gpt-test': { scenario: { coder: [text('done')], auditor: [text('Clean.')] } } }, listing: 'openai' })
    t.onTestFinished(() => server.close())
    const r = await s.cli(['run', '-g', 'x', '-m', 'openai:gpt-missing', '--openai-base-url', server.baseURL, '-w', s.workspace, '-d', s.data])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`loopstate: run: cannot use openai:gpt-missing: openai: model gpt-missing is not served by ${server.baseURL} (it lists: gpt-test)\n`)
    expect(server.chats()).toEqual([])
    expect(existsSync(s.data)).toBe(false)

    const fatal = await s.cli(['run', fixture('plain.md'), '-m', scripted('fatal.json'), '-w', s.workspace, '-d', s.data, '-n', 'ended'])
    expect(fatal.code).toBe(1)
    const before = await readFile(filesOf(s, 'ended')[0]!)
    for (const command of ['continue', 'fork']) {
      const args = command === 'fork' ? ['fork', 'ended', '--at', '1'] : ['continue', 'ended']
      const again = await s.cli([...args, '-m', 'openai:gpt-missing', '--openai-base-url', server.baseURL, '-d', s.data])
      expect(again.code, command).toBe(2)
      expect(again.stderr, command).toBe(`loopstate: ${command}: cannot use openai:gpt-missing: openai: model gpt-missing is not served by ${server.baseURL} (it lists: gpt-test)\n`)
    }
    expect(await readFile(filesOf(s, 'ended')[0]!)).toEqual(before)
    expect((await listJson(s)).map((v) => v.name)).toEqual(['ended'])
  })
})

describe.concurrent('loopstate run in the foreground', () => {
  it('Ctrl-C prints the exact command that resumes the loop, with the flags that say where its models are', SLOW, async (t) => {
    const s = await sandbox(t)
    const scenario = join(s.dir, 'hangs.json')
    await writeFile(scenario, JSON.stringify({ coder: [{ type: 'hang' }] }))
    const config = join(s.dir, 'loop.json')
    await writeFile(config, JSON.stringify({ maxIterations: 3 }))
    const run = s.spawn([
      'run', '-g', 'wait', '-m', `scripted:${scenario}`, '-w', s.workspace, '-d', s.data, '-n', 'hangs',
      '--ollama-host', 'http://127.0.0.1:1234', '--openai-base-url', 'http://127.0.0.1:1235/v1', '--config', 'loop.json',
    ])
    await until('the started line', () => (run.output().includes('loop hangs started') ? true : undefined))
    run.child.kill('SIGINT')
    const exit = await run.exit
    expect(exit.code).toBe(130)
    const command =
      `loopstate resume hangs --data ${s.data} --ollama-host http://127.0.0.1:1234 ` + `--openai-base-url http://127.0.0.1:1235/v1 --config ${config}`
    expect(exit.stdout).toContain(`saved; loop hangs stays resumable: ${command}\n`)

    // the command as printed carries it on (its model now answers)
    await writeFile(scenario, await readFile(fixture('ok.json')))
    const resumed = await s.cli(command.split(' ').slice(1))
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.stdout).toContain('loop hangs completed (completed)')
  })

  it('run --json prints the result object on stdout and everything else on stderr', SLOW, async (t) => {
    const s = await sandbox(t)
    const ok = await s.cli(['run', fixture('plain.md'), '-m', scripted('ok.json'), '-w', s.workspace, '-d', s.data, '-j'])
    expect(ok.code, ok.stderr).toBe(0)
    const result = JSON.parse(ok.stdout) as RunResult
    expect(result).toMatchObject({ name: 'add-a-greeting', status: 'completed', reason: 'completed', iteration: 1, exitCode: 0, error: null })
    expect(result.detail).toMatchObject({ name: 'add-a-greeting', status: 'completed', workspace: s.workspace, findings: [{ id: 'F1' }] })
    expect(ok.stderr).toContain('loopstate: loop add-a-greeting started: plain plan')
    expect(ok.stderr).toMatch(/^add-a-greeting +completed +iteration 1/m)

    const failed = await s.cli(['run', fixture('plain.md'), '-m', scripted('fatal.json'), '-w', s.workspace, '-d', s.data, '--json'])
    expect(failed.code).toBe(1)
    expect(JSON.parse(failed.stdout)).toMatchObject({ status: 'errored', reason: 'provider_fatal', exitCode: 1, error: { message: expect.stringContaining('not found') } })
  })

  it('run … | head -1: the closed pipe stops it as Ctrl-C would (exit 141, saved, claim released); resume completes it', SLOW, async (t) => {
    const s = await sandbox(t)
    const scenario = join(s.dir, 'piped.json')
    await writeFile(scenario, JSON.stringify({ coder: [{ type: 'hang' }] }))
    // the call waits for as long as it takes (no stall watchdog on a loaded machine)
    await writeFile(join(s.dir, 'patient.json'), JSON.stringify({ stallTimeoutMs: 3_600_000 }))
    // head's output comes on fd 3, which only head holds (the shell and the left side close theirs with exec: a
    // redirection of a group would keep a copy): its end there means head has exited and closed the pipe
    const script =
      '{ exec 3>&-; "$NODE" "$BIN" run -g piped -m "scripted:$SCENARIO" --config patient.json -w ws -d data -n piped; echo $? > code; } | head -1 >&3 3>&- &\n' +
      'exec 3>&-\n' +
      'wait\n'
    const sh = spawn('sh', ['-c', script], {
      cwd: s.dir,
      env: { ...ENV, NODE: process.execPath, BIN, SCENARIO: scenario },
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      detached: true, // a group of its own: whatever is left of it is killed with it
    })
    t.onTestFinished(() => {
      try {
        process.kill(-sh.pid!, 'SIGKILL')
      } catch {
        // all gone
      }
    })
    let headOut = ''
    let stderr = ''
    sh.stdio[3]!.on('data', (d: Buffer) => (headOut += d))
    sh.stderr!.on('data', (d: Buffer) => (stderr += d))
    const headDone = new Promise((resolve) => sh.stdio[3]!.on('end', resolve))
    const shDone = new Promise((resolve) => sh.on('close', resolve))
    await headDone
    expect(headOut).toBe(`loop piped started: goal, workspace ${s.workspace}, data ${s.data}\n`)
    // the loop's next line meets the closed pipe: a pause makes one if the progress line did not already
    // (again when its owner, slow or already stopping, did not take it in time: such a pause is withdrawn)
    let exited = false
    void shDone.then(() => (exited = true))
    for (let taken = false; !taken && !exited; ) taken = (await s.cli(['pause', 'piped', '-d', s.data])).code === 0
    await shDone

    expect(await readFile(join(s.dir, 'code'), 'utf8'), stderr).toBe('141\n')
    expect(stderr).toContain(`saved; loop piped stays resumable: loopstate resume piped --data ${s.data} --config ${join(s.dir, 'patient.json')}\n`)
    expect(stderr).not.toMatch(/EPIPE|\n\s+at /)
    const [view] = await listJson(s)
    expect(view).toMatchObject({ name: 'piped' })
    expect(['running', 'paused']).toContain(view!.status)
    expect(await readdir(join(s.data, 'claims')).catch(() => [])).toEqual([])

    await writeFile(scenario, await readFile(fixture('ok.json')))
    const resumed = await s.cli(['resume', 'piped', '-d', s.data])
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.stdout).toContain('loop piped completed (completed)')
  })

  it('has short flags and examples in --help', SLOW, async (t) => {
    const s = await sandbox(t)
    const help = await s.cli(['run', '--help'])
    expect(help.code).toBe(0)
    for (const flag of ['-g, --goal', '-m, --model', '-w, --workspace', '-n, --name', '-j, --json', '-d, --data']) expect(help.stdout).toContain(flag)
    expect(help.stdout).toContain('Examples:\n  $ loopstate run plan.md -m ollama:qwen3:8b\n')
    for (const command of ['list', 'status', 'diff', 'rm', 'prune']) {
      const r = await s.cli([command, '--help'])
      expect(r.code, command).toBe(0)
      expect(r.stdout, command).toMatch(new RegExp(`Examples:\\n {2}\\$ loopstate ${command}`))
    }
    expect((await s.cli(['rm', '--help'])).stdout).toContain('-f, --force')
  })
})
