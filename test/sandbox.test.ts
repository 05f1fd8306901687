/**
 * The workspace boundary, attacked by a scripted coder through the real engine, in
 * the default layout (workspace = a directory, data dir = its `data/`): every
 * refusal is the exact tool result the model got, and nothing outside changed.
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { link, mkdir, mkdtemp, open, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createEngine, type Engine, type StartOptions } from '../services/engine.ts'
import { readLines, type Readable } from '../services/workspace-files.ts'
import { recordingFactory, treeState, type ToolResultSeen } from './helpers/attack.ts'
import { calls, hang, text } from './helpers/loop-harness.ts'

let root: string
let ws: string
let dataDir: string
let outside: string
const engines: Engine[] = []
const servers: Server[] = []

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'loopstate-sandbox-'))
  ws = join(root, 'project')
  dataDir = join(ws, 'data')
  outside = join(root, 'outside')
  await mkdir(ws)
  await mkdir(outside)
})

afterEach(async () => {
  for (const e of engines.splice(0)) await e.close()
  for (const s of servers.splice(0)) s.close()
  await rm(root, { recursive: true, force: true })
})

async function scenario(json: unknown): Promise<string> {
  const file = join(root, `s${Math.random().toString(36).slice(2)}.json`)
  await writeFile(file, JSON.stringify(json))
  return file
}

/** Runs one loop whose coder makes `attack`'s calls (one turn each), and returns the tool results it was given. */
async function attack(
  attackCalls: [string, Record<string, unknown>][],
  options: Partial<StartOptions> = {},
  before?: (engine: Engine) => Promise<void>,
): Promise<{ results: ToolResultSeen[]; status: string; engine: Engine }> {
  const rec = recordingFactory()
  const engine = await createEngine({ dataDir, resume: false, providers: { rec: rec.factory }, onProblem: () => {} })
  engines.push(engine)
  await before?.(engine)
  const model = await scenario({
    coder: [...attackCalls.map((c) => calls([c])), text('done')],
    auditor: [text('All good.')],
  })
  const h = await engine.start({ goal: 'attack' }, { models: [`rec:${model}`], workspace: ws, name: 'attacker', ...options })
  const out = await h.done
  return { results: rec.results, status: out.status, engine }
}

const DATA_RULE = "it is inside loopstate's data dir (other loops' records, inboxes and locks)"
const GIT_RULE = "git's metadata (.git) is never read or written by the model"

describe('the data dir, inside the default workspace', () => {
  it("refuses every way into it: another loop's record, its inbox, the locks, listings, symlinks and ..", async () => {
    const victimModel = await scenario({ coder: [hang()] })
    await symlink('data', join(ws, 'shortcut'))
    const { results, status, engine } = await attack(
      [
        ['read_file', { path: 'data/loops/victim.json' }],
        ['write_file', { path: 'data/inbox/victim/cancel.json', content: '{"type":"loop.cancel"}' }],
        ['write_file', { path: 'data/locks/engine-1.json', content: '{"pid":1,"since":"x","loops":["victim"]}' }],
        ['edit_file', { path: 'data/loops/victim.json', search: 'running', replace: 'completed' }],
        ['read_file', { path: 'shortcut/loops/victim.json' }],
        ['read_file', { path: 'src/../data/loops/victim.json' }],
        ['list_files', { path: 'data' }],
        ['write_file', { path: 'notes.txt', content: 'ok' }],
        ['list_files', { recursive: true }],
      ],
      {},
      async (engine) => {
        await engine.start({ goal: 'victim' }, { models: [`scripted:${victimModel}`], workspace: ws, name: 'victim', stallTimeoutMs: 600_000 })
      },
    )
    expect(status).toBe('completed')
    expect(results.map((r) => r.content)).toEqual([
      `error: path 'data/loops/victim.json' is refused: ${DATA_RULE}`,
      `error: path 'data/inbox/victim/cancel.json' is refused: ${DATA_RULE}`,
      `error: path 'data/locks/engine-1.json' is refused: ${DATA_RULE}`,
      `error: path 'data/loops/victim.json' is refused: ${DATA_RULE}`,
      `error: path 'shortcut/loops/victim.json' is refused: ${DATA_RULE}`,
      `error: path 'src/../data/loops/victim.json' is refused: ${DATA_RULE}`,
      `error: path 'data' is refused: ${DATA_RULE}`,
      'wrote 2 bytes to notes.txt',
      // the data dir is not listed; the symlink to it is listed, never entered
      'notes.txt\nshortcut',
    ])
    expect(existsSync(join(dataDir, 'inbox', 'victim'))).toBe(false)
    expect(existsSync(join(dataDir, 'locks', 'engine-1.json'))).toBe(false)
    expect(JSON.parse(await readFile(join(dataDir, 'loops', 'victim.json'), 'utf8'))).toMatchObject({ status: 'running', reason: null })
    // the victim was neither cancelled nor taken over
    expect(engine.handle('victim')!.view().status).toBe('running')
  })

  it("a fork's copy of the workspace leaves the data dir behind", async () => {
    const { engine } = await attack([['write_file', { path: 'a.txt', content: 'a' }]])
    const at = (await engine.history('attacker')).find((x) => x.to === 'running.auditing.watching')!
    const fork = await engine.fork('attacker', { at: at.seq, name: 'copy', workspace: join(root, 'copy') })
    expect(await fork.done).toMatchObject({ status: 'completed' })
    expect(Object.keys(await treeState(join(root, 'copy')))).toEqual(['a.txt'])
  })

  it('refuses a workspace inside the data dir before anything is saved', async () => {
    const engine = await createEngine({ dataDir, resume: false, onProblem: () => {} })
    engines.push(engine)
    await mkdir(join(dataDir, 'loops'), { recursive: true })
    await expect(
      engine.start({ goal: 'x' }, { models: ['scripted:none.json'], workspace: join(dataDir, 'loops') }),
    ).rejects.toThrow(`workspace: ${join(dataDir, 'loops')} is inside the data dir ${dataDir}; the model would reach every loop's records`)
    expect(await engine.list()).toEqual([])
  })
})

