/**
 * run_command, tried as an attacker would: the environment it passes, the
 * arguments and switches it refuses (with fake executables that log every run, so a
 * refusal provably ran nothing), and the process tree it kills (a grandchild that
 * left the session, on timeout, abort, exit, and a SIGKILL of a real engine process).
 *
 * Processes are checked in /proc (Linux): a zombie (state Z) counts as dead, since
 * this container's PID 1 may reap orphans late; a pid whose start time changed is a
 * new process, so the one we watched is dead too.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { RunCommandConfig } from '../machines/loop.types.ts'
import { createFindingsLedger } from '../services/findings-tools.ts'
import { commandEnv, splitCommand } from '../services/run-command.ts'
import type { ToolContext } from '../services/tool-types.ts'
import { runTool, toolsFor } from '../services/tools.ts'

const BIN = fileURLToPath(new URL('../scripts/loopstate.js', import.meta.url))
const NO_COMMANDS: RunCommandConfig = { enabled: false, allow: [], timeoutMs: 60_000, env: [], allowInlineCode: false }
const allowNode: RunCommandConfig = { enabled: true, allow: ['node'], timeoutMs: 30_000, env: [], allowInlineCode: false }
const inline: RunCommandConfig = { ...allowNode, allowInlineCode: true }

let root: string
let ws: string
let outside: string
/** Processes a test saw, killed after it if they are still there (a failing test leaves nothing behind). */
let watched: { pid: number; start: string }[] = []

beforeEach(async () => {
  root = await realpath(await mkdtemp(path.join(tmpdir(), 'loopstate-run-')))
  ws = path.join(root, 'ws')
  outside = path.join(root, 'outside')
  await mkdir(ws)
  await mkdir(outside)
  await writeFile(path.join(outside, 'x'), 'SECRET-OUTSIDE')
  watched = []
})

afterEach(async () => {
  for (const p of watched) if (!gone(p)) process.kill(p.pid, 'SIGKILL')
  await rm(root, { recursive: true, force: true })
})

function context(runCommand: RunCommandConfig, opts: { signal?: AbortSignal; dataDir?: string | null } = {}): ToolContext {
  return {
    workspace: ws,
    dataDir: opts.dataDir ?? null,
    maxReadBytes: 1024 * 1024,
    role: 'coder',
    findings: createFindingsLedger({ findings: [], nextId: 1, section: null, audit: 1, onReport: () => {}, onResolve: () => {} }),
    runCommand,
    signal: opts.signal ?? new AbortController().signal,
  }
}

async function run(command: string, runCommand: RunCommandConfig, opts: { signal?: AbortSignal; dataDir?: string | null } = {}) {
  return runTool(toolsFor('coder', runCommand), { name: 'run_command', arguments: { command } }, context(runCommand, opts))
}

// --- processes -------------------------------------------------------------

interface Proc {
  pid: number
  state: string
  ppid: number
  pgrp: number
  sid: number
  start: string
}

function stat(pid: number): Proc | null {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1')
  } catch {
    return null
  }
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return { pid, state: f[0]!, ppid: Number(f[1]), pgrp: Number(f[2]), sid: Number(f[3]), start: f[19]! }
}

/** Dead: no such process, a zombie, or another process under the same pid. */
function gone(p: { pid: number; start: string }): boolean {
  const now = stat(p.pid)
  return now === null || now.state === 'Z' || now.state === 'X' || now.start !== p.start
}

/** The live process whose pid a script wrote to `file` (in the workspace), watched for cleanup. */
function watch(file: string): Proc {
  const pid = Number(readFileSync(path.join(ws, file), 'utf8'))
  const p = stat(pid)
  if (p === null) throw new Error(`${file}: process ${pid} is not there`)
  watched.push(p)
  return p
}

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = probe()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

// --- scripts the commands run ----------------------------------------------

/** Writes its pid to `<name>.pid` (atomically) and sleeps until killed. */
const SLEEPER = `
const fs = require('fs')
const name = process.argv[2]
fs.writeFileSync(name + '.tmp', String(process.pid))
fs.renameSync(name + '.tmp', name + '.pid')
setInterval(() => {}, 1000)
`

/**
 * The command: starts a grandchild that leaves its session and process group
 * (detached: setsid) and is unref'd, writes its own pid, then per mode:
 * sleep (never ends), exit (exits once the grandchild is up), hold (the grandchild
 * keeps stdout and stderr; exits), orphan (the grandchild is started by an
 * intermediate detached process that exits at once, so it is re-parented and in no
 * session or group of the command; the command sleeps).
 */
