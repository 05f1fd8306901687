/**
 * The engine: spawns loop actors, queues them beyond the concurrency cap, writes
 * every state change to the store (and the transition to the loop's history),
 * restores unfinished loops from their snapshots, and lets users talk to them.
 * Every loop it acts on is claimed first (docs/architecture.md, "Ownership").
 * Its types are in services/engine/types.ts, its helpers in services/engine/.
 */
import { cp, mkdir, rm } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { createActor, type InspectionEvent } from 'xstate'
import { currentOwner, type Claim, type ClaimStore, type Owner } from '../adapters/claims.ts'
import { JsonStore } from '../adapters/json-store.ts'
import { scriptedFactory } from '../adapters/scripted-provider.ts'
import type { HistoryEntry, LoopRecord, NewHistoryEntry, SnapshotStore } from '../adapters/snapshot-store.ts'
import { loopMachine } from '../machines/loop.machine.ts'
import type { ControlEvent, GitWorkspace, LoopInput, LoopOutput } from '../machines/loop.types.ts'
import { resolveConfig } from './config.ts'
import { ProviderCache } from './engine/providers.ts'
import {
  checkpointWall,
  checkWorkspace,
  donePendingWorktree,
  notePendingWorktree,
  ownerText,
  phaseState,
  readTask,
} from './engine/support.ts'
import {
  EngineError,
  FINAL,
  PROBE,
  type EngineOptions,
  type ForkOptions,
  type LiveLoop,
  type LoopActor,
  type LoopHandle,
  type StartOptions,
  type LoopTaskSpec,
} from './engine/types.ts'
import {
  createWorktree,
  discardWorktree,
  ensureWorktree,
  forkWorktree,
  pathExists,
  removeWorktree,
  repoRoot,
  workDir,
} from './git-workspace.ts'
import { applyOffline } from './offline.ts'
import { slugify } from './plan.ts'
import { createLoopServices } from './session-actor.ts'
import {
  contextOf,
  detailOf,
  actorSnapshot,
  recordOf,
  restorable,
  savedSnapshot,
  stateString,
  viewOf,
  type LoopDetail,
  type LoopView,
  type PersistedLoop,
} from './views.ts'

export { EngineError } from './engine/types.ts'
export type { EngineOptions, ForkOptions, LoopHandle, LoopTaskSpec, StartOptions } from './engine/types.ts'

/** Creates an engine and, unless `resume: false`, restores the unfinished loops of its store. */
export async function createEngine(options: EngineOptions = {}): Promise<Engine> {
  const engine = new Engine(options)
  if (options.resume ?? true) await engine.resumeAll()
  return engine
}

export class Engine {
  readonly dataDir: string
  /** The data dir no model may reach (null for another store with no dataDir given). */
  private readonly protectedDataDir: string | null
  readonly store: SnapshotStore
  private readonly maxConcurrent: number
  private readonly historyLimit: number
  private readonly onProblem: (message: string) => void
  private readonly inspector: ((event: InspectionEvent) => void) | undefined
  /** One owner per loop (adapters/claims.ts): every loop this engine runs or queues is claimed first. */
  readonly claims: ClaimStore
  /** This engine as the owner of its claims. */
  readonly owner: Owner = currentOwner()
  /** The model providers of its loops. */
  private readonly models: ProviderCache
  private readonly machine: typeof loopMachine
  private readonly live = new Map<string, LiveLoop>()
  private readonly queue: LiveLoop[] = []
  private readonly reserved = new Set<string>()
  private readonly pending = new Set<Promise<void>>()
  private running = 0
  private poller: NodeJS.Timeout | null = null
  private closed = false
  private closing: Promise<void> | null = null

