/**
 * Inspection events into the loops model (server/model.ts): the frames a stately
 * WebSocket inspector sends (`@xstate.actor`, `@xstate.snapshot`, `@xstate.event`)
 * from engines started with `--inspect`. A loop actor's snapshots make its live
 * record and transitions; its children (sessions) and every event go to its stream.
 */
import type { LoopContext } from '../../../machines/loop.types.ts'
import { phaseState, stateString } from '../../views.ts'
import type { LoopsModel } from './model.ts'
import { eventPayload, sectionOf, syntheticRecord, type Snap, type ViewerEntry } from './records.ts'

const LIVE_HISTORY_KEEP = 500

/** The frames of a stately WebSocket inspector (only the fields used here). */
export interface Inspection {
  type: string
  sessionId: string
  parentId?: string
  sourceId?: string
  name?: string
  createdAt?: string
  snapshot?: { status?: string; value?: unknown; context?: unknown }
  event?: { type?: string; [k: string]: unknown }
}

export class InspectionEvents {
  /** Inspector actor session ids → loop name (loop actors) or `child:<parent session>` (children). */
  readonly #loopOf = new Map<string, string>()
  readonly #actorNames = new Map<string, string>()

  constructor(private readonly model: LoopsModel) {}

  /** One frame from an inspector client; `sessions` collects the loop actors that client reported. */
  inspection(msg: Inspection, sessions: Set<string>): void {
    if (typeof msg !== 'object' || msg === null || typeof msg.sessionId !== 'string') return
    const at = Number(msg.createdAt) || Date.now()
    if (msg.type === '@xstate.actor') {
      this.#actorNames.set(msg.sessionId, msg.name ?? msg.sessionId)
      const context = msg.snapshot?.context
      if (isLoopContext(context)) {
        this.#loopOf.set(msg.sessionId, context.name)
        sessions.add(msg.sessionId)
        this.#liveSnapshot(context.name, msg.sessionId, msg.snapshot as Snap, at, 'xstate.init')
      } else if (msg.parentId !== undefined && this.#loopName(msg.parentId) !== null) {
        const name = this.#loopName(msg.parentId)!
        this.#loopOf.set(msg.sessionId, `child:${msg.parentId}`)
        const live = this.model.get(name)?.live
        live?.children.set(msg.sessionId, { name: msg.name ?? 'actor', status: msg.snapshot?.status ?? 'active' })
        this.model.streamEvent(name, {
          at,
          type: `spawned ${msg.name ?? 'actor'}`,
          target: msg.name ?? 'actor',
          source: null,
          payload: { actor: msg.name ?? 'actor', status: msg.snapshot?.status ?? 'active' },
        })
        this.model.changed(name)
      }
      return
    }
    if (msg.type === '@xstate.snapshot') {
      const context = msg.snapshot?.context
      if (isLoopContext(context)) {
        if (!this.#loopOf.has(msg.sessionId)) {
          // an inspector that connected after the actor registered
          this.#loopOf.set(msg.sessionId, context.name)
          sessions.add(msg.sessionId)
        }
        this.#liveSnapshot(context.name, msg.sessionId, msg.snapshot as Snap, at, msg.event?.type ?? '', msg.event)
        return
      }
      const parent = this.#parentLoop(msg.sessionId)
      const live = parent ? this.model.get(parent)?.live : undefined
      const child = live?.children.get(msg.sessionId)
      if (child && msg.snapshot?.status) {
        child.status = msg.snapshot.status
        this.model.changed(parent!)
      }
      return
    }
    if (msg.type === '@xstate.event') {
      const type = msg.event?.type
      if (typeof type !== 'string') return
      const direct = this.#loopName(msg.sessionId)
      const name = direct ?? this.#parentLoop(msg.sessionId)
      if (name === null) return
      const source = msg.sourceId ? (this.#actorNames.get(msg.sourceId) ?? null) : null
      this.model.streamEvent(name, {
        at,
        type,
        target: direct !== null ? 'loop' : (this.#actorNames.get(msg.sessionId) ?? 'child'),
        source,
        payload: eventPayload(msg.event),
      })
    }
  }

  /** The client that reported these loop actors went away. */
  disconnected(sessions: Set<string>): void {
    for (const id of sessions) {
      const name = this.#loopOf.get(id)
      const live = name ? this.model.get(name)?.live : undefined
      if (live && live.sessionId === id) {
        live.connected = false
        this.model.touched(name!)
      }
    }
  }

  #loopName(sessionId: string): string | null {
    const v = this.#loopOf.get(sessionId)
    return v === undefined || v.startsWith('child:') ? null : v
  }

  #parentLoop(sessionId: string): string | null {
    const v = this.#loopOf.get(sessionId)
    return v?.startsWith('child:') ? this.#loopName(v.slice('child:'.length)) : null
  }

  #liveSnapshot(name: string, sessionId: string, snap: Snap, at: number, event: string, payload?: unknown): void {
    const e = this.model.entry(name)
    const state = stateString(snap.value)
    const createdAt = e.store?.createdAt ?? new Date(snap.context.startedAt ?? at).toISOString()
    const record = syntheticRecord(name, snap, createdAt, new Date(at).toISOString())
    if (!e.live || e.live.sessionId !== sessionId) {
      e.live = { sessionId, record, lastState: '', history: [], children: new Map(), stream: [], connected: true }
    }
    const live = e.live
    live.record = record
    live.connected = true
    if (state !== live.lastState) {
      const from = live.lastState
      const entry: ViewerEntry = {
        seq: (live.history.at(-1)?.seq ?? 0) + 1,
        at: new Date(at).toISOString(),
        event,
        from,
        to: state,
        iteration: snap.context.iteration,
        phase: snap.context.phase,
        section: sectionOf(snap.context),
      }
      if (payload !== undefined) entry.payload = eventPayload(payload)
      if (phaseState(from) !== phaseState(state)) entry.snapshot = { status: snap.status ?? 'active', value: snap.value, context: snap.context }
      live.history.push(entry)
      if (live.history.length > LIVE_HISTORY_KEEP) live.history.shift()
      live.lastState = state
      if (!e.store && e.history.length === 0) this.model.queueHistory(name, false, [entry])
    }
    this.model.touched(name)
  }
}

function isLoopContext(c: unknown): c is LoopContext {
  if (typeof c !== 'object' || c === null) return false
  const x = c as Partial<LoopContext>
  return typeof x.name === 'string' && typeof x.task === 'object' && Array.isArray(x.sectionStates) && typeof x.usage === 'object'
}
