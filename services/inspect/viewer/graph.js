// The statechart drawn as a graph: a view of the chart (GET /api/chart `views`,
// services/inspect/chart-views.ts) laid out by ELK's layered algorithm (elkjs's
// bundle, served by the viewer itself at /vendor/elk.bundled.js and loaded on first
// use) and drawn as SVG. A view is laid out once; marking the current state and the
// path taken only changes attributes of what is drawn.

/** The SVG namespace: a name, not an address anything is fetched from. */
const SVG = 'http://www.w3.org/2000/svg'
const ELK_SRC = '/vendor/elk.bundled.js'
/** Node labels are measured bold: the current state's is drawn bold (style.css). */
const FONT = '700 12px system-ui, "DejaVu Sans", "Segoe UI", Roboto, sans-serif'
const LABEL_FONT = '10.5px system-ui, "DejaVu Sans", "Segoe UI", Roboto, sans-serif'
const COUNT_FONT = 'bold 10px system-ui, "DejaVu Sans", "Segoe UI", Roboto, sans-serif'
const LABEL_LINE = 13
/** Labels past this many lines are cut (the edge's tooltip has them all): the user view's, the internal view's. */
const MAX_LABEL_LINES = { user: 2, internal: 4 }

let elkLoad = null

/** ELK, from the viewer's copy of its browser bundle (a classic script defining `ELK`). */
export function loadElk() {
  if (!elkLoad) {
    elkLoad = new Promise((resolve, reject) => {
      if (globalThis.ELK) return resolve(globalThis.ELK)
      const s = document.createElement('script')
      s.src = ELK_SRC
      s.async = true
      s.onload = () => (globalThis.ELK ? resolve(globalThis.ELK) : reject(new Error(`${ELK_SRC} defined no ELK`)))
      s.onerror = () => {
        elkLoad = null // a later draw tries again
        reject(new Error(`could not load the layout engine (${ELK_SRC})`))
      }
      document.head.append(s)
    })
  }
  return elkLoad
}

let measurer = null
function textWidth(text, font) {
  if (!measurer) measurer = document.createElement('canvas').getContext('2d')
  measurer.font = font
  return Math.ceil(measurer.measureText(text).width)
}

/** The lines an edge's label shows (a label may hold several): its first triggers, then how many more. */
export function labelLines(edge, max) {
  const lines = []
  let shown = 0
  for (const l of edge.labels) {
    const parts = l.split('\n')
    if (lines.length + parts.length > max || (lines.length + parts.length === max && shown < edge.labels.length - 1)) break
    lines.push(...parts)
    shown++
  }
  if (shown < edge.labels.length) lines.push(`+${edge.labels.length - shown} more`)
  return lines
}

const NODE_H = { phase: 30, final: 30, choice: 26, start: 14 }

/** The ELK graph of a view: nodes sized to their labels, containers holding their children. */
function elkGraph(view, maxLines) {
  const byId = new Map()
  // ELK reads most layered options from the node whose children it lays out: the root and every container
  const layered = {
    'elk.algorithm': 'layered',
    'elk.direction': 'DOWN',
    'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
    'elk.edgeRouting': 'ORTHOGONAL',
    // the chart lists its states in the order of a loop's work: a depth-first walk in that order finds the back edges
    'elk.layered.cycleBreaking.strategy': 'DFS_NODE_ORDER',
    'elk.layered.nodePlacement.strategy': 'NETWORK_SIMPLEX',
    'elk.layered.layering.strategy': 'LONGEST_PATH',
    'elk.spacing.nodeNode': '14',
    'elk.layered.spacing.nodeNodeBetweenLayers': '20',
    'elk.spacing.edgeNode': '8',
    'elk.spacing.edgeEdge': '6',
    'elk.layered.spacing.edgeNodeBetweenLayers': '8',
    'elk.layered.spacing.edgeEdgeBetweenLayers': '5',
    'elk.spacing.edgeLabel': '2',
    'elk.edgeLabels.inline': 'true',
  }
  const root = {
    id: '(root)',
    layoutOptions: { ...layered, 'elk.json.shapeCoords': 'ROOT', 'elk.json.edgeCoords': 'ROOT', 'elk.padding': '[top=10,left=6,bottom=6,right=6]' },
    children: [],
    edges: [],
  }
  for (const n of view.nodes) {
    let node
    if (n.kind === 'container') {
      node = {
        id: n.id,
        children: [],
        labels: [{ text: n.label, width: textWidth(n.label, FONT), height: 16 }],
        layoutOptions: { ...layered, 'elk.padding': '[top=24,left=8,bottom=8,right=8]', 'elk.nodeLabels.placement': 'INSIDE V_TOP H_LEFT' },
      }
    } else if (n.kind === 'start') {
      node = { id: n.id, width: NODE_H.start, height: NODE_H.start }
    } else {
      node = { id: n.id, width: Math.max(64, textWidth(n.label, FONT) + (n.kind === 'final' ? 28 : 22)), height: NODE_H[n.kind] ?? 30 }
      // the ends of a loop on one row at the bottom
      if (n.kind === 'final') node.layoutOptions = { 'elk.layered.layering.layerConstraint': 'LAST' }
    }
    byId.set(n.id, node)
    const parent = n.parent ? byId.get(n.parent) : root
    ;(parent ?? root).children.push(node)
  }
  for (const e of view.edges) {
    const lines = labelLines(e, maxLines)
    const edge = { id: e.id, sources: [e.from], targets: [e.to] }
    if (lines.length) {
      edge.labels = [{ text: lines.join('\n'), width: Math.max(...lines.map((l) => textWidth(l, LABEL_FONT))) + 2, height: lines.length * LABEL_LINE }]
    }
    root.edges.push(edge)
  }
  return root
}