describe('.git, in place in the user\'s repository', () => {
  const git = (...args: string[]) =>
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@localhost', ...args], { cwd: ws, encoding: 'utf8' }).trim()

  it('is never read, written or listed, and the repository stays byte for byte', async () => {
    git('init', '-q', '-b', 'main')
    await writeFile(join(ws, 'README.md'), '# p\n')
    git('add', '-A')
    git('commit', '-q', '-m', 'initial')
    const before = await treeState(join(ws, '.git'))
    const poison = '[core]\n\tfsmonitor = "touch PWNED"\n'
    const { results } = await attack(
      [
        ['read_file', { path: '.git/config' }],
        ['edit_file', { path: '.git/config', search: '[core]', replace: poison }],
        ['write_file', { path: '.git/config', content: poison }],
        ['write_file', { path: '.git/hooks/pre-commit', content: '#!/bin/sh\ntouch PWNED\n' }],
        ['write_file', { path: 'sub/.git', content: 'gitdir: ../.git\n' }],
        ['write_file', { path: '.GIT/config', content: poison }],
        ['list_files', { path: '.git' }],
        ['list_files', {}],
      ],
      { inPlace: true },
    )
    expect(results.map((r) => r.content)).toEqual([
      `error: path '.git/config' is refused: ${GIT_RULE}`,
      `error: path '.git/config' is refused: ${GIT_RULE}`,
      `error: path '.git/config' is refused: ${GIT_RULE}`,
      `error: path '.git/hooks/pre-commit' is refused: ${GIT_RULE}`,
      `error: path 'sub/.git' is refused: ${GIT_RULE}`,
      `error: path '.GIT/config' is refused: ${GIT_RULE}`,
      `error: path '.git' is refused: ${GIT_RULE}`,
      'README.md',
    ])
    expect(await treeState(join(ws, '.git'))).toEqual(before)
    expect(existsSync(join(ws, 'sub'))).toBe(false)
    expect(git('status', '--porcelain', '--', '.', ':!data')).toBe('')
    expect(existsSync(join(ws, 'PWNED'))).toBe(false)
  })
})

