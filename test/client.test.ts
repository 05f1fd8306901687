/**
 * LoopClient (services/client.ts) against real engines and real stores: a command is
 * applied to the store under the client's claim when no process owns the loop,
 * delivered to and acknowledged by its owner when one does, or withdrawn when the
 * owner does not take it: never two of these.
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { dataDirLayout } from '../adapters/data-dir.ts'
import { MAX_COMMAND_BYTES } from '../adapters/inbox.ts'
import { MemoryStore } from '../adapters/memory-store.ts'
import type { LoopRecord, SnapshotStore } from '../adapters/snapshot-store.ts'
import type { ControlEvent } from '../machines/loop.types.ts'
import { ClientError, LoopClient, type SendResult } from '../services/client.ts'
import { createEngine, type Engine, type EngineOptions, type LoopHandle } from '../services/engine.ts'
import { viewOf } from '../services/views.ts'
import { TEXT_60_KB, UNICODE_TEXT } from './contracts/command-inbox.contract.ts'
import { hang } from './helpers/loop-harness.ts'
import { settled, waitFor } from './helpers/wait-for.ts'

const LONG = 120_000

let dir: string
let ws: string
let models: string[]
const engines: Engine[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loopstate-client-'))
  ws = join(dir, 'ws')
  await mkdir(ws)
  const model = join(dir, 'hang.json')
  // every coder call hangs until aborted (a pause, a cancel, a close): the loop runs until told otherwise
  await writeFile(model, JSON.stringify({ coder: [hang(), hang(), hang(), hang(), hang(), hang()] }))
  models = [`scripted:${model}`]
})

afterEach(async () => {
  for (const e of engines.splice(0)) await e.close()
  await rm(dir, { recursive: true, force: true })
})

const PAUSE: ControlEvent = { type: 'loop.pause' }
const RESUME: ControlEvent = { type: 'loop.resume' }
const CANCEL: ControlEvent = { type: 'loop.cancel' }
const say = (text: string): ControlEvent => ({ type: 'loop.say', text })

type Kind = 'json' | 'memory'
const data = () => join(dir, 'data')

async function engineOf(kind: Kind, store: MemoryStore | null, options: EngineOptions = {}): Promise<Engine> {
  const base: EngineOptions = kind === 'json' ? { dataDir: data() } : { store: store! }
  const engine = await createEngine({ ...base, resume: false, onProblem: () => {}, ...options })
  engines.push(engine)
  return engine
}

/** Starts a loop whose coder hangs, and waits until its coder session runs. */
async function startHanging(engine: Engine, name: string): Promise<LoopHandle> {
  const h = await engine.start({ goal: `work on ${name}` }, { name, models, workspace: ws, stallTimeoutMs: 600_000 })
  await waitFor(() => h.view().state.startsWith('running.coding'), `${name} coding`)
  return h
}

function clientOf(kind: Kind, store: MemoryStore | null, options: { ackTimeoutMs?: number; pollMs?: number } = {}): LoopClient {
  return kind === 'json'
    ? new LoopClient({ dataDir: data(), onProblem: () => {}, ...options })
    : new LoopClient({ store: store!, ...options })
}

/**
 * A loop saved as running that no process owns: started by an engine that then
 * closed. The client is a separate store object on the same data (another process)
 * for the JSON store, the same MemoryStore otherwise.
 */
async function parked(kind: Kind, names: string[] = ['parked']) {
  const memory = kind === 'memory' ? new MemoryStore() : null
  const engine = await engineOf(kind, memory)
  for (const [i, name] of names.entries()) {
    if (i > 0) {
      // a later createdAt for each later loop
      const t = Date.now()
      await waitFor(() => Date.now() > t + 1, 'the clock moves on', { everyMs: 2 })
    }
    await startHanging(engine, name)
  }
  await engine.close()
  const client = clientOf(kind, memory)
  const store = client.store
  /** Everything the store keeps of the loop, as bytes where it has any. */
  const saved = async (name: string): Promise<string> => {
    if (kind === 'json') {
      const layout = dataDirLayout(data())
      return `${await readFile(layout.record(name), 'utf8')}\n---\n${await readFile(layout.history(name), 'utf8')}`
    }
    return JSON.stringify([await store.get(name), await store.history(name)])
  }
  return { client, store, saved, memory }
}

async function refusal(p: Promise<unknown>): Promise<ClientError> {
  const outcome = await p.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  )
  if (!('error' in outcome)) throw new Error(`expected a ClientError, got ${JSON.stringify(outcome.value)}`)
  expect(outcome.error).toBeInstanceOf(ClientError)
  return outcome.error as ClientError
}

const inboxOf = (record: LoopRecord | null) => record?.snapshot.context.inbox

