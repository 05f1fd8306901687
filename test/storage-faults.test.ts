/**
 * No progress without durability, on a real full disk: the data dir is a small
 * tmpfs (skipped, with a message, where this process may not mount one). The disk
 * fills while the coder's model is answering; the save of its answer fails, the
 * loop pauses at its last good record and its side-effect tool never runs; once
 * space is back, resume carries it on from that record and it completes.
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { ChatRequest, ChatResponse, ProviderFactory } from '../adapters/model-provider.ts'
import { createEngine, type Engine } from '../services/engine.ts'

let root: string
let mnt: string
let mounted = false
let engine: Engine | null = null

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'loopstate-enospc-'))
  mnt = join(root, 'data')
  await mkdir(mnt)
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt], { stdio: 'pipe' })
    mounted = true
  } catch {
    mounted = false
  }
})

afterEach(async () => {
  await engine?.close()
  engine = null
  if (mounted) execFileSync('umount', [mnt])
  await rm(root, { recursive: true, force: true })
})

/** Fills the file system of `dir` to the last byte; returns the filler file. */
async function fill(dir: string): Promise<string> {
  const file = join(dir, 'filler')
  const handle = await open(file, 'w')
  const chunk = Buffer.alloc(4096, 1)
  try {
    for (;;) await handle.write(chunk)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
  }
  // the last partial block
  try {
    for (;;) await handle.write(Buffer.alloc(1, 1))
  } catch {
    // full
  }
  await handle.close()
  return file
}

/**
 * `gate:` a model whose answers the test releases: the coder writes a.txt (once
 * `open()` is called), then says it is done; the auditor finds nothing.
 */
function gatedModel() {
  let release!: () => void
  let asked!: () => void
  const opened = new Promise<void>((r) => (release = r))
  const firstAsk = new Promise<void>((r) => (asked = r))
  const log: string[] = []
  const factory: ProviderFactory = () => ({
    scheme: 'gate',
    async chat(request: ChatRequest): Promise<ChatResponse> {
      const usage = { inputTokens: 10, outputTokens: 10, durationMs: 1 }
      const turn = request.messages.filter((m) => m.role === 'assistant').length
      log.push(`${request.role}#${turn}`)
      if (request.role === 'auditor') return { content: 'All good.', toolCalls: [], usage }
      if (turn > 0) return { content: 'Wrote a.txt.', toolCalls: [], usage }
      asked()
      await opened
      return {
        content: '',
        toolCalls: [{ id: 'c1', name: 'write_file', arguments: { path: 'a.txt', content: 'written once\n' } }],
        usage,
      }
    },
  })
  return { factory, firstAsk, log, release: () => release() }
}

describe('a full disk', () => {
  it('pauses the loop at its last good record, runs no side-effect tool, and resume completes it once space is back', async (ctx) => {
    if (!mounted) {
      console.warn('storage-faults: skipped: this process may not mount a tmpfs (mount -t tmpfs needs CAP_SYS_ADMIN)')
      ctx.skip()
    }
    const ws = join(root, 'ws')
    await mkdir(ws)
    const model = gatedModel()
    const problems: string[] = []
    engine = await createEngine({ dataDir: mnt, resume: false, providers: { gate: model.factory }, onProblem: (m) => problems.push(m) })
    const h = await engine.start({ goal: 'write a file' }, { name: 'full', models: ['gate:m'], workspace: ws, stallTimeoutMs: 600_000 })
    await model.firstAsk
    const record = () => readFile(join(mnt, 'loops', 'full.json'), 'utf8')
    // the session's start is on disk before the disk fills
    let before = await record()
    while (!before.includes('"journal":{')) {
      await new Promise((r) => setTimeout(r, 10))
      before = await record()
    }
    const filler = await fill(mnt)
    const paused = new Promise<void>((resolve) => h.subscribe((v) => v.status === 'paused' && resolve()))
    model.release()
    await paused
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(/^engine: could not save loop full: .*ENOSPC.*; paused at its last saved state \(free space, then resume it\)$/)
    expect(h.view().status).toBe('paused')
    expect(existsSync(join(ws, 'a.txt'))).toBe(false)
    // the last good record is intact on disk
    expect(await record()).toBe(before)
    expect(JSON.parse(before)).toMatchObject({ status: 'running', phase: 'coding' })

    await rm(filler)
    h.resume()
    expect(await h.done).toMatchObject({ status: 'completed', reason: 'completed' })
    expect(await readFile(join(ws, 'a.txt'), 'utf8')).toBe('written once\n')
    expect(JSON.parse(await record())).toMatchObject({ status: 'completed', reason: 'completed' })
    // the answer that could not be saved was asked again; nothing saved as done was redone
    expect(model.log).toEqual(['coder#0', 'coder#0', 'coder#1', 'auditor#0'])
  })
})
