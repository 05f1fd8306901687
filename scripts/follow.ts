/**
 * Following loops in the foreground (run, resume, fork, demo): one live progress
 * line per loop, and a graceful stop on SIGINT/SIGTERM that saves every loop
 * through `engine.close()` and leaves it resumable.
 */
import type logUpdate from 'log-update'
import type { LoopHandle } from '../services/engine.ts'
import type { LoopDetail, LoopView } from '../services/views.ts'
import { oneLine, progressKey, progressLine } from './format.ts'
import { termOf, widthOf, type Env } from './term.ts'

/**
 * Exit code of a process stopped by a signal (128 + the signal number, as shells report it).
 * SIGPIPE: its stdout was closed (`loopstate run … | head -1`), which Node reports as EPIPE.
 */
export const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143, SIGPIPE: 141 } as const

/** Longest wait for `close()` after a signal: the process is gone within 2 s whatever happens. */
const CLOSE_GRACE_MS = 1_800

type LogUpdate = typeof logUpdate

/** How often a terminal's lines are redrawn between state changes (tokens, time and the retry countdown move). */
const REDRAW_MS = 250

export interface Progress {
  /** Settles once the first lines are out (a terminal's drawing loads log-update first). */
  readonly ready: Promise<void>
  /** Stops listening and leaves the last lines as they are; settles once every line is written. */
  stop(): Promise<void>
}

/** The stream progress goes to: stdout, or what a test gives. */
export interface ProgressStream {
  write(text: string): unknown
  isTTY?: boolean
  columns?: number
  rows?: number
  on?(event: 'resize', listener: () => void): unknown
  off?(event: 'resize', listener: () => void): unknown
}

export interface ProgressOptions {
  /** @default process.stdout */
  stream?: ProgressStream
  /** What decides colour and redrawing (NO_COLOR, FORCE_COLOR, TERM, COLUMNS). @default process.env */
  env?: Env
  /** The loop's detail, for the message of the failure a retrying loop waits after (else its code is shown). */
  detail?: (name: string) => Promise<LoopDetail | null>
}

/** The loops a progress follows. */
export type Followed = Pick<LoopHandle, 'name' | 'view' | 'subscribe'>

/**
 * One progress line per loop (loop, phase, iteration, section k/n, tokens,
 * elapsed, and why and until when a retrying loop waits): on a terminal a block
 * redrawn in place by log-update, fitted to the terminal's width again as it is
 * resized; otherwise (a pipe, a file, TERM=dumb) a plain line each time a loop's
 * status, phase, state, iteration or section changes, without any escape code
 * (and without colour unless FORCE_COLOR asks for it).
 */
/**
 * Loads the terminal renderer ahead, when `stream` is a live terminal: a loop that
 * starts after this gets its first frame at once (not after the import, which can
 * take longer than a short loop), so every change after it is a redraw.
 */
export async function preloadProgress(stream: ProgressStream = process.stdout, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (termOf(stream, env).live) await import('log-update')
}

