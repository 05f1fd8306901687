/**
 * Faults of loopstate's own git commands heal: what a SIGKILL of the engine leaves
 * in the middle of a commit (the worktree's `index.lock`) or of `git worktree add`
 * (a branch and worktree with no record, noted in `data/pending/`), laid out on
 * disk exactly as git leaves it, and then met by the next engine.
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createEngine, type Engine } from '../services/engine.ts'
import { worktreePath } from '../services/git-workspace.ts'
import { calls, hang, text } from './helpers/loop-harness.ts'

let root: string
let repo: string
let data: string
const engines: Engine[] = []

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
