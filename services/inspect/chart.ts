/**
 * The loop statechart as plain JSON for the viewer: states with their nesting,
 * and every transition with its event, guard, targets and actions, read from
 * the machine's state nodes (so the drawing follows machines/loop.machine.ts).
 */
import type { AnyStateMachine } from 'xstate'
import { loopMachine } from '../../machines/loop.machine.ts'

export interface ChartTransition {
  /** What triggers it: an event type, `always`, `after <delay>`, `done: <actor>`, `error: <actor>`. */
  label: string
  kind: 'event' | 'always' | 'after' | 'done' | 'error'
  /** The XState event type (`xstate.after.…` for delays); `''` for `always`. */
  eventType: string
  /** `auditClean`, `auditClean ∧ isSectioned`, … or null. */
  guard: string | null
  /** Target state paths (`running.coding`); empty for a transition that only runs actions. */
  targets: string[]
  reenter: boolean
  actions: string[]
  /** The final reason a `setReason` action sets, when there is one. */
  reason: string | null
}

export interface ChartState {
  /** Dotted path below the root (`running.coding.watching`); `''` for the root. */
  path: string
  key: string
  type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history'
  /** Path of the initial child (compound states). */
  initial: string | null
  /** Actors invoked while in the state (`session`, `commitWork`). */
  invoke: string[]
  entry: string[]
  /** Outgoing transitions, in the order XState tries them. */
  transitions: ChartTransition[]
  states: ChartState[]
}

interface NodeLike {
  id: string
  key: string
  type: ChartState['type']
  states: Record<string, NodeLike>
  initial?: { target?: NodeLike[] }
  invoke?: { src: unknown; id: string }[]
  entry?: unknown[]
  transitions: Map<string, TransitionLike[]>
  always?: TransitionLike[]
}

interface TransitionLike {
  eventType: string
  target?: NodeLike[]
  guard?: unknown
  reenter?: boolean
  delay?: unknown
  actions?: unknown[]
}

/** The chart of `machine` (default: the loop machine). */
export function serializeChart(machine: AnyStateMachine = loopMachine): ChartState {
  const root = machine.root as unknown as NodeLike
  const rootId = root.id
  const pathOf = (node: NodeLike) => (node.id === rootId ? '' : node.id.slice(rootId.length + 1))
  const walk = (node: NodeLike): ChartState => {
    const transitions: ChartTransition[] = []
    for (const [eventType, list] of node.transitions) for (const t of list) transitions.push(transition(t, eventType, pathOf))
    for (const t of node.always ?? []) transitions.push(transition(t, '', pathOf))
    return {
      path: pathOf(node),
      key: node.key,
      type: node.type,
      initial: node.initial?.target?.[0] ? pathOf(node.initial.target[0]) : null,
      invoke: (node.invoke ?? []).map((i) => (typeof i.src === 'string' ? i.src : i.id)),
      entry: (node.entry ?? []).map(actionName).filter((a) => !a.startsWith('xstate.')),
      transitions,
      states: Object.values(node.states).map(walk),
    }
  }
  return walk(root)
}

function transition(t: TransitionLike, eventType: string, pathOf: (n: NodeLike) => string): ChartTransition {
  const actions = (t.actions ?? []).map(actionName)
  const reasonAction = (t.actions ?? []).find(
    (a): a is { type: string; params: { reason: string } } =>
      typeof a === 'object' && a !== null && (a as { type?: unknown }).type === 'setReason',
  )
  let kind: ChartTransition['kind'] = 'event'
  let label = eventType
  if (eventType === '') {
    kind = 'always'
    label = 'always'
  } else if (eventType.startsWith('xstate.after.')) {
    kind = 'after'
    label = `after ${typeof t.delay === 'string' ? t.delay : (eventType.split('.')[2] ?? '')}`
  } else if (eventType.startsWith('xstate.done.actor.')) {
    kind = 'done'
    label = `done: ${eventType.slice('xstate.done.actor.'.length)}`
  } else if (eventType.startsWith('xstate.error.actor.')) {
    kind = 'error'
    label = `error: ${eventType.slice('xstate.error.actor.'.length)}`
  }
  return {
    label,
    kind,
    eventType,
    guard: guardName(t.guard),
    targets: (t.target ?? []).map(pathOf),
    reenter: t.reenter === true,
    actions,
    reason: reasonAction?.params?.reason ?? null,
  }
}

function guardName(guard: unknown): string | null {
  if (guard === undefined || guard === null) return null
  if (typeof guard === 'string') return guard
  if (typeof guard === 'function') {
    const inner = (guard as { guards?: unknown[] }).guards
    const name = (guard as { name?: string }).name
    if (Array.isArray(inner)) {
      const parts = inner.map((g) => guardName(g) ?? '?')
      if (name === 'not') return `¬${parts.join('')}`
      return parts.join(name === 'or' ? ' ∨ ' : ' ∧ ')
    }
    return name || 'guard'
  }
  if (typeof guard === 'object') {
    const type = (guard as { type?: unknown }).type
    return typeof type === 'string' ? type : 'guard'
  }
  return String(guard)
}

function actionName(a: unknown): string {
  if (typeof a === 'string') return a
  if (typeof a === 'function') return (a as { type?: string }).type ?? a.name ?? 'action'
  if (typeof a === 'object' && a !== null) return String((a as { type?: unknown }).type ?? 'action')
  return String(a)
}