/** The command files waiting in a JSON data dir for `name`. */
async function inboxFiles(name: string): Promise<string[]> {
  const files = await readdir(dataDirLayout(data()).inbox(name)).catch(() => [] as string[])
  return files.filter((f) => f.endsWith('.json'))
}

describe.each(['json', 'memory'] as const)('LoopClient: no process owns the loop (%s store)', (kind) => {
  it('applies pause, say and cancel to the store under its own claim, and leaves no claim behind', { timeout: LONG }, async () => {
    const { client, store, saved } = await parked(kind)
    const name = 'parked'
    expect(await store.get(name)).toMatchObject({ status: 'running', reason: null })
    expect(await client.owner(name)).toBeNull()

    // pause: applied to the store
    const paused = await client.send(name, PAUSE)
    expect(paused.via).toBe('store')
    expect(paused.record).toMatchObject({ name, status: 'paused', reason: null })
    expect((paused.record!.snapshot as { value: unknown }).value).toBe('paused')
    expect(await store.get(name)).toEqual(paused.record)
    expect(await store.claims.holder(name)).toBeNull()

    // pause again: nothing to do, nothing written
    const before = await saved(name)
    const again = await client.send(name, PAUSE)
    expect(again).toEqual({ via: 'unchanged', record: paused.record })
    expect(await saved(name)).toBe(before)

    // resume with unowned: 'return': nothing done, the caller is told so
    const unowned = await client.send(name, RESUME, { unowned: 'return' })
    expect(unowned).toEqual({ via: 'unowned', record: paused.record })
    expect(await saved(name)).toBe(before)
    expect(await store.claims.holder(name)).toBeNull()

    // say: queued in the saved snapshot, exactly
    const said = await client.send(name, say(UNICODE_TEXT))
    expect(said.via).toBe('store')
    expect(said.record).toMatchObject({ status: 'paused' })
    expect(inboxOf(said.record)).toEqual([UNICODE_TEXT])
    expect(inboxOf(await store.get(name))).toEqual([UNICODE_TEXT])
    expect((await client.get(name))!.inbox).toEqual([UNICODE_TEXT])

    // cancel: the loop ends, cancelled by its user
    const cancelled = await client.send(name, CANCEL)
    expect(cancelled.via).toBe('store')
    expect(cancelled.record).toMatchObject({ status: 'cancelled', reason: 'user_cancelled' })
    expect(await store.get(name)).toMatchObject({ status: 'cancelled', reason: 'user_cancelled' })

    // an ended loop takes no command
    const ended = await saved(name)
    for (const event of [PAUSE, RESUME, CANCEL, say('too late')]) {
      const err = await refusal(client.send(name, event))
      expect(err.code).toBe('ended')
      expect(err.message).toBe(`loop ${name} already ended (cancelled)`)
    }
    const resumeReturn = await refusal(client.send(name, RESUME, { unowned: 'return' }))
    expect(resumeReturn.code).toBe('ended')
    expect(await saved(name)).toBe(ended)

    // no claim left behind, and no command waiting
    expect(await store.claims.holder(name)).toBeNull()
    expect(await client.owner(name)).toBeNull()
    if (kind === 'json') expect(existsSync(dataDirLayout(data()).claims(name))).toBe(false)
    expect(await store.inbox.take(name)).toEqual([])
  })

  it('say and cancel apply to a loop saved as running; resume (apply) of a paused one marks it running', { timeout: LONG }, async () => {
    const { client, store } = await parked(kind, ['one', 'two'])

    const said = await client.send('one', say(TEXT_60_KB))
    expect(said.via).toBe('store')
    expect(said.record).toMatchObject({ status: 'running' })
    expect(inboxOf(await store.get('one'))).toEqual([TEXT_60_KB])
    const cancelled = await client.send('one', CANCEL)
    expect(cancelled.via).toBe('store')
    expect(await store.get('one')).toMatchObject({ status: 'cancelled', reason: 'user_cancelled' })

    expect((await client.send('two', PAUSE)).record).toMatchObject({ status: 'paused' })
    const resumed = await client.send('two', RESUME)
    expect(resumed.via).toBe('store')
    expect(resumed.record).toMatchObject({ status: 'running', reason: null })
    expect(await store.get('two')).toMatchObject({ status: 'running' })

    expect(await store.claims.holder('one')).toBeNull()
    expect(await store.claims.holder('two')).toBeNull()
  })

  it('list() and get() show the loops as of their last save, oldest first; the stopped clock stands still', { timeout: LONG }, async () => {
    const { client, store } = await parked(kind, ['b-older', 'a-newer'])
    const records = await store.list()
    expect(records.map((r) => r.name)).toEqual(['b-older', 'a-newer'])
    const first = await client.list()
    expect(first.map((v) => [v.name, v.status, v.kind, v.title])).toEqual([
      ['b-older', 'running', 'goal', 'work on b-older'],
      ['a-newer', 'running', 'goal', 'work on a-newer'],
    ])
    // no process runs them: their clocks stopped at their last save
    expect(first).toEqual(records.map((r) => viewOf(r, Date.parse(r.updatedAt))))
    const t = Date.now()
    await waitFor(() => Date.now() > t + 5, 'the clock moves on', { everyMs: 2 })
    expect(await client.list()).toEqual(first)

    const detail = await client.get('b-older')
    expect(detail).toMatchObject({
      name: 'b-older',
      status: 'running',
      kind: 'goal',
      workspace: ws,
      models: { coder: models, auditor: models },
      inbox: [],
      findings: [],
      error: null,
      elapsedMs: first[0]!.elapsedMs,
    })
    expect(await client.record('a-newer')).toEqual(records[1])
    const history = await client.history('b-older')
    expect(history.length).toBeGreaterThan(0)
    expect(history.map((e) => e.seq)).toEqual(history.map((_, i) => i + 1))
    expect(history).toEqual(await store.history('b-older'))
  })

  it('a loop that does not exist: send and history refuse with not_found, get and record are null', async () => {
    const { client } = await parked(kind)
    for (const event of [PAUSE, RESUME, CANCEL, say('hello?')]) {
      const err = await refusal(client.send('nobody', event))
      expect(err.code).toBe('not_found')
      expect(err.message).toBe("no loop named 'nobody'")
    }
    const err = await refusal(client.history('nobody'))
    expect(err.code).toBe('not_found')
    expect(await client.get('nobody')).toBeNull()
    expect(await client.record('nobody')).toBeNull()
    expect(await client.owner('nobody')).toBeNull()
    expect(await client.store.has('nobody')).toBe(false)
  })
})

