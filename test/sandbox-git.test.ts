/**
 * git cannot be turned against the user: a loop's coder that can run an allowed
 * interpreter (run_command with node) rewrites its worktree's git metadata, and a
 * repository whose config runs programs (filters, hooks, fsmonitor) is committed
 * to. Nothing runs, nothing lands outside `loop/<name>`, the user's repository
 * stays byte for byte, and a tampered worktree ends the loop `workspace_failed`.
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createEngine, type Engine } from '../services/engine.ts'
import { worktreePath } from '../services/git-workspace.ts'
import { treeState } from './helpers/attack.ts'
import { calls, text } from './helpers/loop-harness.ts'

let root: string
let repo: string
const engines: Engine[] = []

/** The test's own git: never runs the programs the repository's config names. */
const git = (cwd: string, ...args: string[]) =>
  execFileSync(
    'git',
    ['-c', 'user.name=t', '-c', 'user.email=t@localhost', '-c', 'core.fsmonitor=false', '-c', 'core.hooksPath=/dev/null', ...args],
    { cwd, encoding: 'utf8' },
  ).trim()

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'loopstate-sandbox-git-'))
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

/** What of the user's repository must not change: its config, refs, index and HEAD, and its checkout. */
async function userState() {
  const meta = await treeState(join(repo, '.git'))
  const kept = Object.fromEntries(
    Object.entries(meta).filter(([p]) => !p.startsWith('worktrees/') && !p.startsWith('objects/') && !p.startsWith('logs/refs/heads/loop/') && !p.startsWith('refs/heads/loop')),
  )
  const checkout = Object.fromEntries(Object.entries(await treeState(repo)).filter(([p]) => !p.startsWith('.git/')))
  return { kept, refs: git(repo, 'for-each-ref', '--format=%(refname) %(objectname)', 'refs/heads/main'), checkout }
}

/** Runs a goal loop on `repo` whose coder writes `evil.js`, runs it with node, and says it is done. */
async function runTampering(name: string, evil: string) {
  const model = join(root, `${name}.json`)
  await writeFile(
    model,
    JSON.stringify({
      coder: [
        calls([['write_file', { path: 'work.txt', content: 'work\n' }]]),
        calls([['write_file', { path: 'evil.js', content: evil }]]),
        calls([['run_command', { command: 'node evil.js' }]]),
        text('done'),
      ],
      auditor: [text('All good.')],
    }),
  )
  const engine = await createEngine({ dataDir: join(root, 'data'), resume: false, onProblem: () => {} })
  engines.push(engine)
  const h = await engine.start(
    { goal: 'tamper' },
    { name, models: [`scripted:${model}`], workspace: repo, runCommand: { enabled: true, allow: ['node'], timeoutMs: 30_000 } },
  )
  return h.done
}

