/**
 * services/workspace-diff.ts: a plain directory's diff from the journal of a loop's
 * file tools (records and sessions made by hand), and a git loop's diff of its
 * branch and worktree against its base (a real repository and worktree, made as the
 * engine makes them).
 */
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import type { LoopRecord, TranscriptSession } from '../adapters/snapshot-store.ts'
import type { ChatMessage, ToolCall } from '../machines/chat.types.ts'
import type { GitWorkspace } from '../machines/loop.types.ts'
import { commitAll, createWorktree, removeWorktree } from '../services/git-workspace.ts'
import { hunks, loopDiff } from '../services/workspace-diff.ts'
import { makeRecord } from './contracts/snapshot-store.contract.ts'

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'loopstate-diff-'))
  onTestFinished(() => rm(dir, { recursive: true, force: true }))
  return dir
}

function recordOf(workspace: string, git: GitWorkspace | null = null): LoopRecord {
  const record = makeRecord('changes', { status: 'completed', reason: 'completed' })
  record.snapshot = { ...record.snapshot, context: { ...record.snapshot.context, workspace, git, journal: null } }
  return record
}

/** A session of tool calls, each answered with `result` (what the tool said). */
function session(id: number, steps: { call: Omit<ToolCall, 'id'>; result: string }[]): TranscriptSession {
  const messages: ChatMessage[] = [
    { role: 'system', content: 'You are the coder.' },
    { role: 'user', content: 'work' },
  ]
  steps.forEach(({ call, result }, i) => {
    const id = `coder-${i + 1}-1` // ids repeat across sessions, as the providers make them
    messages.push({ role: 'assistant', content: '', toolCalls: [{ id, ...call }] })
    messages.push({ role: 'tool', content: result, toolCallId: id, toolName: call.name })
  })
  return { id, head: { role: 'coder', phase: 'coding', iteration: id, section: 0, at: '2025-01-01T00:00:00.000Z' }, messages }
}

const write = (path: string, content: string, result = `wrote ${content.length} bytes to ${path}`) => ({
  call: { name: 'write_file', arguments: { path, content } },
  result,
})
const edit = (path: string, search: string, replace: string, result = `edited ${path}`) => ({
  call: { name: 'edit_file', arguments: { path, search, replace } },
  result,
})
const read = (path: string, result: string) => ({ call: { name: 'read_file', arguments: { path } }, result })