describe('LoopClient: a live engine owns the loop (JSON store)', () => {
  it('pause, resume, say and cancel are delivered to the owner and acknowledged', { timeout: LONG }, async () => {
    const problems: string[] = []
    const engine = await engineOf('json', null, { commandPollMs: 20, onProblem: (m) => problems.push(m) })
    const name = 'live'
    const h = await startHanging(engine, name)
    const client = clientOf('json', null, { ackTimeoutMs: 60_000, pollMs: 10 })
    expect((await client.owner(name))?.id).toBe(engine.owner.id)

    // resume of a loop that is not paused is refused before anything is sent
    const notPaused = await refusal(client.send(name, RESUME))
    expect(notPaused.code).toBe('not_paused')
    expect(await inboxFiles(name)).toEqual([])

    const paused = await client.send(name, PAUSE)
    expect(paused).toMatchObject({ via: 'owner', shown: true, record: { name, status: 'paused' } })
    expect((paused as Extract<SendResult, { via: 'owner' }>).owner.id).toBe(engine.owner.id)
    expect(h.view().status).toBe('paused')
    expect(await client.store.get(name)).toMatchObject({ status: 'paused' })

    const resumed = await client.send(name, RESUME)
    expect(resumed).toMatchObject({ via: 'owner', shown: true, record: { name, status: 'running' } })
    await waitFor(() => h.view().state.startsWith('running.coding'), 'coding again')

    const said = await client.send(name, say(UNICODE_TEXT))
    expect(said).toMatchObject({ via: 'owner', shown: true, record: null })
    expect((said as Extract<SendResult, { via: 'owner' }>).owner.id).toBe(engine.owner.id)
    await waitFor(async () => (await engine.get(name))?.inbox.length === 1, 'the say in the loop')
    expect((await engine.get(name))!.inbox).toEqual([UNICODE_TEXT])
    await waitFor(async () => inboxOf(await client.record(name))?.length === 1, 'the say saved')
    expect(inboxOf(await client.record(name))).toEqual([UNICODE_TEXT])

    const cancelled = await client.send(name, CANCEL)
    expect(cancelled).toMatchObject({ via: 'owner', shown: true, record: { status: 'cancelled', reason: 'user_cancelled' } })
    expect(await h.done).toMatchObject({ name, status: 'cancelled', reason: 'user_cancelled' })
    expect((await refusal(client.send(name, PAUSE))).code).toBe('ended')

    expect(await inboxFiles(name)).toEqual([])
    expect(problems).toEqual([])
    await waitFor(async () => (await client.owner(name)) === null, 'the claim released')
  })

  it('list() and get() of a live loop: its clock runs', { timeout: LONG }, async () => {
    const engine = await engineOf('json', null, { commandPollMs: 20 })
    await startHanging(engine, 'ticking')
    const client = clientOf('json', null)
    const [first] = await client.list()
    expect(first).toMatchObject({ name: 'ticking', status: 'running', kind: 'goal' })
    await waitFor(async () => (await client.list())[0]!.elapsedMs > first!.elapsedMs, 'the elapsed time grows')
    expect(await client.get('ticking')).toMatchObject({ name: 'ticking', status: 'running', workspace: ws, inbox: [] })
  })

  it('a say too big for the inbox is refused before anything is sent, owned or not', { timeout: LONG }, async () => {
    const problems: string[] = []
    const engine = await engineOf('json', null, { commandPollMs: 20, onProblem: (m) => problems.push(m) })
    const name = 'big-say'
    await startHanging(engine, name)
    const client = clientOf('json', null, { ackTimeoutMs: 60_000, pollMs: 10 })
    const big = 'z'.repeat(MAX_COMMAND_BYTES + 4096)
    const err = await refusal(client.send(name, say(big)))
    expect(err.code).toBe('invalid')
    expect(err.message).toMatch(new RegExp(`^loop big-say: loop\\.say is \\d+ bytes, over the ${MAX_COMMAND_BYTES} a command may have$`))
    // nothing of it is left to be applied, and the owner met nothing bad
    expect(await inboxFiles(name)).toEqual([])
    expect((await engine.get(name))!.inbox).toEqual([])
    expect(problems).toEqual([])
    // a say that fits is delivered
    expect(await client.send(name, say('z'.repeat(1000)))).toMatchObject({ via: 'owner', shown: true })
    await waitFor(async () => (await engine.get(name))!.inbox.length > 0, 'the say arrives')
    expect((await engine.get(name))!.inbox).toEqual(['z'.repeat(1000)])
  })
})