describe('git cannot be turned against the user', () => {
  it("a worktree whose .git now points to the user's repository (gitdir: ../../project/.git) commits nothing anywhere", async () => {
    const before = await userState()
    const base = git(repo, 'rev-parse', 'HEAD')
    const out = await runTampering('redirect', "require('fs').writeFileSync('.git', 'gitdir: ../../project/.git\\n')\n")
    const wt = worktreePath(repo, 'redirect')
    expect(out).toMatchObject({ status: 'errored', reason: 'workspace_failed' })
    expect(out.error?.message).toBe(
      `workspace: ${wt}/.git was changed: it points to ../../project/.git, not ${join(repo, '.git', 'worktrees', 'redirect')}`,
    )
    expect(await userState()).toEqual(before)
    expect(git(repo, 'rev-parse', 'main')).toBe(base)
    expect(git(repo, 'rev-parse', 'loop/redirect')).toBe(base)
    expect(git(repo, 'status', '--porcelain')).toBe('')
  })

  it('a .git replaced by a git dir of the model whose config sets core.fsmonitor runs nothing', async () => {
    const pwned = join(root, 'PWNED-fsmonitor')
    const evil = [
      "const { execFileSync } = require('child_process')",
      "const fs = require('fs')",
      "execFileSync('git', ['init', '-q', '--bare', 'evilgit'])",
      `fs.appendFileSync('evilgit/config', '[core]\\n\\tfsmonitor = "touch ${pwned}"\\n\\tbare = false\\n')`,
      "fs.writeFileSync('.git', 'gitdir: evilgit\\n')",
      '',
    ].join('\n')
    const before = await userState()
    const out = await runTampering('monitor', evil)
    expect(out).toMatchObject({ status: 'errored', reason: 'workspace_failed' })
    expect(out.error?.message).toMatch(/^workspace: .*\/monitor\/\.git was changed: it points to evilgit, not /)
    expect(existsSync(pwned)).toBe(false)
    expect(await userState()).toEqual(before)
  })

  it('a worktree moved to another branch ends workspace_failed and commits nothing, on either branch', async () => {
    const base = git(repo, 'rev-parse', 'HEAD')
    const evil = "require('child_process').execFileSync('git', ['checkout', '-q', '-b', 'elsewhere'])\n"
    const out = await runTampering('moved', evil)
    expect(out).toMatchObject({ status: 'errored', reason: 'workspace_failed' })
    expect(out.error?.message).toBe(
      `workspace: the worktree ${worktreePath(repo, 'moved')} is on branch elsewhere, not on loop/moved; nothing was committed`,
    )
    expect(git(repo, 'rev-parse', 'elsewhere')).toBe(base)
    expect(git(repo, 'rev-parse', 'loop/moved')).toBe(base)
    expect(git(repo, 'rev-parse', 'main')).toBe(base)
  })

  it('a worktree tampered with while no engine ran ends workspace_failed when it is resumed', async () => {
    const model = join(root, 'hang.json')
    await writeFile(model, JSON.stringify({ coder: [{ type: 'hang' }] }))
    const dataDir = join(root, 'data')
    const a = await createEngine({ dataDir, resume: false, onProblem: () => {} })
    const h = await a.start({ goal: 'later' }, { name: 'later', models: [`scripted:${model}`], workspace: repo, stallTimeoutMs: 600_000 })
    await a.close()
    const wt = worktreePath(repo, 'later')
    await writeFile(join(wt, '.git'), 'gitdir: ../../project/.git\n')
    const b = await createEngine({ dataDir, onProblem: () => {} })
    engines.push(b)
    const out = await b.handle(h.name)!.done
    expect(out).toMatchObject({ status: 'errored', reason: 'workspace_failed' })
    expect(out.error?.message).toBe(
      `workspace: ${wt}/.git was changed: it points to ../../project/.git, not ${join(repo, '.git', 'worktrees', 'later')}`,
    )
  })

  it("runs none of the programs the repository's config names (filters, hooks, fsmonitor) while it makes the worktree and commits", async () => {
    const marker = (what: string) => join(root, `PWNED-${what}`)
    // the repository's own files use the filter, so checking out the worktree would run smudge
    await writeFile(join(repo, '.gitattributes'), '*.txt filter=evil\n')
    await writeFile(join(repo, 'old.txt'), 'old\n')
    git(repo, 'add', '-A')
    git(repo, 'commit', '-q', '-m', 'filtered files')
    git(repo, 'config', 'filter.evil.clean', `touch ${marker('clean')}; cat`)
    git(repo, 'config', 'filter.evil.smudge', `touch ${marker('smudge')}; cat`)
    git(repo, 'config', 'core.fsmonitor', `touch ${marker('fsmonitor')}`)
    for (const hook of ['post-checkout', 'pre-commit', 'post-commit', 'commit-msg']) {
      const file = join(repo, '.git', 'hooks', hook)
      await writeFile(file, `#!/bin/sh\ntouch ${marker(hook)}\n`)
      await chmod(file, 0o755)
    }
    const config = await readFile(join(repo, '.git', 'config'), 'utf8')

    const model = join(root, 'plain.json')
    await writeFile(
      model,
      JSON.stringify({
        coder: [calls([['write_file', { path: 'a.txt', content: 'raw content\n' }]]), text('done')],
        auditor: [text('All good.')],
      }),
    )
    const engine = await createEngine({ dataDir: join(root, 'data'), resume: false, onProblem: () => {} })
    engines.push(engine)
    const h = await engine.start({ goal: 'commit through filters' }, { name: 'filtered', models: [`scripted:${model}`], workspace: repo })
    expect(await h.done).toMatchObject({ status: 'completed', reason: 'completed' })
    for (const what of ['clean', 'smudge', 'fsmonitor', 'post-checkout', 'pre-commit', 'post-commit', 'commit-msg']) {
      expect(existsSync(marker(what)), what).toBe(false)
    }
    expect(git(repo, 'log', '--format=%s', '-1', 'loop/filtered')).toBe('loopstate: filtered completed (iteration 1, 1 audits)')
    expect(git(repo, 'show', 'loop/filtered:a.txt')).toBe('raw content')
    expect(await readFile(join(repo, '.git', 'config'), 'utf8')).toBe(config)
  })
})
