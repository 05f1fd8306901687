/**
 * Claims (adapters/claims.ts): exclusive, named by pid and process start time, taken
 * over from a dead, zombie or reused-pid owner, and fencing the writes of an owner
 * that lost its claim.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { currentOwner, JsonClaims, MemoryClaims, ownerAlive, processStart, type ClaimStore, type Owner } from '../adapters/claims.ts'
import { createEngine } from '../services/engine.ts'
import { hang } from './helpers/loop-harness.ts'

let dir: string
const children: ChildProcess[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loopstate-claims-'))
})

afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL')
  await rm(dir, { recursive: true, force: true })
})

async function until(what: string, check: () => boolean, boundMs = 30_000): Promise<void> {
  const deadline = Date.now() + boundMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** Writes the current claim of `name` as `owner` held it (as a process that then died would leave it). */
async function leftClaim(name: string, owner: Owner, generation = 1): Promise<void> {
  await mkdir(join(dir, 'claims', name), { recursive: true })
  await writeFile(join(dir, 'claims', name, `${generation}.json`), JSON.stringify(owner))
}

describe.each([
  ['JsonClaims', () => new JsonClaims(dir) as ClaimStore],
  ['MemoryClaims', () => new MemoryClaims() as ClaimStore],
])('%s', (_, make) => {
  it('is exclusive, reentrant for its owner, fenced after a release, and free again after it', async () => {
    const claims = make()
    const a = currentOwner()
    const b = currentOwner()
    const first = await claims.claim('x', a)
    expect('claim' in first).toBe(true)
    if (!('claim' in first)) return
    expect(await claims.claim('x', b)).toMatchObject({ heldBy: a })
    expect(await claims.claim('x', a)).toEqual(first)
    expect(claims.held(first.claim)).toBe(true)
    expect((await claims.holder('x'))?.id).toBe(a.id)
    await claims.release(first.claim)
    expect(await claims.holder('x')).toBeNull()
    const second = await claims.claim('x', b)
    expect('claim' in second && second.claim.owner.id).toBe(b.id)
  })
})

describe('JsonClaims: who counts as the owner', () => {
  it('takes over the claim of a dead process, of a reused pid and of a zombie, never of a live owner', async () => {
    const claims = new JsonClaims(dir)
    const me = currentOwner()
    // dead: a process that ran and exited
    const gone = spawn(process.execPath, ['-e', ''])
    await new Promise((r) => gone.on('exit', r))
    await leftClaim('dead', { id: 'x', pid: gone.pid!, started: null, host: hostname() })
    // reused: a live pid (this very process) with another start time
    await leftClaim('reused', { id: 'x', pid: process.pid, started: '1', host: hostname() })
    // zombie: sh's background child exits while `exec sleep` (which never reaps) stays its parent
    const parent = spawn('sh', ['-c', 'sleep 0.05 & echo $!; exec sleep 60'])
    children.push(parent)
    let out = ''
    parent.stdout!.on('data', (d: Buffer) => (out += d.toString()))
    await until('the zombie pid', () => /\d+\n/.test(out))
    const zombie = Number(out.trim())
    const started = processStart(zombie)
    const state = async () => (await readFile(`/proc/${zombie}/stat`, 'latin1')).split(') ')[1]![0]
    const deadline = Date.now() + 30_000
    while ((await state()) !== 'Z') {
      if (Date.now() > deadline) throw new Error('the child never became a zombie')
      await new Promise((r) => setTimeout(r, 10))
    }
    const zombieOwner = { id: 'x', pid: zombie, started, host: hostname() }
    expect(ownerAlive(zombieOwner)).toBe(false)
    await leftClaim('zombie', zombieOwner)
    // live: the parent process of this test runner
    const live = { id: 'x', pid: process.ppid, started: processStart(process.ppid), host: hostname() }
    await leftClaim('live', live)

    for (const name of ['dead', 'reused', 'zombie']) {
      const got = await claims.claim(name, me)
      expect('claim' in got && got.claim.generation, name).toBe(2)
      expect(await readdir(join(dir, 'claims', name)), name).toEqual(['2.json'])
    }
    expect(await claims.claim('live', me)).toMatchObject({ heldBy: live })
  })

  it('of two owners taking over the same dead claim at once, exactly one wins', async () => {
    await leftClaim('contested', { id: 'x', pid: 999_999_999, started: null, host: hostname() })
    const claims = new JsonClaims(dir)
    const results = await Promise.all(Array.from({ length: 8 }, () => claims.claim('contested', currentOwner())))
    expect(results.filter((r) => 'claim' in r)).toHaveLength(1)
  })
})

describe('fencing', () => {
  it('an engine whose claim another process took stops the loop without saving over the new owner', async () => {
    const model = join(dir, 'hang.json')
    await writeFile(model, JSON.stringify({ coder: [hang()] }))
    const problems: string[] = []
    const data = join(dir, 'data')
    const engine = await createEngine({ dataDir: data, resume: false, onProblem: (m) => problems.push(m) })
    const h = await engine.start({ goal: 'taken' }, { models: [`scripted:${model}`], workspace: dir, stallTimeoutMs: 600_000 })
    // settled: the session has started (its journal is saved) and hangs
    let before = ''
    const deadline = Date.now() + 30_000
    while (!before.includes('"journal":{')) {
      if (Date.now() > deadline) throw new Error('the session never started')
      await new Promise((r) => setTimeout(r, 10))
      before = await readFile(join(data, 'loops', 'taken.json'), 'utf8')
    }
    // another process takes the claim over (as if it had judged this one dead)
    await writeFile(join(data, 'claims', 'taken', '2.json'), JSON.stringify({ id: 'other', pid: process.ppid, started: null, host: hostname() }))
    h.pause()
    await expect(h.done).rejects.toThrow('engine: loop taken: another process took over its claim; stopped here without saving')
    expect(problems).toContain('engine: loop taken: another process took over its claim; stopped here without saving')
    expect(await readFile(join(data, 'loops', 'taken.json'), 'utf8')).toBe(before)
    await engine.close()
  })
})
