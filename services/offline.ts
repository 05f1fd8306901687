/**
 * Applying a control event (cancel, pause, say) to a loop that no engine runs:
 * the loop's actor is restored from its record with an idle session (no model
 * is called, no tool runs), takes the event, and its new snapshot is saved.
 */
import { createActor, fromCallback, type AnyStateMachine } from 'xstate'
import type { LoopRecord, SnapshotStore } from '../adapters/snapshot-store.ts'
import { loopMachine } from '../machines/loop.machine.ts'
import type { LoopCommand, SessionCommand, SessionInput } from '../machines/loop.types.ts'
import { actorSnapshot, recordOf, savedSnapshot, type PersistedLoop } from './views.ts'

export class OfflineError extends Error {
  override readonly name = 'OfflineError'
}

const idleMachine = loopMachine.provide({
  actors: { session: fromCallback<SessionCommand, SessionInput>(() => () => {}) },
})

/**
 * Loads the record of `name`, sends `event` to its restored actor and saves the
 * result. Only call it under the loop's claim (docs/architecture.md "Ownership"):
 * the owner is the only writer of a loop's record.
 * Returns the saved record (the loaded one, untouched, when the event changed nothing).
 */
export async function applyOffline(store: SnapshotStore, name: string, event: LoopCommand): Promise<LoopRecord> {
  const record = await store.get(name)
  if (record === null) throw new OfflineError(`offline: no loop named '${name}'`)
  // Time while no process ran the loop is not running time: its running stretch starts now.
  const saved = record.snapshot
  const fresh = { ...saved, context: { ...saved.context, runningSince: saved.context.runningSince === null ? null : Date.now() } }
  // Restored from a snapshot, the machine takes no input: the typed overload would demand one.
  const actor = createActor(idleMachine as AnyStateMachine, { snapshot: actorSnapshot(fresh) })
  let failure: unknown = null
  // An actor without an error observer rethrows and would kill the process.
  actor.subscribe({ error: (err) => (failure = err) })
  let snapshot: PersistedLoop
  try {
    actor.start()
    const before = savedSnapshot(actor)
    actor.send(event)
    snapshot = savedSnapshot(actor)
    if (failure !== null) throw failure
    if (JSON.stringify(snapshot) === JSON.stringify(before)) return record
  } finally {
    actor.stop()
  }
  // A queued loop that only took a message is still waiting for its first start.
  const queued = record.status === 'queued' && snapshot.context.status === 'running'
  const next = recordOf(snapshot, record.createdAt, queued)
  await store.put(next)
  await store.flush()
  return next
}
