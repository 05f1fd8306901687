/**
 * The no-progress stop on a git loop (machines/progress.ts): the digest is of the
 * worktree's content, never of its `.git`, so rewriting the same file in the loop's
 * worktree is no change, and a real edit is.
 */
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createEngine, type Engine } from '../services/engine.ts'
import { calls, text } from './helpers/loop-harness.ts'

let root: string
let repo: string
let engine: Engine

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@localhost', ...args], { cwd, encoding: 'utf8' }).trim()

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'loopstate-noprogress-git-'))
  repo = join(root, 'project')
  await mkdir(repo)
  git(repo, 'init', '-q', '-b', 'main')
  await writeFile(join(repo, 'a.js'), 'wrong\n')
  git(repo, 'add', '-A')
  git(repo, 'commit', '-q', '-m', 'initial')
  engine = await createEngine({ dataDir: join(root, 'data'), onProblem: () => {} })
})

afterEach(async () => {
  await engine.close()
  await rm(root, { recursive: true, force: true })
})

const bug = calls([['report_finding', { file: 'a.js', line: 1, severity: 'bug', message: 'wrong' }]])

describe('no progress in a git worktree', () => {
  it('the same bytes rewritten every pass end the loop no_progress; the worktree and its branch are the loop\'s', async () => {
    const model = join(root, 'm.json')
    await writeFile(
      model,
      JSON.stringify({
        coder: Array.from({ length: 6 }, () => [calls([['write_file', { path: 'a.js', content: 'wrong\n' }]]), text('rewrote a.js')]).flat(),
        auditor: Array.from({ length: 6 }, () => [bug, text('Still wrong.')]).flat(),
      }),
    )
    const h = await engine.start({ goal: 'fix a.js' }, { name: 'stuck', models: [`scripted:${model}`], workspace: repo })
    expect(await h.done).toMatchObject({ status: 'errored', reason: 'no_progress', iteration: 4 })
    const detail = (await engine.get('stuck'))!
    expect(detail.workspace).not.toBe(repo) // it worked in its worktree
    expect(detail.error?.message).toMatch(/^no progress: 3 rework passes in a row \(iterations 2–4\)/)
  })
})
