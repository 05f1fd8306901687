/**
 * The coder's file tools (`read_file`, `write_file`, `edit_file`, `list_files`),
 * confined to the loop's workspace, plus the argument helpers every tool uses.
 */
import { readdir, realpath, stat } from 'node:fs/promises'
import path from 'node:path'
import { errnoCode, hasGitComponent, realDir, resolveInWorkspace } from './sandbox.ts'
import { ToolError, type Tool, type ToolContext } from './tool-types.ts'
import { openRegular, readLines, replaceFile, type LineRead } from './workspace-files.ts'

/** Largest text `read_file` returns in one call, bytes. */
export const READ_CAP_BYTES = 100 * 1024
/** Most entries `list_files` returns. */
export const LIST_CAP_ENTRIES = 1000
/** Directories `list_files` never enters (`.git`, in any case, is never shown at all). */
const SKIPPED_DIRS = new Set(['node_modules'])

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

/** The real location of a model-given path, checked against the loop's boundary (services/sandbox.ts). */
function resolvePath(ctx: ToolContext, relPath: string): Promise<string> {
  return resolveInWorkspace(ctx, relPath, fsToolError)
}

/** The path as shown to the model: workspace-relative with forward slashes. */
function displayPath(relPath: string): string {
  const normal = path.normalize(relPath).split(path.sep).join('/')
  return normal.replace(/\/$/, '') || '.'
}

// ---------------------------------------------------------------- tools

/** `read_file`: a text file, or a range of its lines. */
export const readFileTool: Tool = {
  spec: {
    name: 'read_file',
    description:
      'Read a text file of the workspace. Returns its content (without line numbers). ' +
      `Long files are cut at ${READ_CAP_BYTES / 1024} KB with a note telling the offset to read on from. ` +
      'Files over the loop\'s read limit (1 MB unless configured) are refused, and so are .git paths.',
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
    const file = await resolvePath(ctx, rel)
    let read: LineRead | null
    let size: number
    try {
      const opened = await openRegular(file, shown, ctx.maxReadBytes, 'read')
      size = opened.size
      try {
        const to = limit === undefined ? Infinity : offset - 1 + limit
        read = size === 0 ? null : await readLines(opened.handle, offset - 1, to, READ_CAP_BYTES)
      } finally {
        await opened.handle.close()
      }
    } catch (err) {
      throw fsToolError(err, shown)
    }
    if (read === null) return `(${shown} is empty)`
    if (read.binary) throw new ToolError(`${shown} is a binary file (${size} bytes)`)
    if (read.total !== null && offset > read.total) {
      throw new ToolError(`offset ${offset} is past the end of ${shown} (${read.total} lines)`)
    }
    if (read.cutLine) {
      return `${read.text}\n[line ${offset} of ${shown} is longer than ${READ_CAP_BYTES / 1024} KB; only its start is shown]`
    }
    if (read.end === read.total) return read.text
    const to = limit === undefined ? read.total : Math.min(read.total ?? Infinity, offset - 1 + limit)
    const why = to === null || read.end < to ? `cut at ${READ_CAP_BYTES / 1024} KB: ` : ''
    const of = read.total === null ? 'of more' : `of ${read.total}`
    return `${read.text}\n[${why}lines ${offset}-${read.end} ${of} shown; read on with offset=${read.end + 1}]`
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
    const file = await resolvePath(ctx, rel)
    try {
      await replaceFile(file, content, shown)
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
    const file = await resolvePath(ctx, rel)
    try {
      const { handle } = await openRegular(file, shown, ctx.maxReadBytes, 'edit')
      const text = await handle.readFile('utf8').finally(() => handle.close())
      const count = text.split(search).length - 1
      if (count === 0) throw new ToolError(`search text not found in ${shown}`)
      if (count > 1) throw new ToolError(`search text occurs ${count} times in ${shown}; give more context`)
      const at = text.indexOf(search)
      await replaceFile(file, text.slice(0, at) + replace + text.slice(at + search.length), shown)
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
      `.git, node_modules and loopstate's data dir are skipped; at most ${LIST_CAP_ENTRIES} entries.`,
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
    const dir = await resolvePath(ctx, rel)
    try {
      if (!(await stat(dir)).isDirectory()) throw new ToolError(`${shown} is a file, not a directory; use read_file`)
    } catch (err) {
      throw fsToolError(err, shown)
    }

    const entries: string[] = []
    let cut = false
    // The data dir is hidden wherever it lies under the listed directory (it is never entered).
    const hidden = ctx.dataDir === null ? null : await realDir(ctx.dataDir)
    const realListed = await realpath(dir)
    // Depth-first, each directory sorted; symlinks are listed but never entered; .git never shows.
    const walk = async (abs: string, realAbs: string, prefix: string): Promise<void> => {
      const dirents = (await readdir(abs, { withFileTypes: true }))
        .filter((d) => !hasGitComponent(d.name))
        .filter((d) => !(d.isDirectory() && SKIPPED_DIRS.has(d.name)))
        .filter((d) => !(d.isDirectory() && path.join(realAbs, d.name) === hidden))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      for (const d of dirents) {
        if (entries.length >= LIST_CAP_ENTRIES) {
          cut = true
          return
        }
        const entry = prefix + d.name
        entries.push(d.isDirectory() ? `${entry}/` : entry)
        if (recursive && d.isDirectory()) await walk(path.join(abs, d.name), path.join(realAbs, d.name), `${entry}/`)
      }
    }
    try {
      await walk(dir, realListed, shown === '.' ? '' : `${shown}/`)
    } catch (err) {
      throw fsToolError(err, shown)
    }
    if (entries.length === 0) return `(${shown} is empty)`
    return cut ? `${entries.join('\n')}\n[listing cut at ${LIST_CAP_ENTRIES} entries]` : entries.join('\n')
  },
}

/** The coder's file tools, in the order offered to the model. */
export const workspaceTools: readonly Tool[] = [readFileTool, writeFileTool, editFileTool, listFilesTool]
