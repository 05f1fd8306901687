/**
 * Session journals out of the record (adapters/json-journal.ts): a turn costs the
 * size of the turn, not of the whole transcript; the messages a record counts are
 * on file before it lands; a torn last line and lines past the record's count are
 * handled; transcripts stay after their session, the oldest dropped.
 */
import { appendFile, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { dataDirLayout } from '../adapters/data-dir.ts'
import { JsonStore } from '../adapters/json-store.ts'
import type { LoopRecord } from '../adapters/snapshot-store.ts'
import { createEngine } from '../services/engine.ts'
import { loopSnapshot, makeRecord } from './contracts/snapshot-store.contract.ts'
import { calls, text } from './helpers/loop-harness.ts'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loopstate-journal-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** The record of a loop whose session `id` has these messages (the way the engine builds them: appended copies). */
function withJournal(name: string, id: number, contents: string[]): LoopRecord {
  const record = makeRecord(name, { snapshot: loopSnapshot(name) })
  const messages = contents.map((content, i) => (i === 0 ? { role: 'system' as const, content } : { role: 'user' as const, content }))
  record.snapshot.context.journal = { id, phase: 'coding', iteration: 1, sectionIndex: 0, role: 'coder', messages, delivered: 0, running: [] }
  return record
}

describe('session journal files', () => {
  it('keeps the messages out of the record and gives them back when the record is read', async () => {
    const store = new JsonStore(dir)
    await store.put(withJournal('alpha', 1, ['sys', 'hello', 'world']))
    const onDisk = JSON.parse(await readFile(store.pathOf('alpha'), 'utf8')) as LoopRecord
    expect(onDisk.snapshot.context.journal).toMatchObject({ id: 1, messages: [], onDisk: 3 })
    expect((await new JsonStore(dir).get('alpha'))!.snapshot.context.journal!.messages.map((m) => m.content)).toEqual(['sys', 'hello', 'world'])
    expect((await new JsonStore(dir).list())[0]!.snapshot.context.journal!.messages).toHaveLength(3)
  })

  it('a turn costs the size of the turn: 80 turns write O(turns) bytes, and the record stays small', async () => {
    const measure = async (turns: number) => {
      const data = join(dir, `d${turns}`)
      const store = new JsonStore(data)
      const record = withJournal('grow', 1, ['sys', 'prompt'])
      let recordBytes = 0
      for (let t = 0; t < turns; t++) {
        const j = record.snapshot.context.journal!
        // an assistant turn with two tool calls and their results, as the machine appends them
        const call = (k: number) => ({ id: `c${t}-${k}`, name: 'read_file', arguments: { path: `src/file-${k}.ts` } })
        const messages = [
          ...j.messages,
          { role: 'assistant' as const, content: `turn ${t}: reading two files`, toolCalls: [call(1), call(2)] },
          { role: 'tool' as const, content: 'x'.repeat(600), toolCallId: `c${t}-1`, toolName: 'read_file' },
          { role: 'tool' as const, content: 'y'.repeat(600), toolCallId: `c${t}-2`, toolName: 'read_file' },
        ]
        // a new record per save, as the engine builds them; the earlier messages are the same objects
        const next = { ...record, snapshot: { ...record.snapshot, context: { ...record.snapshot.context, journal: { ...j, messages } } } }
        record.snapshot = next.snapshot
        await store.put(next)
        recordBytes += (await stat(store.pathOf('grow'))).size
      }
      const journalBytes = (await stat(dataDirLayout(data).journal('grow'))).size
      return { recordBytes, journalBytes, lastRecord: (await stat(store.pathOf('grow'))).size }
    }
    const at40 = await measure(40)
    const at80 = await measure(80)
    // twice the turns: about twice the bytes (a whole transcript per save would be four times)
    expect(at80.recordBytes / at40.recordBytes).toBeLessThan(2.3)
    expect(at80.journalBytes / at40.journalBytes).toBeLessThan(2.3)
    expect(at80.lastRecord).toBeLessThan(20_000)
  })

  it('a read of a loop this store is writing does not make it write the session again', async () => {
    const store = new JsonStore(dir)
    const record = withJournal('alpha', 1, ['sys', 'a'])
    await store.put(record)
    await store.list() // e.g. engine.list() while the loop runs
    const j = record.snapshot.context.journal!
    await store.put({ ...record, snapshot: { ...record.snapshot, context: { ...record.snapshot.context, journal: { ...j, messages: [...j.messages, { role: 'user', content: 'b' }] } } } })
    const lines = (await readFile(dataDirLayout(dir).journal('alpha'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { i?: number })
    expect(lines.map((l) => l.i ?? 'head')).toEqual(['head', 0, 1, 2])
  })

  it('uses only the messages its record counts: lines a crash left past them are not read back', async () => {
    const store = new JsonStore(dir)
    await store.put(withJournal('alpha', 1, ['sys', 'a', 'b']))
    // the next turn's line is on file, its record never landed (killed in between)
    await appendFile(dataDirLayout(dir).journal('alpha'), `${JSON.stringify({ s: 1, i: 3, m: { role: 'user', content: 'not counted' } })}\n`)
    const j = (await new JsonStore(dir).get('alpha'))!.snapshot.context.journal!
    expect(j.messages.map((m) => m.content)).toEqual(['sys', 'a', 'b'])
  })

  it('skips a torn last line, and the next append starts on a line of its own', async () => {
    await new JsonStore(dir).put(withJournal('alpha', 1, ['sys', 'a']))
    await appendFile(dataDirLayout(dir).journal('alpha'), '{"s":1,"i":2,"m":{"role":"us')
    const store = new JsonStore(dir) // another process: it has not appended to this file yet
    const read = (await store.get('alpha'))!
    expect(read.snapshot.context.journal!.messages).toHaveLength(2)
    const j = read.snapshot.context.journal!
    await store.put({ ...read, snapshot: { ...read.snapshot, context: { ...read.snapshot.context, journal: { ...j, messages: [...j.messages, { role: 'user', content: 'b' }] } } } })
    expect((await new JsonStore(dir).get('alpha'))!.snapshot.context.journal!.messages.map((m) => m.content)).toEqual(['sys', 'a', 'b'])
  })

  it('a transcript rebuilt in place (shortened to fit the context) is written again whole', async () => {
    const store = new JsonStore(dir)
    const record = withJournal('alpha', 1, ['sys', 'x'.repeat(1000), 'tail'])
    await store.put(record)
    const j = record.snapshot.context.journal!
    const shortened = j.messages.map((m, i) => (i === 1 ? { ...m, content: 'x…[shortened]' } : { ...m }))
    await store.put({ ...record, snapshot: { ...record.snapshot, context: { ...record.snapshot.context, journal: { ...j, messages: shortened } } } })
    expect((await new JsonStore(dir).get('alpha'))!.snapshot.context.journal!.messages.map((m) => m.content)).toEqual(['sys', 'x…[shortened]', 'tail'])
  })

  it('a journal whose file is gone is dropped (its session starts over), said once, and the loop still loads', async () => {
    await new JsonStore(dir).put(withJournal('alpha', 1, ['sys', 'a']))
    await rm(dataDirLayout(dir).journal('alpha'))
    const problems: string[] = []
    const read = await new JsonStore(dir, { onProblem: (m) => problems.push(m) }).get('alpha')
    expect(read!.snapshot.context.journal).toBeNull()
    expect(problems).toEqual([`snapshot-store: ${dataDirLayout(dir).journal('alpha')}: session 1 has 0 of its 2 messages; its session starts over`])
  })

  it('keeps the transcripts of the last keepSessions sessions', async () => {
    const store = new JsonStore(dir, { keepSessions: 3 })
    for (let id = 1; id <= 5; id++) await store.put(withJournal('alpha', id, ['sys', `session ${id}`]))
    const sessions = await store.transcript('alpha')
    expect(sessions.map((s) => s.id)).toEqual([3, 4, 5])
    expect(sessions[2]).toMatchObject({ head: { role: 'coder', phase: 'coding', iteration: 1 }, messages: [{ content: 'sys' }, { content: 'session 5' }] })
  })

  it('keeps every session of a loop after it ends, coder and auditor, with tool calls and results', async () => {
    const model = join(dir, 'm.json')
    await writeFile(model, JSON.stringify({ coder: [calls([['write_file', { path: 'a.txt', content: 'hi' }]]), text('wrote a.txt')], auditor: [text('All good.')] }))
    const e = await createEngine({ dataDir: join(dir, 'data'), onProblem: () => {} })
    const h = await e.start({ goal: 'g' }, { name: 'kept', models: [`scripted:${model}`], workspace: dir })
    await h.done
    await e.close()
    const sessions = await new JsonStore(join(dir, 'data')).transcript('kept')
    expect(sessions.map((s) => s.head?.role)).toEqual(['coder', 'auditor'])
    const coder = sessions[0]!.messages
    expect(coder.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool', 'assistant'])
    expect(coder[2]).toMatchObject({ toolCalls: [{ name: 'write_file', arguments: { path: 'a.txt', content: 'hi' } }] })
    expect(coder[3]).toMatchObject({ toolName: 'write_file' })
    expect(sessions[1]!.messages.at(-1)).toMatchObject({ role: 'assistant', content: 'All good.' })
    // the record kept none of it
    expect((await readdir(join(dir, 'data', 'journal')))).toEqual(['kept.jsonl'])
  })

  it('createEngine({ keepSessions }) bounds what a loop keeps', async () => {
    const model = join(dir, 'm.json')
    const bug = calls([['report_finding', { file: 'a.txt', line: 1, severity: 'bug', message: 'wrong' }]])
    await writeFile(model, JSON.stringify({
      coder: [calls([['write_file', { path: 'a.txt', content: '1' }]]), text('1'), calls([['write_file', { path: 'a.txt', content: '2' }]]), text('2')],
      auditor: [bug, text('Wrong.'), calls([['resolve_finding', { id: 'F1' }]]), text('Fixed.')],
    }))
    const e = await createEngine({ dataDir: join(dir, 'data'), onProblem: () => {}, keepSessions: 2 })
    const h = await e.start({ goal: 'g' }, { name: 'bounded', models: [`scripted:${model}`], workspace: dir })
    expect(await h.done).toMatchObject({ status: 'completed', iteration: 2 })
    await e.close()
    const sessions = await new JsonStore(join(dir, 'data')).transcript('bounded')
    expect(sessions.map((s) => [s.id, s.head?.role])).toEqual([
      [3, 'coder'],
      [4, 'auditor'],
    ])
  })
})
