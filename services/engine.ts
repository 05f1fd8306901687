/**
 * The engine: starts, restores, forks and cleans loops, and shows them. Its parts
 * are in services/engine/: ownership (every loop it acts on is claimed first, and
 * commands from other processes reach it; docs/architecture.md "Ownership"), the
 * live loops (actors, handles, commands, ends), the scheduler (slots and queue),
 * the recorder (records, history, checkpoints) and workspaces (plain dir, worktree,
 * fork copy, undo).
 */
import { resolve } from 'node:path'
import type { Claim, ClaimStore, Owner } from '../adapters/claims.ts'
import { JsonStore } from '../adapters/json-store.ts'
import { scriptedFactory } from '../adapters/scripted-provider.ts'
import type { HistoryEntry, LoopRecord, SnapshotStore } from '../adapters/snapshot-store.ts'
import { loopMachine } from '../machines/loop.machine.ts'
import type { LoopConfig, LoopInput } from '../machines/loop.types.ts'
import { continueProblem } from '../machines/continue.ts'
import type { PersistedLoop } from '../machines/persisted.ts'
import { resolveConfig } from './config.ts'
import { LiveLoops } from './engine/loops.ts'
import { Ownership } from './engine/ownership.ts'
import { ProviderCache } from './engine/providers.ts'
import { EngineError, FINAL, PROBE, type ContinueOverrides, type EngineOptions, type ForkOptions, type LoopHandle, type LoopTaskSpec, type StartOptions } from './engine/types.ts'
import { checkWorkspace, cleanWorktree, forkWorkspace, makeWorkspace, readTask, worktreeProblem, type MadeWorkspace } from './engine/workspaces.ts'
import { slugify } from './plan.ts'
import { createLoopServices } from './session-actor.ts'
import { detailOf, recordOf, savedSnapshot, stateString, viewOf, type LoopDetail, type LoopView } from './views.ts'

export { EngineError } from './engine/types.ts'
export type { ContinueOverrides, EngineOptions, ForkOptions, LoopHandle, LoopTaskSpec, StartOptions } from './engine/types.ts'

/**
 * A loop's config with the overrides of continue or fork, validated like a new
 * loop's: other coder models (the auditor's too when they were the same), checks
 * added, budget limits raised.
 */
