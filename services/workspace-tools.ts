/**
 * The coder's file tools (`read_file`, `write_file`, `edit_file`, `list_files`),
 * confined to the loop's workspace, plus the argument helpers every tool uses.
 */
import { lstat, mkdir, readFile, readdir, readlink, realpath, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { ToolError, type Tool } from './tool-types.ts'

/** Largest text `read_file` returns in one call, bytes. */
export const READ_CAP_BYTES = 100 * 1024
/** Most entries `list_files` returns. */
export const LIST_CAP_ENTRIES = 1000
/** Directories `list_files` never shows or enters. */
const SKIPPED_DIRS = new Set(['.git', 'node_modules'])
/** Symlink hops followed while resolving a path (as Linux's MAXSYMLINKS). */
const MAX_LINK_HOPS = 40

// ---------------------------------------------------------------- arguments

function argValue(args: Record<string, unknown>, key: string): unknown {
  const value = args[key]
  return value === null ? undefined : value
}

/** A required string argument. Throws ToolError when it is missing, not a string, or empty (unless `allowEmpty`). */
export function stringArg(args: Record<string, unknown>, key: string, opts: { allowEmpty?: boolean } = {}): string {
  const value = argValue(args, key)
  if (value === undefined) throw new ToolError(`missing required argument '${key}'`)
  if (typeof value !== 'string') throw new ToolError(`argument '${key}' must be a string`)
  if (value === '' && !opts.allowEmpty) throw new ToolError(`argument '${key}' must not be empty`)
  return value
}

/** An optional string argument (null counts as absent). */
export function optionalStringArg(args: Record<string, unknown>, key: string): string | undefined {
  const value = argValue(args, key)
  if (value === undefined) return undefined
  if (typeof value !== 'string') throw new ToolError(`argument '${key}' must be a string`)
  return value
}

/** An optional integer argument `>= min`; numeric strings are accepted since models often send them. */
export function optionalIntArg(args: Record<string, unknown>, key: string, min: number): number | undefined {
  const value = argValue(args, key)
  if (value === undefined || value === '') return undefined
  const n = typeof value === 'string' ? Number(value.trim()) : value
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min) {
    throw new ToolError(`argument '${key}' must be an integer >= ${min}`)
  }
  return n
}

/** An optional boolean argument; `'true'`/`'false'` strings are accepted. */
export function optionalBoolArg(args: Record<string, unknown>, key: string): boolean | undefined {
  const value = argValue(args, key)
  if (value === undefined) return undefined
  if (value === true || value === 'true') return true
  if (value === false || value === 'false') return false
  throw new ToolError(`argument '${key}' must be true or false`)
}

// ---------------------------------------------------------------- paths

function errnoCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined
}

/**
 * Turns a file system error into a ToolError naming the path as the model gave it
 * (never the absolute path); other errors are returned unchanged.
 */
export function fsToolError(err: unknown, relPath: string): unknown {
  switch (errnoCode(err)) {
    case 'ENOENT': return new ToolError(`no such file: ${relPath}`)
    case 'EISDIR': return new ToolError(`${relPath} is a directory`)
    case 'ENOTDIR': return new ToolError(`not a directory: ${relPath} (a part of the path is a file)`)
    case 'EACCES':
    case 'EPERM': return new ToolError(`permission denied: ${relPath}`)
    case 'ELOOP': return new ToolError(`too many symbolic links: ${relPath}`)
    case 'EEXIST': return new ToolError(`already exists: ${relPath}`)
    case 'ENOSPC': return new ToolError(`no space left on device writing ${relPath}`)
    default: return err
  }
}

function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate)
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel))
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

/**
 * Resolves a model-given path inside the workspace and returns its real absolute
 * location. Throws ToolError for empty paths, NUL bytes, absolute paths, paths that
 * climb out with `..`, and paths that reach outside through a symlink (also a
 * dangling one, which a write would follow).
 */
export async function resolveInWorkspace(workspace: string, relPath: string): Promise<string> {
  if (relPath.trim() === '') throw new ToolError('path is empty; use a path relative to the workspace, e.g. src/index.ts')
  if (relPath.includes('\0')) throw new ToolError('path contains a NUL byte')
  if (path.isAbsolute(relPath)) {
    throw new ToolError(`path '${relPath}' is absolute; use a path relative to the workspace`)
  }
  const outside = new ToolError(`path '${relPath}' is outside the workspace`)
  const lexical = path.resolve(workspace, relPath)
  if (!isInside(path.resolve(workspace), lexical)) throw outside

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
    throw fsToolError(err, relPath)
  }
  if (!isInside(root, real)) throw outside
  return real
}