  constructor(options: EngineOptions) {
    this.dataDir = resolve(options.dataDir ?? 'data')
    this.onProblem = options.onProblem ?? ((m) => console.error(m))
    this.store = options.store ?? new JsonStore(this.dataDir, { onProblem: this.onProblem })
    this.claims = this.store.claims
    this.models = new ProviderCache({ scripted: scriptedFactory(), ...options.providers })
    this.maxConcurrent = options.maxConcurrentLoops ?? 3
    if (!Number.isInteger(this.maxConcurrent) || this.maxConcurrent < 1) {
      throw new EngineError(`engine: maxConcurrentLoops must be a positive integer (got ${options.maxConcurrentLoops})`)
    }
    this.historyLimit = options.historyLimit ?? 500
    // A store of another kind (MemoryStore) has no data dir unless one was named.
    this.protectedDataDir = options.store === undefined || options.dataDir !== undefined ? this.dataDir : null
    this.inspector = options.inspect
    this.machine = loopMachine.provide(
      createLoopServices({
        provider: (loop, spec) => this.models.get(loop, spec),
        durable: async (loop) => this.live.get(loop)?.lastWrite,
        dataDir: this.protectedDataDir,
      }),
    )
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
    this.assertOpen()
    const { name: wanted, workspace: ws, inPlace, ...loopOptions } = options
    const parsed = await readTask(spec)
    const config = resolveConfig(loopOptions)
    const dir = resolve(ws ?? process.cwd())
    await checkWorkspace(dir, this.protectedDataDir)
    // The models are checked before a name is claimed (a claim is a file in the data dir).
    this.models.require(PROBE, config)
    this.models.forget(PROBE)
    const { name, claim } = await this.reserveName(wanted, slugify(parsed.task.title))
    let pending = false
    let made: GitWorkspace | null = null
    let saved = false
    try {
      this.models.require(name, config)
      const repo = inPlace ? null : await repoRoot(dir)
      // A worktree is made before the record is saved: the intent is noted first, so that what a
      // start killed meanwhile leaves (a worktree and branch with no record) is ours to reclaim.
      const leftover = repo !== null && (await notePendingWorktree(this.protectedDataDir, name, repo))
      pending = repo !== null
      const git = repo === null ? null : (made = await createWorktree(dir, repo, name, 'HEAD', { reclaim: leftover }))
      const workspace = git === null ? dir : workDir(git)
      const input: LoopInput = { name, ...parsed, workspace, config, git }
      const loop = this.track(name, new Date().toISOString(), { input }, false, claim)
      const queued = this.running >= this.maxConcurrent
      loop.record = recordOf(savedSnapshot(loop.actor), loop.createdAt, queued)
      await this.store.put(loop.record)
      saved = true
      if (pending) await donePendingWorktree(this.protectedDataDir, name)
      if (queued) this.queue.push(loop)
      else await this.launch(loop)
      return loop.handle
    } catch (err) {
      this.models.forget(name)
      this.live.delete(name)
      if (!saved) {
        // nothing of this start stays: its worktree and branch go, and so does the note of them
        if (made !== null) await discardWorktree(made).catch(() => {})
        if (pending) await donePendingWorktree(this.protectedDataDir, name).catch(() => {})
      }
      await this.claims.release(claim)
      throw err
    } finally {
      this.reserved.delete(name)
    }
  }

