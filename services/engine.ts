/**
 * The engine: spawns loop actors, queues them beyond the concurrency cap, writes
 * every state change to the store and lets users talk to them.
 */
import { readFile, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { createActor, type Actor } from 'xstate'
import { JsonStore } from '../adapters/json-store.ts'
import { parseModelSpec, type ModelProvider, type ProviderFactory } from '../adapters/model-provider.ts'
import { scriptedFactory } from '../adapters/scripted-provider.ts'
import type { LoopRecord, SnapshotStore } from '../adapters/snapshot-store.ts'
import { loopMachine } from '../machines/loop.machine.ts'
import type { ControlEvent, LoopInput, LoopOutput } from '../machines/loop.types.ts'
import { resolveConfig, type LoopOptions } from './config.ts'
import { acquireLock, inboxNames, releaseLock, takeCommands } from './control.ts'
import { goalTask, parsePlan, slugify } from './plan.ts'
import { createLoopServices } from './session-actor.ts'
import { detailOf, recordOf, stateString, viewOf, type LoopDetail, type LoopView, type PersistedLoop } from './views.ts'

export interface EngineOptions {
  /** Directory of the JSON store. @default 'data' (relative to the working directory) */
  dataDir?: string
  /** A store other than the JSON store of `dataDir` (e.g. MemoryStore in tests). */
  store?: SnapshotStore
  /** Model providers by scheme. @default { scripted } */
  providers?: Record<string, ProviderFactory>
  /** Loops running at once; more wait in a queue. @default 3 */
  maxConcurrentLoops?: number
  /**
   * Apply commands (cancel, pause, say) that other processes leave in the data dir.
   * @default true when the store is the JSON store of `dataDir`
   */
  acceptCommands?: boolean
  /** How often the data dir is checked for commands, ms. @default 200 */
  commandPollMs?: number
  /** One-line reports of problems that do not stop the engine (an unwritable record, a bad store file). */
  onProblem?: (message: string) => void
}

/** What a loop works on: a plan (markdown text or a file) or a goal. */
export type LoopTaskSpec = { plan: string; source?: string } | { planFile: string } | { goal: string }

export interface StartOptions extends LoopOptions {
  /** Loop name. @default the slug of the plan title, made unique with -2, -3 … */
  name?: string
  /** Directory the coder works in. @default the working directory */
  workspace?: string
}

export interface LoopHandle {
  readonly name: string
  /** Called with the loop's view on every saved state change; returns an unsubscribe function. */
  subscribe(listener: (view: LoopView) => void): () => void
  view(): LoopView
  send(event: ControlEvent): void
  cancel(): void
  pause(): void
  resume(): void
  say(text: string): void
  /** Settles when the loop reaches a final state and its last snapshot is saved. */
  readonly done: Promise<LoopOutput>
}

export class EngineError extends Error {
  override readonly name = 'EngineError'
}

type LoopActor = Actor<typeof loopMachine>

interface LiveLoop {
  name: string
  createdAt: string
  actor: LoopActor
  started: boolean
  record: LoopRecord
  listeners: Set<(view: LoopView) => void>
  unsubscribe: (() => void) | null
  lastContext: unknown
  lastState: string
  settle: { resolve: (o: LoopOutput) => void; reject: (e: unknown) => void }
  handle: LoopHandle
}

export async function createEngine(options: EngineOptions = {}): Promise<Engine> {
  return new Engine(options)
}

export class Engine {
  readonly dataDir: string
  readonly store: SnapshotStore
  private readonly factories: Record<string, ProviderFactory>
  private readonly maxConcurrent: number
  private readonly onProblem: (message: string) => void
  private readonly providers = new Map<string, { provider: ModelProvider; model: string }>()
  private readonly machine: typeof loopMachine
  private readonly live = new Map<string, LiveLoop>()
  private readonly queue: LiveLoop[] = []
  private readonly reserved = new Set<string>()
  private readonly pending = new Set<Promise<void>>()
  private running = 0
  private poller: NodeJS.Timeout | null = null
  private closed = false

  constructor(options: EngineOptions) {
    this.dataDir = resolve(options.dataDir ?? 'data')
    this.onProblem = options.onProblem ?? ((m) => console.error(m))
    this.store = options.store ?? new JsonStore(this.dataDir, { onProblem: this.onProblem })
    this.factories = { scripted: scriptedFactory(), ...options.providers }
    this.maxConcurrent = options.maxConcurrentLoops ?? 3
    if (!Number.isInteger(this.maxConcurrent) || this.maxConcurrent < 1) {
      throw new EngineError(`engine: maxConcurrentLoops must be a positive integer (got ${options.maxConcurrentLoops})`)
    }
    this.machine = loopMachine.provide(createLoopServices({ provider: (loop, spec) => this.provider(loop, spec) }))
    if (options.acceptCommands ?? options.store === undefined) {
      this.poller = setInterval(() => void this.pollCommands(), options.commandPollMs ?? 200)
      this.poller.unref()
    }
  }

  /**
   * Starts a loop (or queues it when maxConcurrentLoops are running). Bad input
   * (plan, options, models, workspace) throws before anything is saved.
   */
  async start(spec: LoopTaskSpec, options: StartOptions): Promise<LoopHandle> {
    if (this.closed) throw new EngineError('engine: closed')
    const { name: wanted, workspace: ws, ...loopOptions } = options
    const parsed = await readTask(spec)
    const config = resolveConfig(loopOptions)
    const workspace = resolve(ws ?? process.cwd())
    await checkWorkspace(workspace)
    const name = await this.reserveName(wanted, parsed.task.title)
    try {
      for (const model of new Set([...config.models, ...config.auditorModels])) this.provider(name, model)
      const input: LoopInput = { name, ...parsed, workspace, config }
      const actor = createActor(this.machine, { input })
      const loop = this.track(name, new Date().toISOString(), actor)
      const queued = this.running >= this.maxConcurrent
      loop.record = recordOf(actor.getPersistedSnapshot() as PersistedLoop, loop.createdAt, queued)
      await this.store.put(loop.record)
      if (queued) this.queue.push(loop)
      else await this.launch(loop)
      return loop.handle
    } catch (err) {
      this.forgetProviders(name)
      this.live.delete(name)
      throw err
    } finally {
      this.reserved.delete(name)
    }
  }

  /** Every saved loop, oldest first, with the live state of the loops this engine runs. */
  async list(): Promise<LoopView[]> {
    const records = await this.store.list()
    return records.map((r) => viewOf(this.live.get(r.name)?.record ?? r))
  }

  /** One loop in detail, or null. */
  async get(name: string): Promise<LoopDetail | null> {
    const live = this.live.get(name)
    const record = live?.record ?? (await this.store.get(name))
    return record === null ? null : detailOf(record)
  }

  /** The handle of a loop this engine runs or queues. */
  handle(name: string): LoopHandle | undefined {
    return this.live.get(name)?.handle
  }

  /**
   * Saves every live loop and stops its actor without ending it: the loops stay
   * `running` (or `queued`) in the store, to be resumed later.
   */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.poller) clearInterval(this.poller)
    for (const loop of this.live.values()) {
      loop.unsubscribe?.()
      loop.unsubscribe = null
      if (loop.started) {
        loop.record = recordOf(loop.actor.getPersistedSnapshot() as PersistedLoop, loop.createdAt)
        this.write(loop.record)
        loop.actor.stop()
      }
    }
    await this.settled()
    await this.store.flush()
    for (const loop of this.live.values()) if (loop.started) await releaseLock(this.dataDir, loop.name)
    this.live.clear()
    this.queue.length = 0
  }

  private track(name: string, createdAt: string, actor: LoopActor): LiveLoop {
    let settle!: LiveLoop['settle']
    const done = new Promise<LoopOutput>((resolve, reject) => (settle = { resolve, reject }))
    done.catch(() => {}) // observed through handle.done; never an unhandled rejection
    const loop: LiveLoop = {
      name,
      createdAt,
      actor,
      started: false,
      record: null as unknown as LoopRecord,
      listeners: new Set(),
      unsubscribe: null,
      lastContext: null,
      lastState: '',
      settle,
      handle: {
        name,
        done,
        subscribe: (listener) => {
          loop.listeners.add(listener)
          return () => loop.listeners.delete(listener)
        },
        view: () => viewOf(loop.record),
        send: (event) => this.deliver(loop, event),
        cancel: () => this.deliver(loop, { type: 'loop.cancel' }),
        pause: () => this.deliver(loop, { type: 'loop.pause' }),
        resume: () => this.deliver(loop, { type: 'loop.resume' }),
        say: (text) => this.deliver(loop, { type: 'loop.say', text }),
      },
    }
    this.live.set(name, loop)
    return loop
  }

  private async launch(loop: LiveLoop): Promise<void> {
    this.running++
    loop.started = true
    if (this.dataDir && this.store instanceof JsonStore) await acquireLock(this.dataDir, loop.name)
    const sub = loop.actor.subscribe({
      next: (snapshot) => this.onSnapshot(loop, snapshot.status === 'done'),
      error: (err) => this.onActorError(loop, err),
    })
    loop.unsubscribe = () => sub.unsubscribe()
    loop.actor.start()
    this.onSnapshot(loop, loop.actor.getSnapshot().status === 'done')
  }

  /** Queued loops take commands too: they are applied to the not-yet-started actor. */
  private deliver(loop: LiveLoop, event: ControlEvent): void {
    if (!loop.started) {
      if (event.type === 'loop.cancel') this.cancelQueued(loop)
      else if (event.type === 'loop.say') {
        // A queued actor is not running yet: start it now so the message lands in its context.
        this.dequeue(loop)
        void this.launch(loop).then(() => loop.actor.send(event))
      }
      return
    }
    loop.actor.send(event)
  }

  private cancelQueued(loop: LiveLoop): void {
    this.dequeue(loop)
    void this.launch(loop).then(() => loop.actor.send({ type: 'loop.cancel' }))
  }

  private dequeue(loop: LiveLoop): void {
    const i = this.queue.indexOf(loop)
    if (i >= 0) this.queue.splice(i, 1)
  }

  private onSnapshot(loop: LiveLoop, final: boolean): void {
    const snapshot = loop.actor.getPersistedSnapshot() as PersistedLoop
    const state = stateString(snapshot.value)
    if (snapshot.context === loop.lastContext && state === loop.lastState && !final) return
    loop.lastContext = snapshot.context
    loop.lastState = state
    loop.record = recordOf(snapshot, loop.createdAt)
    const written = this.write(loop.record)
    const view = viewOf(loop.record)
    for (const listener of loop.listeners) listener(view)
    if (final) void written.then(() => this.finish(loop, snapshot))
  }

  private async finish(loop: LiveLoop, snapshot: PersistedLoop): Promise<void> {
    loop.unsubscribe?.()
    loop.unsubscribe = null
    await releaseLock(this.dataDir, loop.name)
    this.forgetProviders(loop.name)
    this.live.delete(loop.name)
    this.running--
    loop.settle.resolve(loop.actor.getSnapshot().output ?? outputOf(snapshot))
    this.drainQueue()
  }

  private onActorError(loop: LiveLoop, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err)
    this.onProblem(`engine: loop ${loop.name} crashed: ${message}`)
    loop.unsubscribe?.()
    this.live.delete(loop.name)
    this.running--
    loop.settle.reject(err)
    this.drainQueue()
  }

  private drainQueue(): void {
    while (!this.closed && this.running < this.maxConcurrent && this.queue.length > 0) {
      void this.launch(this.queue.shift()!)
    }
  }

  private write(record: LoopRecord): Promise<void> {
    const p = this.store.put(record).catch((err: unknown) => {
      this.onProblem(`engine: could not save loop ${record.name}: ${err instanceof Error ? err.message : err}`)
    })
    this.pending.add(p)
    void p.finally(() => this.pending.delete(p))
    return p
  }

  private async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending])
  }

  private provider(loopName: string, spec: string): { provider: ModelProvider; model: string } {
    const key = `${loopName}\u0000${spec}`
    let entry = this.providers.get(key)
    if (!entry) {
      const { scheme, model } = parseModelSpec(spec)
      const factory = this.factories[scheme]
      if (!factory) {
        throw new EngineError(
          `model: unknown scheme '${scheme}' in '${spec}' (known: ${Object.keys(this.factories).join(', ')})`,
        )
      }
      entry = { provider: factory(model, loopName), model }
      this.providers.set(key, entry)
    }
    return entry
  }

  private forgetProviders(loopName: string): void {
    for (const key of this.providers.keys()) if (key.startsWith(`${loopName}\u0000`)) this.providers.delete(key)
  }

  private async reserveName(wanted: string | undefined, title: string): Promise<string> {
    const taken = async (n: string) => this.reserved.has(n) || this.live.has(n) || (await this.store.has(n))
    if (wanted !== undefined) {
      if (!/^[a-z0-9][a-z0-9-]{0,79}$/.test(wanted)) {
        throw new EngineError(`name: '${wanted}' is not a valid loop name (lower-case letters, digits and -)`)
      }
      if (await taken(wanted)) throw new EngineError(`name: a loop named '${wanted}' already exists`)
      this.reserved.add(wanted)
      return wanted
    }
    const base = slugify(title)
    let name = base
    for (let n = 2; await taken(name); n++) name = `${base}-${n}`
    this.reserved.add(name)
    return name
  }

  private async pollCommands(): Promise<void> {
    for (const name of await inboxNames(this.dataDir)) {
      const loop = this.live.get(name)
      if (!loop) continue
      for (const event of await takeCommands(this.dataDir, name)) this.deliver(loop, event)
    }
  }
}

function outputOf(snapshot: PersistedLoop): LoopOutput {
  const c = snapshot.context
  return {
    name: c.name,
    status: c.status as LoopOutput['status'],
    reason: c.reason ?? 'completed',
    iteration: c.iteration,
    usage: c.usage,
    error: c.lastError,
  }
}

async function readTask(spec: LoopTaskSpec): Promise<Pick<LoopInput, 'task' | 'sections'>> {
  if ('goal' in spec) return goalTask(spec.goal)
  if ('plan' in spec) return parsePlan(spec.plan, spec.source ?? 'plan')
  let text: string
  try {
    text = await readFile(spec.planFile, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new EngineError(code === 'ENOENT' ? `plan: ${spec.planFile}: file not found` : `plan: ${spec.planFile}: ${code}`)
  }
  return parsePlan(text, spec.planFile)
}

async function checkWorkspace(dir: string): Promise<void> {
  let s
  try {
    s = await stat(dir)
  } catch {
    throw new EngineError(`workspace: ${dir} does not exist`)
  }
  if (!s.isDirectory()) throw new EngineError(`workspace: ${dir} is not a directory`)
}