export function showProgress(handles: Followed[], options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stdout
  const env = options.env ?? process.env
  const term = termOf(stream, env)
  const nameWidth = Math.max(0, ...handles.map((h) => h.name.length))
  // The failure message of each loop's current retry, once asked of `detail`.
  const why = new Map<string, { at: string; message: string | null }>()
  const known = (view: LoopView) => (view.retry && why.get(view.name)?.at === view.retry.at ? why.get(view.name)!.message : undefined)
  const lookup = async (view: LoopView): Promise<string | null> => {
    if (!view.retry || !options.detail) return null
    const had = known(view)
    if (had !== undefined) return had
    let message: string | null = null
    try {
      message = (await options.detail(view.name))?.error?.message ?? null
    } catch {
      // the code stands in for it
    }
    why.set(view.name, { at: view.retry.at, message })
    return message
  }
  const unsubscribe: (() => void)[] = []
  let stopped = false

  if (term.live) {
    // log-update reads the size from its stream: a terminal that reports none (0 × 0) is given COLUMNS or 80
    // columns, and log-update's default height
    const target = {
      write: (text: string) => stream.write(text),
      get columns() {
        return widthOf(stream, env)
      },
      get rows() {
        return stream.rows || undefined
      },
    }
    // loaded only here: a pipe never needs it
    let render: LogUpdate | null = null
    const loaded = import('log-update').then(({ createLogUpdate }) => {
      render = createLogUpdate(target as unknown as NodeJS.WritableStream, { showCursor: true })
      if (!stopped) draw()
    })
    const draw = () => {
      if (render === null) return
      // one column short of the edge: a full row would wrap on some terminals
      const width = widthOf(stream, env) - 1
      render(handles.map((h) => {
        const view = h.view()
        return progressLine(view, nameWidth, { style: term.style, width, why: known(view) })
      }).join('\n'))
    }
    const update = (view: LoopView) => {
      if (view.retry && known(view) === undefined) void lookup(view).then(() => stopped || draw())
      draw()
    }
    draw()
    for (const h of handles) {
      const view = h.view()
      if (view.retry) update(view)
    }
    const ticker = setInterval(draw, REDRAW_MS)
    ticker.unref()
    stream.on?.('resize', draw)
    unsubscribe.push(...handles.map((h) => h.subscribe(update)))
    return {
      ready: loaded,
      async stop() {
        if (stopped) return
        stopped = true
        unsubscribe.forEach((u) => u())
        clearInterval(ticker)
        stream.off?.('resize', draw)
        await loaded
        draw()
        render?.done()
      },
    }
  }

  const keys = new Map<string, string>()
  // Lines go out in order, each once the message of its retry (if any) is known.
  let written: Promise<void> = Promise.resolve()
  const update = (view: LoopView) => {
    const key = progressKey(view)
    if (stopped || keys.get(view.name) === key) return
    keys.set(view.name, key)
    written = written
      .then(async () => {
        const message = await lookup(view)
        stream.write(`${progressLine(view, nameWidth, { style: term.style, why: message })}\n`)
      })
      .catch(() => {})
  }
  for (const h of handles) update(h.view())
  unsubscribe.push(...handles.map((h) => h.subscribe(update)))
  return {
    ready: written,
    async stop() {
      if (!stopped) {
        stopped = true
        unsubscribe.forEach((u) => u())
      }
      await written
    },
  }
}

export interface StopOnSignalsOptions {
  /** Saves every loop without ending it (`engine.close()`). */
  close: () => Promise<void>
  /** Called first, e.g. to stop the progress lines. */
  before?: () => void
  /** The line printed once everything is saved. */
  saved: () => string
  /** Where the `saved()` line goes (stderr once stdout is closed). @default 'stdout' */
  savedTo?: 'stdout' | 'stderr'
}

export interface SignalGuard {
  /** A signal came: the process is on its way out (the handler exits). */
  readonly stopping: boolean
  /** Removes the handlers. */
  dispose(): void
}

/**
 * A graceful stop: on the first SIGINT or SIGTERM, `before()`, `close()`, the
 * `saved()` line, and exit 130 (SIGINT) or 143 (SIGTERM). Saving is quick, but a
 * stuck write never keeps the user waiting: after 1.8 s the process exits anyway.
 * A second signal while closing exits at once. A write to a closed stdout (EPIPE,
 * `| head -1`) stops it the same way, with the `saved()` line on stderr and exit
 * 141, as a process killed by SIGPIPE (Node ignores the signal itself).
 */
export function stopOnSignals({ close, before, saved, savedTo = 'stdout' }: StopOnSignalsOptions): SignalGuard {
  let stopping = false
  const onSignal = (signal: keyof typeof SIGNAL_EXIT_CODES) => {
    const code = SIGNAL_EXIT_CODES[signal]
    if (stopping) process.exit(code)
    stopping = true
    before?.()
    setTimeout(() => {
      process.stderr.write(`loopstate: could not save within 2 s; stopping anyway\n`)
      process.exit(code)
    }, CLOSE_GRACE_MS).unref()
    close().then(
      () => {
        ;(signal === 'SIGPIPE' || savedTo === 'stderr' ? process.stderr : process.stdout).write(`${saved()}\n`)
        process.exit(code)
      },
      (e: unknown) => {
        process.stderr.write(`loopstate: could not save: ${oneLine(e instanceof Error ? e.message : String(e))}\n`)
        process.exit(code)
      },
    )
  }
  const onInt = () => onSignal('SIGINT')
  const onTerm = () => onSignal('SIGTERM')
  // Every later write fails too (and stderr may be closed with it): heard once, never thrown.
  const onOutError = () => {
    if (!stopping) onSignal('SIGPIPE')
  }
  const onErrError = () => {}
  process.on('SIGINT', onInt)
  process.on('SIGTERM', onTerm)
  process.stdout.on('error', onOutError)
  process.stderr.on('error', onErrError)
  return {
    get stopping() {
      return stopping
    },
    dispose() {
      process.off('SIGINT', onInt)
      process.off('SIGTERM', onTerm)
      process.stdout.off('error', onOutError)
      process.stderr.off('error', onErrError)
    },
  }
}