const SPAWNER = `
const { spawn } = require('child_process')
const fs = require('fs')
const mode = process.argv[2] || 'sleep'
if (mode === 'middle') {
  spawn(process.execPath, ['sleeper.js', 'g'], { detached: true, stdio: 'ignore' }).unref()
  fs.writeFileSync('m.tmp', String(process.pid))
  fs.renameSync('m.tmp', 'm.pid')
  process.exit(0)
}
const first = mode === 'orphan' ? ['spawner.js', 'middle'] : ['sleeper.js', 'g']
spawn(process.execPath, first, { detached: true, stdio: mode === 'hold' ? 'inherit' : 'ignore' }).unref()
fs.writeFileSync('c.tmp', String(process.pid))
fs.renameSync('c.tmp', 'c.pid')
const wait = setInterval(() => {
  if (!fs.existsSync('g.pid')) return
  clearInterval(wait)
  console.log('grandchild up')
  if (mode === 'exit' || mode === 'hold') process.exit(0)
}, 20)
setInterval(() => {}, 1000)
`

async function writeScripts(): Promise<void> {
  await writeFile(path.join(ws, 'sleeper.js'), SLEEPER)
  await writeFile(path.join(ws, 'spawner.js'), SPAWNER)
}

/**
 * Fake executables in a bin dir outside the workspace: each logs its name and
 * arguments to ran.log and exits 0. Allowed by full path, matched by basename as
 * the real ones would be, so a refusal that let the command through shows in the log.
 */
async function fakeBin(names: string[]): Promise<{ allow: string[]; ran: () => string[] }> {
  const bin = path.join(root, 'bin')
  const log = path.join(root, 'ran.log')
  await mkdir(bin, { recursive: true })
  for (const name of names) {
    const file = path.join(bin, name)
    await writeFile(file, `#!/bin/sh\necho "$(basename "$0") $*" >> '${log}'\n`)
    await chmod(file, 0o755)
  }
  return {
    allow: names.map((n) => path.join(bin, n)),
    ran: () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []),
  }
}

// --- the tests -------------------------------------------------------------

describe('run_command basics', () => {
  it('is offered only when enabled', () => {
    expect(toolsFor('coder', NO_COMMANDS).map((t) => t.spec.name)).not.toContain('run_command')
    expect(toolsFor('coder', allowNode).map((t) => t.spec.name)).toContain('run_command')
  })

  it('runs an allowed command in the workspace', async () => {
    const result = await run('node -e "console.log(1)"', inline)
    expect(result.ok).toBe(true)
    expect(result.content).toMatch(/^\$ node -e "console.log\(1\)"\nexit code 0 \(\d+ ms\)\n--- stdout ---\n1\n--- stderr ---\n\(empty\)$/)

    await writeFile(path.join(ws, 'fail.js'), 'console.log(process.cwd()); console.error("bad"); process.exit(3)')
    const failed = await run('node fail.js', allowNode)
    expect(failed.content).toContain('exit code 3')
    expect(failed.content).toContain(`--- stdout ---\n${ws}`)
    expect(failed.content).toContain('--- stderr ---\nbad')
  })

  it('keeps the head and the tail of long output', async () => {
    await writeFile(path.join(ws, 'loud.js'), 'process.stdout.write("HEAD" + "x".repeat(100000) + "TAIL")')
    const result = await run('node loud.js', allowNode)
    expect(result.content).toMatch(/--- stdout ---\nHEADx+\n\[… \d+ bytes cut …\]\nx+TAIL\n--- stderr ---/)
  })

  it('refuses commands that are not allowed', async () => {
    expect((await run('rm -rf .', allowNode)).content).toBe("error: command 'rm' is not allowed (allowed: node)")
    expect((await run('./node x.js', allowNode)).content).toBe("error: command './node' is not allowed (allowed: node)")
  })

  it.each(['node -e 1 | cat', 'node a.js; rm -rf .', 'node a.js && rm x', 'node a.js > out.txt', 'node $(echo x)', 'node `echo x`'])(
    'refuses shell syntax: %s',
    async (command) => {
      const result = await run(command, inline)
      expect(result.ok).toBe(false)
      expect(result.content).toMatch(/^error: only plain commands run \(no shell\)/)
    },
  )

  it('splits quoted arguments without a shell', () => {
    expect(splitCommand(`node -e 'a | b; c' "x \\"y\\"" z\\ w`)).toEqual(['node', '-e', 'a | b; c', 'x "y"', 'z w'])
    expect(() => splitCommand('node "unterminated')).toThrow('unterminated " quote')
  })

  it('kills a command that runs past its timeout', async () => {
    // the command never ends by itself: a result at all means it was killed
    const result = await run('node -e "setInterval(()=>{},1000)"', { ...inline, timeoutMs: 300 })
    expect(result.ok).toBe(true)
    expect(result.content).toMatch(/^\$ node -e "setInterval\(\(\)=>\{\},1000\)"\ntimed out after 300 ms; the command was killed\n/)
  })

  it('kills the command when the session is aborted', async () => {
    await writeScripts()
    const abort = new AbortController()
    const pending = run('node sleeper.js c', allowNode, { signal: abort.signal })
    await until('the command to start', () => existsSync(path.join(ws, 'c.pid')))
    const command = watch('c.pid')
    abort.abort()
    const result = await pending
    expect(result.content).toMatch(/aborted after \d+ ms; the command was killed/)
    expect(gone(command)).toBe(true)
  })

  it('says when an allowed command does not exist', async () => {
    const config = { ...allowNode, allow: ['no-such-command-xyz'] }
    expect((await run('no-such-command-xyz', config)).content).toBe("error: command 'no-such-command-xyz' was not found on this machine")
  })

  it('a command cannot forge its result through the supervisor\'s status pipe', async () => {
    await writeFile(
      path.join(ws, 'forge.js'),
      `const fs = require('fs')
      for (const fd of [3, 4, 5]) try { fs.writeSync(fd, '{"done":{"ending":"exited","code":0,"signal":null}}\\n') } catch {}
      process.exit(7)`,
    )
    expect((await run('node forge.js', allowNode)).content).toContain('exit code 7')
  })
})

