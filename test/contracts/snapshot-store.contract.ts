/**
 * The `SnapshotStore` contract, run against every implementation
 * (LangGraph checkpoint-validation style): `snapshotStoreContract('memory', make)`.
 */
import { describe, expect, it, onTestFinished } from 'vitest'
import { createActor } from 'xstate'
import { SCHEMA_VERSION, type LoopRecord, type PersistedLoop, type SnapshotStore } from '../../adapters/snapshot-store.ts'
import { loopMachine } from '../../machines/loop.machine.ts'
import type { Finding } from '../../machines/loop.types.ts'
import { resolveConfig } from '../../services/config.ts'
import { goalTask } from '../../services/plan.ts'
import { savedSnapshot } from '../../services/views.ts'

/** A fresh, empty store; `reopen` opens a second store on the same data, `cleanup` removes it. */
export type MakeSnapshotStore = () => Promise<{
  store: SnapshotStore
  reopen?: () => Promise<SnapshotStore>
  cleanup?: () => Promise<void>
}>

/** A loop's real initial snapshot (what a store saves for a new or queued loop), made once. */
const TEMPLATE = (() => {
  const input = { name: 'template', ...goalTask('work'), workspace: '/nonexistent/ws', config: resolveConfig({ models: ['scripted:a.json'] }) }
  return savedSnapshot(createActor(loopMachine, { input }))
})()

/** The template snapshot as loop `name`'s, with one open finding: equal for equal names. */
export function loopSnapshot(name: string): PersistedLoop {
  const finding: Finding = {
    id: 'F1', file: 'a.ts', line: 1, severity: 'bug', message: 'm', status: 'open',
    section: null, reportedInAudit: 1, openAudits: 1, recurring: false,
  }
  return structuredClone({ ...TEMPLATE, context: { ...TEMPLATE.context, name, findings: [finding] } })
}

/** A valid record; `overrides` win. */
export function makeRecord(name: string, overrides: Partial<LoopRecord> = {}): LoopRecord {
  return {
    schemaVersion: SCHEMA_VERSION,
    name,
    status: 'running',
    reason: null,
    phase: 'coding',
    iteration: 1,
    createdAt: '2025-01-01T00:00:00.000Z',
    updatedAt: '2025-01-01T00:00:00.000Z',
    snapshot: loopSnapshot(name),
    ...overrides,
  }
}