/** The path as shown to the model: workspace-relative with forward slashes. */
function displayPath(relPath: string): string {
  const normal = path.normalize(relPath).split(path.sep).join('/')
  return normal.replace(/\/$/, '') || '.'
}

// ---------------------------------------------------------------- tools

/** Lines [from, to) of `lines` that fit in READ_CAP_BYTES (at least a part of the first one). */
function fitLines(lines: string[], from: number, to: number): { text: string; end: number; cutLine: boolean } {
  let bytes = 0
  let end = from
  while (end < to) {
    const size = Buffer.byteLength(lines[end] ?? '') + 1
    if (bytes + size > READ_CAP_BYTES) break
    bytes += size
    end++
  }
  if (end === from && from < to) {
    // One line alone is larger than the cap (minified code): give its head.
    const head = Buffer.from(lines[from] ?? '').subarray(0, READ_CAP_BYTES).toString()
    return { text: head, end: from + 1, cutLine: true }
  }
  return { text: lines.slice(from, end).join('\n'), end, cutLine: false }
}

/** `read_file`: a text file, or a range of its lines. */
export const readFileTool: Tool = {
  spec: {
    name: 'read_file',
    description:
      'Read a text file of the workspace. Returns its content (without line numbers). ' +
      `Long files are cut at ${READ_CAP_BYTES / 1024} KB with a note telling the offset to read on from.`,
    parameters: {
      type: 'object',
      properties: {
        path: { type: 'string', description: 'Path relative to the workspace, e.g. src/index.ts' },
        offset: { type: 'integer', minimum: 1, description: 'First line to return (1-based). Default 1.' },
        limit: { type: 'integer', minimum: 1, description: 'Most lines to return. Default: to the end of the file.' },
      },
      required: ['path'],
    },
  },
  sideEffects: false,
  async run(args, ctx) {
    const rel = stringArg(args, 'path')
    const offset = optionalIntArg(args, 'offset', 1) ?? 1
    const limit = optionalIntArg(args, 'limit', 1)
    const shown = displayPath(rel)
    const file = await resolveInWorkspace(ctx.workspace, rel)
    let data: Buffer
    try {
      if ((await stat(file)).isDirectory()) throw new ToolError(`${shown} is a directory; use list_files`)
      data = await readFile(file)
    } catch (err) {
      throw fsToolError(err, shown)
    }
    if (data.subarray(0, 8192).includes(0)) throw new ToolError(`${shown} is a binary file (${data.length} bytes)`)
    if (data.length === 0) return `(${shown} is empty)`

    const text = data.toString('utf8')
    const lines = (text.endsWith('\n') ? text.slice(0, -1) : text).split('\n')
    if (offset > lines.length) {
      throw new ToolError(`offset ${offset} is past the end of ${shown} (${lines.length} lines)`)
    }
    const from = offset - 1
    const to = limit === undefined ? lines.length : Math.min(lines.length, from + limit)
    const { text: out, end, cutLine } = fitLines(lines, from, to)
    if (cutLine) {
      return `${out}\n[line ${offset} of ${shown} is longer than ${READ_CAP_BYTES / 1024} KB; only its start is shown]`
    }
    if (end === lines.length) return out
    const why = end < to ? `cut at ${READ_CAP_BYTES / 1024} KB: ` : ''
    return `${out}\n[${why}lines ${offset}-${end} of ${lines.length} shown; read on with offset=${end + 1}]`
  },
}

/** `write_file`: creates or replaces a file, creating its parent directories. */
export const writeFileTool: Tool = {
  spec: {
    name: 'write_file',
    description: 'Create or overwrite a file of the workspace with the given content. Parent directories are created.',
    parameters: {
      type: 'object',
      properties: {
        path: { type: 'string', description: 'Path relative to the workspace, e.g. src/index.ts' },
        content: { type: 'string', description: 'The complete new content of the file' },
      },
      required: ['path', 'content'],
    },
  },
  sideEffects: true,
  async run(args, ctx) {
    const rel = stringArg(args, 'path')
    const content = stringArg(args, 'content', { allowEmpty: true })
    const shown = displayPath(rel)
    const file = await resolveInWorkspace(ctx.workspace, rel)
    try {
      await mkdir(path.dirname(file), { recursive: true })
      await writeFile(file, content)
    } catch (err) {
      throw fsToolError(err, shown)
    }
    return `wrote ${Buffer.byteLength(content)} bytes to ${shown}`
  },
}