  /**
   * Restores every unfinished loop of the store that no other live process runs.
   * Paused loops stay paused; queued ones queue. Returns their handles, oldest first.
   */
  async resumeAll(): Promise<LoopHandle[]> {
    this.assertOpen()
    const unfinished = (r: LoopRecord) => !FINAL.has(r.status) && !this.live.has(r.name)
    // Each loop is claimed before its record is read again and restored: of two engines resuming
    // one data dir, each loop goes to one. The records are read again under the claims in one
    // batch (a loop may have moved on, or ended, before it was ours).
    const claimed = new Map<string, Claim>()
    for (const listed of (await this.store.list()).filter(unfinished)) {
      const got = await this.claims.claim(listed.name, this.owner).catch((err: unknown) => {
        this.onProblem(`engine: could not claim ${listed.name}: ${err instanceof Error ? err.message : err}`)
        return null
      })
      if (got !== null && 'claim' in got) claimed.set(listed.name, got.claim)
    }
    if (claimed.size === 0) return []
    const records = (await this.store.list()).filter((r) => claimed.has(r.name))
    for (const [name, claim] of claimed) {
      if (!records.some((r) => r.name === name && unfinished(r))) await this.claims.release(claim)
    }
    // The restores (each decides, in this order, to launch or queue its loop) do not wait for one
    // another. A git loop's restore runs git in its repository: it is waited for before the next one.
    const restores: Promise<LoopHandle | null>[] = []
    for (const record of records.filter(unfinished)) {
      const claim = claimed.get(record.name)!
      // One loop that cannot be restored (a record with no usable snapshot) is reported; the others go on.
      const restore = this.restore(record, claim).catch(async (err: unknown) => {
        if (this.live.get(record.name)?.claim === claim) this.live.delete(record.name)
        this.models.forget(record.name)
        await this.claims.release(claim)
        this.onProblem(`engine: could not resume ${record.name}: ${err instanceof Error ? err.message : err}`)
        return null
      })
      restores.push(restore)
      if ((record.snapshot as PersistedLoop | null)?.context?.git) await restore
    }
    const handles = (await Promise.all(restores)).filter((h) => h !== null)
    // Loops restored as queued start once the running ones are back, if there is room.
    this.drainQueue()
    return handles
  }

  /** Restores one unfinished loop by name (its handle if this engine already runs it). */
  async resume(name: string): Promise<LoopHandle> {
    this.assertOpen()
    const live = this.live.get(name)
    if (live) return live.handle
    const record = await this.store.get(name)
    if (!record) throw new EngineError(`resume: no loop named '${name}'`)
    if (FINAL.has(record.status)) {
      throw new EngineError(`resume: loop ${name} already ended (${record.status}, ${record.reason})`)
    }
    const got = await this.claims.claim(name, this.owner)
    if (!('claim' in got)) throw new EngineError(`resume: loop ${name} is running in ${ownerText(got.heldBy)}`)
    let handle: LoopHandle
    try {
      // read again under the claim: it may have moved on (or ended) before it was ours
      const fresh = await this.store.get(name)
      if (fresh === null) throw new EngineError(`resume: no loop named '${name}'`)
      if (FINAL.has(fresh.status)) throw new EngineError(`resume: loop ${name} already ended (${fresh.status}, ${fresh.reason})`)
      handle = await this.restore(fresh, got.claim)
    } catch (err) {
      if (!this.live.has(name)) await this.claims.release(got.claim)
      throw err
    }
    this.drainQueue()
    return handle
  }

  /** Names of the unfinished loops in the store that no live process runs. */
  async unfinished(): Promise<string[]> {
    const names: string[] = []
    for (const r of await this.store.list()) {
      if (FINAL.has(r.status) || this.live.has(r.name)) continue
      if ((await this.claims.holder(r.name)) === null) names.push(r.name)
    }
    return names
  }

  /** The loop's history (transition log), oldest first. */
  async history(name: string): Promise<HistoryEntry[]> {
    if (!this.live.has(name) && !(await this.store.has(name))) throw new EngineError(`history: no loop named '${name}'`)
    await this.settled()
    return this.store.history(name)
  }