/**
 * Lays `view` out (ELK): nodes with positions and sizes, edges with their points and label
 * boxes. A layout is kept in the browser's storage under a hash of ELK's input (the chart
 * and the measured text), so a page loaded again draws at once, without ELK.
 */
export async function layout(view, mode) {
  const input = elkGraph(view, MAX_LABEL_LINES[mode] ?? 2)
  const key = `loopstate-graph:${hash(JSON.stringify(input))}`
  const kept = recall(key)
  if (kept) return kept
  const ELK = await loadElk()
  const out = await new ELK().layout(input)
  const nodes = new Map()
  const walk = (n) => {
    for (const c of n.children ?? []) {
      nodes.set(c.id, { x: c.x, y: c.y, width: c.width, height: c.height })
      walk(c)
    }
  }
  walk(out)
  const edges = new Map()
  const collect = (n) => {
    for (const e of n.edges ?? []) {
      const points = []
      for (const s of e.sections ?? []) points.push(s.startPoint, ...(s.bendPoints ?? []), s.endPoint)
      const label = e.labels?.[0]
      edges.set(e.id, { points, label: label ? { x: label.x, y: label.y, width: label.width, height: label.height } : null })
    }
    for (const c of n.children ?? []) collect(c)
  }
  collect(out)
  const laid = { width: Math.ceil(out.width), height: Math.ceil(out.height), nodes, edges }
  keep(key, laid)
  return laid
}

/** FNV-1a of a string, with its length. */
function hash(text) {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return `${(h >>> 0).toString(16)}-${text.length}`
}

function recall(key) {
  try {
    const raw = globalThis.localStorage?.getItem(key)
    if (!raw) return null
    const v = JSON.parse(raw)
    return { width: v.width, height: v.height, nodes: new Map(v.nodes), edges: new Map(v.edges) }
  } catch {
    return null
  }
}

function keep(key, laid) {
  try {
    globalThis.localStorage?.setItem(key, JSON.stringify({ width: laid.width, height: laid.height, nodes: [...laid.nodes], edges: [...laid.edges] }))
  } catch {
    // no storage (or full): laid out again next time
  }
}

function el(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) e.setAttribute(k, String(v))
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)))
  return e
}

/** An orthogonal polyline with rounded corners. */
function pathOf(points) {
  if (points.length === 0) return ''
  const r = 6
  let d = `M${points[0].x},${points[0].y}`
  for (let i = 1; i < points.length - 1; i++) {
    const p = points[i - 1]
    const c = points[i]
    const n = points[i + 1]
    const d1 = Math.hypot(c.x - p.x, c.y - p.y)
    const d2 = Math.hypot(n.x - c.x, n.y - c.y)
    const k = Math.min(r, d1 / 2, d2 / 2)
    if (k < 0.5) {
      d += ` L${c.x},${c.y}`
      continue
    }
    const ax = c.x - ((c.x - p.x) / d1) * k
    const ay = c.y - ((c.y - p.y) / d1) * k
    const bx = c.x + ((n.x - c.x) / d2) * k
    const by = c.y + ((n.y - c.y) / d2) * k
    d += ` L${ax},${ay} Q${c.x},${c.y} ${bx},${by}`
  }
  const last = points[points.length - 1]
  return `${d} L${last.x},${last.y}`
}

