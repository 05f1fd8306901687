/**
 * What a loop changed (`loopstate diff`, the viewer's diff): read-only, nothing in
 * the repository, the worktree or the workspace is written.
 *
 * - A git loop (docs/architecture.md "Workspaces"): its branch `loop/<name>` against
 *   its base (the merge base of the commit the worktree was made from and the
 *   branch), committed and uncommitted changes alike: the worktree as it is now
 *   (tracked files, and the untracked ones git does not ignore) against the base.
 *   When the worktree is gone (`loopstate clean`), the branch's commits. Every git
 *   command goes through services/safe-git.ts, without external diff or textconv
 *   drivers and without optional locks (a loop may be committing meanwhile).
 * - A plain directory has no history to diff against: the diff is what the loop's
 *   file tools did, from the journal of its sessions (write_file and edit_file calls
 *   that succeeded). A real diff is given where the content before the loop is
 *   known: a file the tools found missing before they wrote it is `added`; a file
 *   only edited is `modified`, its content before the loop rebuilt by undoing the
 *   edits on the file as it is now (each replacement found exactly once). Otherwise
 *   a written file shows the content it has now (`written`: what it replaced is not
 *   known), and edits that cannot be undone unambiguously show as their own hunks
 *   (search → replace, without line numbers). Changes made some other way
 *   (run_command, checks, by hand) are not seen. The paths come from the model and
 *   go through the sandbox's `resolveInWorkspace`: nothing outside the workspace is
 *   read.
 */
import { lstat, open, readlink, realpath } from 'node:fs/promises'
import path from 'node:path'
import type { LoopRecord, TranscriptSession } from '../adapters/snapshot-store.ts'
import type { ChatMessage, ToolCall } from '../machines/chat.types.ts'
import type { GitWorkspace } from '../machines/loop.types.ts'
import { pathExists, verifyWorktree } from './git-workspace.ts'
import { discoverRepo, git, gitOrNull, type GitPin } from './safe-git.ts'
import { isInside, resolveInWorkspace } from './sandbox.ts'
import { ToolError } from './tool-types.ts'
import { hunks, linesOf } from './unified-diff.ts'

export { hunks }

export interface WorkspaceDiff {
  /** `git`: a git diff of the loop's branch and worktree; `files`: what the loop's file tools did (plain directory). */
  kind: 'git' | 'files'
  /** The commit diffed against (git), else null. */
  base: string | null
  /** `loop/<name>` (git), else null. */
  branch: string | null
  /**
   * One entry per file, by path (relative to the repository's top, or to the
   * workspace), with its patch. `written`: a plain directory's file the loop wrote
   * whose earlier content is not known.
   */
  files: { path: string; status: 'added' | 'modified' | 'deleted' | 'written'; patch: string }[]
  /** Everything as text: a header saying what kind of diff this is, then the patches. */
  text: string
}

export type DiffFile = WorkspaceDiff['files'][number]

/** Largest file whose content is shown (larger ones are named, not shown). */
const MAX_FILE_BYTES = 2 * 1024 * 1024

/**
 * What the loop of `record` changed. `journal`: its sessions' transcripts
 * (`store.transcript(name)`), which a plain directory's diff is made from; the
 * record's running session is added when it is not among them.
 */
export async function loopDiff(record: LoopRecord, options: { journal?: TranscriptSession[] } = {}): Promise<WorkspaceDiff> {
  const context = record.snapshot.context
  const g = context.git ?? null
  if (g !== null) return gitDiff(g)
  return filesDiff(context.workspace, sessionsOf(record, options.journal))
}

// ---------------------------------------------------------------- git loops