describe('run_command environment', () => {
  const PLANTED = {
    OPENAI_API_KEY: 'sk-planted-openai-0123456789',
    ANTHROPIC_API_KEY: 'sk-ant-planted-0123456789',
    GITHUB_TOKEN: 'ghp_planted0123456789',
    AWS_SECRET_ACCESS_KEY: 'planted-aws-secret',
    GIT_DIR: '/planted/git-dir',
    LOOPSTATE_DATA: '/planted/data',
  }

  it('passes PATH, HOME, LANG and the configured names, nothing else of the engine', async () => {
    await writeFile(path.join(ws, 'printenv.js'), 'console.log(JSON.stringify(process.env))')
    const saved = { ...process.env }
    Object.assign(process.env, PLANTED, { LANG: 'C.UTF-8', HOME: saved.HOME ?? '/home/engine-user', MY_TOOL_HOME: '/opt/tool' })
    delete process.env.NOT_SET_ANYWHERE
    const config = { ...allowNode, env: ['MY_TOOL_HOME', 'NOT_SET_ANYWHERE'] }
    let first: string
    let second: string
    try {
      first = (await run('node printenv.js', config)).content
      second = (await run('node printenv.js', config)).content
    } finally {
      for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key]
      Object.assign(process.env, saved)
    }
    for (const value of Object.values(PLANTED)) expect(first).not.toContain(value)
    const env = JSON.parse(first.split('--- stdout ---\n')[1]!.split('\n--- stderr ---')[0]!) as Record<string, string>
    expect(Object.keys(env).sort()).toEqual(['HOME', 'LANG', 'LOOPSTATE_RUN_ID', 'MY_TOOL_HOME', 'PATH'])
    expect(env).toMatchObject({ PATH: saved.PATH, LANG: 'C.UTF-8', MY_TOOL_HOME: '/opt/tool' })
    expect(env.HOME).toBe(saved.HOME ?? '/home/engine-user')
    // the marker is a random id per call: no secret, nothing stable
    expect(env.LOOPSTATE_RUN_ID).toMatch(/^[0-9a-f]{32}$/)
    const again = JSON.parse(second.split('--- stdout ---\n')[1]!.split('\n--- stderr ---')[0]!) as Record<string, string>
    expect(again.LOOPSTATE_RUN_ID).not.toBe(env.LOOPSTATE_RUN_ID)
  })

  it('commandEnv leaves out what is not set', () => {
    expect(commandEnv(['A', 'B'], { PATH: '/bin', A: 'a', SECRET: 's' })).toEqual({ PATH: '/bin', A: 'a' })
  })
})

