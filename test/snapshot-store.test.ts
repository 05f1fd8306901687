import { appendFile, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { JsonStore } from '../adapters/json-store.ts'
import { MemoryStore } from '../adapters/memory-store.ts'
import { SCHEMA_VERSION } from '../adapters/snapshot-store.ts'
import { makeRecord, snapshotStoreContract } from './contracts/snapshot-store.contract.ts'

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'loopstate-store-'))
  onTestFinished(() => rm(dir, { recursive: true, force: true }))
  return dir
}

snapshotStoreContract('memory', async () => ({ store: new MemoryStore() }))

snapshotStoreContract('json', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'loopstate-store-'))
  return {
    store: new JsonStore(dir),
    reopen: async () => new JsonStore(dir),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  }
}, { reopens: true })

describe('JsonStore', () => {
  it('writes each loop to loops/<name>.json as plain JSON', async () => {
    const dir = await tempDir()
    const store = new JsonStore(dir)
    const record = makeRecord('alpha')
    await store.put(record)
    expect(store.pathOf('alpha')).toBe(join(dir, 'loops', 'alpha.json'))
    expect(JSON.parse(await readFile(join(dir, 'loops', 'alpha.json'), 'utf8'))).toEqual(record)
    expect(await readdir(join(dir, 'loops'))).toEqual(['alpha.json'])
  })

  it('creates nothing on disk until the first put', async () => {
    const dir = join(await tempDir(), 'not-yet')
    const store = new JsonStore(dir)
    expect(await store.list()).toEqual([])
    expect(await store.get('alpha')).toBeNull()
    expect(await store.has('alpha')).toBe(false)
    await store.flush()
    await expect(stat(dir)).rejects.toMatchObject({ code: 'ENOENT' })
    await store.put(makeRecord('alpha'))
    expect((await stat(join(dir, 'loops', 'alpha.json'))).isFile()).toBe(true)
  })

  it('moves a corrupt file aside in list, reports it in one line, and never overwrites it', async () => {
    const dir = await tempDir()
    const problems: string[] = []
    const store = new JsonStore(dir, { onProblem: (message) => problems.push(message) })
    await store.put(makeRecord('good'))
    const broken = join(dir, 'loops', 'broken.json')
    await writeFile(broken, '{"schemaVersion": 1, "name": "bro')
    await expect(store.get('broken')).rejects.toThrow(`snapshot-store: ${broken}: not valid JSON`)

    expect((await store.list()).map((r) => r.name)).toEqual(['good'])
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(new RegExp(`^snapshot-store: ${escape(broken)}: not valid JSON; moved aside to ${escape(broken)}\\.quarantined-[0-9T-]+Z$`))
    const aside = problems[0]!.split('moved aside to ')[1]!
    expect(await readFile(aside, 'utf8')).toBe('{"schemaVersion": 1, "name": "bro')
    // the name is free again; a new loop of that name does not touch the quarantined file
    expect(await store.get('broken')).toBeNull()
    await store.put(makeRecord('broken'))
    expect(await readFile(aside, 'utf8')).toBe('{"schemaVersion": 1, "name": "bro')
    expect((await store.list()).map((r) => r.name).sort()).toEqual(['broken', 'good'])
  })

  it('lists hundreds of records (read in batches) with corrupt ones moved aside wherever they are', async () => {
    const dir = await tempDir()
    const problems: string[] = []
    const store = new JsonStore(dir, { onProblem: (message) => problems.push(message) })
    const names = Array.from({ length: 200 }, (_, i) => `loop-${String(i).padStart(3, '0')}`)
    await Promise.all(
      names.map((name, i) => store.put(makeRecord(name, { createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString() }))),
    )
    await store.flush()
    // corrupt ones in the first, a middle and the last batch
    const corrupt = ['loop-000', 'loop-100', 'loop-199']
    for (const name of corrupt) await writeFile(join(dir, 'loops', `${name}.json`), '{"torn')
    const listed = await store.list()
    expect(listed.map((r) => r.name)).toEqual(names.filter((n) => !corrupt.includes(n)))
    expect(problems.map((p) => p.split(': ')[1])).toEqual(corrupt.map((n) => join(dir, 'loops', `${n}.json`)))
    expect((await readdir(join(dir, 'loops'))).filter((f) => f.includes('.quarantined-'))).toHaveLength(3)
  })

  it('refuses and moves aside a record of a newer or unknown schema version', async () => {
    const dir = await tempDir()
    const problems: string[] = []
    const store = new JsonStore(dir, { onProblem: (message) => problems.push(message) })
    const future = store.pathOf('future')
    const ancient = store.pathOf('ancient')
    await store.put(makeRecord('future'))
    await writeFile(future, JSON.stringify(makeRecord('future', { schemaVersion: SCHEMA_VERSION + 1 })))
    await writeFile(ancient, JSON.stringify(makeRecord('ancient', { schemaVersion: 0 })))
    const tooNew = `snapshot-store: ${future}: schema version ${SCHEMA_VERSION + 1} is newer than this loopstate supports (${SCHEMA_VERSION}); upgrade loopstate`
    await expect(store.get('future')).rejects.toThrow(tooNew)
    await expect(store.get('ancient')).rejects.toThrow(`snapshot-store: ${ancient}: schema version 0 is unknown`)
    expect(await store.list()).toEqual([])
    expect(problems.sort()).toEqual([
      expect.stringMatching(new RegExp(`^snapshot-store: ${escape(ancient)}: schema version 0 is unknown .*; moved aside to `)),
      expect.stringMatching(new RegExp(`^${escape(tooNew)}; moved aside to `)),
    ])
  })

  it('reports and moves aside a JSON file that is not a loop record', async () => {
    const dir = await tempDir()
    const problems: string[] = []
    const store = new JsonStore(dir, { onProblem: (message) => problems.push(message) })
    await mkdir(join(dir, 'loops'), { recursive: true })
    await writeFile(join(dir, 'loops', 'notes.json'), '[1, 2]')
    await writeFile(join(dir, 'loops', 'renamed.json'), JSON.stringify(makeRecord('original')))
    expect(await store.list()).toEqual([])
    expect(problems.sort().map((p) => p.split('; moved aside to ')[0])).toEqual([
      `snapshot-store: ${join(dir, 'loops', 'notes.json')}: not a loop record`,
      `snapshot-store: ${join(dir, 'loops', 'renamed.json')}: record name 'original' does not match the file name`,
    ])
  })

  it('migrates a record of the previous schema version when reading it', async () => {
    const dir = await tempDir()
    const store = new JsonStore(dir)
    await mkdir(join(dir, 'loops'), { recursive: true })
    const v1 = await readFile(new URL('./fixtures/v1-record.json', import.meta.url), 'utf8')
    await writeFile(store.pathOf('fix-the-greeting'), v1)
    const record = await store.get('fix-the-greeting')
    expect(record).toMatchObject({ schemaVersion: SCHEMA_VERSION, name: 'fix-the-greeting', status: 'running' })
    expect(record!.snapshot.context).toMatchObject({
      calls: {},
      journal: null,
      stallDeadline: null,
      retryDeadline: null,
      iteration: 2,
      // 3 → 4: the no-progress stop starts counting on the migrated loop
      lastPass: null,
      passesWithoutProgress: 0,
    })
    expect(record!.snapshot.context.config).toMatchObject({ maxReadBytes: 1024 * 1024, maxPassesWithoutProgress: 3 })
    // reading does not rewrite the file; the next put saves the new version
    expect(JSON.parse(await readFile(store.pathOf('fix-the-greeting'), 'utf8')).schemaVersion).toBe(1)
  })

  it('appends history in order, reads it back, and compacts it past the limit', async () => {
    const dir = await tempDir()
    const store = new JsonStore(dir)
    const entry = (n: number) => ({ at: 't', event: 'e', from: 'a', to: 'b', iteration: n, phase: 'coding' as const })
    await Promise.all([store.appendHistory('h', [entry(1), entry(2)], 10), store.appendHistory('h', [entry(3)], 10)])
    expect((await store.history('h')).map((e) => e.seq)).toEqual([1, 2, 3])
    for (let i = 4; i <= 40; i++) await store.appendHistory('h', [entry(i)], 10)
    const kept = (await store.history('h')).map((e) => e.seq)
    expect(kept[kept.length - 1]).toBe(40)
    expect(kept.length).toBeGreaterThanOrEqual(10)
    expect(kept.length).toBeLessThanOrEqual(10 + 16)
    expect(kept).toEqual([...kept].sort((a, b) => a - b))
    // a torn last line (crash mid-append) is skipped
    await appendFile(join(dir, 'history', 'h.jsonl'), '{"seq": 41, "at"')
    expect((await new JsonStore(dir).history('h')).map((e) => e.seq).pop()).toBe(40)
    expect(await store.history('none')).toEqual([])
  })


  it("ignores steno's temp files and other files in loops/", async () => {
    const dir = await tempDir()
    const problems: string[] = []
    const store = new JsonStore(dir, { onProblem: (message) => problems.push(message) })
    await store.put(makeRecord('alpha'))
    await writeFile(join(dir, 'loops', '.alpha.json.tmp'), '{half')
    await writeFile(join(dir, 'loops', 'README.txt'), 'hi')
    await writeFile(join(dir, 'loops', 'Upper.json'), '{}')
    expect((await store.list()).map((r) => r.name)).toEqual(['alpha'])
    expect(problems).toEqual([])
  })

  it("writing one loop leaves other loops' files untouched", async () => {
    const dir = await tempDir()
    const store = new JsonStore(dir)
    await store.put(makeRecord('alpha'))
    await store.put(makeRecord('beta'))
    const beta = store.pathOf('beta')
    const before = { stat: await stat(beta), text: await readFile(beta, 'utf8') }
    await new Promise((resolve) => setTimeout(resolve, 20))
    for (let i = 0; i < 10; i++) await store.put(makeRecord('alpha', { iteration: i }))
    await Promise.all(Array.from({ length: 10 }, (_, i) => store.put(makeRecord('alpha', { iteration: 10 + i }))))
    const after = await stat(beta)
    expect(after.mtimeMs).toBe(before.stat.mtimeMs)
    expect(after.ino).toBe(before.stat.ino)
    expect(await readFile(beta, 'utf8')).toBe(before.text)
    expect(await store.get('alpha')).toMatchObject({ iteration: 19 })
  })

  it('settles each put once its record or a later one of the loop is on disk (what lastWrite relies on)', async () => {
    const dir = await tempDir()
    const store = new JsonStore(dir)
    const puts = Array.from({ length: 30 }, (_, i) => store.put(makeRecord('busy', { iteration: i })))
    for (const [i, put] of puts.entries()) {
      await put
      const onDisk = JSON.parse(await readFile(store.pathOf('busy'), 'utf8'))
      expect(onDisk.iteration).toBeGreaterThanOrEqual(i)
    }
    expect(await store.get('busy')).toMatchObject({ iteration: 29 })
  })

  it('writes appends that queue behind one in flight together, in order', async () => {
    const dir = await tempDir()
    const store = new JsonStore(dir)
    const entry = (n: number) => ({ at: 't', event: `e${n}`, from: 'a', to: 'b', iteration: n, phase: 'coding' as const })
    const appends = Array.from({ length: 30 }, (_, i) => store.appendHistory('h', [entry(i + 1)], 100))
    await appends[29]
    expect((await store.history('h')).map((e) => [e.seq, e.event])).toEqual(
      Array.from({ length: 30 }, (_, i) => [i + 1, `e${i + 1}`]),
    )
    await Promise.all(appends)
  })

  it('get sees a put that was not awaited', async () => {
    const dir = await tempDir()
    const store = new JsonStore(dir)
    void store.put(makeRecord('alpha', { iteration: 1 }))
    void store.put(makeRecord('alpha', { iteration: 2 }))
    expect(await store.has('alpha')).toBe(true)
    expect(await store.get('alpha')).toMatchObject({ iteration: 2 })
  })
})
