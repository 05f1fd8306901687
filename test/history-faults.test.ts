/**
 * Faults in the store's own files: a torn history line (a crash mid-append) stays
 * one bad line and the next append starts on a line of its own; a quarantined
 * record takes its history aside with it; a record whose snapshot cannot be used is
 * reported while the healthy loops are listed and resumed.
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { appendFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { JsonStore } from '../adapters/json-store.ts'
import { createEngine, type Engine } from '../services/engine.ts'
import { text } from './helpers/loop-harness.ts'

const BIN = fileURLToPath(new URL('../scripts/loopstate.js', import.meta.url))
let dir: string
const engines: Engine[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loopstate-history-faults-'))
})

afterEach(async () => {
  for (const e of engines.splice(0)) await e.close()
  await rm(dir, { recursive: true, force: true })
})

const entry = (n: number) => ({ at: `2026-01-01T00:00:0${n}.000Z`, event: `e${n}`, from: 'a', to: 'b', iteration: 1, phase: 'coding' as const })

describe('store faults', () => {
  it('an append after a torn history line starts on a new line: every complete entry is read back, seqs unique', async () => {
    const store = new JsonStore(dir)
    await store.appendHistory('loop', [entry(1), entry(2)], 100)
    await appendFile(join(dir, 'history', 'loop.jsonl'), '{"seq":3,"at":"2026-01-01T00:0') // the crash
    const reopened = new JsonStore(dir)
    await reopened.appendHistory('loop', [entry(3)], 100)
    await reopened.appendHistory('loop', [entry(4)], 100)
    const history = await reopened.history('loop')
    expect(history.map((e) => [e.seq, e.event])).toEqual([[1, 'e1'], [2, 'e2'], [3, 'e3'], [4, 'e4']])
  })

  it('a quarantined record takes its history aside, so a new loop of its name starts with none', async () => {
    const store = new JsonStore(dir, { onProblem: () => {} })
    await store.appendHistory('gone', [entry(1)], 100)
    await mkdir(join(dir, 'loops'), { recursive: true })
    await writeFile(join(dir, 'loops', 'gone.json'), '{"schemaVersion": 3, "na')
    const problems: string[] = []
    const fresh = new JsonStore(dir, { onProblem: (m) => problems.push(m) })
    expect(await fresh.list()).toEqual([])
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(/gone\.json: not valid JSON; moved aside to .*gone\.json\.quarantined-\S+ \(its history to .*gone\.jsonl\.quarantined-\S+\)$/)
    expect(await fresh.history('gone')).toEqual([])
    expect((await readdir(join(dir, 'history'))).some((f) => f.startsWith('gone.jsonl.quarantined-'))).toBe(true)
    expect(existsSync(join(dir, 'history', 'gone.jsonl'))).toBe(false)
  })

  it('a record with a valid header and no usable snapshot is quarantined with its history: list exits 0 with the healthy loops and the engine resumes them', async () => {
    const data = join(dir, 'data')
    const model = join(dir, 'ok.json')
    await writeFile(model, JSON.stringify({ coder: [text('a', 300)], auditor: [text('ok')] }))
    const a = await createEngine({ dataDir: data, resume: false, onProblem: () => {} })
    await a.start({ goal: 'healthy' }, { name: 'healthy', models: [`scripted:${model}`], workspace: dir })
    await a.close()
    const header = { schemaVersion: 3, name: 'hollow', status: 'running', reason: null, phase: 'coding', iteration: 1, createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z' }
    await writeFile(join(data, 'loops', 'hollow.json'), JSON.stringify({ ...header, snapshot: {} }))
    await writeFile(join(data, 'history', 'hollow.jsonl'), '{"seq":1,"at":"2026-01-01T00:00:00.000Z","event":"x","from":"","to":"running","iteration":1,"phase":"coding"}\n')
    const listed = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [BIN, 'list', '--data', data], { env: { ...process.env, LOOPSTATE_DATA: undefined } }, (err, stdout, stderr) =>
        resolve({ code: err ? (err.code as number) : 0, stdout, stderr }),
      ),
    )
    expect(listed.code, listed.stderr).toBe(0)
    expect(listed.stdout).toContain('healthy')
    expect(listed.stdout).not.toContain('hollow')
    expect(listed.stderr).toMatch(/hollow\.json: no usable snapshot \(its snapshot has no actor status\); moved aside to .*hollow\.json\.quarantined-/)
    // moved aside with its history, like any bad file: a new loop of the name starts clean
    expect((await readdir(join(data, 'loops'))).filter((f) => f.startsWith('hollow.json.quarantined-'))).toHaveLength(1)
    expect((await readdir(join(data, 'history'))).filter((f) => f.startsWith('hollow.jsonl.quarantined-'))).toHaveLength(1)
    expect(existsSync(join(data, 'loops', 'hollow.json'))).toBe(false)
    const b = await createEngine({ dataDir: data, onProblem: () => {} })
    engines.push(b)
    expect(await b.handle('healthy')!.done).toMatchObject({ status: 'completed' })
    expect(b.handle('hollow')).toBeUndefined()
    expect(await b.history('healthy')).not.toEqual([])
    await expect(b.history('hollow')).rejects.toThrow("history: no loop named 'hollow'")
    expect(await readdir(join(data, 'claims'))).toEqual([])
  })
})