describe('run_command arguments stay in the workspace', () => {
  let fake: Awaited<ReturnType<typeof fakeBin>>
  let config: RunCommandConfig

  beforeEach(async () => {
    fake = await fakeBin(['cat', 'ls', 'node', 'git'])
    config = { ...allowNode, allow: fake.allow }
    await mkdir(path.join(ws, 'src'))
    await writeFile(path.join(ws, 'src', 'a.txt'), 'a')
    await symlink(outside, path.join(ws, 'link'))
    await symlink(path.join(outside, 'x'), path.join(ws, 'file-link'))
    await mkdir(path.join(ws, 'data', 'loops'), { recursive: true })
  })

  it.each([
    ['cat ../outside/x', "'../outside/x' is outside the workspace"],
    ['cat src/../../outside/x', "'src/../../outside/x' is outside the workspace"],
    ['ls /', "'/' is absolute; use a path relative to the workspace"],
    ['cat /etc/passwd', "'/etc/passwd' is absolute; use a path relative to the workspace"],
    ['cat ~/.ssh/id_rsa', "'~/.ssh/id_rsa' reads as a home directory; use a path relative to the workspace"],
    ['ls ~', "'~' reads as a home directory; use a path relative to the workspace"],
    ['cat link/x', "'link/x' is outside the workspace"],
    ['cat file-link', "'file-link' is outside the workspace"],
    ['cat .git/config', "'.git/config': git's metadata (.git) is never read or written by the model"],
    ['ls data/loops', "'data/loops': it is inside loopstate's data dir (other loops' records, inboxes and locks)"],
    ['node x.js ../outside/x', "'../outside/x' is outside the workspace"],
    ['git clone file:///etc/repo', "'file:///etc/repo' is a file: URL (a path by another name); use a path relative to the workspace"],
  ])('refuses %s and runs nothing', async (command, rule) => {
    const arg = splitCommand(command).at(-1)!
    const result = await run(command, config, { dataDir: path.join(ws, 'data') })
    expect(result).toEqual({ ok: false, content: `error: run_command: argument '${arg}' is refused: ${rule}` })
    expect(fake.ran()).toEqual([])
  })

  it.each([
    ['cat --file=/etc/passwd', '--file=/etc/passwd', "'/etc/passwd' is absolute; use a path relative to the workspace"],
    ['cat --from=../outside/x src/a.txt', '--from=../outside/x', "'../outside/x' is outside the workspace"],
    ['cat -o/etc/passwd', '-o/etc/passwd', "'/etc/passwd' is absolute; use a path relative to the workspace"],
    ['ls DESTDIR=/usr/local', 'DESTDIR=/usr/local', "'/usr/local' is absolute; use a path relative to the workspace"],
  ])('refuses the value of an option or assignment: %s', async (command, arg, rule) => {
    const result = await run(command, config)
    expect(result.content).toBe(`error: run_command: argument '${arg}' is refused: ${rule}`)
    expect(fake.ran()).toEqual([])
  })

  it('lets ordinary arguments through', async () => {
    const commands = [
      'ls test -v --reporter=dot src/x.test.ts 1 http://127.0.0.1:3000 src',
      'cat src/a.txt ./src/a.txt src/new-file.txt - "" " "',
      'git log HEAD~1..HEAD --format=%H -- src .gitignore',
      'git commit -m "fix: a thing" --author="A <a@b.c>"',
      'git config --get user.name',
      'git config user.name',
      'node x.js -p 3000 -e',
      'node --test src/x.test.ts',
    ]
    for (const command of commands) expect((await run(command, config)).content, command).toMatch(/\nexit code 0 /)
    expect(fake.ran()).toEqual([
      'ls test -v --reporter=dot src/x.test.ts 1 http://127.0.0.1:3000 src',
      'cat src/a.txt ./src/a.txt src/new-file.txt -   ',
      'git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c safe.bareRepository=explicit -c protocol.ext.allow=never log HEAD~1..HEAD --format=%H -- src .gitignore',
      'git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c safe.bareRepository=explicit -c protocol.ext.allow=never commit -m fix: a thing --author=A <a@b.c>',
      'git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c safe.bareRepository=explicit -c protocol.ext.allow=never config --get user.name',
      'git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c safe.bareRepository=explicit -c protocol.ext.allow=never config user.name',
      'node x.js -p 3000 -e',
      'node --test src/x.test.ts',
    ])
  })
})

