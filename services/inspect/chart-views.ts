/**
 * The two graphs the viewer draws of the statechart (services/inspect/chart.ts):
 *
 * - `internal`: every state the machine has, choices included (`judgingAudit`,
 *   `failed`, `dispatching`: states left at once by an eventless transition), and
 *   one edge per pair of states joined by transitions, labelled with their events
 *   and guards.
 * - `user` (the default): what a loop does, in the words of someone watching it.
 *   Choices are hidden: the edges run through them (`auditing → judgingAudit →
 *   coding` is drawn `auditing → coding`, "next section" / "dirty audit"). A
 *   router (a choice that is its parent's initial state: `dispatching` resumes the
 *   saved phase) only leads back where its source came from (`backingOff` retries
 *   the phase that failed) or to its default. The ways a loop fails (edges into a
 *   final state other than `completed` from inside a compound state) are drawn once,
 *   from that compound state (`running → errored`), and a state re-entering itself
 *   (a session's activity, the watchdog's nudge) is not drawn.
 *
 * In both, a compound state with a single child (a session phase and its
 * `watching` watchdog) is drawn as that one state. The wording of the user graph
 * comes from the tables below; an event, guard or delay not listed there is shown
 * by its name, so a state or transition added to the machine still shows.
 */
import type { ChartState, ChartTransition } from './chart.ts'

export type ViewNodeKind = 'container' | 'phase' | 'final' | 'choice' | 'start'

export interface ViewNode {
  /** The state's path (`running.coding`), or `(start)` for the initial marker. */
  id: string
  label: string
  /** The container drawn around it (a state path), or null at the top. */
  parent: string | null
  kind: ViewNodeKind
  /** What the state does, for a tooltip: what it invokes, its tags, the events it handles without leaving. */
  note: string
}

export interface ViewEdge {
  /** `<from>→<to>`: one edge per pair of nodes. */
  id: string
  from: string
  to: string
  /** What the edge says, one entry per distinct trigger. */
  labels: string[]
  /** The event types that take it (`session.done`; `''` for an eventless one, `xstate.init` from the start). */
  events: string[]
  /** Drawn both ways (`coding ⇄ backingOff`: a failure backs off, the retry comes back): `to → from` is taken too. */
  twoWay: boolean
  /** The machine's transitions it stands for (`running.coding: session.done [hasChecks] → running.checking`). */
  transitions: string[]
}

export interface ChartView {
  nodes: ViewNode[]
  edges: ViewEdge[]
}

export interface ChartViews {
  user: ChartView
  internal: ChartView
}

/** The id of the initial marker. */
export const START = '(start)'
/** The event a loop starts with. */
const INIT = 'xstate.init'

/** How the user graph words an event (by type). */
const EVENT_WORDS: Record<string, string> = {
  'xstate.init': '',
  'session.done': 'done',
  'session.failed': 'failed',
  'loop.pause': 'pause',
  'loop.resume': 'resume',
  'loop.continue': 'continue',
  'loop.cancel': 'cancel',
  'loop.say': 'say',
  'loop.workspaceFailed': 'workspace failed',
  'loop.restored': 'restored',
}
/** … a delay (`after <delay>`). */
const AFTER_WORDS: Record<string, string> = { retryBackoff: 'retry', stallTimeout: 'stall timeout', wallBudget: 'wall budget' }
/** … an invoked actor's end (by the invoke id). */
const DONE_WORDS: Record<string, string> = { checks: 'checks done', commit: 'committed' }
/** … a guard: '' says nothing the target does not (a router's guards, `isSectioned`). */
const GUARD_WORDS: Record<string, string> = {
  auditClean: 'clean',
  isSectioned: '',
  usesGit: '',
  hasNextSection: 'next section',
  onlySummaryMissing: 'summary missing',
  sectionAttemptsExhausted: 'section attempts exhausted',
  reworkExhausted: 'rework exhausted',
  passMadeNoProgressAtLimit: 'no progress',
  stallLimitReached: 'stall limit',
  hasChecks: 'checks',
  finalCommit: '',
  inCoding: '',
  inAuditing: '',
  inFinalAuditing: '',
  inFinalAuditFix: '',
  commitPending: '',
  checksPending: '',
  backoffPending: '',
}
/** Guards whose words go when another guard of the same transition says something. */
const MINOR_GUARDS = new Set(['auditClean'])
/** … the unguarded last branch of a choice (by the choice's key). */
const ELSE_WORDS: Record<string, string> = { judgingAudit: 'dirty audit', judgingFinalAudit: 'dirty audit' }
/** The events a person sends (their word wins over the reason they set). */
const COMMANDS = new Set(['loop.pause', 'loop.resume', 'loop.continue', 'loop.cancel', 'loop.say'])
/** The final state a loop is meant to reach (the others are ways it fails). */
const SUCCESS = 'completed'