function overriddenConfig(config: LoopConfig, overrides: Pick<ContinueOverrides, 'models' | 'checks' | 'budget'>): LoopConfig {
  const sameAuditors = config.auditorModels.join() === config.models.join()
  return resolveConfig({
    ...config,
    ...(overrides.models ? { models: overrides.models, ...(sameAuditors ? { auditorModels: overrides.models } : {}) } : {}),
    checks: [...(config.checks ?? []), ...(overrides.checks ?? [])],
    budget: { ...config.budget, ...overrides.budget },
  })
}

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
  private readonly onProblem: (message: string) => void
  private readonly ownership: Ownership
  /** The model providers of its loops. */
  private readonly models: ProviderCache
  private readonly loops: LiveLoops
  private readonly historyLimit: number
  private closed = false
  private closing: Promise<void> | null = null

  constructor(options: EngineOptions) {
    this.dataDir = resolve(options.dataDir ?? 'data')
    this.onProblem = options.onProblem ?? ((m) => console.error(m))
    this.store = options.store ?? new JsonStore(this.dataDir, { onProblem: this.onProblem, keepSessions: options.keepSessions })
    this.ownership = new Ownership(this.store, this.onProblem)
    this.models = new ProviderCache({ scripted: scriptedFactory(), ...options.providers })
    // A store of another kind (MemoryStore) has no data dir unless one was named.
    this.protectedDataDir = options.store === undefined || options.dataDir !== undefined ? this.dataDir : null
    this.historyLimit = options.historyLimit ?? 500
    const machine = loopMachine.provide(
      createLoopServices({
        provider: (loop, spec) => this.models.get(loop, spec),
        durable: async (loop) => this.loops.get(loop)?.lastWrite,
        dataDir: this.protectedDataDir,
      }),
    )
    this.loops = new LiveLoops({
      machine,
      store: this.store,
      ownership: this.ownership,
      models: this.models,
      maxConcurrentLoops: options.maxConcurrentLoops,
      historyLimit: this.historyLimit,
      onProblem: this.onProblem,
      inspect: options.inspect,
    })
    if (options.acceptCommands ?? options.store === undefined) {
      this.ownership.acceptCommands(
        options.commandPollMs ?? 200,
        (name) => this.loops.has(name),
        (name, event) => {
          const loop = this.loops.get(name)
          if (loop) this.loops.deliver(loop, event)
        },
      )
    }
  }

  /** One owner per loop (adapters/claims.ts): every loop this engine runs or queues is claimed first. */
  get claims(): ClaimStore {
    return this.ownership.claims
  }

  /** This engine as the owner of its claims. */
  get owner(): Owner {
    return this.ownership.owner
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
    const { name, claim } = await this.ownership.reserveName(wanted, slugify(parsed.task.title), (n) => this.loops.has(n))
    let made: MadeWorkspace | null = null
    try {
      this.models.require(name, config)
      made = await makeWorkspace(dir, name, inPlace ?? false, this.protectedDataDir)
      const input: LoopInput = { name, ...parsed, workspace: made.workspace, config, git: made.git }
      const loop = this.loops.track(name, new Date().toISOString(), { input }, claim)
      const queued = this.loops.scheduler.full()
      loop.record = recordOf(savedSnapshot(loop.actor), loop.createdAt, queued)
      try {
        await this.store.put(loop.record)
      } catch (err) {
        this.loops.untrack(loop)
        throw err
      }
      const saved = made
      made = null // saved: from here on the workspace is the loop's
      await saved.keep().catch((err: unknown) => this.onProblem(`engine: ${name}: ${err instanceof Error ? err.message : err}`))
      if (queued) this.loops.scheduler.enqueue(loop)
      else this.loops.scheduler.run(loop)
      return loop.handle
    } catch (err) {
      this.models.forget(name)
      // nothing of this start stays: its worktree and branch go, and so does the note of them
      if (made !== null) await made.undo()
      if (!this.loops.has(name)) await this.ownership.release(claim)
      throw err
    } finally {
      this.ownership.unreserve(name)
    }
  }

  /**
   * Restores every unfinished loop of the store that no other live process runs.
   * Paused loops stay paused; queued ones queue. Returns their handles, oldest first.
   */
  async resumeAll(): Promise<LoopHandle[]> {
    this.assertOpen()
    const unfinished = (r: LoopRecord) => !FINAL.has(r.status) && !this.loops.has(r.name)
    // Each loop is claimed before its record is read again and restored: of two engines resuming
    // one data dir, each loop goes to one. The records are read again under the claims in one
    // batch (a loop may have moved on, or ended, before it was ours).
    const claimed = new Map<string, Claim>()
    for (const listed of (await this.store.list()).filter(unfinished)) {
      const claim = await this.ownership.tryClaim(listed.name)
      if (claim !== null) claimed.set(listed.name, claim)
    }
    if (claimed.size === 0) return []
    const records = (await this.store.list()).filter((r) => claimed.has(r.name))
    for (const [name, claim] of claimed) {
      if (!records.some((r) => r.name === name && unfinished(r))) await this.ownership.release(claim)
    }
    // The restores (each decides, in this order, to launch or queue its loop) do not wait for one
    // another. A git loop's restore runs git in its repository: it is waited for before the next one.
    const restores: Promise<LoopHandle | null>[] = []
    for (const record of records.filter(unfinished)) {
      const claim = claimed.get(record.name)!
      // One loop that cannot be restored is reported; the others go on.
      const restore = this.restore(record, claim).catch(async (err: unknown) => {
        await this.ownership.release(claim)
        this.onProblem(`engine: could not resume ${record.name}: ${err instanceof Error ? err.message : err}`)
        return null
      })
      restores.push(restore)
      if (record.snapshot.context.git) await restore
    }
    const handles = (await Promise.all(restores)).filter((h) => h !== null)
    // Loops restored as queued start once the running ones are back, if there is room.
    this.loops.scheduler.drain()
    return handles
  }

  /** Restores one unfinished loop by name (its handle if this engine already runs it). */
  async resume(name: string): Promise<LoopHandle> {
    this.assertOpen()
    const live = this.loops.get(name)
    if (live) return live.handle
    const ended = (r: LoopRecord) => new EngineError(`resume: loop ${name} already ended (${r.status}, ${r.reason})`)
    const record = await this.store.get(name)
    if (!record) throw new EngineError(`resume: no loop named '${name}'`)
    if (FINAL.has(record.status)) throw ended(record)
    const claim = await this.ownership.claim(name, (owner) => `resume: loop ${name} is running in ${owner}`)
    // read again under the claim: it may have moved on (or ended) before it was ours
    const fresh = await this.store.get(name).catch(async (err: unknown) => {
      await this.ownership.release(claim)
      throw err
    })
    if (fresh === null || FINAL.has(fresh.status)) {
      await this.ownership.release(claim)
      throw fresh === null ? new EngineError(`resume: no loop named '${name}'`) : ended(fresh)
    }
    const handle = await this.restore(fresh, claim).catch(async (err: unknown) => {
      await this.ownership.release(claim)
      throw err
    })
    this.loops.scheduler.drain()
    return handle
  }

  /** Names of the unfinished loops in the store that no live process runs. */
  async unfinished(): Promise<string[]> {
    const names: string[] = []
    for (const r of await this.store.list()) {
      if (FINAL.has(r.status) || this.loops.has(r.name)) continue
      if ((await this.ownership.claims.holder(r.name)) === null) names.push(r.name)
    }
    return names
  }

  /** The loop's history (transition log), oldest first. */
  async history(name: string): Promise<HistoryEntry[]> {
    if (!this.loops.has(name) && !(await this.store.has(name))) throw new EngineError(`history: no loop named '${name}'`)
    await this.loops.recorder.settled()
    return this.store.history(name)
  }

  /**
   * Gives an ended loop more room (machines/continue.ts): reopens it as paused under
   * this engine's claim and lets the chart's `loop.continue` take it on with the
   * overrides. Its findings, sections, usage and journal stay. Refuses an ending that
   * cannot go on, and bad overrides, before anything is saved.
   */
  async continue(name: string, overrides: ContinueOverrides = {}): Promise<LoopHandle> {
    this.assertOpen()
    if (this.loops.has(name)) throw new EngineError(`continue: loop ${name} has not ended`)
    const claim = await this.ownership.claim(name, (owner) => `continue: loop ${name} is held by ${owner}`)
    try {
      const record = await this.store.get(name)
      if (record === null) throw new EngineError(`continue: no loop named '${name}'`)
      if (!FINAL.has(record.status)) throw new EngineError(`continue: loop ${name} has not ended (${record.status})`)
      const c = record.snapshot.context
      if (overrides.more !== undefined && (!Number.isInteger(overrides.more) || overrides.more < 1)) {
        throw new EngineError(`continue: more must be a positive integer (got ${overrides.more})`)
      }
      const config = overriddenConfig(c.config, overrides)
      const options = { more: overrides.more, say: overrides.say, config }
      const problem = continueProblem(c, options)
      if (problem !== null) throw new EngineError(`continue: loop ${name}: ${problem}`)
      this.models.require(name, config)
      // Reopened where it ended, as paused: the chart's loop.continue takes it on from there.
      const reopened = recordOf({ ...record.snapshot, status: 'active', value: 'paused', output: undefined, context: { ...c, status: 'paused' } }, record.createdAt)
      await this.store.put(reopened)
      await this.store.appendHistory(name, [{ at: new Date().toISOString(), event: 'loop.reopened', from: stateString(record.snapshot.value), to: 'paused', iteration: c.iteration, phase: c.phase }], this.historyLimit)
      const handle = await this.restore(reopened, claim)
      this.loops.deliver(this.loops.get(name)!, { type: 'loop.continue', options })
      this.loops.scheduler.drain()
      return handle
    } catch (err) {
      this.models.forget(name)
      if (!this.loops.has(name)) await this.ownership.release(claim)
      throw err
    }
  }

  /**
   * Creates a new loop from a past snapshot of `name` (with its own copy of the
   * workspace) and starts it; the original is left as it is.
   */
  async fork(name: string, options: ForkOptions): Promise<LoopHandle> {
    this.assertOpen()
    const at = await this.forkPoint(name, options.at)
    const source = at.snapshot
    const config = overriddenConfig(source.context.config, options)
    const { name: newName, claim } = await this.ownership.reserveName(options.name, `${name}-fork`, (n) => this.loops.has(n))
    let made: MadeWorkspace | null = null
    try {
      // Its models must be available here before anything is copied (e.g. `ollama:` without the provider).
      this.models.require(newName, config)
      const original = { workspace: source.context.workspace, git: source.context.git ?? null }
      made = await forkWorkspace(original, newName, options.workspace, this.protectedDataDir)
      const snapshot: PersistedLoop = {
        ...source,
        context: {
          ...source.context,
          name: newName,
          workspace: made.workspace,
          git: made.git,
          runningSince: null,
          endedAt: null,
          config,
          forkedFrom: { name, seq: at.seq },
          ...(config.models.join() !== source.context.config.models.join() ? { modelIndex: { coder: 0, auditor: 0 } } : {}),
          ...(options.say?.trim() ? { inbox: [...source.context.inbox, options.say.trim()] } : {}),
        },
      }
      const record = recordOf(snapshot, new Date().toISOString())
      await this.store.put(record)
      made = null // saved: from here on the fork is a loop of the store, resumable
      return await this.restore(record, claim)
    } catch (err) {
      this.models.forget(newName)
      if (!this.loops.has(newName)) await this.ownership.release(claim)
      if (made !== null) await made.undo()
      throw err
    } finally {
      this.ownership.unreserve(newName)
    }
  }

  /** The history entry a fork of `name` at `at` starts from (the nearest with a snapshot at or before it). */
  private async forkPoint(name: string, at: number): Promise<{ seq: number; snapshot: PersistedLoop }> {
    const entries = await this.history(name)
    if (entries.length === 0) throw new EngineError(`fork: loop ${name} has no history`)
    const entry = entries.filter((e) => e.seq <= at && e.snapshot !== undefined).pop()
    if (!entry?.snapshot) {
      const seqs = entries.filter((e) => e.snapshot !== undefined).map((e) => e.seq)
      throw new EngineError(`fork: no snapshot at or before #${at} of ${name} (snapshots at: ${seqs.join(', ') || 'none'})`)
    }
    if (entry.snapshot.status === 'done') {
      throw new EngineError(`fork: #${entry.seq} is where ${name} ended (${entry.to}); a fork of it would only copy the end`)
    }
    return { seq: entry.seq, snapshot: entry.snapshot }
  }

  /**
   * Removes the git worktree of an ended loop (its branch stays). Returns false
   * when there was no worktree to remove.
   */
  async clean(name: string): Promise<boolean> {
    const record = this.loops.get(name)?.record ?? (await this.store.get(name))
    if (!record) throw new EngineError(`clean: no loop named '${name}'`)
    if (!FINAL.has(record.status)) {
      throw new EngineError(`clean: loop ${name} has not ended (${record.status}); cancel it first`)
    }
    const { git, workspace } = record.snapshot.context
    if (!git) throw new EngineError(`clean: loop ${name} has no git worktree (it worked in ${workspace})`)
    const claim = await this.ownership.claim(name, (owner) => `clean: loop ${name} is held by ${owner}`)
    try {
      return await cleanWorktree(git)
    } finally {
      await this.ownership.release(claim)
    }
  }

  /** Every saved loop, oldest first, with the live state of the loops this engine runs. */
  async list(): Promise<LoopView[]> {
    const records = await this.store.list()
    return records.map((r) => viewOf(this.loops.get(r.name)?.record ?? r))
  }

  /** One loop in detail, or null. */
  async get(name: string): Promise<LoopDetail | null> {
    const record = this.loops.get(name)?.record ?? (await this.store.get(name))
    return record === null ? null : detailOf(record)
  }

  /** The handle of a loop this engine runs or queues. */
  handle(name: string): LoopHandle | undefined {
    return this.loops.get(name)?.handle
  }

  /** Handles of every loop this engine runs or queues. */
  handles(): LoopHandle[] {
    return this.loops.all().map((l) => l.handle)
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
    this.ownership.stopCommands()
    await this.loops.close()
  }

  private assertOpen(): void {
    if (this.closed) throw new EngineError('engine: closed')
  }

  /**
   * Restores a loop this engine has claimed (`claim`), from its record read under the
   * claim. On failure the loop is forgotten; the claim is the caller's to give up.
   */
  private async restore(record: LoopRecord, claim: Claim): Promise<LoopHandle> {
    let loop
    try {
      this.models.require(record.name, record.snapshot.context.config)
      // Restored without its invoked children (the session, a commit): XState would start
      // them again from their input, and `loop.restored`, sent right after the start,
      // re-enters `running`, which stops them and invokes fresh ones (paused and queued
      // loops have none). Left out, they are not started twice.
      loop = this.loops.track(record.name, record.createdAt, { record }, claim)
      // A git loop's worktree may have been deleted meanwhile: check it out again, or end the loop.
      loop.workspaceProblem = await worktreeProblem(record.snapshot.context.git ?? null)
    } catch (err) {
      if (loop) this.loops.untrack(loop)
      this.models.forget(record.name)
      throw err
    }
    if (record.status === 'queued' || this.loops.scheduler.full()) {
      // Waits for a slot: its view says so (the saved record is left as it is until it runs).
      if (record.status === 'running') loop.record = { ...record, status: 'queued' }
      this.loops.scheduler.enqueue(loop)
    } else this.loops.scheduler.run(loop)
    return loop.handle
  }
}