/** The point of a polyline nearest to `p`. */
function nearest(points, p) {
  let best = points[0] ?? { x: 0, y: 0 }
  let bestD = Infinity
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1]
    const b = points[i]
    const dx = b.x - a.x
    const dy = b.y - a.y
    const len2 = dx * dx + dy * dy
    const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, ((p.x - a.x) * dx + (p.y - a.y) * dy) / len2))
    const q = { x: a.x + t * dx, y: a.y + t * dy }
    const d = Math.hypot(q.x - p.x, q.y - p.y)
    if (d < bestD) {
      bestD = d
      best = q
    }
  }
  return best
}

/** The point halfway along a polyline. */
function midpoint(points) {
  let total = 0
  for (let i = 1; i < points.length; i++) total += Math.hypot(points[i].x - points[i - 1].x, points[i].y - points[i - 1].y)
  let left = total / 2
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1]
    const b = points[i]
    const len = Math.hypot(b.x - a.x, b.y - a.y)
    if (len >= left && len > 0) return { x: a.x + ((b.x - a.x) * left) / len, y: a.y + ((b.y - a.y) * left) / len }
    left -= len
  }
  return points[0] ?? { x: 0, y: 0 }
}

/**
 * Draws a laid-out view. Returns the SVG and what `mark` changes: nodes and edges by id,
 * each edge with its count label.
 */