  /**
   * Creates a new loop from a past snapshot of `name` (with its own copy of the
   * workspace) and starts it; the original is left as it is.
   */
  async fork(name: string, options: ForkOptions): Promise<LoopHandle> {
    this.assertOpen()
    const entries = await this.history(name)
    if (entries.length === 0) throw new EngineError(`fork: loop ${name} has no history`)
    const at = entries.filter((e) => e.seq <= options.at && e.snapshot !== undefined).pop()
    if (!at) {
      const seqs = entries.filter((e) => e.snapshot !== undefined).map((e) => e.seq)
      throw new EngineError(
        `fork: no snapshot at or before #${options.at} of ${name} (snapshots at: ${seqs.join(', ') || 'none'})`,
      )
    }
    if ((at.snapshot as { status?: string }).status === 'done') {
      throw new EngineError(`fork: #${at.seq} is where ${name} ended (${at.to}); a fork of it would only copy the end`)
    }
    const source = at.snapshot as PersistedLoop
    const { name: newName, claim } = await this.reserveName(options.name, `${name}-fork`)
    // What this fork made, undone if it fails before it runs (nothing of the original is touched).
    let madeCopy: string | null = null
    let madeWorktree: GitWorkspace | null = null
    try {
      // Its models must be available here before anything is copied (e.g. `ollama:` without the provider).
      this.models.require(newName, source.context.config)
      const original = source.context.git ?? null
      let git = null
      let workspace: string
      if (original !== null && options.workspace === undefined) {
        // a git loop's fork gets its own worktree and branch, with the original's uncommitted files
        git = madeWorktree = await forkWorktree(original, newName)
        workspace = workDir(git)
      } else {
        workspace = resolve(
          options.workspace ?? join(dirname(source.context.workspace), `${basename(source.context.workspace)}.${newName}`),
        )
        const exists = () => new EngineError(`fork: workspace ${workspace} already exists`)
        if (await pathExists(workspace)) throw exists()
        // Claimed with a mkdir that fails if it exists: only a directory made here is removed on failure.
        await mkdir(dirname(workspace), { recursive: true })
        await mkdir(workspace).catch((err: unknown) => {
          throw (err as NodeJS.ErrnoException).code === 'EEXIST' ? exists() : err
        })
        madeCopy = workspace
        // The data dir, when it lies in the workspace, is not copied: the fork's model would read its copy.
        const dataDir = this.protectedDataDir === null ? null : resolve(this.protectedDataDir)
        await cp(source.context.workspace, workspace, {
          recursive: true,
          errorOnExist: true,
          force: false,
          filter: (src) => dataDir === null || resolve(src) !== dataDir,
        })
      }
      const snapshot: PersistedLoop = {
        ...source,
        context: { ...source.context, name: newName, workspace, git, runningSince: null, endedAt: null },
      }
      const now = new Date().toISOString()
      const record = recordOf(snapshot, now)
      await this.store.put(record)
      madeCopy = madeWorktree = null // saved: from here on the fork is a loop of the store, resumable
      return await this.restore(record, claim)
    } catch (err) {
      this.models.forget(newName)
      if (!this.live.has(newName)) await this.claims.release(claim)
      if (madeCopy !== null) await rm(madeCopy, { recursive: true, force: true }).catch(() => {})
      if (madeWorktree !== null) await discardWorktree(madeWorktree).catch(() => {})
      throw err
    } finally {
      this.reserved.delete(newName)
    }
  }

