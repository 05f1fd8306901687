// The path a loop took, on a view of the chart: which drawn state a state value
// is, and which edges each history entry (from → to) went along. Pure: no DOM.

const START = '(start)'

/** What `marks` needs of a view, indexed once per view. */
export function indexView(view) {
  const nodes = new Map(view.nodes.map((n) => [n.id, n]))
  const out = new Map() // from → edges
  const byPair = new Map()
  for (const e of view.edges) {
    byPair.set(`${e.from}→${e.to}`, e)
    if (e.twoWay && !byPair.has(`${e.to}→${e.from}`)) byPair.set(`${e.to}→${e.from}`, e)
    if (!out.has(e.from)) out.set(e.from, [])
    out.get(e.from).push(e)
  }
  return { view, nodes, out, byPair, chains: new Map() }
}

/** The drawn state of a state value (`running.coding.watching` → `running.coding`), or null. */
export function nodeOf(ix, value) {
  if (!value) return null
  const parts = value.split('.')
  for (let i = parts.length; i >= 1; i--) {
    const id = parts.slice(0, i).join('.')
    if (ix.nodes.has(id)) return id
  }
  return null
}

function lineage(ix, id) {
  const out = []
  for (let cur = id; cur; cur = ix.nodes.get(cur)?.parent ?? null) out.push(cur)
  return out
}

const triggeredBy = (edge, event) => edge.events.includes(event)

/**
 * The edges a history entry went along: the edge between the two drawn states (or
 * their containers), preferring one its event triggers; else a way through choices
 * (the internal view draws them). Empty when nothing drawn joins them (a restore,
 * a reopened end).
 */
export function chainOf(ix, from, to, event) {
  const key = `${from}|${to}|${event}`
  const known = ix.chains.get(key)
  if (known) return known
  const chain = findChain(ix, from, to, event)
  ix.chains.set(key, chain)
  return chain
}

function findChain(ix, from, to, event) {
  const f = from ? nodeOf(ix, from) : ix.nodes.has(START) ? START : null
  const t = nodeOf(ix, to)
  if (!f || !t || f === t) return []
  const sources = lineage(ix, f)
  const targets = lineage(ix, t)
  let fallback = null
  for (const a of sources) {
    for (const b of targets) {
      const e = ix.byPair.get(`${a}→${b}`)
      if (!e) continue
      if (a === START || triggeredBy(e, event)) return [e]
      fallback ??= [e]
    }
  }
  // through choices: the first step taken on the event, the others eventless
  const isChoice = (id) => ix.nodes.get(id)?.kind === 'choice'
  const queue = sources.map((s) => ({ at: s, chain: [] }))
  const seen = new Set(sources)
  while (queue.length) {
    const { at, chain } = queue.shift()
    for (const e of ix.out.get(at) ?? []) {
      if (chain.length === 0 && at !== START && !triggeredBy(e, event)) continue
      if (targets.includes(e.to)) return [...chain, e]
      if (!isChoice(e.to) || seen.has(e.to)) continue
      seen.add(e.to)
      queue.push({ at: e.to, chain: [...chain, e] })
    }
  }
  return fallback ?? []
}

/**
 * The marks of a view for the state `current` and the history entries up to `upTo`
 * (a seq; null: all): the current node and its containers, how often each node was
 * entered and each edge taken, and the edges of the last entry.
 */
export function marks(ix, current, history, upTo) {
  const visited = new Map()
  const taken = new Map()
  let last = new Set()
  const visit = (id) => {
    for (const a of lineage(ix, id)) visited.set(a, (visited.get(a) ?? 0) + 1)
  }
  for (const h of history) {
    if (upTo !== null && h.seq > upTo) break
    const chain = chainOf(ix, h.from, h.to, h.event)
    last = new Set(chain.map((e) => e.id))
    if (chain.length === 0) {
      // nothing drawn leads there (a restore, a reopened end): the state was still visited
      const t = nodeOf(ix, h.to)
      if (t && !visited.has(t)) visit(t)
      continue
    }
    for (const e of chain) {
      taken.set(e.id, (taken.get(e.id) ?? 0) + 1)
      if (!visited.has(e.from)) visit(e.from)
      visit(e.to)
    }
  }
  const cur = nodeOf(ix, current)
  if (cur && !visited.has(cur)) visit(cur)
  return { current: cur, active: new Set(cur ? lineage(ix, cur).slice(1) : []), visited, taken, last }
}