describe('run_command refuses code-running switches', () => {
  const NAMES = ['node', 'git', 'python3', 'sh', 'bash', 'perl', 'ruby', 'deno', 'bun', 'npx', 'npm', 'find']
  let fake: Awaited<ReturnType<typeof fakeBin>>
  let config: RunCommandConfig

  beforeEach(async () => {
    fake = await fakeBin(NAMES)
    config = { ...allowNode, allow: fake.allow }
  })

  const INLINE = (name: string, flag: string) =>
    `error: run_command: '${name} ${flag}' runs code given inline; refused (set runCommand.allowInlineCode to allow it)`

  it.each([
    [`node -e "require('fs').writeFileSync('pwned', '')"`, 'node', '-e'],
    ['node -pe process.env', 'node', '-pe'],
    ['node -p 1', 'node', '-p'],
    ['node --eval=1', 'node', '--eval'],
    ['node --print 1', 'node', '--print'],
    ['node -r ./setup.js -e 1', 'node', '-e'],
    ['node --title x -e 1', 'node', '-e'],
    ['node --import data:text/javascript,1 x.js', 'node', '--import data:'],
    ['bun -e 1', 'bun', '-e'],
    ['python3 -c "open(\'pwned\',\'w\')"', 'python3', '-c'],
    ['python3 -Bc 1', 'python3', '-Bc'],
    ['python3 -W ignore -c 1', 'python3', '-c'],
    ['sh -c "touch pwned"', 'sh', '-c'],
    ['bash -ec id', 'bash', '-ec'],
    ['bash -o pipefail -c id', 'bash', '-c'],
    ['perl -ne print', 'perl', '-ne'],
    ['perl -E say', 'perl', '-E'],
    ['perl "-Mstrict;system(1)" x.pl', 'perl', '-M'],
    ['perl -x -e 1', 'perl', '-e'],
    ['ruby -e 1', 'ruby', '-e'],
    ['ruby -I lib -e 1', 'ruby', '-e'],
    ['deno eval 1', 'deno', 'eval'],
    ['npx -c "touch pwned"', 'npx', '-c'],
    ['npx --call=id', 'npx', '--call'],
    ['npm exec -c id', 'npm', 'exec -c'],
  ])('refuses %s without allowInlineCode', async (command, name, flag) => {
    expect((await run(command, config)).content).toBe(INLINE(name, flag))
    expect(fake.ran()).toEqual([])
    expect(existsSync(path.join(ws, 'pwned'))).toBe(false)
  })

  it('runs inline code with allowInlineCode, and does not take the code for a path', async () => {
    const allowed = { ...config, allowInlineCode: true }
    expect((await run('node -e "// reads /etc/passwd and ../x"', allowed)).content).toMatch(/\nexit code 0 /)
    expect((await run('python3 -c "print(1)"', allowed)).content).toMatch(/\nexit code 0 /)
    expect(fake.ran()).toEqual(['node -e // reads /etc/passwd and ../x', 'python3 -c print(1)'])
    // the other rules still hold
    expect((await run('node -e 1 ../outside/x', allowed)).content).toBe(
      "error: run_command: argument '../outside/x' is refused: '../outside/x' is outside the workspace",
    )
  })

  it('does not take a script\'s own options for the interpreter\'s', async () => {
    for (const command of ['node x.js -e 1', 'python3 -m pytest -c cfg', 'python3 x.py -c 1', 'sh x.sh -c', 'npx jest -c cfg', 'ruby x.rb -e'])
      expect((await run(command, config)).content, command).toMatch(/\nexit code 0 /)
    expect(fake.ran()).toHaveLength(6)
  })

  const GIT = (what: string, why: string) => `error: run_command: 'git ${what}' ${why}; refused`
  const CONFIG_RUNS = 'sets git configuration for this command (configuration can make git run programs)'

  it.each([
    ['git -c alias.x=!id x', GIT('-c', CONFIG_RUNS)],
    ['git -c core.fsmonitor=id status', GIT('-c', CONFIG_RUNS)],
    ['git --config-env=core.pager=X log', GIT('--config-env', CONFIG_RUNS)],
    ['git --exec-path=. status', GIT('--exec-path', 'changes where git finds its programs')],
    ['git -C .. status', GIT('-C', 'points git at another directory or repository (git runs on the workspace)')],
    ['git --git-dir=../r/.git log', GIT('--git-dir', 'points git at another directory or repository (git runs on the workspace)')],
    ['git --work-tree=.. status', GIT('--work-tree', 'points git at another directory or repository (git runs on the workspace)')],
    ['git --bare log', GIT('--bare', 'points git at another directory or repository (git runs on the workspace)')],
    ['git x', "error: run_command: 'git x' is not one of git's own commands (an alias or a git-x program can run anything); refused"],
    ['git -p pwn', "error: run_command: 'git pwn' is not one of git's own commands (an alias or a git-pwn program can run anything); refused"],
    [
      'git config core.fsmonitor evil',
      "error: run_command: 'git config core.fsmonitor evil' writes git configuration (configuration can make git run programs); refused (reading is allowed: git config --get NAME, git config --list)",
    ],
    [
      'git config --global alias.st !id',
      "error: run_command: 'git config --global alias.st !id' writes git configuration (configuration can make git run programs); refused (reading is allowed: git config --get NAME, git config --list)",
    ],
    [
      'git config --unset core.hooksPath',
      "error: run_command: 'git config --unset core.hooksPath' writes git configuration (configuration can make git run programs); refused (reading is allowed: git config --get NAME, git config --list)",
    ],
    ['git rebase --exec "touch pwned" HEAD~1', GIT('rebase --exec', 'runs a program given on its command line')],
    ['git rebase -ix id HEAD~1', GIT('rebase -x', 'runs a program given on its command line')],
    ['git ls-remote --upload-pack=id .', GIT('ls-remote --upload-pack', 'runs a program given on its command line')],
    ['git clone -u id src dst', GIT('clone -u', 'runs a program given on its command line')],
    ['git bisect run id', GIT('bisect run', 'runs a program given on its command line')],
    ['git submodule foreach id', GIT('submodule foreach', 'runs a program given on its command line')],
    ['git grep -Oid x', GIT('grep -O', 'runs a program given on its command line')],
    ['git filter-branch --tree-filter id', GIT('filter-branch', 'runs programs or serves the repository')],
    ['git difftool -x id', GIT('difftool', 'runs programs or serves the repository')],
    ['git credential fill', GIT('credential', "hands out the user's credentials")],
  ])('refuses %s', async (command, message) => {
    expect((await run(command, config)).content).toBe(message)
    // also with inline code allowed: these are git's rules, not inline code
    expect((await run(command, { ...config, allowInlineCode: true })).content).toBe(message)
    expect(fake.ran()).toEqual([])
  })

  it('refuses find -exec', async () => {
    expect((await run('find . -name x -exec touch pwned ;'.replace(';', '\\;'), config)).content).toBe(
      "error: run_command: 'find -exec' runs other programs; refused",
    )
    expect(fake.ran()).toEqual([])
  })
})