/** `edit_file`: replaces the one occurrence of a search text. */
export const editFileTool: Tool = {
  spec: {
    name: 'edit_file',
    description:
      'Replace an exact piece of text in a file. `search` must occur exactly once in the file ' +
      '(include surrounding lines to make it unique); it is replaced by `replace`.',
    parameters: {
      type: 'object',
      properties: {
        path: { type: 'string', description: 'Path relative to the workspace' },
        search: { type: 'string', description: 'Exact text to find, whitespace included' },
        replace: { type: 'string', description: 'Text to put in its place' },
      },
      required: ['path', 'search', 'replace'],
    },
  },
  sideEffects: true,
  async run(args, ctx) {
    const rel = stringArg(args, 'path')
    const search = stringArg(args, 'search')
    const replace = stringArg(args, 'replace', { allowEmpty: true })
    const shown = displayPath(rel)
    const file = await resolveInWorkspace(ctx.workspace, rel)
    try {
      const text = await readFile(file, 'utf8')
      const count = text.split(search).length - 1
      if (count === 0) throw new ToolError(`search text not found in ${shown}`)
      if (count > 1) throw new ToolError(`search text occurs ${count} times in ${shown}; give more context`)
      const at = text.indexOf(search)
      await writeFile(file, text.slice(0, at) + replace + text.slice(at + search.length))
    } catch (err) {
      throw fsToolError(err, shown)
    }
    return `edited ${shown}`
  },
}

/** `list_files`: a directory's entries as workspace-relative paths, directories with a trailing `/`. */
export const listFilesTool: Tool = {
  spec: {
    name: 'list_files',
    description:
      'List a directory of the workspace. Entries are paths relative to the workspace, sorted, directories end with /. ' +
      `.git and node_modules are skipped; at most ${LIST_CAP_ENTRIES} entries.`,
    parameters: {
      type: 'object',
      properties: {
        path: { type: 'string', description: 'Directory relative to the workspace. Default: the workspace root (.)' },
        recursive: { type: 'boolean', description: 'Also list subdirectories. Default false.' },
      },
    },
  },
  sideEffects: false,
  async run(args, ctx) {
    const rel = optionalStringArg(args, 'path') || '.'
    const recursive = optionalBoolArg(args, 'recursive') ?? false
    const shown = displayPath(rel)
    const dir = await resolveInWorkspace(ctx.workspace, rel)
    try {
      if (!(await stat(dir)).isDirectory()) throw new ToolError(`${shown} is a file, not a directory; use read_file`)
    } catch (err) {
      throw fsToolError(err, shown)
    }

    const entries: string[] = []
    let cut = false
    // Depth-first, each directory sorted; symlinks are listed but never entered.
    const walk = async (abs: string, prefix: string): Promise<void> => {
      const dirents = (await readdir(abs, { withFileTypes: true }))
        .filter((d) => !(d.isDirectory() && SKIPPED_DIRS.has(d.name)))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      for (const d of dirents) {
        if (entries.length >= LIST_CAP_ENTRIES) {
          cut = true
          return
        }
        const entry = prefix + d.name
        entries.push(d.isDirectory() ? `${entry}/` : entry)
        if (recursive && d.isDirectory()) await walk(path.join(abs, d.name), `${entry}/`)
      }
    }
    try {
      await walk(dir, shown === '.' ? '' : `${shown}/`)
    } catch (err) {
      throw fsToolError(err, shown)
    }
    if (entries.length === 0) return `(${shown} is empty)`
    return cut ? `${entries.join('\n')}\n[listing cut at ${LIST_CAP_ENTRIES} entries]` : entries.join('\n')
  },
}

/** The coder's file tools, in the order offered to the model. */
export const workspaceTools: readonly Tool[] = [readFileTool, writeFileTool, editFileTool, listFilesTool]