interface Step {
  /** The state the transition belongs to. */
  source: string
  t: ChartTransition
  target: string
}

/** The graphs of `root` (the serialized chart). */
export function chartViews(root: ChartState): ChartViews {
  const states = new Map<string, ChartState>()
  const parentOf = new Map<string, string | null>()
  const index = (s: ChartState, parent: string | null) => {
    states.set(s.path, s)
    parentOf.set(s.path, parent)
    for (const c of s.states) index(c, s.path)
  }
  index(root, null)

  /** The state drawn for `path`: itself, or the compound it is the only child of. */
  const shown = (path: string): string => {
    const p = parentOf.get(path)
    if (p !== undefined && p !== null && p !== '' && states.get(p)!.states.length === 1) return shown(p)
    return path
  }
  const kindOf = (s: ChartState): ViewNodeKind => {
    if (s.states.length > 1) return 'container'
    if (s.type === 'final') return 'final'
    if (s.states.length === 0 && s.transitions.length > 0 && s.transitions.every((t) => t.kind === 'always')) return 'choice'
    return 'phase'
  }
  /** The container a drawn state sits in (its nearest drawn ancestor), or null at the top. */
  const containerOf = (path: string): string | null => {
    let p = parentOf.get(path) ?? null
    while (p !== null && p !== '' && shown(p) !== p) p = parentOf.get(p) ?? null
    return p === '' ? null : p
  }

  // --- the internal graph: every drawn state, every transition ---
  const nodes: ViewNode[] = []
  const drawn = new Map<string, ViewNode>()
  for (const s of states.values()) {
    if (s.path === '' || shown(s.path) !== s.path) continue
    const node: ViewNode = { id: s.path, label: s.key, parent: containerOf(s.path), kind: kindOf(s), note: noteOf(s, states) }
    nodes.push(node)
    drawn.set(node.id, node)
  }
  // the initial marker, beside the first state entered
  let first = root.initial
  while (first !== null && states.get(first)!.states.length > 1) first = states.get(first)!.initial
  const start: ViewNode | null = first === null ? null : { id: START, label: '', parent: containerOf(shown(first)), kind: 'start', note: 'where a loop starts' }
  if (start) {
    // after its container, before the states it holds (a parent always comes before its children)
    nodes.splice(start.parent === null ? 0 : nodes.findIndex((n) => n.id === start.parent) + 1, 0, start)
    drawn.set(START, start)
  }

  const steps: Step[] = []
  for (const s of states.values()) {
    for (const t of s.transitions) for (const target of t.targets) if (target !== '') steps.push({ source: s.path, t, target })
  }
  const internal = new EdgeSet()
  if (start && first !== null) internal.add(START, shown(first), INIT, 'start', `start → ${first}`)
  for (const st of steps) {
    // the guard on a line of its own: a narrower label
    const label = st.t.kind === 'always' ? `[${st.t.guard ?? 'else'}]` : `${st.t.label}${st.t.guard ? `\n[${st.t.guard}]` : ''}`
    internal.add(shown(st.source), shown(st.target), st.t.eventType, label, describe([st]))
  }

  // --- the user graph ---
  const isChoice = (id: string) => drawn.get(id)?.kind === 'choice'
  const isRouter = (id: string) => isChoice(id) && states.get(parentOf.get(id) ?? '')?.initial === id
  const branches = (choice: string) => steps.filter((st) => st.source === choice)
  const topOf = (id: string): string => {
    let cur = id
    for (let p = containerOf(cur); p !== null; p = containerOf(cur)) cur = p
    return cur
  }

  interface Path {
    from: string
    to: string
    steps: Step[]
    router: boolean
  }
  const paths: Path[] = []
  /** Follows `sofar` (ending in a choice) through its branches. */
  const expand = (from: string, sofar: Step[], router: boolean, seen: Set<string>) => {
    const at = shown(sofar[sofar.length - 1]!.target)
    if (!isChoice(at)) {
      paths.push({ from, to: at, steps: sofar, router })
      return
    }
    if (seen.has(at)) return
    for (const b of branches(at)) expand(from, [...sofar, b], router || isRouter(at), new Set([...seen, at]))
  }
  if (start && first !== null) {
    const initial: Step = { source: '', t: { label: 'start', kind: 'event', eventType: INIT, guard: null, targets: [first], reenter: false, actions: [], reason: null }, target: first }
    expand(START, [initial], false, new Set())
  }
  for (const st of steps) if (!isChoice(st.source)) expand(shown(st.source), [st], false, new Set())

  const user = new EdgeSet()
  const direct = new Set<string>() // from→to pairs of paths through no router
  const keep: Path[] = []
  for (const p of paths) {
    const target = drawn.get(p.to)!
    if (p.to === p.from && (p.steps.length === 1 || p.router)) continue // re-entries, retries of itself
    if (target.kind === 'final' && target.label !== SUCCESS && containerOf(p.from) !== null) p.from = topOf(p.from)
    if (p.to === p.from && drawn.get(p.from)!.kind === 'container') continue
    if (!p.router) direct.add(`${p.from}→${p.to}`)
    keep.push(p)
  }
  for (const p of keep) {
    const words = wordsOf(p.steps, drawn.get(p.to)!, isChoice, isRouter, shown)
    if (p.router) {
      // a router leads back to where its source came from (drawn on the edge that came), or to its default branch
      const last = p.steps[p.steps.length - 1]!
      if (!direct.has(`${p.to}→${p.from}`) && last.t.guard !== null) continue
    }
    user.add(p.from, p.to, p.steps[0]!.t.eventType, words, describe(p.steps))
  }

  // a state that only waits (no actor, no children: `backingOff`, `paused`) and a state it returns to: one edge both ways
  const waits = (id: string) => {
    const s = states.get(id)
    return s !== undefined && drawn.get(id)?.kind === 'phase' && s.states.length === 0 && s.invoke.length === 0 && s.tags.length === 0
  }
  return {
    internal: { nodes, edges: internal.edges() },
    user: { nodes: nodes.filter((n) => n.kind !== 'choice'), edges: user.edges(waits) },
  }
}