  /**
   * Removes the git worktree of an ended loop (its branch stays). Returns false
   * when there was no worktree to remove.
   */
  async clean(name: string): Promise<boolean> {
    const record = this.live.get(name)?.record ?? (await this.store.get(name))
    if (!record) throw new EngineError(`clean: no loop named '${name}'`)
    if (!FINAL.has(record.status)) {
      throw new EngineError(`clean: loop ${name} has not ended (${record.status}); cancel it first`)
    }
    const git = contextOf(record).git ?? null
    if (git === null) throw new EngineError(`clean: loop ${name} has no git worktree (it worked in ${contextOf(record).workspace})`)
    const got = await this.claims.claim(name, this.owner)
    if (!('claim' in got)) throw new EngineError(`clean: loop ${name} is held by ${ownerText(got.heldBy)}`)
    try {
      return await removeWorktree(git)
    } finally {
      await this.claims.release(got.claim)
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

  /** Handles of every loop this engine runs or queues. */
  handles(): LoopHandle[] {
    return [...this.live.values()].map((l) => l.handle)
  }

  /**
   * Saves every live loop and stops its actor without ending it: the loops stay
   * `running` (or `paused`, `queued`) in the store, to be resumed later.
   */
  close(): Promise<void> {
    // Every caller waits for the same close, so none carries on before the saves have landed.
    this.closing ??= this.shutDown()
    return this.closing
  }

  private async shutDown(): Promise<void> {
    this.closed = true
    if (this.poller) clearInterval(this.poller)
    for (const loop of this.live.values()) {
      loop.unsubscribe?.()
      loop.unsubscribe = null
      if (loop.started) {
        loop.record = recordOf(checkpointWall(savedSnapshot(loop.actor)), loop.createdAt)
        void this.write(loop)
        loop.actor.stop()
      }
    }
    await this.settled()
    await this.store.flush()
    await Promise.all([...this.live.values()].map((loop) => this.claims.release(loop.claim)))
    this.live.clear()
    this.queue.length = 0
  }

  private assertOpen(): void {
    if (this.closed) throw new EngineError('engine: closed')
  }

  /** Restores a loop this engine has claimed (`claim`), from its record read under the claim. */
  private async restore(record: LoopRecord, claim: Claim): Promise<LoopHandle> {
    const snapshot = record.snapshot as PersistedLoop
    const context = snapshot.context
    this.models.require(record.name, context.config)
    // Restored without its invoked children (the session, a commit): XState would start
    // them again from their input, and `loop.restored`, sent right after the start,
    // re-enters `running`, which stops them and invokes fresh ones (paused and queued
    // loops have none). Left out, they are not started twice.
    const restored = restorable(snapshot)
    const loop = this.track(record.name, record.createdAt, { snapshot: restored }, true, claim)
    loop.record = record
    loop.lastState = stateString(snapshot.value)
    // The actor's first snapshot is the record as saved: not written again (loop.restored's is).
    loop.lastContext = restored.context
    // A git loop's worktree may have been deleted meanwhile: check it out again, or end the loop.
    const git = context.git ?? null
    if (git !== null) {
      loop.workspaceProblem = await ensureWorktree(git).then(
        () => null,
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      )
    }
    if (record.status === 'queued' || this.running >= this.maxConcurrent) {
      // Waits for a slot: its view says so (the saved record is left as it is until it runs).
      if (record.status === 'running') loop.record = { ...record, status: 'queued' }
      this.queue.push(loop)
    } else await this.launch(loop)
    return loop.handle
  }

  private track(
    name: string,
    createdAt: string,
    from: { input: LoopInput } | { snapshot: PersistedLoop },
    restored: boolean,
    claim: Claim,
  ): LiveLoop {
    let settle!: LiveLoop['settle']
    const done = new Promise<LoopOutput>((resolve, reject) => (settle = { resolve, reject }))
    done.catch(() => {}) // observed through handle.done; never an unhandled rejection
    const loop: LiveLoop = {
      name,
      claim,
      createdAt,
      actor: null as unknown as LoopActor,
      restored,
      started: false,
      record: null as unknown as LoopRecord,
      listeners: new Set(),
      unsubscribe: null,
      lastContext: null,
      lastState: '',
      lastWrite: Promise.resolve(),
      lastPut: null,
      inspect: () => {},
      queuedCommands: Promise.resolve(),
      storageFailed: null,
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
    const inspect = (event: InspectionEvent) => {
      this.inspector?.(event)
      if (event.type === '@xstate.snapshot' && event.actorRef === loop.actor && loop.unsubscribe !== null) {
        this.onSnapshot(loop, event.event.type)
      }
    }
    loop.inspect = inspect
    loop.actor =
      'input' in from
        ? createActor(this.machine, { input: from.input, inspect })
        : // input is only read for a fresh start; a restored actor takes its context from the snapshot
          createActor(this.machine, { snapshot: actorSnapshot(from.snapshot), input: from.snapshot.context, inspect })
    this.live.set(name, loop)
    return loop
  }

  private async launch(loop: LiveLoop): Promise<void> {
    // A restore that was under way when the engine closed does not start its loop.
    if (this.closed) return
    this.running++
    loop.started = true
    // The error observer keeps an actor's error from being rethrown (and killing the process).
    const sub = loop.actor.subscribe({ error: (err) => this.onActorError(loop, err) })
    loop.unsubscribe = () => sub.unsubscribe()
    loop.actor.start()
    if (loop.restored) loop.actor.send({ type: 'loop.restored' })
    if (loop.workspaceProblem) loop.actor.send({ type: 'loop.workspaceFailed', message: loop.workspaceProblem })
  }

  /** Queued loops take commands too: cancel and say start the actor so that the event lands. */
  private deliver(loop: LiveLoop, event: ControlEvent): void {
    if (loop.storageFailed !== null && !loop.started) {
      loop.queuedCommands = loop.queuedCommands.then(() => this.afterStorageFailure(loop, event)).catch((err: unknown) => {
        this.onProblem(`engine: ${event.type} of loop ${loop.name}: ${err instanceof Error ? err.message : err}`)
      })
      return
    }
    if (loop.started) {
      loop.actor.send(event)
      return
    }
    // One at a time, in the order sent.
    loop.queuedCommands = loop.queuedCommands.then(() => this.applyQueued(loop, event)).catch((err: unknown) => {
      this.onProblem(`engine: ${event.type} of queued loop ${loop.name}: ${err instanceof Error ? err.message : err}`)
    })
  }

  /**
   * A command to a loop waiting for a slot is applied to its record under this
   * engine's claim, as to a loop no process runs (services/offline.ts): `say` does not
   * start it, a paused one stays queued paused, a cancelled one leaves the queue.
   */
  private async applyQueued(loop: LiveLoop, event: ControlEvent): Promise<void> {
    if (this.live.get(loop.name) !== loop) return // it ended (or was given up) before this command's turn
    if (loop.started) return loop.actor.send(event)
    const next = await applyOffline(this.store, loop.name, event)
    // launched meanwhile from the older record: the running actor takes the command (and saves over it)
    if (loop.started) return loop.actor.send(event)
    const snapshot = next.snapshot as PersistedLoop
    loop.record = next.status === 'running' ? { ...next, status: 'queued' } : next
    loop.restored = true
    loop.lastState = stateString(snapshot.value)
    const restored = restorable(snapshot)
    loop.lastContext = restored.context
    loop.actor = createActor(this.machine, { snapshot: actorSnapshot(restored), input: restored.context, inspect: loop.inspect })
    const view = viewOf(loop.record)
    for (const listener of loop.listeners) listener(view)
    if (!FINAL.has(next.status)) return
    this.dequeue(loop)
    this.live.delete(loop.name)
    this.models.forget(loop.name)
    await this.claims.release(loop.claim)
    const c = snapshot.context
    loop.settle.resolve({
      name: c.name,
      status: c.status as LoopOutput['status'],
      reason: c.reason ?? 'user_cancelled',
      iteration: c.iteration,
      usage: c.usage,
      error: c.lastError,
    })
  }

  private dequeue(loop: LiveLoop): void {
    const i = this.queue.indexOf(loop)
    if (i >= 0) this.queue.splice(i, 1)
  }

  /** Every root snapshot: save it if the state or context changed, log transitions, tell listeners. */
  private onSnapshot(loop: LiveLoop, eventType: string): void {
    const actorSnapshot = loop.actor.getSnapshot()
    const final = actorSnapshot.status === 'done'
    const state = stateString(actorSnapshot.value)
    if (actorSnapshot.context === loop.lastContext && state === loop.lastState && !final) return
    const from = loop.lastState
    loop.lastContext = actorSnapshot.context
    loop.lastState = state
    const snapshot = savedSnapshot(loop.actor)
    loop.record = recordOf(snapshot, loop.createdAt)
    const written = this.write(loop)
    if (state !== from || eventType === 'loop.restored') this.logTransition(loop, eventType, from, state, snapshot)
    const view = viewOf(loop.record)
    for (const listener of loop.listeners) listener(view)
    // Ended only once that is on disk: a final state that could not be saved waits, paused, like any other.
    if (final) {
      void written.then(() => {
        if (loop.storageFailed === null) void this.finish(loop, actorSnapshot.output)
      })
    }
  }

  private logTransition(loop: LiveLoop, event: string, from: string, to: string, snapshot: PersistedLoop): void {
    const c = snapshot.context
    const entry: NewHistoryEntry = { at: new Date().toISOString(), event, from, to, iteration: c.iteration, phase: c.phase }
    // Snapshots at phase boundaries: where the top-level phase state changes (coding → auditing, → paused …).
    if (phaseState(from) !== phaseState(to)) entry.snapshot = snapshot
    const p = this.store.appendHistory(loop.name, [entry], this.historyLimit).catch((err: unknown) => {
      this.onProblem(`engine: could not log history of ${loop.name}: ${err instanceof Error ? err.message : err}`)
    })
    this.keepPending(p)
  }

  private async finish(loop: LiveLoop, output: LoopOutput | undefined): Promise<void> {
    loop.unsubscribe?.()
    loop.unsubscribe = null
    await this.claims.release(loop.claim)
    this.models.forget(loop.name)
    this.live.delete(loop.name)
    this.running--
    const c = contextOf(loop.record)
    loop.settle.resolve(
      output ?? {
        name: c.name,
        status: c.status as LoopOutput['status'],
        reason: c.reason ?? 'completed',
        iteration: c.iteration,
        usage: c.usage,
        error: c.lastError,
      },
    )
    this.drainQueue()
  }

  private onActorError(loop: LiveLoop, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err)
    this.onProblem(`engine: loop ${loop.name} crashed: ${message}`)
    loop.unsubscribe?.()
    loop.unsubscribe = null
    this.live.delete(loop.name)
    this.running--
    void this.claims.release(loop.claim)
    loop.settle.reject(err)
    this.drainQueue()
  }

  private drainQueue(): void {
    while (!this.closed && this.running < this.maxConcurrent && this.queue.length > 0) {
      void this.launch(this.queue.shift()!)
    }
  }

  /** Saves the loop's current record. */
  private write(loop: LiveLoop): Promise<void> {
    // Fencing: a loop whose claim another process took is not this engine's to save any more.
    if (!this.claims.held(loop.claim)) {
      this.lostClaim(loop)
      return loop.lastWrite
    }
    // The handler keeps only the name: a record held until its put settles would keep every
    // intermediate snapshot of a busy loop alive while its writes queue.
    const name = loop.record.name
    const put = this.store.put(loop.record)
    // The store gives a put that joins a write already waiting that write's promise: it has its handlers.
    if (put === loop.lastPut) return loop.lastWrite
    loop.lastPut = put
    const p = put.then(
      () => {},
      (err: unknown) => this.saveFailed(loop, name, err),
    )
    this.keepPending(p)
    loop.lastWrite = p
    return p
  }

  /**
   * No progress without durability: a loop whose record could not be saved (ENOSPC,
   * EIO, EROFS …) is stopped where it stands, its last good record left as it is on
   * disk, and shows as paused. A side-effect tool waiting for that save never runs
   * (its session is aborted). `resume` restores it from that last good record.
   */
  private saveFailed(loop: LiveLoop, name: string, err: unknown): void {
    const why = err instanceof Error ? err.message : String(err)
    if (this.closed || this.live.get(name) !== loop) {
      this.onProblem(`engine: could not save loop ${name}: ${why}`)
      return
    }
    if (loop.storageFailed !== null) return // reported once
    loop.storageFailed = why
    this.onProblem(
      `engine: could not save loop ${name}: ${why}; paused at its last saved state (free space, then resume it)`,
    )
    if (loop.started) {
      loop.unsubscribe?.()
      loop.unsubscribe = null
      loop.actor.stop()
      loop.started = false
      this.running--
    }
    loop.record = { ...loop.record, status: 'paused' }
    const view = viewOf(loop.record)
    for (const listener of loop.listeners) listener(view)
    this.drainQueue()
  }

  /**
   * A command to a loop stopped by a failed save: `resume` (or any command but
   * pause) rebuilds it from its last good record on disk and queues it again.
   */
  private async afterStorageFailure(loop: LiveLoop, event: ControlEvent): Promise<void> {
    if (event.type === 'loop.pause') return
    const good = await this.store.get(loop.name)
    if (good === null || this.live.get(loop.name) !== loop || loop.storageFailed === null) return
    const snapshot = good.snapshot as PersistedLoop
    const restored = restorable(snapshot)
    loop.storageFailed = null
    loop.restored = true
    loop.record = good.status === 'running' ? { ...good, status: 'queued' } : good
    loop.lastState = stateString(snapshot.value)
    loop.lastContext = restored.context
    loop.actor = createActor(this.machine, { snapshot: actorSnapshot(restored), input: restored.context, inspect: loop.inspect })
    this.queue.unshift(loop)
    if (event.type !== 'loop.resume') this.deliver(loop, event)
    this.drainQueue()
  }

  /** Stops a loop whose claim another process took over, without saving it (the new owner carries it on). */
  private lostClaim(loop: LiveLoop): void {
    if (!this.live.has(loop.name) || this.live.get(loop.name) !== loop) return
    const message = `engine: loop ${loop.name}: another process took over its claim; stopped here without saving`
    this.onProblem(message)
    loop.unsubscribe?.()
    loop.unsubscribe = null
    this.live.delete(loop.name)
    this.dequeue(loop)
    if (loop.started) {
      this.running--
      loop.actor.stop()
    }
    this.models.forget(loop.name)
    loop.settle.reject(new EngineError(message))
    this.drainQueue()
  }

  /** Keeps a store write in `pending` until it settles. */
  private keepPending(p: Promise<void>): void {
    this.pending.add(p)
    void p.finally(() => this.pending.delete(p))
  }

  private async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending])
  }

  /**
   * A free name for a new loop, claimed: `wanted` (refused when a loop of that name
   * exists or another process is starting one), else `base`, `base-2` … (the first
   * whose claim this engine gets and that no saved loop has).
   */
  private async reserveName(wanted: string | undefined, base: string): Promise<{ name: string; claim: Claim }> {
    const taken = async (n: string) => this.reserved.has(n) || this.live.has(n) || (await this.store.has(n))
    if (wanted !== undefined && !/^[a-z0-9][a-z0-9-]{0,79}$/.test(wanted)) {
      throw new EngineError(`name: '${wanted}' is not a valid loop name (lower-case letters, digits and -)`)
    }
    for (let n = 1; ; n++) {
      const name = wanted ?? (n === 1 ? base : `${base}-${n}`)
      const exists = () => new EngineError(`name: a loop named '${name}' already exists`)
      if (await taken(name)) {
        if (wanted !== undefined) throw exists()
        continue
      }
      this.reserved.add(name)
      const got = await this.claims.claim(name, this.owner).catch((err: unknown) => {
        this.reserved.delete(name)
        throw err
      })
      if (!('claim' in got)) {
        this.reserved.delete(name)
        if (wanted !== undefined) {
          throw new EngineError(`name: a loop named '${name}' is being started or run by ${ownerText(got.heldBy)}`)
        }
        continue
      }
      // saved by another process between the look and the claim
      if (await this.store.has(name)) {
        this.reserved.delete(name)
        await this.claims.release(got.claim)
        if (wanted !== undefined) throw exists()
        continue
      }
      return { name, claim: got.claim }
    }
  }

  private async pollCommands(): Promise<void> {
    for (const name of await this.store.inbox.waiting()) {
      const loop = this.live.get(name)
      if (!loop) continue
      for (const event of await this.store.inbox.take(name, this.onProblem)) this.deliver(loop, event)
    }
  }
}
