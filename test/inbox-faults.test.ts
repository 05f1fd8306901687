/**
 * Bad entries in a loop's inbox (a directory, a FIFO, a symlink, garbage, an
 * oversized file, all named `*.json`) beside a real command: the owner neither
 * crashes nor hangs, applies the real command, reports each bad entry once and
 * moves it aside, so a later owner is fine too.
 */
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { JsonInbox } from '../adapters/inbox.ts'
import { createEngine, type Engine } from '../services/engine.ts'
import { hang } from './helpers/loop-harness.ts'

let dir: string
const engines: Engine[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loopstate-inbox-'))
})

afterEach(async () => {
  for (const e of engines.splice(0)) await e.close()
  await rm(dir, { recursive: true, force: true })
})

describe('a loop inbox with bad entries', () => {
  it('applies the real command, reports and moves aside each bad entry once, and the next owner is fine', async () => {
    const data = join(dir, 'data')
    const model = join(dir, 'hang.json')
    await writeFile(model, JSON.stringify({ coder: [hang()] }))
    const first = await createEngine({ dataDir: data, resume: false, onProblem: () => {} })
    await first.start({ goal: 'target' }, { name: 'target', models: [`scripted:${model}`], workspace: dir, stallTimeoutMs: 600_000 })
    await first.close()

    const inbox = join(data, 'inbox', 'target')
    await mkdir(join(inbox, 'a-dir.json'), { recursive: true })
    execFileSync('mkfifo', [join(inbox, 'b-fifo.json')])
    await symlink('/etc/passwd', join(inbox, 'c-link.json'))
    await writeFile(join(inbox, 'd-garbage.json'), 'not json')
    await writeFile(join(inbox, 'e-huge.json'), 'x'.repeat(100 * 1024))
    await writeFile(join(inbox, 'f-unknown.json'), JSON.stringify({ type: 'loop.explode' }))
    await new JsonInbox(data).send('target', { type: 'loop.say', text: 'still here' })

    const problems: string[] = []
    const owner = await createEngine({ dataDir: data, commandPollMs: 20, onProblem: (m) => problems.push(m) })
    engines.push(owner)
    const h = owner.handle('target')!
    // the real command got through
    const deadline = Date.now() + 30_000
    while (!(await owner.get('target'))?.inbox.includes('still here')) {
      if (Date.now() > deadline) throw new Error('the say never arrived')
      await new Promise((r) => setTimeout(r, 20))
    }
    await new JsonInbox(data).send('target', { type: 'loop.cancel' })
    expect(await h.done).toMatchObject({ status: 'cancelled' })
    const bad = problems.filter((p) => p.startsWith('control: '))
    expect(bad.map((p) => p.replace(/ to .*\.bad-\d+$/, ''))).toEqual([
      `control: ${join(inbox, 'a-dir.json')}: not a command file (a directory); moved aside`,
      `control: ${join(inbox, 'b-fifo.json')}: not a command file (a FIFO); moved aside`,
      `control: ${join(inbox, 'c-link.json')}: not a command file (a symbolic link); moved aside`,
      `control: ${join(inbox, 'd-garbage.json')}: not a command (4 kinds: loop.cancel, loop.pause, loop.resume, loop.say); moved aside`,
      `control: ${join(inbox, 'e-huge.json')}: not a command file (102400 bytes, over 65536); moved aside`,
      `control: ${join(inbox, 'f-unknown.json')}: not a command (4 kinds: loop.cancel, loop.pause, loop.resume, loop.say); moved aside`,
    ])
    const left = await readdir(inbox)
    expect(left.filter((f) => f.endsWith('.json'))).toEqual([])
    expect(left.filter((f) => /\.bad-\d+$/.test(f))).toHaveLength(6)
  })
})
