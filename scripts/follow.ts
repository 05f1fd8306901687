/**
 * Following loops in the foreground (run, resume, fork, demo): one live progress
 * line per loop, and a graceful stop on SIGINT/SIGTERM that saves every loop
 * through `engine.close()` and leaves it resumable.
 */
import type { LoopHandle } from '../services/engine.ts'
import type { LoopView } from '../services/views.ts'
import { fit, oneLine, progressKey, progressLine } from './format.ts'

/** Exit code of a process stopped by a signal (128 + the signal number, as shells report it). */
export const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const

/** Longest wait for `close()` after a signal: the process is gone within 2 s whatever happens. */
const CLOSE_GRACE_MS = 1_800

export interface Progress {
  /** Stops listening and leaves the last lines as they are. */
  stop(): void
}

/**
 * One progress line per loop (loop, phase, iteration, section k/n, tokens,
 * elapsed): on a terminal a block redrawn in place, otherwise a line each time
 * a loop's status, phase, state, iteration or section changes.
 */
export function showProgress(handles: LoopHandle[]): Progress {
  const out = process.stdout
  const tty = out.isTTY === true
  const width = Math.max(0, ...handles.map((h) => h.name.length))
  const keys = new Map<string, string>()
  const lines = () => handles.map((h) => fit(progressLine(h.view(), width), out.columns))
  const redraw = () => out.write(`\x1b[${handles.length}A${lines().map((l) => `\r${l}\x1b[K`).join('\n')}\n`)
  const update = (view: LoopView) => {
    if (tty) return redraw()
    const key = progressKey(view)
    if (keys.get(view.name) === key) return
    keys.set(view.name, key)
    out.write(`${progressLine(view, width)}\n`)
  }
  let ticker: NodeJS.Timeout | null = null
  if (tty) {
    out.write(`${lines().join('\n')}\n`)
    // Redrawn between state changes too, so that tokens and time move.
    ticker = setInterval(redraw, 250)
    ticker.unref()
  } else {
    for (const h of handles) update(h.view())
  }
  const unsubscribe = handles.map((h) => h.subscribe(update))
  let stopped = false
  return {
    stop() {
      if (stopped) return
      stopped = true
      unsubscribe.forEach((u) => u())
      if (ticker) clearInterval(ticker)
      if (tty) redraw()
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
 * A second signal while closing exits at once.
 */
export function stopOnSignals({ close, before, saved }: StopOnSignalsOptions): SignalGuard {
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
        process.stdout.write(`${saved()}\n`)
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
  process.on('SIGINT', onInt)
  process.on('SIGTERM', onTerm)
  return {
    get stopping() {
      return stopping
    },
    dispose() {
      process.off('SIGINT', onInt)
      process.off('SIGTERM', onTerm)
    },
  }
}
