/**
 * Unified-diff hunks between two texts, as `git diff` prints them (3 lines of
 * context, `\ No newline at end of file`), from a line diff (Myers, with the
 * common head and tail taken off first). Used by services/workspace-diff.ts for
 * the files a loop's tools changed outside git.
 */

/** Lines of context around a change. */
const CONTEXT = 3
/** Past this many differing lines a real diff gives up and shows the whole file replaced. */
const MAX_EDIT_DISTANCE = 4_000

/** A text's lines without the newline that ends the last one. */
export function linesOf(text: string): string[] {
  if (text === '') return []
  const lines = text.split('\n')
  if (lines.at(-1) === '') lines.pop()
  return lines
}

const NO_EOL = '\\ No newline at end of file'

/**
 * The unified-diff hunks (3 lines of context) that turn `before` into `after`, each
 * line ending `\n`; `eol`: mark a last line without a newline as git does.
 */
export function hunks(before: string, after: string, eol = true): string {
  const side = (text: string) => {
    const lines = linesOf(text)
    // The last line without its newline differs from the same line with one.
    const open = eol && text !== '' && !text.endsWith('\n')
    return { lines, keys: open ? [...lines.slice(0, -1), `${lines.at(-1)}\0`] : lines, open }
  }
  const A = side(before)
  const B = side(after)
  const ops = diffLines(A.keys, B.keys)
  if (ops.length === 0) return ''
  const out: string[] = []
  const changes = ops.map((op, i) => (op.kind !== ' ' ? i : -1)).filter((i) => i >= 0)
  let i = 0
  while (i < changes.length) {
    // a hunk: changes whose gaps are at most 2 * CONTEXT equal lines
    let j = i
    while (j + 1 < changes.length && changes[j + 1]! - changes[j]! <= 2 * CONTEXT + 1) j++
    const from = Math.max(0, changes[i]! - CONTEXT)
    const to = Math.min(ops.length, changes[j]! + CONTEXT + 1)
    const slice = ops.slice(from, to)
    const aStart = slice[0]!.a
    const bStart = slice[0]!.b
    const aLen = slice.filter((o) => o.kind !== '+').length
    const bLen = slice.filter((o) => o.kind !== '-').length
    out.push(`@@ -${range(aStart, aLen)} +${range(bStart, bLen)} @@`)
    for (const o of slice) {
      const line = o.kind === '+' ? B.lines[o.b]! : A.lines[o.a]!
      out.push(`${o.kind}${line}`)
      const last = o.kind === '+' ? B.open && o.b === B.lines.length - 1 : A.open && o.a === A.lines.length - 1
      const lastOfOther = o.kind === ' ' && B.open && o.b === B.lines.length - 1
      if (last || lastOfOther) out.push(NO_EOL)
    }
    i = j + 1
  }
  return `${out.join('\n')}\n`
}

function range(start: number, length: number): string {
  // 1-based; an empty range names the line before it
  const first = length === 0 ? start : start + 1
  return length === 1 ? `${first}` : `${first},${length}`
}

/** An edit script line: kept (' '), removed ('-') or added ('+'), with its index in `a` and in `b` (where it is, or would be). */
interface LineOp {
  kind: ' ' | '-' | '+'
  a: number
  b: number
}

/** Myers' diff of two line lists; past MAX_EDIT_DISTANCE, everything removed and added. No ops when equal. */
function diffLines(a: string[], b: string[]): LineOp[] {
  let pre = 0
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++
  let suf = 0
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++
  if (pre === a.length && pre === b.length) return []
  const ops: LineOp[] = []
  for (let k = 0; k < pre; k++) ops.push({ kind: ' ', a: k, b: k })
  const midA = a.slice(pre, a.length - suf)
  const midB = b.slice(pre, b.length - suf)
  const mid = myers(midA, midB) ?? [
    ...midA.map((_, k) => ({ kind: '-' as const, a: k, b: 0 })),
    ...midB.map((_, k) => ({ kind: '+' as const, a: midA.length, b: k })),
  ]
  for (const o of mid) ops.push({ kind: o.kind, a: o.a + pre, b: o.b + pre })
  for (let k = 0; k < suf; k++) ops.push({ kind: ' ', a: a.length - suf + k, b: b.length - suf + k })
  return ops
}

function myers(a: string[], b: string[]): LineOp[] | null {
  const n = a.length
  const m = b.length
  const max = Math.min(n + m, MAX_EDIT_DISTANCE)
  const offset = max + 1
  const v = new Int32Array(2 * max + 3)
  /** trace[d]: v for k in [-d, d] before step d+1 (after step d). */
  const trace: Int32Array[] = []
  let found = -1
  for (let d = 0; d <= max && found < 0; d++) {
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!) ? v[offset + k + 1]! : v[offset + k - 1]! + 1
      let y = x - k
      while (x < n && y < m && a[x] === b[y]) {
        x++
        y++
      }
      v[offset + k] = x
      if (x >= n && y >= m) {
        found = d
        break
      }
    }
    trace.push(v.slice(offset - d, offset + d + 1))
  }
  if (found < 0) return null
  const ops: LineOp[] = []
  let x = n
  let y = m
  for (let d = found; d > 0; d--) {
    const prev = trace[d - 1]!
    const at = (k: number) => prev[k + (d - 1)]!
    const k = x - y
    const down = k === -d || (k !== d && at(k - 1) < at(k + 1))
    const prevK = down ? k + 1 : k - 1
    const prevX = at(prevK)
    const prevY = prevX - prevK
    while (x > prevX && y > prevY) {
      x--
      y--
      ops.push({ kind: ' ', a: x, b: y })
    }
    if (down) ops.push({ kind: '+', a: x, b: y - 1 })
    else ops.push({ kind: '-', a: x - 1, b: y })
    x = prevX
    y = prevY
  }
  while (x > 0 && y > 0) {
    x--
    y--
    ops.push({ kind: ' ', a: x, b: y })
  }
  return ops.reverse()
}
