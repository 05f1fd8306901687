/**
 * Faults of loopstate's own git commands heal: what a SIGKILL of the engine leaves
 * in the middle of a commit (the worktree's `index.lock`) or of `git worktree add`
 * (a branch and worktree with no record, noted in `data/pending/`), laid out on
 * disk exactly as git leaves it, and then met by the next engine. The last tests
 * make the fault for real: a `loopstate run` process whose git (a wrapper first on
 * its PATH, test/helpers/git-trap.ts) stops inside the real command, and is then
 * SIGKILLed with it.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createEngine, type Engine } from '../services/engine.ts'
import { worktreePath } from '../services/git-workspace.ts'
import { killTrapped, makeGitTrap, type GitTrap, type TrapTarget } from './helpers/git-trap.ts'
import { calls, hang, text } from './helpers/loop-harness.ts'

const BIN = fileURLToPath(new URL('../scripts/loopstate.js', import.meta.url))
/** The real git, found before any PATH of a test puts a wrapper first. */
const REAL_GIT = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim()

let root: string
let repo: string
let data: string
const engines: Engine[] = []
const processes: ChildProcess[] = []
const traps: GitTrap[] = []

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@localhost', ...args], { cwd, encoding: 'utf8' }).trim()

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'loopstate-git-faults-'))
  repo = join(root, 'project')
  data = join(root, 'data')
  await mkdir(repo)
  git(repo, 'init', '-q', '-b', 'main')
  await writeFile(join(repo, 'README.md'), '# p\n')
  git(repo, 'add', '-A')
  git(repo, 'commit', '-q', '-m', 'initial')
})

afterEach(async () => {
  // the engine processes are group leaders (detached): their group holds every git they started
  for (const p of processes.splice(0)) {
    for (const sig of ['SIGCONT', 'SIGKILL'] as const) {
      try {
        process.kill(-p.pid!, sig)
      } catch {
        // gone already
      }
    }
  }
  for (const t of traps.splice(0)) killTrapped(t.stopped())
  for (const e of engines.splice(0)) await e.close()
  await rm(root, { recursive: true, force: true })
})

async function engine(resume = true) {
  const e = await createEngine({ dataDir: data, resume, onProblem: () => {} })
  engines.push(e)
  return e
}

const FINISH = { coder: [calls([['write_file', { path: 'a.txt', content: 'a\n' }]]), text('done')], auditor: [text('All good.')] }

describe('git faults heal', () => {
  it("removes the index.lock a commit killed with its engine left, and the resumed loop commits", async () => {
    const model = join(root, 'm.json')
    await writeFile(model, JSON.stringify({ coder: [hang()] }))
    const a = await engine(false)
    await a.start({ goal: 'locked' }, { name: 'locked', models: [`scripted:${model}`], workspace: repo, stallTimeoutMs: 600_000 })
    await a.close()
    const lock = join(repo, '.git', 'worktrees', 'locked', 'index.lock')
    await writeFile(lock, '')
    await writeFile(model, JSON.stringify(FINISH))
    const b = await engine()
    expect(await b.handle('locked')!.done).toMatchObject({ status: 'completed', reason: 'completed' })
    expect(existsSync(lock)).toBe(false)
    expect(git(repo, 'log', '--format=%s', '-1', 'loop/locked')).toBe('loopstate: locked completed (iteration 1, 1 audits)')
  })

  it('reclaims the worktree and branch of a start killed during git worktree add, and runs the loop there', async () => {
    // what the killed start left: its note in data/pending/, the branch at HEAD and its worktree, and no record
    await mkdir(join(data, 'pending'), { recursive: true })
    await writeFile(join(data, 'pending', 'interrupted.json'), JSON.stringify({ repo, at: 'then' }))
    const wt = worktreePath(repo, 'interrupted')
    await mkdir(join(root, 'project.loops'), { recursive: true })
    git(repo, 'worktree', 'add', '-q', '-b', 'loop/interrupted', wt)
    const model = join(root, 'm.json')
    await writeFile(model, JSON.stringify(FINISH))
    const e = await engine(false)
    const h = await e.start({ goal: 'again' }, { name: 'interrupted', models: [`scripted:${model}`], workspace: repo })
    expect(await h.done).toMatchObject({ status: 'completed' })
    expect(await readFile(join(wt, 'a.txt'), 'utf8')).toBe('a\n')
    expect(existsSync(join(data, 'pending', 'interrupted.json'))).toBe(false)
  })

  it('never reclaims a branch with commits of its own, and says what to do', async () => {
    await mkdir(join(data, 'pending'), { recursive: true })
    await writeFile(join(data, 'pending', 'kept.json'), JSON.stringify({ repo, at: 'then' }))
    git(repo, 'branch', 'loop/kept')
    git(repo, 'checkout', '-q', 'loop/kept')
    await writeFile(join(repo, 'work.txt'), 'mine\n')
    git(repo, 'add', '-A')
    git(repo, 'commit', '-q', '-m', 'my own work')
    git(repo, 'checkout', '-q', 'main')
    const tip = git(repo, 'rev-parse', 'loop/kept')
    const model = join(root, 'm.json')
    await writeFile(model, JSON.stringify(FINISH))
    const e = await engine(false)
    await expect(
      e.start({ goal: 'x' }, { name: 'kept', models: [`scripted:${model}`], workspace: repo }),
    ).rejects.toThrow(/^workspace: branch loop\/kept already exists in .* \(it has commits of its own\); pick another --name, or remove it/)
    expect(git(repo, 'rev-parse', 'loop/kept')).toBe(tip)
    expect(await e.list()).toEqual([])
  })
})