async function gitDiff(g: GitWorkspace): Promise<WorkspaceDiff> {
  const empty = (why: string): WorkspaceDiff => ({ kind: 'git', base: g.base, branch: g.branch, files: [], text: `${why}\n` })
  const commonDir = g.commonDir ?? (await discoverRepo(g.repo).catch(() => null))?.commonDir
  if (!commonDir || !(await pathExists(commonDir))) return empty(`# git: the repository ${g.repo} of ${g.branch} is gone; nothing to diff`)
  const repoPin: GitPin = { gitDir: commonDir, workTree: g.repo }
  const branchRef = `refs/heads/${g.branch}`
  const branchHead = await gitOrNull(repoPin, ['rev-parse', '--verify', '--quiet', `${branchRef}^{commit}`])
  const base = (branchHead !== null ? await gitOrNull(repoPin, ['merge-base', g.base, branchRef]) : null) || g.base
  const short = base.slice(0, 12)

  // The worktree as it is now, when it is still the one loopstate made; else the branch.
  let worktree: GitPin | null = null
  let why = ''
  if (await pathExists(g.worktree)) {
    worktree = await verifyWorktree(g).catch((err: unknown) => {
      why = ` (its worktree is not used: ${err instanceof Error ? err.message : String(err)})`
      return null
    })
  } else {
    why = ` (its worktree ${g.worktree} was removed: committed changes only)`
  }
  if (worktree === null && branchHead === null) return empty(`# git: branch ${g.branch} and its worktree are both gone; nothing to diff`)

  const pin = worktree ?? repoPin
  const target = worktree !== null ? [base] : [base, branchRef]
  const flags = ['--no-ext-diff', '--no-textconv', '--no-renames', '--no-color', '--ignore-submodules=all']
  const readOnly = (args: string[]) => git(pin, ['--no-optional-locks', '-c', 'core.quotePath=false', ...args], { untrimmed: true })
  const listed = await readOnly(['diff', ...flags, '--name-status', '-z', ...target, '--'])
  const patches = splitPatches(await readOnly(['diff', ...flags, ...target, '--']))
  const names = listed.split('\0')
  const files: DiffFile[] = []
  // Both list the files in the same order; a type change (file ↔ symlink) is two patches, a deletion and a creation.
  let next = 0
  for (let i = 0; i + 1 < names.length; i += 2) {
    const letter = names[i]!.trim()
    const taken = patches.slice(next, next + (letter.startsWith('T') ? 2 : 1))
    next += taken.length
    files.push({ path: names[i + 1]!, status: gitStatus(letter), patch: taken.join('') })
  }
  if (worktree !== null) {
    const untracked = (await readOnly(['ls-files', '--others', '--exclude-standard', '-z'])).split('\0').filter((p) => p !== '')
    for (const p of untracked) files.push({ path: p, status: 'added', patch: await untrackedPatch(g.worktree, p) })
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  const what =
    worktree !== null
      ? `git diff of branch ${g.branch} against its base ${short}: committed and uncommitted changes of the worktree ${g.worktree}, untracked files included`
      : `git diff of branch ${g.branch} against its base ${short}${why}`
  const header = [`# ${what}`, `# ${summary(files)}`]
  return { kind: 'git', base, branch: g.branch, files, text: joinText(header, files) }
}

function gitStatus(letter: string): DiffFile['status'] {
  if (letter.startsWith('A')) return 'added'
  if (letter.startsWith('D')) return 'deleted'
  return 'modified'
}

/** `git diff` output cut into its files' patches, in order (the order `--name-status` lists them in). */
function splitPatches(output: string): string[] {
  if (output.trim() === '') return []
  const parts = output.split(/^(?=diff --git )/m).filter((p) => p.startsWith('diff --git '))
  return parts.map((p) => (p.endsWith('\n') ? p : `${p}\n`))
}

/** The patch of a file git does not track yet, as `git diff` would show it once added. */
async function untrackedPatch(worktree: string, rel: string): Promise<string> {
  const head = `diff --git a/${rel} b/${rel}\n`
  const file = path.join(worktree, rel)
  if (!isInside(worktree, file)) return `${head}(outside the worktree: not shown)\n`
  const entry = await lstat(file).catch(() => null)
  if (entry === null) return `${head}(gone while the diff was made)\n`
  if (entry.isSymbolicLink()) {
    const target = await readlink(file).catch(() => '?')
    return `${head}new file mode 120000\n--- /dev/null\n+++ b/${rel}\n${hunks('', target)}`
  }
  const mode = (entry.mode & 0o111) !== 0 ? '100755' : '100644'
  const content = await readShown(file)
  if (content === null) return `${head}(gone while the diff was made)\n`
  if (typeof content !== 'string') return `${head}new file mode ${mode}\n${content.note.replace('%', `/dev/null and b/${rel}`)}\n`
  return `${head}new file mode ${mode}\n--- /dev/null\n+++ b/${rel}\n${hunks('', content)}`
}

// ---------------------------------------------------------------- plain directories

/** One change of a file by the loop's tools. */
type FileOp = { kind: 'write'; content: string } | { kind: 'edit'; search: string; replace: string }

interface Touched {
  ops: FileOp[]
  /** A tool found it missing before the loop first changed it. */
  absentBefore: boolean
}

/** The sessions to read, oldest first: the given ones, and the record's running session when they lack it. */
function sessionsOf(record: LoopRecord, journal: TranscriptSession[] | undefined): { sessions: TranscriptSession[]; given: boolean } {
  const sessions = [...(journal ?? [])]
  const running = record.snapshot.context.journal
  if (running && typeof running.id === 'number') {
    const at = sessions.findIndex((s) => s.id === running.id)
    const head = { role: running.role, phase: running.phase, iteration: running.iteration, section: running.sectionIndex, at: '' }
    const current: TranscriptSession = { id: running.id, head, messages: running.messages }
    if (at < 0) sessions.push(current)
    else if (sessions[at]!.messages.length < running.messages.length) sessions[at] = current
  } else if (running && running.messages.length > 0 && journal === undefined) {
    sessions.push({ id: 0, head: null, messages: running.messages })
  }
  sessions.sort((a, b) => a.id - b.id)
  return { sessions, given: journal !== undefined }
}

async function filesDiff(workspace: string, { sessions, given }: { sessions: TranscriptSession[]; given: boolean }): Promise<WorkspaceDiff> {
  const touched = new Map<string, Touched>()
  const refused = new Set<string>()
  const resolved = new Map<string, { key: string; real: string } | null>()
  const locate = async (rel: unknown) => {
    if (typeof rel !== 'string') return null
    if (!resolved.has(rel)) {
      const found = await locateInWorkspace(workspace, rel)
      if (found === null) refused.add(rel)
      resolved.set(rel, found)
    }
    return resolved.get(rel) ?? null
  }
  const real = new Map<string, string>()
  for (const session of sessions) {
    const calls = new Map<string, ToolCall>()
    for (const m of session.messages) {
      if (m.role === 'assistant') for (const c of m.toolCalls ?? []) calls.set(c.id, c)
      if (m.role !== 'tool') continue
      const call = calls.get(m.toolCallId)
      if (!call || call.name !== m.toolName) continue
      const op = opOf(call, m)
      const missing = op === null && /^error: no such file: /.test(m.content) && (call.name === 'read_file' || call.name === 'edit_file')
      if (op === null && !missing) continue
      const where = await locate(call.arguments.path)
      if (where === null) continue
      real.set(where.key, where.real)
      let t = touched.get(where.key)
      if (!t) touched.set(where.key, (t = { ops: [], absentBefore: false }))
      if (op !== null) t.ops.push(op)
      else if (t.ops.length === 0) t.absentBefore = true
    }
  }

  const files: DiffFile[] = []
  for (const [key, t] of [...touched].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (t.ops.length === 0) continue // only found missing: nothing was changed
    const file = await fileChange(key, real.get(key)!, t)
    if (file !== null) files.push(file)
  }
  const first = sessions[0]?.id
  const header = [
    `# not a git diff: ${workspace} is a plain directory (no git history to diff against); these are the files the loop's ` +
      'write_file and edit_file calls changed, from its journal. Changes made some other way (run_command, checks, by hand) are not seen.',
    ...(given ? [] : ['# only the running session was read (no journal was given): earlier sessions are not included']),
    ...(first !== undefined && first > 1 ? [`# the journal keeps sessions ${first}-${sessions.at(-1)!.id}: the changes of sessions 1-${first - 1} are not included`] : []),
    ...(refused.size > 0 ? [`# paths outside the workspace, not shown: ${[...refused].map((p) => JSON.stringify(p)).join(', ')}`] : []),
    `# ${summary(files)}`,
  ]
  return { kind: 'files', base: null, branch: null, files, text: joinText(header, files) }
}

/** The change of a successful write_file or edit_file call, else null. */
function opOf(call: ToolCall, result: Extract<ChatMessage, { role: 'tool' }>): FileOp | null {
  const a = call.arguments
  if (call.name === 'write_file' && result.content.startsWith('wrote ') && typeof a.content === 'string') {
    return { kind: 'write', content: a.content }
  }
  if (call.name === 'edit_file' && result.content.startsWith('edited ') && typeof a.search === 'string' && typeof a.replace === 'string') {
    return { kind: 'edit', search: a.search, replace: a.replace }
  }
  return null
}

/**
 * A model-given path as a key relative to the workspace (forward slashes) and its
 * real location, or null when the sandbox refuses it. A workspace that is gone is
 * checked lexically (nothing can be read there anyway).
 */
async function locateInWorkspace(workspace: string, rel: string): Promise<{ key: string; real: string } | null> {
  try {
    const real = await resolveInWorkspace({ workspace, dataDir: null }, rel)
    const root = await realRoot(workspace)
    return { key: path.relative(root, real).split(path.sep).join('/'), real }
  } catch (err) {
    if (!(err instanceof ToolError) || !/workspace directory does not exist/.test(err.message)) return null
    if (path.isAbsolute(rel) || rel.includes('\0')) return null
    const lexical = path.resolve(workspace, rel)
    if (!isInside(workspace, lexical) || lexical === path.resolve(workspace)) return null
    return { key: path.relative(workspace, lexical).split(path.sep).join('/'), real: lexical }
  }
}

/** The workspace's real path (the sandbox's paths are real ones). */
const roots = new Map<string, Promise<string>>()
function realRoot(workspace: string): Promise<string> {
  let root = roots.get(workspace)
  if (!root) {
    root = realpath(workspace)
    roots.set(workspace, root)
    root.catch(() => roots.delete(workspace))
  }
  return root
}

/** One file's entry: its status and patch (see the header). */
async function fileChange(key: string, real: string, t: Touched): Promise<DiffFile | null> {
  const now = await readShown(real)
  const a = `a/${key}`
  const b = `b/${key}`
  if (now === null) {
    // gone now: what the loop's tools last left there, where known
    const last = replay(t.absentBefore ? '' : null, t.ops)
    if (t.absentBefore) return null // added, then removed by something else: no change
    const patch =
      typeof last === 'string'
        ? `--- ${a}\n+++ /dev/null (the loop's tools wrote it; it is gone now)\n${hunks(last, '', false)}`
        : `--- ${a}\n+++ /dev/null\n(the loop's tools edited it; it is gone now)\n`
    return { path: key, status: 'deleted', patch }
  }
  const status = t.absentBefore ? 'added' : t.ops.every((op) => op.kind === 'edit') ? 'modified' : 'written'
  if (typeof now !== 'string') return { path: key, status, patch: `${now.note.replace('%', `${a} and ${b}`)}\n` }
  const changedSince = (known: string | null) =>
    known !== null && known !== now ? ' (changed since the loop last wrote it: as it is now)' : ''

  if (t.absentBefore) {
    return { path: key, status: 'added', patch: `--- /dev/null\n+++ ${b}${changedSince(replay('', t.ops))}\n${hunks('', now)}` }
  }
  if (t.ops.every((op) => op.kind === 'edit')) {
    const before = undoEdits(now, t.ops as Extract<FileOp, { kind: 'edit' }>[])
    if (before !== null) return { path: key, status: 'modified', patch: `--- ${a}\n+++ ${b}\n${hunks(before, now)}` }
    // the edits as they were made
    const shown = t.ops.map((op) => {
      const e = op as Extract<FileOp, { kind: 'edit' }>
      const minus = linesOf(e.search).map((l) => `-${l}`)
      const plus = linesOf(e.replace).map((l) => `+${l}`)
      return ['@@ edit_file (line numbers not known) @@', ...minus, ...plus].join('\n')
    })
    return { path: key, status: 'modified', patch: `--- ${a} (before the loop: not known)\n+++ ${b}\n${shown.join('\n')}\n` }
  }
  const last = replay(null, t.ops)
  return {
    path: key,
    status: 'written',
    patch: `--- ${a} (before the loop: not known)\n+++ ${b}${changedSince(last)}\n${hunks('', now).replace(/^@@ -0,0 /, '@@ written ')}`,
  }
}

/** The content after `ops` from `start` (null: not known), or null when it cannot be known. */
function replay(start: string | null, ops: FileOp[]): string | null {
  let content = start
  for (const op of ops) {
    if (op.kind === 'write') content = op.content
    else if (content !== null) content = once(content, op.search) ? content.replace(op.search, () => op.replace) : null
  }
  return content
}

/** The content before `edits` (in the order made) from the content after them, when every step is unambiguous. */
function undoEdits(after: string, edits: { search: string; replace: string }[]): string | null {
  let content = after
  for (const e of [...edits].reverse()) {
    if (e.replace === '' || !once(content, e.replace)) return null
    const at = content.indexOf(e.replace)
    const before = content.slice(0, at) + e.search + content.slice(at + e.replace.length)
    if (!once(before, e.search) || before.indexOf(e.search) !== at) return null
    content = before
  }
  return content
}

function once(text: string, part: string): boolean {
  const at = text.indexOf(part)
  return part !== '' && at >= 0 && text.indexOf(part, at + 1) < 0
}

// ---------------------------------------------------------------- shared

/** A file's text, null when it is missing, or a note (with `%` for the names) for what is not shown. */
async function readShown(file: string): Promise<string | null | { note: string }> {
  const entry = await lstat(file).catch(() => null)
  if (entry === null) return null
  if (!entry.isFile()) return { note: `(not a regular file: ${entry.isDirectory() ? 'a directory' : entry.isSymbolicLink() ? 'a symlink' : 'special'})` }
  if (entry.size > MAX_FILE_BYTES) return { note: `(${entry.size} bytes: larger than ${MAX_FILE_BYTES / 1024 / 1024} MB, not shown)` }
  let buffer: Buffer
  try {
    const handle = await open(file, 'r')
    try {
      buffer = await handle.readFile()
    } finally {
      await handle.close()
    }
  } catch (err) {
    return { note: `(cannot read it: ${err instanceof Error ? err.message : String(err)})` }
  }
  if (buffer.subarray(0, 8_000).includes(0)) return { note: 'Binary files % differ' }
  return buffer.toString('utf8')
}

function summary(files: DiffFile[]): string {
  if (files.length === 0) return 'no changes'
  const counts = new Map<string, number>()
  for (const f of files) counts.set(f.status, (counts.get(f.status) ?? 0) + 1)
  return `${files.length} file${files.length === 1 ? '' : 's'}: ${[...counts].map(([s, n]) => `${n} ${s}`).join(', ')}`
}

function joinText(header: string[], files: DiffFile[]): string {
  return `${header.join('\n')}\n${files.map((f) => (f.patch.endsWith('\n') ? f.patch : `${f.patch}\n`)).join('')}`
}