describe('run_command runs git with hooks and fsmonitor off', () => {
  it('a planted fsmonitor and hook do not run for the model\'s git', async () => {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: ws, stdio: 'pipe' })
    git('init', '-q')
    git('config', 'user.name', 'T')
    git('config', 'user.email', 't@example.com')
    const trap = path.join(root, 'trap.sh')
    await writeFile(trap, `#!/bin/sh\necho "$0 $*" >> '${path.join(root, 'trapped.log')}'\nexit 1\n`)
    await chmod(trap, 0o755)
    git('config', 'core.fsmonitor', trap)
    await writeFile(path.join(ws, '.git', 'hooks', 'pre-commit'), `#!/bin/sh\nexec '${trap}' pre-commit\n`)
    await chmod(path.join(ws, '.git', 'hooks', 'pre-commit'), 0o755)
    await writeFile(path.join(ws, 'a.txt'), 'a')

    const config = { ...allowNode, allow: ['git'] }
    expect((await run('git add a.txt', config)).content).toMatch(/\nexit code 0 /)
    expect((await run('git status --short', config)).content).toContain('A  a.txt')
    expect((await run('git commit -q -m first', config)).content).toMatch(/\nexit code 0 /)
    expect(git('log', '--format=%s').toString().trim()).toBe('first')
    expect(existsSync(path.join(root, 'trapped.log'))).toBe(false)

    // the trap works: git run as usual would have run it
    try {
      git('commit', '-q', '--allow-empty', '-m', 'second')
    } catch {
      // the hook fails the commit
    }
    expect(existsSync(path.join(root, 'trapped.log'))).toBe(true)
  })
})