describe('files that are not what they seem', () => {
  it('writes through a hard link replace the name in the workspace; the file outside keeps its bytes', async () => {
    const target = join(outside, 'target.txt')
    await writeFile(target, 'outside original\n')
    await link(target, join(ws, 'linked.txt'))
    await link(target, join(ws, 'linked2.txt'))
    const { results } = await attack([
      ['write_file', { path: 'linked.txt', content: 'pwned\n' }],
      ['edit_file', { path: 'linked2.txt', search: 'original', replace: 'pwned' }],
    ])
    expect(results.map((r) => r.content)).toEqual(['wrote 6 bytes to linked.txt', 'edited linked2.txt'])
    expect(await readFile(target, 'utf8')).toBe('outside original\n')
    expect(await readFile(join(ws, 'linked.txt'), 'utf8')).toBe('pwned\n')
    expect(await readFile(join(ws, 'linked2.txt'), 'utf8')).toBe('outside pwned\n')
    expect((await stat(target)).nlink).toBe(1)
  })

  it('keeps the mode of a replaced file and leaves no temp file behind', async () => {
    await writeFile(join(ws, 'run.sh'), '#!/bin/sh\necho a\n', { mode: 0o755 })
    const { results } = await attack([['edit_file', { path: 'run.sh', search: 'echo a', replace: 'echo b' }]])
    expect(results.map((r) => r.content)).toEqual(['edited run.sh'])
    expect((await stat(join(ws, 'run.sh'))).mode & 0o777).toBe(0o755)
    expect(Object.keys(await treeState(ws)).filter((p) => !p.startsWith('data/'))).toEqual(['run.sh'])
  })

  it('refuses a FIFO and a socket without blocking, for every file tool', async () => {
    execFileSync('mkfifo', [join(ws, 'pipe')])
    const server = createServer()
    servers.push(server)
    await new Promise<void>((r) => server.listen(join(ws, 'sock'), r))
    const { results } = await attack([
      ['read_file', { path: 'pipe' }],
      ['write_file', { path: 'pipe', content: 'x' }],
      ['edit_file', { path: 'pipe', search: 'a', replace: 'b' }],
      ['read_file', { path: 'sock' }],
    ])
    const rule = 'it is not a regular file or directory'
    expect(results.map((r) => r.content)).toEqual([
      `error: path 'pipe' is refused: ${rule} (a FIFO)`,
      `error: path 'pipe' is refused: ${rule} (a FIFO)`,
      `error: path 'pipe' is refused: ${rule} (a FIFO)`,
      `error: path 'sock' is refused: ${rule} (a socket)`,
    ])
  })

  it('refuses to read or edit a file over maxReadBytes, whatever the limit asked', async () => {
    const big = await open(join(ws, 'big.bin'), 'w')
    await big.truncate(1024 ** 3) // sparse: 1 GB that takes no disk
    await big.close()
    await writeFile(join(ws, 'small.txt'), 'x'.repeat(3000))
    const { results } = await attack(
      [
        ['read_file', { path: 'big.bin', limit: 1 }],
        ['edit_file', { path: 'big.bin', search: 'a', replace: 'b' }],
        ['read_file', { path: 'small.txt' }],
      ],
      { maxReadBytes: 2048 },
    )
    expect(results.map((r) => r.content)).toEqual([
      "error: path 'big.bin' is refused: it is 1.0 GB, over the read limit of 2 KB (maxReadBytes)",
      "error: path 'big.bin' is refused: it is 1.0 GB, over the edit limit of 2 KB (maxReadBytes)",
      "error: path 'small.txt' is refused: it is 3 KB, over the read limit of 2 KB (maxReadBytes)",
    ])
  })
})

describe('read_file reads only what it returns', () => {
  /** A file of `lines` lines of 100 bytes, served by a handle that counts what is read. */
  function countingHandle(lines: number): { handle: Readable; read: () => number } {
    const line = Buffer.from(`${'a'.repeat(99)}\n`)
    const size = line.length * lines
    let total = 0
    const handle: Readable = {
      read: (async (buffer: Buffer, offset: number, length: number, position: number) => {
        const n = Math.max(0, Math.min(length, size - position))
        for (let i = 0; i < n; i++) buffer[offset + i] = line[(position + i) % line.length]!
        total += n
        return { bytesRead: n, buffer }
      }) as Readable['read'],
    }
    return { handle, read: () => total }
  }

  it('takes the lines asked for and stops counting the rest at 4 MB', async () => {
    const { handle, read } = countingHandle(1_000_000) // 100 MB
    const out = await readLines(handle, 9, 10, 100 * 1024)
    expect(out).toMatchObject({ end: 10, total: null, cutLine: false, binary: false })
    expect(out.text).toBe('a'.repeat(99))
    expect(read()).toBeLessThanOrEqual(4 * 1024 * 1024 + 64 * 1024)
  })

  it('counts every line of a file within the count limit', async () => {
    const { handle } = countingHandle(1000)
    expect(await readLines(handle, 0, 2, 100 * 1024)).toMatchObject({ end: 2, total: 1000 })
  })
})
