import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { JsonStore } from '../adapters/json-store.ts'
import { MemoryStore } from '../adapters/memory-store.ts'
import { makeRecord, snapshotStoreContract } from './contracts/snapshot-store.contract.ts'

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
})

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

  it('skips a corrupt file in list, reports it, throws on get, and never overwrites it', async () => {
    const dir = await tempDir()
    const problems: string[] = []
    const store = new JsonStore(dir, { onProblem: (message) => problems.push(message) })
    await store.put(makeRecord('good'))
    const broken = join(dir, 'loops', 'broken.json')
    await writeFile(broken, '{"schemaVersion": 1, "name": "bro')

    expect((await store.list()).map((r) => r.name)).toEqual(['good'])
    expect(problems).toEqual([`snapshot-store: ${broken}: not valid JSON`])
    await expect(store.get('broken')).rejects.toThrow(`snapshot-store: ${broken}: not valid JSON`)
    expect(await store.has('broken')).toBe(true)
    expect(await readFile(broken, 'utf8')).toBe('{"schemaVersion": 1, "name": "bro')
  })

  it('refuses a record from a newer schema version with a clear message', async () => {
    const dir = await tempDir()
    const problems: string[] = []
    const store = new JsonStore(dir, { onProblem: (message) => problems.push(message) })
    await store.put(makeRecord('future'))
    const path = store.pathOf('future')
    await writeFile(path, JSON.stringify(makeRecord('future', { schemaVersion: 2 })))
    const message = `snapshot-store: ${path}: schema version 2 is newer than this loopstate supports (1); upgrade loopstate`
    expect(await store.list()).toEqual([])
    expect(problems).toEqual([message])
    await expect(store.get('future')).rejects.toThrow(message)
  })

  it('reports a JSON file that is not a loop record', async () => {
    const dir = await tempDir()
    const problems: string[] = []
    const store = new JsonStore(dir, { onProblem: (message) => problems.push(message) })
    await mkdir(join(dir, 'loops'), { recursive: true })
    await writeFile(join(dir, 'loops', 'notes.json'), '[1, 2]')
    await writeFile(join(dir, 'loops', 'renamed.json'), JSON.stringify(makeRecord('original')))
    expect(await store.list()).toEqual([])
    expect(problems.sort()).toEqual([
      `snapshot-store: ${join(dir, 'loops', 'notes.json')}: not a loop record`,
      `snapshot-store: ${join(dir, 'loops', 'renamed.json')}: record name 'original' does not match the file name`,
    ])
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

  it('get sees a put that was not awaited', async () => {
    const dir = await tempDir()
    const store = new JsonStore(dir)
    void store.put(makeRecord('alpha', { iteration: 1 }))
    void store.put(makeRecord('alpha', { iteration: 2 }))
    expect(await store.has('alpha')).toBe(true)
    expect(await store.get('alpha')).toMatchObject({ iteration: 2 })
  })
})
