/**
 * Every git command loopstate runs goes through here (docs/architecture.md, "The
 * sandbox"). The model writes the files of a worktree, so nothing in it may steer
 * git: the git dir and work tree are pinned with `--git-dir`/`--work-tree` (never
 * discovered from a `.git` the model could have written), hooks and fsmonitor are
 * off, and so is every setting that makes git run a program (filters of the
 * drivers the config defines, signing, ssh, pagers, external diff, auto gc).
 * Identity variables are kept from the environment; other GIT_* variables (GIT_DIR,
 * GIT_CONFIG_*, GIT_EXEC_PATH …) are not passed.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

export class GitWorkspaceError extends Error {
  override readonly name = 'GitWorkspaceError'
}

/** Where a git command works: the git dir and the work tree, both absolute. */
export interface GitPin {
  gitDir: string
  workTree: string
}

/** Settings that would have git run a program, turned off for every command. */
const SAFE_CONFIG = [
  'core.hooksPath=/dev/null',
  'core.fsmonitor=false',
  'core.sshCommand=',
  'core.pager=cat',
  'core.editor=false',
  'core.askPass=',
  'credential.helper=',
  'diff.external=',
  'commit.gpgSign=false',
  'tag.gpgSign=false',
  'gc.auto=0',
  'maintenance.auto=false',
  'submodule.recurse=false',
  'status.submoduleSummary=false',
  'protocol.ext.allow=never',
].flatMap((kv) => ['-c', kv])

const KEPT_GIT_VARS = new Set([
  'GIT_AUTHOR_NAME',
  'GIT_AUTHOR_EMAIL',
  'GIT_AUTHOR_DATE',
  'GIT_COMMITTER_NAME',
  'GIT_COMMITTER_EMAIL',
  'GIT_COMMITTER_DATE',
])

let cachedEnv: NodeJS.ProcessEnv | null = null

/** The engine's environment without the GIT_* variables that redirect or configure git. */
function gitEnv(): NodeJS.ProcessEnv {
  if (cachedEnv) return cachedEnv
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('GIT_') && !KEPT_GIT_VARS.has(k)) continue
    env[k] = v
  }
  env.GIT_TERMINAL_PROMPT = '0'
  cachedEnv = env
  return env
}

/** Runs git with `args` (no pin: only for commands that read no work tree, e.g. `--version`). */
async function rawGit(args: string[], cwd: string, what: string, untrimmed = false): Promise<string> {
  try {
    const { stdout } = await run('git', args, { cwd, env: gitEnv(), maxBuffer: 16 * 1024 * 1024 })
    return untrimmed ? stdout : stdout.trim()
  } catch (err) {
    const e = err as { stderr?: string; message: string }
    const detail = (e.stderr || e.message).trim().split('\n').pop()
    throw new GitWorkspaceError(`git ${what} failed in ${cwd}: ${detail}`)
  }
}

/** `-c filter.<name>.clean= …` for every filter driver the config of `gitDir` defines: no filter runs. */
async function filtersOff(pin: GitPin): Promise<string[]> {
  const listed = await rawGit(
    ['--git-dir', pin.gitDir, ...SAFE_CONFIG, 'config', '--get-regexp', '^filter\\.'],
    pin.workTree,
    'config',
  ).catch(() => '') // exit 1: no such setting
  const names = new Set<string>()
  for (const line of listed.split('\n')) {
    const m = /^filter\.(.+)\.[^.\s]+(?:\s|$)/.exec(line)
    if (m) names.add(m[1]!)
  }
  return [...names].flatMap((n) => ['-c', `filter.${n}.clean=`, '-c', `filter.${n}.smudge=`, '-c', `filter.${n}.process=`, '-c', `filter.${n}.required=false`])
}

/** Runs git pinned to `pin` with every program-running setting off; returns its stdout, trimmed unless `untrimmed` (a patch, whose last line may end in spaces). */
export async function git(pin: GitPin, args: string[], options: { untrimmed?: boolean } = {}): Promise<string> {
  const pinned = ['--git-dir', pin.gitDir, '--work-tree', pin.workTree, ...SAFE_CONFIG, ...(await filtersOff(pin))]
  return rawGit([...pinned, ...args], pin.workTree, args[0] ?? '', options.untrimmed === true)
}

/** Like `git`, but resolves to null instead of throwing when git exits non-zero. */
export async function gitOrNull(pin: GitPin, args: string[]): Promise<string | null> {
  return git(pin, args).catch((err: unknown) => {
    if (err instanceof GitWorkspaceError) return null
    throw err
  })
}

/**
 * The top of the repository that holds `dir` and its git dir (the common one, for a
 * linked worktree), or null when `dir` is in none or git is missing. This is the
 * one discovery loopstate does: in the user's own directory, before a loop runs.
 */
export async function discoverRepo(dir: string): Promise<{ repo: string; commonDir: string } | null> {
  try {
    const out = await rawGit([...SAFE_CONFIG, 'rev-parse', '--path-format=absolute', '--show-toplevel', '--git-common-dir'], dir, 'rev-parse')
    const [repo, commonDir] = out.split('\n')
    return repo && commonDir ? { repo, commonDir } : null
  } catch {
    return null
  }
}