describe('run_command kills the whole process tree', () => {
  beforeEach(writeScripts)

  it('on abort, also a grandchild that left the session and process group', async () => {
    const abort = new AbortController()
    const pending = run('node spawner.js sleep', allowNode, { signal: abort.signal })
    await until('the grandchild to start', () => existsSync(path.join(ws, 'g.pid')) && existsSync(path.join(ws, 'c.pid')))
    const command = watch('c.pid')
    const grandchild = watch('g.pid')
    const supervisor = stat(command.ppid)!
    watched.push(supervisor)
    // it did leave: its own session and group, neither the command's nor the supervisor's
    expect(grandchild.sid).toBe(grandchild.pid)
    expect(grandchild.pgrp).toBe(grandchild.pid)
    expect(command.sid).toBe(command.pid)
    expect(supervisor.sid).toBe(supervisor.pid)
    abort.abort()
    const result = await pending
    expect(result.content).toMatch(/aborted after \d+ ms; the command was killed/)
    expect([gone(command), gone(grandchild), gone(supervisor)]).toEqual([true, true, true])
  })

  it('on timeout, also a detached grandchild', async () => {
    // The timeout runs from the start, so on a slow machine it could come before the
    // grandchild is up: then the run proves nothing and is made again with a longer one.
    for (const timeoutMs of [1_000, 4_000, 16_000]) {
      await rm(path.join(ws, 'g.pid'), { force: true })
      await rm(path.join(ws, 'c.pid'), { force: true })
      const result = await run('node spawner.js sleep', { ...allowNode, timeoutMs })
      expect(result.content).toContain(`timed out after ${timeoutMs} ms; the command was killed`)
      if (!existsSync(path.join(ws, 'g.pid'))) continue
      const grandchild = stat(Number(readFileSync(path.join(ws, 'g.pid'), 'utf8')))
      const command = stat(Number(readFileSync(path.join(ws, 'c.pid'), 'utf8')))
      // gone: no process under that pid, or a zombie
      for (const p of [grandchild, command]) expect(p === null || p.state === 'Z', `pid ${p?.pid} in state ${p?.state}`).toBe(true)
      return
    }
    throw new Error('the grandchild never started before the timeout')
  }, 60_000)

  it('when the command exits, also a grandchild that holds its pipes (and the result does not wait for it)', async () => {
    const result = await run('node spawner.js hold', allowNode)
    expect(result.content).toMatch(/^\$ node spawner.js hold\nexit code 0 \(\d+ ms\)\n--- stdout ---\ngrandchild up\n/)
    const pid = Number(readFileSync(path.join(ws, 'g.pid'), 'utf8'))
    const grandchild = stat(pid)
    expect(grandchild === null || grandchild.state === 'Z', `grandchild ${pid}: ${grandchild?.state}`).toBe(true)
  })

  it('when the command exits, also a detached grandchild with no pipes', async () => {
    const result = await run('node spawner.js exit', allowNode)
    expect(result.content).toContain('exit code 0')
    const grandchild = stat(Number(readFileSync(path.join(ws, 'g.pid'), 'utf8')))
    expect(grandchild === null || grandchild.state === 'Z').toBe(true)
  })

  it('when the command kills its supervisor, the engine kills what the supervisor would have', async () => {
    await writeFile(
      path.join(ws, 'rogue.js'),
      `const { spawn } = require('child_process')
      const fs = require('fs')
      spawn(process.execPath, ['sleeper.js', 'g'], { detached: true, stdio: 'ignore' }).unref()
      fs.writeFileSync('c.pid', String(process.pid))
      const wait = setInterval(() => {
        if (!fs.existsSync('g.pid')) return
        clearInterval(wait)
        process.kill(process.ppid, 'SIGKILL')
      }, 20)
      setInterval(() => {}, 1000)`,
    )
    const result = await run('node rogue.js', allowNode)
    expect(result.content).toMatch(/^\$ node rogue.js\nno result: the command's supervisor ended \(killed by SIGKILL\); the command was killed\n/)
    for (const file of ['c.pid', 'g.pid']) {
      const p = stat(Number(readFileSync(path.join(ws, file), 'utf8')))
      expect(p === null || p.state === 'Z', `${file}: ${p?.state}`).toBe(true)
    }
  })

  it('also a grandchild orphaned by a double fork (re-parented, in no session of the command)', async () => {
    const abort = new AbortController()
    const pending = run('node spawner.js orphan', allowNode, { signal: abort.signal })
    await until('the grandchild to start', () => existsSync(path.join(ws, 'g.pid')) && existsSync(path.join(ws, 'c.pid')))
    await until('the intermediate process to write its pid', () => existsSync(path.join(ws, 'm.pid')))
    const command = watch('c.pid')
    const grandchild = watch('g.pid')
    const middle = Number(readFileSync(path.join(ws, 'm.pid'), 'utf8'))
    // its parent (the intermediate process) has exited: no parent link, session or group leads to the command
    await until('the intermediate process to be reaped', () => stat(grandchild.pid)!.ppid !== middle)
    const orphan = stat(grandchild.pid)!
    expect(orphan.ppid).not.toBe(command.pid)
    expect([orphan.sid, orphan.pgrp]).toEqual([orphan.pid, orphan.pid])
    abort.abort()
    await pending
    expect([gone(command), gone(grandchild)]).toEqual([true, true])
  })
})

describe('run_command when the engine is SIGKILLed', () => {
  it('the command, its detached grandchild and the supervisor go too; the environment held nothing planted', async () => {
    const data = path.join(root, 'data')
    const tool = (name: string, args: Record<string, unknown>) => ({ type: 'tool_calls', calls: [{ name, arguments: args }] })
    const scenario = {
      coder: [
        tool('write_file', { path: 'printenv.js', content: "require('fs').writeFileSync('env.json', JSON.stringify(process.env))" }),
        tool('run_command', { command: 'node printenv.js' }),
        tool('write_file', { path: 'sleeper.js', content: SLEEPER }),
        tool('write_file', { path: 'spawner.js', content: SPAWNER }),
        tool('run_command', { command: 'node spawner.js sleep' }),
        { type: 'text', text: 'done' },
      ],
      auditor: [{ type: 'text', text: 'ok' }],
    }
    await writeFile(path.join(root, 'scenario.json'), JSON.stringify(scenario))
    await writeFile(
      path.join(root, 'cfg.json'),
      JSON.stringify({ runCommand: { enabled: true, allow: ['node'], timeoutMs: 600_000, env: ['MY_TOOL_HOME'] } }),
    )
    const planted = { OPENAI_API_KEY: 'sk-planted-openai-0123456789', GITHUB_TOKEN: 'ghp_planted0123456789' }
    const env = { ...process.env, ...planted, LANG: 'C.UTF-8', MY_TOOL_HOME: '/opt/tool', LOOPSTATE_FROM_SOURCE: '1', LOOPSTATE_DATA: undefined }
    const args = ['run', '--goal', 'spawn things', '--model', `scripted:${path.join(root, 'scenario.json')}`]
    args.push('--config', path.join(root, 'cfg.json'), '--workspace', ws, '--data', data)
    const engine: ChildProcess = spawn(process.execPath, [BIN, ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    engine.stdout!.on('data', (d: Buffer) => (output += d))
    engine.stderr!.on('data', (d: Buffer) => (output += d))
    const exited = new Promise<void>((resolve) => engine.on('exit', () => resolve()))
    try {
      await until(`the grandchild's pid file (engine output: ${output})`, () => existsSync(path.join(ws, 'g.pid')) && existsSync(path.join(ws, 'c.pid')), 45_000)
      const command = watch('c.pid')
      const grandchild = watch('g.pid')
      const supervisor = stat(command.ppid)!
      watched.push(supervisor)
      expect(supervisor.ppid).toBe(engine.pid)
      expect(grandchild.sid).toBe(grandchild.pid)

      engine.kill('SIGKILL')
      await exited
      await until('the command, the grandchild and the supervisor to be gone', () => gone(command) && gone(grandchild) && gone(supervisor), 20_000)

      const seen = JSON.parse(await readFile(path.join(ws, 'env.json'), 'utf8')) as Record<string, string>
      expect(Object.keys(seen).sort()).toEqual(['HOME', 'LANG', 'LOOPSTATE_RUN_ID', 'MY_TOOL_HOME', 'PATH'])
      expect(seen.MY_TOOL_HOME).toBe('/opt/tool')
      for (const value of Object.values(planted)) expect(JSON.stringify(seen)).not.toContain(value)
    } finally {
      if (engine.exitCode === null && engine.signalCode === null) engine.kill('SIGKILL')
    }
  }, 90_000)
})

describe('run_command from the bundle (dist/)', () => {
  it('finds its supervisor and kills a detached grandchild when run by the bundled CLI', async () => {
    const out = path.join(fileURLToPath(new URL('..', import.meta.url)), 'test-artifacts', `run-command-${process.pid}`)
    // @ts-expect-error plain JavaScript module without type declarations
    const { build } = (await import('../scripts/build.mjs')) as { build: (o: { outDir: string; quiet: boolean }) => Promise<unknown> }
    try {
      expect(await build({ outDir: out, quiet: true }), 'esbuild is a devDependency: the build must run').not.toBeNull()
      const tool = (name: string, args: Record<string, unknown>) => ({ type: 'tool_calls', calls: [{ name, arguments: args }] })
      const scenario = {
        coder: [
          tool('write_file', { path: 'sleeper.js', content: SLEEPER }),
          tool('write_file', { path: 'spawner.js', content: SPAWNER }),
          tool('run_command', { command: 'node spawner.js exit' }),
          { type: 'text', text: 'done' },
        ],
        auditor: [{ type: 'text', text: 'ok' }],
      }
      await writeFile(path.join(root, 'scenario.json'), JSON.stringify(scenario))
      await writeFile(path.join(root, 'cfg.json'), JSON.stringify({ runCommand: { enabled: true, allow: ['node'] } }))
      const args = ['run', '--goal', 'spawn', '--model', `scripted:${path.join(root, 'scenario.json')}`, '--config', path.join(root, 'cfg.json')]
      args.push('--workspace', ws, '--data', path.join(root, 'data'))
      const env = { ...process.env, LOOPSTATE_DATA: undefined, LOOPSTATE_FROM_SOURCE: undefined }
      const stdout = execFileSync(process.execPath, [path.join(out, 'cli.js'), ...args], { cwd: root, env, timeout: 60_000 }).toString()
      expect(stdout).toContain('loop spawn completed (completed)')
      // the command ran (under its supervisor) and exited; its detached grandchild went with it
      const grandchild = stat(Number(readFileSync(path.join(ws, 'g.pid'), 'utf8')))
      expect(grandchild === null || grandchild.state === 'Z', `grandchild: ${grandchild?.state}`).toBe(true)
    } finally {
      await rm(out, { recursive: true, force: true })
    }
  }, 90_000)
})