export function draw(view, laid, { title, mode }) {
  const svg = el('svg', {
    id: 'graph',
    class: 'graph',
    role: 'img',
    'aria-labelledby': 'graph-title',
    viewBox: `0 0 ${laid.width} ${laid.height}`,
    width: laid.width,
    height: laid.height,
    'data-width': laid.width,
    'data-height': laid.height,
  })
  const titleEl = el('title', { id: 'graph-title' }, title)
  svg.append(titleEl)
  const defs = el('defs')
  for (const kind of ['plain', 'taken', 'last']) {
    defs.append(
      el(
        'marker',
        { id: `g-arrow-${kind}`, class: `g-arrow g-arrow-${kind}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse', markerUnits: 'userSpaceOnUse' },
        el('path', { d: 'M0,0 L10,5 L0,10 z' }),
      ),
    )
  }
  svg.append(defs)

  const nodeLayer = el('g', { class: 'g-nodes' })
  const edgeLayer = el('g', { class: 'g-edges' })
  const labelLayer = el('g', { class: 'g-labels' })
  const nodes = new Map()
  const containers = []
  for (const n of view.nodes) {
    const box = laid.nodes.get(n.id)
    if (!box) continue
    const g = el('g', {
      class: `g-node k-${n.kind}${n.id === 'completed' || n.label === 'completed' ? ' success' : ''}`,
      'data-state': n.id,
      'data-kind': n.kind,
      'data-current': 'false',
      'data-visited': 'false',
      transform: `translate(${box.x},${box.y})`,
    })
    g.append(el('title', {}, n.kind === 'start' ? 'start' : `${n.id}${n.note ? `\n${n.note}` : ''}`))
    if (n.kind === 'start') {
      g.append(el('circle', { cx: box.width / 2, cy: box.height / 2, r: box.width / 2 }))
    } else if (n.kind === 'container') {
      g.append(el('rect', { width: box.width, height: box.height, rx: 10 }))
      g.append(el('text', { x: 10, y: 17, class: 'g-container-label' }, n.label))
      containers.push(g)
    } else {
      g.append(el('rect', { width: box.width, height: box.height, rx: n.kind === 'choice' ? 13 : 8 }))
      if (n.kind === 'final') g.append(el('rect', { class: 'g-inner', x: 3, y: 3, width: box.width - 6, height: box.height - 6, rx: 6 }))
      g.append(el('text', { x: box.width / 2, y: box.height / 2, 'text-anchor': 'middle', 'dominant-baseline': 'central' }, n.label))
    }
    nodes.set(n.id, g)
  }
  // containers under everything else
  for (const g of containers) nodeLayer.append(g)
  for (const g of nodes.values()) if (!containers.includes(g)) nodeLayer.append(g)

  const edges = new Map()
  for (const e of view.edges) {
    const geo = laid.edges.get(e.id)
    if (!geo || geo.points.length < 2) continue
    const g = el('g', { class: 'g-edge', 'data-from': e.from, 'data-to': e.to, 'data-two-way': e.twoWay ? 'true' : null, 'data-taken': '0', 'data-last': 'false' })
    const tip = `${e.labels.join(' · ') || e.id}\n${e.transitions.join('\n')}`
    g.append(el('title', {}, tip))
    const path = el('path', { d: pathOf(geo.points), 'marker-end': 'url(#g-arrow-plain)', 'marker-start': e.twoWay ? 'url(#g-arrow-plain)' : null })
    g.append(path)
    edgeLayer.append(g)
    const lines = labelLines(e, MAX_LABEL_LINES[mode] ?? 2)
    const lab = el('g', { class: 'g-edge-label', 'data-edge': e.id })
    lab.append(el('title', {}, tip))
    let countAt
    let side = 'center'
    if (geo.label && lines.length) {
      const { x, y, height } = geo.label
      const w = Math.max(...lines.map((l) => textWidth(l, LABEL_FONT)))
      lab.append(el('rect', { class: 'g-label-bg', x: x - 1, y, width: w + 2, height, rx: 3 }))
      const text = el('text', { x, y })
      lines.forEach((l, i) => text.append(el('tspan', { x, dy: i === 0 ? LABEL_LINE - 3 : LABEL_LINE }, l)))
      lab.append(text)
      // the count beside the label, on the side away from the edge
      const on = nearest(geo.points, { x: x + w / 2, y: y + height / 2 })
      side = on.x > x + w / 2 + 1 ? 'left' : 'right'
      countAt = { x: side === 'left' ? x - 3 : x + w + 3, y: y + LABEL_LINE / 2 }
    } else {
      countAt = midpoint(geo.points)
    }
    const count = el(
      'g',
      { class: 'g-count', 'data-side': side, transform: `translate(${countAt.x},${countAt.y})` },
      el('rect', { x: 0, y: -6.5, width: 0, height: 13, rx: 6.5 }),
      el('text', { x: 0, y: 3.5, 'text-anchor': 'middle' }),
    )
    lab.append(count)
    labelLayer.append(lab)
    edges.set(e.id, { g, path, label: lab, count, twoWay: e.twoWay })
  }
  svg.append(nodeLayer, edgeLayer, labelLayer)
  return { svg, title: titleEl, nodes, edges, marked: { current: null, visited: new Map(), taken: new Map(), last: new Set(), active: new Set() } }
}

/**
 * Marks a drawn view: `marks` from path.js (`current`, `active` ancestors, `visited`
 * node counts, `taken` edge counts, the `last` transition's edges). Only what changed
 * is touched. `value` is the state value shown, of which `marks.current` is the drawn state.
 */
export function mark(drawn, marks, title, value) {
  const was = drawn.marked
  for (const [id, g] of drawn.nodes) {
    const current = id === marks.current
    const visits = marks.visited.get(id) ?? 0
    const active = marks.active.has(id)
    if (current !== (id === was.current)) g.setAttribute('data-current', String(current))
    if (visits !== (was.visited.get(id) ?? 0)) {
      g.setAttribute('data-visited', String(visits > 0))
      g.setAttribute('data-visits', String(visits))
    }
    if (active !== was.active.has(id)) g.setAttribute('data-active', String(active))
  }
  for (const [id, e] of drawn.edges) {
    const n = marks.taken.get(id) ?? 0
    const last = marks.last.has(id)
    if (n !== (was.taken.get(id) ?? 0)) {
      e.g.setAttribute('data-taken', String(n))
      e.label.setAttribute('data-taken', String(n))
      const text = n > 1 ? `×${n}` : ''
      e.count.lastChild.textContent = text
      const w = text ? textWidth(text, COUNT_FONT) + 8 : 0
      const side = e.count.dataset.side
      const left = side === 'left' ? -w : side === 'right' ? 0 : -w / 2
      e.count.firstChild.setAttribute('width', String(w))
      e.count.firstChild.setAttribute('x', String(left))
      e.count.lastChild.setAttribute('x', String(left + w / 2))
      e.count.setAttribute('data-count', String(n))
    }
    if (last !== was.last.has(id) || n !== (was.taken.get(id) ?? 0)) {
      e.g.setAttribute('data-last', String(last))
      e.label.setAttribute('data-last', String(last))
      const arrow = `url(#g-arrow-${last ? 'last' : n > 0 ? 'taken' : 'plain'})`
      e.path.setAttribute('marker-end', arrow)
      if (e.twoWay) e.path.setAttribute('marker-start', arrow)
      // the path taken is drawn above the rest
      if (n > 0) e.g.parentNode.append(e.g)
    }
  }
  if (drawn.title.textContent !== title) drawn.title.textContent = title
  // the state value shown (`running.coding.watching`), of which `current` is the drawn state
  if ((drawn.svg.dataset.value ?? '') !== (value ?? '')) drawn.svg.dataset.value = value ?? ''
  drawn.marked = marks
}