describe.each(['json', 'memory'] as const)('LoopClient: an owner that never takes commands (%s store)', (kind) => {
  it('a command not taken in time is withdrawn: ClientError withdrawn, nothing left to apply later, the loop unaffected', { timeout: LONG }, async () => {
    const memory = kind === 'memory' ? new MemoryStore() : null
    const engine = await engineOf(kind, memory, { acceptCommands: false })
    const name = 'deaf'
    const h = await startHanging(engine, name)
    const state = h.view().state
    const client = clientOf(kind, memory, { ackTimeoutMs: 300, pollMs: 20 })
    expect((await client.owner(name))?.id).toBe(engine.owner.id)

    for (const event of [PAUSE, say('unheard'), CANCEL]) {
      const err = await refusal(client.send(name, event))
      expect(err.code).toBe('withdrawn')
      expect(err.message).toContain(`but it did not take it within 0.3 s; withdrawn: nothing was applied`)
    }

    // nothing waits to be applied later
    if (kind === 'json') expect(await inboxFiles(name)).toEqual([])
    expect(await client.store.inbox.take(name)).toEqual([])
    // the loop runs on, untouched
    expect(h.view()).toMatchObject({ status: 'running', state })
    expect((await engine.get(name))!.inbox).toEqual([])
    expect(await client.store.get(name)).toMatchObject({ status: 'running' })
    expect(inboxOf(await client.store.get(name))).toEqual([])
    expect(await settled(h.done)).toBe(false)
    expect((await client.owner(name))?.id).toBe(engine.owner.id)

    // and still answers its own engine
    h.cancel()
    expect(await h.done).toMatchObject({ status: 'cancelled', reason: 'user_cancelled' })
  })
})

describe('LoopClient over a MemoryStore shared with an engine that takes commands', () => {
  it('commands to a loop the engine runs are delivered via its owner', { timeout: LONG }, async () => {
    const store: SnapshotStore = new MemoryStore()
    const engine = await createEngine({ store, acceptCommands: true, commandPollMs: 20, resume: false, onProblem: () => {} })
    engines.push(engine)
    const name = 'shared'
    const h = await startHanging(engine, name)
    const client = new LoopClient({ store, ackTimeoutMs: 60_000, pollMs: 10 })
    expect(await client.owner(name)).toEqual(engine.owner)

    const paused = await client.send(name, PAUSE)
    expect(paused).toEqual({ via: 'owner', owner: engine.owner, shown: true, record: expect.objectContaining({ name, status: 'paused' }) })
    expect(h.view().status).toBe('paused')

    const said = await client.send(name, say('from the client'))
    expect(said).toEqual({ via: 'owner', owner: engine.owner, shown: true, record: null })
    await waitFor(async () => (await engine.get(name))?.inbox.length === 1, 'the say in the loop')
    expect((await engine.get(name))!.inbox).toEqual(['from the client'])

    const resumed = await client.send(name, RESUME)
    expect(resumed).toMatchObject({ via: 'owner', shown: true, record: { status: 'running' } })

    const cancelled = await client.send(name, CANCEL)
    expect(cancelled).toMatchObject({ via: 'owner', shown: true, record: { status: 'cancelled', reason: 'user_cancelled' } })
    expect(await h.done).toMatchObject({ status: 'cancelled', reason: 'user_cancelled' })
    expect(await store.inbox.waiting()).toEqual([])
    expect(await client.owner(name)).toBeNull()
  })
})
