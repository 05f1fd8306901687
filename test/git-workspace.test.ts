import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createEngine, type Engine } from '../services/engine.ts'
import { worktreePath } from '../services/git-workspace.ts'
import { calls, hang, report, resolveF, summary, text } from './helpers/loop-harness.ts'

let root: string
let repo: string
const engines: Engine[] = []

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@localhost', ...args], { cwd, encoding: 'utf8' }).trim()

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'loopstate-git-'))
  repo = join(root, 'project')
  await mkdir(repo)
  git(repo, 'init', '-q', '-b', 'main')
  await writeFile(join(repo, 'README.md'), '# project\n')
  git(repo, 'add', '-A')
  git(repo, 'commit', '-q', '-m', 'initial')
})

afterEach(async () => {
  for (const e of engines.splice(0)) await e.close()
  await rm(root, { recursive: true, force: true })
})

async function engine() {
  const e = await createEngine({ dataDir: join(root, 'data'), onProblem: () => {} })
  engines.push(e)
  return e
}

async function scenario(json: unknown): Promise<string> {
  const path = join(root, `s${Math.random().toString(36).slice(2)}.json`)
  await writeFile(path, JSON.stringify(json))
  return `scripted:${path}`
}

const PLAN = '# Two files\n\nshared\n<!-- section -->\n## First\nwrite one.txt\n<!-- section -->\n## Second\nwrite two.txt'

