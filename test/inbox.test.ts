/**
 * The command inbox (adapters/inbox.ts): the contract against JsonInbox (files in a
 * temp data dir) and MemoryInbox, then what only the file inbox does.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { JsonInbox, MAX_COMMAND_BYTES, MemoryInbox } from '../adapters/inbox.ts'
import { commandInboxContract } from './contracts/command-inbox.contract.ts'

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'loopstate-inbox-'))
  onTestFinished(() => rm(dir, { recursive: true, force: true }))
  return dir
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

commandInboxContract('memory', async () => ({ inbox: new MemoryInbox() }))

commandInboxContract('json', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'loopstate-inbox-'))
  return { inbox: new JsonInbox(dir), cleanup: () => rm(dir, { recursive: true, force: true }) }
})

describe('JsonInbox', () => {
  it('keeps a command as inbox/<name>/<id>.json holding the event, with no temp file left', async () => {
    const dir = await tempDir()
    const inbox = new JsonInbox(dir)
    const ticket = await inbox.send('alpha', { type: 'loop.say', text: 'hi' })
    expect(await readdir(join(dir, 'inbox'))).toEqual(['alpha'])
    expect(await readdir(join(dir, 'inbox', 'alpha'))).toEqual([`${ticket.id}.json`])
    expect(JSON.parse(await readFile(join(dir, 'inbox', 'alpha', `${ticket.id}.json`), 'utf8'))).toEqual({ type: 'loop.say', text: 'hi' })
    expect(await inbox.take('alpha')).toEqual([{ type: 'loop.say', text: 'hi' }])
    // taken: nothing of it is left (no .json, no .taking), and the emptied directory goes
    expect(await readdir(join(dir, 'inbox'))).toEqual([])
    // a later command makes it again
    const again = await inbox.send('alpha', { type: 'loop.pause' })
    expect(await readdir(join(dir, 'inbox', 'alpha'))).toEqual([`${again.id}.json`])
  })

  it('another process (another JsonInbox on the same data dir) takes what one sent; the sender sees it taken', async () => {
    const dir = await tempDir()
    const sender = new JsonInbox(dir)
    const owner = new JsonInbox(dir)
    const a = await sender.send('alpha', { type: 'loop.pause' })
    const b = await sender.send('alpha', { type: 'loop.say', text: 'two' })
    expect(await owner.waiting()).toEqual(['alpha'])
    expect(await owner.take('alpha')).toEqual([{ type: 'loop.pause' }, { type: 'loop.say', text: 'two' }])
    expect(await sender.taken(a)).toBe(true)
    expect(await sender.taken(b)).toBe(true)
    expect(await sender.withdraw(a)).toBe(false)
    const c = await sender.send('alpha', { type: 'loop.cancel' })
    expect(await sender.withdraw(c)).toBe(true)
    expect(await owner.take('alpha')).toEqual([])
  })

  it('takes a command of exactly MAX_COMMAND_BYTES', async () => {
    const dir = await tempDir()
    const inbox = new JsonInbox(dir)
    const overhead = Buffer.byteLength(JSON.stringify({ type: 'loop.say', text: '' }))
    const text = 'y'.repeat(MAX_COMMAND_BYTES - overhead)
    const ticket = await inbox.send('alpha', { type: 'loop.say', text })
    const file = join(dir, 'inbox', 'alpha', `${ticket.id}.json`)
    expect(Buffer.byteLength(await readFile(file, 'utf8'))).toBe(MAX_COMMAND_BYTES)
    const problems: string[] = []
    const taken = await inbox.take('alpha', (m) => problems.push(m))
    expect(problems).toEqual([])
    expect(taken).toHaveLength(1)
    expect((taken[0] as { text: string }).text === text).toBe(true)
  })

  it('an entry that is no command (not JSON, unknown type, a say without text, a directory) is reported once, moved aside, never returned', async () => {
    const dir = await tempDir()
    const inbox = new JsonInbox(dir)
    await inbox.send('alpha', { type: 'loop.say', text: 'before' })
    const box = join(dir, 'inbox', 'alpha')
    // named to sort after the sent ones (their ids start with digits)
    const bad = {
      'a-not-json.json': '{"type": "loop.pa',
      'b-unknown.json': JSON.stringify({ type: 'loop.explode' }),
      'c-say-no-text.json': JSON.stringify({ type: 'loop.say', text: 42 }),
      'd-array.json': '[1, 2]',
    }
    for (const [f, content] of Object.entries(bad)) await writeFile(join(box, f), content)
    await mkdir(join(box, 'e-dir.json'))
    await writeFile(join(box, 'e-dir.json', 'inside'), 'x')
    await inbox.send('alpha', { type: 'loop.cancel' })

    const problems: string[] = []
    const taken = await inbox.take('alpha', (m) => problems.push(m))
    expect(taken).toEqual([{ type: 'loop.say', text: 'before' }, { type: 'loop.cancel' }])
    const notCommand = 'not a command (4 kinds: loop.cancel, loop.pause, loop.resume, loop.say); moved aside to'
    expect(problems).toHaveLength(5)
    expect(problems).toEqual([
      expect.stringMatching(new RegExp(`^control: ${escape(join(box, 'a-not-json.json'))}: ${escape(notCommand)} ${escape(join(box, 'a-not-json.json'))}\\.bad-\\d+$`)),
      expect.stringMatching(new RegExp(`^control: ${escape(join(box, 'b-unknown.json'))}: ${escape(notCommand)} `)),
      expect.stringMatching(new RegExp(`^control: ${escape(join(box, 'c-say-no-text.json'))}: ${escape(notCommand)} `)),
      expect.stringMatching(new RegExp(`^control: ${escape(join(box, 'd-array.json'))}: ${escape(notCommand)} `)),
      expect.stringMatching(
        new RegExp(`^control: ${escape(join(box, 'e-dir.json'))}: not a command file \\(a directory\\); moved aside to ${escape(join(box, 'e-dir.json'))}\\.bad-\\d+$`),
      ),
    ])
    // moved aside with its content intact, where the report says
    for (const [i, [f, content]] of Object.entries(bad).entries()) {
      const to = problems[i]!.split('moved aside to ')[1]!
      expect(to.startsWith(join(box, `${f}.bad-`))).toBe(true)
      expect(await readFile(to, 'utf8')).toBe(content)
    }
    const left = await readdir(box)
    expect(left.filter((f) => f.endsWith('.json'))).toEqual([])
    expect(left.filter((f) => f.includes('.taking'))).toEqual([])
    expect(left.filter((f) => /\.bad-\d+$/.test(f))).toHaveLength(5)
    // reported once: neither this owner nor a later one meets them again
    expect(await inbox.take('alpha', (m) => problems.push(m))).toEqual([])
    expect(await new JsonInbox(dir).take('alpha', (m) => problems.push(m))).toEqual([])
    expect(problems).toHaveLength(5)
  })

  it('a bad entry is reported through onProblem only: take without a reporter still returns the good commands', async () => {
    const dir = await tempDir()
    const inbox = new JsonInbox(dir)
    await mkdir(join(dir, 'inbox', 'alpha'), { recursive: true })
    await writeFile(join(dir, 'inbox', 'alpha', 'garbage.json'), 'nope')
    await inbox.send('alpha', { type: 'loop.pause' })
    expect(await inbox.take('alpha')).toEqual([{ type: 'loop.pause' }])
    expect((await readdir(join(dir, 'inbox', 'alpha'))).filter((f) => f.endsWith('.json'))).toEqual([])
  })
})
