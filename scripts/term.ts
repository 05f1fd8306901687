/**
 * What the CLI's output may do on the stream it goes to, decided in one place:
 * colour (NO_COLOR, FORCE_COLOR, a terminal, TERM=dumb), redrawing in place (a
 * terminal that is not `dumb`) and the width tables fit (the terminal's, else
 * COLUMNS, else 80). Also the measures of text that may hold colour codes.
 */
import picocolors from 'picocolors'

export type Env = Record<string, string | undefined>

/** What is known of an output stream. */
export interface StreamInfo {
  /** The stream is a terminal. */
  isTTY?: boolean
  /** Its width in columns, when it is a terminal. */
  columns?: number
}

/**
 * Whether output gets colour: never when NO_COLOR is set (and not empty); always
 * when FORCE_COLOR is 1, 2, 3, true or empty, never when it is 0 or false;
 * otherwise only on a terminal whose TERM is not `dumb`.
 */
export function colorEnabled(stream: StreamInfo, env: Env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false
  const force = env.FORCE_COLOR
  if (force !== undefined) {
    if (force === '0' || force === 'false') return false
    if (force === '' || force === 'true' || /^[1-3]$/.test(force)) return true
  }
  return liveTerminal(stream, env)
}

/** Whether lines may be redrawn in place (cursor movement): a terminal whose TERM is not `dumb`. */
export function liveTerminal(stream: StreamInfo, env: Env): boolean {
  return stream.isTTY === true && env.TERM !== 'dumb'
}

/** The width output fits: the terminal's, else COLUMNS, else 80. */
export function widthOf(stream: StreamInfo, env: Env): number {
  if (stream.isTTY === true && stream.columns !== undefined && stream.columns > 0) return stream.columns
  const fromEnv = Number(env.COLUMNS)
  if (Number.isInteger(fromEnv) && fromEnv > 0) return fromEnv
  return 80
}

type Paint = (text: string) => string

/** Colours for the CLI's text; every one is the identity when colour is off. */
export interface Style {
  readonly enabled: boolean
  bold: Paint
  dim: Paint
  red: Paint
  green: Paint
  yellow: Paint
  cyan: Paint
  magenta: Paint
  /** The text (default: the status itself) in the colour of a loop status. */
  status(status: string, text?: string): string
}

export function styleOf(enabled: boolean): Style {
  const c = picocolors.createColors(enabled)
  const byStatus: Record<string, Paint> = {
    completed: c.green,
    errored: c.red,
    stalled: c.yellow,
    cancelled: c.yellow,
    running: c.cyan,
    paused: c.magenta,
    queued: c.dim,
  }
  return {
    enabled,
    bold: c.bold,
    dim: c.dim,
    red: c.red,
    green: c.green,
    yellow: c.yellow,
    cyan: c.cyan,
    magenta: c.magenta,
    status: (status, text = status) => (byStatus[status] ?? String)(text),
  }
}

/** No colour. */
export const plain: Style = styleOf(false)

/** How the CLI writes to one stream. */
export interface Term {
  style: Style
  /** The width tables fit. */
  columns: number
  /** Redraw in place (a terminal that is not `dumb`); otherwise plain lines, never a cursor movement. */
  live: boolean
}

export function termOf(stream: StreamInfo, env: Env = process.env): Term {
  return { style: styleOf(colorEnabled(stream, env)), columns: widthOf(stream, env), live: liveTerminal(stream, env) }
}

const SGR = /\x1b\[[0-9;]*m/g

export function stripAnsi(text: string): string {
  return text.replace(SGR, '')
}

/** Columns the text takes on a terminal: colour codes take none, every character one. */
export function visibleWidth(text: string): number {
  let n = 0
  for (const _ of stripAnsi(text)) n++
  return n
}

/**
 * Plain text cut to `width` columns with `…`: at its end, or in its middle (for
 * names and paths, whose ends say most).
 */
export function elide(text: string, width: number, where: 'end' | 'middle' = 'end'): string {
  const chars = [...text]
  if (chars.length <= width) return text
  if (width <= 0) return ''
  if (width === 1) return '…'
  if (where === 'end') return `${chars.slice(0, width - 1).join('')}…`
  const tail = Math.floor((width - 1) / 2)
  const head = width - 1 - tail
  return `${chars.slice(0, head).join('')}…${chars.slice(chars.length - tail).join('')}`
}

/** Plain text padded with spaces to `width` columns (on the right, or on the left). */
export function pad(text: string, width: number, right = false): string {
  const fill = ' '.repeat(Math.max(0, width - visibleWidth(text)))
  return right ? fill + text : text + fill
}