describe('git workspaces', () => {
  it('works on its own branch in a worktree, commits each clean section and the completed loop, and leaves the checkout alone', async () => {
    const head = git(repo, 'rev-parse', 'HEAD')
    const model = await scenario({
      coder: [
        calls([['write_file', { path: 'one.txt', content: '1' }]]),
        text('one'),
        calls([['write_file', { path: 'two.txt', content: '2' }]]),
        text('two'),
        calls([['write_file', { path: 'fix.txt', content: 'fixed' }]]),
        text('fixed'),
      ],
      auditor: [summary('one'), summary('two'), report('two.txt', 'wrong'), text('dirty'), resolveF('F1'), text('clean')],
    })
    const e = await engine()
    const h = await e.start({ plan: PLAN }, { models: [model], workspace: repo })
    expect(await h.done).toMatchObject({ status: 'completed', reason: 'completed', iteration: 3 })
    const wt = worktreePath(repo, 'two-files')
    expect((await e.get('two-files'))!.workspace).toBe(wt)
    expect(await readFile(join(wt, 'two.txt'), 'utf8')).toBe('2')
    const log = git(repo, 'log', '--format=%s', 'loop/two-files').split('\n')
    expect(log).toEqual([
      'loopstate: two-files completed (iteration 3, 4 audits)',
      'loopstate: two-files section 2/2 "Second" clean (iteration 2)',
      'loopstate: two-files section 1/2 "First" clean (iteration 1)',
      'initial',
    ])
    expect(git(repo, 'show', '--name-only', '--format=', 'loop/two-files')).toBe('fix.txt')
    // the user's checkout: same HEAD, same branch, nothing new
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(head)
    expect(git(repo, 'branch', '--show-current')).toBe('main')
    expect(git(repo, 'status', '--porcelain')).toBe('')
    expect(existsSync(join(repo, 'one.txt'))).toBe(false)
    // the worktree stays after the loop (the branch is the deliverable) until clean
    expect(existsSync(wt)).toBe(true)
    expect(await e.clean('two-files')).toBe(true)
    expect(existsSync(wt)).toBe(false)
    expect(git(repo, 'rev-parse', '--verify', 'loop/two-files')).toMatch(/^[0-9a-f]{40}$/)
  })

  it('works in the directory itself with inPlace, and in a plain directory that is no repository', async () => {
    const model = await scenario({ coder: [calls([['write_file', { path: 'here.txt', content: 'x' }]]), text('done')], auditor: [text('ok')] })
    const e = await engine()
    const inPlace = await e.start({ goal: 'in place' }, { models: [model], workspace: repo, inPlace: true })
    await inPlace.done
    expect(await readFile(join(repo, 'here.txt'), 'utf8')).toBe('x')
    expect(git(repo, 'branch', '--list', 'loop/*')).toBe('')
    const plainDir = join(root, 'plain')
    await mkdir(plainDir)
    const plain = await e.start({ goal: 'plain dir' }, { models: [model], workspace: plainDir })
    await plain.done
    expect(await readFile(join(plainDir, 'here.txt'), 'utf8')).toBe('x')
    expect((await e.get('plain-dir'))!.workspace).toBe(plainDir)
    await expect(e.clean('plain-dir')).rejects.toThrow('clean: loop plain-dir has no git worktree')
  })

  it('refuses a name whose branch exists, saving nothing', async () => {
    git(repo, 'branch', 'loop/taken')
    const model = await scenario({ coder: [text('x')] })
    const e = await engine()
    await expect(e.start({ goal: 'x' }, { models: [model], workspace: repo, name: 'taken' })).rejects.toThrow(
      `workspace: branch loop/taken already exists in ${repo}; pick another --name`,
    )
    expect(await e.list()).toEqual([])
  })

  it('checks the branch out again on resume when the worktree was deleted', async () => {
    const model = await scenario({ coder: [hang(), hang()] })
    const a = await engine()
    const h = await a.start({ goal: 'survive' }, { models: [model], workspace: repo, stallTimeoutMs: 600_000 })
    await new Promise((r) => setTimeout(r, 50))
    await a.close()
    const wt = worktreePath(repo, h.name)
    await rm(wt, { recursive: true, force: true })
    const b = await engine()
    const again = b.handle(h.name)!
    expect(again.view().status).toBe('running')
    expect(existsSync(join(wt, '.git'))).toBe(true)
    await expect(b.clean(h.name)).rejects.toThrow('clean: loop survive has not ended (running); cancel it first')
    again.cancel()
    expect(await again.done).toMatchObject({ status: 'cancelled' })
  })

  it('ends with workspace_failed when the worktree and its branch are gone', async () => {
    const model = await scenario({ coder: [hang()] })
    const a = await engine()
    const h = await a.start({ goal: 'doomed' }, { models: [model], workspace: repo, stallTimeoutMs: 600_000 })
    await new Promise((r) => setTimeout(r, 50))
    await a.close()
    const wt = worktreePath(repo, h.name)
    await rm(wt, { recursive: true, force: true })
    git(repo, 'worktree', 'prune')
    git(repo, 'branch', '-D', 'loop/doomed')
    const b = await engine()
    const out = await b.handle(h.name)!.done
    expect(out).toMatchObject({ status: 'errored', reason: 'workspace_failed' })
    expect(out.error?.message).toBe(`workspace: worktree ${wt} and branch loop/doomed are both gone`)
  })

  it('forks a git loop into its own worktree and branch', async () => {
    const model = await scenario({
      coder: [calls([['write_file', { path: 'a.txt', content: 'a' }]]), text('a'), text('again')],
      auditor: [report('a.txt', 'meh'), text('dirty'), resolveF('F1'), text('clean')],
    })
    const e = await engine()
    const h = await e.start({ goal: 'forkable' }, { models: [model], workspace: repo })
    await h.done
    const at = (await e.history(h.name)).find((x) => x.to === 'running.auditing.watching')!
    const fork = await e.fork(h.name, { at: at.seq, name: 'forked' })
    expect(await fork.done).toMatchObject({ status: 'completed' })
    const wt = worktreePath(repo, 'forked')
    expect((await e.get('forked'))!.workspace).toBe(wt)
    expect(await readFile(join(wt, 'a.txt'), 'utf8')).toBe('a')
    // the fork replayed the same writes onto a copy of the finished tree: nothing new to commit
    expect(git(repo, 'rev-parse', 'loop/forked')).toBe(git(repo, 'rev-parse', 'loop/forkable'))
    expect(git(repo, 'worktree', 'list')).toContain(wt)
    expect(git(repo, 'status', '--porcelain')).toBe('')
  })

  it('removes the worktree and branch of a fork that fails before it is saved', async () => {
    const model = await scenario({ coder: [text('a')], auditor: [text('clean')] })
    const e = await engine()
    const h = await e.start({ goal: 'forkable' }, { models: [model], workspace: repo })
    await h.done
    const at = (await e.history(h.name)).find((x) => x.to === 'running.auditing.watching')!
    const put = e.store.put.bind(e.store)
    e.store.put = (record) => (record.name === 'forked' ? Promise.reject(new Error('disk full')) : put(record))
    await expect(e.fork(h.name, { at: at.seq, name: 'forked' })).rejects.toThrow('disk full')
    expect(existsSync(worktreePath(repo, 'forked'))).toBe(false)
    expect(git(repo, 'branch', '--list', 'loop/forked')).toBe('')
    expect(git(repo, 'worktree', 'list')).not.toContain(worktreePath(repo, 'forked'))
    e.store.put = put
    const fork = await e.fork(h.name, { at: at.seq, name: 'forked' })
    expect(await fork.done).toMatchObject({ name: 'forked', status: 'completed' })
  })
})
