/**
 * Where a loop works (docs/architecture.md "Workspaces"): a plain directory, a git
 * worktree on `loop/<name>` made for it, or a fork's copy of another loop's. Each
 * step that makes something returns how to undo it, so a start or fork that fails
 * before its record is saved leaves nothing behind (nothing of the original is
 * touched). A worktree's making is noted in the data dir first (`pending/<name>.json`),
 * so that what a start killed meanwhile leaves is known to be ours to reclaim.
 */
import { cp, mkdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { dataDirLayout } from '../../adapters/data-dir.ts'
import type { GitWorkspace, LoopInput } from '../../machines/loop.types.ts'
import {
  createWorktree,
  discardWorktree,
  ensureWorktree,
  forkWorktree,
  pathExists,
  removeWorktree,
  repoRoot,
  workDir,
} from '../git-workspace.ts'
import { goalTask, parsePlan } from '../plan.ts'
import { isInside, realDir } from '../sandbox.ts'
import { EngineError, type LoopTaskSpec } from './types.ts'

/** A workspace made for a loop not saved yet. */
export interface MadeWorkspace {
  /** The directory the coder works in. */
  workspace: string
  git: GitWorkspace | null
  /** The loop's record is saved: the workspace is the loop's now (its note goes). */
  keep(): Promise<void>
  /** The loop was not saved: what was made goes. */
  undo(): Promise<void>
}

export async function readTask(spec: LoopTaskSpec): Promise<Pick<LoopInput, 'task' | 'sections'>> {
  if ('goal' in spec) return goalTask(spec.goal)
  if ('plan' in spec) return parsePlan(spec.plan, spec.source ?? 'plan')
  let text: string
  try {
    text = await readFile(spec.planFile, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new EngineError(code === 'ENOENT' ? `plan: ${spec.planFile}: file not found` : `plan: ${spec.planFile}: ${code}`)
  }
  return parsePlan(text, spec.planFile)
}

/** Refuses a workspace that is missing, not a directory, or inside the data dir. */
export async function checkWorkspace(dir: string, dataDir: string | null): Promise<void> {
  let s
  try {
    s = await stat(dir)
  } catch {
    throw new EngineError(`workspace: ${dir} does not exist`)
  }
  if (!s.isDirectory()) throw new EngineError(`workspace: ${dir} is not a directory`)
  if (dataDir !== null && isInside(await realDir(dataDir), await realpath(dir))) {
    throw new EngineError(`workspace: ${dir} is inside the data dir ${dataDir}; the model would reach every loop's records`)
  }
}

/**
 * The workspace of a new loop `name` in `dir`: a worktree of its repository on
 * `loop/<name>` (unless `inPlace`), else `dir` itself.
 */
export async function makeWorkspace(dir: string, name: string, inPlace: boolean, dataDir: string | null): Promise<MadeWorkspace> {
  const repo = inPlace ? null : await repoRoot(dir)
  if (repo === null) return { workspace: dir, git: null, keep: async () => {}, undo: async () => {} }
  const leftover = await notePending(dataDir, name, repo)
  let git: GitWorkspace
  try {
    git = await createWorktree(dir, repo, name, 'HEAD', { reclaim: leftover })
  } catch (err) {
    await donePending(dataDir, name).catch(() => {})
    throw err
  }
  return {
    workspace: workDir(git),
    git,
    keep: () => donePending(dataDir, name),
    undo: async () => {
      await discardWorktree(git).catch(() => {})
      await donePending(dataDir, name).catch(() => {})
    },
  }
}

/**
 * The workspace of a fork `newName` of a loop that worked in `original`: a git
 * loop's fork gets its own worktree and branch with the original's uncommitted
 * files; otherwise (or when `to` is given) a copy of the directory, beside it by
 * default, leaving the data dir out (the fork's model would read its copy).
 */
export async function forkWorkspace(
  original: { workspace: string; git: GitWorkspace | null },
  newName: string,
  to: string | undefined,
  dataDir: string | null,
): Promise<MadeWorkspace> {
  if (original.git !== null && to === undefined) {
    const git = await forkWorktree(original.git, newName)
    return { workspace: workDir(git), git, keep: async () => {}, undo: () => discardWorktree(git).catch(() => {}) }
  }
  const workspace = resolve(to ?? join(dirname(original.workspace), `${basename(original.workspace)}.${newName}`))
  const exists = () => new EngineError(`fork: workspace ${workspace} already exists`)
  if (await pathExists(workspace)) throw exists()
  // Claimed with a mkdir that fails if it exists: only a directory made here is removed on failure.
  await mkdir(dirname(workspace), { recursive: true })
  await mkdir(workspace).catch((err: unknown) => {
    throw (err as NodeJS.ErrnoException).code === 'EEXIST' ? exists() : err
  })
  const undo = () => rm(workspace, { recursive: true, force: true }).catch(() => {})
  const skip = dataDir === null ? null : resolve(dataDir)
  try {
    await cp(original.workspace, workspace, {
      recursive: true,
      errorOnExist: true,
      force: false,
      filter: (src) => skip === null || resolve(src) !== skip,
    })
  } catch (err) {
    await undo()
    throw err
  }
  return { workspace, git: null, keep: async () => {}, undo }
}

/** Why a restored git loop's worktree cannot be had (it is checked out again when only deleted), or null. */
export async function worktreeProblem(git: GitWorkspace | null): Promise<string | null> {
  if (git === null) return null
  return ensureWorktree(git).then(
    () => null,
    (err: unknown) => (err instanceof Error ? err.message : String(err)),
  )
}

/** Removes an ended loop's worktree (its branch stays); false when it was gone already. */
export function cleanWorktree(git: GitWorkspace): Promise<boolean> {
  return removeWorktree(git)
}

/** Notes the intent; returns whether an earlier start of this name left one (it was killed before its record). */
async function notePending(dataDir: string | null, name: string, repo: string): Promise<boolean> {
  if (dataDir === null) return false
  const file = dataDirLayout(dataDir).pending(name)
  const left = await pathExists(file)
  await mkdir(dirname(file), { recursive: true })
  await writeFile(file, JSON.stringify({ repo, at: new Date().toISOString() }))
  return left
}

async function donePending(dataDir: string | null, name: string): Promise<void> {
  if (dataDir !== null) await rm(dataDirLayout(dataDir).pending(name), { force: true })
}