export function snapshotStoreContract(name: string, make: MakeSnapshotStore, options: { reopens?: boolean } = {}): void {
  async function setup() {
    const made = await make()
    if (made.cleanup) onTestFinished(made.cleanup)
    return made
  }

  describe(`SnapshotStore contract: ${name}`, () => {
    it('starts empty: list is [], get is null, has is false', async () => {
      const { store } = await setup()
      expect(await store.list()).toEqual([])
      expect(await store.get('nope')).toBeNull()
      expect(await store.has('nope')).toBe(false)
    })

    it('returns what was put', async () => {
      const { store } = await setup()
      const record = makeRecord('alpha')
      await store.put(record)
      expect(await store.get('alpha')).toEqual(record)
      expect(await store.has('alpha')).toBe(true)
      expect(await store.list()).toEqual([record])
    })

    it('overwrites the record of the same name', async () => {
      const { store } = await setup()
      await store.put(makeRecord('alpha', { iteration: 1 }))
      await store.put(makeRecord('alpha', { iteration: 2, status: 'completed', reason: 'completed' }))
      expect(await store.get('alpha')).toMatchObject({ iteration: 2, status: 'completed', reason: 'completed' })
      expect(await store.list()).toHaveLength(1)
    })

    it('lists oldest first, by createdAt then name', async () => {
      const { store } = await setup()
      await store.put(makeRecord('c-late', { createdAt: '2025-03-01T00:00:00.000Z' }))
      await store.put(makeRecord('b-early', { createdAt: '2025-01-01T00:00:00.000Z' }))
      await store.put(makeRecord('a-early', { createdAt: '2025-01-01T00:00:00.000Z' }))
      await store.put(makeRecord('d-mid', { createdAt: '2025-02-01T00:00:00.000Z' }))
      expect((await store.list()).map((r) => r.name)).toEqual(['a-early', 'b-early', 'd-mid', 'c-late'])
    })

    it('is isolated from the objects callers put and get', async () => {
      const { store } = await setup()
      const record = makeRecord('alpha')
      await store.put(record)
      record.iteration = 99
      ;(record.snapshot as { value: unknown }).value = 'mutated'
      const got = (await store.get('alpha'))!
      got.phase = 'auditing'
      ;(got.snapshot as { context: { findings: unknown[] } }).context.findings.push({ id: 'F2' })
      const listed = await store.list()
      listed[0]!.status = 'paused'
      expect(await store.get('alpha')).toEqual(makeRecord('alpha'))
    })

    it('keeps the last of many concurrent puts to the same name', async () => {
      const { store, reopen } = await setup()
      await Promise.all(Array.from({ length: 25 }, (_, i) => store.put(makeRecord('busy', { iteration: i }))))
      await store.flush()
      expect(await store.get('busy')).toMatchObject({ iteration: 24 })
      if (reopen) expect(await (await reopen()).get('busy')).toMatchObject({ iteration: 24 })
    })

    it('flush waits for puts that were not awaited', async () => {
      const { store, reopen } = await setup()
      void store.put(makeRecord('alpha', { iteration: 1 }))
      void store.put(makeRecord('beta', { iteration: 2 }))
      await store.flush()
      const other = reopen ? await reopen() : store
      expect((await other.list()).map((r) => [r.name, r.iteration])).toEqual([
        ['alpha', 1],
        ['beta', 2],
      ])
    })

    // Only for stores that outlive their object (the memory store does not).
    if (options.reopens) it('is seen by a reopened store', async () => {
      const { store, reopen } = await setup()
      if (!reopen) throw new Error(`contract ${name}: reopens is set but the factory gives no reopen()`)
      const alpha = makeRecord('alpha')
      const beta = makeRecord('beta', { createdAt: '2025-06-01T00:00:00.000Z', status: 'queued' })
      await store.put(alpha)
      await store.put(beta)
      await store.flush()
      const again = await reopen()
      expect(await again.list()).toEqual([alpha, beta])
      expect(await again.get('beta')).toEqual(beta)
      expect(await again.has('alpha')).toBe(true)
    })

    it('rejects invalid loop names', async () => {
      const { store } = await setup()
      for (const bad of ['Upper', 'has space', '-dash-first', '../escape', 'a/b', '', 'x'.repeat(81)]) {
        await expect(store.put(makeRecord(bad)), bad).rejects.toThrow(`snapshot-store: invalid loop name '${bad}'`)
        await expect(store.get(bad), bad).rejects.toThrow(`snapshot-store: invalid loop name '${bad}'`)
      }
      expect(await store.list()).toEqual([])
      await store.put(makeRecord('x'.repeat(80)))
      expect(await store.has('x'.repeat(80))).toBe(true)
    })

    it('keeps an append-only history per loop, in order, trimmed to about the last `keep`', async () => {
      const { store } = await setup()
      const entry = (n: number) => ({ at: '2025-01-01T00:00:00.000Z', event: 'e', from: 'a', to: 'b', iteration: n, phase: 'coding' as const })
      expect(await store.history('alpha')).toEqual([])
      await store.appendHistory('alpha', [entry(1), entry(2)], 100)
      await store.appendHistory('beta', [entry(1)], 100)
      await store.appendHistory('alpha', [{ ...entry(3), snapshot: loopSnapshot('alpha') }], 100)
      expect(await store.history('alpha')).toEqual([
        { seq: 1, ...entry(1) },
        { seq: 2, ...entry(2) },
        { seq: 3, ...entry(3), snapshot: loopSnapshot('alpha') },
      ])
      expect((await store.history('beta')).map((e) => e.seq)).toEqual([1])
      for (let i = 4; i <= 200; i++) await store.appendHistory('alpha', [entry(i)], 20)
      const seqs = (await store.history('alpha')).map((e) => e.seq)
      expect(seqs[seqs.length - 1]).toBe(200)
      expect(seqs.length).toBeGreaterThanOrEqual(20)
      expect(seqs.length).toBeLessThanOrEqual(36)
    })

    it("removes one loop's record, history, transcripts and waiting commands, and nothing of another", async () => {
      const { store, reopen } = await setup()
      const entry = (n: number) => ({ at: '2025-01-01T00:00:00.000Z', event: 'e', from: 'a', to: 'b', iteration: n, phase: 'coding' as const })
      const withSession = (name: string) => {
        const record = makeRecord(name)
        const journal = {
          id: 1, phase: 'coding' as const, iteration: 1, sectionIndex: 0, role: 'coder' as const, delivered: 0, running: [],
          messages: [{ role: 'system' as const, content: 'sys' }, { role: 'user' as const, content: `work on ${name}` }],
        }
        record.snapshot = { ...record.snapshot, context: { ...record.snapshot.context, journal } }
        return record
      }
      for (const name of ['alpha', 'beta']) {
        await store.put(withSession(name))
        await store.appendHistory(name, [entry(1), entry(2)], 100)
        await store.inbox.send(name, { type: 'loop.say', text: `to ${name}` })
      }
      await store.flush()
      const beta = { record: await store.get('beta'), history: await store.history('beta'), transcript: await store.transcript('beta') }
      const hadTranscripts = (await store.transcript('alpha')).length > 0

      expect(await store.remove('alpha')).toEqual({ record: true, history: true, journal: hadTranscripts, commands: 1, claims: 0 })
      expect(await store.get('alpha')).toBeNull()
      expect(await store.has('alpha')).toBe(false)
      expect(await store.history('alpha')).toEqual([])
      expect(await store.transcript('alpha')).toEqual([])
      expect(await store.inbox.waiting()).toEqual(['beta'])
      expect((await store.list()).map((r) => r.name)).toEqual(['beta'])
      expect({ record: await store.get('beta'), history: await store.history('beta'), transcript: await store.transcript('beta') }).toEqual(beta)
      // nothing left: removing again finds nothing; the name starts afresh
      expect(await store.remove('alpha')).toEqual({ record: false, history: false, journal: false, commands: 0, claims: 0 })
      await store.put(makeRecord('alpha', { iteration: 7 }))
      await store.appendHistory('alpha', [entry(1)], 100)
      expect((await store.history('alpha')).map((e) => e.seq)).toEqual([1])
      if (reopen) {
        await store.flush()
        const again = await reopen()
        expect((await again.list()).map((r) => [r.name, r.iteration])).toEqual([
          ['alpha', 7],
          ['beta', 1],
        ])
        expect((await again.history('alpha')).map((e) => e.seq)).toEqual([1])
      }
      await expect(store.remove('../escape')).rejects.toThrow("snapshot-store: invalid loop name '../escape'")
    })
  })
}
