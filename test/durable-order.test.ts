/**
 * Through the engine: the record that holds a model's answer has landed in the
 * store before the session acts on it. A store whose writes land late shows it:
 * the read-only tool the answer asked for (report_finding, whose finding is
 * itself a state change, so its record is a put that can be seen) and the next
 * model call both come after the answer's record landed, not merely after it was
 * handed to the store.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MemoryStore } from '../adapters/memory-store.ts'
import type { ModelProvider } from '../adapters/model-provider.ts'
import type { LoopRecord } from '../adapters/snapshot-store.ts'
import { createScriptedProviderSync } from '../adapters/scripted-provider.ts'
import type { LoopContext } from '../machines/loop.types.ts'
import { createEngine, type Engine } from '../services/engine.ts'
import { calls, text } from './helpers/loop-harness.ts'

let dir: string
let engine: Engine | null = null

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loopstate-durable-order-'))
})

afterEach(async () => {
  await engine?.close()
  engine = null
  await rm(dir, { recursive: true, force: true })
})

/** A MemoryStore whose writes land one after another, each 25 ms after its turn came. */
class LateStore extends MemoryStore {
  /** Every put, with how many puts had landed when it was made. */
  readonly puts: { context: LoopContext; landedBefore: number }[] = []
  landed = 0
  #queue: Promise<void> = Promise.resolve()

  override put(record: LoopRecord): Promise<void> {
    this.puts.push({ context: structuredClone((record.snapshot as { context: LoopContext }).context), landedBefore: this.landed })
    const write = this.#queue
      .then(() => new Promise<void>((resolve) => setTimeout(resolve, 25)))
      .then(() => super.put(record))
      .then(() => {
        this.landed++
      })
    this.#queue = write
    return write
  }
}

const auditorCalls = (c: LoopContext) => Object.entries(c.calls).find(([k]) => k.startsWith('auditor:'))?.[1] ?? 0

describe('durability of answers through the engine', () => {
  it('acts on an answer (its read-only tool, the next call) only once the record holding it landed', async () => {
    const scenario = join(dir, 's.json')
    await writeFile(
      scenario,
      JSON.stringify({
        coder: [text('done')],
        // a warning does not block: the audit is clean after the finding
        auditor: [calls([['report_finding', { file: 'a.txt', line: 1, severity: 'warning', message: 'nit' }]]), text('ok')],
      }),
    )
    const store = new LateStore()
    // landed puts when each auditor call was made
    const askedAt: number[] = []
    engine = await createEngine({
      store,
      providers: {
        probe: (model) => {
          const inner = createScriptedProviderSync(model)
          const provider: ModelProvider = {
            scheme: 'probe',
            chat: (request) => {
              if (request.role === 'auditor') askedAt.push(store.landed)
              return inner.chat(request)
            },
          }
          return provider
        },
      },
    })
    const handle = await engine.start({ goal: 'durable answers' }, { models: [`probe:${scenario}`], workspace: dir })
    expect(await handle.done).toMatchObject({ status: 'completed', reason: 'completed' })

    // the first record with the auditor's answer (its turn), and the first with the finding its tool reported
    const turn = store.puts.findIndex((p) => auditorCalls(p.context) === 1)
    const finding = store.puts.findIndex((p) => p.context.findings.length === 1)
    expect(turn).toBeGreaterThanOrEqual(0)
    expect(finding).toBeGreaterThan(turn)
    // the tool ran (and reported) only after the turn's record landed
    expect(store.puts[finding]!.landedBefore).toBeGreaterThan(turn)
    // and the next call was asked only after that too
    expect(askedAt).toHaveLength(2)
    expect(askedAt[1]).toBeGreaterThan(turn)
  })
})
