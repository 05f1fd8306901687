/**
 * Git workspaces: a loop on a repository works in its own worktree on a branch
 * `loop/<name>`, never in the user's checkout; clean sections and the completed
 * loop are committed there. The worktree outlives the loop (the branch is the
 * deliverable) until `loopstate clean` removes it.
 *
 * The model writes the worktree's files, so every git command is pinned to the git
 * dirs loopstate made (services/safe-git.ts), and before a commit the worktree is
 * checked to be still the one loopstate made: its `.git` file points to its git dir,
 * whose HEAD is `loop/<name>`. Otherwise nothing is committed and the loop ends
 * `workspace_failed` with what changed.
 */
import { cp, lstat, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises'
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path'
import type { GitWorkspace } from '../machines/loop.types.ts'
import { discoverRepo, git, gitOrNull, GitWorkspaceError, type GitPin } from './safe-git.ts'

export { GitWorkspaceError } from './safe-git.ts'

/** The top of the repository that holds `dir`, or null when it is not in one (or git is missing). */
export async function repoRoot(dir: string): Promise<string | null> {
  return (await discoverRepo(dir))?.repo ?? null
}

export const branchOf = (loopName: string) => `loop/${loopName}`

/** Where a loop's worktree goes: beside the repository, in `<repo>.loops/<name>`. */
export function worktreePath(repo: string, loopName: string): string {
  return join(dirname(repo), `${basename(repo)}.loops`, loopName)
}

/** The repository's own checkout, pinned (for worktree and branch commands). */
const repoPin = (repo: string, commonDir: string): GitPin => ({ gitDir: commonDir, workTree: repo })

/** The repository's common git dir: recorded, or (records before 0.2) asked of the user's checkout. */
async function commonDirOf(g: GitWorkspace): Promise<string> {
  if (g.commonDir) return g.commonDir
  const found = await discoverRepo(g.repo)
  if (found === null) throw new GitWorkspaceError(`workspace: ${g.repo} is no longer a git repository`)
  return found.commonDir
}

/**
 * The git dir the repository keeps for `worktree`: the entry of `<common>/worktrees/`
 * whose `gitdir` file names `<worktree>/.git`. Read from the repository's own
 * metadata, never from the worktree (which the model writes). Null when none does.
 */
async function worktreeGitDir(commonDir: string, worktree: string): Promise<string | null> {
  const admin = join(commonDir, 'worktrees')
  const entries = await readdir(admin).catch(() => [] as string[])
  for (const entry of entries) {
    const pointer = await readFile(join(admin, entry, 'gitdir'), 'utf8').catch(() => null)
    if (pointer !== null && resolve(admin, entry, pointer.trim()) === join(worktree, '.git')) return join(admin, entry)
  }
  return null
}

/**
 * Creates the worktree of a new loop on a new branch from the repository's HEAD.
 * `dir` may be a subdirectory of the repository: the loop works in the same
 * subdirectory of the worktree.
 */
export async function createWorktree(
  dir: string,
  repo: string,
  loopName: string,
  from = 'HEAD',
  opts: { reclaim?: boolean } = {},
): Promise<GitWorkspace> {
  const found = await discoverRepo(repo)
  if (found === null) throw new GitWorkspaceError(`workspace: ${repo} is not a git repository`)
  const pin = repoPin(repo, found.commonDir)
  const branch = branchOf(loopName)
  const worktree = worktreePath(repo, loopName)
  if (await branchExists(pin, branch)) {
    if (!opts.reclaim) throw new GitWorkspaceError(`workspace: branch ${branch} already exists in ${repo}; pick another --name`)
    await reclaimLeftover(pin, found.commonDir, branch, worktree)
  }
  if (await pathExists(worktree)) throw new GitWorkspaceError(`workspace: ${worktree} already exists`)
  const base = await git(pin, ['rev-parse', '--verify', `${from}^{commit}`]).catch(() => {
    throw new GitWorkspaceError(`workspace: ${repo} has no commit to branch from; commit something first`)
  })
  await mkdir(dirname(worktree), { recursive: true })
  await git(pin, ['worktree', 'add', '-b', branch, worktree, base])
  return { repo, branch, worktree, base, subdir: relative(repo, dir), commonDir: found.commonDir }
}

/**
 * The branch `loop/<name>` (and worktree) of a start that was killed during
 * `git worktree add`, before its record was saved (the caller knows from its data
 * dir, and holds the name's claim). It is removed when that loses nothing: the
 * branch holds no commit that HEAD lacks and the worktree (if any) has no change.
 * Otherwise the start is refused with what to do.
 */
async function reclaimLeftover(pin: GitPin, commonDir: string, branch: string, worktree: string): Promise<void> {
  const refuse = (why: string) =>
    new GitWorkspaceError(
      `workspace: branch ${branch} already exists in ${pin.workTree} (${why}); pick another --name, ` +
        `or remove it: git worktree remove ${worktree}; git branch -D ${branch}`,
    )
  const own = await gitOrNull(pin, ['rev-list', '--count', `HEAD..refs/heads/${branch}`])
  if (own !== '0') throw refuse('it has commits of its own')
  const gitDir = await worktreeGitDir(commonDir, worktree)
  if (gitDir !== null) {
    const changes = await gitOrNull({ gitDir, workTree: worktree }, ['status', '--porcelain', '--ignore-submodules=all'])
    if (changes !== '') throw refuse('its worktree has changes')
    // Twice: `git worktree add` locks the worktree ("initializing") until its checkout is done,
    // and a kill before that leaves the lock, which one --force does not override.
    await git(pin, ['worktree', 'remove', '--force', '--force', worktree])
  } else if (await pathExists(worktree)) {
    throw refuse(`${worktree} is not its worktree`)
  }
  await gitOrNull(pin, ['worktree', 'prune'])
  await git(pin, ['branch', '-D', branch])
}

/** The directory the loop works in. */
export const workDir = (g: GitWorkspace) => join(g.worktree, g.subdir)

/**
 * Checks that the worktree is still the one loopstate made and returns the pin of
 * its git commands: its `.git` is a file pointing to its git dir in the repository,
 * and that git dir's HEAD is the loop's branch. Throws GitWorkspaceError naming
 * what changed.
 */
export async function verifyWorktree(g: GitWorkspace): Promise<GitPin> {
  const commonDir = await commonDirOf(g)
  const gitDir = await worktreeGitDir(commonDir, g.worktree)
  if (gitDir === null) {
    throw new GitWorkspaceError(`workspace: ${commonDir} no longer lists the worktree ${g.worktree}`)
  }
  const dotGit = join(g.worktree, '.git')
  const entry = await lstat(dotGit).catch(() => null)
  if (entry === null) throw new GitWorkspaceError(`workspace: ${dotGit} is gone`)
  if (!entry.isFile()) {
    throw new GitWorkspaceError(`workspace: ${dotGit} was replaced (it is no longer the file loopstate made, pointing to ${gitDir})`)
  }
  const pointer = (await readFile(dotGit, 'utf8')).trim()
  const target = pointer.startsWith('gitdir:') ? pointer.slice('gitdir:'.length).trim() : null
  const resolved = target === null ? null : isAbsolute(target) ? target : resolve(g.worktree, target)
  if (resolved !== gitDir) {
    throw new GitWorkspaceError(`workspace: ${dotGit} was changed: it points to ${target ?? `'${pointer.slice(0, 80)}'`}, not ${gitDir}`)
  }
  const head = (await readFile(join(gitDir, 'HEAD'), 'utf8').catch(() => '')).trim()
  if (head !== `ref: refs/heads/${g.branch}`) {
    const now = head.startsWith('ref: refs/heads/') ? `on branch ${head.slice('ref: refs/heads/'.length)}` : `at ${head || 'nothing'}`
    throw new GitWorkspaceError(`workspace: the worktree ${g.worktree} is ${now}, not on ${g.branch}; nothing was committed`)
  }
  return { gitDir, workTree: g.worktree }
}

/**
 * Makes sure a restored loop's worktree is there: when it was deleted, the branch
 * is checked out into it again. Throws when the branch is gone too, or when the
 * worktree is no longer the one loopstate made (see verifyWorktree).
 */
export async function ensureWorktree(g: GitWorkspace): Promise<'present' | 'restored'> {
  if (await pathExists(g.worktree)) {
    const pin = await verifyWorktree(g)
    // The caller holds the loop's claim: no other loopstate works here, so a lock is
    // what a git command killed with its engine left (it would fail every commit).
    await rm(join(pin.gitDir, 'index.lock'), { force: true })
    return 'present'
  }
  if (!(await pathExists(g.repo))) throw new GitWorkspaceError(`workspace: repository ${g.repo} is gone`)
  const pin = repoPin(g.repo, await commonDirOf(g))
  if (!(await branchExists(pin, g.branch))) {
    throw new GitWorkspaceError(`workspace: worktree ${g.worktree} and branch ${g.branch} are both gone`)
  }
  await git(pin, ['worktree', 'prune'])
  await mkdir(dirname(g.worktree), { recursive: true })
  await git(pin, ['worktree', 'add', g.worktree, g.branch])
  return 'restored'
}

/**
 * Commits everything in the worktree with `message`, on the loop's branch only.
 * Nothing to commit is not an error (a step that changed nothing, or a commit
 * already made before a crash). Returns the new commit, or null.
 */
export async function commitAll(g: GitWorkspace, message: string): Promise<string | null> {
  const pin = await verifyWorktree(g)
  await git(pin, ['add', '-A'])
  const changed = await git(pin, ['status', '--porcelain', '--ignore-submodules=all'])
  if (changed === '') return null
  const identity = (await gitOrNull(pin, ['config', '--get', 'user.email']))
    ? []
    : ['-c', 'user.name=loopstate', '-c', 'user.email=loopstate@localhost']
  await git(pin, [...identity, 'commit', '-q', '--no-verify', '-m', message])
  return git(pin, ['rev-parse', 'HEAD'])
}

/** Removes the worktree (the branch stays). */
export async function removeWorktree(g: GitWorkspace): Promise<boolean> {
  const pin = repoPin(g.repo, await commonDirOf(g))
  if (!(await pathExists(g.worktree))) {
    await gitOrNull(pin, ['worktree', 'prune'])
    return false
  }
  await git(pin, ['worktree', 'remove', '--force', g.worktree])
  return true
}

/** Removes a worktree this process just made and its branch (a fork that failed before it was saved). */
export async function discardWorktree(g: GitWorkspace): Promise<void> {
  await removeWorktree(g)
  await git(repoPin(g.repo, await commonDirOf(g)), ['branch', '-D', g.branch])
}

/**
 * A fork's workspace: a new worktree on `loop/<new>` from the original branch's
 * head, with the original worktree's uncommitted files copied over.
 */
export async function forkWorktree(g: GitWorkspace, newName: string): Promise<GitWorkspace> {
  const fork = await createWorktree(join(g.repo, g.subdir), g.repo, newName, g.branch)
  if (await pathExists(g.worktree)) {
    for (const entry of await readdir(g.worktree)) {
      if (entry.toLowerCase() === '.git') continue
      await cp(join(g.worktree, entry), join(fork.worktree, entry), {
        recursive: true,
        force: true,
        // git's metadata anywhere in the tree stays behind (as the model's tools never touch it)
        filter: (src) => basename(src).toLowerCase() !== '.git',
      })
    }
  }
  return fork
}

async function branchExists(pin: GitPin, branch: string): Promise<boolean> {
  return (await gitOrNull(pin, ['rev-parse', '--verify', '--quiet', `refs/heads/${branch}`])) !== null
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