/** Edges keyed by their two ends, their labels and transitions deduplicated in order. */
class EdgeSet {
  readonly #edges = new Map<string, ViewEdge>()
  /** Adds a transition to the edge `from → to`. */
  add(from: string, to: string, event: string, label: string, transition: string): void {
    const id = `${from}→${to}`
    let e = this.#edges.get(id)
    if (!e) {
      e = { id, from, to, labels: [], events: [], twoWay: false, transitions: [] }
      this.#edges.set(id, e)
    }
    if (!e.events.includes(event)) e.events.push(event)
    if (label !== '' && !e.labels.includes(label)) e.labels.push(label)
    if (!e.transitions.includes(transition)) e.transitions.push(transition)
  }
  /**
   * The edges; those between a state that `waits` and one it leads back to are merged
   * into one edge from the waiting state, drawn both ways, saying both on one line.
   */
  edges(waits: (id: string) => boolean = () => false): ViewEdge[] {
    const out: ViewEdge[] = []
    for (const e of this.#edges.values()) {
      const back = this.#edges.get(`${e.to}→${e.from}`)
      if (back && waits(e.to) && !waits(e.from)) continue // merged into `back`
      if (back && waits(e.from) && !waits(e.to)) {
        out.push({
          ...e,
          // the way into the waiting state first: `failed / retry`, `pause / resume`
          labels: [[...back.labels, ...e.labels.filter((l) => !back.labels.includes(l))].join(' / ')],
          events: [...new Set([...e.events, ...back.events])],
          twoWay: true,
          transitions: [...e.transitions, ...back.transitions],
        })
        continue
      }
      out.push(e)
    }
    return out
  }
}

