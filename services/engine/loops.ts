/**
 * The loops an engine runs or queues: their actors, handles and listeners, the
 * commands sent to them, and how each one ends (finished, crashed, stopped by a
 * failed save, or taken over by another process). Records are the recorder's,
 * slots the scheduler's, claims ownership's.
 */
import { createActor, type InspectionEvent } from 'xstate'
import type { LoopRecord, SnapshotStore } from '../../adapters/snapshot-store.ts'
import type { loopMachine } from '../../machines/loop.machine.ts'
import type { LoopCommand, LoopInput, LoopOutput } from '../../machines/loop.types.ts'
import type { PersistedLoop } from '../../machines/persisted.ts'
import { applyOffline } from '../offline.ts'
import { actorSnapshot, restorable, stateString, viewOf } from '../views.ts'
import type { Ownership } from './ownership.ts'
import type { ProviderCache } from './providers.ts'
import { Recorder } from './recorder.ts'
import { Scheduler } from './scheduler.ts'
import { EngineError, FINAL, type LiveLoop, type LoopActor } from './types.ts'

export interface LiveLoopsOptions {
  machine: typeof loopMachine
  store: SnapshotStore
  ownership: Ownership
  models: ProviderCache
  maxConcurrentLoops?: number
  historyLimit: number
  onProblem: (message: string) => void
  inspect?: (event: InspectionEvent) => void
}

export class LiveLoops {
  readonly scheduler: Scheduler
  readonly recorder: Recorder
  readonly #live = new Map<string, LiveLoop>()
  readonly #machine: typeof loopMachine
  readonly #store: SnapshotStore
  readonly #ownership: Ownership
  readonly #models: ProviderCache
  readonly #onProblem: (message: string) => void
  readonly #inspector: ((event: InspectionEvent) => void) | undefined
  #closed = false

