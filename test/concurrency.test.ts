/**
 * Several real `loopstate` processes on one data dir: every loop has one owner.
 * Each scripted model call is logged (LOOPSTATE_SCRIPTED_LOG) with the pid that
 * made it, so "ran once" is checked on what the models were asked, not on what the
 * processes say; and what each process printed must match what happened.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { JsonStore } from '../adapters/json-store.ts'
import { createEngine } from '../services/engine.ts'
import { calls, hang, text } from './helpers/loop-harness.ts'

const BIN = fileURLToPath(new URL('../scripts/loopstate.js', import.meta.url))

let dir: string
let data: string
let ws: string
let log: string
const children: ChildProcess[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loopstate-concurrency-'))
  data = join(dir, 'data')
  ws = join(dir, 'ws')
  log = join(dir, 'calls.jsonl')
  await mkdir(ws)
})

afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGCONT')
      c.kill('SIGKILL')
    }
  }
  await rm(dir, { recursive: true, force: true })
})

interface Run {
  child: ChildProcess
  output: () => string
  exit: Promise<{ code: number | null; stdout: string; stderr: string }>
}

function cli(args: string[]): Run {
  const child = spawn(process.execPath, [BIN, ...args, '--data', data], {
    cwd: dir,
    env: { ...process.env, LOOPSTATE_DATA: undefined, LOOPSTATE_SCRIPTED_LOG: log },
  })
  children.push(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const exit = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr })),
  )
  return { child, output: () => stdout + stderr, exit }
}

async function until(what: string, check: () => boolean | Promise<boolean>, boundMs = 60_000): Promise<void> {
  const deadline = Date.now() + boundMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

interface Call {
  loop: string
  role: string
  call: number
  pid: number
}

function calledBy(): Call[] {
  if (!existsSync(log)) return []
  return readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Call)
}

/** Every loop was asked each of its calls once, all by one process. */
function expectRanOnce(names: string[]): Map<string, number> {
  const byLoop = new Map<string, Call[]>()
  for (const c of calledBy()) byLoop.set(c.loop, [...(byLoop.get(c.loop) ?? []), c])
  const owner = new Map<string, number>()
  for (const name of names) {
    const list = byLoop.get(name) ?? []
    expect(list.length, `${name} was asked something`).toBeGreaterThan(0)
    const keys = list.map((c) => `${c.role}#${c.call}`)
    expect(new Set(keys).size, `${name}: a call asked twice: ${keys.join(' ')}`).toBe(keys.length)
    expect(new Set(list.map((c) => c.pid)).size, `${name}: asked by more than one process`).toBe(1)
    owner.set(name, list[0]!.pid)
  }
  return owner
}

async function scenario(name: string, json: unknown): Promise<string> {
  const file = join(dir, name)
  await writeFile(file, JSON.stringify(json))
  return `scripted:${file}`
}

/** Every record and history log of the data dir parses, and history seqs are unique and increasing. */
async function expectStoreParses(): Promise<void> {
  for (const f of await readdir(join(data, 'loops'))) expect(() => JSON.parse(readFileSync(join(data, 'loops', f), 'utf8')), f).not.toThrow()
  for (const f of await readdir(join(data, 'history'))) {
    const seqs = readFileSync(join(data, 'history', f), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq)
    expect(seqs, f).toEqual([...seqs].sort((a, b) => a - b))
    expect(new Set(seqs).size, f).toBe(seqs.length)
  }
}

/** A loop of three calls; the first takes a while, so that the loops saved by savedLoops are still unfinished. */
const WORK = { coder: [calls([['write_file', { path: 'a.txt', content: 'a' }]], 1000), text('done')], auditor: [text('All good.')] }