/** The user graph's words for a path of transitions into `target`. */
function wordsOf(
  steps: Step[],
  target: ViewNode,
  isChoice: (id: string) => boolean,
  isRouter: (id: string) => boolean,
  shown: (path: string) => string,
): string {
  const head = steps[0]!
  if (COMMANDS.has(head.t.eventType)) return eventWords(head.t)
  const reason = [...steps].reverse().find((s) => s.t.reason !== null)?.t.reason ?? null
  if (target.kind === 'final' && target.label !== SUCCESS) {
    // a way to fail: the reason it sets, or what its guard says
    if (reason !== null) return reason.replace(/_/g, ' ')
    const guard = head.t.guard !== null ? guardWords(head.t.guard) : ''
    if (guard !== '') return guard
  }
  // through a choice (not a router): what its branch says
  for (let i = steps.length - 1; i >= 1; i--) {
    const choice = shown(steps[i]!.source)
    if (!isChoice(choice) || isRouter(choice)) continue
    const branch = steps[i]!.t
    if (branch.guard !== null) {
      const words = guardWords(branch.guard)
      if (words !== '') return words
    } else {
      const key = choice.split('.').pop()!
      if (ELSE_WORDS[key] !== undefined) return ELSE_WORDS[key]
    }
    return eventWords(head.t)
  }
  // what the guard says (`done [hasChecks]`: `checks`), else the event
  const guard = head.t.guard !== null ? guardWords(head.t.guard) : ''
  return guard !== '' ? guard : eventWords(head.t)
}

function eventWords(t: ChartTransition): string {
  if (t.kind === 'after') {
    const delay = t.label.slice('after '.length)
    return AFTER_WORDS[delay] ?? t.label
  }
  if (t.kind === 'done') {
    const id = t.eventType.slice('xstate.done.actor.'.length)
    return DONE_WORDS[id] ?? `${id} done`
  }
  if (t.kind === 'error') return `${t.eventType.slice('xstate.error.actor.'.length)} failed`
  if (t.kind === 'always') return ''
  return EVENT_WORDS[t.eventType] ?? t.eventType.replace(/^(loop|session)\./, '').replace(/\./g, ' ')
}

/** `auditClean ∧ isSectioned ∧ hasNextSection` → `next section`; `auditClean ∧ usesGit` → `clean`. */
export function guardWords(guard: string): string {
  const parts = guard.split(/ [∧∨] /)
  const words = parts
    .map((g) => {
      const negated = g.startsWith('¬')
      const name = negated ? g.slice(1) : g
      const w = GUARD_WORDS[name] ?? name
      return { w: negated && w !== '' ? `not ${w}` : w, minor: !negated && MINOR_GUARDS.has(name) }
    })
    .filter((x) => x.w !== '')
  const major = words.filter((x) => !x.minor)
  return (major.length > 0 ? major : words).map((x) => x.w).join(', ')
}

/** `running.coding: session.done [hasChecks] → running.checking`, one path joined by ` ⇒ `. */
function describe(steps: Step[]): string {
  return steps
    .map((s) => {
      const what = s.t.kind === 'always' ? (s.t.guard ? `[${s.t.guard}]` : '[else]') : `${s.t.label}${s.t.guard ? ` [${s.t.guard}]` : ''}`
      return `${s.source || '(start)'}: ${what} → ${s.target}${s.t.reason ? ` (${s.t.reason})` : ''}`
    })
    .join(' ⇒ ')
}

/** A tooltip's description of a state. */
function noteOf(s: ChartState, states: Map<string, ChartState>): string {
  const parts: string[] = []
  const inner = s.states.length === 1 ? [s, s.states[0]!] : [s]
  const invoke = inner.flatMap((x) => x.invoke)
  if (invoke.length) parts.push(`invokes ${invoke.join(', ')}`)
  const tags = inner.flatMap((x) => x.tags)
  if (tags.length) parts.push(`tags ${tags.join(', ')}`)
  if (s.type === 'final') parts.push('final')
  if (s.states.length === 0 && s.transitions.length > 0 && s.transitions.every((t) => t.kind === 'always')) parts.push('choice: the first branch whose guard holds')
  const parent = states.get(s.path.split('.').slice(0, -1).join('.'))
  if (parent && parent.initial === s.path) parts.push('initial')
  const handled = [...new Set(inner.flatMap((x) => x.transitions.filter((t) => t.targets.length === 0).map((t) => t.label)))]
  if (handled.length) parts.push(`handles without leaving: ${handled.join(', ')}`)
  return parts.join(' · ')
}
