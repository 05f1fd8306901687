/**
 * The workspace boundary: every path a model names goes through `resolveInWorkspace`
 * before any tool touches it (docs/architecture.md, "The sandbox"). A path is refused,
 * with a ToolError naming the rule, when it
 *
 * - is empty, absolute, holds a NUL byte, or climbs out with `..`;
 * - leads outside the workspace through a symlink (also a dangling one, which a
 *   write would follow);
 * - has a `.git` component, as given or once its symlinks are resolved: git's
 *   metadata is never read or written by the model (a written `.git` file or
 *   `.git/config` would make loopstate's own git run programs);
 * - lies in the engine's data dir, wherever that is (by default `./data` of the
 *   default workspace): other loops' records, inboxes and locks.
 *
 * What kind of file the path names (regular file, directory, FIFO…) is checked by
 * the tools on the opened file descriptor, where it cannot change underneath.
 */
import { lstat, readlink, realpath } from 'node:fs/promises'
import path from 'node:path'
import { ToolError } from './tool-types.ts'

/** What the tools of one loop may reach. */
export interface Boundary {
  /** Absolute path of the loop's workspace. */
  workspace: string
  /** The engine's data dir (refused wherever it lies), or null. */
  dataDir: string | null
}

/** Symlink hops followed while resolving a path (as Linux's MAXSYMLINKS). */
const MAX_LINK_HOPS = 40

export const GIT_RULE = "git's metadata (.git) is never read or written by the model"
export const DATA_RULE = "it is inside loopstate's data dir (other loops' records, inboxes and locks)"

export function errnoCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined
}

/** Whether `candidate` is `root` or below it (both absolute). */
export function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate)
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel))
}

/** Whether a path relative to the workspace has a `.git` component (any case: case-insensitive file systems). */
export function hasGitComponent(rel: string): boolean {
  return rel.split(/[\\/]+/).some((part) => part.toLowerCase() === '.git')
}

/**
 * Where `p` really is (or would be created): its realpath if it exists, else the
 * real location of its parent joined with its name. A dangling symlink is
 * followed by hand, since writing to it would create its target.
 */
async function realLocation(p: string, hops: number): Promise<string> {
  if (hops > MAX_LINK_HOPS) throw Object.assign(new Error('too many symbolic links'), { code: 'ELOOP' })
  try {
    return await realpath(p)
  } catch (err) {
    const code = errnoCode(err)
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err
  }
  const parent = path.dirname(p)
  if (parent === p) return p
  const realParent = await realLocation(parent, hops)
  const entry = await lstat(p).catch(() => null)
  if (entry?.isSymbolicLink()) {
    return realLocation(path.resolve(realParent, await readlink(p)), hops + 1)
  }
  return path.join(realParent, path.basename(p))
}

/** The real location of a directory that may not exist yet (the data dir before its first loop). */
export async function realDir(dir: string): Promise<string> {
  return realLocation(path.resolve(dir), 0)
}

/** A refusal naming the path as the model gave it and the rule it breaks. */
export function refused(relPath: string, rule: string): ToolError {
  return new ToolError(`path '${relPath}' is refused: ${rule}`)
}

/**
 * Resolves a model-given path inside the workspace and returns its real absolute
 * location, or throws ToolError for a path the boundary refuses (see the header).
 * `fsError` maps a file system error met on the way (ELOOP…) to a tool error.
 */
export async function resolveInWorkspace(
  boundary: Boundary,
  relPath: string,
  fsError: (err: unknown, relPath: string) => unknown = (err) => err,
): Promise<string> {
  if (relPath.trim() === '') throw new ToolError('path is empty; use a path relative to the workspace, e.g. src/index.ts')
  if (relPath.includes('\0')) throw new ToolError('path contains a NUL byte')
  if (path.isAbsolute(relPath)) {
    throw new ToolError(`path '${relPath}' is absolute; use a path relative to the workspace`)
  }
  const outside = new ToolError(`path '${relPath}' is outside the workspace`)
  const workspace = path.resolve(boundary.workspace)
  const lexical = path.resolve(workspace, relPath)
  if (!isInside(workspace, lexical)) throw outside
  if (hasGitComponent(path.relative(workspace, lexical))) throw refused(relPath, GIT_RULE)
  if (boundary.dataDir !== null && isInside(path.resolve(boundary.dataDir), lexical)) throw refused(relPath, DATA_RULE)

  let root: string
  try {
    root = await realpath(workspace)
  } catch (err) {
    throw errnoCode(err) === 'ENOENT' ? new ToolError('the workspace directory does not exist') : err
  }
  let real: string
  try {
    real = await realLocation(lexical, 0)
  } catch (err) {
    throw fsError(err, relPath)
  }
  if (!isInside(root, real)) throw outside
  if (hasGitComponent(path.relative(root, real))) throw refused(relPath, GIT_RULE)
  if (boundary.dataDir !== null && isInside(await realDir(boundary.dataDir), real)) throw refused(relPath, DATA_RULE)
  return real
}
