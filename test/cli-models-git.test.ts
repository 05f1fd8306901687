/**
 * The CLI on Ollama (the Ollama-compatible test server on 127.0.0.1) and on git
 * repositories: the real bin, real sockets, real git.
 */
import { execFile, execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { worktreePath } from '../services/git-workspace.ts'
import type { LoopDetail } from '../services/views.ts'
import { startOllamaServer, type OllamaTestServer } from './helpers/ollama-server.ts'

const BIN = fileURLToPath(new URL('../scripts/loopstate.js', import.meta.url))

let dir: string
let server: OllamaTestServer | null = null

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loopstate-cli4-'))
})
afterEach(async () => {
  await server?.close()
  server = null
  await rm(dir, { recursive: true, force: true })
})

function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: dir, env: { ...process.env, LOOPSTATE_DATA: undefined, OLLAMA_HOST: undefined, ...env }, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
    )
  })
}

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@localhost', ...args], { cwd, encoding: 'utf8' }).trim()

const text = (t: string) => ({ type: 'text', text: t, usage: { input: 50, output: 10 } })
const write = (path: string, content: string) => ({
  type: 'tool_calls',
  calls: [{ name: 'write_file', arguments: { path, content } }],
  usage: { input: 40, output: 20 },
})

describe('cli on ollama', () => {
  it('runs a loop on ollama:<model> with --ollama-host, and so does demo --ollama', async () => {
    server = await startOllamaServer({
      models: {
        'qwen3:test': {
          scenario: {
            coder: [write('hello.txt', 'hi'), text('wrote hello.txt'), write('clamp.js', 'export const clamp = () => 0'), text('wrote clamp.js')],
            auditor: [text('clean'), text('clean too')],
          },
        },
      },
    })
    await writeFile(join(dir, 'plan.md'), '# Say hi\n\nWrite hello.txt')
    await mkdir(join(dir, 'ws'))
    const run = await cli(['run', 'plan.md', '--model', 'ollama:qwen3:test', '--ollama-host', server.host, '--workspace', 'ws', '--data', 'data'])
    expect(run.code, run.stderr).toBe(0)
    expect(await readFile(join(dir, 'ws', 'hello.txt'), 'utf8')).toBe('hi')
    const status = JSON.parse((await cli(['status', 'say-hi', '--json', '--data', 'data'])).stdout) as LoopDetail
    expect(status.usage.byModel['ollama:qwen3:test']).toMatchObject({ calls: 3, inputTokens: 140, outputTokens: 40 })
    // every chat asked for the context window explicitly
    expect(server.chats().every((c) => typeof c.body.options?.num_ctx === 'number')).toBe(true)

    // OLLAMA_HOST is read when no flag is given
    const demo = await cli(['demo', '--ollama', 'qwen3:test', '--data', 'data'], { OLLAMA_HOST: server.host })
    expect(demo.code, demo.stderr + demo.stdout).toBe(0)
    expect(demo.stdout).toContain(`qwen3:test on ${server.host}`)
    expect(demo.stdout).toMatch(/clamp-a-value-into-a-range\s+completed/)
  })

  it('demo --ollama says in one line why it cannot run', async () => {
    server = await startOllamaServer({ models: {} })
    const missing = await cli(['demo', '--ollama', 'nope', '--ollama-host', server.host, '--data', 'data'])
    expect(missing.code).toBe(1)
    expect(missing.stderr.trim().split('\n')).toEqual([
      `loopstate: demo: cannot run on nope: ollama: model nope is not available on ${server.host}; run \`ollama pull nope\``,
    ])
    const gone = server.host
    await server.close() // nothing listens on its port now
    server = null
    const down = await cli(['demo', '--ollama', 'nope', '--ollama-host', gone, '--data', 'data'])
    expect(down.code).toBe(1)
    expect(down.stderr).toContain(`loopstate: demo: cannot run on nope: ollama: cannot reach ${gone}: connection refused`)
    expect(down.stderr.trim().split('\n')).toHaveLength(1)
    expect(existsSync(join(dir, 'data'))).toBe(false)
    const bad = await cli(['run', '--goal', 'x', '--model', 'ollama:m', '--ollama-host', 'ftp://x', '--data', 'data'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toBe("loopstate: ollama: host 'ftp://x' must be http or https\n")
  })
})

describe('cli on git repositories', () => {
  it('runs on a branch in a worktree, leaves the checkout alone, and clean removes the worktree', async () => {
    const repo = join(dir, 'repo')
    await mkdir(repo)
    git(repo, 'init', '-q', '-b', 'main')
    await writeFile(join(repo, 'README.md'), 'x\n')
    git(repo, 'add', '-A')
    git(repo, 'commit', '-q', '-m', 'initial')
    await writeFile(join(dir, 's.json'), JSON.stringify({ coder: [write('out.txt', 'done'), text('done')], auditor: [text('ok')] }))
    const run = await cli(['run', '--goal', 'make out', '--model', `scripted:${join(dir, 's.json')}`, '--workspace', 'repo', '--data', 'data'])
    expect(run.code, run.stderr).toBe(0)
    const wt = worktreePath(repo, 'make-out')
    expect(run.stdout).toContain(`workspace ${wt}`)
    expect(git(repo, 'log', '--format=%s', '-1', 'loop/make-out')).toBe('loopstate: make-out completed (iteration 1, 1 audits)')
    expect(git(repo, 'status', '--porcelain')).toBe('')
    expect(existsSync(join(repo, 'out.txt'))).toBe(false)

    const clean = await cli(['clean', 'make-out', '--data', 'data'])
    expect(clean.code, clean.stderr).toBe(0)
    expect(clean.stdout).toBe(`removed worktree ${wt}; branch loop/make-out stays\n`)
    expect(existsSync(wt)).toBe(false)
    expect((await cli(['clean', 'nope', '--data', 'data'])).code).toBe(2)

    const inPlace = await cli(['run', '--goal', 'here', '--model', `scripted:${join(dir, 's.json')}`, '--workspace', 'repo', '--in-place', '--data', 'data'])
    expect(inPlace.code, inPlace.stderr).toBe(0)
    expect(await readFile(join(repo, 'out.txt'), 'utf8')).toBe('done')
    expect(git(repo, 'branch', '--list', 'loop/here')).toBe('')
  })
})