describe('loopDiff of a plain directory (from the journal)', () => {
  it("shows written files as written, undoes edits into a real diff, and a file found missing first as added", async () => {
    const ws = await tempDir()
    const before = Array.from({ length: 15 }, (_, i) => `line ${i + 1}\n`).join('')
    const after = before.replace('line 3\n', 'line three\n').replace('line 12\n', 'line twelve\nline twelve and a half\n')
    await writeFile(join(ws, 'edited.txt'), after)
    await writeFile(join(ws, 'written.txt'), 'all new\n')
    await mkdir(join(ws, 'src'))
    await writeFile(join(ws, 'src', 'fresh.ts'), 'export const x = 1\n')
    const journal = [
      session(1, [
        read('src/fresh.ts', 'error: no such file: src/fresh.ts'),
        write('./src/fresh.ts', 'export const x = 0\n'),
        edit('edited.txt', 'line 3\n', 'line three\n'),
        write('written.txt', 'all new\n'),
      ]),
      session(2, [
        edit('src/fresh.ts', '= 0', '= 1'),
        edit('edited.txt', 'line 12\n', 'line twelve\nline twelve and a half\n'),
        // failed and refused calls change nothing
        edit('edited.txt', 'nowhere', 'x', 'error: search text not found in edited.txt'),
        write('../outside.txt', 'x', "error: path '../outside.txt' is outside the workspace"),
      ]),
    ]
    const diff = await loopDiff(recordOf(ws), { journal })
    expect(diff).toMatchObject({ kind: 'files', base: null, branch: null })
    expect(diff.files.map((f) => [f.path, f.status])).toEqual([
      ['edited.txt', 'modified'],
      ['src/fresh.ts', 'added'],
      ['written.txt', 'written'],
    ])
    const [edited, fresh, written] = diff.files
    // as `diff -u` makes it
    expect(edited!.patch).toBe(
      [
        '--- a/edited.txt',
        '+++ b/edited.txt',
        '@@ -1,6 +1,6 @@',
        ' line 1',
        ' line 2',
        '-line 3',
        '+line three',
        ' line 4',
        ' line 5',
        ' line 6',
        '@@ -9,7 +9,8 @@',
        ' line 9',
        ' line 10',
        ' line 11',
        '-line 12',
        '+line twelve',
        '+line twelve and a half',
        ' line 13',
        ' line 14',
        ' line 15',
        '',
      ].join('\n'),
    )
    expect(fresh!.patch).toBe('--- /dev/null\n+++ b/src/fresh.ts\n@@ -0,0 +1 @@\n+export const x = 1\n')
    expect(written!.patch).toBe('--- a/written.txt (before the loop: not known)\n+++ b/written.txt\n@@ written +1 @@\n+all new\n')
    expect(diff.text).toMatch(/^# not a git diff: .* is a plain directory/)
    expect(diff.text).toContain('# 3 files: 1 modified, 1 added, 1 written\n')
    expect(diff.text.endsWith(written!.patch)).toBe(true)
  })

  it('shows edits it cannot undo as their own hunks, a written file that is gone as deleted, and what changed since', async () => {
    const ws = await tempDir()
    await writeFile(join(ws, 'twice.txt'), 'b\nb\n')
    await writeFile(join(ws, 'later.txt'), 'changed by hand\n')
    const journal = [
      session(3, [
        edit('twice.txt', 'a\n', 'b\n'), // `b` occurs twice now: which one it was is not known
        write('gone.txt', 'short-lived\n'),
        write('later.txt', 'by the loop\n'),
      ]),
    ]
    const diff = await loopDiff(recordOf(ws), { journal })
    expect(diff.files).toEqual([
      { path: 'gone.txt', status: 'deleted', patch: "--- a/gone.txt\n+++ /dev/null (the loop's tools wrote it; it is gone now)\n@@ -1 +0,0 @@\n-short-lived\n" },
      {
        path: 'later.txt',
        status: 'written',
        patch: '--- a/later.txt (before the loop: not known)\n+++ b/later.txt (changed since the loop last wrote it: as it is now)\n@@ written +1 @@\n+changed by hand\n',
      },
      {
        path: 'twice.txt',
        status: 'modified',
        patch: '--- a/twice.txt (before the loop: not known)\n+++ b/twice.txt\n@@ edit_file (line numbers not known) @@\n-a\n+b\n',
      },
    ])
    // the journal keeps sessions 3-3: the earlier ones' changes are not in it
    expect(diff.text).toContain('# the journal keeps sessions 3-3: the changes of sessions 1-2 are not included')
  })

  it('reads nothing outside the workspace: .. paths, absolute paths, symlinks out and .git are left out and named', async () => {
    const root = await tempDir()
    const ws = join(root, 'ws')
    await mkdir(ws)
    await writeFile(join(root, 'secret.txt'), 'secret\n')
    await symlink(join(root, 'secret.txt'), join(ws, 'link.txt'))
    await writeFile(join(ws, 'ok.txt'), 'ok\n')
    const journal = [
      session(1, [
        // results as if the tools had run them: the model's paths are not trusted either way
        write('../secret.txt', 'x'),
        write(join(root, 'secret.txt'), 'x'),
        write('link.txt', 'x'),
        write('.git/config', 'x'),
        write('ok.txt', 'ok\n'),
      ]),
    ]
    const diff = await loopDiff(recordOf(ws), { journal })
    expect(diff.files.map((f) => f.path)).toEqual(['ok.txt'])
    expect(diff.text).not.toContain('secret\n')
    expect(diff.text).toMatch(/# paths outside the workspace, not shown: "\.\.\/secret\.txt", ".*secret\.txt", "link\.txt", "\.git\/config"/)
  })

  it("includes the record's running session, and shows a binary file by name only", async () => {
    const ws = await tempDir()
    await writeFile(join(ws, 'blob.bin'), Buffer.from([1, 0, 2, 0]))
    await writeFile(join(ws, 'now.txt'), 'now\n')
    const record = recordOf(ws)
    const running = session(2, [write('now.txt', 'now\n')])
    const journal = { id: 2, phase: 'coding' as const, iteration: 2, sectionIndex: 0, role: 'coder' as const, delivered: 0, running: [], messages: running.messages }
    record.snapshot = { ...record.snapshot, context: { ...record.snapshot.context, journal } }
    const diff = await loopDiff(record, { journal: [session(1, [write('blob.bin', '\u0001\u0000\u0002\u0000')])] })
    expect(diff.files).toEqual([
      { path: 'blob.bin', status: 'written', patch: 'Binary files a/blob.bin and b/blob.bin differ\n' },
      expect.objectContaining({ path: 'now.txt', status: 'written' }),
    ])
    // without a journal: the running session alone, and it says so
    const alone = await loopDiff(record)
    expect(alone.files.map((f) => f.path)).toEqual(['now.txt'])
    expect(alone.text).toContain('only the running session was read')
  })

  it('makes hunks as diff -u does, including lines without a final newline', () => {
    expect(hunks('a\nb\nc', 'a\nb\nc\n')).toBe('@@ -1,3 +1,3 @@\n a\n b\n-c\n\\ No newline at end of file\n+c\n')
    expect(hunks('a\nb\n', 'a\nB')).toBe('@@ -1,2 +1,2 @@\n a\n-b\n+B\n\\ No newline at end of file\n')
    expect(hunks('same\n', 'same\n')).toBe('')
    expect(hunks('', 'x\ny\n')).toBe('@@ -0,0 +1,2 @@\n+x\n+y\n')
    expect(hunks('x\ny\n', '')).toBe('@@ -1,2 +0,0 @@\n-x\n-y\n')
  })
})

describe('loopDiff of a git loop', () => {
  const gitIn = (cwd: string, ...args: string[]) =>
    execFileSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@localhost', ...args], { cwd, encoding: 'utf8' }).trim()

  async function repoWithLoop() {
    const root = await tempDir()
    const repo = join(root, 'project')
    await mkdir(repo)
    gitIn(repo, 'init', '-q', '-b', 'main')
    await writeFile(join(repo, 'a.txt'), 'one\ntwo\nthree\n')
    await writeFile(join(repo, 'b.txt'), 'bee\n')
    await writeFile(join(repo, 'c.txt'), 'see\n')
    await writeFile(join(repo, 'd.txt'), 'dee\nends in spaces  \n')
    await writeFile(join(repo, '.gitignore'), 'ignored.log\n')
    gitIn(repo, 'add', '-A')
    gitIn(repo, 'commit', '-q', '-m', 'initial')
    const g = await createWorktree(repo, repo, 'changes')
    return { root, repo, g }
  }

  it('diffs the branch and the worktree (committed, uncommitted, untracked, deleted) against the base, writing nothing', async () => {
    const { repo, g } = await repoWithLoop()
    // committed on the loop's branch, as a clean section would be
    await writeFile(join(g.worktree, 'a.txt'), 'one\nTWO\nthree\n')
    await writeFile(join(g.worktree, 'added.txt'), 'added and committed\n')
    expect(await commitAll(g, 'section 1')).toMatch(/^[0-9a-f]{40}$/)
    // then left uncommitted: a change, a deletion, an untracked file and an ignored one
    await writeFile(join(g.worktree, 'a.txt'), 'one\nTWO\nthree\nfour\n')
    await rm(join(g.worktree, 'b.txt'))
    // a type change (two patches in git's output) before another change: each file keeps its own patch
    await rm(join(g.worktree, 'c.txt'))
    await symlink('a.txt', join(g.worktree, 'c.txt'))
    await writeFile(join(g.worktree, 'd.txt'), 'DEE\nends in spaces  \n')
    await writeFile(join(g.worktree, 'untracked.txt'), 'not added\n')
    await writeFile(join(g.worktree, 'ignored.log'), 'noise\n')
    // the user's checkout moved on meanwhile: the diff is against the base, not main
    await writeFile(join(repo, 'main-only.txt'), 'x\n')
    gitIn(repo, 'add', '-A')
    gitIn(repo, 'commit', '-q', '-m', 'main moves on')
    const status = gitIn(g.worktree, 'status', '--porcelain')
    const index = await stat(join(repo, '.git', 'worktrees', 'changes', 'index'))

    const diff = await loopDiff(recordOf(join(g.worktree, g.subdir), g))
    expect(diff).toMatchObject({ kind: 'git', base: g.base, branch: 'loop/changes' })
    expect(diff.files.map((f) => [f.path, f.status])).toEqual([
      ['a.txt', 'modified'],
      ['added.txt', 'added'],
      ['b.txt', 'deleted'],
      ['c.txt', 'modified'],
      ['d.txt', 'modified'],
      ['untracked.txt', 'added'],
    ])
    const byPath = new Map(diff.files.map((f) => [f.path, f.patch]))
    expect(byPath.get('a.txt')).toMatch(/^diff --git a\/a\.txt b\/a\.txt\n(.*\n)*@@ -1,3 \+1,4 @@\n one\n-two\n\+TWO\n three\n\+four\n$/)
    expect(byPath.get('b.txt')).toContain('deleted file mode 100644')
    expect(byPath.get('c.txt')).toMatch(/^diff --git a\/c\.txt b\/c\.txt\ndeleted file mode 100644\n(.*\n)*-see\ndiff --git a\/c\.txt b\/c\.txt\nnew file mode 120000\n(.*\n)*\+a\.txt\n/)
    // the last line of git's output keeps its spaces
    expect(byPath.get('d.txt')).toMatch(/^diff --git a\/d\.txt b\/d\.txt\n(.*\n)*-dee\n\+DEE\n ends in spaces {2}\n$/)
    expect(byPath.get('untracked.txt')).toBe('diff --git a/untracked.txt b/untracked.txt\nnew file mode 100644\n--- /dev/null\n+++ b/untracked.txt\n@@ -0,0 +1 @@\n+not added\n')
    expect(diff.text).toMatch(/^# git diff of branch loop\/changes against its base [0-9a-f]{12}: committed and uncommitted changes/)
    expect(diff.text).not.toContain('main-only')
    // read-only: the worktree's index is as it was (git status, which may refresh it, comes after), and so is its status
    expect((await stat(join(repo, '.git', 'worktrees', 'changes', 'index'))).mtimeMs).toBe(index.mtimeMs)
    expect(gitIn(g.worktree, 'status', '--porcelain')).toBe(status)
  })

  it("shows the branch's commits once the worktree is removed, and says so", async () => {
    const { g } = await repoWithLoop()
    await writeFile(join(g.worktree, 'kept.txt'), 'committed\n')
    await commitAll(g, 'done')
    await writeFile(join(g.worktree, 'lost.txt'), 'never committed\n')
    expect(await removeWorktree(g)).toBe(true)
    const diff = await loopDiff(recordOf(join(g.worktree, g.subdir), g))
    expect(diff.files.map((f) => [f.path, f.status])).toEqual([['kept.txt', 'added']])
    expect(diff.text).toContain(`its worktree ${g.worktree} was removed: committed changes only`)
    expect(await readFile(join(g.repo, 'a.txt'), 'utf8')).toBe('one\ntwo\nthree\n')
  })
})