  constructor(o: LiveLoopsOptions) {
    this.#machine = o.machine
    this.#store = o.store
    this.#ownership = o.ownership
    this.#models = o.models
    this.#onProblem = o.onProblem
    this.#inspector = o.inspect
    this.scheduler = new Scheduler(o.maxConcurrentLoops, (loop) => this.#launch(loop))
    this.recorder = new Recorder(o.store, (claim) => o.ownership.held(claim), o.historyLimit, o.onProblem, {
      lost: (loop) => this.#lostClaim(loop),
      failed: (loop, name, err) => this.#saveFailed(loop, name, err),
    })
  }

  get(name: string): LiveLoop | undefined {
    return this.#live.get(name)
  }

  has(name: string): boolean {
    return this.#live.has(name)
  }

  all(): LiveLoop[] {
    return [...this.#live.values()]
  }

  /**
   * A live loop (not started yet) for a new loop's input, or for a record to restore.
   * `claim` is this engine's claim of it, held until it ends or the engine closes.
   */
  track(name: string, createdAt: string, from: { input: LoopInput } | { record: LoopRecord }, claim: LiveLoop['claim']): LiveLoop {
    let settle!: LiveLoop['settle']
    const done = new Promise<LoopOutput>((resolve, reject) => (settle = { resolve, reject }))
    done.catch(() => {}) // observed through handle.done; never an unhandled rejection
    const loop: LiveLoop = {
      name,
      claim,
      createdAt,
      actor: null as unknown as LoopActor,
      restored: false,
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
    loop.inspect = (event: InspectionEvent) => {
      this.#inspector?.(event)
      if (event.type === '@xstate.snapshot' && event.actorRef === loop.actor && loop.unsubscribe !== null) {
        this.#onSnapshot(loop, event.event.type)
      }
    }
    if ('input' in from) loop.actor = createActor(this.#machine, { input: from.input, inspect: loop.inspect })
    else {
      loop.record = from.record
      this.#rebuild(loop, from.record)
    }
    this.#live.set(name, loop)
    return loop
  }

  /** Forgets a loop that never ran (its start or restore failed). */
  untrack(loop: LiveLoop): void {
    if (this.#live.get(loop.name) === loop) this.#live.delete(loop.name)
  }

  /** Queued loops take commands too: applied to their record, one at a time, in the order sent. */
  deliver(loop: LiveLoop, event: LoopCommand): void {
    if (loop.storageFailed !== null && !loop.started) {
      loop.queuedCommands = loop.queuedCommands.then(() => this.#afterStorageFailure(loop, event)).catch((err: unknown) => {
        this.#onProblem(`engine: ${event.type} of loop ${loop.name}: ${err instanceof Error ? err.message : err}`)
      })
      return
    }
    if (loop.started) {
      loop.actor.send(event)
      return
    }
    loop.queuedCommands = loop.queuedCommands.then(() => this.#applyQueued(loop, event)).catch((err: unknown) => {
      this.#onProblem(`engine: ${event.type} of queued loop ${loop.name}: ${err instanceof Error ? err.message : err}`)
    })
  }

  /**
   * Saves every live loop and stops its actor without ending it: the loops stay
   * `running` (or `paused`, `queued`) in the store. Resolves once the saves landed
   * and the claims are given up.
   */
  async close(): Promise<void> {
    this.#closed = true
    this.scheduler.close()
    for (const loop of this.#live.values()) {
      loop.unsubscribe?.()
      loop.unsubscribe = null
      if (loop.started) {
        void this.recorder.checkpoint(loop)
        loop.actor.stop()
      }
    }
    await this.recorder.settled()
    await this.#store.flush()
    await Promise.all([...this.#live.values()].map((loop) => this.#ownership.release(loop.claim)))
    this.#live.clear()
  }

  /** Builds the loop's actor from a saved record (not started). */
  #rebuild(loop: LiveLoop, record: LoopRecord): void {
    const restored = restorable(record.snapshot)
    loop.restored = true
    loop.lastState = stateString(restored.value)
    // The actor's first snapshot is the record as saved: not written again (loop.restored's is).
    loop.lastContext = restored.context
    // input is only read for a fresh start; a restored actor takes its context from the snapshot
    loop.actor = createActor(this.#machine, { snapshot: actorSnapshot(restored), input: restored.context, inspect: loop.inspect })
  }

  #launch(loop: LiveLoop): void {
    // A restore that was under way when the engine closed does not start its loop.
    if (this.#closed) return
    loop.started = true
    // The error observer keeps an actor's error from being rethrown (and killing the process).
    const sub = loop.actor.subscribe({ error: (err) => this.#onActorError(loop, err) })
    loop.unsubscribe = () => sub.unsubscribe()
    loop.actor.start()
    if (loop.restored) loop.actor.send({ type: 'loop.restored' })
    if (loop.workspaceProblem) loop.actor.send({ type: 'loop.workspaceFailed', message: loop.workspaceProblem })
  }

  /**
   * A command to a loop waiting for a slot is applied to its record under this
   * engine's claim, as to a loop no process runs (services/offline.ts): `say` does not
   * start it, a paused one stays queued paused, a cancelled one leaves the queue.
   */
  async #applyQueued(loop: LiveLoop, event: LoopCommand): Promise<void> {
    if (this.#live.get(loop.name) !== loop) return // it ended (or was given up) before this command's turn
    if (loop.started) return loop.actor.send(event)
    const next = await applyOffline(this.#store, loop.name, event)
    // launched meanwhile from the older record: the running actor takes the command (and saves over it)
    if (loop.started) return loop.actor.send(event)
    loop.record = next.status === 'running' ? { ...next, status: 'queued' } : next
    this.#rebuild(loop, next)
    this.#tell(loop)
    if (!FINAL.has(next.status)) return
    this.scheduler.dequeue(loop)
    this.#live.delete(loop.name)
    this.#models.forget(loop.name)
    await this.#ownership.release(loop.claim)
    loop.settle.resolve(outputOf(next.snapshot, 'user_cancelled'))
  }

  /** Every root snapshot: saved if the state or context changed; listeners told; the end once it is on disk. */
  #onSnapshot(loop: LiveLoop, eventType: string): void {
    const written = this.recorder.changed(loop, eventType)
    if (written === null) return
    this.#tell(loop)
    const actorSnapshot = loop.actor.getSnapshot()
    // Ended only once that is on disk: a final state that could not be saved waits, paused, like any other.
    if (actorSnapshot.status === 'done') {
      void written.then(() => {
        if (loop.storageFailed === null) void this.#finish(loop, actorSnapshot.output)
      })
    }
  }

  #tell(loop: LiveLoop): void {
    const view = viewOf(loop.record)
    for (const listener of loop.listeners) listener(view)
  }

  async #finish(loop: LiveLoop, output: LoopOutput | undefined): Promise<void> {
    loop.unsubscribe?.()
    loop.unsubscribe = null
    await this.#ownership.release(loop.claim)
    this.#models.forget(loop.name)
    this.#live.delete(loop.name)
    this.scheduler.stopped()
    loop.settle.resolve(output ?? outputOf(loop.record.snapshot, 'completed'))
    this.scheduler.drain()
  }

  #onActorError(loop: LiveLoop, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err)
    this.#onProblem(`engine: loop ${loop.name} crashed: ${message}`)
    loop.unsubscribe?.()
    loop.unsubscribe = null
    this.#live.delete(loop.name)
    this.scheduler.stopped()
    void this.#ownership.release(loop.claim)
    loop.settle.reject(err)
    this.scheduler.drain()
  }

  /**
   * No progress without durability: a loop whose record could not be saved (ENOSPC,
   * EIO, EROFS …) is stopped where it stands, its last good record left as it is on
   * disk, and shows as paused. A side-effect tool waiting for that save never runs
   * (its session is aborted). `resume` restores it from that last good record.
   */
  #saveFailed(loop: LiveLoop, name: string, err: unknown): void {
    const why = err instanceof Error ? err.message : String(err)
    if (this.#closed || this.#live.get(name) !== loop) {
      this.#onProblem(`engine: could not save loop ${name}: ${why}`)
      return
    }
    if (loop.storageFailed !== null) return // reported once
    loop.storageFailed = why
    this.#onProblem(`engine: could not save loop ${name}: ${why}; paused at its last saved state (free space, then resume it)`)
    if (loop.started) {
      loop.unsubscribe?.()
      loop.unsubscribe = null
      loop.actor.stop()
      loop.started = false
      this.scheduler.stopped()
    }
    loop.record = { ...loop.record, status: 'paused' }
    this.#tell(loop)
    this.scheduler.drain()
  }

  /**
   * A command to a loop stopped by a failed save: `resume` (or any command but
   * pause) rebuilds it from its last good record on disk and queues it again.
   */
  async #afterStorageFailure(loop: LiveLoop, event: LoopCommand): Promise<void> {
    if (event.type === 'loop.pause') return
    const good = await this.#store.get(loop.name)
    if (good === null || this.#live.get(loop.name) !== loop || loop.storageFailed === null) return
    loop.storageFailed = null
    loop.record = good.status === 'running' ? { ...good, status: 'queued' } : good
    this.#rebuild(loop, good)
    this.scheduler.enqueue(loop, true)
    if (event.type !== 'loop.resume') this.deliver(loop, event)
    this.scheduler.drain()
  }

  /** Stops a loop whose claim another process took over, without saving it (the new owner carries it on). */
  #lostClaim(loop: LiveLoop): void {
    if (this.#live.get(loop.name) !== loop) return
    const message = `engine: loop ${loop.name}: another process took over its claim; stopped here without saving`
    this.#onProblem(message)
    loop.unsubscribe?.()
    loop.unsubscribe = null
    this.#live.delete(loop.name)
    this.scheduler.dequeue(loop)
    if (loop.started) {
      this.scheduler.stopped()
      loop.actor.stop()
    }
    this.#models.forget(loop.name)
    loop.settle.reject(new EngineError(message))
    this.scheduler.drain()
  }
}

/** A loop's output from its saved snapshot (a loop that ended without the machine's own output). */
function outputOf(snapshot: PersistedLoop, fallback: LoopOutput['reason']): LoopOutput {
  const c = snapshot.context
  return {
    name: c.name,
    status: c.status as LoopOutput['status'],
    reason: c.reason ?? fallback,
    iteration: c.iteration,
    usage: c.usage,
    error: c.lastError,
  }
}