/** Saves `n` unfinished loops (one running, the rest queued) that no process runs. */
async function savedLoops(n: number): Promise<string[]> {
  const model = await scenario('work.json', WORK)
  const engine = await createEngine({ dataDir: data, resume: false, maxConcurrentLoops: 1, onProblem: () => {} })
  const names: string[] = []
  for (let i = 0; i < n; i++) names.push((await engine.start({ goal: `loop ${i}` }, { models: [model], workspace: ws })).name)
  await engine.close()
  return names
}

/** The names a `resume --all` listed under its `resuming N unfinished loops` line. */
function resumedBy(stdout: string): string[] {
  const lines = stdout.split('\n')
  const at = lines.findIndex((l) => l.startsWith('resuming '))
  if (at < 0) return []
  const names: string[] = []
  for (const line of lines.slice(at + 1)) {
    const m = /^ {2}(\S+) {2}/.exec(line)
    if (!m) break
    names.push(m[1]!)
  }
  return names
}

describe('one owner per loop, across processes', { timeout: 120_000 }, () => {
  it('two resume --all started together split the loops: each ran once, by the process that listed it', async () => {
    const names = await savedLoops(12)
    const a = cli(['resume', '--all', '--max-concurrent', '12'])
    const b = cli(['resume', '--all', '--max-concurrent', '12'])
    const [ra, rb] = await Promise.all([a.exit, b.exit])
    expect(ra.code, ra.stderr).toBe(0)
    expect(rb.code, rb.stderr).toBe(0)
    const listedA = resumedBy(ra.stdout)
    const listedB = resumedBy(rb.stdout)
    expect([...listedA, ...listedB].sort()).toEqual([...names].sort())
    const owner = expectRanOnce(names)
    for (const n of listedA) expect(owner.get(n), n).toBe(a.child.pid)
    for (const n of listedB) expect(owner.get(n), n).toBe(b.child.pid)
    const records = await new JsonStore(data).list()
    expect(records.map((r) => [r.name, r.status])).toEqual(names.map((n) => [n, 'completed']))
    await expectStoreParses()
    expect(await readdir(join(data, 'claims'))).toEqual([])
  })

  it('two run --name same at once: one runs it, the other is refused, and the record is the one that ran', async () => {
    const model = await scenario('work.json', WORK)
    const args = ['run', '--goal', 'same work', '--name', 'same', '--model', model, '--workspace', ws]
    const [ra, rb] = await Promise.all([cli(args).exit, cli(args).exit])
    const results = [ra, rb].sort((x, y) => (x.code ?? 9) - (y.code ?? 9))
    expect(results[0]!.code, results[0]!.stderr).toBe(0)
    expect(results[0]!.stdout).toContain('loop same completed (completed)')
    expect(results[1]!.code).not.toBe(0)
    expect(results[1]!.stderr).toMatch(/loopstate: name: a loop named 'same' (already exists|is being started or run by process \d+)/)
    expectRanOnce(['same'])
    const record = await new JsonStore(data).get('same')
    expect(record).toMatchObject({ status: 'completed', reason: 'completed' })
    await expectStoreParses()
  })

  it('resume racing an offline cancel: the cancel is applied once, whichever wins, and both say what happened', async () => {
    const model = await scenario('slow.json', { coder: [hang()] })
    const engine = await createEngine({ dataDir: data, resume: false, onProblem: () => {} })
    await engine.start({ goal: 'contested' }, { models: [model], workspace: ws, stallTimeoutMs: 600_000 })
    await engine.close()
    const resume = cli(['resume', 'contested'])
    const cancel = cli(['cancel', 'contested'])
    const [rr, rc] = await Promise.all([resume.exit, cancel.exit])
    expect(rc.code, rc.stderr).toBe(0)
    const record = await new JsonStore(data).get('contested')
    expect(record).toMatchObject({ status: 'cancelled', reason: 'user_cancelled' })
    if (rc.stdout.includes('applied to the store')) {
      // the cancel had the claim: the resume found the loop ended, or held by the cancel's process
      expect(rr.code).not.toBe(0)
      expect(rr.stderr).toMatch(/loop contested (already ended \(cancelled|is running in process \d+|is not paused \(running in process \d+\))/)
    } else {
      // the resume had it: the cancel went to it and it ended cancelled
      expect(rc.stdout).toContain('loop contested cancelled (user_cancelled)')
      expect(rr.code).toBe(4)
    }
    await expectStoreParses()
  })

  it('a command to a frozen owner is withdrawn when it is not taken, and never applied later', async () => {
    const model = await scenario('slow.json', { coder: [hang()] })
    const owner = cli(['run', '--goal', 'frozen owner', '--name', 'frozen', '--model', model, '--workspace', ws, '--config', await stallConfig()])
    await until('the loop to run', async () => (await new JsonStore(data).get('frozen'))?.phase === 'coding' && existsSync(join(data, 'claims', 'frozen')))
    owner.child.kill('SIGSTOP')
    const cancel = await cli(['cancel', 'frozen']).exit
    expect(cancel.code).toBe(1)
    expect(cancel.stderr).toMatch(/sent cancel to loop frozen \(process \d+\) but it did not take it within 5 s; withdrawn: nothing was applied/)
    expect(await readdir(join(data, 'inbox', 'frozen'))).toEqual([])
    owner.child.kill('SIGCONT')
    // the owner runs on, and the withdrawn cancel never reaches it: a second cancel is the one that lands
    const say = await cli(['say', 'frozen', 'still there?']).exit
    expect(say.stdout).toContain('message delivered to loop frozen')
    expect((await new JsonStore(data).get('frozen'))?.status).toBe('running')
    const again = await cli(['cancel', 'frozen']).exit
    expect(again.stdout).toContain('loop frozen cancelled (user_cancelled)')
    expect((await owner.exit).code).toBe(4)
  })

  it('commands to a queued loop: say does not start it, pause and cancel do what they say', async () => {
    const hangs = await scenario('hang.json', { coder: [hang()] })
    const engine = await createEngine({ dataDir: data, resume: false, maxConcurrentLoops: 1, onProblem: () => {} })
    await engine.start({ goal: 'first' }, { name: 'first', models: [hangs], workspace: ws, stallTimeoutMs: 600_000 })
    await engine.start({ goal: 'second' }, { name: 'second', models: [hangs], workspace: ws, stallTimeoutMs: 600_000 })
    await engine.start({ goal: 'third' }, { name: 'third', models: [hangs], workspace: ws, stallTimeoutMs: 600_000 })
    await engine.close()
    const owner = cli(['resume', '--all', '--max-concurrent', '1'])
    await until('resume --all to start', () => owner.output().includes('resuming 3 unfinished loops'))
    const say = await cli(['say', 'second', 'hello while you wait']).exit
    expect(say.stdout, say.stderr).toContain('message delivered to loop second')
    await until('the message on the record', async () => {
      const r = await new JsonStore(data).get('second')
      return JSON.stringify(r?.snapshot).includes('hello while you wait')
    })
    // still waiting for its slot: no model call was made for it
    expect(calledBy().filter((c) => c.loop === 'second')).toEqual([])
    const pause = await cli(['pause', 'third']).exit
    expect(pause.stdout, pause.stderr).toContain('loop third paused')
    const cancel = await cli(['cancel', 'second']).exit
    expect(cancel.stdout, cancel.stderr).toContain('loop second cancelled (user_cancelled)')
    expect(calledBy().filter((c) => c.loop !== 'first')).toEqual([])
    const stop = await cli(['cancel', 'first']).exit
    expect(stop.stdout).toContain('loop first cancelled')
    const end = await owner.exit
    expect(end.stdout).toMatch(/third\s+paused/)
    expect((await new JsonStore(data).get('third'))?.status).toBe('paused')
  })
})

async function stallConfig(): Promise<string> {
  const file = join(dir, 'config.json')
  await writeFile(file, JSON.stringify({ stallTimeoutMs: 600_000 }))
  return file
}

