/** What the engine does around its loops: their tasks, workspaces and checkpoints (pure helpers and file steps). */
import { mkdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Owner } from '../../adapters/claims.ts'
import { dataDirLayout } from '../../adapters/data-dir.ts'
import type { LoopInput } from '../../machines/loop.types.ts'
import { pathExists } from '../git-workspace.ts'
import { goalTask, parsePlan } from '../plan.ts'
import { isInside, realDir } from '../sandbox.ts'
import type { PersistedLoop } from '../views.ts'
import { EngineError, type LoopTaskSpec } from './types.ts'

/** The snapshot with its running time brought up to now (a restore does not count the time it was stopped). */
export function checkpointWall(snapshot: PersistedLoop): PersistedLoop {
  const c = snapshot.context
  if (c.runningSince === null) return snapshot
  const now = Date.now()
  return { ...snapshot, context: { ...c, wallMs: c.wallMs + Math.max(0, now - c.runningSince), runningSince: now } }
}

/** `running.coding.watching` → `running.coding`; `paused` → `paused`. */
export function phaseState(state: string): string {
  const first = state.indexOf('.')
  if (first < 0) return state
  const second = state.indexOf('.', first + 1)
  return second < 0 ? state : state.slice(0, second)
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

/** `process 1234`, or `another process` when the claim is being written. */
export function ownerText(owner: Owner): string {
  return owner.pid > 0 ? `process ${owner.pid}` : 'another process'
}

/** `pending/<name>.json`: a git worktree a start is about to make for a loop not saved yet. */
function pendingFile(dataDir: string, name: string): string {
  return dataDirLayout(dataDir).pending(name)
}

/** Notes the intent; returns whether an earlier start of this name left one (it was killed before its record). */
export async function notePendingWorktree(dataDir: string | null, name: string, repo: string): Promise<boolean> {
  if (dataDir === null) return false
  const file = pendingFile(dataDir, name)
  const left = await pathExists(file)
  await mkdir(dirname(file), { recursive: true })
  await writeFile(file, JSON.stringify({ repo, at: new Date().toISOString() }))
  return left
}

/** The worktree's loop is saved (or its start undone): the note goes. */
export async function donePendingWorktree(dataDir: string | null, name: string): Promise<void> {
  if (dataDir !== null) await rm(pendingFile(dataDir, name), { force: true })
}