interface EngineProcess {
  child: ChildProcess
  exited: Promise<number | null>
  hasExited: () => boolean
  output: () => string
}

/** `loopstate run` (from source) in its own process group, with the trap's git first on its PATH. */
function runWithTrap(trap: GitTrap, args: string[]): EngineProcess {
  const child = spawn(process.execPath, [BIN, 'run', ...args, '--data', data], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PATH: `${trap.bin}:${process.env.PATH ?? ''}`, LOOPSTATE_DATA: undefined, LOOPSTATE_FROM_SOURCE: '1' },
  })
  processes.push(child)
  let out = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()))
  let done = false
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      done = true
      resolve(code)
    }),
  )
  return { child, exited, hasExited: () => done, output: () => out }
}

async function trapFor(target: TrapTarget, artefacts: string[]): Promise<GitTrap> {
  const trap = await makeGitTrap(join(root, `trap-${target}`), { realGit: REAL_GIT, target, artefacts })
  traps.push(trap)
  return trap
}

/**
 * Waits until the trap has stopped git with its artefact on disk. Bounded by polls, not
 * by time; fails at once, with what the engine printed, if the engine ends first.
 */
async function untilTrapped(trap: GitTrap, engine: EngineProcess) {
  for (let poll = 0; poll < 6000 && !engine.hasExited(); poll++) {
    const stopped = trap.stopped()
    if (stopped !== null) return stopped
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`the git trap never stopped git (engine ${engine.hasExited() ? 'exited' : 'still running'}):\n${engine.output()}`)
}

/** SIGKILLs the engine process and, with it, its process group: the stopped git and the trap. */
async function killEngine(engine: EngineProcess) {
  process.kill(-engine.child.pid!, 'SIGKILL')
  await engine.exited
}

describe('git faults made by a real SIGKILL', () => {
  it('a commit stopped holding index.lock, killed with its engine: the next engine removes the lock and the loop commits', async () => {
    const model = join(root, 'm.json')
    await writeFile(model, JSON.stringify(FINISH))
    const lock = join(repo, '.git', 'worktrees', 'locked', 'index.lock')
    const trap = await trapFor('commit', [lock])
    const run = runWithTrap(trap, ['--goal', 'locked', '--name', 'locked', '--model', `scripted:${model}`, '--workspace', repo])
    const stopped = await untilTrapped(trap, run)
    expect(stopped.artefact).toBe(true)
    // the real git commit was under way: the lock is there, the branch has no commit yet
    expect(git(repo, 'rev-list', '--count', 'main..loop/locked')).toBe('0')
    await killEngine(run)
    expect(existsSync(lock)).toBe(true) // left by the kill, as by any SIGKILL of git
    // and the engine had saved the loop as committing: the next one commits it again
    const saved = JSON.parse(await readFile(join(data, 'loops', 'locked.json'), 'utf8')) as { status: string; snapshot: { value: unknown } }
    expect([saved.status, saved.snapshot.value]).toEqual(['running', { running: 'committing' }])
    const b = await engine()
    expect(await b.handle('locked')!.done).toMatchObject({ status: 'completed', reason: 'completed' })
    expect(existsSync(lock)).toBe(false)
    expect(git(repo, 'log', '--format=%s', '-1', 'loop/locked')).toBe('loopstate: locked completed (iteration 1, 1 audits)')
    expect(git(repo, 'show', 'loop/locked:a.txt')).toBe('a')
    expect(git(repo, 'rev-list', '--count', 'main..loop/locked')).toBe('1')
  }, 180_000)

  it('a git worktree add stopped in its checkout, killed with its engine: the next start of the name reclaims its locked worktree and its branch', async () => {
    const model = join(root, 'm.json')
    await writeFile(model, JSON.stringify(FINISH))
    const wt = worktreePath(repo, 'interrupted')
    const admin = join(repo, '.git', 'worktrees', 'interrupted')
    // stopped in the checkout (its index written), while git's "initializing" lock is still there
    const trap = await trapFor('worktree-add', [join(admin, 'locked'), join(admin, 'index')])
    const run = runWithTrap(trap, ['--goal', 'first', '--name', 'interrupted', '--model', `scripted:${model}`, '--workspace', repo])
    const stopped = await untilTrapped(trap, run)
    expect(stopped.artefact).toBe(true)
    await killEngine(run)
    // what the kill left: the note of the start, the branch, git's half-made worktree, and no record
    expect(existsSync(join(data, 'pending', 'interrupted.json'))).toBe(true)
    expect(git(repo, 'rev-parse', 'loop/interrupted')).toBe(git(repo, 'rev-parse', 'main'))
    expect(existsSync(join(admin, 'locked'))).toBe(true)
    expect(existsSync(join(wt, '.git'))).toBe(true)
    const e = await engine(false)
    expect(await e.list()).toEqual([])
    const h = await e.start({ goal: 'again' }, { name: 'interrupted', models: [`scripted:${model}`], workspace: repo })
    expect(await h.done).toMatchObject({ status: 'completed' })
    expect(await readFile(join(wt, 'a.txt'), 'utf8')).toBe('a\n')
    expect(existsSync(join(data, 'pending', 'interrupted.json'))).toBe(false)
    expect(existsSync(join(admin, 'locked'))).toBe(false)
    expect(git(repo, 'log', '--format=%s', '-1', 'loop/interrupted')).toBe('loopstate: interrupted completed (iteration 1, 1 audits)')
  }, 180_000)
})
