/**
 * Git workspaces: a loop on a repository works in its own worktree on a branch
 * `loop/<name>`, never in the user's checkout; clean sections and the completed
 * loop are committed there. The worktree outlives the loop (the branch is the
 * deliverable) until `loopstate clean` removes it.
 */
import { execFile } from 'node:child_process'
import { cp, mkdir, readdir, stat } from 'node:fs/promises'
import { basename, dirname, join, relative } from 'node:path'
import { promisify } from 'node:util'
import type { GitWorkspace } from '../machines/loop.types.ts'

const run = promisify(execFile)

export class GitWorkspaceError extends Error {
  override readonly name = 'GitWorkspaceError'
}

async function git(cwd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run('git', args, { cwd, maxBuffer: 16 * 1024 * 1024 })
    return stdout.trim()
  } catch (err) {
    const e = err as { stderr?: string; message: string }
    const detail = (e.stderr || e.message).trim().split('\n').pop()
    throw new GitWorkspaceError(`git ${args[0]} failed in ${cwd}: ${detail}`)
  }
}

/** The top of the repository that holds `dir`, or null when it is not in one (or git is missing). */
export async function repoRoot(dir: string): Promise<string | null> {
  try {
    const { stdout } = await run('git', ['rev-parse', '--show-toplevel'], { cwd: dir })
    return stdout.trim() || null
  } catch {
    return null
  }
}

export const branchOf = (loopName: string) => `loop/${loopName}`

/** Where a loop's worktree goes: beside the repository, in `<repo>.loops/<name>`. */
export function worktreePath(repo: string, loopName: string): string {
  return join(dirname(repo), `${basename(repo)}.loops`, loopName)
}

/**
 * Creates the worktree of a new loop on a new branch from the repository's HEAD.
 * `dir` may be a subdirectory of the repository: the loop works in the same
 * subdirectory of the worktree.
 */
export async function createWorktree(dir: string, repo: string, loopName: string, from = 'HEAD'): Promise<GitWorkspace> {
  const branch = branchOf(loopName)
  const worktree = worktreePath(repo, loopName)
  if (await branchExists(repo, branch)) {
    throw new GitWorkspaceError(`workspace: branch ${branch} already exists in ${repo}; pick another --name`)
  }
  if (await pathExists(worktree)) throw new GitWorkspaceError(`workspace: ${worktree} already exists`)
  const base = await git(repo, ['rev-parse', '--verify', `${from}^{commit}`]).catch(() => {
    throw new GitWorkspaceError(`workspace: ${repo} has no commit to branch from; commit something first`)
  })
  await mkdir(dirname(worktree), { recursive: true })
  await git(repo, ['worktree', 'add', '-b', branch, worktree, base])
  return { repo, branch, worktree, base, subdir: relative(repo, dir) }
}

/** The directory the loop works in. */
export const workDir = (g: GitWorkspace) => join(g.worktree, g.subdir)

/**
 * Makes sure a restored loop's worktree is there: when it was deleted, the branch
 * is checked out into it again. Throws when the branch is gone too.
 */
export async function ensureWorktree(g: GitWorkspace): Promise<'present' | 'restored'> {
  if (await pathExists(join(g.worktree, '.git'))) return 'present'
  if (!(await pathExists(g.repo))) throw new GitWorkspaceError(`workspace: repository ${g.repo} is gone`)
  if (!(await branchExists(g.repo, g.branch))) {
    throw new GitWorkspaceError(`workspace: worktree ${g.worktree} and branch ${g.branch} are both gone`)
  }
  await git(g.repo, ['worktree', 'prune'])
  await mkdir(dirname(g.worktree), { recursive: true })
  await git(g.repo, ['worktree', 'add', g.worktree, g.branch])
  return 'restored'
}

/**
 * Commits everything in the worktree with `message`. Nothing to commit is not an
 * error (a step that changed nothing, or a commit already made before a crash).
 * Returns the new commit, or null.
 */
export async function commitAll(g: GitWorkspace, message: string): Promise<string | null> {
  await git(g.worktree, ['add', '-A'])
  const changed = await git(g.worktree, ['status', '--porcelain'])
  if (changed === '') return null
  const identity = (await git(g.worktree, ['config', '--get', 'user.email']).catch(() => ''))
    ? []
    : ['-c', 'user.name=loopstate', '-c', 'user.email=loopstate@localhost']
  await git(g.worktree, [...identity, 'commit', '-q', '--no-verify', '-m', message])
  return git(g.worktree, ['rev-parse', 'HEAD'])
}

/** Removes the worktree (the branch stays). */
export async function removeWorktree(g: GitWorkspace): Promise<boolean> {
  if (!(await pathExists(g.worktree))) {
    await git(g.repo, ['worktree', 'prune']).catch(() => '')
    return false
  }
  await git(g.repo, ['worktree', 'remove', '--force', g.worktree])
  return true
}

/** Removes a worktree this process just made and its branch (a fork that failed before it was saved). */
export async function discardWorktree(g: GitWorkspace): Promise<void> {
  await removeWorktree(g)
  await git(g.repo, ['branch', '-D', g.branch])
}

/**
 * A fork's workspace: a new worktree on `loop/<new>` from the original branch's
 * head, with the original worktree's uncommitted files copied over.
 */
export async function forkWorktree(g: GitWorkspace, newName: string): Promise<GitWorkspace> {
  const fork = await createWorktree(join(g.repo, g.subdir), g.repo, newName, g.branch)
  if (await pathExists(g.worktree)) {
    for (const entry of await readdir(g.worktree)) {
      if (entry === '.git') continue
      await cp(join(g.worktree, entry), join(fork.worktree, entry), { recursive: true, force: true })
    }
  }
  return fork
}

async function branchExists(repo: string, branch: string): Promise<boolean> {
  try {
    await run('git', ['rev-parse', '--verify', '--quiet', `refs/heads/${branch}`], { cwd: repo })
    return true
  } catch {
    return false
  }
}

/** Whether something is at `path`. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch {
    return false
  }
}
