/**
 * Tables that fit a width: columns padded to their widest cell; when the table is
 * too wide, the steps given shrink (with `…`) or drop the least important columns
 * in their order; columns no step names are never cut. Colour is put on after the
 * cells are measured and cut, so it never counts as width.
 */
import { elide, visibleWidth } from '../term.ts'

export interface Column {
  header: string
  /** Right-aligned (numbers). */
  right?: boolean
  /** Colours a cell (already cut and without padding); `row` is its row's index. */
  paint?: (cell: string, row: number) => string
}

/** One way to make a table narrower: shrink a column down to `min` columns (eliding at `elide`), or drop it. */
export type FitStep =
  | { shrink: number; min: number; elide?: 'end' | 'middle' }
  | { drop: number }

export interface TableOptions {
  /** The width to fit (default: no limit). */
  width?: number
  /** Tried in order while the table is too wide. */
  fit?: FitStep[]
  /** Space between columns. @default 2 */
  gap?: number
}

const GAP = 2

/** The table as lines joined with `\n` (trailing spaces trimmed). */
export function fitTable(columns: Column[], rows: string[][], { width = Infinity, fit = [], gap = GAP }: TableOptions = {}): string {
  const widths = columns.map((c, i) => Math.max(visibleWidth(c.header), ...rows.map((r) => visibleWidth(r[i] ?? ''))))
  const elideAt: ('end' | 'middle')[] = columns.map(() => 'end')
  const shown = columns.map(() => true)
  const total = () => widths.reduce((sum, w, i) => sum + (shown[i] ? w : 0), 0) + gap * (shown.filter(Boolean).length - 1)
  for (const step of fit) {
    const over = total() - width
    if (over <= 0) break
    if ('drop' in step) {
      shown[step.drop] = false
    } else if (shown[step.shrink]) {
      const w = widths[step.shrink]!
      widths[step.shrink] = Math.max(step.min, w - over, 1)
      if (widths[step.shrink]! < w) elideAt[step.shrink] = step.elide ?? 'end'
    }
  }
  const line = (cells: string[], row: number | null) =>
    columns
      .map((c, i) => {
        if (!shown[i]) return null
        const w = widths[i]!
        const raw = cells[i] ?? ''
        const cut = visibleWidth(raw) > w ? elide(raw, w, elideAt[i]) : raw
        const fill = ' '.repeat(Math.max(0, w - visibleWidth(cut)))
        const painted = row !== null && c.paint ? c.paint(cut, row) : cut
        return c.right ? fill + painted : painted + fill
      })
      .filter((c): c is string => c !== null)
      .join(' '.repeat(gap))
      .trimEnd()
  return [line(columns.map((c) => c.header), null), ...rows.map((r, i) => line(r, i))].join('\n')
}

/** Columns padded to their widest cell; columns named in `right` are right-aligned. */
export function table(header: string[], rows: string[][], right: number[] = []): string {
  return fitTable(
    header.map((h, i) => ({ header: h, right: right.includes(i) })),
    rows,
  )
}
