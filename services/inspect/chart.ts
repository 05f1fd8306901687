/**
 * The loop statechart as plain JSON for the viewer (GET /api/chart): states with
 * their nesting, and every transition with its event, guard, targets and actions,
 * read from the machine's public definition (`StateNode.definition`, and
 * `StateNode.always` for the eventless transitions the definition leaves out), so the
 * drawing follows machines/loop.machine.ts. The root also carries the two graphs the
 * page lays out and draws (`views`, services/inspect/chart-views.ts).
 */
import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate'
import { loopMachine } from '../../machines/loop.machine.ts'
import { chartViews, type ChartViews } from './chart-views.ts'

export type { ChartView, ChartViews, ViewEdge, ViewNode, ViewNodeKind } from './chart-views.ts'

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
  /** The state's tags (`session` for the states that run a model session). */
  tags: string[]
  /** Outgoing transitions, in the order XState tries them. */
  transitions: ChartTransition[]
  states: ChartState[]
}

/** The chart as the page gets it: the state tree, and the graphs it draws of it. */
export interface Chart extends ChartState {
  views: ChartViews
}

/** The chart of `machine` (default: the loop machine). */
export function serializeChart(machine: AnyStateMachine = loopMachine): Chart {
  const rootId = machine.root.id
  const pathOf = (node: AnyStateNode) => (node.id === rootId ? '' : node.id.slice(rootId.length + 1))
  const walk = (node: AnyStateNode): ChartState => {
    const def = node.definition
    const transitions = [
      ...def.transitions.map((t) => transition(t, t.eventType, pathOf)),
      ...(node.always ?? []).map((t) => transition(t, '', pathOf)),
    ]
    const initial = def.initial?.target[0]
    return {
      path: pathOf(node),
      key: def.key,
      type: def.type,
      initial: initial ? pathOf(initial) : null,
      invoke: def.invoke.map((i) => (typeof i.src === 'string' ? i.src : i.id)),
      entry: def.entry.map(actionName).filter((a) => !a.startsWith('xstate.')),
      tags: [...def.tags],
      transitions,
      states: Object.values(node.states).map(walk),
    }
  }
  const tree = walk(machine.root)
  return { ...tree, views: chartViews(tree) }
}

function transition(t: AnyTransitionDefinition, eventType: string, pathOf: (n: AnyStateNode) => string): ChartTransition {
  const actions = t.actions.map(actionName)
  const reasonAction = t.actions.find(
    (a): a is { type: string; params: { reason: string } } =>
      typeof a === 'object' && a !== null && (a as { type?: unknown }).type === 'setReason',
  )
  const delay = (t as { delay?: unknown }).delay
  let kind: ChartTransition['kind'] = 'event'
  let label = eventType
  if (eventType === '') {
    kind = 'always'
    label = 'always'
  } else if (eventType.startsWith('xstate.after.')) {
    kind = 'after'
    label = `after ${typeof delay === 'string' ? delay : (eventType.split('.')[2] ?? '')}`
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
